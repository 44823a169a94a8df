//! The classic group coordinator of one shard: every group whose `__consumer_offsets`
//! partition this shard owns, with its rebalance state machine (Empty,
//! PreparingRebalance, CompletingRebalance, Stable, Dead), members (dynamic with KIP-394
//! member-id-required, static with KIP-345 `group.instance.id`), protocol selection,
//! rebalance and session timeouts, and the committed offsets.
//!
//! What must survive a restart leaves as `GroupWrite`s, taken with `take_writes` after
//! any call: group metadata when a generation completes or the group empties, tombstones
//! for expired or deleted offsets and for removed groups. The host appends them to the
//! group's `__consumer_offsets` partition. Offset commits go in two steps, so that the
//! host can make them durable first: `prepare_commit` checks, `materialize_commit`
//! applies after the append. On start the host replays the partition through
//! `load_offset` and `load_group`.
//!
//! The leader's SyncGroup goes in two steps too, as in Kafka: it decides the assignment
//! and asks for it to be stored (`GroupWrite::Assignment`), but the group stays
//! CompletingRebalance and every member waiting in SyncGroup, the leader included, keeps
//! waiting. The host reports the store's outcome with `sync_stored`: once durable, the
//! group becomes Stable and the waiting members get their assignments; if the store
//! failed, they get the error and the group prepares a rebalance. A rebalance, leave or
//! expiry meanwhile moves the group on, and the late outcome is then ignored.
//!
//! A join phase ends when every member has rejoined, or at the rebalance deadline. As in
//! Kafka's onCompleteJoin, dynamic members that did not rejoin are then removed, but
//! static members stay in the new generation with their last metadata (the leader
//! assigns to them too): a static member comes back with its member id, heartbeats
//! ILLEGAL_GENERATION until it rejoins and gets the current generation, or it leaves by
//! session timeout or pending sync expiry. The new leader is a member that rejoined; when
//! the only members left are static ones that did not rejoin, the phase waits another
//! rebalance timeout instead.
//!
//! Every member of a generation owes a SyncGroup for it, as in Kafka's pending sync
//! members: when a join phase completes, all members are pending sync, a static member
//! that did not rejoin too, until their SyncGroup arrives (in CompletingRebalance or
//! Stable) or they leave.
//! If the group is still in that generation, CompletingRebalance or Stable, when its
//! rebalance timeout has passed, the members still pending are removed, static ones too
//! (their instance id is freed), and the group prepares a rebalance. A heartbeat does
//! not count: a member that heartbeats but never syncs holds partitions nobody consumes.
//! As in Kafka, a static member replaced by a new member id (a restart that rejoins a
//! Stable group) stays pending under its old id, so the expiry still rebalances then.
//!
//! The coordinator is pure logic: it never reads a clock or spawns a task. Every call takes
//! `now_ms`, `tick` expires sessions, rebalance deadlines and pending syncs, and
//! `next_deadline_ms` says when `tick` must run next. JoinGroup and SyncGroup may have to
//! wait for other members: such a call answers `Pending`, and the answer arrives later as
//! a `Delivery` taken with `take_deliveries` (after any call). A caller first hands out the deliveries of a call
//! and only then registers the waiter of a `Pending` answer, so a superseded waiter of
//! the same member is answered before the new one replaces it.

pub mod host;
pub mod placement;
pub mod record;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use sluice_engine::Offset;

use record::{GroupMetadataValue, MemberMetadata};

/// The longest member id we generate: a Kafka string (i16 length).
const MEMBER_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Per-partition outcome of OffsetCommit and OffsetDelete, keyed by (topic, partition).
pub type PartitionResults = Vec<((String, i32), Result<(), GroupError>)>;

/// Kafka's classic group states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Group errors, named as Kafka names them; `kafka_errors::group_error` maps them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("session timeout {0} ms outside the broker's bounds")]
    InvalidSessionTimeout(i32),
    #[error("the group is being removed")]
    CoordinatorNotAvailable,
    #[error("member id required: rejoin with {0}")]
    MemberIdRequired(String),
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("instance id fenced by a newer member")]
    FencedInstanceId,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("group is not empty")]
    NonEmptyGroup,
    #[error("group already has the maximum number of members")]
    GroupMaxSizeReached,
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    #[error("the group is subscribed to this topic")]
    GroupSubscribedToTopic,
    #[error("the coordinator is still loading its groups")]
    CoordinatorLoadInProgress,
    #[error("this shard no longer coordinates the group, or its log failed")]
    NotCoordinator,
    #[error("the commit does not fit one record batch")]
    InvalidCommitOffsetSize,
    #[error("storing the group's records failed")]
    UnknownServerError,
}

/// A record the coordinator wants in the group's `__consumer_offsets` partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupWrite {
    /// The group's metadata after a generation completed or the group emptied.
    Metadata {
        group_id: String,
        value: GroupMetadataValue,
    },
    /// Tombstones of committed offsets that expired or were deleted.
    OffsetsRemoved {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
    /// A tombstone of the group's metadata: the group is gone.
    GroupRemoved { group_id: String },
    /// The group's metadata with the assignment its leader sent for `generation_id`.
    /// Whoever takes it must store it durably and report the outcome to `sync_stored`:
    /// until then the group's members wait in SyncGroup.
    Assignment {
        group_id: String,
        generation_id: i32,
        value: GroupMetadataValue,
    },
}

/// The outcome of `prepare_commit`: per-partition refusals, and what may be written.
#[derive(Clone, Debug)]
pub struct PreparedCommit {
    /// Every partition of the request; the accepted ones are `Ok`.
    pub results: PartitionResults,
    /// The offsets to write and then materialize, commit timestamp set.
    pub accepted: Vec<((String, i32), CommittedOffset)>,
}

