//! The append path's record checks (Kafka's LogValidator): `check_for_append` decodes a
//! producer's records only when the topic's configs or an untrusted header demand it.
//! The RecordBatch v2 record format itself (decoding, encoding, codecs, test builders)
//! is `sluice_record::records`, re-exported here so `sluice_engine::record::*` paths keep
//! working. Runs on whichever shard owns the partition; pure functions, no I/O.

use bytes::{Bytes, BytesMut};

pub use sluice_record::compression::decompress;
pub use sluice_record::records::*;

use crate::batch::{self, BatchHeader, Codec, HEADER_BYTES};

/// What the append path checks and changes in a producer's batch, from the topic's
/// configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendRules {
    /// `cleanup.policy` includes compact: every record needs a key.
    pub keys_required: bool,
    /// The topic's `compression.type`; `None` (`producer`) keeps the producer's codec.
    pub codec: Option<Codec>,
    /// The log stamps LogAppendTime, which replaces the max timestamp anyway.
    pub log_append_time: bool,
    /// Caps the decompressed record bytes of one batch.
    pub decompressed_bytes_max: usize,
}

/// One record refused by `check_for_append`, as Produce's `record_errors` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRejection {
    /// The record's index in its batch.
    pub batch_index: i32,
    pub message: String,
}

/// Why `check_for_append` refused a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendCheckError {
    /// The records do not decode (CORRUPT_MESSAGE).
    #[error("records do not decode: {0}")]
    Corrupt(#[from] RecordError),
    /// A record's offset delta is not its index (INVALID_RECORD).
    #[error("record {index} has offset delta {offset_delta}")]
    OffsetDelta { index: i32, offset_delta: i32 },
    /// A record's timestamp overflows i64 (INVALID_RECORD).
    #[error("record {index}: timestamp delta {delta} overflows base timestamp {base}")]
    TimestampOverflow { index: i32, base: i64, delta: i64 },
    /// Records the topic cannot take (INVALID_RECORD with `record_errors`).
    #[error("{}", rejections_summary(.0))]
    Rejected(Vec<RecordRejection>),
}

/// How many records were rejected and why the first was, for logs and error messages.
pub fn rejections_summary(rejected: &[RecordRejection]) -> String {
    match rejected.first() {
        Some(first) => format!(
            "{} record(s) rejected, the first: record {}: {}",
            rejected.len(),
            first.batch_index,
            first.message
        ),
        None => "no record rejected".to_string(),
    }
}

/// Why a record of a compacted topic is refused.
pub const KEYLESS_IN_COMPACTED: &str = "a compacted topic cannot accept a record without a key";

