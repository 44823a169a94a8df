//! sluice-engine owns the partition log: segments of Kafka RecordBatch v2 bytes on
//! O_DIRECT files, their offset and time indexes, recovery after an unclean stop,
//! retention, idempotent-producer state and leader epochs. It knows nothing of the
//! network. Everything is single-shard (`Rc` inside, `!Send`), used from one glommio
//! `LocalExecutor`.
//!
//! Start reading at `log/mod.rs` (`Log`: its state, locks and lifecycle), then its
//! parts: `log/load.rs` (open and recovery), `log/append.rs` (append, flush, group
//! commit), `log/follower.rs` (a follower's append of its leader's batches, a new
//! leader's epoch), `log/read.rs` (reads and offset lookups), `log/retention.rs`
//! (retention, DeleteRecords, truncation) and `log/cleaner.rs` (compaction of closed
//! segments);
//! then `batch.rs` (the 61-byte header view, from sluice-record) and `disk.rs` (the only door to files).
//! Byte layouts of every file are in `FORMAT.md`.

pub mod batch;
pub mod checkpoint;
pub mod compaction;
pub mod disk;
mod error;
mod event;
pub mod leader_epoch;
mod log;
pub mod offset_index;
pub mod producer_state;
pub mod read_cache;
pub mod record;
pub mod segment;
pub mod sim_disk;
pub mod time_index;

pub use error::{
    AppendError, AppendReplicatedError, AssignEpochError, DeleteRecordsError, FlushError,
    LogIoError, OpenError, ReadError,
};
pub use event::{Event, EventListener};
pub use log::{
    AppendInfo, CompactOutcome, Log, ReadResult, ReplicatedAppendInfo, RetentionOutcome,
};
pub use read_cache::ReadCache;
pub use sluice_record::{LeaderEpoch, Offset, TimestampOffset, TimestampType};

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

/// Per-partition log settings; Kafka topic config names in comments, Kafka defaults in
/// `Default` (except `flush_interval_ms`, see there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes` (1 GiB). Capped at i32::MAX like Kafka.
    pub segment_bytes_max: u64,
    /// `segment.ms` (7 days).
    pub segment_ms: i64,
    /// `retention.ms` (7 days, -1 = unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (-1 = unlimited).
    pub retention_bytes: i64,
    /// `max.message.bytes` (1048588): the largest batch accepted.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `index.interval.bytes` (4096).
    pub index_interval_bytes: u32,
    /// `cleanup.policy`: `Compact` and `CompactDelete` let `Log::compact` clean closed
    /// segments (rules in `compaction.rs`); `Compact` alone disables deletion by retention.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms` (1 day): how long compaction keeps a tombstone (a record
    /// with a null value) readable after its timestamp.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio` (0.5) in thousandths: a compaction pass starts when the
    /// closed segments not yet cleaned hold at least this share of the closed bytes (or a
    /// kept tombstone's delete.retention.ms ran out).
    pub min_cleanable_dirty_permille: u16,
    /// `min.compaction.lag.ms` (0): a record stays uncompacted at least this long after
    /// its timestamp. A pass stops before the first dirty closed segment whose largest
    /// timestamp is newer than now minus this lag.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (i64::MAX, no limit): a pass is due, whatever the dirty
    /// share, once the first batch of a dirty closed segment is older than this lag. A
    /// compacted log also rolls its active segment at this age, as by `segment_ms`, so
    /// its records become cleanable in time.
    pub max_compaction_lag_ms: i64,
    /// `flush.ms`-like: how often unflushed appends are written and fdatasync'ed when
    /// nobody waits for them (acks=1). Kafka leaves this to the page cache; with O_DIRECT
    /// there is none, so the default is 100 ms. Also flushed past
    /// `flush_bytes_pending_max` of unflushed data.
    pub flush_interval_ms: u64,
    /// Unflushed bytes that trigger a background flush (4 MiB).
    pub flush_bytes_pending_max: u64,
    /// `compression.type`: the codec batches are stored with; a producer's batch of
    /// another codec is re-encoded on append. `None` (`producer`, the default) keeps the
    /// producer's codec.
    pub compression_type: Option<batch::Codec>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_permille: 500,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            flush_interval_ms: 100,
            flush_bytes_pending_max: 4 << 20,
            compression_type: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use glommio::LocalExecutorBuilder;
    use glommio::io::DmaFile;

    // Proves that DMA writes and reads work on this machine's disk with the pinned glommio.
    #[test]
    fn dma_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file: DmaFile = glommio::io::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .dma_open(&path)
                    .await
                    .unwrap();
                let mut buf = file.alloc_dma_buffer(4096);
                buf.as_bytes_mut().fill(7);
                let n = file.write_at(buf, 0).await.unwrap();
                assert_eq!(n, 4096);
                file.fdatasync().await.unwrap();
                let read = file.read_at_aligned(0, 4096).await.unwrap();
                assert!(read.iter().all(|b| *b == 7));
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
