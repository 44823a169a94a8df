//! librdkafka consumer groups against the real 2-shard broker: three members of one group
//! over a 6-partition topic share the partitions and read 100k records, every record is
//! committed exactly once with synchronous commits, and a later member of the group
//! resumes after the commits.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Broker;
use common::group::{Ledger, Member, balanced, produce_values, wait_consumed, wait_for};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

const PARTITIONS: i32 = 6;
const MEMBERS: usize = 3;
const RECORDS: usize = 100_000;
/// Long enough that a loaded shared machine does not expel a member mid-test.
const SESSION: (&str, &str) = ("session.timeout.ms", "30000");

#[test]
fn three_members_consume_every_record_once_and_commits_persist() {
    // Proves partitions are shared across members (two each, together all six), each of
    // 100k records is committed exactly once across the group with a synchronous commit
    // per record, each member reads only its own partitions, and a new member of the group
    // afterwards reads only what was produced after the commits.
    let broker = Broker::start_with(&["--num-partitions", "6"]);
    let bootstrap = broker.bootstrap();
    produce_values(&bootstrap, "shared", 0, 1); // creates the topic
    let ledger = Arc::new(Ledger::default());
    let members: Vec<Member> = (0..MEMBERS)
        .map(|i| {
            Member::start(
                i,
                &bootstrap,
                "exactly-once",
                "shared",
                &[SESSION],
                ledger.clone(),
            )
        })
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(
        &refs,
        Duration::from_secs(60),
        "group settles",
        &broker,
        |a| balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2),
    );
    let assignments: Vec<Vec<i32>> = members.iter().map(Member::assignment).collect();
    let start = Instant::now();
    produce_values(&bootstrap, "shared", 1, RECORDS);
    let took = start.elapsed() + wait_consumed(&ledger, RECORDS, Duration::from_secs(60), &broker);
    eprintln!(
        "{RECORDS} records produced and committed one by one in {took:?} ({:.0} records/s, {} failed commits)",
        RECORDS as f64 / took.as_secs_f64(),
        ledger
            .failed_commits
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    std::thread::sleep(Duration::from_millis(500));
    for m in members {
        m.close();
    }
    ledger.assert_exactly_once(0, RECORDS);
    {
        let records = ledger.records.lock().unwrap();
        let partitions: HashSet<i32> = records.iter().map(|&(_, p, _, _)| p).collect();
        assert_eq!(partitions.len(), PARTITIONS as usize);
        for &(member, partition, _, _) in records.iter() {
            assert!(
                assignments[member].contains(&partition),
                "member {member} read partition {partition} outside its {:?}",
                assignments[member]
            );
        }
    }

    // The group resumes after its commits: a new member reads only the new records.
    produce_values(&bootstrap, "shared", RECORDS, RECORDS + 100);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "exactly-once")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(SESSION.0, SESSION.1)
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    c.subscribe(&["shared"]).unwrap();
    let mut later = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while later.len() < 100 && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            later.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    // Nothing more arrives: no old record is read again.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            later.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    let expected: HashSet<String> = (RECORDS..RECORDS + 100).map(|i| format!("v{i}")).collect();
    assert_eq!(later.len(), 100, "{later:?}");
    assert_eq!(later.into_iter().collect::<HashSet<_>>(), expected);
}
