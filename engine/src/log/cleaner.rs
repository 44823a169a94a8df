//! Log compaction of one partition (`cleanup.policy` compact or compact,delete):
//! `Log::compact` runs a cleaning pass in bounded slices so the shard keeps serving
//! appends and reads between them. Runs on the shard owning the log.
//!
//! A pass: (1) map: the key -> newest offset map (`compaction::KeyOffsetMap`) is built
//! over the dirty part of the log, from the first offset the last finished pass did not
//! map up to the first segment that is not closed and finalized (never the active one);
//! (2) clean: every closed segment from the start up to there is rewritten batch by batch
//! into `<base>.log.cleaned` (offsets, timestamps, producer fields and codec kept, CRC
//! refreshed), fsync'ed, and swapped in under the segments lock (not the io lock: flushes
//! of the active segment, acks=all produces and OffsetCommits, go on during the swap's
//! file work and directory syncs; retention, delete-records, truncation and close wait
//! for it).
//!
//! Swap order, crash-safe at every step: remove the segment's index files, sync the
//! directory, rename `.cleaned` over `.log` (atomic), sync the directory, write the new
//! indexes. A copy left with no batch replaces nothing: unless it is the first segment,
//! its files are deleted and the previous segment spans its offsets. A crash before the
//! rename leaves the original (the `.cleaned` leftover is deleted on open; missing
//! indexes are rebuilt by scanning); after it, the cleaned file. The in-memory segment
//! map changes in one synchronous step after the last file step. Readers holding the old
//! file or batch `Bytes` keep reading the old bytes; both versions hold each batch at the
//! same offsets or not at all, so a read racing with the swap never sees a batch twice or
//! a hole.
//!
//! Lags, as Kafka's cleaner: `min.compaction.lag.ms` ends the dirty part before the first
//! segment not cleaned yet whose largest timestamp is newer than now minus the lag, so
//! such records are neither mapped nor removed (the dirty share is computed up to there
//! too); `max.compaction.lag.ms` makes a pass due, whatever the dirty share, once the
//! first batch of a closed segment not cleaned yet is older than now minus the lag (and
//! the active segment rolls at that age, see `Log::enforce_retention`). Both are checked
//! when a pass starts, against the `now_ms` the caller passes.
//!
//! Tombstones: a tombstone that is the newest record of its key is kept until
//! `delete.retention.ms` after its own timestamp (CreateTime, or the batch's
//! LogAppendTime), then removed by the next pass; the earliest such expiry makes a pass
//! due even when nothing is dirty.
//!
//! Progress survives a restart (Kafka's cleaner offset checkpoint): after each finished
//! pass the first dirty offset and the earliest tombstone expiry are written to
//! `cleaner-offset-checkpoint` (whole-file replacement under the segments lock, so it is
//! ordered with truncations; never on the append path). Open loads it, so the first pass
//! after a restart maps only the dirty part and the dirty share counts only that part.
//! Invariant: the checkpoint on disk is never above the records a finished pass mapped.
//! A value too high could let an expired tombstone go while an older value of its key,
//! never mapped, stays: the key would come back. Hence a lost (older) checkpoint only
//! costs mapping again, while a truncation below it writes the truncation point first,
//! before any file is cut, and open ignores (and removes) a damaged checkpoint or one
//! past the log end offset, raising one below the log start offset to it.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::batch::{self, BatchHeader};
use crate::checkpoint::{CLEANER_FILE, CleanerCheckpoint};
use crate::compaction::{self, CleanRules, CleanedBatch, CompactError, KeyOffsetMap};
use crate::disk::{Disk, DiskFile, align_down};
use crate::error::LogIoError;
use crate::offset_index;
use crate::segment::{SCAN_BATCH_BYTES_MAX, Segment, segment_path};
use crate::{CleanupPolicy, LogConfig, Offset};

use super::append::tail_of;
use super::{Log, State};

/// Suffix of a compacted copy being written.
pub(super) const CLEANED_SUFFIX: &str = ".cleaned";
/// Keys one pass maps at most (the rest waits for the next pass).
pub const CLEANER_KEYS_MAX: usize = 4 << 20;
/// Bytes of keys one pass maps at most (Kafka's dedupe buffer is 128 MB).
pub const CLEANER_KEY_BYTES_MAX: usize = 128 << 20;
/// Cap on one batch's decompressed records while cleaning.
pub const CLEANER_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// The compacted copy is written in pieces of about this size.
const CLEANER_WRITE_BYTES: usize = 1 << 20;
/// Smallest read of a source segment.
const CLEANER_READ_BYTES_MIN: usize = 64 << 10;

/// What one `compact` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// No pass is left in progress: it finished, was dropped, or none was due. When
    /// false, call again (after letting other work run) to continue.
    pub idle: bool,
    /// A pass finished in this call.
    pub pass_finished: bool,
    /// Segment bytes read in this call.
    pub bytes_read: u64,
    /// Segments replaced by their compacted copy in this call.
    pub segments_cleaned: u32,
    /// Their sizes before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Of `bytes_read`, the bytes read to build the key map (the dirty part).
    pub bytes_mapped: u64,
}

