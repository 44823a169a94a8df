//! Error enums, one per operation of `Log`. Each variant maps to one Kafka error code in
//! the server (`CorruptMessage` -> CORRUPT_MESSAGE, `OffsetOutOfRange` ->
//! OFFSET_OUT_OF_RANGE, `LogFailed` -> KAFKA_STORAGE_ERROR, ...).

use std::io;
use std::path::PathBuf;

use crate::batch::BatchError;
use crate::record::{AppendCheckError, RecordError, RecordRejection, rejections_summary};
use crate::{LeaderEpoch, Offset};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("i/o on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A segment below the recovery point (or any segment after a clean stop) does not
    /// verify: the partition must go offline rather than serve or drop data.
    #[error("segment {segment:?} corrupt at byte {position}: {reason}")]
    Corrupt {
        segment: Offset,
        position: u64,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// CORRUPT_MESSAGE (2): bad length, magic or CRC.
    #[error("corrupt batch: {0}")]
    CorruptMessage(BatchError),
    /// MESSAGE_TOO_LARGE (10): larger than max.message.bytes.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    /// INVALID_RECORD (87): header fields that contradict each other, or records that
    /// contradict the header.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// CORRUPT_MESSAGE (2): records that do not decode, when the append had to read them.
    #[error("corrupt records: {0}")]
    CorruptRecords(RecordError),
    /// INVALID_RECORD (87) naming the records the topic refuses (Produce's
    /// `record_errors`); non-empty.
    #[error("{}", rejections_summary(.0))]
    RecordsRejected(Vec<RecordRejection>),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// INVALID_PRODUCER_EPOCH (47).
    #[error("producer {producer_id}: epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// KAFKA_STORAGE_ERROR (56): an earlier write or fsync failed; the log takes no writes.
    #[error("log failed: {0}")]
    LogFailed(String),
    /// KAFKA_STORAGE_ERROR (56): a write found the disk full; appends are refused until a
    /// retried write succeeds.
    #[error("log out of space: {0}")]
    OutOfSpace(String),
    /// The log was closed or deleted.
    #[error("log is closed")]
    Closed,
}

impl From<AppendCheckError> for AppendError {
    fn from(e: AppendCheckError) -> Self {
        match e {
            AppendCheckError::Corrupt(e) => AppendError::CorruptRecords(e),
            AppendCheckError::Rejected(records) => AppendError::RecordsRejected(records),
            other @ (AppendCheckError::OffsetDelta { .. }
            | AppendCheckError::TimestampOverflow { .. }) => {
                AppendError::InvalidRecord(other.to_string())
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FlushError {
    /// KAFKA_STORAGE_ERROR: a write or fsync failed (now or earlier); never retried.
    #[error("log failed: {0}")]
    LogFailed(String),
    /// KAFKA_STORAGE_ERROR: a write found the disk full (ENOSPC). The write did not
    /// happen; the log retries it in the background and takes appends again once it
    /// succeeds.
    #[error("log out of space: {0}")]
    OutOfSpace(String),
    #[error("log is closed")]
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {requested:?} outside [{log_start:?}, {log_end:?}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// A stored batch fails its length or offset checks. Reads stop at it; the batches
    /// before it are still served.
    #[error("segment {segment:?} corrupt at byte {position}: {reason}")]
    Corrupt {
        segment: Offset,
        position: u64,
        reason: String,
    },
    /// A stored batch's CRC32C does not match its bytes. Reads stop at it; the batches
    /// before it are still served.
    #[error(
        "segment {segment:?} batch at byte {position}: crc32c {stored:#010x} stored, {computed:#010x} computed"
    )]
    CrcMismatch {
        segment: Offset,
        position: u64,
        stored: u32,
        computed: u32,
    },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("log is closed")]
    Closed,
}

/// Errors of maintenance operations: truncate_to, enforce_retention, close, delete.
#[derive(Debug, thiserror::Error)]
pub enum LogIoError {
    #[error("log failed: {0}")]
    LogFailed(String),
    /// A write found the disk full; nothing was changed by it.
    #[error("log out of space: {0}")]
    OutOfSpace(String),
    #[error("segment {segment:?} corrupt at byte {position}: {reason}")]
    Corrupt {
        segment: Offset,
        position: u64,
        reason: String,
    },
    #[error("log is closed")]
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    /// OFFSET_OUT_OF_RANGE: beyond the high watermark the caller gave (or the log end
    /// offset, when that is lower), as Kafka's deleteRecords.
    #[error("offset {requested:?} beyond high watermark {high_watermark:?}")]
    OffsetOutOfRange {
        requested: Offset,
        high_watermark: Offset,
    },
    #[error(transparent)]
    Log(#[from] LogIoError),
}

/// Errors of `Log::append_replicated` (a follower's append of a leader's batches). The
/// batches come from the network: every variant but the log's own state is bad input,
/// and nothing of a refused call is appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendReplicatedError {
    /// The first batch starts below the log end offset: the fetch position or the log
    /// diverged from the leader's (truncate first).
    #[error("first batch at {got:?}, below the log end offset {expected:?}")]
    OffsetMismatch { expected: Offset, got: Offset },
    /// A batch does not start after the previous batch's last offset.
    #[error("batch at {got:?} does not start after offset {previous_last:?}")]
    OffsetsNotIncreasing { previous_last: Offset, got: Offset },
    /// A batch's leader epoch is below an epoch that already holds data before it: the
    /// leader's log cannot look like that.
    #[error("batch at {offset:?} has leader epoch {got:?}, below {latest:?}")]
    EpochRegression {
        offset: Offset,
        latest: LeaderEpoch,
        got: LeaderEpoch,
    },
    /// The bytes are not whole batches, or a batch fails its length, magic or CRC check.
    #[error("corrupt batch at byte {position}: {source}")]
    Corrupt { position: usize, source: BatchError },
    /// A batch larger than recovery accepts.
    #[error("batch of {size} bytes at byte {position} exceeds {max}")]
    BatchTooLarge {
        position: usize,
        size: usize,
        max: usize,
    },
    /// The log takes no appends: failed, out of space or closed.
    #[error(transparent)]
    Log(#[from] FlushError),
}

/// Errors of `Log::assign_epoch`.
#[derive(Debug, thiserror::Error)]
pub enum AssignEpochError {
    /// The log already holds a later epoch: a stale leader.
    #[error("leader epoch {got:?} is below the latest epoch {latest:?}")]
    StaleEpoch {
        latest: LeaderEpoch,
        got: LeaderEpoch,
    },
    #[error(transparent)]
    Log(#[from] LogIoError),
}

impl From<FlushError> for LogIoError {
    fn from(e: FlushError) -> Self {
        match e {
            FlushError::LogFailed(s) => LogIoError::LogFailed(s),
            FlushError::OutOfSpace(s) => LogIoError::OutOfSpace(s),
            FlushError::Closed => LogIoError::Closed,
        }
    }
}

impl From<ReadError> for LogIoError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Corrupt {
                segment,
                position,
                reason,
            } => LogIoError::Corrupt {
                segment,
                position,
                reason,
            },
            e @ ReadError::CrcMismatch {
                segment, position, ..
            } => LogIoError::Corrupt {
                segment,
                position,
                reason: e.to_string(),
            },
            ReadError::Closed => LogIoError::Closed,
            other => LogIoError::LogFailed(other.to_string()),
        }
    }
}
