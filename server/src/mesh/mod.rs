//! Every cross-core operation, as one typed enum sent over glommio's channel mesh. Each
//! variant carries its own reply handle (a cross-core oneshot) and says what happens when
//! it is dropped. A shard never shares its state; it answers these messages
//! (`inbox.rs`). If a message is dropped (the destination is shutting down or busy), the
//! reply handle is dropped with it and the asking side sees a `CallError`, which handlers
//! turn into a retriable Kafka error. `scatter.rs` splits one client request over the
//! owning shards and joins the replies.
//!
//! Bounded work. Messages travel in two lanes, each a channel mesh of its own plus a
//! local queue for messages a shard sends itself:
//! - The data lane (`Lane::Data`: Produce, Fetch, ListOffsets, EpochEnd, DeleteRecords,
//!   Group) carries client work. Its inbox is bounded (`DATA_INBOX_CAPACITY` per peer)
//!   and the receiving shard runs at most `DATA_HANDLERS_MAX` data handlers at once; past
//!   that it stops taking messages, its inbox fills, and a sender gets the message back
//!   (`try_send_to`), waits at most `DATA_SEND_WAIT_MAX` for room and otherwise fails the
//!   call with `CallError::Busy` (a retriable error for the client). At most
//!   `LONG_POLLS_MAX` fetches per shard wait for data; beyond that a fetch answers at
//!   once with what it has, as with max_wait_ms 0.
//! - The control lane (`Lane::Control`: the controller's metadata operations, table
//!   updates, offline marks, shutdown, connection admission) is always received and each
//!   message handled at once. Its population is bounded by its senders: the controller
//!   runs one metadata operation at a time and asks shards one after another, and every
//!   other control message is sent once per admin request, connection or offline
//!   partition.
//!
//! Why this cannot deadlock: the controller's operations run on shard 0 in a control
//! handler and wait only for control replies (OpenPartitions, ClosePartitions,
//! SetConfig, TableUpdate, PartitionOffline), and every shard serves control messages
//! whatever its data lane holds, so a shard full of produces and waiting fetches still
//! answers them; a handler on any shard that asks shard 0 (CreateTopics from a Produce's
//! auto-create, AllocateProducerId) holds no data permit of shard 0 while it waits. Data
//! handlers never ask another shard, so they finish on their own (an append, a fetch
//! deadline of at most 30 s, a group's rebalance timeout), and a data send that finds
//! the inbox full gives up after a bound instead of waiting on a cycle of full inboxes.
//! The one data message the controller sends (DeleteTopics' `TopicsDeleted` notice to
//! each coordinator) is thus bounded too: it waits behind client work that finishes on
//! its own, or fails as busy and is logged.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::oneshot::{self, SharedSender};
use glommio::{GlommioError, ResourceType};
use sluice_engine::record::RecordRejection;
use sluice_engine::{AppendError, DeleteRecordsError, FlushError, LeaderEpoch, Offset, ReadError};

use crate::foreign_wake::Relayed;
use crate::topic_table::{PARTITIONS_MAX, ShardId, TopicPartition, TopicTable};

pub mod group;
pub mod inbox;
pub mod scatter;

/// Capacity of each data-lane channel (per sending peer, and the local queue).
pub const DATA_INBOX_CAPACITY: usize = 1024;
/// Capacity of each control-lane channel; its receivers never stop taking messages.
pub const CONTROL_INBOX_CAPACITY: usize = 256;
/// Data handlers one shard runs at once; beyond it the data inboxes fill.
pub const DATA_HANDLERS_MAX: usize = 4096;
/// Fetches one shard lets wait for data at once; beyond it a fetch answers at once.
pub const LONG_POLLS_MAX: usize = 1024;
/// How long a data send waits for room in a full inbox before the call fails as busy.
pub const DATA_SEND_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// Which channels a message travels on (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Data,
    Control,
}

pub type Reply<T> = SharedSender<T>;

