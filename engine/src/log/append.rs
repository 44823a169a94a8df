//! Appends and group commit. `append` validates, stamps (offsets, leader epoch,
//! LogAppendTime) and queues a batch in the active segment's pending list, readable at
//! once and never waiting for I/O; it rolls the active segment first when the batch
//! would not fit. A flush writes every pending batch with O_DIRECT (rewriting the
//! partially filled tail block), finalizes sealed segments (trim, fdatasync, indexes)
//! and the checkpoints that are due, then hands a `SyncTicket` to a task that fdatasyncs
//! the active segment after the io lock is released, so the next group's write overlaps
//! with this group's sync. A background flusher covers acks=1 data and retries a write
//! that found the disk full. Runs on the shard owning the log.
//!
//! Invariants: the durable offset only moves forward, in ticket order, and never past a
//! failed sync (a failed fsync fails the log for good); a write that found the disk full
//! never happened and its batches stay pending until a retry succeeds; `written` of a
//! segment is a batch boundary and the in-memory `tail` holds the file bytes from the
//! aligned block below it.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tracing::{debug, info};

use crate::batch::{self, BatchError, BatchHeader};
use crate::checkpoint::{META_FILE, PartitionMeta};
use crate::disk::{DiskFile, align_down};
use crate::error::{AppendError, FlushError};
use crate::event::EventListener;
use crate::producer_state::{SequenceCheck, SequenceError};
use crate::read_cache::CachedBatch;
use crate::record::{self, AppendRules};
use crate::segment::{PendingBatch, SCAN_BATCH_BYTES_MAX, Segment, parse_name, segment_path};
use crate::{CleanupPolicy, LeaderEpoch, LogConfig, Offset, TimestampOffset, TimestampType};

use super::{APPEND_DECOMPRESSED_BYTES_MAX, EPOCH_FILE, Log, State};

/// Producer-state snapshots kept on disk (older ones are deleted).
const SNAPSHOTS_KEPT: usize = 2;

/// How often a log whose write found the disk full retries that write.
const OUT_OF_SPACE_RETRY_MS: u64 = 200;

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

/// One flush's last step: the active segment file to fdatasync and the log end offset
/// its writes covered. `seq` orders tickets.
struct SyncTicket {
    seq: u64,
    target: Offset,
    file: Option<Rc<dyn DiskFile>>,
}

fn effective_segment_bytes_max(config: &LogConfig) -> u64 {
    config.segment_bytes_max.clamp(1, i32::MAX as u64)
}

