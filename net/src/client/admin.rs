//! Request builders for the APIs the client uses, and admin calls on a [`Connection`].
//!
//! Builders are pure functions so that their encodings can be checked against
//! `kafka-protocol`'s decoders. Where a request's shape depends on the version (DeleteTopics
//! names topics differently from v6), the builder takes the negotiated version.

use bytes::Bytes;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::connection::{CallError, Connection, SendError};

/// DescribeConfigs/IncrementalAlterConfigs resource type of a topic.
pub const RESOURCE_TYPE_TOPIC: i8 = 2;
/// ListOffsets timestamp asking for the log end offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// IncrementalAlterConfigs operations.
pub const CONFIG_OP_SET: i8 = 0;
pub const CONFIG_OP_DELETE: i8 = 1;

/// A Kafka error code with its name, for messages to people.
pub fn error_name(code: i16) -> String {
    match code.err() {
        None => "NONE".to_string(),
        Some(err) => format!("{err:?} ({code})"),
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Metadata for `topics`, or for all topics when `None`.
pub fn metadata_request(
    topics: Option<&[&str]>,
    allow_auto_topic_creation: bool,
) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        }))
        .with_allow_auto_topic_creation(allow_auto_topic_creation)
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

pub fn create_topics_request(
    topics: &[NewTopic],
    timeout_ms: i32,
    validate_only: bool,
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only)
}

/// DeleteTopics by name; v6 moved names into a list of topic states.
pub fn delete_topics_request(names: &[&str], version: i16, timeout_ms: i32) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
    if version >= 6 {
        request.with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect(),
        )
    } else {
        request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
    }
}

/// DescribeConfigs of one topic (all keys when `keys` is `None`).
pub fn describe_topic_configs_request(
    topic: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(keys.map(|keys| {
                keys.iter()
                    .map(|k| StrBytes::from_string(k.to_string()))
                    .collect()
            })),
    ])
}

/// IncrementalAlterConfigs of one topic: `Some(value)` sets a key, `None` deletes it.
pub fn alter_topic_configs_request(
    topic: &str,
    changes: &[(String, Option<String>)],
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(
                changes
                    .iter()
                    .map(|(name, value)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(name.clone()))
                            .with_config_operation(if value.is_some() {
                                CONFIG_OP_SET
                            } else {
                                CONFIG_OP_DELETE
                            })
                            .with_value(value.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            ),
    ])
}

/// One batch for each listed partition of one topic.
pub fn produce_request(
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(
                    batches
                        .into_iter()
                        .map(|(index, records)| {
                            PartitionProduceData::default()
                                .with_index(index)
                                .with_records(Some(records))
                        })
                        .collect(),
                ),
        ])
}

/// How much a fetch may wait for and return.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// A sessionless fetch of `(partition, fetch_offset)` pairs of one topic.
pub fn fetch_request(topic: &str, partitions: &[(i32, i64)], limits: FetchLimits) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(limits.min_bytes)
        .with_max_bytes(limits.max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(partition, offset)| {
                            FetchPartition::default()
                                .with_partition(*partition)
                                .with_fetch_offset(*offset)
                                .with_partition_max_bytes(limits.partition_max_bytes)
                        })
                        .collect(),
                ),
        ])
}

/// ListOffsets of `partitions` of one topic at `timestamp` (or [`LATEST_TIMESTAMP`],
/// [`EARLIEST_TIMESTAMP`]).
pub fn list_offsets_request(topic: &str, partitions: &[i32], timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                ),
        ])
}

/// InitProducerId for a non-transactional idempotent producer.
pub fn init_producer_id_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

/// ListGroups; the state filter exists from v4 (older brokers list every state).
pub fn list_groups_request(states: &[String], version: i16) -> ListGroupsRequest {
    let states = if version >= 4 {
        states
            .iter()
            .map(|s| StrBytes::from_string(s.clone()))
            .collect()
    } else {
        Vec::new()
    };
    ListGroupsRequest::default().with_states_filter(states)
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

pub fn describe_groups_request(groups: &[&str]) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| group_id(g)).collect())
}

pub fn delete_groups_request(groups: &[&str]) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(groups.iter().map(|g| group_id(g)).collect())
}

/// OffsetFetch (v1-v7) of one group: every committed offset when `topics` is `None`, which
/// needs v2+.
pub fn offset_fetch_request(
    group: &str,
    topics: Option<&[(&str, Vec<i32>)]>,
) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        }))
}

/// OffsetCommit from outside group management (generation -1, no member id), as admin
/// tools commit for a group without members. `offsets` are (topic, partition, offset).
pub fn offset_commit_request(group: &str, offsets: &[(&str, i32, i64)]) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o) in offsets {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(StrBytes::from_static_str("")));
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(topics)
}