impl CompactOutcome {
    /// Adds the work of a later call: the counts sum, `pass_finished` is whether any call
    /// finished a pass, and `idle` is the later call's.
    pub fn add(&mut self, later: &CompactOutcome) {
        self.idle = later.idle;
        self.pass_finished |= later.pass_finished;
        self.bytes_read += later.bytes_read;
        self.segments_cleaned += later.segments_cleaned;
        self.bytes_before += later.bytes_before;
        self.bytes_after += later.bytes_after;
        self.bytes_mapped += later.bytes_mapped;
    }
}

#[derive(Default)]
pub(super) struct Cleaner {
    /// Everything below was mapped by a finished pass (None: nothing yet, since open).
    first_dirty: Option<Offset>,
    /// Earliest time a kept tombstone may be removed.
    tombstone_expiry_ms: Option<i64>,
    /// What `cleaner-offset-checkpoint` holds (None: no usable file).
    persisted: Option<CleanerCheckpoint>,
    pass: Option<Pass>,
}

impl Cleaner {
    /// The progress recorded in `dir`'s checkpoint, validated against the log as opened:
    /// a damaged checkpoint, or one past `log_end` (recovery cut the log below it), is
    /// logged, removed (the caller's next directory sync makes that durable, so the value
    /// cannot become valid again once the log grows past it) and ignored; one below
    /// `log_start` (retention or delete-records removed cleaned segments) is raised to
    /// it.
    ///
    /// Kafka's upper bound is the active segment's base offset. Here a segment is
    /// created by its first flush, so a log reopened after a pass that ended at an
    /// empty active segment has the last cleaned segment active again, and the first
    /// dirty offset is its end: the log end offset. Every record below it was mapped.
    pub(super) async fn load(
        disk: &dyn Disk,
        dir: &Path,
        log_start: Offset,
        log_end: Offset,
    ) -> std::io::Result<Cleaner> {
        let path = dir.join(CLEANER_FILE);
        let Some(bytes) = disk.read_file(&path).await? else {
            return Ok(Cleaner::default());
        };
        let loaded = CleanerCheckpoint::decode(&bytes);
        let usable = match loaded {
            None => {
                warn!(dir = %dir.display(), "cleaner checkpoint damaged; ignoring it, the next pass maps the whole log");
                None
            }
            Some(c) if c.first_dirty > log_end => {
                warn!(dir = %dir.display(), first_dirty = c.first_dirty.0, log_end_offset = log_end.0,
                    "cleaner checkpoint past the log end; ignoring it, the next pass maps the whole log");
                None
            }
            Some(c) if c.first_dirty < log_start => {
                info!(dir = %dir.display(), first_dirty = c.first_dirty.0, log_start_offset = log_start.0,
                    "cleaner checkpoint below the log start offset; dirty part starts at the log start");
                Some(CleanerCheckpoint {
                    first_dirty: log_start,
                    ..c
                })
            }
            Some(c) => Some(c),
        };
        if usable.is_none() {
            disk.remove_file(&path)?;
        }
        Ok(Cleaner {
            first_dirty: usable.map(|c| c.first_dirty),
            tombstone_expiry_ms: usable.and_then(|c| c.tombstone_expiry_ms),
            persisted: usable.and(loaded),
            pass: None,
        })
    }
}

struct Pass {
    truncations: u64,
    /// Exclusive end of what is mapped and cleaned.
    end: Offset,
    map: KeyOffsetMap,
    phase: Phase,
    tombstone_expiry_ms: Option<i64>,
    undecodable_batches: u64,
    /// Ended early by a truncation: nothing learned may be kept.
    dropped: bool,
}

enum Phase {
    Map {
        cursor: Offset,
    },
    Clean {
        next: Offset,
        current: Option<Box<SegmentClean>>,
    },
}

/// One segment being copied into its compacted version.
struct SegmentClean {
    base: Offset,
    src: Rc<dyn DiskFile>,
    src_size: u64,
    src_next_offset: Offset,
    read_pos: u64,
    out_path: PathBuf,
    out: Rc<dyn DiskFile>,
    /// Offsets, size and indexes of the copy.
    built: Segment,
    written: u64,
    tail: Bytes,
    pending: Vec<Bytes>,
    pending_bytes: usize,
    changed: bool,
}

/// Resets `Log::cleaning` however the call ends.
struct CleaningGuard<'a>(&'a Cell<bool>);

impl Drop for CleaningGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

fn cleaned_path(dir: &std::path::Path, base: Offset) -> PathBuf {
    let mut p = segment_path(dir, base, "log").into_os_string();
    p.push(CLEANED_SUFFIX);
    PathBuf::from(p)
}

