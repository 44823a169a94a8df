//! A member that gets its JoinGroup answer but never sends SyncGroup, over raw TCP against
//! the real 2-shard binary: as Kafka's sync expiration, the coordinator removes it once
//! the group's rebalance timeout has passed since the join phase ended, even though it
//! keeps heartbeating, and the remaining member rebalances without it.

mod common;
mod group_util;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::{Broker, Conn};
use group_util::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;

/// The members' rebalance timeout: the initial rebalance delay (3 s by default) is cut
/// to it, and it is how long the coordinator waits for SyncGroups.
const REBALANCE_MS: i32 = 2_000;
/// Long enough that no session expires during the test: only the sync expiry removes.
const SESSION_MS: i32 = 30_000;
const GROUP: &str = "g-pending-sync";
const TOPIC: &str = "t";

/// JoinGroup v7 of the test's group with the test's timeouts.
fn join_as(c: &mut Conn, member_id: &str) -> JoinGroupResponse {
    let req = join_request(GROUP, member_id, "consumer", subscription(&[TOPIC]))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS);
    c.call(ApiKey::JoinGroup, 7, &req)
}

/// A new member: the KIP-394 round trip, then the join that waits for the join phase.
fn join_new(addr: SocketAddr) -> (Conn, JoinGroupResponse, Instant) {
    let mut c = connect(addr);
    let first = join_as(&mut c, "");
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let joined = join_as(&mut c, first.member_id.as_str());
    assert_eq!(joined.error_code, 0, "join");
    (c, joined, Instant::now())
}

fn describe(c: &mut Conn) -> (String, Vec<String>) {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(GROUP)]);
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &req);
    let g = &resp.groups[0];
    assert_eq!(g.error_code, 0);
    let members = g.members.iter().map(|m| m.member_id.to_string()).collect();
    (g.group_state.to_string(), members)
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    // Proves: two members join one generation; the leader syncs and gets its part of the
    // assignment, the follower heartbeats (answered NONE) but never syncs. Once the
    // rebalance timeout has passed since the join answers, the follower's heartbeat says
    // UNKNOWN_MEMBER_ID and the leader's REBALANCE_IN_PROGRESS; the leader rejoins, is
    // alone in the next generation and syncs every partition to itself; the group is
    // Stable with that one member. Bounded by the 2 s rebalance timeout (about 5 s in
    // all) and a 20 s guard; the order of events does not depend on timing.
    let broker = Broker::start();
    let addr: SocketAddr = broker.bootstrap().parse().unwrap();
    let mut admin = broker.connect();
    create_topic(&mut admin, TOPIC, 4);

    let first = thread::spawn(move || join_new(addr));
    let second = thread::spawn(move || join_new(addr));
    let (c1, j1, t1) = first.join().unwrap();
    let (c2, j2, t2) = second.join().unwrap();
    assert_eq!(j1.generation_id, j2.generation_id);
    assert_eq!(j1.leader, j2.leader);
    let generation = j1.generation_id;
    // Whoever leads syncs; the other member never does.
    let ((mut cl, jl), (mut cf, jf, joined_at)) = if j1.leader == j1.member_id {
        ((c1, j1), (c2, j2, t2))
    } else {
        ((c2, j2), (c1, j1, t1))
    };
    let leader = jl.member_id.to_string();
    let follower = jf.member_id.to_string();
    assert_eq!(jl.members.len(), 2, "the leader sees both members");

    let mine = assignment(TOPIC, &[0, 1]);
    let synced = sync(
        &mut cl,
        GROUP,
        generation,
        &leader,
        &[
            (&leader, mine.clone()),
            (&follower, assignment(TOPIC, &[2, 3])),
        ],
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, mine);
    assert_eq!(describe(&mut admin).0, "Stable");

    let guard = Instant::now() + Duration::from_secs(20);
    let follower_code = loop {
        let leader_code = heartbeat(&mut cl, GROUP, generation, &leader);
        let code = heartbeat(&mut cf, GROUP, generation, &follower);
        if code != 0 {
            break code;
        }
        assert_eq!(
            leader_code, 0,
            "the group is Stable until the follower goes"
        );
        assert!(Instant::now() < guard, "the follower was never removed");
        thread::sleep(Duration::from_millis(100));
    };
    let removed_after = joined_at.elapsed();
    assert_eq!(follower_code, ResponseError::UnknownMemberId.code());
    assert!(
        removed_after >= Duration::from_millis(REBALANCE_MS as u64 - 500),
        "removed {removed_after:?} after its join answer, before the rebalance timeout"
    );
    assert_eq!(
        heartbeat(&mut cl, GROUP, generation, &leader),
        ResponseError::RebalanceInProgress.code()
    );

    let rejoined = join_as(&mut cl, &leader);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation + 1);
    assert_eq!(rejoined.leader.as_str(), leader);
    let ids: Vec<&str> = rejoined
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, vec![leader.as_str()], "the leader rejoins alone");
    let all = assignment(TOPIC, &[0, 1, 2, 3]);
    let synced = sync(
        &mut cl,
        GROUP,
        rejoined.generation_id,
        &leader,
        &[(&leader, all.clone())],
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, all, "every partition");
    assert_eq!(
        heartbeat(&mut cl, GROUP, rejoined.generation_id, &leader),
        0
    );
    assert_eq!(describe(&mut admin), ("Stable".to_string(), vec![leader]));
    broker.assert_running();
}
