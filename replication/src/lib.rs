//! sluice-replication owns partition replication: the replica state machine (leader and
//! follower), leader epochs, the ISR, the high watermark, truncation, the peer messages,
//! and a deterministic simulator that checks them.
//!
//! Everything here is sans-I/O: inputs are method calls carrying `now_ms`, outputs are
//! `Action`s the caller performs. No code here reads the clock, spawns tasks or draws
//! unseeded randomness, so the server and the simulator drive the same code.
//!
//! Where to start reading: `replica.rs` (the rules), then `message.rs` (what crosses the
//! network), `log.rs` (what the replica needs from a log; `ModelLog` implements it in
//! memory, the engine `Log` will through an adapter) and `sim/` (how it is tested; the
//! README says how to run `cargo test` and the long-run `sluice-sim` binary).
//!
//! Not here yet: the Raft controller (the simulator has a model of it), the engine
//! adapter, and the server's wiring of `Action`s to the network and the disk.

mod batch;
mod error;
mod log;
mod message;
mod model_log;
mod replica;
pub mod sim;

pub use batch::{Batch, BrokerId, EpochEnd};
pub use error::{AckError, AlterPartitionError, FetchError, LogFailed, ProduceError};
pub use log::{ReplicaLog, end_offset_for_epoch};
pub use message::{
    AlterPartitionRequest, AlterPartitionResponse, FetchData, FetchRequest, FetchResponse,
    PartitionEpoch, PartitionState,
};
pub use model_log::ModelLog;
pub use replica::{Acks, Action, OffsetRange, ProduceId, Replica, ReplicaConfig};
