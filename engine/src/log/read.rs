//! Reads: whole batches from an offset, served from the active segment's pending
//! batches, then the shard's read cache, then the segment files (each batch's CRC and
//! offset order checked on the way); the ListOffsets lookups by timestamp and max
//! timestamp; and OffsetForLeaderEpoch. Runs on the shard owning the log.
//!
//! Invariants: a read returns whole batches in offset order, at least one when any is
//! readable and `bytes_max` allows none; it never returns a batch ending at or past
//! `max_offset`; a batch that fails its checks ends the read, and a read starting at it
//! gets the error. Reads never take the io or segments lock: they hold `Bytes` and
//! file handles, which a concurrent swap or truncation leaves readable.

use std::rc::Rc;

use bytes::Bytes;
use tracing::debug;

use crate::batch::{self, BatchError, BatchHeader};
use crate::disk::DiskFile;
use crate::error::ReadError;
use crate::offset_index;
use crate::record;
use crate::segment::SCAN_BATCH_BYTES_MAX;
use crate::time_index;
use crate::{LeaderEpoch, Offset, TimestampOffset};

use super::{APPEND_DECOMPRESSED_BYTES_MAX, Log};

/// Smallest disk read when serving a fetch.
const READ_BYTES_MIN: usize = 64 << 10;

/// Whole batches, in offset order, as slices of cached or freshly read buffers.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub batches: Vec<Bytes>,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

impl ReadResult {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }
}

impl Log {
    /// Whole batches starting with the one containing `from`, up to `bytes_max` bytes but
    /// at least one batch. Empty at the log end offset.
    pub async fn read(&self, from: Offset, bytes_max: u32) -> Result<ReadResult, ReadError> {
        self.read_up_to(from, bytes_max, Offset(i64::MAX)).await
    }

    /// `read`, serving only batches that end below `max_offset`: a consumer reads up to
    /// the high watermark, a follower's fetch up to the log end offset. A batch
    /// straddling it is not served. Empty at or past `max_offset`.
    /// A batch that fails its checks ends the read: the batches before it are returned,
    /// and a read starting at it gets the error.
    pub async fn read_up_to(
        &self,
        from: Offset,
        bytes_max: u32,
        max_offset: Offset,
    ) -> Result<ReadResult, ReadError> {
        let (lso, leo) = {
            let st = self.state.borrow();
            if st.closed {
                return Err(ReadError::Closed);
            }
            (st.log_start_offset, st.log_end_offset)
        };
        if from < lso || from > leo {
            return Err(ReadError::OffsetOutOfRange {
                requested: from,
                log_start: lso,
                log_end: leo,
            });
        }
        let batches = self
            .read_batches(from, bytes_max as usize, max_offset)
            .await?;
        let st = self.state.borrow();
        Ok(ReadResult {
            batches,
            log_start_offset: st.log_start_offset,
            log_end_offset: st.log_end_offset,
        })
    }

    /// Whole batches from the one containing `from`, ending below `max_offset`. An error
    /// after some batches were read returns those; the next read starts at the bad one.
    async fn read_batches(
        &self,
        from: Offset,
        bytes_max: usize,
        max_offset: Offset,
    ) -> Result<Vec<Bytes>, ReadError> {
        let mut got = Collected {
            batches: Vec::new(),
            bytes: 0,
            cursor: from,
        };
        loop {
            if !got.batches.is_empty() && got.bytes >= bytes_max {
                break;
            }
            let budget = bytes_max.saturating_sub(got.bytes);
            let take_first = got.batches.is_empty();
            let job = match self.read_step(got.cursor, budget, take_first, max_offset) {
                ReadStep::End => break,
                ReadStep::SkipTo(next) => {
                    got.cursor = next;
                    continue;
                }
                ReadStep::Memory(run) => {
                    if !got.take(run, max_offset) {
                        break;
                    }
                    continue;
                }
                ReadStep::File(job) => job,
            };
            let mut from_file = Vec::new();
            let read = read_from_file(
                &*job.file,
                job.segment,
                job.position,
                job.written,
                got.cursor,
                budget,
                take_first,
                &mut from_file,
            )
            .await;
            let (exhausted, stopped) = match read {
                Ok(exhausted) => (exhausted, false),
                // Serve what is intact before the bad batch; a read from it fails.
                Err(e) if got.batches.is_empty() && from_file.is_empty() => return Err(e),
                Err(_) => (false, true),
            };
            if from_file.is_empty() {
                if let (true, Some(next)) = (exhausted, job.skip_to) {
                    got.cursor = next;
                    continue;
                }
                break;
            }
            let run = from_file.into_iter().map(|b| {
                let last = BatchHeader::new(&b).expect("checked batch").last_offset();
                (last, b)
            });
            if !got.take(run, max_offset) || stopped {
                break;
            }
        }
        Ok(got.batches)
    }

