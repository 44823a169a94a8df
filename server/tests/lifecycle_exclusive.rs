//! One broker per listen address and per data directory: a second `sluice` started on a
//! running broker's port (another data directory) or on its data directory (another port)
//! exits non-zero at once with "address in use" or the directory's name, while the first
//! keeps serving. Without the checks, SO_REUSEPORT let the second share the port.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, sluice_bin};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

/// How long a refused second broker may take to exit.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a second broker to its exit (killed after `REFUSE_TIMEOUT`), returning its output
/// and whether it exited by itself.
fn run_second(data_dir: &Path, listen: &str) -> (Output, bool) {
    let mut child = Command::new(sluice_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(listen)
        .arg("--cores")
        .arg("2")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start second sluice");
    let deadline = Instant::now() + REFUSE_TIMEOUT;
    let mut by_itself = true;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            by_itself = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("second output"), by_itself)
}

fn assert_serves(broker: &Broker) {
    broker.assert_running();
    let mut conn = broker.connect();
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
}

// Proves a second broker on a running broker's address (its own data directory) refuses
// to start: it exits non-zero by itself and says "address in use", and the first broker
// still serves. Before the check it bound the port beside the first (SO_REUSEPORT) and ran.
#[test]
fn second_broker_on_the_same_port_refuses_to_start() {
    let broker = Broker::start();
    let other = tempfile::tempdir().unwrap();
    let (out, by_itself) = run_second(&other.path().join("data"), &broker.bootstrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(by_itself, "second broker kept running:\n{stderr}");
    assert!(!out.status.success(), "second broker exited 0:\n{stderr}");
    assert!(
        stderr.contains("address in use"),
        "no 'address in use' in:\n{stderr}"
    );
    assert!(
        stderr.contains(&broker.bootstrap()),
        "address not named:\n{stderr}"
    );
    assert_serves(&broker);
}

// Proves a second broker on a running broker's data directory (another free port) refuses
// to start: it exits non-zero by itself, naming the directory, before it opens any log,
// and the first broker still serves. Before the lock both opened the same segment files.
#[test]
fn second_broker_on_the_same_data_dir_refuses_to_start() {
    let broker = Broker::start();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let (out, by_itself) = run_second(&broker.data_dir(), &listen);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(by_itself, "second broker kept running:\n{stderr}");
    assert!(!out.status.success(), "second broker exited 0:\n{stderr}");
    assert!(
        stderr.contains(&broker.data_dir().display().to_string()),
        "data directory not named:\n{stderr}"
    );
    assert!(stderr.contains("in use"), "no 'in use' in:\n{stderr}");
    assert!(
        !stderr.contains("opened partition"),
        "second broker opened logs:\n{stderr}"
    );
    assert_serves(&broker);
}
