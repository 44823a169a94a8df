//! kafka-python 3.0.12, the newest release (pure Python, with python-snappy, lz4 and
//! zstandard for its codecs), against the real 2-shard broker. Each test runs one case of
//! `tests/python/kafka_python_cases.py` as a child process (killed past its time limit)
//! and asserts on the JSON it prints: every codec, a two-member group with commits, the
//! admin calls, ListOffsets by timestamp and the idempotent producer.
//!
//! The virtualenv comes from `scripts/install-test-deps.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Broker;
use common::client::{self, python, python_script, run_case};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn kafka_python(case: &str, broker: &Broker) -> Value {
    let mut command = Command::new(python());
    command.arg(python_script("kafka_python_cases.py"));
    run_case(command, case, broker, &[], TIMEOUT)
}

#[test]
fn kafka_python_codecs_round_trip_every_field() {
    // Proves kafka-python's batches under none, gzip, snappy (xerial framing), lz4 and
    // zstd are stored and served intact: the 10 records of each are acknowledged at
    // offsets 0..9 and read back with the same key (one null), value, headers and time.
    let broker = Broker::start();
    client::assert_codecs(&kafka_python("codecs", &broker));
}

#[test]
fn kafka_python_two_members_share_a_group_and_commit() {
    // Proves the classic group protocol with two kafka-python members (one thread each):
    // 4 partitions split 2/2, the 40 records read once each by their owner with a
    // synchronous commit each, and OffsetFetch reports each partition's end.
    let broker = Broker::start();
    client::assert_group(&kafka_python("group", &broker));
}

#[test]
fn kafka_python_admin_creates_describes_grows_and_deletes_a_topic() {
    // Proves CreateTopics (with a config), Metadata, DescribeConfigs (topic, all
    // configs), CreatePartitions and DeleteTopics through KafkaAdminClient, each checked
    // by the call after it.
    let broker = Broker::start();
    client::assert_admin_topics(&kafka_python("admin_topics", &broker));
}

#[test]
fn kafka_python_describe_configs_of_the_broker() {
    // Proves DescribeConfigs for the broker resource reports the broker's settings.
    let broker = Broker::start();
    client::assert_broker_configs(&kafka_python("broker_configs", &broker));
}

#[test]
fn kafka_python_delete_records_moves_the_log_start() {
    // Proves DeleteRecords: the low watermark, ListOffsets(earliest) and a read from the
    // beginning all move to the requested offset.
    let broker = Broker::start();
    client::assert_delete_records(&kafka_python("delete_records", &broker));
}

#[test]
fn kafka_python_list_offsets_earliest_latest_and_by_timestamp() {
    // Proves ListOffsets through the admin client (earliest, latest, max timestamp, a
    // time) and through the consumer (beginning_offsets, end_offsets).
    let broker = Broker::start();
    let v = kafka_python("list_offsets", &broker);
    client::assert_list_offsets(&v);
    client::assert_list_offsets_by_time(&v);
    assert_eq!(v["consumer"]["beginning"].as_i64(), Some(0), "{v}");
    assert_eq!(v["consumer"]["end"].as_i64(), Some(10), "{v}");
}

#[test]
fn kafka_python_offsets_for_times() {
    // Proves the consumer's offsets_for_times (ListOffsets by timestamp) finds the first
    // offset at or after each time, and none past the last record.
    let broker = Broker::start();
    client::assert_offsets_for_times(&kafka_python("offsets_for_times", &broker));
}

#[test]
fn kafka_python_lists_describes_and_deletes_a_group() {
    // Proves ListGroups, DescribeGroups, OffsetFetch for a whole group and DeleteGroups
    // through KafkaAdminClient on a group that committed and left.
    let broker = Broker::start();
    client::assert_groups_admin(
        &kafka_python("groups_admin", &broker),
        "kafka-python-admin-g",
    );
}

#[test]
fn kafka_python_idempotent_producer() {
    // Proves enable_idempotence=True (InitProducerId, sequence numbers) produces each
    // record exactly once at offsets 0..9.
    let broker = Broker::start();
    client::assert_idempotence(&kafka_python("idempotence", &broker), "zstd");
}

#[test]
fn kafka_python_keyless_record_to_compacted_topic_is_refused() {
    // Proves a record without a key sent to a cleanup.policy=compact topic is refused
    // with INVALID_RECORD (kafka-python: InvalidRecordError), as Kafka does.
    let broker = Broker::start();
    client::assert_compacted_keyless_refused(&kafka_python("compacted_keyless", &broker));
}
