//! `partition.meta`: the per-partition checkpoint holding the clean-shutdown flag, the
//! log start offset and the recovery point (every byte below it was fdatasync'ed and
//! checked). Replaced atomically; a missing or damaged file means "not clean, recover
//! everything". Layout in FORMAT.md.

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

#[cfg(test)]
mod tests {
    use super::*;

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
