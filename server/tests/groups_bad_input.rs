//! Bad group input over raw TCP against the real 2-shard binary: JoinGroup with a foreign
//! protocol type, mismatched or missing protocols, an invalid session timeout and huge
//! metadata; a SyncGroup from a follower carrying assignments; commits for unknown topics
//! and partitions, stale generations and unknown members; undecodable consumer-protocol
//! metadata; FindCoordinator for transactions and unknown key types. Each gets Kafka's
//! error code, the stable group keeps its generation and members, its committed offsets
//! stay as they were, and the broker keeps serving.

mod common;
mod group_util;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::{Broker, Conn};
use group_util::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::*;

const GROUP: &str = "g";

/// The committed offsets of t:0 and t:1.
fn offsets(c: &mut Conn) -> (i64, i64) {
    (committed(c, GROUP, "t", 0), committed(c, GROUP, "t", 1))
}

/// A fresh connection still gets ApiVersions answered.
fn assert_serving(addr: SocketAddr) {
    let mut c = connect(addr);
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

fn join_code(c: &mut Conn, req: &JoinGroupRequest) -> i16 {
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 7, req);
    resp.error_code
}

fn find_coordinator(c: &mut Conn, version: i16, key_type: i8) -> Vec<(i16, i32)> {
    let req = FindCoordinatorRequest::default().with_key_type(key_type);
    let req = if version >= 4 {
        req.with_coordinator_keys(vec![s(GROUP), s("other")])
    } else {
        req.with_key(s(GROUP))
    };
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, version, &req);
    if version >= 4 {
        resp.coordinators
            .iter()
            .map(|e| (e.error_code, e.node_id.0))
            .collect()
    } else {
        vec![(resp.error_code, resp.node_id.0)]
    }
}

