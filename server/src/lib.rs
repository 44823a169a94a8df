//! sluice-server: the broker. Start reading at `shard.rs` (one pinned executor per core,
//! the cross-core `ShardRequest`s of `shard_request.rs`, shard 0's metadata duties), then
//! `connection.rs` (framing, pipelining) and `handlers/` (one module per Kafka API).
//! `in_process.rs` starts a one-shard broker inside the calling process (fuzzing).
//! Topic metadata lives in `topic_table.rs` (in memory, per shard) and `topic_store.rs`
//! (on disk). `kafka_errors.rs` maps engine and net errors to Kafka error codes.

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
pub mod startup;
pub mod topic_store;
pub mod topic_table;

/// The old name of `mesh`, kept while code outside it still says `shard_request`.
pub use mesh as shard_request;
