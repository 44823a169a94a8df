//! Loading a partition's log from its directory (Kafka's `LogLoader`): `Log::open`
//! lists the segments, drops leftovers of cut-short writes (`.tmp`, `.cleaned`, index
//! files without a segment), trusts the segments a clean stop or the recovery point
//! vouches for when their indexes load, and scans the rest batch by batch (CRC32C,
//! offset continuity), truncating the first segment with a bad or torn batch there and
//! deleting every later one. Then producer state is replayed from the newest usable
//! snapshot. Runs on the shard that will own the log.
//!
//! Invariants on return: segments are contiguous and the last one is the active one
//! (unsealed, unfinalized); every batch below the log end offset passed its checks; the
//! leader-epoch cache ends at or below the log end offset; the partition checkpoint on
//! disk says "not clean" with the recovery point at the log end offset. Segments trusted
//! without a scan are only those a clean stop or an earlier recovery point vouches for;
//! a bad batch or a gap in one of them (the last segment's tail excepted) is an
//! `OpenError::Corrupt`, never a silent truncation.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use tracing::{info, warn};

use crate::batch::{self, BatchHeader};
use crate::checkpoint::{CLEANER_FILE, META_FILE, PartitionMeta};
use crate::disk::{Disk, DiskFile, DmaDisk};
use crate::error::{LogIoError, OpenError};
use crate::event::Event;
use crate::leader_epoch::LeaderEpochCache;
use crate::offset_index;
use crate::producer_state::ProducerState;
use crate::read_cache::ReadCache;
use crate::segment::{Segment, parse_name, scan_file, segment_path};
use crate::{LeaderEpoch, LogConfig, Offset};

use super::{EPOCH_FILE, Log, State, cleaner};

/// Producer-batch headers a recovery scan keeps for replay (about 60 MB); past it, the
/// replay reads the segments again instead.
const RECORDED_HEADERS_MAX: usize = 1 << 20;

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
        let (bases, snapshots) = list_partition_dir(&*disk, dir)?;
        let first_base = bases.first().copied().unwrap_or(Offset(0));
        let meta = read_partition_meta(&*disk, dir, first_base).await?;
        let clean = meta.clean_shutdown;
        let mut loader = SegmentLoader {
            disk: &*disk,
            dir,
            interval: u64::from(config.index_interval_bytes.max(1)),
            segments: BTreeMap::new(),
            epochs: read_epoch_cache(&*disk, dir).await?,
            epochs_dirty: false,
            recovered_bytes: 0,
            cut_after: None,
            scanned: None,
        };
        loader.load(&bases, &meta).await?;
        // Segments after a truncation point (or after a gap) are not part of the log.
        if let Some(first_dropped) = loader.cut_after {
            for &b in bases.iter().filter(|b| **b >= first_dropped) {
                remove_segment_files(&*disk, dir, b)?;
            }
        }
        let SegmentLoader {
            mut segments,
            mut epochs,
            mut epochs_dirty,
            recovered_bytes,
            scanned,
            ..
        } = loader;
        let mut log_start_offset = meta.log_start_offset.max(first_base);
        drop_below_log_start(&*disk, dir, &mut segments, log_start_offset)?;
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

        let mut state = State::opened(segments, log_start_offset, epochs, epochs_dirty);
        state.recompute_max_timestamp();
        // Before the partition checkpoint below: its directory sync makes the removal of
        // an unusable cleaner checkpoint durable.
        let cleaner = cleaner::Cleaner::load(&*disk, dir, log_start_offset, log_end_offset)
            .await
            .map_err(io_err(&dir.join(CLEANER_FILE)))?;
        let log = Log::new(dir, disk, cache, config, state, cleaner);
        let scanned = scanned.filter(|(_, h)| h.len() <= RECORDED_HEADERS_MAX);
        log.load_producer_state(&snapshots, scanned)
            .await
            .map_err(|e| replay_error(dir, e))?;
        log.write_open_checkpoints(log_start_offset, log_end_offset)
            .await?;
        info!(dir = %dir.display(), clean, log_start_offset = log_start_offset.0, log_end_offset = log_end_offset.0,
            recovered_bytes, "opened log");
        Self::spawn_flusher(&log);
        Ok(log)
    }

    /// The `Log` over loaded state, holding a weak reference to itself.
    fn new(
        dir: &Path,
        disk: Rc<dyn Disk>,
        cache: Rc<ReadCache>,
        config: LogConfig,
        state: State,
        cleaner: cleaner::Cleaner,
    ) -> Rc<Log> {
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
            durable_moved: Event::new(),
            me: RefCell::new(std::rc::Weak::new()),
            appended: Event::new(),
            flush_wanted: Event::new(),
            cleaner: RefCell::new(cleaner),
            cleaning: Cell::new(false),
        });
        *log.me.borrow_mut() = Rc::downgrade(&log);
        log
    }

    /// The partition checkpoint (not clean, recovered up to the log end offset) and, when
    /// recovery changed them, the leader epochs.
    async fn write_open_checkpoints(
        &self,
        log_start_offset: Offset,
        log_end_offset: Offset,
    ) -> Result<(), OpenError> {
        let meta = PartitionMeta {
            clean_shutdown: false,
            log_start_offset,
            recovery_point: log_end_offset,
        };
        let meta_path = self.dir.join(META_FILE);
        self.disk
            .write_file_atomic(&meta_path, &meta.encode())
            .await
            .map_err(io_err(&meta_path))?;
        if self.state.borrow().epochs_dirty {
            let epoch_path = self.dir.join(EPOCH_FILE);
            let bytes = self.state.borrow().epochs.encode();
            self.disk
                .write_file_atomic(&epoch_path, &bytes)
                .await
                .map_err(io_err(&epoch_path))?;
            self.state.borrow_mut().epochs_dirty = false;
        }
        Ok(())
    }

    /// Replays producer state from the newest usable snapshot up to the log end offset.
    /// `scanned`: headers of idempotent batches from a recovery scan of every segment
    /// from the given base offset to the log end; those segments are not read again.
    pub(super) async fn load_producer_state(
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
}

