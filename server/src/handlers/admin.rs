//! Topic and broker-config administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DeleteRecords and
//! InitProducerId. Every metadata mutation is forwarded to shard 0, which validates it,
//! persists the topic store, opens or closes partitions on their owners, and publishes
//! the new topic table before answering. DeleteRecords goes to each partition's owning
//! shard instead. Broker configs are described from the flags and never change at run
//! time.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use sluice_engine::Offset;

use crate::config::{
    BrokerConfig, CLEANUP_POLICY, COMPRESSION_TYPE, MESSAGE_TIMESTAMP_TYPE,
    MIN_CLEANABLE_DIRTY_RATIO, TOPIC_CONFIG_NAMES, broker_synonym,
};
use crate::kafka_errors::{call_error, topic_error};
use crate::mesh::{
    ConfigChange, ConfigOp, NewTopic, PartitionGrowth, Reply, ShardRequest, TopicError,
};
use crate::shard::Shard;
use crate::topic_table::{ShardId, TopicMeta, is_internal};

/// Kafka's ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
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

/// Kafka's source of a broker config's value.
fn broker_source(c: &BrokerConfig) -> i8 {
    if c.explicit {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

/// The broker configs by Kafka name.
fn broker_configs(shard: &Shard) -> BTreeMap<&'static str, BrokerConfig> {
    shard
        .args
        .broker_configs()
        .into_iter()
        .map(|c| (c.name, c))
        .collect()
}

/// One effective topic config and where its value comes from.
struct TopicConfigValue {
    name: &'static str,
    value: String,
    /// Kafka's ConfigSource: the topic override, or its broker synonym's source.
    source: i8,
    /// Kafka's synonyms, most specific first: the override, then the broker config set
    /// by flag, then the broker default.
    synonyms: Vec<DescribeConfigsSynonym>,
}

fn synonym(name: &str, value: Option<&str>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(s(name))
        .with_value(value.map(s))
        .with_source(source)
}

/// Effective configs of a topic, in name order.
fn effective(shard: &Shard, overrides: &BTreeMap<String, String>) -> Vec<TopicConfigValue> {
    let defaults = shard.args.topic_defaults();
    let broker = broker_configs(shard);
    TOPIC_CONFIG_NAMES
        .iter()
        .map(|n| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(*n) {
                synonyms.push(synonym(n, Some(v), SOURCE_DYNAMIC_TOPIC));
            }
            let b = broker_synonym(n).and_then(|b| broker.get(b));
            if let Some(b) = b {
                if b.explicit {
                    synonyms.push(synonym(b.name, b.value.as_deref(), SOURCE_STATIC_BROKER));
                }
                if let Some(d) = &b.default {
                    synonyms.push(synonym(b.name, Some(d), SOURCE_DEFAULT));
                }
            }
            match overrides.get(*n) {
                Some(v) => TopicConfigValue {
                    name: n,
                    value: v.clone(),
                    source: SOURCE_DYNAMIC_TOPIC,
                    synonyms,
                },
                None => TopicConfigValue {
                    name: n,
                    value: defaults[n].clone(),
                    source: b.map_or(SOURCE_DEFAULT, broker_source),
                    synonyms,
                },
            }
        })
        .collect()
}

/// A per-topic outcome as the response carries it: a Kafka error code and message.
#[derive(Clone, Debug, Default)]
struct TopicOutcome {
    error: Option<ResponseError>,
    message: Option<String>,
}

impl From<Result<(), TopicError>> for TopicOutcome {
    fn from(r: Result<(), TopicError>) -> TopicOutcome {
        match r {
            Ok(()) => TopicOutcome::default(),
            Err(e) => TopicOutcome {
                error: Some(topic_error(&e)),
                message: Some(e.to_string()),
            },
        }
    }
}

/// Sends one admin operation to the controller (shard 0) and returns its `count`
/// per-topic outcomes; a call that gets no answer fails every topic.
async fn to_controller(
    shard: &Rc<Shard>,
    count: usize,
    make: impl FnOnce(Reply<Vec<Result<(), TopicError>>>) -> ShardRequest,
) -> Vec<TopicOutcome> {
    match shard.ask(ShardId(0), make).await {
        Ok(v) => v.into_iter().map(TopicOutcome::from).collect(),
        Err(e) => (0..count).map(|_| outcome_error(call_error(&e))).collect(),
    }
}

