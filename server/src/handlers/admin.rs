//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
//! IncrementalAlterConfigs, and InitProducerId. Every mutation is forwarded to shard 0,
//! which validates it, persists the topic store, opens or closes partitions on their
//! owners, and publishes the new topic table before answering.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::config::{
    CLEANUP_POLICY, COMPRESSION_TYPE, MESSAGE_TIMESTAMP_TYPE, MIN_CLEANABLE_DIRTY_RATIO,
    TOPIC_CONFIG_NAMES,
};
use crate::kafka_errors::call_error;
use crate::shard::Shard;
use crate::shard_request::{ConfigChange, NewTopic, ShardRequest, TopicOutcome};
use crate::topic_table::{ShardId, TopicMeta};

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's ConfigType values.
const TYPE_STRING: i8 = 2;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
const TYPE_DOUBLE: i8 = 6;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn config_type(name: &str) -> i8 {
    match name {
        CLEANUP_POLICY => TYPE_LIST,
        MESSAGE_TIMESTAMP_TYPE | COMPRESSION_TYPE => TYPE_STRING,
        MIN_CLEANABLE_DIRTY_RATIO => TYPE_DOUBLE,
        _ => TYPE_LONG,
    }
}

/// Effective configs of a topic: `(name, value, is override)`, in name order.
fn effective(shard: &Shard, overrides: &BTreeMap<String, String>) -> Vec<(String, String, bool)> {
    let defaults = shard.args.topic_defaults();
    TOPIC_CONFIG_NAMES
        .iter()
        .map(|n| match overrides.get(*n) {
            Some(v) => (n.to_string(), v.clone(), true),
            None => (n.to_string(), defaults[n].clone(), false),
        })
        .collect()
}

async fn to_shard0<T: Send + 'static>(
    shard: &Rc<Shard>,
    count: usize,
    make: impl FnOnce(crate::shard_request::Reply<Vec<T>>) -> ShardRequest,
    on_error: impl Fn(ResponseError) -> T,
) -> Vec<T> {
    match shard.ask(ShardId(0), make).await {
        Ok(v) => v,
        Err(e) => (0..count).map(|_| on_error(call_error(&e))).collect(),
    }
}

