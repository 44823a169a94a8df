//! The replication simulator: N brokers with model logs, a model controller and a faulty
//! network on one thread, driven by one seeded scheduler with a virtual clock. The replica
//! code under test is the same `Replica` the server runs.
//!
//! Fault mix (drawn per seed): messages dropped, duplicated, delayed and reordered;
//! network partitions between any sets of nodes (controller included); broker crashes that
//! lose the unflushed tail, and restarts; fsyncs that take up to `flush_ms_max`. Clients
//! produce with `acks=all` to the leader (and sometimes to a random broker) and consumers
//! read from the leader up to its high watermark. After `run_ms` the faults stop, every
//! broker restarts and the run settles; then every acknowledged record must be readable.
//!
//! `invariants.rs` lists what is checked after every step. A failure names its seed; the
//! same seed replays the run exactly (`SIM_SEED=<seed>`).

mod controller;
mod invariants;
mod network;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_engine::{LeaderEpoch, Offset};

pub use controller::Controller;
pub use invariants::{Checker, Violation};
pub use network::{Network, NetworkFaults};

use crate::batch::BrokerId;
use crate::message::{
    AlterPartitionRequest, AlterPartitionResponse, FetchRequest, FetchResponse, PartitionState,
};
use crate::model_log::ModelLog;
use crate::replica::{Acks, Action, ProduceId, Replica, ReplicaConfig};
use crate::{ProduceError, ReplicaLog};

const CONTROLLER: BrokerId = BrokerId(0);

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub brokers: i32,
    /// Virtual time with faults and produce traffic.
    pub run_ms: u64,
    /// Virtual time after the faults stop, before the final check.
    pub settle_ms: u64,
    pub tick_ms: u64,
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
    pub metadata_broadcast_ms: u64,
    pub replica: ReplicaConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            brokers: 3,
            run_ms: 2_000,
            settle_ms: 2_000,
            tick_ms: 10,
            heartbeat_ms: 30,
            lease_ms: 150,
            metadata_broadcast_ms: 100,
            replica: ReplicaConfig {
                replica_lag_time_max_ms: 200,
                min_insync_replicas: 2,
                fetch_backoff_ms: 10,
                fetch_timeout_ms: 100,
                alter_partition_retry_ms: 50,
                fetch_batches_max: 8,
                hw_on_log_end: false,
            },
        }
    }
}

/// What one seed's run did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    pub acked_batches: u64,
    pub produce_refused: u64,
    pub crashes: u64,
    /// Divergent tails a running follower cut off.
    pub truncations: u64,
    pub partitions: u64,
    pub leader_epochs: i32,
    pub high_watermark: i64,
}

#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub step: u64,
    pub now_ms: u64,
    pub violation: Violation,
    /// The last events before the failure, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed: SIM_SEED={} (step {}, t={} ms)",
            self.seed, self.step, self.now_ms
        )?;
        writeln!(f, "  {}", self.violation)?;
        writeln!(f, "  last events:")?;
        for line in &self.trace {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Message {
    Fetch(FetchRequest),
    FetchResponse(FetchResponse),
    AlterPartition(AlterPartitionRequest),
    AlterPartitionResponse(AlterPartitionResponse),
    PartitionState(PartitionState),
    Heartbeat { incarnation: u64 },
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: BrokerId,
        to: BrokerId,
        message: Message,
    },
    Tick {
        broker: BrokerId,
        incarnation: u64,
    },
    FlushDone {
        broker: BrokerId,
        incarnation: u64,
    },
    ControllerTick,
    Produce,
    Consume,
    Fault,
    Restart {
        broker: BrokerId,
    },
    Heal,
    Settle,
}

