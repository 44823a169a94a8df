//! Produce v0-v2, which Kafka 3.9 served and 4.0 removed (KIP-896): their records come
//! as message sets of magic 0 or 1, which the log cannot hold. Each partition's message
//! set is converted to one uncompressed RecordBatch v2, as Kafka's up-conversion does, and
//! the request then goes through the Produce handler like any other. Every message's
//! CRC-32 is checked; compressed wrapper messages (gzip, snappy, lz4) are opened one level
//! deep, with the decompressed bytes capped. A message set that does not convert (bad CRC,
//! cut short, a magic other than 0 and 1, nested compression, timestamps too far apart
//! for a delta) leaves that partition with no records, which the handler answers with
//! CORRUPT_MESSAGE. Runs on the shard serving the request.

use std::rc::Rc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_engine::batch::{BatchHeader, Codec, NewHeader};
use sluice_engine::record::{Record, RecordError, decompress, encode_batch};
use tracing::debug;

use super::ConnState;
use crate::shard::Shard;

/// Decompressed bytes the compressed wrapper messages of one message set may expand to,
/// together.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// Offset, message size, then crc, magic, attributes, key length and value length: the
/// smallest magic 0 message.
const MESSAGE_BYTES_MIN: usize = 8 + 4 + 4 + 1 + 1 + 4 + 4;
/// Compression codec bits of a message's attributes (the timestamp type bit of magic 1 is
/// the broker's to set and is ignored).
const ATTRIBUTE_CODEC_MASK: u8 = 0x07;

/// Why a Produce v0-v2 message set could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("message set cut short at byte {position}")]
    Truncated { position: usize },
    #[error("message at byte {position} has size {size}")]
    BadSize { position: usize, size: i32 },
    #[error(
        "message at byte {position} fails its CRC (stored {stored:#x}, computed {computed:#x})"
    )]
    Crc {
        position: usize,
        stored: u32,
        computed: u32,
    },
    #[error("message at byte {position} has magic {magic}")]
    BadMagic { position: usize, magic: i8 },
    #[error("compressed message inside a compressed message")]
    NestedCompression,
    #[error("message set holds no message")]
    Empty,
    #[error("more than i32::MAX messages")]
    TooMany,
    #[error("timestamp {timestamp} is too far from the first message's {base} for a delta")]
    TimestampOverflow { base: i64, timestamp: i64 },
    #[error("records: {0}")]
    Record(#[from] RecordError),
}

/// Serves Produce v0-v2: converts each partition's message set, then produces.
pub async fn handle(
    shard: &Rc<Shard>,
    conn: &ConnState,
    mut req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    for t in req.topic_data.iter_mut() {
        for p in t.partition_data.iter_mut() {
            if let Some(records) = p.records.as_mut() {
                *records = match up_convert(records) {
                    Ok(batch) => batch,
                    Err(e) => {
                        debug!(error = %e, topic = %t.name.0, partition = p.index, "old message set not converted");
                        Bytes::new()
                    }
                };
            }
        }
    }
    super::produce::handle(shard, conn, req, version).await
}

/// One message read from a message set.
struct Message {
    codec: Codec,
    /// -1 (no timestamp) for magic 0.
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// Converts a message set of magic 0 or 1 to one uncompressed RecordBatch v2 holding its
/// messages in order (compressed wrappers replaced by what they hold), at offset deltas
/// 0, 1, ... from base offset 0 (the log assigns the real offsets).
pub fn up_convert(set: &Bytes) -> Result<Bytes, ConvertError> {
    up_convert_capped(set, DECOMPRESSED_BYTES_MAX)
}

/// `up_convert` with the wrappers' decompressed bytes capped at `decompressed_bytes_max`
/// for the whole set: a cap per wrapper would let a set of many small wrappers expand
/// without bound.
fn up_convert_capped(set: &Bytes, decompressed_bytes_max: usize) -> Result<Bytes, ConvertError> {
    let mut messages = Vec::new();
    let mut decompressed_left = decompressed_bytes_max;
    for m in read_message_set(set)? {
        if m.codec == Codec::None {
            messages.push(m);
            continue;
        }
        let Some(value) = m.value.as_ref() else {
            return Err(ConvertError::Empty);
        };
        let (plain, _) = decompress(m.codec, value, decompressed_left).map_err(|e| match e {
            RecordError::DecompressedTooLarge { .. } => RecordError::DecompressedTooLarge {
                bytes_max: decompressed_bytes_max,
            },
            other => other,
        })?;
        decompressed_left = decompressed_left.checked_sub(plain.len()).ok_or(
            RecordError::DecompressedTooLarge {
                bytes_max: decompressed_bytes_max,
            },
        )?;
        for inner in read_message_set(&Bytes::from(plain))? {
            if inner.codec != Codec::None {
                return Err(ConvertError::NestedCompression);
            }
            messages.push(inner);
        }
    }
    if messages.is_empty() {
        return Err(ConvertError::Empty);
    }
    let count = i32::try_from(messages.len()).map_err(|_| ConvertError::TooMany)?;
    let base_timestamp = messages[0].timestamp;
    let max_timestamp = messages.iter().map(|m| m.timestamp).max().unwrap_or(-1);
    let records = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            // The producer chooses every timestamp of magic 1, so the delta may not fit.
            let timestamp_delta =
                m.timestamp
                    .checked_sub(base_timestamp)
                    .ok_or(ConvertError::TimestampOverflow {
                        base: base_timestamp,
                        timestamp: m.timestamp,
                    })?;
            Ok(Record {
                attributes: 0,
                timestamp_delta,
                // `count` fits i32, so every index does.
                offset_delta: i as i32,
                key: m.key,
                value: m.value,
                headers: Vec::new(),
            })
        })
        .collect::<Result<Vec<Record>, ConvertError>>()?;
    let header = batch_header(count - 1, base_timestamp, max_timestamp);
    let view = BatchHeader::new(&header).map_err(RecordError::from)?;
    Ok(Bytes::from(encode_batch(&view, &records, false)?))
}

