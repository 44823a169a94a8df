//! What the broker stamps on the batches it appends: the partition leader epoch and the
//! wall-clock time. A leaf: partitions and the group coordinator both use it.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_engine::LeaderEpoch;

/// Leader epoch of every partition while Sluice is a single node.
pub const LEADER_EPOCH: LeaderEpoch = LeaderEpoch(0);

/// Wall-clock milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
