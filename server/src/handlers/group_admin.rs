//! DescribeGroups, ListGroups, DeleteGroups, OffsetDelete and multi-group OffsetFetch
//! (v8+). A request naming several groups asks each group's coordinator shard, all at
//! once, and answers in request order; ListGroups asks every shard's coordinator and
//! merges. Runs on the shard that received the request.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use sluice_net::topic_partitions::by_topic;

use super::groups::{ask, code, s, set_partition_errors, topic_partitions, unavailable};
use crate::group::host::coordinator_shard;
use crate::group::{GroupError, GroupState, GroupSummary};
use crate::mesh::group::GroupRequest;
use crate::mesh::scatter::{Item, Scatter};
use crate::mesh::{CallError, Reply, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::{ShardId, TopicPartition};

/// The group type of every group this broker coordinates (ListGroups v5).
const CLASSIC_GROUP_TYPE: &str = "classic";

/// Kafka's ACL operation codes a group supports without an authorizer: READ (3),
/// DELETE (6), DESCRIBE (8).
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Asks the coordinator of each group for what `make` builds from the group id and the
/// item, all at once; answers in the same order (`None`: the coordinator did not answer).
async fn ask_each<I: 'static, T: Send + 'static>(
    shard: &Rc<Shard>,
    items: Vec<(String, I)>,
    make: fn(String, I, Reply<T>) -> GroupRequest,
) -> Vec<Option<T>> {
    let table = shard.table();
    let items = items
        .into_iter()
        .map(|(group_id, item)| Item::To(coordinator_shard(&group_id, &table), (group_id, item)));
    let scatter = Scatter::per_item(shard, items, |(group_id, item), reply| {
        ShardRequest::Group(make(group_id, item, reply))
    });
    unreached_as_none(scatter.await.gather_results().await)
}

/// A reply per call, `None` (logged) where the call got no answer.
fn unreached_as_none<T>(results: Vec<Result<T, CallError>>) -> Vec<Option<T>> {
    results
        .into_iter()
        .map(|r| {
            r.map_err(|e| tracing::debug!(error = %e, "group coordinator unreachable"))
                .ok()
        })
        .collect()
}

/// The error code of a group's answer that is not the expected one: the coordinator's
/// own refusal, or COORDINATOR_NOT_AVAILABLE when it did not answer.
fn failure<T>(reply: Option<Result<T, GroupError>>) -> i16 {
    match reply {
        Some(Err(e)) => code(&e),
        Some(Ok(_)) | None => unavailable(),
    }
}

fn described(group_id: &GroupId, g: GroupSummary) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(group_id.clone())
        .with_group_state(s(g.state.kafka_name()))
        .with_protocol_type(s(&g.protocol_type))
        .with_protocol_data(s(&g.protocol_name))
        .with_members(
            g.members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_group_instance_id(m.group_instance_id.as_deref().map(s))
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect(),
        )
}

pub async fn describe_groups(
    shard: &Rc<Shard>,
    r: DescribeGroupsRequest,
    v: i16,
) -> DescribeGroupsResponse {
    let ids = r.groups.iter().map(|g| (g.0.to_string(), ())).collect();
    let replies = ask_each(shard, ids, |group_id, (), reply| GroupRequest::Describe {
        group_id,
        reply,
    })
    .await;
    let groups = r
        .groups
        .iter()
        .zip(replies)
        .map(|(id, reply)| {
            let mut g = match reply {
                // v6 (KIP-1043) reports a missing group as an error; older versions as Dead.
                Some(Ok(g)) if g.state == GroupState::Dead && v >= 6 => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(&format!("Group {} not found.", id.0)))),
                Some(Ok(g)) => described(id, g),
                other => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(failure(other)),
            };
            if r.include_authorized_operations {
                g.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list_groups(shard: &Rc<Shard>, r: ListGroupsRequest) -> ListGroupsResponse {
    let classic_wanted = r.types_filter.is_empty()
        || r.types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
    if !classic_wanted {
        return ListGroupsResponse::default();
    }
    let states: Vec<String> = r.states_filter.iter().map(|s| s.to_string()).collect();
    let items = (0..shard.shard_count()).map(|to| Item::To(ShardId(to), states.clone()));
    let scatter = Scatter::per_item(shard, items, |states, reply| {
        ShardRequest::Group(GroupRequest::List { states, reply })
    });
    let mut error_code = 0;
    let mut all = Vec::new();
    for reply in scatter.await.gather_results().await {
        match reply {
            Ok(Ok(groups)) => all.extend(groups),
            Ok(Err(e)) => error_code = code(&e),
            Err(_) => error_code = unavailable(),
        }
    }
    all.sort();
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(
            all.into_iter()
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(GroupId(s(&g.group_id)))
                        .with_protocol_type(s(&g.protocol_type))
                        .with_group_state(s(g.state.kafka_name()))
                        .with_group_type(s(CLASSIC_GROUP_TYPE))
                })
                .collect(),
        )
}

