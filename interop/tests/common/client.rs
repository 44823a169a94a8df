//! Other clients' test programs (Python, JavaScript, Go) run as child processes of a Rust
//! test: where `scripts/install-test-deps.sh` put each client, running one case of a
//! program against a broker with a time limit (the child is killed by PID past it), and
//! the records every program produces, so that each test compares what came back with
//! what this file expects rather than with what the program says it sent.
//!
//! Every program takes `CASE BOOTSTRAP` and prints one JSON object on its last stdout
//! line. A case the client could not complete prints `{"error": "..."}` instead.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::Broker;

/// The codecs every client produces with, under Kafka's names.
pub const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// Records each program produces per codec (`records` below).
pub const RECORDS_PER_CODEC: i64 = 10;
/// The create time of record 0; record `i` has `BASE_TIMESTAMP_MS + 1000 * i`.
pub const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// One record as the programs print it: partition, offset, key, value, headers, timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: i64,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: Vec<(String, String)>,
    pub timestamp_ms: i64,
}

/// What every program produces for `codec` to the one-partition topic `codec-<codec>`:
/// record 3 has no key (the rest `k<i>`), each has two headers, and create times one
/// second apart.
pub fn records(codec: &str) -> Vec<Rec> {
    (0..RECORDS_PER_CODEC)
        .map(|i| Rec {
            partition: 0,
            offset: i,
            key: (i != 3).then(|| format!("k{i}")),
            value: format!("{codec}-{i}-{}", "x".repeat(100)),
            headers: vec![("i".into(), i.to_string()), ("codec".into(), codec.into())],
            timestamp_ms: BASE_TIMESTAMP_MS + 1000 * i,
        })
        .collect()
}

/// Parses `[{"p":..,"o":..,"k":..,"v":..,"h":[[k,v],..],"ts":..}, ..]`.
pub fn parse_records(v: &Value) -> Vec<Rec> {
    let Some(list) = v.as_array() else {
        panic!("not a record list: {v}");
    };
    list.iter()
        .map(|r| Rec {
            partition: r["p"].as_i64().expect("p"),
            offset: r["o"].as_i64().expect("o"),
            key: r["k"].as_str().map(str::to_string),
            value: r["v"].as_str().expect("v").to_string(),
            headers: r["h"]
                .as_array()
                .expect("h")
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().expect("header key").to_string(),
                        h[1].as_str().expect("header value").to_string(),
                    )
                })
                .collect(),
            timestamp_ms: r["ts"].as_i64().expect("ts"),
        })
        .collect()
}

/// Asserts that the program's `codecs` result holds, for every codec, exactly the records
/// of `records(codec)` at offsets 0.., read back through the same client.
pub fn assert_codecs(result: &Value) {
    assert_codecs_of(result, &CODECS);
}

/// `assert_codecs` for the named codecs only.
pub fn assert_codecs_of(result: &Value, codecs: &[&str]) {
    for &codec in codecs {
        let got = &result["codecs"][codec];
        assert!(
            got["error"].is_null(),
            "{codec}: {}",
            got["error"].as_str().unwrap_or_default()
        );
        let produced: Vec<i64> = got["produced"]
            .as_array()
            .unwrap_or_else(|| panic!("{codec}: no produced offsets in {got}"))
            .iter()
            .map(|o| o.as_i64().expect("offset"))
            .collect();
        assert_eq!(
            produced,
            (0..RECORDS_PER_CODEC).collect::<Vec<_>>(),
            "{codec}: acknowledged offsets"
        );
        assert_eq!(
            parse_records(&got["consumed"]),
            records(codec),
            "{codec}: records read back"
        );
    }
}

/// The virtualenv python with kafka-python and confluent-kafka.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("SLUICE_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/sluice/py-venv"));
    installed(venv.join("bin/python"))
}

/// `interop/tests/python/<name>`.
pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// `interop/js`, with KafkaJS in its node_modules.
pub fn js_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    installed(dir.join("node_modules/kafkajs/package.json"));
    dir
}

/// The Sarama program built by the install script.
pub fn sarama_cases() -> PathBuf {
    let dir = std::env::var_os("SLUICE_GO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/sluice/go-bin"));
    installed(dir.join("sarama-cases"))
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Runs `command CASE BOOTSTRAP [extra..]` and returns the JSON object on the last line
/// of its stdout. Panics (with the child's stderr and the broker log) when the child runs
/// past `timeout`, exits non-zero, prints no JSON, or reports `{"error": ..}`.
pub fn run_case(
    mut command: Command,
    case: &str,
    broker: &Broker,
    extra: &[&str],
    timeout: Duration,
) -> Value {
    let v = run_case_raw(&mut command, case, broker, extra, timeout);
    if let Some(e) = v.get("error") {
        panic!(
            "{case}: {}\nprogram: {command:?}\nbroker log:\n{}",
            e.as_str().unwrap_or_default(),
            tail(&broker.log())
        );
    }
    v
}