#[test]
fn bad_group_input_gets_kafka_errors_and_changes_nothing() {
    // Proves each bad group request is answered with the error code Kafka gives (or, for a
    // frame above socket.request.max.bytes, a closed connection), while the two-member
    // group stays Stable in its generation, its committed offsets stay unchanged and the
    // broker keeps serving.
    let broker = Broker::start_with(&["--socket-request-max-bytes", "4194304"]);
    let addr: SocketAddr = broker.bootstrap().parse().unwrap();
    let mut c = broker.connect();
    create_topic(&mut c, "t", 2);

    // Two members join "g" together; a third group's only member sends consumer-protocol
    // metadata that claims 2^31-1 topics.
    let members: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut c = connect(addr);
                let j = join(&mut c, GROUP, "consumer", subscription(&["t"]));
                (c, j)
            })
        })
        .collect();
    let bomb = Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b't']);
    let bomb_group = {
        let bomb = bomb.clone();
        thread::spawn(move || sole_member(addr, "g-bomb", "consumer", bomb, Bytes::new()))
    };
    let mut joined: Vec<(Conn, JoinGroupResponse)> =
        members.into_iter().map(|m| m.join().unwrap()).collect();
    for (_, j) in &joined {
        assert_eq!(j.error_code, 0);
    }
    let generation = joined[0].1.generation_id;
    let leader_id = joined[0].1.leader.to_string();
    if joined[1].1.member_id.as_str() == leader_id {
        joined.swap(0, 1);
    }
    let (mut leader_conn, leader) = joined.remove(0);
    let (mut follower_conn, follower) = joined.remove(0);
    let leader_id = leader.member_id.to_string();
    let follower_id = follower.member_id.to_string();
    assert_eq!(leader.members.len(), 2, "the leader sees both members");
    assert!(follower.members.is_empty());

    // SyncGroup from the follower with assignments giving itself everything: ignored, as
    // Kafka does; the follower gets what the leader assigns.
    let follower_sync = {
        let (fid, lid) = (follower_id.clone(), leader_id.clone());
        thread::spawn(move || {
            let r = sync(
                &mut follower_conn,
                GROUP,
                generation,
                &fid,
                &[(&fid, assignment("t", &[0, 1])), (&lid, Bytes::new())],
            );
            (follower_conn, r)
        })
    };
    thread::sleep(Duration::from_millis(300));
    let r = sync(
        &mut leader_conn,
        GROUP,
        generation,
        &leader_id,
        &[
            (&leader_id, assignment("t", &[0])),
            (&follower_id, assignment("t", &[1])),
        ],
    );
    assert_eq!((r.error_code, r.assignment), (0, assignment("t", &[0])));
    let (mut follower_conn, r) = follower_sync.join().unwrap();
    assert_eq!((r.error_code, r.assignment), (0, assignment("t", &[1])));

    let codes = commit(
        &mut leader_conn,
        9,
        GROUP,
        generation,
        &leader_id,
        &[("t", 0, 5), ("t", 1, 7)],
    );
    assert_eq!(codes, vec![0, 0]);
    let before = offsets(&mut c);
    assert_eq!(before, (5, 7));

    // After every bad request: offsets unchanged, both members still in this generation
    // (a rebalance would answer REBALANCE_IN_PROGRESS), the broker serving.
    macro_rules! unchanged {
        ($what:expr, $c:expr) => {{
            let what: &str = $what;
            assert_eq!(offsets($c), before, "offsets after {what}");
            assert_eq!(
                heartbeat(&mut leader_conn, GROUP, generation, &leader_id),
                0,
                "{what}"
            );
            assert_eq!(
                heartbeat(&mut follower_conn, GROUP, generation, &follower_id),
                0,
                "{what}"
            );
            assert_serving(addr);
        }};
    }

    let inconsistent = ResponseError::InconsistentGroupProtocol.code();
    // A protocol type other than the group's.
    let req = join_request(GROUP, "", "connect", subscription(&["t"]));
    assert_eq!(join_code(&mut c, &req), inconsistent);
    unchanged!("foreign protocol type", &mut c);
    // A protocol no member supports.
    let req = join_request(GROUP, "", "consumer", subscription(&["t"])).with_protocols(vec![
        JoinGroupRequestProtocol::default()
            .with_name(s("roundrobin"))
            .with_metadata(subscription(&["t"])),
    ]);
    assert_eq!(join_code(&mut c, &req), inconsistent);
    unchanged!("mismatched protocols", &mut c);
    // A new group with an empty protocol type or no protocols at all.
    let req = join_request("g-new", "", "", subscription(&["t"]));
    assert_eq!(join_code(&mut c, &req), inconsistent);
    let req = join_request("g-new", "", "consumer", Bytes::new()).with_protocols(vec![]);
    assert_eq!(join_code(&mut c, &req), inconsistent);
    assert!(!ids(&list(&mut c, 5, &[], &[])).contains(&"g-new".to_string()));
    // A session timeout below group.min.session.timeout.ms.
    let req = join_request(GROUP, "", "consumer", subscription(&["t"])).with_session_timeout_ms(10);
    assert_eq!(
        join_code(&mut c, &req),
        ResponseError::InvalidSessionTimeout.code()
    );
    unchanged!("empty protocols and bad timeout", &mut c);

    // Metadata of 2 MiB: above the coordinator's per-member bound, so it is refused with an
    // error code on a connection that stays usable; a 5 MiB frame exceeds the 4 MiB
    // request cap and only its own connection is closed.
    let req = join_request(GROUP, "", "consumer", Bytes::from(vec![7u8; 2 << 20]));
    assert_eq!(join_code(&mut c, &req), inconsistent);
    unchanged!("2 MiB metadata", &mut c);
    let mut big = connect(addr);
    let req = join_request(GROUP, "", "consumer", Bytes::from(vec![7u8; 5 << 20]));
    let frame = Conn::frame(ApiKey::JoinGroup, 7, 1, &req);
    let _ = big.send_raw(&frame);
    assert!(big.closed_within(Duration::from_secs(10)), "5 MiB frame");
    unchanged!("5 MiB frame", &mut c);

    // Commits for an unknown topic and a partition past the topic's count.
    let codes = commit(
        &mut leader_conn,
        9,
        GROUP,
        generation,
        &leader_id,
        &[("nope", 0, 1), ("t", 9, 1)],
    );
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![unknown, unknown]);
    assert_eq!(committed(&mut c, GROUP, "t", 9), -1);
    unchanged!("unknown partitions", &mut c);

    // Stale and future generations.
    let illegal = ResponseError::IllegalGeneration.code();
    for g in [generation - 1, generation + 1] {
        let codes = commit(&mut leader_conn, 9, GROUP, g, &leader_id, &[("t", 0, 100)]);
        assert_eq!(codes, vec![illegal], "commit at generation {g}");
        assert_eq!(heartbeat(&mut c, GROUP, g, &leader_id), illegal);
        let r = sync(&mut c, GROUP, g, &leader_id, &[(&leader_id, Bytes::new())]);
        assert_eq!(r.error_code, illegal);
    }
    unchanged!("generation mismatches", &mut c);

    // An unknown member id on every API that names one.
    let unknown_member = ResponseError::UnknownMemberId.code();
    let codes = commit(&mut c, 9, GROUP, generation, "ghost", &[("t", 0, 100)]);
    assert_eq!(codes, vec![unknown_member]);
    assert_eq!(
        heartbeat(&mut c, GROUP, generation, "ghost"),
        unknown_member
    );
    let r = sync(
        &mut c,
        GROUP,
        generation,
        "ghost",
        &[("ghost", Bytes::new())],
    );
    assert_eq!(r.error_code, unknown_member);
    let req = join_request(GROUP, "ghost", "consumer", subscription(&["t"]));
    assert_eq!(join_code(&mut c, &req), unknown_member);
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid(GROUP))
        .with_members(vec![MemberIdentity::default().with_member_id(s("ghost"))]);
    let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 5, &leave);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.members[0].error_code, unknown_member);
    unchanged!("unknown member", &mut c);

    // Undecodable consumer-protocol metadata: the member is described with its bytes as
    // given, and OffsetDelete treats every topic as subscribed rather than guessing.
    let (_bomb_conn, _, _) = bomb_group.join().unwrap();
    let resp: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![gid("g-bomb")]),
    );
    assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
    assert_eq!(resp.groups[0].members[0].member_metadata, bomb);
    let resp = offset_delete(&mut c, "g-bomb", &[("t", 0)]);
    assert_eq!(
        delete_codes(&resp),
        vec![ResponseError::GroupSubscribedToTopic.code()]
    );
    unchanged!("undecodable subscription", &mut c);

    // FindCoordinator: groups are found, transactions are not coordinated yet (retriable),
    // unknown key types are invalid requests.
    let node = find_coordinator(&mut c, 3, 0)[0];
    assert_eq!(node.0, 0);
    assert!(node.1 >= 0);
    for v in [3, 4] {
        for (code, node) in find_coordinator(&mut c, v, 1) {
            assert_eq!(code, ResponseError::CoordinatorNotAvailable.code(), "v{v}");
            assert_eq!(node, -1);
        }
        for (code, _) in find_coordinator(&mut c, v, 9) {
            assert_eq!(code, ResponseError::InvalidRequest.code(), "v{v}");
        }
    }
    unchanged!("FindCoordinator key types", &mut c);

    let resp: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![gid(GROUP)]),
    );
    let g = &resp.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    let mut members: Vec<String> = g.members.iter().map(|m| m.member_id.to_string()).collect();
    members.sort();
    let mut expected = vec![leader_id.clone(), follower_id.clone()];
    expected.sort();
    assert_eq!(members, expected);
}