/// The header `encode_batch` copies from: base offset 0, no codec, CreateTime, no
/// producer id, with the given last offset delta and timestamps.
fn batch_header(last_offset_delta: i32, base_timestamp: i64, max_timestamp: i64) -> Vec<u8> {
    NewHeader {
        max_timestamp,
        ..NewHeader::without_producer(0, base_timestamp, last_offset_delta.saturating_add(1))
    }
    .write()
}

/// Reads every message of a message set: offset, size, then crc, magic, attributes,
/// timestamp (magic 1), key and value. Offsets are not used; every length is checked
/// against the bytes left.
fn read_message_set(set: &Bytes) -> Result<Vec<Message>, ConvertError> {
    let mut out = Vec::with_capacity((set.len() / MESSAGE_BYTES_MIN).min(1024));
    let mut at = 0;
    while at < set.len() {
        let position = at;
        let truncated = ConvertError::Truncated { position };
        if set.len() - at < 12 {
            return Err(truncated);
        }
        let mut head = &set[at + 8..at + 12];
        let size = head.get_i32();
        let body_len = usize::try_from(size)
            .ok()
            .filter(|s| *s >= MESSAGE_BYTES_MIN - 12)
            .ok_or(ConvertError::BadSize { position, size })?;
        if set.len() - at - 12 < body_len {
            return Err(truncated);
        }
        let mut body = set.slice(at + 12..at + 12 + body_len);
        at += 12 + body_len;
        let stored = body.get_u32();
        let computed = crc32fast::hash(&body);
        if stored != computed {
            return Err(ConvertError::Crc {
                position,
                stored,
                computed,
            });
        }
        let magic = body.get_i8();
        let attributes = body.get_u8();
        let timestamp = match magic {
            0 => -1,
            1 if body.remaining() >= 8 => body.get_i64(),
            1 => return Err(truncated),
            _ => return Err(ConvertError::BadMagic { position, magic }),
        };
        let key = read_bytes(&mut body).ok_or(ConvertError::Truncated { position })?;
        let value = read_bytes(&mut body).ok_or(ConvertError::Truncated { position })?;
        if body.has_remaining() {
            return Err(ConvertError::BadSize { position, size });
        }
        let codec = match attributes & ATTRIBUTE_CODEC_MASK {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            other => Codec::Unknown(other),
        };
        out.push(Message {
            codec,
            timestamp,
            key,
            value,
        });
    }
    Ok(out)
}

