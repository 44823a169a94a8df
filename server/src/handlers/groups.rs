//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and
//! OffsetFetch: each request is turned into a `GroupRequest` and sent to the group's
//! coordinator shard (`group::host`), whose typed answer becomes the Kafka response.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::Offset;
use sluice_net::topic_partitions::by_topic;

use crate::group::host::coordinator_shard;
use crate::group::{
    CommitIdentity, CommittedOffset, GroupError, JoinRequest, LeavingMember, SyncRequest,
};
use crate::kafka_errors::{call_error, commit_refused, group_error};
use crate::mesh::group::{CommitRefused, GenerationId, GroupRequest, Heartbeat};
use crate::mesh::{Reply, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::TopicPartition;

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(crate) fn code(e: &GroupError) -> i16 {
    group_error(e).code()
}

/// Sends the request `make` builds to the coordinator of `group_id`; `None` when that
/// shard cannot be reached or dropped the request.
pub(crate) async fn ask<T: Send + 'static>(
    shard: &Rc<Shard>,
    group_id: &str,
    make: impl FnOnce(Reply<T>) -> GroupRequest,
) -> Option<T> {
    let to = coordinator_shard(group_id, &shard.table());
    match shard
        .ask(to, |reply| ShardRequest::Group(make(reply)))
        .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(error = ?call_error(&e), "group coordinator unreachable");
            None
        }
    }
}

pub(crate) const UNAVAILABLE: ResponseError = ResponseError::CoordinatorNotAvailable;

/// The error code of a coordinator that did not answer: COORDINATOR_NOT_AVAILABLE, so
/// the client looks the coordinator up again.
pub(crate) fn unavailable() -> i16 {
    UNAVAILABLE.code()
}

/// A request's partitions, as `(topic, partition index)` pairs, as the coordinator takes
/// them.
pub(crate) fn topic_partitions<'a>(
    parts: impl Iterator<Item = (&'a TopicName, &'a [i32])>,
) -> Vec<TopicPartition> {
    parts
        .flat_map(|(name, indexes)| {
            let topic: std::sync::Arc<str> = std::sync::Arc::from(name.0.as_str());
            indexes.iter().map(move |p| TopicPartition {
                topic: topic.clone(),
                partition: *p,
            })
        })
        .collect()
}

pub fn find_coordinator(
    shard: &Shard,
    r: FindCoordinatorRequest,
    v: i16,
) -> FindCoordinatorResponse {
    let node_id = shard.args.node_id;
    let (host, port) = shard.args.advertised();
    // Kafka's key types: 0 group, 1 transaction (not coordinated here yet, so the retriable
    // COORDINATOR_NOT_AVAILABLE), anything else INVALID_REQUEST. v0 has no key type (0).
    let error = match r.key_type {
        0 => None,
        1 => Some(UNAVAILABLE),
        _ => Some(ResponseError::InvalidRequest),
    };
    let entry = |key: StrBytes| {
        Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(if error.is_some() { -1 } else { node_id }))
            .with_host(s(if error.is_some() { "" } else { &host }))
            .with_port(if error.is_some() { -1 } else { port })
            .with_error_code(error.map_or(0, |e| e.code()))
    };
    if v >= 4 {
        FindCoordinatorResponse::default()
            .with_coordinators(r.coordinator_keys.into_iter().map(entry).collect())
    } else {
        let c = entry(r.key);
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    }
}

fn join_error(e: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(e)
        .with_generation_id(-1)
        .with_protocol_name(Some(s("")))
        .with_member_id(s(member_id))
}