/// Broker-wide group settings (Kafka's names and defaults).
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms
    pub session_timeout_ms_min: i32,
    /// group.max.session.timeout.ms
    pub session_timeout_ms_max: i32,
    /// group.initial.rebalance.delay.ms: the first rebalance of an empty group waits this
    /// long (again after each new member, up to the rebalance timeout) for more members.
    pub initial_rebalance_delay_ms: u64,
    /// group.max.size
    pub members_max: usize,
    /// offset.metadata.max.bytes
    pub offset_metadata_bytes_max: usize,
    /// Largest protocol metadata or assignment accepted from a member.
    pub member_metadata_bytes_max: usize,
    /// Most protocols one member may offer.
    pub protocols_max: usize,
    /// offsets.retention.minutes, in ms: committed offsets of a group without members
    /// expire this long after the later of their commit and the group becoming empty.
    pub offsets_retention_ms: u64,
    /// offsets.retention.check.interval.ms: Kafka removes a group left without members
    /// and offsets at its next periodic cleanup, so until then the group is listed as
    /// Empty and may be deleted; here it is removed this long after it became empty.
    pub offsets_retention_check_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: 1_000,
            offset_metadata_bytes_max: 4_096,
            member_metadata_bytes_max: 1 << 20,
            protocols_max: 64,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

/// One JoinGroup, as the coordinator needs it.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a dynamic member without id is told its id first (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader can be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A successful JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: the members and their metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoining a stable group keeps the current assignment (KIP-345).
    pub skip_assignment: bool,
}

/// A successful SyncGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// The immediate answer to a JoinGroup or SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    Done(Result<T, GroupError>),
    /// The answer comes later as a `Delivery` for this member id.
    Pending {
        member_id: String,
    },
}

/// An answer to a JoinGroup or SyncGroup that was `Pending`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Join {
        group_id: String,
        member_id: String,
        result: Result<Joined, GroupError>,
    },
    Sync {
        group_id: String,
        member_id: String,
        result: Result<Synced, GroupError>,
    },
}

/// One SyncGroup.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment); only the leader's are used.
    pub assignments: Vec<(String, Bytes)>,
}

/// One member leaving (LeaveGroup v3+ names several).
#[derive(Clone, Debug)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: Offset,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: u64,
}

/// Who is committing, for the generation checks of OffsetCommit.
#[derive(Clone, Debug)]
pub struct CommitIdentity {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Clone, Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat_ms: u64,
    awaiting_join: bool,
    awaiting_sync: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn session_expired(&self, now_ms: u64) -> bool {
        let keep_alive = self.awaiting_join || self.awaiting_sync;
        !keep_alive && now_ms >= self.last_heartbeat_ms + session_ms(self.session_timeout_ms)
    }
}

fn session_ms(timeout_ms: i32) -> u64 {
    u64::try_from(timeout_ms.max(0)).unwrap_or(0)
}

/// The deadline of the SyncGroups owed for one generation.
#[derive(Clone, Copy, Debug)]
struct SyncExpiry {
    generation_id: i32,
    deadline_ms: u64,
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: HashMap<String, u64>,
    /// PreparingRebalance: when the join phase ends even if members are missing.
    rebalance_deadline_ms: Option<u64>,
    /// Members that got the current generation's JoinGroup answer and have sent no
    /// SyncGroup since (Kafka's pending sync members). As in Kafka, a static member
    /// replaced by a new member id stays listed under its old id.
    pending_sync: BTreeSet<String>,
    /// When the members still in `pending_sync` are removed.
    sync_expiry: Option<SyncExpiry>,
    /// PreparingRebalance of a formerly empty group: not before this time.
    initial_delay_until_ms: Option<u64>,
    offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Log offset of the record behind each committed offset: a materialization of an
    /// older record never overwrites a newer one.
    offset_positions: HashMap<(String, i32), i64>,
    /// When the group last became Empty after having members.
    empty_since_ms: Option<u64>,
    /// CompletingRebalance: the generation whose assignment is being stored. Only counts
    /// while it is still the group's generation.
    storing_generation: Option<i32>,
}

impl Group {
    fn new() -> Self {
        Group {
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: None,
            pending_sync: BTreeSet::new(),
            sync_expiry: None,
            initial_delay_until_ms: None,
            offsets: BTreeMap::new(),
            offset_positions: HashMap::new(),
            empty_since_ms: None,
            storing_generation: None,
        }
    }