pub async fn delete_groups(shard: &Rc<Shard>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids = r
        .groups_names
        .iter()
        .map(|g| (g.0.to_string(), ()))
        .collect();
    let replies = ask_each(shard, ids, |group_id, (), reply| GroupRequest::Delete {
        group_id,
        reply,
    })
    .await;
    let results = r
        .groups_names
        .iter()
        .zip(replies)
        .map(|(id, reply)| {
            let c = match reply {
                Some(Ok(())) => 0,
                other => failure(other),
            };
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(c)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(shard: &Rc<Shard>, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = r.group_id.0.to_string();
    let table = shard.table();
    // (topic, partition, error) in request order; partitions of known topics go to the
    // coordinator, the others are UNKNOWN_TOPIC_OR_PARTITION as Kafka answers.
    let mut answers: Vec<(TopicName, i32, i16)> = Vec::new();
    let mut known = Vec::new();
    for t in &r.topics {
        let exists = table.get(t.name.0.as_str()).is_some();
        for p in &t.partitions {
            let c = if exists {
                known.push(TopicPartition {
                    topic: std::sync::Arc::from(t.name.0.as_str()),
                    partition: p.partition_index,
                });
                0
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            answers.push((t.name.clone(), p.partition_index, c));
        }
    }
    let make = |reply| GroupRequest::DeleteOffsets {
        group_id: group_id.clone(),
        partitions: known,
        reply,
    };
    match ask(shard, &group_id, make).await {
        Some(Ok(results)) => set_partition_errors(&mut answers, results),
        other => return OffsetDeleteResponse::default().with_error_code(failure(other)),
    }
    let topics = by_topic(answers.into_iter().map(|(name, partition, c)| {
        let part = OffsetDeleteResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(c);
        (name, part)
    }))
    .into_iter()
    .map(|(name, partitions)| {
        OffsetDeleteResponseTopic::default()
            .with_name(name)
            .with_partitions(partitions)
    })
    .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// OffsetFetch v8-9: several groups in one request. Classic groups ignore the member id
/// and epoch of v9 (they matter only to KIP-848 groups).
pub async fn offset_fetch_groups(shard: &Rc<Shard>, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let asked = r
        .groups
        .iter()
        .map(|g| {
            let partitions = g.topics.as_ref().map(|ts| {
                topic_partitions(ts.iter().map(|t| (&t.name, t.partition_indexes.as_slice())))
            });
            (g.group_id.0.to_string(), partitions)
        })
        .collect();
    let replies = ask_each(shard, asked, |group_id, partitions, reply| {
        GroupRequest::FetchOffsets {
            group_id,
            partitions,
            reply,
        }
    })
    .await;
    let groups = r
        .groups
        .iter()
        .zip(replies)
        .map(|(g, reply)| {
            let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            let found = match reply {
                Some(Ok(found)) => found,
                other => return base.with_error_code(failure(other)),
            };
            let topics = by_topic(found.into_iter().map(|(tp, o)| {
                let part = OffsetFetchResponsePartitions::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset.0))
                    .with_committed_leader_epoch(o.as_ref().map_or(-1, |o| o.leader_epoch))
                    .with_metadata(Some(s(o
                        .as_ref()
                        .and_then(|o| o.metadata.as_deref())
                        .unwrap_or(""))));
                (tp.topic, part)
            }))
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopics::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partitions(partitions)
            })
            .collect();
            base.with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}
