//! DescribeGroups, ListGroups, DeleteGroups, OffsetDelete, multi-group OffsetFetch (v8-9)
//! and OffsetCommit v9 over raw TCP against the real 2-shard binary: groups coordinated on
//! both shards are listed and described with Kafka's states, filters, error codes and
//! member details, deletes remove exactly what Kafka would, and every advertised version
//! of each API answers.

mod common;
mod group_util;

use std::net::SocketAddr;
use std::thread;

use bytes::Bytes;
use common::Broker;
use group_util::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;

/// (group id, error code, [(topic, partition, committed offset)]).
type GroupOffsets = (String, i16, Vec<(String, i32, i64)>);

#[test]
fn group_admin_apis_answer_as_kafka() {
    // Proves ListGroups/DescribeGroups reach the coordinators of both shards with Kafka's
    // states, filters and member details at every version; DeleteGroups and OffsetDelete
    // give NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC and
    // UNKNOWN_TOPIC_OR_PARTITION where Kafka does and remove exactly what they report;
    // multi-group OffsetFetch (v8-9) and OffsetCommit v9 read and write committed offsets.
    let broker = Broker::start();
    let addr: SocketAddr = broker.bootstrap().parse().unwrap();
    let mut c = broker.connect();

    let versions: ApiVersionsResponse =
        c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let range = |k: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::DescribeGroups), Some((0, 6)));
    assert_eq!(range(ApiKey::ListGroups), Some((0, 5)));
    assert_eq!(range(ApiKey::DeleteGroups), Some((0, 2)));
    assert_eq!(range(ApiKey::OffsetDelete), Some((0, 0)));
    assert_eq!(range(ApiKey::OffsetFetch), Some((0, 9)));
    assert_eq!(range(ApiKey::OffsetCommit), Some((0, 9)));

    create_topic(&mut c, "t", 2);
    create_topic(&mut c, "u", 1);

    // Two groups with one member each, joined in parallel (each waits out the initial
    // rebalance delay): a consumer group subscribed to "t" and a Connect-style group.
    let sub = subscription(&["t"]);
    let assigned = assignment("t", &[0, 1]);
    let active = {
        let (sub, assigned) = (sub.clone(), assigned.clone());
        thread::spawn(move || sole_member(addr, "g-active", "consumer", sub, assigned))
    };
    let connect = thread::spawn(move || {
        sole_member(
            addr,
            "g-connect",
            "connect",
            Bytes::from_static(b"opaque"),
            Bytes::from_static(b"tasks"),
        )
    });
    let (mut ca, member_a, gen_a) = active.join().unwrap();
    let (_cc, _member_c, _gen_c) = connect.join().unwrap();

    // Six groups without members, holding offsets committed outside group management,
    // at OffsetCommit v8 and v9.
    let empties: Vec<String> = (0..6).map(|i| format!("g-empty-{i}")).collect();
    for (i, g) in empties.iter().enumerate() {
        let v = if i % 2 == 0 { 9 } else { 8 };
        let codes = commit(
            &mut c,
            v,
            g,
            -1,
            "",
            &[("t", 0, 10 + i as i64), ("t", 1, 20 + i as i64)],
        );
        assert_eq!(codes, vec![0, 0], "{g} v{v}");
    }
    assert_eq!(
        commit(
            &mut ca,
            9,
            "g-active",
            gen_a,
            &member_a,
            &[("t", 0, 3), ("u", 0, 4)]
        ),
        vec![0, 0]
    );

    let mut all: Vec<String> = empties.clone();
    all.extend(["g-active".to_string(), "g-connect".to_string()]);
    all.sort();
    for v in 0..=5 {
        let groups = list(&mut c, v, &[], &[]);
        assert_eq!(ids(&groups), all, "ListGroups v{v}");
        let active = groups
            .iter()
            .find(|g| g.group_id.0.as_str() == "g-active")
            .unwrap();
        assert_eq!(active.protocol_type.as_str(), "consumer");
        if v >= 4 {
            assert_eq!(active.group_state.as_str(), "Stable");
        }
        if v >= 5 {
            assert!(groups.iter().all(|g| g.group_type.as_str() == "classic"));
        }
    }
    assert_eq!(
        ids(&list(&mut c, 4, &["Stable"], &[])),
        vec!["g-active", "g-connect"]
    );
    assert_eq!(ids(&list(&mut c, 4, &["EMPTY"], &[])), empties);
    assert_eq!(ids(&list(&mut c, 4, &["Dead"], &[])), Vec::<String>::new());
    assert_eq!(
        ids(&list(&mut c, 5, &[], &["consumer"])),
        Vec::<String>::new()
    );
    assert_eq!(ids(&list(&mut c, 5, &["Empty"], &["Classic"])), empties);

    for v in 0..=6 {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![gid("g-active"), gid("nope"), gid("g-empty-0")])
            .with_include_authorized_operations(v >= 3);
        let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, v, &req);
        assert_eq!(resp.groups.len(), 3);
        let a = &resp.groups[0];
        assert_eq!(a.error_code, 0);
        assert_eq!(a.group_id.0.as_str(), "g-active");
        assert_eq!(a.group_state.as_str(), "Stable");
        assert_eq!(a.protocol_type.as_str(), "consumer");
        assert_eq!(a.protocol_data.as_str(), "range");
        assert_eq!(a.members.len(), 1);
        let m = &a.members[0];
        assert_eq!(m.member_id.as_str(), member_a);
        assert_eq!(m.client_id.as_str(), "sluice-test");
        assert_eq!(m.client_host.as_str(), "/127.0.0.1");
        assert_eq!(m.member_metadata, sub);
        assert_eq!(m.member_assignment, assigned);
        if v >= 3 {
            assert_ne!(a.authorized_operations, i32::MIN, "v{v}");
        }
        let missing = &resp.groups[1];
        if v >= 6 {
            assert_eq!(missing.error_code, ResponseError::GroupIdNotFound.code());
        } else {
            assert_eq!(missing.error_code, 0, "v{v}");
            assert_eq!(missing.group_state.as_str(), "Dead", "v{v}");
        }
        let empty = &resp.groups[2];
        assert_eq!(empty.error_code, 0);
        assert_eq!(empty.group_state.as_str(), "Empty");
        assert!(empty.members.is_empty());
    }

    // OffsetDelete: a subscribed topic stays, an unsubscribed one goes, an unknown topic
    // is UNKNOWN_TOPIC_OR_PARTITION.
    let resp = offset_delete(&mut c, "g-active", &[("t", 0), ("u", 0), ("zz", 0)]);
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        delete_codes(&resp),
        vec![
            ResponseError::GroupSubscribedToTopic.code(),
            0,
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(committed(&mut c, "g-active", "t", 0), 3);
    assert_eq!(committed(&mut c, "g-active", "u", 0), -1);
    // A non-consumer group with members cannot lose offsets; a missing group is not found.
    let resp = offset_delete(&mut c, "g-connect", &[("u", 0)]);
    assert_eq!(resp.error_code, ResponseError::NonEmptyGroup.code());
    let resp = offset_delete(&mut c, "nope", &[("t", 0)]);
    assert_eq!(resp.error_code, ResponseError::GroupIdNotFound.code());
    // An empty group loses exactly the named partition.
    let resp = offset_delete(&mut c, "g-empty-1", &[("t", 0)]);
    assert_eq!((resp.error_code, delete_codes(&resp)), (0, vec![0]));
    assert_eq!(committed(&mut c, "g-empty-1", "t", 0), -1);
    assert_eq!(committed(&mut c, "g-empty-1", "t", 1), 21);

    // DeleteGroups at every version.
    for (v, g) in [(0, "g-empty-2"), (1, "g-empty-3"), (2, "g-empty-4")] {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![
            gid(g),
            gid("g-active"),
            gid("nope"),
        ]);
        let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, v, &req);
        let codes: Vec<(String, i16)> = resp
            .results
            .iter()
            .map(|r| (r.group_id.0.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (g.to_string(), 0),
                ("g-active".to_string(), ResponseError::NonEmptyGroup.code()),
                ("nope".to_string(), ResponseError::GroupIdNotFound.code()),
            ],
            "DeleteGroups v{v}"
        );
        assert_eq!(committed(&mut c, g, "t", 1), -1, "{g} offsets gone");
    }
    let left = ids(&list(&mut c, 5, &[], &[]));
    assert!(
        !left
            .iter()
            .any(|g| ["g-empty-2", "g-empty-3", "g-empty-4"].contains(&g.as_str()))
    );
    assert!(left.contains(&"g-active".to_string()));

    // OffsetFetch v8 and v9: several groups in one request, all topics or named ones.
    for v in [8, 9] {
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g-empty-5"))
                .with_member_epoch(-1)
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g-active"))
                .with_member_id(Some(s("whoever")))
                .with_member_epoch(17)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(name("t"))
                        .with_partition_indexes(vec![0, 1]),
                ])),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g-empty-2"))
                .with_member_epoch(-1)
                .with_topics(None),
        ]);
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req);
        let got: Vec<GroupOffsets> = resp
            .groups
            .iter()
            .map(|g| {
                let offsets = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
                    })
                    .collect();
                (g.group_id.0.to_string(), g.error_code, offsets)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "g-empty-5".to_string(),
                    0,
                    vec![("t".to_string(), 0, 15), ("t".to_string(), 1, 25)]
                ),
                (
                    "g-active".to_string(),
                    0,
                    vec![("t".to_string(), 0, 3), ("t".to_string(), 1, -1)]
                ),
                ("g-empty-2".to_string(), 0, vec![]),
            ],
            "OffsetFetch v{v}"
        );
    }
}
