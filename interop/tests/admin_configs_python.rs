//! kafka-python's `describe_configs` of the broker resource against the real 2-shard
//! broker (`tests/python/describe_broker_configs.py`): the full list comes back, its
//! `static` filter, which goes by each config's source, picks out exactly the configs set
//! by flag, and its `modified` filter (dynamic sources only) finds none.
//!
//! kafka-python lives in a virtualenv made by `scripts/install-test-deps.sh`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Broker;

/// The virtualenv python with kafka-python, as `scripts/install-test-deps.sh` makes it.
fn python() -> PathBuf {
    let venv = std::env::var_os("SLUICE_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/sluice/py-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-deps.sh (kafka-python venv)",
        python.display()
    );
    python
}

/// The configs kafka-python reports for broker 0 under `filter`, by name.
fn describe(broker: &Broker, filter: &str) -> serde_json::Map<String, serde_json::Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/describe_broker_configs.py"
    );
    let out = Command::new(python())
        .args([script, &broker.bootstrap(), "0", filter])
        .output()
        .expect("run kafka-python");
    assert!(
        out.status.success(),
        "kafka-python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    match serde_json::from_slice(&out.stdout).expect("json") {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn kafka_python_describes_broker_configs() {
    // Proves kafka-python's describe_configs(BROKER "0") gets every broker config with
    // values and sources (before the change it got none), that its "static" filter
    // returns exactly the configs given by flag (here --num-partitions and the
    // --data-dir and --listen the harness passes; --cores has no Kafka name), and that
    // "modified" returns none, as nothing is set dynamically.
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    let all = describe(&broker, "all");
    assert!(all.len() >= 25, "{all:?}");
    let np = &all["num.partitions"];
    assert_eq!(np["value"], "3");
    assert_eq!(np["config_source"], "STATIC_BROKER_CONFIG");
    assert_eq!(np["read_only"], true);
    assert_eq!(all["log.retention.ms"]["config_source"], "DEFAULT_CONFIG");
    assert_eq!(all["log.retention.ms"]["value"], "604800000");

    let mut fixed: Vec<String> = describe(&broker, "static").keys().cloned().collect();
    fixed.sort();
    assert_eq!(fixed, vec!["listeners", "log.dirs", "num.partitions"]);
    assert!(
        describe(&broker, "modified").is_empty(),
        "nothing is set dynamically"
    );
}
