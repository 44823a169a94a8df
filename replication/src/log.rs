//! `ReplicaLog`: what the replica needs from a partition log. The engine's `Log`
//! implements it through an adapter (later); `ModelLog` implements it in memory for unit
//! tests and the simulator.
//!
//! Durability is not a call: the owner of the log flushes it when it chooses and then tells
//! the replica (`Replica::on_durable`). `durable_end` is what survives a crash.

use bytes::Bytes;
use sluice_engine::{LeaderEpoch, Offset};

use crate::batch::{Batch, EpochEnd};
use crate::error::LogFailed;

pub trait ReplicaLog {
    /// The offset the next appended record gets.
    fn log_end(&self) -> Offset;
    /// Every offset below this is fsync'ed; a crash keeps exactly this prefix.
    /// Invariant: `durable_end() <= log_end()`.
    fn durable_end(&self) -> Offset;
    /// The epoch of the newest entry in the leader-epoch cache.
    fn latest_epoch(&self) -> Option<LeaderEpoch>;
    /// Appends one batch at `log_end()` stamped with `epoch`; returns its base offset.
    fn append_as_leader(
        &mut self,
        epoch: LeaderEpoch,
        record_count: u32,
        payload: Bytes,
    ) -> Result<Offset, LogFailed>;
    /// Appends batches a leader stamped. The first starts at `log_end()` and each at the
    /// previous one's next offset; their epochs never go down.
    fn append_replicated(&mut self, batches: &[Batch]) -> Result<(), LogFailed>;
    /// Whole batches starting at or after `from` (the one containing `from` included),
    /// ending at or below `upper`, at most `batches_max` of them.
    fn read(&self, from: Offset, upper: Offset, batches_max: usize) -> Vec<Batch>;
    /// Removes every offset at or above `offset` and the epochs that start there.
    fn truncate_to(&mut self, offset: Offset);
    /// Kafka's OffsetForLeaderEpoch on this log; `None` if the log knows no epochs.
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<EpochEnd>;
    /// Records that `epoch` starts at `log_end()` (a new leader does this before its first
    /// append). The cache is made durable before this returns.
    fn assign_epoch(&mut self, epoch: LeaderEpoch);
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor` on a list of (epoch, start offset) entries
/// in increasing order, shared by every `ReplicaLog` implementation.
pub fn end_offset_for_epoch(
    epochs: &[(LeaderEpoch, Offset)],
    requested: LeaderEpoch,
    log_end: Offset,
) -> Option<EpochEnd> {
    let (latest, _) = *epochs.last()?;
    if requested == latest {
        return Some(EpochEnd {
            leader_epoch: latest,
            end_offset: log_end,
        });
    }
    // The first entry with a larger epoch ends the requested one.
    let higher = epochs.iter().position(|(epoch, _)| *epoch > requested)?;
    let end_offset = epochs[higher].1;
    let leader_epoch = if higher == 0 {
        requested
    } else {
        epochs[higher - 1].0
    };
    Some(EpochEnd {
        leader_epoch,
        end_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: i32) -> LeaderEpoch {
        LeaderEpoch(n)
    }

    #[test]
    fn epoch_end_follows_kafka_rules() {
        // Proves each branch of endOffsetFor on the cache [(1,0), (3,10), (5,20)], LEO 25.
        let cache = [(e(1), Offset(0)), (e(3), Offset(10)), (e(5), Offset(20))];
        let end = |n| end_offset_for_epoch(&cache, e(n), Offset(25));
        assert_eq!(
            end(5),
            Some(EpochEnd {
                leader_epoch: e(5),
                end_offset: Offset(25)
            })
        );
        assert_eq!(
            end(3),
            Some(EpochEnd {
                leader_epoch: e(3),
                end_offset: Offset(20)
            })
        );
        assert_eq!(
            end(4),
            Some(EpochEnd {
                leader_epoch: e(3),
                end_offset: Offset(20)
            })
        );
        assert_eq!(
            end(1),
            Some(EpochEnd {
                leader_epoch: e(1),
                end_offset: Offset(10)
            })
        );
        // Below the first epoch: the requested epoch, ending where the first one starts.
        assert_eq!(
            end(0),
            Some(EpochEnd {
                leader_epoch: e(0),
                end_offset: Offset(0)
            })
        );
        // Above the latest epoch, or an empty cache: unknown.
        assert_eq!(end(6), None);
        assert_eq!(end_offset_for_epoch(&[], e(1), Offset(0)), None);
    }
}