fn outcome_error(e: ResponseError) -> TopicOutcome {
    TopicOutcome {
        error: Some(e),
        message: None,
    }
}

/// Checks one partition's manual replica assignment as Kafka's controller does: a
/// non-empty list of registered brokers, none twice. This single broker is the only
/// registered one, so every valid list is `[node_id]` and replication factors agree.
fn check_replicas(node_id: i32, broker_ids: &[BrokerId]) -> Result<(), (ResponseError, String)> {
    let bad = |m: String| Err((ResponseError::InvalidReplicaAssignment, m));
    if broker_ids.is_empty() {
        return bad("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted: Vec<i32> = broker_ids.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    for (i, id) in sorted.iter().enumerate() {
        if *id != node_id {
            return bad(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            ));
        }
        if i > 0 && sorted[i - 1] == *id {
            return bad(format!(
                "The manual partition assignment includes the broker {id} more than once."
            ));
        }
    }
    Ok(())
}

/// The partition count of a CreateTopics topic with a manual replica assignment, checked
/// as Kafka does: num_partitions and replication_factor must be -1, partition indexes a
/// consecutive 0-based sequence, each list valid (`check_replicas`).
fn topic_assignment(
    node_id: i32,
    t: &create_topics_request::CreatableTopic,
) -> Result<i32, (ResponseError, String)> {
    let invalid = |m: &str| Err((ResponseError::InvalidRequest, m.to_string()));
    if t.num_partitions != -1 {
        return invalid(
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        );
    }
    if t.replication_factor != -1 {
        return invalid(
            "A manual partition assignment was specified, but replicationFactor was not set to -1.",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in &t.assignments {
        if !seen.insert(a.partition_index) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Found multiple manual partition assignments for partition {}",
                    a.partition_index
                ),
            ));
        }
        check_replicas(node_id, &a.broker_ids)?;
    }
    let count = seen.len();
    if seen.iter().copied().ne(0..count as i32) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    Ok(count as i32)
}

/// CreateTopics after the checks that need no metadata (replication, manual
/// assignments): per topic, its early outcome if refused and its partition count (-1 if
/// refused), and the topics to send to the controller.
struct Prevalidated {
    early: Vec<Option<TopicOutcome>>,
    counts: Vec<i32>,
    to_create: Vec<NewTopic>,
}

