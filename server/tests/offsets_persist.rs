//! Committed offsets and group metadata in `__consumer_offsets`, over raw sockets against
//! the real binary: commits come back after a clean restart and after SIGKILL right after
//! the OffsetCommit response; a Stable group's member is still known after a restart;
//! the records are in Kafka's own key/value layout; clients cannot produce to or delete
//! the internal topic.

mod common;
mod group_util;

use bytes::Bytes;
use common::{Broker, Conn};
use group_util::{
    OFFSETS_TOPIC as OFFSETS, OffsetsRecord, commit_with_metadata, create_topic as create,
    fetch_offsets, read_offsets_topic, s, until_loaded,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use sluice_server::group::placement::offsets_partition;
use sluice_server::group::record::{
    RecordKey, decode_group_metadata_value, decode_key, decode_offset_commit_value,
};

/// OffsetCommit v8 of (partition, offset) pairs of topic `t` with metadata `meta-<p>`;
/// the error code per partition.
fn commit(
    conn: &mut Conn,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let meta: Vec<String> = offsets.iter().map(|(p, _)| format!("meta-{p}")).collect();
    let offsets: Vec<(i32, i64, Option<&str>)> = offsets
        .iter()
        .zip(&meta)
        .map(|((p, o), m)| (*p, *o, Some(m.as_str())))
        .collect();
    commit_with_metadata(conn, group, generation, member, "t", &offsets)
}

#[test]
fn commits_survive_restart_and_sigkill_in_kafka_layout() {
    // Proves an acknowledged OffsetCommit is durable and rebuilt on start: commit, stop
    // cleanly, restart, OffsetFetch answers the commit; commit again, SIGKILL right after
    // the response, restart, OffsetFetch answers the new commit. The stored records are
    // read back through Fetch and decoded as Kafka's key v1 / value v3.
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "t", 3);
    assert_eq!(commit(&mut conn, "g1", -1, "", &[(0, 5), (1, 7)]), [0, 0]);
    assert_eq!(commit(&mut conn, "g1", -1, "", &[(1, 8)]), [0]);
    // A commit for a partition that does not exist is refused alone.
    let codes = commit(&mut conn, "g1", -1, "", &[(2, 1), (9, 1)]);
    assert_eq!(codes, [0, ResponseError::UnknownTopicOrPartition.code()]);

    let p = offsets_partition("g1", 16);
    let records = read_offsets_topic(&mut conn, p);
    let commits: Vec<(RecordKey, i64, i32, String)> = records
        .iter()
        .map(
            |OffsetsRecord {
                 key: k, value: v, ..
             }| {
                assert_eq!(&k[..2], &[0, 1], "offset commit key version 1");
                let v = v.as_ref().expect("not a tombstone");
                assert_eq!(&v[..2], &[0, 3], "offset commit value version 3");
                let d = decode_offset_commit_value(v).unwrap();
                assert!(
                    d.commit_timestamp_ms > 1_600_000_000_000,
                    "wall-clock commit time"
                );
                (decode_key(k).unwrap(), d.offset, d.leader_epoch, d.metadata)
            },
        )
        .collect();
    let key = |partition| RecordKey::OffsetCommit {
        group: "g1".into(),
        topic: "t".into(),
        partition,
    };
    assert_eq!(
        commits,
        vec![
            (key(0), 5, 0, "meta-0".to_string()),
            (key(1), 7, 0, "meta-1".to_string()),
            (key(1), 8, 0, "meta-1".to_string()),
            (key(2), 1, 0, "meta-2".to_string()),
        ]
    );

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(
        fetch_offsets(&mut conn, "g1", "t", 3),
        vec![
            (5, "meta-0".to_string()),
            (8, "meta-1".to_string()),
            (1, "meta-2".to_string())
        ]
    );
    assert_eq!(
        fetch_offsets(&mut conn, "other", "t", 1),
        vec![(-1, String::new())]
    );

    // Durability: SIGKILL right after the response.
    assert_eq!(commit(&mut conn, "g1", -1, "", &[(0, 42)]), [0]);
    drop(conn);
    broker.crash();
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(
        fetch_offsets(&mut conn, "g1", "t", 1),
        vec![(42, "meta-0".to_string())]
    );
}