/// Like `run_case` but returns an `{"error": ..}` result instead of panicking on it.
pub fn run_case_raw(
    command: &mut Command,
    case: &str,
    broker: &Broker,
    extra: &[&str],
    timeout: Duration,
) -> Value {
    command.arg(case).arg(broker.bootstrap()).args(extra);
    let ran = run_bounded(command, b"", timeout);
    let (out, err) = (ran.out, ran.err);
    let Some(status) = ran.status else {
        panic!(
            "{case}: still running after {timeout:?}, killed\nstdout:\n{out}\nstderr:\n{}\nbroker log:\n{}",
            tail(&err),
            tail(&broker.log())
        );
    };
    let last = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
    match (status.success(), last.map(serde_json::from_str::<Value>)) {
        (true, Some(Ok(v))) => v,
        _ => panic!(
            "{case}: exited with {status}\nstdout:\n{out}\nstderr:\n{}\nbroker log:\n{}",
            tail(&err),
            tail(&broker.log())
        ),
    }
}

/// What a program run by `run_bounded` did.
pub struct Ran {
    /// `None` when it was killed past its time limit.
    pub status: Option<ExitStatus>,
    pub out: String,
    pub err: String,
}

/// Runs `command` with `input` on its stdin (then closed), reading its stdout and stderr
/// as it goes so that neither pipe fills, and kills it by PID past `timeout`.
pub fn run_bounded(command: &mut Command, input: &[u8], timeout: Duration) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e} (scripts/install-test-deps.sh)"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // A program that exits without reading all of it closes the pipe: not an error here.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let _ = stdin.write_all(input);
    drop(stdin);
    let status = sluice_testkit::wait_or_kill(&mut child, timeout);
    Ran {
        status,
        out: out.join().unwrap_or_default(),
        err: err.join().unwrap_or_default(),
    }
}

/// The last 60 lines of a log, enough to see the failing request.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Shared by every client's `idempotence` case: an idempotent producer's zstd records to
/// `idempotent` come back once each at offsets 0..
pub fn assert_idempotence(v: &Value, codec: &str) {
    let produced: Vec<i64> = v["produced"]
        .as_array()
        .unwrap_or_else(|| panic!("no produced offsets in {v}"))
        .iter()
        .map(|o| o.as_i64().expect("offset"))
        .collect();
    assert_eq!(produced, (0..RECORDS_PER_CODEC).collect::<Vec<_>>());
    assert_eq!(parse_records(&v["consumed"]), records(codec));
}

/// The `group` case: two members of one group split the 4 partitions of `grouped` 2/2,
/// read the 40 records `g-<i>` (record i on partition i % 4) once each between them,
/// commit each, and the committed offset of every partition is its end, 10.
pub fn assert_group(v: &Value) {
    let assignments: Vec<Vec<i64>> = v["assignments"]
        .as_array()
        .unwrap_or_else(|| panic!("no assignments in {v}"))
        .iter()
        .map(|a| {
            a.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(assignments.len(), 2, "two members: {assignments:?}");
    assert!(
        assignments.iter().all(|a| a.len() == 2),
        "each member owns two partitions: {assignments:?}"
    );
    let mut all: Vec<i64> = assignments.concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3], "assignments {assignments:?}");
    let mut seen = std::collections::BTreeSet::new();
    for (member, records) in v["consumed"]
        .as_array()
        .expect("consumed")
        .iter()
        .enumerate()
    {
        for r in records.as_array().expect("member records") {
            let (p, o) = (r["p"].as_i64().unwrap(), r["o"].as_i64().unwrap());
            assert!(
                assignments[member].contains(&p),
                "member {member} read partition {p} it does not own"
            );
            assert_eq!(r["v"].as_str().unwrap(), format!("g-{}", o * 4 + p));
            assert!(seen.insert((p, o)), "{p}@{o} read twice");
        }
    }
    assert_eq!(seen.len(), 40, "every record read once");
    for p in 0..4 {
        assert_eq!(
            v["committed"][p.to_string()].as_i64(),
            Some(10),
            "partition {p} committed at its end: {}",
            v["committed"]
        );
    }
}

/// The `admin_topics` case: `admin-t` created with 3 partitions and retention.ms=3600000
/// is listed and described so, reports that config (and the default cleanup.policy),
/// has 5 partitions after CreatePartitions, and is gone from the list after DeleteTopics.
pub fn assert_admin_topics(v: &Value) {
    let listed = strings(&v["listed"]);
    assert!(listed.contains(&"admin-t".into()), "listed {listed:?}");
    assert_eq!(v["described"]["name"].as_str(), Some("admin-t"));
    assert_eq!(v["described"]["partitions"].as_i64(), Some(3));
    assert_eq!(
        v["topic_configs"]["retention.ms"].as_str(),
        Some("3600000"),
        "{}",
        v["topic_configs"]
    );
    assert_eq!(
        v["topic_configs"]["cleanup.policy"].as_str(),
        Some("delete"),
        "{}",
        v["topic_configs"]
    );
    assert_eq!(v["partitions_after"].as_i64(), Some(5));
    let after = strings(&v["listed_after_delete"]);
    assert!(
        !after.contains(&"admin-t".into()),
        "still listed: {after:?}"
    );
}

