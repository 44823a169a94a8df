//! sluice-replication owns replica state: leader epochs, high watermark, truncation and
//! the consensus for cluster metadata. Peers are reached through a `Transport` and time
//! through a `Clock`, so the whole crate runs in a deterministic simulator.
