//! Metadata over a raw socket and through kcat: topics are auto-created with the broker's
//! num.partitions, listed back, survive a restart, and a name that is not a legal topic
//! name is refused.

mod common;

use std::process::Command;

use common::Broker;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

fn topic(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
}

#[test]
fn auto_creates_and_survives_restart() {
    // Proves Metadata auto-creates a requested topic with --num-partitions partitions on
    // a 2-shard broker, lists it among all topics, and still lists it after a clean restart.
    let mut broker = Broker::start_with(&["--num-partitions", "4"]);
    let mut conn = broker.connect();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![topic("orders"), topic("bad/name")]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].port, i32::from(broker.addr.port()));
    assert_eq!(resp.topics.len(), 2);
    let orders = &resp.topics[0];
    assert_eq!(orders.error_code, 0);
    assert_eq!(orders.partitions.len(), 4);
    assert!(!orders.topic_id.is_nil());
    assert_eq!(
        resp.topics[1].error_code,
        ResponseError::InvalidTopicException.code()
    );

    // Auto-creation off per request: an unknown topic stays unknown.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![topic("not-created")]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    let id = orders.topic_id;
    drop(conn);
    assert!(broker.stop().success(), "clean shutdown exits 0");
    broker.restart();
    let mut conn = broker.connect();
    let resp: MetadataResponse = conn.call(
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(None),
    );
    // Besides `orders`, only the internal `__consumer_offsets` exists, marked internal.
    assert_eq!(resp.topics.len(), 2);
    let name = |t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic| {
        t.name.as_ref().unwrap().0.to_string()
    };
    let internal = resp.topics.iter().find(|t| name(t) == "__consumer_offsets");
    assert!(internal.unwrap().is_internal);
    let orders = resp.topics.iter().find(|t| name(t) == "orders").unwrap();
    assert!(!orders.is_internal);
    assert_eq!(orders.partitions.len(), 4);
    let resp: MetadataResponse = conn.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let orders = resp.topics.iter().find(|t| name(t) == "orders").unwrap();
    assert_eq!(orders.topic_id, id, "topic id is stable across restarts");
}

#[test]
fn kcat_lists_metadata() {
    // Proves kcat (librdkafka 2.0.2) negotiates ApiVersions with us and reads Metadata,
    // including auto-creation of the topic it asks for.
    let broker = Broker::start();
    let out = Command::new(common::kcat())
        .args([
            "-b",
            &broker.bootstrap(),
            "-L",
            "-t",
            "kcat-topic",
            "-m",
            "10",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kcat failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("topic \"kcat-topic\" with 1 partitions"),
        "{text}"
    );
    assert!(
        text.contains(&format!("broker 0 at {}", broker.bootstrap())),
        "{text}"
    );
}

#[test]
fn flags_come_from_environment_variables() {
    // Proves SLUICE_* variables configure the broker like flags do: SLUICE_NUM_PARTITIONS
    // sets the partition count of auto-created topics and SLUICE_AUTO_CREATE_TOPICS_ENABLE
    // =false turns auto-creation off.
    let broker = Broker::start_env(&[("SLUICE_NUM_PARTITIONS", "3")]);
    let mut conn = broker.connect();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![topic("env-topic")]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    assert_eq!(resp.topics[0].partitions.len(), 3);

    let broker = Broker::start_env(&[("SLUICE_AUTO_CREATE_TOPICS_ENABLE", "false")]);
    let mut conn = broker.connect();
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}
