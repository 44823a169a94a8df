//! Unit tests of the group state machine, driven by an injected clock (no sleeping).

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    })
}

fn join_req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        member_id: member_id.into(),
        group_instance_id: instance.map(String::from),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

/// KIP-394 round: the first join gets MEMBER_ID_REQUIRED, the second joins with that id.
fn join_new(c: &mut Coordinator, now: u64) -> (String, Answer<Joined>) {
    let id = match c.join_group(join_req("", None, &["range"]), now) {
        Answer::Done(Err(GroupError::MemberIdRequired(id))) => id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    };
    let a = c.join_group(join_req(&id, None, &["range"]), now);
    (id, a)
}

fn sync_req(member_id: &str, generation_id: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

fn joined(a: Answer<Joined>) -> Joined {
    match a {
        Answer::Done(Ok(j)) => j,
        other => panic!("expected a join answer, got {other:?}"),
    }
}

fn join_delivery(d: &[Delivery], member: &str) -> Result<Joined, GroupError> {
    d.iter()
        .find_map(|d| match d {
            Delivery::Join {
                member_id, result, ..
            } if member_id == member => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join delivery for {member} in {d:?}"))
}

fn sync_delivery(d: &[Delivery], member: &str) -> Result<Synced, GroupError> {
    d.iter()
        .find_map(|d| match d {
            Delivery::Sync {
                member_id, result, ..
            } if member_id == member => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync delivery for {member} in {d:?}"))
}

/// The leader's SyncGroup followed by a successful store of its assignment: the leader
/// waits like every member, the group stays CompletingRebalance until `sync_stored`.
/// Returns the answers handed out at the store's completion.
fn leader_sync_stored(c: &mut Coordinator, req: SyncRequest, now: u64) -> Vec<Delivery> {
    let group_id = req.group_id.clone();
    let generation = req.generation_id;
    let leader = req.member_id.clone();
    assert_eq!(
        c.sync_group(req, now),
        Answer::Pending { member_id: leader }
    );
    assert_eq!(
        c.state(&group_id),
        Some(GroupState::CompletingRebalance),
        "not Stable before the assignment is stored"
    );
    c.sync_stored(&group_id, generation, Ok(()), now);
    assert_eq!(c.state(&group_id), Some(GroupState::Stable));
    c.take_deliveries()
}

/// Forms a stable group of two dynamic members; returns (leader, follower, generation).
fn stable_pair(c: &mut Coordinator) -> (String, String, i32) {
    let (a, first) = join_new(c, 0);
    // Alone and all joined: the first member's join completes at once.
    let j = joined(first);
    assert_eq!(j.leader, a);
    let d = leader_sync_stored(
        c,
        sync_req(
            &a,
            j.generation_id,
            vec![(a.clone(), Bytes::from_static(b"all"))],
        ),
        0,
    );
    assert_eq!(
        sync_delivery(&d, &a).expect("leader synced").assignment,
        Bytes::from_static(b"all")
    );
    // A second member triggers a rebalance; the first rejoins after its heartbeat says so.
    let (b, second) = join_new(c, 100);
    assert!(matches!(second, Answer::Pending { .. }));
    assert_eq!(
        c.heartbeat("g", j.generation_id, &a, None, 200),
        Err(GroupError::RebalanceInProgress)
    );
    let ja = joined(c.join_group(join_req(&a, None, &["range"]), 300));
    let jb = join_delivery(&c.take_deliveries(), &b).expect("follower joined");
    assert_eq!(ja.generation_id, j.generation_id + 1);
    assert_eq!(jb.generation_id, ja.generation_id);
    assert_eq!(ja.members.len(), 2, "the leader sees every member");
    assert!(jb.members.is_empty(), "a follower sees no members");
    let generation = ja.generation_id;
    assert!(matches!(
        c.sync_group(sync_req(&b, generation, vec![]), 400),
        Answer::Pending { .. }
    ));
    let d = leader_sync_stored(
        c,
        sync_req(
            &a,
            generation,
            vec![
                (a.clone(), Bytes::from_static(b"A")),
                (b.clone(), Bytes::from_static(b"B")),
            ],
        ),
        500,
    );
    assert_eq!(
        sync_delivery(&d, &a),
        Ok(Synced {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::from_static(b"A"),
        })
    );
    let sb = sync_delivery(&d, &b).expect("follower synced");
    assert_eq!(sb.assignment, Bytes::from_static(b"B"));
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    (a, b, generation)
}

#[test]
fn two_members_rebalance_to_stable_with_leader_assignments() {
    // Proves the full classic round: member-id-required, join phase waiting for every
    // member, leader-only member list, SyncGroup fan-out of the leader's assignments.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    assert_eq!(c.heartbeat("g", generation, &a, None, 600), Ok(()));
    assert_eq!(c.heartbeat("g", generation, &b, None, 600), Ok(()));
    let d = c.describe("g");
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_name, "range");
    assert_eq!(d.members.len(), 2);
}

#[test]
fn generation_and_member_checks_use_kafka_errors() {
    // Proves stale generations, unknown members and unknown groups get Kafka's codes.
    let mut c = coordinator();
    let (a, _b, generation) = stable_pair(&mut c);
    assert_eq!(
        c.heartbeat("g", generation - 1, &a, None, 700),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat("g", generation, "nobody", None, 700),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat("nogroup", generation, &a, None, 700),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.sync_group(sync_req(&a, generation + 5, vec![]), 700),
        Answer::Done(Err(GroupError::IllegalGeneration))
    );
    let mut wrong = sync_req(&a, generation, vec![]);
    wrong.protocol_name = Some("roundrobin".into());
    assert_eq!(
        c.sync_group(wrong, 700),
        Answer::Done(Err(GroupError::InconsistentGroupProtocol))
    );
    assert_eq!(
        c.join_group(join_req("ghost", None, &["range"]), 700),
        Answer::Done(Err(GroupError::UnknownMemberId))
    );
    // Nothing above changed the group.
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert_eq!(c.generation("g"), Some(generation));
}

#[test]
fn join_rejects_bad_input() {
    // Proves an unknown protocol type, no common protocol, a bad session timeout, an
    // empty group id and a huge metadata blob are refused and leave the group unchanged.
    let mut c = coordinator();
    let (_a, _b, generation) = stable_pair(&mut c);
    let mut other_type = join_req("", None, &["range"]);
    other_type.protocol_type = "connect".into();
    assert_eq!(
        c.join_group(other_type, 800),
        Answer::Done(Err(GroupError::InconsistentGroupProtocol))
    );
    assert_eq!(
        c.join_group(join_req("", None, &["roundrobin"]), 800),
        Answer::Done(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut bad_timeout = join_req("", None, &["range"]);
    bad_timeout.session_timeout_ms = 10;
    assert_eq!(
        c.join_group(bad_timeout, 800),
        Answer::Done(Err(GroupError::InvalidSessionTimeout(10)))
    );
    let mut no_group = join_req("", None, &["range"]);
    no_group.group_id = String::new();
    assert_eq!(
        c.join_group(no_group, 800),
        Answer::Done(Err(GroupError::InvalidGroupId))
    );
    let mut huge = join_req("", None, &["range"]);
    huge.protocols[0].1 = Bytes::from(vec![0u8; (1 << 20) + 1]);
    assert_eq!(
        c.join_group(huge, 800),
        Answer::Done(Err(GroupError::InconsistentGroupProtocol))
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert_eq!(c.generation("g"), Some(generation));
    // An empty group with an empty protocol list is refused too.
    let mut none = join_req("", None, &[]);
    none.group_id = "h".into();
    assert_eq!(
        c.join_group(none, 800),
        Answer::Done(Err(GroupError::InconsistentGroupProtocol))
    );
    assert_eq!(c.state("h"), None);
}

#[test]
fn non_leader_assignments_are_ignored() {
    // Proves a follower's SyncGroup assignments change nothing: only the leader's count.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    // Force a new generation: a leaves, b is alone and rejoins.
    c.leave_group(
        "g",
        &[LeavingMember {
            member_id: a.clone(),
            group_instance_id: None,
        }],
        1_000,
    )
    .unwrap();
    let jb = joined(c.join_group(join_req(&b, None, &["range"]), 1_100));
    assert_eq!(jb.generation_id, generation + 1);
    assert_eq!(jb.leader, b);
    let (x, px) = join_new(&mut c, 1_200);
    assert!(matches!(px, Answer::Pending { .. }));
    let jb = joined(c.join_group(join_req(&b, None, &["range"]), 1_300));
    let generation2 = jb.generation_id;
    c.take_deliveries();
    // The follower x sends assignments; they are ignored and x waits.
    let fake = vec![
        (x.clone(), Bytes::from_static(b"stolen")),
        (b.clone(), Bytes::new()),
    ];
    assert!(matches!(
        c.sync_group(sync_req(&x, generation2, fake), 1_400),
        Answer::Pending { .. }
    ));
    let d = leader_sync_stored(
        &mut c,
        sync_req(
            &b,
            generation2,
            vec![
                (b.clone(), Bytes::from_static(b"b")),
                (x.clone(), Bytes::from_static(b"x")),
            ],
        ),
        1_500,
    );
    assert_eq!(
        sync_delivery(&d, &b).unwrap().assignment,
        Bytes::from_static(b"b")
    );
    assert_eq!(
        sync_delivery(&d, &x).unwrap().assignment,
        Bytes::from_static(b"x")
    );
}

#[test]
fn session_timeout_removes_member_and_rebalances() {
    // Proves a member that stops heartbeating is removed after its session timeout, the
    // survivors are told REBALANCE_IN_PROGRESS and the next generation excludes it.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    let t = 500 + SESSION_MS as u64;
    assert_eq!(c.heartbeat("g", generation, &a, None, t - 1), Ok(()));
    assert!(c.next_deadline_ms().is_some_and(|d| d <= t));
    c.tick(t);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat("g", generation, &b, None, t),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat("g", generation, &a, None, t),
        Err(GroupError::RebalanceInProgress)
    );
    let ja = joined(c.join_group(join_req(&a, None, &["range"]), t + 1));
    assert_eq!(ja.generation_id, generation + 1);
    assert_eq!(ja.members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    // Proves the join phase ends at the rebalance deadline even if a member never rejoins,
    // and that member is removed from the new generation.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    let (x, px) = join_new(&mut c, 1_000);
    assert!(matches!(px, Answer::Pending { .. }));
    let pa = c.join_group(join_req(&a, None, &["range"]), 1_100);
    assert!(matches!(pa, Answer::Pending { .. }));
    // b keeps heartbeating (so its session is alive) but never rejoins.
    for t in (2_000..31_000).step_by(3_000) {
        let _ = c.heartbeat("g", generation, &b, None, t);
        c.tick(t);
    }
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(1_000 + REBALANCE_MS as u64);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let d = c.take_deliveries();
    let ja = join_delivery(&d, &a).unwrap();
    let jx = join_delivery(&d, &x).unwrap();
    assert_eq!(ja.generation_id, generation + 1);
    assert_eq!(jx.generation_id, generation + 1);
    assert_eq!(
        ja.members.len() + jx.members.len(),
        2,
        "leader lists a and x only"
    );
    assert_eq!(
        c.heartbeat("g", generation + 1, &b, None, 31_500),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn pending_member_id_expires() {
    // Proves a member id handed out with MEMBER_ID_REQUIRED is forgotten after the session
    // timeout if the client never joins with it.
    let mut c = coordinator();
    let Answer::Done(Err(GroupError::MemberIdRequired(id))) =
        c.join_group(join_req("", None, &["range"]), 0)
    else {
        panic!("member id required");
    };
    c.tick(SESSION_MS as u64 + 1);
    assert_eq!(c.state("g"), None);
    assert_eq!(
        c.join_group(join_req(&id, None, &["range"]), SESSION_MS as u64 + 2),
        Answer::Done(Err(GroupError::UnknownMemberId))
    );
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    // Proves KIP-345: a static member rejoining with a new member id in a stable group gets
    // the current generation back, the group stays Stable, and the old id is fenced.
    let mut c = coordinator();
    let j1 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 0));
    let old = j1.member_id.clone();
    leader_sync_stored(
        &mut c,
        sync_req(
            &old,
            j1.generation_id,
            vec![(old.clone(), Bytes::from_static(b"p0"))],
        ),
        10,
    );
    let j2 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 5_000));
    assert_ne!(j2.member_id, old);
    assert_eq!(j2.generation_id, j1.generation_id, "no new generation");
    assert!(j2.skip_assignment, "the leader keeps its assignment");
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let mut s = sync_req(&j2.member_id, j2.generation_id, vec![]);
    s.group_instance_id = Some("i1".into());
    let Answer::Done(Ok(synced)) = c.sync_group(s, 5_100) else {
        panic!("sync after static rejoin");
    };
    assert_eq!(synced.assignment, Bytes::from_static(b"p0"));
    assert_eq!(
        c.heartbeat("g", j1.generation_id, &old, Some("i1"), 5_200),
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn static_leader_rejoin_before_v9_is_not_named_leader() {
    // Proves the KIP-814 split: a static leader rejoining a stable group through JoinGroup
    // v5-v8 (no SkipAssignment field) is answered with the previous leader id and no
    // members, so it acts as a follower and syncs for its kept assignment, while a v9 client
    // is named leader, gets the members and is told to skip the assignment. Neither
    // rejoin starts a new generation.
    let mut c = coordinator();
    let j1 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 0));
    let leader = j1.member_id.clone();
    assert_eq!(j1.leader, leader);
    let mut s = sync_req(
        &leader,
        j1.generation_id,
        vec![(leader.clone(), Bytes::from_static(b"p0"))],
    );
    s.group_instance_id = Some("i1".into());
    leader_sync_stored(&mut c, s, 10);

    let old_client = JoinRequest {
        supports_skip_assignment: false,
        ..join_req("", Some("i1"), &["range"])
    };
    let j2 = joined(c.join_group(old_client, 1_000));
    assert_ne!(j2.member_id, leader);
    assert_eq!(
        j2.leader, leader,
        "the previous leader id, not the new member's"
    );
    assert!(j2.members.is_empty());
    assert!(!j2.skip_assignment);
    assert_eq!(j2.generation_id, j1.generation_id);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let mut s = sync_req(&j2.member_id, j2.generation_id, vec![]);
    s.group_instance_id = Some("i1".into());
    let Answer::Done(Ok(synced)) = c.sync_group(s, 1_100) else {
        panic!("sync after static rejoin");
    };
    assert_eq!(synced.assignment, Bytes::from_static(b"p0"));

    let j3 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 2_000));
    assert_eq!(j3.leader, j3.member_id, "a v9 leader is told it leads");
    assert!(j3.skip_assignment);
    let ids: Vec<&str> = j3.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![j3.member_id.as_str()]);
    assert_eq!(j3.generation_id, j1.generation_id);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
}

#[test]
fn protocol_selection_follows_member_votes() {
    // Proves the chosen protocol is one every member supports, picked by preference votes.
    let mut c = coordinator();
    let ja = joined(c.join_group(
        JoinRequest {
            require_known_member_id: false,
            ..join_req("", None, &["cooperative-sticky", "range"])
        },
        0,
    ));
    assert_eq!(ja.protocol_name.as_deref(), Some("cooperative-sticky"));
    let a = ja.member_id;
    let Answer::Pending { member_id: b } = c.join_group(
        JoinRequest {
            require_known_member_id: false,
            ..join_req("", None, &["range", "cooperative-sticky"])
        },
        10,
    ) else {
        panic!("pending");
    };
    let Answer::Pending { member_id: x } = c.join_group(
        JoinRequest {
            require_known_member_id: false,
            ..join_req("", None, &["range"])
        },
        20,
    ) else {
        panic!("pending");
    };
    let ja = joined(c.join_group(join_req(&a, None, &["cooperative-sticky", "range"]), 30));
    assert_eq!(
        ja.protocol_name.as_deref(),
        Some("range"),
        "only range is common"
    );
    let d = c.take_deliveries();
    assert_eq!(
        join_delivery(&d, &b).unwrap().protocol_name.as_deref(),
        Some("range")
    );
    assert_eq!(
        join_delivery(&d, &x).unwrap().protocol_name.as_deref(),
        Some("range")
    );
}

#[test]
fn initial_delay_waits_for_more_members() {
    // Proves group.initial.rebalance.delay.ms: the first generation of an empty group waits
    // for the delay so members starting together land in one generation.
    let mut c = Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    });
    let (a, pa) = join_new(&mut c, 0);
    assert!(matches!(pa, Answer::Pending { .. }));
    let (b, pb) = join_new(&mut c, 1_000);
    assert!(matches!(pb, Answer::Pending { .. }));
    c.tick(3_500);
    assert_eq!(
        c.state("g"),
        Some(GroupState::PreparingRebalance),
        "delay extended by b"
    );
    c.tick(4_000);
    let d = c.take_deliveries();
    assert_eq!(join_delivery(&d, &a).unwrap().generation_id, 1);
    assert_eq!(join_delivery(&d, &b).unwrap().generation_id, 1);
}

