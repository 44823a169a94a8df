//! The replica side of the log: a follower's append of batches fetched from its leader
//! (Kafka's `appendAsFollower`) and a new leader's start of its epoch (`assign_epoch`).
//! Runs on the shard owning the log.
//!
//! Invariants: a replicated batch is stored byte for byte as the leader sent it (offsets,
//! leader epoch, timestamps, producer fields and CRC untouched), so a follower's segments
//! hold the leader's batches; a call appends all of its batches or none; batches go
//! through the same pending list, flush and group commit as the leader's appends; the
//! leader-epoch cache learns each epoch at the base offset of its first batch.

use bytes::Bytes;

use crate::batch::{self, BatchHeader};
use crate::error::{AppendReplicatedError, AssignEpochError, LogIoError};
use crate::leader_epoch::LeaderEpochCache;
use crate::read_cache::CachedBatch;
use crate::segment::SCAN_BATCH_BYTES_MAX;
use crate::{LeaderEpoch, Offset};

use super::Log;

/// What `append_replicated` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicatedAppendInfo {
    /// Base offset of the first batch appended.
    pub first_offset: Offset,
    /// Last offset of the last batch appended.
    pub last_offset: Offset,
    pub batch_count: usize,
    /// The log end offset after the append (`last_offset + 1`).
    pub log_end_offset: Offset,
}

/// One checked batch of a replicated append.
struct Replicated {
    bytes: Bytes,
    base_offset: Offset,
    last_offset: Offset,
    epoch: LeaderEpoch,
}

impl Log {
    /// Appends whole batches fetched from the leader, as they are: each keeps its base
    /// offset, leader epoch, timestamps and producer fields (nothing is re-stamped). The
    /// first batch starts at or above the log end offset and every later one after the
    /// previous batch's last offset: gaps, which the leader's compaction leaves, are
    /// accepted (as Kafka's follower does), overlaps are not. CRCs are checked.
    /// Producer state records each batch without refusing duplicates or sequence gaps
    /// (the leader decided); the leader-epoch cache learns a new epoch at its first
    /// batch, dropping epochs that start at or after that batch and hold no data (a
    /// former leader's `assign_epoch`). Readable at once, durable after `wait_durable`
    /// like `append`; never waits for I/O. On an error nothing is appended. `now_ms` is
    /// the local time `segment.ms` rolls count from.
    pub fn append_replicated(
        &self,
        batches: Bytes,
        now_ms: i64,
    ) -> Result<ReplicatedAppendInfo, AppendReplicatedError> {
        let config = *self.config.borrow();
        let mut st = self.state.borrow_mut();
        st.check_writable()?;
        let checked = split_checked(&batches)?;
        let (Some(first), Some(last)) = (checked.first(), checked.last()) else {
            return Ok(ReplicatedAppendInfo {
                first_offset: st.log_end_offset,
                last_offset: Offset(st.log_end_offset.0 - 1),
                batch_count: 0,
                log_end_offset: st.log_end_offset,
            });
        };
        let (first_offset, last_offset) = (first.base_offset, last.last_offset);
        check_offsets(&checked, st.log_end_offset)?;
        let epochs = learned_epochs(&st.epochs, &checked)?;
        let epochs_changed = epochs != st.epochs;
        let batch_count = checked.len();
        for b in &checked {
            if b.base_offset > st.log_end_offset {
                // A gap: the active segment spans it, as a compacted segment spans the
                // batches it lost, so segments stay contiguous if this batch rolls.
                st.active_mut().next_offset = b.base_offset;
                st.log_end_offset = b.base_offset;
            }
            self.push_locked(&mut st, &b.bytes, b.last_offset, b.epoch, &config, now_ms);
        }
        // The pushes assigned epochs the plain way; the learned cache also drops empty
        // epochs a lower one replaced.
        st.epochs_dirty |= epochs_changed;
        st.epochs = epochs;
        assert_eq!(st.log_end_offset, Offset(last_offset.0 + 1));
        let unflushed = st.unflushed_bytes;
        drop(st);
        let cached = checked.into_iter().map(|b| CachedBatch {
            base_offset: b.base_offset,
            last_offset: b.last_offset,
            bytes: b.bytes,
        });
        self.announce_appended(cached, unflushed, &config);
        Ok(ReplicatedAppendInfo {
            first_offset,
            last_offset,
            batch_count,
            log_end_offset: Offset(last_offset.0 + 1),
        })
    }

