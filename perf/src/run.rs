//! Running `produce`, `consume` and `e2e`: argument parsing, topic setup over Metadata and
//! CreateTopics, spreading partitions over producer lanes by leader, starting one executor
//! thread per producer, and aggregating interval reports into the summary, `--hgrm`,
//! `--hlog` and `--json` outputs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;
use serde::Serialize;
use sluice_net::client::admin::{FetchLimits, NewTopic, error_name};
use sluice_net::client::batch::Compression;
use sluice_net::client::group::GroupSettings;
use sluice_net::client::{Connection, ConnectionConfig};

use crate::histogram::{self, HlogWriter, new_histogram};
use crate::load::{
    self, Acks, Clock, ConsumerLane, Metric, ProduceConfig, ProducerLane, Report, StartAt,
};
use crate::results::{ApiRange, Machine, Measurement, RunResult};
use crate::template::RecordShape;

/// Where results go.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct OutputArgs {
    /// Write the percentile distribution (HdrHistogram `.hgrm` text) of the first measurement.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per second and measurement).
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Write a JSON summary: machine, broker ApiVersions, parameters, measurements.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Never print the live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `produce` and `e2e`.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct LoadArgs {
    /// Broker to bootstrap from, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "sluice-perf")]
    pub topic: String,
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Value bytes per record (at least 8: the first 8 carry the send time).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Key bytes per record; 0 sends records without keys.
    #[arg(long, default_value_t = 0)]
    pub key_size: usize,
    /// Distinct keys, drawn uniformly.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Producer connections, each on its own executor thread.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Largest batch per partition, in bytes of records.
    #[arg(long, default_value_t = 16384)]
    pub batch_bytes: usize,
    /// How long a partition's batch fills at a fixed rate before it is sent.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// Send as an idempotent producer (InitProducerId, sequences; at most 5 in flight).
    #[arg(long)]
    pub idempotent: bool,
    /// Records per second over all producers (open loop); omit for max rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: u64,
    /// Measured seconds (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `consume`.
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct ConsumeArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "sluice-perf")]
    pub topic: String,
    /// Where to start: earliest or latest.
    #[arg(long, default_value = "earliest", value_parser = ["earliest", "latest"])]
    pub from: String,
    /// Also record end-to-end latency from the send time sluice-perf producers stamp.
    #[arg(long)]
    pub e2e: bool,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Consume as members of this consumer group (range assignment, committed offsets).
    #[arg(long)]
    pub group: Option<String>,
    #[command(flatten)]
    pub members: MemberArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How group members behave (`consume --group`, `rebalance`).
#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct MemberArgs {
    /// Group members in this process (with --group).
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// Commit positions this often (with --group); 0 commits only at rebalances and the end.
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Heartbeat interval of each member (Kafka's default is 3000).
    #[arg(long, default_value_t = 3000)]
    pub heartbeat_ms: u64,
    #[arg(long, default_value_t = 45_000)]
    pub session_timeout_ms: i32,
    #[arg(long, default_value_t = 60_000)]
    pub rebalance_timeout_ms: i32,
}

impl MemberArgs {
    pub fn settings(&self, group: &str, topic: &str) -> GroupSettings {
        let mut settings = GroupSettings::new(group, &[topic]);
        settings.heartbeat_interval = Duration::from_millis(self.heartbeat_ms.max(1));
        settings.session_timeout_ms = self.session_timeout_ms;
        settings.rebalance_timeout_ms = self.rebalance_timeout_ms;
        settings.client.client_id = "sluice-perf-member".into();
        settings
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    EndToEnd,
}

fn parse_compression(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("unknown compression {other:?}"),
    })
}

fn parse_acks(text: &str) -> Result<Acks> {
    Ok(match text {
        "0" => Acks::None,
        "1" => Acks::Leader,
        "all" | "-1" => Acks::All,
        other => bail!("unknown acks {other:?}"),
    })
}

/// What setup learned about the cluster.
pub(crate) struct Topology {
    /// `(partition, leader address)`.
    pub leaders: Vec<(i32, String)>,
    pub api_versions: Vec<ApiRange>,
}

/// Runs `body` on a fresh glommio executor on this thread.
pub(crate) fn on_executor<T>(body: impl std::future::Future<Output = T> + 'static) -> Result<T> {
    let executor = glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| anyhow!("starting an executor: {e}"))?;
    Ok(executor.run(body))
}

