//! `Wire`: how each field type of a Kafka request is read, and `wire_codec!`,
//! which turns a schema table (field, versions, tag) into a bounded decoder for
//! one of `kafka-protocol`'s request structs.
//!
//! The field's Rust type picks its encoding (`StrBytes` is STRING, `Option<Bytes>`
//! is nullable BYTES, `Vec<T>` is ARRAY); whether the version is flexible picks
//! the compact forms. Fields absent from a version keep the struct's `Default`
//! value, which is what Kafka specifies for them. Every array count is checked
//! against the bytes left times the element's minimum encoded size, so nothing
//! is allocated from an untrusted count.

use bytes::Bytes;
use kafka_protocol::messages::{BrokerId, GroupId, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::reader::{ReadError, Reader};

/// The decoding context shared by every field of one request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx {
    pub version: i16,
    /// Flexible versions (KIP-482) use compact lengths and tagged fields.
    pub flex: bool,
}

/// A type that can be read from a request body.
pub(crate) trait Wire: Sized {
    fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError>;
    /// A lower bound on the encoded size, used to bound array counts.
    fn bytes_min(cx: Cx) -> usize;
}

/// A type whose wire form has a null marker: strings, bytes and arrays use
/// length -1 (compact: 0), structs an i8 presence marker of -1.
pub(crate) trait WireNullable: Wire {
    fn read_nullable(r: &mut Reader, cx: Cx) -> Result<Option<Self>, ReadError>;
    /// The encoded size of null.
    fn null_bytes(cx: Cx) -> usize;
}

impl<T: WireNullable> Wire for Option<T> {
    fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError> {
        T::read_nullable(r, cx)
    }
    fn bytes_min(cx: Cx) -> usize {
        T::bytes_min(cx).min(T::null_bytes(cx))
    }
}

macro_rules! wire_fixed {
    ($($ty:ty => $read:ident, $size:literal;)*) => {$(
        impl Wire for $ty {
            fn read(r: &mut Reader, _cx: Cx) -> Result<Self, ReadError> {
                r.$read()
            }
            fn bytes_min(_cx: Cx) -> usize {
                $size
            }
        }
    )*};
}

wire_fixed! {
    bool => bool, 1;
    i8 => i8, 1;
    i16 => i16, 2;
    u16 => u16, 2;
    i32 => i32, 4;
    u32 => u32, 4;
    i64 => i64, 8;
    f64 => f64, 8;
}

impl Wire for uuid::Uuid {
    fn read(r: &mut Reader, _cx: Cx) -> Result<Self, ReadError> {
        r.uuid().map(uuid::Uuid::from_bytes)
    }
    fn bytes_min(_cx: Cx) -> usize {
        16
    }
}

impl Wire for StrBytes {
    fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError> {
        r.string(cx.flex)
    }
    fn bytes_min(cx: Cx) -> usize {
        if cx.flex { 1 } else { 2 }
    }
}

impl WireNullable for StrBytes {
    fn read_nullable(r: &mut Reader, cx: Cx) -> Result<Option<Self>, ReadError> {
        r.nullable_string(cx.flex)
    }
    fn null_bytes(cx: Cx) -> usize {
        Self::bytes_min(cx)
    }
}

impl Wire for Bytes {
    fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError> {
        r.bytes_field(cx.flex)
    }
    fn bytes_min(cx: Cx) -> usize {
        if cx.flex { 1 } else { 4 }
    }
}

impl WireNullable for Bytes {
    fn read_nullable(r: &mut Reader, cx: Cx) -> Result<Option<Self>, ReadError> {
        r.nullable_bytes(cx.flex)
    }
    fn null_bytes(cx: Cx) -> usize {
        Self::bytes_min(cx)
    }
}

/// Arrays grow as elements are actually decoded; the first reservation is
/// capped so memory follows the bytes read, not the count claimed.
const ARRAY_RESERVE_MAX: usize = 1024;

impl<T: Wire> Wire for Vec<T> {
    fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError> {
        Self::read_nullable(r, cx)?.ok_or(ReadError::UnexpectedNull)
    }
    fn bytes_min(cx: Cx) -> usize {
        if cx.flex { 1 } else { 4 }
    }
}

impl<T: Wire> WireNullable for Vec<T> {
    fn read_nullable(r: &mut Reader, cx: Cx) -> Result<Option<Self>, ReadError> {
        let Some(count) = r.array_len(cx.flex, T::bytes_min(cx))? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(count.min(ARRAY_RESERVE_MAX));
        for _ in 0..count {
            out.push(T::read(r, cx)?);
        }
        Ok(Some(out))
    }
    fn null_bytes(cx: Cx) -> usize {
        Self::bytes_min(cx)
    }
}

macro_rules! wire_newtype {
    ($($ty:ident($inner:ty);)*) => {$(
        impl Wire for $ty {
            fn read(r: &mut Reader, cx: Cx) -> Result<Self, ReadError> {
                <$inner as Wire>::read(r, cx).map($ty)
            }
            fn bytes_min(cx: Cx) -> usize {
                <$inner as Wire>::bytes_min(cx)
            }
        }
    )*};
}

wire_newtype! {
    BrokerId(i32);
    ProducerId(i64);
    GroupId(StrBytes);
    TopicName(StrBytes);
    TransactionalId(StrBytes);
}

macro_rules! wire_nullable_newtype {
    ($($ty:ident;)*) => {$(
        impl WireNullable for $ty {
            fn read_nullable(r: &mut Reader, cx: Cx) -> Result<Option<Self>, ReadError> {
                Ok(StrBytes::read_nullable(r, cx)?.map($ty))
            }
            fn null_bytes(cx: Cx) -> usize {
                StrBytes::null_bytes(cx)
            }
        }
    )*};
}

