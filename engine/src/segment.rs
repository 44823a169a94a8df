//! One segment: a file `<base_offset:020>.log` of whole RecordBatch v2 batches, its
//! in-memory indexes and its unflushed tail. Also the batch scanner used by recovery,
//! truncation, producer-state replay and `sluicectl segment`.
//!
//! Invariants: `written <= size`; bytes `[0, written)` are in the file, `[written, size)`
//! are in `pending` (in order, contiguous); `tail` holds the file bytes from
//! `align_down(written)` to `written` unless `tail_stale`.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::Offset;
use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::disk::DiskFile;
use crate::offset_index::{self, IndexTrailer, OffsetIndexEntry};
use crate::time_index::{self, TimeIndexEntry};

/// Bytes read per I/O while scanning a segment.
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

pub fn segment_path(dir: &Path, base: Offset, ext: &str) -> PathBuf {
    dir.join(format!("{:020}.{ext}", base.0))
}

/// Parses `<20 digits>.<ext>` file names.
pub fn parse_name(name: &str, ext: &str) -> Option<Offset> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

#[derive(Debug, Clone)]
pub(crate) struct PendingBatch {
    pub position: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub bytes: Bytes,
}

pub(crate) struct Segment {
    pub base_offset: Offset,
    pub file: Option<Rc<dyn DiskFile>>,
    pub size: u64,
    pub written: u64,
    pub tail: Bytes,
    pub tail_stale: bool,
    pub pending: VecDeque<PendingBatch>,
    pub next_offset: Offset,
    pub offset_index: Vec<OffsetIndexEntry>,
    pub time_index: Vec<TimeIndexEntry>,
    pub bytes_since_index: u64,
    /// Largest batch max timestamp in the segment (i64::MIN when empty).
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    pub max_timestamp_offset: Offset,
    /// Max timestamp of the segment's first batch (`max.compaction.lag.ms`). Known for
    /// segments built batch by batch; read from the file by the cleaner, once, for
    /// segments whose indexes were loaded at open. None while not known or empty.
    pub first_batch_timestamp: Option<i64>,
    /// Wall clock of the first append since the segment became active (segment.ms).
    pub first_append_ms: Option<i64>,
    pub sealed: bool,
    /// Sealed, flushed, trimmed to `size` and indexes written.
    pub finalized: bool,
}

impl Segment {
    pub fn new(base_offset: Offset) -> Segment {
        Segment {
            base_offset,
            file: None,
            size: 0,
            written: 0,
            tail: Bytes::new(),
            tail_stale: false,
            pending: VecDeque::new(),
            next_offset: base_offset,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            max_timestamp: i64::MIN,
            max_timestamp_offset: Offset(-1),
            first_batch_timestamp: None,
            first_append_ms: None,
            sealed: false,
            finalized: false,
        }
    }

    pub fn relative(&self, offset: Offset) -> u32 {
        let rel = offset.0 - self.base_offset.0;
        u32::try_from(rel.max(0)).unwrap_or(u32::MAX)
    }

