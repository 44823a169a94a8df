//! The load itself: producer lanes (open loop at a fixed rate, or as fast as the in-flight
//! window allows) and consumer lanes, each on its own glommio executor thread, reporting
//! one-second interval histograms to the aggregating main thread over a channel.
//!
//! Coordinated omission: at a fixed rate, batch `k` of a lane is due at `start + k * interval`
//! whether or not earlier batches were acknowledged, and its latency is measured from that
//! intended time. A stalled broker therefore shows up in the tail instead of silently slowing
//! the sender down. At max rate the intended time is the actual send time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use glommio::timer::Timer;
use hdrhistogram::Histogram;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceRequest};
use sluice_net::client::admin::{self, FetchLimits, error_name};
use sluice_net::client::batch::{self, Compression};
use sluice_net::client::{Connection, ConnectionConfig, ConnectionReader};

use crate::histogram::{new_histogram, record};
use crate::template::{BatchTemplate, RecordShape, Renderer, send_time_us};

/// What a lane measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Produce,
    EndToEnd,
    Consume,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Produce => "produce",
            Metric::EndToEnd => "e2e",
            Metric::Consume => "consume",
        }
    }
}

/// Messages from lanes to the aggregator.
pub enum Report {
    /// What a lane measured during second `second` of the run (0 = the first second).
    Interval {
        metric: Metric,
        second: u64,
        histogram: Histogram<u64>,
        records: u64,
        bytes: u64,
        errors: u64,
    },
    /// The lane finished; the run ends when every lane has.
    Done,
    /// The lane could not continue.
    Failed(String),
}

/// The run's shared timeline.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start: Instant,
    pub start_wall: SystemTime,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Clock {
    pub fn wall_us(&self, at: Instant) -> u64 {
        let wall = self.start_wall + at.saturating_duration_since(self.start);
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }

    pub fn now_wall_us() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }

    pub fn end(&self) -> Instant {
        self.start + self.warmup + self.duration
    }

    pub fn measured(&self, at: Instant) -> bool {
        at >= self.start + self.warmup && at < self.end()
    }

    /// Whether a batch stamped with send time `wall_us` belongs to the measured window. The
    /// producer and the `e2e` consumer both decide on the stamp, so they count the same batches.
    pub fn measured_wall_us(&self, wall_us: u64) -> bool {
        wall_us >= self.wall_us(self.start + self.warmup) && wall_us < self.wall_us(self.end())
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs()
    }
}

/// Acknowledgement level of produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings shared by all lanes.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    pub topic: String,
    pub shape: RecordShape,
    pub acks: Acks,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub compression: Compression,
    pub idempotent: bool,
    pub max_in_flight: u64,
    pub request_timeout_ms: i32,
}

/// One producer connection: a broker and the partitions it leads that this producer feeds.
#[derive(Debug, Clone)]
pub struct ProducerLane {
    pub addr: String,
    pub partitions: Vec<i32>,
    /// Records per second for the whole lane; `None` for max rate.
    pub rate: Option<f64>,
    pub seed: u64,
}

/// Statistics accumulated by a lane between interval reports.
pub struct Tally {
    metric: Metric,
    pub histogram: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl Tally {
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            histogram: new_histogram(),
            records: 0,
            bytes: 0,
            errors: 0,
        }
    }

    fn take(&mut self, second: u64) -> Report {
        let histogram = std::mem::replace(&mut self.histogram, new_histogram());
        let report = Report::Interval {
            metric: self.metric,
            second,
            histogram,
            records: self.records,
            bytes: self.bytes,
            errors: self.errors,
        };
        self.records = 0;
        self.bytes = 0;
        self.errors = 0;
        report
    }
}

/// Sends the lane's tally to the aggregator at each whole second of the run until `stop`.
pub async fn report_every_second(
    clock: Clock,
    tally: Rc<RefCell<Tally>>,
    tx: Sender<Report>,
    stop: Rc<std::cell::Cell<bool>>,
) {
    let mut second = 0u64;
    while !stop.get() {
        let next = clock.start + Duration::from_secs(second + 1);
        let now = Instant::now();
        if next > now {
            Timer::new((next - now).min(Duration::from_millis(100))).await;
            continue;
        }
        let report = tally.borrow_mut().take(second);
        let _ = tx.send(report);
        second += 1;
    }
    let report = tally.borrow_mut().take(clock.second(Instant::now()));
    let _ = tx.send(report);
}

