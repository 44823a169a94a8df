//! The one error of decoding, decompressing, compressing and re-encoding a batch's
//! records; the header's own checks give `BatchError`, which it wraps.

use crate::batch::{BatchError, Codec};

/// Why a batch's records could not be decoded or re-encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("batch header: {0}")]
    Batch(#[from] BatchError),
    #[error("record bytes end at {position} while reading {what}")]
    Truncated { what: &'static str, position: usize },
    #[error("varint longer than {max_bytes} bytes at {position}")]
    VarintTooLong { max_bytes: usize, position: usize },
    #[error("{what} length {len} is invalid at {position}")]
    BadLength {
        what: &'static str,
        len: i64,
        position: usize,
    },
    #[error("record count {count} is negative or above the cap {count_max}")]
    BadCount { count: i32, count_max: usize },
    #[error("record length {declared} disagrees with the {used} bytes its fields use")]
    RecordLengthMismatch { declared: usize, used: usize },
    #[error("{left} bytes follow the last record")]
    TrailingBytes { left: usize },
    #[error("codec {0:?} is not supported")]
    UnsupportedCodec(Codec),
    #[error("{codec:?} decompression failed: {reason}")]
    Decompress { codec: Codec, reason: String },
    #[error("decompressed records exceed the cap of {bytes_max} bytes")]
    DecompressedTooLarge { bytes_max: usize },
    #[error("{codec:?} compression failed: {reason}")]
    Compress { codec: Codec, reason: String },
    #[error("re-encoded batch of {len} bytes exceeds i32")]
    BatchTooLarge { len: usize },
}
