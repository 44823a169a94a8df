//! Consumer group members for `consume --group` and the `rebalance` benchmark.
//!
//! A member joins through `sluice_net::client::group`, resumes each assigned partition at the
//! group's committed offset (or the run's start offset when nothing is committed), fetches
//! from each partition leader over its own connection, commits its positions every
//! `commit_interval`, when the group rebalances (before rejoining, so the next owner resumes
//! exactly where it stopped) and when it stops, then leaves the group.
//!
//! Fetches are pipelined through a reader task per leader connection, so the member reacts to
//! a rebalance signal while a long-poll fetch is outstanding: connections with a fetch in
//! flight are dropped at a rebalance (their answers belong to the old assignment) and
//! reopened when needed. Every member publishes a [`MemberStatus`] (generation, when it was
//! assigned, when it first received a record under that assignment) that the rebalance
//! benchmark watches.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::timer::Timer;
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use sluice_net::client::admin::{self, FetchLimits};
use sluice_net::client::group::{Assignment, GroupMember, GroupSettings};
use sluice_net::client::{Connection, ConnectionConfig, ConnectionWriter};

use crate::load::{Accounting, Clock, Tally};

/// What every member of a run shares.
pub struct MemberConfig {
    pub bootstrap: String,
    pub topic: String,
    pub settings: GroupSettings,
    /// Partition → leader `host:port`.
    pub leaders: BTreeMap<i32, String>,
    /// Where a partition starts when the group committed nothing for it.
    pub start_offsets: BTreeMap<i32, i64>,
    pub fetch: FetchLimits,
    pub accounting: Accounting,
    /// Commit positions this often while consuming; `None`: only at rebalances and the end.
    pub commit_interval: Option<Duration>,
    /// Stop fetching once a record arrived under the current assignment (the rebalance
    /// benchmark's members, which must not drain the topic).
    pub probe: bool,
    /// Stop at this instant (commit, leave) unless told to earlier.
    pub end: Instant,
}

/// What a member is doing; written by the member, read by whoever runs it.
#[derive(Debug, Clone, Default)]
pub struct MemberStatus {
    pub generation: i32,
    pub partitions: usize,
    /// When the current assignment arrived.
    pub assigned_at: Option<Instant>,
    /// When the first record under the current assignment arrived (the assignment instant
    /// for a member given no partitions: it has nothing to wait for).
    pub consuming_at: Option<Instant>,
    /// When it sent LeaveGroup.
    pub leaving_at: Option<Instant>,
    pub finished: bool,
    pub generations: u64,
    pub commits: u64,
    pub commit_errors: u64,
    /// Records delivered over the whole run, measured window or not.
    pub delivered: u64,
}

/// A member's status and its stop switch.
#[derive(Default)]
pub struct MemberControl {
    pub status: RefCell<MemberStatus>,
    stop: std::cell::Cell<bool>,
    stop_signal: RefCell<Option<Rc<glommio::sync::Semaphore>>>,
}

impl MemberControl {
    /// Asks the member to commit and leave now.
    pub fn stop(&self) {
        self.stop.set(true);
        if let Some(signal) = self.stop_signal.borrow().as_ref() {
            signal.signal(1);
        }
    }

    /// A new assignment of `partitions` partitions in `generation` arrived at `at`.
    fn assigned(&self, generation: i32, partitions: usize, at: Instant) {
        let mut status = self.status.borrow_mut();
        status.generation = generation;
        status.partitions = partitions;
        status.assigned_at = Some(at);
        status.consuming_at = (partitions == 0).then_some(at);
        status.generations += 1;
    }

    /// `records` arrived at `now`; `first` under the current assignment.
    fn delivered(&self, records: u64, first: bool, now: Instant) {
        let mut status = self.status.borrow_mut();
        status.delivered += records;
        if first {
            status.consuming_at = Some(now);
        }
    }
}

type FetchAnswer = (u64, Result<FetchResponse, String>);

/// One connection to a partition leader with a reader task forwarding answers.
struct FetchLane {
    id: u64,
    writer: ConnectionWriter,
    _reader: glommio::Task<()>,
    busy: bool,
    partitions: Vec<i32>,
}