#[test]
fn leave_group_batched_and_rebalance() {
    // Proves LeaveGroup with several members (one by instance id, one unknown) answers per
    // member and rebalances the rest; the last leaving member empties the group.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    let r = c
        .leave_group(
            "g",
            &[
                LeavingMember {
                    member_id: b.clone(),
                    group_instance_id: None,
                },
                LeavingMember {
                    member_id: "ghost".into(),
                    group_instance_id: None,
                },
            ],
            1_000,
        )
        .unwrap();
    assert_eq!(r, vec![Ok(b.clone()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(
        c.heartbeat("g", generation, &a, None, 1_001),
        Err(GroupError::RebalanceInProgress)
    );
    let ja = joined(c.join_group(join_req(&a, None, &["range"]), 1_002));
    assert_eq!(ja.generation_id, generation + 1);
    c.leave_group(
        "g",
        &[LeavingMember {
            member_id: a.clone(),
            group_instance_id: None,
        }],
        1_003,
    )
    .unwrap();
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    assert_eq!(c.generation("g"), Some(generation + 2));
}

#[test]
fn offset_commit_checks_generation_and_keeps_offsets() {
    // Proves commits from the current generation are stored, stale or unknown committers
    // are refused with Kafka's codes, and simple (generation -1) commits work on empty groups.
    let mut c = coordinator();
    let (a, _b, generation) = stable_pair(&mut c);
    let off = |o: i64| CommittedOffset {
        offset: Offset(o),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    let who = |g: i32, m: &str| CommitIdentity {
        group_id: "g".into(),
        generation_id: g,
        member_id: m.into(),
        group_instance_id: None,
    };
    let r = c
        .commit_offsets(
            &who(generation, &a),
            vec![(("t".into(), 0), off(42))],
            2_000,
        )
        .unwrap();
    assert_eq!(r, vec![(("t".into(), 0), Ok(()))]);
    assert_eq!(
        c.committed("g", &("t".into(), 0)).map(|o| o.offset.0),
        Some(42)
    );
    assert_eq!(
        c.commit_offsets(
            &who(generation - 1, &a),
            vec![(("t".into(), 0), off(1))],
            2_001
        ),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.commit_offsets(
            &who(generation, "ghost"),
            vec![(("t".into(), 0), off(1))],
            2_001
        ),
        Err(GroupError::UnknownMemberId)
    );
    let big = CommittedOffset {
        metadata: Some("x".repeat(5_000)),
        ..off(7)
    };
    let r = c
        .commit_offsets(&who(generation, &a), vec![(("t".into(), 1), big)], 2_002)
        .unwrap();
    assert_eq!(r[0].1, Err(GroupError::OffsetMetadataTooLarge));
    assert_eq!(
        c.committed("g", &("t".into(), 0)).map(|o| o.offset.0),
        Some(42),
        "untouched"
    );
    // A standalone consumer commits with generation -1 to a group that does not exist.
    let solo = CommitIdentity {
        group_id: "solo".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    };
    c.commit_offsets(&solo, vec![(("t".into(), 3), off(9))], 2_003)
        .unwrap();
    assert_eq!(c.all_committed("solo").len(), 1);
    assert_eq!(c.state("solo"), Some(GroupState::Empty));
    assert_eq!(
        c.commit_offsets(
            &CommitIdentity {
                generation_id: 3,
                ..solo.clone()
            },
            vec![],
            2_004
        ),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.commit_offsets(
            &CommitIdentity {
                group_id: "none".into(),
                generation_id: 3,
                ..solo
            },
            vec![],
            2_004
        ),
        Err(GroupError::IllegalGeneration)
    );
}

#[test]
fn commit_during_completing_rebalance_is_refused() {
    // Proves OffsetCommit answers REBALANCE_IN_PROGRESS while assignments are being handed out.
    let mut c = coordinator();
    let (a, _b, generation) = stable_pair(&mut c);
    let (_x, _) = join_new(&mut c, 1_000);
    c.join_group(join_req(&a, None, &["range"]), 1_001);
    // b never rejoins; the join phase ends at the deadline.
    c.tick(1_000 + REBALANCE_MS as u64);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let who = CommitIdentity {
        group_id: "g".into(),
        generation_id: generation + 1,
        member_id: a,
        group_instance_id: None,
    };
    assert_eq!(c.check_commit(&who), Err(GroupError::RebalanceInProgress));
}

#[test]
fn list_describe_delete_groups() {
    // Proves ListGroups filters by state, DescribeGroups of an unknown group says Dead,
    // DeleteGroups refuses non-empty groups and removes empty ones with their offsets.
    let mut c = coordinator();
    stable_pair(&mut c);
    let solo = CommitIdentity {
        group_id: "solo".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    };
    let off = CommittedOffset {
        offset: Offset(1),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    c.commit_offsets(&solo, vec![(("t".into(), 0), off)], 0)
        .unwrap();
    assert_eq!(c.list(&[]).len(), 2);
    let stable = c.list(&["stable".into()]);
    assert_eq!(
        stable,
        vec![("g".into(), "consumer".into(), GroupState::Stable)]
    );
    assert_eq!(c.describe("nope").state, GroupState::Dead);
    assert_eq!(c.delete_group("g"), Err(GroupError::NonEmptyGroup));
    assert_eq!(c.delete_group("nope"), Err(GroupError::GroupIdNotFound));
    assert_eq!(c.delete_group("solo"), Ok(()));
    assert!(c.all_committed("solo").is_empty());
    assert_eq!(c.delete_group("solo"), Err(GroupError::GroupIdNotFound));
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    // Proves OffsetDelete removes offsets of topics no member subscribes to and answers
    // GROUP_SUBSCRIBED_TO_TOPIC for the subscribed ones.
    let mut c = coordinator();
    let (a, _b, generation) = stable_pair(&mut c);
    let off = CommittedOffset {
        offset: Offset(5),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    let who = CommitIdentity {
        group_id: "g".into(),
        generation_id: generation,
        member_id: a,
        group_instance_id: None,
    };
    c.commit_offsets(
        &who,
        vec![(("t".into(), 0), off.clone()), (("old".into(), 0), off)],
        0,
    )
    .unwrap();
    let r = c
        .delete_offsets("g", &[("t".into(), 0), ("old".into(), 0)], |_| {
            Some(vec!["t".into()])
        })
        .unwrap();
    assert_eq!(r[0].1, Err(GroupError::GroupSubscribedToTopic));
    assert_eq!(r[1].1, Ok(()));
    assert!(c.committed("g", &("old".into(), 0)).is_none());
    assert!(c.committed("g", &("t".into(), 0)).is_some());
    assert_eq!(
        c.delete_offsets("nope", &[], |_| None),
        Err(GroupError::GroupIdNotFound)
    );
}

#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    // Proves offsets.retention.minutes: offsets of an empty group expire retention after the
    // later of commit and emptiness, while a group with members keeps them.
    let retention_ms = 60_000;
    let mut c = Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: retention_ms,
        ..GroupConfig::default()
    });
    let off = CommittedOffset {
        offset: Offset(3),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    let solo = CommitIdentity {
        group_id: "solo".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    };
    c.commit_offsets(&solo, vec![(("t".into(), 0), off.clone())], 1_000)
        .unwrap();
    assert_eq!(c.next_deadline_ms(), Some(1_000 + retention_ms));
    c.tick(1_000 + retention_ms - 1);
    assert!(c.committed("solo", &("t".into(), 0)).is_some());
    c.tick(1_000 + retention_ms);
    assert!(c.committed("solo", &("t".into(), 0)).is_none());
    assert_eq!(
        c.state("solo"),
        None,
        "a group with nothing left is forgotten"
    );

    // A group with members keeps offsets past retention, however old.
    let (a, b, generation) = stable_pair(&mut c);
    let who = CommitIdentity {
        group_id: "g".into(),
        generation_id: generation,
        member_id: a.clone(),
        group_instance_id: None,
    };
    c.commit_offsets(&who, vec![(("t".into(), 0), off)], 600)
        .unwrap();
    for t in (1_000..200_000).step_by(3_000) {
        let _ = c.heartbeat("g", generation, &a, None, t);
        let _ = c.heartbeat("g", generation, &b, None, t);
        c.tick(t);
    }
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert!(c.committed("g", &("t".into(), 0)).is_some());
}

/// Replays `writes` into a fresh coordinator the way the host rebuilds from the log,
/// with consecutive log offsets.
fn replay(
    writes: &[GroupWrite],
    offsets: &[(String, (String, i32), CommittedOffset)],
    now: u64,
) -> Coordinator {
    let mut c = coordinator();
    let mut position = 0;
    for (g, tp, o) in offsets {
        c.load_offset(g, tp.clone(), Some(o.clone()), position);
        position += 1;
    }
    for w in writes {
        match w {
            GroupWrite::Metadata { group_id, value }
            | GroupWrite::Assignment {
                group_id, value, ..
            } => c.load_group(group_id, Some(value.clone()), now),
            GroupWrite::GroupRemoved { group_id } => c.load_group(group_id, None, now),
            GroupWrite::OffsetsRemoved {
                group_id,
                partitions,
            } => {
                for tp in partitions {
                    c.load_offset(group_id, tp.clone(), None, position);
                    position += 1;
                }
            }
        }
    }
    assert!(c.take_writes().is_empty(), "replay writes nothing");
    c
}

#[test]
fn completed_generation_is_written_and_rebuilds_a_stable_group() {
    // Proves the leader's SyncGroup writes the group's metadata (members, subscription,
    // assignment), and that replaying it gives a Stable group whose members heartbeat
    // with the same generation and get their assignment, until a member that stops
    // heartbeating expires after its session timeout and the group rebalances.
    let mut c = coordinator();
    let (a, b, generation) = stable_pair(&mut c);
    let writes = c.take_writes();
    let GroupWrite::Assignment {
        group_id,
        generation_id,
        value,
    } = writes.last().expect("metadata written")
    else {
        panic!("expected the assignment, got {writes:?}");
    };
    assert_eq!(group_id, "g");
    assert_eq!(*generation_id, generation);
    assert_eq!(value.generation, generation);
    assert_eq!(value.members.len(), 2);
    assert_eq!(value.leader.as_deref(), Some(a.as_str()));
    let b_meta = value.members.iter().find(|m| m.member_id == b).unwrap();
    assert_eq!(b_meta.assignment, Bytes::from_static(b"B"));
    assert_eq!(b_meta.subscription, Bytes::from("meta-range"));

    let now = 50_000;
    let mut r = replay(&writes, &[], now);
    assert_eq!(r.state("g"), Some(GroupState::Stable));
    assert_eq!(r.generation("g"), Some(generation));
    assert_eq!(r.heartbeat("g", generation, &a, None, now + 1), Ok(()));
    let Answer::Done(Ok(s)) = r.sync_group(sync_req(&b, generation, vec![]), now + 2) else {
        panic!("restored member syncs");
    };
    assert_eq!(s.assignment, Bytes::from_static(b"B"));
    // a keeps heartbeating, b does not: b expires and the group rebalances.
    r.heartbeat("g", generation, &a, None, now + SESSION_MS as u64 - 1)
        .unwrap();
    // b's SyncGroup at now + 2 was its last sign of life.
    r.tick(now + 2 + SESSION_MS as u64);
    assert_eq!(r.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        r.heartbeat("g", generation, &b, None, now + SESSION_MS as u64 + 3),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn deletes_and_expiry_write_tombstones_that_replay_to_nothing() {
    // Proves DeleteGroups writes tombstones for every offset and the group, OffsetDelete
    // for the deleted offsets, offset expiry for the expired ones plus the group once it
    // is unused; replaying commits followed by those tombstones leaves nothing behind.
    let mut c = Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: 1_000,
        ..GroupConfig::default()
    });
    let solo = |g: &str| CommitIdentity {
        group_id: g.into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
    };
    let off = |o| CommittedOffset {
        offset: Offset(o),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    let commits = vec![
        (("t".to_string(), 0), off(1)),
        (("t".to_string(), 1), off(2)),
    ];
    c.commit_offsets(&solo("del"), commits.clone(), 10).unwrap();
    c.commit_offsets(&solo("od"), commits.clone(), 10).unwrap();
    assert!(
        c.take_writes().is_empty(),
        "commits are written by the host"
    );
    c.delete_group("del").unwrap();
    let none = |_: &Bytes| Some(Vec::new());
    c.delete_offsets("od", &[("t".into(), 0)], none).unwrap();
    let writes = c.take_writes();
    let tp = |p| ("t".to_string(), p);
    assert_eq!(
        writes,
        vec![
            GroupWrite::OffsetsRemoved {
                group_id: "del".into(),
                partitions: vec![tp(0), tp(1)]
            },
            GroupWrite::GroupRemoved {
                group_id: "del".into()
            },
            GroupWrite::OffsetsRemoved {
                group_id: "od".into(),
                partitions: vec![tp(0)]
            },
        ]
    );
    let loaded: Vec<_> = ["del", "od"]
        .iter()
        .flat_map(|g| {
            commits
                .iter()
                .map(|(t, o)| (g.to_string(), t.clone(), o.clone()))
        })
        .collect();
    let r = replay(&writes, &loaded, 20);
    assert!(r.all_committed("del").is_empty());
    assert_eq!(r.state("del"), None);
    assert_eq!(r.all_committed("od"), vec![(tp(1), off(2))]);

    // Expiry: "od" has no members; its last offset expires after the retention.
    c.tick(10 + 1_000);
    let writes = c.take_writes();
    assert_eq!(
        writes,
        vec![GroupWrite::OffsetsRemoved {
            group_id: "od".into(),
            partitions: vec![tp(1)]
        }]
    );
    assert_eq!(c.state("od"), None, "an unused group is forgotten");
}

#[test]
fn an_older_record_never_overwrites_a_newer_commit() {
    // Proves materialization by log position: two commits of one partition whose
    // appends finish out of order leave the one written later.
    let mut c = coordinator();
    let o = |offset| CommittedOffset {
        offset: Offset(offset),
        leader_epoch: -1,
        metadata: None,
        commit_timestamp_ms: 0,
    };
    c.materialize_commit("g", vec![(("t".into(), 0), o(20), Some(8))]);
    c.materialize_commit("g", vec![(("t".into(), 0), o(10), Some(7))]);
    assert_eq!(c.committed("g", &("t".into(), 0)), Some(&o(20)));
    c.materialize_commit("g", vec![(("t".into(), 0), o(30), Some(9))]);
    assert_eq!(c.committed("g", &("t".into(), 0)), Some(&o(30)));
}

/// Two members joined in a new generation, neither synced yet; returns (leader, follower,
/// generation). The previous generation of `stable_pair` is replaced by a rejoin.
fn completing_pair(c: &mut Coordinator) -> (String, String, i32) {
    let (a, b, generation) = stable_pair(c);
    // a changes its protocols: a new generation starts and b rejoins.
    let changed = join_req(&a, None, &["range", "roundrobin"]);
    assert!(matches!(
        c.join_group(changed, 1_000),
        Answer::Pending { .. }
    ));
    let jb = joined(c.join_group(join_req(&b, None, &["range"]), 1_100));
    let ja = join_delivery(&c.take_deliveries(), &a).expect("leader joined");
    assert_eq!(ja.leader, a);
    assert_eq!(jb.generation_id, generation + 1);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    (a, b, jb.generation_id)
}

fn assign_both(a: &str, b: &str) -> Vec<(String, Bytes)> {
    vec![
        (a.to_string(), Bytes::from_static(b"A2")),
        (b.to_string(), Bytes::from_static(b"B2")),
    ]
}

#[test]
fn sync_answers_wait_until_the_assignment_is_stored() {
    // Proves, as Kafka's doSyncGroup: the leader's SyncGroup asks for the assignment to be
    // stored but answers nobody, the group stays CompletingRebalance (heartbeats still
    // fine, describe shows no assignment) until the store succeeds; then the group is
    // Stable and the leader and the waiting follower get their own assignments.
    let mut c = coordinator();
    let (a, b, generation) = completing_pair(&mut c);
    c.take_writes();
    assert!(matches!(
        c.sync_group(sync_req(&b, generation, vec![]), 1_200),
        Answer::Pending { .. }
    ));
    assert_eq!(
        c.sync_group(sync_req(&a, generation, assign_both(&a, &b)), 1_300),
        Answer::Pending {
            member_id: a.clone()
        }
    );
    assert!(
        c.take_deliveries().is_empty(),
        "nobody answered before the store"
    );
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let writes = c.take_writes();
    let [
        GroupWrite::Assignment {
            group_id,
            generation_id,
            value,
        },
    ] = writes.as_slice()
    else {
        panic!("expected one assignment write, got {writes:?}");
    };
    assert_eq!((group_id.as_str(), *generation_id), ("g", generation));
    let stored: Vec<_> = value.members.iter().map(|m| m.assignment.clone()).collect();
    assert!(
        stored.contains(&Bytes::from_static(b"A2")) && stored.contains(&Bytes::from_static(b"B2"))
    );
    assert_eq!(c.heartbeat("g", generation, &a, None, 1_400), Ok(()));
    assert_eq!(c.heartbeat("g", generation, &b, None, 1_400), Ok(()));
    assert!(
        c.describe("g")
            .members
            .iter()
            .all(|m| m.assignment.is_empty())
    );
    // The leader asking again while the store is in flight just waits too.
    assert!(matches!(
        c.sync_group(sync_req(&a, generation, vec![]), 1_450),
        Answer::Pending { .. }
    ));
    assert!(c.take_writes().is_empty(), "one store per generation");

    c.sync_stored("g", generation, Ok(()), 1_500);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let d = c.take_deliveries();
    assert_eq!(d.len(), 2, "one answer per waiting member: {d:?}");
    assert_eq!(
        sync_delivery(&d, &a).unwrap().assignment,
        Bytes::from_static(b"A2")
    );
    assert_eq!(
        sync_delivery(&d, &b).unwrap().assignment,
        Bytes::from_static(b"B2")
    );
    // A second completion of the same store changes nothing.
    c.sync_stored("g", generation, Err(GroupError::NotCoordinator), 1_600);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert!(c.take_deliveries().is_empty());
}

#[test]
fn a_failed_store_fails_every_waiting_member_and_rebalances() {
    // Proves Kafka's resetAndPropagateAssignmentError plus maybePrepareRebalance: when the
    // assignment's store fails, the leader and every waiting follower get the store's
    // (already mapped) error, assignments are dropped, the group prepares a rebalance,
    // and a new generation forms once the members rejoin.
    for error in [
        GroupError::CoordinatorNotAvailable,
        GroupError::NotCoordinator,
        GroupError::UnknownServerError,
    ] {
        let mut c = coordinator();
        let (a, b, generation) = completing_pair(&mut c);
        assert!(matches!(
            c.sync_group(sync_req(&b, generation, vec![]), 1_200),
            Answer::Pending { .. }
        ));
        assert!(matches!(
            c.sync_group(sync_req(&a, generation, assign_both(&a, &b)), 1_300),
            Answer::Pending { .. }
        ));
        c.sync_stored("g", generation, Err(error.clone()), 1_400);
        let d = c.take_deliveries();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(sync_delivery(&d, &a), Err(error.clone()));
        assert_eq!(sync_delivery(&d, &b), Err(error.clone()));
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(
            c.heartbeat("g", generation, &b, None, 1_500),
            Err(GroupError::RebalanceInProgress)
        );
        assert!(matches!(
            c.join_group(join_req(&a, None, &["range"]), 1_600),
            Answer::Pending { .. }
        ));
        let jb = joined(c.join_group(join_req(&b, None, &["range"]), 1_700));
        assert_eq!(jb.generation_id, generation + 1);
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    }
}

#[test]
fn a_member_leaving_during_the_store_makes_its_completion_a_no_op() {
    // Proves the generation check of the store callback: the follower leaves while the
    // assignment is being stored, the leader is told REBALANCE_IN_PROGRESS and the group
    // rebalances; the late success (and a late failure) then answer nobody and leave the
    // group's state, generation and new join phase alone, as does one for a group
    // that is gone.
    for late in [Ok(()), Err(GroupError::NotCoordinator)] {
        let mut c = coordinator();
        let (a, b, generation) = completing_pair(&mut c);
        assert!(matches!(
            c.sync_group(sync_req(&a, generation, assign_both(&a, &b)), 1_200),
            Answer::Pending { .. }
        ));
        c.leave_group(
            "g",
            &[LeavingMember {
                member_id: b.clone(),
                group_instance_id: None,
            }],
            1_300,
        )
        .unwrap();
        assert_eq!(
            sync_delivery(&c.take_deliveries(), &a),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        c.sync_stored("g", generation, late.clone(), 1_400);
        assert!(c.take_deliveries().is_empty());
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(c.generation("g"), Some(generation));
        // a rejoins alone: the next generation completes and its store is the one that counts.
        let ja = joined(c.join_group(join_req(&a, None, &["range"]), 1_500));
        assert_eq!(ja.generation_id, generation + 1);
        c.sync_stored("g", generation, late.clone(), 1_550);
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
        let d = leader_sync_stored(
            &mut c,
            sync_req(
                &a,
                ja.generation_id,
                vec![(a.clone(), Bytes::from_static(b"all"))],
            ),
            1_600,
        );
        assert_eq!(
            sync_delivery(&d, &a).unwrap().assignment,
            Bytes::from_static(b"all")
        );
        c.sync_stored("nogroup", generation, late, 1_700);
        assert_eq!(c.state("nogroup"), None);
    }
}

#[test]
fn a_follower_arriving_during_the_store_is_answered_at_completion() {
    // Proves a follower whose SyncGroup arrives after the leader's, while the store is in
    // flight, waits like any follower in CompletingRebalance and gets its assignment when
    // the store completes; a member that never synced gets nothing then and syncs later.
    let mut c = coordinator();
    let (a, b, generation) = completing_pair(&mut c);
    assert!(matches!(
        c.sync_group(sync_req(&a, generation, assign_both(&a, &b)), 1_200),
        Answer::Pending { .. }
    ));
    assert!(matches!(
        c.sync_group(sync_req(&b, generation, vec![]), 1_300),
        Answer::Pending { .. }
    ));
    assert!(c.take_deliveries().is_empty());
    c.sync_stored("g", generation, Ok(()), 1_400);
    let d = c.take_deliveries();
    assert_eq!(
        sync_delivery(&d, &a).unwrap().assignment,
        Bytes::from_static(b"A2")
    );
    assert_eq!(
        sync_delivery(&d, &b).unwrap().assignment,
        Bytes::from_static(b"B2")
    );

    // Without b's SyncGroup before completion, b gets its assignment from the Stable group.
    let mut c = coordinator();
    let (a, b, generation) = completing_pair(&mut c);
    let d = leader_sync_stored(&mut c, sync_req(&a, generation, assign_both(&a, &b)), 1_200);
    assert_eq!(d.len(), 1, "only the leader waited: {d:?}");
    let Answer::Done(Ok(sb)) = c.sync_group(sync_req(&b, generation, vec![]), 1_300) else {
        panic!("follower sync in Stable");
    };
    assert_eq!(sb.assignment, Bytes::from_static(b"B2"));
}

impl Coordinator {
    /// When the group's pending syncs expire, if anyone still owes one.
    fn sync_expiry_of(&self, group_id: &str) -> Option<u64> {
        self.groups.get(group_id)?.sync_expiry_ms()
    }
}

/// Heartbeats every member of `alive` (member id, instance id) every second from `from`
/// up to and including `until`, ticking after each round, so that no session expires.
/// Heartbeat errors are left to the caller's later checks.
fn keep_alive(
    c: &mut Coordinator,
    generation: i32,
    alive: &[(&str, Option<&str>)],
    from: u64,
    until: u64,
) {
    for t in (from..=until).step_by(1_000) {
        for (m, i) in alive {
            let _ = c.heartbeat("g", generation, m, *i, t);
        }
        c.tick(t);
    }
}

#[test]
fn a_follower_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    // Proves Kafka's sync expiration in both states it covers: the follower b gets its
    // JoinGroup answer and heartbeats, but never sends SyncGroup. While the leader's
    // assignment is still being stored (CompletingRebalance), and in a second run after
    // it was stored (Stable), b stays until the rebalance timeout has passed since the
    // join phase ended, then is removed; the leader is told REBALANCE_IN_PROGRESS and
    // forms the next generation alone, whose stored assignment lists only the leader.
    for stored in [false, true] {
        let mut c = coordinator();
        let (a, b, generation) = completing_pair(&mut c);
        let deadline = 1_100 + REBALANCE_MS as u64;
        if stored {
            leader_sync_stored(&mut c, sync_req(&a, generation, assign_both(&a, &b)), 1_200);
        } else {
            assert!(matches!(
                c.sync_group(sync_req(&a, generation, assign_both(&a, &b)), 1_200),
                Answer::Pending { .. }
            ));
        }
        let state = c.state("g");
        keep_alive(
            &mut c,
            generation,
            &[(&a, None), (&b, None)],
            2_000,
            deadline - 1,
        );
        assert_eq!(c.state("g"), state, "nobody removed before the deadline");
        assert_eq!(c.heartbeat("g", generation, &b, None, deadline - 1), Ok(()));
        assert_eq!(c.next_deadline_ms(), Some(deadline));
        c.take_deliveries();
        c.take_writes();

        c.tick(deadline);
        assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        assert_eq!(
            c.heartbeat("g", generation, &b, None, deadline),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            c.heartbeat("g", generation, &a, None, deadline),
            Err(GroupError::RebalanceInProgress)
        );
        let d = c.take_deliveries();
        if stored {
            assert!(d.is_empty(), "nobody waits in a Stable group: {d:?}");
        } else {
            assert_eq!(sync_delivery(&d, &a), Err(GroupError::RebalanceInProgress));
            // The store's late success belongs to a generation that moved on.
            c.sync_stored("g", generation, Ok(()), deadline);
            assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
        }
        assert!(
            c.take_writes().is_empty(),
            "written when a generation completes"
        );

        let ja = joined(c.join_group(join_req(&a, None, &["range"]), deadline + 100));
        assert_eq!(ja.generation_id, generation + 1);
        let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, vec![a.as_str()], "the leader rejoins alone");
        let all = vec![(a.clone(), Bytes::from_static(b"all"))];
        assert!(matches!(
            c.sync_group(sync_req(&a, ja.generation_id, all), deadline + 200),
            Answer::Pending { .. }
        ));
        let writes = c.take_writes();
        let [GroupWrite::Assignment { value, .. }] = writes.as_slice() else {
            panic!("expected the assignment write, got {writes:?}");
        };
        let stored_ids: Vec<&str> = value.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(stored_ids, vec![a.as_str()]);
        c.sync_stored("g", ja.generation_id, Ok(()), deadline + 300);
        assert_eq!(
            sync_delivery(&c.take_deliveries(), &a).unwrap().assignment,
            Bytes::from_static(b"all")
        );
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        assert_eq!(
            c.sync_expiry_of("g"),
            None,
            "everyone synced: nothing pending"
        );
    }
}

#[test]
fn a_member_that_syncs_in_time_is_not_removed() {
    // Proves a SyncGroup received before the deadline ends the member's pending sync,
    // whether it arrives in CompletingRebalance (b before the leader, waiting for the
    // store) or in Stable (b after the store, just before the deadline): past the
    // deadline both members stay, the group stays Stable in the same generation, and no
    // sync expiry is left to wait for.
    for follower_first in [true, false] {
        let mut c = coordinator();
        let (a, b, generation) = completing_pair(&mut c);
        let deadline = 1_100 + REBALANCE_MS as u64;
        if follower_first {
            assert!(matches!(
                c.sync_group(sync_req(&b, generation, vec![]), 1_200),
                Answer::Pending { .. }
            ));
            keep_alive(&mut c, generation, &[(&a, None)], 2_000, deadline - 2_000);
            let d = leader_sync_stored(
                &mut c,
                sync_req(&a, generation, assign_both(&a, &b)),
                deadline - 1_500,
            );
            assert_eq!(
                sync_delivery(&d, &b).unwrap().assignment,
                Bytes::from_static(b"B2")
            );
        } else {
            leader_sync_stored(&mut c, sync_req(&a, generation, assign_both(&a, &b)), 1_200);
            keep_alive(
                &mut c,
                generation,
                &[(&a, None), (&b, None)],
                2_000,
                deadline - 2_000,
            );
            let Answer::Done(Ok(sb)) = c.sync_group(sync_req(&b, generation, vec![]), deadline - 1)
            else {
                panic!("follower sync in Stable");
            };
            assert_eq!(sb.assignment, Bytes::from_static(b"B2"));
        }
        assert_eq!(c.sync_expiry_of("g"), None);
        assert!(c.next_deadline_ms().is_some_and(|d| d != deadline));
        keep_alive(
            &mut c,
            generation,
            &[(&a, None), (&b, None)],
            deadline - 1_000,
            deadline + 5_000,
        );
        assert_eq!(c.state("g"), Some(GroupState::Stable));
        assert_eq!(c.generation("g"), Some(generation));
        assert_eq!(c.describe("g").members.len(), 2);
        assert_eq!(
            c.heartbeat("g", generation, &b, None, deadline + 5_100),
            Ok(())
        );
    }
}

#[test]
fn a_new_generation_cancels_the_old_sync_expiry() {
    // Proves the expiry belongs to one generation: neither member of generation G syncs,
    // a rebalance forms G+1 before G's deadline, so nobody is removed at G's deadline
    // even though b still has not synced; b is removed at G+1's own deadline instead.
    let mut c = coordinator();
    let (a, b, generation) = completing_pair(&mut c);
    let old_deadline = 1_100 + REBALANCE_MS as u64;
    keep_alive(&mut c, generation, &[(&a, None), (&b, None)], 2_000, 10_000);
    // a changes its protocols back: a new join phase, and b rejoins.
    assert!(matches!(
        c.join_group(join_req(&a, None, &["range"]), 10_500),
        Answer::Pending { .. }
    ));
    assert_eq!(
        c.sync_expiry_of("g"),
        None,
        "a rebalance clears the pending syncs"
    );
    let jb = joined(c.join_group(join_req(&b, None, &["range"]), 10_600));
    let next = jb.generation_id;
    assert_eq!(next, generation + 1);
    let new_deadline = 10_600 + REBALANCE_MS as u64;
    assert_eq!(c.sync_expiry_of("g"), Some(new_deadline));
    leader_sync_stored(&mut c, sync_req(&a, next, assign_both(&a, &b)), 10_700);

    keep_alive(
        &mut c,
        next,
        &[(&a, None), (&b, None)],
        11_000,
        old_deadline + 1_000,
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert_eq!(
        c.heartbeat("g", next, &b, None, old_deadline + 1_000),
        Ok(())
    );
    keep_alive(
        &mut c,
        next,
        &[(&a, None), (&b, None)],
        old_deadline + 2_000,
        new_deadline - 1,
    );
    assert_eq!(c.heartbeat("g", next, &b, None, new_deadline - 1), Ok(()));
    c.tick(new_deadline);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat("g", next, &b, None, new_deadline),
        Err(GroupError::UnknownMemberId)
    );
}

/// Two static members, "i1" (leader) and "i2", in a generation where only the leader
/// has synced (stored, so the group is Stable); returns (leader, follower, generation,
/// the generation's sync deadline).
fn static_pair_follower_pending(c: &mut Coordinator) -> (String, String, i32, u64) {
    let j1 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 0));
    let a = j1.member_id.clone();
    let mut s = sync_req(&a, j1.generation_id, vec![(a.clone(), Bytes::new())]);
    s.group_instance_id = Some("i1".into());
    leader_sync_stored(c, s, 10);
    let b = match c.join_group(join_req("", Some("i2"), &["range"]), 100) {
        Answer::Pending { member_id } => member_id,
        other => panic!("static join waits for the rebalance: {other:?}"),
    };
    let ja = joined(c.join_group(join_req(&a, Some("i1"), &["range"]), 200));
    assert_eq!(ja.leader, a);
    let generation = ja.generation_id;
    let jb = join_delivery(&c.take_deliveries(), &b).expect("i2 joined");
    assert_eq!(jb.generation_id, generation);
    let mut s = sync_req(&a, generation, assign_both(&a, &b));
    s.group_instance_id = Some("i1".into());
    leader_sync_stored(c, s, 300);
    (a, b, generation, 200 + REBALANCE_MS as u64)
}

#[test]
fn a_static_member_that_never_syncs_is_removed_and_its_instance_freed() {
    // Proves static members get no exemption, as in Kafka's onExpirePendingSync: the
    // static follower i2 heartbeats but never syncs, and at the deadline it is removed
    // like a dynamic member; its group.instance.id is freed (its old member id is now
    // unknown rather than fenced), and i2 joining again is a new member of the next
    // generation.
    let mut c = coordinator();
    let (a, b, generation, deadline) = static_pair_follower_pending(&mut c);
    keep_alive(
        &mut c,
        generation,
        &[(&a, Some("i1")), (&b, Some("i2"))],
        1_000,
        deadline - 1,
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    c.tick(deadline);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat("g", generation, &b, Some("i2"), deadline),
        Err(GroupError::UnknownMemberId)
    );
    let b2 = match c.join_group(join_req("", Some("i2"), &["range"]), deadline + 100) {
        Answer::Pending { member_id } => member_id,
        other => panic!("i2 joins as a new member: {other:?}"),
    };
    assert_ne!(b2, b);
    let ja = joined(c.join_group(join_req(&a, Some("i1"), &["range"]), deadline + 200));
    assert_eq!(ja.generation_id, generation + 1);
    let mut ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    ids.sort();
    let mut want = vec![a.as_str(), b2.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn a_replaced_static_member_still_pending_makes_the_expiry_rebalance() {
    // Proves Kafka's handling of a static member replaced while it owed its SyncGroup:
    // i2 restarts before syncing and rejoins the Stable group with a new member id, which
    // keeps the generation and syncs for its assignment at once. Kafka's pending set
    // still names the old id, so at the deadline nobody is removed but the group
    // prepares a rebalance, and both current members form the next generation.
    let mut c = coordinator();
    let (a, b, generation, deadline) = static_pair_follower_pending(&mut c);
    let j2 = joined(c.join_group(join_req("", Some("i2"), &["range"]), 1_000));
    let b2 = j2.member_id.clone();
    assert_ne!(b2, b);
    assert_eq!(j2.generation_id, generation);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let mut s = sync_req(&b2, generation, vec![]);
    s.group_instance_id = Some("i2".into());
    let Answer::Done(Ok(synced)) = c.sync_group(s, 1_100) else {
        panic!("the new id syncs in Stable");
    };
    assert_eq!(synced.assignment, Bytes::from_static(b"B2"));
    assert_eq!(
        c.sync_expiry_of("g"),
        Some(deadline),
        "the old id is still pending"
    );
    keep_alive(
        &mut c,
        generation,
        &[(&a, Some("i1")), (&b2, Some("i2"))],
        2_000,
        deadline - 1,
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    c.tick(deadline);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.describe("g").members.len(), 2, "nobody removed");
    assert_eq!(
        c.heartbeat("g", generation, &b2, Some("i2"), deadline),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(matches!(
        c.join_group(join_req(&a, Some("i1"), &["range"]), deadline + 100),
        Answer::Pending { .. }
    ));
    let j = joined(c.join_group(join_req(&b2, Some("i2"), &["range"]), deadline + 200));
    assert_eq!(j.generation_id, generation + 1);
}

impl Coordinator {
    /// When the group's join phase ends even if members are missing, if it is in one.
    fn rebalance_deadline_of(&self, group_id: &str) -> Option<u64> {
        self.groups.get(group_id)?.rebalance_deadline_ms
    }
}

/// A SyncGroup of the static member `instance`.
fn static_sync(
    member_id: &str,
    instance: &str,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncRequest {
    SyncRequest {
        group_instance_id: Some(instance.into()),
        ..sync_req(member_id, generation_id, assignments)
    }
}

/// (member id, assignment) pairs for a leader's SyncGroup.
fn assignments(pairs: &[(&str, &'static [u8])]) -> Vec<(String, Bytes)> {
    pairs
        .iter()
        .map(|(m, a)| (m.to_string(), Bytes::from_static(a)))
        .collect()
}

/// A Stable group of three members, all synced: the static leader "i1", the static
/// follower "i2" and a dynamic follower, joined in that order (so their member ids sort in
/// that order too). Returns (leader, static follower, dynamic follower, generation).
fn mixed_stable_group(c: &mut Coordinator) -> (String, String, String, i32) {
    let j1 = joined(c.join_group(join_req("", Some("i1"), &["range"]), 0));
    let a = j1.member_id.clone();
    leader_sync_stored(
        c,
        static_sync(&a, "i1", j1.generation_id, assignments(&[(&a, b"all")])),
        10,
    );
    let b = match c.join_group(join_req("", Some("i2"), &["range"]), 100) {
        Answer::Pending { member_id } => member_id,
        other => panic!("static join waits for the rebalance: {other:?}"),
    };
    let (d, pd) = join_new(c, 100);
    assert!(matches!(pd, Answer::Pending { .. }));
    let ja = joined(c.join_group(join_req(&a, Some("i1"), &["range"]), 200));
    assert_eq!(ja.leader, a);
    assert_eq!(ja.members.len(), 3);
    let generation = ja.generation_id;
    let joins = c.take_deliveries();
    for m in [&b, &d] {
        assert_eq!(join_delivery(&joins, m).unwrap().generation_id, generation);
    }
    assert!(matches!(
        c.sync_group(static_sync(&b, "i2", generation, vec![]), 250),
        Answer::Pending { .. }
    ));
    assert!(matches!(
        c.sync_group(sync_req(&d, generation, vec![]), 250),
        Answer::Pending { .. }
    ));
    let synced = leader_sync_stored(
        c,
        static_sync(
            &a,
            "i1",
            generation,
            assignments(&[(&a, b"A"), (&b, b"B"), (&d, b"D")]),
        ),
        300,
    );
    assert_eq!(synced.len(), 3, "every member synced: {synced:?}");
    assert_eq!(c.sync_expiry_of("g"), None);
    c.take_writes();
    (a, b, d, generation)
}

/// The members listed to a leader, as (member id, instance id, metadata).
fn listed(j: &Joined) -> Vec<(&str, Option<&str>, &[u8])> {
    j.members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str(),
                m.group_instance_id.as_deref(),
                m.metadata.as_ref(),
            )
        })
        .collect()
}

#[test]
fn a_static_member_that_does_not_rejoin_stays_in_the_next_generation() {
    // Proves Kafka's onCompleteJoin for members that miss a join phase: the leader i1
    // rejoins, while the static i2 and a dynamic member only heartbeat. The phase waits for
    // both until the rebalance deadline; then the dynamic member is removed (unknown
    // from then on) but i2 stays: the leader's member list names it with its last
    // metadata, it gets no JoinGroup answer (it asked none), its old-generation heartbeat
    // is ILLEGAL_GENERATION (not fenced, not unknown), and it rejoins with its member id
    // into the current generation without a new rebalance, syncs for the assignment the
    // leader gave it (stored for it too) and heartbeats in the new generation. It rejoins
    // once before the leader's assignment is stored (CompletingRebalance) and, in a
    // second run, after it (Stable).
    for rejoin_when_stable in [false, true] {
        let mut c = coordinator();
        let (a, b, d, generation) = mixed_stable_group(&mut c);
        assert!(matches!(
            c.join_group(join_req(&a, Some("i1"), &["range"]), 1_000),
            Answer::Pending { .. }
        ));
        let deadline = 1_000 + REBALANCE_MS as u64;
        keep_alive(
            &mut c,
            generation,
            &[(&b, Some("i2")), (&d, None)],
            2_000,
            deadline - 1,
        );
        assert_eq!(
            c.state("g"),
            Some(GroupState::PreparingRebalance),
            "members that have not rejoined, static or not, are waited for"
        );
        assert_eq!(c.next_deadline_ms(), Some(deadline));
        assert!(c.take_deliveries().is_empty());

        c.tick(deadline);
        assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
        let next = generation + 1;
        assert_eq!(c.generation("g"), Some(next));
        let joins = c.take_deliveries();
        assert_eq!(joins.len(), 1, "only the leader asked: {joins:?}");
        let ja = join_delivery(&joins, &a).unwrap();
        assert_eq!(ja.generation_id, next);
        assert_eq!(ja.leader, a);
        assert_eq!(
            listed(&ja),
            vec![
                (a.as_str(), Some("i1"), &b"meta-range"[..]),
                (b.as_str(), Some("i2"), &b"meta-range"[..]),
            ]
        );
        assert_eq!(
            c.heartbeat("g", generation, &d, None, deadline),
            Err(GroupError::UnknownMemberId),
            "the dynamic member is gone"
        );
        assert_eq!(
            c.heartbeat("g", generation, &b, Some("i2"), deadline),
            Err(GroupError::IllegalGeneration)
        );

        let rejoin_b = |c: &mut Coordinator, now: u64| {
            let jb = joined(c.join_group(join_req(&b, Some("i2"), &["range"]), now));
            assert_eq!(jb.generation_id, next);
            assert_eq!(jb.member_id, b);
            assert_eq!(jb.leader, a);
            assert!(jb.members.is_empty());
        };
        let leader_sync = static_sync(&a, "i1", next, assignments(&[(&a, b"A2"), (&b, b"B2")]));
        let synced_b = if rejoin_when_stable {
            let d = leader_sync_stored(&mut c, leader_sync, deadline + 100);
            assert_eq!(d.len(), 1, "only the leader waited: {d:?}");
            rejoin_b(&mut c, deadline + 200);
            assert_eq!(c.state("g"), Some(GroupState::Stable));
            let Answer::Done(synced) =
                c.sync_group(static_sync(&b, "i2", next, vec![]), deadline + 300)
            else {
                panic!("i2 syncs in the Stable group at once");
            };
            synced
        } else {
            rejoin_b(&mut c, deadline + 100);
            assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
            assert!(matches!(
                c.sync_group(static_sync(&b, "i2", next, vec![]), deadline + 200),
                Answer::Pending { .. }
            ));
            let d = leader_sync_stored(&mut c, leader_sync, deadline + 300);
            sync_delivery(&d, &b)
        };
        assert_eq!(synced_b.unwrap().assignment, Bytes::from_static(b"B2"));
        assert_assignment_stored_and_synced(&mut c, &a, &b, next, deadline + 400);
    }
}

/// The end of a rebalance where the static `b` (i2) rejoined late: the one write is the
/// leader's assignment (A2 for `a`, B2 for `b`), the group is Stable in `next` with
/// everyone synced, and `b` heartbeats in it at `now`.
fn assert_assignment_stored_and_synced(c: &mut Coordinator, a: &str, b: &str, next: i32, now: u64) {
    let writes = c.take_writes();
    let [GroupWrite::Assignment { value, .. }] = writes.as_slice() else {
        panic!("expected the assignment write, got {writes:?}");
    };
    let stored: Vec<(&str, &[u8])> = value
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.assignment.as_ref()))
        .collect();
    assert_eq!(stored, vec![(a, &b"A2"[..]), (b, &b"B2"[..])]);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert_eq!(c.generation("g"), Some(next));
    assert_eq!(c.sync_expiry_of("g"), None, "everyone synced");
    assert_eq!(c.heartbeat("g", next, b, Some("i2"), now), Ok(()));
    assert_eq!(c.describe("g").members.len(), 2);
}

#[test]
fn a_static_leader_that_does_not_rejoin_hands_the_lead_to_a_member_that_did() {
    // Proves Kafka's maybeElectNewJoinedLeader: a new dynamic member starts a rebalance,
    // the others rejoin but the static leader i1 only heartbeats. At the deadline i1 stays
    // a member, but a member that rejoined leads the new generation and is listed i1 with
    // its metadata; i1 then rejoins with its member id as a follower (leader named, no
    // members) and syncs for what the new leader gave it.
    let mut c = coordinator();
    let (a, b, d, generation) = mixed_stable_group(&mut c);
    let (x, px) = join_new(&mut c, 1_000);
    assert!(matches!(px, Answer::Pending { .. }));
    let deadline = 1_000 + REBALANCE_MS as u64;
    for m in [&b, &d] {
        let instance = (*m == b).then_some("i2");
        assert!(matches!(
            c.join_group(join_req(m, instance, &["range"]), 1_100),
            Answer::Pending { .. }
        ));
    }
    keep_alive(&mut c, generation, &[(&a, Some("i1"))], 2_000, deadline - 1);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(deadline);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let next = generation + 1;
    let joins = c.take_deliveries();
    assert_eq!(joins.len(), 3, "b, d and x asked: {joins:?}");
    let leader = join_delivery(&joins, &b).unwrap().leader;
    assert_eq!(leader, b, "the first member that rejoined leads");
    let jl = join_delivery(&joins, &leader).unwrap();
    let ids: Vec<&str> = jl.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str(), d.as_str(), x.as_str()]);
    assert_eq!(listed(&jl)[0], (a.as_str(), Some("i1"), &b"meta-range"[..]));
    for m in [&d, &x] {
        let j = join_delivery(&joins, m).unwrap();
        assert_eq!(j.leader, leader);
        assert!(j.members.is_empty());
    }

    assert_eq!(
        c.heartbeat("g", generation, &a, Some("i1"), deadline + 100),
        Err(GroupError::IllegalGeneration)
    );
    let ja = joined(c.join_group(join_req(&a, Some("i1"), &["range"]), deadline + 100));
    assert_eq!(ja.generation_id, next);
    assert_eq!(ja.leader, leader);
    assert!(ja.members.is_empty(), "i1 follows now");
    assert!(matches!(
        c.sync_group(static_sync(&a, "i1", next, vec![]), deadline + 200),
        Answer::Pending { .. }
    ));
    let given = assignments(&[(&a, b"A3"), (&b, b"B3"), (&d, b"D3"), (&x, b"X3")]);
    let synced = leader_sync_stored(&mut c, static_sync(&b, "i2", next, given), deadline + 300);
    assert_eq!(
        sync_delivery(&synced, &a).unwrap().assignment,
        Bytes::from_static(b"A3")
    );
    assert_eq!(
        c.heartbeat("g", next, &a, Some("i1"), deadline + 400),
        Ok(())
    );
}

#[test]
fn a_static_member_that_never_comes_back_is_removed_by_its_session_timeout() {
    // Proves a static member that never rejoins still leaves by session timeout, in both
    // places it can happen. Silent since before the rebalance: it expires during the join
    // phase, and since everyone else has rejoined the phase ends at once, without it.
    // Alive through the join phase but silent after: it stays in the new generation, whose
    // completion starts its session again (as Kafka does for every member), and it expires
    // one session timeout later, before the pending sync expiry; the group rebalances and
    // the next generation is the two members that stayed. Either way its instance id is
    // freed: its member id is unknown, not fenced.
    for alive_through_join in [false, true] {
        let mut c = coordinator();
        let (a, b, d, generation) = mixed_stable_group(&mut c);
        assert!(matches!(
            c.join_group(join_req(&a, Some("i1"), &["range"]), 1_000),
            Answer::Pending { .. }
        ));
        assert!(matches!(
            c.join_group(join_req(&d, None, &["range"]), 1_100),
            Answer::Pending { .. }
        ));
        let (gone_at, members) = if alive_through_join {
            let deadline = 1_000 + REBALANCE_MS as u64;
            keep_alive(&mut c, generation, &[(&b, Some("i2"))], 2_000, deadline - 1);
            c.tick(deadline);
            assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
            let ja = join_delivery(&c.take_deliveries(), &a).unwrap();
            assert_eq!(ja.members.len(), 3, "i2 stays in the new generation");
            let next = ja.generation_id;
            assert!(matches!(
                c.sync_group(sync_req(&d, next, vec![]), deadline + 100),
                Answer::Pending { .. }
            ));
            let given = assignments(&[(&a, b"A2"), (&b, b"B2"), (&d, b"D2")]);
            leader_sync_stored(&mut c, static_sync(&a, "i1", next, given), deadline + 200);
            let gone_at = deadline + SESSION_MS as u64;
            assert!(
                c.sync_expiry_of("g").is_some_and(|e| e > gone_at),
                "the session ends first"
            );
            keep_alive(
                &mut c,
                next,
                &[(&a, Some("i1")), (&d, None)],
                deadline + 1_000,
                gone_at - 1,
            );
            assert_eq!(c.state("g"), Some(GroupState::Stable));
            assert_eq!(c.next_deadline_ms(), Some(gone_at));
            c.tick(gone_at);
            assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
            (gone_at, next)
        } else {
            // b's last sign of life was its SyncGroup at 250.
            let gone_at = 250 + SESSION_MS as u64;
            assert_eq!(c.next_deadline_ms(), Some(gone_at));
            c.tick(gone_at - 1);
            assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
            c.tick(gone_at);
            assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
            let joins = c.take_deliveries();
            let ja = join_delivery(&joins, &a).unwrap();
            let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
            assert_eq!(ids, vec![a.as_str(), d.as_str()]);
            (gone_at, generation)
        };
        assert_eq!(
            c.heartbeat("g", members, &b, Some("i2"), gone_at),
            Err(GroupError::UnknownMemberId)
        );
        if alive_through_join {
            assert!(matches!(
                c.join_group(join_req(&a, Some("i1"), &["range"]), gone_at + 100),
                Answer::Pending { .. }
            ));
            let jd = joined(c.join_group(join_req(&d, None, &["range"]), gone_at + 200));
            assert_eq!(jd.generation_id, members + 1);
            let ja = join_delivery(&c.take_deliveries(), &a).unwrap();
            let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
            assert_eq!(ids, vec![a.as_str(), d.as_str()]);
        }
        let b2 = match c.join_group(join_req("", Some("i2"), &["range"]), gone_at + 300) {
            Answer::Pending { member_id } => member_id,
            other => panic!("i2 comes back as a new member: {other:?}"),
        };
        assert_ne!(b2, b);
    }
}

#[test]
fn a_join_phase_nobody_rejoined_waits_another_rebalance_timeout() {
    // Proves Kafka's postponement when no member rejoined: a new member starts a rebalance
    // and leaves again, and the static members i1 and i2 only heartbeat. At the deadline
    // nobody can lead, so nothing completes (no new generation, nobody removed) and the
    // phase waits one more rebalance timeout; when i1 rejoins meanwhile, the phase ends at
    // that second deadline with i1 leading and i2 still a member.
    let mut c = coordinator();
    let (a, b, generation, _) = static_pair_follower_pending(&mut c);
    assert!(matches!(
        c.sync_group(static_sync(&b, "i2", generation, vec![]), 400),
        Answer::Done(Ok(_))
    ));
    let (x, px) = join_new(&mut c, 1_000);
    assert!(matches!(px, Answer::Pending { .. }));
    let left = c.leave_group(
        "g",
        &[LeavingMember {
            member_id: x.clone(),
            group_instance_id: None,
        }],
        1_500,
    );
    assert_eq!(left, Ok(vec![Ok(x.clone())]));
    c.take_deliveries();
    c.take_writes();
    let deadline = 1_000 + REBALANCE_MS as u64;
    let alive = [(a.as_str(), Some("i1")), (b.as_str(), Some("i2"))];
    keep_alive(&mut c, generation, &alive, 2_000, deadline - 1);
    c.tick(deadline);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.generation("g"), Some(generation));
    assert_eq!(c.describe("g").members.len(), 2, "nobody removed");
    assert!(c.take_deliveries().is_empty());
    assert!(c.take_writes().is_empty());
    let second = deadline + REBALANCE_MS as u64;
    assert_eq!(c.rebalance_deadline_of("g"), Some(second));
    assert_eq!(
        c.heartbeat("g", generation, &b, Some("i2"), deadline),
        Err(GroupError::RebalanceInProgress)
    );

    assert!(matches!(
        c.join_group(join_req(&a, Some("i1"), &["range"]), deadline + 500),
        Answer::Pending { .. }
    ));
    keep_alive(
        &mut c,
        generation,
        &alive[1..],
        deadline + 1_000,
        second - 1,
    );
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(second);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let ja = join_delivery(&c.take_deliveries(), &a).unwrap();
    assert_eq!(ja.generation_id, generation + 1);
    assert_eq!(ja.leader, a);
    let ids: Vec<&str> = ja.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
}

