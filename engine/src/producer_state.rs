//! Idempotent-producer state of one partition: per producer id, its epoch and the first
//! and last sequence and offsets of its last five batches. `check` decides, before an
//! append, whether a batch is new, a retried duplicate, out of order, or from a fenced
//! epoch; `record` applies an appended batch. Snapshots (`<offset:020>.snapshot`, rkyv
//! plus a CRC32) are written at roll and close; recovery loads the newest snapshot at or
//! below the log end offset and replays batch headers after it.

use std::collections::{BTreeMap, VecDeque};

use crate::Offset;
use crate::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection (Kafka's number).
pub const BATCHES_PER_PRODUCER_MAX: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BatchRecord {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ProducerEntry {
    pub producer_epoch: i16,
    pub batches: VecDeque<BatchRecord>,
}

/// What an append of a producer's batch must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with its original offsets.
    Duplicate {
        base_offset: Offset,
        last_offset: Offset,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than {current}")]
    InvalidEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
}

#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerState {
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Decides what to do with `h` without changing any state.
    pub fn check(&self, h: &BatchHeader<'_>) -> Result<SequenceCheck, SequenceError> {
        let producer_id = h.producer_id();
        if producer_id < 0 || h.base_sequence() < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its data was deleted): any sequence starts it.
            return Ok(SequenceCheck::Append);
        };
        let epoch = h.producer_epoch();
        if epoch < entry.producer_epoch {
            return Err(SequenceError::InvalidEpoch {
                producer_id,
                current: entry.producer_epoch,
                got: epoch,
            });
        }
        if epoch > entry.producer_epoch {
            if h.base_sequence() != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: h.base_sequence(),
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let (first, last) = (h.base_sequence(), h.last_sequence());
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: Offset(b.base_offset),
                last_offset: Offset(b.last_offset),
            });
        }
        match entry.batches.back() {
            Some(b) if next_sequence(b.last_sequence) != first => Err(SequenceError::OutOfOrder {
                producer_id,
                expected: next_sequence(b.last_sequence),
                got: first,
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Applies an appended batch whose base offset is already stamped.
    pub fn record(&mut self, h: &BatchHeader<'_>) {
        let producer_id = h.producer_id();
        if producer_id < 0 || h.base_sequence() < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_epoch: h.producer_epoch(),
                batches: VecDeque::new(),
            });
        if h.producer_epoch() != entry.producer_epoch {
            entry.producer_epoch = h.producer_epoch();
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchRecord {
            first_sequence: h.base_sequence(),
            last_sequence: h.last_sequence(),
            base_offset: h.base_offset().0,
            last_offset: h.last_offset().0,
        });
    }

    /// Serializes the state as rkyv bytes followed by a CRC32 of them.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .expect("serializing producer state cannot fail");
        let mut out = bytes.to_vec();
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a snapshot file; `None` if it is torn or corrupt.
    pub fn from_snapshot(file: &[u8]) -> Option<ProducerState> {
        if file.len() < 4 {
            return None;
        }
        let (body, crc) = file.split_at(file.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        rkyv::from_bytes::<ProducerState, rkyv::rancor::Error>(&aligned).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchHeader, build_test_batch, stamp_offset_and_epoch};

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> Vec<u8> {
        let mut b = build_test_batch(count, 0, 0, Some((pid, epoch, seq)));
        stamp_offset_and_epoch(&mut b, Offset(base), 0);
        b
    }

    // Proves in-order batches append, a retry of any of the last five is a duplicate with
    // its original offsets, a gap is out of order, and an older epoch is fenced.
    #[test]
    fn sequence_rules() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            let b = batch(9, 1, i * 2, 2, 100 + i64::from(i) * 2);
            let h = BatchHeader::new(&b).unwrap();
            assert_eq!(s.check(&h), Ok(SequenceCheck::Append));
            s.record(&h);
        }
        assert_eq!(s.get(9).unwrap().batches.len(), BATCHES_PER_PRODUCER_MAX);
        let dup = batch(9, 1, 10, 2, -1);
        assert_eq!(
            s.check(&BatchHeader::new(&dup).unwrap()),
            Ok(SequenceCheck::Duplicate {
                base_offset: Offset(110),
                last_offset: Offset(111)
            })
        );
        // Sequence 0 fell out of the window: it is now out of order, not a duplicate.
        let old = batch(9, 1, 0, 2, -1);
        assert!(matches!(
            s.check(&BatchHeader::new(&old).unwrap()),
            Err(SequenceError::OutOfOrder { .. })
        ));
        let gap = batch(9, 1, 15, 1, -1);
        assert_eq!(
            s.check(&BatchHeader::new(&gap).unwrap()),
            Err(SequenceError::OutOfOrder {
                producer_id: 9,
                expected: 14,
                got: 15
            })
        );
        let fenced = batch(9, 0, 14, 1, -1);
        assert!(matches!(
            s.check(&BatchHeader::new(&fenced).unwrap()),
            Err(SequenceError::InvalidEpoch { .. })
        ));
        let bumped_bad = batch(9, 2, 5, 1, -1);
        assert!(matches!(
            s.check(&BatchHeader::new(&bumped_bad).unwrap()),
            Err(SequenceError::OutOfOrder { .. })
        ));
        let bumped = batch(9, 2, 0, 1, 200);
        let h = BatchHeader::new(&bumped).unwrap();
        assert_eq!(s.check(&h), Ok(SequenceCheck::Append));
        s.record(&h);
        assert_eq!(s.get(9).unwrap().batches.len(), 1);
        let plain = build_test_batch(1, 0, 0, None);
        assert_eq!(
            s.check(&BatchHeader::new(&plain).unwrap()),
            Ok(SequenceCheck::Append)
        );
    }

    // Proves a snapshot round-trips and a damaged one is refused.
    #[test]
    fn snapshot_round_trip() {
        let mut s = ProducerState::default();
        for pid in 0..3 {
            let b = batch(pid, 0, 0, 3, pid * 3);
            s.record(&BatchHeader::new(&b).unwrap());
        }
        let snap = s.to_snapshot();
        assert_eq!(ProducerState::from_snapshot(&snap), Some(s));
        let mut bad = snap.clone();
        bad[0] ^= 1;
        assert_eq!(ProducerState::from_snapshot(&bad), None);
        assert_eq!(ProducerState::from_snapshot(&snap[..2]), None);
    }
}
