//! RecordBatch v2 on the client side: building batches (with compression), splitting fetched
//! bytes into whole batches, patching header fields of pre-built batches, and decoding.
//!
//! Encoding and record decoding use `kafka-protocol`'s `records` codec; the compression codecs
//! are the workspace's own (flate2/zlib-rs, snap, lz4_flex, zstd) plugged in through its
//! custom-compression hooks. Every decompression is bounded by `uncompressed_bytes_max`, and a
//! batch's record count is checked against its size before the codec reserves memory for it.

use std::io::{Read, Write};

use bytes::{Buf, BufMut, Bytes, BytesMut};
pub use kafka_protocol::records::{Compression, Record, RecordSet, TimestampType};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

/// Bytes before the records in a v2 batch.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of base offset plus batch length, the part not counted in the batch length.
pub const BATCH_LOG_OVERHEAD: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const FIRST_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;
/// The smallest possible encoded record: length, attributes, three deltas, key/value lengths,
/// header count, each one byte.
const RECORD_BYTES_MIN: usize = 7;
/// xerial snappy framing, as written by the Java client.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

const _: () = assert!(RECORD_COUNT_OFFSET + 4 == BATCH_HEADER_BYTES);

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
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(DecodeError::Short { len: bytes.len() });
        }
        let mut b = &bytes[..BATCH_HEADER_BYTES];
        Ok(Self {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            first_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
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
    Ok(match id {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => return Err(DecodeError::Codec(other)),
    })
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

/// Compresses `plain` with `compression`, appending to `out`.
pub fn compress(
    compression: Compression,
    plain: &[u8],
    out: &mut BytesMut,
) -> Result<(), std::io::Error> {
    match compression {
        Compression::None => out.extend_from_slice(plain),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::default());
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        Compression::Snappy => {
            out.extend_from_slice(XERIAL_MAGIC);
            let mut encoder = snap::raw::Encoder::new();
            for block in plain.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).map_err(std::io::Error::other)?;
                out.put_u32(compressed.len() as u32);
                out.extend_from_slice(&compressed);
            }
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(out.writer());
            encoder.write_all(plain)?;
            encoder.finish().map_err(std::io::Error::other)?;
        }
        Compression::Zstd => {
            let compressed = zstd::bulk::compress(plain, 3)?;
            out.extend_from_slice(&compressed);
        }
    }
    Ok(())
}

/// Decompresses a batch's record section, refusing output beyond `max` bytes.
pub fn decompress(compression: Compression, data: &[u8], max: usize) -> Result<Bytes, DecodeError> {
    let failed = |message: String| DecodeError::Decompress {
        compression,
        message,
    };
    let bounded_read = |reader: &mut dyn Read| -> Result<Bytes, DecodeError> {
        let mut out = Vec::new();
        reader
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| failed(e.to_string()))?;
        if out.len() > max {
            return Err(DecodeError::TooLarge { max });
        }
        Ok(Bytes::from(out))
    };
    match compression {
        Compression::None => {
            if data.len() > max {
                return Err(DecodeError::TooLarge { max });
            }
            Ok(Bytes::copy_from_slice(data))
        }
        Compression::Gzip => bounded_read(&mut flate2::read::MultiGzDecoder::new(data)),
        Compression::Lz4 => bounded_read(&mut lz4_flex::frame::FrameDecoder::new(data)),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| failed(e.to_string()))?;
            bounded_read(&mut decoder)
        }
        Compression::Snappy => decompress_snappy(data, max),
    }
}

/// Snappy as Kafka clients send it: xerial-framed blocks (Java) or one raw block (librdkafka).
fn decompress_snappy(data: &[u8], max: usize) -> Result<Bytes, DecodeError> {
    let failed = |message: String| DecodeError::Decompress {
        compression: Compression::Snappy,
        message,
    };
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecodeError> {
        let len = snap::raw::decompress_len(block).map_err(|e| failed(e.to_string()))?;
        if out.len() + len > max {
            return Err(DecodeError::TooLarge { max });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw_block(data, &mut out)?;
        return Ok(Bytes::from(out));
    }
    let mut rest = &data[XERIAL_MAGIC.len()..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(failed("truncated xerial block length".into()));
        }
        let len = rest.get_u32() as usize;
        if rest.len() < len {
            return Err(failed("truncated xerial block".into()));
        }
        raw_block(&rest[..len], &mut out)?;
        rest = &rest[len..];
    }
    Ok(Bytes::from(out))
}

