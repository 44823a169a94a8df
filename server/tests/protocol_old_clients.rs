//! What real clients send that Kafka 4.0's schemas alone would refuse, over raw sockets
//! against the real binary: librdkafka 2.16's Metadata v12 with bytes after the body
//! (Kafka ignores them), and the request versions KIP-896 removed from Kafka 4.0 that
//! Kafka 3.9 served and older clients (Sarama 1.22) still send.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Broker, Conn, list_offsets_at, produce_to};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::BatchHeader;
use sluice_engine::record::{build_batch, decode_batch, encode_batch};

#[test]
fn librdkafka_2_16_metadata_v12_with_trailing_bytes_is_answered() {
    // Proves the exact 25-byte Metadata v12 frame librdkafka 2.16 sends, three bytes longer
    // than its fields, gets a Metadata v12 response listing this broker instead of a closed
    // connection, and that the connection keeps serving afterwards.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let request: &[u8] = &[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07, b'r', b'd', b'k', b'a', b'f',
        b'k', b'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    ];
    for _ in 0..2 {
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(request);
        conn.send_raw(&frame).unwrap();
        let out = conn
            .read_frame()
            .unwrap()
            .expect("a Metadata response, not a closed connection");
        let resp: MetadataResponse = Conn::parse(ApiKey::Metadata, 12, 3, out);
        assert_eq!(resp.brokers.len(), 1, "{resp:?}");
        assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
    }
}

/// A request frame (size prefix included) with header v1 (client id "old") and `body`.
fn old_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_i32(0);
    f.put_i16(api_key);
    f.put_i16(version);
    f.put_i32(correlation_id);
    put_string(&mut f, "old");
    f.put_slice(body);
    let size = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&size.to_be_bytes());
    f.to_vec()
}

