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

use super::groups::{ask, code, failure, s};
use crate::group::host::{GroupOp, GroupReply, coordinator_shard};
use crate::group::{GroupState, GroupSummary};
use crate::mesh::scatter::{Item, Scatter};
use crate::mesh::{CallError, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::ShardId;

/// The group type of every group this broker coordinates (ListGroups v5).
const CLASSIC_GROUP_TYPE: &str = "classic";

/// Kafka's ACL operation codes a group supports without an authorizer: READ (3),
/// DELETE (6), DESCRIBE (8).
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Asks the coordinator of each `(group id, op)`, all at once; answers in the same order,
/// `None` where the coordinator could not be reached.
async fn ask_each(shard: &Rc<Shard>, ops: Vec<(String, GroupOp)>) -> Vec<Option<GroupReply>> {
    let table = shard.table();
    let items = ops
        .into_iter()
        .map(|(group_id, op)| Item::To(coordinator_shard(&group_id, &table), op));
    let scatter = Scatter::per_item(shard, items, |op, reply| ShardRequest::Group { op, reply });
    unreached_as_none(scatter.await.gather_results().await)
}

/// A reply per call, `None` (logged) where the call got no answer.
fn unreached_as_none(results: Vec<Result<GroupReply, CallError>>) -> Vec<Option<GroupReply>> {
    results
        .into_iter()
        .map(|r| {
            r.map_err(|e| tracing::debug!(error = %e, "group coordinator unreachable"))
                .ok()
        })
        .collect()
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
    let ops = r
        .groups
        .iter()
        .map(|g| {
            let group_id = g.0.to_string();
            let op = GroupOp::Describe {
                group_id: group_id.clone(),
            };
            (group_id, op)
        })
        .collect();
    let replies = ask_each(shard, ops).await;
    let groups = r
        .groups
        .iter()
        .zip(replies)
        .map(|(id, reply)| {
            let mut g = match reply {
                // v6 (KIP-1043) reports a missing group as an error; older versions as Dead.
                Some(GroupReply::Describe(g)) if g.state == GroupState::Dead && v >= 6 => {
                    DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(s(&format!("Group {} not found.", id.0))))
                }
                Some(GroupReply::Describe(g)) => described(id, g),
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
    let scatter = Scatter::per_item(shard, items, |states, reply| ShardRequest::Group {
        op: GroupOp::List { states },
        reply,
    });
    let mut error_code = 0;
    let mut all = Vec::new();
    for reply in unreached_as_none(scatter.await.gather_results().await) {
        match reply {
            Some(GroupReply::List(groups)) => all.extend(groups),
            other => error_code = failure(other),
        }
    }
    all.sort();
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(
            all.into_iter()
                .map(|(id, protocol_type, state)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(s(&id)))
                        .with_protocol_type(s(&protocol_type))
                        .with_group_state(s(state.kafka_name()))
                        .with_group_type(s(CLASSIC_GROUP_TYPE))
                })
                .collect(),
        )
}

pub async fn delete_groups(shard: &Rc<Shard>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ops = r
        .groups_names
        .iter()
        .map(|g| {
            let group_id = g.0.to_string();
            let op = GroupOp::Delete {
                group_id: group_id.clone(),
            };
            (group_id, op)
        })
        .collect();
    let replies = ask_each(shard, ops).await;
    let results = r
        .groups_names
        .iter()
        .zip(replies)
        .map(|(id, reply)| {
            let c = match reply {
                Some(GroupReply::Delete(Ok(()))) => 0,
                Some(GroupReply::Delete(Err(e))) => code(&e),
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
                known.push((t.name.0.to_string(), p.partition_index));
                0
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            answers.push((t.name.clone(), p.partition_index, c));
        }
    }
    let op = GroupOp::DeleteOffsets {
        group_id: group_id.clone(),
        partitions: known,
    };
    match ask(shard, &group_id, op).await {
        Some(GroupReply::DeleteOffsets(Ok(results))) => {
            for ((topic, partition), result) in results {
                if let Err(e) = result {
                    answers
                        .iter_mut()
                        .filter(|a| a.0.0.as_str() == topic && a.1 == partition)
                        .for_each(|a| a.2 = code(&e));
                }
            }
        }
        Some(GroupReply::DeleteOffsets(Err(e))) => {
            return OffsetDeleteResponse::default().with_error_code(code(&e));
        }
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
    let ops = r
        .groups
        .iter()
        .map(|g| {
            let group_id = g.group_id.0.to_string();
            let partitions = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .flat_map(|t| {
                        t.partition_indexes
                            .iter()
                            .map(|p| (t.name.0.to_string(), *p))
                    })
                    .collect::<Vec<_>>()
            });
            let op = GroupOp::FetchOffsets {
                group_id: group_id.clone(),
                partitions,
            };
            (group_id, op)
        })
        .collect();
    let replies = ask_each(shard, ops).await;
    let groups = r
        .groups
        .iter()
        .zip(replies)
        .map(|(g, reply)| {
            let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            let found = match reply {
                Some(GroupReply::Offsets(found)) => found,
                other => return base.with_error_code(failure(other)),
            };
            let topics = by_topic(found.into_iter().map(|((topic, partition), o)| {
                let part = OffsetFetchResponsePartitions::default()
                    .with_partition_index(partition)
                    .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset))
                    .with_committed_leader_epoch(o.as_ref().map_or(-1, |o| o.leader_epoch))
                    .with_metadata(Some(s(o
                        .as_ref()
                        .and_then(|o| o.metadata.as_deref())
                        .unwrap_or(""))));
                (topic, part)
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
