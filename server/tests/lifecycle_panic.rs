//! The panic policy: a panic on any shard ends the whole broker at once with one ERROR
//! line and exit status 101, so a supervisor restarts it; no process is left with some
//! shards dead. The panic comes from the debug-build test hook `SLUICE_TEST_PANIC_SHARD`,
//! which panics that shard one second after it starts accepting connections.

mod common;

use std::time::Duration;

use common::BrokerOptions;

/// How long the broker may take from start to its exit after the panic.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts a 2-shard broker whose shard `shard` panics after start; returns its exit code
/// (None if it was still running after `EXIT_TIMEOUT` and had to be killed) and its log.
fn run_with_panicking_shard(shard: u16) -> (Option<i32>, String) {
    let exit = BrokerOptions::default()
        .env(&[("SLUICE_TEST_PANIC_SHARD", &shard.to_string())])
        .spawn_expecting_exit(EXIT_TIMEOUT);
    (exit.code(), exit.log)
}

// Proves a panic on shard 1 and on shard 0 each end the whole process within seconds with
// status 101 and exactly one ERROR line naming the panic and the shard's thread. Before
// the policy the other shard went on running (and with shard 0 dead, SIGTERM was ignored),
// so the broker was still alive at the deadline.
#[test]
fn a_panic_on_any_shard_ends_the_process() {
    for shard in [1u16, 0] {
        let (code, log) = run_with_panicking_shard(shard);
        assert!(
            log.contains("accepting connections"),
            "shard {shard}: broker never started:\n{log}"
        );
        assert_eq!(code, Some(101), "shard {shard}: exit code; log:\n{log}");
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "shard {shard}: ERROR lines:\n{log}");
        assert!(
            errors[0].contains("panic") && errors[0].contains("test panic"),
            "shard {shard}: {}",
            errors[0]
        );
        assert!(
            errors[0].contains(&format!("shard-{shard}")),
            "shard {shard}: thread not named: {}",
            errors[0]
        );
    }
}