impl Connection {
    /// Metadata for `topics` (all when `None`).
    pub async fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, CallError> {
        self.call(&metadata_request(topics, allow_auto_topic_creation))
            .await
    }

    /// Creates topics; per-topic errors are in the response.
    pub async fn create_topics(
        &mut self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<CreateTopicsResponse, CallError> {
        self.call(&create_topics_request(topics, 30_000, validate_only))
            .await
    }

    /// Deletes topics by name; per-topic errors are in the response.
    pub async fn delete_topics(
        &mut self,
        names: &[&str],
    ) -> Result<DeleteTopicsResponse, CallError> {
        let api = ApiKey::DeleteTopics;
        let version = self
            .versions()
            .version(api)
            .ok_or(SendError::UnsupportedApi { api })?;
        self.call(&delete_topics_request(names, version, 30_000))
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::connection::encode_request;
    use crate::client::versions::client_range;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Request, decode_request_header_from_buffer};

    /// Encodes `request` as a framed request at every version the client speaks and checks that
    /// kafka-protocol decodes header and body back to the same values.
    pub(crate) fn round_trip<R: Request + PartialEq + std::fmt::Debug>(build: impl Fn(i16) -> R) {
        let api = ApiKey::try_from(R::KEY).unwrap();
        let range = client_range(api).unwrap();
        let client_id = StrBytes::from_static_str("round-trip");
        let mut frame = BytesMut::new();
        for version in range.min..=range.max {
            let request = build(version);
            encode_request(
                &mut frame,
                &request,
                api,
                version,
                7 + version as i32,
                &client_id,
            )
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
            let mut bytes = frame.clone().freeze();
            let len = i32::from_be_bytes(bytes[..4].try_into().unwrap());
            assert_eq!(len as usize, bytes.len() - 4);
            bytes::Buf::advance(&mut bytes, 4);
            let header = decode_request_header_from_buffer(&mut bytes).unwrap();
            assert_eq!(header.request_api_key, api as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 7 + version as i32);
            assert_eq!(header.client_id.as_deref(), Some("round-trip"));
            let decoded = R::decode(&mut bytes, version).unwrap();
            assert_eq!(decoded, request, "{api:?} v{version}");
            assert!(bytes.is_empty(), "{api:?} v{version} left bytes");
        }
    }

    #[test]
    fn every_builder_round_trips_at_every_client_version() {
        // Proves our framing plus each request builder produces bytes kafka-protocol decodes
        // to the identical request, at every version the client may negotiate.
        use crate::client::batch::{Compression, encode_batch, plain_record};
        let record = plain_record(0, 1, None, Some(Bytes::from_static(b"v")));
        let batch = encode_batch(&[record], Compression::None).unwrap().freeze();
        round_trip(|_| metadata_request(Some(&["a", "b"]), true));
        round_trip(|_| {
            create_topics_request(
                &[NewTopic {
                    name: "t".into(),
                    partitions: 8,
                    replication_factor: 1,
                    configs: vec![("retention.ms".into(), "1000".into())],
                }],
                1000,
                false,
            )
        });
        round_trip(|v| delete_topics_request(&["x", "y"], v, 1000));
        round_trip(|_| describe_topic_configs_request("t", Some(&["retention.ms"])));
        round_trip(|_| {
            alter_topic_configs_request(
                "t",
                &[
                    ("retention.ms".into(), Some("5".into())),
                    ("segment.bytes".into(), None),
                ],
            )
        });
        round_trip(|_| {
            produce_request("t", vec![(0, batch.clone()), (3, batch.clone())], -1, 1000)
        });
        round_trip(|_| fetch_request("t", &[(0, 5), (1, 9)], FetchLimits::default()));
        round_trip(|_| list_offsets_request("t", &[0, 1, 2], LATEST_TIMESTAMP));
        round_trip(|_| init_producer_id_request());
        round_trip(|v| list_groups_request(&["Empty".to_string()], v));
        round_trip(|_| describe_groups_request(&["g", "h"]));
        round_trip(|_| delete_groups_request(&["g"]));
        round_trip(|_| offset_fetch_request("g", Some(&[("t", vec![0, 2])])));
        round_trip(|_| offset_commit_request("g", &[("t", 0, 5), ("t", 1, 6), ("u", 0, 1)]));
    }

    #[test]
    fn error_names_are_readable() {
        // Proves Kafka error codes are shown by name for people reading sluicectl output.
        assert_eq!(error_name(0), "NONE");
        assert!(
            error_name(3).contains("UnknownTopicOrPartition"),
            "{}",
            error_name(3)
        );
    }
}
