//! The partitions one shard owns — each an engine `Log` in `<data-dir>/<topic>-<partition>/`
//! — and the owner-side halves of Produce, Fetch, ListOffsets and OffsetForLeaderEpoch,
//! plus the periodic retention and compaction runs over them (compaction in bounded
//! slices with a timer pause between them).
//! Consumers read below the high watermark (`high_watermark`: the durable end on a single
//! node), and a waiting fetch asks the log for a flush instead of waiting for the periodic
//! one. Runs only on the owning shard; nothing here crosses cores. The produce path hands the
//! request's `Bytes` (sliced per batch, never copied) straight to `Log::append`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use sluice_engine::{
    AppendError, CleanupPolicy, EventListener, LeaderEpoch, Log, LogConfig, LogIoError, Offset,
    ReadCache, ReadError, TimestampType,
};
use tracing::{error, info, warn};

use crate::config::*;
use crate::mesh::*;
pub use crate::stamp::{LEADER_EPOCH, now_ms};
use crate::topic_table::TopicPartition;

/// Bytes of recently read or appended batches each shard keeps in memory, so tailing
/// consumers are served without disk reads.
pub const READ_CACHE_BYTES: u64 = 64 << 20;

/// The high watermark of a partition: consumers read below it, ListOffsets' latest
/// offset is it, and a waiting fetch is answered when it passes the fetch offset. On a
/// single node it is the durable (fdatasync'ed) end, so no record a consumer saw can
/// vanish in a crash or a failed write; with replication it becomes the smallest durable
/// end over the in-sync replicas, computed here and nowhere else.
pub fn high_watermark(log: &Log) -> Offset {
    log.durable_offset()
}

/// The offset retention and compaction stay below. On a single node that is the durable
/// end: the engine never passes its own durable end, and retention flushes first, so the
/// log end offset now is the durable end when they act.
fn removal_bound(log: &Log) -> Offset {
    log.log_end_offset()
}

/// ListOffsets' answer when no record matches.
const NOT_FOUND: FoundOffset = FoundOffset {
    timestamp_ms: -1,
    offset: Offset(-1),
    leader_epoch: LeaderEpoch(-1),
};

/// A ListOffsets answer in the partition's current leader epoch.
fn found(timestamp_ms: i64, offset: Offset) -> FoundOffset {
    FoundOffset {
        timestamp_ms,
        offset,
        leader_epoch: LEADER_EPOCH,
    }
}

/// Resolves when any of the listeners does.
struct AnyEvent(Vec<EventListener>);

