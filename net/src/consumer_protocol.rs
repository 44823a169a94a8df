//! The consumer protocol embedded in classic groups (protocol type "consumer"): a member's
//! subscription (JoinGroup protocol metadata) and its assignment (SyncGroup assignment),
//! each a 2-byte version followed by the struct of that version. Both come from members,
//! so they are decoded with the same bounded readers as requests: no allocation is sized
//! from an untrusted count.
//!
//! A version above the newest known one is read as the newest known (Kafka does the same:
//! newer versions only append fields), and bytes after the known fields are ignored.

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};

use crate::reader::{ReadError, Reader};
use crate::schema::wire_struct;
use crate::wire::{Cx, Wire};

/// The protocol type of groups whose members use the consumer protocol.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The newest consumer protocol version this module reads.
pub const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;

/// Why an embedded consumer protocol message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerProtocolError {
    #[error("consumer protocol version {0} is negative")]
    Version(i16),
    #[error(transparent)]
    Read(#[from] ReadError),
}

wire_struct! { consumer_protocol_subscription::ConsumerProtocolSubscription [0..=3] {
    topics: 0..=3,
    user_data: 0..=3,
    owned_partitions: 1..=3,
    generation_id: 2..=3,
    rack_id: 3..=3,
} never_flexible }
wire_struct! { consumer_protocol_subscription::TopicPartition [0..=3] {
    topic: 0..=3,
    partitions: 0..=3,
} never_flexible }
wire_struct! { consumer_protocol_assignment::ConsumerProtocolAssignment [0..=3] {
    assigned_partitions: 0..=3,
    user_data: 0..=3,
} never_flexible }
wire_struct! { consumer_protocol_assignment::TopicPartition [0..=3] {
    topic: 0..=3,
    partitions: 0..=3,
} never_flexible }

fn decode<T: Wire>(bytes: Bytes) -> Result<(i16, T), ConsumerProtocolError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if version < 0 {
        return Err(ConsumerProtocolError::Version(version));
    }
    let cx = Cx {
        version: version.min(CONSUMER_PROTOCOL_VERSION_MAX),
        flex: false,
    };
    Ok((version, T::read(&mut r, cx)?))
}

/// A member's subscription from its JoinGroup protocol metadata, with the version it used.
pub fn decode_subscription(
    metadata: Bytes,
) -> Result<(i16, ConsumerProtocolSubscription), ConsumerProtocolError> {
    decode(metadata)
}

/// A member's assignment from SyncGroup (or DescribeGroups), with the version it used.
pub fn decode_assignment(
    assignment: Bytes,
) -> Result<(i16, ConsumerProtocolAssignment), ConsumerProtocolError> {
    decode(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{Gen, Rng};
    use bytes::BufMut;
    use kafka_protocol::protocol::Encodable;

    fn encoded<T: Encodable>(version: i16, msg: &T) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        buf.put_i16(version);
        msg.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn subscriptions_and_assignments_round_trip_every_version() {
        // Proves the tables match kafka-protocol's encoder: random subscriptions and
        // assignments of every version decode back to the values that were encoded.
        for seed in 0..200u64 {
            let mut g = Rng::new(seed);
            for version in 0..=CONSUMER_PROTOCOL_VERSION_MAX {
                let cx = Cx {
                    version,
                    flex: false,
                };
                let s = ConsumerProtocolSubscription::generate(&mut g, cx);
                let (v, back) = decode_subscription(encoded(version, &s)).unwrap();
                assert_eq!((v, &back), (version, &s), "seed {seed} v{version}");
                let a = ConsumerProtocolAssignment::generate(&mut g, cx);
                let (v, back) = decode_assignment(encoded(version, &a)).unwrap();
                assert_eq!((v, &back), (version, &a), "seed {seed} v{version}");
            }
        }
    }

    #[test]
    fn newer_versions_read_as_the_newest_known() {
        // Proves a subscription of an unknown newer version (v3 fields plus an appended
        // field) still yields its topics, as Kafka reads newer versions.
        let s = ConsumerProtocolSubscription::default().with_topics(vec!["a".into(), "b".into()]);
        let mut bytes = encoded(3, &s).to_vec();
        bytes[..2].copy_from_slice(&9i16.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 7]);
        let (v, back) = decode_subscription(Bytes::from(bytes)).unwrap();
        assert_eq!(v, 9);
        assert_eq!(back.topics, s.topics);
    }

    #[test]
    fn hostile_bytes_are_errors_not_allocations() {
        // Proves truncated input, a negative version and a huge topic count are errors.
        assert!(decode_subscription(Bytes::from_static(&[0])).is_err());
        assert_eq!(
            decode_subscription(Bytes::from_static(&[0xff, 0xff, 0, 0])),
            Err(ConsumerProtocolError::Version(-1))
        );
        let bomb = Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a']);
        assert!(matches!(
            decode_subscription(bomb),
            Err(ConsumerProtocolError::Read(ReadError::CountTooLarge { .. }))
        ));
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_err());
    }
}
