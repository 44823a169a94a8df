//! KafkaJS 2.2.4, the newest release (pure JavaScript on node; snappy through
//! kafkajs-snappy, lz4 and zstd through the codecs in `js/cases.js`), against the real
//! 2-shard broker. Each test runs one case of `js/cases.js` as a child process (killed
//! past its time limit) and asserts on the JSON it prints: every codec, a two-member group
//! with commits, the admin calls, ListOffsets by timestamp and the idempotent producer.
//!
//! `scripts/install-test-deps.sh` installs KafkaJS into `interop/js/node_modules`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Broker;
use common::client::{self, js_dir, run_case};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn kafkajs(case: &str, broker: &Broker) -> Value {
    let mut command = Command::new("node");
    command.arg(js_dir().join("cases.js"));
    run_case(command, case, broker, &[], TIMEOUT)
}

#[test]
fn kafkajs_codecs_round_trip_every_field() {
    // Proves KafkaJS batches under none, gzip, snappy, lz4 and zstd are stored and served
    // intact: the 10 records of each are acknowledged at offsets 0..9 and read back with
    // the same key (one null), value, headers and create time.
    let broker = Broker::start();
    client::assert_codecs(&kafkajs("codecs", &broker));
}

#[test]
fn kafkajs_two_members_share_a_group_and_commit() {
    // Proves the classic group protocol with two KafkaJS members: 4 partitions split 2/2
    // after the second member's join rebalances the first, the 40 records read once each
    // by their owner with a commit each, and OffsetFetch reports each partition's end.
    let broker = Broker::start();
    client::assert_group(&kafkajs("group", &broker));
}

#[test]
fn kafkajs_admin_creates_describes_grows_and_deletes_a_topic() {
    // Proves CreateTopics (with a config), Metadata, DescribeConfigs (topic),
    // CreatePartitions and DeleteTopics through the KafkaJS admin, each checked by the
    // call after it.
    let broker = Broker::start();
    client::assert_admin_topics(&kafkajs("admin_topics", &broker));
}

#[test]
fn kafkajs_describe_configs_of_the_broker() {
    // Proves DescribeConfigs for the broker resource reports the broker's settings.
    let broker = Broker::start();
    client::assert_broker_configs(&kafkajs("broker_configs", &broker));
}

#[test]
fn kafkajs_delete_records_moves_the_log_start() {
    // Proves deleteTopicRecords (DeleteRecords): the low watermark reported by ListOffsets
    // and a read from the beginning both move to the requested offset.
    let broker = Broker::start();
    client::assert_delete_records(&kafkajs("delete_records", &broker));
}

#[test]
fn kafkajs_list_offsets_earliest_latest_and_by_timestamp() {
    // Proves fetchTopicOffsets (ListOffsets earliest and latest) and
    // fetchTopicOffsetsByTimestamp on 10 records: 0, 10, and 4 for a time between the
    // create times of records 3 and 4.
    let broker = Broker::start();
    let v = kafkajs("list_offsets", &broker);
    client::assert_list_offsets(&v);
    assert_eq!(v["at_3500"]["offset"].as_i64(), Some(4), "{v}");
}

#[test]
fn kafkajs_offsets_for_times() {
    // Proves ListOffsets by timestamp through KafkaJS: the first offset at or after each
    // time; past the last record the broker's -1 becomes the high watermark (10), which
    // is what KafkaJS reports for "no such offset".
    let broker = Broker::start();
    let v = kafkajs("offsets_for_times", &broker);
    assert_eq!(v["before_first"].as_i64(), Some(0), "{v}");
    assert_eq!(v["at_3500"].as_i64(), Some(4), "{v}");
    assert_eq!(v["at_9000"].as_i64(), Some(9), "{v}");
    assert_eq!(v["after_last"].as_i64(), Some(10), "{v}");
}

#[test]
fn kafkajs_lists_describes_and_deletes_a_group() {
    // Proves ListGroups, DescribeGroups, OffsetFetch and DeleteGroups through the KafkaJS
    // admin on a group that committed and left.
    let broker = Broker::start();
    client::assert_groups_admin(&kafkajs("groups_admin", &broker), "kafkajs-admin-g");
}

#[test]
fn kafkajs_idempotent_producer() {
    // Proves the idempotent producer (InitProducerId, sequence numbers) produces each
    // record exactly once at offsets 0..9.
    let broker = Broker::start();
    client::assert_idempotence(&kafkajs("idempotence", &broker), "zstd");
}

#[test]
fn kafkajs_keyless_record_to_compacted_topic_is_refused() {
    // Proves a record without a key sent to a cleanup.policy=compact topic is refused
    // with INVALID_RECORD, as Kafka does.
    let broker = Broker::start();
    client::assert_compacted_keyless_refused(&kafkajs("compacted_keyless", &broker));
}