/// A cross-core call that got no answer.
#[derive(Clone, Copy, Debug, thiserror::Error)]
pub enum CallError {
    #[error("shard {0:?} is not reachable")]
    Unreachable(ShardId),
    #[error("shard {0:?} dropped the request")]
    Dropped(ShardId),
    #[error("shard {0:?} is busy: its inbox stayed full")]
    Busy(ShardId),
}

/// The reply to a request already enqueued by `Outbox::send`.
pub struct PendingReply<T: Send> {
    rx: oneshot::SharedReceiver<T>,
    from: ShardId,
}

impl<T: Send> PendingReply<T> {
    pub async fn wait(self) -> Result<T, CallError> {
        // Relayed: the replying shard must never drop this task's waker (see foreign_wake).
        Relayed::new(self.rx)
            .await
            .map_err(|_| CallError::Dropped(self.from))
    }
}

/// One shard's sending side: per lane, a channel to every other shard and a queue to
/// itself, so a request to the local shard goes through the same inbox as one from a peer.
/// A data request to itself skips the queue when nothing waits in it and a handler is
/// free (`LocalServe`): one task switch instead of two on the single-shard hot path, in
/// the same order, under the same bound.
pub struct Outbox {
    id: ShardId,
    data: Senders<ShardRequest>,
    control: Senders<ShardRequest>,
    local_data: LocalSender<ShardRequest>,
    local_control: LocalSender<ShardRequest>,
    local_serve: std::cell::OnceCell<Box<dyn LocalServe>>,
}

/// This shard's own inbox, as its outbox sees it.
pub trait LocalServe {
    /// Starts a handler for `req` at once if a data handler permit is free, else hands
    /// `req` back (also once the inbox is gone).
    // The request comes back by value, as glommio's channels hand back a message that
    // found its inbox full; boxing it would cost an allocation on every local send.
    #[allow(clippy::result_large_err)]
    fn try_serve_now(&self, req: ShardRequest) -> Result<(), ShardRequest>;
}

/// The receiving ends a shard's `Outbox` pairs with, one set per lane.
pub struct InboxReceivers {
    pub data: Receivers<ShardRequest>,
    pub control: Receivers<ShardRequest>,
    pub local_data: LocalReceiver<ShardRequest>,
    pub local_control: LocalReceiver<ShardRequest>,
}

/// Joins this shard to both lanes' meshes; every shard calls it in the same order.
pub async fn join(
    id: ShardId,
    data: MeshBuilder<ShardRequest, Full>,
    control: MeshBuilder<ShardRequest, Full>,
) -> Result<(Outbox, InboxReceivers), String> {
    let (data, data_rx) = data.join().await.map_err(|e| e.to_string())?;
    let (control, control_rx) = control.join().await.map_err(|e| e.to_string())?;
    let (local_data, local_data_rx) = local_channel::new_bounded(DATA_INBOX_CAPACITY);
    let (local_control, local_control_rx) = local_channel::new_bounded(CONTROL_INBOX_CAPACITY);
    let outbox = Outbox {
        id,
        data,
        control,
        local_data,
        local_control,
        local_serve: std::cell::OnceCell::new(),
    };
    let receivers = InboxReceivers {
        data: data_rx,
        control: control_rx,
        local_data: local_data_rx,
        local_control: local_control_rx,
    };
    Ok((outbox, receivers))
}

/// The two meshes of a process with `shards` shards.
pub fn meshes(
    shards: usize,
) -> (
    MeshBuilder<ShardRequest, Full>,
    MeshBuilder<ShardRequest, Full>,
) {
    (
        MeshBuilder::full(shards, DATA_INBOX_CAPACITY),
        MeshBuilder::full(shards, CONTROL_INBOX_CAPACITY),
    )
}

impl Outbox {
    /// Lets data requests to this shard skip its local queue (see `Outbox`). Set once, by
    /// the inbox when it starts.
    pub fn serve_locally_with(&self, inbox: Box<dyn LocalServe>) {
        assert!(
            self.local_serve.set(inbox).is_ok(),
            "the local inbox is set once"
        );
    }