#[test]
fn stable_group_and_its_commits_come_back_after_restart() {
    // Proves group metadata is stored when a generation completes and rebuilt on start:
    // a one-member group joins and syncs, commits with its generation, the broker
    // restarts, and the same member id and generation heartbeat successfully and commit
    // again. After the member leaves (the group empties and its empty metadata is
    // stored) and another restart, the old member is unknown but the offsets remain.
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "t", 1);
    let join = |conn: &mut Conn, member: &str| -> JoinGroupResponse {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s("g2")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(
                [JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"subscription"))]
                .into_iter()
                .collect(),
            );
        until_loaded(
            || -> JoinGroupResponse { conn.call(ApiKey::JoinGroup, 5, &req) },
            |r| r.error_code,
        )
    };
    let first = join(&mut conn, "");
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.to_string();
    // The first join of an empty group waits group.initial.rebalance.delay.ms (3 s).
    let joined = join(&mut conn, &member);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    let generation = joined.generation_id;
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g2")))
        .with_generation_id(generation)
        .with_member_id(s(&member))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    let synced: SyncGroupResponse = conn.call(ApiKey::SyncGroup, 3, &sync);
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment.as_ref(), b"assignment");
    assert_eq!(
        commit(&mut conn, "g2", generation, &member, &[(0, 11)]),
        [0]
    );

    // The stored group metadata: key version 2, value version 3 with the member.
    let p = offsets_partition("g2", 16);
    let stored: Vec<_> = read_offsets_topic(&mut conn, p)
        .into_iter()
        .filter(|r| r.key[..2] == [0, 2])
        .collect();
    let OffsetsRecord { key, value, .. } = stored.last().expect("group metadata stored");
    assert_eq!(
        decode_key(key).unwrap(),
        RecordKey::GroupMetadata { group: "g2".into() }
    );
    let value = value.as_ref().unwrap();
    assert_eq!(&value[..2], &[0, 3]);
    let v = decode_group_metadata_value(value).unwrap();
    assert_eq!(
        (v.generation, v.protocol.as_deref()),
        (generation, Some("range"))
    );
    assert_eq!(v.members.len(), 1);
    assert_eq!(v.members[0].member_id, member);
    assert_eq!(v.members[0].subscription.as_ref(), b"subscription");
    assert_eq!(v.members[0].assignment.as_ref(), b"assignment");

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    let heartbeat = |conn: &mut Conn| -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s("g2")))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        until_loaded(
            || -> HeartbeatResponse { conn.call(ApiKey::Heartbeat, 3, &req) },
            |r| r.error_code,
        )
        .error_code
    };
    assert_eq!(heartbeat(&mut conn), 0, "the member is known after restart");
    assert_eq!(
        commit(&mut conn, "g2", generation, &member, &[(0, 12)]),
        [0]
    );
    let synced: SyncGroupResponse = conn.call(ApiKey::SyncGroup, 3, &sync);
    assert_eq!(
        synced.assignment.as_ref(),
        b"assignment",
        "assignment restored"
    );

    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g2")))
        .with_members(vec![
            kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                .with_member_id(s(&member)),
        ]);
    let left: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, 3, &leave);
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(
        heartbeat(&mut conn),
        ResponseError::UnknownMemberId.code(),
        "the empty group came back without members"
    );
    assert_eq!(
        fetch_offsets(&mut conn, "g2", "t", 1),
        vec![(12, "meta-0".to_string())]
    );
}

#[test]
fn clients_cannot_produce_to_or_delete_the_internal_topic() {
    // Proves Produce to `__consumer_offsets` gets INVALID_TOPIC_EXCEPTION (Kafka's answer
    // to clients appending to an internal topic), DeleteTopics and CreatePartitions of it
    // are refused, and it exists with Kafka's default 16 partitions.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let records = common::batch(&[("k", "v", 1)], None);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(OFFSETS)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 9, &req);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    let del: DeleteTopicsResponse = conn.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(s(OFFSETS))])
            .with_timeout_ms(5_000),
    );
    assert_eq!(
        del.responses[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    let grow: CreatePartitionsResponse = conn.call(
        ApiKey::CreatePartitions,
        1,
        &CreatePartitionsRequest::default()
            .with_topics(vec![
                kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(s(OFFSETS)))
                    .with_count(20),
            ])
            .with_timeout_ms(5_000),
    );
    assert_eq!(
        grow.results[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    let meta: MetadataResponse = conn.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let t = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == OFFSETS))
        .expect("internal topic listed");
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 16);
}

#[test]
fn deleted_group_stays_deleted_after_restart() {
    // Proves DeleteGroups writes tombstones (null values for the group's offset keys and
    // its metadata key) and that the group is gone after a restart, while OffsetDelete
    // removes only the named partition's offset for good.
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "t", 2);
    assert_eq!(commit(&mut conn, "gone", -1, "", &[(0, 3), (1, 4)]), [0, 0]);
    assert_eq!(commit(&mut conn, "kept", -1, "", &[(0, 5), (1, 6)]), [0, 0]);
    let del: DeleteGroupsResponse = conn.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gone"))]),
    );
    assert_eq!(del.results[0].error_code, 0);
    let od: OffsetDeleteResponse = conn.call(
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("kept")))
            .with_topics(
                [kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ])]
                .into_iter()
                .collect(),
            ),
    );
    assert_eq!(od.error_code, 0);

    let p = offsets_partition("gone", 16);
    let tombstones: Vec<RecordKey> = read_offsets_topic(&mut conn, p)
        .into_iter()
        .filter(|r| r.value.is_none())
        .map(|r| decode_key(&r.key).unwrap())
        .filter(|k| k.group() == "gone")
        .collect();
    let offset_key = |partition| RecordKey::OffsetCommit {
        group: "gone".into(),
        topic: "t".into(),
        partition,
    };
    assert_eq!(
        tombstones,
        vec![
            offset_key(0),
            offset_key(1),
            RecordKey::GroupMetadata {
                group: "gone".into()
            }
        ]
    );

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(
        fetch_offsets(&mut conn, "gone", "t", 2),
        vec![(-1, String::new()), (-1, String::new())]
    );
    assert_eq!(
        fetch_offsets(&mut conn, "kept", "t", 2),
        vec![(-1, String::new()), (6, "meta-1".to_string())]
    );
}
