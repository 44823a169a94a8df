//! AlterConfigs (API 33, KIP-133) and broker resources of IncrementalAlterConfigs over raw
//! sockets against the real binary: the legacy call replaces a topic's overrides (what is
//! not named reverts to the broker default), and changing a broker config, none of which
//! can change at run time, is refused as Kafka refuses a static one.

mod common;

use common::{Broker, Conn, create_topic_with};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Legacy AlterConfigs v`version` of one resource: (error code, message).
fn alter_legacy(
    conn: &mut Conn,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ]);
    let resp: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, version, &req);
    let r = &resp.responses[0];
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name)
    );
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// IncrementalAlterConfigs v1 of one resource with `(name, op, value)`s.
fn alter_incremental(
    conn: &mut Conn,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let resp: IncrementalAlterConfigsResponse = conn.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// (value, source) of each named config of a topic.
fn topic_configs(conn: &mut Conn, topic: &str, names: &[&str]) -> Vec<(String, i8)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(topic)),
    ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0);
    names
        .iter()
        .map(|n| {
            let c = r.configs.iter().find(|c| c.name.as_str() == *n).unwrap();
            (c.value.as_ref().unwrap().to_string(), c.config_source)
        })
        .collect()
}

#[test]
fn legacy_alter_configs_replaces_topic_overrides() {
    // Proves AlterConfigs is advertised (v0-2) and replaces a topic's overrides as a
    // whole: overrides not named (or named with a null value) revert to the broker
    // default, named ones are set; an unknown config or a bad value is INVALID_CONFIG and
    // changes nothing, validate_only changes nothing, an unknown topic is
    // UNKNOWN_TOPIC_OR_PARTITION, and the result survives a restart.
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    let versions: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let ac = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::AlterConfigs as i16)
        .expect("AlterConfigs advertised");
    assert_eq!((ac.min_version, ac.max_version), (0, 2));

    assert_eq!(
        create_topic_with(
            &mut conn,
            "ac",
            1,
            &[("retention.ms", "60000"), ("cleanup.policy", "compact")]
        ),
        0
    );
    let names = [
        "retention.ms",
        "cleanup.policy",
        "segment.bytes",
        "max.message.bytes",
    ];
    let before = topic_configs(&mut conn, "ac", &names);

    let bad = alter_legacy(
        &mut conn,
        2,
        TOPIC,
        "ac",
        &[("no.such.config", Some("1"))],
        false,
    );
    assert_eq!(bad.0, ResponseError::InvalidConfig.code());
    let bad = alter_legacy(
        &mut conn,
        2,
        TOPIC,
        "ac",
        &[("retention.ms", Some("soon"))],
        false,
    );
    assert_eq!(bad.0, ResponseError::InvalidConfig.code());
    let dry = alter_legacy(
        &mut conn,
        0,
        TOPIC,
        "ac",
        &[("segment.bytes", Some("1048576"))],
        true,
    );
    assert_eq!(dry.0, 0);
    assert_eq!(
        topic_configs(&mut conn, "ac", &names),
        before,
        "nothing changed"
    );

    for version in [0, 1, 2] {
        let ok = alter_legacy(
            &mut conn,
            version,
            TOPIC,
            "ac",
            &[
                ("segment.bytes", Some("1048576")),
                ("max.message.bytes", None),
            ],
            false,
        );
        assert_eq!(ok.0, 0, "v{version}: {}", ok.1);
    }
    let after = vec![
        ("604800000".to_string(), SOURCE_DEFAULT),
        ("delete".to_string(), SOURCE_DEFAULT),
        ("1048576".to_string(), SOURCE_TOPIC),
        ("1048588".to_string(), SOURCE_DEFAULT),
    ];
    assert_eq!(topic_configs(&mut conn, "ac", &names), after);
    assert_eq!(
        alter_legacy(&mut conn, 2, TOPIC, "missing", &[], false).0,
        ResponseError::UnknownTopicOrPartition.code()
    );

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(topic_configs(&mut conn, "ac", &names), after);
}

#[test]
fn broker_configs_are_not_changed_at_run_time() {
    // Proves that setting a broker config through IncrementalAlterConfigs or the legacy
    // AlterConfigs is refused as Kafka refuses a static one (INVALID_REQUEST, "Cannot
    // update these configs dynamically" naming them), for this broker's id and the
    // cluster default (""); that a DELETE or an empty change succeeds without effect;
    // that another broker id is INVALID_REQUEST; and that the value stays in force.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let invalid = ResponseError::InvalidRequest.code();

    for name in ["0", ""] {
        let (code, message) = alter_incremental(
            &mut conn,
            BROKER,
            name,
            &[("log.retention.ms", 0, Some("1000"))],
        );
        assert_eq!(code, invalid, "{name:?}");
        assert!(
            message.contains("Cannot update these configs dynamically: Set(log.retention.ms)"),
            "{message}"
        );
    }
    let (code, message) = alter_legacy(
        &mut conn,
        1,
        BROKER,
        "0",
        &[
            ("num.partitions", Some("3")),
            ("log.retention.ms", Some("1000")),
        ],
        false,
    );
    assert_eq!(code, invalid);
    assert!(
        message.contains(
            "Cannot update these configs dynamically: Set(log.retention.ms, num.partitions)"
        ),
        "{message}"
    );
    assert_eq!(
        alter_incremental(&mut conn, BROKER, "0", &[("log.retention.ms", 1, None)]).0,
        0
    );
    assert_eq!(alter_legacy(&mut conn, 1, BROKER, "0", &[], false).0, 0);
    assert_eq!(
        alter_incremental(
            &mut conn,
            BROKER,
            "3",
            &[("log.retention.ms", 0, Some("1"))]
        )
        .0,
        invalid
    );
    assert_eq!(
        alter_legacy(&mut conn, 1, BROKER, "3", &[], false).0,
        invalid
    );

    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s("0"))
            .with_configuration_keys(Some(vec![s("log.retention.ms")])),
    ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    let c = &resp.results[0].configs[0];
    assert_eq!(c.value.as_ref().unwrap().as_str(), "604800000");
}
