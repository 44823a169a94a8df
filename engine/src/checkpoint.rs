//! Per-partition checkpoints, each replaced atomically as a whole file. Layouts in
//! FORMAT.md.
//!
//! `partition.meta` holds the clean-shutdown flag, the log start offset and the recovery
//! point (every byte below it was fdatasync'ed and checked); a missing or damaged file
//! means "not clean, recover everything".
//!
//! `cleaner-offset-checkpoint` holds how far compaction got (Kafka's cleaner offset
//! checkpoint, kept per partition): the first dirty offset and the earliest expiry of a
//! kept tombstone. A missing or damaged file means "nothing is clean yet".

use crate::Offset;

const META_MAGIC: u32 = 0x534c_504d; // "SLPM"
const META_VERSION: u16 = 1;
pub const META_BYTES: usize = 28;
pub const META_FILE: &str = "partition.meta";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMeta {
    pub clean_shutdown: bool,
    pub log_start_offset: Offset,
    pub recovery_point: Offset,
}

impl PartitionMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(META_BYTES);
        out.extend_from_slice(&META_MAGIC.to_le_bytes());
        out.extend_from_slice(&META_VERSION.to_le_bytes());
        out.push(u8::from(self.clean_shutdown));
        out.push(0);
        out.extend_from_slice(&self.log_start_offset.0.to_le_bytes());
        out.extend_from_slice(&self.recovery_point.0.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(out.len(), META_BYTES);
        out
    }

    pub fn decode(file: &[u8]) -> Option<PartitionMeta> {
        if file.len() != META_BYTES {
            return None;
        }
        let (body, crc) = file.split_at(META_BYTES - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        if u32::from_le_bytes(body[0..4].try_into().ok()?) != META_MAGIC
            || u16::from_le_bytes(body[4..6].try_into().ok()?) != META_VERSION
            || body[6] > 1
        {
            return None;
        }
        Some(PartitionMeta {
            clean_shutdown: body[6] == 1,
            log_start_offset: Offset(i64::from_le_bytes(body[8..16].try_into().ok()?)),
            recovery_point: Offset(i64::from_le_bytes(body[16..24].try_into().ok()?)),
        })
    }
}

const CLEANER_MAGIC: u32 = 0x534c_434f; // "SLCO"
const CLEANER_VERSION: u16 = 1;
pub const CLEANER_BYTES: usize = 28;
pub const CLEANER_FILE: &str = "cleaner-offset-checkpoint";

/// What a finished compaction pass leaves behind for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    /// Every record below it was mapped by a finished pass (its older versions are gone).
    pub first_dirty: Offset,
    /// Earliest time a tombstone kept by that pass may be removed.
    pub tombstone_expiry_ms: Option<i64>,
}

impl CleanerCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CLEANER_BYTES);
        out.extend_from_slice(&CLEANER_MAGIC.to_le_bytes());
        out.extend_from_slice(&CLEANER_VERSION.to_le_bytes());
        out.push(u8::from(self.tombstone_expiry_ms.is_some()));
        out.push(0);
        out.extend_from_slice(&self.first_dirty.0.to_le_bytes());
        out.extend_from_slice(&self.tombstone_expiry_ms.unwrap_or(0).to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(out.len(), CLEANER_BYTES);
        out
    }

    pub fn decode(file: &[u8]) -> Option<CleanerCheckpoint> {
        if file.len() != CLEANER_BYTES {
            return None;
        }
        let (body, crc) = file.split_at(CLEANER_BYTES - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        if u32::from_le_bytes(body[0..4].try_into().ok()?) != CLEANER_MAGIC
            || u16::from_le_bytes(body[4..6].try_into().ok()?) != CLEANER_VERSION
            || body[6] > 1
            || body[7] != 0
        {
            return None;
        }
        let expiry = i64::from_le_bytes(body[16..24].try_into().ok()?);
        Some(CleanerCheckpoint {
            first_dirty: Offset(i64::from_le_bytes(body[8..16].try_into().ok()?)),
            tombstone_expiry_ms: (body[6] == 1).then_some(expiry),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the cleaner checkpoint round-trips with and without a tombstone expiry, and
    // any single flipped byte or a wrong length is refused.
    #[test]
    fn cleaner_checkpoint_round_trip() {
        for expiry in [None, Some(-5), Some(i64::MAX)] {
            let c = CleanerCheckpoint {
                first_dirty: Offset(1234),
                tombstone_expiry_ms: expiry,
            };
            let f = c.encode();
            assert_eq!(CleanerCheckpoint::decode(&f), Some(c));
            for i in 0..f.len() {
                let mut bad = f.clone();
                bad[i] ^= 0x10;
                assert_eq!(CleanerCheckpoint::decode(&bad), None, "flip at {i}");
            }
            assert_eq!(CleanerCheckpoint::decode(&f[..f.len() - 1]), None);
        }
    }

    // Proves the checkpoint round-trips and any single flipped byte is refused.
    #[test]
    fn meta_round_trip() {
        let m = PartitionMeta {
            clean_shutdown: true,
            log_start_offset: Offset(5),
            recovery_point: Offset(99),
        };
        let f = m.encode();
        assert_eq!(PartitionMeta::decode(&f), Some(m));
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x10;
            assert_eq!(PartitionMeta::decode(&bad), None, "flip at {i}");
        }
    }
}