fn client_config(name: &str) -> ConnectionConfig {
    ConnectionConfig {
        client_id: format!("sluice-perf-{name}"),
        ..ConnectionConfig::default()
    }
}

/// How many records a batch holds and how often a lane sends one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cadence {
    pub records_per_batch: i32,
    /// `None` at max rate.
    pub batch_interval: Option<Duration>,
}

/// Records in a full batch (`batch_bytes` of records, at least one).
fn full_batch_records(config: &ProduceConfig) -> i32 {
    let record_bytes = (config.shape.record_bytes + config.shape.key_bytes).max(1);
    (config.batch_bytes / record_bytes).clamp(1, i32::MAX as usize) as i32
}

/// At a fixed rate a partition's batch fills for `linger` (or until `batch_bytes`), so it holds
/// the records that arrive at that partition meanwhile; at max rate batches are always full.
pub fn cadence(config: &ProduceConfig, lane_rate: Option<f64>, partitions: usize) -> Cadence {
    let full = full_batch_records(config);
    match lane_rate {
        None => Cadence {
            records_per_batch: full,
            batch_interval: None,
        },
        Some(rate) => {
            let per_partition = rate / partitions.max(1) as f64;
            let lingered = (per_partition * config.linger.as_secs_f64()).floor();
            let records = (lingered as i64).clamp(1, i64::from(full)) as i32;
            Cadence {
                records_per_batch: records,
                batch_interval: Some(Duration::from_secs_f64(f64::from(records) / rate)),
            }
        }
    }
}

/// One batch inside a request in flight. A batch of a producer that fell behind merges
/// `units` consecutive due batches of its partition; each unit keeps its own intended time
/// (`intended + step * u`) so latency stays measured from when each record was due.
#[derive(Clone, Copy)]
struct PendingBatch {
    partition: i32,
    intended: Instant,
    step: Duration,
    units: u64,
    measured: bool,
    /// Records and payload bytes of one unit.
    records: u64,
    bytes: u64,
}

/// A request in flight: its batches (at most one per partition).
struct Pending {
    batches: Vec<PendingBatch>,
}

impl Tally {
    /// Records acknowledged batches that were due inside the measured window.
    fn acknowledged(&mut self, batches: &[PendingBatch], now: Instant, failed: &[i32]) {
        for batch in batches.iter().filter(|b| b.measured) {
            if failed.contains(&batch.partition) {
                self.errors += 1;
                continue;
            }
            for u in 0..batch.units {
                let intended = batch.intended + batch.step.mul_f64(u as f64);
                let latency = now.saturating_duration_since(intended).as_micros() as u64;
                record(&mut self.histogram, latency, batch.records);
            }
            self.records += batch.records * batch.units;
            self.bytes += batch.bytes * batch.units;
        }
    }
}

/// At a fixed rate, which batches are due: unit `j` (a batch of the cadence's size) belongs
/// to partition slot `j % partitions` and is due at `start + j * interval`. A slot that is
/// behind sends its due units merged into one batch of a power-of-two number of units (at
/// most `max_units`, so at most `batch_bytes`), as a Kafka producer's batches grow to
/// `batch.size` while it waits; the rest wait for the next request.
#[derive(Debug, Clone)]
pub struct Planner {
    start: Instant,
    end: Instant,
    interval: Duration,
    max_units: u64,
    /// Per slot, the index `i` of its next unit `j = slot + partitions * i`.
    next: Vec<u64>,
}

/// Units of one slot taken into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub slot: usize,
    /// The slot's first unit taken (`i`).
    pub first: u64,
    /// A power of two.
    pub units: u64,
}

impl Planner {
    pub fn new(
        start: Instant,
        end: Instant,
        interval: Duration,
        partitions: usize,
        max_units: u64,
    ) -> Self {
        // The largest power of two not above max_units.
        let max_units = max_units.max(1);
        let max_units = 1u64 << (63 - max_units.leading_zeros());
        Self {
            start,
            end,
            interval,
            max_units,
            next: vec![0; partitions.max(1)],
        }
    }

    pub fn max_units(&self) -> u64 {
        self.max_units
    }

