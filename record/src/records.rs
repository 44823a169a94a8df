//! Bounded decoding and encoding of the records inside a Kafka RecordBatch v2: zigzag
//! varint lengths, key, value and headers, every length checked against the bytes left.
//! Compressed batches are decompressed with an output cap (`compression.rs`); the
//! re-encoder compresses with the same codec and writes a fresh batch with a correct
//! CRC32C. Bad bytes give a `RecordError`, never a panic. The broker decodes records
//! only for compaction, for the append checks Kafka's LogValidator makes when a batch's
//! header cannot be trusted, and for ListOffsets by timestamp on the one batch it lands
//! on; the client for what a consumer reads. Pure functions, no I/O.

use bytes::Bytes;

use crate::batch::{self, BatchHeader, Codec, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, NewHeader};
use crate::compression::{compress, decompress};
pub use crate::error::RecordError;
use crate::{Offset, TimestampOffset, TimestampType};

/// The smallest encoded record: length, attributes, three deltas (timestamp, offset),
/// key and value lengths and header count, one byte each. It bounds a batch's record
/// count by its bytes before anything is allocated for the records.
pub const RECORD_BYTES_MIN: usize = 7;

/// One record header (key is a string in Kafka, kept as bytes here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One decoded record. `key`/`value` of `None` mean a null (length -1) field; a null
/// value is a tombstone in a compacted topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// The records of one batch and how they were stored, so they can be written back the
/// same way.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    pub records: Vec<Record>,
    /// True when snappy records were xerial-framed (snappy-java); re-encoding keeps it.
    pub snappy_xerial: bool,
}

/// Reads a zigzag varint (Kafka `varint`, at most 5 bytes) or `varlong` (10 bytes).
fn read_varlong(buf: &[u8], at: &mut usize, max_bytes: usize) -> Result<i64, RecordError> {
    let start = *at;
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let Some(&byte) = buf.get(*at) else {
            return Err(RecordError::Truncated {
                what: "varint",
                position: *at,
            });
        };
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordError::VarintTooLong {
        max_bytes,
        position: start,
    })
}

fn read_varint(buf: &[u8], at: &mut usize) -> Result<i32, RecordError> {
    let v = read_varlong(buf, at, 5)?;
    i32::try_from(v).map_err(|_| RecordError::BadLength {
        what: "varint",
        len: v,
        position: *at,
    })
}

/// Reads a varint-length-prefixed field; -1 is null. The length is checked against the
/// bytes left before slicing.
fn read_nullable(
    records: &Bytes,
    at: &mut usize,
    end: usize,
    what: &'static str,
) -> Result<Option<Bytes>, RecordError> {
    let len = read_varint(&records[..end], at)?;
    if len == -1 {
        return Ok(None);
    }
    let left = end - *at;
    let Ok(n) = usize::try_from(len) else {
        return Err(RecordError::BadLength {
            what,
            len: i64::from(len),
            position: *at,
        });
    };
    if n > left {
        return Err(RecordError::Truncated {
            what,
            position: *at,
        });
    }
    let field = records.slice(*at..*at + n);
    *at += n;
    Ok(Some(field))
}