    /// A new leader starts `epoch` at the current log end offset (Kafka's
    /// `maybeAssignEpochStartOffset`): the leader-epoch cache gets the entry, and the log
    /// is flushed with the epoch checkpoint, so the entry is durable on return. An epoch
    /// equal to the latest one changes nothing; a lower one is refused. An epoch that
    /// holds no batch is dropped by a later reopen or by a replicated batch of a lower
    /// epoch at that offset (it then never led anything).
    pub async fn assign_epoch(&self, epoch: LeaderEpoch) -> Result<(), AssignEpochError> {
        let _guard = self.lock().await;
        {
            let mut st = self.state.borrow_mut();
            st.check_writable().map_err(LogIoError::from)?;
            if let Some(latest) = st.epochs.latest()
                && latest.epoch > epoch
            {
                return Err(AssignEpochError::StaleEpoch {
                    latest: latest.epoch,
                    got: epoch,
                });
            }
            let leo = st.log_end_offset;
            st.epochs_dirty |= st.epochs.assign(epoch, leo);
        }
        self.flush_locked().await.map_err(LogIoError::from)?;
        Ok(())
    }
}

/// Splits `bytes` into whole batches, each within the size recovery accepts and passing
/// the stored-batch checks (length, magic, CRC; compacted record counts allowed).
fn split_checked(bytes: &Bytes) -> Result<Vec<Replicated>, AppendReplicatedError> {
    let mut out = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let corrupt = |source| AppendReplicatedError::Corrupt { position, source };
        let header = BatchHeader::new(rest).map_err(corrupt)?;
        let size = header.total_bytes().unwrap_or(usize::MAX);
        if size > SCAN_BATCH_BYTES_MAX {
            return Err(AppendReplicatedError::BatchTooLarge {
                position,
                size,
                max: SCAN_BATCH_BYTES_MAX,
            });
        }
        let Some(whole) = rest.get(..size) else {
            return Err(corrupt(batch::BatchError::LengthMismatch {
                field: header.batch_length(),
                len: rest.len(),
            }));
        };
        let h = batch::validate_stored(whole).map_err(corrupt)?;
        out.push(Replicated {
            bytes: bytes.slice(position..position + size),
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
            epoch: LeaderEpoch(h.partition_leader_epoch()),
        });
        position += size;
    }
    Ok(out)
}

/// The first batch starts at or above `log_end`, every later one after the last offset
/// of the one before.
fn check_offsets(batches: &[Replicated], log_end: Offset) -> Result<(), AppendReplicatedError> {
    let mut next = log_end;
    for (i, b) in batches.iter().enumerate() {
        if b.base_offset < next {
            return Err(if i == 0 {
                AppendReplicatedError::OffsetMismatch {
                    expected: log_end,
                    got: b.base_offset,
                }
            } else {
                AppendReplicatedError::OffsetsNotIncreasing {
                    previous_last: Offset(next.0 - 1),
                    got: b.base_offset,
                }
            });
        }
        next = Offset(b.last_offset.0 + 1);
    }
    Ok(())
}

