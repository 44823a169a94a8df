//! Bad input over raw TCP against the real binary: truncated frames, a 2 GB length
//! prefix, a negative length, the 12-byte allocation bomb, unknown api keys, unsupported
//! versions, a field cut short after a valid header, a Produce with a bad CRC, and a batch above
//! max.message.bytes. Each gets the right error code or a closed connection, while the
//! broker keeps serving other connections and loses nothing already written.

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Broker, Conn, batch, decode_records, fetch_from, produce_to};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_string()))
}

fn produce(conn: &mut Conn, topic: &str, records: Bytes) -> i16 {
    produce_to(conn, 9, topic, 0, records).error_code
}

fn fetch_all(conn: &mut Conn, topic: &str) -> Vec<(i64, String, String, i64)> {
    decode_records(
        fetch_from(conn, topic, 0, 0, 1 << 20)
            .records
            .as_ref()
            .unwrap(),
    )
}

/// A still-healthy broker answers ApiVersions on a fresh connection.
fn assert_serving(broker: &Broker) {
    let mut c = broker.connect();
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn hostile_frames_close_only_their_connection() {
    // Proves each hostile frame closes its own connection (or gets its error code)
    // while a bystander connection opened first keeps working and data written before
    // the attacks is still readable afterwards.
    let broker = Broker::start();
    let mut bystander = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name("safe"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = bystander.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(
        produce(&mut bystander, "safe", batch(&[("k", "before", 1)], None)),
        0
    );

    // A 2 GB length prefix.
    let mut c = broker.connect();
    c.send_raw(&0x7fff_ffffu32.to_be_bytes()).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "2 GB prefix");

    // A negative length prefix.
    let mut c = broker.connect();
    c.send_raw(&(-5i32).to_be_bytes()).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "negative prefix");

    // The allocation bomb: Produce v3 whose topic array claims 2^31-1 entries.
    let mut body = BytesMut::new();
    body.put_i16(0); // api key Produce
    body.put_i16(3); // version
    body.put_i32(1); // correlation id
    body.put_i16(-1); // client id: null
    body.put_i16(-1); // transactional id: null
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(i32::MAX); // topic count
    let mut c = broker.connect();
    c.send_raw(&raw_frame(&body)).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "allocation bomb");

    // An unknown api key.
    let mut body = BytesMut::new();
    body.put_i16(999);
    body.put_i16(0);
    body.put_i32(2);
    body.put_i16(-1);
    let mut c = broker.connect();
    c.send_raw(&raw_frame(&body)).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "unknown api key");

    // An unsupported version of an api other than ApiVersions.
    let f = Conn::frame(ApiKey::Metadata, 0, 3, &MetadataRequest::default());
    let mut raw = f.to_vec();
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    let mut c = broker.connect();
    c.send_raw(&raw).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "unsupported Metadata version");

    // Produce v2 whose message set fails its CRC, and one with null records: each
    // partition gets CORRUPT_MESSAGE in the v2 layout, and nothing is appended.
    let mut message = BytesMut::new();
    message.put_i8(1); // magic
    message.put_i8(0); // attributes
    message.put_i64(1); // timestamp
    message.put_i32(-1); // key: null
    message.put_i32(3);
    message.put_slice(b"bad");
    let mut set = BytesMut::new();
    set.put_i64(0); // offset
    set.put_i32(4 + message.len() as i32);
    set.put_u32(crc32fast::hash(&message) ^ 1);
    set.put_slice(&message);
    let mut body = BytesMut::new();
    body.put_i16(0); // api key Produce
    body.put_i16(2); // version
    body.put_i32(4); // correlation id
    body.put_i16(-1); // client id: null
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(1); // one topic
    body.put_i16(4);
    body.put_slice(b"safe");
    body.put_i32(2); // two partitions
    body.put_i32(0);
    body.put_i32(set.len() as i32);
    body.put_slice(&set);
    body.put_i32(0);
    body.put_i32(-1); // null records
    let mut c = broker.connect();
    c.send_raw(&raw_frame(&body)).unwrap();
    let resp = c.read_frame().unwrap().expect("a v2 response");
    let mut expected = BytesMut::new();
    expected.put_i32(4); // correlation id
    expected.put_i32(1);
    expected.put_i16(4);
    expected.put_slice(b"safe");
    expected.put_i32(2);
    for _ in 0..2 {
        expected.put_i32(0);
        expected.put_i16(ResponseError::CorruptMessage.code());
        expected.put_i64(-1); // base offset
        expected.put_i64(-1); // log append time (v2)
    }
    expected.put_i32(0); // throttle time (v1+)
    assert_eq!(
        resp,
        expected.freeze(),
        "Produce v2 with a bad message set answered CORRUPT_MESSAGE"
    );

    // A body field cut short after a valid header: ApiVersions v3 whose client software
    // name claims 40 bytes of which 7 follow. (Bytes after a complete body are ignored, as
    // in Kafka; protocol_old_clients.rs covers that.)
    let mut body = BytesMut::new();
    body.put_i16(18); // api key ApiVersions
    body.put_i16(3); // version
    body.put_i32(5); // correlation id
    body.put_i16(-1); // client id: null
    body.put_u8(0); // header tagged fields
    body.put_u8(41); // compact string of 40 bytes
    body.put_slice(b"garbage");
    let mut c = broker.connect();
    c.send_raw(&raw_frame(&body)).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "field cut short");

    // A truncated frame followed by the client hanging up.
    let mut c = broker.connect();
    c.send_raw(&100i32.to_be_bytes()).unwrap();
    c.send_raw(&[0, 18, 0]).unwrap();
    c.stream.flush().unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed_within(CLOSE_WAIT), "truncated frame");

    // The bystander connection and new connections still work, and nothing was lost.
    assert_serving(&broker);
    let recs = fetch_all(&mut bystander, "safe");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].2, "before");
}

#[test]
fn bad_batches_get_error_codes() {
    // Proves a Produce whose batch fails its CRC gets CORRUPT_MESSAGE, one above the
    // topic's max.message.bytes gets MESSAGE_TOO_LARGE, a records field cut mid-batch gets
    // CORRUPT_MESSAGE, and none of them is appended.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name("strict"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("max.message.bytes"))
                    .with_value(Some(StrBytes::from_static_str("1024"))),
            ]),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(resp.topics[0].error_code, 0);

    assert_eq!(
        produce(&mut conn, "strict", batch(&[("k", "good", 1)], None)),
        0
    );

    let mut bad = batch(&[("k", "flipped", 1)], None).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_eq!(
        produce(&mut conn, "strict", Bytes::from(bad)),
        ResponseError::CorruptMessage.code()
    );

    let big = "x".repeat(4096);
    assert_eq!(
        produce(&mut conn, "strict", batch(&[("k", &big, 1)], None)),
        ResponseError::MessageTooLarge.code()
    );

    let cut = batch(&[("k", "cut", 1)], None);
    assert_eq!(
        produce(&mut conn, "strict", cut.slice(..cut.len() - 3)),
        ResponseError::CorruptMessage.code()
    );

    let recs = fetch_all(&mut conn, "strict");
    assert_eq!(recs.len(), 1, "only the good batch was appended");
    assert_eq!(recs[0].2, "good");
}
