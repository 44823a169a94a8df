//! Random request generation, for tests only (this crate's, and other crates' through
//! the `testing` feature and `random_request_body`). `Gen` builds a random value of a
//! `kafka-protocol` type for one version, setting only the fields that version
//! carries; the property tests encode it with `kafka-protocol` and decode it
//! with ours. Driven by a seeded SplitMix64 so a failing seed replays.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::{BrokerId, GroupId, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::wire::Cx;

/// A small seeded PRNG (SplitMix64).
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability 1/n.
    pub fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    /// Integers biased towards edge values, which are where encodings break.
    pub fn int(&mut self, min: i64, max: i64) -> i64 {
        match self.below(6) {
            0 => min,
            1 => max,
            2 => 0.clamp(min, max),
            3 => (-1).clamp(min, max),
            _ => {
                let span = (max as i128 - min as i128 + 1) as u128;
                (min as i128 + (self.next_u64() as u128 % span) as i128) as i64
            }
        }
    }
    pub fn unknown_tagged_fields(&mut self) -> BTreeMap<i32, Bytes> {
        let mut out = BTreeMap::new();
        if self.chance(3) {
            for _ in 0..self.below(3) {
                // Tags far above any Kafka assigns, so they stay unknown.
                let tag = 1000 + self.below(100) as i32;
                out.insert(
                    tag,
                    Bytes::generate(
                        self,
                        Cx {
                            version: 0,
                            flex: true,
                        },
                    ),
                );
            }
        }
        out
    }
}

/// A random `T` for `version` that kafka-protocol encodes: kafka-protocol refuses null
/// where a version does not allow it, so values are drawn again, up to 200 times.
pub(crate) fn encodable<T: Gen + kafka_protocol::protocol::Encodable>(
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    seed: u64,
) -> Option<T> {
    let mut g = Rng::new(seed);
    let cx = Cx {
        version,
        flex: api_key.request_header_version(version) >= 2,
    };
    (0..200).find_map(|_| {
        let value = T::generate(&mut g, cx);
        let mut buf = bytes::BytesMut::new();
        value.encode(&mut buf, version).ok().map(|()| value)
    })
}

/// A random value for one version.
pub(crate) trait Gen {
    fn generate(g: &mut Rng, cx: Cx) -> Self;
}

macro_rules! gen_int {
    ($($ty:ty),*) => {$(
        impl Gen for $ty {
            fn generate(g: &mut Rng, _cx: Cx) -> Self {
                g.int(<$ty>::MIN as i64, <$ty>::MAX as i64) as $ty
            }
        }
    )*};
}
gen_int!(i8, i16, i32, i64, u16);

impl Gen for u32 {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        g.next_u64() as u32
    }
}

impl Gen for f64 {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        // Finite values only: NaN never compares equal.
        g.int(-1_000_000, 1_000_000) as f64 / 8.0
    }
}

impl Gen for bool {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        g.chance(2)
    }
}

impl Gen for uuid::Uuid {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        if g.chance(4) {
            return uuid::Uuid::nil();
        }
        uuid::Uuid::from_u64_pair(g.next_u64(), g.next_u64())
    }
}

impl Gen for StrBytes {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        const ALPHABET: [&str; 8] = ["a", "Z", "-", "_", ".", "7", "é", "日"];
        let len = g.below(9);
        let text: String = (0..len).map(|_| ALPHABET[g.below(8) as usize]).collect();
        StrBytes::from_string(text)
    }
}

impl Gen for Bytes {
    fn generate(g: &mut Rng, _cx: Cx) -> Self {
        let len = g.below(20) as usize;
        Bytes::from((0..len).map(|_| g.next_u64() as u8).collect::<Vec<u8>>())
    }
}

impl<T: Gen> Gen for Vec<T> {
    fn generate(g: &mut Rng, cx: Cx) -> Self {
        let len = g.below(4);
        (0..len).map(|_| T::generate(g, cx)).collect()
    }
}

impl<T: Gen> Gen for Option<T> {
    fn generate(g: &mut Rng, cx: Cx) -> Self {
        if g.chance(6) {
            None
        } else {
            Some(T::generate(g, cx))
        }
    }
}

macro_rules! gen_newtype {
    ($($ty:ident($inner:ty);)*) => {$(
        impl Gen for $ty {
            fn generate(g: &mut Rng, cx: Cx) -> Self {
                $ty(<$inner>::generate(g, cx))
            }
        }
    )*};
}

gen_newtype! {
    BrokerId(i32);
    ProducerId(i64);
    GroupId(StrBytes);
    TopicName(StrBytes);
    TransactionalId(StrBytes);
}

/// Generates `Gen` for one `kafka-protocol` struct from the same table `wire::wire_codec!`
/// reads (see `schema.rs`): a field gets a random value in the versions that carry it,
/// a tagged field in half the versions that allow it, and flexible versions also get
/// unknown tagged fields. A field written `name as Type` is not in the struct and stays
/// unset.
macro_rules! gen_struct {
    ($module:ident :: $ty:ident [$lo:literal ..= $hi:literal] {
        $( $field:ident $(as $skip:ty)? : $flo:literal ..= $fhi:literal ),* $(,)?
    } tagged {
        $( $tfield:ident : $tag:literal @ $tlo:literal ..= $thi:literal ),* $(,)?
    }) => {
        impl $crate::random::Gen for kafka_protocol::messages::$module::$ty {
            fn generate(g: &mut $crate::random::Rng, cx: $crate::wire::Cx) -> Self {
                let mut s = Self::default();
                $(
                    if ($flo..=$fhi).contains(&cx.version) {
                        $crate::random::gen_struct!(@generate s g cx $field $(as $skip)?);
                    }
                )*
                if cx.flex {
                    $(
                        if ($tlo..=$thi).contains(&cx.version) && g.chance(2) {
                            s.$tfield = $crate::random::Gen::generate(g, cx);
                        }
                    )*
                    s.unknown_tagged_fields = g.unknown_tagged_fields();
                }
                s
            }
        }
    };
    ($module:ident :: $ty:ident [$lo:literal ..= $hi:literal] {
        $( $field:ident $(as $skip:ty)? : $flo:literal ..= $fhi:literal ),* $(,)?
    } never_flexible) => {
        impl $crate::random::Gen for kafka_protocol::messages::$module::$ty {
            fn generate(g: &mut $crate::random::Rng, cx: $crate::wire::Cx) -> Self {
                let mut s = Self::default();
                $(
                    if ($flo..=$fhi).contains(&cx.version) {
                        $crate::random::gen_struct!(@generate s g cx $field $(as $skip)?);
                    }
                )*
                s
            }
        }
    };
    (@generate $s:ident $g:ident $cx:ident $field:ident) => {
        $s.$field = $crate::random::Gen::generate($g, $cx);
    };
    (@generate $s:ident $g:ident $cx:ident $field:ident as $skip:ty) => {};
}

pub(crate) use gen_struct;