/// Reads whole, CRC-checked batches of `file` from `pos` (a batch boundary) to `end`:
/// about `want` bytes, at least one batch. Returns them with their positions and the
/// position after the last.
async fn read_whole_batches(
    file: &Rc<dyn DiskFile>,
    segment: Offset,
    pos: u64,
    end: u64,
    want: usize,
) -> Result<(Vec<(u64, Bytes)>, u64), LogIoError> {
    let corrupt = |position: u64, reason: String| LogIoError::Corrupt {
        segment,
        position,
        reason,
    };
    let io = |e: std::io::Error| LogIoError::LogFailed(format!("read segment: {e}"));
    let len = (want.max(CLEANER_READ_BYTES_MIN) as u64).min(end - pos) as usize;
    let buf = file.read_at(pos, len).await.map_err(io)?;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + batch::HEADER_BYTES <= buf.len() {
        let at = pos + off as u64;
        let h = BatchHeader::new(&buf[off..]).expect("length checked");
        let total = h
            .total_bytes()
            .filter(|t| *t as u64 <= end - at && *t <= SCAN_BATCH_BYTES_MAX)
            .ok_or_else(|| corrupt(at, format!("batch length {}", h.batch_length())))?;
        let whole = if off + total <= buf.len() {
            buf.slice(off..off + total)
        } else if out.is_empty() {
            let b = file.read_at(at, total).await.map_err(io)?;
            if b.len() != total {
                return Err(corrupt(at, "short read".into()));
            }
            b
        } else {
            break;
        };
        batch::validate_stored(&whole).map_err(|e| corrupt(at, e.to_string()))?;
        out.push((at, whole));
        off += total;
    }
    if out.is_empty() {
        return Err(corrupt(pos, "truncated batch".into()));
    }
    Ok((out, pos + off as u64))
}

impl Log {
    /// Runs compaction for about `bytes_max` bytes of segment reads, then returns so the
    /// caller can let appends and reads run before calling again (while `idle` is
    /// false). A new pass starts only when one is due (`min_cleanable_dirty_permille`,
    /// `max_compaction_lag_ms`, or a kept tombstone expired) and cleans up to the first
    /// segment `min_compaction_lag_ms` holds back, and before the first segment that
    /// reaches `high_watermark` (or the durable end): nothing at or above the high
    /// watermark is compacted. A pass in progress whose end is above the `high_watermark`
    /// of a later call is dropped. Does nothing for `cleanup.policy=delete`.
    pub async fn compact(
        &self,
        now_ms: i64,
        bytes_max: u64,
        high_watermark: Offset,
    ) -> Result<CompactOutcome, LogIoError> {
        let mut outcome = CompactOutcome::default();
        if self.cleaning.replace(true) {
            return Ok(outcome);
        }
        let _running = CleaningGuard(&self.cleaning);
        let config = *self.config.borrow();
        let stop = {
            let st = self.state.borrow();
            if let Some(reason) = &st.failed {
                Some(Err(LogIoError::LogFailed(reason.clone())))
            } else if st.closed {
                Some(Err(LogIoError::Closed))
            } else if config.cleanup_policy == CleanupPolicy::Delete {
                Some(Ok(()))
            } else {
                None
            }
        };
        if let Some(result) = stop {
            self.drop_pass();
            outcome.idle = true;
            return result.map(|()| outcome);
        }
        let bound = high_watermark.min(self.durable_offset());
        let pass = self.cleaner.borrow_mut().pass.take();
        let pass = match pass {
            Some(p) if p.end <= bound => Some(p),
            dropped => {
                if let Some(mut p) = dropped {
                    debug!(dir = %self.dir.display(), end = p.end.0, high_watermark = bound.0,
                        "compaction pass above the high watermark dropped");
                    self.discard_current(&mut p);
                }
                if config.max_compaction_lag_ms != i64::MAX {
                    self.load_first_batch_timestamps().await?;
                }
                self.start_pass(now_ms, &config, bound)
            }
        };
        let Some(mut pass) = pass else {
            outcome.idle = true;
            return Ok(outcome);
        };
        let rules = CleanRules {
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            decompressed_bytes_max: CLEANER_DECOMPRESSED_BYTES_MAX,
        };
        let interval = u64::from(config.index_interval_bytes.max(1));
        let result = self
            .run_slices(&mut pass, &rules, interval, bytes_max, &mut outcome)
            .await;
        // A truncation during the last step (its swap was refused) ends the pass as one
        // dropped: what it mapped may be gone.
        let truncated = self.state.borrow().truncations != pass.truncations;
        match result {
            Ok(true) if pass.dropped || truncated => outcome.idle = true,
            Ok(true) => {
                {
                    let mut c = self.cleaner.borrow_mut();
                    c.first_dirty = Some(pass.end);
                    c.tombstone_expiry_ms = pass.tombstone_expiry_ms;
                }
                outcome.idle = true;
                outcome.pass_finished = true;
                info!(dir = %self.dir.display(), cleaned_to = pass.end.0, keys = pass.map.len(),
                    undecodable_batches = pass.undecodable_batches, "compaction pass finished");
                self.persist_cleaner_checkpoint().await?;
            }
            Ok(false) => self.cleaner.borrow_mut().pass = Some(pass),
            Err(e) => {
                self.discard_current(&mut pass);
                return Err(e);
            }
        }
        Ok(outcome)
    }

