//! Start-up errors name the path and the fix, and `--listen` takes a host name: a data
//! directory that is a regular file fails with the OS error and the path; a locked-memory
//! limit too low for io_uring fails saying what to raise and to what; `--listen
//! localhost:PORT` resolves to 127.0.0.1 and serves.

mod common;

use std::time::Duration;

use common::{Broker, BrokerOptions};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use sluice_testkit::Exit;

/// How long a broker that must refuse to start may take to exit.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a broker that should fail to start; panics if it is still running after
/// `START_TIMEOUT` or exits 0.
fn refused(options: BrokerOptions) -> Exit {
    let out = options.spawn_expecting_exit(START_TIMEOUT);
    assert!(
        out.status.is_some(),
        "broker did not refuse to start:\n{}",
        out.log
    );
    assert!(!out.success(), "exited 0:\n{}", out.log);
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
    let out = refused(BrokerOptions::default().data_dir(&file));
    let stderr = &out.log;
    assert_eq!(out.code(), Some(1), "{stderr}");
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
    let out = refused(BrokerOptions::default().memlock_limit_kib(64));
    let stderr = &out.log;
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
    let mut broker = Broker::launch(BrokerOptions::default().host("localhost"));
    let mut conn = broker.connect();
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    drop(conn);
    let status = broker.stop();
    assert!(status.success(), "{status}\n{}", broker.log());
}
