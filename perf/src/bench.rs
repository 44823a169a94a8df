//! `rebalance` and `commit`: consumer group benchmarks.
//!
//! `rebalance` starts N members of one group on a topic filled beforehand, waits until all of
//! them consume, then repeatedly makes one member leave (LeaveGroup) and measures the time
//! from its LeaveGroup to the moment every remaining member has its new assignment and has
//! fetched a record under it (`leave`); the member then rejoins as a new member and the time
//! until all N consume again is measured too (`join`). Members learn of a rebalance from
//! their heartbeats, as Kafka consumers do, so the heartbeat interval bounds the result.
//!
//! `commit` runs one joined member in each of G groups, each committing K partitions per
//! OffsetCommit in a closed loop (one request in flight per member), and reports request
//! latency and requests per second.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_net::client::admin::{self, FetchLimits, error_name};
use sluice_net::client::batch::{self, Compression};
use sluice_net::client::group::GroupMember;
use sluice_net::client::{Connection, ConnectionConfig};

use crate::group::{MemberConfig, MemberControl, MemberStatus};
use crate::histogram::{self, new_histogram, record};
use crate::load::{Accounting, Clock, Metric, StartAt, Tally};
use crate::results::{Machine, Measurement, RunResult};
use crate::run::{
    MemberArgs, OutputArgs, Topology, discover, group_start_offsets, on_executor, seconds,
    summary_table,
};

/// Arguments of `rebalance`.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct RebalanceArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "sluice-perf-rebalance")]
    pub topic: String,
    /// Partitions of the topic (created if missing).
    #[arg(long, default_value_t = 60)]
    pub partitions: i32,
    /// Group id; default: a fresh one per run.
    #[arg(long)]
    pub group: Option<String>,
    /// Leave/rejoin rounds measured.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Longest wait for the group to settle before the run fails, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub settle_timeout: f64,
    #[command(flatten)]
    pub members: MemberArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `commit`.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct CommitArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "sluice-perf-commit")]
    pub topic: String,
    /// Partitions committed per OffsetCommit (the topic is created with this many).
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Groups, one committing member each (one request in flight per member).
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Group id prefix; default: a fresh one per run.
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn fresh_group(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Batches of ten 100-byte records appended to every partition before a rebalance run, so
/// members find a record after their committed offset in each generation.
const FILL_RECORDS_PER_BATCH: usize = 10;

async fn fill(topology: &Topology, topic: &str, batches_per_partition: usize) -> Result<()> {
    let records: Vec<_> = (0..FILL_RECORDS_PER_BATCH)
        .map(|i| batch::plain_record(i as i64, 0, None, Some(Bytes::from(vec![b'r'; 100]))))
        .collect();
    let bytes = batch::encode_batch(&records, Compression::None)?.freeze();
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (partition, addr) in &topology.leaders {
        by_leader.entry(addr.as_str()).or_default().push(*partition);
    }
    for (addr, partitions) in by_leader {
        let mut connection = Connection::connect(addr, ConnectionConfig::default())
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        for _ in 0..batches_per_partition {
            let data = partitions.iter().map(|p| (*p, bytes.clone())).collect();
            let response = connection
                .call(&admin::produce_request(topic, data, 1, 30_000))
                .await
                .context("Produce")?;
            let failed = response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.error_code != 0);
            if let Some(p) = failed {
                bail!(
                    "filling partition {}: {}",
                    p.index,
                    error_name(p.error_code)
                );
            }
        }
    }
    Ok(())
}

/// Waits until `done` holds for the members' statuses; returns when it first held.
async fn wait_for(
    controls: &[Rc<MemberControl>],
    timeout: Duration,
    what: &str,
    done: impl Fn(&[MemberStatus]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let statuses: Vec<MemberStatus> =
            controls.iter().map(|c| c.status.borrow().clone()).collect();
        if done(&statuses) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let summary: Vec<String> = statuses
                .iter()
                .map(|s| {
                    format!(
                        "gen {} parts {} consuming {}",
                        s.generation,
                        s.partitions,
                        s.consuming_at.is_some()
                    )
                })
                .collect();
            bail!(
                "{what}: not settled after {timeout:?}: [{}]",
                summary.join("; ")
            );
        }
        glommio::timer::Timer::new(Duration::from_millis(1)).await;
    }
}