    /// Where the batches at `cursor` come from: the segment's pending batches, the read
    /// cache, or the segment file.
    fn read_step(
        &self,
        cursor: Offset,
        budget: usize,
        take_first: bool,
        max_offset: Offset,
    ) -> ReadStep {
        let st = self.state.borrow();
        if cursor >= st.log_end_offset || cursor >= max_offset {
            return ReadStep::End;
        }
        let Some(seg) = st.segment_for(cursor) else {
            return ReadStep::End;
        };
        if cursor >= seg.next_offset {
            return ReadStep::End;
        }
        let pending = seg.pending_run(cursor, budget, take_first);
        if !pending.is_empty() {
            return ReadStep::Memory(
                pending
                    .into_iter()
                    .map(|p| (p.last_offset, p.bytes))
                    .collect(),
            );
        }
        let cached = self.cache.run(self.cache_id, cursor, budget, take_first);
        if !cached.is_empty() {
            return ReadStep::Memory(
                cached
                    .into_iter()
                    .map(|c| (c.last_offset, c.bytes))
                    .collect(),
            );
        }
        let position = u64::from(offset_index::lookup(
            &seg.offset_index,
            seg.relative(cursor),
        ));
        // Where to go on when the file holds nothing at or after `cursor`: the first
        // pending batch past it (after a gap, which a follower copies from a compacted
        // leader), else the next segment when this one is closed (past the last batch of
        // a compacted segment), else nowhere.
        let first_pending = seg.pending.partition_point(|p| p.last_offset < cursor);
        let skip_to = match seg.pending.get(first_pending) {
            Some(p) => (p.base_offset > cursor).then_some(p.base_offset),
            None => seg.sealed.then_some(seg.next_offset),
        };
        match &seg.file {
            Some(f) if position < seg.written => ReadStep::File(FileRead {
                file: f.clone(),
                segment: seg.base_offset,
                position,
                written: seg.written,
                skip_to,
            }),
            _ => match skip_to {
                Some(next) => ReadStep::SkipTo(next),
                None => ReadStep::End,
            },
        }
    }