/// Splits fetched bytes into whole batches. A partial batch at the end (brokers cut fetch
/// responses at the size limit) is dropped; a malformed length ends the iteration with an error.
pub fn split_batches(bytes: Bytes) -> SplitBatches {
    SplitBatches { rest: bytes }
}

/// Iterator returned by [`split_batches`].
pub struct SplitBatches {
    rest: Bytes,
}

impl Iterator for SplitBatches {
    type Item = Result<Bytes, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < BATCH_LOG_OVERHEAD {
            return None;
        }
        let length = i32::from_be_bytes(self.rest[8..12].try_into().expect("4 bytes"));
        let body = match usize::try_from(length) {
            Ok(body) if body + BATCH_LOG_OVERHEAD >= BATCH_HEADER_BYTES => body,
            _ => {
                self.rest.clear();
                return Some(Err(DecodeError::Length(length)));
            }
        };
        let total = BATCH_LOG_OVERHEAD + body;
        if self.rest.len() < total {
            self.rest.clear();
            return None;
        }
        Some(Ok(self.rest.split_to(total)))
    }
}

/// Checks a whole batch's header fields that decoding relies on.
fn check_batch(batch: &[u8], uncompressed_bytes_max: usize) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != 2 {
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
    let mut r = &records[..];
    let _length = read_varlong(&mut r)?;
    if r.is_empty() {
        return Err(DecodeError::Framing("record ends before attributes"));
    }
    r.advance(1);
    let _timestamp_delta = read_varlong(&mut r)?;
    let _offset_delta = read_varlong(&mut r)?;
    let key_len = read_varlong(&mut r)?;
    if key_len > 0 {
        let key_len = usize::try_from(key_len).map_err(|_| DecodeError::Framing("key length"))?;
        if r.len() < key_len {
            return Err(DecodeError::Framing("record ends inside its key"));
        }
        r.advance(key_len);
    }
    let value_len = read_varlong(&mut r)?;
    if value_len < 0 {
        return Ok(None);
    }
    let value_len = usize::try_from(value_len).map_err(|_| DecodeError::Framing("value length"))?;
    if r.len() < value_len {
        return Err(DecodeError::Framing("record ends inside its value"));
    }
    let start = records.len() - r.len();
    Ok(Some(records.slice(start..start + value_len)))
}

/// Reads a zigzag varlong, at most 10 bytes.
fn read_varlong(buf: &mut &[u8]) -> Result<i64, DecodeError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(DecodeError::Framing("truncated varint"));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(DecodeError::Framing("varint longer than 10 bytes"))
}

/// Patches the producer fields of a built batch (idempotent producers stamp a sequence into
/// each batch they send). Call [`update_crc`] afterwards.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
}

/// Moves a built batch to a new first timestamp, keeping the record timestamp deltas (so the
/// max timestamp moves by the same amount). Call [`update_crc`] afterwards.
pub fn set_first_timestamp(batch: &mut [u8], first_timestamp: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    let read = |b: &[u8], at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let span = read(batch, MAX_TIMESTAMP_OFFSET) - read(batch, FIRST_TIMESTAMP_OFFSET);
    batch[FIRST_TIMESTAMP_OFFSET..FIRST_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&first_timestamp.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&(first_timestamp + span).to_be_bytes());
}

/// Sets the codec bits of the attributes and the batch length to match a record section that
/// was replaced after encoding (load generators compress pre-built records themselves). Call
/// [`update_crc`] afterwards.
pub fn set_compression_and_length(batch: &mut [u8], compression: Compression) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]);
    let attributes = (attributes & !0x7) | compression as i16;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let length = i32::try_from(batch.len() - BATCH_LOG_OVERHEAD).expect("batch below 2 GiB");
    batch[8..12].copy_from_slice(&length.to_be_bytes());
}

/// Recomputes the CRC32C over attributes..end after header fields were patched.
pub fn update_crc(batch: &mut [u8]) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Whether the stored CRC32C matches the batch contents.
pub fn crc_matches(batch: &[u8]) -> Result<bool, DecodeError> {
    let header = BatchHeader::parse(batch)?;
    Ok(header.crc == crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]))
}

const _: () = assert!(MAGIC_OFFSET + 1 == CRC_OFFSET);

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
        let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
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
        batch[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&i32::MAX.to_be_bytes());
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
