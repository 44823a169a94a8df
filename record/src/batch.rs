//! Zero-copy view over the 61-byte Kafka RecordBatch v2 header, its validation (the
//! broker's append path and recovery, offline tools), the in-place stamping of base
//! offset, partition leader epoch, LogAppendTime, max timestamp and producer fields, and
//! the split of a byte run (a Produce `records` field, a fetch response) into batches by
//! their length field. Records themselves are never decoded here (`records.rs` does).
//! Byte layout: engine/FORMAT.md.

use bytes::Bytes;

use crate::{Offset, TimestampType};

/// Size of the RecordBatch v2 header in bytes.
pub const HEADER_BYTES: usize = 61;
/// Bytes before the `batch_length` field's counted region (base offset + batch length).
pub const LOG_OVERHEAD: usize = 12;
/// The only magic value Sluice stores.
pub const MAGIC_V2: i8 = 2;
/// The CRC32C covers everything from the attributes field to the end of the batch.
pub const CRC_START: usize = 21;

const _: () = assert!(HEADER_BYTES == 61);
const _: () = assert!(CRC_START < HEADER_BYTES);

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// A value Kafka does not define (5..=7).
    Unknown(u8),
}

impl Codec {
    /// The codec a value of the low three attribute bits names.
    pub fn from_id(id: u8) -> Codec {
        match id & 0x7 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => Codec::Unknown(other),
        }
    }

    /// The codec's value in the low three attribute bits.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
            Codec::Unknown(id) => id & 0x7,
        }
    }
}

/// Why a batch header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch of {len} bytes is shorter than the {HEADER_BYTES}-byte header")]
    TooShort { len: usize },
    #[error("batch length field {field} does not match the {len} bytes given")]
    LengthMismatch { field: i32, len: usize },
    #[error("magic {magic} is not 2")]
    WrongMagic { magic: i8 },
    #[error("crc32c {stored:#010x} stored, {computed:#010x} computed")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
}

/// Read-only view over a batch's header fields. `bytes` must be at least
/// `HEADER_BYTES` long (checked by `new`).
#[derive(Clone, Copy)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl<'a> BatchHeader<'a> {
    /// Views the header at the start of `bytes`; the batch body may be absent.
    pub fn new(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::TooShort { len: bytes.len() });
        }
        Ok(BatchHeader { bytes })
    }
    pub fn base_offset(&self) -> Offset {
        Offset(be_i64(self.bytes, 0))
    }
    /// Bytes following the length field.
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, 8)
    }
    /// The whole batch size in bytes as the length field claims it, if plausible.
    pub fn total_bytes(&self) -> Option<usize> {
        let field = self.batch_length();
        let total = usize::try_from(field).ok()?.checked_add(LOG_OVERHEAD)?;
        (total >= HEADER_BYTES).then_some(total)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, 12)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[16] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, 17) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, 21)
    }
    pub fn codec(&self) -> Codec {
        Codec::from_id((self.attributes() & 0x7) as u8)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & 0x8 != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    /// Base offset plus last offset delta.
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset()
                .0
                .saturating_add(i64::from(self.last_offset_delta())),
        )
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    /// Last sequence number of the batch, wrapping at i32::MAX as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let seq = i64::from(self.base_sequence()) + i64::from(self.last_offset_delta());
        if seq > i64::from(i32::MAX) {
            (seq - i64::from(i32::MAX) - 1) as i32
        } else {
            seq as i32
        }
    }
}

