//! `sluice-perf consume --group`, `rebalance` and `commit` against a real `sluice` broker
//! started by the test: counts match what was produced, a rebalance run reports the
//! remaining members consuming again, and commits land in the group's offsets.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Broker;
use sluice_net::client::group::{GroupMember, GroupSettings};

fn perf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(args)
        .output()
        .expect("run sluice-perf")
}

fn perf_ok(broker: &Broker, args: &[&str]) -> String {
    let out = perf(args);
    assert!(
        out.status.success(),
        "sluice-perf {args:?} failed: {}\n{}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn measurement<'a>(result: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    result["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} measurement in {result}"))
}

/// Produces at a fixed rate for `seconds` and returns the records the run reports.
fn produce(broker: &Broker, dir: &Path, name: &str, seconds: &str) -> u64 {
    let out = dir.join(format!("{name}.json"));
    let bootstrap = broker.bootstrap();
    perf_ok(
        broker,
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "gt",
            "--partitions",
            "6",
            "--record-size",
            "100",
            "--rate",
            "3000",
            "--duration",
            seconds,
            "--warmup",
            "0",
            "--quiet",
            "--json",
            out.to_str().unwrap(),
        ],
    );
    measurement(&json(&out), "produce")["records"]
        .as_u64()
        .unwrap()
}

#[test]
fn group_consume_counts_every_record_once_and_resumes_from_commits() {
    // Proves: three members of one group consume a 6-partition topic and together count
    // exactly the records produced (each record once across members); a second run of the
    // same group with two members counts exactly the records produced since, because it
    // resumes from the first run's commits.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap();
    let first = produce(&broker, dir.path(), "p1", "2");
    assert!(first > 0);
    let consume = |members: &str, name: &str| {
        let out = dir.path().join(format!("{name}.json"));
        let hgrm = dir.path().join(format!("{name}.hgrm"));
        let stdout = perf_ok(
            &broker,
            &[
                "consume",
                "--bootstrap",
                &bootstrap,
                "--topic",
                "gt",
                "--group",
                "perf-g",
                "--members",
                members,
                "--heartbeat-ms",
                "300",
                "--session-timeout-ms",
                "10000",
                "--commit-interval-ms",
                "500",
                "--duration",
                "7",
                "--quiet",
                "--json",
                out.to_str().unwrap(),
                "--hgrm",
                hgrm.to_str().unwrap(),
            ],
        );
        assert!(
            stdout.contains(&format!("group: {members} members")),
            "{stdout}"
        );
        assert!(hgrm.exists());
        let result = json(&out);
        assert_eq!(result["command"], "consume");
        assert_eq!(result["parameters"]["group"], "perf-g");
        measurement(&result, "consume")["records"].as_u64().unwrap()
    };
    assert_eq!(consume("3", "c1"), first);
    let second = produce(&broker, dir.path(), "p2", "1");
    assert_eq!(consume("2", "c2"), second);
}

#[test]
fn rebalance_run_reports_remaining_members_consuming_again() {
    // Proves: a rebalance run with three members completes two leave/rejoin rounds, each
    // round reporting the two remaining members consuming again and then all three; the
    // JSON holds both measurements with one observation per round.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebalance.json");
    let bootstrap = broker.bootstrap();
    let stdout = perf_ok(
        &broker,
        &[
            "rebalance",
            "--bootstrap",
            &bootstrap,
            "--members",
            "3",
            "--partitions",
            "6",
            "--repeat",
            "2",
            "--heartbeat-ms",
            "200",
            "--session-timeout-ms",
            "10000",
            "--settle-timeout",
            "60",
            "--json",
            out.to_str().unwrap(),
        ],
    );
    let rounds = stdout
        .lines()
        .filter(|l| l.contains("leave -> 2 members consuming") && l.contains("join -> 3"))
        .count();
    assert_eq!(rounds, 2, "{stdout}");
    let result = json(&out);
    for name in ["leave", "join"] {
        let m = measurement(&result, name);
        assert_eq!(m["records"].as_u64(), Some(2), "{m}");
        assert!(m["latency"]["max_us"].as_u64().unwrap() > 0, "{m}");
    }
    assert_eq!(
        result["parameters"]["rounds_us"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn commit_run_leaves_its_offsets_in_the_groups() {
    // Proves: the commit benchmark's members commit K partitions per request; afterwards
    // each group's committed offset of every partition equals that member's last commit,
    // all partitions alike, and together they cover at least the measured requests.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("commit.json");
    let bootstrap = broker.bootstrap();
    let stdout = perf_ok(
        &broker,
        &[
            "commit",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "ct",
            "--partitions",
            "4",
            "--groups",
            "2",
            "--group",
            "cb",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--json",
            out.to_str().unwrap(),
        ],
    );
    assert!(stdout.contains("4 partitions per OffsetCommit"), "{stdout}");
    let result = json(&out);
    let measured = measurement(&result, "commit")["records"].as_u64().unwrap();
    assert!(measured > 0);
    assert_eq!(result["errors"].as_u64(), Some(0));
    let last: Vec<i64> = glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            let mut last = Vec::new();
            for group in ["cb-0", "cb-1"] {
                let member = GroupMember::connect(&bootstrap, GroupSettings::new(group, &["ct"]))
                    .await
                    .unwrap();
                let asked: Vec<(&str, i32)> = (0..4).map(|p| ("ct", p)).collect();
                let committed = member.committed(&asked).await.unwrap();
                let first = committed[0].expect("committed");
                assert!(committed.iter().all(|c| *c == Some(first)), "{committed:?}");
                last.push(first);
            }
            last
        });
    assert!(
        last.iter().sum::<i64>() as u64 >= measured,
        "{last:?} < {measured}"
    );
}
