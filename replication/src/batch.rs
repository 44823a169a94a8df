//! The unit of replication: a batch of records with the offsets and leader epoch the
//! leader stamped on it, plus the broker id newtype. Batches are immutable once stamped;
//! followers store them byte for byte at the offsets the leader chose.

use bytes::Bytes;
use sluice_engine::{LeaderEpoch, Offset};

/// A broker's node id (`--node-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerId(pub i32);

/// One batch as replication sees it. `payload` is opaque here: the engine's RecordBatch
/// bytes, or an id in the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: Offset,
    pub leader_epoch: LeaderEpoch,
    pub record_count: u32,
    pub payload: Bytes,
}

impl Batch {
    /// The offset after this batch's last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.base_offset.0 + i64::from(self.record_count))
    }
}

/// Where a leader epoch ends in a log: the answer to OffsetForLeaderEpoch, and the
/// diverging epoch of a Fetch response. `leader_epoch` is the largest epoch at or below the
/// one asked for; `end_offset` is where the next larger epoch starts (or the log end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}