impl Future for AnyEvent {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for l in self.0.iter_mut() {
            if Pin::new(l).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

/// Wakes every waiter when any partition of this shard gets an append. Waiters re-check
/// their own partitions, so a wake-up for another partition only costs a re-check.
#[derive(Default)]
pub struct AppendSignal {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl AppendSignal {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Completes at the next `notify` after this call.
    pub fn next(&self) -> NextAppend<'_> {
        NextAppend {
            signal: self,
            seen: self.generation.get(),
        }
    }
}

pub struct NextAppend<'a> {
    signal: &'a AppendSignal,
    seen: u64,
}

impl Future for NextAppend<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation.get() != self.seen {
            return Poll::Ready(());
        }
        self.signal.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

/// The engine config of a topic: broker defaults overridden by the topic's configs.
/// Values were validated when set, so a parse failure keeps the default.
pub fn log_config(args: &BrokerArgs, overrides: &BTreeMap<String, String>) -> LogConfig {
    let get = |name: &str| -> String {
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| args.topic_defaults()[name].clone())
    };
    let int = |name: &str, default: i64| get(name).trim().parse::<i64>().unwrap_or(default);
    let mut c = LogConfig::default();
    c.segment_bytes_max = int(SEGMENT_BYTES, 1 << 30).clamp(14, i64::from(i32::MAX)) as u64;
    c.segment_ms = int(SEGMENT_MS, c.segment_ms).max(1);
    c.retention_ms = int(RETENTION_MS, c.retention_ms);
    c.retention_bytes = int(RETENTION_BYTES, c.retention_bytes);
    c.max_message_bytes = int(MAX_MESSAGE_BYTES, 1_048_588).clamp(0, i64::from(i32::MAX)) as u32;
    c.timestamp_type = match get(MESSAGE_TIMESTAMP_TYPE).as_str() {
        "LogAppendTime" => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    c.cleanup_policy = match get(CLEANUP_POLICY).as_str() {
        "compact" => CleanupPolicy::Compact,
        "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
        _ => CleanupPolicy::Delete,
    };
    c.compression_type = compression_codec(&get(COMPRESSION_TYPE)).unwrap_or(None);
    c.flush_interval_ms = args.log_flush_interval_ms.max(1);
    c.delete_retention_ms = int(DELETE_RETENTION_MS, c.delete_retention_ms).max(0);
    c.min_compaction_lag_ms = int(MIN_COMPACTION_LAG_MS, c.min_compaction_lag_ms).max(0);
    c.max_compaction_lag_ms = int(MAX_COMPACTION_LAG_MS, c.max_compaction_lag_ms).max(1);
    if let Ok(ratio) = get(MIN_CLEANABLE_DIRTY_RATIO).trim().parse::<f64>()
        && (0.0..=1.0).contains(&ratio)
    {
        c.min_cleanable_dirty_permille = (ratio * 1000.0).round() as u16;
    }
    c
}

/// Segment bytes one compaction slice reads before the shard serves other work again
/// (a few ms of decoding and re-encoding in release builds).
pub const COMPACTION_SLICE_BYTES: u64 = 256 << 10;
/// Pause between compaction slices: a timer, so the executor also polls network and disk
/// completions before the next slice (a plain yield would only run ready tasks).
const COMPACTION_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Splits a Produce `records` field into whole batches without copying. `None` if the
/// bytes are not a sequence of complete batches, each at least a header long.
fn split_batches(records: &Bytes) -> Option<Vec<Bytes>> {
    let batches: Vec<Bytes> = sluice_engine::batch::split(records.clone())
        .collect::<Result<_, _>>()
        .ok()?;
    (!batches.is_empty()).then_some(batches)
}

/// The partitions this shard owns.
pub struct PartitionSet {
    data_dir: PathBuf,
    cache: Rc<ReadCache>,
    logs: RefCell<HashMap<TopicPartition, Rc<Log>>>,
    /// Partitions this shard owns whose log could not be opened, with why. They answer
    /// KAFKA_STORAGE_ERROR (as Kafka's offline partitions) while the rest serve.
    offline: RefCell<HashMap<TopicPartition, String>>,
}

impl PartitionSet {
    pub fn new(args: &BrokerArgs) -> Self {
        PartitionSet {
            data_dir: args.data_dir.clone(),
            cache: ReadCache::new(READ_CACHE_BYTES),
            logs: RefCell::new(HashMap::new()),
            offline: RefCell::new(HashMap::new()),
        }
    }

