//! Shared helpers for the integration tests: the real-broker harness (`Broker`: start the
//! `sluice` binary on a free 127.0.0.1 port with `--cores 2` and a temporary data
//! directory, stop or kill it by PID; `Conn`: raw Kafka requests over a std `TcpStream`)
//! comes from `sluice-testkit`; kcat and record-batch helpers live here.
#![allow(dead_code, unused_imports)]

use std::path::Path;

use bytes::{Bytes, BytesMut};

pub use sluice_testkit::{Broker, BrokerOptions, Conn, free_port, sluice_bin};

/// Path of kcat; the test script installs it (scripts/install-test-deps.sh).
pub fn kcat() -> &'static str {
    for p in ["/usr/bin/kcat", "/usr/local/bin/kcat", "/usr/bin/kafkacat"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("kcat is not installed: run scripts/install-test-deps.sh");
}

/// Encodes one uncompressed RecordBatch v2 with kafka-protocol's client-side encoder.
/// `records` are (key, value, timestamp ms); `producer` is (id, epoch, base sequence).
pub fn batch(records: &[(&str, &str, i64)], producer: Option<(i64, i16, i32)>) -> Bytes {
    use kafka_protocol::records::*;
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: *ts,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record in a Fetch `records` field: (offset, key, value, timestamp).
pub fn decode_records(records: &Bytes) -> Vec<(i64, String, String, i64)> {
    use kafka_protocol::records::*;
    let mut buf = records.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            let s = |b: Option<Bytes>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            out.push((r.offset, s(r.key), s(r.value), r.timestamp));
        }
    }
    out
}

fn s(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_string())
}

/// CreateTopics (v7) of one topic with `partitions` and topic configs; its error code.
pub fn create_topic_with(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req);
    resp.topics[0].error_code
}

/// Produce (`version`, acks=all) of `records` to one partition: that partition's answer.
pub fn produce_to(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    produce_with(conn, version, -1, topic, partition, records)
}

/// Produce (`version`, `acks`) of `records` to one partition: that partition's answer.
pub fn produce_with(
    conn: &mut Conn,
    version: i16,
    acks: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, version, &req);
    resp.responses[0].partition_responses[0].clone()
}

/// ListOffsets (v7) of one partition at `timestamp` (-1 latest, -2 earliest, -3 max
/// timestamp): that partition's answer.
pub fn list_offsets_at(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
    };
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req);
    resp.topics[0].partitions[0].clone()
}

/// Produces (key, value) records stamped `timestamp_ms` to one partition with acks=all
/// (Produce v9) and asserts they were accepted.
pub fn produce_keyed(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    records: &[(String, String)],
    timestamp_ms: i64,
) {
    let refs: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), timestamp_ms))
        .collect();
    let p = produce_to(conn, 9, topic, partition, batch(&refs, None));
    assert_eq!(p.error_code, 0, "{p:?}");
}

/// One Fetch of one partition from `offset` at `version`, waiting up to `max_wait_ms` for
/// one byte: that partition's answer. Asserts nothing.
pub fn fetch_partition(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, version, &req);
    resp.responses[0].partitions[0].clone()
}

/// One Fetch (v12) of `partition` from `offset`, not waiting: that partition's answer.
pub fn fetch_from(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    fetch_partition(conn, 12, topic, partition, offset, 0, partition_max_bytes)
}

/// One small Fetch (v12, 3000 bytes) from `offset`: (record batches as served, high
/// watermark); asserts no error.
pub fn fetch_raw(
    conn: &mut Conn,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (Option<Bytes>, i64) {
    let p = fetch_from(conn, topic, partition, offset, 3000);
    assert_eq!(p.error_code, 0, "fetch at {offset}: {p:?}");
    (p.records, p.high_watermark)
}

/// Reads a partition from offset 0 to its end in small fetches, as a consumer does:
/// (offset, key, value), asserting that offsets strictly increase (a compacted log may
/// have gaps) and that the end is not past the high watermark.
pub fn read_keyed(conn: &mut Conn, topic: &str, partition: i32) -> Vec<(i64, String, String)> {
    let mut out: Vec<(i64, String, String)> = Vec::new();
    let mut next = 0i64;
    loop {
        let (raw, hw) = fetch_raw(conn, topic, partition, next);
        let recs = raw.as_ref().map(decode_records).unwrap_or_default();
        let fresh: Vec<_> = recs.into_iter().filter(|r| r.0 >= next).collect();
        if fresh.is_empty() {
            assert!(next <= hw, "read to {next}, high watermark {hw}");
            return out;
        }
        for (o, k, v, _) in fresh {
            if let Some(last) = out.last() {
                assert!(o > last.0, "offset {o} after {}", last.0);
            }
            next = o + 1;
            out.push((o, k, v));
        }
    }
}

/// One Fetch (v12) of `partition_max_bytes` from `offset`, waiting up to `max_wait_ms`
/// for one byte: (error code, high watermark, records as served). Asserts nothing.
pub fn fetch_at(
    conn: &mut Conn,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> (i16, i64, Bytes) {
    let p = fetch_partition(conn, 12, topic, 0, offset, max_wait_ms, partition_max_bytes);
    (
        p.error_code,
        p.high_watermark,
        p.records.unwrap_or_default(),
    )
}

/// Produce (v9) of `records` to partition 0 with `acks`: (error code, base offset).
pub fn produce_acks(conn: &mut Conn, topic: &str, records: Bytes, acks: i16) -> (i16, i64) {
    let r = produce_with(conn, 9, acks, topic, 0, records);
    (r.error_code, r.base_offset)
}

/// ListOffsets (v7) of partition 0 at `timestamp` (-1 latest, -2 earliest): the offset.
pub fn list_offset(conn: &mut Conn, topic: &str, timestamp: i64) -> i64 {
    let p = list_offsets_at(conn, topic, 0, timestamp);
    assert_eq!(p.error_code, 0, "{p:?}");
    p.offset
}
