//! `sluice-sim`: runs the replication simulator over many seeds.
//!
//! `sluice-sim --seeds 100000 [--start 0] [--brokers 3] [--planted-bug]`; `SIM_SEED=<seed> sluice-sim`
//! replays one seed. Stops at the first failure, prints it with its seed and exits 1.

use std::process::ExitCode;
use std::time::Instant;

use sluice_replication::sim::{SimConfig, SimReport, run_seed, seed_from_env};

struct Args {
    start: u64,
    seeds: u64,
    brokers: i32,
    planted_bug: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        start: 0,
        seeds: 1_000,
        brokers: 3,
        planted_bug: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut number = |name: &str| {
            words
                .next()
                .and_then(|value| value.parse::<u64>().ok())
                .ok_or_else(|| format!("{name} takes a number"))
        };
        match word.as_str() {
            "--seeds" => args.seeds = number("--seeds")?,
            "--start" => args.start = number("--start")?,
            "--brokers" => {
                args.brokers = number("--brokers")?
                    .try_into()
                    .ok()
                    .filter(|brokers| (1..=9).contains(brokers))
                    .ok_or("--brokers takes 1 to 9")?;
            }
            "--planted-bug" => args.planted_bug = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; use --seeds N [--start S] [--brokers N] [--planted-bug]"
                ));
            }
        }
    }
    if let Some(seed) = seed_from_env() {
        args.start = seed;
        args.seeds = 1;
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut config = SimConfig {
        brokers: args.brokers,
        ..SimConfig::default()
    };
    config.replica.hw_on_log_end = args.planted_bug;
    // min.insync.replicas 2 unless there are fewer brokers.
    let brokers = usize::try_from(args.brokers).expect("checked 1 to 9");
    config.replica.min_insync_replicas = config.replica.min_insync_replicas.min(brokers);
    let started = Instant::now();
    let mut total = SimReport::default();
    for seed in args.start..args.start + args.seeds {
        match run_seed(seed, &config) {
            Ok(report) => {
                total.steps += report.steps;
                total.acked_batches += report.acked_batches;
                total.crashes += report.crashes;
                total.truncations += report.truncations;
                total.partitions += report.partitions;
                total.leader_epochs += report.leader_epochs;
            }
            Err(failure) => {
                eprintln!("{failure}");
                eprintln!(
                    "after {} seeds in {:.1} s",
                    seed - args.start,
                    started.elapsed().as_secs_f64()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} seeds ({}..{}) passed in {:.1} s: {} steps, {} batches acknowledged, {} crashes, \
         {} partitions, {} leader epochs, {} divergent tails cut",
        args.seeds,
        args.start,
        args.start + args.seeds,
        started.elapsed().as_secs_f64(),
        total.steps,
        total.acked_batches,
        total.crashes,
        total.partitions,
        total.leader_epochs,
        total.truncations,
    );
    ExitCode::SUCCESS
}
