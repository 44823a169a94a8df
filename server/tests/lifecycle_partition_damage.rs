//! Damaged partitions at start: a torn tail of the active segment found after a clean stop
//! is recovered like one after a crash (truncated with a WARN, everything before the cut
//! served), and a partition whose log cannot be opened at all goes offline alone (one
//! ERROR line naming it, KAFKA_STORAGE_ERROR for it in Produce, Fetch, ListOffsets and
//! Metadata) while every other partition on both shards serves and SIGTERM stops cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{
    Broker, Conn, batch, create_topic_with, decode_records, fetch_from, list_offsets_at,
    produce_keyed, produce_to, read_keyed,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// How long a clean stop may take.
const STOP_WITHIN: Duration = Duration::from_secs(10);

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_string()))
}

/// Metadata v12 of one topic: each partition's error code, by partition index.
fn metadata_codes(conn: &mut Conn, topic: &str) -> Vec<i16> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic))),
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    let mut parts: Vec<(i32, i16)> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, code)| code).collect()
}

fn records(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}-{i}"),
                format!("{prefix}-value-{i:04}-{}", "x".repeat(80)),
            )
        })
        .collect()
}

/// Stops the broker with SIGTERM and asserts it exits 0 within `STOP_WITHIN`.
fn stop_cleanly(broker: &mut Broker) {
    let started = Instant::now();
    let status = broker.stop();
    assert!(status.success(), "stop: {status}\n{}", broker.log());
    assert!(
        started.elapsed() < STOP_WITHIN,
        "stop took {:?}",
        started.elapsed()
    );
}

// Proves a torn tail of the active segment found after a clean stop is recovered as after a
// crash: the last 3.5 KB of partition 0's only segment are cut while the broker is stopped;
// on restart the broker logs a WARN, serves exactly the records before the cut from offset
// 0, appends after them, and the other partition is untouched. Before, the clean-shutdown
// mark made the torn tail "corruption" and the whole shard failed to start.
#[test]
fn torn_tail_after_a_clean_stop_is_recovered_with_a_warning() {
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "torn", 2, &[]), 0);
    let written = records("a", 60);
    for chunk in written.chunks(1) {
        produce_keyed(&mut conn, "torn", 0, chunk, 1_000);
    }
    let other = records("b", 5);
    produce_keyed(&mut conn, "torn", 1, &other, 1_000);
    drop(conn);
    stop_cleanly(&mut broker);

    let segment = broker
        .data_dir()
        .join("torn-0")
        .join(format!("{:020}.log", 0));
    let size = std::fs::metadata(&segment).unwrap().len();
    assert!(size > 7_000, "segment only {size} bytes");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(size - 3_500).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let before = broker.log().len();
    broker.restart();
    let mut conn = broker.connect();
    let kept = read_keyed(&mut conn, "torn", 0);
    let restart_log = broker.log()[before..].to_string();
    assert!(
        restart_log
            .lines()
            .any(|l| l.contains("WARN") && l.contains("torn-0") && l.contains("truncating")),
        "no WARN about the torn tail:\n{restart_log}"
    );
    assert!(
        !kept.is_empty() && kept.len() < written.len(),
        "kept {} of {}",
        kept.len(),
        written.len()
    );
    for (i, (offset, k, v)) in kept.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!((k, v), (&written[i].0, &written[i].1));
    }
    produce_keyed(&mut conn, "torn", 0, &records("c", 1), 2_000);
    let after = read_keyed(&mut conn, "torn", 0);
    assert_eq!(after.len(), kept.len() + 1);
    assert_eq!(after.last().unwrap().1, "c-0");
    let got: Vec<(String, String)> = read_keyed(&mut conn, "torn", 1)
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    assert_eq!(got, other);
    broker.assert_running();
}

// Proves a partition whose log cannot be opened (its directory replaced by a regular file
// while the broker is stopped) goes offline alone: one ERROR line names it; Produce, Fetch,
// ListOffsets and Metadata answer KAFKA_STORAGE_ERROR (56) for it; the other partition of
// its topic and both partitions of another topic (both shards) serve reads and writes; and
// SIGTERM stops the broker with status 0. Before, the failed open ended its shard: its
// partitions answered NOT_LEADER_OR_FOLLOWER, nothing was logged, and with shard 0 failed
// SIGTERM was ignored.
#[test]
fn an_unopenable_partition_goes_offline_alone() {
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "bad", 2, &[]), 0);
    assert_eq!(create_topic_with(&mut conn, "good", 2, &[]), 0);
    let mut expected = Vec::new();
    for (topic, p) in [("bad", 0), ("bad", 1), ("good", 0), ("good", 1)] {
        let recs = records(&format!("{topic}{p}"), 3);
        produce_keyed(&mut conn, topic, p, &recs, 1_000);
        expected.push((topic, p, recs));
    }
    drop(conn);
    stop_cleanly(&mut broker);

    let dir = broker.data_dir().join("bad-0");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();

    let before = broker.log().len();
    broker.restart();
    let mut conn = broker.connect();
    let storage = ResponseError::KafkaStorageError.code();
    assert_eq!(
        produce_to(&mut conn, 9, "bad", 0, batch(&[("k", "v", 1)], None)).error_code,
        storage
    );
    assert_eq!(
        fetch_from(&mut conn, "bad", 0, 0, 1 << 20).error_code,
        storage
    );
    assert_eq!(list_offsets_at(&mut conn, "bad", 0, -1).error_code, storage);
    assert_eq!(metadata_codes(&mut conn, "bad"), vec![storage, 0]);
    assert_eq!(metadata_codes(&mut conn, "good"), vec![0, 0]);

    for (topic, p, recs) in expected.iter().filter(|(t, p, _)| (*t, *p) != ("bad", 0)) {
        let got: Vec<(String, String)> = read_keyed(&mut conn, topic, *p)
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect();
        assert_eq!(&got, recs, "{topic}-{p}");
        produce_keyed(&mut conn, topic, *p, &records("more", 1), 2_000);
        assert_eq!(list_offsets_at(&mut conn, topic, *p, -1).error_code, 0);
    }
    let (raw, _) = common::fetch_raw(&mut conn, "good", 1, 3);
    assert_eq!(decode_records(&raw.unwrap())[0].1, "more-0");

    let restart_log = broker.log()[before..].to_string();
    let errors: Vec<&str> = restart_log
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert_eq!(errors.len(), 1, "ERROR lines:\n{restart_log}");
    assert!(
        errors[0].contains("bad-0") && errors[0].contains("offline"),
        "{}",
        errors[0]
    );
    drop(conn);
    stop_cleanly(&mut broker);
}