fn outcome_error(e: ResponseError) -> TopicOutcome {
    TopicOutcome {
        error: Some(e),
        message: None,
    }
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    // Pre-validation that needs no metadata: replication and manual assignments.
    let mut early: Vec<Option<TopicOutcome>> = Vec::with_capacity(req.topics.len());
    let mut to_create = Vec::new();
    for t in &req.topics {
        let bad = if t.replication_factor != -1 && t.replication_factor != 1 {
            Some((
                ResponseError::InvalidReplicationFactor,
                "a single broker holds one replica",
            ))
        } else if !t.assignments.is_empty() {
            Some((
                ResponseError::InvalidRequest,
                "manual replica assignment is not supported",
            ))
        } else {
            None
        };
        match bad {
            Some((e, m)) => early.push(Some(TopicOutcome {
                error: Some(e),
                message: Some(m.to_string()),
            })),
            None => {
                early.push(None);
                let configs = t
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                to_create.push(NewTopic {
                    name: t.name.0.to_string(),
                    partitions: if t.num_partitions == -1 {
                        shard.args.num_partitions
                    } else {
                        t.num_partitions
                    },
                    configs,
                });
            }
        }
    }
    let n = to_create.len();
    let sent = to_create.clone();
    let validate_only = req.validate_only;
    let mut outcomes = to_shard0(
        shard,
        n,
        |reply| ShardRequest::CreateTopics {
            topics: to_create,
            validate_only,
            reply,
        },
        outcome_error,
    )
    .await
    .into_iter();
    let mut sent = sent.into_iter();
    let table = shard.table();
    let topics = req
        .topics
        .iter()
        .zip(early)
        .map(|(t, early)| {
            let (outcome, new) = match early {
                Some(o) => (o, None),
                None => (outcomes.next().unwrap_or_default(), sent.next()),
            };
            let mut r = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(outcome.error.map_or(0, |e| e.code()))
                .with_error_message(outcome.message.map(|m| s(&m)))
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if outcome.error.is_none() && version >= 5 {
                let overrides = new.map(|n| n.configs).unwrap_or_default();
                r.num_partitions = table.get(&t.name.0).map_or(
                    if t.num_partitions == -1 {
                        shard.args.num_partitions
                    } else {
                        t.num_partitions
                    },
                    |m| m.partition_count(),
                );
                r.replication_factor = 1;
                r.topic_id = table.get(&t.name.0).map(|m| m.id).unwrap_or_default();
                r.configs = Some(
                    effective(shard, &overrides)
                        .into_iter()
                        .map(|(k, v, o)| {
                            CreatableTopicConfigs::default()
                                .with_name(s(&k))
                                .with_value(Some(s(&v)))
                                .with_config_source(if o {
                                    SOURCE_DYNAMIC_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                })
                        })
                        .collect(),
                );
            }
            r
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let table = shard.table();
    // v6 names topics by name or id; earlier versions by name only.
    let named: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id),
                None => (
                    table.get_by_id(&t.topic_id).map(|m| m.name.to_string()),
                    t.topic_id,
                ),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let names: Vec<String> = named.iter().filter_map(|(n, _)| n.clone()).collect();
    let mut outcomes = to_shard0(
        shard,
        names.len(),
        |reply| ShardRequest::DeleteTopics { names, reply },
        outcome_error,
    )
    .await
    .into_iter();
    let responses = named
        .into_iter()
        .map(|(name, id)| {
            let outcome = match &name {
                Some(_) => outcomes.next().unwrap_or_default(),
                None => TopicOutcome {
                    error: Some(ResponseError::UnknownTopicId),
                    message: None,
                },
            };
            let id = if id.is_nil() {
                name.as_deref()
                    .and_then(|n| table.get(n))
                    .map(|m| m.id)
                    .unwrap_or_default()
            } else {
                id
            };
            DeletableTopicResult::default()
                .with_name(name.map(|n| topic_name(&n)))
                .with_topic_id(id)
                .with_error_code(outcome.error.map_or(0, |e| e.code()))
                .with_error_message(outcome.message.map(|m| s(&m)))
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut early = Vec::new();
    let mut asks = Vec::new();
    for t in &req.topics {
        if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            early.push(Some(TopicOutcome {
                error: Some(ResponseError::InvalidRequest),
                message: Some("manual replica assignment is not supported".into()),
            }));
        } else {
            early.push(None);
            asks.push((t.name.0.to_string(), t.count));
        }
    }
    let validate_only = req.validate_only;
    let mut outcomes = to_shard0(
        shard,
        asks.len(),
        |reply| ShardRequest::CreatePartitions {
            topics: asks,
            validate_only,
            reply,
        },
        outcome_error,
    )
    .await
    .into_iter();
    let results = req
        .topics
        .iter()
        .zip(early)
        .map(|(t, early)| {
            let o = early.unwrap_or_else(|| outcomes.next().unwrap_or_default());
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(o.error.map_or(0, |e| e.code()))
                .with_error_message(o.message.map(|m| s(&m)))
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn describe_topic(
    shard: &Shard,
    meta: &TopicMeta,
    keys: Option<&Vec<StrBytes>>,
) -> Vec<DescribeConfigsResourceResult> {
    effective(shard, &meta.configs)
        .into_iter()
        .filter(|(k, _, _)| {
            keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
        })
        .map(|(k, v, o)| {
            DescribeConfigsResourceResult::default()
                .with_name(s(&k))
                .with_value(Some(s(&v)))
                .with_config_source(if o {
                    SOURCE_DYNAMIC_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
                .with_config_type(config_type(&k))
        })
        .collect()
}

pub fn describe_configs(shard: &Rc<Shard>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let table = shard.table();
    let results = req
        .resources
        .iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => match table.get(r.resource_name.as_str()) {
                    Some(meta) => base.with_configs(describe_topic(
                        shard,
                        meta,
                        r.configuration_keys.as_ref(),
                    )),
                    None => base
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(s("no such topic"))),
                },
                RESOURCE_BROKER
                    if r.resource_name.as_str() == shard.args.node_id.to_string()
                        || r.resource_name.is_empty() =>
                {
                    base
                }
                _ => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s("only topic configs are described"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut early = Vec::new();
    let mut changes = Vec::new();
    for r in &req.resources {
        if r.resource_type != RESOURCE_TOPIC {
            early.push(Some(TopicOutcome {
                error: Some(ResponseError::InvalidRequest),
                message: Some("only topic configs can be altered".into()),
            }));
            continue;
        }
        let mut ops = Vec::new();
        let mut bad = None;
        for c in &r.configs {
            match c.config_operation {
                OP_SET => match &c.value {
                    Some(v) => ops.push((c.name.to_string(), Some(v.to_string()))),
                    None => bad = Some("SET needs a value"),
                },
                OP_DELETE => ops.push((c.name.to_string(), None)),
                _ => bad = Some("only SET and DELETE are supported"),
            }
        }
        match bad {
            Some(m) => early.push(Some(TopicOutcome {
                error: Some(ResponseError::InvalidConfig),
                message: Some(m.to_string()),
            })),
            None => {
                early.push(None);
                changes.push(ConfigChange {
                    topic: r.resource_name.to_string(),
                    ops,
                });
            }
        }
    }
    let validate_only = req.validate_only;
    let mut outcomes = to_shard0(
        shard,
        changes.len(),
        |reply| ShardRequest::AlterConfigs {
            changes,
            validate_only,
            reply,
        },
        outcome_error,
    )
    .await
    .into_iter();
    let responses = req
        .resources
        .iter()
        .zip(early)
        .map(|(r, early)| {
            let o = early.unwrap_or_else(|| outcomes.next().unwrap_or_default());
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(o.error.map_or(0, |e| e.code()))
                .with_error_message(o.message.map(|m| s(&m)))
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Idempotent producers only: every call gets a fresh producer id at epoch 0, never
/// handed out before (ids are reserved durably in blocks by shard 0).
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let base = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return base.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    match shard
        .ask(ShardId(0), |reply| ShardRequest::AllocateProducerId {
            reply,
        })
        .await
    {
        Ok(Ok(id)) => base.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Ok(Err(msg)) => {
            tracing::error!(error = %msg, "producer id not allocated");
            base.with_error_code(ResponseError::KafkaStorageError.code())
        }
        Err(e) => base.with_error_code(call_error(&e).code()),
    }
}
