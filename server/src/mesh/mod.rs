//! Every cross-core operation, as one typed enum sent over glommio's channel mesh. Each
//! variant carries its own reply handle (a cross-core oneshot). A shard never shares its
//! state; it answers these messages. If a message is dropped (the destination shard is
//! shutting down), the reply handle is dropped with it and the asking side sees
//! `CallError::Dropped`, which handlers turn into a retriable Kafka error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::LocalSender;
use glommio::channels::oneshot::{self, SharedSender};
use kafka_protocol::ResponseError;
use sluice_engine::record::RecordRejection;

use crate::foreign_wake::Relayed;
use crate::topic_table::{ShardId, TopicPartition, TopicTable};

pub mod inbox;
pub mod scatter;

/// Capacity of each mesh channel; a full channel makes the sender wait (backpressure).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

pub type Reply<T> = SharedSender<T>;

/// A cross-core call that got no answer.
#[derive(Clone, Copy, Debug, thiserror::Error)]
pub enum CallError {
    #[error("shard {0:?} is not reachable")]
    Unreachable(ShardId),
    #[error("shard {0:?} dropped the request")]
    Dropped(ShardId),
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

/// One shard's sending side: a channel to every other shard and a queue to itself, so a
/// request to the local shard goes through the same inbox as one from a peer.
pub struct Outbox {
    id: ShardId,
    peers: Senders<ShardRequest>,
    local: LocalSender<ShardRequest>,
}

impl Outbox {
    pub fn new(
        id: ShardId,
        peers: Senders<ShardRequest>,
        local: LocalSender<ShardRequest>,
    ) -> Outbox {
        Outbox { id, peers, local }
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
        let sent = if to == self.id {
            self.local.send(req).await.is_ok()
        } else {
            self.peers.send_to(to.index(), req).await.is_ok()
        };
        if !sent {
            return Err(CallError::Unreachable(to));
        }
        Ok(PendingReply { rx, from: to })
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

/// Outcome of appending one partition's records.
#[derive(Clone, Debug, Default)]
pub struct ProducePartitionResult {
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The records the topic refused (INVALID_RECORD), by index in their batch; sent
    /// from Produce v8 as `record_errors`.
    pub record_errors: Vec<RecordRejection>,
}

/// One partition of a Fetch, as the owning shard needs it.
#[derive(Clone, Debug)]
pub struct FetchPart {
    pub tp: TopicPartition,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    /// The consumer's view of the leader epoch, -1 if unknown.
    pub current_leader_epoch: i32,
    /// A waiting fetch wakes once the high watermark is past this (the high watermark
    /// the previous read saw), so data already seen but too small for min_bytes does
    /// not wake it again.
    pub wait_past_offset: i64,
}

/// What a shard read for one `FetchPart`.
#[derive(Clone, Debug, Default)]
pub struct FetchPartResult {
    pub error: Option<ResponseError>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Option<Bytes>,
}

impl FetchPartResult {
    pub fn bytes(&self) -> usize {
        self.records.as_ref().map_or(0, |r| r.len())
    }
}

/// Result of a ListOffsets lookup: `(timestamp, offset)` or an error.
pub type ListOffsetResult = Result<(i64, i64, i32), ResponseError>;

/// Result of an OffsetForLeaderEpoch lookup: `(leader epoch, end offset)`.
pub type EpochEndResult = Result<(i32, i64), ResponseError>;

/// Result of a DeleteRecords on one partition: the new log start offset (Kafka's low
/// watermark).
pub type DeleteRecordsResult = Result<i64, ResponseError>;

/// A topic to create, as shard 0 receives it.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// A per-topic outcome of an admin operation.
#[derive(Clone, Debug, Default)]
pub struct TopicOutcome {
    pub error: Option<ResponseError>,
    pub message: Option<String>,
}

/// One topic's config change for IncrementalAlterConfigs.
#[derive(Clone, Debug)]
pub struct ConfigChange {
    pub topic: String,
    /// `(name, Some(value))` sets, `(name, None)` deletes the override.
    pub ops: Vec<(String, Option<String>)>,
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
    ListOffsets {
        tp: TopicPartition,
        timestamp: i64,
        reply: Reply<ListOffsetResult>,
    },
    /// OffsetForLeaderEpoch for one partition.
    EpochEnd {
        tp: TopicPartition,
        leader_epoch: i32,
        reply: Reply<EpochEndResult>,
    },
    /// DeleteRecords for one partition: move its log start offset up to `offset` (-1: the
    /// high watermark). Dropped: the client sees a retriable error and asks again.
    DeleteRecords {
        tp: TopicPartition,
        offset: i64,
        reply: Reply<DeleteRecordsResult>,
    },
    /// To shard 0: create topics (or only validate). Dropped: clients retry the admin call.
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: delete topics by name.
    DeleteTopics {
        names: Vec<String>,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: grow topics to `count` partitions each.
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: change topic config overrides.
    AlterConfigs {
        changes: Vec<ConfigChange>,
        validate_only: bool,
        reply: Reply<Vec<TopicOutcome>>,
    },
    /// To shard 0: hand out a producer id that was never handed out before.
    AllocateProducerId { reply: Reply<Result<i64, String>> },
    /// To an owner: open (creating if needed) these partitions of a topic.
    OpenPartitions {
        topic: Arc<str>,
        partitions: Vec<i32>,
        configs: BTreeMap<String, String>,
        reply: Reply<Result<(), String>>,
    },
    /// To an owner: close these partitions and, with `delete`, remove their files.
    ClosePartitions {
        topic: Arc<str>,
        partitions: Vec<i32>,
        delete: bool,
        reply: Reply<()>,
    },
    /// To an owner: apply new config overrides to the open partitions of a topic.
    SetConfig {
        topic: Arc<str>,
        configs: BTreeMap<String, String>,
        reply: Reply<()>,
    },
    /// From shard 0 to all: replace the read-only topic table.
    TableUpdate {
        table: Arc<TopicTable>,
        reply: Reply<()>,
    },
    /// To a group's coordinator shard: one group operation. JoinGroup and SyncGroup may
    /// wait for other members before replying. Dropped: the client sees a retriable error.
    Group {
        op: crate::group::host::GroupOp,
        reply: Reply<crate::group::host::GroupReply>,
    },
    /// From a partition's owner to every shard: the partition went offline (its log could
    /// not be opened) or, with `offline: false`, is no longer offline. Metadata on any
    /// shard reports it. Dropped: that shard's Metadata answers without the mark.
    PartitionOffline {
        tp: TopicPartition,
        offline: bool,
        reply: Reply<()>,
    },
    /// From shard 0 to all: stop accepting, close every log cleanly, then exit.
    Shutdown { reply: Reply<()> },
    /// To shard 0, which counts every client connection: admit one more from `ip`, or
    /// refuse it over max.connections / max.connections.per.ip. Dropped: the connection
    /// is closed uncounted.
    AdmitConnection { ip: IpAddr, reply: Reply<Admission> },
    /// To shard 0: a connection it admitted from `ip` closed. Dropped (only while shutting
    /// down): the count stays one too high, which no longer matters.
    ReleaseConnection { ip: IpAddr, reply: Reply<()> },
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
