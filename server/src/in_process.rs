//! A one-shard broker inside the current process, for the request-path fuzz target
//! (`fuzz/fuzz_targets/request_path.rs`), which cannot afford a process per input. It runs
//! the same `startup::run` as the `sluice` binary, on a thread of its own, listening on a
//! free port of 127.0.0.1, with its data in a directory the caller owns. Like the binary,
//! it makes the process ignore SIGPIPE. The broker lives
//! until the process exits: there is no stop, so a panic on its shard is seen by the
//! process's panic hook like any other (the fuzzer's hook aborts).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::config::BrokerArgs;
use crate::startup;

/// How long the broker may take to open its logs and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a one-shard broker on `data_dir` with the defaults of the `sluice` binary plus
/// `extra_args` (its flags, e.g. `--socket-request-max-bytes`), and returns the address it
/// listens on once it accepts connections.
pub fn start_one_shard(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<SocketAddr> {
    // A port that was free a moment ago; the broker binds it with SO_REUSEPORT.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut argv: Vec<String> = vec![
        "sluice".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen".into(),
        addr.to_string(),
        "--cores".into(),
        "1".into(),
    ];
    argv.extend(extra_args.iter().map(|a| a.to_string()));
    let args = BrokerArgs::try_parse_from(argv)?;
    // The shards write to sockets whose peer may be gone; the `sluice` binary ignores
    // SIGPIPE (Rust's runtime does it before main), a process that embeds the broker may
    // not, and the default action ends the process.
    // SAFETY: signal(2) with SIG_IGN installs no handler code; it only changes the
    // disposition of SIGPIPE for the whole process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let (exited_tx, exited_rx) = mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("sluice-in-process".into())
        .spawn(move || {
            let outcome = match startup::run(args) {
                Ok(()) => "stopped".to_string(),
                Err(e) => format!("{e:#}"),
            };
            let _ = exited_tx.send(outcome);
        })?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(outcome) = exited_rx.try_recv() {
            anyhow::bail!("in-process broker exited before listening on {addr}: {outcome}");
        }
        if TcpStream::connect(addr).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    anyhow::bail!("in-process broker did not listen on {addr} within {START_TIMEOUT:?}")
}
