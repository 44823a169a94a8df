//! `ModelLog`: an in-memory `ReplicaLog` with a durable prefix and a tail that `crash`
//! loses. Unit tests and the simulator use it; it is the reference the engine adapter must
//! behave like.
//!
//! Invariants: batches are contiguous from offset 0; `durable_end <= log_end`; the epoch
//! cache's epochs and start offsets both increase. The epoch cache is durable as soon as
//! it changes (Kafka writes its checkpoint file synchronously).

use bytes::Bytes;
use sluice_engine::{LeaderEpoch, Offset};

use crate::batch::{Batch, EpochEnd};
use crate::error::LogFailed;
use crate::log::{self, ReplicaLog};

#[derive(Debug, Default, Clone)]
pub struct ModelLog {
    batches: Vec<Batch>,
    epochs: Vec<(LeaderEpoch, Offset)>,
    durable_end: Offset,
    /// The lowest offset removed (by truncation or a crash) since `take_removed_from`.
    removed_from: Option<Offset>,
}

impl ModelLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes an fsync: everything appended so far becomes durable.
    pub fn flush(&mut self) {
        self.durable_end = self.log_end();
    }

    /// Loses the unflushed tail, as kill -9 or a power cut does.
    pub fn crash(&mut self) {
        let durable_end = self.durable_end;
        self.remove_from(durable_end);
        // Epochs that start past the surviving end name no batch; those at the end are
        // kept (the cache was durable), as a new leader's empty epoch is.
        self.epochs.retain(|(_, start)| *start <= durable_end);
    }

    /// The batch holding `offset` and the record's index in it.
    pub fn record_at(&self, offset: Offset) -> Option<(&Batch, u32)> {
        let index = self
            .batches
            .partition_point(|batch| batch.next_offset() <= offset);
        let batch = self.batches.get(index)?;
        let record = offset.0 - batch.base_offset.0;
        (record >= 0).then(|| (batch, u32::try_from(record).expect("record index fits u32")))
    }

    /// The lowest offset whose content was removed since the last call, if any.
    pub fn take_removed_from(&mut self) -> Option<Offset> {
        self.removed_from.take()
    }

    pub fn epochs(&self) -> &[(LeaderEpoch, Offset)] {
        &self.epochs
    }

    fn remove_from(&mut self, offset: Offset) {
        // A batch that straddles `offset` goes whole, as in Kafka's segment truncation.
        let keep = self
            .batches
            .partition_point(|batch| batch.next_offset() <= offset);
        if keep < self.batches.len() {
            let first_removed = self.batches[keep].base_offset;
            self.removed_from = Some(
                self.removed_from
                    .map_or(first_removed, |r| r.min(first_removed)),
            );
            self.batches.truncate(keep);
        }
        self.durable_end = self.durable_end.min(self.log_end());
    }

    fn note_epoch(&mut self, epoch: LeaderEpoch, start: Offset) {
        match self.epochs.last() {
            Some((latest, _)) if *latest >= epoch => {
                assert!(*latest == epoch, "epoch {epoch:?} below latest {latest:?}");
            }
            _ => self.epochs.push((epoch, start)),
        }
    }
}

impl ReplicaLog for ModelLog {
    fn log_end(&self) -> Offset {
        self.batches.last().map_or(Offset(0), Batch::next_offset)
    }

    fn durable_end(&self) -> Offset {
        self.durable_end
    }

    fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.last().map(|(epoch, _)| *epoch)
    }

    fn append_as_leader(
        &mut self,
        epoch: LeaderEpoch,
        record_count: u32,
        payload: Bytes,
    ) -> Result<Offset, LogFailed> {
        assert!(record_count > 0, "empty batch");
        assert!(
            self.latest_epoch() == Some(epoch),
            "leader appends in an unassigned epoch"
        );
        let base_offset = self.log_end();
        self.batches.push(Batch {
            base_offset,
            leader_epoch: epoch,
            record_count,
            payload,
        });
        Ok(base_offset)
    }

    fn append_replicated(&mut self, batches: &[Batch]) -> Result<(), LogFailed> {
        for batch in batches {
            assert!(
                batch.base_offset == self.log_end(),
                "replicated batch not at log end"
            );
            assert!(batch.record_count > 0, "empty batch");
            self.note_epoch(batch.leader_epoch, batch.base_offset);
            self.batches.push(batch.clone());
        }
        Ok(())
    }

    fn read(&self, from: Offset, upper: Offset, batches_max: usize) -> Vec<Batch> {
        let first = self
            .batches
            .partition_point(|batch| batch.next_offset() <= from);
        self.batches[first..]
            .iter()
            .take_while(|batch| batch.next_offset() <= upper)
            .take(batches_max)
            .cloned()
            .collect()
    }

    fn truncate_to(&mut self, offset: Offset) {
        self.remove_from(offset);
        let log_end = self.log_end();
        self.epochs.retain(|(_, start)| *start < log_end);
    }

    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<EpochEnd> {
        log::end_offset_for_epoch(&self.epochs, epoch, self.log_end())
    }

    fn assign_epoch(&mut self, epoch: LeaderEpoch) {
        let start = self.log_end();
        self.note_epoch(epoch, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(log: &mut ModelLog, epoch: i32, records: u32) -> Offset {
        if log.latest_epoch() != Some(LeaderEpoch(epoch)) {
            log.assign_epoch(LeaderEpoch(epoch));
        }
        log.append_as_leader(LeaderEpoch(epoch), records, Bytes::from_static(b"x"))
            .unwrap()
    }

    #[test]
    fn crash_keeps_exactly_the_durable_prefix() {
        // Proves a crash drops the unflushed tail and the epochs that start inside it.
        let mut log = ModelLog::new();
        append(&mut log, 1, 3);
        log.flush();
        append(&mut log, 1, 2);
        append(&mut log, 2, 4);
        assert_eq!(log.log_end(), Offset(9));
        assert_eq!(log.durable_end(), Offset(3));
        log.crash();
        assert_eq!(log.log_end(), Offset(3));
        assert_eq!(log.durable_end(), Offset(3));
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(1)));
        assert_eq!(log.take_removed_from(), Some(Offset(3)));
        assert_eq!(log.take_removed_from(), None);
    }

    #[test]
    fn truncate_removes_whole_batches_and_their_epochs() {
        // Proves truncate_to cuts at a batch boundary, lowers durable_end and drops the
        // epochs that started in the removed part.
        let mut log = ModelLog::new();
        append(&mut log, 1, 3);
        append(&mut log, 2, 3);
        log.flush();
        log.truncate_to(Offset(4));
        assert_eq!(log.log_end(), Offset(3));
        assert_eq!(log.durable_end(), Offset(3));
        assert_eq!(log.epochs(), &[(LeaderEpoch(1), Offset(0))]);
    }

    #[test]
    fn replicated_batches_fill_the_epoch_cache() {
        // Proves a follower learns epochs from the batches it copies and answers
        // OffsetForLeaderEpoch from them.
        let mut leader = ModelLog::new();
        append(&mut leader, 1, 2);
        append(&mut leader, 3, 2);
        let mut follower = ModelLog::new();
        follower
            .append_replicated(&leader.read(Offset(0), leader.log_end(), 10))
            .unwrap();
        assert_eq!(follower.epochs(), leader.epochs());
        let end = follower.end_offset_for_epoch(LeaderEpoch(2)).unwrap();
        assert_eq!(
            end,
            EpochEnd {
                leader_epoch: LeaderEpoch(1),
                end_offset: Offset(2)
            }
        );
    }

    #[test]
    fn read_returns_whole_batches_below_upper() {
        // Proves read starts at the batch holding `from` and stops at `upper` and the max.
        let mut log = ModelLog::new();
        for _ in 0..4 {
            append(&mut log, 1, 2);
        }
        let bases =
            |batches: Vec<Batch>| batches.iter().map(|b| b.base_offset.0).collect::<Vec<_>>();
        assert_eq!(bases(log.read(Offset(3), Offset(8), 10)), vec![2, 4, 6]);
        assert_eq!(bases(log.read(Offset(3), Offset(7), 10)), vec![2, 4]);
        assert_eq!(bases(log.read(Offset(0), Offset(8), 1)), vec![0]);
        assert_eq!(
            log.record_at(Offset(5)).map(|(b, i)| (b.base_offset, i)),
            Some((Offset(4), 1))
        );
        assert!(log.record_at(Offset(8)).is_none());
    }
}
