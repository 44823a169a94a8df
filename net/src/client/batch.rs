//! RecordBatch v2 on the client side: building batches (with compression), splitting fetched
//! bytes into whole batches, patching header fields of pre-built batches, and decoding.
//!
//! The format itself is `sluice_record`'s: the header layout, CRC32C, the split by length
//! field, the four codecs (compression and the one bounded decompressor per codec) and the
//! record framing. This module keeps the client's API over it: record encoding and decoding
//! use `kafka-protocol`'s `records` codec (whose `Record` and `RecordSet` callers hold), with
//! `sluice_record`'s codecs plugged in through its custom-compression hooks. Every
//! decompression is bounded by `uncompressed_bytes_max`, and a batch's record count is
//! checked against its size before the codec reserves memory for it.

use bytes::{Bytes, BytesMut};
pub use kafka_protocol::records::{Compression, Record, RecordSet, TimestampType};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
use sluice_record::batch::{self as format, Codec, SplitError};
pub use sluice_record::batch::{set_producer, update_crc};
use sluice_record::records::{RECORD_BYTES_MIN, RecordError};

/// Bytes before the records in a v2 batch.
pub const BATCH_HEADER_BYTES: usize = format::HEADER_BYTES;
/// Bytes of base offset plus batch length, the part not counted in the batch length.
pub const BATCH_LOG_OVERHEAD: usize = format::LOG_OVERHEAD;

/// Failure to build a batch.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("encoding record batch: {0}")]
    Codec(String),
    #[error("compressing with {compression:?}: {source}")]
    Compress {
        compression: Compression,
        source: std::io::Error,
    },
}

/// Failure to read a batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("batch of {len} bytes is shorter than the {BATCH_HEADER_BYTES}-byte header")]
    Short { len: usize },
    #[error("batch length field {0} is invalid")]
    Length(i32),
    #[error("batch magic {0} is not 2")]
    Magic(i8),
    #[error("record count {count} is impossible for a batch of {len} bytes")]
    RecordCount { count: i32, len: usize },
    #[error("unknown compression codec {0}")]
    Codec(i16),
    #[error("decompressing {compression:?}: {message}")]
    Decompress {
        compression: Compression,
        message: String,
    },
    #[error("batch decompresses to more than {max} bytes")]
    TooLarge { max: usize },
    #[error("decoding records: {0}")]
    Records(String),
    #[error("record framing: {0}")]
    Framing(&'static str),
}

/// The fixed fields of a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header of the batch at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let h =
            format::BatchHeader::new(bytes).map_err(|_| DecodeError::Short { len: bytes.len() })?;
        Ok(Self {
            base_offset: h.base_offset().0,
            batch_length: h.batch_length(),
            partition_leader_epoch: h.partition_leader_epoch(),
            magic: h.magic(),
            crc: h.crc(),
            attributes: h.attributes(),
            last_offset_delta: h.last_offset_delta(),
            first_timestamp: h.base_timestamp(),
            max_timestamp: h.max_timestamp(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            record_count: h.records_count(),
        })
    }

    /// The compression codec named by the attributes.
    pub fn compression(&self) -> Result<Compression, DecodeError> {
        compression_from_id(self.attributes & 0x7)
    }

    /// Bytes the whole batch occupies, log overhead included.
    pub fn total_bytes(&self) -> usize {
        BATCH_LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// The offset after the last record of the batch.
    pub fn next_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta) + 1
    }

    /// Whether this is a control batch (transaction marker), which consumers skip.
    pub fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
}

/// Maps Kafka's codec id (attributes bits 0-2) to a codec.
pub fn compression_from_id(id: i16) -> Result<Compression, DecodeError> {
    let codec = u8::try_from(id)
        .ok()
        .filter(|id| *id <= 0x7)
        .map(Codec::from_id);
    Ok(match codec {
        Some(Codec::None) => Compression::None,
        Some(Codec::Gzip) => Compression::Gzip,
        Some(Codec::Snappy) => Compression::Snappy,
        Some(Codec::Lz4) => Compression::Lz4,
        Some(Codec::Zstd) => Compression::Zstd,
        Some(Codec::Unknown(_)) | None => return Err(DecodeError::Codec(id)),
    })
}

