//! `Log`: one partition's log on one shard. Appends are validated, stamped and made
//! readable at once from memory; a flush (group commit, serialized by `io_busy`) writes
//! the unflushed tail with O_DIRECT and fdatasyncs it. Reads come from the unflushed
//! tail, then the shard's read cache, then the segment files. Open runs recovery when the
//! last stop was not clean.
//!
//! This file holds the `Log` and its state, the two locks, failure marking, the
//! accessors and close/delete. The rest, split as Kafka splits it: `load.rs` (open and
//! recovery, Kafka's LogLoader), `append.rs` (append, roll and group commit),
//! `follower.rs` (`append_replicated`, Kafka's appendAsFollower, and `assign_epoch`),
//! `read.rs` (reads, timestamp and leader-epoch lookups), `retention.rs` (retention,
//! DeleteRecords, `truncate_to`) and `cleaner.rs` (compaction of closed segments).
//! Retention, DeleteRecords and compaction stay below the high watermark their caller
//! passes (and the durable end).
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
//! next; batches inside may leave gaps once compacted); only the last segment takes
//! appends; `durable_offset <= log_end_offset`; `log_start_offset <= log_end_offset`.
//! Once an fsync (or a write for another reason than a full disk) fails the log is
//! failed for good: reads keep working, writes are refused. A write that finds the disk full never happened: appends are refused while
//! the flusher retries it, retention and delete-records still run (they free space),
//! and the log takes appends again once the retry succeeds. Reads may be bounded by the
//! high watermark (`read_up_to`); a batch that fails its checks ends a read, serving the
//! intact batches before it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tracing::{debug, error, info};

use crate::checkpoint::{META_FILE, PartitionMeta};
use crate::disk::{Disk, DiskFile};
use crate::error::{FlushError, LogIoError};
use crate::event::{Event, EventListener};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerState;
use crate::read_cache::ReadCache;
use crate::segment::{Segment, segment_path};
use crate::{LogConfig, Offset, TimestampOffset};

mod append;
mod cleaner;
mod follower;
mod load;
mod read;
mod retention;

pub use append::AppendInfo;
pub use cleaner::CompactOutcome;
pub use follower::ReplicatedAppendInfo;
pub use read::ReadResult;
pub use retention::RetentionOutcome;

const EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Decompressed record bytes of one appended batch, when the append must read its
/// records (see `record::check_for_append`); as the cleaner's cap.
const APPEND_DECOMPRESSED_BYTES_MAX: usize = cleaner::CLEANER_DECOMPRESSED_BYTES_MAX;

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
    /// Notified whenever the durable offset changes: up after an fsync, down after a
    /// truncation.
    durable_moved: Event,
    /// This log's own `Rc`, for tasks that must outlive a caller's future.
    me: RefCell<std::rc::Weak<Log>>,
    appended: Event,
    flush_wanted: Event,
    /// Compaction progress between `compact` calls.
    cleaner: RefCell<cleaner::Cleaner>,
    /// Set while a `compact` call runs (one at a time).
    cleaning: Cell<bool>,
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

impl Log {
    pub fn dir(&self) -> &Path {
        &self.dir
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

    fn fail(&self, what: &str, e: std::io::Error) -> FlushError {
        let reason = format!("{what}: {e}");
        error!(dir = %self.dir.display(), reason = %reason, "log failed; refusing further writes");
        self.state.borrow_mut().failed.get_or_insert(reason.clone());
        // A replica waiting for its durable end to move learns it never will.
        self.durable_moved.notify();
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

    pub fn log_start_offset(&self) -> Offset {
        self.state.borrow().log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.state.borrow().log_end_offset
    }

    /// The durable end: everything below this offset is fdatasync'ed. A replica reports
    /// this offset to its leader (the high watermark is the smallest one over the ISR).
    pub fn durable_offset(&self) -> Offset {
        self.state.borrow().durable_offset
    }

    /// The durability event: a future resolving at the next change of `durable_offset`
    /// (it moves up after each fsync that covered new batches, down after a truncation).
    /// Take the listener before reading the offset, so no move is missed:
    /// `let moved = log.durable_moved(); report(log.durable_offset()); moved.await;`.
    /// Also resolves when the log closes or fails (`failure()` is then set).
    pub fn durable_moved(&self) -> EventListener {
        self.durable_moved.listen()
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

    /// A future resolving at the next append (or truncation/close): Fetch long-poll.
    pub fn appended(&self) -> EventListener {
        self.appended.listen()
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
        self.durable_moved.notify();
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
