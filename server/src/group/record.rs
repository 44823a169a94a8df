//! The keys and values of `__consumer_offsets` records, in Kafka's own schemas so Kafka
//! tooling can read the topic: offset commit key version 1 (group, topic, partition) with
//! value version 3 (offset, leader epoch, metadata, commit timestamp), group metadata key
//! version 2 (group) with value version 3 (protocol type, generation, protocol, leader,
//! current state timestamp, members). A null value is a tombstone. Decoding accepts every
//! version Kafka wrote (offset values 0-4, group values 0-4; versions above 4 are read as
//! 4, as KIP-915 asks) and checks every length against the bytes left before slicing or
//! allocating. Pure functions; used by the coordinator host when it writes and rebuilds.

use bytes::Bytes;

/// Offset commit key version Kafka writes (0 and 1 share one layout).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Group metadata key version.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Offset commit value version written (Kafka's choice when no expire timestamp is set).
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Group metadata value version written.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// The first flexible (compact, tagged fields) value version.
const FLEXIBLE_VERSION: i16 = 4;

/// A `__consumer_offsets` record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. } | RecordKey::GroupMetadata { group } => group,
        }
    }
}

/// OffsetCommitValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (and in versions before 3).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only version 1 carries it; -1 otherwise.
    pub expire_timestamp_ms: i64,
}

/// GroupMetadataValue.MemberMetadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (and in versions before 2).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

/// Why stored key or value bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordCodecError {
    #[error("bytes end at {position} while reading {what}")]
    Truncated { what: &'static str, position: usize },
    #[error("{what} length {len} is invalid at {position}")]
    BadLength {
        what: &'static str,
        len: i64,
        position: usize,
    },
    #[error("{what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown {what} version {version}")]
    UnknownValueVersion { what: &'static str, version: i16 },
    #[error("{left} bytes follow the {what}")]
    TrailingBytes { what: &'static str, left: usize },
}

// ---- writing ----

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A non-compact string. Strings we write come from requests whose decoder bounded them
/// to i16 lengths, so the cast cannot truncate; the assert guards that invariant.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("strings from requests fit i16");
    put_i16(out, len);
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_i16(out, -1),
        Some(s) => put_str(out, s),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = i32::try_from(b.len()).expect("member metadata bounded far below i32");
    put_i32(out, len);
    out.extend_from_slice(b);
}

pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match key {
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            put_i16(&mut out, OFFSET_COMMIT_KEY_VERSION);
            put_str(&mut out, group);
            put_str(&mut out, topic);
            put_i32(&mut out, *partition);
        }
        RecordKey::GroupMetadata { group } => {
            put_i16(&mut out, GROUP_METADATA_KEY_VERSION);
            put_str(&mut out, group);
        }
    }
    out
}

/// Writes value version 3.
pub fn encode_offset_commit_value(v: &OffsetCommitValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + v.metadata.len());
    put_i16(&mut out, OFFSET_COMMIT_VALUE_VERSION);
    put_i64(&mut out, v.offset);
    put_i32(&mut out, v.leader_epoch);
    put_str(&mut out, &v.metadata);
    put_i64(&mut out, v.commit_timestamp_ms);
    out
}

