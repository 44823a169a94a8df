//! Strings at and beyond Kafka's 32,767-byte bound, over raw sockets against the real
//! 2-shard binary: a compact group id of 40,000 bytes is refused by the decoder (it used to
//! reach the group coordinator and panic its shard), and a 32,767-byte client id, from
//! which member ids are made, does not overflow the stored group metadata. Afterwards
//! both shards still serve produce and fetch, and the broker stops cleanly.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Broker, Conn, batch, decode_records, fetch_from, produce_to};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Partitions of the test topic: spread by count over the two shards, so both own some.
const PARTITIONS: i32 = 4;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn put_unsigned_varint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// OffsetCommit v8 (flexible, header v2) for group id `group` committing offset 0 of
/// partition 0 of "t", size prefix included.
fn offset_commit_v8(correlation_id: i32, group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(0); // size, patched below
    b.put_i16(8); // api key OffsetCommit
    b.put_i16(8); // version
    b.put_i32(correlation_id);
    b.put_i16(-1); // client id: null
    b.put_u8(0); // header tagged fields
    put_unsigned_varint(&mut b, group.len() as u32 + 1);
    b.put_slice(group.as_bytes());
    b.put_i32(-1); // generation id
    b.put_u8(1); // member id: ""
    b.put_u8(0); // group instance id: null
    b.put_u8(2); // one topic
    b.put_u8(2);
    b.put_u8(b't');
    b.put_u8(2); // one partition
    b.put_i32(0); // partition index
    b.put_i64(0); // committed offset
    b.put_i32(-1); // committed leader epoch
    b.put_u8(0); // committed metadata: null
    b.put_u8(0); // partition tagged fields
    b.put_u8(0); // topic tagged fields
    b.put_u8(0); // body tagged fields
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b.freeze()
}

fn produce(c: &mut Conn, partition: i32, value: &str) -> i16 {
    produce_to(c, 9, "t", partition, batch(&[("k", value, 1)], None)).error_code
}

fn fetch_values(c: &mut Conn, partition: i32) -> Vec<String> {
    let p = fetch_from(c, "t", partition, 0, 1 << 20);
    assert_eq!(p.error_code, 0, "fetch partition {partition}");
    decode_records(p.records.as_ref().unwrap())
        .into_iter()
        .map(|(_, _, v, _)| v)
        .collect()
}

/// Every partition of "t", one per shard at least, takes a record and serves it back.
fn assert_every_partition_serves(broker: &Broker, value: &str) {
    let mut c = broker.connect();
    for p in 0..PARTITIONS {
        assert_eq!(produce(&mut c, p, value), 0, "produce to partition {p}");
        let values = fetch_values(&mut c, p);
        assert_eq!(values.last().map(String::as_str), Some(value), "{p}");
    }
}

fn start_with_topic() -> Broker {
    let broker = Broker::start();
    let mut c = broker.connect();
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
    broker
}

#[test]
fn offset_commit_with_a_40000_byte_compact_group_id_is_refused() {
    // Proves an OffsetCommit v8 whose compact group id is 40,000 bytes closes its
    // connection without reaching a group coordinator: afterwards every partition of a
    // topic spread over both shards takes and serves records, a 32,767-byte group id
    // (the most Kafka allows) still commits, and SIGTERM stops the broker with exit 0.
    let mut broker = start_with_topic();
    assert_every_partition_serves(&broker, "before");

    let mut c = broker.connect();
    c.send_raw(&offset_commit_v8(1, &"g".repeat(40_000)))
        .unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "40,000-byte group id");
    broker.assert_running();

    let mut c = broker.connect();
    c.send_raw(&offset_commit_v8(2, &"g".repeat(32_767)))
        .unwrap();
    let out = c.read_frame().unwrap().expect("a response at the bound");
    let resp: OffsetCommitResponse = Conn::parse(ApiKey::OffsetCommit, 8, 2, out);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0, "{resp:?}");

    assert_every_partition_serves(&broker, "after");
    assert!(broker.stop().success(), "clean shutdown exits 0");
}

#[test]
fn a_client_id_of_32767_bytes_joins_and_syncs() {
    // Proves a member whose client id is 32,767 bytes (member ids are made from it) joins
    // (KIP-394 round trip) and syncs a group, whose metadata is then stored, with a member
    // id that fits Kafka's string bound; afterwards every partition on both shards serves
    // and SIGTERM stops the broker with exit 0.
    let mut broker = start_with_topic();
    let client_id = "c".repeat(32_767);
    let mut c = broker.connect();
    let join = |member_id: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("long-client")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0])),
            ])
    };
    let first: JoinGroupResponse = c.call_as(&client_id, ApiKey::JoinGroup, 7, &join(""));
    assert_eq!(
        first.error_code,
        kafka_protocol::ResponseError::MemberIdRequired.code()
    );
    let member_id = first.member_id.to_string();
    assert!(
        member_id.len() <= 32_767,
        "member id of {} bytes",
        member_id.len()
    );
    assert!(member_id.starts_with("ccc"), "{member_id:.20}");
    let joined: JoinGroupResponse = c.call_as(&client_id, ApiKey::JoinGroup, 7, &join(&member_id));
    assert_eq!(joined.error_code, 0);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("long-client")))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member_id))
                .with_assignment(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
        ]);
    let synced: SyncGroupResponse = c.call_as(&client_id, ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0);
    broker.assert_running();

    assert_every_partition_serves(&broker, "after");
    assert!(broker.stop().success(), "clean shutdown exits 0");
}