fn put_string(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// Sends an old-version request and returns its response body after checking the
/// header v0 carries the correlation id.
fn old_call(c: &mut Conn, api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Body {
    c.send_raw(&old_frame(api_key, version, correlation_id, body))
        .unwrap();
    let mut out = c
        .read_frame()
        .unwrap()
        .unwrap_or_else(|| panic!("api {api_key} v{version}: connection closed"));
    assert_eq!(out.get_i32(), correlation_id);
    Body(out)
}

/// A response body read field by field in Kafka 3.9's layout; `end` checks nothing is left.
struct Body(Bytes);

impl Body {
    fn i8(&mut self) -> i8 {
        self.0.get_i8()
    }
    fn i16(&mut self) -> i16 {
        self.0.get_i16()
    }
    fn i32(&mut self) -> i32 {
        self.0.get_i32()
    }
    fn i64(&mut self) -> i64 {
        self.0.get_i64()
    }
    fn string(&mut self) -> Option<String> {
        let len = self.i16();
        (len >= 0).then(|| String::from_utf8(self.0.split_to(len as usize).to_vec()).unwrap())
    }
    fn end(self) {
        assert!(self.0.is_empty(), "{} bytes left over", self.0.len());
    }
}

/// Appends one batch of three records (offsets 0-2, timestamp 5) to partition 0.
fn produce_three(c: &mut Conn, topic: &str) {
    let three = build_batch(
        0,
        5,
        0,
        &[
            (Some(&b"k"[..]), Some(&b"a"[..])),
            (Some(&b"k"[..]), Some(&b"b"[..])),
            (Some(&b"k"[..]), Some(&b"c"[..])),
        ],
    );
    let p = produce_to(c, 9, topic, 0, Bytes::from(three));
    assert_eq!(p.error_code, 0);
}

#[test]
fn versions_kafka_4_removed_are_served_in_kafka_3_9_layouts() {
    // Proves each request version KIP-896 removed and Kafka 3.9 still served (hand-built from
    // Kafka 3.9's schemas, as Sarama 1.22 and other old clients send them) gets a correct
    // answer in its old layout over a raw socket, that the state it changes is what newer
    // versions see, and that ApiVersions advertises those minima.
    let broker = Broker::start();
    let mut c = broker.connect();

    // ApiVersions advertises Kafka 3.9's minima.
    let versions: ApiVersionsResponse =
        c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::OffsetForLeaderEpoch,
        ApiKey::DescribeConfigs,
        ApiKey::Metadata,
        ApiKey::FindCoordinator,
    ] {
        let k = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} advertised"));
        assert_eq!(k.min_version, 0, "{key:?}");
    }

    // CreateTopics v0: topics [name, num_partitions, replication_factor, assignments,
    // configs], timeout_ms. Answer: topics [name, error_code].
    let mut req = BytesMut::new();
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(2);
    req.put_i16(1);
    req.put_i32(0);
    req.put_i32(1);
    put_string(&mut req, "retention.ms");
    put_string(&mut req, "86400000");
    req.put_i32(10_000);
    let mut b = old_call(&mut c, 19, 0, 1, &req);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("old"));
    assert_eq!(b.i16(), 0, "CreateTopics v0 error code");
    b.end();

    // CreateTopics v1 (adds validate_only), answer adds error_message; creating "old" again
    // is TOPIC_ALREADY_EXISTS, "old1" succeeds.
    let mut req = BytesMut::new();
    req.put_i32(2);
    for name in ["old", "old1"] {
        put_string(&mut req, name);
        req.put_i32(1);
        req.put_i16(1);
        req.put_i32(0);
        req.put_i32(0);
    }
    req.put_i32(10_000);
    req.put_u8(0); // validate_only
    let mut b = old_call(&mut c, 19, 1, 2, &req);
    assert_eq!(b.i32(), 2);
    assert_eq!(b.string().as_deref(), Some("old"));
    assert_eq!(b.i16(), ResponseError::TopicAlreadyExists.code());
    assert!(b.string().is_some(), "an error message");
    assert_eq!(b.string().as_deref(), Some("old1"));
    assert_eq!(b.i16(), 0);
    assert_eq!(b.string(), None);
    b.end();

    produce_three(&mut c, "old");

    // Fetch v0-v3: replica_id, max_wait_ms, min_bytes, (v3: max_bytes), topics [topic,
    // partitions [partition, fetch_offset, partition_max_bytes]]. Answer: (v1+:
    // throttle_time_ms), responses [topic, partitions [partition_index, error_code,
    // high_watermark, records]], the records as messages of magic 0 (v0-v1) or 1 (v2-v3).
    for v in 0..=3 {
        let mut req = BytesMut::new();
        req.put_i32(-1);
        req.put_i32(500);
        req.put_i32(1);
        if v == 3 {
            req.put_i32(1 << 20);
        }
        req.put_i32(1);
        put_string(&mut req, "old");
        req.put_i32(1);
        req.put_i32(0);
        req.put_i64(1); // from the second record on
        req.put_i32(1 << 20);
        let mut b = old_call(&mut c, 1, v, 100 + i32::from(v), &req);
        if v >= 1 {
            assert_eq!(b.i32(), 0, "throttle_time_ms");
        }
        assert_eq!(b.i32(), 1);
        assert_eq!(b.string().as_deref(), Some("old"));
        assert_eq!(b.i32(), 1);
        assert_eq!((b.i32(), b.i16(), b.i64()), (0, 0, 3), "v{v}");
        let len = b.i32();
        assert!(len > 0, "v{v} records");
        let mut set = b.0.split_to(len as usize);
        b.end();
        let magic = if v < 2 { 0 } else { 1 };
        let mut got = Vec::new();
        while set.has_remaining() {
            let offset = set.get_i64();
            let size = set.get_i32() as usize;
            let mut m = set.split_to(size);
            let crc = m.get_u32();
            assert_eq!(crc, crc32fast::hash(&m), "v{v} crc of offset {offset}");
            assert_eq!(m.get_i8(), magic, "v{v}");
            assert_eq!(m.get_i8(), 0, "v{v} attributes");
            let timestamp = (magic == 1).then(|| m.get_i64());
            let key_len = m.get_i32();
            let key = m.split_to(key_len as usize);
            let value_len = m.get_i32();
            let value = m.split_to(value_len as usize);
            assert!(m.is_empty());
            assert_eq!(&key[..], b"k");
            got.push((
                offset,
                String::from_utf8(value.to_vec()).unwrap(),
                timestamp,
            ));
        }
        // The batch begins at offset 0; the record before the fetch offset is left out.
        let ts = (magic == 1).then_some(5);
        assert_eq!(
            got,
            vec![(1, "b".to_string(), ts), (2, "c".to_string(), ts)],
            "v{v}"
        );
    }

    // ListOffsets v0: replica_id, topics [name, partitions [partition_index, timestamp,
    // max_num_offsets]]. Answer: topics [name, partitions [partition_index, error_code,
    // old_style_offsets]]. Latest is 3, earliest 0; partition 9 does not exist.
    let mut req = BytesMut::new();
    req.put_i32(-1);
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(2);
    req.put_i32(0);
    req.put_i64(-1);
    req.put_i32(1);
    req.put_i32(9);
    req.put_i64(-2);
    req.put_i32(1);
    let mut b = old_call(&mut c, 2, 0, 3, &req);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("old"));
    assert_eq!(b.i32(), 2);
    assert_eq!((b.i32(), b.i16(), b.i32(), b.i64()), (0, 0, 1, 3), "latest");
    assert_eq!(
        (b.i32(), b.i16(), b.i32()),
        (9, ResponseError::UnknownTopicOrPartition.code(), 0)
    );
    b.end();
    let mut req = BytesMut::new();
    req.put_i32(-1);
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(1);
    req.put_i32(0);
    req.put_i64(-2);
    req.put_i32(1);
    let mut b = old_call(&mut c, 2, 0, 4, &req);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("old"));
    assert_eq!(b.i32(), 1);
    assert_eq!(
        (b.i32(), b.i16(), b.i32(), b.i64()),
        (0, 0, 1, 0),
        "earliest"
    );
    b.end();

    // OffsetForLeaderEpoch v0 and v1: topics [topic, partitions [partition, leader_epoch]].
    // Answer: topics [topic, partitions [error_code, partition, (v1: leader_epoch),
    // end_offset]]; the current epoch ends at the log end offset, 3.
    let meta: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("old")))),
        ])),
    );
    let epoch = meta.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .unwrap()
        .leader_epoch;
    let mut req = BytesMut::new();
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(1);
    req.put_i32(0);
    req.put_i32(epoch);
    for v in [0, 1] {
        let mut b = old_call(&mut c, 23, v, 5 + i32::from(v), &req);
        assert_eq!(b.i32(), 1);
        assert_eq!(b.string().as_deref(), Some("old"));
        assert_eq!(b.i32(), 1);
        assert_eq!((b.i16(), b.i32()), (0, 0), "v{v}");
        if v == 1 {
            assert_eq!(b.i32(), epoch);
        }
        assert_eq!(b.i64(), 3, "v{v} end offset");
        b.end();
    }

    // OffsetCommit v0: group_id, topics [name, partitions [partition_index,
    // committed_offset, committed_metadata]]. Answer: topics [name, partitions
    // [partition_index, error_code]].
    let commit_answer = |b: &mut Body| {
        assert_eq!(b.i32(), 1);
        assert_eq!(b.string().as_deref(), Some("old"));
        assert_eq!(b.i32(), 1);
        assert_eq!((b.i32(), b.i16()), (0, 0));
    };
    let mut req = BytesMut::new();
    put_string(&mut req, "old-group");
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(1);
    req.put_i32(0);
    req.put_i64(1);
    put_string(&mut req, "v0");
    let mut b = old_call(&mut c, 8, 0, 7, &req);
    commit_answer(&mut b);
    b.end();

    // OffsetFetch v0: group_id, topics [name, partition_indexes]. Answer: topics [name,
    // partitions [partition_index, committed_offset, metadata, error_code]].
    let mut fetch_req = BytesMut::new();
    put_string(&mut fetch_req, "old-group");
    fetch_req.put_i32(1);
    put_string(&mut fetch_req, "old");
    fetch_req.put_i32(1);
    fetch_req.put_i32(0);
    let fetch_committed = |c: &mut Conn, cid: i32| {
        let mut b = old_call(c, 9, 0, cid, &fetch_req);
        assert_eq!(b.i32(), 1);
        assert_eq!(b.string().as_deref(), Some("old"));
        assert_eq!(b.i32(), 1);
        assert_eq!(b.i32(), 0);
        let offset = b.i64();
        let metadata = b.string();
        assert_eq!(b.i16(), 0);
        b.end();
        (offset, metadata)
    };
    assert_eq!(fetch_committed(&mut c, 8), (1, Some("v0".into())));

    // OffsetCommit v1 adds generation_id, member_id and each partition's commit_timestamp.
    let mut req = BytesMut::new();
    put_string(&mut req, "old-group");
    req.put_i32(-1);
    put_string(&mut req, "");
    req.put_i32(1);
    put_string(&mut req, "old");
    req.put_i32(1);
    req.put_i32(0);
    req.put_i64(2);
    req.put_i64(-1); // commit_timestamp: now
    put_string(&mut req, "v1");
    let mut b = old_call(&mut c, 8, 1, 9, &req);
    commit_answer(&mut b);
    b.end();
    assert_eq!(fetch_committed(&mut c, 10), (2, Some("v1".into())));

    // DescribeConfigs v0: resources [resource_type, resource_name, configuration_keys].
    // Answer: throttle_time_ms, results [error_code, error_message, resource_type,
    // resource_name, configs [name, value, read_only, is_default, is_sensitive]].
    let mut req = BytesMut::new();
    req.put_i32(1);
    req.put_i8(2); // topic
    put_string(&mut req, "old");
    req.put_i32(2);
    put_string(&mut req, "retention.ms");
    put_string(&mut req, "cleanup.policy");
    let mut b = old_call(&mut c, 32, 0, 11, &req);
    assert_eq!(b.i32(), 0);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.i16(), 0);
    let _message = b.string();
    assert_eq!(b.i8(), 2);
    assert_eq!(b.string().as_deref(), Some("old"));
    let mut configs = Vec::new();
    for _ in 0..b.i32() {
        let name = b.string().unwrap();
        let value = b.string();
        let _read_only = b.i8();
        let is_default = b.i8();
        let _sensitive = b.i8();
        configs.push((name, value, is_default));
    }
    b.end();
    configs.sort();
    assert_eq!(
        configs,
        vec![
            ("cleanup.policy".into(), Some("delete".into()), 1),
            ("retention.ms".into(), Some("86400000".into()), 0),
        ]
    );

    // DeleteTopics v0: topic_names, timeout_ms. Answer: responses [name, error_code].
    let mut req = BytesMut::new();
    req.put_i32(1);
    put_string(&mut req, "old1");
    req.put_i32(10_000);
    let mut b = old_call(&mut c, 20, 0, 12, &req);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("old1"));
    assert_eq!(b.i16(), 0);
    b.end();

    // The connection is still in step: a modern request on it is answered.
    let all = MetadataRequest::default().with_topics(None);
    let meta: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
    let mut names: Vec<String> = meta
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort();
    assert_eq!(names, ["old"]);
}

