//! librdkafka consumer groups through rebalances against the real 2-shard broker: a member
//! leaving hands its partitions to the others within the session timeout, the roundrobin
//! and cooperative-sticky assignors work through the broker's protocol selection, static
//! members restart without a rebalance, and two groups on one topic each read everything.
//! Every member commits each record synchronously, and across a group every record is
//! committed exactly once (see `common::group`).
//!
//! The tests take a lock so that only one runs at a time: each drives several librdkafka
//! clients and a broker, and the session timeouts they check should not race the others
//! on a small machine.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::Broker;
use common::group::{
    Ledger, Member, Rebalanced, balanced, complete, produce_values, wait_consumed, wait_for,
};

const PARTITIONS: i32 = 6;
const SETTLE: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_broker(topic: &str) -> Broker {
    let broker = Broker::start_with(&["--num-partitions", "6"]);
    // The first record creates the topic.
    produce_values(&broker.bootstrap(), topic, 0, 1);
    broker
}

fn refs(members: &[Member]) -> Vec<&Member> {
    members.iter().collect()
}

#[test]
fn leaving_member_hands_its_partitions_over_within_the_session_timeout() {
    // Proves a member that closes (LeaveGroup) has its partitions reassigned to the two
    // remaining members well within session.timeout.ms (10 s), that the group's records
    // before and after the move are each committed exactly once, and that the members that
    // stay consume the moved partitions.
    let _serial = serial();
    const RECORDS: usize = 6_000;
    let broker = start_broker("leave");
    let bootstrap = broker.bootstrap();
    let ledger = Arc::new(Ledger::default());
    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::start(i, &bootstrap, "leave-g", "leave", &[], ledger.clone()))
        .collect();
    wait_for(
        &refs(&members),
        SETTLE,
        "three members settle",
        &broker,
        |a| balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2),
    );
    produce_values(&bootstrap, "leave", 1, RECORDS / 2);
    wait_consumed(&ledger, RECORDS / 2, SETTLE, &broker);

    let leaving = members.pop().unwrap();
    let moved = leaving.assignment();
    let left_at = std::time::Instant::now();
    leaving.close();
    wait_for(
        &refs(&members),
        Duration::from_secs(10),
        "partitions of the leaving member move",
        &broker,
        |a| complete(a, PARTITIONS),
    );
    let took = left_at.elapsed();
    eprintln!("partitions {moved:?} moved to the remaining members {took:?} after the close began");
    assert!(took < Duration::from_secs(10), "within session.timeout.ms");
    produce_values(&bootstrap, "leave", RECORDS / 2, RECORDS);
    wait_consumed(&ledger, RECORDS, SETTLE, &broker);
    std::thread::sleep(Duration::from_millis(500));
    for m in members {
        m.close();
    }
    ledger.assert_exactly_once(0, RECORDS);
    let records = ledger.records.lock().unwrap();
    for p in moved {
        assert!(
            records.iter().any(|&(m, part, _, _)| part == p && m < 2),
            "moved partition {p} consumed by a remaining member"
        );
    }
}

#[test]
fn roundrobin_assignor_deals_partitions_in_turn() {
    // Proves `partition.assignment.strategy=roundrobin` goes through JoinGroup/SyncGroup:
    // three members over six partitions get {k, k+3} each (roundrobin deals partitions in
    // turn over the sorted members; range would give neighbours {0,1},{2,3},{4,5}), the
    // assignment is complete, and every record is committed exactly once.
    let _serial = serial();
    const RECORDS: usize = 1_200;
    let broker = start_broker("rr");
    let bootstrap = broker.bootstrap();
    let ledger = Arc::new(Ledger::default());
    let config = [("partition.assignment.strategy", "roundrobin")];
    let members: Vec<Member> = (0..3)
        .map(|i| Member::start(i, &bootstrap, "rr-g", "rr", &config, ledger.clone()))
        .collect();
    wait_for(
        &refs(&members),
        SETTLE,
        "roundrobin settles",
        &broker,
        |a| balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2),
    );
    let mut residues: Vec<i32> = Vec::new();
    for m in &members {
        let a = m.assignment();
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(
            a[1] - a[0],
            3,
            "member {} got {a:?}, not dealt in turn",
            m.index
        );
        residues.push(a[0] % 3);
    }
    residues.sort_unstable();
    assert_eq!(residues, vec![0, 1, 2]);
    produce_values(&bootstrap, "rr", 1, RECORDS);
    wait_consumed(&ledger, RECORDS, SETTLE, &broker);
    std::thread::sleep(Duration::from_millis(300));
    for m in members {
        m.close();
    }
    ledger.assert_exactly_once(0, RECORDS);
}

