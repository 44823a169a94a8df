//! Durability and retention against the real binary: every record acknowledged with
//! acks=all survives a SIGKILL of the broker, and a topic's retention.bytes (set through
//! IncrementalAlterConfigs after creation) deletes old segments on the next check.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, Conn, batch, decode_records, list_offsets_at};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn produce(conn: &mut Conn, topic: &str, partition: i32, records: Bytes, acks: i16) -> (i16, i64) {
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
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 9, &req);
    let r = &resp.responses[0].partition_responses[0];
    (r.error_code, r.base_offset)
}

fn read_all(conn: &mut Conn, topic: &str, partition: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(4 << 20),
                    ]),
            ]);
        let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let recs = decode_records(p.records.as_ref().unwrap());
        if recs.is_empty() {
            return out;
        }
        offset = recs.last().unwrap().0 + 1;
        out.extend(recs.into_iter().map(|r| r.2));
    }
}

fn earliest(conn: &mut Conn, topic: &str) -> i64 {
    list_offsets_at(conn, topic, 0, -2).offset
}

#[test]
fn acknowledged_records_survive_sigkill() {
    // Proves that every batch acknowledged under acks=all on partitions of both shards
    // is readable after the broker is killed with SIGKILL and restarted (recovery path).
    let mut broker = Broker::start_with(&["--num-partitions", "2"]);
    let mut conn = broker.connect();
    let mut acked = [Vec::new(), Vec::new()];
    for i in 0..300 {
        let p = i % 2;
        let v = format!("value-{i}");
        let (err, _) = produce(
            &mut conn,
            "crash",
            p as i32,
            batch(&[("k", &v, 1)], None),
            -1,
        );
        assert_eq!(err, 0);
        acked[p].push(v);
    }
    drop(conn);
    broker.crash();
    broker.restart();
    let mut conn = broker.connect();
    for (p, acked) in acked.iter().enumerate() {
        assert_eq!(
            &read_all(&mut conn, "crash", p as i32),
            acked,
            "partition {p}"
        );
    }
}

#[test]
fn retention_bytes_set_later_deletes_old_segments() {
    // Proves a retention.bytes override applied with IncrementalAlterConfigs reaches the
    // partition's log: with small segments, the next retention check moves the log start
    // offset forward and earlier records are no longer served.
    let broker = Broker::start_with(&["--log-retention-check-interval-ms", "200"]);
    let mut conn = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(s("short")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(s("segment.bytes"))
                    .with_value(Some(s("4096"))),
            ]),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(resp.topics[0].error_code, 0);
    let payload = "r".repeat(900);
    // Current timestamps, so retention.ms (7 days by default) deletes nothing by time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..40 {
        assert_eq!(
            produce(
                &mut conn,
                "short",
                0,
                batch(&[("k", &payload, now_ms)], None),
                -1
            )
            .0,
            0
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        earliest(&mut conn, "short"),
        0,
        "nothing deleted before retention.bytes is set"
    );
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("short"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(s("8192"))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        conn.call(ApiKey::IncrementalAlterConfigs, 1, &alter);
    assert_eq!(resp.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let start = loop {
        let e = earliest(&mut conn, "short");
        if e > 0 {
            break e;
        }
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        start >= 20,
        "most of the 40 KB went: log start offset {start}"
    );
    let left = read_all_from(&mut conn, start);
    assert_eq!(left, 40 - start as usize);
}

fn read_all_from(conn: &mut Conn, from: i64) -> usize {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s("short")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(from)
                        .with_partition_max_bytes(4 << 20),
                ]),
        ]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req);
    decode_records(resp.responses[0].partitions[0].records.as_ref().unwrap()).len()
}