/// BYTES: i32 length (-1 for null), then the bytes; `None` when cut short.
fn read_bytes(body: &mut Bytes) -> Option<Option<Bytes>> {
    if body.remaining() < 4 {
        return None;
    }
    let len = body.get_i32();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    (body.remaining() >= len).then(|| Some(body.split_to(len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use sluice_engine::record::decode_batch;

    /// One message (offset and size included) in Kafka's magic 0/1 layout.
    fn message(
        offset: i64,
        magic: i8,
        attributes: u8,
        ts: i64,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_i8(magic);
        body.put_u8(attributes);
        if magic == 1 {
            body.put_i64(ts);
        }
        match key {
            None => body.put_i32(-1),
            Some(k) => {
                body.put_i32(k.len() as i32);
                body.put_slice(k);
            }
        }
        body.put_i32(value.len() as i32);
        body.put_slice(value);
        let mut out = BytesMut::new();
        out.put_i64(offset);
        out.put_i32(4 + body.len() as i32);
        out.put_u32(crc32fast::hash(&body));
        out.put_slice(&body);
        out.to_vec()
    }

    fn records_of(batch: &Bytes) -> Vec<(i32, i64, Option<Bytes>, Option<Bytes>)> {
        let h = BatchHeader::new(batch).unwrap();
        assert_eq!(h.total_bytes(), Some(batch.len()));
        assert_eq!(h.crc(), sluice_engine::batch::compute_crc(batch));
        decode_batch(batch, 1 << 20)
            .unwrap()
            .records
            .into_iter()
            .map(|r| {
                (
                    r.offset_delta,
                    h.base_timestamp() + r.timestamp_delta,
                    r.key,
                    r.value,
                )
            })
            .collect()
    }

    #[test]
    fn magic_0_and_1_message_sets_become_one_v2_batch() {
        // Proves a magic 0 set converts to a valid v2 batch (CRC32C and length checked) with
        // no timestamps, and a magic 1 set keeps each message's timestamp, key and value,
        // offsets counted from 0 whatever the producer wrote.
        let mut set = message(0, 0, 0, 0, None, b"a");
        set.extend(message(1, 0, 0, 0, Some(b"k"), b"b"));
        let batch = up_convert(&Bytes::from(set)).unwrap();
        assert_eq!(
            records_of(&batch),
            vec![
                (0, -1, None, Some(Bytes::from_static(b"a"))),
                (
                    1,
                    -1,
                    Some(Bytes::from_static(b"k")),
                    Some(Bytes::from_static(b"b"))
                ),
            ]
        );
        let mut set = message(7, 1, 0, 1_000, None, b"x");
        set.extend(message(9, 1, 0, 900, None, b"y"));
        let batch = up_convert(&Bytes::from(set)).unwrap();
        let h = BatchHeader::new(&batch).unwrap();
        assert_eq!((h.base_offset().0, h.last_offset_delta()), (0, 1));
        assert_eq!(h.max_timestamp(), 1_000);
        assert_eq!(
            records_of(&batch),
            vec![
                (0, 1_000, None, Some(Bytes::from_static(b"x"))),
                (1, 900, None, Some(Bytes::from_static(b"y"))),
            ]
        );
    }

    #[test]
    fn gzip_wrapper_messages_are_opened() {
        // Proves a gzip-compressed wrapper message (magic 1, relative inner offsets) is
        // replaced by the messages it holds.
        use std::io::Write;
        let mut inner = message(0, 1, 0, 5, None, b"p");
        inner.extend(message(1, 1, 0, 6, None, b"q"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&inner).unwrap();
        let wrapper = message(1, 1, 1, 6, None, &gz.finish().unwrap());
        let batch = up_convert(&Bytes::from(wrapper)).unwrap();
        assert_eq!(
            records_of(&batch),
            vec![
                (0, 5, None, Some(Bytes::from_static(b"p"))),
                (1, 6, None, Some(Bytes::from_static(b"q"))),
            ]
        );
    }

    #[test]
    fn decompressed_bytes_are_capped_for_the_whole_set() {
        // Proves the cap on decompressed bytes holds for a message set as a whole: two gzip
        // wrappers of 600 bytes each pass a 1,000-byte cap one by one but not together, so
        // a set of many small wrappers cannot expand without bound; one of them alone
        // converts.
        use std::io::Write;
        let wrapper = |offset: i64| {
            let inner = message(0, 1, 0, 5, None, &[b'z'; 600 - 34]);
            assert_eq!(inner.len(), 600);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&inner).unwrap();
            message(offset, 1, 1, 5, None, &gz.finish().unwrap())
        };
        assert!(up_convert_capped(&Bytes::from(wrapper(0)), 1_000).is_ok());
        let mut set = wrapper(0);
        set.extend(wrapper(1));
        assert_eq!(
            up_convert_capped(&Bytes::from(set), 1_000),
            Err(ConvertError::Record(RecordError::DecompressedTooLarge {
                bytes_max: 1_000
            }))
        );
    }

    #[test]
    fn bad_message_sets_are_refused_without_panicking() {
        // Proves a flipped byte (CRC), a set cut anywhere, a bad magic, a negative size and an
        // empty set are errors, never a panic or a batch.
        let good = message(0, 1, 0, 5, Some(b"k"), b"value");
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            up_convert(&Bytes::from(flipped)),
            Err(ConvertError::Crc { .. })
        ));
        for cut in 1..good.len() {
            assert!(
                up_convert(&Bytes::copy_from_slice(&good[..cut])).is_err(),
                "{cut}"
            );
        }
        let bad_magic = message(0, 2, 0, 5, None, b"v");
        assert!(matches!(
            up_convert(&Bytes::from(bad_magic)),
            Err(ConvertError::BadMagic { magic: 2, .. })
        ));
        let mut negative = good.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            up_convert(&Bytes::from(negative)),
            Err(ConvertError::BadSize { size: -5, .. })
        ));
        assert_eq!(up_convert(&Bytes::new()), Err(ConvertError::Empty));
    }

    #[test]
    fn timestamps_too_far_apart_are_refused() {
        // Proves a magic 1 set whose timestamps lie further apart than an i64 delta can say
        // (the producer chooses every timestamp) is refused as an error instead of the
        // subtraction overflowing.
        let mut set = message(0, 1, 0, -2, None, b"a");
        set.extend(message(1, 1, 0, i64::MAX, None, b"b"));
        assert_eq!(
            up_convert(&Bytes::from(set)),
            Err(ConvertError::TimestampOverflow {
                base: -2,
                timestamp: i64::MAX
            })
        );
    }
}
