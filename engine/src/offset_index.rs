//! The sparse offset index of one segment: (relative base offset, byte position) pairs,
//! one per `index.interval.bytes` of appended data, strictly increasing in both. Kept in
//! memory for every segment and written as `<base_offset:020>.index` when a segment is
//! sealed or the log is closed. Also owns the trailer shared by both index files, which
//! records what the index describes so a stale or torn index is detected and rebuilt.

/// One entry: batch with base offset `segment base + relative_offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TRAILER_BYTES: usize = 44;
const INDEX_MAGIC: u32 = 0x534c_4958; // "SLIX"

/// Summary of the segment an index file was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexTrailer {
    pub entry_count: u32,
    pub segment_bytes: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
}

/// Position of the last entry at or below `relative_offset` (0 if none).
pub fn lookup(entries: &[OffsetIndexEntry], relative_offset: u32) -> u32 {
    let idx = entries.partition_point(|e| e.relative_offset <= relative_offset);
    if idx == 0 {
        0
    } else {
        entries[idx - 1].position
    }
}

/// Appends `entries` and the trailer to `out`.
pub fn encode(entries: &[OffsetIndexEntry], trailer: IndexTrailer, out: &mut Vec<u8>) {
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_le_bytes());
        out.extend_from_slice(&e.position.to_le_bytes());
    }
    encode_trailer(trailer, out);
}

pub fn encode_trailer(t: IndexTrailer, out: &mut Vec<u8>) {
    out.extend_from_slice(&INDEX_MAGIC.to_le_bytes());
    out.extend_from_slice(&t.entry_count.to_le_bytes());
    out.extend_from_slice(&t.segment_bytes.to_le_bytes());
    out.extend_from_slice(&t.next_offset.to_le_bytes());
    out.extend_from_slice(&t.max_timestamp.to_le_bytes());
    out.extend_from_slice(&t.max_timestamp_offset.to_le_bytes());
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Splits a whole index file into its entry bytes and trailer, checking the magic, the
/// CRC over the whole file and that the entry count matches the file length.
pub fn decode_trailer(file: &[u8], entry_bytes: usize) -> Option<(&[u8], IndexTrailer)> {
    if file.len() < TRAILER_BYTES {
        return None;
    }
    let (body, crc_bytes) = file.split_at(file.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc_bytes.try_into().ok()?) {
        return None;
    }
    let t = &file[file.len() - TRAILER_BYTES..];
    let u32_at = |i: usize| u32::from_le_bytes(t[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(0) != INDEX_MAGIC {
        return None;
    }
    let trailer = IndexTrailer {
        entry_count: u32_at(4),
        segment_bytes: u64_at(8),
        next_offset: u64_at(16) as i64,
        max_timestamp: u64_at(24) as i64,
        max_timestamp_offset: u64_at(32) as i64,
    };
    let entries = &file[..file.len() - TRAILER_BYTES];
    if (trailer.entry_count as usize).checked_mul(entry_bytes) != Some(entries.len()) {
        return None;
    }
    Some((entries, trailer))
}

/// Decodes an offset index file; `None` if it is torn, stale or not increasing.
pub fn decode(file: &[u8]) -> Option<(Vec<OffsetIndexEntry>, IndexTrailer)> {
    let (body, trailer) = decode_trailer(file, OFFSET_ENTRY_BYTES)?;
    let entries: Vec<OffsetIndexEntry> = body
        .chunks_exact(OFFSET_ENTRY_BYTES)
        .map(|c| OffsetIndexEntry {
            relative_offset: u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
        })
        .collect();
    let increasing = entries
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
    let in_bounds = entries
        .iter()
        .all(|e| u64::from(e.position) < trailer.segment_bytes.max(1));
    (increasing && in_bounds).then_some((entries, trailer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(o: u32, p: u32) -> OffsetIndexEntry {
        OffsetIndexEntry {
            relative_offset: o,
            position: p,
        }
    }

    // Proves lookup returns the last entry at or below the target, and 0 before the first.
    #[test]
    fn lookup_finds_floor_entry() {
        let idx = [e(10, 100), e(20, 200), e(30, 300)];
        assert_eq!(lookup(&idx, 0), 0);
        assert_eq!(lookup(&idx, 9), 0);
        assert_eq!(lookup(&idx, 10), 100);
        assert_eq!(lookup(&idx, 29), 200);
        assert_eq!(lookup(&idx, 1000), 300);
        assert_eq!(lookup(&[], 5), 0);
    }

    // Proves an index file round-trips and that any flipped byte or truncation is rejected.
    #[test]
    fn file_round_trip_and_damage() {
        let idx = vec![e(1, 10), e(5, 4000)];
        let t = IndexTrailer {
            entry_count: 2,
            segment_bytes: 9000,
            next_offset: 77,
            max_timestamp: 5,
            max_timestamp_offset: 3,
        };
        let mut file = Vec::new();
        encode(&idx, t, &mut file);
        assert_eq!(decode(&file), Some((idx, t)));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_none(), "flip at {i} accepted");
        }
        assert!(decode(&file[..file.len() - 1]).is_none());
        assert!(decode(&[]).is_none());
    }
}