/// Validates a producer's batch (length, magic and CRC already checked) the way Kafka's
/// LogValidator does, and returns the batch to store. It decodes the records only when
/// it has to: when the header's max timestamp is unset (below the base timestamp, as
/// Sarama's -1), when the topic is compacted (every record needs a key), or when the
/// topic's codec differs from the batch's. Otherwise the batch comes back untouched,
/// without reading a record, so a correct header is trusted. When it decodes, it checks
/// that offset deltas count up from 0, sets the max timestamp (CreateTime) from the
/// records, and re-encodes the batch with the topic's codec if it differs (every other
/// header field and attribute kept); an unchanged codec is fixed in place, the CRC
/// refreshed.
pub fn check_for_append(batch: Bytes, rules: &AppendRules) -> Result<Bytes, AppendCheckError> {
    let header = decodable_header(&batch)?;
    let target = rules.codec.filter(|c| *c != header.codec());
    let max_unset = !rules.log_append_time && header.max_timestamp() < header.base_timestamp();
    if target.is_none() && !max_unset && !rules.keys_required {
        return Ok(batch);
    }
    let decoded = decode_shared(&batch, rules.decompressed_bytes_max)?;
    // `batch::validate` refuses such a batch first; checked again here because the
    // timestamp and the re-encoding below need at least one record.
    if decoded.records.is_empty() {
        return Err(RecordError::from(batch::BatchError::CountMismatch {
            count: header.records_count(),
            last_offset_delta: header.last_offset_delta(),
        })
        .into());
    }
    let base = header.base_timestamp();
    let mut max_delta = i64::MIN;
    let mut rejected = Vec::new();
    for (index, r) in (0i32..).zip(&decoded.records) {
        if r.offset_delta != index {
            return Err(AppendCheckError::OffsetDelta {
                index,
                offset_delta: r.offset_delta,
            });
        }
        if base.checked_add(r.timestamp_delta).is_none() {
            return Err(AppendCheckError::TimestampOverflow {
                index,
                base,
                delta: r.timestamp_delta,
            });
        }
        max_delta = max_delta.max(r.timestamp_delta);
        if rules.keys_required && r.key.is_none() {
            rejected.push(RecordRejection {
                batch_index: index,
                message: KEYLESS_IN_COMPACTED.to_string(),
            });
        }
    }
    if !rejected.is_empty() {
        return Err(AppendCheckError::Rejected(rejected));
    }
    // The batch holds at least one record (checked above), so max_delta is set.
    let max_timestamp = if rules.log_append_time {
        header.max_timestamp()
    } else {
        base + max_delta
    };
    if let Some(codec) = target {
        let mut head = [0u8; HEADER_BYTES];
        head.copy_from_slice(&batch[..HEADER_BYTES]);
        let attributes = (header.attributes() & !0x7) | i16::from(codec.id());
        head[21..23].copy_from_slice(&attributes.to_be_bytes());
        head[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        let view = BatchHeader::new(&head).expect("61 bytes");
        // Snappy as the Java producer writes it (xerial-framed), which every client reads.
        return Ok(Bytes::from(encode_batch(&view, &decoded.records, true)?));
    }
    if max_timestamp == header.max_timestamp() {
        return Ok(batch);
    }
    // The decoded records may slice the batch; dropped first so it can be fixed in place.
    drop(decoded);
    let mut buf = batch
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    batch::stamp_max_timestamp(&mut buf, max_timestamp);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::LOG_OVERHEAD;

    /// A batch of keyed records (key `None` where `keyless` names the index) with the
    /// given timestamp deltas from base timestamp 1000, its codec from `attributes`, a
    /// producer id, epoch and base sequence, and `max_timestamp` written as the header's.
    fn batch_with(attributes: i16, deltas: &[i64], keyless: &[usize], max_timestamp: i64) -> Bytes {
        let kvs: Vec<KeyValue<'_>> = vec![(Some(b"k"), Some(b"v")); deltas.len()];
        let plain = build_batch(0, 1000, 0, &kvs);
        let mut head = plain[..HEADER_BYTES].to_vec();
        head[21..23].copy_from_slice(&attributes.to_be_bytes());
        head[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        head[43..51].copy_from_slice(&77i64.to_be_bytes());
        head[51..53].copy_from_slice(&3i16.to_be_bytes());
        head[53..57].copy_from_slice(&10i32.to_be_bytes());
        let mut records = decode_batch(&plain, 1 << 20).unwrap().records;
        for (i, r) in records.iter_mut().enumerate() {
            r.timestamp_delta = deltas[i];
            if keyless.contains(&i) {
                r.key = None;
            }
        }
        let view = BatchHeader::new(&head).unwrap();
        Bytes::from(encode_batch(&view, &records, false).unwrap())
    }

    const PRODUCER: AppendRules = AppendRules {
        keys_required: false,
        codec: None,
        log_append_time: false,
        decompressed_bytes_max: 1 << 20,
    };

    // Proves an unset max timestamp (-1, as Sarama writes it) is set from the records'
    // largest timestamp, for uncompressed and compressed batches, with a valid CRC and
    // every other byte kept, in place when the batch is uniquely owned; and that a batch
    // whose max timestamp is set comes back as the very same bytes (not read, not copied).
    #[test]
    fn unset_max_timestamp_is_computed() {
        for (attrs, _) in CODEC_ATTRIBUTES {
            let b = batch_with(attrs, &[0, 30, -5, 12], &[], -1);
            let fixed = check_for_append(b.clone(), &PRODUCER).unwrap();
            let h = batch::validate(&fixed).unwrap();
            assert_eq!(h.max_timestamp(), 1030);
            assert_eq!(fixed[..17], b[..17]);
            assert_eq!(fixed[21..35], b[21..35]);
            assert_eq!(fixed[43..], b[43..]);
            // LogAppendTime stamps its own max timestamp: nothing to compute.
            let lat = AppendRules {
                log_append_time: true,
                ..PRODUCER
            };
            assert_eq!(check_for_append(b.clone(), &lat).unwrap(), b);
        }
        // A uniquely owned uncompressed batch is fixed in place, not copied.
        let unique = Bytes::from(batch_with(0, &[0, 30], &[], -1).to_vec());
        let ptr = unique.as_ptr();
        let fixed = check_for_append(unique, &PRODUCER).unwrap();
        assert_eq!(fixed.as_ptr(), ptr);
        let set = batch_with(4, &[0, 30], &[], 1030);
        let ptr = set.as_ptr();
        let back = check_for_append(set, &PRODUCER).unwrap();
        assert_eq!(back.as_ptr(), ptr);
    }

    // Proves a compacted topic refuses a batch holding keyless records, naming each one
    // by its index in the batch, for every codec, and takes a fully keyed batch.
    #[test]
    fn keyless_records_are_named() {
        let compacted = AppendRules {
            keys_required: true,
            ..PRODUCER
        };
        for (attrs, _) in CODEC_ATTRIBUTES {
            let b = batch_with(attrs, &[0, 1, 2, 3], &[1, 3], 1003);
            let Err(AppendCheckError::Rejected(rejected)) = check_for_append(b, &compacted) else {
                panic!("keyless records accepted");
            };
            let indexes: Vec<i32> = rejected.iter().map(|r| r.batch_index).collect();
            assert_eq!(indexes, [1, 3]);
            assert_eq!(rejected[0].message, KEYLESS_IN_COMPACTED);
            let keyed = batch_with(attrs, &[0, 1], &[], 1001);
            assert_eq!(check_for_append(keyed.clone(), &compacted).unwrap(), keyed);
        }
    }

    // Proves a batch is re-encoded with the topic's codec when it differs: the codec bits
    // change, the records, producer id/epoch/sequence, timestamps, other attribute bits
    // (transactional) and offsets stay, the CRC is valid; the same codec is left alone.
    #[test]
    fn recompresses_to_the_topic_codec() {
        for (from, _) in CODEC_ATTRIBUTES {
            for (to, codec) in CODEC_ATTRIBUTES {
                let b = batch_with(from | 0x10, &[0, 7, 3], &[], -1);
                let rules = AppendRules {
                    codec: Some(codec),
                    ..PRODUCER
                };
                let out = check_for_append(b.clone(), &rules).unwrap();
                let h = batch::validate(&out).unwrap();
                let o = BatchHeader::new(&b).unwrap();
                assert_eq!(h.codec(), codec);
                assert!(h.is_transactional());
                assert_eq!(h.attributes() & !0x7, o.attributes() & !0x7);
                assert_eq!(h.max_timestamp(), 1007);
                assert_eq!(h.base_timestamp(), o.base_timestamp());
                assert_eq!(h.last_offset_delta(), o.last_offset_delta());
                assert_eq!(h.records_count(), o.records_count());
                assert_eq!(
                    (h.producer_id(), h.producer_epoch(), h.base_sequence()),
                    (77, 3, 10)
                );
                assert_eq!(
                    decode_batch(&out, 1 << 20).unwrap().records,
                    decode_batch(&b, 1 << 20).unwrap().records
                );
                if from == to {
                    assert_eq!(out[HEADER_BYTES..], b[HEADER_BYTES..]);
                }
            }
        }
    }

    // Proves records whose offset deltas do not count up from 0 are refused, and records
    // that do not decode are a typed error, when the append has to read them.
    #[test]
    fn bad_records_are_refused_on_append() {
        let b = batch_with(0, &[0, 1], &[], -1);
        let mut records = decode_batch(&b, 1024).unwrap().records;
        records[1].offset_delta = 0;
        let skewed = encode_batch(&BatchHeader::new(&b).unwrap(), &records, false).unwrap();
        assert_eq!(
            check_for_append(Bytes::from(skewed), &PRODUCER),
            Err(AppendCheckError::OffsetDelta {
                index: 1,
                offset_delta: 0
            })
        );
        let mut cut = b.to_vec();
        cut[HEADER_BYTES] = 0x7f;
        batch::update_crc(&mut cut);
        assert!(matches!(
            check_for_append(Bytes::from(cut), &PRODUCER),
            Err(AppendCheckError::Corrupt(_))
        ));
    }

    // Proves a batch holding no record, which the caller's `batch::validate` refuses but
    // this public check may still be handed, is a typed error whatever the append has to
    // do with it (set the max timestamp, check keys, recompress), never an overflow or a
    // failed assertion.
    #[test]
    fn empty_batches_are_refused_on_append() {
        let mut empty = build_batch(0, -5, 0, &[(Some(b"k"), Some(b"v"))])[..HEADER_BYTES].to_vec();
        empty[8..12].copy_from_slice(&((HEADER_BYTES - LOG_OVERHEAD) as i32).to_be_bytes());
        empty[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        empty[35..43].copy_from_slice(&(-10i64).to_be_bytes());
        empty[57..61].copy_from_slice(&0i32.to_be_bytes());
        let empty = Bytes::from(empty);
        let rules = [
            PRODUCER,
            AppendRules {
                keys_required: true,
                ..PRODUCER
            },
            AppendRules {
                codec: Some(Codec::Gzip),
                ..PRODUCER
            },
        ];
        for r in rules {
            assert!(
                matches!(
                    check_for_append(empty.clone(), &r),
                    Err(AppendCheckError::Corrupt(RecordError::Batch(
                        batch::BatchError::CountMismatch { count: 0, .. }
                    )))
                ),
                "{r:?}"
            );
        }
    }
}
