//! What crosses the network: Kafka's replica Fetch (with the follower's durable offset and
//! the diverging epoch of Fetch v12+), the controller's partition state (LeaderAndIsr), and
//! AlterPartition. `server` encodes these over `net`; the simulator passes them as values.

use sluice_engine::{LeaderEpoch, Offset};

use crate::batch::{Batch, BrokerId, EpochEnd};
use crate::error::{AlterPartitionError, FetchError};

/// The controller's version of a partition's leader and ISR; bumped on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionEpoch(pub i32);

/// The controller's decision for one partition (Kafka's LeaderAndIsr / PartitionRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: Vec<BrokerId>,
    pub replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// Which of two states is newer: leader epoch first, then partition epoch.
    pub fn version(&self) -> (LeaderEpoch, PartitionEpoch) {
        (self.leader_epoch, self.partition_epoch)
    }
}

/// A follower's fetch. `durable_offset` is how far its log matching `fetch_offset` is
/// fsync'ed; the leader's high watermark is built from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub replica_id: BrokerId,
    /// Tells responses apart: the follower acts only on the answer to its latest fetch,
    /// because the network may duplicate and reorder.
    pub fetch_seq: u64,
    pub current_leader_epoch: LeaderEpoch,
    pub fetch_offset: Offset,
    /// The epoch of the last batch before `fetch_offset`; `None` for an empty log.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    pub durable_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    pub fetch_seq: u64,
    pub result: Result<FetchData, FetchError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchData {
    pub high_watermark: Offset,
    /// Set when the follower's log diverges from the leader's at or before
    /// `fetch_offset`: where the follower's last epoch ends on the leader. No batches then.
    pub diverging_epoch: Option<EpochEnd>,
    pub batches: Vec<Batch>,
}

/// A leader's proposal to change the ISR, valid only at the partition epoch it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub new_isr: Vec<BrokerId>,
}

/// The controller's answer; `partition_epoch` repeats the request's so the leader can
/// match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionResponse {
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub result: Result<PartitionState, AlterPartitionError>,
}