/// The leader-epoch cache after `batches`: each batch of an epoch above the latest one
/// starts that epoch. Epochs that start at or after a batch of a lower epoch hold no data
/// and are dropped; an epoch above the batch's that holds data before it is refused.
fn learned_epochs(
    current: &LeaderEpochCache,
    batches: &[Replicated],
) -> Result<LeaderEpochCache, AppendReplicatedError> {
    let mut epochs = current.clone();
    for b in batches {
        if b.epoch.0 < 0 {
            continue;
        }
        if epochs.latest().is_some_and(|l| l.epoch > b.epoch) {
            epochs.truncate_from_end(b.base_offset);
        }
        if let Some(latest) = epochs.latest()
            && latest.epoch > b.epoch
        {
            return Err(AppendReplicatedError::EpochRegression {
                offset: b.base_offset,
                latest: latest.epoch,
                got: b.epoch,
            });
        }
        epochs.assign(b.epoch, b.base_offset);
    }
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::batch::build_test_batch;
    use crate::leader_epoch::EpochEntry;

    fn stamped(count: i32, base: i64, epoch: i32) -> Bytes {
        let mut b = build_test_batch(count, 10, 1000, None);
        batch::stamp_offset_and_epoch(&mut b, Offset(base), epoch);
        Bytes::from(b)
    }

    fn joined(batches: &[Bytes]) -> Bytes {
        let mut out = BytesMut::new();
        for b in batches {
            out.extend_from_slice(b);
        }
        out.freeze()
    }

    // Proves the split keeps each batch's fields and refuses a torn tail, a flipped CRC
    // byte and an overlap, naming the first offending batch.
    #[test]
    fn split_and_offset_checks() {
        let bytes = joined(&[stamped(3, 10, 1), stamped(2, 20, 2)]);
        let got = split_checked(&bytes).unwrap();
        let seen: Vec<_> = got
            .iter()
            .map(|b| (b.base_offset.0, b.last_offset.0, b.epoch.0))
            .collect();
        assert_eq!(seen, [(10, 12, 1), (20, 21, 2)]);
        assert!(check_offsets(&got, Offset(10)).is_ok());
        // A gap before the first batch is the leader's compaction; below the end is not.
        assert!(check_offsets(&got, Offset(5)).is_ok());
        assert!(matches!(
            check_offsets(&got, Offset(11)),
            Err(AppendReplicatedError::OffsetMismatch {
                expected: Offset(11),
                got: Offset(10)
            })
        ));
        let overlap = split_checked(&joined(&[stamped(3, 10, 1), stamped(1, 12, 1)])).unwrap();
        assert!(matches!(
            check_offsets(&overlap, Offset(10)),
            Err(AppendReplicatedError::OffsetsNotIncreasing {
                previous_last: Offset(12),
                got: Offset(12)
            })
        ));

        let torn = bytes.slice(..bytes.len() - 1);
        let first_len = got[0].bytes.len();
        assert!(matches!(
            split_checked(&torn),
            Err(AppendReplicatedError::Corrupt { position, .. }) if position == first_len
        ));
        let mut flipped = BytesMut::from(&bytes[..]);
        flipped[first_len + batch::HEADER_BYTES] ^= 1;
        assert!(matches!(
            split_checked(&flipped.freeze()),
            Err(AppendReplicatedError::Corrupt { position, .. }) if position == first_len
        ));
        assert!(split_checked(&Bytes::new()).unwrap().is_empty());
    }

    // Proves the epoch cache learns each growing epoch at its first batch, replaces an
    // empty later epoch (a former leader's assign_epoch) with the batch's lower one, and
    // refuses a lower epoch after data of a higher one.
    #[test]
    fn epochs_learned_from_batches() {
        let entry = |epoch, start_offset| EpochEntry {
            epoch: LeaderEpoch(epoch),
            start_offset: Offset(start_offset),
        };
        let mut cache = LeaderEpochCache::default();
        cache.assign(LeaderEpoch(1), Offset(0));
        let batches = split_checked(&joined(&[
            stamped(2, 10, 1),
            stamped(2, 12, 3),
            stamped(1, 15, 3),
        ]))
        .unwrap();
        let learned = learned_epochs(&cache, &batches).unwrap();
        assert_eq!(learned.entries(), [entry(1, 0), entry(3, 12)]);

        // Epoch 5 was assigned at 14 and never wrote: a batch of epoch 3 at 14 wins.
        let mut phantom = learned.clone();
        phantom.assign(LeaderEpoch(5), Offset(14));
        let later = split_checked(&stamped(1, 14, 3)).unwrap();
        assert_eq!(learned_epochs(&phantom, &later).unwrap(), learned);

        // Epoch 5 holds data from 13 on: epoch 3 at 14 cannot follow it.
        let mut real = learned.clone();
        real.assign(LeaderEpoch(5), Offset(13));
        assert!(matches!(
            learned_epochs(&real, &later),
            Err(AppendReplicatedError::EpochRegression {
                offset: Offset(14),
                latest: LeaderEpoch(5),
                got: LeaderEpoch(3)
            })
        ));
    }
}
