//! Fuzz target: arbitrary bytes as the consumer protocol subscription (JoinGroup protocol
//! metadata) and assignment (SyncGroup) a member sends, which the broker decodes for
//! OffsetDelete and DescribeGroups. Nothing may panic or allocate beyond the input's size,
//! and whatever decodes must survive a round trip: kafka-protocol's encoding of the decoded
//! message, behind the same version, decodes to the same message.
//!
//! Each input is used twice: raw (its first two bytes are the version, so most raw inputs
//! claim a version above 3 and are read as 3), and steered, with its first byte choosing
//! version 0 to 3 and the rest as the body, so every version's layout is reached.

#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_net::consumer_protocol::{
    CONSUMER_PROTOCOL_VERSION_MAX, decode_assignment, decode_subscription,
};
use sluice_net::kafka_protocol::protocol::Encodable;

fn encoded(version: i16, msg: &impl Encodable) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    msg.encode(&mut buf, version.min(CONSUMER_PROTOCOL_VERSION_MAX))
        .ok()?;
    Some(buf.freeze())
}

fn decode_and_round_trip(bytes: Bytes) {
    if let Ok((version, subscription)) = decode_subscription(bytes.clone())
        && let Some(again) = encoded(version, &subscription)
    {
        let reread = decode_subscription(again).expect("our own re-encoding decodes");
        assert_eq!(reread, (version, subscription));
    }
    if let Ok((version, assignment)) = decode_assignment(bytes)
        && let Some(again) = encoded(version, &assignment)
    {
        let reread = decode_assignment(again).expect("our own re-encoding decodes");
        assert_eq!(reread, (version, assignment));
    }
}

fuzz_target!(|data: &[u8]| {
    decode_and_round_trip(Bytes::copy_from_slice(data));

    if let [version_pick, rest @ ..] = data {
        let version = i16::from(*version_pick) % (CONSUMER_PROTOCOL_VERSION_MAX + 1);
        let mut steered = BytesMut::with_capacity(2 + rest.len());
        steered.put_i16(version);
        steered.put_slice(rest);
        decode_and_round_trip(steered.freeze());
    }
});