/// Every member is in generation `above` or newer, all in the same one, and consuming.
fn all_consuming_after(statuses: &[MemberStatus], above: i32) -> bool {
    let Some(first) = statuses.first() else {
        return true;
    };
    statuses.iter().all(|s| {
        s.generation > above && s.generation == first.generation && s.consuming_at.is_some()
    })
}

fn latest_consuming(statuses: &[MemberStatus]) -> Option<Instant> {
    statuses.iter().filter_map(|s| s.consuming_at).max()
}

/// What one rebalance run measured.
struct RebalanceOutcome {
    leave: Histogram<u64>,
    join: Histogram<u64>,
    rounds: Vec<(u64, u64)>,
}

/// The benchmark's members: per slot, the status of its current member and its task.
struct Members {
    config: Rc<MemberConfig>,
    tally: Rc<RefCell<Tally>>,
    clock: Clock,
    controls: Vec<Rc<MemberControl>>,
    tasks: Vec<Option<glommio::Task<Result<()>>>>,
}

impl Members {
    /// Starts `count` members.
    fn start(config: MemberConfig, count: usize, clock: Clock) -> Self {
        let mut members = Members {
            config: Rc::new(config),
            tally: Rc::new(RefCell::new(Tally::new(Metric::Consume))),
            clock,
            controls: (0..count).map(|_| Rc::default()).collect(),
            tasks: Vec::new(),
        };
        members.tasks = members
            .controls
            .iter()
            .map(|c| Some(members.spawn(c)))
            .collect();
        members
    }

    fn spawn(&self, control: &Rc<MemberControl>) -> glommio::Task<Result<()>> {
        glommio::spawn_local(crate::group::run_member(
            self.config.clone(),
            control.clone(),
            self.tally.clone(),
            self.clock,
        ))
    }

    /// Starts a new member in `slot`, whose member has left.
    fn restart(&mut self, slot: usize) {
        self.controls[slot] = Rc::default();
        self.tasks[slot] = Some(self.spawn(&self.controls[slot]));
    }

    fn statuses(controls: &[Rc<MemberControl>]) -> Vec<MemberStatus> {
        controls.iter().map(|c| c.status.borrow().clone()).collect()
    }

    /// Stops every member and waits for all; the first failure, if any.
    async fn stop(self) -> Option<anyhow::Error> {
        for control in &self.controls {
            control.stop();
        }
        let mut failure = None;
        for task in self.tasks.into_iter().flatten() {
            if let Err(e) = task.await {
                failure.get_or_insert(e);
            }
        }
        failure
    }
}

/// Sleeps a random part of a heartbeat interval. Members heartbeat on their own timers and
/// restart them when a rebalance completes, so their phases line up; without the pause a
/// leave or join would always land at the same point of the heartbeat cycle.
async fn random_pause(heartbeat_ms: u64) {
    let phase = rand::random_range(0..heartbeat_ms.max(1));
    glommio::timer::Timer::new(Duration::from_millis(phase)).await;
}

