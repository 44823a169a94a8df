//! Metadata and DescribeCluster. Metadata answers from this shard's read-only topic
//! table; unknown topics are created through shard 0 first when auto-creation is on and
//! the client allows it. The broker list is this single broker.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::mesh::{NewTopic, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::{ShardId, TopicMeta, is_internal, valid_topic_name};

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Without an authorizer Kafka reports every operation valid for a resource type as
/// authorized, as a bit set of AclOperation codes. A topic: READ (3), WRITE (4),
/// CREATE (5), DELETE (6), ALTER (7), DESCRIBE (8), DESCRIBE_CONFIGS (10) and
/// ALTER_CONFIGS (11).
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// The cluster: CREATE (5), ALTER (7), DESCRIBE (8), CLUSTER_ACTION (9),
/// DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11) and IDEMPOTENT_WRITE (12).
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// The authorized operations to report: all of `operations` when asked, else Kafka's
/// "not requested" marker.
fn authorized(asked: bool, operations: i32) -> i32 {
    if asked {
        operations
    } else {
        OPERATIONS_OMITTED
    }
}

/// Creates `names` with the broker defaults through shard 0. Topics that already exist
/// (a race with another client) count as success; errors are left for the caller to
/// discover in the table.
pub async fn auto_create(shard: &Rc<Shard>, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let topics = names
        .into_iter()
        .map(|name| NewTopic {
            name,
            partitions: shard.args.num_partitions,
            configs: BTreeMap::new(),
        })
        .collect();
    let _ = shard
        .ask(ShardId(0), |reply| ShardRequest::CreateTopics {
            topics,
            validate_only: false,
            reply,
        })
        .await;
}

/// A topic's entry; a partition whose log could not be opened reports KAFKA_STORAGE_ERROR
/// with this broker as its offline replica, as Kafka reports an offline partition.
fn topic_entry(
    shard: &Shard,
    meta: &TopicMeta,
    node_id: i32,
    operations: i32,
) -> MetadataResponseTopic {
    let partitions = (0..meta.partition_count())
        .map(|p| {
            let entry = MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)]);
            if shard.is_offline(&meta.name, p) {
                entry
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_offline_replicas(vec![BrokerId(node_id)])
            } else {
                entry
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            meta.name.to_string(),
        ))))
        .with_topic_id(meta.id)
        .with_is_internal(is_internal(&meta.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(operations)
}

fn error_entry(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

pub async fn handle(shard: &Rc<Shard>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node_id = shard.args.node_id;
    let (host, port) = shard.args.advertised();
    let topic_operations = authorized(
        req.include_topic_authorized_operations,
        TOPIC_AUTHORIZED_OPERATIONS,
    );
    // Asked for in v8-v10 only; later versions use DescribeCluster.
    let cluster_operations = authorized(
        req.include_cluster_authorized_operations,
        CLUSTER_AUTHORIZED_OPERATIONS,
    );
    // Before v4 there is no flag and the broker setting alone decides.
    let allow_create =
        shard.args.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);

    let topics = match req.topics {
        // Before v1 an empty list means every topic; from v1 on null does.
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list),
    };
    let entries = match topics {
        None => {
            let table = shard.table();
            table
                .topics()
                .map(|m| topic_entry(shard, m, node_id, topic_operations))
                .collect()
        }
        Some(list) => {
            if allow_create {
                let table = shard.table();
                let mut missing: Vec<String> = list
                    .iter()
                    .filter_map(|t| t.name.as_ref())
                    .map(|n| n.0.to_string())
                    .filter(|n| valid_topic_name(n) && table.get(n).is_none())
                    .collect();
                missing.sort();
                missing.dedup();
                auto_create(shard, missing).await;
            }
            let table = shard.table();
            list.iter()
                .map(|t| match &t.name {
                    Some(name) => {
                        let name = name.0.as_str();
                        match table.get(name) {
                            Some(meta) => topic_entry(shard, meta, node_id, topic_operations),
                            None if !valid_topic_name(name) => error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::InvalidTopicException,
                            ),
                            None => error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::UnknownTopicOrPartition,
                            ),
                        }
                    }
                    None => match table.get_by_id(&t.topic_id) {
                        Some(meta) => topic_entry(shard, meta, node_id, topic_operations),
                        None => error_entry(None, t.topic_id, ResponseError::UnknownTopicId),
                    },
                })
                .collect()
        }
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node_id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
        ])
        .with_cluster_id(Some(StrBytes::from_string(shard.cluster_id.to_string())))
        .with_controller_id(BrokerId(node_id))
        .with_topics(entries)
        .with_cluster_authorized_operations(cluster_operations)
}

pub fn describe_cluster(
    shard: &Rc<Shard>,
    req: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = shard.args.advertised();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(shard.cluster_id.to_string()))
        .with_controller_id(BrokerId(shard.args.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(shard.args.node_id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
        ])
        .with_cluster_authorized_operations(authorized(
            req.include_cluster_authorized_operations,
            CLUSTER_AUTHORIZED_OPERATIONS,
        ))
}