/// The `broker_configs` case: DescribeConfigs of the broker resource reports the broker's
/// settings, among them num.partitions as started (1) and log.retention.ms (7 days).
pub fn assert_broker_configs(v: &Value) {
    let configs = &v["configs"];
    assert_eq!(configs["num.partitions"].as_str(), Some("1"), "{configs}");
    assert_eq!(
        configs["log.retention.ms"].as_str(),
        Some("604800000"),
        "{configs}"
    );
}

/// The `delete_records` case: after DeleteRecords before offset 4 of `trimmed` (10
/// records), the low watermark is 4, ListOffsets(earliest) says 4, and reading from the
/// beginning starts at 4.
pub fn assert_delete_records(v: &Value) {
    assert_eq!(v["low_watermark"].as_i64(), Some(4), "{v}");
    assert_eq!(v["earliest"].as_i64(), Some(4), "{v}");
    assert_eq!(v["first"].as_i64(), Some(4), "{v}");
}

/// The `offsets_for_times` case on `timed` (`records("none")`, create times
/// BASE_TIMESTAMP_MS + 1000 i): before the first record → 0, +3500 ms → 4 (first at or
/// after), +9000 ms → 9, past the last → -1 (no such offset).
pub fn assert_offsets_for_times(v: &Value) {
    assert_eq!(v["before_first"].as_i64(), Some(0), "{v}");
    assert_eq!(v["at_3500"].as_i64(), Some(4), "{v}");
    assert_eq!(v["at_9000"].as_i64(), Some(9), "{v}");
    assert_eq!(v["after_last"].as_i64(), Some(-1), "{v}");
}

/// The `list_offsets` case on `listed` (10 records): earliest 0, latest 10.
pub fn assert_list_offsets(v: &Value) {
    assert_eq!(v["earliest"]["offset"].as_i64(), Some(0), "{v}");
    assert_eq!(v["latest"]["offset"].as_i64(), Some(10), "{v}");
}

/// The `list_offsets` case's lookups by time on `listed` (create times
/// BASE_TIMESTAMP_MS + 1000 i): the largest timestamp is record 9's, and the first record
/// at or after +3500 ms is record 4, each answered with its own timestamp.
pub fn assert_list_offsets_by_time(v: &Value) {
    assert_eq!(v["max_timestamp"]["offset"].as_i64(), Some(9), "{v}");
    assert_eq!(
        v["max_timestamp"]["timestamp"].as_i64(),
        Some(BASE_TIMESTAMP_MS + 9000),
        "{v}"
    );
    assert_eq!(v["at_3500"]["offset"].as_i64(), Some(4), "{v}");
    assert_eq!(
        v["at_3500"]["timestamp"].as_i64(),
        Some(BASE_TIMESTAMP_MS + 4000),
        "{v}"
    );
}

/// The `groups_admin` case: `group`, which read the 4 records of `grouped-admin`,
/// committed and left, is listed, described as Empty with no members, reports offset 4
/// for `grouped-admin-0`, and is no longer listed after DeleteGroups.
pub fn assert_groups_admin(v: &Value, group: &str) {
    assert!(
        strings(&v["listed"]).contains(&group.to_string()),
        "{}",
        v["listed"]
    );
    assert_eq!(
        v["described"]["state"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some("empty".into()),
        "{}",
        v["described"]
    );
    assert_eq!(v["described"]["members"].as_i64(), Some(0));
    assert_eq!(
        v["offsets"]["grouped-admin-0"].as_i64(),
        Some(4),
        "{}",
        v["offsets"]
    );
    assert!(
        !strings(&v["listed_after_delete"]).contains(&group.to_string()),
        "{}",
        v["listed_after_delete"]
    );
}

/// The `compacted_keyless` case: a record without a key to a `cleanup.policy=compact`
/// topic is refused as Kafka refuses it (INVALID_RECORD, error 87).
pub fn assert_compacted_keyless_refused(v: &Value) {
    let error = v["delivery_error"].as_str().unwrap_or_default();
    // By name where the client knows Kafka error 87, by code where it does not.
    let by_name = error
        .to_ascii_uppercase()
        .replace([' ', '_'], "")
        .contains("INVALIDRECORD");
    assert!(
        by_name || v["code"].as_i64() == Some(87),
        "a keyless record to a compacted topic: {v}"
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