/// One message of magic 0 or 1 (offset and size included), as Kafka 3.9 clients write it.
fn old_message(magic: i8, timestamp: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i8(magic);
    body.put_i8(0); // attributes: no compression
    if magic == 1 {
        body.put_i64(timestamp);
    }
    body.put_i32(key.len() as i32);
    body.put_slice(key);
    body.put_i32(value.len() as i32);
    body.put_slice(value);
    let mut m = BytesMut::new();
    m.put_i64(0); // offset: the broker assigns it
    m.put_i32(4 + body.len() as i32);
    m.put_u32(crc32fast::hash(&body));
    m.put_slice(&body);
    m.to_vec()
}

#[test]
fn produce_v0_to_v2_message_sets_are_appended() {
    // Proves Produce v0 and v1 (magic 0 message sets) and v2 (magic 1, with timestamps) are
    // appended at consecutive offsets and answered in their Kafka 3.9 layouts, and that a
    // modern Fetch then reads the same keys, values and timestamps from RecordBatch v2.
    let broker = Broker::start();
    let mut c = broker.connect();
    let create = kafka_protocol::messages::CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("legacy")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(created.topics[0].error_code, 0);

    // Produce v0-v2: acks, timeout_ms, topic_data [name, partition_data [index, records]].
    // Answer: responses [name, partition_responses [index, error_code, base_offset,
    // (v2: log_append_time_ms)]], (v1+: throttle_time_ms).
    let mut base = 0;
    for v in 0..=2i16 {
        let magic = if v < 2 { 0 } else { 1 };
        let mut set = old_message(magic, 100 + i64::from(v), b"k", format!("v{v}a").as_bytes());
        set.extend(old_message(magic, 200, b"k", format!("v{v}b").as_bytes()));
        let mut req = BytesMut::new();
        req.put_i16(-1); // acks
        req.put_i32(10_000);
        req.put_i32(1);
        put_string(&mut req, "legacy");
        req.put_i32(1);
        req.put_i32(0);
        req.put_i32(set.len() as i32);
        req.put_slice(&set);
        let mut b = old_call(&mut c, 0, v, 20 + i32::from(v), &req);
        assert_eq!(b.i32(), 1);
        assert_eq!(b.string().as_deref(), Some("legacy"));
        assert_eq!(b.i32(), 1);
        assert_eq!((b.i32(), b.i16(), b.i64()), (0, 0, base), "v{v}");
        if v == 2 {
            assert_eq!(b.i64(), -1, "log_append_time_ms of a CreateTime topic");
        }
        if v >= 1 {
            assert_eq!(b.i32(), 0, "throttle_time_ms");
        }
        b.end();
        base += 2;
    }

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("legacy")))
                .with_partitions(vec![
                    kafka_protocol::messages::fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let records = common::decode_records(p.records.as_ref().unwrap());
    let got: Vec<(i64, String, String, i64)> = records;
    assert_eq!(
        got,
        vec![
            (0, "k".into(), "v0a".into(), -1),
            (1, "k".into(), "v0b".into(), -1),
            (2, "k".into(), "v1a".into(), -1),
            (3, "k".into(), "v1b".into(), -1),
            (4, "k".into(), "v2a".into(), 102),
            (5, "k".into(), "v2b".into(), 200),
        ]
    );
}

#[test]
fn fetch_v2_of_a_timestamp_delta_past_i64_keeps_the_broker_running() {
    // Proves a stored batch whose second record's timestamp delta runs past i64::MAX from
    // the base timestamp (the append path trusts a header whose max timestamp is set, so
    // a producer can store one) is served to Fetch v2 as two magic 1 messages, the
    // timestamp wrapping as Kafka's Java does, and the broker keeps running. Before the
    // fix the down-conversion overflowed and the debug broker panicked.
    let broker = Broker::start();
    let mut c = broker.connect();
    let base = i64::MAX - 1;
    let plain = build_batch(
        0,
        base,
        0,
        &[
            (Some(&b"k"[..]), Some(&b"a"[..])),
            (Some(&b"k"[..]), Some(&b"b"[..])),
        ],
    );
    let mut records = decode_batch(&plain, 1 << 20).unwrap().records;
    records[1].timestamp_delta = 5;
    let view = BatchHeader::new(&plain).unwrap();
    let stored = encode_batch(&view, &records, false).unwrap();
    assert_eq!(
        produce_to(&mut c, 9, "wide", 0, Bytes::from(stored)).error_code,
        0
    );

    let mut req = BytesMut::new();
    req.put_i32(-1); // replica_id
    req.put_i32(0); // max_wait_ms
    req.put_i32(1); // min_bytes
    req.put_i32(1);
    put_string(&mut req, "wide");
    req.put_i32(1);
    req.put_i32(0); // partition
    req.put_i64(0); // fetch_offset
    req.put_i32(1 << 20);
    let mut b = old_call(&mut c, 1, 2, 7, &req);
    assert_eq!(b.i32(), 0, "throttle_time_ms");
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("wide"));
    assert_eq!(b.i32(), 1);
    assert_eq!((b.i32(), b.i16(), b.i64()), (0, 0, 2));
    let len = b.i32();
    let mut set = b.0.split_to(len as usize);
    b.end();
    let mut timestamps = Vec::new();
    while set.has_remaining() {
        let offset = set.get_i64();
        let size = set.get_i32() as usize;
        let mut m = set.split_to(size);
        let crc = m.get_u32();
        assert_eq!(crc, crc32fast::hash(&m), "crc of offset {offset}");
        assert_eq!((m.get_i8(), m.get_i8()), (1, 0), "magic, attributes");
        timestamps.push((offset, m.get_i64()));
    }
    assert_eq!(timestamps, [(0, base), (1, base.wrapping_add(5))]);
    broker.assert_running();
}