/// Finds (and with `create`, creates) the topic and each partition's leader.
pub(crate) fn discover(
    bootstrap: &str,
    topic: &str,
    create: Option<(i32, i16)>,
) -> Result<Topology> {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    on_executor(async move {
        let config = ConnectionConfig {
            client_id: "sluice-perf-setup".into(),
            ..ConnectionConfig::default()
        };
        let mut connection = Connection::connect(&bootstrap, config)
            .await
            .with_context(|| format!("connecting to {bootstrap}"))?;
        let api_versions = connection
            .api_versions()
            .api_keys
            .iter()
            .map(|k| ApiRange {
                api_key: k.api_key,
                name: ApiKey::try_from(k.api_key)
                    .map_or_else(|_| "unknown".into(), |a| format!("{a:?}")),
                min_version: k.min_version,
                max_version: k.max_version,
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut created = false;
        loop {
            let metadata = connection
                .metadata(Some(&[topic.as_str()]), false)
                .await
                .context("Metadata")?;
            let found = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
            let brokers: BTreeMap<i32, String> = metadata
                .brokers
                .iter()
                .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                .collect();
            match found {
                Some(t) if t.error_code == 0 && !t.partitions.is_empty() => {
                    let mut leaders = Vec::new();
                    let mut missing = false;
                    for p in &t.partitions {
                        match brokers.get(&p.leader_id.0) {
                            Some(addr) if p.error_code == 0 => {
                                leaders.push((p.partition_index, addr.clone()))
                            }
                            _ => missing = true,
                        }
                    }
                    if !missing {
                        leaders.sort();
                        return Ok(Topology {
                            leaders,
                            api_versions,
                        });
                    }
                }
                Some(t) if t.error_code == 3 && !created => {
                    let Some((partitions, replication_factor)) = create else {
                        bail!("topic {topic} does not exist");
                    };
                    let response = connection
                        .create_topics(
                            &[NewTopic {
                                name: topic.clone(),
                                partitions,
                                replication_factor,
                                configs: Vec::new(),
                            }],
                            false,
                        )
                        .await
                        .context("CreateTopics")?;
                    for result in &response.topics {
                        // 36: TOPIC_ALREADY_EXISTS, another producer won the race.
                        if result.error_code != 0 && result.error_code != 36 {
                            bail!("creating {topic}: {}", error_name(result.error_code));
                        }
                    }
                    created = true;
                }
                Some(t) if t.error_code != 0 && t.error_code != 3 && t.error_code != 5 => {
                    bail!("metadata for {topic}: {}", error_name(t.error_code));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("topic {topic} has no leader for every partition after 15 s");
            }
            glommio::timer::Timer::new(Duration::from_millis(100)).await;
        }
    })?
}

/// Spreads partitions over producers round-robin, then splits each producer's share by
/// leader; each non-empty share is a lane with a rate proportional to its partitions.
fn producer_lanes(
    leaders: &[(i32, String)],
    producers: usize,
    rate: Option<f64>,
) -> Vec<Vec<ProducerLane>> {
    let producers = producers.max(1);
    let total = leaders.len().max(1) as f64;
    (0..producers)
        .map(|i| {
            let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (n, (partition, addr)) in leaders.iter().enumerate() {
                if n % producers == i {
                    by_leader.entry(addr.as_str()).or_default().push(*partition);
                }
            }
            by_leader
                .into_iter()
                .enumerate()
                .map(|(j, (addr, partitions))| ProducerLane {
                    addr: addr.to_string(),
                    rate: rate.map(|r| r * partitions.len() as f64 / total),
                    partitions,
                    seed: (i * 1000 + j) as u64 + 1,
                })
                .collect()
        })
        .filter(|lanes: &Vec<ProducerLane>| !lanes.is_empty())
        .collect()
}

fn consumer_lanes(
    leaders: &[(i32, String)],
    topic: &str,
    start_at: StartAt,
    end_to_end: bool,
    count_by_send_time: bool,
) -> Vec<ConsumerLane> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (partition, addr) in leaders {
        by_leader.entry(addr.as_str()).or_default().push(*partition);
    }
    by_leader
        .into_iter()
        .map(|(addr, partitions)| ConsumerLane {
            addr: addr.to_string(),
            topic: topic.to_string(),
            partitions,
            start_at,
            end_to_end,
            count_by_send_time,
            fetch: FetchLimits::default(),
        })
        .collect()
}

/// Totals of one metric over the measured window.
struct Total {
    histogram: Histogram<u64>,
    records: u64,
    bytes: u64,
    errors: u64,
}

/// Collects reports until every lane is done; prints the live line; keeps hlog intervals.
fn aggregate(
    rx: mpsc::Receiver<Report>,
    lanes: usize,
    clock: Clock,
    hlog: Option<&mut HlogWriter>,
    progress: bool,
) -> Result<BTreeMap<Metric, Total>> {
    let mut totals: BTreeMap<Metric, Total> = BTreeMap::new();
    let mut intervals: BTreeMap<(u64, Metric), (Histogram<u64>, u64, u64)> = BTreeMap::new();
    let mut done = 0;
    let mut failures = Vec::new();
    let mut last_print = Instant::now();
    let warmup_seconds = clock.warmup.as_secs_f64();
    while done < lanes {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Report::Interval {
                metric,
                second,
                histogram,
                records,
                bytes,
                errors,
            }) => {
                let total = totals.entry(metric).or_insert_with(|| Total {
                    histogram: new_histogram(),
                    records: 0,
                    bytes: 0,
                    errors: 0,
                });
                total
                    .histogram
                    .add(&histogram)
                    .context("merging histograms")?;
                total.records += records;
                total.bytes += bytes;
                total.errors += errors;
                let slot = intervals
                    .entry((second, metric))
                    .or_insert_with(|| (new_histogram(), 0, 0));
                slot.0.add(&histogram).context("merging histograms")?;
                slot.1 += records;
                slot.2 += bytes;
            }
            Ok(Report::Done) => done += 1,
            Ok(Report::Failed(message)) => failures.push(message),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if progress && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let elapsed = clock.start.elapsed().as_secs_f64();
            let mut line = format!(
                "[{elapsed:5.1}s{}]",
                if elapsed < warmup_seconds {
                    " warmup"
                } else {
                    ""
                }
            );
            let second = clock.start.elapsed().as_secs().saturating_sub(1);
            for (metric, total) in &totals {
                let (rate, mbps) = intervals
                    .get(&(second, *metric))
                    .map_or((0.0, 0.0), |(_, r, b)| (*r as f64, *b as f64 / 1e6));
                let p99 = if total.histogram.is_empty() {
                    0.0
                } else {
                    total.histogram.value_at_quantile(0.99) as f64 / 1000.0
                };
                line.push_str(&format!(
                    "  {}: {rate:>9.0} rec/s {mbps:>7.1} MB/s p99 {p99:>8.3} ms",
                    metric.name()
                ));
            }
            eprint!("\r{line}\x1b[K");
        }
    }
    if progress {
        eprintln!();
    }
    if let Some(hlog) = hlog {
        for ((second, metric), (histogram, _, _)) in &intervals {
            hlog.write(
                histogram,
                Duration::from_secs(*second),
                Duration::from_secs(1),
                metric.name(),
            )?;
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(totals)
}

pub(crate) fn summary_table(measurements: &[Measurement]) -> String {
    let mut out = format!(
        "{:<9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "metric",
        "records",
        "rec/s",
        "MB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms"
    );
    for m in measurements {
        let l = &m.latency;
        let ms = |us: u64| us as f64 / 1000.0;
        out.push_str(&format!(
            "{:<9} {:>12} {:>9.0} {:>9.2} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
            m.name,
            m.records,
            m.records_per_s,
            m.mb_per_s,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.p9999_us),
            ms(l.max_us)
        ));
    }
    out
}

/// Writes the summary and every requested output file.
fn finish(
    command: &str,
    output: &OutputArgs,
    parameters: serde_json::Value,
    clock: Clock,
    topology: &Topology,
    totals: BTreeMap<Metric, Total>,
    order: &[Metric],
) -> Result<ExitCode> {
    let measured = clock.duration;
    let mut measurements = Vec::new();
    let mut errors = 0;
    for metric in order {
        let Some(total) = totals.get(metric) else {
            continue;
        };
        errors += total.errors;
        measurements.push(Measurement::new(
            metric.name(),
            &total.histogram,
            total.records,
            total.bytes,
            measured,
        )?);
    }
    print!("{}", summary_table(&measurements));
    if errors > 0 {
        println!("errors: {errors} failed requests");
    }
    if let Some(path) = &output.hgrm {
        let first = order
            .iter()
            .find_map(|m| totals.get(m))
            .context("nothing was measured")?;
        let mut file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        histogram::write_hgrm(&first.histogram, &mut file)?;
    }
    if let Some(path) = &output.json {
        let started_unix_ms = clock
            .start_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        RunResult {
            format_version: crate::results::FORMAT_VERSION,
            tool: format!("sluice-perf {}", env!("CARGO_PKG_VERSION")),
            command: command.to_string(),
            commit: std::env::var("SLUICE_PERF_COMMIT").ok(),
            started_unix_ms,
            machine: Machine::detect(),
            broker_api_versions: topology.api_versions.clone(),
            parameters,
            measurements,
            errors,
        }
        .write(path)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn seconds(value: f64, what: &str) -> Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        bail!("--{what} must be a non-negative number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

/// The producer settings `args` ask for, checked before anything touches the broker.
fn produce_config(args: &LoadArgs) -> Result<ProduceConfig> {
    if let Some(rate) = args.rate
        && (!rate.is_finite() || rate <= 0.0)
    {
        bail!("--rate must be positive (omit it for max rate)");
    }
    let config = ProduceConfig {
        topic: args.topic.clone(),
        shape: RecordShape {
            record_bytes: args.record_size,
            key_bytes: args.key_size,
            keys: args.keys,
        },
        acks: parse_acks(&args.acks)?,
        batch_bytes: args.batch_bytes,
        linger: Duration::from_millis(args.linger_ms),
        compression: parse_compression(&args.compression)?,
        idempotent: args.idempotent,
        max_in_flight: args.max_in_flight.max(1),
        request_timeout_ms: 30_000,
    };
    // Fail on bad record shapes before touching the broker.
    crate::template::BatchTemplate::build(config.shape, 1, config.compression, 0)?;
    Ok(config)
}

/// `produce` and `e2e`.
pub fn load(args: LoadArgs, mode: Mode) -> Result<ExitCode> {
    let config = produce_config(&args)?;
    let topology = discover(
        &args.bootstrap,
        &args.topic,
        Some((args.partitions, args.replication_factor)),
    )?;
    let groups = producer_lanes(&topology.leaders, args.producers, args.rate);
    let consumers = match mode {
        Mode::EndToEnd => {
            consumer_lanes(&topology.leaders, &args.topic, StartAt::Latest, true, true)
        }
        Mode::Produce => Vec::new(),
    };
    let lanes = groups.iter().map(Vec::len).sum::<usize>() + consumers.len();
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();

    // Consumers start first and report their start offsets; the clock starts afterwards so
    // the first produced batch is already after every consumer's position.
    let mut threads = Vec::new();
    let warmup = seconds(args.warmup, "warmup")?;
    let duration = seconds(args.duration, "duration")?;
    let consumer_count = consumers.len();
    let mut consumer_clock_txs = Vec::new();
    for lane in consumers {
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let (ctx, crx) = mpsc::channel::<Clock>();
        consumer_clock_txs.push(ctx);
        threads.push(std::thread::spawn(move || {
            let outcome = on_executor(load::run_consumer_waiting(lane, crx, tx.clone(), ready));
            finish_lane(&tx, outcome.and_then(|r| r));
        }));
    }
    drop(ready_tx);
    for _ in 0..consumer_count {
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("a consumer did not become ready"))?;
    }
    let clock = Clock {
        start: Instant::now() + Duration::from_millis(50),
        start_wall: SystemTime::now() + Duration::from_millis(50),
        warmup,
        duration,
    };
    for ctx in consumer_clock_txs {
        let _ = ctx.send(clock);
    }
    for lanes in groups {
        threads.push(spawn_producers(lanes, config.clone(), clock, tx.clone()));
    }
    drop(tx);
    let mut hlog = hlog_writer(
        &args.output,
        clock,
        &format!("sluice-perf {}", mode_name(mode)),
    )?;
    let progress = !args.output.quiet && std::io::stderr().is_terminal();
    let totals = aggregate(rx, lanes, clock, hlog.as_mut(), progress);
    for handle in threads {
        let _ = handle.join();
    }
    let totals = totals?;
    if let Some(hlog) = hlog {
        hlog.finish()?;
    }
    let order = [Metric::Produce, Metric::EndToEnd];
    let parameters = serde_json::to_value(&args)?;
    finish(
        mode_name(mode),
        &args.output,
        parameters,
        clock,
        &topology,
        totals,
        &order,
    )
}

/// One executor thread running producer `lanes`, each as its own task.
fn spawn_producers(
    lanes: Vec<ProducerLane>,
    config: ProduceConfig,
    clock: Clock,
    tx: mpsc::Sender<Report>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let failed = tx.clone();
        let outcome = on_executor(async move {
            let config = Rc::new(config);
            let tasks: Vec<_> = lanes
                .into_iter()
                .map(|lane| {
                    let config = config.clone();
                    let tx = tx.clone();
                    glommio::spawn_local(async move {
                        let outcome = load::run_producer(lane, config, clock, tx.clone()).await;
                        finish_lane(&tx, outcome);
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
        });
        if let Err(e) = outcome {
            let _ = failed.send(Report::Failed(format!("{e:#}")));
        }
    })
}

/// The `--hlog` writer, when asked for.
fn hlog_writer(output: &OutputArgs, clock: Clock, comment: &str) -> Result<Option<HlogWriter>> {
    output
        .hlog
        .as_deref()
        .map(|path| HlogWriter::create(path, clock.start_wall, comment))
        .transpose()
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Produce => "produce",
        Mode::EndToEnd => "e2e",
    }
}

pub(crate) fn finish_lane(tx: &mpsc::Sender<Report>, outcome: Result<()>) {
    if let Err(e) = outcome {
        let _ = tx.send(Report::Failed(format!("{e:#}")));
    }
    let _ = tx.send(Report::Done);
}

/// `consume`.
pub fn consume(args: ConsumeArgs) -> Result<ExitCode> {
    let topology = discover(&args.bootstrap, &args.topic, None)?;
    let start_at = if args.from == "latest" {
        StartAt::Latest
    } else {
        StartAt::Earliest
    };
    let lanes = consumer_lanes(&topology.leaders, &args.topic, start_at, args.e2e, false);
    let clock = Clock {
        start: Instant::now(),
        start_wall: SystemTime::now(),
        warmup: seconds(args.warmup, "warmup")?,
        duration: seconds(args.duration, "duration")?,
    };
    let (tx, rx) = mpsc::channel();
    let mut count = lanes.len();
    let mut threads = Vec::new();
    let group_members: Rc<RefCell<Vec<crate::group::MemberStatus>>> = Rc::default();
    let mut group_thread = None;
    if let Some(group) = &args.group {
        // All members share one executor thread; it reports as one lane.
        let lane = lanes.first().context("the topic has no partitions")?;
        let config = member_config(&args, group, lane, &topology, start_at, clock)?;
        let members = args.members.members.max(1);
        count = 1;
        group_thread = Some(spawn_group_members(config, members, clock, tx.clone()));
    }
    for lane in lanes.into_iter().filter(|_| args.group.is_none()) {
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let (ready, _) = mpsc::channel();
            let outcome = on_executor(load::run_consumer(lane, clock, tx.clone(), ready));
            finish_lane(&tx, outcome.and_then(|r| r));
        }));
    }
    drop(tx);
    let mut hlog = hlog_writer(&args.output, clock, "sluice-perf consume")?;
    let progress = !args.output.quiet && std::io::stderr().is_terminal();
    let totals = aggregate(rx, count, clock, hlog.as_mut(), progress);
    for handle in threads {
        let _ = handle.join();
    }
    if let Some(handle) = group_thread {
        *group_members.borrow_mut() = handle.join().unwrap_or_default();
    }
    let totals = totals?;
    if let Some(hlog) = hlog {
        hlog.finish()?;
    }
    if args.group.is_some() {
        print_group_summary(&group_members.borrow());
    }
    let parameters = serde_json::to_value(&args)?;
    finish(
        "consume",
        &args.output,
        parameters,
        clock,
        &topology,
        totals,
        &[Metric::EndToEnd, Metric::Consume],
    )
}

/// What the members of `consume --group` share; their fetch limits and accounting are
/// `lane`'s, a consumer lane of the topic.
fn member_config(
    args: &ConsumeArgs,
    group: &str,
    lane: &ConsumerLane,
    topology: &Topology,
    start_at: StartAt,
    clock: Clock,
) -> Result<crate::group::MemberConfig> {
    let start_offsets = on_executor({
        let leaders = topology.leaders.clone();
        let topic = args.topic.clone();
        async move { group_start_offsets(&leaders, &topic, start_at).await }
    })??;
    Ok(crate::group::MemberConfig {
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        settings: args.members.settings(group, &args.topic),
        leaders: topology.leaders.iter().cloned().collect(),
        start_offsets,
        fetch: lane.fetch,
        accounting: load::Accounting::of(lane),
        commit_interval: (args.members.commit_interval_ms > 0)
            .then(|| Duration::from_millis(args.members.commit_interval_ms)),
        probe: false,
        end: clock.end(),
    })
}

/// One executor thread running `members` group members, reporting as one lane; it returns
/// their final statuses.
fn spawn_group_members(
    config: crate::group::MemberConfig,
    members: usize,
    clock: Clock,
    tx: mpsc::Sender<Report>,
) -> std::thread::JoinHandle<Vec<crate::group::MemberStatus>> {
    std::thread::spawn(move || {
        let outcome = on_executor(run_group_members(config, members, clock, tx.clone()));
        let statuses = match outcome {
            Ok(Ok(statuses)) => statuses,
            Ok(Err(e)) | Err(e) => {
                let _ = tx.send(Report::Failed(format!("{e:#}")));
                Vec::new()
            }
        };
        let _ = tx.send(Report::Done);
        statuses
    })
}

fn print_group_summary(statuses: &[crate::group::MemberStatus]) {
    let sum = |f: fn(&crate::group::MemberStatus) -> u64| statuses.iter().map(f).sum::<u64>();
    println!(
        "group: {} members, {} assignments, {} commits ({} refused), {} records delivered",
        statuses.len(),
        sum(|s| s.generations),
        sum(|s| s.commits),
        sum(|s| s.commit_errors),
        sum(|s| s.delivered)
    );
}

/// Where each partition starts for group members that find no committed offset.
pub(crate) async fn group_start_offsets(
    leaders: &[(i32, String)],
    topic: &str,
    at: StartAt,
) -> Result<BTreeMap<i32, i64>> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (partition, addr) in leaders {
        by_leader.entry(addr.as_str()).or_default().push(*partition);
    }
    let mut out = BTreeMap::new();
    for (addr, partitions) in by_leader {
        let mut connection = Connection::connect(addr, ConnectionConfig::default())
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let offsets = load::start_offsets(&mut connection, topic, &partitions, at).await?;
        out.extend(partitions.into_iter().zip(offsets));
    }
    Ok(out)
}