    /// Sends a request to shard `to` (this shard included) and waits for its reply.
    pub async fn ask<T: Send + 'static>(
        &self,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, CallError> {
        self.send(to, make).await?.wait().await
    }

    /// Enqueues a request for shard `to` and returns the pending reply. Requests sent one
    /// after another from one task reach the destination's handlers in that order, and
    /// each handler starts in arrival order, which keeps pipelined produces ordered.
    pub async fn send<T: Send + 'static>(
        &self,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<PendingReply<T>, CallError> {
        let (tx, rx) = oneshot::shared::<T>();
        let req = make(tx);
        match req.lane() {
            Lane::Data => self.send_data(to, req).await?,
            Lane::Control => self.send_control(to, req).await?,
        }
        Ok(PendingReply { rx, from: to })
    }

    /// Control messages wait for room: their receivers never stop taking them.
    async fn send_control(&self, to: ShardId, req: ShardRequest) -> Result<(), CallError> {
        let sent = if to == self.id {
            self.local_control.send(req).await.is_ok()
        } else {
            self.control.send_to(to.index(), req).await.is_ok()
        };
        sent.then_some(()).ok_or(CallError::Unreachable(to))
    }

    /// A full data inbox hands the message back; it then waits at most
    /// `DATA_SEND_WAIT_MAX` for room, and the call fails as busy after that.
    async fn send_data(&self, to: ShardId, req: ShardRequest) -> Result<(), CallError> {
        let tried = if to == self.id {
            // Queued requests go first: skipping the queue only when it is empty keeps
            // the arrival order.
            let req = match self.local_serve.get() {
                Some(inbox) if self.local_data.len() == 0 => match inbox.try_serve_now(req) {
                    Ok(()) => return Ok(()),
                    Err(req) => req,
                },
                _ => req,
            };
            self.local_data.try_send(req)
        } else {
            self.data.try_send_to(to.index(), req)
        };
        let req = match tried {
            Ok(()) => return Ok(()),
            Err(GlommioError::WouldBlock(ResourceType::Channel(req))) => req,
            Err(_) => return Err(CallError::Unreachable(to)),
        };
        let wait = async {
            let sent = if to == self.id {
                self.local_data.send(req).await.is_ok()
            } else {
                self.data.send_to(to.index(), req).await.is_ok()
            };
            Some(sent)
        };
        let bound = async {
            glommio::timer::sleep(DATA_SEND_WAIT_MAX).await;
            None
        };
        match futures_lite::future::or(wait, bound).await {
            Some(true) => Ok(()),
            Some(false) => Err(CallError::Unreachable(to)),
            None => Err(CallError::Busy(to)),
        }
    }
}

/// What the client asked the Produce to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response at all.
    None,
    /// acks=1: after the leader's append.
    Leader,
    /// acks=all (-1): after the append is durable.
    All,
}

/// Why a partition's owner could not serve a request for it. Handlers choose the Kafka
/// error code (`kafka_errors::partition_error`); the text is the error message sent.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PartitionError {
    /// Not (or no longer) owned by the shard asked.
    #[error("{0} is not on this shard")]
    NotOwner(TopicPartition),
    /// Owned by the shard asked, but its log could not be opened.
    #[error("{tp} is offline: {why}")]
    Offline { tp: TopicPartition, why: String },
    /// Produce records that are not a sequence of whole record batches.
    #[error("records are not whole record batches")]
    NotWholeBatches,
    /// The client's leader epoch is newer than the partition's.
    #[error("leader epoch {0:?} is unknown")]
    UnknownLeaderEpoch(LeaderEpoch),
    /// A negative ListOffsets timestamp that names no special offset.
    #[error("timestamp {0} names no offset")]
    InvalidTimestamp(i64),
    /// A DeleteRecords offset outside [0, high watermark].
    #[error("offset {0:?} is outside the log")]
    OffsetOutOfRange(Offset),
    #[error(transparent)]
    Append(Arc<AppendError>),
    #[error(transparent)]
    Flush(FlushError),
    #[error(transparent)]
    Read(Arc<ReadError>),
    #[error(transparent)]
    DeleteRecords(Arc<DeleteRecordsError>),
    /// The owner could not be asked (the asking side fills this in).
    #[error(transparent)]
    Unreachable(CallError),
}