impl State {
    /// A log's state right after loading: everything up to the log end offset is durable.
    fn opened(
        segments: BTreeMap<Offset, Segment>,
        log_start_offset: Offset,
        epochs: LeaderEpochCache,
        epochs_dirty: bool,
    ) -> State {
        let log_end_offset = segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
            .next_offset;
        State {
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
        }
    }
}

/// Walks the segments in offset order, trusting or recovering each, and stops at the
/// first one that does not belong to the log any more.
struct SegmentLoader<'a> {
    disk: &'a dyn Disk,
    dir: &'a Path,
    /// `index.interval.bytes` for rebuilt indexes.
    interval: u64,
    segments: BTreeMap<Offset, Segment>,
    epochs: LeaderEpochCache,
    epochs_dirty: bool,
    recovered_bytes: u64,
    /// The first segment dropped from the log, with every later one.
    cut_after: Option<Offset>,
    /// Headers of idempotent batches seen by recovery scans that reach the log end, so
    /// producer state is replayed without reading those segments a second time.
    scanned: Option<(Offset, Vec<[u8; batch::HEADER_BYTES]>)>,
}

impl SegmentLoader<'_> {
    /// Loads the segments at `bases` (sorted) as far as they form the log.
    async fn load(&mut self, bases: &[Offset], meta: &PartitionMeta) -> Result<(), OpenError> {
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(self.dir, base, "log");
            let file = self.disk.open(&path, false).await.map_err(io_err(&path))?;
            let file_size = file.size().await.map_err(io_err(&path))?;
            let next_base = bases.get(i + 1).copied();
            let trusted =
                meta.clean_shutdown || next_base.is_some_and(|nb| nb <= meta.recovery_point);
            if !self.continues_log(base, trusted)? {
                break;
            }
            let trusted_seg = if trusted {
                self.load_trusted(base, file_size).await?
            } else {
                None
            };
            let mut seg = match trusted_seg {
                Some(seg) => {
                    // Producer headers recorded so far no longer reach the log end.
                    self.scanned = None;
                    seg
                }
                None => {
                    self.recover(&file, base, file_size, next_base, trusted)
                        .await?
                }
            };
            seg.written = seg.size;
            seg.tail_stale = true;
            seg.sealed = true;
            seg.file = Some(file);
            self.segments.insert(base, seg);
            if self.cut_after.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Whether the segment at `base` continues the segments loaded so far. A gap ends the
    /// log there unless the segment is trusted, which makes it corruption.
    fn continues_log(&mut self, base: Offset, trusted: bool) -> Result<bool, OpenError> {
        // A compacted segment whose index was rebuilt ends at its last kept batch;
        // the offsets up to the next segment were cleaned away.
        if let Some(prev) = self.segments.values_mut().next_back()
            && prev.next_offset < base
        {
            prev.next_offset = base;
        }
        let Some(prev) = self.segments.values().next_back() else {
            return Ok(true);
        };
        if prev.next_offset == base {
            return Ok(true);
        }
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
        warn!(dir = %self.dir.display(), segment = base.0, "segment does not continue the log; dropping it and later ones");
        self.cut_after = Some(base);
        Ok(false)
    }

    /// A trusted segment with the indexes on disk; None when they are missing or damaged
    /// (the segment is then scanned like an untrusted one).
    async fn load_trusted(
        &self,
        base: Offset,
        file_size: u64,
    ) -> Result<Option<Segment>, OpenError> {
        let path = segment_path(self.dir, base, "log");
        let oi = self
            .disk
            .read_file(&segment_path(self.dir, base, "index"))
            .await
            .map_err(io_err(&path))?;
        let ti = self
            .disk
            .read_file(&segment_path(self.dir, base, "timeindex"))
            .await
            .map_err(io_err(&path))?;
        let mut seg = Segment::new(base);
        seg.size = file_size;
        if let (Some(oi), Some(ti)) = (oi, ti)
            && seg.load_indexes(&oi, &ti)
        {
            seg.finalized = true;
            return Ok(Some(seg));
        }
        info!(dir = %self.dir.display(), segment = base.0, "rebuilding indexes");
        Ok(None)
    }

    /// Scans the segment at `base` batch by batch, rebuilding its indexes, the leader
    /// epochs from it on and the recorded producer headers, and cuts the file at the
    /// first bad batch (which ends the log there). A bad batch in a trusted segment
    /// before the last one is corruption.
    async fn recover(
        &mut self,
        file: &Rc<dyn DiskFile>,
        base: Offset,
        file_size: u64,
        next_base: Option<Offset>,
        trusted: bool,
    ) -> Result<Segment, OpenError> {
        let path = segment_path(self.dir, base, "log");
        let interval = self.interval;
        let mut rebuilt = Segment::new(base);
        let mut epoch_seen: Vec<(i32, Offset)> = Vec::new();
        if self.scanned.is_none() {
            self.scanned = Some((base, Vec::new()));
        }
        let recorded = self.scanned.as_mut().map(|s| &mut s.1).expect("set above");
        // Positions are u32 in indexes: bytes past 4 GiB cannot be a segment's.
        let scan_end = file_size.min(u64::from(u32::MAX));
        let stop = scan_file(file, 0, scan_end, Some(base), true, &mut |pos, whole| {
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
        self.epochs_dirty |= self.epochs.truncate_from_end(base);
        for (e, o) in epoch_seen {
            self.epochs_dirty |= self.epochs.assign(LeaderEpoch(e), o);
        }
        self.recovered_bytes += rebuilt.size;
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
                warn!(dir = %self.dir.display(), segment = base.0, position = stop.position, reason = %stop.reason,
                    "truncating log at first bad batch");
            }
            self.cut_after = next_base;
        }
        if rebuilt.size != file_size {
            file.truncate(rebuilt.size).await.map_err(io_err(&path))?;
            file.fdatasync().await.map_err(io_err(&path))?;
        }
        rebuilt.finalized = false;
        Ok(rebuilt)
    }
}

