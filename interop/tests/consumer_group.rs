//! librdkafka consumer groups against the real 2-shard broker: three members of one group
//! over a 6-partition topic share the partitions, every record is consumed exactly once
//! with synchronous commits, and a later member of the group resumes after the commits.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, producer};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};

const PARTITIONS: usize = 6;
const MEMBERS: usize = 3;

fn member(bootstrap: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "exactly-once")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Long enough that a loaded shared machine does not expel a member mid-test.
        .set("session.timeout.ms", "30000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    c.subscribe(&["shared"]).unwrap();
    c
}

fn produce(bootstrap: &str, from: usize, to: usize) {
    let (p, d) = producer(bootstrap, &[]);
    for i in from..to {
        let key = format!("k{i}");
        let value = format!("v{i}");
        p.send(BaseRecord::to("shared").key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(d.ok.load(Ordering::SeqCst), to - from);
}

#[test]
fn three_members_consume_every_record_once_and_commits_persist() {
    // Proves partitions are shared across members (each gets some, together all six),
    // each record is seen exactly once across the group with synchronous commits, and a
    // new member of the group afterwards reads only what was produced after the commits.
    let broker = Broker::start(&["--num-partitions", "6"]);
    let bootstrap = broker.bootstrap();
    produce(&bootstrap, 0, 1); // creates the topic
    let seen: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    let assigned: Arc<Vec<AtomicUsize>> =
        Arc::new((0..MEMBERS).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..MEMBERS)
        .map(|i| {
            let (seen, assigned, stop, bootstrap) = (
                seen.clone(),
                assigned.clone(),
                stop.clone(),
                bootstrap.clone(),
            );
            std::thread::spawn(move || {
                let c = member(&bootstrap);
                while !stop.load(Ordering::SeqCst) {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        let v =
                            String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                        seen.lock().unwrap().push((m.partition(), m.offset(), v));
                        if let Err(e) = c.commit_message(&m, CommitMode::Sync) {
                            eprintln!("member {i}: commit failed: {e}");
                        }
                    }
                    let n = c.assignment().map(|a| a.count()).unwrap_or(0);
                    assigned[i].store(n, Ordering::SeqCst);
                }
                c.unsubscribe();
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts: Vec<usize> = assigned.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        if counts.iter().all(|&n| n > 0) && counts.iter().sum::<usize>() == PARTITIONS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group never settled: {counts:?}\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    produce(&bootstrap, 1, 3000);
    while seen.lock().unwrap().len() < 3000 {
        let n = seen.lock().unwrap().len();
        let counts: Vec<usize> = assigned.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        assert!(
            Instant::now() < deadline,
            "only {n} records consumed; assignments {counts:?}\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let values: HashSet<&String> = seen.iter().map(|(_, _, v)| v).collect();
    assert_eq!(seen.len(), 3000, "no record consumed twice");
    assert_eq!(values.len(), 3000, "every record consumed");
    let partitions: HashSet<i32> = seen.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(partitions.len(), PARTITIONS);

    // The group resumes after its commits: a new member reads only the new records.
    produce(&bootstrap, 3000, 3100);
    let c = member(&bootstrap);
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
    let expected: HashSet<String> = (3000..3100).map(|i| format!("v{i}")).collect();
    assert_eq!(later.len(), 100, "{later:?}");
    assert_eq!(later.into_iter().collect::<HashSet<_>>(), expected);
}