/// Writes value version 3.
pub fn encode_group_metadata_value(v: &GroupMetadataValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, GROUP_METADATA_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    put_i32(&mut out, v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    put_i64(&mut out, v.current_state_timestamp_ms);
    put_i32(
        &mut out,
        i32::try_from(v.members.len()).expect("group.max.size bounds members"),
    );
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_i32(&mut out, m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

// ---- reading ----

/// A bounded cursor over one key or value.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    /// Compact lengths and tagged fields (value version 4+).
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            at: 0,
            flexible: false,
        }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordCodecError> {
        if n > self.left() {
            return Err(RecordCodecError::Truncated {
                what,
                position: self.at,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, RecordCodecError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, RecordCodecError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, RecordCodecError> {
        let b = self.take(8, what)?;
        Ok(i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// An unsigned varint of at most 5 bytes (compact lengths, tag counts).
    fn uvarint(&mut self, what: &'static str) -> Result<u32, RecordCodecError> {
        let start = self.at;
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = self.take(1, what)?[0];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| RecordCodecError::BadLength {
                    what,
                    len: v as i64,
                    position: start,
                });
            }
        }
        Err(RecordCodecError::BadLength {
            what,
            len: -1,
            position: start,
        })
    }

    /// A length field: i16 (strings) or i32 (bytes, arrays) classic, uvarint-1 compact.
    /// `None` is null. The length is checked against the bytes left.
    fn length(
        &mut self,
        wide: bool,
        what: &'static str,
        unit_bytes_min: usize,
    ) -> Result<Option<usize>, RecordCodecError> {
        let position = self.at;
        let len: i64 = if self.flexible {
            i64::from(self.uvarint(what)?) - 1
        } else if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        if len == -1 {
            return Ok(None);
        }
        let bad = RecordCodecError::BadLength {
            what,
            len,
            position,
        };
        let n = usize::try_from(len).map_err(|_| bad.clone())?;
        // Strings are at most i16::MAX bytes in every version, as Kafka's readers check:
        // a longer compact one would be loaded and then break `put_str` when the group
        // is written again.
        if !wide && n > i16::MAX as usize {
            return Err(bad);
        }
        if n.saturating_mul(unit_bytes_min) > self.left() {
            return Err(bad);
        }
        Ok(Some(n))
    }

    fn nullable_str(&mut self, what: &'static str) -> Result<Option<String>, RecordCodecError> {
        let Some(n) = self.length(false, what, 1)? else {
            return Ok(None);
        };
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(|s| Some(s.to_string()))
            .map_err(|_| RecordCodecError::NotUtf8 { what })
    }

    fn str(&mut self, what: &'static str) -> Result<String, RecordCodecError> {
        let position = self.at;
        self.nullable_str(what)?.ok_or(RecordCodecError::BadLength {
            what,
            len: -1,
            position,
        })
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordCodecError> {
        let position = self.at;
        let n = self
            .length(true, what, 1)?
            .ok_or(RecordCodecError::BadLength {
                what,
                len: -1,
                position,
            })?;
        Ok(Bytes::copy_from_slice(self.take(n, what)?))
    }

    /// Skips the tagged fields that end a flexible struct.
    fn tagged_fields(&mut self) -> Result<(), RecordCodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            self.take(size as usize, "tagged field")?;
        }
        Ok(())
    }

    fn end(&self, what: &'static str) -> Result<(), RecordCodecError> {
        match self.left() {
            0 => Ok(()),
            left => Err(RecordCodecError::TrailingBytes { what, left }),
        }
    }
}

pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordCodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("key version")?;
    let key = match version {
        0 | 1 => RecordKey::OffsetCommit {
            group: r.str("group")?,
            topic: r.str("topic")?,
            partition: r.i32("partition")?,
        },
        2 => RecordKey::GroupMetadata {
            group: r.str("group")?,
        },
        v => return Err(RecordCodecError::UnknownKeyVersion(v)),
    };
    r.end("key")?;
    Ok(key)
}

pub fn decode_offset_commit_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordCodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("offset commit value version")?;
    if version < 0 {
        return Err(RecordCodecError::UnknownValueVersion {
            what: "offset commit value",
            version,
        });
    }
    r.flexible = version >= FLEXIBLE_VERSION;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = r.str("metadata")?;
    let commit_timestamp_ms = r.i64("commit timestamp")?;
    let expire_timestamp_ms = if version == 1 {
        r.i64("expire timestamp")?
    } else {
        -1
    };
    r.tagged_fields()?;
    r.end("offset commit value")?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

/// Fewest bytes one member takes in any version (version 4: four one-byte compact
/// strings, two timeouts, two one-byte compact byte fields and an empty tag list).
/// Bounds the member count by the bytes left before allocating.
const MEMBER_BYTES_MIN: usize = 15;

pub fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordCodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("group metadata value version")?;
    if version < 0 {
        return Err(RecordCodecError::UnknownValueVersion {
            what: "group metadata value",
            version,
        });
    }
    r.flexible = version >= FLEXIBLE_VERSION;
    let protocol_type = r.str("protocol type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_str("protocol")?;
    let leader = r.nullable_str("leader")?;
    let current_state_timestamp_ms = if version >= 2 {
        r.i64("current state timestamp")?
    } else {
        -1
    };
    let position = r.at;
    let count =
        r.length(true, "members", MEMBER_BYTES_MIN)?
            .ok_or(RecordCodecError::BadLength {
                what: "members",
                len: -1,
                position,
            })?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.str("member id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_str("group instance id")?
        } else {
            None
        };
        let client_id = r.str("client id")?;
        let client_host = r.str("client host")?;
        let session_first = version == 0;
        let (rebalance_timeout_ms, session_timeout_ms) = if session_first {
            let s = r.i32("session timeout")?;
            (s, s)
        } else {
            let rt = r.i32("rebalance timeout")?;
            (rt, r.i32("session timeout")?)
        };
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    r.end("group metadata value")?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::{LargestAllocation, largest_allocation_during};

    fn group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp_ms: 1_700_000_000_000,
            members: vec![
                MemberMetadata {
                    member_id: "m-1".into(),
                    group_instance_id: Some("static-1".into()),
                    client_id: "rdkafka".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"\x00\x01sub"),
                    assignment: Bytes::from_static(b"\x00\x01assign"),
                },
                MemberMetadata {
                    member_id: "m-2".into(),
                    group_instance_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    // Proves keys and both values survive encode then decode unchanged, and that the
    // bytes follow Kafka's layouts exactly (checked field by field for the offset key
    // and value, which Kafka tooling reads most).
    #[test]
    fn round_trips_in_kafka_layout() {
        let k = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let bytes = encode_key(&k);
        assert_eq!(bytes, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(decode_key(&bytes).unwrap(), k);
        let gk = RecordKey::GroupMetadata {
            group: "grp".into(),
        };
        assert_eq!(encode_key(&gk), [0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(decode_key(&encode_key(&gk)).unwrap(), gk);

        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "meta".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: -1,
        };
        let bytes = encode_offset_commit_value(&v);
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&5i32.to_be_bytes());
        want.extend_from_slice(&[0, 4, b'm', b'e', b't', b'a']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(bytes, want);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), v);

        let g = group_value();
        assert_eq!(
            decode_group_metadata_value(&encode_group_metadata_value(&g)).unwrap(),
            g
        );
        let empty = GroupMetadataValue {
            protocol: None,
            leader: None,
            members: Vec::new(),
            ..group_value()
        };
        assert_eq!(
            decode_group_metadata_value(&encode_group_metadata_value(&empty)).unwrap(),
            empty
        );
    }

    // Proves older and flexible versions Kafka wrote are read: offset value v1 with its
    // expire timestamp, v0 without leader epoch, and v4 with compact strings and a
    // tagged field; group value v4 with compact fields.
    #[test]
    fn reads_other_versions() {
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&100i64.to_be_bytes());
        v1.extend_from_slice(&200i64.to_be_bytes());
        let d = decode_offset_commit_value(&v1).unwrap();
        assert_eq!(
            (d.offset, d.leader_epoch, d.expire_timestamp_ms),
            (9, -1, 200)
        );
        assert_eq!(d.commit_timestamp_ms, 100);

        let mut v0 = vec![0, 0];
        v0.extend_from_slice(&9i64.to_be_bytes());
        v0.extend_from_slice(&[0, 1, b'x']);
        v0.extend_from_slice(&100i64.to_be_bytes());
        assert_eq!(decode_offset_commit_value(&v0).unwrap().metadata, "x");

        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&9i64.to_be_bytes());
        v4.extend_from_slice(&7i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'a', b'b']); // compact string "ab"
        v4.extend_from_slice(&100i64.to_be_bytes());
        v4.extend_from_slice(&[1, 0, 2, 0xaa, 0xbb]); // one tagged field of 2 bytes
        let d = decode_offset_commit_value(&v4).unwrap();
        assert_eq!(
            (d.offset, d.leader_epoch, d.metadata.as_str()),
            (9, 7, "ab")
        );

        let mut g4 = vec![0, 4];
        g4.extend_from_slice(&[2, b'c']); // protocol type "c"
        g4.extend_from_slice(&3i32.to_be_bytes());
        g4.extend_from_slice(&[0, 0]); // null protocol, null leader
        g4.extend_from_slice(&(-1i64).to_be_bytes());
        g4.extend_from_slice(&[2]); // one member
        g4.extend_from_slice(&[2, b'm', 0, 1, 1]); // id "m", null instance, "", ""
        g4.extend_from_slice(&5i32.to_be_bytes());
        g4.extend_from_slice(&6i32.to_be_bytes());
        g4.extend_from_slice(&[2, 0xff, 1, 0]); // subscription [ff], empty assignment, no tags
        g4.push(0); // no tags on the value
        let d = decode_group_metadata_value(&g4).unwrap();
        assert_eq!(d.protocol_type, "c");
        assert_eq!(d.members.len(), 1);
        assert_eq!(d.members[0].member_id, "m");
        assert_eq!(d.members[0].session_timeout_ms, 6);
        assert_eq!(d.members[0].subscription.as_ref(), &[0xff]);
    }

    // Proves bad bytes give typed errors, never a panic: every truncation of valid
    // encodings, lengths past the end, huge member counts, negative and unknown versions,
    // bad UTF-8 and trailing bytes.
    #[test]
    fn refuses_bad_input() {
        let key = encode_key(&RecordKey::OffsetCommit {
            group: "group".into(),
            topic: "topic".into(),
            partition: 1,
        });
        let value = encode_group_metadata_value(&group_value());
        for n in 0..key.len() {
            assert!(decode_key(&key[..n]).is_err(), "key cut at {n}");
        }
        for n in 0..value.len() {
            assert!(
                decode_group_metadata_value(&value[..n]).is_err(),
                "value cut at {n}"
            );
        }
        assert_eq!(
            decode_key(&[0, 9, 0, 0]),
            Err(RecordCodecError::UnknownKeyVersion(9))
        );
        assert!(decode_key(&[0, 2, 0x7f, 0xff, b'a']).is_err());
        assert!(decode_key(&[0, 2, 0xff, 0xff]).is_err(), "null group");
        assert!(decode_key(&[0, 2, 0, 1, 0xff]).is_err(), "bad utf-8");
        let mut trailing = key.clone();
        trailing.push(0);
        assert!(matches!(
            decode_key(&trailing),
            Err(RecordCodecError::TrailingBytes { .. })
        ));
        assert!(decode_offset_commit_value(&[0xff, 0xff]).is_err());
        // A member count of i32::MAX with a few bytes left must not allocate.
        let mut huge = vec![0, 3, 0, 0];
        huge.extend_from_slice(&1i32.to_be_bytes());
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        huge.extend_from_slice(&(-1i64).to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_group_metadata_value(&huge),
            Err(RecordCodecError::BadLength {
                what: "members",
                ..
            })
        ));
        // A flexible varint that never ends.
        assert!(
            decode_offset_commit_value(&[
                0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_err()
        );
    }

    // Proves a compact (version 4) string longer than i16::MAX is refused when read, as
    // Kafka refuses it, instead of being loaded into a group that `put_str` then cannot
    // write back (its assert would stop the shard at the group's next write).
    #[test]
    fn long_compact_strings_are_refused() {
        let long = "m".repeat(i16::MAX as usize + 1);
        let mut g4 = vec![0, 4];
        g4.extend_from_slice(&[0x81, 0x80, 0x02]); // compact length 32768 + 1
        g4.extend_from_slice(long.as_bytes());
        g4.extend_from_slice(&3i32.to_be_bytes());
        g4.extend_from_slice(&[0, 0]);
        g4.extend_from_slice(&(-1i64).to_be_bytes());
        g4.extend_from_slice(&[1, 0]); // no members, no tags
        assert_eq!(
            decode_group_metadata_value(&g4),
            Err(RecordCodecError::BadLength {
                what: "protocol type",
                len: 32768,
                position: 2,
            })
        );
        // The longest string Kafka allows still reads.
        let max = "m".repeat(i16::MAX as usize);
        let mut g4 = vec![0, 4];
        g4.extend_from_slice(&[0x80, 0x80, 0x02]); // compact length 32767 + 1
        g4.extend_from_slice(max.as_bytes());
        g4.extend_from_slice(&3i32.to_be_bytes());
        g4.extend_from_slice(&[0, 0]);
        g4.extend_from_slice(&(-1i64).to_be_bytes());
        g4.extend_from_slice(&[1, 0]);
        let v = decode_group_metadata_value(&g4).unwrap();
        assert_eq!(v.protocol_type, max);
        assert_eq!(
            decode_group_metadata_value(&encode_group_metadata_value(&v)),
            Ok(v)
        );
    }

    /// Installed for this crate's whole unit-test binary, so the property tests below can
    /// prove decoding never sizes a buffer from an untrusted count.
    #[global_allocator]
    static ALLOCATOR: LargestAllocation = LargestAllocation;

    /// The most one decode may allocate at once for `len` input bytes: strings and bytes
    /// are copies of at most `len` bytes, and the member list holds one `MemberMetadata`
    /// (under 256 bytes) per `MEMBER_BYTES_MIN` input bytes.
    fn allocation_bytes_max(len: usize) -> usize {
        64 + len.max(256 / MEMBER_BYTES_MIN * len)
    }

    /// Decodes `bytes` as a key and as both values, checks that what decodes survives a
    /// re-encode (keys always; values written in the version we write), and returns the
    /// largest allocation made.
    fn decode_checked(bytes: &[u8]) -> Result<usize, proptest::test_runner::TestCaseError> {
        let ((key, offset, group), largest) = largest_allocation_during(|| {
            (
                decode_key(bytes),
                decode_offset_commit_value(bytes),
                decode_group_metadata_value(bytes),
            )
        });
        let version = bytes.get(..2).map(|v| i16::from_be_bytes([v[0], v[1]]));
        if let Ok(k) = key {
            // Key versions 0 and 1 share a layout; we write 1.
            proptest::prop_assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        }
        if let Ok(v) = offset
            && version == Some(OFFSET_COMMIT_VALUE_VERSION)
        {
            proptest::prop_assert_eq!(encode_offset_commit_value(&v), bytes);
        }
        if let Ok(v) = group
            && version == Some(GROUP_METADATA_VALUE_VERSION)
        {
            proptest::prop_assert_eq!(encode_group_metadata_value(&v), bytes);
        }
        Ok(largest)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1000))]

        // Proves arbitrary record bytes behind every key and value version (and unknown
        // ones) decode to Ok or a typed error, never a panic or an allocation sized from an
        // untrusted count, and that what decodes in the version we write re-encodes to the
        // same bytes.
        #[test]
        fn arbitrary_bytes_never_panic_or_overallocate(
            version in -1i16..7,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut bytes = version.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let largest = decode_checked(&bytes)?;
            proptest::prop_assert!(largest <= allocation_bytes_max(bytes.len()), "{largest} bytes");
        }

        // Proves our own encodings of keys and values with a few bytes replaced, and cut
        // short, decode to Ok or a typed error without a panic or an oversized allocation.
        #[test]
        fn mutated_records_never_panic_or_overallocate(
            pick in 0usize..4,
            text in "[a-z]{0,6}",
            members in 0usize..4,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..4,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut group = group_value();
            group.protocol_type = text.clone();
            group.members.truncate(members.min(2));
            let mut bytes = match pick {
                0 => encode_key(&RecordKey::OffsetCommit {
                    group: text.clone(),
                    topic: "topic".into(),
                    partition: 7,
                }),
                1 => encode_key(&RecordKey::GroupMetadata { group: text.clone() }),
                2 => encode_offset_commit_value(&OffsetCommitValue {
                    offset: 42,
                    leader_epoch: 3,
                    metadata: text.clone(),
                    commit_timestamp_ms: 1,
                    expire_timestamp_ms: -1,
                }),
                _ => encode_group_metadata_value(&group),
            };
            for (at, byte) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            let largest = decode_checked(&bytes)?;
            proptest::prop_assert!(largest <= allocation_bytes_max(bytes.len()), "{largest} bytes");
            let short = &bytes[..cut.index(bytes.len())];
            let largest = decode_checked(short)?;
            proptest::prop_assert!(largest <= allocation_bytes_max(short.len()), "{largest} bytes");
        }
    }
}