    /// When unit `i` of `slot` is due.
    pub fn due(&self, slot: usize, i: u64) -> Instant {
        let j = slot as u64 + self.next.len() as u64 * i;
        self.start + self.interval.mul_f64(j as f64)
    }

    /// How long apart consecutive units of one slot are due.
    pub fn step(&self) -> Duration {
        self.interval.mul_f64(self.next.len() as f64)
    }

    /// The earliest unsent unit's due time; `None` once every unit due before the end is sent.
    pub fn next_due(&self) -> Option<Instant> {
        (0..self.next.len())
            .map(|slot| self.due(slot, self.next[slot]))
            .filter(|due| *due < self.end)
            .min()
    }

    /// Takes, for every slot with units due by `now`, as many as it may merge.
    pub fn take(&mut self, now: Instant) -> Vec<Take> {
        let mut out = Vec::new();
        for slot in 0..self.next.len() {
            let first = self.next[slot];
            let mut due = 0;
            while due < self.max_units {
                let at = self.due(slot, first + due);
                if at > now || at >= self.end {
                    break;
                }
                due += 1;
            }
            if due == 0 {
                continue;
            }
            let units = 1u64 << (63 - due.leading_zeros());
            self.next[slot] += units;
            out.push(Take { slot, first, units });
        }
        out
    }
}

/// Template variants per partition and size; batches rotate through them so consecutive
/// batches differ.
const VARIANTS: u64 = 4;

/// A lane's batch templates, `[slot][size][variant]`: size `e` holds 2^e units of the
/// cadence's records.
type Templates = Vec<Vec<Vec<BatchTemplate>>>;

/// Why the acknowledgement reader stopped, shared with the writer it stops.
type Failure = Rc<RefCell<Option<String>>>;

/// Runs one producer lane until the clock's end, then drains acknowledgements.
pub async fn run_producer(
    lane: ProducerLane,
    config: Rc<ProduceConfig>,
    clock: Clock,
    tx: Sender<Report>,
) -> Result<()> {
    let mut connection = Connection::connect(&lane.addr, client_config("producer"))
        .await
        .with_context(|| format!("connecting to {}", lane.addr))?;
    let produce_version = connection
        .versions()
        .version(ApiKey::Produce)
        .ok_or_else(|| anyhow!("broker {} shares no Produce version with us", lane.addr))?;
    let producer = if config.idempotent {
        Some(init_producer_id(&mut connection).await?)
    } else {
        None
    };
    let cadence = cadence(&config, lane.rate, lane.partitions.len());
    let mut planner = planner(&config, &lane, &clock, cadence);
    let mut source = BatchSource::new(&config, &lane, cadence, planner.as_ref(), producer)?;

    let (mut writer, reader) = connection.split();
    let max_in_flight = if config.idempotent {
        config.max_in_flight.min(5)
    } else {
        config.max_in_flight
    };
    let window = Rc::new(glommio::sync::Semaphore::new(max_in_flight));
    let pending: Rc<RefCell<VecDeque<Pending>>> = Rc::default();
    let tally = Rc::new(RefCell::new(Tally::new(Metric::Produce)));
    let stop = Rc::new(std::cell::Cell::new(false));
    let reporter = glommio::spawn_local(report_every_second(
        clock,
        tally.clone(),
        tx.clone(),
        stop.clone(),
    ));

    let acks = config.acks;
    let failure: Failure = Rc::default();
    let reader_task = (acks != Acks::None).then(|| {
        glommio::spawn_local(read_acknowledgements(
            reader,
            window.clone(),
            pending.clone(),
            tally.clone(),
            failure.clone(),
        ))
    });
    let broken = |failure: &Failure| {
        anyhow!(
            "{}: {}",
            lane.addr,
            failure
                .borrow()
                .clone()
                .unwrap_or_else(|| "connection closed".into())
        )
    };

    let partitions = lane.partitions.len() as u64;
    let mut k: u64 = 0;
    while wait_until_due(planner.as_ref(), clock.end()).await {
        if window.acquire(1).await.is_err() {
            return Err(broken(&failure));
        }
        let now = Instant::now();
        let takes = take_due(planner.as_mut(), now, k, partitions);
        k += 1;
        let Rendered { data, batches } =
            source.render(&takes, planner.as_ref(), now, &clock, &lane.partitions)?;
        let request =
            admin::produce_request(&config.topic, data, acks.wire(), config.request_timeout_ms);
        if acks != Acks::None {
            pending.borrow_mut().push_back(Pending {
                batches: batches.clone(),
            });
        }
        writer
            .send_version(&request, produce_version, acks != Acks::None)
            .await
            .map_err(|e| anyhow!("sending Produce to {}: {e}", lane.addr))?;
        if acks == Acks::None {
            tally
                .borrow_mut()
                .acknowledged(&batches, Instant::now(), &[]);
            window.signal(1);
        }
    }
    if let Some(task) = reader_task {
        if !drain(&window, max_in_flight, &pending, &tally).await {
            return Err(broken(&failure));
        }
        drop(task);
    }
    let _ = writer.close().await;
    stop.set(true);
    reporter.await;
    Ok(())
}

