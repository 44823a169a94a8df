//! `sluice-perf`: an open-loop load generator for Kafka-compatible brokers.
//!
//! `produce`, `consume` and `e2e` drive a broker through `sluice-net`'s client, one glommio
//! executor thread per producer (and one for consumers), and record latency in HdrHistograms
//! (see `load.rs` for coordinated-omission correction). `compare` and `plot` read the results
//! back. The main thread only sets up topics and aggregates interval reports.

mod bench;
mod compare;
mod group;
mod histogram;
mod load;
mod plot;
mod results;
mod run;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice-perf",
    version,
    about = "Load generator for Kafka-compatible brokers, with HdrHistogram latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce at a fixed rate (open loop) or at max rate and report acknowledgement latency.
    Produce(run::LoadArgs),
    /// Consume a topic and report throughput (and, with --e2e, end-to-end latency).
    Consume(run::ConsumeArgs),
    /// Produce and consume together; report produce and end-to-end latency.
    E2e(run::LoadArgs),
    /// Measure consumer group rebalances: a member leaves (and rejoins) while others consume.
    Rebalance(bench::RebalanceArgs),
    /// Measure OffsetCommit latency and throughput.
    Commit(bench::CommitArgs),
    /// Compare two results (percentiles and throughput) and fail past the limits.
    Compare(CompareArgs),
    /// Draw percentile-distribution curves of results as PNG or SVG.
    Plot(PlotArgs),
}

#[derive(clap::Args)]
struct CompareArgs {
    /// Baseline: a `--json` result or `.hlog` log; several runs comma-separated (medians).
    base: String,
    /// Candidate, same forms as BASE.
    new: String,
    /// Highest allowed new/base ratio per percentile, e.g. `p99=1.5,p99.9=2`.
    #[arg(long, default_value = "")]
    max_ratio: String,
    /// Lowest allowed new/base throughput ratio, e.g. 0.8.
    #[arg(long)]
    min_throughput_ratio: Option<f64>,
    /// Which measurement of a result to compare (`produce`, `e2e`, `consume`); default: first.
    #[arg(long)]
    measurement: Option<String>,
    /// Latencies below this many microseconds count as this value when taking ratios.
    #[arg(long, default_value_t = 0)]
    latency_floor_us: u64,
}

#[derive(clap::Args)]
struct PlotArgs {
    /// Results to draw (`--json` results, `.hlog` logs or `.hgrm` files), one line each.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output image; `.png` or `.svg`.
    #[arg(short, long)]
    output: PathBuf,
    /// Which measurement of each result to draw; default: first.
    #[arg(long)]
    measurement: Option<String>,
    #[arg(long, default_value = "Latency by percentile")]
    title: String,
}

fn split_paths(list: &str) -> Vec<PathBuf> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn run_compare(args: CompareArgs) -> Result<ExitCode> {
    let limits = compare::Limits {
        max_ratio: compare::parse_max_ratio(&args.max_ratio)?,
        min_throughput_ratio: args.min_throughput_ratio,
        latency_floor_us: args.latency_floor_us,
    };
    let measurement = args.measurement.as_deref();
    let base = compare::Side::load(&split_paths(&args.base), measurement)?;
    let new = compare::Side::load(&split_paths(&args.new), measurement)?;
    let rows = compare::compare(&base, &new, &limits);
    print!("{}", compare::render(&rows, &base, &new));
    if rows.iter().any(|r| r.violated) {
        println!("regression: a limit was exceeded");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_plot(args: PlotArgs) -> Result<ExitCode> {
    let curves = args
        .inputs
        .iter()
        .map(|path| {
            if path.extension().is_some_and(|e| e == "hgrm") {
                let text = std::fs::read_to_string(path)?;
                let rows = histogram::parse_hgrm(&text)?;
                let label = path
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                return Ok(plot::Curve::from_hgrm(&label, &rows));
            }
            let loaded = results::load(path, args.measurement.as_deref())?;
            Ok(plot::Curve::from_histogram(
                &loaded.label,
                &loaded.histogram,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    plot::plot(&curves, &args.title, &args.output)?;
    println!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Produce(args) => run::load(args, run::Mode::Produce),
        Command::E2e(args) => run::load(args, run::Mode::EndToEnd),
        Command::Consume(args) => run::consume(args),
        Command::Rebalance(args) => bench::rebalance(args),
        Command::Commit(args) => bench::commit(args),
        Command::Compare(args) => run_compare(args),
        Command::Plot(args) => run_plot(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-perf: {e:#}");
            ExitCode::from(2)
        }
    }
}
