//! Fetch v0-v3, which Kafka 3.9 served and 4.0 removed (KIP-896): their clients read only
//! the old message formats, while the log holds RecordBatch v2. Each partition's records
//! are converted the way Kafka's down-conversion does: v0-v1 get magic 0 messages, v2-v3
//! magic 1 (with timestamps), one uncompressed message per record at its absolute offset,
//! from the fetch offset on (a batch read may begin before it). Control batches
//! (transaction markers) are left out, as are record headers, which the old formats
//! cannot carry, and a batch cut short at the end of the read (a fetch may end mid-batch;
//! the client asks again from there). zstd batches are not converted: as in Kafka, a zstd
//! first batch is UNSUPPORTED_COMPRESSION_TYPE and a later one ends the conversion.
//! Conversion also stops once `CONVERTED_BYTES_MAX` bytes are written, since compressed
//! batches expand. Runs on the shard serving the request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use sluice_engine::TimestampType;
use sluice_engine::batch::{BatchHeader, Codec, LOG_OVERHEAD, MAGIC_V2};
use sluice_engine::record::decode_batch;
use tracing::warn;

use super::fetch::{self, FetchSessions};
use super::produce::first_batch_is_zstd;
use crate::shard::Shard;

/// Decompressed record bytes one batch may take while being converted.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// Converted bytes of one partition past which no further batch is converted (the client
/// asks again from where the answer ends). Compressed batches expand, so a read bounded
/// in stored bytes is not bounded in converted ones.
const CONVERTED_BYTES_MAX: usize = 64 << 20;
/// Message attributes bit of magic 1: the timestamp is the log append time.
const ATTRIBUTE_LOG_APPEND_TIME: u8 = 0x08;

/// Serves Fetch v0-v3: the Fetch handler's answer with each partition's records
/// converted to the message format of `version`.
pub async fn handle(
    shard: &Rc<Shard>,
    sessions: &RefCell<FetchSessions>,
    req: FetchRequest,
    version: i16,
) -> FetchResponse {
    let fetch_offsets: HashMap<(String, i32), i64> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.topic.0.to_string(), p.partition), p.fetch_offset))
        })
        .collect();
    let mut resp = fetch::handle(shard, sessions, req, version).await;
    let magic = message_magic(version);
    for t in resp.responses.iter_mut() {
        for p in t.partitions.iter_mut() {
            let from = fetch_offsets
                .get(&(t.topic.0.to_string(), p.partition_index))
                .copied()
                .unwrap_or(0);
            let Some(records) = p.records.as_mut() else {
                continue;
            };
            if first_batch_is_zstd(records) {
                // Kafka's down-conversion refuses zstd (KIP-110) when it is the first batch.
                *records = Bytes::new();
                p.error_code = ResponseError::UnsupportedCompressionType.code();
                p.high_watermark = -1;
                p.last_stable_offset = -1;
                p.log_start_offset = -1;
            } else {
                *records = down_convert(records, magic, from);
            }
        }
    }
    resp
}

/// The message format magic Fetch `version` reads: 0 before v2, 1 for v2 and v3.
pub fn message_magic(version: i16) -> u8 {
    if version < 2 { 0 } else { 1 }
}

/// Converts the RecordBatch v2 bytes of one partition read to messages of `magic` (0 or
/// 1), leaving out records below `fetch_offset`. Batches that are not complete v2 batches
/// end the conversion; what came before is kept.
pub fn down_convert(records: &Bytes, magic: u8, fetch_offset: i64) -> Bytes {
    down_convert_capped(records, magic, fetch_offset, CONVERTED_BYTES_MAX)
}

/// `down_convert` that converts no further batch once `converted_bytes_max` bytes of
/// messages are written.
fn down_convert_capped(
    records: &Bytes,
    magic: u8,
    fetch_offset: i64,
    converted_bytes_max: usize,
) -> Bytes {
    let mut out = BytesMut::with_capacity(records.len() + records.len() / 4);
    let mut at = 0;
    while at < records.len() && out.len() < converted_bytes_max {
        let rest = &records[at..];
        let Ok(header) = BatchHeader::new(rest) else {
            break;
        };
        let Some(total) = header.total_bytes().filter(|t| *t >= LOG_OVERHEAD) else {
            break;
        };
        if total > rest.len() || header.magic() != MAGIC_V2 {
            break;
        }
        let batch = &rest[..total];
        at += total;
        if header.is_control() {
            continue;
        }
        // As Kafka: what came before is sent, and the fetch from the zstd batch is refused.
        if header.codec() == Codec::Zstd {
            break;
        }
        let decoded = match decode_batch(batch, DECOMPRESSED_BYTES_MAX) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, base_offset = header.base_offset().0, "batch not convertible for an old fetch");
                break;
            }
        };
        let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
        for r in &decoded.records {
            // Deltas come from disk, and the append path stores a batch whose header is
            // right without reading its records: add them as Kafka's Java does, wrapping.
            let offset = header
                .base_offset()
                .0
                .wrapping_add(i64::from(r.offset_delta));
            if offset < fetch_offset {
                continue;
            }
            let timestamp = if log_append_time {
                header.max_timestamp()
            } else {
                header.base_timestamp().wrapping_add(r.timestamp_delta)
            };
            let attributes = if magic >= 1 && log_append_time {
                ATTRIBUTE_LOG_APPEND_TIME
            } else {
                0
            };
            put_message(
                &mut out,
                Message {
                    offset,
                    magic,
                    attributes,
                    timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                },
            );
        }
    }
    out.freeze()
}