#[test]
fn produce_v2_timestamps_too_far_apart_are_corrupt_message() {
    // Proves a Produce v2 message set whose magic 1 timestamps lie further apart than an
    // i64 delta can say is answered CORRUPT_MESSAGE and nothing is stored, and the broker
    // keeps running. Before the fix the up-conversion overflowed and the debug broker
    // panicked.
    let broker = Broker::start();
    let mut c = broker.connect();
    let mut set = old_message(1, -2, b"k", b"early");
    set.extend(old_message(1, i64::MAX, b"k", b"late"));
    let mut req = BytesMut::new();
    req.put_i16(-1); // acks
    req.put_i32(10_000);
    req.put_i32(1);
    put_string(&mut req, "apart");
    req.put_i32(1);
    req.put_i32(0);
    req.put_i32(set.len() as i32);
    req.put_slice(&set);
    let mut b = old_call(&mut c, 0, 2, 9, &req);
    assert_eq!(b.i32(), 1);
    assert_eq!(b.string().as_deref(), Some("apart"));
    assert_eq!(b.i32(), 1);
    assert_eq!(
        (b.i32(), b.i16()),
        (0, ResponseError::CorruptMessage.code())
    );
    assert_eq!(list_offsets_at(&mut c, "apart", 0, -1).offset, 0);
    broker.assert_running();
}
