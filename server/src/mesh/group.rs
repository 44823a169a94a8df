//! The group coordinator's cross-core messages: one `GroupRequest` variant per group
//! operation, each carrying its own typed reply handle. A request goes to the shard that
//! coordinates the group (`group::host::coordinator_shard`); ListGroups and the offsets
//! of deleted topics go to every shard. Failures travel as `GroupError` and `StoreError`;
//! the handlers choose the Kafka codes (`kafka_errors`). A dropped request drops its
//! reply handle, and the asking side sees its call fail.

use glommio::channels::oneshot::SharedSender as Reply;

use crate::group::store::StoreError;
use crate::group::{
    CommitIdentity, CommittedOffset, GroupError, GroupState, GroupSummary, JoinRequest, Joined,
    LeavingMember, SyncRequest, Synced,
};
use crate::topic_table::TopicPartition;

/// The outcome per partition of an OffsetCommit or OffsetDelete, in request order.
pub type PartitionOutcomes = Vec<(TopicPartition, Result<(), GroupError>)>;

/// The committed offset of each partition OffsetFetch asked for; `None` where the group
/// committed none.
pub type CommittedOffsets = Vec<(TopicPartition, Option<CommittedOffset>)>;

/// A group generation, as JoinGroup hands it out and the other calls present it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationId(pub i32);

/// One member's Heartbeat.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: GenerationId,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One group as ListGroups shows it; sorts by group id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Why an OffsetCommit was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitRefused {
    /// The group's `__consumer_offsets` partition is still being replayed: nothing was
    /// checked, so every partition of the request gets COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// The committing member failed the generation checks: every partition sent to the
    /// coordinator gets this error.
    Member(GroupError),
}

/// One group operation for a coordinator shard. Every reply is the operation's own
/// result; a coordinator still replaying the group's partition answers with
/// `GroupError::CoordinatorLoadInProgress` (`CommitRefused::Loading` for a commit).
pub enum GroupRequest {
    /// JoinGroup; may wait for the other members before replying. Dropped: the member
    /// gets COORDINATOR_NOT_AVAILABLE, looks the coordinator up again and rejoins.
    Join {
        req: JoinRequest,
        reply: Reply<Result<Joined, GroupError>>,
    },
    /// SyncGroup; followers wait for the leader's assignment to be stored. Dropped: the
    /// member gets COORDINATOR_NOT_AVAILABLE and rejoins.
    Sync {
        req: SyncRequest,
        reply: Reply<Result<Synced, GroupError>>,
    },
    /// Heartbeat. Dropped: the member gets COORDINATOR_NOT_AVAILABLE and rediscovers the
    /// coordinator; its session keeps running meanwhile.
    Heartbeat {
        beat: Heartbeat,
        reply: Reply<Result<(), GroupError>>,
    },
    /// LeaveGroup for `members`; the reply has one result per member, in order, or an
    /// error for the whole request. Dropped: the members stay until their sessions end.
    Leave {
        group_id: String,
        members: Vec<LeavingMember>,
        reply: Reply<Result<Vec<Result<String, GroupError>>, GroupError>>,
    },
    /// OffsetCommit, answered once the offsets are durable. Dropped: every partition gets
    /// COORDINATOR_NOT_AVAILABLE and the client commits again.
    Commit {
        who: CommitIdentity,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        reply: Reply<Result<PartitionOutcomes, CommitRefused>>,
    },
    /// OffsetFetch of one group; `partitions: None` asks for every committed offset.
    /// Dropped: the group gets COORDINATOR_NOT_AVAILABLE and the client asks again.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<TopicPartition>>,
        reply: Reply<Result<CommittedOffsets, GroupError>>,
    },
    /// DescribeGroups for one group; a group this shard does not know is Dead. Dropped:
    /// the group gets COORDINATOR_NOT_AVAILABLE.
    Describe {
        group_id: String,
        reply: Reply<Result<GroupSummary, GroupError>>,
    },
    /// ListGroups on this shard: groups in one of `states` (all when empty). Dropped:
    /// the answer carries COORDINATOR_NOT_AVAILABLE with the other shards' groups.
    List {
        states: Vec<String>,
        reply: Reply<Result<Vec<ListedGroup>, GroupError>>,
    },
    /// DeleteGroups for one group, answered once its tombstones are durable. Dropped:
    /// the group gets COORDINATOR_NOT_AVAILABLE and is not deleted.
    Delete {
        group_id: String,
        reply: Reply<Result<(), GroupError>>,
    },
    /// OffsetDelete: committed offsets of partitions no member subscribes to, answered
    /// once the tombstones are durable. Dropped: COORDINATOR_NOT_AVAILABLE, nothing
    /// deleted.
    DeleteOffsets {
        group_id: String,
        partitions: Vec<TopicPartition>,
        reply: Reply<Result<PartitionOutcomes, GroupError>>,
    },
    /// To every shard after DeleteTopics: each group of this shard drops its committed
    /// offsets of these topics, durably. Dropped: that shard keeps them until its next
    /// start, whose replay skips offsets of topics no longer in the table.
    TopicsDeleted {
        topics: Vec<String>,
        reply: Reply<Result<(), StoreError>>,
    },
}