/// Decodes one record starting at `*at`, within `records[..]`.
fn read_record(records: &Bytes, at: &mut usize) -> Result<Record, RecordError> {
    let length = read_varint(records, at)?;
    let start = *at;
    let left = records.len() - start;
    let len =
        usize::try_from(length)
            .ok()
            .filter(|n| *n <= left)
            .ok_or(RecordError::BadLength {
                what: "record",
                len: i64::from(length),
                position: start,
            })?;
    let end = start + len;
    let body = &records[..end];
    let attributes = *body.get(*at).ok_or(RecordError::Truncated {
        what: "attributes",
        position: *at,
    })? as i8;
    *at += 1;
    let timestamp_delta = read_varlong(body, at, 10)?;
    let offset_delta = read_varint(body, at)?;
    let key = read_nullable(records, at, end, "key")?;
    let value = read_nullable(records, at, end, "value")?;
    let header_count = read_varint(body, at)?;
    // Each header takes at least two bytes, so the count is bounded by the bytes left.
    let header_count = usize::try_from(header_count)
        .ok()
        .filter(|n| *n <= (end - *at) / 2)
        .ok_or(RecordError::BadLength {
            what: "header count",
            len: i64::from(header_count),
            position: *at,
        })?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = read_nullable(records, at, end, "header key")?.ok_or(RecordError::BadLength {
            what: "header key",
            len: -1,
            position: *at,
        })?;
        let value = read_nullable(records, at, end, "header value")?;
        headers.push(RecordHeader { key, value });
    }
    if *at != end {
        return Err(RecordError::RecordLengthMismatch {
            declared: len,
            used: *at - start,
        });
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// Checks the length field and magic of a batch whose records are about to be decoded.
pub fn decodable_header(batch: &[u8]) -> Result<BatchHeader<'_>, RecordError> {
    let header = BatchHeader::new(batch)?;
    if header.magic() != MAGIC_V2 {
        return Err(batch::BatchError::WrongMagic {
            magic: header.magic(),
        }
        .into());
    }
    if header.total_bytes() != Some(batch.len()) {
        return Err(batch::BatchError::LengthMismatch {
            field: header.batch_length(),
            len: batch.len(),
        }
        .into());
    }
    Ok(header)
}

/// Decodes every record of one complete, CRC-valid batch. `decompressed_bytes_max`
/// caps the decompressed record bytes (and so the memory one batch can take).
pub fn decode_batch(
    batch: &[u8],
    decompressed_bytes_max: usize,
) -> Result<DecodedBatch, RecordError> {
    let header = decodable_header(batch)?;
    let (plain, snappy_xerial) = decompress(
        header.codec(),
        &batch[HEADER_BYTES..],
        decompressed_bytes_max,
    )?;
    decode_records(&header, Bytes::from(plain), snappy_xerial)
}

/// `decode_batch` for a batch held as `Bytes`: the records of an uncompressed batch are
/// sliced from it rather than copied.
pub fn decode_shared(
    batch: &Bytes,
    decompressed_bytes_max: usize,
) -> Result<DecodedBatch, RecordError> {
    let header = decodable_header(batch)?;
    if header.codec() != Codec::None {
        return decode_batch(batch, decompressed_bytes_max);
    }
    decode_records(&header, batch.slice(HEADER_BYTES..), false)
}

/// Decodes `header.records_count()` records that must fill `plain` exactly.
fn decode_records(
    header: &BatchHeader<'_>,
    plain: Bytes,
    snappy_xerial: bool,
) -> Result<DecodedBatch, RecordError> {
    let count = header.records_count();
    let count_max = plain.len() / RECORD_BYTES_MIN;
    let count_usize = usize::try_from(count)
        .ok()
        .filter(|n| *n <= count_max)
        .ok_or(RecordError::BadCount { count, count_max })?;
    let mut records = Vec::with_capacity(count_usize);
    let mut at = 0;
    for _ in 0..count_usize {
        records.push(read_record(&plain, &mut at)?);
    }
    if at != plain.len() {
        return Err(RecordError::TrailingBytes {
            left: plain.len() - at,
        });
    }
    Ok(DecodedBatch {
        records,
        snappy_xerial,
    })
}

/// Decodes the first record of a batch's (decompressed) record bytes and nothing after
/// it: a consumer that needs one field of the first record reads no more.
pub fn decode_first_record(plain: &Bytes) -> Result<Record, RecordError> {
    read_record(plain, &mut 0)
}

