//! The eager `sticky` assignor (librdkafka has only cooperative-sticky) through kafka-python
//! against the real 2-shard broker: three Python members (`tests/python/group_member.py`,
//! one child process each) share six partitions, the group reports protocol "sticky" in
//! DescribeGroups, and when one member leaves the other two keep every partition they had
//! and take over the leaver's. Every record is committed exactly once, synchronously.
//!
//! kafka-python lives in a virtualenv made by `scripts/install-test-deps.sh`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Broker;
use common::client::python;
use common::group::{Ledger, Rebalanced, balanced, complete, produce_values, wait_consumed};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const PARTITIONS: i32 = 6;
const RECORDS: usize = 1_500;

#[derive(Default)]
struct Seen {
    events: Vec<Rebalanced>,
    assignment: Vec<i32>,
    closed: bool,
}

/// One kafka-python member process; killed by PID if still running when dropped.
struct PyMember {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
}

impl PyMember {
    fn start(index: usize, bootstrap: &str, group: &str, topic: &str, ledger: Arc<Ledger>) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/group_member.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([bootstrap, group, topic, &format!("py-{index}"), "sticky"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the python member");
        let stdout = child.stdout.take().unwrap();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    record(index, &line, &seen, &ledger);
                }
            });
        }
        PyMember {
            stdin: child.stdin.take(),
            child,
            seen,
        }
    }

    fn assignment(&self) -> Vec<i32> {
        self.seen.lock().unwrap().assignment.clone()
    }

    fn events(&self) -> Vec<Rebalanced> {
        self.seen.lock().unwrap().events.clone()
    }

    /// Asks the member to close its consumer (LeaveGroup) and waits for it to exit.
    fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "python member did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            self.seen.lock().unwrap().closed,
            "member closed its consumer"
        );
    }
}

impl Drop for PyMember {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ints(v: &serde_json::Value) -> Vec<i32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_i64())
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default()
}

fn record(index: usize, line: &str, seen: &Mutex<Seen>, ledger: &Ledger) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        eprintln!("py-{index}: {line}");
        return;
    };
    let mut s = seen.lock().unwrap();
    match v["event"].as_str() {
        Some("assigned") => {
            let p = ints(&v["partitions"]);
            s.assignment = p.clone();
            s.events.push(Rebalanced::Assigned(p));
        }
        Some("revoked") => {
            let p = ints(&v["partitions"]);
            s.assignment.retain(|x| !p.contains(x));
            s.events.push(Rebalanced::Revoked(p));
        }
        Some("record") => ledger.records.lock().unwrap().push((
            index,
            v["partition"].as_i64().unwrap_or(-1) as i32,
            v["offset"].as_i64().unwrap_or(-1),
            v["value"].as_str().unwrap_or_default().to_string(),
        )),
        Some("closed") => s.closed = true,
        _ => eprintln!("py-{index}: {line}"),
    }
}

fn wait_assignments(
    members: &[&PyMember],
    what: &str,
    timeout: Duration,
    broker: &Broker,
    check: impl Fn(&[Vec<i32>]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let now: Vec<Vec<i32>> = members.iter().map(|m| m.assignment()).collect();
        if check(&now) {
            return start.elapsed();
        }
        broker.assert_running();
        if start.elapsed() > timeout {
            let events: Vec<Vec<Rebalanced>> = members.iter().map(|m| m.events()).collect();
            panic!(
                "{what}: not within {timeout:?}; assignments {now:?}; events {events:?}\n{}",
                broker.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kafka_python_sticky_members_keep_their_partitions_when_one_leaves() {
    // Proves the eager sticky assignor works through the broker: the group settles 2/2/2
    // with protocol "sticky" (checked with DescribeGroups through librdkafka), after one
    // member leaves each remaining member still owns every partition it had plus one of
    // the leaver's (range would move partition 2 or 3 between the remaining members), and
    // all records before and after are committed exactly once.
    let broker = Broker::start_with(&["--num-partitions", "6"]);
    let bootstrap = broker.bootstrap();
    produce_values(&bootstrap, "sticky", 0, 1);
    let ledger = Arc::new(Ledger::default());
    let mut members: Vec<PyMember> = (0..3)
        .map(|i| PyMember::start(i, &bootstrap, "sticky-g", "sticky", ledger.clone()))
        .collect();
    wait_assignments(
        &members.iter().collect::<Vec<_>>(),
        "three members settle",
        Duration::from_secs(60),
        &broker,
        |a| balanced(a, PARTITIONS) && a.iter().all(|p| p.len() == 2),
    );

    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let groups = admin
        .fetch_group_list(Some("sticky-g"), Duration::from_secs(10))
        .unwrap();
    let group = &groups.groups()[0];
    assert_eq!(group.name(), "sticky-g");
    assert_eq!(group.state(), "Stable");
    assert_eq!(group.protocol_type(), "consumer");
    assert_eq!(group.protocol(), "sticky");
    assert_eq!(group.members().len(), 3);

    produce_values(&bootstrap, "sticky", 1, RECORDS / 2);
    wait_consumed(&ledger, RECORDS / 2, Duration::from_secs(60), &broker);
    let before: Vec<Vec<i32>> = members.iter().map(PyMember::assignment).collect();
    let left_at = Instant::now();
    members.pop().unwrap().stop();
    wait_assignments(
        &members.iter().collect::<Vec<_>>(),
        "the leaver's partitions move",
        Duration::from_secs(10),
        &broker,
        |a| complete(a, PARTITIONS),
    );
    let took = left_at.elapsed();
    eprintln!(
        "partitions {:?} moved {took:?} after the close began",
        before[2]
    );
    assert!(took < Duration::from_secs(10), "within session.timeout.ms");
    for (i, m) in members.iter().enumerate() {
        let after = m.assignment();
        assert!(
            before[i].iter().all(|p| after.contains(p)),
            "member {i} had {:?}, now {after:?}: sticky keeps them",
            before[i]
        );
        assert_eq!(after.len(), 3, "member {i}: {after:?}");
    }
    produce_values(&bootstrap, "sticky", RECORDS / 2, RECORDS);
    wait_consumed(&ledger, RECORDS, Duration::from_secs(60), &broker);
    std::thread::sleep(Duration::from_millis(300));
    for m in members {
        m.stop();
    }
    ledger.assert_exactly_once(0, RECORDS);
}