/// The record format's name for a codec.
fn codec(compression: Compression) -> Codec {
    match compression {
        Compression::None => Codec::None,
        Compression::Gzip => Codec::Gzip,
        Compression::Snappy => Codec::Snappy,
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
    }
}

/// A record for a batch without a producer id: offset `offset_delta` within the batch and the
/// sequence kafka-protocol's encoder expects for it (base sequence -1 plus the delta).
pub fn plain_record(
    offset_delta: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta,
        sequence: (offset_delta - 1) as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Builds one v2 batch holding `records`. Record `i` must have offset `first + i` and
/// sequence `base_sequence + i` (see [`plain_record`]) and share the producer fields; otherwise
/// the encoder would split them into several batches, which is refused.
pub fn encode_batch(records: &[Record], compression: Compression) -> Result<BytesMut, EncodeError> {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let compress_failure = std::cell::Cell::new(None);
    let result = RecordBatchEncoder::encode_with_custom_compression(
        &mut out,
        records.iter(),
        &options,
        Some(
            |plain: &mut BytesMut, out: &mut BytesMut, compression: Compression| {
                compress(compression, plain, out).map_err(|e| {
                    let message = e.to_string();
                    compress_failure.set(Some(e));
                    anyhow_message(message)
                })
            },
        ),
    );
    if let Some(source) = compress_failure.into_inner() {
        return Err(EncodeError::Compress {
            compression,
            source,
        });
    }
    result.map_err(|e| EncodeError::Codec(e.to_string()))?;
    let one_batch = BatchHeader::parse(&out).is_ok_and(|h| h.total_bytes() == out.len());
    if !one_batch {
        return Err(EncodeError::Codec(
            "records do not form one batch (offsets, sequences or producer fields differ)".into(),
        ));
    }
    Ok(out)
}

/// `kafka-protocol`'s codec hooks report failures as `anyhow::Error`.
fn anyhow_message(message: String) -> anyhow::Error {
    anyhow::Error::msg(message)
}

/// Compresses `plain` with `compression`, appending to `out`. Snappy is xerial-framed, as the
/// Java client writes it.
pub fn compress(
    compression: Compression,
    plain: &[u8],
    out: &mut BytesMut,
) -> Result<(), std::io::Error> {
    let body = sluice_record::compression::compress(codec(compression), plain, true)
        .map_err(std::io::Error::other)?;
    out.extend_from_slice(&body);
    Ok(())
}

/// Decompresses a batch's record section, refusing output beyond `max` bytes.
pub fn decompress(compression: Compression, data: &[u8], max: usize) -> Result<Bytes, DecodeError> {
    if compression == Compression::None && data.len() > max {
        return Err(DecodeError::TooLarge { max });
    }
    let (plain, _xerial) = sluice_record::compression::decompress(codec(compression), data, max)
        .map_err(|e| match e {
            RecordError::DecompressedTooLarge { bytes_max } => {
                DecodeError::TooLarge { max: bytes_max }
            }
            RecordError::Decompress { reason, .. } => DecodeError::Decompress {
                compression,
                message: reason,
            },
            other => DecodeError::Decompress {
                compression,
                message: other.to_string(),
            },
        })?;
    Ok(Bytes::from(plain))
}

/// Splits fetched bytes into whole batches. A partial batch at the end (brokers cut fetch
/// responses at the size limit) is dropped; a malformed length ends the iteration with an error.
pub fn split_batches(bytes: Bytes) -> SplitBatches {
    SplitBatches {
        inner: format::split(bytes),
    }
}

/// Iterator returned by [`split_batches`].
pub struct SplitBatches {
    inner: format::Split,
}

impl Iterator for SplitBatches {
    type Item = Result<Bytes, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next()? {
            Ok(batch) => Some(Ok(batch)),
            Err(SplitError::Truncated { .. }) => None,
            Err(SplitError::BadLength { length, .. }) => Some(Err(DecodeError::Length(length))),
        }
    }
}

