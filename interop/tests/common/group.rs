//! Consumer-group members for the rdkafka group tests: each member runs on its own thread,
//! records its rebalance callbacks (assigned / revoked partitions, in order) and its current
//! assignment, commits every record synchronously, and counts a record as consumed only
//! once its commit succeeded. A failed commit seeks back to the record, so the record is
//! read again by whoever owns its partition next: across the whole group every record must
//! then be committed exactly once, which is what the tests check.
// Compiled into every test binary of this crate, each using only some of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// One rebalance callback as a member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebalanced {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// Records the rebalance callbacks of one member.
pub struct Recorder {
    events: Arc<Mutex<Vec<Rebalanced>>>,
}

impl ClientContext for Recorder {}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut v: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    v.sort_unstable();
    v
}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(tpl) => Rebalanced::Assigned(partitions(tpl)),
            Rebalance::Revoke(tpl) => Rebalanced::Revoked(partitions(tpl)),
            Rebalance::Error(e) => {
                eprintln!("rebalance error: {e}");
                return;
            }
        };
        self.events.lock().unwrap().push(event);
    }
}

/// A record committed by a member: (member, partition, offset, value).
pub type Committed = (usize, i32, i64, String);

/// Every record committed across the members of one test.
#[derive(Default)]
pub struct Ledger {
    pub records: Mutex<Vec<Committed>>,
    pub failed_commits: AtomicUsize,
}

impl Ledger {
    pub fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Panics unless the values `v{from}..v{to}` were each committed exactly once.
    pub fn assert_exactly_once(&self, from: usize, to: usize) {
        let records = self.records.lock().unwrap();
        let mut values: Vec<&str> = records.iter().map(|(_, _, _, v)| v.as_str()).collect();
        values.sort_unstable();
        let before = values.len();
        values.dedup();
        assert_eq!(
            before,
            values.len(),
            "{} records committed twice",
            before - values.len()
        );
        let mut expected: Vec<String> = (from..to).map(|i| format!("v{i}")).collect();
        expected.sort_unstable();
        assert_eq!(values.len(), expected.len(), "every record committed");
        assert!(
            values.iter().zip(&expected).all(|(a, b)| a == b),
            "committed values are exactly v{from}..v{to}"
        );
    }
}

/// A running group member. Dropping it (or `close`) closes the consumer, which leaves
/// the group unless the member is static.
pub struct Member {
    pub index: usize,
    pub events: Arc<Mutex<Vec<Rebalanced>>>,
    assignment: Arc<Mutex<Vec<i32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Starts member `index` of `group` on `topic`; `config` is added to the client's.
    pub fn start(
        index: usize,
        bootstrap: &str,
        group: &str,
        topic: &str,
        config: &[(&str, &str)],
        ledger: Arc<Ledger>,
    ) -> Member {
        let events: Arc<Mutex<Vec<Rebalanced>>> = Arc::default();
        let assignment: Arc<Mutex<Vec<i32>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("client.id", format!("member-{index}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in config {
            cfg.set(*k, *v);
        }
        let consumer: BaseConsumer<Recorder> = cfg
            .create_with_context(Recorder {
                events: events.clone(),
            })
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let topic = topic.to_string();
        let thread = {
            let (assignment, stop) = (assignment.clone(), stop.clone());
            std::thread::spawn(move || {
                run(index, &consumer, &topic, &ledger, &assignment, &stop);
                // Dropping the consumer closes it (LeaveGroup for a dynamic member).
                drop(consumer);
            })
        };
        Member {
            index,
            events,
            assignment,
            stop,
            thread: Some(thread),
        }
    }

    /// The partitions assigned to this member, as of its last poll.
    pub fn assignment(&self) -> Vec<i32> {
        self.assignment.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Rebalanced> {
        self.events.lock().unwrap().clone()
    }

    /// Stops polling and closes the consumer.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && !std::thread::panicking()
        {
            let _ = t.join();
        }
    }
}

fn run(
    index: usize,
    c: &BaseConsumer<Recorder>,
    topic: &str,
    ledger: &Ledger,
    assignment: &Mutex<Vec<i32>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                let (partition, offset) = (m.partition(), m.offset());
                match c.commit_message(&m, CommitMode::Sync) {
                    Ok(()) => ledger
                        .records
                        .lock()
                        .unwrap()
                        .push((index, partition, offset, value)),
                    Err(e) => {
                        ledger.failed_commits.fetch_add(1, Ordering::SeqCst);
                        eprintln!("member {index}: commit of {partition}@{offset} failed: {e}");
                        drop(m);
                        // Read the record again if this member still owns the partition;
                        // otherwise its next owner starts from the last commit.
                        let _ = c.seek(
                            topic,
                            partition,
                            Offset::Offset(offset),
                            Duration::from_secs(5),
                        );
                    }
                }
            }
            Some(Err(e)) => eprintln!("member {index}: {e}"),
            None => {}
        }
        let now = c
            .assignment()
            .map(|tpl| partitions(&tpl))
            .unwrap_or_default();
        *assignment.lock().unwrap() = now;
    }
}

