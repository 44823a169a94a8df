//! Errors of the partition replica, one enum per operation. The variants are Kafka's error
//! codes by name; `server` maps them to numbers in its one error-code file.

use sluice_engine::{LeaderEpoch, Offset};

/// The log can no longer be written (a failed fsync or an I/O error). As Kafka does with
/// a log dir, the partition stops writing; nothing retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("log failed")]
pub struct LogFailed;

/// Refusals of a produce request, answered before anything is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// Kafka NOT_LEADER_OR_FOLLOWER (6): this replica is not the leader.
    #[error("not the leader")]
    NotLeaderOrFollower,
    /// Kafka NOT_ENOUGH_REPLICAS (19): `acks=all` with fewer in-sync replicas than
    /// `min.insync.replicas`; nothing was appended.
    #[error("in-sync replicas {isr} < min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicas {
        isr: usize,
        min_insync_replicas: usize,
    },
    /// Kafka KAFKA_STORAGE_ERROR (56).
    #[error(transparent)]
    LogFailed(#[from] LogFailed),
}

/// Why an appended batch was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Kafka NOT_LEADER_OR_FOLLOWER (6): leadership moved before the high watermark passed
    /// the batch. The batch may or may not survive; the client retries.
    #[error("leadership lost before the batch was committed")]
    NotLeaderOrFollower,
    /// Kafka NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): the high watermark passed the batch
    /// while the ISR was smaller than `min.insync.replicas`.
    #[error("committed with {isr} in-sync replicas < min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicasAfterAppend {
        isr: usize,
        min_insync_replicas: usize,
    },
}

/// Refusals of a fetch, from a consumer or a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Kafka NOT_LEADER_OR_FOLLOWER (6).
    #[error("not the leader")]
    NotLeaderOrFollower,
    /// Kafka FENCED_LEADER_EPOCH (74): the request carries an older leader epoch.
    #[error("leader epoch {requested:?} is older than {current:?}")]
    FencedLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    /// Kafka UNKNOWN_LEADER_EPOCH (76): the request carries a newer leader epoch than this
    /// replica has heard of.
    #[error("leader epoch {requested:?} is newer than {current:?}")]
    UnknownLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    /// Kafka OFFSET_NOT_AVAILABLE (78): a new leader whose high watermark has not yet
    /// reached the start of its epoch, so it may be below what the previous leader showed.
    #[error("high watermark not yet known")]
    OffsetNotAvailable,
    /// Kafka OFFSET_OUT_OF_RANGE (1).
    #[error("offset {requested:?} outside [0, {high_watermark:?}]")]
    OffsetOutOfRange {
        requested: Offset,
        high_watermark: Offset,
    },
}

/// Why the controller refused an ISR change (Kafka's AlterPartition errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    /// Kafka FENCED_LEADER_EPOCH (74): the proposer is not the leader of the current epoch.
    #[error("proposer's leader epoch is stale")]
    FencedLeaderEpoch,
    /// Kafka INVALID_UPDATE_VERSION (108): the partition epoch moved since the proposal.
    #[error("partition epoch is stale")]
    InvalidUpdateVersion,
}