/// Checks a whole batch's header fields that decoding relies on.
fn check_batch(batch: &[u8], uncompressed_bytes_max: usize) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != format::MAGIC_V2 {
        return Err(DecodeError::Magic(header.magic));
    }
    if header.total_bytes() != batch.len() {
        return Err(DecodeError::Length(header.batch_length));
    }
    let compression = header.compression()?;
    let room = match compression {
        Compression::None => batch.len() - BATCH_HEADER_BYTES,
        _ => uncompressed_bytes_max,
    };
    let count_ok = usize::try_from(header.record_count).is_ok_and(|n| n * RECORD_BYTES_MIN <= room);
    if !count_ok {
        return Err(DecodeError::RecordCount {
            count: header.record_count,
            len: batch.len(),
        });
    }
    Ok(header)
}

/// Decodes every record of one whole batch.
pub fn decode_batch(batch: Bytes, uncompressed_bytes_max: usize) -> Result<RecordSet, DecodeError> {
    check_batch(&batch, uncompressed_bytes_max)?;
    let mut buf = batch;
    let decompress_failure = std::cell::Cell::new(None);
    let result = RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(|data: &mut Bytes, compression: Compression| {
            decompress(compression, data, uncompressed_bytes_max).map_err(|e| {
                let message = e.to_string();
                decompress_failure.set(Some(e));
                anyhow_message(message)
            })
        }),
    );
    if let Some(e) = decompress_failure.into_inner() {
        return Err(e);
    }
    result.map_err(|e| DecodeError::Records(e.to_string()))
}

/// Decodes all whole batches in fetched bytes.
pub fn decode_batches(
    bytes: Bytes,
    uncompressed_bytes_max: usize,
) -> Result<Vec<RecordSet>, DecodeError> {
    split_batches(bytes)
        .map(|batch| decode_batch(batch?, uncompressed_bytes_max))
        .collect()
}

/// The value of the first record of a whole batch, without decoding the others. Load
/// generators use it to read the send time they wrote into each batch.
pub fn first_record_value(
    batch: &Bytes,
    uncompressed_bytes_max: usize,
) -> Result<Option<Bytes>, DecodeError> {
    let header = check_batch(batch, uncompressed_bytes_max)?;
    if header.record_count == 0 {
        return Ok(None);
    }
    let records = match header.compression()? {
        Compression::None => batch.slice(BATCH_HEADER_BYTES..),
        compression => decompress(
            compression,
            &batch[BATCH_HEADER_BYTES..],
            uncompressed_bytes_max,
        )?,
    };
    let first = sluice_record::records::decode_first_record(&records)
        .map_err(|e| DecodeError::Records(e.to_string()))?;
    Ok(first.value)
}

/// Moves a built batch to a new first timestamp, keeping the record timestamp deltas (so the
/// max timestamp moves by the same amount). Call [`update_crc`] afterwards.
pub fn set_first_timestamp(batch: &mut [u8], first_timestamp: i64) {
    format::set_base_timestamp(batch, first_timestamp);
}

/// Sets the codec bits of the attributes and the batch length to match a record section that
/// was replaced after encoding (load generators compress pre-built records themselves). Call
/// [`update_crc`] afterwards.
pub fn set_compression_and_length(batch: &mut [u8], compression: Compression) {
    format::set_codec_and_length(batch, codec(compression));
}

