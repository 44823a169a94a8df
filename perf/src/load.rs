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
use glommio::timer::Timer;
use hdrhistogram::Histogram;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceRequest};
use sluice_net::client::admin::{self, FetchLimits, error_name};
use sluice_net::client::batch::{self, Compression};
use sluice_net::client::{Connection, ConnectionConfig};

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

/// At a fixed rate a partition's batch fills for `linger` (or until `batch_bytes`), so it holds
/// the records that arrive at that partition meanwhile; at max rate batches are always full.
pub fn cadence(config: &ProduceConfig, lane_rate: Option<f64>, partitions: usize) -> Cadence {
    let record_bytes = (config.shape.record_bytes + config.shape.key_bytes).max(1);
    let full = (config.batch_bytes / record_bytes).clamp(1, i32::MAX as usize) as i32;
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

/// One batch inside a request in flight.
#[derive(Clone, Copy)]
struct PendingBatch {
    partition: i32,
    intended: Instant,
    measured: bool,
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
            let latency = now.saturating_duration_since(batch.intended).as_micros() as u64;
            record(&mut self.histogram, latency, batch.records);
            self.records += batch.records;
            self.bytes += batch.bytes;
        }
    }
}

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
    let mut producer = None;
    if config.idempotent {
        let response = connection
            .call(&admin::init_producer_id_request())
            .await
            .context("InitProducerId")?;
        if response.error_code != 0 {
            bail!("InitProducerId failed: {}", error_name(response.error_code));
        }
        producer = Some((response.producer_id.0, response.producer_epoch));
    }
    let cadence = cadence(&config, lane.rate, lane.partitions.len());
    const VARIANTS: u64 = 4;
    let templates = lane
        .partitions
        .iter()
        .map(|_| {
            (0..VARIANTS)
                .map(|v| {
                    BatchTemplate::build(
                        config.shape,
                        cadence.records_per_batch,
                        config.compression,
                        lane.seed * 1000 + v,
                    )
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let mut sequences = vec![0i32; lane.partitions.len()];

    let (mut writer, mut reader) = connection.split();
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
    // The reader matches acknowledgements to batches; on a broken connection it records why
    // and closes the window, which stops the writer.
    let failure: Rc<RefCell<Option<String>>> = Rc::default();
    let reader_task = (acks != Acks::None).then(|| {
        let window = window.clone();
        let pending = pending.clone();
        let tally = tally.clone();
        let failure = failure.clone();
        glommio::spawn_local(async move {
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
        })
    });
    let broken = |failure: &Rc<RefCell<Option<String>>>| {
        anyhow!(
            "{}: {}",
            lane.addr,
            failure
                .borrow()
                .clone()
                .unwrap_or_else(|| "connection closed".into())
        )
    };

    let mut renderer = Renderer::default();
    let end = clock.end();
    let partitions = lane.partitions.len() as u64;
    let due = |k: u64| match cadence.batch_interval {
        Some(interval) => clock.start + interval.mul_f64(k as f64),
        None => Instant::now(),
    };
    let mut k: u64 = 0;
    loop {
        let intended = due(k);
        if intended >= end {
            break;
        }
        let now = Instant::now();
        if intended > now {
            Timer::new(intended - now).await;
        }
        if window.acquire(1).await.is_err() {
            return Err(broken(&failure));
        }
        // Like a Kafka producer, one request carries every batch that is due by now, at most
        // one per partition (the rest wait for the next request). At max rate it is one batch,
        // due when it is sent.
        let now = Instant::now();
        let mut data = Vec::new();
        let mut batches = Vec::new();
        loop {
            let intended = match cadence.batch_interval {
                Some(_) => due(k),
                None => now,
            };
            let slot = (k % partitions) as usize;
            let template = &templates[slot][((k / partitions) % VARIANTS) as usize];
            let stamp = producer.map(|(id, epoch)| (id, epoch, sequences[slot]));
            sequences[slot] = sequences[slot].wrapping_add(template.records);
            let stamp_us = clock.wall_us(intended);
            data.push((
                lane.partitions[slot],
                template.render(&mut renderer, stamp_us, stamp)?,
            ));
            batches.push(PendingBatch {
                partition: lane.partitions[slot],
                intended,
                measured: clock.measured_wall_us(stamp_us),
                records: template.records as u64,
                bytes: template.payload_bytes,
            });
            k += 1;
            let next = due(k);
            if cadence.batch_interval.is_none()
                || batches.len() as u64 >= partitions
                || next > now
                || next >= end
            {
                break;
            }
        }
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
    // Drain: every permit back means every acknowledgement arrived. Bounded, so a broker
    // that never answers ends the run with errors instead of hanging it.
    if let Some(task) = reader_task {
        let drained =
            glommio::future::timeout(Duration::from_secs(30), window.acquire(max_in_flight)).await;
        match drained {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(broken(&failure)),
            Err(_) => tally.borrow_mut().errors += pending.borrow().len() as u64,
        }
        drop(task);
    }
    let _ = writer.close().await;
    stop.set(true);
    reporter.await;
    Ok(())
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
