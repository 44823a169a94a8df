//! `sluice-perf`: an open-loop load generator for Kafka-compatible brokers.

fn main() {
    println!("sluice-perf {}", env!("CARGO_PKG_VERSION"));
}