/// Waits until the next request is due: the earliest unsent unit at a fixed rate, now at
/// max rate. False once nothing more is due before `end`.
async fn wait_until_due(planner: Option<&Planner>, end: Instant) -> bool {
    let intended = match planner {
        Some(planner) => match planner.next_due() {
            Some(due) => due,
            None => return false,
        },
        None => Instant::now(),
    };
    if intended >= end {
        return false;
    }
    let now = Instant::now();
    if intended > now {
        Timer::new(intended - now).await;
    }
    true
}

/// The units request `k` carries. Like a Kafka producer, one request carries every
/// partition's due batch, grown to hold what piled up while the producer was behind. At
/// max rate it is one full batch of the next partition in turn, due when it is sent.
fn take_due(planner: Option<&mut Planner>, now: Instant, k: u64, partitions: u64) -> Vec<Take> {
    match planner {
        Some(planner) => planner.take(now),
        None => {
            let slot = (k % partitions) as usize;
            vec![Take {
                slot,
                first: k / partitions,
                units: 1,
            }]
        }
    }
}

/// Waits until every acknowledgement arrived (every permit of the window is back). Bounded,
/// so a broker that never answers ends the run with the batches still pending counted as
/// errors instead of hanging it. False when the connection broke first.
async fn drain(
    window: &glommio::sync::Semaphore,
    max_in_flight: u64,
    pending: &RefCell<VecDeque<Pending>>,
    tally: &RefCell<Tally>,
) -> bool {
    let drained =
        glommio::future::timeout(Duration::from_secs(30), window.acquire(max_in_flight)).await;
    match drained {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tally.borrow_mut().errors += pending.borrow().len() as u64;
            true
        }
    }
}

/// The producer id and epoch of an idempotent producer.
async fn init_producer_id(connection: &mut Connection) -> Result<(i64, i16)> {
    let response = connection
        .call(&admin::init_producer_id_request())
        .await
        .context("InitProducerId")?;
    if response.error_code != 0 {
        bail!("InitProducerId failed: {}", error_name(response.error_code));
    }
    Ok((response.producer_id.0, response.producer_epoch))
}

/// At a fixed rate, the lane's planner: units of the cadence's records, merged up to a full
/// batch. `None` at max rate.
fn planner(
    config: &ProduceConfig,
    lane: &ProducerLane,
    clock: &Clock,
    cadence: Cadence,
) -> Option<Planner> {
    let full = full_batch_records(config);
    cadence.batch_interval.map(|interval| {
        Planner::new(
            clock.start,
            clock.end(),
            interval,
            lane.partitions.len(),
            (full / cadence.records_per_batch.max(1)).max(1) as u64,
        )
    })
}