async fn open_lane(
    addr: &str,
    id: u64,
    answers: &Rc<LocalSender<FetchAnswer>>,
) -> Result<FetchLane> {
    let connection = Connection::connect(
        addr,
        ConnectionConfig {
            client_id: "sluice-perf-group".into(),
            ..ConnectionConfig::default()
        },
    )
    .await
    .with_context(|| format!("connecting to {addr}"))?;
    let (writer, mut reader) = connection.split();
    let answers = answers.clone();
    let task = glommio::spawn_local(async move {
        loop {
            let answer = reader
                .recv::<FetchRequest>()
                .await
                .map_err(|e| e.to_string());
            let failed = answer.is_err();
            if answers.send((id, answer)).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(FetchLane {
        id,
        writer,
        _reader: task,
        busy: false,
        partitions: Vec::new(),
    })
}

enum Event {
    Answer(FetchAnswer),
    Rebalance,
    Stop,
    Tick,
}

/// The member's connections to partition leaders, one per leader, each fetching the
/// member's partitions it leads.
struct Lanes {
    by_leader: BTreeMap<String, FetchLane>,
    next_id: u64,
    answers: Rc<LocalSender<FetchAnswer>>,
}

impl Lanes {
    /// Gives each lane the partitions of `positions` its leader leads, opening a
    /// connection to a leader without one.
    async fn assign(
        &mut self,
        positions: &[(i32, i64)],
        leaders: &BTreeMap<i32, String>,
    ) -> Result<()> {
        for lane in self.by_leader.values_mut() {
            lane.partitions.clear();
        }
        for (p, _) in positions {
            let addr = leaders
                .get(p)
                .ok_or_else(|| anyhow!("no leader known for partition {p}"))?;
            if !self.by_leader.contains_key(addr) {
                self.next_id += 1;
                self.by_leader.insert(
                    addr.clone(),
                    open_lane(addr, self.next_id, &self.answers).await?,
                );
            }
            self.by_leader
                .get_mut(addr)
                .expect("just ensured")
                .partitions
                .push(*p);
        }
        Ok(())
    }

    /// Sends a Fetch from `positions` on every idle lane that has partitions.
    async fn fetch(&mut self, positions: &[(i32, i64)], config: &MemberConfig) -> Result<()> {
        for lane in self.by_leader.values_mut() {
            if lane.busy || lane.partitions.is_empty() {
                continue;
            }
            let wanted: Vec<(i32, i64)> = positions
                .iter()
                .filter(|(p, _)| lane.partitions.contains(p))
                .copied()
                .collect();
            lane.writer
                .send(&admin::fetch_request(&config.topic, &wanted, config.fetch))
                .await
                .map_err(|e| anyhow!("sending Fetch: {e}"))?;
            lane.busy = true;
        }
        Ok(())
    }
}

/// Runs one member until `config.end` or until `control` is stopped.
pub async fn run_member(
    config: Rc<MemberConfig>,
    control: Rc<MemberControl>,
    tally: Rc<RefCell<Tally>>,
    clock: Clock,
) -> Result<()> {
    let stop_signal = Rc::new(glommio::sync::Semaphore::new(0));
    *control.stop_signal.borrow_mut() = Some(stop_signal.clone());
    let member = GroupMember::connect(&config.bootstrap, config.settings.clone())
        .await
        .with_context(|| format!("group {}", config.settings.group_id))?;
    let (answers_tx, answers_rx): (LocalSender<FetchAnswer>, LocalReceiver<FetchAnswer>) =
        local_channel::new_unbounded();
    let mut lanes = Lanes {
        by_leader: BTreeMap::new(),
        next_id: 0,
        answers: Rc::new(answers_tx),
    };
    let mut positions: Vec<(i32, i64)> = Vec::new();

    while !control.stop.get() && Instant::now() < config.end {
        let assignment = member.join().await?;
        let assigned_at = Instant::now();
        positions = committed_positions(&member, &config, &assignment).await?;
        lanes.assign(&positions, &config.leaders).await?;
        control.assigned(assignment.generation_id, positions.len(), assigned_at);
        let mut last_commit = Instant::now();
        let mut received = false;
        loop {
            if !(config.probe && received) {
                lanes.fetch(&positions, &config).await?;
            }
            let mut wake = config.end;
            if let Some(interval) = config.commit_interval {
                wake = wake.min(last_commit + interval);
            }
            match next_event(&answers_rx, &member, &stop_signal, wake).await {
                Event::Answer((id, answer)) => {
                    let Some(lane) = lanes.by_leader.values_mut().find(|l| l.id == id) else {
                        continue;
                    };
                    lane.busy = false;
                    let response = answer.map_err(|e| anyhow!("fetching: {e}"))?;
                    let now = Instant::now();
                    let mut tally = tally.borrow_mut();
                    if response.error_code != 0 {
                        tally.errors += 1;
                        continue;
                    }
                    let delivered = config.accounting.account(
                        &response,
                        &mut positions,
                        &mut tally,
                        clock,
                        now,
                    )?;
                    if delivered > 0 {
                        control.delivered(delivered, !received, now);
                        received = true;
                    }
                }
                Event::Tick => {
                    if Instant::now() >= config.end {
                        break;
                    }
                    if config.commit_interval.is_some() {
                        commit(&member, &config.topic, &positions, &control).await?;
                        last_commit = Instant::now();
                    }
                }
                Event::Rebalance => {
                    // Revoked: hand the positions over before rejoining. Connections with a
                    // fetch in flight carry answers for the old assignment; drop them.
                    commit(&member, &config.topic, &positions, &control).await?;
                    lanes.by_leader.retain(|_, lane| !lane.busy);
                    break;
                }
                Event::Stop => break,
            }
        }
        if member.rebalance_needed() && !control.stop.get() && Instant::now() < config.end {
            continue;
        }
        break;
    }
    if !member.rebalance_needed() {
        commit(&member, &config.topic, &positions, &control).await?;
    }
    control.status.borrow_mut().leaving_at = Some(Instant::now());
    member.leave().await?;
    control.status.borrow_mut().finished = true;
    Ok(())
}

/// Where the member starts in each partition of `assignment` of the run's topic: the
/// group's committed offset, or the run's start offset when nothing is committed.
async fn committed_positions(
    member: &GroupMember,
    config: &MemberConfig,
    assignment: &Assignment,
) -> Result<Vec<(i32, i64)>> {
    let mine: Vec<i32> = assignment
        .topic_partitions()
        .filter(|(t, _)| *t == config.topic)
        .map(|(_, p)| p)
        .collect();
    let asked: Vec<(&str, i32)> = mine.iter().map(|p| (config.topic.as_str(), *p)).collect();
    let committed = member.committed(&asked).await?;
    Ok(mine
        .iter()
        .zip(committed)
        .map(|(p, c)| {
            let start = config.start_offsets.get(p).copied().unwrap_or(0);
            (*p, c.unwrap_or(start))
        })
        .collect())
}

/// Waits for whichever comes first: a fetch answer, a rebalance, a stop, or `wake`.
async fn next_event(
    answers: &LocalReceiver<FetchAnswer>,
    member: &GroupMember,
    stop_signal: &glommio::sync::Semaphore,
    wake: Instant,
) -> Event {
    let now = Instant::now();
    or(
        or(
            async { answers.recv().await.map_or(Event::Stop, Event::Answer) },
            async {
                member.rebalance_signalled().await;
                Event::Rebalance
            },
        ),
        or(
            async {
                let _ = stop_signal.acquire(1).await;
                Event::Stop
            },
            async {
                Timer::new(wake.saturating_duration_since(now)).await;
                Event::Tick
            },
        ),
    )
    .await
}

/// Commits `positions`; a refusal that ends the generation is counted, not fatal (the
/// member rejoins next).
async fn commit(
    member: &GroupMember,
    topic: &str,
    positions: &[(i32, i64)],
    control: &MemberControl,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    let offsets: Vec<(&str, i32, i64)> = positions.iter().map(|(p, o)| (topic, *p, *o)).collect();
    match member.commit(&offsets).await {
        Ok(()) => control.status.borrow_mut().commits += 1,
        Err(e) if e.code().is_some() => control.status.borrow_mut().commit_errors += 1,
        Err(e) => return Err(e).context("OffsetCommit"),
    }
    Ok(())
}
