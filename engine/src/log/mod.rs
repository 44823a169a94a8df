//! `Log`: one partition's log on one shard. Appends are validated, stamped and made
//! readable at once from memory; a flush (group commit, serialized by `io_busy`) writes
//! the unflushed tail with O_DIRECT and fdatasyncs it. Reads come from the unflushed
//! tail, then the shard's read cache, then the segment files. Open runs recovery when the
//! last stop was not clean.
//!
//! Two locks, always taken in this order: `segments_busy` is held by whatever replaces or
//! removes closed segments (compaction's swap, retention, delete-records, truncation,
//! close, delete); `io_busy` by whatever writes the log's files in place (a flush, and
//! all of those but the swap). A flush only appends to the active segment and finalizes
//! segments that were just rolled, which no swap touches, so it takes `io_busy` alone
//! and never waits for a swap's file work and directory syncs. The swap changes the
//! in-memory segment map in one synchronous step after its file work.
//!
//! Invariants: segments are contiguous (`next_offset` of one is the base offset of the
//! next; batches inside may leave gaps once compacted); only the last segment takes appends; `durable_offset <= log_end_offset`;
//! `log_start_offset <= log_end_offset`. Once an fsync (or a write for another reason
//! than a full disk) fails the log is failed for good: reads keep working, writes are
//! refused. A write that finds the disk full never happened: appends are refused while
//! the flusher retries it, retention and delete-records still run (they free space),
//! and the log takes appends again once the retry succeeds. Reads may be bounded by the
//! high watermark (`read_up_to`); a batch that fails its checks ends a read, serving the
//! intact batches before it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tracing::{debug, error, info, warn};

use crate::batch::{self, BatchError, BatchHeader};
use crate::checkpoint::{CLEANER_FILE, META_FILE, PartitionMeta};
use crate::disk::{Disk, DiskFile, DmaDisk, align_down};
use crate::error::{AppendError, DeleteRecordsError, FlushError, LogIoError, OpenError, ReadError};
use crate::event::{Event, EventListener};
use crate::leader_epoch::LeaderEpochCache;
use crate::offset_index;
use crate::producer_state::{ProducerState, SequenceCheck, SequenceError};
use crate::read_cache::{CachedBatch, ReadCache};
use crate::record::{self, AppendRules};
use crate::segment::{
    PendingBatch, SCAN_BATCH_BYTES_MAX, Segment, parse_name, scan_file, segment_path,
};
use crate::time_index;
use crate::{CleanupPolicy, LeaderEpoch, LogConfig, Offset, TimestampOffset, TimestampType};

mod cleaner;
pub use cleaner::CompactOutcome;

const EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Producer-state snapshots kept on disk (older ones are deleted).
const SNAPSHOTS_KEPT: usize = 2;
/// Smallest disk read when serving a fetch.
const READ_BYTES_MIN: usize = 64 << 10;
/// Decompressed record bytes of one appended batch, when the append must read its
/// records (see `record::check_for_append`); as the cleaner's cap.
const APPEND_DECOMPRESSED_BYTES_MAX: usize = cleaner::CLEANER_DECOMPRESSED_BYTES_MAX;
/// How often a log whose write found the disk full retries that write.
const OUT_OF_SPACE_RETRY_MS: u64 = 200;
/// Producer-batch headers a recovery scan keeps for replay (about 60 MB); past it, the
/// replay reads the segments again instead.
const RECORDED_HEADERS_MAX: usize = 1 << 20;

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The stamped LogAppendTime, or -1 for CreateTime topics.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
    /// The batch was a retry of one already in the log; offsets are the original ones.
    pub duplicate: bool,
}

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

/// What `enforce_retention` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub rolled: bool,
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

struct State {
    segments: BTreeMap<Offset, Segment>,
    log_start_offset: Offset,
    log_end_offset: Offset,
    durable_offset: Offset,
    recovery_point: Offset,
    failed: Option<String>,
    /// Set while a write found the disk full: appends are refused and the flusher retries
    /// the write (which never happened) until it succeeds.
    out_of_space: Option<String>,
    /// Set while the flusher retries a write that found the disk full (a failure then is
    /// not news and logs at debug).
    space_retry: bool,
    /// The active segment's file when a flush wrote it and then failed before handing it
    /// to a sync ticket; the next flush's ticket syncs it.
    unsynced_active: Option<Rc<dyn DiskFile>>,
    closed: bool,
    producers: ProducerState,
    epochs: LeaderEpochCache,
    epochs_dirty: bool,
    unflushed_bytes: u64,
    max_timestamp: Option<TimestampOffset>,
    snapshot_wanted: bool,
    /// Counts truncations; a compaction pass whose key map predates one is dropped.
    truncations: u64,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn segment_for(&self, offset: Offset) -> Option<&Segment> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
    }
    fn recompute_max_timestamp(&mut self) {
        self.max_timestamp = self
            .segments
            .values()
            .filter(|s| s.max_timestamp != i64::MIN)
            .map(|s| TimestampOffset {
                timestamp_ms: s.max_timestamp,
                offset: s.max_timestamp_offset,
            })
            .fold(None, |best: Option<TimestampOffset>, t| match best {
                Some(b) if b.timestamp_ms >= t.timestamp_ms => Some(b),
                _ => Some(t),
            });
    }
    fn check_writable(&self) -> Result<(), FlushError> {
        self.check_not_failed()?;
        if let Some(reason) = &self.out_of_space {
            return Err(FlushError::OutOfSpace(reason.clone()));
        }
        Ok(())
    }
    /// Whether the log may still change: not failed and not closed. A log out of space
    /// passes, so retention and delete-records can free space on it.
    fn check_not_failed(&self) -> Result<(), FlushError> {
        if let Some(reason) = &self.failed {
            return Err(FlushError::LogFailed(reason.clone()));
        }
        if self.closed {
            return Err(FlushError::Closed);
        }
        Ok(())
    }
}

/// One partition's log. Create with `Log::open`; share as `Rc<Log>` within the shard.
pub struct Log {
    dir: PathBuf,
    disk: Rc<dyn Disk>,
    cache: Rc<ReadCache>,
    cache_id: u64,
    config: RefCell<LogConfig>,
    state: RefCell<State>,
    /// Held by whoever replaces or removes closed segments (files or map entries):
    /// compaction's swap, retention, delete-records, truncation, close, delete. Taken
    /// before `io_busy`; a flush never takes it.
    segments_busy: Cell<bool>,
    /// Notified when `segments_busy` is released.
    segments_idle: Event,
    /// Held by whoever flushes, truncates, deletes segments or closes (not by the swap).
    io_busy: Cell<bool>,
    /// Notified when `io_busy` is released (after every flush, among others).
    io_idle: Event,
    /// Flush tickets handed out and completed, in order (pipelined group commit).
    syncs_started: Cell<u64>,
    syncs_done: Cell<u64>,
    sync_done_event: Event,
    /// This log's own `Rc`, for tasks that must outlive a caller's future.
    me: RefCell<std::rc::Weak<Log>>,
    appended: Event,
    flush_wanted: Event,
    /// Compaction progress between `compact` calls.
    cleaner: RefCell<cleaner::Cleaner>,
    /// Set while a `compact` call runs (one at a time).
    cleaning: Cell<bool>,
}

/// One flush's last step: the active segment file to fdatasync and the log end offset
/// its writes covered. `seq` orders tickets.
struct SyncTicket {
    seq: u64,
    target: Offset,
    file: Option<Rc<dyn DiskFile>>,
}

/// Exclusive right to write the log's files in place (flush, and with the segments lock
/// truncation, retention, delete-records, close); released on drop.
struct IoGuard<'a> {
    log: &'a Log,
}

impl Drop for IoGuard<'_> {
    fn drop(&mut self) {
        self.log.io_busy.set(false);
        self.log.io_idle.notify();
    }
}

/// Exclusive right to replace or remove closed segments; released on drop.
struct SegmentsGuard<'a> {
    log: &'a Log,
}

impl Drop for SegmentsGuard<'_> {
    fn drop(&mut self) {
        self.log.segments_busy.set(false);
        self.log.segments_idle.notify();
    }
}

/// Both locks, for operations that change closed segments and write files in place.
/// Fields drop in order: the io lock first.
struct ExclusiveGuard<'a> {
    _io: IoGuard<'a>,
    _segments: SegmentsGuard<'a>,
}

