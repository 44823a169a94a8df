//! `sluice`: the broker binary. Parses flags (each also a `SLUICE_*` variable), installs
//! the log subscriber (`RUST_LOG` filters, default info) and the panic policy (a panic on
//! any thread logs one ERROR line and ends the process with status 101), and runs the
//! shards until SIGINT or SIGTERM, then exits 0 after every log is closed cleanly. A
//! start-up failure is one ERROR line naming what failed, then status 1.

use sluice_server::config::BrokerArgs;
use sluice_server::lifecycle::{FATAL_EXIT_CODE, exit_now, install_panic_hook};
use tracing::error;
use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    install_panic_hook();
    let args =
        BrokerArgs::parse_recording_sources(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Err(e) = sluice_server::startup::run(args) {
        // `{:#}` joins the context chain: what was being done, the path, the OS error.
        error!("cannot start sluice: {e:#}");
        exit_now(FATAL_EXIT_CODE);
    }
}