struct Scheduled {
    at_ms: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

enum Node {
    Up(Box<Replica<ModelLog>>),
    /// Crashed; the log holds what survived.
    Down(ModelLog),
}

struct Broker {
    node: Node,
    incarnation: u64,
    ticks: u64,
}

impl Broker {
    fn log(&self) -> &ModelLog {
        match &self.node {
            Node::Up(replica) => replica.log(),
            Node::Down(log) => log,
        }
    }
}

/// How often things happen, drawn per seed.
#[derive(Debug, Clone)]
struct Mix {
    produce_ms_max: u64,
    consume_ms_max: u64,
    fault_ms_max: u64,
    flush_ms_max: u64,
    /// Relative weights of crash, partition and nothing.
    crash_weight: u32,
    partition_weight: u32,
}

impl Mix {
    fn draw(rng: &mut SmallRng) -> Self {
        Self {
            produce_ms_max: rng.random_range(2..30),
            consume_ms_max: rng.random_range(5..50),
            fault_ms_max: rng.random_range(50..600),
            flush_ms_max: rng.random_range(1..40),
            crash_weight: rng.random_range(0..4),
            partition_weight: rng.random_range(0..4),
        }
    }
}

pub struct Sim {
    seed: u64,
    config: SimConfig,
    rng: SmallRng,
    now_ms: u64,
    seq: u64,
    step: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    brokers: BTreeMap<BrokerId, Broker>,
    controller: Controller,
    network: Network,
    mix: Mix,
    checker: Checker,
    settling: bool,
    next_produce_id: u64,
    consumer_position: Offset,
    trace: VecDeque<String>,
    report: SimReport,
}

const TRACE_LEN: usize = 60;

impl Sim {
    pub fn new(seed: u64, config: SimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let faults = NetworkFaults::draw(&mut rng);
        let mix = Mix::draw(&mut rng);
        let ids: Vec<BrokerId> = (1..=config.brokers).map(BrokerId).collect();
        let nodes = usize::try_from(config.brokers).expect("positive") + 1;
        let brokers = ids
            .iter()
            .map(|id| {
                let replica = Box::new(Replica::new(*id, config.replica.clone(), ModelLog::new()));
                (
                    *id,
                    Broker {
                        node: Node::Up(replica),
                        incarnation: 0,
                        ticks: 0,
                    },
                )
            })
            .collect();
        let controller = Controller::new(ids, config.lease_ms);
        let mut sim = Self {
            seed,
            config,
            rng,
            now_ms: 0,
            seq: 0,
            step: 0,
            queue: BinaryHeap::new(),
            brokers,
            controller,
            network: Network::new(nodes, faults),
            mix,
            checker: Checker::default(),
            settling: false,
            next_produce_id: 1,
            consumer_position: Offset(0),
            trace: VecDeque::new(),
            report: SimReport {
                seed,
                ..SimReport::default()
            },
        };
        sim.start();
        sim
    }

