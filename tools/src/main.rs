//! `sluicectl`: admin over the Kafka protocol and offline segment inspection.

fn main() {
    println!("sluicectl {}", env!("CARGO_PKG_VERSION"));
}
