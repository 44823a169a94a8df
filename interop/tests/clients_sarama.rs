//! Sarama 1.22.1 as Debian 12 ships it (golang-github-shopify-sarama-dev, built offline
//! with Debian's Go 1.19 in GOPATH mode), configured as `sarama.V2_0_0_0`, against the
//! real 2-shard broker. Each test runs one case of `go/sarama_cases.go` (built by
//! `scripts/install-test-deps.sh`) as a child process (killed past its time limit) and
//! asserts on the JSON it prints: every codec (zstd refused, as Kafka refuses it below
//! Produce v7), a two-member group with commits, the admin
//! calls Sarama 1.22 has, ListOffsets by timestamp and the idempotent producer.
//!
//! As V2_0_0_0 Sarama 1.22 sends no ApiVersions and Produce v3, Fetch v4, ListOffsets
//! v1, Metadata v0 and v5, JoinGroup v1, OffsetCommit v1 (v2 once
//! Consumer.Offsets.Retention is set), OffsetFetch v1, CreateTopics v2, DeleteTopics v1,
//! DeleteRecords v0, DescribeConfigs v0 and v0 of the other group and admin requests.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Broker;
use common::client::{self, run_case, sarama_cases};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn sarama(case: &str, broker: &Broker) -> Value {
    run_case(Command::new(sarama_cases()), case, broker, &[], TIMEOUT)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn sarama_codecs_round_trip_every_field() {
    // Proves Sarama's v2 record batches (Produce v3) under none, gzip, snappy and lz4
    // are stored and served (Fetch v4) intact: the 10 records of each are acknowledged
    // at offsets 0..9 and read back with the same key (one null), value, headers and
    // create time. Its zstd batches are refused with UNSUPPORTED_COMPRESSION_TYPE, as
    // Kafka refuses zstd below Produce v7.
    let broker = Broker::start();
    let v = sarama("codecs", &broker);
    client::assert_codecs_of(&v, &["none", "gzip", "snappy", "lz4"]);
    let zstd = v["codecs"]["zstd"]["error"].as_str().unwrap_or_default();
    assert!(
        zstd.ends_with("does not support the compression type of given partition."),
        "{v}"
    );
}

#[test]
fn sarama_two_members_share_a_group_and_commit() {
    // Proves Sarama's ConsumerGroup with its default offset settings (OffsetCommit v1):
    // two members split 4 partitions 2/2, read the 40 records once each, and the offset
    // manager's commits reach each partition's end.
    let broker = Broker::start();
    client::assert_group(&sarama("group", &broker));
}

#[test]
fn sarama_two_members_share_a_group_and_commit_with_retention() {
    // Proves the same group with Consumer.Offsets.Retention set (OffsetCommit v2): two
    // members split 4 partitions 2/2, read the 40 records once each, and the offset
    // manager's commits reach each partition's end (OffsetFetch v1).
    let broker = Broker::start();
    client::assert_group(&sarama("group_retention", &broker));
}

#[test]
fn sarama_admin_creates_describes_grows_and_deletes_a_topic() {
    // Proves CreateTopics (with a config), Metadata (DescribeTopics), CreatePartitions
    // and DeleteTopics through Sarama's ClusterAdmin, each checked by the call after it.
    let broker = Broker::start();
    let v = sarama("topics_lifecycle", &broker);
    assert!(names(&v["listed"]).contains(&"admin-t"), "{v}");
    assert_eq!(v["described"]["name"].as_str(), Some("admin-t"), "{v}");
    assert_eq!(v["described"]["partitions"].as_i64(), Some(3), "{v}");
    assert_eq!(v["partitions_after"].as_i64(), Some(5), "{v}");
    assert!(
        !names(&v["listed_after_delete"]).contains(&"admin-t"),
        "{v}"
    );
}

#[test]
fn sarama_admin_list_topics_with_their_configs() {
    // Proves ClusterAdmin.ListTopics, which Sarama 1.22 builds from Metadata and a
    // DescribeConfigs v0 per topic: the new topic is listed with 3 partitions and its
    // retention.ms.
    let broker = Broker::start();
    let v = sarama("list_topics", &broker);
    assert_eq!(v["listed"].as_bool(), Some(true), "{v}");
    assert_eq!(v["partitions"].as_i64(), Some(3), "{v}");
    assert_eq!(
        v["configs"]["retention.ms"].as_str(),
        Some("3600000"),
        "{v}"
    );
}

#[test]
fn sarama_describe_configs_of_a_topic() {
    // Proves DescribeConfigs v0 for a topic reports its configs (the defaults here).
    let broker = Broker::start();
    let v = sarama("topic_configs", &broker);
    let configs = &v["topic_configs"];
    assert_eq!(configs["cleanup.policy"].as_str(), Some("delete"), "{v}");
    assert_eq!(configs["retention.ms"].as_str(), Some("604800000"), "{v}");
}

#[test]
fn sarama_describe_configs_of_the_broker() {
    // Proves DescribeConfigs v0 for the broker resource reports the broker's settings.
    let broker = Broker::start();
    client::assert_broker_configs(&sarama("broker_configs", &broker));
}

#[test]
fn sarama_delete_records_moves_the_log_start() {
    // Proves DeleteRecords: ListOffsets(earliest) and a read from the oldest offset both
    // move to the requested offset.
    let broker = Broker::start();
    client::assert_delete_records(&sarama("delete_records", &broker));
}

#[test]
fn sarama_list_offsets_oldest_and_newest() {
    // Proves Client.GetOffset (ListOffsets v1) for OffsetOldest and OffsetNewest on 10
    // records: 0 and 10.
    let broker = Broker::start();
    client::assert_list_offsets(&sarama("list_offsets", &broker));
}

#[test]
fn sarama_offsets_for_times() {
    // Proves Client.GetOffset with a time (ListOffsets v1 by timestamp) on records
    // Sarama wrote: the first offset at or after each time, and -1 past the last record.
    let broker = Broker::start();
    client::assert_offsets_for_times(&sarama("offsets_for_times", &broker));
}

#[test]
fn sarama_lists_and_describes_a_group() {
    // Proves ListGroups, DescribeGroups and OffsetFetch through Sarama's ClusterAdmin on
    // a group whose offset was committed by an OffsetManager (OffsetCommit v2). Sarama
    // 1.22 has no DeleteGroups.
    let broker = Broker::start();
    let v = sarama("groups_admin", &broker);
    assert!(names(&v["listed"]).contains(&"sarama-admin-g"), "{v}");
    assert_eq!(v["described"]["state"].as_str(), Some("Empty"), "{v}");
    assert_eq!(v["described"]["members"].as_i64(), Some(0), "{v}");
    assert_eq!(v["offsets"]["grouped-admin-0"].as_i64(), Some(4), "{v}");
}

#[test]
fn sarama_idempotent_producer() {
    // Proves Producer.Idempotent (InitProducerId, sequence numbers, one request in
    // flight) produces each record exactly once at offsets 0..9 (lz4: Kafka refuses the
    // zstd Sarama 1.22 would send at Produce v3).
    let broker = Broker::start();
    client::assert_idempotence(&sarama("idempotence", &broker), "lz4");
}

#[test]
fn sarama_keyless_record_to_compacted_topic_is_refused() {
    // Proves a record without a key sent to a cleanup.policy=compact topic is refused
    // with error 87 (INVALID_RECORD), as Kafka does.
    let broker = Broker::start();
    client::assert_compacted_keyless_refused(&sarama("compacted_keyless", &broker));
}
