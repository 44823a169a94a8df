//! Runs the replication simulator over many seeds with the real replica code, and proves
//! the simulator catches a planted bug. `SIM_SEED=<seed>` runs that one seed only.

use std::time::Instant;

use sluice_replication::sim::{SimConfig, run_seed, seed_from_env};

const SEEDS: u64 = 200;

#[test]
fn two_hundred_seeds_keep_every_invariant() {
    // Proves the invariants in sim/invariants.rs hold for 200 seeds of drops, duplicates,
    // delays, partitions, crashes and slow fsyncs, and that the runs did real work.
    let config = SimConfig::default();
    let seeds: Vec<u64> = match seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..SEEDS).collect(),
    };
    let started = Instant::now();
    let mut acked = 0;
    let mut crashes = 0;
    let mut epochs = 0;
    let mut truncations = 0;
    for seed in &seeds {
        match run_seed(*seed, &config) {
            Ok(report) => {
                acked += report.acked_batches;
                crashes += report.crashes;
                epochs += i64::from(report.leader_epochs);
                truncations += report.truncations;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    eprintln!(
        "{} seeds in {:.1} s: {acked} batches acknowledged, {crashes} crashes, {epochs} leader epochs, {truncations} divergent tails cut",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked > 10 * seeds.len() as u64,
        "the runs acknowledged almost nothing"
    );
}

#[test]
fn other_cluster_sizes_keep_every_invariant() {
    // Proves the same invariants with one broker (the high watermark is the leader's
    // durable end), two, and five, 50 seeds each.
    for brokers in [1, 2, 5] {
        let mut config = SimConfig {
            brokers,
            ..SimConfig::default()
        };
        config.replica.min_insync_replicas =
            config.replica.min_insync_replicas.min(brokers as usize);
        for seed in 0..50 {
            if let Err(failure) = run_seed(seed, &config) {
                panic!("{brokers} brokers: {failure}");
            }
        }
    }
}

#[test]
fn planted_bug_is_found() {
    // Proves the simulator is not vacuous: with the high watermark built from log end
    // offsets instead of durable offsets (`hw_on_log_end`), a crash loses acknowledged
    // records, and some seed out of 200 must report it.
    let mut config = SimConfig::default();
    config.replica.hw_on_log_end = true;
    let failure = (0..SEEDS).find_map(|seed| run_seed(seed, &config).err());
    let failure = failure.expect("no seed found the planted bug");
    eprintln!("{failure}");
    assert!(
        failure.violation.contains("acknowledged"),
        "found something else: {failure}"
    );
}
