//! The leader-epoch cache of one partition: (leader epoch, start offset) pairs, both
//! strictly increasing, answering OffsetForLeaderEpoch and guiding follower truncation.
//! Persisted as `leader-epoch-checkpoint` (FORMAT.md) whenever it changes, after the data
//! it describes is durable; rebuilt from batch headers during recovery.

use crate::{LeaderEpoch, Offset};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

const EPOCH_MAGIC: u32 = 0x534c_4550; // "SLEP"
/// An epoch checkpoint with more entries than this is treated as corrupt.
pub const EPOCH_ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `offset`; returns whether the cache changed. Batches
    /// with an epoch not above the latest one do not start a new entry.
    pub fn assign(&mut self, epoch: LeaderEpoch, offset: Offset) -> bool {
        if epoch.0 < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if last.epoch >= epoch => false,
            _ => {
                if let Some(last) = self.entries.last() {
                    assert!(last.start_offset <= offset);
                }
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset: offset,
                });
                true
            }
        }
    }

    /// Drops entries starting at or after `end` (after truncation).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        before != self.entries.len()
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the offset
    /// where the next epoch starts (the log end offset if it is the latest).
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end_offset: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let idx = self.entries.partition_point(|e| e.epoch <= epoch);
        if idx == 0 {
            return None;
        }
        let found = self.entries[idx - 1];
        let end = self
            .entries
            .get(idx)
            .map(|next| next.start_offset)
            .unwrap_or(log_end_offset);
        Some((found.epoch, end))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.entries.len() * 12);
        out.extend_from_slice(&EPOCH_MAGIC.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.epoch.0.to_le_bytes());
            out.extend_from_slice(&e.start_offset.0.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(file: &[u8]) -> Option<LeaderEpochCache> {
        if file.len() < 12 {
            return None;
        }
        let (body, crc) = file.split_at(file.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        if u32::from_le_bytes(body[0..4].try_into().ok()?) != EPOCH_MAGIC {
            return None;
        }
        let count = u32::from_le_bytes(body[4..8].try_into().ok()?) as usize;
        if count > EPOCH_ENTRIES_MAX || body.len() != 8 + count * 12 {
            return None;
        }
        let entries: Vec<EpochEntry> = body[8..]
            .chunks_exact(12)
            .map(|c| EpochEntry {
                epoch: LeaderEpoch(i32::from_le_bytes(c[0..4].try_into().expect("4 bytes"))),
                start_offset: Offset(i64::from_le_bytes(c[4..12].try_into().expect("8 bytes"))),
            })
            .collect();
        let ok = entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
        ok.then_some(LeaderEpochCache { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves OffsetForLeaderEpoch answers: the latest epoch ends at the log end offset, an
    // older one at the next epoch's start, an unknown gap maps to the epoch below it.
    #[test]
    fn end_offset_for_epoch() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(LeaderEpoch(1), Offset(0)));
        assert!(!c.assign(LeaderEpoch(1), Offset(5)));
        assert!(c.assign(LeaderEpoch(3), Offset(10)));
        assert!(c.assign(LeaderEpoch(4), Offset(20)));
        assert_eq!(c.end_offset_for(LeaderEpoch(0), Offset(30)), None);
        assert_eq!(
            c.end_offset_for(LeaderEpoch(1), Offset(30)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(2), Offset(30)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(4), Offset(30)),
            Some((LeaderEpoch(4), Offset(30)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(9), Offset(30)),
            Some((LeaderEpoch(4), Offset(30)))
        );
        assert!(c.truncate_from_end(Offset(20)));
        assert_eq!(
            c.latest(),
            Some(EpochEntry {
                epoch: LeaderEpoch(3),
                start_offset: Offset(10)
            })
        );
        let file = c.encode();
        assert_eq!(LeaderEpochCache::decode(&file), Some(c));
        assert_eq!(LeaderEpochCache::decode(&file[1..]), None);
    }
}
