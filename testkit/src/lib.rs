//! sluice-testkit: the harness every crate's real-broker tests share (a dev-dependency only).
//! `broker.rs` starts the `sluice` binary of this build on a free 127.0.0.1 port with a
//! temporary data directory, waits until it listens, captures its log, and stops or kills
//! it by PID, or runs one that must stop by itself (a refused start, a panic) to its exit
//! (`BrokerOptions::spawn_expecting_exit`); `conn.rs` speaks raw Kafka requests to it
//! over a std `TcpStream`; `allocation.rs` measures the largest allocation of a decoder
//! call. Start reading at `Broker::start`.

mod allocation;
mod broker;
mod conn;

pub use allocation::{LargestAllocation, largest_allocation_during};
pub use broker::{
    Broker, BrokerOptions, Exit, READY_LINE, free_port, sluice_bin, wait_or_kill, workspace_binary,
};
pub use conn::Conn;
