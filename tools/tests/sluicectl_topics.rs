//! `sluicectl topic ...` against a real broker.

mod common;

use std::process::{Command, Output};

use common::Broker;

fn sluicectl(broker: &Broker, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluicectl"))
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(args)
        .output()
        .expect("run sluicectl")
}

fn ok(broker: &Broker, args: &[&str]) -> String {
    let out = sluicectl(broker, args);
    assert!(
        out.status.success(),
        "sluicectl {args:?} failed: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn topic_lifecycle_create_describe_alter_delete() {
    // Proves each topic subcommand does what it says on a real broker: a created topic is
    // listed and described with its partitions and config, alter-config changes the config,
    // creating it twice fails with TOPIC_ALREADY_EXISTS, and after delete it is gone.
    let broker = Broker::start_single_core();
    ok(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=123456",
        ],
    );
    assert!(
        ok(&broker, &["topic", "list"])
            .lines()
            .any(|l| l == "orders")
    );

    let described = ok(&broker, &["topic", "describe", "orders"]);
    assert!(
        described.contains("topic orders partitions 3"),
        "{described}"
    );
    assert_eq!(described.matches("  partition ").count(), 3, "{described}");
    assert!(
        described.contains("config retention.ms=123456"),
        "{described}"
    );

    ok(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=654321",
        ],
    );
    let described = ok(&broker, &["topic", "describe", "orders"]);
    assert!(
        described.contains("config retention.ms=654321"),
        "{described}"
    );

    let again = sluicectl(&broker, &["topic", "create", "orders"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("TopicAlreadyExists"),
        "{again:?}"
    );

    ok(&broker, &["topic", "delete", "orders"]);
    assert!(
        !ok(&broker, &["topic", "list"])
            .lines()
            .any(|l| l == "orders")
    );
    let missing = sluicectl(&broker, &["topic", "describe", "orders"]);
    assert!(!missing.status.success());
}
