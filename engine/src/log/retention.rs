//! Removing data from a log: retention by time and size and by `segment.ms` rolling
//! (`enforce_retention`), DeleteRecords (`delete_records_before`) and a follower's
//! truncation of a divergent tail (`truncate_to`). Runs on the shard owning the log.
//!
//! Invariants: all of them hold the segments lock and then the io lock; the active
//! segment is never deleted by retention or delete-records, only closed segments with
//! nothing pending; the partition checkpoint is written before segment files are
//! deleted (except on a full disk, where open repairs a crash in between); a truncation
//! writes the cleaner's and the partition's checkpoints at or below the cut before it
//! cuts any file, so a crash in the middle is repaired by the recovery scan.

use std::rc::Rc;

use tracing::{info, warn};

use crate::batch::BatchHeader;
use crate::checkpoint::{META_FILE, PartitionMeta};
use crate::disk::DiskFile;
use crate::error::{DeleteRecordsError, FlushError, LogIoError};
use crate::offset_index;
use crate::segment::{Segment, parse_name, scan_file, segment_path};
use crate::time_index;
use crate::{CleanupPolicy, LogConfig, Offset};

use super::{EPOCH_FILE, Log};

/// What `enforce_retention` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub rolled: bool,
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
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

impl Log {
    /// DeleteRecords: moves the log start offset to `offset` and deletes segments wholly
    /// below it. `offset` may not pass `high_watermark` (nor the log end offset), so
    /// nothing at or above the high watermark goes; the log is flushed first. Returns the
    /// new log start offset.
    pub async fn delete_records_before(
        &self,
        offset: Offset,
        high_watermark: Offset,
    ) -> Result<Offset, DeleteRecordsError> {
        let _guard = self.lock_exclusive().await;
        {
            let st = self.state.borrow();
            st.check_not_failed().map_err(LogIoError::from)?;
            let bound = high_watermark.min(st.log_end_offset);
            if offset > bound {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    requested: offset,
                    high_watermark: bound,
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
    /// first when it alone is past retention, as Kafka does. Only segments that end at
    /// or below both `high_watermark` and the durable end (after this call's flush) are
    /// deleted, so the log start offset never passes the high watermark.
    pub async fn enforce_retention(
        &self,
        now_ms: i64,
        high_watermark: Offset,
    ) -> Result<RetentionOutcome, LogIoError> {
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
        let bound = high_watermark.min(self.durable_offset());
        let removed = self.remove_prefix(|total, s, lso| {
            if s.next_offset > bound {
                return false;
            }
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
        let cut = self.find_cut(offset).await?;
        if cut.new_end < lso {
            // The batch holding `offset` also holds the log start offset: nothing is left.
            return self.truncate_fully(offset).await;
        }
        let kept = self.kept_max_timestamp(&cut).await?;
        let removed = self.cut_state(&cut, kept);
        self.cache.remove_from(self.cache_id, cut.new_end);
        // The checkpoints go first: with the recovery point at or below the cut, a crash
        // in the middle of the file operations below is repaired by the recovery scan, and
        // the cleaner's progress never counts records appended after the cut as clean.
        self.truncate_cleaner_checkpoint(cut.new_end).await?;
        self.persist_meta().await?;
        cut.file
            .truncate(cut.position)
            .await
            .map_err(|e| LogIoError::from(self.fail("truncate segment", e)))?;
        cut.file
            .fdatasync()
            .await
            .map_err(|e| LogIoError::from(self.fail("fdatasync segment", e)))?;
        for ext in ["index", "timeindex"] {
            let _ = self
                .disk
                .remove_file(&segment_path(&self.dir, cut.segment, ext));
        }
        self.delete_segment_files(&removed);
        self.after_truncation().await?;
        Ok(())
    }

    /// Finds the batch containing `offset` (above the first segment's base offset): the
    /// file position where the kept part of its segment ends.
    async fn find_cut(&self, offset: Offset) -> Result<Cut, LogIoError> {
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
        self.truncate_scan(&file, seg_base, start, end, &mut |pos, whole| {
            let h = BatchHeader::new(whole).expect("scanned batch");
            if cut.is_none() && h.last_offset() >= offset {
                cut = Some((pos, h.base_offset()));
            }
        })
        .await?;
        let (position, new_end) =
            cut.unwrap_or((end, self.state.borrow().segments[&seg_base].next_offset));
        Ok(Cut {
            file,
            segment: seg_base,
            position,
            new_end,
        })
    }

    /// The kept part's max timestamp and its offset: the time index covers everything
    /// before the last kept offset-index entry; the rest is scanned.
    async fn kept_max_timestamp(&self, cut: &Cut) -> Result<KeptPart, LogIoError> {
        let seg_base = cut.segment;
        let (index_pos, mut max_ts) = {
            let st = self.state.borrow();
            let seg = &st.segments[&seg_base];
            let x = seg
                .offset_index
                .iter()
                .rev()
                .find(|e| u64::from(e.position) < cut.position)
                .map_or(0, |e| e.position);
            let t = time_index::floor_by_position(&seg.time_index, x).map(|e| {
                (
                    e.timestamp_ms,
                    Offset(seg_base.0 + i64::from(e.relative_offset)),
                )
            });
            (u64::from(x), t.unwrap_or((i64::MIN, Offset(-1))))
        };
        self.truncate_scan(
            &cut.file,
            seg_base,
            index_pos,
            cut.position,
            &mut |_, whole| {
                let h = BatchHeader::new(whole).expect("scanned batch");
                if h.max_timestamp() > max_ts.0 {
                    max_ts = (h.max_timestamp(), h.last_offset());
                }
            },
        )
        .await?;
        Ok(KeptPart {
            index_pos,
            max_timestamp: max_ts.0,
            max_timestamp_offset: max_ts.1,
        })
    }

    /// Scans the flushed bytes `[start, end)` of the segment at `segment` for a
    /// truncation: a failed read fails the log, a bad batch is corruption.
    async fn truncate_scan(
        &self,
        file: &Rc<dyn DiskFile>,
        segment: Offset,
        start: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), LogIoError> {
        let stop = scan_file(file, start, end, None, false, visit)
            .await
            .map_err(|e| LogIoError::from(self.fail("truncate scan", e)))?;
        match stop {
            Some(stop) => Err(LogIoError::Corrupt {
                segment,
                position: stop.position,
                reason: stop.reason,
            }),
            None => Ok(()),
        }
    }

    /// Cuts the in-memory log at `cut`: later segments leave the map (returned, for their
    /// files to be deleted), the cut segment becomes the active one, ending at the cut.
    fn cut_state(&self, cut: &Cut, kept: KeptPart) -> Vec<(Offset, u64)> {
        let (seg_base, position, new_end) = (cut.segment, cut.position, cut.new_end);
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
        seg.bytes_since_index = position - kept.index_pos;
        seg.size = position;
        seg.written = position;
        seg.tail_stale = true;
        seg.pending.clear();
        seg.next_offset = new_end;
        seg.max_timestamp = kept.max_timestamp;
        seg.max_timestamp_offset = kept.max_timestamp_offset;
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
        // The durable offset may have dropped to the cut.
        self.durable_moved.notify();
        Ok(())
    }
}

/// Where `truncate_to` cuts: the segment holding the first removed batch, that batch's
/// file position and base offset (the new log end offset), or the segment's end when no
/// batch of it reaches the truncation offset.
struct Cut {
    file: Rc<dyn DiskFile>,
    segment: Offset,
    position: u64,
    new_end: Offset,
}

/// What the part of the cut segment before the cut keeps.
struct KeptPart {
    /// Position of the last offset-index entry kept (where the scan for timestamps began).
    index_pos: u64,
    max_timestamp: i64,
    max_timestamp_offset: Offset,
}