async fn rebalance_rounds(
    config: MemberConfig,
    members: usize,
    repeat: usize,
    settle: Duration,
    clock: Clock,
) -> Result<RebalanceOutcome> {
    let heartbeat_ms = config.settings.heartbeat_interval.as_millis() as u64;
    let mut group = Members::start(config, members, clock);
    let outcome = async {
        wait_for(&group.controls, settle, "initial join", |s| {
            all_consuming_after(s, 0)
        })
        .await?;
        let mut leave = new_histogram();
        let mut join = new_histogram();
        let mut rounds = Vec::new();
        for round in 0..repeat {
            let victim = round % members;
            random_pause(heartbeat_ms).await;
            let (leave_us, generation) = leave_round(&mut group, victim, settle).await?;
            record(&mut leave, leave_us, 1);
            random_pause(heartbeat_ms).await;
            let join_us = join_round(&mut group, victim, settle, generation).await?;
            record(&mut join, join_us, 1);
            rounds.push((leave_us, join_us));
            println!(
                "round {:>3}: leave -> {} members consuming {:>9.1} ms, join -> {} consuming {:>9.1} ms",
                round + 1,
                members - 1,
                leave_us as f64 / 1000.0,
                members,
                join_us as f64 / 1000.0
            );
        }
        Ok::<_, anyhow::Error>(RebalanceOutcome {
            leave,
            join,
            rounds,
        })
    }
    .await;
    let failure = group.stop().await;
    let outcome = outcome?;
    if let Some(e) = failure {
        return Err(e.context("a member failed"));
    }
    Ok(outcome)
}

/// The member in slot `victim` leaves; returns how long until the others all consume
/// again (µs) and the generation they settled in.
async fn leave_round(group: &mut Members, victim: usize, settle: Duration) -> Result<(u64, i32)> {
    let generation = group.controls[victim].status.borrow().generation;
    group.controls[victim].stop();
    let task = group.tasks[victim]
        .take()
        .expect("every slot runs a member");
    let others: Vec<Rc<MemberControl>> = group
        .controls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, c)| c.clone())
        .collect();
    task.await.context("the leaving member")?;
    let left = group.controls[victim]
        .status
        .borrow()
        .leaving_at
        .context("the leaving member did not leave")?;
    wait_for(&others, settle, "after a leave", |s| {
        all_consuming_after(s, generation)
    })
    .await?;
    let statuses = Members::statuses(&others);
    let settled = latest_consuming(&statuses).unwrap_or(left);
    let leave_us = settled.saturating_duration_since(left).as_micros() as u64;
    let generation = statuses.first().map_or(generation, |s| s.generation);
    Ok((leave_us, generation))
}

/// A new member joins in slot `victim`; returns how long until every member consumes in
/// a generation after `generation` (µs).
async fn join_round(
    group: &mut Members,
    victim: usize,
    settle: Duration,
    generation: i32,
) -> Result<u64> {
    let rejoined = Instant::now();
    group.restart(victim);
    wait_for(&group.controls, settle, "after a join", |s| {
        all_consuming_after(s, generation)
    })
    .await?;
    let statuses = Members::statuses(&group.controls);
    let settled = latest_consuming(&statuses).unwrap_or(rejoined);
    Ok(settled.saturating_duration_since(rejoined).as_micros() as u64)
}

fn write_outputs(
    command: &str,
    output: &OutputArgs,
    parameters: serde_json::Value,
    started: SystemTime,
    topology: &Topology,
    measurements: Vec<Measurement>,
    errors: u64,
) -> Result<()> {
    if let Some(path) = &output.hgrm {
        let first = measurements
            .first()
            .context("nothing was measured")?
            .histogram()?;
        let mut file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        histogram::write_hgrm(&first, &mut file)?;
    }
    if let Some(path) = &output.hlog {
        let mut hlog =
            histogram::HlogWriter::create(path, started, &format!("sluice-perf {command}"))?;
        for m in &measurements {
            let h = m.histogram()?;
            hlog.write(
                &h,
                Duration::ZERO,
                Duration::from_secs_f64(m.duration_s),
                &m.name,
            )?;
        }
        hlog.finish()?;
    }
    if let Some(path) = &output.json {
        RunResult {
            format_version: crate::results::FORMAT_VERSION,
            tool: format!("sluice-perf {}", env!("CARGO_PKG_VERSION")),
            command: command.to_string(),
            commit: std::env::var("SLUICE_PERF_COMMIT").ok(),
            started_unix_ms: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            machine: Machine::detect(),
            broker_api_versions: topology.api_versions.clone(),
            parameters,
            measurements,
            errors,
        }
        .write(path)?;
    }
    Ok(())
}

