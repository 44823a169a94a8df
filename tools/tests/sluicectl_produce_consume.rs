//! `sluicectl produce` and `sluicectl consume` against a real broker.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Broker;

fn sluicectl(broker: &Broker, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluicectl"))
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluicectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn produced_lines_come_back_in_order_per_partition_with_keys() {
    // Proves stdin lines produced with every codec are stored and consumed back: keyed lines
    // land on the partition Kafka's partitioner picks and come back in order with their keys,
    // `--count` stops early, and a consumer of one partition sees only that partition.
    let broker = Broker::start_single_core();
    let (ok, _, err) = sluicectl(
        &broker,
        &["topic", "create", "lines", "--partitions", "3"],
        "",
    );
    assert!(ok, "{err}");
    let mut expected = Vec::new();
    for (round, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let input: String = (0..40)
            .map(|i| {
                let line = format!("k{}:{codec}-{round}-{i}", i % 7);
                expected.push(line.clone());
                line + "\n"
            })
            .collect();
        let (ok, _, err) = sluicectl(
            &broker,
            &[
                "produce",
                "lines",
                "-K",
                ":",
                "--compression",
                codec,
                "--batch-records",
                "16",
            ],
            &input,
        );
        assert!(ok, "{codec}: {err}\n{}", broker.log());
        assert!(err.contains("produced 40 records"), "{err}");
    }

    let (ok, out, err) = sluicectl(
        &broker,
        &["consume", "lines", "-K", ":", "--show-offsets"],
        "",
    );
    assert!(ok, "{err}");
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len(), "{out}");
    // Every key stays on one partition, and per partition the records keep production order.
    let mut by_partition: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    let mut key_partition: std::collections::BTreeMap<&str, &str> = Default::default();
    for line in &got {
        let (position, record) = line.split_once('\t').unwrap();
        let (partition, _offset) = position.split_once(':').unwrap();
        let key = record.split_once(':').unwrap().0;
        assert_eq!(
            *key_partition.entry(key).or_insert(partition),
            partition,
            "{key} moved"
        );
        by_partition.entry(partition).or_default().push(record);
    }
    for records in by_partition.values() {
        let order: Vec<usize> = records
            .iter()
            .map(|r| {
                expected
                    .iter()
                    .position(|e| e == r)
                    .expect("consumed a produced line")
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "out of order: {records:?}"
        );
    }
    let mut sorted_got: Vec<String> = got
        .iter()
        .map(|l| l.split_once('\t').unwrap().1.to_string())
        .collect();
    let mut sorted_expected = expected.clone();
    sorted_got.sort();
    sorted_expected.sort();
    assert_eq!(sorted_got, sorted_expected);

    let (ok, out, _) = sluicectl(&broker, &["consume", "lines", "--count", "5"], "");
    assert!(ok);
    assert_eq!(out.lines().count(), 5);

    let (ok, out, _) = sluicectl(
        &broker,
        &["consume", "lines", "-p", "1", "--show-offsets"],
        "",
    );
    assert!(ok);
    assert!(out.lines().all(|l| l.starts_with("1:")), "{out}");
    assert_eq!(
        out.lines().count(),
        by_partition.get("1").map_or(0, Vec::len)
    );
}
