//! DescribeConfigs over raw sockets against the real binary: the BROKER resource lists
//! every broker config under Kafka's name with its value, source (flag or environment:
//! STATIC_BROKER_CONFIG, otherwise DEFAULT_CONFIG), type and synonyms; broker names other
//! than this broker's id are refused as Kafka refuses them; topic configs name their
//! broker synonyms.

mod common;

use common::{Broker, BrokerOptions};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn describe(
    conn: &mut common::Conn,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|n| s(n)).collect())),
        ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    resp.results.into_iter().next().unwrap()
}

fn entry<'a>(r: &'a DescribeConfigsResult, name: &str) -> &'a DescribeConfigsResourceResult {
    r.configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

fn value(c: &DescribeConfigsResourceResult) -> Option<&str> {
    c.value.as_ref().map(|v| v.as_str())
}

/// `(name, value, source)` of each synonym, in order.
fn synonyms(c: &DescribeConfigsResourceResult) -> Vec<(String, Option<String>, i8)> {
    c.synonyms
        .iter()
        .map(|y| {
            (
                y.name.to_string(),
                y.value.as_ref().map(|v| v.to_string()),
                y.source,
            )
        })
        .collect()
}

#[test]
fn broker_resource_lists_every_config_with_its_source() {
    // Proves DescribeConfigs(BROKER, "<node id>") answers the full broker config list
    // under Kafka's names, with the values the broker runs with, STATIC_BROKER_CONFIG
    // for what a flag or SLUICE_* variable set and DEFAULT_CONFIG for the rest, all
    // read-only and typed; that a key filter narrows it; and that other names answer as
    // Kafka does. Before the change the BROKER resource answered an empty list.
    let broker = Broker::launch(
        BrokerOptions::default()
            .args(&["--num-partitions", "3", "--node-id", "0"])
            .env(&[("SLUICE_LOG_RETENTION_MS", "3600000")]),
    );
    let mut conn = broker.connect();

    let all = describe(&mut conn, BROKER, "0", None);
    assert_eq!(all.error_code, 0, "{:?}", all.error_message);
    for name in [
        "broker.id",
        "node.id",
        "log.dirs",
        "listeners",
        "advertised.listeners",
        "num.partitions",
        "auto.create.topics.enable",
        "socket.request.max.bytes",
        "log.segment.bytes",
        "log.roll.ms",
        "log.retention.ms",
        "log.retention.bytes",
        "message.max.bytes",
        "log.message.timestamp.type",
        "log.retention.check.interval.ms",
        "log.cleanup.policy",
        "log.cleaner.delete.retention.ms",
        "log.cleaner.min.cleanable.ratio",
        "log.cleaner.min.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "log.cleaner.backoff.ms",
        "offsets.topic.num.partitions",
        "offsets.topic.segment.bytes",
        "offsets.retention.minutes",
        "compression.type",
        "min.insync.replicas",
    ] {
        let c = entry(&all, name);
        assert!(c.read_only, "{name} is not changeable at run time");
        assert!(!c.is_sensitive, "{name}");
        assert!(c.config_type > 0, "{name} has a type");
        assert!(c.documentation.is_none(), "{name}");
    }

    let np = entry(&all, "num.partitions");
    assert_eq!(
        (value(np), np.config_source, np.config_type),
        (Some("3"), SOURCE_STATIC, 3)
    );
    assert_eq!(
        synonyms(np),
        vec![
            ("num.partitions".into(), Some("3".into()), SOURCE_STATIC),
            ("num.partitions".into(), Some("1".into()), SOURCE_DEFAULT),
        ]
    );
    let ret = entry(&all, "log.retention.ms");
    assert_eq!(
        (value(ret), ret.config_source, ret.config_type),
        (Some("3600000"), SOURCE_STATIC, 5),
        "set through the environment"
    );
    let seg = entry(&all, "log.segment.bytes");
    assert_eq!(
        (value(seg), seg.config_source),
        (Some("1073741824"), SOURCE_DEFAULT)
    );
    assert_eq!(
        synonyms(seg),
        vec![(
            "log.segment.bytes".into(),
            Some("1073741824".into()),
            SOURCE_DEFAULT
        )]
    );
    let listeners = entry(&all, "listeners");
    assert_eq!(
        value(listeners),
        Some(format!("PLAINTEXT://{}", broker.addr).as_str())
    );
    assert_eq!(listeners.config_source, SOURCE_STATIC);
    assert_eq!(
        value(entry(&all, "log.dirs")),
        Some(broker.data_dir().display().to_string().as_str())
    );
    assert_eq!(value(entry(&all, "broker.id")), Some("0"));
    assert_eq!(
        value(entry(&all, "auto.create.topics.enable")),
        Some("true")
    );
    assert_eq!(entry(&all, "log.cleanup.policy").config_type, 7, "LIST");

    let some = describe(
        &mut conn,
        BROKER,
        "0",
        Some(&["log.retention.ms", "num.partitions", "no.such.config"]),
    );
    let names: Vec<&str> = some.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.ms", "num.partitions"]);

    let default = describe(&mut conn, BROKER, "", None);
    assert_eq!(default.error_code, 0);
    assert!(
        default.configs.is_empty(),
        "no cluster-wide dynamic defaults"
    );
    for bad in ["7", "zero"] {
        let r = describe(&mut conn, BROKER, bad, None);
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code(), "{bad}");
        assert!(r.configs.is_empty());
    }
    assert_eq!(describe(&mut conn, BROKER_LOGGER, "0", None).error_code, 0);
    assert_eq!(
        describe(&mut conn, BROKER_LOGGER, "", None).error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn topic_configs_name_their_broker_synonyms() {
    // Proves a topic's DescribeConfigs with include_synonyms reports the override as
    // DYNAMIC_TOPIC_CONFIG followed by the broker config it shadows (flag value as
    // STATIC_BROKER_CONFIG, built-in default as DEFAULT_CONFIG), and a config without
    // override takes its value and source from the broker config: retention.ms set by
    // --log-retention-ms is STATIC_BROKER_CONFIG, as Kafka reports it.
    let broker = Broker::start_with(&["--log-retention-ms", "3600000"]);
    let mut conn = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(s("over")))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("60000"))),
            ]),
        CreatableTopic::default()
            .with_name(TopicName(s("plain")))
            .with_num_partitions(1)
            .with_replication_factor(-1),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create);
    assert!(resp.topics.iter().all(|t| t.error_code == 0));

    let over = describe(&mut conn, TOPIC, "over", None);
    let r = entry(&over, "retention.ms");
    assert_eq!((value(r), r.config_source), (Some("60000"), SOURCE_TOPIC));
    assert_eq!(
        synonyms(r),
        vec![
            ("retention.ms".into(), Some("60000".into()), SOURCE_TOPIC),
            (
                "log.retention.ms".into(),
                Some("3600000".into()),
                SOURCE_STATIC
            ),
            (
                "log.retention.ms".into(),
                Some("604800000".into()),
                SOURCE_DEFAULT
            ),
        ]
    );

    let plain = describe(
        &mut conn,
        TOPIC,
        "plain",
        Some(&["retention.ms", "segment.bytes"]),
    );
    assert_eq!(plain.configs.len(), 2);
    let r = entry(&plain, "retention.ms");
    assert_eq!(
        (value(r), r.config_source),
        (Some("3600000"), SOURCE_STATIC)
    );
    let seg = entry(&plain, "segment.bytes");
    assert_eq!(seg.config_source, SOURCE_DEFAULT);
    assert_eq!(
        synonyms(seg),
        vec![(
            "log.segment.bytes".into(),
            Some("1073741824".into()),
            SOURCE_DEFAULT
        )]
    );
}