pub async fn join_group(
    shard: &Rc<Shard>,
    client_id: &str,
    client_host: &str,
    r: JoinGroupRequest,
    v: i16,
) -> JoinGroupResponse {
    let group_id = r.group_id.0.to_string();
    let req = JoinRequest {
        group_id: group_id.clone(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v == 0 {
            r.session_timeout_ms
        } else {
            r.rebalance_timeout_ms
        },
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|i| i.to_string()),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let member_id = req.member_id.clone();
    match ask(shard, &group_id, |reply| GroupRequest::Join { req, reply }).await {
        Some(Ok(j)) => JoinGroupResponse::default()
            .with_generation_id(j.generation_id)
            .with_protocol_type(j.protocol_type.as_deref().map(s))
            .with_protocol_name(Some(s(j.protocol_name.as_deref().unwrap_or(""))))
            .with_leader(s(&j.leader))
            .with_skip_assignment(j.skip_assignment)
            .with_member_id(s(&j.member_id))
            .with_members(
                j.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(m.group_instance_id.as_deref().map(s))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Some(Err(GroupError::MemberIdRequired(id))) => {
            join_error(ResponseError::MemberIdRequired.code(), &id)
        }
        Some(Err(e)) => join_error(code(&e), &member_id),
        None => join_error(unavailable(), &member_id),
    }
}

pub async fn sync_group(shard: &Rc<Shard>, r: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = r.group_id.0.to_string();
    let req = SyncRequest {
        group_id: group_id.clone(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|i| i.to_string()),
        protocol_type: r.protocol_type.map(|p| p.to_string()),
        protocol_name: r.protocol_name.map(|p| p.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let error = |e: i16| {
        SyncGroupResponse::default()
            .with_error_code(e)
            .with_assignment(Bytes::new())
    };
    match ask(shard, &group_id, |reply| GroupRequest::Sync { req, reply }).await {
        Some(Ok(sy)) => SyncGroupResponse::default()
            .with_protocol_type(sy.protocol_type.as_deref().map(s))
            .with_protocol_name(sy.protocol_name.as_deref().map(s))
            .with_assignment(sy.assignment),
        Some(Err(e)) => error(code(&e)),
        None => error(unavailable()),
    }
}

pub async fn heartbeat(shard: &Rc<Shard>, r: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = r.group_id.0.to_string();
    let beat = Heartbeat {
        group_id: group_id.clone(),
        generation_id: GenerationId(r.generation_id),
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|i| i.to_string()),
    };
    let e = match ask(shard, &group_id, |reply| GroupRequest::Heartbeat {
        beat,
        reply,
    })
    .await
    {
        Some(Ok(())) => 0,
        Some(Err(e)) => code(&e),
        None => unavailable(),
    };
    HeartbeatResponse::default().with_error_code(e)
}

pub async fn leave_group(shard: &Rc<Shard>, r: LeaveGroupRequest, v: i16) -> LeaveGroupResponse {
    let group_id = r.group_id.0.to_string();
    let members: Vec<LeavingMember> = if v < 3 {
        vec![LeavingMember {
            member_id: r.member_id.to_string(),
            group_instance_id: None,
        }]
    } else {
        r.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    };
    let leaving = members.clone();
    let make = |reply| GroupRequest::Leave {
        group_id: group_id.clone(),
        members: leaving,
        reply,
    };
    match ask(shard, &group_id, make).await {
        Some(Ok(results)) => {
            let codes: Vec<i16> = results
                .iter()
                .map(|r| r.as_ref().err().map_or(0, code))
                .collect();
            if v < 3 {
                return LeaveGroupResponse::default().with_error_code(codes[0]);
            }
            LeaveGroupResponse::default().with_members(
                members
                    .into_iter()
                    .zip(codes)
                    .map(|(m, c)| {
                        MemberResponse::default()
                            .with_member_id(s(&m.member_id))
                            .with_group_instance_id(m.group_instance_id.as_deref().map(s))
                            .with_error_code(c)
                    })
                    .collect(),
            )
        }
        Some(Err(e)) => LeaveGroupResponse::default().with_error_code(code(&e)),
        None => LeaveGroupResponse::default().with_error_code(unavailable()),
    }
}

pub async fn offset_commit(shard: &Rc<Shard>, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = r.group_id.0.to_string();
    let table = shard.table();
    let mut known = Vec::new();
    // (topic, partition, error) in request order.
    let mut answers: Vec<(TopicName, i32, i16)> = Vec::new();
    for t in &r.topics {
        let meta = table.get(t.name.0.as_str());
        for p in &t.partitions {
            let exists =
                meta.is_some_and(|m| (0..m.partition_count()).contains(&p.partition_index));
            if exists {
                let tp = TopicPartition {
                    topic: std::sync::Arc::from(t.name.0.as_str()),
                    partition: p.partition_index,
                };
                known.push((
                    tp,
                    CommittedOffset {
                        offset: Offset(p.committed_offset),
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: 0,
                    },
                ));
                answers.push((t.name.clone(), p.partition_index, 0));
            } else {
                let c = ResponseError::UnknownTopicOrPartition.code();
                answers.push((t.name.clone(), p.partition_index, c));
            }
        }
    }
    let who = CommitIdentity {
        group_id: group_id.clone(),
        generation_id: r.generation_id_or_member_epoch,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|i| i.to_string()),
    };
    let make = |reply| GroupRequest::Commit {
        who,
        offsets: known,
        reply,
    };
    match ask(shard, &group_id, make).await {
        Some(Ok(results)) => set_partition_errors(&mut answers, results),
        Some(Err(CommitRefused::Member(e))) => answers.iter_mut().for_each(|a| {
            if a.2 == 0 {
                a.2 = code(&e)
            }
        }),
        Some(Err(refused @ CommitRefused::Loading)) => {
            let c = commit_refused(&refused).code();
            answers.iter_mut().for_each(|a| a.2 = c)
        }
        None => {
            let c = unavailable();
            answers.iter_mut().for_each(|a| a.2 = c)
        }
    }
    let topics = by_topic(answers.into_iter().map(|(name, partition, c)| {
        let part = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(c);
        (name, part)
    }))
    .into_iter()
    .map(|(name, partitions)| {
        OffsetCommitResponseTopic::default()
            .with_name(name)
            .with_partitions(partitions)
    })
    .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch v1-v7 (one group).
pub async fn offset_fetch(shard: &Rc<Shard>, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let group_id = r.group_id.0.to_string();
    let partitions = r
        .topics
        .as_ref()
        .map(|ts| topic_partitions(ts.iter().map(|t| (&t.name, t.partition_indexes.as_slice()))));
    let make = |reply| GroupRequest::FetchOffsets {
        group_id: group_id.clone(),
        partitions,
        reply,
    };
    let found = match ask(shard, &group_id, make).await {
        Some(Ok(found)) => found,
        Some(Err(e)) => return OffsetFetchResponse::default().with_error_code(code(&e)),
        None => return OffsetFetchResponse::default().with_error_code(unavailable()),
    };
    let topics = by_topic(found.into_iter().map(|(tp, o)| {
        let part = OffsetFetchResponsePartition::default()
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
        OffsetFetchResponseTopic::default()
            .with_name(TopicName(s(&topic)))
            .with_partitions(partitions)
    })
    .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Sets the error of each partition the coordinator refused on its `(topic, partition,
/// error)` answer; the other answers keep theirs.
pub(crate) fn set_partition_errors(
    answers: &mut [(TopicName, i32, i16)],
    results: Vec<(TopicPartition, Result<(), GroupError>)>,
) {
    for (tp, result) in results {
        if let Err(e) = result {
            answers
                .iter_mut()
                .filter(|a| a.0.0.as_str() == &*tp.topic && a.1 == tp.partition)
                .for_each(|a| a.2 = code(&e));
        }
    }
}