/// Each record of one batch as (timestamp, offset), in batch order. Records of a
/// LogAppendTime batch carry the batch's max timestamp, as Kafka's record view does.
fn record_timestamps(
    batch: &Bytes,
    decompressed_bytes_max: usize,
) -> Result<Vec<TimestampOffset>, RecordError> {
    let header = decodable_header(batch)?;
    let decoded = decode_shared(batch, decompressed_bytes_max)?;
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    Ok(decoded
        .records
        .iter()
        .map(|r| TimestampOffset {
            timestamp_ms: if log_append_time {
                header.max_timestamp()
            } else {
                header.base_timestamp().saturating_add(r.timestamp_delta)
            },
            offset: Offset(
                header
                    .base_offset()
                    .0
                    .saturating_add(i64::from(r.offset_delta)),
            ),
        })
        .collect())
}

/// ListOffsets by timestamp inside one batch (Kafka's `FileRecords.searchForTimestamp`):
/// the first record at or after offset `from` whose timestamp is at or after
/// `target_ms`. Compressed batches are decompressed, capped at `decompressed_bytes_max`.
pub fn first_record_at_or_after(
    batch: &Bytes,
    target_ms: i64,
    from: Offset,
    decompressed_bytes_max: usize,
) -> Result<Option<TimestampOffset>, RecordError> {
    Ok(record_timestamps(batch, decompressed_bytes_max)?
        .into_iter()
        .find(|r| r.timestamp_ms >= target_ms && r.offset >= from))
}