wire_nullable_newtype! {
    GroupId;
    TopicName;
    TransactionalId;
}

/// Type inference helper: the minimum size of the field `pick` selects.
pub(crate) fn field_bytes_min<S, T: Wire>(_pick: fn(&S) -> &T, cx: Cx) -> usize {
    T::bytes_min(cx)
}

/// The tagged-field section of one struct in flexible versions.
pub(crate) trait TaggedFields {
    fn read_tagged(&mut self, r: &mut Reader, cx: Cx) -> Result<(), ReadError>;
}

/// Generates `Wire`, `WireNullable` and `TaggedFields` for one `kafka-protocol` struct
/// from its wire layout: its fields in wire order with the versions each is present in,
/// then its tagged fields with tag number and versions (or `never_flexible` for messages
/// without flexible versions). A field written `name as Type` exists only in versions
/// Kafka 4.0 removed (so not in the struct): it is read as `Type` and dropped. The
/// tables themselves are in `schema.rs`, which hands each one to this macro and, under
/// test, to `random::gen_struct!`.
macro_rules! wire_codec {
    ($module:ident :: $ty:ident [$lo:literal ..= $hi:literal] {
        $( $field:ident $(as $skip:ty)? : $flo:literal ..= $fhi:literal ),* $(,)?
    } tagged {
        $( $tfield:ident : $tag:literal @ $tlo:literal ..= $thi:literal ),* $(,)?
    }) => {
        impl $crate::wire::TaggedFields for kafka_protocol::messages::$module::$ty {
            fn read_tagged(
                &mut self,
                r: &mut $crate::reader::Reader,
                cx: $crate::wire::Cx,
            ) -> Result<(), $crate::reader::ReadError> {
                let _ = cx;
                r.tagged_fields(&mut self.unknown_tagged_fields, |tag, _value| match tag {
                    $(
                        $tag => {
                            if !($tlo..=$thi).contains(&cx.version) {
                                return Err($crate::reader::ReadError::TagNotInVersion {
                                    tag,
                                    version: cx.version,
                                });
                            }
                            self.$tfield = $crate::wire::Wire::read(_value, cx)?;
                            Ok(true)
                        }
                    )*
                    _ => Ok(false),
                })
            }
        }
        $crate::wire::wire_codec!(@fields $module::$ty { $( $field $(as $skip)?: $flo..=$fhi, )* });
    };
    ($module:ident :: $ty:ident [$lo:literal ..= $hi:literal] {
        $( $field:ident $(as $skip:ty)? : $flo:literal ..= $fhi:literal ),* $(,)?
    } never_flexible) => {
        impl $crate::wire::TaggedFields for kafka_protocol::messages::$module::$ty {
            fn read_tagged(
                &mut self,
                _r: &mut $crate::reader::Reader,
                _cx: $crate::wire::Cx,
            ) -> Result<(), $crate::reader::ReadError> {
                Ok(())
            }
        }
        $crate::wire::wire_codec!(@fields $module::$ty { $( $field $(as $skip)?: $flo..=$fhi, )* });
    };
    // A field the struct has is read into it; `name as Type` is a field only old versions
    // carry, which the struct (Kafka 4.0's) lacks: it is read as `Type` and dropped.
    (@read $s:ident $r:ident $cx:ident $field:ident) => {
        $s.$field = $crate::wire::Wire::read($r, $cx)?;
    };
    (@read $s:ident $r:ident $cx:ident $field:ident as $skip:ty) => {
        let _: $skip = $crate::wire::Wire::read($r, $cx)?;
    };
    (@bytes_min $cx:ident $field:ident) => {
        $crate::wire::field_bytes_min(|s: &Self| &s.$field, $cx)
    };
    (@bytes_min $cx:ident $field:ident as $skip:ty) => {
        <$skip as $crate::wire::Wire>::bytes_min($cx)
    };
    (@fields $module:ident :: $ty:ident { $( $field:ident $(as $skip:ty)? : $flo:literal ..= $fhi:literal, )* }) => {
        impl $crate::wire::Wire for kafka_protocol::messages::$module::$ty {
            fn read(
                r: &mut $crate::reader::Reader,
                cx: $crate::wire::Cx,
            ) -> Result<Self, $crate::reader::ReadError> {
                let mut s = Self::default();
                $(
                    if ($flo..=$fhi).contains(&cx.version) {
                        $crate::wire::wire_codec!(@read s r cx $field $(as $skip)?);
                    }
                )*
                if cx.flex {
                    $crate::wire::TaggedFields::read_tagged(&mut s, r, cx)?;
                }
                Ok(s)
            }

            fn bytes_min(cx: $crate::wire::Cx) -> usize {
                // A struct without fields never adds to `n`.
                #[allow(unused_mut)]
                let mut n = usize::from(cx.flex);
                $(
                    if ($flo..=$fhi).contains(&cx.version) {
                        n += $crate::wire::wire_codec!(@bytes_min cx $field $(as $skip)?);
                    }
                )*
                n
            }
        }

        impl $crate::wire::WireNullable for kafka_protocol::messages::$module::$ty {
            fn read_nullable(
                r: &mut $crate::reader::Reader,
                cx: $crate::wire::Cx,
            ) -> Result<Option<Self>, $crate::reader::ReadError> {
                if r.i8()? < 0 {
                    return Ok(None);
                }
                $crate::wire::Wire::read(r, cx).map(Some)
            }
            fn null_bytes(_cx: $crate::wire::Cx) -> usize {
                1
            }
        }
    };
}

pub(crate) use wire_codec;