/// Computes the CRC32C of a whole batch's checked region.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks a complete batch (exactly `batch.len()` bytes) the way both the append path
/// and recovery need: length field, magic, CRC32C, and count vs last offset delta.
pub fn validate(batch: &[u8]) -> Result<BatchHeader<'_>, BatchError> {
    let header = BatchHeader::new(batch)?;
    let field = header.batch_length();
    if header.total_bytes() != Some(batch.len()) {
        return Err(BatchError::LengthMismatch {
            field,
            len: batch.len(),
        });
    }
    if header.magic() != MAGIC_V2 {
        return Err(BatchError::WrongMagic {
            magic: header.magic(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc() {
        return Err(BatchError::CrcMismatch {
            stored: header.crc(),
            computed,
        });
    }
    let count = header.records_count();
    let delta = header.last_offset_delta();
    if count <= 0 || delta < 0 || i64::from(count) - 1 != i64::from(delta) {
        return Err(BatchError::CountMismatch {
            count,
            last_offset_delta: delta,
        });
    }
    Ok(header)
}

/// Checks a batch read back from a segment (reads, recovery, offline tools). Like
/// `validate`, except that compaction may have removed records: a stored batch holds at
/// most last offset delta + 1 records, and none at all only when it belongs to an
/// idempotent or transactional producer (Kafka keeps such a batch empty so the
/// producer's last sequence survives). Appends must still pass `validate`.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader<'_>, BatchError> {
    let header = match validate(batch) {
        Ok(h) => return Ok(h),
        Err(BatchError::CountMismatch { .. }) => BatchHeader::new(batch)?,
        Err(other) => return Err(other),
    };
    let count = header.records_count();
    let delta = header.last_offset_delta();
    let emptied_ok = count > 0 || header.producer_id() >= 0;
    if count < 0 || delta < 0 || i64::from(count) > i64::from(delta) + 1 || !emptied_ok {
        return Err(BatchError::CountMismatch {
            count,
            last_offset_delta: delta,
        });
    }
    Ok(header)
}

/// The fields of a new batch header, for code that writes a batch from scratch; the
/// magic, the length of a header-only batch and the CRC over it are filled in by `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewHeader {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl NewHeader {
    /// A header with no producer (id, epoch and sequence -1), no codec, CreateTime,
    /// leader epoch -1 (not yet stamped), for `records_count` records at one timestamp.
    pub fn without_producer(base_offset: i64, timestamp_ms: i64, records_count: i32) -> Self {
        NewHeader {
            base_offset,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: records_count.saturating_sub(1),
            base_timestamp: timestamp_ms,
            max_timestamp: timestamp_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count,
        }
    }

    /// The 61 header bytes of a batch holding no record bytes yet, CRC included.
    pub fn write(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_BYTES];
        out[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        let length = (HEADER_BYTES - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        out[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[16] = MAGIC_V2 as u8;
        out[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        out[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        out[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        out[57..61].copy_from_slice(&self.records_count.to_be_bytes());
        update_crc(&mut out);
        out
    }
}

/// A batch with no records keeping `original`'s offsets, timestamps and producer fields,
/// uncompressed (as Kafka writes a retained empty batch).
pub fn empty_batch(original: &BatchHeader<'_>) -> Vec<u8> {
    NewHeader {
        base_offset: original.base_offset().0,
        partition_leader_epoch: original.partition_leader_epoch(),
        attributes: original.attributes() & !0x7,
        last_offset_delta: original.last_offset_delta(),
        base_timestamp: original.base_timestamp(),
        max_timestamp: original.max_timestamp(),
        producer_id: original.producer_id(),
        producer_epoch: original.producer_epoch(),
        base_sequence: original.base_sequence(),
        records_count: 0,
    }
    .write()
}

/// Recomputes the CRC32C over attributes..end after header fields were patched.
pub fn update_crc(batch: &mut [u8]) {
    assert!(batch.len() >= HEADER_BYTES);
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Writes the broker-owned fields outside the CRC region.
pub fn stamp_offset_and_epoch(batch: &mut [u8], base_offset: Offset, leader_epoch: i32) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[0..8].copy_from_slice(&base_offset.0.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as its max timestamp and refreshes
/// the CRC, which covers both fields.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x8;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    update_crc(batch);
}

/// Sets the max timestamp (CreateTime) to `max_timestamp_ms` and refreshes the CRC,
/// which covers it. Leaves the bytes alone when the field already holds that value.
pub fn stamp_max_timestamp(batch: &mut [u8], max_timestamp_ms: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    if batch[35..43] == max_timestamp_ms.to_be_bytes() {
        return;
    }
    batch[35..43].copy_from_slice(&max_timestamp_ms.to_be_bytes());
    update_crc(batch);
}

/// Patches the producer fields of a built batch (an idempotent producer stamps its id,
/// epoch and a sequence into each batch it sends). Call [`update_crc`] afterwards.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
}

/// Moves a built batch to a new base timestamp, keeping the record timestamp deltas (so
/// the max timestamp moves by the same amount). Call [`update_crc`] afterwards.
pub fn set_base_timestamp(batch: &mut [u8], base_timestamp_ms: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    let span = be_i64(batch, 35) - be_i64(batch, 27);
    batch[27..35].copy_from_slice(&base_timestamp_ms.to_be_bytes());
    batch[35..43].copy_from_slice(&(base_timestamp_ms + span).to_be_bytes());
}

/// Sets the codec bits of the attributes and the batch length to match a record section
/// replaced after encoding (load generators compress pre-built records themselves). Call
/// [`update_crc`] afterwards.
pub fn set_codec_and_length(batch: &mut [u8], codec: Codec) {
    assert!(batch.len() >= HEADER_BYTES);
    let attributes = (be_i16(batch, 21) & !0x7) | i16::from(codec.id());
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let length = i32::try_from(batch.len() - LOG_OVERHEAD).expect("batch below 2 GiB");
    batch[8..12].copy_from_slice(&length.to_be_bytes());
}

/// Why a byte run does not split into whole batches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("batch length field {length} at byte {position} is shorter than a header")]
    BadLength { position: usize, length: i32 },
    #[error("batch at byte {position} needs {needed} bytes, {left} are left")]
    Truncated {
        position: usize,
        needed: usize,
        left: usize,
    },
}

/// Splits a run of batches (a Produce `records` field, fetched bytes) into whole batches
/// by their length fields, without copying and without reading past the header's first
/// 12 bytes. A length below the header's or a batch cut short yields one error, after
/// which the iteration ends.
pub fn split(bytes: Bytes) -> Split {
    Split {
        rest: bytes,
        position: 0,
    }
}

/// Iterator returned by [`split`].
pub struct Split {
    rest: Bytes,
    /// Where `rest` starts in the bytes given to `split`.
    position: usize,
}

impl Iterator for Split {
    type Item = Result<Bytes, SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let position = self.position;
        let left = self.rest.len();
        let truncated = |needed| {
            Some(Err(SplitError::Truncated {
                position,
                needed,
                left,
            }))
        };
        if left < LOG_OVERHEAD {
            self.rest.clear();
            return truncated(LOG_OVERHEAD);
        }
        let length = be_i32(&self.rest, 8);
        let total = usize::try_from(length)
            .ok()
            .and_then(|n| n.checked_add(LOG_OVERHEAD))
            .filter(|total| *total >= HEADER_BYTES);
        let Some(total) = total else {
            self.rest.clear();
            return Some(Err(SplitError::BadLength { position, length }));
        };
        if left < total {
            self.rest.clear();
            return truncated(total);
        }
        self.position += total;
        Some(Ok(self.rest.split_to(total)))
    }
}

/// Builds a valid v2 batch with `count` small records for tests and benchmarks. The
/// records are opaque filler of `payload_bytes` bytes after the header; the engine never
/// decodes them.
pub fn build_test_batch(
    count: i32,
    payload_bytes: usize,
    timestamp_ms: i64,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    assert!(count > 0);
    let total = HEADER_BYTES + payload_bytes;
    let mut b = vec![0u8; total];
    b[8..12].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    b[16] = MAGIC_V2 as u8;
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..35].copy_from_slice(&timestamp_ms.to_be_bytes());
    b[35..43].copy_from_slice(&timestamp_ms.to_be_bytes());
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    for (i, byte) in b[HEADER_BYTES..].iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    update_crc(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a header written from its fields reads back field for field, checks its
    // CRC, and that the empty batch kept for an emptied one keeps everything but the
    // codec bits and the record count.
    #[test]
    fn new_header_reads_back() {
        let fields = NewHeader {
            base_offset: 77,
            partition_leader_epoch: 4,
            attributes: 0x10 | 3,
            last_offset_delta: 9,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_009,
            producer_id: 42,
            producer_epoch: 2,
            base_sequence: 100,
            records_count: 10,
        };
        let bytes = fields.write();
        let h = BatchHeader::new(&bytes).unwrap();
        assert_eq!(h.base_offset().0, 77);
        assert_eq!(h.partition_leader_epoch(), 4);
        assert_eq!(h.attributes(), 0x10 | 3);
        assert_eq!(h.last_offset_delta(), 9);
        assert_eq!(h.base_timestamp(), 1_700_000_000_000);
        assert_eq!(h.max_timestamp(), 1_700_000_000_009);
        assert_eq!((h.producer_id(), h.producer_epoch()), (42, 2));
        assert_eq!(h.base_sequence(), 100);
        assert_eq!(h.batch_length() as usize, HEADER_BYTES - LOG_OVERHEAD);
        assert_eq!(h.crc(), compute_crc(&bytes));
        let empty = empty_batch(&h);
        let e = validate_stored(&empty).unwrap();
        assert_eq!(e.attributes(), 0x10);
        assert_eq!(e.base_offset().0, 77);
        assert_eq!(e.last_offset_delta(), 9);
        assert_eq!(&empty[57..61], &0i32.to_be_bytes());
    }

    // Proves the header view reads every field at the offsets Kafka defines and that a
    // freshly built batch validates.
    #[test]
    fn header_fields_round_trip() {
        let b = build_test_batch(5, 100, 1_700_000_000_000, Some((42, 3, 7)));
        let h = validate(&b).unwrap();
        assert_eq!(h.batch_length() as usize, b.len() - 12);
        assert_eq!(h.magic(), 2);
        assert_eq!(h.last_offset_delta(), 4);
        assert_eq!(h.records_count(), 5);
        assert_eq!(h.producer_id(), 42);
        assert_eq!(h.producer_epoch(), 3);
        assert_eq!(h.base_sequence(), 7);
        assert_eq!(h.last_sequence(), 11);
        assert_eq!(h.max_timestamp(), 1_700_000_000_000);
        assert_eq!(h.codec(), Codec::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    }

    // Proves stamping offsets keeps the CRC valid and max timestamp and LogAppendTime
    // stamping refresh it.
    #[test]
    fn stamping_keeps_crc_valid() {
        let mut b = build_test_batch(3, 10, 5, None);
        stamp_offset_and_epoch(&mut b, Offset(1000), 9);
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset(), Offset(1000));
        assert_eq!(h.last_offset(), Offset(1002));
        assert_eq!(h.partition_leader_epoch(), 9);
        stamp_max_timestamp(&mut b, 66);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp(), 66);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        stamp_log_append_time(&mut b, 77);
        let h = validate(&b).unwrap();
        assert_eq!(h.max_timestamp(), 77);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    }

    // Proves each kind of bad header is rejected with its own error, never a panic.
    #[test]
    fn bad_headers_are_typed_errors() {
        assert!(matches!(
            validate(&[0u8; 10]),
            Err(BatchError::TooShort { .. })
        ));
        let good = build_test_batch(2, 20, 0, None);
        let mut b = good.clone();
        b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut b = good.clone();
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            validate(&b),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut b = good.clone();
        b[16] = 1;
        assert!(matches!(
            validate(&b),
            Err(BatchError::WrongMagic { magic: 1 })
        ));
        let mut b = good.clone();
        b[70] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
        let mut b = good.clone();
        b[57..61].copy_from_slice(&7i32.to_be_bytes());
        update_crc(&mut b);
        assert!(matches!(
            validate(&b),
            Err(BatchError::CountMismatch { .. })
        ));
    }

    // Proves the stored-batch check accepts what compaction leaves (fewer records than
    // the offset delta spans, an emptied producer batch) and still refuses the rest.
    #[test]
    fn stored_batches_may_hold_fewer_records() {
        let with_count = |count: i32, producer: Option<(i64, i16, i32)>| {
            let mut b = build_test_batch(5, 40, 0, producer);
            b[57..61].copy_from_slice(&count.to_be_bytes());
            update_crc(&mut b);
            b
        };
        let fewer = with_count(2, None);
        assert!(validate(&fewer).is_err());
        assert_eq!(validate_stored(&fewer).unwrap().records_count(), 2);
        assert!(validate_stored(&with_count(0, Some((7, 0, 0)))).is_ok());
        for bad in [
            with_count(0, None),
            with_count(6, None),
            with_count(-1, None),
        ] {
            assert!(matches!(
                validate_stored(&bad),
                Err(BatchError::CountMismatch { .. })
            ));
        }
        let mut crc_bad = fewer.clone();
        crc_bad[70] ^= 1;
        assert!(matches!(
            validate_stored(&crc_bad),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    // Proves the last sequence wraps past i32::MAX the way Kafka's DefaultRecordBatch does.
    #[test]
    fn last_sequence_wraps() {
        let b = build_test_batch(3, 0, 0, Some((1, 0, i32::MAX - 1)));
        assert_eq!(BatchHeader::new(&b).unwrap().last_sequence(), 0);
    }

    // Proves a run of batches splits at their length fields without copying, and that a
    // run cut short or holding a length below the header's yields one typed error and
    // ends there.
    #[test]
    fn runs_split_at_length_fields() {
        let a = build_test_batch(2, 10, 0, None);
        let b = build_test_batch(3, 30, 0, None);
        let both = Bytes::from([a.clone(), b.clone()].concat());
        let parts: Vec<Bytes> = split(both.clone()).collect::<Result<_, _>>().unwrap();
        assert_eq!(parts, [Bytes::from(a.clone()), Bytes::from(b.clone())]);
        assert_eq!(parts[1].as_ptr(), both[a.len()..].as_ptr());
        assert_eq!(split(Bytes::new()).count(), 0);

        let cut: Vec<_> = split(both.slice(..both.len() - 1)).collect();
        assert_eq!(cut.len(), 2);
        assert_eq!(
            cut[1],
            Err(SplitError::Truncated {
                position: a.len(),
                needed: b.len(),
                left: b.len() - 1
            })
        );
        let stub: Vec<_> = split(both.slice(..a.len() + 5)).collect();
        assert!(matches!(
            stub[1],
            Err(SplitError::Truncated { needed: 12, .. })
        ));

        for length in [-5i32, 0, 48] {
            let mut bad = a.clone();
            bad[8..12].copy_from_slice(&length.to_be_bytes());
            let results: Vec<_> = split(Bytes::from([bad, b.clone()].concat())).collect();
            assert_eq!(
                results,
                [Err(SplitError::BadLength {
                    position: 0,
                    length
                })]
            );
        }
    }

    // Proves patching the producer fields, the base timestamp and the codec keeps the
    // other fields, moves the max timestamp along, and validates after `update_crc`.
    #[test]
    fn patched_fields_validate_after_crc_update() {
        let mut b = build_test_batch(5, 40, 1000, None);
        let before = b.clone();
        b[35..43].copy_from_slice(&1004i64.to_be_bytes());
        set_producer(&mut b, 42, 3, 1000);
        set_base_timestamp(&mut b, 5000);
        set_codec_and_length(&mut b, Codec::Lz4);
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
        update_crc(&mut b);
        let h = validate(&b).unwrap();
        assert_eq!(
            (h.producer_id(), h.producer_epoch(), h.base_sequence()),
            (42, 3, 1000)
        );
        assert_eq!((h.base_timestamp(), h.max_timestamp()), (5000, 5004));
        assert_eq!(h.codec(), Codec::Lz4);
        assert_eq!(
            h.batch_length(),
            BatchHeader::new(&before).unwrap().batch_length()
        );
    }
}
