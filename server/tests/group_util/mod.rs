//! Raw-protocol helpers for the group tests: consumer-protocol bytes, joining and syncing
//! a member, committing and reading offsets, listing groups, waiting out a coordinator
//! that is still loading, and reading `__consumer_offsets` back record by record.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::common::Conn;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

pub fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

pub fn create_topic(c: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "create {topic}");
}

/// A consumer-protocol subscription (v1) to `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(1);
    sub.encode(&mut b, 1).unwrap();
    b.freeze()
}

/// A consumer-protocol assignment (v1) of `partitions` of `topic`.
pub fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        consumer_protocol_assignment::TopicPartition::default()
            .with_topic(name(topic))
            .with_partitions(partitions.to_vec()),
    ]);
    let mut b = BytesMut::new();
    b.put_i16(1);
    a.encode(&mut b, 1).unwrap();
    b.freeze()
}

pub fn join_request(
    group: &str,
    member_id: &str,
    protocol_type: &str,
    metadata: Bytes,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(60_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(metadata),
        ])
}

/// The single member of a new group: joins (KIP-394 round trip) and syncs as leader with
/// `assigned` as its own assignment. Returns its connection, member id and generation.
pub fn sole_member(
    addr: SocketAddr,
    group: &str,
    protocol_type: &str,
    metadata: Bytes,
    assigned: Bytes,
) -> (Conn, String, i32) {
    let mut c = Conn::connect(addr);
    let first: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        7,
        &join_request(group, "", protocol_type, metadata.clone()),
    );
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member_id = first.member_id.to_string();
    let joined: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        7,
        &join_request(group, &member_id, protocol_type, metadata),
    );
    assert_eq!(joined.error_code, 0, "join {group}");
    assert_eq!(joined.leader.as_str(), member_id);
    let sync = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s(protocol_type)))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member_id))
                .with_assignment(assigned.clone()),
        ]);
    let synced: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0, "sync {group}");
    assert_eq!(synced.assignment, assigned);
    (c, member_id, joined.generation_id)
}

/// Commits `(topic, partition, offset)`s; returns the error codes in request order.
pub fn commit(
    c: &mut Conn,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
) -> Vec<i16> {
    let topics = offsets
        .iter()
        .map(|(t, p, o)| {
            OffsetCommitRequestTopic::default()
                .with_name(name(t))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*o)
                        .with_committed_metadata(Some(s(""))),
                ])
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(topics);
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, version, &req);
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// The committed offset of one partition through OffsetFetch v7 (-1 when none).
pub fn committed(c: &mut Conn, group: &str, topic: &str, partition: i32) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![partition]),
        ]));
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(resp.error_code, 0);
    resp.topics[0].partitions[0].committed_offset
}

pub fn list(c: &mut Conn, version: i16, states: &[&str], types: &[&str]) -> Vec<ListedGroup> {
    let req = ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|x| s(x)).collect())
        .with_types_filter(types.iter().map(|x| s(x)).collect());
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, version, &req);
    assert_eq!(resp.error_code, 0);
    resp.groups
}

pub fn ids(groups: &[ListedGroup]) -> Vec<String> {
    let mut v: Vec<String> = groups.iter().map(|g| g.group_id.0.to_string()).collect();
    v.sort();
    v
}

pub fn offset_delete(c: &mut Conn, group: &str, parts: &[(&str, i32)]) -> OffsetDeleteResponse {
    let topics = parts
        .iter()
        .map(|(t, p)| {
            OffsetDeleteRequestTopic::default()
                .with_name(name(t))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(*p),
                ])
        })
        .collect();
    let req = OffsetDeleteRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics);
    c.call(ApiKey::OffsetDelete, 0, &req)
}

pub fn delete_codes(resp: &OffsetDeleteResponse) -> Vec<i16> {
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// Joins with the KIP-394 round trip (JoinGroup v7): returns the final response.
pub fn join(c: &mut Conn, group: &str, protocol_type: &str, metadata: Bytes) -> JoinGroupResponse {
    let first: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        7,
        &join_request(group, "", protocol_type, metadata.clone()),
    );
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    c.call(
        ApiKey::JoinGroup,
        7,
        &join_request(group, first.member_id.as_str(), protocol_type, metadata),
    )
}

