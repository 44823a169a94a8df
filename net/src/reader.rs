//! `Reader`: a bounded cursor over one request frame's `Bytes`.
//!
//! Every primitive of the Kafka wire format is read here, and every length or
//! count read from the wire is checked against the bytes that are left before
//! anything is sliced or allocated. Byte fields come back as zero-copy `Bytes`
//! slices of the frame. The reader never panics on any input.

use bytes::{Buf, Bytes};
use kafka_protocol::protocol::StrBytes;

/// The longest string Kafka accepts in a request, compact strings included (whose
/// varint length could otherwise claim up to 4 GB): every string fits an i16 length.
pub const STRING_BYTES_MAX: u64 = i16::MAX as u64;

/// Why a request body (or header) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("needed {needed} more bytes, {remaining} left")]
    UnexpectedEnd { needed: u64, remaining: usize },
    #[error("length {length} is negative")]
    NegativeLength { length: i64 },
    #[error("null where the field is not nullable")]
    UnexpectedNull,
    #[error(
        "count {count} of elements of at least {element_bytes_min} bytes exceeds the {remaining} bytes left"
    )]
    CountTooLarge {
        count: u64,
        element_bytes_min: usize,
        remaining: usize,
    },
    #[error("string of {length} bytes is longer than the {length_max} Kafka allows")]
    StringTooLong { length: u64, length_max: u64 },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("varint longer than {bytes_max} bytes")]
    VarintTooLong { bytes_max: usize },
    #[error("tagged field number {tag} is above i32::MAX")]
    TagTooLarge { tag: u32 },
    #[error("tagged field {tag} is not valid in version {version}")]
    TagNotInVersion { tag: u32, version: i16 },
    #[error("tagged field {tag} declared {declared} bytes but its value used {used}")]
    TaggedFieldSize {
        tag: u32,
        declared: usize,
        used: usize,
    },
}