    /// Accounts a batch placed at `position` (== `size`): indexes, size, offsets, max
    /// timestamp. Shared by append and index rebuild so both build identical indexes.
    pub fn note_batch(
        &mut self,
        position: u64,
        h: &BatchHeader<'_>,
        len: u64,
        index_interval_bytes: u64,
    ) {
        assert_eq!(position, self.size);
        assert!(position + len <= u64::from(u32::MAX));
        if position > 0 && self.bytes_since_index >= index_interval_bytes {
            let relative_offset = self.relative(h.base_offset());
            self.offset_index.push(OffsetIndexEntry {
                relative_offset,
                position: position as u32,
            });
            let last_ts = self.time_index.last().map_or(i64::MIN, |e| e.timestamp_ms);
            if self.max_timestamp > last_ts {
                self.time_index.push(TimeIndexEntry {
                    timestamp_ms: self.max_timestamp,
                    relative_offset: self.relative(self.max_timestamp_offset),
                    position: position as u32,
                });
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        if position == 0 {
            self.first_batch_timestamp = Some(h.max_timestamp());
        }
        if h.max_timestamp() > self.max_timestamp {
            self.max_timestamp = h.max_timestamp();
            self.max_timestamp_offset = h.last_offset();
        }
        self.size = position + len;
        self.next_offset = Offset(h.last_offset().0 + 1);
    }

    pub fn trailer(&self) -> IndexTrailer {
        IndexTrailer {
            entry_count: 0,
            segment_bytes: self.size,
            next_offset: self.next_offset.0,
            max_timestamp: self.max_timestamp,
            max_timestamp_offset: self.max_timestamp_offset.0,
        }
    }

    pub fn encode_indexes(&self) -> (Vec<u8>, Vec<u8>) {
        let mut off = Vec::with_capacity(self.offset_index.len() * 8 + 64);
        let mut t = self.trailer();
        t.entry_count = self.offset_index.len() as u32;
        offset_index::encode(&self.offset_index, t, &mut off);
        let mut time = Vec::with_capacity(self.time_index.len() * 16 + 64);
        t.entry_count = self.time_index.len() as u32;
        time_index::encode(&self.time_index, t, &mut time);
        (off, time)
    }

    /// Adopts index files if both decode and describe exactly `self.size` bytes.
    pub fn load_indexes(&mut self, offset_file: &[u8], time_file: &[u8]) -> bool {
        let (Some((oi, ot)), Some((ti, tt))) = (
            offset_index::decode(offset_file),
            time_index::decode(time_file),
        ) else {
            return false;
        };
        let same = |a: IndexTrailer, b: IndexTrailer| {
            a.segment_bytes == b.segment_bytes
                && a.next_offset == b.next_offset
                && a.max_timestamp == b.max_timestamp
                && a.max_timestamp_offset == b.max_timestamp_offset
        };
        if !same(ot, tt) || ot.segment_bytes != self.size || ot.next_offset < self.base_offset.0 {
            return false;
        }
        // A compacted segment may be empty yet span offsets; a non-empty one spans some.
        if self.size > 0 && ot.next_offset == self.base_offset.0 {
            return false;
        }
        self.bytes_since_index = self.size - oi.last().map_or(0, |e| u64::from(e.position));
        self.offset_index = oi;
        self.time_index = ti;
        self.next_offset = Offset(ot.next_offset);
        self.max_timestamp = ot.max_timestamp;
        self.max_timestamp_offset = Offset(ot.max_timestamp_offset);
        true
    }

    /// The pending batches starting with the one containing `from`, within `budget`
    /// bytes (the first one always when `take_first`).
    pub fn pending_run(&self, from: Offset, budget: usize, take_first: bool) -> Vec<PendingBatch> {
        let mut out = Vec::new();
        let Some(first) = self.pending.front() else {
            return out;
        };
        if from < first.base_offset {
            return out;
        }
        let start = self.pending.partition_point(|p| p.last_offset < from);
        let mut used = 0usize;
        for p in self.pending.iter().skip(start) {
            let fits = used + p.bytes.len() <= budget;
            if !(fits || (out.is_empty() && take_first)) {
                break;
            }
            used += p.bytes.len();
            out.push(p.clone());
        }
        out
    }
}

/// Why a scan stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStop {
    pub position: u64,
    pub reason: String,
}

/// A batch length above this is treated as corruption when scanning (bounds the memory
/// a damaged length field can make a scan allocate).
pub const SCAN_BATCH_BYTES_MAX: usize = 128 << 20;
/// Chunk reads kept in flight ahead of the parser while scanning.
const SCAN_READ_AHEAD: usize = 2;

/// Reads batches of `file` from `start` to `end`, checking each (length bounded by the
/// remaining bytes and `SCAN_BATCH_BYTES_MAX`, magic, CRC32C when `check_crc`, base offsets
/// increasing from `expect_base` when given: compaction leaves gaps) and handing each whole
/// batch with its position to `visit`. Chunks are read ahead while earlier ones are
/// parsed. Returns where a bad batch starts, if any.
pub async fn scan_file(
    file: &Rc<dyn DiskFile>,
    start: u64,
    end: u64,
    expect_base: Option<Offset>,
    check_crc: bool,
    visit: &mut dyn FnMut(u64, &[u8]),
) -> io::Result<Option<ScanStop>> {
    let mut checks = BatchChecks {
        check_crc,
        expect_base,
    };
    // Reads of fixed chunks run ahead; `window` holds the unparsed bytes from `at` on.
    let mut reads: VecDeque<glommio::Task<io::Result<Bytes>>> = VecDeque::new();
    let mut next_read = start;
    let mut window: Vec<u8> = Vec::new();
    let mut at = start;
    loop {
        read_ahead(&mut reads, file, &mut next_read, end);
        let (off, need) = match scan_window(&window, at, end, &mut checks, visit) {
            Ok(parsed) => parsed,
            Err(stop) => return Ok(Some(stop)),
        };
        window.drain(..off);
        at += off as u64;
        if at >= end {
            return Ok(None);
        }
        let Some(read) = reads.pop_front() else {
            let reason = if (end - at) < HEADER_BYTES as u64 {
                "truncated header"
            } else {
                "short file"
            };
            return Ok(Some(ScanStop {
                position: at,
                reason: reason.into(),
            }));
        };
        let chunk = read.await?;
        if chunk.is_empty() {
            return Ok(Some(ScanStop {
                position: at,
                reason: "short file".into(),
            }));
        }
        window.reserve(need.max(chunk.len()));
        window.extend_from_slice(&chunk);
    }
}

/// Starts chunk reads of `file` from `next_read` towards `end` until `SCAN_READ_AHEAD`
/// are in flight.
fn read_ahead(
    reads: &mut VecDeque<glommio::Task<io::Result<Bytes>>>,
    file: &Rc<dyn DiskFile>,
    next_read: &mut u64,
    end: u64,
) {
    while reads.len() < SCAN_READ_AHEAD && *next_read < end {
        let len = SCAN_CHUNK_BYTES.min((end - *next_read) as usize);
        let (f, pos) = (file.clone(), *next_read);
        reads.push_back(glommio::spawn_local(
            async move { f.read_at(pos, len).await },
        ));
        *next_read += len as u64;
    }
}

/// Checks and visits every whole batch at the front of `window` (the file's bytes from
/// `at`). Returns the bytes consumed and the bytes the window must hold for the next
/// batch, or where a bad batch starts.
fn scan_window(
    window: &[u8],
    at: u64,
    end: u64,
    checks: &mut BatchChecks,
    visit: &mut dyn FnMut(u64, &[u8]),
) -> Result<(usize, usize), ScanStop> {
    let mut off = 0usize;
    let mut need = HEADER_BYTES;
    while window.len() - off >= HEADER_BYTES {
        let pos = at + off as u64;
        let h = BatchHeader::new(&window[off..]).expect("length checked");
        let total = match h.total_bytes() {
            Some(t) if t as u64 <= end - pos && t <= SCAN_BATCH_BYTES_MAX => t,
            _ => {
                let reason = format!(
                    "batch length {} with {} bytes left",
                    h.batch_length(),
                    end - pos
                );
                return Err(ScanStop {
                    position: pos,
                    reason,
                });
            }
        };
        if window.len() - off < total {
            need = total;
            break;
        }
        let whole = &window[off..off + total];
        checks.check(pos, whole)?;
        visit(pos, whole);
        off += total;
    }
    Ok((off, need))
}

/// What `scan_file` checks of each batch besides its length.
struct BatchChecks {
    check_crc: bool,
    /// The smallest base offset the next batch may have (None: not checked).
    expect_base: Option<Offset>,
}

impl BatchChecks {
    /// Checks the whole batch at file position `at`: magic or CRC32C, and that offsets
    /// increase.
    fn check(&mut self, at: u64, whole: &[u8]) -> Result<(), ScanStop> {
        let h = BatchHeader::new(whole).expect("length checked");
        let verdict = if self.check_crc {
            batch::validate_stored(whole)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if h.magic() != batch::MAGIC_V2 {
            Err(format!("magic {}", h.magic()))
        } else {
            Ok(())
        };
        verdict.map_err(|reason| ScanStop {
            position: at,
            reason,
        })?;
        if let Some(expected) = self.expect_base {
            // Compaction may remove whole batches, so offsets only have to increase.
            if h.base_offset() < expected || h.last_offset_delta() < 0 {
                let reason = format!(
                    "base offset {} where at least {} was expected",
                    h.base_offset().0,
                    expected.0
                );
                return Err(ScanStop {
                    position: at,
                    reason,
                });
            }
            self.expect_base = Some(Offset(h.last_offset().0 + 1));
        }
        Ok(())
    }
}

/// One batch as `sluicectl segment dump` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub position: u64,
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub bytes: u32,
    pub partition_leader_epoch: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub codec: batch::Codec,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
    pub transactional: bool,
    pub control: bool,
}

/// Walks a segment held in memory (offline tools): every batch that verifies, then the
/// first problem if the bytes do not end cleanly. Zero bytes at the end (O_DIRECT padding
/// of an unclean stop) are reported as padding, not corruption.
pub fn scan_bytes(data: &[u8]) -> (Vec<BatchSummary>, Option<ScanStop>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut expect: Option<Offset> = None;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.iter().all(|b| *b == 0) {
            return (
                out,
                Some(ScanStop {
                    position: pos as u64,
                    reason: format!("{} zero bytes of padding", rest.len()),
                }),
            );
        }
        let h = match BatchHeader::new(rest) {
            Ok(h) => h,
            Err(e) => {
                return (
                    out,
                    Some(ScanStop {
                        position: pos as u64,
                        reason: e.to_string(),
                    }),
                );
            }
        };
        let total = match h.total_bytes() {
            Some(t) if t <= rest.len() => t,
            _ => {
                let reason = format!(
                    "batch length {} does not fit the {} bytes left",
                    h.batch_length(),
                    rest.len()
                );
                return (
                    out,
                    Some(ScanStop {
                        position: pos as u64,
                        reason,
                    }),
                );
            }
        };
        if let Err(e) = batch::validate_stored(&rest[..total]) {
            return (
                out,
                Some(ScanStop {
                    position: pos as u64,
                    reason: e.to_string(),
                }),
            );
        }
        if let Some(expected) = expect
            && h.base_offset() < expected
        {
            let reason = format!(
                "base offset {} where at least {} was expected",
                h.base_offset().0,
                expected.0
            );
            return (
                out,
                Some(ScanStop {
                    position: pos as u64,
                    reason,
                }),
            );
        }
        expect = Some(Offset(h.last_offset().0 + 1));
        out.push(BatchSummary {
            position: pos as u64,
            base_offset: h.base_offset(),
            last_offset: h.last_offset(),
            bytes: total as u32,
            partition_leader_epoch: h.partition_leader_epoch(),
            base_timestamp: h.base_timestamp(),
            max_timestamp: h.max_timestamp(),
            codec: h.codec(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            records_count: h.records_count(),
            transactional: h.is_transactional(),
            control: h.is_control(),
        });
        pos += total;
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_test_batch, stamp_offset_and_epoch};

    // Proves segment file names round-trip and foreign names are ignored.
    #[test]
    fn names() {
        let p = segment_path(Path::new("/d"), Offset(42), "log");
        assert_eq!(p, PathBuf::from("/d/00000000000000000042.log"));
        assert_eq!(
            parse_name("00000000000000000042.log", "log"),
            Some(Offset(42))
        );
        assert_eq!(parse_name("00000000000000000042.index", "log"), None);
        assert_eq!(parse_name("42.log", "log"), None);
        assert_eq!(parse_name("0000000000000000004x.log", "log"), None);
    }

    // Proves note_batch places index entries every interval and the time index tracks the
    // running maximum, and that indexes survive an encode/load round trip.
    #[test]
    fn index_building() {
        let mut s = Segment::new(Offset(100));
        let mut pos = 0;
        for i in 0..10i64 {
            let mut b = build_test_batch(2, 40, 1000 + (i % 4) * 10, None);
            stamp_offset_and_epoch(&mut b, Offset(100 + 2 * i), 0);
            let h = BatchHeader::new(&b).unwrap();
            s.note_batch(pos, &h, b.len() as u64, 200);
            pos += b.len() as u64;
        }
        assert_eq!(s.next_offset, Offset(120));
        assert_eq!(s.size, pos);
        assert!(!s.offset_index.is_empty());
        assert!(
            s.offset_index
                .windows(2)
                .all(|w| w[0].position < w[1].position)
        );
        assert!(
            s.time_index
                .windows(2)
                .all(|w| w[0].timestamp_ms < w[1].timestamp_ms)
        );
        assert_eq!(s.max_timestamp, 1030);
        let (oi, ti) = s.encode_indexes();
        let mut t = Segment::new(Offset(100));
        t.size = s.size;
        assert!(t.load_indexes(&oi, &ti));
        assert_eq!(t.offset_index, s.offset_index);
        assert_eq!(t.time_index, s.time_index);
        assert_eq!(t.next_offset, s.next_offset);
        let mut wrong_size = Segment::new(Offset(100));
        wrong_size.size = s.size + 1;
        assert!(!wrong_size.load_indexes(&oi, &ti));
    }

    // Proves the offline scanner lists good batches, calls zero padding padding, and
    // stops at a flipped byte with its position.
    #[test]
    fn scan_bytes_reports() {
        let mut data = Vec::new();
        for i in 0..3 {
            let mut b = build_test_batch(1, 10, 5, None);
            stamp_offset_and_epoch(&mut b, Offset(i), 0);
            data.extend_from_slice(&b);
        }
        let (ok, stop) = scan_bytes(&data);
        assert_eq!(ok.len(), 3);
        assert!(stop.is_none());
        let mut padded = data.clone();
        padded.resize(data.len() + 300, 0);
        let (ok, stop) = scan_bytes(&padded);
        assert_eq!(ok.len(), 3);
        assert!(stop.unwrap().reason.contains("padding"));
        let mut bad = data.clone();
        bad[71 + 30] ^= 1;
        let (ok, stop) = scan_bytes(&bad);
        assert_eq!(ok.len(), 1);
        assert_eq!(stop.unwrap().position, 71);
    }
}
