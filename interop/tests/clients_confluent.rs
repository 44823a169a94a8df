//! confluent-kafka 2.16.1 for Python (librdkafka 2.16.0 inside its wheel), the newest
//! release, against the real 2-shard broker. Each test runs one case of
//! `tests/python/confluent_cases.py` as a child process (killed past its time limit) and
//! asserts on the JSON it prints: every codec, a two-member group with commits, the admin
//! calls, ListOffsets by timestamp and the idempotent producer.
//!
//! The virtualenv comes from `scripts/install-test-deps.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Broker;
use common::client::{self, python, python_script, run_case};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn confluent(case: &str, broker: &Broker) -> Value {
    let mut command = Command::new(python());
    command.arg(python_script("confluent_cases.py"));
    run_case(command, case, broker, &[], TIMEOUT)
}

#[test]
fn confluent_codecs_round_trip_every_field() {
    // Proves librdkafka 2.16's batches under none, gzip, snappy, lz4 and zstd are stored
    // and served intact: the 10 records of each are acknowledged at offsets 0..9 and read
    // back with the same key (one null), value, both headers and create time.
    let broker = Broker::start();
    client::assert_codecs(&confluent("codecs", &broker));
}

#[test]
fn confluent_two_members_share_a_group_and_commit() {
    // Proves the classic group protocol with two librdkafka members: the range assignor
    // splits 4 partitions 2/2, the 40 records are read once each by their owner, every
    // synchronous commit lands, and OffsetFetch reports each partition's end.
    let broker = Broker::start();
    client::assert_group(&confluent("group", &broker));
}

#[test]
fn confluent_admin_creates_describes_grows_and_deletes_a_topic() {
    // Proves CreateTopics (with a config), Metadata for the topic, DescribeTopics,
    // DescribeConfigs (topic), CreatePartitions and DeleteTopics through the admin
    // client, each checked by the call after it. Auto-creation is off so that the
    // Metadata lookup after the delete cannot bring the topic back.
    let broker = Broker::start_with(&["--auto-create-topics-enable", "false"]);
    client::assert_admin_topics(&confluent("admin_topics", &broker));
}

#[test]
fn confluent_metadata_lists_every_topic() {
    // Proves Metadata for all topics (AdminClient.list_topics()) names the two topics
    // produced to.
    let broker = Broker::start();
    let v = confluent("list_all_topics", &broker);
    let listed: Vec<&str> = v["listed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        listed.contains(&"listed-a") && listed.contains(&"listed-b"),
        "{v}"
    );
}

#[test]
fn confluent_describe_configs_of_the_broker() {
    // Proves DescribeConfigs for the broker resource reports the broker's settings.
    let broker = Broker::start();
    client::assert_broker_configs(&confluent("broker_configs", &broker));
}

#[test]
fn confluent_delete_records_moves_the_log_start() {
    // Proves DeleteRecords: the low watermark, ListOffsets(earliest) and a read from the
    // beginning all move to the requested offset.
    let broker = Broker::start();
    client::assert_delete_records(&confluent("delete_records", &broker));
}

#[test]
fn confluent_list_offsets_earliest_latest_and_by_timestamp() {
    // Proves the admin ListOffsets with each OffsetSpec: earliest 0, latest 10, the
    // record with the largest timestamp (offset 9), the first record at or after a time
    // (offset 4 with its own timestamp), and -1 past the last timestamp.
    let broker = Broker::start();
    let v = confluent("list_offsets", &broker);
    client::assert_list_offsets(&v);
    client::assert_list_offsets_by_time(&v);
    assert_eq!(v["after_last"]["offset"].as_i64(), Some(-1), "{v}");
}

#[test]
fn confluent_offsets_for_times() {
    // Proves the consumer's offsets_for_times (ListOffsets by timestamp) finds the first
    // offset at or after each time, and -1 past the last record.
    let broker = Broker::start();
    client::assert_offsets_for_times(&confluent("offsets_for_times", &broker));
}

#[test]
fn confluent_lists_describes_and_deletes_a_group() {
    // Proves ListGroups, DescribeGroups, OffsetFetch for a whole group and DeleteGroups
    // through the admin client on a group that committed and left.
    let broker = Broker::start();
    client::assert_groups_admin(&confluent("groups_admin", &broker), "confluent-admin-g");
}

#[test]
fn confluent_idempotent_producer() {
    // Proves enable.idempotence=true (InitProducerId, sequence numbers) produces each
    // record exactly once at offsets 0..9.
    let broker = Broker::start();
    client::assert_idempotence(&confluent("idempotence", &broker), "zstd");
}

#[test]
fn confluent_keyless_record_to_compacted_topic_is_refused() {
    // Proves a record without a key sent to a cleanup.policy=compact topic is refused
    // with INVALID_RECORD, as Kafka does.
    let broker = Broker::start();
    client::assert_compacted_keyless_refused(&confluent("compacted_keyless", &broker));
}

#[test]
fn confluent_reports_authorized_operations() {
    // Proves DescribeTopics and DescribeCluster with include_authorized_operations report
    // the operations allowed (all of them, with no ACLs configured).
    let broker = Broker::start();
    let v = confluent("authorized_operations", &broker);
    for (what, want) in [
        ("topic", ["READ", "WRITE", "DESCRIBE"]),
        ("cluster", ["DESCRIBE", "ALTER", "CREATE"]),
    ] {
        let ops: Vec<&str> = v[what]
            .as_array()
            .unwrap_or_else(|| panic!("no {what} operations: {v}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for op in want {
            assert!(ops.contains(&op), "{what}: {ops:?} lacks {op}");
        }
    }
}

#[test]
fn confluent_deleting_a_topic_drops_its_committed_offsets() {
    // Proves that once a topic is deleted, a group's committed offsets for it are gone
    // (Kafka removes them), while the group's offsets for other topics stay.
    let broker = Broker::start();
    let v = confluent("deleted_topic_offsets", &broker);
    assert_eq!(v["before"]["doomed-0"].as_i64(), Some(4), "{v}");
    assert_eq!(v["after"]["kept-0"].as_i64(), Some(4), "{v}");
    assert!(v["after"].get("doomed-0").is_none(), "{v}");
}

#[test]
fn confluent_static_member_expires_after_session_timeout() {
    // Proves a static member (group.instance.id) that closes without LeaveGroup is
    // removed once session.timeout.ms passes: the other member then owns both partitions,
    // no sooner than the session timeout and within 15 s after it.
    let broker = Broker::start();
    let v = confluent("static_member_expiry", &broker);
    assert_eq!(v["before"], serde_json::json!([[0], [1]]), "{v}");
    assert_eq!(v["after"], serde_json::json!([0, 1]), "{v}");
    let took = v["took_ms"].as_i64().unwrap();
    assert!(took >= 5000, "expired before the session timeout: {v}");
}
