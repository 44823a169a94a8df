//! `sluice`: the broker binary. Parses flags (each also a `SLUICE_*` variable), installs
//! the log subscriber (`RUST_LOG` filters, default info), and runs the shards until
//! SIGINT or SIGTERM, then exits 0 after every log is closed cleanly.

use sluice_server::config::BrokerArgs;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args =
        BrokerArgs::parse_recording_sources(std::env::args_os()).unwrap_or_else(|e| e.exit());
    sluice_server::shard::run(args)
}