/// What a wait prints when it gives up: a closure's text, or a broker's log (and then the
/// wait also gives up at once if that broker died).
pub trait Report {
    /// Panics if waiting longer is pointless.
    fn check(&self) {}
    fn report(&self) -> String;
}

impl<F: Fn() -> String> Report for F {
    fn report(&self) -> String {
        self()
    }
}

impl Report for &super::Broker {
    fn check(&self) {
        self.assert_running();
    }

    fn report(&self) -> String {
        self.log()
    }
}

/// Waits until `check` holds over the members' assignments, panicking with them and the
/// report after `timeout`. Returns how long it took.
pub fn wait_for(
    members: &[&Member],
    timeout: Duration,
    what: &str,
    report: impl Report,
    check: impl Fn(&[Vec<i32>]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let now: Vec<Vec<i32>> = members.iter().map(|m| m.assignment()).collect();
        if check(&now) {
            return start.elapsed();
        }
        report.check();
        if start.elapsed() > timeout {
            let events: Vec<Vec<Rebalanced>> = members.iter().map(|m| m.events()).collect();
            panic!(
                "{what}: not within {timeout:?}; assignments {now:?}; events {events:?}\n{}",
                report.report()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The assignments cover partitions `0..count` with no partition twice.
pub fn complete(assignments: &[Vec<i32>], count: i32) -> bool {
    let mut all: Vec<i32> = assignments.iter().flatten().copied().collect();
    all.sort_unstable();
    all == (0..count).collect::<Vec<_>>()
}

/// The assignments are complete and no two members' sizes differ by more than one.
pub fn balanced(assignments: &[Vec<i32>], count: i32) -> bool {
    let sizes = assignments.iter().map(Vec::len);
    let (min, max) = (sizes.clone().min(), sizes.max());
    complete(assignments, count) && max.zip(min).is_some_and(|(max, min)| max - min <= 1)
}

/// Produces `v{from}..v{to}` (keys `k{i}`) to `topic` with acks=all and waits for all.
pub fn produce_values(bootstrap: &str, topic: &str, from: usize, to: usize) {
    let (p, d) = super::producer(bootstrap, &[]);
    for i in from..to {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        loop {
            match p.send(BaseRecord::to(topic).key(&key).payload(&value)) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => std::thread::sleep(Duration::from_millis(10)),
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(d.ok.load(Ordering::SeqCst), to - from);
}

/// Waits until the ledger holds `count` records, panicking with the report when no record
/// was committed for `stall_max` (a stalled group, not a slow machine). Returns how long
/// it took.
pub fn wait_consumed(
    ledger: &Ledger,
    count: usize,
    stall_max: Duration,
    report: impl Report,
) -> Duration {
    let start = Instant::now();
    let mut seen = ledger.len();
    let mut progress_at = Instant::now();
    while ledger.len() < count {
        report.check();
        let now_seen = ledger.len();
        if now_seen > seen {
            seen = now_seen;
            progress_at = Instant::now();
        }
        assert!(
            progress_at.elapsed() < stall_max,
            "only {seen} of {count} records committed, none for {stall_max:?} ({:?} in all); {}",
            start.elapsed(),
            report.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}