    fn dir(&self, tp: &TopicPartition) -> PathBuf {
        self.data_dir.join(format!("{}-{}", tp.topic, tp.partition))
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Log>> {
        self.logs.borrow().get(tp).cloned()
    }

    /// Whether `tp` is owned here but offline (its log could not be opened).
    pub fn is_offline(&self, tp: &TopicPartition) -> bool {
        self.offline.borrow().contains_key(tp)
    }

    /// The error for a partition that has no open log here: offline, or not (or no
    /// longer) on this shard.
    fn absent_error(&self, tp: &TopicPartition) -> PartitionError {
        match self.offline.borrow().get(tp) {
            Some(why) => PartitionError::Offline {
                tp: tp.clone(),
                why: why.clone(),
            },
            None => PartitionError::NotOwner(tp.clone()),
        }
    }

    /// Opens (creating or recovering) a partition this shard now owns. A log that cannot
    /// be opened takes this partition offline alone: one ERROR line naming it and why,
    /// and KAFKA_STORAGE_ERROR for it until it opens.
    pub async fn open(
        &self,
        args: &BrokerArgs,
        topic: Arc<str>,
        partition: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), PartitionError> {
        let tp = TopicPartition { topic, partition };
        if self.logs.borrow().contains_key(&tp) {
            return Ok(());
        }
        let dir = self.dir(&tp);
        let log = match Log::open(&dir, log_config(args, configs), self.cache.clone()).await {
            Ok(log) => log,
            Err(e) => {
                error!(partition = %tp, dir = %dir.display(), error = %e, "partition offline: its log cannot be opened");
                let why = e.to_string();
                self.offline.borrow_mut().insert(tp.clone(), why.clone());
                return Err(PartitionError::Offline { tp, why });
            }
        };
        info!(partition = %tp, log_end_offset = log.log_end_offset().0, "opened partition");
        self.offline.borrow_mut().remove(&tp);
        self.logs.borrow_mut().insert(tp, log);
        Ok(())
    }

    /// Closes a partition; with `delete`, removes its directory.
    pub async fn close(&self, _args: &BrokerArgs, topic: Arc<str>, partition: i32, delete: bool) {
        let tp = TopicPartition { topic, partition };
        self.offline.borrow_mut().remove(&tp);
        let Some(log) = self.logs.borrow_mut().remove(&tp) else {
            return;
        };
        let result = if delete {
            log.delete().await
        } else {
            log.close().await
        };
        if let Err(e) = result {
            warn!(partition = %tp, error = %e, "closing partition failed");
        }
    }

    /// Closes every log cleanly (flush, indexes, clean-shutdown mark). Returns how many
    /// could not be (a failed write or a full disk): then the stop is not clean.
    pub async fn close_all(&self) -> usize {
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        let mut unclean = 0;
        for (tp, log) in logs {
            if let Err(e) = log.close().await {
                error!(partition = %tp, error = %e, "log not closed cleanly");
                unclean += 1;
            }
        }
        unclean
    }

    pub fn set_config(&self, args: &BrokerArgs, topic: &str, configs: &BTreeMap<String, String>) {
        let config = log_config(args, configs);
        for (tp, log) in self.logs.borrow().iter() {
            if tp.topic.as_ref() == topic {
                log.set_config(config);
            }
        }
    }

    /// Deletes old segments by retention.ms / retention.bytes and rolls by segment.ms.
    pub async fn enforce_retention(&self) {
        let logs: Vec<_> = self
            .logs
            .borrow()
            .iter()
            .map(|(t, l)| (t.clone(), l.clone()))
            .collect();
        let now = now_ms();
        for (tp, log) in logs {
            match log.enforce_retention(now, removal_bound(&log)).await {
                Ok(o) if o.segments_deleted > 0 => {
                    info!(partition = %tp, segments = o.segments_deleted, bytes = o.bytes_deleted, log_start_offset = o.log_start_offset.0, "retention deleted segments");
                }
                Ok(_) => {}
                Err(e) => warn!(partition = %tp, error = %e, "retention failed"),
            }
        }
    }

    /// Compacts the partitions whose cleanup.policy includes compact, one bounded slice
    /// at a time, yielding between slices so appends and fetches on this shard go on.
    pub async fn compact(&self) {
        let logs: Vec<_> = self
            .logs
            .borrow()
            .iter()
            .filter(|(_, l)| l.config().cleanup_policy != CleanupPolicy::Delete)
            .map(|(t, l)| (t.clone(), l.clone()))
            .collect();
        for (tp, log) in logs {
            let (mut before, mut after, mut segments) = (0u64, 0u64, 0u32);
            loop {
                match log
                    .compact(now_ms(), COMPACTION_SLICE_BYTES, removal_bound(&log))
                    .await
                {
                    Ok(o) => {
                        before += o.bytes_before;
                        after += o.bytes_after;
                        segments += o.segments_cleaned;
                        if o.idle {
                            break;
                        }
                    }
                    // Closed or deleted meanwhile.
                    Err(LogIoError::Closed) => break,
                    Err(e) => {
                        warn!(partition = %tp, error = %e, "compaction failed");
                        break;
                    }
                }
                glommio::timer::sleep(COMPACTION_PAUSE).await;
            }
            if segments > 0 {
                info!(partition = %tp, segments, bytes_before = before, bytes_after = after, "compacted segments");
            }
        }
    }

    pub async fn produce(
        &self,
        tp: &TopicPartition,
        records: Bytes,
        acks: Acks,
        appends: &AppendSignal,
    ) -> ProducePartitionResult {
        let fail = |error: PartitionError| ProducePartitionResult {
            error: Some(error),
            base_offset: Offset(-1),
            log_append_time_ms: -1,
            log_start_offset: Offset(-1),
            record_errors: Vec::new(),
        };
        let Some(log) = self.get(tp) else {
            return fail(self.absent_error(tp));
        };
        let Some(batches) = split_batches(&records) else {
            return fail(PartitionError::NotWholeBatches);
        };
        let now = now_ms();
        let mut first = None;
        let mut last_offset = Offset(-1);
        for batch in batches {
            match log.append(batch, LEADER_EPOCH, now) {
                Ok(info) => {
                    first.get_or_insert(info);
                    last_offset = info.last_offset;
                }
                Err(e) => {
                    if first.is_some() {
                        appends.notify();
                    }
                    let record_errors = match &e {
                        AppendError::RecordsRejected(records) => records.clone(),
                        _ => Vec::new(),
                    };
                    let mut failed = fail(PartitionError::Append(Arc::new(e)));
                    failed.record_errors = record_errors;
                    return failed;
                }
            }
        }
        appends.notify();
        let first = first.expect("at least one batch");
        if acks == Acks::All
            && let Err(e) = log.wait_durable(Offset(last_offset.0 + 1)).await
        {
            return fail(PartitionError::Flush(e));
        }
        ProducePartitionResult {
            error: None,
            base_offset: first.base_offset,
            log_append_time_ms: first.log_append_time_ms,
            log_start_offset: log.log_start_offset(),
            record_errors: Vec::new(),
        }
    }

    /// Whether a fetch of `part` should be answered now: the high watermark past its
    /// offset, or an error.
    fn ready(&self, part: &FetchPart) -> bool {
        match self.get(&part.tp) {
            None => true,
            Some(log) => {
                high_watermark(&log) > part.wait_past_offset
                    || part.fetch_offset > log.log_end_offset()
                    || part.fetch_offset < log.log_start_offset()
            }
        }
    }

    /// Asks for a flush of every partition of `parts` with appends past the high
    /// watermark that the fetch waits for, so it is answered at the next fdatasync rather
    /// than the next periodic flush.
    fn request_flushes(&self, parts: &[FetchPart]) {
        for p in parts {
            if let Some(log) = self.get(&p.tp)
                && log.log_end_offset() > p.wait_past_offset.max(high_watermark(&log))
            {
                log.request_flush();
            }
        }
    }

    pub async fn fetch(
        &self,
        parts: &[FetchPart],
        wait_until: Option<Instant>,
        appends: &AppendSignal,
    ) -> Vec<FetchPartResult> {
        if let Some(deadline) = wait_until {
            loop {
                if parts.iter().any(|p| self.ready(p)) {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // Appends wake the wait only to ask for their flush; the answer comes when
                // a flush moves the high watermark.
                let events: Vec<EventListener> = parts
                    .iter()
                    .filter_map(|p| self.get(&p.tp))
                    .map(|log| log.synced())
                    .collect();
                self.request_flushes(parts);
                let next = appends.next();
                let timeout = glommio::timer::sleep(deadline - now);
                futures_lite::future::or(futures_lite::future::or(next, AnyEvent(events)), timeout)
                    .await;
            }
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(self.read_one(p).await);
        }
        out
    }

    async fn read_one(&self, p: &FetchPart) -> FetchPartResult {
        let Some(log) = self.get(&p.tp) else {
            return FetchPartResult {
                error: Some(self.absent_error(&p.tp)),
                high_watermark: Offset(-1),
                log_start_offset: Offset(-1),
                records: None,
            };
        };
        let hw = high_watermark(&log);
        if p.current_leader_epoch > LEADER_EPOCH {
            return FetchPartResult {
                error: Some(PartitionError::UnknownLeaderEpoch(p.current_leader_epoch)),
                high_watermark: hw,
                log_start_offset: log.log_start_offset(),
                records: None,
            };
        }
        let bytes_max = u32::try_from(p.partition_max_bytes.max(0)).unwrap_or(0);
        match log.read_up_to(p.fetch_offset, bytes_max, hw).await {
            Ok(r) => {
                let records = match r.batches.len() {
                    0 => Bytes::new(),
                    1 => r.batches.into_iter().next().expect("one batch"),
                    // The response field is one buffer: several batches are joined (one copy).
                    _ => {
                        let mut buf =
                            bytes::BytesMut::with_capacity(r.batches.iter().map(|b| b.len()).sum());
                        for b in &r.batches {
                            buf.extend_from_slice(b);
                        }
                        buf.freeze()
                    }
                };
                FetchPartResult {
                    error: None,
                    high_watermark: hw,
                    log_start_offset: r.log_start_offset,
                    records: Some(records),
                }
            }
            Err(e) => {
                report_read_error(&p.tp, p.fetch_offset.0, &e);
                FetchPartResult {
                    error: Some(PartitionError::Read(Arc::new(e))),
                    high_watermark: hw,
                    log_start_offset: log.log_start_offset(),
                    records: None,
                }
            }
        }
    }

    /// ListOffsets: -2 earliest, -1 latest, -3 the record with the max timestamp, else the
    /// first record at or after the timestamp. Nothing found is offset -1.
    pub async fn list_offsets(&self, tp: &TopicPartition, timestamp: i64) -> ListOffsetResult {
        let Some(log) = self.get(tp) else {
            return Err(self.absent_error(tp));
        };
        match timestamp {
            -2 => Ok(found(-1, log.log_start_offset())),
            -1 => Ok(found(-1, high_watermark(&log))),
            -3 => match log.offset_for_max_timestamp().await {
                Ok(Some(t)) => Ok(found(t.timestamp_ms, t.offset)),
                Ok(None) => Ok(NOT_FOUND),
                Err(e) => Err(PartitionError::Read(Arc::new(e))),
            },
            t if t < 0 => Err(PartitionError::InvalidTimestamp(t)),
            // As Kafka: only an offset a consumer can fetch (below the high watermark).
            t => match log.offset_for_timestamp(t).await {
                Ok(Some(f)) if f.offset < high_watermark(&log) => {
                    Ok(found(f.timestamp_ms, f.offset))
                }
                Ok(_) => Ok(NOT_FOUND),
                Err(e) => {
                    report_read_error(tp, t, &e);
                    Err(PartitionError::Read(Arc::new(e)))
                }
            },
        }
    }

    /// DeleteRecords: moves the log start offset up to `offset`, -1 meaning the high
    /// watermark, as Kafka's deleteRecords; an offset below -1 or past the high watermark
    /// is OFFSET_OUT_OF_RANGE. Returns the log start offset after it.
    pub async fn delete_records(&self, tp: &TopicPartition, offset: Offset) -> DeleteRecordsResult {
        let Some(log) = self.get(tp) else {
            return Err(PartitionError::NotOwner(tp.clone()));
        };
        let high_watermark = log.log_end_offset();
        let offset = if offset == Offset(-1) {
            high_watermark
        } else {
            offset
        };
        if !(Offset(0)..=high_watermark).contains(&offset) {
            return Err(PartitionError::OffsetOutOfRange(offset));
        }
        log.delete_records_before(offset, high_watermark)
            .await
            .map_err(|e| PartitionError::DeleteRecords(Arc::new(e)))
    }

    pub fn epoch_end(&self, tp: &TopicPartition, leader_epoch: LeaderEpoch) -> EpochEndResult {
        let Some(log) = self.get(tp) else {
            return Err(self.absent_error(tp));
        };
        if leader_epoch > LEADER_EPOCH {
            return Err(PartitionError::UnknownLeaderEpoch(leader_epoch));
        }
        let (leader_epoch, end_offset) = match log.end_offset_for_epoch(leader_epoch) {
            Some(found) => found,
            // No batch of this epoch yet: the leader's current epoch ends at the log end.
            None => (LEADER_EPOCH, log.log_end_offset()),
        };
        Ok(EpochEnd {
            leader_epoch,
            end_offset,
        })
    }
}

/// Logs a failed read for the operator: a corrupt batch names its partition, segment,
/// byte position and (for a CRC failure) the stored and computed CRC32C.
fn report_read_error(tp: &TopicPartition, fetch_offset: i64, e: &ReadError) {
    match e {
        ReadError::CrcMismatch {
            segment,
            position,
            stored,
            computed,
        } => error!(
            partition = %tp,
            segment = segment.0,
            position,
            stored_crc = format_args!("{stored:#010x}"),
            computed_crc = format_args!("{computed:#010x}"),
            fetch_offset,
            "corrupt record batch: CRC32C mismatch"
        ),
        ReadError::Corrupt {
            segment,
            position,
            reason,
        } => error!(partition = %tp, segment = segment.0, position, reason = %reason, fetch_offset,
            "corrupt record batch"),
        ReadError::Io(err) => {
            error!(partition = %tp, error = %err, fetch_offset, "reading the log failed")
        }
        ReadError::OffsetOutOfRange { .. } | ReadError::Closed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a records field is split into its batches by the length field, and that a
    // truncated or empty field, or a length below the header's, is refused.
    #[test]
    fn splits_batches() {
        let mut a = vec![0u8; 12 + 49];
        a[8..12].copy_from_slice(&49i32.to_be_bytes());
        let mut b = vec![0u8; 12 + 60];
        b[8..12].copy_from_slice(&60i32.to_be_bytes());
        let both = Bytes::from([a.clone(), b.clone()].concat());
        let parts = split_batches(&both).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), a.len());
        assert_eq!(parts[1].len(), b.len());
        assert!(split_batches(&both.slice(..both.len() - 1)).is_none());
        assert!(split_batches(&Bytes::new()).is_none());
        let mut neg = a.clone();
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(&Bytes::from(neg)).is_none());
        let mut short = a.clone();
        short[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(split_batches(&Bytes::from([short, b].concat())).is_none());
    }

    // Proves the compaction lags reach the engine config: Kafka's defaults, the broker
    // flags as defaults, and topic overrides on top.
    #[test]
    fn compaction_lags_reach_the_log_config() {
        use clap::Parser;
        let none = BTreeMap::new();
        let c = log_config(&BrokerArgs::parse_from(["sluice"]), &none);
        assert_eq!(
            (c.min_compaction_lag_ms, c.max_compaction_lag_ms),
            (0, i64::MAX)
        );
        let args = BrokerArgs::parse_from([
            "sluice",
            "--log-cleaner-min-compaction-lag-ms",
            "1000",
            "--log-cleaner-max-compaction-lag-ms",
            "60000",
        ]);
        let c = log_config(&args, &none);
        assert_eq!(
            (c.min_compaction_lag_ms, c.max_compaction_lag_ms),
            (1000, 60000)
        );
        let overrides = BTreeMap::from([
            (MIN_COMPACTION_LAG_MS.to_string(), "5".to_string()),
            (MAX_COMPACTION_LAG_MS.to_string(), "7".to_string()),
        ]);
        let c = log_config(&args, &overrides);
        assert_eq!((c.min_compaction_lag_ms, c.max_compaction_lag_ms), (5, 7));
    }
}
