//! Static members (KIP-345) whose consumers closed without LeaveGroup, over raw TCP
//! against the real binary: after session.timeout.ms they are gone, so DeleteGroups
//! succeeds one second later, as librdkafka's admin flow expects.

mod common;
mod group_util;

use std::time::{Duration, Instant};

use common::Broker;
use group_util::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

const SESSION_TIMEOUT_MS: i32 = 6_000;

/// Joins `group` as the static member `instance` (JoinGroup v7: no member id round trip
/// for static members) and syncs as leader with an assignment of "t" partition 0.
/// Returns (member id, generation).
fn static_member(c: &mut common::Conn, group: &str, instance: &str) -> (String, i32) {
    let req = join_request(group, "", "consumer", subscription(&["t"]))
        .with_group_instance_id(Some(s(instance)))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_rebalance_timeout_ms(60_000);
    let joined: JoinGroupResponse = until_loaded(
        || -> JoinGroupResponse { c.call(ApiKey::JoinGroup, 7, &req) },
        |r| r.error_code,
    );
    assert_eq!(joined.error_code, 0, "static join");
    let member_id = joined.member_id.to_string();
    assert_eq!(joined.leader.as_str(), member_id);
    let sync = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_group_instance_id(Some(s(instance)))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member_id))
                .with_assignment(assignment("t", &[0])),
        ]);
    let synced: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0, "static sync");
    (member_id, joined.generation_id)
}

fn delete_group(c: &mut common::Conn, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req);
    resp.results[0].error_code
}

#[test]
fn closed_static_member_expires_and_the_group_can_be_deleted() {
    // Proves a static member that joined and synced, then closed its connection without
    // LeaveGroup (and without committing), holds the group (NON_EMPTY_GROUP) only until
    // its session timeout: one second after it the group is Empty, DeleteGroups succeeds
    // and the group is gone. Before the change the expired group vanished at once and
    // DeleteGroups answered GROUP_ID_NOT_FOUND.
    let broker = Broker::start();
    let mut admin = broker.connect();
    create_topic(&mut admin, "t", 1);
    let mut c = broker.connect();
    let (member_id, generation) = static_member(&mut c, "static-g", "instance-1");
    assert_eq!(heartbeat(&mut c, "static-g", generation, &member_id), 0);
    let closed_at = Instant::now();
    drop(c);

    assert_eq!(
        delete_group(&mut admin, "static-g"),
        ResponseError::NonEmptyGroup.code(),
        "the member's session has not ended yet"
    );
    let wait = Duration::from_millis(SESSION_TIMEOUT_MS as u64 + 1_000);
    std::thread::sleep(wait.saturating_sub(closed_at.elapsed()));
    let listed = list(&mut admin, 4, &[], &[]);
    let state = listed
        .iter()
        .find(|g| g.group_id.0.as_str() == "static-g")
        .map(|g| g.group_state.to_string());
    assert_eq!(state.as_deref(), Some("Empty"));
    assert_eq!(delete_group(&mut admin, "static-g"), 0);
    assert!(!ids(&list(&mut admin, 4, &[], &[])).contains(&"static-g".to_string()));
}