    /// A member's SyncGroup arrived: it no longer owes one. Once nobody does, the
    /// expiry has nothing left to do and goes.
    fn sync_received(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_expiry = None;
        }
    }

    /// No member owes a SyncGroup and no expiry is waiting (a rebalance or a new
    /// generation begins).
    fn clear_pending_sync(&mut self) {
        self.pending_sync.clear();
        self.sync_expiry = None;
    }

    /// When `tick` must expire pending syncs, if anyone still owes one.
    fn sync_expiry_ms(&self) -> Option<u64> {
        self.sync_expiry
            .filter(|_| !self.pending_sync.is_empty())
            .map(|e| e.deadline_ms)
    }

    /// Kafka's sync expiration: at the deadline, if the group is still in the generation
    /// that armed it and in CompletingRebalance or Stable, every member still owing its
    /// SyncGroup is removed, whether or not it heartbeats. Returns whether it fired, in
    /// which case the group must prepare a rebalance, even if every listed id had already
    /// gone (a replaced static member), as Kafka does.
    fn expire_pending_sync(&mut self, now_ms: u64) -> bool {
        let Some(expiry) = self.sync_expiry.filter(|e| now_ms >= e.deadline_ms) else {
            return false;
        };
        self.sync_expiry = None;
        let current = expiry.generation_id == self.generation_id
            && matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
        if !current || self.pending_sync.is_empty() {
            self.pending_sync.clear();
            return false;
        }
        for id in std::mem::take(&mut self.pending_sync) {
            if !self.members.contains_key(&id) {
                continue;
            }
            let m = remove_member(self, &id);
            // Only a SyncGroup ends the pending sync, and only a rebalance makes a
            // member wait in JoinGroup, which clears the pending syncs: nobody waits.
            assert!(!m.awaiting_sync, "a member pending sync waits in SyncGroup");
            assert!(!m.awaiting_join, "a member pending sync waits in JoinGroup");
        }
        true
    }

    /// The leader's assignment of the current generation is being stored.
    fn storing_assignment(&self) -> bool {
        self.state == GroupState::CompletingRebalance
            && self.storing_generation == Some(self.generation_id)
    }

    /// The record Kafka stores for this group: members with their metadata for the
    /// chosen protocol and their assignment.
    fn metadata_value(&self, now_ms: u64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: if self.members.is_empty() {
                None
            } else {
                self.leader.clone()
            },
            current_state_timestamp_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberMetadata {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Protocols every member supports (and the candidate's), in the candidate's order.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Kafka's vote: among protocols every member supports, each member votes its most
    /// preferred; the most votes win, ties go to the protocol listed first by the leader.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let leader_order: Vec<&String> =
            match self.leader.as_ref().and_then(|l| self.members.get(l)) {
                Some(l) => l
                    .protocols
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| candidates.contains(n))
                    .collect(),
                None => candidates.clone(),
            };
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        leader_order
            .into_iter()
            .find(|n| votes.get(n).copied() == Some(best))
            .cloned()
    }

    /// Every member has rejoined and no member id handed out is still unused. A static
    /// member that has not rejoined counts as missing: only the deadline ends the join
    /// phase without it.
    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    /// Kafka's maybeElectNewJoinedLeader: the leader of the next generation must have
    /// rejoined; if the current one has not, the first member that has takes over.
    /// Returns false when members are left but none of them rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        if self.members.is_empty() {
            return true;
        }
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join);
        if leader_joined {
            return true;
        }
        let joined = self
            .members
            .iter()
            .find(|(_, m)| m.awaiting_join)
            .map(|(id, _)| id.clone());
        match joined {
            Some(id) => {
                self.leader = Some(id);
                true
            }
            None => false,
        }
    }

    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| session_ms(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }
}