    /// The largest batch max timestamp and the last offset of that batch (ListOffsets
    /// MAX_TIMESTAMP).
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        self.state.borrow().max_timestamp
    }

    /// OffsetForLeaderEpoch.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end_offset)
    }

    /// The latest leader epoch seen in the log.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.state.borrow().epochs.latest().map(|e| e.epoch)
    }

    /// ListOffsets by timestamp (Kafka's `LogSegment.findOffsetByTimestamp`): from the
    /// time index's scan start, the first batch whose max timestamp is at or after
    /// `timestamp_ms` is decoded (decompressed if need be) and its first record at or
    /// after both the timestamp and the log start offset answers, with that record's
    /// timestamp. Only that batch is decoded. A batch whose records do not decode answers
    /// with its own max timestamp and base offset, where a consumer would read from.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, ReadError> {
        let start = {
            let st = self.state.borrow();
            let lso = st.log_start_offset;
            let seg = st
                .segments
                .values()
                .find(|s| s.next_offset > lso && s.max_timestamp >= timestamp_ms);
            let Some(seg) = seg else { return Ok(None) };
            let pos = time_index::lookup(&seg.time_index, timestamp_ms);
            let idx = seg.offset_index.partition_point(|e| e.position < pos);
            let at = match seg.offset_index.get(idx) {
                Some(e) if e.position == pos => {
                    Offset(seg.base_offset.0 + i64::from(e.relative_offset))
                }
                _ => seg.base_offset,
            };
            at.max(lso)
        };
        let mut cursor = start;
        loop {
            let batches = self
                .read_batches(cursor, 256 << 10, Offset(i64::MAX))
                .await?;
            if batches.is_empty() {
                return Ok(None);
            }
            for b in &batches {
                let h = BatchHeader::new(b).expect("checked batch");
                if h.max_timestamp() >= timestamp_ms {
                    let lso = self.log_start_offset();
                    match record::first_record_at_or_after(
                        b,
                        timestamp_ms,
                        lso,
                        APPEND_DECOMPRESSED_BYTES_MAX,
                    ) {
                        Ok(Some(found)) => return Ok(Some(found)),
                        // Every record at or after the timestamp lies below the log start
                        // offset (or the header's max overstates them): Kafka goes on to
                        // the next batch.
                        Ok(None) => {}
                        Err(e) => {
                            debug!(base_offset = h.base_offset().0, error = %e, "records of a stored batch do not decode");
                            return Ok(Some(TimestampOffset {
                                timestamp_ms: h.max_timestamp(),
                                offset: h.base_offset().max(lso),
                            }));
                        }
                    }
                }
                cursor = Offset(h.last_offset().0 + 1);
            }
        }
    }

    /// ListOffsets -3 (KIP-734): the largest timestamp in the log and the offset of the
    /// first record carrying it, found by decoding the one batch the log's max timestamp
    /// came from (Kafka 3.9's `offsetOfMaxTimestamp`). A batch that is gone (below the log
    /// start offset) or whose records do not decode answers with the batch's last offset.
    pub async fn offset_for_max_timestamp(&self) -> Result<Option<TimestampOffset>, ReadError> {
        let Some(max) = self.max_timestamp() else {
            return Ok(None);
        };
        if max.offset < self.log_start_offset() {
            return Ok(Some(max));
        }
        let batches = self
            .read_batches(max.offset, 0, self.log_end_offset())
            .await?;
        let Some(b) = batches.first() else {
            return Ok(Some(max));
        };
        let h = BatchHeader::new(b).expect("checked batch");
        if h.max_timestamp() != max.timestamp_ms {
            return Ok(Some(max));
        }
        match record::max_timestamp_record(b, APPEND_DECOMPRESSED_BYTES_MAX) {
            Ok(Some(found)) => Ok(Some(found)),
            Ok(None) => Ok(Some(max)),
            Err(e) => {
                debug!(base_offset = h.base_offset().0, error = %e, "records of a stored batch do not decode");
                Ok(Some(max))
            }
        }
    }
}

