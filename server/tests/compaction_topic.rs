//! Log compaction in the real 2-shard binary: a `cleanup.policy=compact` topic with
//! small segments is compacted in the background (`--log-cleaner-backoff-ms`), and what
//! Fetch serves before, during and after is checked against the records produced.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Broker, Conn, batch, decode_records};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "compacted";
const PARTITIONS: i32 = 2;
const KEYS: usize = 20;
const VERSIONS: usize = 150;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(conn: &mut Conn) {
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "3600000"),
    ];
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_num_partitions(PARTITIONS)
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
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

fn produce(conn: &mut Conn, partition: i32, records: &[(String, String)]) {
    let refs: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), 1_000))
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch(&refs, None))),
                ]),
        ]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
}

/// One fetch from `offset`: (records, high watermark).
fn fetch(conn: &mut Conn, partition: i32, offset: i64) -> (Vec<(i64, String, String, i64)>, i64) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(3000),
                ]),
        ]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch at {offset}: {p:?}");
    let recs = p.records.as_ref().map(decode_records).unwrap_or_default();
    (recs, p.high_watermark)
}

/// Reads a partition from offset 0 to its high watermark in small fetches, as a
/// consumer does; offsets must strictly increase. Returns (offset, key, value).
fn read_partition(conn: &mut Conn, partition: i32) -> Vec<(i64, String, String)> {
    let mut out: Vec<(i64, String, String)> = Vec::new();
    let mut next = 0i64;
    loop {
        let (recs, hw) = fetch(conn, partition, next);
        let fresh: Vec<_> = recs.into_iter().filter(|r| r.0 >= next).collect();
        if fresh.is_empty() {
            assert!(next <= hw);
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

/// Every key's newest value must be there, as the last record of that key.
fn check_newest(read: &[(i64, String, String)], partition: i32) {
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (_, k, v) in read {
        last.insert(k, v);
    }
    for key in 0..KEYS {
        let k = format!("p{partition}-key-{key}");
        let want = format!("p{partition}-key-{key}-version-{}", VERSIONS - 1);
        assert_eq!(last.get(k.as_str()).copied(), Some(want.as_str()), "{k}");
    }
}

#[test]
fn compacted_topic_keeps_newest_value_per_key() {
    // Proves background compaction on the real broker: many versions of a few keys over
    // tiny segments shrink to about one record per key within bounded time, offsets
    // keep increasing, every key's newest value survives, and a consumer reading the
    // partitions over and over while compaction runs sees the same guarantees each time.
    let broker = Broker::start_with(&["--log-cleaner-backoff-ms", "200"]);
    let mut conn = broker.connect();
    create(&mut conn);
    for partition in 0..PARTITIONS {
        for version in 0..VERSIONS {
            let records: Vec<(String, String)> = (0..KEYS)
                .map(|key| {
                    (
                        format!("p{partition}-key-{key}"),
                        format!("p{partition}-key-{key}-version-{version}"),
                    )
                })
                .collect();
            produce(&mut conn, partition, &records);
        }
    }
    let produced = KEYS * VERSIONS;

    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU32::new(0));
    let reader = {
        let (stop, scans) = (stop.clone(), scans.clone());
        let addr = broker.addr;
        std::thread::spawn(move || {
            let mut conn = Conn::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                for partition in 0..PARTITIONS {
                    let read = read_partition(&mut conn, partition);
                    check_newest(&read, partition);
                }
                scans.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    let sizes = loop {
        let sizes = (0..PARTITIONS)
            .map(|p| read_partition(&mut conn, p).len())
            .collect::<Vec<_>>();
        // The active segment keeps its duplicates; everything before it is compacted.
        if sizes.iter().all(|n| *n < produced / 5) {
            break sizes;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {sizes:?} of {produced}\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let the reader overlap with later passes too.
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader saw a consistent log");
    assert!(scans.load(Ordering::Relaxed) >= 1);
    for partition in 0..PARTITIONS {
        let read = read_partition(&mut conn, partition);
        check_newest(&read, partition);
        let (_, hw) = fetch(&mut conn, partition, 0);
        assert_eq!(hw, produced as i64, "offsets are kept");
    }
    println!("records left per partition: {sizes:?} of {produced}");
    assert!(broker.log().contains("compacted segments"), "{sizes:?}");
}