impl Log {
    /// Background flusher: writes unflushed appends every `flush_interval_ms`, when
    /// `flush_bytes_pending_max` is passed or when asked (`request_flush`: a fetch
    /// waits), so acks=1 data reaches the disk without any waiter. While the disk is full
    /// it retries the failed write every `OUT_OF_SPACE_RETRY_MS`, ignoring requests, so a
    /// full disk is not hammered. Holds only a weak reference; ends when the log is
    /// closed, failed or dropped.
    pub(super) fn spawn_flusher(log: &Rc<Log>) {
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

    /// Validates, stamps and appends one RecordBatch v2; readable at once, durable after
    /// `wait_durable`. Never waits for I/O.
    pub fn append(
        &self,
        batch: Bytes,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let config = *self.config.borrow();
        let batch = checked_for_append(batch, &config)?;
        let header = BatchHeader::new(&batch).expect("validated above");
        debug_assert!(batch::validate(&batch).is_ok());
        let last_offset_delta = i64::from(header.last_offset_delta());
        let mut st = self.state.borrow_mut();
        st.check_appendable()?;
        if let Some(duplicate) = st.check_sequence(&header)? {
            return Ok(duplicate);
        }
        let base_offset = st.log_end_offset;
        let last_offset = Offset(base_offset.0 + last_offset_delta);
        let (bytes, log_append_time_ms) = stamp(
            batch,
            base_offset,
            leader_epoch,
            config.timestamp_type,
            now_ms,
        );
        self.push_locked(&mut st, &bytes, last_offset, leader_epoch, &config, now_ms);
        let unflushed = st.unflushed_bytes;
        let log_start_offset = st.log_start_offset;
        drop(st);
        let cached = CachedBatch {
            base_offset,
            last_offset,
            bytes,
        };
        self.announce_appended([cached], unflushed, &config);
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset,
            duplicate: false,
        })
    }

    /// After batches were pushed: the read cache takes them, Fetch long-polls wake, and
    /// the flusher starts once `unflushed` bytes reach `flush_bytes_pending_max`.
    pub(super) fn announce_appended(
        &self,
        batches: impl IntoIterator<Item = CachedBatch>,
        unflushed: u64,
        config: &LogConfig,
    ) {
        for b in batches {
            self.cache.insert(self.cache_id, b);
        }
        self.appended.notify();
        if unflushed >= config.flush_bytes_pending_max {
            self.flush_wanted.notify();
        }
    }

    /// Puts the stamped batch at the log end: in the active segment (rolled first when
    /// the batch does not fit), the producer state, the leader epochs and the max
    /// timestamp.
    pub(super) fn push_locked(
        &self,
        st: &mut State,
        bytes: &Bytes,
        last_offset: Offset,
        leader_epoch: LeaderEpoch,
        config: &LogConfig,
        now_ms: i64,
    ) {
        let h = BatchHeader::new(bytes).expect("validated above");
        let base_offset = h.base_offset();
        let len = bytes.len() as u64;
        let roll = {
            let a = st.active();
            a.size > 0
                && (a.size + len > effective_segment_bytes_max(config)
                    || last_offset.0 - a.base_offset.0 > i64::from(i32::MAX))
        };
        if roll {
            self.roll_locked(st);
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
    }

    pub(super) fn roll_locked(&self, st: &mut State) {
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

    /// Makes every append so far durable.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let leo = self.log_end_offset();
        self.wait_durable(leo).await
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
    pub(super) async fn flush_locked(&self) -> Result<(), FlushError> {
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
            let before = st.durable_offset;
            if st.durable_offset < ticket.target {
                st.durable_offset = ticket.target.min(st.log_end_offset);
            }
            Ok(st.durable_offset != before)
        });
        self.syncs_done.set(ticket.seq);
        self.sync_done_event.notify();
        if matches!(result, Ok(true)) {
            self.durable_moved.notify();
        }
        result.map(|_| ())
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

    pub(super) async fn write_snapshot(&self, at: Offset, bytes: &[u8]) -> Result<(), FlushError> {
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
        self.create_segment_file(base).await?;
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
        if let Some(written) = stale_at {
            self.reload_tail(base, &file, written).await?;
        }
        self.write_pending(base, &file, deferred_sync).await?;
        self.finalize_segment(base, &file).await
    }

    /// Creates the file of a segment that has none yet (rolled since the last flush) and
    /// syncs the directory.
    async fn create_segment_file(&self, base: Offset) -> Result<(), FlushError> {
        let needs_file = self
            .state
            .borrow()
            .segments
            .get(&base)
            .is_some_and(|s| s.file.is_none());
        if !needs_file {
            return Ok(());
        }
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
        Ok(())
    }

    /// Reads the partial block below `written` back from the file into the segment's
    /// `tail` (after open, truncation or compaction left it stale).
    async fn reload_tail(
        &self,
        base: Offset,
        file: &Rc<dyn DiskFile>,
        written: u64,
    ) -> Result<(), FlushError> {
        let start = align_down(written, file.alignment());
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
        Ok(())
    }

    /// Writes the segment's pending batches from the aligned block below `written`; a
    /// sealed segment is fdatasync'ed at once, the active one's file goes to
    /// `deferred_sync`.
    async fn write_pending(
        &self,
        base: Offset,
        file: &Rc<dyn DiskFile>,
        deferred_sync: &mut Option<Rc<dyn DiskFile>>,
    ) -> Result<(), FlushError> {
        let align = file.alignment();
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
        let Some((start, parts, count, new_written)) = work else {
            return Ok(());
        };
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
        Ok(())
    }

    /// Finalizes a sealed segment with nothing pending: trims and fdatasyncs its file and
    /// writes its indexes. Returns whether it did.
    async fn finalize_segment(
        &self,
        base: Offset,
        file: &Rc<dyn DiskFile>,
    ) -> Result<bool, FlushError> {
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
}

/// The bytes from `align_down(new_written)` to `new_written` of the concatenated `parts`
/// that start at file position `start`: the partial block to rewrite next time.
pub(super) fn tail_of(parts: &[Bytes], start: u64, new_written: u64, align: u64) -> Bytes {
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

impl State {
    /// Whether the log takes appends: not failed, not closed, not out of space.
    fn check_appendable(&self) -> Result<(), AppendError> {
        if let Some(reason) = &self.failed {
            return Err(AppendError::LogFailed(reason.clone()));
        }
        if self.closed {
            return Err(AppendError::Closed);
        }
        if let Some(reason) = &self.out_of_space {
            return Err(AppendError::OutOfSpace(reason.clone()));
        }
        Ok(())
    }

    /// The idempotent-producer check of a batch about to be appended: `Some` answers a
    /// retry of a batch already in the log with its original offsets.
    fn check_sequence(&self, header: &BatchHeader<'_>) -> Result<Option<AppendInfo>, AppendError> {
        match self.producers.check(header) {
            Ok(SequenceCheck::Append) => Ok(None),
            Ok(SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            }) => Ok(Some(AppendInfo {
                base_offset,
                last_offset,
                log_append_time_ms: -1,
                log_start_offset: self.log_start_offset,
                duplicate: true,
            })),
            Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got,
            }) => Err(AppendError::OutOfOrderSequence {
                producer_id,
                expected,
                got,
            }),
            Err(SequenceError::InvalidEpoch {
                producer_id,
                current,
                got,
            }) => Err(AppendError::InvalidProducerEpoch {
                producer_id,
                current,
                got,
            }),
        }
    }
}

/// The batch as it will be stored: size-capped, validated, its records checked and
/// recompressed with the topic's codec when that differs.
fn checked_for_append(batch: Bytes, config: &LogConfig) -> Result<Bytes, AppendError> {
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
    Ok(batch)
}

/// Stamps the broker's fields into the batch: base offset, leader epoch and, for
/// LogAppendTime topics, the append time (returned, or -1 for CreateTime).
fn stamp(
    batch: Bytes,
    base_offset: Offset,
    leader_epoch: LeaderEpoch,
    timestamp_type: TimestampType,
    now_ms: i64,
) -> (Bytes, i64) {
    // Stamp in place when we hold the only reference, else copy once.
    let mut buf = batch
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    batch::stamp_offset_and_epoch(&mut buf, base_offset, leader_epoch.0);
    let log_append_time_ms = match timestamp_type {
        TimestampType::LogAppendTime => {
            batch::stamp_log_append_time(&mut buf, now_ms);
            now_ms
        }
        TimestampType::CreateTime => -1,
    };
    (buf.freeze(), log_append_time_ms)
}