/// A group "g" whose only member, static, joined and synced and then stopped
/// heartbeating; returns the coordinator and when the member's session ends.
fn expiring_static_group() -> (Coordinator, u64) {
    let mut c = coordinator();
    let j = joined(c.join_group(join_req("", Some("i1"), &["range"]), 0));
    let mut s = sync_req(
        &j.member_id,
        j.generation_id,
        vec![(j.member_id.clone(), Bytes::from_static(b"p0"))],
    );
    s.group_instance_id = Some("i1".into());
    leader_sync_stored(&mut c, s, 10);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    c.take_writes();
    (c, 10 + SESSION_MS as u64)
}

#[test]
fn an_expired_static_member_leaves_an_empty_group_that_can_be_deleted() {
    // Proves a static member that joined and synced, then stopped heartbeating without
    // LeaveGroup (a closed consumer), is removed at its session timeout and leaves its
    // group Empty even without committed offsets: listed and deletable, as Kafka keeps
    // it until its periodic cleanup. Only after offsets.retention.check.interval.ms is
    // such a group removed (with a tombstone).
    let (mut c, expired_at) = expiring_static_group();
    c.tick(expired_at - 1);
    assert_eq!(c.delete_group("g"), Err(GroupError::NonEmptyGroup));
    c.tick(expired_at);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    c.tick(expired_at + 1_000);
    assert_eq!(c.state("g"), Some(GroupState::Empty), "still listed");
    assert_eq!(c.delete_group("g"), Ok(()));
    assert_eq!(c.state("g"), None);

    let (mut c, expired_at) = expiring_static_group();
    c.tick(expired_at);
    let interval = GroupConfig::default().offsets_retention_check_interval_ms;
    assert_eq!(c.next_deadline_ms(), Some(expired_at + interval));
    c.take_writes();
    c.tick(expired_at + interval - 1);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    c.tick(expired_at + interval);
    assert_eq!(c.state("g"), None, "removed by the cleanup");
    assert!(
        c.take_writes()
            .iter()
            .any(|w| matches!(w, GroupWrite::GroupRemoved { group_id } if group_id == "g"))
    );
}
