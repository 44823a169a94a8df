//! Debian's kcat 1.7.1 (librdkafka 2.0.2) against the real 2-shard broker, in the shape of
//! the other clients' tests (`common::client`): every codec with every field kcat can set
//! compared on the way back (key, null key, value, headers, a create time taken from the
//! producing clock), a two-member `-G` group that commits, Metadata (`-L`), ListOffsets by
//! timestamp (`-Q`) and the idempotent producer. kcat has no admin calls.
//!
//! kcat comes from `scripts/install-test-deps.sh`. Every kcat run is killed by PID past
//! its time limit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Broker;
use common::client::{CODECS, run_bounded};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `kcat -b BOOTSTRAP ARGS` with `input` on stdin; returns its stdout.
fn kcat(broker: &Broker, args: &[&str], input: &str) -> String {
    let mut command = Command::new("kcat");
    command.arg("-b").arg(broker.bootstrap()).args(args);
    let ran = run_bounded(&mut command, input.as_bytes(), TIMEOUT);
    let Some(status) = ran.status else {
        panic!("kcat {args:?} still running after {TIMEOUT:?}: {}", ran.err);
    };
    assert!(
        status.success(),
        "kcat {args:?}: {status}\n{}\n{}",
        ran.err,
        broker.log()
    );
    ran.out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reads partition 0 of `topic` from the beginning to its end as kcat's JSON records.
fn consume(broker: &Broker, topic: &str) -> Vec<Value> {
    kcat(
        broker,
        &[
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ],
        "",
    )
    .lines()
    .map(|l| serde_json::from_str(l).expect("kcat JSON record"))
    .collect()
}

/// `k<i>\t<codec>-<i>-xxx..` lines; record 3 has an empty key, which `-Z` sends as null.
fn lines(codec: &str, range: std::ops::Range<i64>) -> String {
    range
        .map(|i| {
            let key = if i == 3 {
                String::new()
            } else {
                format!("k{i}")
            };
            format!("{key}\t{codec}-{i}-{}\n", "x".repeat(100))
        })
        .collect()
}

#[test]
fn kcat_codecs_round_trip_every_field() {
    // Proves librdkafka 2.0.2's batches under none, gzip, snappy, lz4 and zstd are stored
    // and served intact: the 10 records of each come back at offsets 0..9 with the same
    // key (a null one included), value and headers, and a create time from the producing
    // client's clock (between the moments before and after the produce).
    let broker = Broker::start();
    for codec in CODECS {
        let topic = format!("codec-{codec}");
        let header = format!("codec={codec}");
        let codec_setting = format!("compression.codec={codec}");
        let before = now_ms();
        kcat(
            &broker,
            &[
                "-P",
                "-t",
                &topic,
                "-p",
                "0",
                "-K",
                "\t",
                "-Z",
                "-H",
                &header,
                "-H",
                "tool=kcat",
                "-X",
                &codec_setting,
                "-X",
                "acks=all",
            ],
            &lines(codec, 0..10),
        );
        let after = now_ms();
        let got = consume(&broker, &topic);
        assert_eq!(got.len(), 10, "{codec}: {got:?}");
        for (i, r) in got.iter().enumerate() {
            let key = (i != 3).then(|| format!("k{i}"));
            assert_eq!(r["offset"].as_i64(), Some(i as i64), "{codec}: {r}");
            assert_eq!(r["key"].as_str().map(str::to_string), key, "{codec}: {r}");
            assert_eq!(
                r["payload"].as_str(),
                Some(format!("{codec}-{i}-{}", "x".repeat(100)).as_str()),
                "{codec}: {r}"
            );
            assert_eq!(
                r["headers"],
                serde_json::json!(["codec", codec, "tool", "kcat"]),
                "{codec}: {r}"
            );
            assert_eq!(r["tstype"].as_str(), Some("create"), "{codec}: {r}");
            let ts = r["ts"].as_i64().unwrap();
            assert!(
                (before..=after).contains(&ts),
                "{codec}: create time {ts} outside [{before}, {after}]"
            );
        }
    }
}

#[test]
fn kcat_query_offsets_by_timestamp() {
    // Proves ListOffsets by timestamp through `kcat -Q`: records 0..4 and 5..9 are
    // produced by two kcat runs 50 ms apart, so record 5's create time is later than
    // record 4's; asking for record 5's time finds 5, for record 0's time (or earlier)
    // finds 0, and past the last record finds -1.
    let broker = Broker::start();
    let produce = |range| {
        kcat(
            &broker,
            &["-P", "-t", "timed", "-p", "0", "-K", "\t"],
            &lines("none", range),
        )
    };
    produce(0..5);
    std::thread::sleep(Duration::from_millis(50));
    produce(5..10);
    let ts: Vec<i64> = consume(&broker, "timed")
        .iter()
        .map(|r| r["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(ts.len(), 10);
    assert!(ts[4] < ts[5], "{ts:?}");
    let query = |at: i64| -> String {
        kcat(&broker, &["-Q", "-t", &format!("timed:0:{at}")], "")
            .trim()
            .to_string()
    };
    assert_eq!(query(ts[5]), "timed [0] offset 5");
    assert_eq!(query(ts[0]), "timed [0] offset 0");
    assert_eq!(query(ts[0] - 60_000), "timed [0] offset 0");
    assert_eq!(query(ts[9] + 60_000), "timed [0] offset -1");
}

#[test]
fn kcat_idempotent_producer() {
    // Proves enable.idempotence=true through kcat (InitProducerId, sequence numbers,
    // zstd) produces each record exactly once at offsets 0..9.
    let broker = Broker::start();
    kcat(
        &broker,
        &[
            "-P",
            "-t",
            "idempotent",
            "-p",
            "0",
            "-K",
            "\t",
            "-X",
            "enable.idempotence=true",
            "-X",
            "compression.codec=zstd",
        ],
        &lines("zstd", 0..10),
    );
    let got: Vec<(i64, String)> = consume(&broker, "idempotent")
        .iter()
        .map(|r| {
            (
                r["offset"].as_i64().unwrap(),
                r["payload"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = (0..10)
        .map(|i| (i, format!("zstd-{i}-{}", "x".repeat(100))))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn kcat_metadata_lists_topics_and_partitions() {
    // Proves Metadata through `kcat -L -J`: the broker, and each topic produced to with
    // its partition count and this broker as leader.
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    for topic in ["listed-a", "listed-b"] {
        kcat(&broker, &["-P", "-t", topic], "one\n");
    }
    let md: Value = serde_json::from_str(&kcat(&broker, &["-L", "-J"], "")).unwrap();
    assert_eq!(md["brokers"][0]["id"].as_i64(), Some(0), "{md}");
    for topic in ["listed-a", "listed-b"] {
        let t = md["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == topic)
            .unwrap_or_else(|| panic!("{topic} not listed: {md}"));
        let partitions = t["partitions"].as_array().unwrap();
        assert_eq!(partitions.len(), 3, "{t}");
        assert!(partitions.iter().all(|p| p["leader"] == 0), "{t}");
    }
}

/// One `kcat -G` member: its assignment (from kcat's rebalance lines on stderr) and the
/// records it printed; SIGTERM closes its consumer, which commits.
struct Member {
    child: Child,
    assigned: Arc<Mutex<Vec<i64>>>,
    records: Arc<Mutex<Vec<(i64, i64, String)>>>,
}

impl Member {
    fn start(broker: &Broker, group: &str, topic: &str) -> Member {
        let mut child = Command::new("kcat")
            .args([
                "-b",
                &broker.bootstrap(),
                "-G",
                group,
                "-o",
                "beginning",
                "-J",
                // Unbuffered: kcat's stdout is a pipe here.
                "-u",
            ])
            .args([
                "-X",
                "enable.auto.commit=true",
                "-X",
                "auto.commit.interval.ms=100",
            ])
            .args([
                "-X",
                "session.timeout.ms=10000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .args(["-X", "partition.assignment.strategy=range"])
            .args(["-X", "auto.offset.reset=earliest"])
            .arg(topic)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat is installed (scripts/install-test-deps.sh)");
        let assigned: Arc<Mutex<Vec<i64>>> = Arc::default();
        let records: Arc<Mutex<Vec<(i64, i64, String)>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let a = assigned.clone();
        let topic_prefix = format!("{topic} [");
        std::thread::spawn(move || {
            // "% Group g rebalanced (memberid ..): assigned: t [0], t [1]" and "revoked: ..".
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((_, list)) = line.split_once("assigned: ") {
                    *a.lock().unwrap() = list
                        .split(", ")
                        .filter_map(|p| p.strip_prefix(&topic_prefix)?.strip_suffix(']'))
                        .filter_map(|p| p.parse().ok())
                        .collect();
                } else if line.contains("revoked: ") {
                    a.lock().unwrap().clear();
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let r = records.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                r.lock().unwrap().push((
                    v["partition"].as_i64().unwrap(),
                    v["offset"].as_i64().unwrap(),
                    v["payload"].as_str().unwrap_or_default().to_string(),
                ));
            }
        });
        Member {
            child,
            assigned,
            records,
        }
    }

    /// SIGTERM to this member's PID, then waits for it to close its consumer and exit.
    fn stop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "kcat -G did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn kcat_two_members_share_a_group_and_commit() {
    // Proves the classic group protocol with two `kcat -G` members: the range assignor
    // splits 4 partitions 2/2, the 40 records are read once each by their owner, and the
    // commits made while reading and on close (SIGTERM) leave each partition's committed
    // offset at its end, as OffsetFetch through librdkafka reports.
    let broker = Broker::start();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let created = futures_lite::future::block_on(admin.create_topics(
        &[NewTopic::new("grouped", 4, TopicReplication::Fixed(1))],
        &AdminOptions::new().request_timeout(Some(TIMEOUT)),
    ))
    .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let mut members = [
        Member::start(&broker, "kcat-group", "grouped"),
        Member::start(&broker, "kcat-group", "grouped"),
    ];
    let deadline = Instant::now() + TIMEOUT;
    let assignments = loop {
        let a: Vec<Vec<i64>> = members
            .iter()
            .map(|m| m.assigned.lock().unwrap().clone())
            .collect();
        if a.iter().all(|p| p.len() == 2) {
            break a;
        }
        assert!(Instant::now() < deadline, "assignments {a:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut all: Vec<i64> = assignments.concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3], "{assignments:?}");
    for p in 0..4 {
        let input: String = (0..10).map(|o| format!("g-{}\n", o * 4 + p)).collect();
        kcat(
            &broker,
            &["-P", "-t", "grouped", "-p", &p.to_string()],
            &input,
        );
    }
    let deadline = Instant::now() + TIMEOUT;
    while members
        .iter()
        .map(|m| m.records.lock().unwrap().len())
        .sum::<usize>()
        < 40
    {
        assert!(Instant::now() < deadline, "40 records not read");
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in &mut members {
        m.stop();
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in members.iter().enumerate() {
        for (p, o, v) in m.records.lock().unwrap().iter() {
            assert!(assignments[i].contains(p), "member {i} read partition {p}");
            assert_eq!(*v, format!("g-{}", o * 4 + p));
            assert!(seen.insert((*p, *o)), "{p}@{o} read twice");
        }
    }
    assert_eq!(seen.len(), 40);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "kcat-group")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition("grouped", p);
    }
    let committed = c.committed_offsets(tpl, TIMEOUT).unwrap();
    for p in 0..4 {
        assert_eq!(
            committed.find_partition("grouped", p).unwrap().offset(),
            Offset::Offset(10),
            "partition {p}"
        );
    }
}