/// `rebalance`.
pub fn rebalance(args: RebalanceArgs) -> Result<ExitCode> {
    let members = args.members.members;
    if members < 2 {
        bail!("--members must be at least 2 (one leaves, the others rebalance)");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let settle = seconds(args.settle_timeout, "settle-timeout")?;
    let topology = discover(&args.bootstrap, &args.topic, Some((args.partitions, 1)))?;
    // Each generation takes at most one batch per partition from each member's partitions:
    // the initial one plus a leave and a join per round, with room to spare.
    let batches = 2 * args.repeat + 8;
    let start_offsets = on_executor({
        let leaders = topology.leaders.clone();
        let topic = args.topic.clone();
        let topology_leaders = Topology {
            leaders: leaders.clone(),
            api_versions: Vec::new(),
        };
        async move {
            let offsets = group_start_offsets(&leaders, &topic, StartAt::Latest).await?;
            fill(&topology_leaders, &topic, batches).await?;
            Ok::<_, anyhow::Error>(offsets)
        }
    })??;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| fresh_group("sluice-perf-rebalance"));
    let started = SystemTime::now();
    let clock = Clock {
        start: Instant::now(),
        start_wall: started,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(24 * 3600),
    };
    let config = MemberConfig {
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        settings: args.members.settings(&group, &args.topic),
        leaders: topology.leaders.iter().cloned().collect(),
        start_offsets,
        // One batch per partition per fetch: members must not drain the filled topic.
        fetch: FetchLimits {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1024 * 1024,
            partition_max_bytes: 1500,
        },
        accounting: Accounting {
            end_to_end: false,
            count_by_send_time: false,
            uncompressed_max: 1 << 20,
        },
        commit_interval: None,
        probe: true,
        end: clock.end(),
    };
    println!(
        "rebalance: {members} members of {group}, {} partitions, heartbeat {} ms, {} rounds",
        args.partitions, args.members.heartbeat_ms, args.repeat
    );
    let repeat = args.repeat;
    let outcome = on_executor(rebalance_rounds(config, members, repeat, settle, clock))??;
    let elapsed = started.elapsed().unwrap_or_default();
    let measurements = vec![
        Measurement::new("leave", &outcome.leave, repeat as u64, 0, elapsed)?,
        Measurement::new("join", &outcome.join, repeat as u64, 0, elapsed)?,
    ];
    print!("{}", rebalance_table(&measurements));
    let mut parameters = serde_json::to_value(&args)?;
    parameters["rounds_us"] = serde_json::to_value(&outcome.rounds)?;
    write_outputs(
        "rebalance",
        &args.output,
        parameters,
        started,
        &topology,
        measurements,
        0,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn rebalance_table(measurements: &[Measurement]) -> String {
    let mut out = format!(
        "{:<7} {:>7} {:>10} {:>10} {:>10}\n",
        "event", "rounds", "p50 ms", "mean ms", "max ms"
    );
    for m in measurements {
        let h = m.histogram().unwrap_or_else(|_| new_histogram());
        out.push_str(&format!(
            "{:<7} {:>7} {:>10.1} {:>10.1} {:>10.1}\n",
            m.name,
            m.records,
            m.latency.p50_us as f64 / 1000.0,
            h.mean() / 1000.0,
            m.latency.max_us as f64 / 1000.0
        ));
    }
    out
}

/// `commit`.
pub fn commit(args: CommitArgs) -> Result<ExitCode> {
    if args.partitions < 1 || args.groups < 1 {
        bail!("--partitions and --groups must be at least 1");
    }
    let warmup = seconds(args.warmup, "warmup")?;
    let duration = seconds(args.duration, "duration")?;
    let topology = discover(&args.bootstrap, &args.topic, Some((args.partitions, 1)))?;
    let prefix = args
        .group
        .clone()
        .unwrap_or_else(|| fresh_group("sluice-perf-commit"));
    let started = SystemTime::now();
    let args_in = args.clone();
    let outcome = on_executor(async move {
        let ready = Rc::new(glommio::sync::Semaphore::new(0));
        let go = Rc::new(glommio::sync::Semaphore::new(0));
        // The clock starts once every member joined (joins of empty groups wait out the
        // coordinator's initial rebalance delay); members wait for it.
        let provisional = Clock {
            start: Instant::now(),
            start_wall: SystemTime::now(),
            warmup,
            duration,
        };
        let gate = Rc::new(RefCell::new(provisional));
        let mut tasks = Vec::new();
        for g in 0..args_in.groups {
            let bootstrap = args_in.bootstrap.clone();
            let topic = args_in.topic.clone();
            let group = format!("{prefix}-{g}");
            let ready = ready.clone();
            let go = go.clone();
            let gate = gate.clone();
            let partitions = args_in.partitions;
            tasks.push(glommio::spawn_local(async move {
                commit_member(bootstrap, group, topic, partitions, gate, ready, go).await
            }));
        }
        match glommio::future::timeout(
            Duration::from_secs(120),
            ready.acquire(args_in.groups as u64),
        )
        .await
        {
            Ok(Ok(())) => {}
            _ => bail!("the committing members did not all join within 120 s"),
        }
        let clock = Clock {
            start: Instant::now(),
            start_wall: SystemTime::now(),
            warmup,
            duration,
        };
        *gate.borrow_mut() = clock;
        go.signal(args_in.groups as u64);
        let mut histogram = new_histogram();
        let mut requests = 0;
        let mut errors = 0;
        for task in tasks {
            let (h, r, e) = task.await?;
            histogram.add(&h).context("merging histograms")?;
            requests += r;
            errors += e;
        }
        Ok::<_, anyhow::Error>((histogram, requests, errors))
    })??;
    let (histogram, requests, errors) = outcome;
    let measurement = Measurement::new("commit", &histogram, requests, 0, duration)?;
    println!(
        "commit: {} groups, {} partitions per OffsetCommit, {:.0} commits/s, {:.0} partition offsets/s",
        args.groups,
        args.partitions,
        measurement.records_per_s,
        measurement.records_per_s * f64::from(args.partitions)
    );
    print!("{}", summary_table(std::slice::from_ref(&measurement)));
    if errors > 0 {
        println!("errors: {errors} refused commits");
    }
    let parameters = serde_json::to_value(&args)?;
    write_outputs(
        "commit",
        &args.output,
        parameters,
        started,
        &topology,
        vec![measurement],
        errors,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A committing member whose clock is set (in `gate`) once every member joined.
async fn commit_member(
    bootstrap: String,
    group: String,
    topic: String,
    partitions: i32,
    gate: Rc<RefCell<Clock>>,
    ready: Rc<glommio::sync::Semaphore>,
    go: Rc<glommio::sync::Semaphore>,
) -> Result<(Histogram<u64>, u64, u64)> {
    let mut settings = sluice_net::client::group::GroupSettings::new(&group, &[&topic]);
    settings.client.client_id = "sluice-perf-commit".into();
    let member = GroupMember::connect(&bootstrap, settings).await?;
    member.join().await?;
    ready.signal(1);
    // The shared clock is set once every member joined.
    go.acquire(1).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = *gate.borrow();
    let mut histogram = new_histogram();
    let mut requests = 0u64;
    let mut errors = 0u64;
    let mut offset = 0i64;
    let end = clock.end();
    while Instant::now() < end {
        offset += 1;
        let offsets: Vec<(&str, i32, i64)> = (0..partitions)
            .map(|p| (topic.as_str(), p, offset))
            .collect();
        let sent = Instant::now();
        let result = member.commit(&offsets).await;
        let done = Instant::now();
        if !clock.measured(sent) {
            continue;
        }
        match result {
            Ok(()) => {
                record(
                    &mut histogram,
                    done.saturating_duration_since(sent).as_micros() as u64,
                    1,
                );
                requests += 1;
            }
            Err(e) if e.code().is_some() => errors += 1,
            Err(e) => return Err(e.into()),
        }
    }
    member.leave().await?;
    Ok((histogram, requests, errors))
}