/// Age of the active segment that rolls it: `segment.ms`, or `max.compaction.lag.ms`
/// when shorter on a compacted log (Kafka's maxSegmentMs), so no record waits in the
/// active segment, which is never cleaned, past the max lag.
fn roll_ms(config: &LogConfig) -> i64 {
    if config.cleanup_policy != CleanupPolicy::Delete && config.max_compaction_lag_ms > 0 {
        config.segment_ms.min(config.max_compaction_lag_ms)
    } else {
        config.segment_ms
    }
}

fn effective_segment_bytes_max(config: &LogConfig) -> u64 {
    config.segment_bytes_max.clamp(1, i32::MAX as u64)
}

impl Log {
    /// Opens or creates `dir` on the real disk; runs recovery if the last stop was not
    /// clean.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        cache: Rc<ReadCache>,
    ) -> Result<Rc<Log>, OpenError> {
        Self::open_with_disk(dir, config, cache, Rc::new(DmaDisk::default())).await
    }

    /// `open` over any `Disk` (tests use `SimDisk`).
    pub async fn open_with_disk(
        dir: &Path,
        config: LogConfig,
        cache: Rc<ReadCache>,
        disk: Rc<dyn Disk>,
    ) -> Result<Rc<Log>, OpenError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OpenError::Io { path, source }
        };
        disk.create_dir_all(dir).map_err(io_err(dir))?;
        let names = disk.list_dir(dir).map_err(io_err(dir))?;
        let mut bases: Vec<Offset> = Vec::new();
        let mut snapshots: Vec<Offset> = Vec::new();
        for name in &names {
            if name.ends_with(".tmp") || name.ends_with(cleaner::CLEANED_SUFFIX) {
                // A whole-file write or a compacted copy cut short: the original stands.
                disk.remove_file(&dir.join(name)).map_err(io_err(dir))?;
            } else if let Some(b) = parse_name(name, "log") {
                bases.push(b);
            } else if let Some(s) = parse_name(name, "snapshot") {
                snapshots.push(s);
            }
        }
        bases.sort();
        snapshots.sort();
        // Index files whose segment is gone (a deletion cut short by a crash).
        for name in &names {
            let orphan = parse_name(name, "index").or_else(|| parse_name(name, "timeindex"));
            if let Some(b) = orphan
                && bases.binary_search(&b).is_err()
            {
                disk.remove_file(&dir.join(name)).map_err(io_err(dir))?;
            }
        }
        let meta_path = dir.join(META_FILE);
        let meta_file = disk
            .read_file(&meta_path)
            .await
            .map_err(io_err(&meta_path))?;
        let meta = meta_file.as_deref().and_then(PartitionMeta::decode);
        let first_base = bases.first().copied().unwrap_or(Offset(0));
        let meta = meta.unwrap_or_else(|| {
            if meta_file.is_some() {
                warn!(dir = %dir.display(), "partition checkpoint damaged; recovering every segment");
            }
            PartitionMeta { clean_shutdown: false, log_start_offset: first_base, recovery_point: first_base }
        });
        let clean = meta.clean_shutdown;
        let interval = u64::from(config.index_interval_bytes.max(1));

        let epoch_path = dir.join(EPOCH_FILE);
        let epoch_file = disk
            .read_file(&epoch_path)
            .await
            .map_err(io_err(&epoch_path))?;
        let mut epochs = epoch_file
            .as_deref()
            .and_then(LeaderEpochCache::decode)
            .unwrap_or_default();
        let mut epochs_dirty = false;

        let mut segments: BTreeMap<Offset, Segment> = BTreeMap::new();
        let mut recovered_bytes = 0u64;
        let mut cut_after: Option<Offset> = None;
        // Headers of idempotent batches seen by recovery scans that reach the log end, so
        // producer state is replayed without reading those segments a second time.
        let mut scanned: Option<(Offset, Vec<[u8; batch::HEADER_BYTES]>)> = None;
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(dir, base, "log");
            let file = disk.open(&path, false).await.map_err(io_err(&path))?;
            let file_size = file.size().await.map_err(io_err(&path))?;
            let mut seg = Segment::new(base);
            let next_base = bases.get(i + 1).copied();
            let trusted = clean || next_base.is_some_and(|nb| nb <= meta.recovery_point);
            // A compacted segment whose index was rebuilt ends at its last kept batch;
            // the offsets up to the next segment were cleaned away.
            if let Some(prev) = segments.values_mut().next_back()
                && prev.next_offset < base
            {
                prev.next_offset = base;
            }
            if let Some(prev) = segments.values().next_back()
                && prev.next_offset != base
            {
                if trusted {
                    return Err(OpenError::Corrupt {
                        segment: base,
                        position: 0,
                        reason: format!(
                            "segment starts at {} but the previous one ends at {}",
                            base.0, prev.next_offset.0
                        ),
                    });
                }
                warn!(dir = %dir.display(), segment = base.0, "segment does not continue the log; dropping it and later ones");
                cut_after = Some(base);
                break;
            }
            let mut loaded = false;
            if trusted {
                seg.size = file_size;
                let oi = disk
                    .read_file(&segment_path(dir, base, "index"))
                    .await
                    .map_err(io_err(&path))?;
                let ti = disk
                    .read_file(&segment_path(dir, base, "timeindex"))
                    .await
                    .map_err(io_err(&path))?;
                if let (Some(oi), Some(ti)) = (oi, ti) {
                    loaded = seg.load_indexes(&oi, &ti);
                }
                if !loaded {
                    info!(dir = %dir.display(), segment = base.0, "rebuilding indexes");
                    seg.size = 0;
                }
            }
            if !loaded {
                let mut rebuilt = Segment::new(base);
                let mut epoch_seen: Vec<(i32, Offset)> = Vec::new();
                if scanned.is_none() {
                    scanned = Some((base, Vec::new()));
                }
                let recorded = scanned.as_mut().map(|s| &mut s.1).expect("set above");
                // Positions are u32 in indexes: bytes past 4 GiB cannot be a segment's.
                let scan_end = file_size.min(u64::from(u32::MAX));
                let stop = scan_file(&file, 0, scan_end, Some(base), true, &mut |pos, whole| {
                    let h = BatchHeader::new(whole).expect("scanned batch");
                    rebuilt.note_batch(pos, &h, whole.len() as u64, interval);
                    let epoch = h.partition_leader_epoch();
                    if epoch_seen.last().is_none_or(|(e, _)| *e != epoch) {
                        epoch_seen.push((epoch, h.base_offset()));
                    }
                    if h.producer_id() >= 0 && recorded.len() <= RECORDED_HEADERS_MAX {
                        recorded.push(whole[..batch::HEADER_BYTES].try_into().expect("61 bytes"));
                    }
                })
                .await
                .map_err(io_err(&path))?;
                // Epoch entries from this segment on are re-derived from its batches.
                epochs_dirty |= epochs.truncate_from_end(base);
                for (e, o) in epoch_seen {
                    epochs_dirty |= epochs.assign(LeaderEpoch(e), o);
                }
                recovered_bytes += rebuilt.size;
                if let Some(stop) = stop {
                    let zero_tail = stop.reason.starts_with("batch length 0");
                    // The last segment's tail is recovered like after a crash whatever the
                    // clean-shutdown mark says (a copy or a full disk may have cut it
                    // after the stop); a bad batch in a segment before it is corruption.
                    if trusted && next_base.is_some() {
                        return Err(OpenError::Corrupt {
                            segment: base,
                            position: stop.position,
                            reason: stop.reason,
                        });
                    }
                    if !zero_tail {
                        warn!(dir = %dir.display(), segment = base.0, position = stop.position, reason = %stop.reason,
                            "truncating log at first bad batch");
                    }
                    cut_after = next_base;
                }
                if rebuilt.size != file_size {
                    file.truncate(rebuilt.size).await.map_err(io_err(&path))?;
                    file.fdatasync().await.map_err(io_err(&path))?;
                }
                seg = rebuilt;
                seg.finalized = false;
            } else {
                seg.finalized = true;
                // Producer headers recorded so far no longer reach the log end.
                scanned = None;
            }
            seg.written = seg.size;
            seg.tail_stale = true;
            seg.sealed = true;
            seg.file = Some(file);
            segments.insert(base, seg);
            if cut_after.is_some() {
                break;
            }
        }
        // Segments after a truncation point (or after a gap) are not part of the log.
        if let Some(first_dropped) = cut_after {
            for &b in bases.iter().filter(|b| **b >= first_dropped) {
                for ext in ["log", "index", "timeindex"] {
                    disk.remove_file(&segment_path(dir, b, ext))
                        .map_err(io_err(dir))?;
                }
            }
        }
        let mut log_start_offset = meta.log_start_offset.max(first_base);
        // Segments entirely below the log start offset were deleted by delete-records or
        // retention just before a crash.
        while segments.len() > 1 {
            let (&b, s) = segments.iter().next().expect("non-empty");
            if s.next_offset > log_start_offset {
                break;
            }
            segments.remove(&b);
            for ext in ["log", "index", "timeindex"] {
                disk.remove_file(&segment_path(dir, b, ext))
                    .map_err(io_err(dir))?;
            }
        }
        if segments.is_empty() {
            let mut s = Segment::new(log_start_offset);
            s.finalized = false;
            segments.insert(log_start_offset, s);
        }
        {
            let active = segments.values_mut().next_back().expect("non-empty");
            active.sealed = false;
            active.finalized = false;
        }
        let log_end_offset = segments
            .values()
            .next_back()
            .expect("non-empty")
            .next_offset;
        if log_start_offset > log_end_offset {
            log_start_offset = log_end_offset;
        }
        epochs_dirty |= epochs.truncate_from_end(log_end_offset);

        let mut state = State {
            segments,
            log_start_offset,
            log_end_offset,
            durable_offset: log_end_offset,
            recovery_point: log_end_offset,
            failed: None,
            out_of_space: None,
            space_retry: false,
            unsynced_active: None,
            closed: false,
            producers: ProducerState::default(),
            epochs,
            epochs_dirty,
            unflushed_bytes: 0,
            max_timestamp: None,
            snapshot_wanted: false,
            truncations: 0,
        };
        state.recompute_max_timestamp();
        // Before the partition checkpoint below: its directory sync makes the removal of
        // an unusable cleaner checkpoint durable.
        let cleaner = cleaner::Cleaner::load(&*disk, dir, log_start_offset, log_end_offset)
            .await
            .map_err(io_err(&dir.join(CLEANER_FILE)))?;
        let cache_id = cache.register_log();
        let log = Rc::new(Log {
            dir: dir.to_path_buf(),
            disk,
            cache,
            cache_id,
            config: RefCell::new(config),
            state: RefCell::new(state),
            segments_busy: Cell::new(false),
            segments_idle: Event::new(),
            io_busy: Cell::new(false),
            io_idle: Event::new(),
            syncs_started: Cell::new(0),
            syncs_done: Cell::new(0),
            sync_done_event: Event::new(),
            me: RefCell::new(std::rc::Weak::new()),
            appended: Event::new(),
            flush_wanted: Event::new(),
            cleaner: RefCell::new(cleaner),
            cleaning: Cell::new(false),
        });
        *log.me.borrow_mut() = Rc::downgrade(&log);
        let scanned = scanned.filter(|(_, h)| h.len() <= RECORDED_HEADERS_MAX);
        log.load_producer_state(&snapshots, scanned)
            .await
            .map_err(|e| match e {
                LogIoError::Corrupt {
                    segment,
                    position,
                    reason,
                } => OpenError::Corrupt {
                    segment,
                    position,
                    reason,
                },
                other => OpenError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::other(other.to_string()),
                },
            })?;
        let meta = PartitionMeta {
            clean_shutdown: false,
            log_start_offset,
            recovery_point: log_end_offset,
        };
        log.disk
            .write_file_atomic(&meta_path, &meta.encode())
            .await
            .map_err(io_err(&meta_path))?;
        if epochs_dirty {
            let bytes = log.state.borrow().epochs.encode();
            log.disk
                .write_file_atomic(&epoch_path, &bytes)
                .await
                .map_err(io_err(&epoch_path))?;
            log.state.borrow_mut().epochs_dirty = false;
        }
        info!(dir = %dir.display(), clean, log_start_offset = log_start_offset.0, log_end_offset = log_end_offset.0,
            recovered_bytes, "opened log");
        Self::spawn_flusher(&log);
        Ok(log)
    }

    /// Background flusher: writes unflushed appends every `flush_interval_ms`, when
    /// `flush_bytes_pending_max` is passed or when asked (`request_flush`: a fetch
    /// waits), so acks=1 data reaches the disk without any waiter. While the disk is full
    /// it retries the failed write every `OUT_OF_SPACE_RETRY_MS`, ignoring requests, so a
    /// full disk is not hammered. Holds only a weak reference; ends when the log is
    /// closed, failed or dropped.
    fn spawn_flusher(log: &Rc<Log>) {
        let weak = Rc::downgrade(log);
        let wanted = log.flush_wanted.clone();
        glommio::spawn_local(async move {
            // Listening before each flush starts: a request made during a flush (for
            // appends it does not cover) starts another one at once.
            let mut listener = wanted.listen();
            loop {
                let (interval_ms, out_of_space) = match weak.upgrade() {
                    Some(log) => (
                        log.config.borrow().flush_interval_ms.max(1),
                        log.state.borrow().out_of_space.is_some(),
                    ),
                    None => break,
                };
                if out_of_space {
                    let retry_ms = interval_ms.min(OUT_OF_SPACE_RETRY_MS);
                    glommio::timer::sleep(Duration::from_millis(retry_ms)).await;
                } else {
                    futures_lite::future::or(
                        listener,
                        glommio::timer::sleep(Duration::from_millis(interval_ms)),
                    )
                    .await;
                }
                listener = wanted.listen();
                let Some(log) = weak.upgrade() else { break };
                let retrying = {
                    let mut st = log.state.borrow_mut();
                    if st.closed || st.failed.is_some() {
                        break;
                    }
                    if st.durable_offset == st.log_end_offset
                        && !st.segments.values().any(|s| s.sealed && !s.finalized)
                    {
                        st.out_of_space = None;
                        continue;
                    }
                    // The write that found the disk full never happened: try it again.
                    let retrying = st.out_of_space.take();
                    st.space_retry = retrying.is_some();
                    retrying
                };
                let flushed = log.flush().await;
                log.state.borrow_mut().space_retry = false;
                match flushed {
                    Ok(()) => {
                        if let Some(reason) = retrying {
                            info!(dir = %log.dir.display(), earlier = %reason, "disk has space again; log takes appends");
                        }
                    }
                    Err(e) => debug!(error = %e, "background flush failed"),
                }
            }
        })
        .detach();
    }

    /// Replays producer state from the newest usable snapshot up to the log end offset.
    /// `scanned`: headers of idempotent batches from a recovery scan of every segment
    /// from the given base offset to the log end; those segments are not read again.
    async fn load_producer_state(
        &self,
        snapshots: &[Offset],
        scanned: Option<(Offset, Vec<[u8; batch::HEADER_BYTES]>)>,
    ) -> Result<(), LogIoError> {
        let (leo, lso) = {
            let st = self.state.borrow();
            (st.log_end_offset, st.log_start_offset)
        };
        let mut state = ProducerState::default();
        let mut from = self
            .state
            .borrow()
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(lso);
        for &snap in snapshots.iter().rev() {
            let path = segment_path(&self.dir, snap, "snapshot");
            if snap > leo {
                let _ = self.disk.remove_file(&path);
                continue;
            }
            match self.disk.read_file(&path).await {
                Ok(Some(bytes)) => {
                    if let Some(s) = ProducerState::from_snapshot(&bytes) {
                        state = s;
                        from = snap;
                        break;
                    }
                    warn!(path = %path.display(), "producer snapshot damaged; ignoring it");
                }
                Ok(None) => {}
                Err(e) => return Err(LogIoError::LogFailed(e.to_string())),
            }
        }
        // Replay headers of batches at or after `from`.
        let work: Vec<(Rc<dyn DiskFile>, u64, u64, Offset)> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.next_offset > from && s.size > 0)
                .filter(|s| {
                    scanned
                        .as_ref()
                        .is_none_or(|(scanned_from, _)| s.base_offset < *scanned_from)
                })
                .filter_map(|s| {
                    let start = u64::from(offset_index::lookup(&s.offset_index, s.relative(from)));
                    s.file.clone().map(|f| (f, start, s.size, s.base_offset))
                })
                .collect()
        };
        for (file, start, end, base) in work {
            let stop = scan_file(&file, start, end, None, false, &mut |_, whole| {
                let h = BatchHeader::new(whole).expect("scanned batch");
                if h.base_offset() >= from {
                    state.record(&h);
                }
            })
            .await
            .map_err(|e| LogIoError::LogFailed(e.to_string()))?;
            if let Some(stop) = stop {
                return Err(LogIoError::Corrupt {
                    segment: base,
                    position: stop.position,
                    reason: stop.reason,
                });
            }
        }
        for header in scanned.iter().flat_map(|(_, h)| h.iter()) {
            let h = BatchHeader::new(header).expect("61 bytes");
            if h.base_offset() >= from {
                state.record(&h);
            }
        }
        self.state.borrow_mut().producers = state;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates, stamps and appends one RecordBatch v2; readable at once, durable after
    /// `wait_durable`. Never waits for I/O.
    pub fn append(
        &self,
        batch: Bytes,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let config = *self.config.borrow();
        // Recovery treats larger length fields as corruption, so nothing larger is stored.
        let max = config.max_message_bytes.min(SCAN_BATCH_BYTES_MAX as u32);
        if batch.len() > max as usize {
            return Err(AppendError::MessageTooLarge {
                size: batch.len(),
                max,
            });
        }
        batch::validate(&batch).map_err(|e| match e {
            BatchError::CountMismatch { .. } => AppendError::InvalidRecord(e.to_string()),
            other => AppendError::CorruptMessage(other),
        })?;
        let rules = AppendRules {
            keys_required: config.cleanup_policy != CleanupPolicy::Delete,
            codec: config.compression_type,
            log_append_time: config.timestamp_type == TimestampType::LogAppendTime,
            decompressed_bytes_max: APPEND_DECOMPRESSED_BYTES_MAX,
        };
        let batch = record::check_for_append(batch, &rules)?;
        // Recompression with the topic's codec may have grown the batch.
        if batch.len() > max as usize {
            return Err(AppendError::MessageTooLarge {
                size: batch.len(),
                max,
            });
        }
        let header = BatchHeader::new(&batch).expect("validated above");
        debug_assert!(batch::validate(&batch).is_ok());
        let last_offset_delta = i64::from(header.last_offset_delta());
        let mut st = self.state.borrow_mut();
        if let Some(reason) = &st.failed {
            return Err(AppendError::LogFailed(reason.clone()));
        }
        if st.closed {
            return Err(AppendError::Closed);
        }
        if let Some(reason) = &st.out_of_space {
            return Err(AppendError::OutOfSpace(reason.clone()));
        }
        match st.producers.check(&header) {
            Ok(SequenceCheck::Append) => {}
            Ok(SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            }) => {
                return Ok(AppendInfo {
                    base_offset,
                    last_offset,
                    log_append_time_ms: -1,
                    log_start_offset: st.log_start_offset,
                    duplicate: true,
                });
            }
            Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got,
            }) => {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id,
                    expected,
                    got,
                });
            }
            Err(SequenceError::InvalidEpoch {
                producer_id,
                current,
                got,
            }) => {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id,
                    current,
                    got,
                });
            }
        }
        let base_offset = st.log_end_offset;
        let last_offset = Offset(base_offset.0 + last_offset_delta);
        // Stamp in place when we hold the only reference, else copy once.
        let mut buf = batch
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        batch::stamp_offset_and_epoch(&mut buf, base_offset, leader_epoch.0);
        let log_append_time_ms = match config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch::stamp_log_append_time(&mut buf, now_ms);
                now_ms
            }
            TimestampType::CreateTime => -1,
        };
        let bytes = buf.freeze();
        let h = BatchHeader::new(&bytes).expect("validated above");
        let len = bytes.len() as u64;
        let roll = {
            let a = st.active();
            a.size > 0
                && (a.size + len > effective_segment_bytes_max(&config)
                    || last_offset.0 - a.base_offset.0 > i64::from(i32::MAX))
        };
        if roll {
            self.roll_locked(&mut st);
        }
        let active = st.active_mut();
        let position = active.size;
        active.note_batch(
            position,
            &h,
            len,
            u64::from(config.index_interval_bytes.max(1)),
        );
        active.pending.push_back(PendingBatch {
            position,
            base_offset,
            last_offset,
            bytes: bytes.clone(),
        });
        active.first_append_ms.get_or_insert(now_ms);
        st.log_end_offset = Offset(last_offset.0 + 1);
        st.unflushed_bytes += len;
        st.producers.record(&h);
        st.epochs_dirty |= st.epochs.assign(leader_epoch, base_offset);
        if st
            .max_timestamp
            .is_none_or(|m| h.max_timestamp() > m.timestamp_ms)
        {
            st.max_timestamp = Some(TimestampOffset {
                timestamp_ms: h.max_timestamp(),
                offset: last_offset,
            });
        }
        let unflushed = st.unflushed_bytes;
        let log_start_offset = st.log_start_offset;
        drop(st);
        self.cache.insert(
            self.cache_id,
            CachedBatch {
                base_offset,
                last_offset,
                bytes,
            },
        );
        self.appended.notify();
        if unflushed >= config.flush_bytes_pending_max {
            self.flush_wanted.notify();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset,
            duplicate: false,
        })
    }

    fn roll_locked(&self, st: &mut State) {
        let base = st.log_end_offset;
        st.active_mut().sealed = true;
        st.segments.insert(base, Segment::new(base));
        st.snapshot_wanted = true;
        debug!(dir = %self.dir.display(), base_offset = base.0, "rolled segment");
    }

    /// Resolves when everything below `offset` (clamped to the log end offset) is
    /// fdatasync'ed. Concurrent callers share flushes (group commit).
    pub async fn wait_durable(&self, offset: Offset) -> Result<(), FlushError> {
        loop {
            {
                let st = self.state.borrow();
                if let Some(reason) = &st.failed {
                    return Err(FlushError::LogFailed(reason.clone()));
                }
                if st.durable_offset >= offset.min(st.log_end_offset) {
                    return Ok(());
                }
                if st.closed {
                    return Err(FlushError::Closed);
                }
            }
            // Whoever finds the log idle flushes for everyone; the others re-check after
            // each flush instead of queueing for the lock, so covered waiters return at
            // once and nobody starves.
            if let Some(guard) = self.try_lock() {
                let ticket = self.write_locked().await;
                // The next group's write may start while this one syncs.
                drop(guard);
                let seq = self.spawn_sync(ticket?);
                self.wait_synced(seq).await;
            } else {
                let idle = self.io_idle.listen();
                let synced = self.sync_done_event.listen();
                futures_lite::future::or(idle, synced).await;
            }
        }
    }

    fn try_lock(&self) -> Option<IoGuard<'_>> {
        if self.io_busy.replace(true) {
            return None;
        }
        Some(IoGuard { log: self })
    }

    async fn lock(&self) -> IoGuard<'_> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            self.io_idle.listen().await;
        }
    }

    /// The segments lock alone (compaction's swap).
    async fn lock_segments(&self) -> SegmentsGuard<'_> {
        loop {
            if !self.segments_busy.replace(true) {
                return SegmentsGuard { log: self };
            }
            self.segments_idle.listen().await;
        }
    }

    /// The segments lock, then the io lock.
    async fn lock_exclusive(&self) -> ExclusiveGuard<'_> {
        let segments = self.lock_segments().await;
        let io = self.lock().await;
        ExclusiveGuard {
            _io: io,
            _segments: segments,
        }
    }

    /// Makes every append so far durable.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let leo = self.log_end_offset();
        self.wait_durable(leo).await
    }

    fn fail(&self, what: &str, e: std::io::Error) -> FlushError {
        let reason = format!("{what}: {e}");
        error!(dir = %self.dir.display(), reason = %reason, "log failed; refusing further writes");
        let mut st = self.state.borrow_mut();
        st.failed.get_or_insert(reason.clone());
        FlushError::LogFailed(reason)
    }

    /// A failed write (not a sync). ENOSPC leaves the log writable later: the write did not
    /// happen (or happened in part, and the retry rewrites it from the same aligned
    /// start), so the pending batches stay in memory and the flusher tries again. Any
    /// other error fails the log like a failed fsync.
    fn fail_write(&self, what: &str, e: std::io::Error) -> FlushError {
        if e.raw_os_error() != Some(libc::ENOSPC) {
            return self.fail(what, e);
        }
        let reason = format!("{what}: {e}");
        let mut st = self.state.borrow_mut();
        if st.out_of_space.is_none() && !st.space_retry {
            error!(dir = %self.dir.display(), reason = %reason, "disk full; refusing appends until a retried write succeeds");
        } else {
            debug!(dir = %self.dir.display(), reason = %reason, "disk still full");
        }
        st.out_of_space = Some(reason.clone());
        drop(st);
        // The flusher may sleep for a long flush interval: it must start retrying.
        self.flush_wanted.notify();
        FlushError::OutOfSpace(reason)
    }

    /// Asks the background flusher to flush now (a fetch waits for the durable end).
    pub fn request_flush(&self) {
        self.flush_wanted.notify();
    }

    /// A future resolving when a flush completes (the durable offset may have moved) or
    /// fails.
    pub fn synced(&self) -> EventListener {
        self.sync_done_event.listen()
    }

    /// Writes and syncs everything appended so far. Caller holds the io lock.
    async fn flush_locked(&self) -> Result<(), FlushError> {
        let ticket = self.write_locked().await?;
        let seq = self.spawn_sync(ticket);
        self.wait_synced(seq).await;
        let st = self.state.borrow();
        match &st.failed {
            Some(reason) => Err(FlushError::LogFailed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Runs the sync phase of `ticket` as its own task, so it completes (and later tickets
    /// can complete after it) even if the caller's future is dropped.
    fn spawn_sync(&self, ticket: SyncTicket) -> u64 {
        let seq = ticket.seq;
        let me = self
            .me
            .borrow()
            .upgrade()
            .expect("a log in use is held by an Rc");
        glommio::spawn_local(async move {
            if let Err(e) = me.sync_phase(ticket).await {
                debug!(error = %e, "flush failed");
            }
        })
        .detach();
        seq
    }

    /// Resolves once tickets up to `seq` have completed (successfully or not).
    async fn wait_synced(&self, seq: u64) {
        loop {
            let listener = self.sync_done_event.listen();
            if self.syncs_done.get() >= seq {
                return;
            }
            listener.await;
        }
    }

    /// Completes a flush: fdatasyncs the active segment, then, in ticket order, moves the
    /// durable offset. A ticket never advances it past a failed earlier one (a failed
    /// fsync is final even if a later fsync succeeds).
    async fn sync_phase(&self, ticket: SyncTicket) -> Result<(), FlushError> {
        let synced = match &ticket.file {
            Some(file) => file
                .fdatasync()
                .await
                .map_err(|e| self.fail("fdatasync segment", e)),
            None => Ok(()),
        };
        loop {
            let listener = self.sync_done_event.listen();
            if self.syncs_done.get() + 1 == ticket.seq {
                break;
            }
            listener.await;
        }
        let result = synced.and_then(|()| {
            let mut st = self.state.borrow_mut();
            if let Some(reason) = &st.failed {
                return Err(FlushError::LogFailed(reason.clone()));
            }
            if st.durable_offset < ticket.target {
                st.durable_offset = ticket.target.min(st.log_end_offset);
            }
            Ok(())
        });
        self.syncs_done.set(ticket.seq);
        self.sync_done_event.notify();
        result
    }

    /// Writes everything appended so far (sealed segments also synced, trimmed and
    /// indexed) and hands back the ticket that syncs the active segment. Caller holds
    /// the io lock.
    async fn write_locked(&self) -> Result<SyncTicket, FlushError> {
        let (target, bases) = {
            let st = self.state.borrow();
            st.check_writable()?;
            let bases: Vec<Offset> = st
                .segments
                .values()
                .filter(|s| !s.pending.is_empty() || (s.sealed && !s.finalized))
                .map(|s| s.base_offset)
                .collect();
            (st.log_end_offset, bases)
        };
        // The active segment written by an earlier flush that failed after that write (a
        // full disk) is not synced yet: this ticket syncs it.
        let mut deferred_sync = self.state.borrow_mut().unsynced_active.take();
        if let Err(e) = self.write_files(bases, &mut deferred_sync).await {
            self.state.borrow_mut().unsynced_active = deferred_sync;
            return Err(e);
        }
        let seq = self.syncs_started.get() + 1;
        self.syncs_started.set(seq);
        Ok(SyncTicket {
            seq,
            target,
            file: deferred_sync,
        })
    }

    /// Writes the segments `bases` (sealed ones also synced, trimmed and indexed) and the
    /// checkpoints that are due; the active segment's file is left in `deferred_sync`.
    async fn write_files(
        &self,
        bases: Vec<Offset>,
        deferred_sync: &mut Option<Rc<dyn DiskFile>>,
    ) -> Result<(), FlushError> {
        let mut finalized_any = false;
        for base in bases {
            finalized_any |= self.flush_segment(base, deferred_sync).await?;
        }
        let (epochs, snapshot) = {
            let mut st = self.state.borrow_mut();
            st.unflushed_bytes = st
                .segments
                .values()
                .flat_map(|s| s.pending.iter())
                .map(|p| p.bytes.len() as u64)
                .sum();
            let epochs = std::mem::take(&mut st.epochs_dirty).then(|| st.epochs.encode());
            let snapshot = std::mem::take(&mut st.snapshot_wanted)
                .then(|| (st.log_end_offset, st.producers.to_snapshot()));
            (epochs, snapshot)
        };
        if let Some(bytes) = epochs {
            let path = self.dir.join(EPOCH_FILE);
            if let Err(e) = self.disk.write_file_atomic(&path, &bytes).await {
                // Written again by the next flush (after a full disk).
                self.state.borrow_mut().epochs_dirty = true;
                return Err(self.fail_write("epoch checkpoint", e));
            }
        }
        if let Some((at, bytes)) = snapshot
            && let Err(e) = self.write_snapshot(at, &bytes).await
        {
            self.state.borrow_mut().snapshot_wanted = true;
            return Err(e);
        }
        if finalized_any {
            // Everything before the active segment is sealed, synced and indexed.
            let (meta, rp) = {
                let st = self.state.borrow();
                let rp = st.active().base_offset;
                (
                    PartitionMeta {
                        clean_shutdown: false,
                        log_start_offset: st.log_start_offset,
                        recovery_point: rp,
                    },
                    rp,
                )
            };
            self.disk
                .write_file_atomic(&self.dir.join(META_FILE), &meta.encode())
                .await
                .map_err(|e| self.fail_write("partition checkpoint", e))?;
            self.state.borrow_mut().recovery_point = rp;
        }
        Ok(())
    }

    async fn write_snapshot(&self, at: Offset, bytes: &[u8]) -> Result<(), FlushError> {
        let path = segment_path(&self.dir, at, "snapshot");
        self.disk
            .write_file_atomic(&path, bytes)
            .await
            .map_err(|e| self.fail_write("producer snapshot", e))?;
        let names = self
            .disk
            .list_dir(&self.dir)
            .map_err(|e| self.fail("list dir", e))?;
        let mut snaps: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_name(n, "snapshot"))
            .collect();
        snaps.sort();
        if snaps.len() > SNAPSHOTS_KEPT {
            for s in &snaps[..snaps.len() - SNAPSHOTS_KEPT] {
                let _ = self
                    .disk
                    .remove_file(&segment_path(&self.dir, *s, "snapshot"));
            }
        }
        Ok(())
    }

    /// Flushes one segment's pending batches; finalizes it if sealed. Returns whether it
    /// was finalized now.
    async fn flush_segment(
        &self,
        base: Offset,
        deferred_sync: &mut Option<Rc<dyn DiskFile>>,
    ) -> Result<bool, FlushError> {
        let needs_file = self
            .state
            .borrow()
            .segments
            .get(&base)
            .is_some_and(|s| s.file.is_none());
        if needs_file {
            let path = segment_path(&self.dir, base, "log");
            let f = self
                .disk
                .open(&path, true)
                .await
                .map_err(|e| self.fail_write("create segment", e))?;
            self.disk
                .sync_dir(&self.dir)
                .await
                .map_err(|e| self.fail("sync dir", e))?;
            if let Some(s) = self.state.borrow_mut().segments.get_mut(&base) {
                s.file = Some(f);
            }
        }
        let Some((file, stale_at)) = ({
            let st = self.state.borrow();
            st.segments.get(&base).map(|s| {
                (
                    s.file.clone().expect("opened above"),
                    s.tail_stale.then_some(s.written),
                )
            })
        }) else {
            return Ok(false);
        };
        let align = file.alignment();
        if let Some(written) = stale_at {
            let start = align_down(written, align);
            let tail = file
                .read_at(start, (written - start) as usize)
                .await
                .map_err(|e| self.fail("read tail", e))?;
            if tail.len() as u64 != written - start {
                return Err(self.fail("read tail", std::io::Error::other("short read")));
            }
            if let Some(s) = self.state.borrow_mut().segments.get_mut(&base) {
                s.tail = tail;
                s.tail_stale = false;
            }
        }
        let work = {
            let st = self.state.borrow();
            st.segments.get(&base).and_then(|s| {
                let last = s.pending.back()?;
                let start = align_down(s.written, align);
                let mut parts = Vec::with_capacity(s.pending.len() + 1);
                parts.push(s.tail.clone());
                parts.extend(s.pending.iter().map(|p| p.bytes.clone()));
                Some((
                    start,
                    parts,
                    s.pending.len(),
                    last.position + last.bytes.len() as u64,
                ))
            })
        };
        if let Some((start, parts, count, new_written)) = work {
            let new_tail = tail_of(&parts, start, new_written, align);
            file.write_at(start, parts)
                .await
                .map_err(|e| self.fail_write("write segment", e))?;
            let active = self.state.borrow().active().base_offset == base;
            if active {
                // Synced after the io lock is released, so the next group's write
                // overlaps with this fdatasync (pipelined group commit).
                *deferred_sync = Some(file.clone());
            } else {
                file.fdatasync()
                    .await
                    .map_err(|e| self.fail("fdatasync segment", e))?;
            }
            let mut st = self.state.borrow_mut();
            if let Some(s) = st.segments.get_mut(&base) {
                s.pending.drain(..count);
                s.written = new_written;
                s.tail = new_tail;
            }
        }
        let finalize = {
            let st = self.state.borrow();
            st.segments.get(&base).and_then(|s| {
                (s.sealed && !s.finalized && s.pending.is_empty())
                    .then(|| (s.size, s.encode_indexes()))
            })
        };
        let Some((size, (oi, ti))) = finalize else {
            return Ok(false);
        };
        file.truncate(size)
            .await
            .map_err(|e| self.fail("trim segment", e))?;
        file.fdatasync()
            .await
            .map_err(|e| self.fail("fdatasync segment", e))?;
        self.disk
            .write_file_atomic(&segment_path(&self.dir, base, "index"), &oi)
            .await
            .map_err(|e| self.fail_write("write index", e))?;
        self.disk
            .write_file_atomic(&segment_path(&self.dir, base, "timeindex"), &ti)
            .await
            .map_err(|e| self.fail_write("write time index", e))?;
        if let Some(s) = self.state.borrow_mut().segments.get_mut(&base) {
            s.finalized = true;
        }
        Ok(true)
    }

    /// Whole batches starting with the one containing `from`, up to `bytes_max` bytes but
    /// at least one batch. Empty at the log end offset.
    pub async fn read(&self, from: Offset, bytes_max: u32) -> Result<ReadResult, ReadError> {
        self.read_up_to(from, bytes_max, Offset(i64::MAX)).await
    }

    /// `read`, serving only batches that end below `max_offset` (a consumer's high
    /// watermark): a batch straddling it is not served. Empty at or past `max_offset`.
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
        let mut out: Vec<Bytes> = Vec::new();
        let mut used = 0usize;
        let mut cursor = from;
        'read: loop {
            if !out.is_empty() && used >= bytes_max {
                break;
            }
            let budget = bytes_max.saturating_sub(used);
            let take_first = out.is_empty();
            let disk_job = {
                let st = self.state.borrow();
                if cursor >= st.log_end_offset || cursor >= max_offset {
                    break;
                }
                let Some(seg) = st.segment_for(cursor) else {
                    break;
                };
                if cursor >= seg.next_offset {
                    break;
                }
                let pending = seg.pending_run(cursor, budget, take_first);
                if !pending.is_empty() {
                    for p in pending {
                        if p.last_offset >= max_offset {
                            break 'read;
                        }
                        used += p.bytes.len();
                        cursor = Offset(p.last_offset.0 + 1);
                        out.push(p.bytes);
                    }
                    continue;
                }
                let cached = self.cache.run(self.cache_id, cursor, budget, take_first);
                if !cached.is_empty() {
                    for c in cached {
                        if c.last_offset >= max_offset {
                            break 'read;
                        }
                        used += c.bytes.len();
                        cursor = Offset(c.last_offset.0 + 1);
                        out.push(c.bytes);
                    }
                    continue;
                }
                let position = u64::from(offset_index::lookup(
                    &seg.offset_index,
                    seg.relative(cursor),
                ));
                // Past the last batch of a compacted segment: go on with the next one. (A
                // sealed segment with nothing pending has all its batches in the file.)
                let skip_to = (seg.sealed && seg.pending.is_empty()).then_some(seg.next_offset);
                match &seg.file {
                    Some(f) if position < seg.written => {
                        Some((f.clone(), seg.base_offset, position, seg.written, skip_to))
                    }
                    _ => match skip_to {
                        Some(next) => {
                            cursor = next;
                            continue;
                        }
                        None => None,
                    },
                }
            };
            let Some((file, base, position, written, skip_to)) = disk_job else {
                break;
            };
            let mut got = Vec::new();
            let read = read_from_file(
                &*file, base, position, written, cursor, budget, take_first, &mut got,
            )
            .await;
            let (exhausted, stopped) = match read {
                Ok(exhausted) => (exhausted, false),
                // Serve what is intact before the bad batch; a read from it fails.
                Err(e) if out.is_empty() && got.is_empty() => return Err(e),
                Err(_) => (false, true),
            };
            if got.is_empty() {
                if let (true, Some(next)) = (exhausted, skip_to) {
                    cursor = next;
                    continue;
                }
                break;
            }
            for b in got {
                let h = BatchHeader::new(&b).expect("checked batch");
                if h.last_offset() >= max_offset {
                    break 'read;
                }
                used += b.len();
                cursor = Offset(h.last_offset().0 + 1);
                out.push(b);
            }
            if stopped {
                break;
            }
        }
        Ok(out)
    }

    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.state.borrow().log_end_offset
    }

    /// Everything below this offset is fdatasync'ed.
    pub fn durable_offset(&self) -> Offset {
        self.state.borrow().durable_offset
    }

    /// Set once a write or fsync failed; the log then refuses writes for good.
    pub fn failure(&self) -> Option<String> {
        self.state.borrow().failed.clone()
    }

    pub fn producer_count(&self) -> usize {
        self.state.borrow().producers.producer_count()
    }

    /// Producer state for one producer id: (epoch, last sequence) if known.
    pub fn producer_last_sequence(&self, producer_id: i64) -> Option<(i16, i32)> {
        let st = self.state.borrow();
        let e = st.producers.get(producer_id)?;
        Some((e.producer_epoch, e.batches.back()?.last_sequence))
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.state.borrow().segments.keys().copied().collect()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.values().map(|s| s.size).sum()
    }

    pub fn config(&self) -> LogConfig {
        *self.config.borrow()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
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

    /// A future resolving at the next append (or truncation/close): Fetch long-poll.
    pub fn appended(&self) -> EventListener {
        self.appended.listen()
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

    /// DeleteRecords: moves the log start offset to `offset` and deletes segments wholly
    /// below it. Returns the new log start offset.
    pub async fn delete_records_before(
        &self,
        offset: Offset,
    ) -> Result<Offset, DeleteRecordsError> {
        let _guard = self.lock_exclusive().await;
        {
            let st = self.state.borrow();
            st.check_not_failed().map_err(LogIoError::from)?;
            if offset > st.log_end_offset {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    requested: offset,
                    log_end: st.log_end_offset,
                });
            }
            if offset <= st.log_start_offset {
                return Ok(st.log_start_offset);
            }
        }
        self.flush_unless_out_of_space().await?;
        self.state.borrow_mut().log_start_offset = offset;
        let removed = self.remove_prefix(|_, s, lso| s.next_offset <= lso)?;
        self.persist_meta_and_delete(&removed).await?;
        Ok(self.log_start_offset())
    }

    /// Removes the longest prefix of sealed segments matching `doomed` (given total bytes
    /// left and the log start offset), moving the log start offset past them.
    fn remove_prefix(
        &self,
        mut doomed: impl FnMut(u64, &Segment, Offset) -> bool,
    ) -> Result<Vec<(Offset, u64)>, LogIoError> {
        let mut st = self.state.borrow_mut();
        let mut total: u64 = st.segments.values().map(|s| s.size).sum();
        let mut removed = Vec::new();
        loop {
            if st.segments.len() <= 1 {
                break;
            }
            let (&base, seg) = st.segments.iter().next().expect("non-empty");
            // Batches not yet written (the disk was full) are not below the durable end.
            if !seg.pending.is_empty() || !doomed(total, seg, st.log_start_offset) {
                break;
            }
            assert!(seg.sealed);
            total -= seg.size;
            removed.push((base, seg.size));
            st.segments.remove(&base);
        }
        let first = *st.segments.keys().next().expect("active segment remains");
        if st.log_start_offset < first {
            st.log_start_offset = first;
        }
        let lso = st.log_start_offset;
        st.recompute_max_timestamp();
        drop(st);
        self.cache.remove_below(self.cache_id, lso);
        Ok(removed)
    }

    fn delete_segment_files(&self, removed: &[(Offset, u64)]) {
        for (base, _) in removed {
            for ext in ["log", "index", "timeindex"] {
                if let Err(e) = self.disk.remove_file(&segment_path(&self.dir, *base, ext)) {
                    warn!(dir = %self.dir.display(), segment = base.0, error = %e, "could not delete segment file");
                }
            }
        }
    }

    async fn persist_meta(&self) -> Result<(), LogIoError> {
        let meta = {
            let st = self.state.borrow();
            PartitionMeta {
                clean_shutdown: false,
                log_start_offset: st.log_start_offset,
                recovery_point: st.recovery_point.min(st.log_end_offset),
            }
        };
        match self
            .disk
            .write_file_atomic(&self.dir.join(META_FILE), &meta.encode())
            .await
        {
            Ok(()) => Ok(()),
            // Nothing was replaced: the old checkpoint stands and the log stays usable.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Err(LogIoError::OutOfSpace(format!("partition checkpoint: {e}")))
            }
            Err(e) => Err(LogIoError::from(self.fail("partition checkpoint", e))),
        }
    }

    /// Persists the checkpoint after segments left the log, then deletes their files. On
    /// a full disk the checkpoint cannot be written before the files are gone, so they
    /// go first then; a crash in between is repaired at open, which starts the log at its
    /// first remaining segment.
    async fn persist_meta_and_delete(&self, removed: &[(Offset, u64)]) -> Result<(), LogIoError> {
        match self.persist_meta().await {
            Err(LogIoError::OutOfSpace(reason)) => {
                warn!(dir = %self.dir.display(), reason = %reason, "disk full; deleting segments before the checkpoint");
                self.delete_segment_files(removed);
                self.persist_meta().await
            }
            other => {
                self.delete_segment_files(removed);
                other
            }
        }
    }

    /// The flush retention and delete-records do first. A full disk does not stop them:
    /// they only remove closed segments, and that is how space comes back.
    async fn flush_unless_out_of_space(&self) -> Result<(), LogIoError> {
        match self.flush_locked().await {
            Ok(()) | Err(FlushError::OutOfSpace(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rolls by `segment.ms` (or the shorter `max.compaction.lag.ms` of a compacted log),
    /// then deletes whole segments past `retention.ms` or
    /// `retention.bytes`, or below the log start offset. The active segment is rolled
    /// first when it alone is past retention, as Kafka does.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, LogIoError> {
        let _guard = self.lock_exclusive().await;
        let config = *self.config.borrow();
        let deletes = config.cleanup_policy != CleanupPolicy::Compact;
        let rolled = {
            let mut st = self.state.borrow_mut();
            st.check_not_failed()?;
            let a = st.active();
            let age_due = a.size > 0
                && a.first_append_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= roll_ms(&config));
            let expired = deletes
                && a.size > 0
                && config.retention_ms >= 0
                && a.max_timestamp < now_ms.saturating_sub(config.retention_ms);
            // A full disk takes no new segment file; what is closed can still go.
            let roll = (age_due || expired) && st.out_of_space.is_none();
            if roll {
                self.roll_locked(&mut st);
            }
            roll
        };
        self.flush_unless_out_of_space().await?;
        if !deletes {
            return Ok(RetentionOutcome {
                rolled,
                log_start_offset: self.log_start_offset(),
                ..Default::default()
            });
        }
        let removed = self.remove_prefix(|total, s, lso| {
            let by_time = config.retention_ms >= 0
                && s.max_timestamp < now_ms.saturating_sub(config.retention_ms);
            let by_size = config.retention_bytes >= 0
                && total.saturating_sub(s.size) >= config.retention_bytes as u64;
            by_time || by_size || s.next_offset <= lso
        })?;
        if !removed.is_empty() {
            self.persist_meta_and_delete(&removed).await?;
            info!(dir = %self.dir.display(), segments = removed.len(), log_start_offset = self.log_start_offset().0,
                "deleted segments by retention");
        }
        Ok(RetentionOutcome {
            rolled,
            segments_deleted: removed.len(),
            bytes_deleted: removed.iter().map(|r| r.1).sum(),
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Removes every batch at or after `offset` (whole batches: the batch containing
    /// `offset` goes too). Below the log start offset the log is emptied and restarts at
    /// `offset`. Followers use this to drop a divergent tail.
    pub async fn truncate_to(&self, offset: Offset) -> Result<(), LogIoError> {
        let _guard = self.lock_exclusive().await;
        {
            let st = self.state.borrow();
            st.check_writable()?;
            if offset >= st.log_end_offset {
                return Ok(());
            }
        }
        self.flush_locked().await?;
        let (lso, first_base) = {
            let st = self.state.borrow();
            (
                st.log_start_offset,
                *st.segments.keys().next().expect("non-empty"),
            )
        };
        if offset < lso || offset <= first_base {
            return self.truncate_fully(offset).await;
        }
        // Find the batch containing `offset`: its position and base offset.
        let (file, seg_base, start, end) = {
            let st = self.state.borrow();
            let seg = st.segment_for(offset).expect("offset above first base");
            let start = u64::from(offset_index::lookup(
                &seg.offset_index,
                seg.relative(offset),
            ));
            (
                seg.file.clone().expect("flushed segment has a file"),
                seg.base_offset,
                start,
                seg.size,
            )
        };
        let mut cut: Option<(u64, Offset)> = None;
        let stop = scan_file(&file, start, end, None, false, &mut |pos, whole| {
            let h = BatchHeader::new(whole).expect("scanned batch");
            if cut.is_none() && h.last_offset() >= offset {
                cut = Some((pos, h.base_offset()));
            }
        })
        .await
        .map_err(|e| LogIoError::from(self.fail("truncate scan", e)))?;
        if let Some(stop) = stop {
            return Err(LogIoError::Corrupt {
                segment: seg_base,
                position: stop.position,
                reason: stop.reason,
            });
        }
        let (position, new_end) =
            cut.unwrap_or((end, self.state.borrow().segments[&seg_base].next_offset));
        if new_end < lso {
            // The batch holding `offset` also holds the log start offset: nothing is left.
            return self.truncate_fully(offset).await;
        }
        // Recompute the segment's max timestamp: the time index covers everything before
        // the last kept offset-index entry; scan the rest.
        let (index_pos, mut max_ts) = {
            let st = self.state.borrow();
            let seg = &st.segments[&seg_base];
            let x = seg
                .offset_index
                .iter()
                .rev()
                .find(|e| u64::from(e.position) < position)
                .map_or(0, |e| e.position);
            let t = time_index::floor_by_position(&seg.time_index, x).map(|e| {
                (
                    e.timestamp_ms,
                    Offset(seg_base.0 + i64::from(e.relative_offset)),
                )
            });
            (u64::from(x), t.unwrap_or((i64::MIN, Offset(-1))))
        };
        let stop = scan_file(&file, index_pos, position, None, false, &mut |_, whole| {
            let h = BatchHeader::new(whole).expect("scanned batch");
            if h.max_timestamp() > max_ts.0 {
                max_ts = (h.max_timestamp(), h.last_offset());
            }
        })
        .await
        .map_err(|e| LogIoError::from(self.fail("truncate scan", e)))?;
        if let Some(stop) = stop {
            return Err(LogIoError::Corrupt {
                segment: seg_base,
                position: stop.position,
                reason: stop.reason,
            });
        }
        let removed: Vec<(Offset, u64)> = {
            let mut st = self.state.borrow_mut();
            let later: Vec<Offset> = st
                .segments
                .range(Offset(seg_base.0 + 1)..)
                .map(|(b, _)| *b)
                .collect();
            let removed = later.iter().map(|b| (*b, st.segments[b].size)).collect();
            for b in &later {
                st.segments.remove(b);
            }
            let seg = st.segments.get_mut(&seg_base).expect("kept segment");
            seg.offset_index
                .retain(|e| u64::from(e.position) < position);
            seg.time_index.retain(|e| u64::from(e.position) < position);
            seg.bytes_since_index = position - index_pos;
            seg.size = position;
            seg.written = position;
            seg.tail_stale = true;
            seg.pending.clear();
            seg.next_offset = new_end;
            seg.max_timestamp = max_ts.0;
            seg.max_timestamp_offset = max_ts.1;
            if position == 0 {
                seg.first_batch_timestamp = None;
            }
            seg.sealed = false;
            seg.finalized = false;
            seg.first_append_ms = None;
            st.truncations += 1;
            st.log_end_offset = new_end;
            st.durable_offset = st.durable_offset.min(new_end);
            st.recovery_point = st.recovery_point.min(new_end);
            st.epochs_dirty |= st.epochs.truncate_from_end(new_end);
            st.recompute_max_timestamp();
            removed
        };
        self.cache.remove_from(self.cache_id, new_end);
        // The checkpoints go first: with the recovery point at or below the cut, a crash
        // in the middle of the file operations below is repaired by the recovery scan, and
        // the cleaner's progress never counts records appended after the cut as clean.
        self.truncate_cleaner_checkpoint(new_end).await?;
        self.persist_meta().await?;
        file.truncate(position)
            .await
            .map_err(|e| LogIoError::from(self.fail("truncate segment", e)))?;
        file.fdatasync()
            .await
            .map_err(|e| LogIoError::from(self.fail("fdatasync segment", e)))?;
        for ext in ["index", "timeindex"] {
            let _ = self
                .disk
                .remove_file(&segment_path(&self.dir, seg_base, ext));
        }
        self.delete_segment_files(&removed);
        self.after_truncation().await?;
        Ok(())
    }

    /// Empties the log and restarts it at `offset`.
    async fn truncate_fully(&self, offset: Offset) -> Result<(), LogIoError> {
        let removed: Vec<(Offset, u64)> = {
            let mut st = self.state.borrow_mut();
            let removed = st.segments.iter().map(|(b, s)| (*b, s.size)).collect();
            st.segments.clear();
            st.segments.insert(offset, Segment::new(offset));
            st.truncations += 1;
            st.log_start_offset = offset;
            st.log_end_offset = offset;
            st.durable_offset = offset;
            st.recovery_point = offset;
            st.epochs_dirty |= st.epochs.truncate_from_end(offset);
            st.max_timestamp = None;
            removed
        };
        self.cache.remove_log(self.cache_id);
        self.truncate_cleaner_checkpoint(offset).await?;
        self.persist_meta().await?;
        self.delete_segment_files(&removed);
        self.after_truncation().await
    }

    /// Persists checkpoints after a truncation and rebuilds producer state.
    async fn after_truncation(&self) -> Result<(), LogIoError> {
        let epochs = {
            let mut st = self.state.borrow_mut();
            std::mem::take(&mut st.epochs_dirty).then(|| st.epochs.encode())
        };
        if let Some(bytes) = epochs {
            self.disk
                .write_file_atomic(&self.dir.join(EPOCH_FILE), &bytes)
                .await
                .map_err(|e| LogIoError::from(self.fail("epoch checkpoint", e)))?;
        }
        let names = self
            .disk
            .list_dir(&self.dir)
            .map_err(|e| LogIoError::from(self.fail("list dir", e)))?;
        let mut snaps: Vec<Offset> = names
            .iter()
            .filter_map(|n| parse_name(n, "snapshot"))
            .collect();
        snaps.sort();
        self.load_producer_state(&snaps, None).await?;
        self.appended.notify();
        Ok(())
    }

    /// Flushes, writes indexes, a producer snapshot and the clean-shutdown checkpoint.
    /// The log takes no more calls afterwards.
    pub async fn close(&self) -> Result<(), LogIoError> {
        let _guard = self.lock_exclusive().await;
        if self.state.borrow().closed {
            return Ok(());
        }
        self.flush_locked().await?;
        let (file, size, base, (oi, ti), leo, snapshot, epochs, lso) = {
            let st = self.state.borrow();
            let a = st.active();
            (
                a.file.clone(),
                a.size,
                a.base_offset,
                a.encode_indexes(),
                st.log_end_offset,
                st.producers.to_snapshot(),
                st.epochs.encode(),
                st.log_start_offset,
            )
        };
        if let Some(file) = file {
            file.truncate(size)
                .await
                .map_err(|e| LogIoError::from(self.fail("trim segment", e)))?;
            file.fdatasync()
                .await
                .map_err(|e| LogIoError::from(self.fail("fdatasync segment", e)))?;
        }
        let index_writes = [("index", oi), ("timeindex", ti)];
        for (ext, bytes) in &index_writes {
            self.disk
                .write_file_atomic(&segment_path(&self.dir, base, ext), bytes)
                .await
                .map_err(|e| LogIoError::from(self.fail_write("write index", e)))?;
        }
        self.write_snapshot(leo, &snapshot).await?;
        self.disk
            .write_file_atomic(&self.dir.join(EPOCH_FILE), &epochs)
            .await
            .map_err(|e| LogIoError::from(self.fail_write("epoch checkpoint", e)))?;
        let meta = PartitionMeta {
            clean_shutdown: true,
            log_start_offset: lso,
            recovery_point: leo,
        };
        self.disk
            .write_file_atomic(&self.dir.join(META_FILE), &meta.encode())
            .await
            .map_err(|e| LogIoError::from(self.fail_write("partition checkpoint", e)))?;
        self.state.borrow_mut().closed = true;
        self.cache.remove_log(self.cache_id);
        self.appended.notify();
        self.flush_wanted.notify();
        info!(dir = %self.dir.display(), log_end_offset = leo.0, "closed log");
        Ok(())
    }

    /// DeleteTopics: closes the log and removes its directory.
    pub async fn delete(self: Rc<Self>) -> Result<(), LogIoError> {
        let _guard = self.lock_exclusive().await;
        {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            st.segments.clear();
        }
        self.cache.remove_log(self.cache_id);
        self.appended.notify();
        self.flush_wanted.notify();
        self.disk
            .remove_dir_all(&self.dir)
            .await
            .map_err(|e| LogIoError::LogFailed(format!("remove dir: {e}")))?;
        info!(dir = %self.dir.display(), "deleted log");
        Ok(())
    }
}

/// The bytes from `align_down(new_written)` to `new_written` of the concatenated `parts`
/// that start at file position `start`: the partial block to rewrite next time.
fn tail_of(parts: &[Bytes], start: u64, new_written: u64, align: u64) -> Bytes {
    let from = align_down(new_written, align);
    let mut out = Vec::with_capacity((new_written - from) as usize);
    let mut pos = start;
    for p in parts {
        let end = pos + p.len() as u64;
        if end > from && pos < new_written {
            let a = from.max(pos) - pos;
            let b = new_written.min(end) - pos;
            out.extend_from_slice(&p[a as usize..b as usize]);
        }
        pos = end;
    }
    assert_eq!(out.len() as u64, new_written - from);
    Bytes::from(out)
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
            batch::validate_stored(&whole).map_err(|e| match e {
                BatchError::CrcMismatch { stored, computed } => ReadError::CrcMismatch {
                    segment,
                    position: at,
                    stored,
                    computed,
                },
                other => corrupt(at, other.to_string()),
            })?;
            if let Some(e) = expect
                && h.base_offset() < e
            {
                return Err(corrupt(
                    at,
                    format!(
                        "base offset {} where at least {} was expected",
                        h.base_offset().0,
                        e.0
                    ),
                ));
            }
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