/// One message of the old formats.
struct Message<'a> {
    offset: i64,
    magic: u8,
    attributes: u8,
    /// Written only for magic 1.
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// Appends offset, message size, then the message: crc (CRC-32 of what follows it),
/// magic, attributes, timestamp (magic 1), key and value as BYTES (-1 for null).
fn put_message(out: &mut BytesMut, m: Message<'_>) {
    let mut body = Vec::with_capacity(
        2 + 8 + 8 + m.key.map_or(0, <[u8]>::len) + m.value.map_or(0, <[u8]>::len),
    );
    body.push(m.magic);
    body.push(m.attributes);
    if m.magic >= 1 {
        body.put_i64(m.timestamp);
    }
    for field in [m.key, m.value] {
        match field {
            None => body.put_i32(-1),
            Some(b) => {
                // Record fields come from batches of at most i32::MAX bytes.
                body.put_i32(i32::try_from(b.len()).expect("a record field fits i32"));
                body.put_slice(b);
            }
        }
    }
    out.put_i64(m.offset);
    out.put_i32(i32::try_from(4 + body.len()).expect("a message fits i32"));
    out.put_u32(crc32fast::hash(&body));
    out.put_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::batch::stamp_log_append_time;

    /// RecordBatch v2 bytes of `(key, value, timestamp)` at offsets from `base_offset`,
    /// encoded with kafka-protocol's client-side encoder, one header on each record (which
    /// the old formats drop).
    fn batch(base_offset: i64, records: &[(Option<&str>, &str, i64)]) -> Vec<u8> {
        use kafka_protocol::records::*;
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v, ts))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i as i64,
                sequence: -1,
                timestamp: *ts,
                key: k.map(|k| Bytes::from(k.to_string())),
                value: Some(Bytes::from(v.to_string())),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]
                .into_iter()
                .collect(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn messages_match_kafka_legacy_format_bytes() {
        // Proves the converted messages are byte for byte Kafka's magic 0 and magic 1
        // layouts, CRC included (expected CRCs computed independently with zlib's crc32).
        let batch = Bytes::from(batch(40, &[(None, "a", 1_000), (Some("k"), "bc", 1_005)]));
        let v0 = down_convert(&batch, 0, 0);
        let want_v0: &[u8] = &[
            0, 0, 0, 0, 0, 0, 0, 40, // offset
            0, 0, 0, 15, // message size
            0x51, 0xdf, 0x3a, 0x32, // crc
            0, 0, // magic, attributes
            0xff, 0xff, 0xff, 0xff, // key: null
            0, 0, 0, 1, b'a', // value
            0, 0, 0, 0, 0, 0, 0, 41, // offset
            0, 0, 0, 17, // message size
            0xca, 0x9b, 0xb3, 0xaa, // crc
            0, 0, // magic, attributes
            0, 0, 0, 1, b'k', // key
            0, 0, 0, 2, b'b', b'c', // value
        ];
        assert_eq!(&v0[..], want_v0);
        let v1 = down_convert(&batch, 1, 40);
        let want_v1: &[u8] = &[
            0, 0, 0, 0, 0, 0, 0, 40, // offset
            0, 0, 0, 23, // message size
            0x8a, 0x65, 0xe9, 0x6d, // crc
            1, 0, // magic, attributes
            0, 0, 0, 0, 0, 0, 0x03, 0xe8, // timestamp 1000
            0xff, 0xff, 0xff, 0xff, // key: null
            0, 0, 0, 1, b'a', // value
            0, 0, 0, 0, 0, 0, 0, 41, // offset
            0, 0, 0, 25, // message size
            0x70, 0xc1, 0xdd, 0xf5, // crc
            1, 0, // magic, attributes
            0, 0, 0, 0, 0, 0, 0x03, 0xed, // timestamp 1005
            0, 0, 0, 1, b'k', // key
            0, 0, 0, 2, b'b', b'c', // value
        ];
        assert_eq!(&v1[..], want_v1);
    }

    #[test]
    fn log_append_time_control_batches_and_cut_batches() {
        // Proves a LogAppendTime batch gives magic 1 messages its append time with the
        // attribute bit set, a control batch gives nothing, and a batch cut short at the end
        // of the read is left out while the complete ones before it are kept.
        let mut stamped = batch(7, &[(None, "x", 1)]);
        stamp_log_append_time(&mut stamped, 9_999);
        let mut control = batch(8, &[(Some("m"), "c", 1)]);
        // Attributes (i16 at byte 21): bit 5 marks a control batch; the CRC is not checked here.
        control[22] |= 0x20;
        let mut bytes = stamped.clone();
        bytes.extend_from_slice(&control);
        bytes.extend_from_slice(&stamped[..stamped.len() - 3]);
        let out = down_convert(&Bytes::from(bytes), 1, 0);
        let mut want = BytesMut::new();
        put_message(
            &mut want,
            Message {
                offset: 7,
                magic: 1,
                attributes: ATTRIBUTE_LOG_APPEND_TIME,
                timestamp: 9_999,
                key: None,
                value: Some(b"x"),
            },
        );
        assert_eq!(out, want.freeze());
        assert_eq!(down_convert(&Bytes::new(), 0, 0), Bytes::new());
    }

    #[test]
    fn records_below_the_fetch_offset_are_left_out() {
        // Proves a batch that begins before the fetch offset gives only the records from the
        // fetch offset on, as Kafka's down-conversion does.
        let one = sluice_engine::record::build_batch(
            10,
            5,
            0,
            &[
                (None, Some(&b"a"[..])),
                (None, Some(&b"b"[..])),
                (None, Some(&b"c"[..])),
            ],
        );
        let out = down_convert(&Bytes::from(one), 0, 11);
        let mut want = BytesMut::new();
        for (offset, value) in [(11, b"b"), (12, b"c")] {
            put_message(
                &mut want,
                Message {
                    offset,
                    magic: 0,
                    attributes: 0,
                    timestamp: 0,
                    key: None,
                    value: Some(value),
                },
            );
        }
        assert_eq!(out, want.freeze());
    }

    #[test]
    fn conversion_stops_at_the_converted_bytes_cap() {
        // Proves the converted messages of one partition are bounded: once the cap is
        // reached no further batch is converted (the client fetches the rest from there),
        // while without reaching it every batch is.
        let mut three = Vec::new();
        for base_offset in [0, 1, 2] {
            three.extend(batch(base_offset, &[(None, "value", 1)]));
        }
        let three = Bytes::from(three);
        let all = down_convert(&three, 0, 0);
        let one = down_convert(&Bytes::from(batch(0, &[(None, "value", 1)])), 0, 0);
        assert_eq!(all.len(), 3 * one.len());
        assert_eq!(down_convert_capped(&three, 0, 0, one.len()), one);
        assert_eq!(down_convert_capped(&three, 0, 0, all.len()), all);
    }

    #[test]
    fn stored_timestamp_deltas_past_i64_wrap_as_in_kafka() {
        // Proves a stored batch whose record timestamp delta runs past i64::MAX from its
        // base timestamp (the append path trusts a header whose max timestamp is set, so a
        // producer can store one) converts without overflowing, the timestamp wrapping as
        // Kafka's `baseTimestamp + timestampDelta` does in Java.
        let base = i64::MAX - 1;
        let plain = sluice_engine::record::build_batch(
            3,
            base,
            0,
            &[(None, Some(&b"a"[..])), (None, Some(&b"b"[..]))],
        );
        let mut records = decode_batch(&plain, 1 << 20).unwrap().records;
        records[1].timestamp_delta = 5;
        let view = BatchHeader::new(&plain).unwrap();
        let stored = sluice_engine::record::encode_batch(&view, &records, false).unwrap();
        let out = down_convert(&Bytes::from(stored), 1, 0);
        let mut want = BytesMut::new();
        for (offset, timestamp, value) in [(3, base, b"a"), (4, base.wrapping_add(5), b"b")] {
            put_message(
                &mut want,
                Message {
                    offset,
                    magic: 1,
                    attributes: 0,
                    timestamp,
                    key: None,
                    value: Some(value),
                },
            );
        }
        assert_eq!(out, want.freeze());
    }

    #[test]
    fn fetch_versions_map_to_kafka_message_formats() {
        // Proves v0-v1 read magic 0 and v2-v3 magic 1, as Kafka's down-conversion picks.
        assert_eq!((0..=3).map(message_magic).collect::<Vec<_>>(), [0, 0, 1, 1]);
    }
}
