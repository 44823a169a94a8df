//! `sluice-perf` against a real `sluice` broker started by the test: its files feed `compare`
//! and `plot`, its hgrm totals match what the broker stored, and a paused broker shows up in
//! the tail of a fixed-rate run (coordinated omission corrected).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::Broker;

fn perf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args(args)
        .output()
        .expect("run sluice-perf")
}

fn perf_ok(broker: Option<&Broker>, args: &[&str]) -> String {
    let out = perf(args);
    assert!(
        out.status.success(),
        "sluice-perf {args:?} failed: {}\n{}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        broker.map(Broker::log).unwrap_or_default()
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

/// The last TotalCount column of an `.hgrm` file.
fn hgrm_total(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .next_back()
        .expect("hgrm has rows")
}

#[test]
fn produce_outputs_match_the_broker_and_feed_compare_and_plot() {
    // Proves, against a real broker: a fixed-rate run's hgrm total equals the records its JSON
    // reports, and a consumer reading the topic from the start gets exactly that many; the
    // JSON carries machine, broker ApiVersions and parameters; compare passes generous limits
    // and exits 1 past an impossible one; plot draws the runs' json and hlog files.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let bootstrap = broker.bootstrap();
    let common = [
        "--bootstrap",
        bootstrap.as_str(),
        "--topic",
        "t",
        "--partitions",
        "4",
        "--record-size",
        "200",
        "--acks",
        "all",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--warmup",
        "0",
        "--quiet",
    ];
    let mut a = common.to_vec();
    let (a_json, a_hgrm, a_hlog) = (p("a.json"), p("a.hgrm"), p("a.hlog"));
    a.extend(["--json", &a_json, "--hgrm", &a_hgrm, "--hlog", &a_hlog]);
    let mut args = vec!["produce"];
    args.extend(&a);
    let summary = perf_ok(Some(&broker), &args);
    assert!(summary.contains("produce"), "{summary}");

    let result = json(Path::new(&a_json));
    let produced = measurement(&result, "produce")["records"].as_u64().unwrap();
    assert!(
        produced >= 3000,
        "2 s at 2000 records/s produced only {produced}"
    );
    assert_eq!(hgrm_total(Path::new(&a_hgrm)), produced);
    assert_eq!(result["errors"], 0);
    assert!(result["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!result["machine"]["kernel"].as_str().unwrap().is_empty());
    assert!(
        result["broker_api_versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "Produce")
    );
    assert_eq!(result["parameters"]["rate"], 2000.0);

    let c_json = p("c.json");
    perf_ok(
        Some(&broker),
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "t",
            "--from",
            "earliest",
            "--duration",
            "2",
            "--quiet",
            "--json",
            &c_json,
        ],
    );
    let consumed = json(Path::new(&c_json));
    assert_eq!(
        measurement(&consumed, "consume")["records"]
            .as_u64()
            .unwrap(),
        produced
    );

    let b_json = p("b.json");
    let mut args = vec!["produce"];
    args.extend(&common);
    args.extend(["--json", b_json.as_str()]);
    perf_ok(Some(&broker), &args);

    let compared = perf_ok(
        None,
        &[
            "compare",
            &a_json,
            &b_json,
            "--max-ratio",
            "p99=100",
            "--min-throughput-ratio",
            "0.1",
        ],
    );
    assert!(
        compared.contains("p99.9 (ms)") && compared.contains("records/s"),
        "{compared}"
    );
    let strict = perf(&["compare", &a_json, &b_json, "--max-ratio", "p50=0.001"]);
    assert_eq!(strict.status.code(), Some(1), "{strict:?}");
    assert!(String::from_utf8_lossy(&strict.stdout).contains("EXCEEDED"));
    let from_hlog = perf_ok(None, &["compare", &a_hlog, &b_json]);
    assert!(from_hlog.contains("p50 (ms)"), "{from_hlog}");

    for out in ["plot.png", "plot.svg"] {
        let path = p(out);
        perf_ok(
            None,
            &["plot", &a_json, &b_json, &a_hlog, &a_hgrm, "-o", &path],
        );
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{out} is too small"
        );
    }
}

#[test]
fn a_paused_broker_shows_in_the_tail_of_a_fixed_rate_run() {
    // Proves coordinated omission is corrected: the broker is frozen with SIGSTOP for 200 ms in
    // the middle of a 1000 records/s run. Batches due during the pause are measured from when
    // they were due, so many records see 100+ ms and the max is close to the pause, instead
    // of the stall hiding behind a sender that waited.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let out_json = dir.path().join("stall.json");
    let child = Command::new(env!("CARGO_BIN_EXE_sluice-perf"))
        .args([
            "produce",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "stall",
            "--partitions",
            "2",
            "--record-size",
            "100",
            "--acks",
            "1",
            "--rate",
            "1000",
            "--warmup",
            "0.5",
            "--duration",
            "3.5",
            "--quiet",
            "--json",
        ])
        .arg(&out_json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let pid = broker.pid();
    // SAFETY: kill(2) on the PID of the broker the guard started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = json(&out_json);
    let latency = &measurement(&result, "produce")["latency"];
    let max_us = latency["max_us"].as_u64().unwrap();
    let p999_us = latency["p999_us"].as_u64().unwrap();
    let p99_us = latency["p99_us"].as_u64().unwrap();
    assert!(
        max_us >= 150_000,
        "max {max_us} us does not show a 200 ms stall: {latency}"
    );
    assert!(
        p999_us >= 100_000,
        "p99.9 {p999_us} us hides the stall: {latency}"
    );
    assert!(
        p99_us >= 20_000,
        "p99 {p99_us} us hides the stall: {latency}"
    );
}

#[test]
fn e2e_delivers_every_idempotent_compressed_record_it_produced() {
    // Proves `e2e` end to end: an idempotent producer with lz4 batches and a consumer started
    // at the log end run together; every record acknowledged in the measured window is also
    // delivered to the consumer (end-to-end latency recorded for each), with no errors.
    let broker = Broker::start_single_core();
    let dir = tempfile::tempdir().unwrap();
    let out_json = dir.path().join("e2e.json");
    perf_ok(
        Some(&broker),
        &[
            "e2e",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "e2e",
            "--partitions",
            "3",
            "--record-size",
            "300",
            "--key-size",
            "8",
            "--acks",
            "all",
            "--idempotent",
            "--compression",
            "lz4",
            "--rate",
            "1500",
            "--warmup",
            "0.5",
            "--duration",
            "2",
            "--quiet",
            "--json",
            out_json.to_str().unwrap(),
        ],
    );
    let result = json(&out_json);
    assert_eq!(result["errors"], 0, "{result}");
    let produced = measurement(&result, "produce")["records"].as_u64().unwrap();
    let delivered = measurement(&result, "e2e");
    assert!(produced >= 2000, "{produced}");
    assert_eq!(delivered["records"].as_u64().unwrap(), produced);
    assert_eq!(delivered["latency"]["count"].as_u64().unwrap(), produced);
}