/// The groups of one shard.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    deliveries: Vec<Delivery>,
    writes: Vec<GroupWrite>,
    member_seq: u64,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Self {
        Coordinator {
            config,
            groups: HashMap::new(),
            deliveries: Vec::new(),
            writes: Vec::new(),
            member_seq: 0,
        }
    }

    /// Records to append to `__consumer_offsets`, in the order they were decided.
    pub fn take_writes(&mut self) -> Vec<GroupWrite> {
        std::mem::take(&mut self.writes)
    }

    /// The group id of every group this coordinator holds.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Answers to earlier `Pending` calls, in the order they were decided.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.deliveries)
    }

    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation_id)
    }

    /// Kafka's form, `<client id>-<unique suffix>`. A client id may itself be 32,767
    /// bytes, so it is cut (at a char boundary) to keep the member id within the i16
    /// length that requests, responses and the stored group metadata give strings.
    fn new_member_id(&mut self, client_id: &str) -> String {
        self.member_seq += 1;
        let nonce: u64 = rand::random();
        let suffix = format!("-{:08x}-{nonce:016x}", self.member_seq);
        let mut keep = client_id.len().min(MEMBER_ID_BYTES_MAX - suffix.len());
        while !client_id.is_char_boundary(keep) {
            keep -= 1;
        }
        format!("{}{suffix}", &client_id[..keep])
    }

    pub fn join_group(&mut self, req: JoinRequest, now_ms: u64) -> Answer<Joined> {
        if req.group_id.is_empty() {
            return Answer::Done(Err(GroupError::InvalidGroupId));
        }
        if req.session_timeout_ms < self.config.session_timeout_ms_min
            || req.session_timeout_ms > self.config.session_timeout_ms_max
        {
            return Answer::Done(Err(GroupError::InvalidSessionTimeout(
                req.session_timeout_ms,
            )));
        }
        if req.protocols.len() > self.config.protocols_max
            || req
                .protocols
                .iter()
                .any(|(_, m)| m.len() > self.config.member_metadata_bytes_max)
        {
            return Answer::Done(Err(GroupError::InconsistentGroupProtocol));
        }
        let group_id = req.group_id.clone();
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(Group::new);
        if group.state == GroupState::Dead {
            return Answer::Done(Err(GroupError::CoordinatorNotAvailable));
        }
        if !group.supports(&req.protocol_type, &req.protocols) {
            self.remove_if_unused_after_cleanup_interval(&group_id, now_ms);
            return Answer::Done(Err(GroupError::InconsistentGroupProtocol));
        }
        let answer = if req.member_id.is_empty() {
            self.join_unknown_member(req, now_ms)
        } else {
            self.join_known_member(req, now_ms)
        };
        self.check_join_complete(&group_id, now_ms);
        self.remove_if_unused_after_cleanup_interval(&group_id, now_ms);
        self.claim_own_delivery(answer)
    }

    /// A `Pending` answer whose delivery was decided within the same call becomes `Done`.
    fn claim_own_delivery(&mut self, answer: Answer<Joined>) -> Answer<Joined> {
        let Answer::Pending { member_id } = &answer else {
            return answer;
        };
        let pos = self
            .deliveries
            .iter()
            .rposition(|d| matches!(d, Delivery::Join { member_id: m, .. } if m == member_id));
        match pos.map(|p| self.deliveries.remove(p)) {
            Some(Delivery::Join { result, .. }) => Answer::Done(result),
            _ => answer,
        }
    }

    fn join_unknown_member(&mut self, req: JoinRequest, now_ms: u64) -> Answer<Joined> {
        let members_max = self.config.members_max;
        let new_id = self.new_member_id(&req.client_id);
        let group = self
            .groups
            .get_mut(&req.group_id)
            .expect("group created by join_group");
        if group.members.len() + group.pending_members.len() >= members_max {
            let replaces_static = req
                .group_instance_id
                .as_ref()
                .is_some_and(|i| group.static_members.contains_key(i));
            if !replaces_static {
                return Answer::Done(Err(GroupError::GroupMaxSizeReached));
            }
        }
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&instance).cloned() {
                return self.replace_static_member(req, old_id, new_id, now_ms);
            }
            return self.add_member_and_rebalance(req, new_id, now_ms);
        }
        if req.require_known_member_id {
            let expiry = now_ms + session_ms(req.session_timeout_ms);
            group.pending_members.insert(new_id.clone(), expiry);
            return Answer::Done(Err(GroupError::MemberIdRequired(new_id)));
        }
        self.add_member_and_rebalance(req, new_id, now_ms)
    }

    /// KIP-345: a static member rejoining with a new member id takes the old one's place;
    /// a stable group keeps its assignment and does not rebalance.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        now_ms: u64,
    ) -> Answer<Joined> {
        let group_id = req.group_id.clone();
        let group = self.groups.get_mut(&group_id).expect("group exists");
        let Some(mut member) = group.members.remove(&old_id) else {
            return self.add_member_and_rebalance(req, new_id, now_ms);
        };
        let mut fenced = Vec::new();
        if member.awaiting_join {
            fenced.push(Delivery::Join {
                group_id: group_id.clone(),
                member_id: old_id.clone(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        if member.awaiting_sync {
            fenced.push(Delivery::Sync {
                group_id: group_id.clone(),
                member_id: old_id.clone(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        let protocols_changed = !member.same_protocols(&req.protocols);
        member.awaiting_join = false;
        member.awaiting_sync = false;
        member.last_heartbeat_ms = now_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        let previous_leader = group.leader.clone().unwrap_or_default();
        let was_leader = previous_leader == old_id;
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        group.static_members.insert(
            req.group_instance_id.clone().expect("static join"),
            new_id.clone(),
        );
        group.members.insert(new_id.clone(), member);
        self.deliveries.extend(fenced);
        let group = self.groups.get_mut(&group_id).expect("group exists");
        if group.state == GroupState::Stable && !protocols_changed {
            // As Kafka: a leader that can skip the assignment (v9+) learns it leads and gets
            // the members; older clients are named the previous leader id, which is not
            // theirs, so that a rejoining leader does not assign (a stable group would not
            // pass a new assignment on) and simply syncs for its current one.
            self.writes.push(GroupWrite::Metadata {
                group_id: group_id.clone(),
                value: group.metadata_value(now_ms),
            });
            let skip_assignment = was_leader && req.supports_skip_assignment;
            let mut joined = current_join(group, &new_id);
            if !skip_assignment {
                joined.leader = previous_leader;
                joined.members = Vec::new();
            }
            joined.skip_assignment = skip_assignment;
            return Answer::Done(Ok(joined));
        }
        let m = group.members.get_mut(&new_id).expect("just inserted");
        m.protocols = req.protocols;
        m.awaiting_join = true;
        self.prepare_rebalance(&group_id, now_ms);
        Answer::Pending { member_id: new_id }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        now_ms: u64,
    ) -> Answer<Joined> {
        let group_id = req.group_id.clone();
        let group = self.groups.get_mut(&group_id).expect("group exists");
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        group.pending_members.remove(&member_id);
        let member = Member {
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            awaiting_join: true,
            awaiting_sync: false,
        };
        if group.leader.is_none() {
            group.leader = Some(member_id.clone());
        }
        let rebalance_ms = session_ms(member.rebalance_timeout_ms);
        group.members.insert(member_id.clone(), member);
        if group.state == GroupState::PreparingRebalance {
            // A new member of a group still in its initial delay extends the delay.
            if let (Some(until), Some(deadline)) =
                (group.initial_delay_until_ms, group.rebalance_deadline_ms)
            {
                let extended = now_ms + self.config.initial_rebalance_delay_ms;
                group.initial_delay_until_ms = Some(extended.min(deadline).max(until));
            }
            let deadline = now_ms + rebalance_ms;
            if group.rebalance_deadline_ms.is_none_or(|d| d < deadline) {
                group.rebalance_deadline_ms = Some(deadline);
            }
        } else {
            self.prepare_rebalance(&group_id, now_ms);
        }
        Answer::Pending { member_id }
    }

    fn join_known_member(&mut self, req: JoinRequest, now_ms: u64) -> Answer<Joined> {
        let group_id = req.group_id.clone();
        let group = self.groups.get_mut(&group_id).expect("group exists");
        if group.pending_members.contains_key(&req.member_id) {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(req, id, now_ms);
        }
        if let Err(e) = check_member(group, &req.member_id, req.group_instance_id.as_deref()) {
            return Answer::Done(Err(e));
        }
        if matches!(group.state, GroupState::Empty | GroupState::Dead) {
            return Answer::Done(Err(GroupError::UnknownMemberId));
        }
        let member_id = req.member_id.clone();
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let member = group.members.get_mut(&member_id).expect("checked");
        member.last_heartbeat_ms = now_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        let same = member.same_protocols(&req.protocols);
        if member.awaiting_join {
            // The member asked again before the join phase ended: the older request
            // is answered so that only the newest waits.
            self.deliveries.push(Delivery::Join {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                result: Err(GroupError::RebalanceInProgress),
            });
        }
        let group = self.groups.get_mut(&group_id).expect("group exists");
        let member = group.members.get_mut(&member_id).expect("checked");
        match group.state {
            GroupState::PreparingRebalance => {
                member.protocols = req.protocols;
                member.awaiting_join = true;
                Answer::Pending { member_id }
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if same && !(group.state == GroupState::Stable && is_leader) =>
            {
                // Nothing changed: the member lost our answer; give it again.
                Answer::Done(Ok(current_join(group, &member_id)))
            }
            _ => {
                member.protocols = req.protocols;
                member.awaiting_join = true;
                self.prepare_rebalance(&group_id, now_ms);
                Answer::Pending { member_id }
            }
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: u64) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("group exists");
        // A store still in flight now completes into a group that moved on: ignored.
        group.storing_generation = None;
        group.clear_pending_sync();
        if group.state == GroupState::CompletingRebalance {
            for (id, m) in group.members.iter_mut() {
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    self.deliveries.push(Delivery::Sync {
                        group_id: group_id.to_string(),
                        member_id: id.clone(),
                        result: Err(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        let deadline = now_ms + group.rebalance_timeout_ms();
        group.initial_delay_until_ms = if group.state == GroupState::Empty && delay_ms > 0 {
            Some((now_ms + delay_ms).min(deadline))
        } else {
            None
        };
        group.state = GroupState::PreparingRebalance;
        group.rebalance_deadline_ms = Some(deadline);
    }

    /// Ends the join phase when every member has joined (and any initial delay is over),
    /// or at the rebalance deadline. As in Kafka's onCompleteJoin, the dynamic members
    /// that did not rejoin are removed, while static members stay in the new generation
    /// with their last metadata: they are expected to rejoin with their member id, or to
    /// leave by session timeout or pending sync expiry. The leader must be a member that
    /// rejoined; if only static members that did not rejoin are left, nobody can lead and
    /// the join phase waits another rebalance timeout.
    fn check_join_complete(&mut self, group_id: &str, now_ms: u64) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let deadline_passed = group.rebalance_deadline_ms.is_some_and(|d| now_ms >= d);
        let delay_over = group.initial_delay_until_ms.is_none_or(|d| now_ms >= d);
        let ready = deadline_passed || (group.all_joined() && delay_over);
        if !ready {
            return;
        }
        let gone: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            remove_member(group, &id);
        }
        if !group.elect_joined_leader() {
            group.initial_delay_until_ms = None;
            group.rebalance_deadline_ms = Some(now_ms + group.rebalance_timeout_ms());
            return;
        }
        group.pending_members.clear();
        group.clear_pending_sync();
        group.generation_id += 1;
        group.initial_delay_until_ms = None;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.empty_since_ms = Some(now_ms);
            group.protocol_name = None;
            group.rebalance_deadline_ms = None;
            self.writes.push(GroupWrite::Metadata {
                group_id: group_id.to_string(),
                value: group.metadata_value(now_ms),
            });
            return;
        }
        group.protocol_name = group.select_protocol();
        group.state = GroupState::CompletingRebalance;
        group.rebalance_deadline_ms = None;
        // Every member now owes a SyncGroup for this generation; whoever has not sent
        // it within the rebalance timeout is removed (Kafka's schedulePendingSync).
        group.pending_sync = group.members.keys().cloned().collect();
        group.sync_expiry = Some(SyncExpiry {
            generation_id: group.generation_id,
            deadline_ms: now_ms + group.rebalance_timeout_ms(),
        });
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = group
            .members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        // As Kafka, every member's session starts again here, a static member that did
        // not rejoin too: it has that long to come back before it expires. Only the
        // members that rejoined wait for an answer.
        for (id, m) in group.members.iter_mut() {
            m.last_heartbeat_ms = now_ms;
            if !std::mem::replace(&mut m.awaiting_join, false) {
                continue;
            }
            self.deliveries.push(Delivery::Join {
                group_id: group_id.to_string(),
                member_id: id.clone(),
                result: Ok(Joined {
                    generation_id: group.generation_id,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }),
            });
        }
    }

    pub fn sync_group(&mut self, req: SyncRequest, now_ms: u64) -> Answer<Synced> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Answer::Done(Err(GroupError::UnknownMemberId));
        };
        if group.state == GroupState::Dead {
            return Answer::Done(Err(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = check_member(group, &req.member_id, req.group_instance_id.as_deref()) {
            return Answer::Done(Err(e));
        }
        if req.generation_id != group.generation_id {
            return Answer::Done(Err(GroupError::IllegalGeneration));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_ref() != Some(n));
        if type_mismatch || name_mismatch {
            return Answer::Done(Err(GroupError::InconsistentGroupProtocol));
        }
        let synced = |group: &Group, assignment: Bytes| Synced {
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            assignment,
        };
        match group.state {
            GroupState::Empty | GroupState::Dead => Answer::Done(Err(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => Answer::Done(Err(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                group.sync_received(&req.member_id);
                let m = group.members.get_mut(&req.member_id).expect("checked");
                m.last_heartbeat_ms = now_ms;
                let a = m.assignment.clone();
                Answer::Done(Ok(synced(group, a)))
            }
            GroupState::CompletingRebalance => {
                group.sync_received(&req.member_id);
                let m = group.members.get_mut(&req.member_id).expect("checked");
                m.last_heartbeat_ms = now_ms;
                m.awaiting_sync = true;
                let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
                // A leader asking again while its assignment is being stored waits for
                // that store, like any member: the first assignment stands.
                if !is_leader || group.storing_assignment() {
                    return Answer::Pending {
                        member_id: req.member_id,
                    };
                }
                let bytes_max = self.config.member_metadata_bytes_max;
                let mut given: HashMap<String, Bytes> = HashMap::new();
                for (id, a) in req.assignments {
                    if a.len() <= bytes_max && group.members.contains_key(&id) {
                        given.insert(id, a);
                    }
                }
                for (id, m) in group.members.iter_mut() {
                    m.assignment = given.remove(id).unwrap_or_default();
                }
                group.storing_generation = Some(group.generation_id);
                self.writes.push(GroupWrite::Assignment {
                    group_id: req.group_id.clone(),
                    generation_id: group.generation_id,
                    value: group.metadata_value(now_ms),
                });
                Answer::Pending {
                    member_id: req.member_id,
                }
            }
        }
    }

    /// The outcome of storing a `GroupWrite::Assignment`, with the error already as Kafka
    /// reports a failed group store. Does nothing unless the group is still
    /// CompletingRebalance in `generation_id` with that store in flight. Success: the
    /// group becomes Stable and every member waiting in SyncGroup gets its assignment.
    /// Failure: every waiting member gets the error, the assignments are dropped and the
    /// group prepares a rebalance.
    pub fn sync_stored(
        &mut self,
        group_id: &str,
        generation_id: i32,
        stored: Result<(), GroupError>,
        now_ms: u64,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if !group.storing_assignment() || group.generation_id != generation_id {
            return;
        }
        group.storing_generation = None;
        let failed = stored.is_err();
        for (id, m) in group.members.iter_mut() {
            if failed {
                m.assignment = Bytes::new();
            }
            if !m.awaiting_sync {
                continue;
            }
            m.awaiting_sync = false;
            let result = stored.clone().map(|()| Synced {
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                assignment: m.assignment.clone(),
            });
            self.deliveries.push(Delivery::Sync {
                group_id: group_id.to_string(),
                member_id: id.clone(),
                result,
            });
        }
        if failed {
            self.prepare_rebalance(group_id, now_ms);
        } else {
            group.state = GroupState::Stable;
            group.rebalance_deadline_ms = None;
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        check_member(group, member_id, group_instance_id)?;
        if group.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let m = group.members.get_mut(member_id).expect("checked");
        m.last_heartbeat_ms = now_ms;
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: one result per leaving member, or a group-level error.
    pub fn leave_group(
        &mut self,
        group_id: &str,
        leaving: &[LeavingMember],
        now_ms: u64,
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for l in leaving {
            let member_id = if l.member_id.is_empty() {
                match l
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| group.static_members.get(i))
                {
                    Some(id) => id.clone(),
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                }
            } else {
                l.member_id.clone()
            };
            if group.pending_members.remove(&member_id).is_some() {
                results.push(Ok(member_id));
                continue;
            }
            if let Err(e) = check_member(group, &member_id, l.group_instance_id.as_deref()) {
                results.push(Err(e));
                continue;
            }
            let m = remove_member(group, &member_id);
            if m.awaiting_join {
                self.deliveries.push(Delivery::Join {
                    group_id: group_id.to_string(),
                    member_id: member_id.clone(),
                    result: Err(GroupError::UnknownMemberId),
                });
            }
            if m.awaiting_sync {
                self.deliveries.push(Delivery::Sync {
                    group_id: group_id.to_string(),
                    member_id: member_id.clone(),
                    result: Err(GroupError::UnknownMemberId),
                });
            }
            removed_any = true;
            results.push(Ok(member_id));
        }
        if removed_any {
            self.members_changed(group_id, now_ms);
        }
        Ok(results)
    }

    fn members_changed(&mut self, group_id: &str, now_ms: u64) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if group.members.is_empty() {
                    group.clear_pending_sync();
                    group.state = GroupState::PreparingRebalance;
                    group.rebalance_deadline_ms = Some(now_ms);
                } else {
                    self.prepare_rebalance(group_id, now_ms);
                }
            }
            _ => {}
        }
        self.check_join_complete(group_id, now_ms);
    }

    /// Expires sessions, pending member ids, rebalance deadlines and pending syncs due at
    /// `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let group = self.groups.get_mut(&group_id).expect("listed");
            group.pending_members.retain(|_, expiry| *expiry > now_ms);
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.session_expired(now_ms))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                remove_member(group, id);
            }
            let sync_expired = group.expire_pending_sync(now_ms);
            if sync_expired || !expired.is_empty() {
                self.members_changed(&group_id, now_ms);
            } else {
                self.check_join_complete(&group_id, now_ms);
            }
            let retention_ms = self.config.offsets_retention_ms;
            let group = self.groups.get_mut(&group_id).expect("listed");
            if group.state == GroupState::Empty {
                let empty_since = group.empty_since_ms.unwrap_or(0);
                let expired: Vec<(String, i32)> = group
                    .offsets
                    .iter()
                    .filter(|(_, o)| {
                        now_ms >= o.commit_timestamp_ms.max(empty_since) + retention_ms
                    })
                    .map(|(tp, _)| tp.clone())
                    .collect();
                if !expired.is_empty() {
                    for tp in &expired {
                        group.offsets.remove(tp);
                        group.offset_positions.remove(tp);
                    }
                    self.writes.push(GroupWrite::OffsetsRemoved {
                        group_id: group_id.clone(),
                        partitions: expired,
                    });
                }
            }
            self.remove_if_unused_after_cleanup_interval(&group_id, now_ms);
        }
    }

    /// When `tick` must run next, if anything is waiting on time.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for g in self.groups.values() {
            g.pending_members.values().for_each(|&t| consider(t + 1));
            if let Some(d) = g.rebalance_deadline_ms {
                consider(d);
            }
            if let Some(d) = g.initial_delay_until_ms {
                consider(d);
            }
            if let Some(d) = g.sync_expiry_ms() {
                consider(d);
            }
            if g.state == GroupState::Empty
                && g.members.is_empty()
                && g.offsets.is_empty()
                && let Some(t) = g.empty_since_ms
            {
                consider(t.saturating_add(self.config.offsets_retention_check_interval_ms));
            }
            if g.state == GroupState::Empty {
                let empty_since = g.empty_since_ms.unwrap_or(0);
                let retention_ms = self.config.offsets_retention_ms;
                g.offsets
                    .values()
                    .for_each(|o| consider(o.commit_timestamp_ms.max(empty_since) + retention_ms));
            }
            for m in g.members.values() {
                if !(m.awaiting_join || m.awaiting_sync) {
                    consider(m.last_heartbeat_ms + session_ms(m.session_timeout_ms));
                }
            }
        }
        next
    }

    /// `remove_if_unused` for a group that has been empty for the cleanup interval (or
    /// never had a member), as Kafka's periodic cleanup removes it: until then a group
    /// whose members left or expired stays Empty, and DeleteGroups finds it.
    fn remove_if_unused_after_cleanup_interval(&mut self, group_id: &str, now_ms: u64) {
        let interval_ms = self.config.offsets_retention_check_interval_ms;
        let due = self.groups.get(group_id).is_some_and(|g| {
            g.empty_since_ms
                .is_none_or(|t| now_ms >= t.saturating_add(interval_ms))
        });
        if due {
            self.remove_if_unused(group_id);
        }
    }

    /// A group with no members, no pending ids and no offsets is forgotten; one that was
    /// ever stored (generation above 0) leaves a tombstone.
    fn remove_if_unused(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get(group_id)
            && g.state == GroupState::Empty
            && g.members.is_empty()
            && g.pending_members.is_empty()
            && g.offsets.is_empty()
        {
            if g.generation_id > 0 {
                self.writes.push(GroupWrite::GroupRemoved {
                    group_id: group_id.to_string(),
                });
            }
            self.groups.remove(group_id);
        }
    }

    /// Checks whether `who` may commit now. A group without members accepts commits
    /// from outside group management (generation -1).
    pub fn check_commit(&mut self, who: &CommitIdentity) -> Result<(), GroupError> {
        if who.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let Some(group) = self.groups.get(&who.group_id) else {
            return if who.generation_id < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        match group.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty if who.generation_id < 0 => return Ok(()),
            _ => {}
        }
        if who.generation_id < 0 && who.member_id.is_empty() && group.members.is_empty() {
            return Ok(());
        }
        check_member(group, &who.member_id, who.group_instance_id.as_deref())?;
        if group.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if who.generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// OffsetCommit applied at once (no log): `prepare_commit` then `materialize_commit`.
    pub fn commit_offsets(
        &mut self,
        who: &CommitIdentity,
        offsets: Vec<((String, i32), CommittedOffset)>,
        now_ms: u64,
    ) -> Result<PartitionResults, GroupError> {
        let prepared = self.prepare_commit(who, offsets, now_ms)?;
        let accepted = prepared
            .accepted
            .into_iter()
            .map(|(tp, o)| (tp, o, None))
            .collect();
        self.materialize_commit(&who.group_id, accepted);
        Ok(prepared.results)
    }

    /// OffsetCommit, first step: checks `who` and each partition, counts as a heartbeat,
    /// stamps the commit time. Nothing is stored yet.
    pub fn prepare_commit(
        &mut self,
        who: &CommitIdentity,
        offsets: Vec<((String, i32), CommittedOffset)>,
        now_ms: u64,
    ) -> Result<PreparedCommit, GroupError> {
        self.check_commit(who)?;
        let bytes_max = self.config.offset_metadata_bytes_max;
        if let Some(m) = self
            .groups
            .get_mut(&who.group_id)
            .and_then(|g| g.members.get_mut(&who.member_id))
        {
            m.last_heartbeat_ms = now_ms;
        }
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::with_capacity(offsets.len());
        for (tp, mut o) in offsets {
            if o.metadata.as_ref().is_some_and(|m| m.len() > bytes_max) {
                results.push((tp, Err(GroupError::OffsetMetadataTooLarge)));
                continue;
            }
            o.commit_timestamp_ms = now_ms;
            accepted.push((tp.clone(), o));
            results.push((tp, Ok(())));
        }
        Ok(PreparedCommit { results, accepted })
    }

    /// OffsetCommit, second step, once the records are in the log: each offset with the
    /// log offset of its record (`None` when there is no log). An offset whose stored
    /// record is newer than the given one is left alone.
    pub fn materialize_commit(
        &mut self,
        group_id: &str,
        offsets: Vec<((String, i32), CommittedOffset, Option<i64>)>,
    ) {
        let group = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(Group::new);
        for (tp, o, position) in offsets {
            store_offset(group, tp, o, position);
        }
    }

    /// Rebuild: one offset commit record (`None` is a tombstone) at log offset `position`.
    pub fn load_offset(
        &mut self,
        group_id: &str,
        tp: (String, i32),
        value: Option<CommittedOffset>,
        position: i64,
    ) {
        match value {
            Some(o) => {
                let group = self
                    .groups
                    .entry(group_id.to_string())
                    .or_insert_with(Group::new);
                store_offset(group, tp, o, Some(position));
            }
            None => {
                if let Some(g) = self.groups.get_mut(group_id) {
                    g.offsets.remove(&tp);
                    g.offset_positions.remove(&tp);
                    if g.offsets.is_empty() && g.generation_id == 0 {
                        self.groups.remove(group_id);
                    }
                }
            }
        }
    }

    /// Rebuild: one group metadata record (`None` is a tombstone). A group with members
    /// comes back Stable with its assignment, and every member's session starts at
    /// `now_ms`: members that do not heartbeat in time expire, as after a coordinator
    /// failover in Kafka. A group without members comes back Empty.
    pub fn load_group(&mut self, group_id: &str, value: Option<GroupMetadataValue>, now_ms: u64) {
        let old = self.groups.remove(group_id);
        let (offsets, offset_positions) = old
            .map(|g| (g.offsets, g.offset_positions))
            .unwrap_or_default();
        let Some(v) = value else {
            if !offsets.is_empty() {
                let mut g = Group::new();
                g.offsets = offsets;
                g.offset_positions = offset_positions;
                self.groups.insert(group_id.to_string(), g);
            }
            return;
        };
        let mut g = Group::new();
        g.offsets = offsets;
        g.offset_positions = offset_positions;
        g.generation_id = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        let protocol = v.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id,
                Member {
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    last_heartbeat_ms: now_ms,
                    awaiting_join: false,
                    awaiting_sync: false,
                },
            );
        }
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.empty_since_ms = u64::try_from(v.current_state_timestamp_ms).ok();
        } else {
            g.state = GroupState::Stable;
            g.protocol_name = v.protocol;
            g.leader = v
                .leader
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
        }
        self.groups.insert(group_id.to_string(), g);
    }

    /// The committed offset of one partition, if any.
    pub fn committed(&self, group_id: &str, tp: &(String, i32)) -> Option<&CommittedOffset> {
        self.groups.get(group_id)?.offsets.get(tp)
    }

    /// Every committed offset of a group, in topic-partition order.
    pub fn all_committed(&self, group_id: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.groups
            .get(group_id)
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn describe(&self, group_id: &str) -> GroupSummary {
        let Some(g) = self.groups.get(group_id) else {
            return GroupSummary {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberSummary {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// (group id, protocol type, state) of every group, optionally only in `states`.
    pub fn list(&self, states: &[String]) -> Vec<(String, String, GroupState)> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.kafka_name()))
            })
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        out.sort();
        out
    }

    /// DeleteGroups for one group: only a group without members may go.
    pub fn delete_group(&mut self, group_id: &str) -> Result<(), GroupError> {
        let g = self
            .groups
            .get(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        if g.state != GroupState::Empty || !g.members.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        let partitions: Vec<(String, i32)> = g.offsets.keys().cloned().collect();
        if !partitions.is_empty() {
            self.writes.push(GroupWrite::OffsetsRemoved {
                group_id: group_id.to_string(),
                partitions,
            });
        }
        self.writes.push(GroupWrite::GroupRemoved {
            group_id: group_id.to_string(),
        });
        self.groups.remove(group_id);
        Ok(())
    }

    /// Topics were deleted: every group forgets its committed offsets of their
    /// partitions (tombstones follow), as Kafka's coordinator does for deleted
    /// partitions, and a group left empty without offsets is removed.
    pub fn topics_deleted(&mut self, topics: &[String]) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in ids {
            let g = self.groups.get_mut(&group_id).expect("listed");
            let removed: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| topics.contains(t))
                .cloned()
                .collect();
            if removed.is_empty() {
                continue;
            }
            for tp in &removed {
                g.offsets.remove(tp);
                g.offset_positions.remove(tp);
            }
            self.writes.push(GroupWrite::OffsetsRemoved {
                group_id: group_id.clone(),
                partitions: removed,
            });
            self.remove_if_unused(&group_id);
        }
    }

    /// OffsetDelete: removes committed offsets of partitions whose topic no member is
    /// subscribed to. `subscribed(metadata)` decodes a member's subscription; it returns
    /// `None` when the metadata cannot be read, and then every topic counts as subscribed.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        subscribed: impl Fn(&Bytes) -> Option<Vec<String>>,
    ) -> Result<PartitionResults, GroupError> {
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let mut topics: Option<Vec<String>> = Some(Vec::new());
        if g.state != GroupState::Empty {
            for m in g.members.values() {
                match (topics.as_mut(), subscribed(&m.metadata_for(&protocol))) {
                    (Some(t), Some(s)) => t.extend(s),
                    _ => topics = None,
                }
            }
        }
        let mut out = Vec::with_capacity(partitions.len());
        let mut removed = Vec::new();
        for tp in partitions {
            let in_use = topics.as_ref().is_none_or(|t| t.contains(&tp.0));
            if in_use {
                out.push((tp.clone(), Err(GroupError::GroupSubscribedToTopic)));
            } else {
                if g.offsets.remove(tp).is_some() {
                    removed.push(tp.clone());
                }
                g.offset_positions.remove(tp);
                out.push((tp.clone(), Ok(())));
            }
        }
        if !removed.is_empty() {
            self.writes.push(GroupWrite::OffsetsRemoved {
                group_id: group_id.to_string(),
                partitions: removed,
            });
        }
        self.remove_if_unused(group_id);
        Ok(out)
    }
}

/// The member must exist, and a static member must present its current member id.
fn check_member(
    group: &Group,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), GroupError> {
    if let Some(instance) = group_instance_id {
        match group.static_members.get(instance) {
            Some(current) if current == member_id => {}
            Some(_) => return Err(GroupError::FencedInstanceId),
            None => return Err(GroupError::UnknownMemberId),
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    Ok(())
}

/// Stores a committed offset unless the stored one came from a later log record.
fn store_offset(group: &mut Group, tp: (String, i32), o: CommittedOffset, position: Option<i64>) {
    match position {
        Some(p) => {
            if group
                .offset_positions
                .get(&tp)
                .is_some_and(|have| *have > p)
            {
                return;
            }
            group.offset_positions.insert(tp.clone(), p);
        }
        None => {
            group.offset_positions.remove(&tp);
        }
    }
    group.offsets.insert(tp, o);
}

fn remove_member(group: &mut Group, member_id: &str) -> Member {
    let m = group
        .members
        .remove(member_id)
        .expect("member to remove exists");
    group.pending_sync.remove(member_id);
    if let Some(i) = &m.group_instance_id
        && group.static_members.get(i).map(String::as_str) == Some(member_id)
    {
        group.static_members.remove(i);
    }
    if group.leader.as_deref() == Some(member_id) {
        group.leader = group.members.keys().next().cloned();
    }
    m
}

/// The JoinGroup answer for the current generation, for a member that asks again.
fn current_join(group: &Group, member_id: &str) -> Joined {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        group
            .members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    Joined {
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader,
        member_id: member_id.to_string(),
        members,
        skip_assignment: false,
    }
}

#[cfg(test)]
mod tests;