/// A cursor over a frame. Reads consume from the front.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &Bytes {
        &self.buf
    }

    fn need(&self, needed: u64) -> Result<(), ReadError> {
        if needed > self.buf.len() as u64 {
            return Err(ReadError::UnexpectedEnd {
                needed,
                remaining: self.buf.len(),
            });
        }
        Ok(())
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    pub fn i8(&mut self) -> Result<i8, ReadError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }
    /// Kafka booleans: any non-zero byte is true.
    pub fn bool(&mut self) -> Result<bool, ReadError> {
        Ok(self.u8()? != 0)
    }
    pub fn i16(&mut self) -> Result<i16, ReadError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }
    pub fn u16(&mut self) -> Result<u16, ReadError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    pub fn i32(&mut self) -> Result<i32, ReadError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }
    pub fn u32(&mut self) -> Result<u32, ReadError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }
    pub fn i64(&mut self) -> Result<i64, ReadError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }
    pub fn f64(&mut self) -> Result<f64, ReadError> {
        self.need(8)?;
        Ok(self.buf.get_f64())
    }
    pub fn uuid(&mut self) -> Result<[u8; 16], ReadError> {
        self.need(16)?;
        let mut out = [0u8; 16];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// Exactly `len` bytes as a zero-copy slice of the frame.
    pub fn bytes(&mut self, len: usize) -> Result<Bytes, ReadError> {
        self.need(len as u64)?;
        Ok(self.buf.split_to(len))
    }

    /// An unsigned LEB128 varint of at most 5 bytes that fits in a `u32`.
    pub fn unsigned_varint(&mut self) -> Result<u32, ReadError> {
        let value = self.unsigned_varlong_max(5)?;
        u32::try_from(value).map_err(|_| ReadError::VarintTooLong { bytes_max: 5 })
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    pub fn unsigned_varlong(&mut self) -> Result<u64, ReadError> {
        self.unsigned_varlong_max(10)
    }

    fn unsigned_varlong_max(&mut self, bytes_max: usize) -> Result<u64, ReadError> {
        let mut value: u64 = 0;
        for i in 0..bytes_max {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            // The tenth byte of a u64 may only carry its lowest bit.
            if shift == 63 && bits > 1 {
                return Err(ReadError::VarintTooLong { bytes_max });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::VarintTooLong { bytes_max })
    }

    /// A zig-zag encoded signed varint (record fields).
    pub fn varint(&mut self) -> Result<i32, ReadError> {
        let raw = self.unsigned_varint()?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zig-zag encoded signed varlong (record fields).
    pub fn varlong(&mut self) -> Result<i64, ReadError> {
        let raw = self.unsigned_varlong()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A length that may be -1 for null, as in STRING/BYTES/ARRAY, or compact
    /// (unsigned varint N, N = 0 for null, length N - 1) in flexible versions.
    fn length(&mut self, flex: bool, width: LengthWidth) -> Result<Option<u64>, ReadError> {
        let raw: i64 = if flex {
            i64::from(self.unsigned_varint()?) - 1
        } else {
            match width {
                LengthWidth::I16 => i64::from(self.i16()?),
                LengthWidth::I32 => i64::from(self.i32()?),
            }
        };
        match raw {
            -1 => Ok(None),
            length if length < 0 => Err(ReadError::NegativeLength { length }),
            length => Ok(Some(length as u64)),
        }
    }

    fn sized_bytes(&mut self, len: u64) -> Result<Bytes, ReadError> {
        self.need(len)?;
        Ok(self.buf.split_to(len as usize))
    }

    /// STRING (i16 length) or COMPACT_STRING; `None` for null. Longer than
    /// `STRING_BYTES_MAX` is refused, as Kafka does, before the bytes are looked at.
    pub fn nullable_string(&mut self, flex: bool) -> Result<Option<StrBytes>, ReadError> {
        match self.length(flex, LengthWidth::I16)? {
            None => Ok(None),
            Some(length) if length > STRING_BYTES_MAX => Err(ReadError::StringTooLong {
                length,
                length_max: STRING_BYTES_MAX,
            }),
            Some(len) => {
                let raw = self.sized_bytes(len)?;
                StrBytes::from_utf8(raw)
                    .map(Some)
                    .map_err(|_| ReadError::InvalidUtf8)
            }
        }
    }

    /// A non-nullable string.
    pub fn string(&mut self, flex: bool) -> Result<StrBytes, ReadError> {
        self.nullable_string(flex)?.ok_or(ReadError::UnexpectedNull)
    }

    /// BYTES (i32 length) or COMPACT_BYTES as a zero-copy slice; `None` for null.
    pub fn nullable_bytes(&mut self, flex: bool) -> Result<Option<Bytes>, ReadError> {
        match self.length(flex, LengthWidth::I32)? {
            None => Ok(None),
            Some(len) => self.sized_bytes(len).map(Some),
        }
    }

    /// Non-nullable BYTES or COMPACT_BYTES.
    pub fn bytes_field(&mut self, flex: bool) -> Result<Bytes, ReadError> {
        self.nullable_bytes(flex)?.ok_or(ReadError::UnexpectedNull)
    }

    /// An ARRAY (i32 count) or COMPACT_ARRAY count, `None` for null. The count is
    /// rejected unless `count * element_bytes_min` bytes are left, so the caller
    /// may allocate for it. Elements are taken to be at least one byte.
    pub fn array_len(
        &mut self,
        flex: bool,
        element_bytes_min: usize,
    ) -> Result<Option<usize>, ReadError> {
        let Some(count) = self.length(flex, LengthWidth::I32)? else {
            return Ok(None);
        };
        let element_bytes_min = element_bytes_min.max(1);
        let remaining = self.remaining();
        if count.saturating_mul(element_bytes_min as u64) > remaining as u64 {
            return Err(ReadError::CountTooLarge {
                count,
                element_bytes_min,
                remaining,
            });
        }
        Ok(Some(count as usize))
    }

    /// The tagged-field section of a flexible struct: calls `known(tag, value)`
    /// for every field, where `value` reads exactly that field's bytes.
    /// `known` returns `Ok(false)` for tags it does not know; those are kept
    /// in `unknown` as zero-copy slices.
    pub fn tagged_fields(
        &mut self,
        unknown: &mut std::collections::BTreeMap<i32, Bytes>,
        mut known: impl FnMut(u32, &mut Reader) -> Result<bool, ReadError>,
    ) -> Result<(), ReadError> {
        let count = self.unsigned_varint()?;
        // A tagged field is at least two bytes (tag and size).
        if u64::from(count) * 2 > self.remaining() as u64 {
            return Err(ReadError::CountTooLarge {
                count: u64::from(count),
                element_bytes_min: 2,
                remaining: self.remaining(),
            });
        }
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            let value = self.sized_bytes(u64::from(size))?;
            let mut sub = Reader::new(value.clone());
            if known(tag, &mut sub)? {
                if sub.remaining() != 0 {
                    return Err(ReadError::TaggedFieldSize {
                        tag,
                        declared: value.len(),
                        used: value.len() - sub.remaining(),
                    });
                }
            } else {
                // The map's keys are i32; Kafka never assigns a tag above i32::MAX.
                let key = i32::try_from(tag).map_err(|_| ReadError::TagTooLarge { tag })?;
                unknown.insert(key, value);
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum LengthWidth {
    I16,
    I32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn fixed_width_reads_fail_at_end() {
        // Proves each fixed-width read reports UnexpectedEnd instead of panicking on short input.
        let mut r = reader(&[0, 1, 0]);
        assert_eq!(r.i16(), Ok(1));
        assert!(matches!(
            r.i16(),
            Err(ReadError::UnexpectedEnd {
                needed: 2,
                remaining: 1
            })
        ));
        assert!(matches!(
            reader(&[]).i64(),
            Err(ReadError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            reader(&[1; 15]).uuid(),
            Err(ReadError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn varints_decode_known_values_and_reject_overlong() {
        // Proves zig-zag and unsigned varints match the protocol's examples and bound their length.
        assert_eq!(reader(&[0x96, 0x01]).unsigned_varint(), Ok(150));
        assert_eq!(reader(&[0x01]).varint(), Ok(-1));
        assert_eq!(reader(&[0x02]).varint(), Ok(1));
        assert_eq!(reader(&[0x03]).varlong(), Ok(-2));
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unsigned_varint(),
            Ok(u32::MAX)
        );
        assert!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0x1f])
                .unsigned_varint()
                .is_err()
        );
        assert!(reader(&[0x80; 6]).unsigned_varint().is_err());
        assert!(reader(&[0xff; 11]).unsigned_varlong().is_err());
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .unsigned_varlong(),
            Ok(u64::MAX)
        );
        assert_eq!(
            reader(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).varlong(),
            Ok(i64::MAX)
        );
    }

    #[test]
    fn strings_and_bytes_handle_null_and_compact_forms() {
        // Proves the four string/bytes encodings, null markers and UTF-8 validation.
        assert_eq!(
            reader(&[0, 2, b'h', b'i']).string(false).unwrap().as_str(),
            "hi"
        );
        assert_eq!(
            reader(&[3, b'h', b'i']).string(true).unwrap().as_str(),
            "hi"
        );
        assert_eq!(reader(&[0xff, 0xff]).nullable_string(false), Ok(None));
        assert_eq!(reader(&[0]).nullable_string(true), Ok(None));
        assert_eq!(
            reader(&[0xff, 0xff]).string(false),
            Err(ReadError::UnexpectedNull)
        );
        assert_eq!(
            reader(&[0xff, 0xfe]).string(false),
            Err(ReadError::NegativeLength { length: -2 })
        );
        assert_eq!(
            reader(&[0, 1, 0xff]).string(false),
            Err(ReadError::InvalidUtf8)
        );
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff]).nullable_bytes(false),
            Ok(None)
        );
        let frame = Bytes::from_static(&[0, 0, 0, 2, 7, 8, 9]);
        let mut r = Reader::new(frame.clone());
        let b = r.bytes_field(false).unwrap();
        assert_eq!(&b[..], &[7, 8]);
        // Zero-copy: the slice points into the frame's own memory.
        assert_eq!(b.as_ptr(), frame[4..].as_ptr());
        assert!(matches!(
            reader(&[0, 0, 0, 9, 1]).bytes_field(false),
            Err(ReadError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn strings_longer_than_i16_max_are_refused_compact_ones_too() {
        // Proves a compact string of 32,768 bytes is refused with StringTooLong even though
        // every byte is present, while 32,767 bytes (the most an i16 length can say) decode.
        let mut ok = vec![0x80, 0x80, 0x02]; // varint 32,768: length 32,767
        ok.extend(std::iter::repeat_n(b'a', 32_767));
        assert_eq!(reader(&ok).string(true).map(|s| s.len()), Ok(32_767));
        let mut long = vec![0x81, 0x80, 0x02]; // varint 32,769: length 32,768
        long.extend(std::iter::repeat_n(b'a', 32_768));
        assert_eq!(
            reader(&long).string(true),
            Err(ReadError::StringTooLong {
                length: 32_768,
                length_max: 32_767
            })
        );
        assert_eq!(
            reader(&long).nullable_string(true),
            Err(ReadError::StringTooLong {
                length: 32_768,
                length_max: 32_767
            })
        );
        // A claim far beyond the bytes left is refused for its length, not read.
        assert!(matches!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0x0f]).string(true),
            Err(ReadError::StringTooLong { .. })
        ));
    }

    #[test]
    fn array_counts_are_bounded_by_remaining_bytes() {
        // Proves a huge array count fails before any allocation could be sized from it.
        let mut r = reader(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(matches!(
            r.array_len(false, 4),
            Err(ReadError::CountTooLarge {
                count: 2147483647,
                ..
            })
        ));
        assert_eq!(
            reader(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).array_len(false, 4),
            Ok(Some(2))
        );
        assert!(
            reader(&[0, 0, 0, 2, 0, 0, 0, 0])
                .array_len(false, 4)
                .is_err()
        );
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff]).array_len(false, 4),
            Ok(None)
        );
        assert_eq!(reader(&[0]).array_len(true, 4), Ok(None));
        // Zero-size elements still cost one byte each.
        assert!(reader(&[0, 0, 0, 5]).array_len(false, 0).is_err());
    }

    #[test]
    fn tagged_fields_keep_unknown_and_check_known_sizes() {
        // Proves unknown tags are kept as slices and a known tag must consume exactly its size.
        let mut unknown = std::collections::BTreeMap::new();
        let mut r = reader(&[2, 0, 1, 9, 5, 2, 1, 2]);
        let mut seen = None;
        r.tagged_fields(&mut unknown, |tag, v| {
            if tag == 0 {
                seen = Some(v.i8()?);
                return Ok(true);
            }
            Ok(false)
        })
        .unwrap();
        assert_eq!(seen, Some(9));
        assert_eq!(unknown.get(&5).map(|b| &b[..]), Some(&[1u8, 2][..]));
        let mut r = reader(&[1, 0, 2, 9, 9]);
        let err = r
            .tagged_fields(&mut unknown, |_, v| v.i8().map(|_| true))
            .unwrap_err();
        assert!(matches!(
            err,
            ReadError::TaggedFieldSize {
                tag: 0,
                declared: 2,
                used: 1
            }
        ));
        let mut r = reader(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
        assert_eq!(
            r.tagged_fields(&mut unknown, |_, _| Ok(false)),
            Err(ReadError::TagTooLarge { tag: u32::MAX })
        );
        assert!(
            reader(&[0x7f])
                .tagged_fields(&mut unknown, |_, _| Ok(false))
                .is_err()
        );
    }
}