    /// Writes the in-memory progress to `cleaner-offset-checkpoint` unless the file holds
    /// it already. Under the segments lock, so a truncation (which lowers the progress
    /// and writes it itself) is never overtaken by an older, higher value.
    async fn persist_cleaner_checkpoint(&self) -> Result<(), LogIoError> {
        let _guard = self.lock_segments().await;
        let want = {
            let st = self.state.borrow();
            let c = self.cleaner.borrow();
            if st.closed || st.failed.is_some() {
                return Ok(());
            }
            let Some(first_dirty) = c.first_dirty else {
                return Ok(());
            };
            let want = CleanerCheckpoint {
                first_dirty,
                tombstone_expiry_ms: c.tombstone_expiry_ms,
            };
            if c.persisted == Some(want) {
                return Ok(());
            }
            want
        };
        self.write_cleaner_checkpoint(want).await
    }

    async fn write_cleaner_checkpoint(&self, c: CleanerCheckpoint) -> Result<(), LogIoError> {
        self.disk
            .write_file_atomic(&self.dir.join(CLEANER_FILE), &c.encode())
            .await
            .map_err(|e| LogIoError::from(self.fail("cleaner checkpoint", e)))?;
        self.cleaner.borrow_mut().persisted = Some(c);
        Ok(())
    }

    /// A truncation to `end`: records from `end` on are new, so the progress drops to
    /// `end` (Kafka's maybeTruncateCheckpoint), on disk before the caller cuts any file.
    /// The caller holds both locks.
    pub(super) async fn truncate_cleaner_checkpoint(&self, end: Offset) -> Result<(), LogIoError> {
        let lowered = {
            let mut c = self.cleaner.borrow_mut();
            c.first_dirty = c.first_dirty.map(|d| d.min(end));
            c.persisted
                .filter(|p| p.first_dirty > end)
                .map(|p| CleanerCheckpoint {
                    first_dirty: end,
                    ..p
                })
        };
        match lowered {
            Some(c) => self.write_cleaner_checkpoint(c).await,
            None => Ok(()),
        }
    }

    /// Drops a pass in progress and its partial copy.
    fn drop_pass(&self) {
        let pass = self.cleaner.borrow_mut().pass.take();
        if let Some(mut p) = pass {
            self.discard_current(&mut p);
        }
    }

    fn discard_current(&self, pass: &mut Pass) {
        if let Phase::Clean { current, .. } = &mut pass.phase
            && let Some(c) = current.take()
        {
            let _ = self.disk.remove_file(&c.out_path);
        }
    }

    /// End of the cleanable part: the first segment that is not closed and finalized, or
    /// (`min.compaction.lag.ms`) the first one not cleaned yet holding a record newer
    /// than `now_ms` minus the lag, or the first one reaching `bound` (the high
    /// watermark) (Kafka's first uncleanable offset).
    fn cleanable_end(
        st: &State,
        first_dirty: Offset,
        now_ms: i64,
        config: &LogConfig,
        bound: Offset,
    ) -> Offset {
        let lag_ms = config.min_compaction_lag_ms;
        let horizon_ms = now_ms.saturating_sub(lag_ms);
        st.segments
            .values()
            .find(|s| {
                !s.finalized
                    || !s.sealed
                    || s.next_offset > bound
                    || (lag_ms > 0 && s.next_offset > first_dirty && s.max_timestamp > horizon_ms)
            })
            .map_or(st.log_end_offset, |s| s.base_offset)
    }

    /// Whether `max.compaction.lag.ms` makes a pass due: the earliest first-batch
    /// timestamp of the closed segments not cleaned yet is older than `now_ms` minus the
    /// lag. Timestamps below 1 (none set) and segments whose first batch is not known
    /// yet do not count, as in Kafka.
    fn max_lag_due(st: &State, first_dirty: Offset, now_ms: i64, config: &LogConfig) -> bool {
        let horizon_ms = now_ms.saturating_sub(config.max_compaction_lag_ms);
        st.segments
            .values()
            .filter(|s| s.sealed && s.next_offset > first_dirty)
            .filter_map(|s| s.first_batch_timestamp)
            .filter(|t| *t > 0)
            .min()
            .is_some_and(|t| t < horizon_ms)
    }

