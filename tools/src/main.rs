//! `sluicectl`: admin over the Kafka protocol and offline segment inspection. This file only
//! parses the command line and dispatches; each command family lives in its own module.

mod admin;
mod group;
mod segment;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluicectl",
    version,
    about = "Administer a Sluice (or any Kafka-compatible) broker"
)]
struct Cli {
    #[command(flatten)]
    broker: admin::BrokerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe, delete topics and change their configs.
    #[command(subcommand)]
    Topic(admin::TopicCommand),
    /// List, describe and delete consumer groups; reset their committed offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Produce stdin lines as records (kcat -P style).
    Produce(admin::ProduceArgs),
    /// Print records (kcat -C style); exits at the end of the log unless --follow.
    Consume(admin::ConsumeArgs),
    /// Offline inspection of segment files: dump one, verify a partition directory.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Topic(command) => admin::topic(cli.broker, command),
        Command::Group(command) => group::run(cli.broker, command),
        Command::Produce(args) => admin::produce(cli.broker, args),
        Command::Consume(args) => admin::consume(cli.broker, args),
        Command::Segment(command) => segment::run(command),
    }
}
