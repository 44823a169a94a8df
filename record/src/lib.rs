//! sluice-record owns the Kafka RecordBatch v2 format, which both the broker's log and
//! the client write: the 61-byte header view and its validation, CRC32C, the records
//! inside a batch (zigzag varints, keys, values, headers), the four codecs (gzip, snappy
//! raw or xerial-framed, lz4 frame, zstd) with one bounded decompressor each, building
//! and re-encoding batches, and splitting a byte run into batches by their length field.
//! Pure functions over bytes: no I/O, no runtime, nothing else of Sluice.
//!
//! Start reading at `batch.rs` (the header view, `validate`, `split`), then
//! `records.rs` (decoding and encoding the records) and `compression.rs` (the codecs and
//! their output cap). Bad bytes give a typed error (`BatchError`, `RecordError`,
//! `SplitError`), never a panic. Byte layout: engine/FORMAT.md.

pub mod batch;
pub mod compression;
mod error;
pub mod records;

pub use error::RecordError;

/// A Kafka offset (position of a record in a partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

/// A partition leader epoch, stamped into every batch the leader appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

/// A batch's timestamp type (attribute bit 3), which a topic's `message.timestamp.type`
/// chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A record timestamp and the offset it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp_ms: i64,
    pub offset: Offset,
}
