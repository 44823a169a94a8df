//! Start-up errors name the path and the fix, and `--listen` takes a host name: a data
//! directory that is a regular file fails with the OS error and the path; a locked-memory
//! limit too low for io_uring fails saying what to raise and to what; `--listen
//! localhost:PORT` resolves to 127.0.0.1 and serves.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Conn, free_port, sluice_bin};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

/// How long a broker that must refuse to start may take to exit, or one that must start
/// may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn sluice(data_dir: &Path, listen: &str) -> Command {
    let mut cmd = Command::new(sluice_bin());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(listen)
        .arg("--cores")
        .arg("2")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for a broker that should fail to start; panics if it is still running after
/// `START_TIMEOUT`.
fn refused(mut child: Child) -> Output {
    let deadline = Instant::now() + START_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "broker did not refuse to start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "exited 0:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// Proves a data directory that is a regular file stops the start with status 1 and one
// ERROR line carrying both the path and the OS error (before, only "File exists (os error
// 17)" was printed, without the path).
#[test]
fn data_dir_that_is_a_file_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let out = refused(sluice(&file, &listen).spawn().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{stderr}"));
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("os error"), "{line}");
}

// Proves a locked-memory limit of 64 KiB (below the 512 KiB io_uring needs) stops the start
// with one ERROR line saying what to raise (ulimit -l) and to what: 61440 KiB for 2 shards
// of 30 MiB. Before, the broker printed glommio's `MemLockLimit(65536/524288)` from the
// failed shard with no hint.
#[test]
fn low_memlock_limit_says_what_to_raise() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -l 64 && exec \"$0\" \"$@\"")
        .arg(sluice_bin())
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--listen")
        .arg(&listen)
        .arg("--cores")
        .arg("2")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = refused(cmd.spawn().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("ulimit -l"), "{}", errors[0]);
    assert!(errors[0].contains("is 64 KiB"), "{}", errors[0]);
    assert!(errors[0].contains("61440"), "{}", errors[0]);
}

// Proves `--listen localhost:PORT` is accepted (it was refused as not an IP address), the
// broker becomes ready on 127.0.0.1:PORT and answers ApiVersions there, and SIGTERM stops
// it with status 0.
#[test]
fn listen_on_localhost_resolves_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = tmp.path().join("broker.log");
    let mut child = sluice(&tmp.path().join("data"), &format!("localhost:{port}"))
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(sluice_testkit::READY_LINE) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited with {status}:\n{log}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("not ready:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut conn = Conn::connect(([127, 0, 0, 1], port).into());
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    drop(conn);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the PID of the child this test started and has not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not stop it");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{status}\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}