    /// Reads the first batch header of each closed, not yet cleaned segment whose first
    /// timestamp is unknown (indexes loaded at open), once per segment, for
    /// `max.compaction.lag.ms`. A header that does not parse counts as no timestamp.
    async fn load_first_batch_timestamps(&self) -> Result<(), LogIoError> {
        let first_dirty = self
            .cleaner
            .borrow()
            .first_dirty
            .unwrap_or(Offset(i64::MIN));
        let unknown: Vec<(Offset, Rc<dyn DiskFile>)> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| {
                    s.sealed
                        && s.finalized
                        && s.size >= batch::HEADER_BYTES as u64
                        && s.first_batch_timestamp.is_none()
                        && s.next_offset > first_dirty
                })
                .filter_map(|s| Some((s.base_offset, s.file.clone()?)))
                .collect()
        };
        for (base, file) in unknown {
            let head = file
                .read_at(0, batch::HEADER_BYTES)
                .await
                .map_err(|e| LogIoError::LogFailed(format!("read segment: {e}")))?;
            let timestamp_ms = BatchHeader::new(&head).map_or(i64::MIN, |h| h.max_timestamp());
            let mut st = self.state.borrow_mut();
            // Replaced or truncated meanwhile: its first batch is read again next time.
            if let Some(s) = st.segments.get_mut(&base)
                && s.size >= batch::HEADER_BYTES as u64
                && s.file.as_ref().is_some_and(|f| Rc::ptr_eq(f, &file))
            {
                s.first_batch_timestamp.get_or_insert(timestamp_ms);
            }
        }
        Ok(())
    }

    fn start_pass(&self, now_ms: i64, config: &LogConfig, bound: Offset) -> Option<Pass> {
        let st = self.state.borrow();
        let c = self.cleaner.borrow();
        // A truncation lowered `first_dirty` to its cut (`truncate_cleaner_checkpoint`):
        // what is below is unchanged and stays clean.
        let first_base = *st.segments.keys().next().expect("active segment");
        let first_unmapped = c.first_dirty.unwrap_or(first_base).max(first_base);
        let end = Self::cleanable_end(&st, first_unmapped, now_ms, config, bound);
        if end <= first_base {
            return None;
        }
        let first_dirty = first_unmapped.min(end);
        let (mut dirty, mut total) = (0u64, 0u64);
        for s in st.segments.values().take_while(|s| s.base_offset < end) {
            total += s.size;
            if s.next_offset > first_dirty {
                // The segment holding the first dirty offset (after a reopen, the last
                // cleaned segment took appends) counts from its index entry at or before
                // it.
                let from = if s.base_offset < first_dirty {
                    u64::from(offset_index::lookup(
                        &s.offset_index,
                        s.relative(first_dirty),
                    ))
                } else {
                    0
                };
                dirty += s.size - from.min(s.size);
            }
        }
        let ratio_due = dirty > 0
            && dirty * 1000 >= u64::from(config.min_cleanable_dirty_permille) * total.max(1);
        let lag_due = dirty > 0 && Self::max_lag_due(&st, first_unmapped, now_ms, config);
        let tombstones_due = c.tombstone_expiry_ms.is_some_and(|t| now_ms >= t);
        if !(ratio_due || lag_due || tombstones_due) {
            return None;
        }
        debug!(dir = %self.dir.display(), first_dirty = first_dirty.0, end = end.0, dirty, total,
            ratio_due, lag_due, tombstones_due, "compaction pass starting");
        Some(Pass {
            truncations: st.truncations,
            end,
            map: KeyOffsetMap::new(CLEANER_KEYS_MAX, CLEANER_DECOMPRESSED_BYTES_MAX)
                .with_key_bytes_max(CLEANER_KEY_BYTES_MAX),
            phase: Phase::Map {
                cursor: first_dirty,
            },
            tombstone_expiry_ms: None,
            undecodable_batches: 0,
            dropped: false,
        })
    }

    /// Works on `pass` until about `bytes_max` bytes were read. Ok(true) when it finished.
    async fn run_slices(
        &self,
        pass: &mut Pass,
        rules: &CleanRules,
        interval: u64,
        bytes_max: u64,
        outcome: &mut CompactOutcome,
    ) -> Result<bool, LogIoError> {
        loop {
            if self.state.borrow().truncations != pass.truncations {
                // The map may hold keys of records that are gone: start over later.
                debug!(dir = %self.dir.display(), "log truncated; compaction pass dropped");
                self.discard_current(pass);
                pass.dropped = true;
                return Ok(true);
            }
            if outcome.bytes_read >= bytes_max {
                return Ok(false);
            }
            let budget = (bytes_max - outcome.bytes_read) as usize;
            let mapping = matches!(pass.phase, Phase::Map { .. });
            let done = if mapping {
                self.map_step(pass, budget, outcome).await?
            } else {
                self.clean_step(pass, rules, interval, budget, outcome)
                    .await?
            };
            if done {
                return Ok(true);
            }
        }
    }

    /// Adds the next batches to the key map. Switches to cleaning at the end of the
    /// dirty part or when the map is full. Never finishes the pass.
    async fn map_step(
        &self,
        pass: &mut Pass,
        budget: usize,
        outcome: &mut CompactOutcome,
    ) -> Result<bool, LogIoError> {
        let Phase::Map { cursor } = pass.phase else {
            unreachable!("map_step runs in the map phase");
        };
        let job = {
            let st = self.state.borrow();
            let first = st.segments.values().next().expect("active segment");
            // Segments removed by retention meanwhile: go on from the first one left.
            let cursor = cursor.max(first.base_offset);
            match st.segment_for(cursor) {
                Some(seg) if cursor < pass.end && seg.finalized && seg.sealed => {
                    let pos = u64::from(offset_index::lookup(
                        &seg.offset_index,
                        seg.relative(cursor),
                    ));
                    Some((
                        seg.file.clone(),
                        seg.base_offset,
                        pos,
                        seg.size,
                        seg.next_offset,
                    ))
                }
                _ => None,
            }
        };
        let Some((file, base, pos, size, seg_next)) = job else {
            // The end of the dirty part: clean what is mapped.
            pass.end = pass.end.min(cursor.max(pass.map.end().unwrap_or(cursor)));
            self.begin_clean(pass);
            return Ok(false);
        };
        let cursor = cursor.max(base);
        let (Some(file), true) = (file, pos < size) else {
            pass.phase = Phase::Map { cursor: seg_next };
            return Ok(false);
        };
        let (batches, _) = read_whole_batches(&file, base, pos, size, budget).await?;
        let mut next = cursor;
        for (_, b) in &batches {
            outcome.bytes_read += b.len() as u64;
            outcome.bytes_mapped += b.len() as u64;
            let h = BatchHeader::new(b).expect("checked batch");
            if h.last_offset() < cursor {
                continue;
            }
            if h.base_offset() >= pass.end {
                break;
            }
            match pass.map.add_batch(b) {
                Ok(()) => {}
                Err(CompactError::KeyMapFull { next: full_at, .. }) => {
                    debug!(dir = %self.dir.display(), at = full_at.0, "compaction key map full");
                    pass.end = full_at;
                    self.begin_clean(pass);
                    return Ok(false);
                }
                Err(e) => {
                    // Records that do not decode are kept as they are; none of their keys
                    // supersede anything.
                    warn!(dir = %self.dir.display(), error = %e, "batch records do not decode; compaction keeps the batch");
                    pass.undecodable_batches += 1;
                    pass.map.cover_to(Offset(h.last_offset().0 + 1));
                }
            }
            next = Offset(h.last_offset().0 + 1);
        }
        let last_pos = batches.last().map_or(pos, |(p, b)| p + b.len() as u64);
        if last_pos >= size {
            next = next.max(seg_next);
        }
        if next >= pass.end {
            self.begin_clean(pass);
        } else {
            pass.phase = Phase::Map { cursor: next };
        }
        Ok(false)
    }

    fn begin_clean(&self, pass: &mut Pass) {
        pass.map.cover_to(pass.end);
        let first = *self
            .state
            .borrow()
            .segments
            .keys()
            .next()
            .expect("active segment");
        pass.phase = Phase::Clean {
            next: first,
            current: None,
        };
    }

    /// Copies the next part of the current segment (opening the next segment first if
    /// none is in progress); swaps it in when complete. Ok(true) when no segment is left.
    async fn clean_step(
        &self,
        pass: &mut Pass,
        rules: &CleanRules,
        interval: u64,
        budget: usize,
        outcome: &mut CompactOutcome,
    ) -> Result<bool, LogIoError> {
        let Phase::Clean { next, current } = &mut pass.phase else {
            unreachable!("clean_step runs in the clean phase");
        };
        let Some(c) = current else {
            return self.start_copy(next, pass.end, current).await;
        };
        let (batches, after) =
            read_whole_batches(&c.src, c.base, c.read_pos, c.src_size, budget).await?;
        c.read_pos = after;
        for (_, b) in batches {
            outcome.bytes_read += b.len() as u64;
            let cleaned = self.clean_batch(b, &pass.map, rules, &mut pass.tombstone_expiry_ms);
            let Some(kept) = cleaned.kept(&mut c.changed) else {
                continue;
            };
            let kh = BatchHeader::new(&kept).expect("a whole batch");
            let len = kept.len() as u64;
            c.built.note_batch(c.built.size, &kh, len, interval);
            c.pending_bytes += kept.len();
            c.pending.push(kept);
        }
        let complete = c.read_pos >= c.src_size;
        if c.pending_bytes >= CLEANER_WRITE_BYTES || (complete && c.changed) {
            self.write_cleaned(c).await?;
        }
        if !complete {
            return Ok(false);
        }
        let c = current.take().expect("checked above");
        self.finish_copy(c, pass.truncations, outcome).await?;
        Ok(false)
    }

    /// Picks the next segment from `next` below `end` and, when it is closed, finalized
    /// and not empty, opens its compacted copy as `current`. Ok(true) when no segment is
    /// left.
    async fn start_copy(
        &self,
        next: &mut Offset,
        end: Offset,
        current: &mut Option<Box<SegmentClean>>,
    ) -> Result<bool, LogIoError> {
        let pick = {
            let st = self.state.borrow();
            st.segments
                .range(*next..)
                .map(|(_, s)| s)
                .next()
                .filter(|s| s.base_offset < end)
                .map(|s| {
                    (
                        s.base_offset,
                        s.file.clone(),
                        s.size,
                        s.next_offset,
                        s.finalized && s.sealed,
                    )
                })
        };
        let Some((base, file, size, seg_next, finalized)) = pick else {
            return Ok(true);
        };
        *next = Offset(base.0 + 1);
        let (Some(src), true) = (file, finalized && size > 0) else {
            return Ok(false);
        };
        let out_path = cleaned_path(&self.dir, base);
        let io = |e: std::io::Error| LogIoError::LogFailed(format!("open cleaned copy: {e}"));
        let out = self.disk.open(&out_path, true).await.map_err(io)?;
        out.truncate(0).await.map_err(io)?;
        *current = Some(Box::new(SegmentClean {
            base,
            src,
            src_size: size,
            src_next_offset: seg_next,
            read_pos: 0,
            out_path,
            out,
            built: Segment::new(base),
            written: 0,
            tail: Bytes::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            changed: false,
        }));
        Ok(false)
    }

    /// Cleans one batch with the pass's key map. A producer's last batch in the log
    /// keeps its header even when no record is left, so its sequence stays known. A
    /// batch whose records do not decode is kept as it is.
    fn clean_batch(
        &self,
        b: Bytes,
        map: &KeyOffsetMap,
        rules: &CleanRules,
        tombstone_expiry_ms: &mut Option<i64>,
    ) -> CleanedCopy {
        let h = BatchHeader::new(&b).expect("checked batch");
        let retain_empty = h.producer_id() >= 0 && h.base_sequence() >= 0 && {
            let st = self.state.borrow();
            st.producers
                .get(h.producer_id())
                .and_then(|e| e.batches.back())
                .is_some_and(|last| last.base_offset == h.base_offset().0)
        };
        match compaction::clean_batch_with(&b, map, rules, retain_empty, tombstone_expiry_ms) {
            Ok(CleanedBatch::Unchanged) => CleanedCopy::Same(b),
            Ok(CleanedBatch::Rewritten(v)) => CleanedCopy::Changed(Bytes::from(v)),
            Ok(CleanedBatch::Removed) => CleanedCopy::Removed,
            Err(e) => {
                debug!(dir = %self.dir.display(), error = %e, "batch kept uncleaned");
                CleanedCopy::Same(b)
            }
        }
    }

    /// Ends a copy read to its end: swapped in when it changed anything, else removed.
    async fn finish_copy(
        &self,
        c: Box<SegmentClean>,
        truncations: u64,
        outcome: &mut CompactOutcome,
    ) -> Result<(), LogIoError> {
        if !c.changed {
            let _ = self.disk.remove_file(&c.out_path);
            return Ok(());
        }
        let (before, after) = (c.src_size, c.built.size);
        if self.swap_in(c, truncations).await? {
            outcome.segments_cleaned += 1;
            outcome.bytes_before += before;
            outcome.bytes_after += after;
        }
        Ok(())
    }

    /// Writes the copy's pending batches (aligned O_DIRECT writes; the partial last
    /// block is kept and rewritten with the next piece).
    async fn write_cleaned(&self, c: &mut SegmentClean) -> Result<(), LogIoError> {
        if c.pending.is_empty() {
            return Ok(());
        }
        let align = c.out.alignment();
        let start = align_down(c.written, align);
        let mut parts = Vec::with_capacity(c.pending.len() + 1);
        parts.push(c.tail.clone());
        parts.append(&mut c.pending);
        let new_written = c.written + c.pending_bytes as u64;
        let new_tail = tail_of(&parts, start, new_written, align);
        c.out
            .write_at(start, parts)
            .await
            .map_err(|e| LogIoError::LogFailed(format!("write cleaned copy: {e}")))?;
        c.written = new_written;
        c.tail = new_tail;
        c.pending_bytes = 0;
        Ok(())
    }

    /// Whether the log's segment at the copy's base is still the one the copy was made
    /// from.
    fn is_source(st: &State, c: &SegmentClean) -> bool {
        st.segments.get(&c.base).is_some_and(|s| {
            s.size == c.src_size
                && s.next_offset == c.src_next_offset
                && s.file.as_ref().is_some_and(|f| Rc::ptr_eq(f, &c.src))
        })
    }

    /// Makes the finished copy durable and puts it in place of its segment, unless the
    /// segment changed meanwhile. Returns whether it was swapped.
    async fn swap_in(
        &self,
        mut c: Box<SegmentClean>,
        truncations: u64,
    ) -> Result<bool, LogIoError> {
        let copy_io = |e: std::io::Error| LogIoError::LogFailed(format!("sync cleaned copy: {e}"));
        c.out.truncate(c.built.size).await.map_err(copy_io)?;
        c.out.fdatasync().await.map_err(copy_io)?;
        // Nothing else replaces or removes closed segments until the guard drops: what is
        // checked here still holds after the file steps below. Flushes go on meanwhile;
        // they only write the active segment and finalize rolled ones, never this one.
        let _guard = self.lock_segments().await;
        let still_same = {
            let st = self.state.borrow();
            // A truncation may have removed records the key map saw.
            !st.closed
                && st.failed.is_none()
                && st.truncations == truncations
                && Self::is_source(&st, &c)
        };
        if !still_same {
            let _ = self.disk.remove_file(&c.out_path);
            return Ok(false);
        }
        let mut seg = std::mem::replace(&mut c.built, Segment::new(c.base));
        let bytes_after = seg.size;
        seg.next_offset = c.src_next_offset;
        let has_prev = self
            .state
            .borrow()
            .segments
            .range(..c.base)
            .next()
            .is_some();
        if bytes_after == 0 && has_prev {
            self.remove_emptied(&c).await?;
            return Ok(true);
        }
        self.replace_segment_files(&c, &seg).await?;
        seg.file = Some(c.out.clone());
        seg.written = seg.size;
        seg.tail_stale = true;
        seg.sealed = true;
        seg.finalized = true;
        {
            let mut st = self.state.borrow_mut();
            assert!(Self::is_source(&st, &c));
            st.segments.insert(c.base, seg);
            st.recompute_max_timestamp();
        }
        self.cache
            .remove_range(self.cache_id, c.base, c.src_next_offset);
        debug!(dir = %self.dir.display(), segment = c.base.0, bytes_before = c.src_size,
            bytes_after, "compacted segment swapped in");
        Ok(true)
    }

    /// A copy with nothing left: the segment's files go and the previous segment takes
    /// over its offsets. After a crash in between, open deletes the orphan indexes and
    /// extends the previous segment up to the next one.
    async fn remove_emptied(&self, c: &SegmentClean) -> Result<(), LogIoError> {
        let fail = |what: &str, e: std::io::Error| LogIoError::from(self.fail(what, e));
        for ext in ["log", "index", "timeindex"] {
            self.disk
                .remove_file(&segment_path(&self.dir, c.base, ext))
                .map_err(|e| fail("remove emptied segment", e))?;
        }
        let _ = self.disk.remove_file(&c.out_path);
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| fail("sync dir", e))?;
        {
            let mut st = self.state.borrow_mut();
            assert!(Self::is_source(&st, c));
            st.segments.remove(&c.base);
            if let Some((_, prev)) = st.segments.range_mut(..c.base).next_back() {
                prev.next_offset = c.src_next_offset;
            }
            st.recompute_max_timestamp();
        }
        self.cache
            .remove_range(self.cache_id, c.base, c.src_next_offset);
        debug!(dir = %self.dir.display(), segment = c.base.0, bytes_before = c.src_size,
            "compacted segment was empty; removed");
        Ok(())
    }

    /// The crash-safe file steps of a swap: remove the segment's indexes, sync the
    /// directory, rename the copy over the segment, sync the directory, write the copy's
    /// indexes (`seg`'s).
    async fn replace_segment_files(
        &self,
        c: &SegmentClean,
        seg: &Segment,
    ) -> Result<(), LogIoError> {
        let (oi, ti) = seg.encode_indexes();
        let fail = |what: &str, e: std::io::Error| LogIoError::from(self.fail(what, e));
        for ext in ["index", "timeindex"] {
            self.disk
                .remove_file(&segment_path(&self.dir, c.base, ext))
                .map_err(|e| fail("remove index", e))?;
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| fail("sync dir", e))?;
        self.disk
            .rename(&c.out_path, &segment_path(&self.dir, c.base, "log"))
            .map_err(|e| fail("rename cleaned segment", e))?;
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| fail("sync dir", e))?;
        self.disk
            .write_file_atomic(&segment_path(&self.dir, c.base, "index"), &oi)
            .await
            .map_err(|e| fail("write index", e))?;
        self.disk
            .write_file_atomic(&segment_path(&self.dir, c.base, "timeindex"), &ti)
            .await
            .map_err(|e| fail("write time index", e))?;
        Ok(())
    }
}

/// What the compacted copy gets of one source batch.
enum CleanedCopy {
    /// The batch as it was.
    Same(Bytes),
    /// A rewritten batch with fewer records.
    Changed(Bytes),
    /// Nothing: every record of the batch went.
    Removed,
}

impl CleanedCopy {
    /// The batch to write, if any; sets `changed` when it differs from the source.
    fn kept(self, changed: &mut bool) -> Option<Bytes> {
        match self {
            CleanedCopy::Same(b) => Some(b),
            CleanedCopy::Changed(b) => {
                *changed = true;
                Some(b)
            }
            CleanedCopy::Removed => {
                *changed = true;
                None
            }
        }
    }
}
