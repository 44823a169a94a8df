//! Topic administration over raw sockets against the real binary: CreateTopics with
//! validate_only and configs, DescribeConfigs, IncrementalAlterConfigs, CreatePartitions,
//! DeleteTopics, and InitProducerId, with everything checked again after a restart.

mod common;

use common::Broker;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn new_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

fn describe(conn: &mut common::Conn, topic: &str) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic)),
    ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    resp.results.into_iter().next().unwrap()
}

fn config_value(r: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let c = r.configs.iter().find(|c| c.name.as_str() == name).unwrap();
    (c.value.as_ref().unwrap().to_string(), c.config_source)
}

fn partition_count(conn: &mut common::Conn, topic: &str) -> usize {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    resp.topics[0].partitions.len()
}

#[test]
fn topic_lifecycle_survives_restart() {
    // Proves create (with validation-only, bad configs, duplicates), describe, alter,
    // grow and delete behave as Kafka's do and that the results are persisted.
    let mut broker = Broker::start();
    let mut conn = broker.connect();

    let req = CreateTopicsRequest::default()
        .with_topics(vec![new_topic("dry", 3, &[])])
        .with_validate_only(true);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(
        partition_count(&mut conn, "dry"),
        0,
        "validate_only creates nothing"
    );

    let req = CreateTopicsRequest::default().with_topics(vec![
        new_topic(
            "t1",
            3,
            &[("retention.ms", "60000"), ("cleanup.policy", "compact")],
        ),
        new_topic("t2", 2, &[("retention.ms", "soon")]),
        new_topic("t3", 0, &[]),
        new_topic("bad name", 1, &[]),
        new_topic("t4", -1, &[]),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req);
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidTopicException.code(),
            0
        ]
    );
    assert_eq!(resp.topics[0].num_partitions, 3);
    assert!(!resp.topics[0].topic_id.is_nil());
    assert_eq!(resp.topics[4].num_partitions, 1, "-1 takes num.partitions");

    let resp: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![new_topic("t1", 1, &[])]),
    );
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );

    let d = describe(&mut conn, "t1");
    assert_eq!(d.error_code, 0);
    assert_eq!(config_value(&d, "retention.ms"), ("60000".to_string(), 1));
    assert_eq!(
        config_value(&d, "cleanup.policy"),
        ("compact".to_string(), 1)
    );
    assert_eq!(config_value(&d, "segment.bytes").1, 5, "default source");

    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t1"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(1),
                AlterableConfig::default()
                    .with_name(s("max.message.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(s("2048"))),
            ]),
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t1"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("no.such.config"))
                    .with_config_operation(0)
                    .with_value(Some(s("1"))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse = conn.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        resp.responses[1].error_code,
        ResponseError::InvalidConfig.code()
    );

    let req = CreatePartitionsRequest::default().with_topics(vec![
        CreatePartitionsTopic::default()
            .with_name(TopicName(s("t1")))
            .with_count(5),
        CreatePartitionsTopic::default()
            .with_name(TopicName(s("t4")))
            .with_count(1),
    ]);
    let resp: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 3, &req);
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(
        resp.results[1].error_code,
        ResponseError::InvalidPartitions.code()
    );
    assert_eq!(partition_count(&mut conn, "t1"), 5);

    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(s("t4")), TopicName(s("nope"))]);
    let resp: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 5, &req);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        resp.responses[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(
        !broker.data_dir().join("t4-0").exists(),
        "partition files removed"
    );

    let first: InitProducerIdResponse = conn.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(first.error_code, 0);
    let second: InitProducerIdResponse = conn.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert!(second.producer_id.0 > first.producer_id.0);

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(partition_count(&mut conn, "t1"), 5);
    assert_eq!(partition_count(&mut conn, "t4"), 0);
    let d = describe(&mut conn, "t1");
    assert_eq!(
        config_value(&d, "max.message.bytes"),
        ("2048".to_string(), 1)
    );
    assert_eq!(
        config_value(&d, "retention.ms").1,
        5,
        "deleted override is back to default"
    );
    let third: InitProducerIdResponse = conn.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert!(
        third.producer_id.0 > second.producer_id.0,
        "producer ids never repeat across restarts"
    );
}