/// Maps an I/O error on `path` to `OpenError::Io`.
fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + use<> {
    let path = path.to_path_buf();
    move |source| OpenError::Io { path, source }
}

/// Creates `dir` if need be and lists its segments and producer snapshots (base offsets,
/// sorted), removing leftovers: cut-short whole-file writes, compacted copies and
/// indexes whose segment is gone.
fn list_partition_dir(
    disk: &dyn Disk,
    dir: &Path,
) -> Result<(Vec<Offset>, Vec<Offset>), OpenError> {
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
    Ok((bases, snapshots))
}

/// The partition checkpoint; when it is missing or damaged, one that trusts nothing:
/// every segment from `first_base` is recovered.
async fn read_partition_meta(
    disk: &dyn Disk,
    dir: &Path,
    first_base: Offset,
) -> Result<PartitionMeta, OpenError> {
    let meta_path = dir.join(META_FILE);
    let meta_file = disk
        .read_file(&meta_path)
        .await
        .map_err(io_err(&meta_path))?;
    let meta = meta_file.as_deref().and_then(PartitionMeta::decode);
    Ok(meta.unwrap_or_else(|| {
        if meta_file.is_some() {
            warn!(dir = %dir.display(), "partition checkpoint damaged; recovering every segment");
        }
        PartitionMeta {
            clean_shutdown: false,
            log_start_offset: first_base,
            recovery_point: first_base,
        }
    }))
}

/// The leader-epoch checkpoint; empty when missing or damaged.
async fn read_epoch_cache(disk: &dyn Disk, dir: &Path) -> Result<LeaderEpochCache, OpenError> {
    let epoch_path = dir.join(EPOCH_FILE);
    let epoch_file = disk
        .read_file(&epoch_path)
        .await
        .map_err(io_err(&epoch_path))?;
    Ok(epoch_file
        .as_deref()
        .and_then(LeaderEpochCache::decode)
        .unwrap_or_default())
}

/// Removes a segment's log and index files.
fn remove_segment_files(disk: &dyn Disk, dir: &Path, base: Offset) -> Result<(), OpenError> {
    for ext in ["log", "index", "timeindex"] {
        disk.remove_file(&segment_path(dir, base, ext))
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Drops the segments entirely below the log start offset, which delete-records or
/// retention deleted just before a crash; the last segment stays.
fn drop_below_log_start(
    disk: &dyn Disk,
    dir: &Path,
    segments: &mut BTreeMap<Offset, Segment>,
    log_start_offset: Offset,
) -> Result<(), OpenError> {
    while segments.len() > 1 {
        let (&b, s) = segments.iter().next().expect("non-empty");
        if s.next_offset > log_start_offset {
            break;
        }
        segments.remove(&b);
        remove_segment_files(disk, dir, b)?;
    }
    Ok(())
}

/// Producer-state replay errors as open errors: corruption stays corruption.
fn replay_error(dir: &Path, e: LogIoError) -> OpenError {
    match e {
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
    }
}