fn prevalidate(shard: &Shard, req: &CreateTopicsRequest) -> Prevalidated {
    let mut early: Vec<Option<TopicOutcome>> = Vec::with_capacity(req.topics.len());
    let mut counts: Vec<i32> = Vec::with_capacity(req.topics.len());
    let mut to_create = Vec::new();
    let node_id = shard.args.node_id;
    for t in &req.topics {
        let partitions = if !t.assignments.is_empty() {
            topic_assignment(node_id, t)
        } else if t.replication_factor != -1 && t.replication_factor != 1 {
            Err((
                ResponseError::InvalidReplicationFactor,
                "a single broker holds one replica".to_string(),
            ))
        } else if t.num_partitions == -1 {
            Ok(shard.args.num_partitions)
        } else {
            Ok(t.num_partitions)
        };
        match partitions {
            Err((e, m)) => {
                early.push(Some(TopicOutcome {
                    error: Some(e),
                    message: Some(m),
                }));
                counts.push(-1);
            }
            Ok(partitions) => {
                early.push(None);
                counts.push(partitions);
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
                    partitions,
                    configs,
                });
            }
        }
    }
    Prevalidated {
        early,
        counts,
        to_create,
    }
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let Prevalidated {
        early,
        counts,
        to_create,
    } = prevalidate(shard, &req);
    let n = to_create.len();
    let sent = to_create.clone();
    let validate_only = req.validate_only;
    let mut outcomes = to_controller(shard, n, |reply| ShardRequest::CreateTopics {
        topics: to_create,
        validate_only,
        reply,
    })
    .await
    .into_iter();
    let mut sent = sent.into_iter();
    let table = shard.table();
    let topics = req
        .topics
        .iter()
        .zip(early)
        .zip(counts)
        .map(|((t, early), count)| {
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
                r.num_partitions = table.get(&t.name.0).map_or(count, |m| m.partition_count());
                r.replication_factor = 1;
                r.topic_id = table.get(&t.name.0).map(|m| m.id).unwrap_or_default();
                r.configs = Some(
                    effective(shard, &overrides)
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(s(c.name))
                                .with_value(Some(s(&c.value)))
                                .with_config_source(c.source)
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
    let mut outcomes = to_controller(shard, names.len(), |reply| ShardRequest::DeleteTopics {
        names,
        reply,
    })
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

/// Checks the manual assignment of a CreatePartitions topic, if any, as Kafka does: one
/// replica list per new partition, each valid (`check_replicas`). Counts that cannot grow
/// the topic are left to shard 0, which answers them.
fn partitions_assignment(
    node_id: i32,
    table: &crate::topic_table::TopicTable,
    t: &create_partitions_request::CreatePartitionsTopic,
) -> Result<(), (ResponseError, String)> {
    // An empty list counts as none, as the request's default encodes it.
    let Some(assignments) = t.assignments.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let Some(meta) = table.get(t.name.0.as_str()) else {
        return Ok(());
    };
    let adding = t.count - meta.partition_count();
    if adding <= 0 {
        return Ok(());
    }
    if usize::try_from(adding).ok() != Some(assignments.len()) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!(
                "Attempted to add {adding} additional partition(s), but only {} assignment(s) were supplied.",
                assignments.len()
            ),
        ));
    }
    for a in assignments {
        check_replicas(node_id, &a.broker_ids)?;
    }
    Ok(())
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut early = Vec::new();
    let mut asks = Vec::new();
    let table = shard.table();
    for t in &req.topics {
        match partitions_assignment(shard.args.node_id, &table, t) {
            Err((e, m)) => early.push(Some(TopicOutcome {
                error: Some(e),
                message: Some(m),
            })),
            Ok(()) => {
                early.push(None);
                asks.push(PartitionGrowth {
                    topic: t.name.0.to_string(),
                    count: t.count,
                });
            }
        }
    }
    let validate_only = req.validate_only;
    let mut outcomes = to_controller(shard, asks.len(), |reply| ShardRequest::CreatePartitions {
        topics: asks,
        validate_only,
        reply,
    })
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

/// Whether the DescribeConfigs key filter asks for `name` (null or empty: every config).
fn wanted(keys: Option<&Vec<StrBytes>>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == name))
}

fn describe_topic(
    shard: &Shard,
    meta: &TopicMeta,
    keys: Option<&Vec<StrBytes>>,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    effective(shard, &meta.configs)
        .into_iter()
        .filter(|c| wanted(keys, c.name))
        .map(|c| {
            DescribeConfigsResourceResult::default()
                .with_name(s(c.name))
                .with_value(Some(s(&c.value)))
                .with_config_source(c.source)
                .with_config_type(config_type(c.name))
                .with_documentation(None)
                .with_synonyms(if include_synonyms {
                    c.synonyms
                } else {
                    Vec::new()
                })
        })
        .collect()
}

/// This broker's configs. None can change at run time, so all are read-only.
fn describe_broker(
    shard: &Shard,
    keys: Option<&Vec<StrBytes>>,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    shard
        .args
        .broker_configs()
        .into_iter()
        .filter(|c| wanted(keys, c.name))
        .map(|c| {
            let mut synonyms = Vec::new();
            if include_synonyms {
                if c.explicit {
                    synonyms.push(synonym(c.name, c.value.as_deref(), SOURCE_STATIC_BROKER));
                }
                if let Some(d) = &c.default {
                    synonyms.push(synonym(c.name, Some(d), SOURCE_DEFAULT));
                }
            }
            DescribeConfigsResourceResult::default()
                .with_name(s(c.name))
                .with_value(c.value.as_deref().map(s))
                .with_read_only(true)
                .with_config_source(broker_source(&c))
                .with_is_sensitive(false)
                .with_config_type(c.config_type as i8)
                .with_synonyms(synonyms)
                .with_documentation(None)
        })
        .collect()
}

/// Checks the name of a BROKER or BROKER_LOGGER resource as Kafka does: the empty name
/// (the cluster-wide default) or this broker's id. `Ok(true)` for this broker.
fn broker_resource(shard: &Shard, name: &str) -> Result<bool, String> {
    if name.is_empty() {
        return Ok(false);
    }
    let id: i32 = name
        .parse()
        .map_err(|_| format!("Broker id must be an integer, but it is: {name}"))?;
    if id != shard.args.node_id {
        return Err(format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            shard.args.node_id
        ));
    }
    Ok(true)
}

