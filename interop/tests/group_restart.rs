//! librdkafka consumer group across a broker restart: the group's committed offsets live
//! in `__consumer_offsets`, so after the broker stops and starts again the group resumes
//! exactly where its synchronous commits left it.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Broker, producer};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};

const TOPIC: &str = "resume";

fn member(bootstrap: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "restart-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "30000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    c
}

fn produce(bootstrap: &str, from: usize, to: usize) {
    let (p, d) = producer(bootstrap, &[]);
    for i in from..to {
        let key = format!("k{i}");
        let value = format!("v{i}");
        p.send(BaseRecord::to(TOPIC).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(d.ok.load(Ordering::SeqCst), to - from);
}

/// Polls until `count` records arrived (each committed synchronously when `commit`),
/// then for another `quiet` to catch anything extra. Fails after 60 s.
fn consume(c: &BaseConsumer, count: usize, commit: bool, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records",
            got.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
            if commit {
                c.commit_message(&m, CommitMode::Sync).unwrap();
            }
        }
    }
    let until = Instant::now() + quiet;
    while Instant::now() < until {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    got
}

#[test]
fn group_resumes_from_committed_offsets_after_broker_restart() {
    // Proves commits survive a broker restart through a real client: one member reads
    // 200 of 300 records over 3 partitions committing each synchronously, leaves; the
    // broker stops cleanly and restarts; 100 more records arrive; a new member of the
    // group then reads exactly the 200 records it had not consumed: none lost, none read
    // again.
    let mut broker = Broker::start_with(&["--num-partitions", "3"]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, 0, 300);
    let first = {
        let c = member(&bootstrap);
        let got = consume(&c, 200, true, Duration::ZERO);
        c.unsubscribe();
        got
    };
    assert_eq!(first.len(), 200);
    assert!(broker.stop().success(), "clean shutdown");
    broker.restart();
    produce(&bootstrap, 300, 400);

    let c = member(&bootstrap);
    let second = consume(&c, 200, false, Duration::from_secs(2));
    let all: HashSet<String> = (0..400).map(|i| format!("v{i}")).collect();
    let first_set: HashSet<String> = first.iter().cloned().collect();
    let second_set: HashSet<String> = second.iter().cloned().collect();
    assert_eq!(second.len(), 200, "nothing read twice after the restart");
    assert!(
        first_set.is_disjoint(&second_set),
        "no committed record re-read"
    );
    let union: HashSet<String> = first_set.union(&second_set).cloned().collect();
    assert_eq!(union, all, "no record lost");
}