#[test]
fn cooperative_sticky_keeps_unaffected_partitions_while_a_member_joins() {
    // Proves incremental rebalancing through the broker: two cooperative-sticky members own
    // three partitions each; while a third joins, neither existing member is ever told to
    // revoke a partition it still owns afterwards (an eager rebalance would revoke all
    // three), each gives up exactly one partition, the final assignment is 2/2/2, and every
    // record produced before, during and after the rebalance is committed exactly once.
    let _serial = serial();
    const RECORDS: usize = 3_000;
    let broker = start_broker("coop");
    let bootstrap = broker.bootstrap();
    let ledger = Arc::new(Ledger::default());
    let config = [("partition.assignment.strategy", "cooperative-sticky")];
    let mut members: Vec<Member> = (0..2)
        .map(|i| Member::start(i, &bootstrap, "coop-g", "coop", &config, ledger.clone()))
        .collect();
    wait_for(
        &refs(&members),
        SETTLE,
        "two members settle",
        &broker,
        |a| complete(a, PARTITIONS) && a.iter().all(|p| p.len() == 3),
    );
    produce_values(&bootstrap, "coop", 1, RECORDS / 3);
    wait_consumed(&ledger, RECORDS / 3, SETTLE, &broker);
    let before: Vec<Vec<i32>> = members.iter().map(Member::assignment).collect();
    let events_before: Vec<usize> = members.iter().map(|m| m.events().len()).collect();

    members.push(Member::start(
        2,
        &bootstrap,
        "coop-g",
        "coop",
        &config,
        ledger.clone(),
    ));
    produce_values(&bootstrap, "coop", RECORDS / 3, 2 * RECORDS / 3);
    wait_for(
        &refs(&members),
        SETTLE,
        "three members settle",
        &broker,
        |a| balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2),
    );
    produce_values(&bootstrap, "coop", 2 * RECORDS / 3, RECORDS);
    wait_consumed(&ledger, RECORDS, SETTLE, &broker);
    // Anything late would show up now.
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<Vec<i32>> = members.iter().map(Member::assignment).collect();
    for (i, m) in members.iter().take(2).enumerate() {
        let kept: Vec<i32> = before[i]
            .iter()
            .copied()
            .filter(|p| after[i].contains(p))
            .collect();
        assert_eq!(
            kept.len(),
            2,
            "member {i}: {:?} -> {:?}",
            before[i],
            after[i]
        );
        let events = m.events();
        let during = &events[events_before[i]..];
        let revoked: Vec<i32> = during
            .iter()
            .filter_map(|e| match e {
                Rebalanced::Revoked(p) => Some(p.clone()),
                Rebalanced::Assigned(_) => None,
            })
            .flatten()
            .collect();
        assert!(
            revoked.iter().all(|p| !kept.contains(p)),
            "member {i} kept {kept:?} but was told to revoke {revoked:?} ({during:?})"
        );
        assert_eq!(
            revoked.len(),
            1,
            "member {i} gives up one partition: {during:?}"
        );
        assert!(
            after[2].contains(&revoked[0]),
            "the revoked partition went to the new member"
        );
    }
    for m in members {
        m.close();
    }
    ledger.assert_exactly_once(0, RECORDS);
}