/// Why the controller could not hand out a producer id.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProducerIdError {
    /// Reserving the next block of ids (written and fsynced) failed.
    #[error("reserving a producer id block: {0}")]
    Reserve(String),
    #[error("producer id block empty after reserve")]
    EmptyAfterReserve,
}

/// Outcome of appending one partition's records.
#[derive(Clone, Debug, Default)]
pub struct ProducePartitionResult {
    pub error: Option<PartitionError>,
    pub base_offset: Offset,
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
    /// The records the topic refused (INVALID_RECORD), by index in their batch; sent
    /// from Produce v8 as `record_errors`.
    pub record_errors: Vec<RecordRejection>,
}

/// One partition of a Fetch, as the owning shard needs it.
#[derive(Clone, Debug)]
pub struct FetchPart {
    pub tp: TopicPartition,
    pub fetch_offset: Offset,
    pub partition_max_bytes: i32,
    /// The consumer's view of the leader epoch, -1 if unknown.
    pub current_leader_epoch: LeaderEpoch,
    /// A waiting fetch wakes once the high watermark is past this (the high watermark
    /// the previous read saw), so data already seen but too small for min_bytes does
    /// not wake it again.
    pub wait_past_offset: Offset,
}

/// What a shard read for one `FetchPart`.
#[derive(Clone, Debug, Default)]
pub struct FetchPartResult {
    pub error: Option<PartitionError>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub records: Option<Bytes>,
}

impl FetchPartResult {
    pub fn bytes(&self) -> usize {
        self.records.as_ref().map_or(0, |r| r.len())
    }
}

/// What ListOffsets found: the offset, with its record's timestamp and leader epoch (-1
/// each where Kafka answers -1: the earliest and latest offsets, or nothing found).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundOffset {
    pub timestamp_ms: i64,
    pub offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

/// Result of a ListOffsets lookup.
pub type ListOffsetResult = Result<FoundOffset, PartitionError>;

/// Where a leader epoch ends, as OffsetForLeaderEpoch answers: the largest epoch at or
/// below the one asked, and the offset after its last batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEnd {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}

/// Result of an OffsetForLeaderEpoch lookup.
pub type EpochEndResult = Result<EpochEnd, PartitionError>;

/// Result of a DeleteRecords on one partition: the new log start offset (Kafka's low
/// watermark).
pub type DeleteRecordsResult = Result<Offset, PartitionError>;

/// A topic to create, as shard 0 receives it.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// A per-topic outcome of an admin operation on the controller.
pub type TopicOutcome = Result<(), TopicError>;

/// Why the controller refused, or failed, one topic of an admin operation. Handlers choose
/// the Kafka error code (`kafka_errors::topic_error`); the text is the error message sent.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic named twice in one request")]
    NamedTwice,
    #[error("illegal topic name")]
    InvalidName,
    #[error("topic already exists")]
    AlreadyExists,
    #[error("partition count must be in 1..={PARTITIONS_MAX}")]
    PartitionCountOutOfRange,
    /// A config name or value the topic cannot take; the text says which.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("no such topic")]
    Unknown,
    /// Group coordinators live on it; deleting it would lose every commit.
    #[error("internal topic cannot be deleted")]
    InternalNotDeletable,
    /// Groups are hashed over its partition count; growing it would move them.
    #[error("the partition count of an internal topic cannot change")]
    InternalPartitionCountFixed,
    #[error("topic has {0} partitions; the count can only grow")]
    PartitionCountCannotShrink(i32),
    #[error("partition count must be at most {PARTITIONS_MAX}")]
    PartitionCountTooLarge,
    /// The topic metadata could not be written; the text is the store's error.
    #[error("{0}")]
    NotPersisted(String),
    /// A partition of the new topic could not be opened on its owner.
    #[error(transparent)]
    NotOpened(PartitionError),
}