/// The first record of one batch whose timestamp equals the batch's max timestamp
/// (Kafka's `RecordBatch.offsetOfMaxTimestamp`, which ListOffsets -3 answers since
/// KIP-734).
pub fn max_timestamp_record(
    batch: &Bytes,
    decompressed_bytes_max: usize,
) -> Result<Option<TimestampOffset>, RecordError> {
    let max_timestamp = decodable_header(batch)?.max_timestamp();
    Ok(record_timestamps(batch, decompressed_bytes_max)?
        .into_iter()
        .find(|r| r.timestamp_ms == max_timestamp))
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn write_nullable(out: &mut Vec<u8>, field: Option<&Bytes>) {
    match field {
        None => write_varlong(out, -1),
        Some(b) => {
            write_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Appends one record's encoding (length prefix included).
pub fn encode_record(out: &mut Vec<u8>, r: &Record) {
    let mut body = Vec::with_capacity(
        16 + r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()),
    );
    body.push(r.attributes as u8);
    write_varlong(&mut body, r.timestamp_delta);
    write_varlong(&mut body, i64::from(r.offset_delta));
    write_nullable(&mut body, r.key.as_ref());
    write_nullable(&mut body, r.value.as_ref());
    write_varlong(&mut body, r.headers.len() as i64);
    for h in &r.headers {
        write_nullable(&mut body, Some(&h.key));
        write_nullable(&mut body, h.value.as_ref());
    }
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Writes a new batch holding `records`, copying from `original` every header field a
/// rewrite must keep (base offset, leader epoch, attributes and so the codec, last
/// offset delta, base and max timestamps, producer id, epoch and base sequence). Only
/// the length, the record count and the CRC32C change. `records` must be non-empty,
/// with offset deltas within the original's.
pub fn encode_batch(
    original: &BatchHeader<'_>,
    records: &[Record],
    snappy_xerial: bool,
) -> Result<Vec<u8>, RecordError> {
    assert!(!records.is_empty());
    let mut plain = Vec::new();
    for r in records {
        assert!(r.offset_delta <= original.last_offset_delta());
        encode_record(&mut plain, r);
    }
    let body = compress(original.codec(), &plain, snappy_xerial)?;
    let total = HEADER_BYTES + body.len();
    let length = i32::try_from(total - LOG_OVERHEAD)
        .map_err(|_| RecordError::BatchTooLarge { len: total })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&original.base_offset().0.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch().to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&original.attributes().to_be_bytes());
    out.extend_from_slice(&original.last_offset_delta().to_be_bytes());
    out.extend_from_slice(&original.base_timestamp().to_be_bytes());
    out.extend_from_slice(&original.max_timestamp().to_be_bytes());
    out.extend_from_slice(&original.producer_id().to_be_bytes());
    out.extend_from_slice(&original.producer_epoch().to_be_bytes());
    out.extend_from_slice(&original.base_sequence().to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(&body);
    batch::update_crc(&mut out);
    Ok(out)
}

/// Every codec Kafka defines with its attributes value, for `build_batch` in tests and
/// benchmarks that cover them all.
pub const CODEC_ATTRIBUTES: [(i16, Codec); 5] = [
    (0, Codec::None),
    (1, Codec::Gzip),
    (2, Codec::Snappy),
    (3, Codec::Lz4),
    (4, Codec::Zstd),
];

/// A record's key and value as `build_batch` takes them; `None` is null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds a complete batch of keyed records at consecutive offset deltas from
/// `base_offset` (tests and benchmarks). `attributes` sets the codec bits.
pub fn build_batch(
    base_offset: i64,
    timestamp_ms: i64,
    attributes: i16,
    records: &[KeyValue<'_>],
) -> Vec<u8> {
    assert!(!records.is_empty());
    let header = NewHeader {
        attributes,
        partition_leader_epoch: 0,
        ..NewHeader::without_producer(base_offset, timestamp_ms, records.len() as i32)
    }
    .write();
    let view = BatchHeader::new(&header).expect("61 bytes");
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: k.map(Bytes::copy_from_slice),
            value: v.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&view, &recs, true).expect("test batch encodes")
}

/// Builds a complete batch with one small record per entry of `timestamps_ms`, at
/// consecutive offset deltas from `base_offset`, each with its own timestamp (tests:
/// ListOffsets by timestamp). The base timestamp is the first record's, the max
/// timestamp the largest; `attributes` sets the codec bits.
pub fn build_timed_batch(base_offset: i64, attributes: i16, timestamps_ms: &[i64]) -> Vec<u8> {
    assert!(!timestamps_ms.is_empty());
    let base_timestamp = timestamps_ms[0];
    let max_timestamp = *timestamps_ms.iter().max().expect("non-empty");
    let header = NewHeader {
        attributes,
        max_timestamp,
        partition_leader_epoch: 0,
        ..NewHeader::without_producer(base_offset, base_timestamp, timestamps_ms.len() as i32)
    }
    .write();
    let view = BatchHeader::new(&header).expect("61 bytes");
    let recs: Vec<Record> = timestamps_ms
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            attributes: 0,
            timestamp_delta: ts - base_timestamp,
            offset_delta: i as i32,
            key: None,
            value: Some(Bytes::from(format!("record-{i}"))),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&view, &recs, false).expect("test batch encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::{LargestAllocation, largest_allocation_during};

    // Proves every codec round-trips keys, null keys, tombstones and headers through
    // encode and decode, with a valid CRC and the header fields kept.
    #[test]
    fn every_codec_round_trips() {
        for (attrs, codec) in CODEC_ATTRIBUTES {
            let recs: Vec<KeyValue<'_>> = vec![
                (Some(b"k1"), Some(b"v1")),
                (None, Some(b"no key")),
                (Some(b"k2"), None),
                (Some(b"k3"), Some(&[7u8; 5000])),
            ];
            let b = build_batch(100, 1_700_000_000_000, attrs, &recs);
            let h = batch::validate(&b).unwrap();
            assert_eq!(h.codec(), codec);
            assert_eq!(h.base_offset().0, 100);
            let d = decode_batch(&b, 1 << 20).unwrap();
            assert_eq!(d.records.len(), 4);
            for (i, (r, (k, v))) in d.records.iter().zip(&recs).enumerate() {
                assert_eq!(r.offset_delta, i as i32);
                assert_eq!(r.key.as_deref(), *k);
                assert_eq!(r.value.as_deref(), *v);
            }
            // A record with headers survives too.
            let mut with_headers = d.records.clone();
            with_headers[0].headers.push(RecordHeader {
                key: Bytes::from_static(b"h"),
                value: None,
            });
            with_headers[0].timestamp_delta = -5;
            let again = encode_batch(&h, &with_headers, d.snappy_xerial).unwrap();
            batch::validate(&again).unwrap();
            assert_eq!(decode_batch(&again, 1 << 20).unwrap().records, with_headers);
        }
    }

    // Proves raw (non-framed) snappy, as librdkafka writes it, decodes and is re-encoded raw.
    #[test]
    fn snappy_raw_blocks_decode() {
        let b = build_batch(0, 1, 0, &[(Some(b"a"), Some(b"b"))]);
        let h = BatchHeader::new(&b).unwrap();
        let d = decode_batch(&b, 1024).unwrap();
        let mut attrs = b[..HEADER_BYTES].to_vec();
        attrs[21..23].copy_from_slice(&2i16.to_be_bytes());
        let hv = BatchHeader::new(&attrs).unwrap();
        let raw = encode_batch(&hv, &d.records, false).unwrap();
        assert_ne!(
            raw[HEADER_BYTES..HEADER_BYTES + 8],
            crate::compression::XERIAL_MAGIC
        );
        let back = decode_batch(&raw, 1024).unwrap();
        assert!(!back.snappy_xerial);
        assert_eq!(back.records, d.records);
        assert_eq!(h.codec(), Codec::None);
    }

    // Proves the decompression cap holds for every codec: a batch whose records expand
    // past the cap is refused with a typed error instead of allocating.
    #[test]
    fn decompression_is_capped() {
        for (attrs, codec) in CODEC_ATTRIBUTES {
            let big = vec![0u8; 200_000];
            let b = build_batch(0, 1, attrs, &[(Some(b"k"), Some(&big))]);
            if codec == Codec::None {
                // Uncompressed bytes are bounded by the batch itself.
                assert!(decode_batch(&b, 10_000).is_ok());
                continue;
            }
            let err = decode_batch(&b, 10_000).unwrap_err();
            assert_eq!(
                err,
                RecordError::DecompressedTooLarge { bytes_max: 10_000 },
                "{codec:?}"
            );
        }
    }

    // Proves truncated and mutated record bytes never panic: every prefix and every
    // single-byte change of valid batches gives Ok or a typed error.
    #[test]
    fn bad_bytes_give_errors_not_panics() {
        for (attrs, _) in CODEC_ATTRIBUTES {
            let b = build_batch(
                0,
                1,
                attrs,
                &[(Some(b"key"), Some(b"value")), (Some(b"k2"), None)],
            );
            for cut in 0..b.len() {
                assert!(decode_batch(&b[..cut], 1 << 16).is_err());
            }
            for i in HEADER_BYTES..b.len() {
                for x in [0x00u8, 0x7f, 0x80, 0xff] {
                    let mut m = b.clone();
                    m[i] = x;
                    let _ = decode_batch(&m, 1 << 16);
                }
            }
        }
        // A huge record count is refused before allocating.
        let mut b = build_batch(0, 1, 0, &[(Some(b"k"), Some(b"v"))]);
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_batch(&b, 1 << 16),
            Err(RecordError::BadCount { .. })
        ));
    }

    // Proves a zstd frame declaring a window far beyond the cap is refused before the
    // decoder allocates that window (found by fuzzing: nine bytes declaring a 2^27 window
    // made it allocate 128 MiB under any cap), while zstd batches whose records fit the
    // cap still decode under a small cap.
    #[test]
    fn zstd_window_is_bounded_by_the_cap() {
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x88, 0x01, 0x00, 0x00];
        let b = steered(4, 0, &frame);
        assert!(matches!(
            decode_batch(&b, 256 << 10),
            Err(RecordError::Decompress {
                codec: Codec::Zstd,
                ..
            })
        ));
        assert_eq!(crate::compression::zstd_window_log_max(256 << 10), 19);
        assert_eq!(crate::compression::zstd_window_log_max(64 << 20), 27);
        assert_eq!(crate::compression::zstd_window_log_max(0), 10);
        let value = [1u8; 3000];
        let b = build_batch(0, 1, 4, &[(Some(b"k"), Some(&value))]);
        assert_eq!(decode_batch(&b, 4096).unwrap().records.len(), 1);
    }

    // Proves the first record is read alone: bytes after it, even ones that do not decode,
    // are not looked at, and a first record cut short is a typed error.
    #[test]
    fn first_record_is_read_alone() {
        let b = build_batch(0, 1, 0, &[(Some(b"k"), Some(b"first")), (None, Some(b"2"))]);
        let mut plain = b[HEADER_BYTES..].to_vec();
        let first = decode_first_record(&Bytes::from(plain.clone())).unwrap();
        assert_eq!(first.value.as_deref(), Some(&b"first"[..]));
        let first_len = plain.len() - 6;
        plain.truncate(first_len);
        plain.extend_from_slice(&[0xff; 12]);
        let again = decode_first_record(&Bytes::from(plain.clone())).unwrap();
        assert_eq!(again, first);
        assert!(decode_first_record(&Bytes::from(plain[..5].to_vec())).is_err());
        assert!(decode_first_record(&Bytes::new()).is_err());
    }

    // Proves varints decode at their limits and overlong ones are rejected.
    #[test]
    fn varint_limits() {
        for v in [
            0i64,
            -1,
            1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut at = 0;
            assert_eq!(read_varint(&out, &mut at).unwrap() as i64, v);
            assert_eq!(at, out.len());
        }
        let mut at = 0;
        assert!(matches!(
            read_varint(&[0xff; 6], &mut at),
            Err(RecordError::VarintTooLong { .. })
        ));
    }

    /// Installed for this crate's whole unit-test binary, so the property tests below can
    /// prove decoding never sizes a buffer from an untrusted count or past the
    /// decompression cap.
    #[global_allocator]
    static ALLOCATOR: LargestAllocation = LargestAllocation;

    /// The decompression cap of the property tests: small, so inputs reach it.
    const CAP: usize = 64 << 10;

    /// The most one decode may allocate at once: the decompressed records grow by
    /// doubling to at most twice the cap, and an lz4 frame may declare 4 MiB linked
    /// blocks, for which lz4_flex reserves twice the block plus a 64 KiB window from the
    /// header alone. The record list holds at most one `Record` per 7 decompressed bytes.
    const ALLOCATION_BYTES_MAX: usize = 2 * (CAP + 1) + 2 * (4 << 20) + (64 << 10);

    /// Decodes `batch`, checks a decoded batch survives `encode_batch` (when its records
    /// meet that function's preconditions), and returns the largest allocation made.
    fn decode_checked(batch: &[u8]) -> Result<usize, proptest::test_runner::TestCaseError> {
        let (decoded, largest) = largest_allocation_during(|| decode_batch(batch, CAP));
        if let Ok(d) = decoded {
            let header = BatchHeader::new(batch).unwrap();
            let last = header.last_offset_delta();
            if !d.records.is_empty() && d.records.iter().all(|r| r.offset_delta <= last) {
                let again = encode_batch(&header, &d.records, d.snappy_xerial).unwrap();
                let reread = decode_batch(&again, CAP).unwrap();
                proptest::prop_assert_eq!(reread.records, d.records);
                proptest::prop_assert_eq!(reread.snappy_xerial, d.snappy_xerial);
            }
        }
        Ok(largest)
    }

    /// A well-formed header (codec from `attributes`, `count` records) before `body`.
    fn steered(attributes: i16, count: i32, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES];
        b[8..12]
            .copy_from_slice(&((HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        b[16] = MAGIC_V2 as u8;
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        b[23..27].copy_from_slice(&count.saturating_sub(1).max(0).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(300))]

        // Proves arbitrary bytes, as a whole batch and as the (compressed) records behind a
        // well-formed header of every codec, decode to Ok or a typed error without a panic
        // or an allocation past the cap, and what decodes survives a re-encode.
        #[test]
        fn arbitrary_bytes_never_panic_or_overallocate(
            attributes in 0i16..6,
            count in -1i32..40,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let largest = decode_checked(&body)?;
            proptest::prop_assert!(largest <= ALLOCATION_BYTES_MAX, "{largest} bytes");
            let largest = decode_checked(&steered(attributes, count, &body))?;
            proptest::prop_assert!(largest <= ALLOCATION_BYTES_MAX, "{largest} bytes");
        }

        // Proves valid batches of every codec with a few bytes replaced (in the header, the
        // compressed stream or the records) and cut short decode to Ok or a typed error
        // without a panic or an allocation past the cap.
        #[test]
        fn mutated_batches_never_panic_or_overallocate(
            codec in 0usize..5,
            records in proptest::collection::vec(
                (
                    proptest::option::of(proptest::collection::vec(0u8..4, 0..12)),
                    proptest::option::of(proptest::collection::vec(0u8..4, 0..200)),
                ),
                1..6,
            ),
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..4,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let kvs: Vec<KeyValue<'_>> =
                records.iter().map(|(k, v)| (k.as_deref(), v.as_deref())).collect();
            let mut b = build_batch(0, 1, CODEC_ATTRIBUTES[codec].0, &kvs);
            for (at, byte) in &edits {
                let i = at.index(b.len());
                b[i] = *byte;
            }
            let largest = decode_checked(&b)?;
            proptest::prop_assert!(largest <= ALLOCATION_BYTES_MAX, "{largest} bytes");
            let largest = decode_checked(&b[..cut.index(b.len())])?;
            proptest::prop_assert!(largest <= ALLOCATION_BYTES_MAX, "{largest} bytes");
        }
    }

    // Proves the record-level timestamp search decompresses a zstd batch and answers,
    // for every target, the first record at or after it (and at or after the start
    // offset) with that record's own timestamp; that the max-timestamp record is the
    // first carrying the batch's max; that LogAppendTime records carry the batch's
    // timestamp; and that damaged records are an error, not a panic.
    #[test]
    fn record_timestamp_search() {
        // Out of order on purpose: record 3 holds the max, record 7 repeats it.
        let ts = [1000, 1010, 1005, 1090, 1020, 1030, 1040, 1090, 1050, 1060];
        let b = Bytes::from(build_timed_batch(100, 4, &ts));
        assert_eq!(BatchHeader::new(&b).unwrap().codec(), Codec::Zstd);
        let at = |t: i64, o: i64| {
            Some(TimestampOffset {
                timestamp_ms: t,
                offset: Offset(o),
            })
        };
        let search = |target: i64, from: i64| {
            first_record_at_or_after(&b, target, Offset(from), 1 << 20).unwrap()
        };
        for target in 900..=1100 {
            let want = ts
                .iter()
                .enumerate()
                .find(|(_, t)| **t >= target)
                .map(|(i, t)| TimestampOffset {
                    timestamp_ms: *t,
                    offset: Offset(100 + i as i64),
                });
            assert_eq!(search(target, 0), want, "target {target}");
        }
        assert_eq!(search(1003, 0), at(1010, 101));
        assert_eq!(search(1003, 102), at(1005, 102));
        assert_eq!(search(1060, 0), at(1090, 103));
        assert_eq!(search(1091, 0), None);
        assert_eq!(search(1000, 110), None);
        assert_eq!(max_timestamp_record(&b, 1 << 20).unwrap(), at(1090, 103));

        let mut appended = b.to_vec();
        batch::stamp_log_append_time(&mut appended, 5000);
        let appended = Bytes::from(appended);
        assert_eq!(
            first_record_at_or_after(&appended, 1010, Offset(0), 1 << 20).unwrap(),
            at(5000, 100)
        );
        assert_eq!(
            max_timestamp_record(&appended, 1 << 20).unwrap(),
            at(5000, 100)
        );

        let mut damaged = b.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        let damaged = Bytes::from(damaged);
        assert!(first_record_at_or_after(&damaged, 1000, Offset(0), 1 << 20).is_err());
        assert!(first_record_at_or_after(&b, 1000, Offset(0), 8).is_err());
    }
}