    fn start(&mut self) {
        let ids: Vec<BrokerId> = self.brokers.keys().copied().collect();
        for id in ids {
            self.schedule(
                0,
                Event::Tick {
                    broker: id,
                    incarnation: 0,
                },
            );
            self.send(id, CONTROLLER, Message::Heartbeat { incarnation: 0 });
        }
        self.broadcast_state();
        self.schedule(0, Event::ControllerTick);
        self.schedule(1, Event::Produce);
        self.schedule(1, Event::Consume);
        let first_fault = self.rng.random_range(1..=self.mix.fault_ms_max);
        self.schedule(first_fault, Event::Fault);
        self.schedule(self.config.run_ms, Event::Settle);
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at_ms: self.now_ms + after_ms,
            seq: self.seq,
            event,
        }));
    }

    fn send(&mut self, from: BrokerId, to: BrokerId, message: Message) {
        for delay in self.network.delays(&mut self.rng) {
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
    }

    fn broadcast_state(&mut self) {
        let state = self.controller.state().clone();
        let ids: Vec<BrokerId> = self.brokers.keys().copied().collect();
        for id in ids {
            self.send(CONTROLLER, id, Message::PartitionState(state.clone()));
        }
    }

    /// Runs to the end; the first broken invariant (or a panic in the replica, which the
    /// caller catches) ends the run.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        let end_ms = self.config.run_ms + self.config.settle_ms;
        while let Some(Reverse(scheduled)) = self.queue.pop() {
            if scheduled.at_ms > end_ms {
                break;
            }
            self.now_ms = scheduled.at_ms;
            self.step += 1;
            if self.trace.len() == TRACE_LEN {
                self.trace.pop_front();
            }
            self.trace
                .push_back(format!("t={} {:?}", self.now_ms, scheduled.event));
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(scheduled.event).and_then(|()| self.check())
            }));
            let result =
                step.unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))));
            if let Err(violation) = result {
                return Err(self.failure(violation));
            }
        }
        if let Err(violation) = self.final_check() {
            return Err(self.failure(violation));
        }
        self.report.steps = self.step;
        self.report.acked_batches = self.checker.acked_batches;
        self.report.leader_epochs = self.controller.state().leader_epoch.0;
        Ok(self.report)
    }

    fn failure(&self, violation: Violation) -> SimFailure {
        SimFailure {
            seed: self.seed,
            step: self.step,
            now_ms: self.now_ms,
            violation,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver { from, to, message } => self.deliver(from, to, message),
            Event::Tick {
                broker,
                incarnation,
            } => self.broker_tick(broker, incarnation),
            Event::FlushDone {
                broker,
                incarnation,
            } => self.flush_done(broker, incarnation),
            Event::ControllerTick => {
                // Brokers hear of a change at once, and of the state again now and then in
                // case that message was lost.
                let changed = self.controller.tick(self.now_ms);
                if changed || self.now_ms % self.config.metadata_broadcast_ms < self.config.tick_ms
                {
                    self.broadcast_state();
                }
                self.schedule(self.config.tick_ms, Event::ControllerTick);
                Ok(())
            }
            Event::Produce => self.produce(),
            Event::Consume => self.consume(),
            Event::Fault => {
                self.fault();
                Ok(())
            }
            Event::Restart { broker } => {
                self.restart(broker);
                Ok(())
            }
            Event::Heal => {
                self.network.heal();
                Ok(())
            }
            Event::Settle => {
                self.settling = true;
                self.network.heal();
                self.network.faults = NetworkFaults::none();
                let down: Vec<BrokerId> = self
                    .brokers
                    .iter()
                    .filter(|(_, broker)| matches!(broker.node, Node::Down(_)))
                    .map(|(id, _)| *id)
                    .collect();
                for id in down {
                    self.restart(id);
                }
                Ok(())
            }
        }
    }

    fn deliver(&mut self, from: BrokerId, to: BrokerId, message: Message) -> Result<(), Violation> {
        if !self.network.connected(from, to) {
            return Ok(());
        }
        let now_ms = self.now_ms;
        if to == CONTROLLER {
            match message {
                Message::Heartbeat { incarnation } => {
                    if self.controller.on_heartbeat(from, incarnation, now_ms) {
                        let state = self.controller.state().clone();
                        self.send(CONTROLLER, from, Message::PartitionState(state));
                    }
                }
                Message::AlterPartition(request) => {
                    let response = self.controller.on_alter_partition(&request);
                    let applied = response.result.is_ok();
                    self.send(CONTROLLER, from, Message::AlterPartitionResponse(response));
                    if applied {
                        self.broadcast_state();
                    }
                }
                _ => unreachable!("brokers send the controller heartbeats and proposals only"),
            }
            return Ok(());
        }
        let Some(Broker {
            node: Node::Up(replica),
            ..
        }) = self.brokers.get_mut(&to)
        else {
            return Ok(());
        };
        let mut out = Vec::new();
        match message {
            Message::Fetch(request) => {
                let response = replica.on_fetch(from, &request, now_ms, &mut out);
                self.send(to, from, Message::FetchResponse(response));
            }
            Message::FetchResponse(response) => {
                replica.on_fetch_response(from, response, now_ms, &mut out)
            }
            Message::PartitionState(state) => replica.on_partition_state(state, now_ms, &mut out),
            Message::AlterPartitionResponse(response) => {
                replica.on_alter_partition_response(response, now_ms, &mut out);
            }
            Message::AlterPartition(_) | Message::Heartbeat { .. } => {
                unreachable!("only the controller receives these")
            }
        }
        self.perform(to, out)
    }

    fn perform(&mut self, broker: BrokerId, actions: Vec<Action>) -> Result<(), Violation> {
        for action in actions {
            match action {
                Action::Fetch { to, request } => self.send(broker, to, Message::Fetch(request)),
                Action::AlterPartition(request) => {
                    self.send(broker, CONTROLLER, Message::AlterPartition(request));
                }
                Action::Flush => {
                    let incarnation = self.brokers[&broker].incarnation;
                    let delay = self.rng.random_range(0..=self.mix.flush_ms_max);
                    self.schedule(
                        delay,
                        Event::FlushDone {
                            broker,
                            incarnation,
                        },
                    );
                }
                Action::Produced { id, result } => {
                    if let Ok(range) = result {
                        let Node::Up(replica) = &self.brokers[&broker].node else {
                            unreachable!("acknowledged by a running broker")
                        };
                        self.checker.on_ack(replica.log(), range, id.0)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The broker if it still runs as `incarnation` (timers of a crashed one are void).
    fn running(&mut self, id: BrokerId, incarnation: u64) -> Option<&mut Broker> {
        let broker = self.brokers.get_mut(&id).expect("known broker");
        (broker.incarnation == incarnation && matches!(broker.node, Node::Up(_))).then_some(broker)
    }

    fn broker_tick(&mut self, id: BrokerId, incarnation: u64) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let heartbeat_every = (self.config.heartbeat_ms / self.config.tick_ms).max(1);
        let Some(broker) = self.running(id, incarnation) else {
            return Ok(());
        };
        broker.ticks += 1;
        let Node::Up(replica) = &mut broker.node else {
            unreachable!("running")
        };
        let heartbeat = broker.ticks.is_multiple_of(heartbeat_every);
        let mut out = Vec::new();
        replica.tick(now_ms, &mut out);
        if heartbeat {
            self.send(id, CONTROLLER, Message::Heartbeat { incarnation });
        }
        self.schedule(
            self.config.tick_ms,
            Event::Tick {
                broker: id,
                incarnation,
            },
        );
        self.perform(id, out)
    }

    fn flush_done(&mut self, id: BrokerId, incarnation: u64) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let Some(Broker {
            node: Node::Up(replica),
            ..
        }) = self.running(id, incarnation)
        else {
            return Ok(());
        };
        replica.log_mut().flush();
        let mut out = Vec::new();
        replica.on_durable(now_ms, &mut out);
        self.perform(id, out)
    }

    fn produce(&mut self) -> Result<(), Violation> {
        if self.settling {
            return Ok(());
        }
        let next = self.rng.random_range(1..=self.mix.produce_ms_max);
        self.schedule(next, Event::Produce);
        let target = if self.rng.random_bool(0.8) {
            let Some(leader) = self.controller.state().leader else {
                return Ok(());
            };
            leader
        } else {
            BrokerId(self.rng.random_range(1..=self.config.brokers))
        };
        let id = self.next_produce_id;
        self.next_produce_id += 1;
        let record_count = self.rng.random_range(1..=3);
        let now_ms = self.now_ms;
        let Some(Broker {
            node: Node::Up(replica),
            ..
        }) = self.brokers.get_mut(&target)
        else {
            return Ok(());
        };
        let epoch = replica.leader_epoch();
        let payload = Bytes::copy_from_slice(&id.to_le_bytes());
        let mut out = Vec::new();
        match replica.produce(
            ProduceId(id),
            record_count,
            payload,
            Acks::All,
            now_ms,
            &mut out,
        ) {
            Ok(_) => self.checker.on_write(target, epoch)?,
            Err(ProduceError::NotLeaderOrFollower | ProduceError::NotEnoughReplicas { .. }) => {
                self.report.produce_refused += 1;
            }
            Err(ProduceError::LogFailed(_)) => unreachable!("the model log does not fail"),
        }
        self.perform(target, out)
    }

    fn consume(&mut self) -> Result<(), Violation> {
        let next = self.rng.random_range(1..=self.mix.consume_ms_max);
        self.schedule(next, Event::Consume);
        let target = self.controller.state().leader.unwrap_or(BrokerId(1));
        if self.rng.random_bool(0.1) {
            // Read again from an earlier offset: what was seen must not have changed.
            self.consumer_position = Offset(self.rng.random_range(0..=self.consumer_position.0));
        }
        let Some(Broker {
            node: Node::Up(replica),
            ..
        }) = self.brokers.get(&target)
        else {
            return Ok(());
        };
        let Ok(high_watermark) = replica.client_high_watermark() else {
            return Ok(());
        };
        let position = self.consumer_position.min(high_watermark);
        let Ok(batches) = replica.read(position, 8) else {
            return Ok(());
        };
        let epoch = replica.leader_epoch();
        if let Some(last) = batches.last() {
            self.consumer_position = last.next_offset().min(high_watermark);
        }
        self.checker.on_consume(epoch, high_watermark, &batches)
    }

    fn fault(&mut self) {
        if self.settling {
            return;
        }
        let next = self.rng.random_range(1..=self.mix.fault_ms_max);
        self.schedule(next, Event::Fault);
        let total = self.mix.crash_weight + self.mix.partition_weight + 1;
        let pick = self.rng.random_range(0..total);
        if pick < self.mix.crash_weight {
            let id = BrokerId(self.rng.random_range(1..=self.config.brokers));
            self.crash(id);
            let restart_ms = self.rng.random_range(10..=600);
            self.schedule(restart_ms, Event::Restart { broker: id });
        } else if pick < self.mix.crash_weight + self.mix.partition_weight {
            self.report.partitions += 1;
            self.network.partition(&mut self.rng);
            let heal_ms = self.rng.random_range(20..=800);
            self.schedule(heal_ms, Event::Heal);
        }
    }

    fn crash(&mut self, id: BrokerId) {
        let broker = self.brokers.get_mut(&id).expect("known broker");
        let Node::Up(_) = &broker.node else { return };
        self.report.crashes += 1;
        let Node::Up(replica) = std::mem::replace(&mut broker.node, Node::Down(ModelLog::new()))
        else {
            unreachable!("checked just above")
        };
        let mut log = replica.into_log();
        log.crash();
        broker.node = Node::Down(log);
        broker.incarnation += 1;
    }

    fn restart(&mut self, id: BrokerId) {
        let config = self.config.replica.clone();
        let broker = self.brokers.get_mut(&id).expect("known broker");
        let Node::Down(log) = &mut broker.node else {
            return;
        };
        let log = std::mem::take(log);
        broker.node = Node::Up(Box::new(Replica::new(id, config, log)));
        broker.incarnation += 1;
        let incarnation = broker.incarnation;
        self.checker.on_restart(id);
        self.schedule(
            0,
            Event::Tick {
                broker: id,
                incarnation,
            },
        );
        self.send(id, CONTROLLER, Message::Heartbeat { incarnation });
    }

    fn check(&mut self) -> Result<(), Violation> {
        for (id, broker) in &mut self.brokers {
            let (log, running) = match &mut broker.node {
                Node::Up(replica) => (replica.log_mut(), true),
                Node::Down(log) => (log, false),
            };
            if let Some(from) = log.take_removed_from() {
                self.report.truncations += u64::from(running);
                self.checker.on_removed(*id, from);
            }
        }
        for (id, broker) in &self.brokers {
            let Node::Up(replica) = &broker.node else {
                continue;
            };
            self.checker.check_replica(
                *id,
                replica.log(),
                replica.high_watermark(),
                replica.leader_epoch(),
            )?;
            if let Ok(high_watermark) = replica.client_high_watermark() {
                self.checker
                    .on_shown(replica.leader_epoch(), high_watermark)?;
            }
        }
        let isr = &self.controller.state().isr;
        for member in isr {
            self.checker
                .check_isr_member(*member, self.brokers[member].log())?;
        }
        let isr_durable = isr
            .iter()
            .map(|member| (*member, self.brokers[member].log().durable_end()));
        let Some((member, durable)) = isr_durable.min_by_key(|(_, durable)| *durable) else {
            return Ok(());
        };
        for (id, broker) in &self.brokers {
            if let Node::Up(replica) = &broker.node
                && replica.is_leader()
                && replica.high_watermark() > durable
            {
                return Err(format!(
                    "leader {} (epoch {}) has high watermark {} past ISR member {}'s durable end {}",
                    id.0,
                    replica.leader_epoch().0,
                    replica.high_watermark().0,
                    member.0,
                    durable.0
                ));
            }
        }
        Ok(())
    }

    /// After settling with no faults: a leader exists, its high watermark covers every
    /// acknowledged record, and it serves them.
    fn final_check(&mut self) -> Result<(), Violation> {
        let Some(leader) = self.controller.state().leader else {
            return Err("no leader after settling".to_owned());
        };
        let Node::Up(replica) = &self.brokers[&leader].node else {
            return Err(format!("leader {} is down after settling", leader.0));
        };
        let high_watermark = replica
            .client_high_watermark()
            .map_err(|error| format!("leader {} after settling: {error}", leader.0))?;
        let acked_end = self.checker.acked_end();
        if high_watermark < acked_end {
            return Err(format!(
                "high watermark {} below acknowledged end {}",
                high_watermark.0, acked_end.0
            ));
        }
        self.report.high_watermark = high_watermark.0;
        let batches = replica.log().read(Offset(0), high_watermark, usize::MAX);
        let epoch: LeaderEpoch = replica.leader_epoch();
        self.checker.on_consume(epoch, high_watermark, &batches)
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<SimReport, SimFailure> {
    Sim::new(seed, config.clone()).run()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The seed to replay from `SIM_SEED`, if set.
pub fn seed_from_env() -> Option<u64> {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|seed| seed.trim().parse().ok())
}
