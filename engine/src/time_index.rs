//! The sparse time index of one segment. An entry (T, O, P) says: every batch before byte
//! position P has a max timestamp of at most T, and T was first reached by the batch with
//! relative offset O. Entries are added alongside offset index entries whenever T grew,
//! so T strictly increases. Written as `<base_offset:020>.timeindex` with the same trailer
//! as the offset index.

use crate::offset_index::{IndexTrailer, decode_trailer, encode_trailer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
    pub position: u32,
}

pub const TIME_ENTRY_BYTES: usize = 16;

/// Position to start scanning for the first batch with max timestamp >= `timestamp_ms`:
/// the position of the last entry whose timestamp is below it (0 if none).
pub fn lookup(entries: &[TimeIndexEntry], timestamp_ms: i64) -> u32 {
    let idx = entries.partition_point(|e| e.timestamp_ms < timestamp_ms);
    if idx == 0 {
        0
    } else {
        entries[idx - 1].position
    }
}

/// The last entry at or before byte position `position`.
pub fn floor_by_position(entries: &[TimeIndexEntry], position: u32) -> Option<TimeIndexEntry> {
    let idx = entries.partition_point(|e| e.position <= position);
    (idx > 0).then(|| entries[idx - 1])
}

pub fn encode(entries: &[TimeIndexEntry], trailer: IndexTrailer, out: &mut Vec<u8>) {
    for e in entries {
        out.extend_from_slice(&e.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&e.relative_offset.to_le_bytes());
        out.extend_from_slice(&e.position.to_le_bytes());
    }
    encode_trailer(trailer, out);
}

pub fn decode(file: &[u8]) -> Option<(Vec<TimeIndexEntry>, IndexTrailer)> {
    let (body, trailer) = decode_trailer(file, TIME_ENTRY_BYTES)?;
    let entries: Vec<TimeIndexEntry> = body
        .chunks_exact(TIME_ENTRY_BYTES)
        .map(|c| TimeIndexEntry {
            timestamp_ms: i64::from_le_bytes(c[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_le_bytes(c[8..12].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(c[12..16].try_into().expect("4 bytes")),
        })
        .collect();
    let increasing = entries
        .windows(2)
        .all(|w| w[0].timestamp_ms < w[1].timestamp_ms && w[0].position < w[1].position);
    increasing.then_some((entries, trailer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(t: i64, o: u32, p: u32) -> TimeIndexEntry {
        TimeIndexEntry {
            timestamp_ms: t,
            relative_offset: o,
            position: p,
        }
    }

    // Proves the scan start is the last position whose preceding batches are all older.
    #[test]
    fn lookup_by_timestamp() {
        let idx = [e(100, 1, 50), e(200, 5, 500), e(300, 9, 900)];
        assert_eq!(lookup(&idx, 50), 0);
        assert_eq!(lookup(&idx, 100), 0);
        assert_eq!(lookup(&idx, 101), 50);
        assert_eq!(lookup(&idx, 250), 500);
        assert_eq!(lookup(&idx, 10_000), 900);
        assert_eq!(floor_by_position(&idx, 499), Some(e(100, 1, 50)));
        assert_eq!(floor_by_position(&idx, 10), None);
    }

    // Proves a time index file round-trips and rejects damage.
    #[test]
    fn file_round_trip() {
        let idx = vec![e(1, 0, 10), e(9, 3, 20)];
        let t = IndexTrailer {
            entry_count: 2,
            segment_bytes: 30,
            next_offset: 4,
            max_timestamp: 9,
            max_timestamp_offset: 3,
        };
        let mut f = Vec::new();
        encode(&idx, t, &mut f);
        assert_eq!(decode(&f), Some((idx, t)));
        f[3] ^= 1;
        assert!(decode(&f).is_none());
    }
}