/// Whether the stored CRC32C matches the batch contents.
pub fn crc_matches(batch: &[u8]) -> Result<bool, DecodeError> {
    let header = BatchHeader::parse(batch)?;
    Ok(header.crc == format::compute_crc(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;

    fn records(n: usize, value_bytes: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![(i % 251) as u8; value_bytes])),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]),
            })
            .collect()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_through_our_decoder_and_kafka_protocols() {
        // Proves batches built with each codec decode back to the same records both through our
        // bounded decoder and through kafka-protocol's own decoder (the oracle for framing).
        let input = records(50, 300);
        for compression in CODECS {
            let batch = encode_batch(&input, compression).unwrap().freeze();
            assert!(crc_matches(&batch).unwrap(), "{compression:?}");
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(header.compression().unwrap(), compression);
            assert_eq!(header.record_count, 50);
            assert_eq!(header.total_bytes(), batch.len());
            let ours = decode_batch(batch.clone(), 1 << 20).unwrap();
            assert_eq!(ours.records, input, "{compression:?}");
            assert_eq!(ours.compression, compression);
            if compression == Compression::None {
                let theirs = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
                assert_eq!(theirs.records, input);
            }
            let first = first_record_value(&batch, 1 << 20).unwrap().unwrap();
            assert_eq!(first, input[0].value.clone().unwrap());
        }
    }

    #[test]
    fn decompression_is_bounded() {
        // Proves a compressed batch whose records expand beyond the limit is refused instead of
        // being inflated into memory.
        let input = records(100, 1000);
        for compression in CODECS.into_iter().skip(1) {
            let batch = encode_batch(&input, compression).unwrap().freeze();
            let err = decode_batch(batch, 10_000).unwrap_err();
            assert!(
                matches!(err, DecodeError::TooLarge { max: 10_000 }),
                "{compression:?}: {err}"
            );
        }
    }

    #[test]
    fn raw_snappy_from_librdkafka_style_producers_decodes() {
        // Proves the snappy decoder accepts a single raw block (no xerial framing).
        let plain = b"hello hello hello hello".repeat(10);
        let raw = sluice_record::compression::compress(Codec::Snappy, &plain, false).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 16).unwrap(),
            plain
        );
    }

    #[test]
    fn split_drops_partial_tail_and_rejects_bad_length() {
        // Proves fetched bytes cut mid-batch yield only whole batches, and a negative length is
        // an error rather than a panic.
        let a = encode_batch(&records(3, 10), Compression::None).unwrap();
        let b = encode_batch(&records(4, 10), Compression::None).unwrap();
        let mut joined = BytesMut::new();
        joined.extend_from_slice(&a);
        joined.extend_from_slice(&b[..b.len() - 5]);
        let whole: Vec<_> = split_batches(joined.freeze())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(&whole[0][..], &a[..]);

        let mut bad = a.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        let results: Vec<_> = split_batches(bad.freeze()).collect();
        assert!(matches!(results[..], [Err(DecodeError::Length(-5))]));
    }

    #[test]
    fn impossible_record_count_is_refused_before_allocation() {
        // Proves a header claiming 2^31-1 records in a small batch is an error, so the record
        // decoder never reserves memory for it.
        let mut batch = encode_batch(&records(2, 10), Compression::None).unwrap();
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        update_crc(&mut batch);
        let err = decode_batch(batch.freeze(), 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::RecordCount { .. }), "{err}");
    }

    #[test]
    fn patched_headers_keep_a_valid_crc() {
        // Proves patching producer fields and timestamps then updating the CRC yields a batch
        // kafka-protocol decodes with the new values.
        let mut batch = encode_batch(&records(5, 10), Compression::None).unwrap();
        set_producer(&mut batch, 42, 3, 1000);
        set_first_timestamp(&mut batch, 1_800_000_000_000);
        assert!(!crc_matches(&batch).unwrap());
        update_crc(&mut batch);
        assert!(crc_matches(&batch).unwrap());
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (42, 3, 1000)
        );
        assert_eq!(header.first_timestamp, 1_800_000_000_000);
        assert_eq!(header.max_timestamp, 1_800_000_000_004);
        let decoded = RecordBatchDecoder::decode(&mut batch.freeze()).unwrap();
        assert_eq!(decoded.records[4].sequence, 1004);
        assert_eq!(decoded.records[4].timestamp, 1_800_000_000_004);
    }
}
