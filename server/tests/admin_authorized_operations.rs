//! Authorized operations without an authorizer, over raw sockets against the real
//! binary: asked for, Metadata (topic and cluster), DescribeCluster and DescribeGroups
//! report every operation Kafka defines for the resource type as a bit set of
//! AclOperation codes; not asked for, Kafka's i32::MIN marker.

mod common;

use common::{Broker, Conn, create_topic_with};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
fn bits(codes: &[i32]) -> i32 {
    codes.iter().fold(0, |acc, c| acc | (1 << c))
}

fn metadata(conn: &mut Conn, version: i16, topics: bool, cluster: bool) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("ops")))),
        ]))
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(topics)
        .with_include_cluster_authorized_operations(cluster);
    conn.call(ApiKey::Metadata, version, &req)
}

#[test]
fn every_operation_is_authorized_when_asked() {
    // Proves that, with no authorizer, a client asking for authorized operations gets
    // all of Kafka's operations for topics (READ, WRITE, CREATE, DELETE, ALTER,
    // DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS), the cluster (CREATE, ALTER, DESCRIBE,
    // CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE) and groups
    // (READ, DELETE, DESCRIBE), and i32::MIN when it does not ask. Before the change
    // Metadata and DescribeCluster answered i32::MIN even when asked.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "ops", 1, &[]), 0);
    let topic_ops = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    let cluster_ops = bits(&[5, 7, 8, 9, 10, 11, 12]);

    let m = metadata(&mut conn, 10, true, true);
    assert_eq!(m.topics[0].error_code, 0);
    assert_eq!(m.topics[0].topic_authorized_operations, topic_ops);
    assert_eq!(m.cluster_authorized_operations, cluster_ops);
    let m = metadata(&mut conn, 12, true, false);
    assert_eq!(m.topics[0].topic_authorized_operations, topic_ops);
    let m = metadata(&mut conn, 10, false, false);
    assert_eq!(m.topics[0].topic_authorized_operations, i32::MIN);
    assert_eq!(m.cluster_authorized_operations, i32::MIN);

    for (asked, expected) in [(true, cluster_ops), (false, i32::MIN)] {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(asked);
        let d: DescribeClusterResponse = conn.call(ApiKey::DescribeCluster, 1, &req);
        assert_eq!(d.error_code, 0);
        assert_eq!(d.cluster_authorized_operations, expected, "asked: {asked}");
    }

    for (asked, expected) in [(true, bits(&[3, 6, 8])), (false, i32::MIN)] {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("no-such-group"))])
            .with_include_authorized_operations(asked);
        let d: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, 5, &req);
        assert_eq!(
            d.groups[0].authorized_operations, expected,
            "asked: {asked}"
        );
    }
}
