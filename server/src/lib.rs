//! sluice-server: the broker. Start reading at `startup.rs` (loads metadata, starts one
//! pinned executor per core, supervises them; `shutdown.rs` stops them) and `shard.rs`
//! (what one shard owns). A Produce then reads top-down in five files:
//! `connection.rs` (framing, pipelining) → `handlers/produce.rs` (one module per Kafka
//! API under `handlers/`) → `mesh/` (every cross-core message in `mesh/mod.rs`, split
//! and joined by `mesh/scatter.rs`, served by `mesh/inbox.rs`) → `partition.rs` (the
//! owner side) → the engine. `controller.rs` is shard 0's writer of topic metadata and
//! producer ids. Owners return typed errors; `kafka_errors.rs` is the one place that
//! turns them into Kafka error codes. Topic metadata lives in `topic_table.rs` (in
//! memory, per shard) and `topic_store.rs` (on disk); consumer groups in `group/`.
//! `in_process.rs` starts a one-shard broker inside the calling process (fuzzing).

pub mod config;
pub mod connection;
pub mod connection_limits;
pub mod controller;
pub mod foreign_wake;
pub mod group;
pub mod handlers;
pub mod in_process;
pub mod kafka_errors;
pub mod lifecycle;
pub mod mesh;
pub mod partition;
pub mod shard;
pub mod shutdown;
pub mod stamp;
pub mod startup;
pub mod topic_store;
pub mod topic_table;