/// Reads whole batches from a segment file starting at `position` (an index position at
/// or before the batch containing `from`, or the first batch after `from` when compaction
/// removed it), checking each one's CRC and that offsets increase, into `out`. Says
/// whether the read reached `written` (no batch left to return from this segment). On an
/// error, `out` holds the intact batches before the bad one.
#[allow(clippy::too_many_arguments)]
async fn read_from_file(
    file: &dyn DiskFile,
    segment: Offset,
    mut position: u64,
    written: u64,
    from: Offset,
    budget: usize,
    take_first: bool,
    out: &mut Vec<Bytes>,
) -> Result<bool, ReadError> {
    let corrupt = |position: u64, reason: String| ReadError::Corrupt {
        segment,
        position,
        reason,
    };
    let mut used = 0usize;
    let mut expect: Option<Offset> = None;
    while position < written {
        let want = (budget.max(READ_BYTES_MIN) as u64).min(written - position) as usize;
        let buf = file.read_at(position, want).await?;
        let mut off = 0usize;
        let mut progressed = false;
        while off + batch::HEADER_BYTES <= buf.len() {
            let h = BatchHeader::new(&buf[off..]).expect("length checked");
            let at = position + off as u64;
            let total = h
                .total_bytes()
                .filter(|t| *t as u64 <= written - at && *t <= SCAN_BATCH_BYTES_MAX)
                .ok_or_else(|| corrupt(at, format!("batch length {}", h.batch_length())))?;
            let whole: Bytes = if off + total <= buf.len() {
                buf.slice(off..off + total)
            } else if !progressed && off == 0 {
                let b = file.read_at(at, total).await?;
                if b.len() != total {
                    return Err(corrupt(at, "short read".into()));
                }
                b
            } else {
                break;
            };
            let last = h.last_offset();
            off += total;
            progressed = true;
            // Batches before `from` are skipped unchecked: none is served, so a corrupt
            // one before it does not stop a consumer that moved past it.
            if last < from {
                continue;
            }
            check_read_batch(&whole, segment, at, expect)?;
            let fits = used + total <= budget;
            if !(fits || (out.is_empty() && take_first)) {
                return Ok(false);
            }
            used += total;
            expect = Some(Offset(last.0 + 1));
            out.push(whole);
            if used >= budget {
                return Ok(false);
            }
            if off > buf.len() {
                break;
            }
        }
        if !progressed {
            if buf.len() < batch::HEADER_BYTES {
                return Err(corrupt(position + off as u64, "truncated header".into()));
            }
            break;
        }
        position += off.min(buf.len()) as u64;
        if off > buf.len() {
            position = position - buf.len() as u64 + off as u64;
        }
    }
    Ok(position >= written)
}

/// Checks a batch read from the segment at `segment`, file position `at`: its CRC32C and
/// header, and that its base offset is at least `expect` (the offset after the batch
/// before it in this read).
fn check_read_batch(
    whole: &[u8],
    segment: Offset,
    at: u64,
    expect: Option<Offset>,
) -> Result<(), ReadError> {
    let corrupt = |reason: String| ReadError::Corrupt {
        segment,
        position: at,
        reason,
    };
    batch::validate_stored(whole).map_err(|e| match e {
        BatchError::CrcMismatch { stored, computed } => ReadError::CrcMismatch {
            segment,
            position: at,
            stored,
            computed,
        },
        other => corrupt(other.to_string()),
    })?;
    let h = BatchHeader::new(whole).expect("validated above");
    if let Some(e) = expect
        && h.base_offset() < e
    {
        return Err(corrupt(format!(
            "base offset {} where at least {} was expected",
            h.base_offset().0,
            e.0
        )));
    }
    Ok(())
}

/// The batches a read collected so far and the offset it goes on from.
struct Collected {
    batches: Vec<Bytes>,
    bytes: usize,
    cursor: Offset,
}

impl Collected {
    /// Takes the batches of `run` (last offset, bytes) in order, moving the cursor past
    /// each. False when it stopped at a batch ending at or past `max_offset`.
    fn take(&mut self, run: impl IntoIterator<Item = (Offset, Bytes)>, max_offset: Offset) -> bool {
        for (last, bytes) in run {
            if last >= max_offset {
                return false;
            }
            self.bytes += bytes.len();
            self.cursor = Offset(last.0 + 1);
            self.batches.push(bytes);
        }
        true
    }
}

/// Where a read finds the batches at its cursor.
enum ReadStep {
    /// Nothing more to read.
    End,
    /// The segment holds no batch at or after the cursor: go on from this offset.
    SkipTo(Offset),
    /// Batches in memory (pending or cached), as (last offset, bytes).
    Memory(Vec<(Offset, Bytes)>),
    File(FileRead),
}

/// A read of a segment file from an index position.
struct FileRead {
    file: Rc<dyn DiskFile>,
    segment: Offset,
    position: u64,
    written: u64,
    /// Where the read goes on when the file holds no batch at or after the cursor (a
    /// sealed segment whose last batches were compacted away).
    skip_to: Option<Offset>,
}