/// SyncGroup v5 with `assignments` of (member id, assignment).
pub fn sync(
    c: &mut Conn,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, Bytes)],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(a.clone())
                })
                .collect(),
        );
    c.call(ApiKey::SyncGroup, 5, &req)
}

/// Heartbeat v4: the error code.
pub fn heartbeat(c: &mut Conn, group: &str, generation: i32, member_id: &str) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req);
    resp.error_code
}

/// Connects to `addr`.
pub fn connect(addr: SocketAddr) -> Conn {
    Conn::connect(addr)
}

/// Calls until the answer is not COORDINATOR_LOAD_IN_PROGRESS (a restarted coordinator
/// replays its partitions first), for at most 20 s.
pub fn until_loaded<T>(mut call: impl FnMut() -> T, code: impl Fn(&T) -> i16) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call();
        if code(&r) != ResponseError::CoordinatorLoadInProgress.code() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "coordinator never finished loading"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// OffsetCommit v8 of `(partition, offset, metadata)`s of one topic, leader epoch 0,
/// waiting out a loading coordinator; the error code per partition, in request order.
pub fn commit_with_metadata(
    c: &mut Conn,
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    offsets: &[(i32, i64, Option<&str>)],
) -> Vec<i16> {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o, m)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(0)
                                .with_committed_metadata(m.map(s))
                        })
                        .collect(),
                ),
        ]);
    let resp = until_loaded(
        || -> OffsetCommitResponse { c.call(ApiKey::OffsetCommit, 8, &req) },
        |r| r.topics[0].partitions[0].error_code,
    );
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch v7 of partitions `0..n` of `topic`, waiting out a loading coordinator:
/// (committed offset, metadata) per partition, (-1, "") where nothing is committed.
pub fn fetch_offsets(c: &mut Conn, group: &str, topic: &str, n: i32) -> Vec<(i64, String)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes((0..n).collect()),
        ]));
    let resp = until_loaded(
        || -> OffsetFetchResponse { c.call(ApiKey::OffsetFetch, 7, &req) },
        |r| r.error_code,
    );
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            let m = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.committed_offset, m)
        })
        .collect()
}

/// One record of `__consumer_offsets` as Fetch serves it; `value` is `None` for a tombstone.
#[derive(Clone, Debug)]
pub struct OffsetsRecord {
    pub offset: i64,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Every record of one `__consumer_offsets` partition, from offset 0 to the high
/// watermark, in offset order. Fetches continue after each batch's last offset (a
/// compacted batch keeps its offset range while losing records, and whole batches may
/// be gone), so every record is read exactly once.
pub fn read_offsets_topic(c: &mut Conn, partition: i32) -> Vec<OffsetsRecord> {
    let mut out = Vec::new();
    let mut next = 0i64;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(OFFSETS_TOPIC))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(next)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
        let part = &resp.responses[0].partitions[0];
        assert_eq!(
            part.error_code, 0,
            "fetch {OFFSETS_TOPIC}-{partition} at {next}"
        );
        let high_watermark = part.high_watermark;
        let records = part.records.clone().unwrap_or_default();
        let before = next;
        // Whole batches only: base offset (8 bytes), length (4), ..., last offset delta
        // at byte 23.
        let mut at = 0usize;
        while records.len() - at >= 27 {
            let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
            let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap());
            let total = 12 + usize::try_from(len).expect("batch length");
            if records.len() - at < total {
                break;
            }
            let delta = i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap());
            let mut one = records.slice(at..at + total);
            for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut one).unwrap() {
                for r in set.records {
                    if r.offset >= next {
                        out.push(OffsetsRecord {
                            offset: r.offset,
                            key: r.key.expect("keyed record"),
                            value: r.value,
                        });
                    }
                }
            }
            next = next.max(base + i64::from(delta) + 1);
            at += total;
        }
        if next >= high_watermark {
            return out;
        }
        assert!(
            next > before,
            "no progress reading {OFFSETS_TOPIC} at {next}"
        );
    }
}
