//! kcat `-G` (librdkafka's balanced consumer) against the real 2-shard binary: a consumer
//! group joins through FindCoordinator/JoinGroup/SyncGroup, reads every record, commits, and
//! a restarted consumer of the same group resumes exactly after the committed offset while a
//! second group independently reads everything from the beginning.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Broker;

fn produce(broker: &Broker, topic: &str, from: usize, to: usize) {
    let mut child = Command::new(common::kcat())
        .args([
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            topic,
            "-X",
            "acks=all",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = child.stdin.as_mut().unwrap();
        for i in from..to {
            writeln!(stdin, "v-{i}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Consumes `count` records as a member of `group`, then exits (committing on close).
fn consume_group(broker: &Broker, group: &str, topic: &str, count: usize) -> Vec<String> {
    let out = Command::new("timeout")
        .arg("60")
        .arg(common::kcat())
        .args(["-b", &broker.bootstrap(), "-G", group, topic])
        .args(["-c", &count.to_string(), "-f", "%s\n"])
        .args([
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "session.timeout.ms=6000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kcat -G {group}: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn values(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("v-{i}")).collect()
}

#[test]
fn kcat_group_consumes_commits_and_resumes() {
    // Proves group membership and committed offsets work end to end with librdkafka: the
    // second run of group "g1" sees only the records produced after the first run's
    // commit, and group "g2" is independent of "g1".
    let broker = Broker::start();
    produce(&broker, "gk", 0, 100);
    assert_eq!(consume_group(&broker, "g1", "gk", 100), values(0, 100));
    produce(&broker, "gk", 100, 150);
    assert_eq!(consume_group(&broker, "g1", "gk", 50), values(100, 150));
    assert_eq!(consume_group(&broker, "g2", "gk", 150), values(0, 150));
}