/// Runs `members` members of one group on this executor with one shared tally and reporter;
/// returns their final statuses.
async fn run_group_members(
    config: crate::group::MemberConfig,
    members: usize,
    clock: Clock,
    tx: mpsc::Sender<Report>,
) -> Result<Vec<crate::group::MemberStatus>> {
    let metric = if config.accounting.end_to_end {
        Metric::EndToEnd
    } else {
        Metric::Consume
    };
    let config = Rc::new(config);
    let tally = Rc::new(RefCell::new(load::Tally::new(metric)));
    let stop = Rc::new(std::cell::Cell::new(false));
    let reporter = glommio::spawn_local(load::report_every_second(
        clock,
        tally.clone(),
        tx,
        stop.clone(),
    ));
    let controls: Vec<Rc<crate::group::MemberControl>> =
        (0..members).map(|_| Rc::default()).collect();
    let tasks: Vec<_> = controls
        .iter()
        .map(|control| {
            glommio::spawn_local(crate::group::run_member(
                config.clone(),
                control.clone(),
                tally.clone(),
                clock,
            ))
        })
        .collect();
    let mut failure = None;
    for task in tasks {
        if let Err(e) = task.await {
            // One failed member must not strand the others in a rebalance waiting for it.
            for control in &controls {
                control.stop();
            }
            failure.get_or_insert(e);
        }
    }
    stop.set(true);
    reporter.await;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(controls.iter().map(|c| c.status.borrow().clone()).collect())
}
