//! kafka-python's `describe_configs` of the broker resource against the real 2-shard
//! broker (`tests/python/describe_broker_configs.py`): the full list comes back, its
//! `static` filter, which goes by each config's source, picks out exactly the configs set
//! by flag, and its `modified` filter (dynamic sources only) finds none.
//!
//! kafka-python lives in a virtualenv made by `scripts/install-test-deps.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Broker;
use common::client::{python, python_script, run_bounded};

/// How long one describe_configs run may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The configs kafka-python reports for broker 0 under `filter`, by name.
fn describe(broker: &Broker, filter: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut command = Command::new(python());
    command
        .arg(python_script("describe_broker_configs.py"))
        .args([&broker.bootstrap(), "0", filter]);
    let ran = run_bounded(&mut command, b"", TIMEOUT);
    assert!(
        ran.status.is_some_and(|s| s.success()),
        "kafka-python failed or ran past {TIMEOUT:?}: {:?}\n{}\n{}",
        ran.status,
        ran.err,
        broker.log()
    );
    match serde_json::from_str(&ran.out).expect("json") {
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