pub fn describe_configs(shard: &Rc<Shard>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let table = shard.table();
    let synonyms = req.include_synonyms;
    let results = req
        .resources
        .iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let keys = r.configuration_keys.as_ref();
            let name = r.resource_name.as_str();
            let answer = match r.resource_type {
                RESOURCE_TOPIC => match table.get(name) {
                    Some(meta) => Ok(describe_topic(shard, meta, keys, synonyms)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        "no such topic".to_string(),
                    )),
                },
                // The empty name stands for the cluster-wide dynamic defaults, of which
                // there are none: an empty list, as Kafka answers without any set.
                RESOURCE_BROKER => match broker_resource(shard, name) {
                    Ok(true) => Ok(describe_broker(shard, keys, synonyms)),
                    Ok(false) => Ok(Vec::new()),
                    Err(m) => Err((ResponseError::InvalidRequest, m)),
                },
                // Log levels are set by RUST_LOG at start, not per logger: none to list.
                RESOURCE_BROKER_LOGGER => match broker_resource(shard, name) {
                    Ok(true) => Ok(Vec::new()),
                    Ok(false) => Err((
                        ResponseError::InvalidRequest,
                        "Broker id must not be empty".to_string(),
                    )),
                    Err(m) => Err((ResponseError::InvalidRequest, m)),
                },
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type: {other}"),
                )),
            };
            match answer {
                Ok(configs) => base.with_configs(configs),
                Err((e, m)) => base
                    .with_error_code(e.code())
                    .with_error_message(Some(s(&m))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource of an AlterConfigs or IncrementalAlterConfigs request: answered here, or
/// a topic change for shard 0.
enum AlterPlan {
    Answered(TopicOutcome),
    Topic(ConfigChange),
}

fn refused(error: ResponseError, message: String) -> AlterPlan {
    AlterPlan::Answered(TopicOutcome {
        error: Some(error),
        message: Some(message),
    })
}

/// A change to this broker's configs. None can change at run time, so setting any is
/// refused as Kafka refuses a static broker config: INVALID_REQUEST, "Cannot update these
/// configs dynamically". Deleting, which leaves the static value in force, changes nothing.
fn alter_broker(shard: &Shard, name: &str, set: Vec<String>) -> AlterPlan {
    if let Err(m) = broker_resource(shard, name) {
        return refused(ResponseError::InvalidRequest, m);
    }
    if set.is_empty() {
        return AlterPlan::Answered(TopicOutcome::default());
    }
    refused(
        ResponseError::InvalidRequest,
        format!(
            "Invalid config value for resource ConfigResource(type=BROKER, name='{name}'): \
             Cannot update these configs dynamically: Set({})",
            set.join(", ")
        ),
    )
}

/// Runs the topic changes of `plans` on shard 0 (one call) and returns every outcome in
/// request order.
async fn alter(shard: &Rc<Shard>, plans: Vec<AlterPlan>, validate_only: bool) -> Vec<TopicOutcome> {
    let changes: Vec<ConfigChange> = plans
        .iter()
        .filter_map(|p| match p {
            AlterPlan::Topic(c) => Some(c.clone()),
            AlterPlan::Answered(_) => None,
        })
        .collect();
    let mut outcomes = to_controller(shard, changes.len(), |reply| ShardRequest::AlterConfigs {
        changes,
        validate_only,
        reply,
    })
    .await
    .into_iter();
    plans
        .into_iter()
        .map(|p| match p {
            AlterPlan::Answered(o) => o,
            AlterPlan::Topic(_) => outcomes.next().unwrap_or_default(),
        })
        .collect()
}

/// The error code and message of an outcome, as both AlterConfigs answers carry them.
fn alter_error(o: TopicOutcome) -> (i16, Option<StrBytes>) {
    (o.error.map_or(0, |e| e.code()), o.message.map(|m| s(&m)))
}

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let plans = req
        .resources
        .iter()
        .map(|r| match r.resource_type {
            RESOURCE_TOPIC => {
                let mut ops = Vec::new();
                let mut bad = None;
                for c in &r.configs {
                    match c.config_operation {
                        OP_SET => match &c.value {
                            Some(v) => ops.push(ConfigOp::Set {
                                name: c.name.to_string(),
                                value: v.to_string(),
                            }),
                            None => bad = Some("SET needs a value"),
                        },
                        OP_DELETE => ops.push(ConfigOp::Delete {
                            name: c.name.to_string(),
                        }),
                        _ => bad = Some("only SET and DELETE are supported"),
                    }
                }
                match bad {
                    Some(m) => refused(ResponseError::InvalidConfig, m.to_string()),
                    None => AlterPlan::Topic(ConfigChange {
                        topic: r.resource_name.to_string(),
                        ops,
                    }),
                }
            }
            RESOURCE_BROKER => {
                let set = r
                    .configs
                    .iter()
                    .filter(|c| c.config_operation != OP_DELETE)
                    .map(|c| c.name.to_string())
                    .collect();
                alter_broker(shard, r.resource_name.as_str(), set)
            }
            _ => refused(
                ResponseError::InvalidRequest,
                "only topic and broker configs can be altered".into(),
            ),
        })
        .collect();
    let outcomes = alter(shard, plans, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let (code, message) = alter_error(o);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Legacy AlterConfigs (KIP-133): the configs given replace a topic's overrides, so
/// every config not named (or given a null value) reverts to the broker default.
/// Broker configs answer as in IncrementalAlterConfigs.
pub async fn alter_configs(shard: &Rc<Shard>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let plans = req
        .resources
        .iter()
        .map(|r| {
            let named: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            match r.resource_type {
                // Every honoured config is deleted unless named: the overrides left are
                // exactly the ones given, whatever the topic had before.
                RESOURCE_TOPIC => {
                    let mut ops: Vec<ConfigOp> = TOPIC_CONFIG_NAMES
                        .iter()
                        .filter(|n| !named.contains_key(**n))
                        .map(|n| ConfigOp::Delete {
                            name: n.to_string(),
                        })
                        .collect();
                    ops.extend(
                        named
                            .into_iter()
                            .map(|(name, value)| ConfigOp::Set { name, value }),
                    );
                    AlterPlan::Topic(ConfigChange {
                        topic: r.resource_name.to_string(),
                        ops,
                    })
                }
                RESOURCE_BROKER => {
                    alter_broker(shard, r.resource_name.as_str(), named.into_keys().collect())
                }
                _ => refused(
                    ResponseError::InvalidRequest,
                    "only topic and broker configs can be altered".into(),
                ),
            }
        })
        .collect();
    let outcomes = alter(shard, plans, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let (code, message) = alter_error(o);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Why Kafka refuses DeleteRecords on every partition of `topic`, if it does: internal
/// topics (INVALID_TOPIC_EXCEPTION) and topics whose cleanup.policy lacks delete
/// (POLICY_VIOLATION). `None` also for an unknown topic, which the owner lookup answers.
fn delete_records_refused(shard: &Shard, meta: &TopicMeta) -> Option<ResponseError> {
    if is_internal(&meta.name) {
        return Some(ResponseError::InvalidTopicException);
    }
    let defaults = shard.args.topic_defaults();
    let policy = meta
        .configs
        .get(CLEANUP_POLICY)
        .unwrap_or(&defaults[CLEANUP_POLICY]);
    let deletes = policy.split(',').any(|p| p.trim() == "delete");
    (!deletes).then_some(ResponseError::PolicyViolation)
}

/// DeleteRecords: each partition's log start offset moves up on its owning shard, all
/// at once; the answer carries the new log start offset as the low watermark.
pub async fn delete_records(shard: &Rc<Shard>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let table = shard.table();
    // Partitions of a refused topic are answered here, without asking their owner.
    let refused: Vec<Option<ResponseError>> = req
        .topics
        .iter()
        .map(|t| {
            table
                .get(t.name.0.as_str())
                .and_then(|m| delete_records_refused(shard, m))
        })
        .collect();
    let parts = req
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, refused)| refused.is_none())
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.as_str(), p.partition_index, p.offset))
        });
    let results = super::offsets::ask_owners(shard, parts, |tp, offset, reply| {
        ShardRequest::DeleteRecords {
            tp,
            offset: Offset(offset),
            reply,
        }
    })
    .await;
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(refused)
        .map(|(t, refused)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let result = match refused {
                        Some(e) => Err(e),
                        None => results.next().expect("one result per partition asked"),
                    };
                    match result {
                        Ok(low_watermark) => base.with_low_watermark(low_watermark.0),
                        Err(e) => base.with_error_code(e.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
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