#[test]
fn static_members_restart_without_a_rebalance() {
    // Proves KIP-345 through librdkafka: three members with `group.instance.id` restart one
    // after the other (each closes without leaving, as static members do, and comes back
    // within session.timeout.ms). Every restarted member gets its partitions back, the
    // other members see no rebalance callback at all (no revoke, no new generation), and
    // the records produced while a member was away are committed exactly once after it
    // returns. One of the three is the group's leader, so a rejoining leader is covered.
    let _serial = serial();
    const RECORDS: usize = 1_800;
    let broker = start_broker("static");
    let bootstrap = broker.bootstrap();
    let ledger = Arc::new(Ledger::default());
    let instances = ["static-0", "static-1", "static-2"];
    let config = |i: usize| {
        [
            ("group.instance.id", instances[i]),
            ("session.timeout.ms", "30000"),
        ]
    };
    let start = |i: usize| {
        Member::start(
            i,
            &bootstrap,
            "static-g",
            "static",
            &config(i),
            ledger.clone(),
        )
    };
    let mut members: Vec<Option<Member>> = (0..3).map(|i| Some(start(i))).collect();
    let live = |members: &[Option<Member>]| -> Vec<Vec<i32>> {
        members
            .iter()
            .map(|m| m.as_ref().map(Member::assignment).unwrap_or_default())
            .collect()
    };
    {
        let all: Vec<&Member> = members.iter().flatten().collect();
        wait_for(&all, SETTLE, "static members settle", &broker, |a| {
            balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2)
        });
    }
    let settled = live(&members);
    let mut produced = 1;
    for restarting in 0..3 {
        let others_events: Vec<(usize, Vec<Rebalanced>)> = members
            .iter()
            .flatten()
            .filter(|m| m.index != restarting)
            .map(|m| (m.index, m.events()))
            .collect();
        members[restarting].take().unwrap().close();
        // Records for every partition, including the absent member's.
        produce_values(&bootstrap, "static", produced, produced + RECORDS / 3);
        produced += RECORDS / 3;
        members[restarting] = Some(start(restarting));
        let back = members[restarting].as_ref().unwrap();
        wait_for(&[back], SETTLE, "restarted static member", &broker, |a| {
            a[0] == settled[restarting]
        });
        wait_consumed(&ledger, produced, SETTLE, || {
            broker.assert_running();
            format!("assignments {:?}\n{}", live(&members), broker.log())
        });
        // A rebalance would have reached the others by now (heartbeat interval 500 ms).
        std::thread::sleep(Duration::from_secs(2));
        for (i, events) in others_events {
            let now = members[i].as_ref().unwrap().events();
            assert_eq!(
                now, events,
                "member {i} saw a rebalance while member {restarting} restarted"
            );
        }
        assert_eq!(live(&members), settled, "same assignment after the restart");
        let back_events = members[restarting].as_ref().unwrap().events();
        assert_eq!(
            back_events,
            vec![Rebalanced::Assigned(settled[restarting].clone())],
            "the restarted member is handed its old partitions once"
        );
    }
    for m in members.into_iter().flatten() {
        m.close();
    }
    ledger.assert_exactly_once(0, produced);
}

#[test]
fn two_groups_on_one_topic_each_read_every_record() {
    // Proves groups are independent: a two-member group and a one-member group on the same
    // topic each commit every record exactly once.
    let _serial = serial();
    const RECORDS: usize = 2_000;
    let broker = start_broker("both");
    let bootstrap = broker.bootstrap();
    let first = Arc::new(Ledger::default());
    let second = Arc::new(Ledger::default());
    let members = [
        Member::start(0, &bootstrap, "both-a", "both", &[], first.clone()),
        Member::start(1, &bootstrap, "both-a", "both", &[], first.clone()),
        Member::start(2, &bootstrap, "both-b", "both", &[], second.clone()),
    ];
    wait_for(&refs(&members[..2]), SETTLE, "group a", &broker, |a| {
        balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 3)
    });
    wait_for(&refs(&members[2..]), SETTLE, "group b", &broker, |a| {
        complete(a, PARTITIONS)
    });
    produce_values(&bootstrap, "both", 1, RECORDS);
    wait_consumed(&first, RECORDS, SETTLE, &broker);
    wait_consumed(&second, RECORDS, SETTLE, &broker);
    std::thread::sleep(Duration::from_millis(300));
    for m in members {
        m.close();
    }
    first.assert_exactly_once(0, RECORDS);
    second.assert_exactly_once(0, RECORDS);
}