/// Every batch template a lane sends: per partition, `sizes` sizes of `VARIANTS` variants.
fn batch_templates(
    config: &ProduceConfig,
    lane: &ProducerLane,
    records_per_batch: i32,
    sizes: usize,
) -> Result<Templates> {
    lane.partitions
        .iter()
        .map(|_| {
            (0..sizes)
                .map(|e| {
                    (0..VARIANTS)
                        .map(|v| {
                            BatchTemplate::build(
                                config.shape,
                                records_per_batch << e,
                                config.compression,
                                lane.seed * 1000 + v,
                            )
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect()
}

/// Matches acknowledgements to batches in flight; on a broken connection it records why
/// in `failure` and closes the window, which stops the writer.
async fn read_acknowledgements(
    mut reader: ConnectionReader,
    window: Rc<glommio::sync::Semaphore>,
    pending: Rc<RefCell<VecDeque<Pending>>>,
    tally: Rc<RefCell<Tally>>,
    failure: Failure,
) {
    loop {
        let response = match reader.recv::<ProduceRequest>().await {
            Ok(response) => response,
            Err(e) => {
                *failure.borrow_mut() = Some(format!("reading Produce response: {e}"));
                window.close();
                return;
            }
        };
        let now = Instant::now();
        let sent = pending
            .borrow_mut()
            .pop_front()
            .expect("each response answers one pending batch");
        let failed: Vec<i32> = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .filter(|p| p.error_code != 0)
            .map(|p| p.index)
            .collect();
        tally.borrow_mut().acknowledged(&sent.batches, now, &failed);
        window.signal(1);
    }
}

/// Turns the units a request takes into record batches: the templates of a lane, each
/// partition's next sequence number (idempotent producers) and the renderer that stamps
/// them.
struct BatchSource {
    templates: Templates,
    sequences: Vec<i32>,
    /// Producer id and epoch, when idempotent.
    producer: Option<(i64, i16)>,
    renderer: Renderer,
    /// Records of one unit.
    unit_records: u64,
}

impl BatchSource {
    /// Templates of every size `planner` may merge units into (one size at max rate).
    fn new(
        config: &ProduceConfig,
        lane: &ProducerLane,
        cadence: Cadence,
        planner: Option<&Planner>,
        producer: Option<(i64, i16)>,
    ) -> Result<Self> {
        let sizes = planner.map_or(1, |p| p.max_units().trailing_zeros() as usize + 1);
        Ok(BatchSource {
            templates: batch_templates(config, lane, cadence.records_per_batch, sizes)?,
            sequences: vec![0i32; lane.partitions.len()],
            producer,
            renderer: Renderer::default(),
            unit_records: cadence.records_per_batch as u64,
        })
    }

    /// The batches of one request. A unit is due when the planner says (at max rate:
    /// `now`).
    fn render(
        &mut self,
        takes: &[Take],
        planner: Option<&Planner>,
        now: Instant,
        clock: &Clock,
        partitions: &[i32],
    ) -> Result<Rendered> {
        let unit_bytes = self.templates[0][0][0].payload_bytes;
        let mut data = Vec::with_capacity(takes.len());
        let mut batches = Vec::with_capacity(takes.len());
        for take in takes {
            let slot = take.slot;
            let size = take.units.trailing_zeros() as usize;
            let template = &self.templates[slot][size][(take.first % VARIANTS) as usize];
            let intended = match planner {
                Some(planner) => planner.due(slot, take.first),
                None => now,
            };
            let stamp = self
                .producer
                .map(|(id, epoch)| (id, epoch, self.sequences[slot]));
            self.sequences[slot] = self.sequences[slot].wrapping_add(template.records);
            let stamp_us = clock.wall_us(intended);
            data.push((
                partitions[slot],
                template.render(&mut self.renderer, stamp_us, stamp)?,
            ));
            batches.push(PendingBatch {
                partition: partitions[slot],
                intended,
                step: planner.map_or(Duration::ZERO, Planner::step),
                units: take.units,
                measured: clock.measured_wall_us(stamp_us),
                records: self.unit_records,
                bytes: unit_bytes,
            });
        }
        Ok(Rendered { data, batches })
    }
}

/// One request's batches: what it carries and what its acknowledgement records.
struct Rendered {
    /// `(partition, batch)`, as `admin::produce_request` takes them.
    data: Vec<(i32, Bytes)>,
    batches: Vec<PendingBatch>,
}

/// Where a consumer lane starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
}

/// One consumer connection: a broker and the partitions it leads.
#[derive(Debug, Clone)]
pub struct ConsumerLane {
    pub addr: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub start_at: StartAt,
    /// Record end-to-end latency from the send time in each batch.
    pub end_to_end: bool,
    /// Count a delivery in the measured window by its send time (`e2e`, where producer and
    /// consumer share the clock) rather than by its arrival time (`consume`).
    pub count_by_send_time: bool,
    pub fetch: FetchLimits,
}

/// Looks up where each partition starts, for consumers.
pub async fn start_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: &[i32],
    at: StartAt,
) -> Result<Vec<i64>> {
    let timestamp = match at {
        StartAt::Earliest => admin::EARLIEST_TIMESTAMP,
        StartAt::Latest => admin::LATEST_TIMESTAMP,
    };
    let response = connection
        .call(&admin::list_offsets_request(topic, partitions, timestamp))
        .await
        .context("ListOffsets")?;
    partitions
        .iter()
        .map(|p| {
            let found = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|r| r.partition_index == *p)
                .with_context(|| format!("ListOffsets did not answer for partition {p}"))?;
            if found.error_code != 0 {
                bail!(
                    "ListOffsets for partition {p}: {}",
                    error_name(found.error_code)
                );
            }
            Ok(found.offset)
        })
        .collect()
}

async fn prepare_consumer(lane: &ConsumerLane) -> Result<(Connection, Vec<(i32, i64)>)> {
    let mut connection = Connection::connect(&lane.addr, client_config("consumer"))
        .await
        .with_context(|| format!("connecting to {}", lane.addr))?;
    if connection.versions().version(ApiKey::Fetch).is_none() {
        bail!("broker {} shares no Fetch version with us", lane.addr);
    }
    let offsets = start_offsets(
        &mut connection,
        &lane.topic,
        &lane.partitions,
        lane.start_at,
    )
    .await?;
    let positions = lane.partitions.iter().copied().zip(offsets).collect();
    Ok((connection, positions))
}

/// Runs one consumer lane from its start offsets until the clock's end. `ready` is signalled
/// once the start offsets are known.
pub async fn run_consumer(
    lane: ConsumerLane,
    clock: Clock,
    tx: Sender<Report>,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<()> {
    let (connection, positions) = prepare_consumer(&lane).await?;
    let _ = ready.send(());
    consume_loop(connection, positions, lane, clock, tx).await
}

/// Like [`run_consumer`], but the clock is only known once every consumer is ready (`e2e`
/// starts producing after the consumers know where the log ends).
pub async fn run_consumer_waiting(
    lane: ConsumerLane,
    clock: std::sync::mpsc::Receiver<Clock>,
    tx: Sender<Report>,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<()> {
    let (connection, positions) = prepare_consumer(&lane).await?;
    let _ = ready.send(());
    // Nothing else runs on this executor yet, so blocking here stalls no other task.
    let clock = clock
        .recv()
        .context("the run was abandoned before it started")?;
    consume_loop(connection, positions, lane, clock, tx).await
}

async fn consume_loop(
    mut connection: Connection,
    mut positions: Vec<(i32, i64)>,
    lane: ConsumerLane,
    clock: Clock,
    tx: Sender<Report>,
) -> Result<()> {
    let metric = if lane.end_to_end {
        Metric::EndToEnd
    } else {
        Metric::Consume
    };
    let tally = Rc::new(RefCell::new(Tally::new(metric)));
    let stop = Rc::new(std::cell::Cell::new(false));
    let reporter = glommio::spawn_local(report_every_second(
        clock,
        tally.clone(),
        tx.clone(),
        stop.clone(),
    ));
    let accounting = Accounting::of(&lane);
    // Consumers keep reading a little past the end so records produced at the end arrive.
    let end = clock.end() + Duration::from_secs(2);
    while Instant::now() < end {
        let mut limits = lane.fetch;
        limits.max_wait_ms = limits
            .max_wait_ms
            .min(end.saturating_duration_since(Instant::now()).as_millis() as i32)
            .max(1);
        let response = connection
            .call::<FetchRequest>(&admin::fetch_request(&lane.topic, &positions, limits))
            .await
            .map_err(|e| anyhow!("fetching from {}: {e}", lane.addr))?;
        let now = Instant::now();
        let mut tally = tally.borrow_mut();
        if response.error_code != 0 {
            tally.errors += 1;
            continue;
        }
        accounting
            .account(&response, &mut positions, &mut tally, clock, now)
            .map_err(|e| anyhow!("fetched bytes from {}: {e}", lane.addr))?;
    }
    stop.set(true);
    reporter.await;
    Ok(())
}

/// How fetched records are counted: what a consumer lane or group member does with each
/// fetch response.
#[derive(Debug, Clone, Copy)]
pub struct Accounting {
    /// Record end-to-end latency from the send time in each batch.
    pub end_to_end: bool,
    /// Count by send time (`e2e`) instead of arrival time (`consume`).
    pub count_by_send_time: bool,
    /// Bound on a batch's decompressed size when reading its send time.
    pub uncompressed_max: usize,
}

impl Accounting {
    pub fn of(lane: &ConsumerLane) -> Self {
        Self {
            end_to_end: lane.end_to_end,
            count_by_send_time: lane.count_by_send_time,
            uncompressed_max: lane.fetch.partition_max_bytes.max(1) as usize * 64,
        }
    }

    /// Advances `positions` past the batches in `response` and counts the records the
    /// measured window takes. Returns how many records were delivered (counted or not).
    pub fn account(
        &self,
        response: &FetchResponse,
        positions: &mut [(i32, i64)],
        tally: &mut Tally,
        clock: Clock,
        now: Instant,
    ) -> Result<u64> {
        let now_wall = Clock::now_wall_us();
        let mut delivered_total = 0;
        for partition in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(position) = positions
                .iter_mut()
                .find(|(p, _)| *p == partition.partition_index)
            else {
                continue;
            };
            if partition.error_code != 0 {
                tally.errors += 1;
                continue;
            }
            let Some(records) = partition.records.clone() else {
                continue;
            };
            for batch_bytes in batch::split_batches(records) {
                let batch_bytes = batch_bytes?;
                let header = batch::BatchHeader::parse(&batch_bytes)?;
                let next = header.next_offset();
                if next <= position.1 {
                    continue;
                }
                let delivered = (next - header.base_offset.max(position.1)) as u64;
                position.1 = next;
                if header.is_control() {
                    continue;
                }
                delivered_total += delivered;
                let sent = send_time_us(&batch_bytes, self.uncompressed_max);
                let counted = match sent.filter(|_| self.count_by_send_time) {
                    Some(sent_us) => clock.measured_wall_us(sent_us),
                    None => clock.measured(now),
                };
                if !counted {
                    continue;
                }
                tally.records += delivered;
                tally.bytes += batch_bytes.len() as u64;
                if self.end_to_end
                    && let Some(sent_us) = sent
                {
                    record(
                        &mut tally.histogram,
                        now_wall.saturating_sub(sent_us),
                        delivered,
                    );
                }
            }
        }
        Ok(delivered_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_sends_on_time_units_singly_and_merges_a_backlog() {
        // Proves the fixed-rate planner: on time, each request takes the one due unit, slots
        // in turn; after a stall, every slot's backlog is merged into power-of-two batches of
        // at most `max_units` units, nothing is taken twice or skipped, and units due at or
        // after the end are never taken.
        let start = Instant::now();
        let interval = Duration::from_millis(1);
        let end = start + Duration::from_millis(40);
        let mut planner = Planner::new(start, end, interval, 4, 6);
        assert_eq!(planner.max_units(), 4);
        assert_eq!(planner.step(), Duration::from_millis(4));
        for j in 0..4u64 {
            let due = planner.next_due().unwrap();
            assert_eq!(due, start + interval * j as u32);
            let takes = planner.take(due);
            assert_eq!(
                takes,
                vec![Take {
                    slot: j as usize,
                    first: 0,
                    units: 1
                }]
            );
        }
        // Stalled until unit 30 was due: slots 0-2 owe units 1..=7 (7 each), slot 3 owes 1..=6.
        let now = start + interval * 30;
        let first = planner.take(now);
        assert!(
            first.iter().all(|t| t.units == 4 && t.first == 1),
            "{first:?}"
        );
        assert_eq!(first.len(), 4);
        let second = planner.take(now);
        let units: Vec<u64> = second.iter().map(|t| t.units).collect();
        assert_eq!(units, vec![2, 2, 2, 2]);
        let third = planner.take(now);
        let slots: Vec<(usize, u64, u64)> =
            third.iter().map(|t| (t.slot, t.first, t.units)).collect();
        assert_eq!(slots, vec![(0, 7, 1), (1, 7, 1), (2, 7, 1)]);
        assert!(planner.take(now).is_empty());
        // Drain to the end: units 0..40 are each taken exactly once.
        let mut taken = 4 + 16 + 8 + 3;
        while let Some(due) = planner.next_due() {
            taken += planner.take(due).iter().map(|t| t.units).sum::<u64>();
        }
        assert_eq!(taken, 40);
    }
}