/// One topic of CreatePartitions: grow `topic` to `count` partitions.
#[derive(Clone, Debug)]
pub struct PartitionGrowth {
    pub topic: String,
    pub count: i32,
}

/// One topic's config change for IncrementalAlterConfigs.
#[derive(Clone, Debug)]
pub struct ConfigChange {
    pub topic: String,
    pub ops: Vec<ConfigOp>,
}

/// One config override change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set {
        name: String,
        value: String,
    },
    /// Back to the broker default.
    Delete {
        name: String,
    },
}

pub enum ShardRequest {
    /// Append `records` to a partition this shard owns. Dropped: the producer gets a
    /// retriable error and resends.
    Produce {
        tp: TopicPartition,
        records: Bytes,
        acks: Acks,
        reply: Reply<ProducePartitionResult>,
    },
    /// Read partitions this shard owns. With `wait_until`, first wait until one of them has
    /// data past its fetch offset or the deadline passes. Dropped: the fetch answers empty.
    Fetch {
        parts: Vec<FetchPart>,
        wait_until: Option<Instant>,
        reply: Reply<Vec<FetchPartResult>>,
    },
    /// ListOffsets for one partition: -2 earliest, -1 latest, -3 max timestamp, else by time.
    /// Dropped: the client sees a retriable error and asks again.
    ListOffsets {
        tp: TopicPartition,
        timestamp: i64,
        reply: Reply<ListOffsetResult>,
    },
    /// OffsetForLeaderEpoch for one partition. Dropped: the client sees a retriable error.
    EpochEnd {
        tp: TopicPartition,
        leader_epoch: LeaderEpoch,
        reply: Reply<EpochEndResult>,
    },
    /// DeleteRecords for one partition: move its log start offset up to `offset` (-1: the
    /// high watermark). Dropped: the client sees a retriable error and asks again.
    DeleteRecords {
        tp: TopicPartition,
        /// `Offset(-1)` is the high watermark.
        offset: Offset,
        reply: Reply<DeleteRecordsResult>,
    },
    /// To shard 0: create topics (or only validate). Dropped: clients retry the admin call.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: delete topics by name. Dropped: the client sees a retriable error.
    DeleteTopics {
        names: Vec<String>,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: grow topics to `count` partitions each. Dropped: a retriable error.
    CreatePartitions {
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: change topic config overrides. Dropped: a retriable error.
    AlterConfigs {
        changes: Vec<ConfigChange>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: hand out a producer id that was never handed out before. Dropped:
    /// InitProducerId answers a retriable error.
    AllocateProducerId {
        reply: Reply<Result<i64, ProducerIdError>>,
    },
    /// To an owner: open (creating if needed) these partitions of a topic. Dropped: the
    /// controller reports the topic's partitions as not opened (KAFKA_STORAGE_ERROR).
    OpenPartitions {
        topic: Arc<str>,
        partitions: Vec<i32>,
        configs: BTreeMap<String, String>,
        reply: Reply<Result<(), PartitionError>>,
    },
    /// To an owner: close these partitions and, with `delete`, remove their files.
    /// Dropped (only while stopping): the logs are closed by the stop itself.
    ClosePartitions {
        topic: Arc<str>,
        partitions: Vec<i32>,
        delete: bool,
        reply: Reply<()>,
    },
    /// To an owner: apply new config overrides to the open partitions of a topic.
    /// Dropped (only while stopping): the stored configs apply at the next start.
    SetConfig {
        topic: Arc<str>,
        configs: BTreeMap<String, String>,
        reply: Reply<()>,
    },
    /// From shard 0 to all: replace the read-only topic table. Dropped (only while
    /// stopping): that shard keeps its old table until it stops.
    TableUpdate {
        table: Arc<TopicTable>,
        reply: Reply<()>,
    },
    /// To a group's coordinator shard (ListGroups and deleted topics: to every shard):
    /// one group operation with its own typed reply; each variant says what its drop
    /// means. JoinGroup and SyncGroup may wait for other members before replying.
    Group(group::GroupRequest),
    /// From a partition's owner to every shard: the partition went offline (its log could
    /// not be opened) or, with `offline: false`, is no longer offline. Metadata on any
    /// shard reports it. Dropped: that shard's Metadata answers without the mark.
    PartitionOffline {
        tp: TopicPartition,
        offline: bool,
        reply: Reply<()>,
    },
    /// From shard 0 to all: stop accepting, close every log cleanly, then exit. Dropped:
    /// shard 0 stops without waiting for that shard, which stops on the process flag.
    Shutdown { reply: Reply<()> },
    /// To shard 0, which counts every client connection: admit one more from `ip`, or
    /// refuse it over max.connections / max.connections.per.ip. Dropped: the connection
    /// is closed uncounted.
    AdmitConnection { ip: IpAddr, reply: Reply<Admission> },
    /// To shard 0: a connection it admitted from `ip` closed. Dropped (only while shutting
    /// down): the count stays one too high, which no longer matters.
    ReleaseConnection { ip: IpAddr, reply: Reply<()> },
}

impl ShardRequest {
    /// Client work travels on the data lane, everything that keeps shards consistent
    /// (and must not wait behind client work) on the control lane.
    pub fn lane(&self) -> Lane {
        match self {
            ShardRequest::Produce { .. }
            | ShardRequest::Fetch { .. }
            | ShardRequest::ListOffsets { .. }
            | ShardRequest::EpochEnd { .. }
            | ShardRequest::DeleteRecords { .. }
            | ShardRequest::Group(_) => Lane::Data,
            ShardRequest::CreateTopics { .. }
            | ShardRequest::DeleteTopics { .. }
            | ShardRequest::CreatePartitions { .. }
            | ShardRequest::AlterConfigs { .. }
            | ShardRequest::AllocateProducerId { .. }
            | ShardRequest::OpenPartitions { .. }
            | ShardRequest::ClosePartitions { .. }
            | ShardRequest::SetConfig { .. }
            | ShardRequest::TableUpdate { .. }
            | ShardRequest::PartitionOffline { .. }
            | ShardRequest::Shutdown { .. }
            | ShardRequest::AdmitConnection { .. }
            | ShardRequest::ReleaseConnection { .. } => Lane::Control,
        }
    }
}

/// Shard 0's answer to `AdmitConnection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The broker already has max.connections open.
    TooManyConnections,
    /// The client's address already has max.connections.per.ip open.
    TooManyConnectionsPerIp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_end(reply: Reply<EpochEndResult>) -> ShardRequest {
        ShardRequest::EpochEnd {
            tp: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            leader_epoch: LeaderEpoch(0),
            reply,
        }
    }

    // Proves backpressure on the data lane: with nobody taking messages, a full data
    // inbox hands the message back and the send fails as busy after DATA_SEND_WAIT_MAX
    // instead of waiting for ever, while the control lane still takes its messages.
    #[test]
    fn a_full_data_inbox_fails_the_send_as_busy() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let (data, control) = meshes(1);
            let (outbox, _receivers) = join(ShardId(0), data, control).await.expect("join");
            let mut queued = Vec::new();
            for _ in 0..DATA_INBOX_CAPACITY {
                queued.push(outbox.send(ShardId(0), epoch_end).await.expect("room"));
            }
            let started = Instant::now();
            let full = outbox.send(ShardId(0), epoch_end).await;
            assert!(matches!(full, Err(CallError::Busy(ShardId(0)))));
            assert!(started.elapsed() >= DATA_SEND_WAIT_MAX);
            let control = outbox
                .send(ShardId(0), |reply| ShardRequest::ReleaseConnection {
                    ip: IpAddr::from([127, 0, 0, 1]),
                    reply,
                })
                .await;
            assert!(control.is_ok());
        });
    }
}
