//! The partition replica: one partition's replication state on one broker, as a pure state
//! machine. Inputs are method calls carrying `now_ms` (controller decisions, fetches and
//! their responses, fsync completions, produce requests, timer ticks); outputs are
//! `Action`s pushed to `out` for the caller to perform.
//!
//! The rules, each with a unit test at the bottom:
//! - Leader epochs fence: a fetch naming an older epoch gets FencedLeaderEpoch, a newer
//!   one UnknownLeaderEpoch; a controller state is applied only if it is newer by
//!   (leader epoch, partition epoch).
//! - The high watermark is the smallest durable offset across the ISR, and never moves
//!   back. While an ISR change is proposed it is computed over the old and the proposed ISR
//!   together (Kafka's "maximal ISR"), so the controller's ISR is always a subset of the
//!   replicas the high watermark waited for: any replica it elects holds every committed
//!   record.
//! - A follower's durable offset counts only from a fetch whose last fetched epoch matches
//!   the leader's log, so it names a prefix identical to the leader's.
//! - A follower truncates a divergent tail from the diverging epoch in the fetch response,
//!   and never below its high watermark.
//! - `acks=all` is answered when the high watermark passes the batch; the ISR size is
//!   checked against `min.insync.replicas` before the append and again at that point.
//! - A new leader shows its high watermark only once it reaches the start of its epoch
//!   (before that it may be below what the previous leader showed): OffsetNotAvailable.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use sluice_engine::{LeaderEpoch, Offset};

use crate::batch::{Batch, BrokerId};
use crate::error::{AckError, FetchError, ProduceError};
use crate::log::ReplicaLog;
use crate::message::{
    AlterPartitionRequest, AlterPartitionResponse, FetchData, FetchRequest, FetchResponse,
    PartitionEpoch, PartitionState,
};

#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Kafka's `replica.lag.time.max.ms`: a follower not caught up for this long leaves
    /// the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `min.insync.replicas`, checked for `acks=all`.
    pub min_insync_replicas: usize,
    /// How long a follower waits after an empty or failed fetch.
    pub fetch_backoff_ms: u64,
    /// A fetch with no answer after this long is sent again.
    pub fetch_timeout_ms: u64,
    /// An ISR proposal with no answer after this long is sent again.
    pub alter_partition_retry_ms: u64,
    pub fetch_batches_max: usize,
    /// Wrong on purpose: counts log end offsets instead of durable offsets toward the high
    /// watermark, so a crash can lose acknowledged records. It exists so that a test can
    /// prove the simulator catches that bug; never set it elsewhere.
    pub hw_on_log_end: bool,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            fetch_backoff_ms: 500,
            fetch_timeout_ms: 30_000,
            alter_partition_retry_ms: 1_000,
            fetch_batches_max: 64,
            hw_on_log_end: false,
        }
    }
}

/// Names a produce request so its acknowledgement can find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProduceId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=1`: still answered only at the high watermark, but without the
    /// `min.insync.replicas` checks.
    Leader,
    /// `acks=all` (-1).
    All,
}

/// The offsets of an appended batch: `[base_offset, next_offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub base_offset: Offset,
    pub next_offset: Offset,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a fetch to the leader. If it is lost, `tick` sends another after
    /// `fetch_timeout_ms`.
    Fetch { to: BrokerId, request: FetchRequest },
    /// Send an ISR proposal to the controller; resent after `alter_partition_retry_ms`.
    AlterPartition(AlterPartitionRequest),
    /// Start an fsync of the log, then call `on_durable`. Asked once until answered.
    Flush,
    /// Answer a produce request.
    Produced {
        id: ProduceId,
        result: Result<OffsetRange, AckError>,
    },
}

#[derive(Debug)]
struct Waiter {
    id: ProduceId,
    range: OffsetRange,
    acks: Acks,
}

#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    /// The largest durable offset reported by a fetch that matched our log.
    durable: Option<Offset>,
    last_fetch_ms: u64,
    last_caught_up_ms: u64,
    /// Our log end when that replica last fetched.
    log_end_at_last_fetch: Offset,
}

#[derive(Debug)]
struct PendingIsr {
    request: AlterPartitionRequest,
    sent_ms: u64,
    /// The controller refused it, so it can never apply; stop resending and wait for the
    /// newer partition state.
    refused: bool,
}

#[derive(Debug)]
struct Leader {
    epoch_start_offset: Offset,
    followers: BTreeMap<BrokerId, FollowerProgress>,
    pending_isr: Option<PendingIsr>,
    /// In offset order; completed from the front as the high watermark moves.
    waiters: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Follower {
    leader: BrokerId,
    fetch_seq: u64,
    /// The sequence number and send time of the fetch in flight.
    in_flight: Option<(u64, u64)>,
    next_fetch_ms: u64,
}

#[derive(Debug)]
enum Role {
    /// No state from the controller yet, or the partition has no leader.
    Idle,
    Leader(Leader),
    Follower(Follower),
}

/// One partition's replica on one broker.
#[derive(Debug)]
pub struct Replica<L: ReplicaLog> {
    id: BrokerId,
    config: ReplicaConfig,
    log: L,
    state: PartitionState,
    role: Role,
    high_watermark: Offset,
    flush_requested: bool,
}

impl<L: ReplicaLog> Replica<L> {
    /// A replica over an existing log, waiting for the controller's state. The high
    /// watermark starts at 0 and is learned again.
    pub fn new(id: BrokerId, config: ReplicaConfig, log: L) -> Self {
        let state = PartitionState {
            leader: None,
            leader_epoch: LeaderEpoch(-1),
            partition_epoch: PartitionEpoch(-1),
            isr: Vec::new(),
            replicas: Vec::new(),
        };
        Self {
            id,
            config,
            log,
            state,
            role: Role::Idle,
            high_watermark: Offset(0),
            flush_requested: false,
        }
    }

    pub fn id(&self) -> BrokerId {
        self.id
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// The log, for the caller's flushes. Appends and truncation go through the replica.
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    pub fn into_log(self) -> L {
        self.log
    }

    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state.leader_epoch
    }

    /// This replica's high watermark, known or not.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The ISR the high watermark waits for: the current one and a proposed one together.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.state.isr.clone();
        if let Role::Leader(Leader {
            pending_isr: Some(pending),
            ..
        }) = &self.role
        {
            isr.extend(&pending.request.new_isr);
            isr.sort();
            isr.dedup();
        }
        isr
    }

    /// The high watermark as a leader shows it to clients (ListOffsets, consumer fetch).
    pub fn client_high_watermark(&self) -> Result<Offset, FetchError> {
        let Role::Leader(leader) = &self.role else {
            return Err(FetchError::NotLeaderOrFollower);
        };
        if self.high_watermark < leader.epoch_start_offset {
            return Err(FetchError::OffsetNotAvailable);
        }
        Ok(self.high_watermark)
    }

    /// A consumer's fetch: whole batches from `from` up to the high watermark.
    pub fn read(&self, from: Offset, batches_max: usize) -> Result<Vec<Batch>, FetchError> {
        let high_watermark = self.client_high_watermark()?;
        if from > high_watermark || from < Offset(0) {
            return Err(FetchError::OffsetOutOfRange {
                requested: from,
                high_watermark,
            });
        }
        Ok(self.log.read(from, high_watermark, batches_max))
    }

    /// The controller's state for this partition. Older or equal versions are ignored,
    /// since the network may reorder them.
    pub fn on_partition_state(
        &mut self,
        state: PartitionState,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) {
        if state.version() <= self.state.version() {
            return;
        }
        if state.leader_epoch == self.state.leader_epoch {
            self.state = state;
            self.on_isr_changed(now_ms, out);
            return;
        }
        if state.leader == Some(self.id) && self.log.latest_epoch() >= Some(state.leader_epoch) {
            // Our log already holds this epoch: we led it before a restart and the
            // controller has not yet seen the restart. Leading it again could write other
            // batches under the same epoch; wait for a newer one.
            return;
        }
        self.step_down(out);
        self.role = match state.leader {
            Some(leader) if leader == self.id => {
                self.log.assign_epoch(state.leader_epoch);
                let followers = state
                    .replicas
                    .iter()
                    .filter(|replica| **replica != self.id)
                    .map(|replica| {
                        let progress = FollowerProgress {
                            durable: None,
                            last_fetch_ms: now_ms,
                            last_caught_up_ms: now_ms,
                            log_end_at_last_fetch: self.log.log_end(),
                        };
                        (*replica, progress)
                    })
                    .collect();
                Role::Leader(Leader {
                    epoch_start_offset: self.log.log_end(),
                    followers,
                    pending_isr: None,
                    waiters: VecDeque::new(),
                })
            }
            Some(leader) => Role::Follower(Follower {
                leader,
                fetch_seq: 0,
                in_flight: None,
                next_fetch_ms: now_ms,
            }),
            None => Role::Idle,
        };
        self.state = state;
        // A new leader alone in its ISR knows its high watermark at once: no fetch or
        // flush may come to recompute it.
        self.update_high_watermark(out);
        self.tick(now_ms, out);
    }

    /// Appends a produce request's batch. The answer comes later as `Action::Produced`.
    pub fn produce(
        &mut self,
        id: ProduceId,
        record_count: u32,
        payload: Bytes,
        acks: Acks,
        _now_ms: u64,
        out: &mut Vec<Action>,
    ) -> Result<OffsetRange, ProduceError> {
        let Role::Leader(_) = &self.role else {
            return Err(ProduceError::NotLeaderOrFollower);
        };
        let isr = self.state.isr.len();
        let min_insync_replicas = self.config.min_insync_replicas;
        if acks == Acks::All && isr < min_insync_replicas {
            return Err(ProduceError::NotEnoughReplicas {
                isr,
                min_insync_replicas,
            });
        }
        let base_offset =
            self.log
                .append_as_leader(self.state.leader_epoch, record_count, payload)?;
        let range = OffsetRange {
            base_offset,
            next_offset: self.log.log_end(),
        };
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("checked above")
        };
        leader.waiters.push_back(Waiter { id, range, acks });
        self.request_flush(out);
        self.update_high_watermark(out);
        Ok(range)
    }

    /// An fsync finished; `log().durable_end()` says how far.
    pub fn on_durable(&mut self, _now_ms: u64, out: &mut Vec<Action>) {
        self.flush_requested = false;
        if self.log.durable_end() < self.log.log_end() {
            self.request_flush(out);
        }
        if self.is_leader() {
            self.update_high_watermark(out);
        }
    }

    /// Timers: a follower's next fetch, a leader's ISR check and proposal resend.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        match &mut self.role {
            Role::Idle => {}
            Role::Follower(follower) => {
                let timed_out = follower
                    .in_flight
                    .is_none_or(|(_, sent_ms)| now_ms >= sent_ms + self.config.fetch_timeout_ms);
                if timed_out && now_ms >= follower.next_fetch_ms {
                    self.send_fetch(now_ms, out);
                }
            }
            Role::Leader(leader) => {
                if let Some(pending) = &mut leader.pending_isr
                    && !pending.refused
                    && now_ms >= pending.sent_ms + self.config.alter_partition_retry_ms
                {
                    pending.sent_ms = now_ms;
                    out.push(Action::AlterPartition(pending.request.clone()));
                }
                self.maybe_propose_isr(now_ms, out);
            }
        }
    }

    /// Leader side of a follower's fetch.
    pub fn on_fetch(
        &mut self,
        from: BrokerId,
        request: &FetchRequest,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) -> FetchResponse {
        let result = self.answer_fetch(from, request, now_ms, out);
        FetchResponse {
            fetch_seq: request.fetch_seq,
            result,
        }
    }

    fn answer_fetch(
        &mut self,
        from: BrokerId,
        request: &FetchRequest,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) -> Result<FetchData, FetchError> {
        let current = self.state.leader_epoch;
        let requested = request.current_leader_epoch;
        if requested < current {
            return Err(FetchError::FencedLeaderEpoch { requested, current });
        }
        if requested > current {
            return Err(FetchError::UnknownLeaderEpoch { requested, current });
        }
        let log_end = self.log.log_end();
        let Role::Leader(leader) = &mut self.role else {
            return Err(FetchError::NotLeaderOrFollower);
        };
        let Some(progress) = leader.followers.get_mut(&from) else {
            return Err(FetchError::NotLeaderOrFollower);
        };
        if let Some(last_fetched_epoch) = request.last_fetched_epoch {
            let end = self.log.end_offset_for_epoch(last_fetched_epoch);
            let diverges = end.is_none_or(|end| {
                end.leader_epoch != last_fetched_epoch || end.end_offset < request.fetch_offset
            });
            if diverges {
                let diverging_epoch = Some(end.unwrap_or(crate::batch::EpochEnd {
                    leader_epoch: LeaderEpoch(-1),
                    end_offset: Offset(-1),
                }));
                let high_watermark = self.high_watermark;
                return Ok(FetchData {
                    high_watermark,
                    diverging_epoch,
                    batches: Vec::new(),
                });
            }
        }
        if request.fetch_offset > log_end {
            let high_watermark = self.high_watermark;
            return Err(FetchError::OffsetOutOfRange {
                requested: request.fetch_offset,
                high_watermark,
            });
        }
        // The follower's log matches ours up to fetch_offset, so its durable prefix does.
        let durable = request.durable_offset.min(request.fetch_offset);
        progress.durable = Some(progress.durable.map_or(durable, |old| old.max(durable)));
        if durable >= log_end {
            progress.last_caught_up_ms = now_ms;
        } else if durable >= progress.log_end_at_last_fetch {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.last_fetch_ms = now_ms;
        progress.log_end_at_last_fetch = log_end;
        let batches = self
            .log
            .read(request.fetch_offset, log_end, self.config.fetch_batches_max);
        self.update_high_watermark(out);
        self.maybe_propose_isr(now_ms, out);
        Ok(FetchData {
            high_watermark: self.high_watermark,
            diverging_epoch: None,
            batches,
        })
    }

    /// Follower side: the leader's answer to our fetch.
    pub fn on_fetch_response(
        &mut self,
        from: BrokerId,
        response: FetchResponse,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) {
        let Role::Follower(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from
            || follower.in_flight.map(|(seq, _)| seq) != Some(response.fetch_seq)
        {
            // A duplicate, a late answer or one from a former leader.
            return;
        }
        follower.in_flight = None;
        let Ok(data) = response.result else {
            // Wait for the controller's next state, then try again.
            follower.next_fetch_ms = now_ms + self.config.fetch_backoff_ms;
            return;
        };
        if let Some(diverging) = data.diverging_epoch {
            self.truncate_diverging(diverging);
            self.send_fetch(now_ms, out);
            return;
        }
        let appended = !data.batches.is_empty();
        if data
            .batches
            .first()
            .is_some_and(|batch| batch.base_offset == self.log.log_end())
        {
            if self.log.append_replicated(&data.batches).is_err() {
                // A failed log stops taking writes; the controller moves leadership on.
                self.role = Role::Idle;
                return;
            }
            self.request_flush(out);
        }
        let high_watermark = data.high_watermark.min(self.log.log_end());
        self.high_watermark = self.high_watermark.max(high_watermark);
        if appended {
            self.send_fetch(now_ms, out);
        } else if let Role::Follower(follower) = &mut self.role {
            follower.next_fetch_ms = now_ms + self.config.fetch_backoff_ms;
        }
    }

    /// The controller's answer to our ISR proposal.
    pub fn on_alter_partition_response(
        &mut self,
        response: AlterPartitionResponse,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) {
        match response.result {
            Ok(state) => self.on_partition_state(state, now_ms, out),
            Err(_) => {
                // Every refusal means the leader or partition epoch moved past the
                // proposal, so it can never apply. It stays in the maximal ISR until the
                // newer state arrives: an earlier copy may have been applied.
                let Role::Leader(leader) = &mut self.role else {
                    return;
                };
                if let Some(pending) = &mut leader.pending_isr
                    && pending.request.leader_epoch == response.leader_epoch
                    && pending.request.partition_epoch == response.partition_epoch
                {
                    pending.refused = true;
                }
            }
        }
    }

    fn truncate_diverging(&mut self, diverging: crate::batch::EpochEnd) {
        let log_end = self.log.log_end();
        let offset = if diverging.leader_epoch < LeaderEpoch(0) {
            // The leader knows no epoch at or below ours; keep only what is committed.
            self.high_watermark
        } else {
            match self.log.end_offset_for_epoch(diverging.leader_epoch) {
                // We know the leader's epoch: keep the shorter of the two.
                Some(ours) if ours.leader_epoch == diverging.leader_epoch => {
                    ours.end_offset.min(diverging.end_offset)
                }
                // We do not: cut back to where our older epoch ends and ask again.
                Some(ours) => ours.end_offset,
                None => diverging.end_offset,
            }
        }
        .min(log_end);
        assert!(
            offset >= self.high_watermark,
            "truncation below the high watermark"
        );
        self.log.truncate_to(offset);
    }

    fn send_fetch(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Follower(follower) = &mut self.role else {
            return;
        };
        follower.fetch_seq += 1;
        follower.in_flight = Some((follower.fetch_seq, now_ms));
        let fetch_offset = self.log.log_end();
        let durable_offset = if self.config.hw_on_log_end {
            fetch_offset
        } else {
            self.log.durable_end().min(fetch_offset)
        };
        let request = FetchRequest {
            replica_id: self.id,
            fetch_seq: follower.fetch_seq,
            current_leader_epoch: self.state.leader_epoch,
            fetch_offset,
            last_fetched_epoch: self.log.latest_epoch(),
            durable_offset,
        };
        out.push(Action::Fetch {
            to: follower.leader,
            request,
        });
    }

    fn request_flush(&mut self, out: &mut Vec<Action>) {
        if !self.flush_requested {
            self.flush_requested = true;
            out.push(Action::Flush);
        }
    }

    /// Leaves the leader role: every waiter is answered NotLeaderOrFollower.
    fn step_down(&mut self, out: &mut Vec<Action>) {
        if let Role::Leader(leader) = &mut self.role {
            for waiter in leader.waiters.drain(..) {
                out.push(Action::Produced {
                    id: waiter.id,
                    result: Err(AckError::NotLeaderOrFollower),
                });
            }
        }
        self.role = Role::Idle;
    }

    fn on_isr_changed(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let partition_epoch = self.state.partition_epoch;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader
            .pending_isr
            .as_ref()
            .is_some_and(|p| p.request.partition_epoch < partition_epoch)
        {
            leader.pending_isr = None;
        }
        self.update_high_watermark(out);
        self.maybe_propose_isr(now_ms, out);
    }

    fn update_high_watermark(&mut self, out: &mut Vec<Action>) {
        let isr = self.maximal_isr();
        let own = if self.config.hw_on_log_end {
            self.log.log_end()
        } else {
            self.log.durable_end()
        };
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let mut candidate = own;
        for member in isr.iter().filter(|member| **member != self.id) {
            let Some(durable) = leader
                .followers
                .get(member)
                .and_then(|progress| progress.durable)
            else {
                return;
            };
            candidate = candidate.min(durable);
        }
        if candidate <= self.high_watermark {
            return;
        }
        assert!(
            candidate <= self.log.log_end(),
            "high watermark past the log end"
        );
        self.high_watermark = candidate;
        let isr = self.state.isr.len();
        let min_insync_replicas = self.config.min_insync_replicas;
        while let Some(waiter) = leader.waiters.front()
            && waiter.range.next_offset <= self.high_watermark
        {
            let waiter = leader.waiters.pop_front().expect("front exists");
            let result = if waiter.acks == Acks::All && isr < min_insync_replicas {
                Err(AckError::NotEnoughReplicasAfterAppend {
                    isr,
                    min_insync_replicas,
                })
            } else {
                Ok(waiter.range)
            };
            out.push(Action::Produced {
                id: waiter.id,
                result,
            });
        }
    }

    /// Proposes dropping followers that lag longer than `replica.lag.time.max.ms` and
    /// adding those that caught up, one proposal at a time.
    fn maybe_propose_isr(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.pending_isr.is_some() {
            return;
        }
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let mut new_isr: Vec<BrokerId> =
            self.state
                .isr
                .iter()
                .copied()
                .filter(|member| {
                    *member == self.id
                        || leader.followers.get(member).is_some_and(|p| {
                            now_ms.saturating_sub(p.last_caught_up_ms) <= lag_max_ms
                        })
                })
                .collect();
        for (replica, progress) in &leader.followers {
            let caught_up = progress.durable.is_some_and(|durable| {
                durable >= self.high_watermark && durable >= leader.epoch_start_offset
            });
            if caught_up && !new_isr.contains(replica) {
                new_isr.push(*replica);
            }
        }
        new_isr.sort();
        let mut current = self.state.isr.clone();
        current.sort();
        if new_isr == current {
            return;
        }
        let request = AlterPartitionRequest {
            leader: self.id,
            leader_epoch: self.state.leader_epoch,
            partition_epoch: self.state.partition_epoch,
            new_isr,
        };
        leader.pending_isr = Some(PendingIsr {
            request: request.clone(),
            sent_ms: now_ms,
            refused: false,
        });
        out.push(Action::AlterPartition(request));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_log::ModelLog;

    type R = Replica<ModelLog>;

    const B1: BrokerId = BrokerId(1);
    const B2: BrokerId = BrokerId(2);
    const B3: BrokerId = BrokerId(3);

    fn config() -> ReplicaConfig {
        ReplicaConfig {
            replica_lag_time_max_ms: 100,
            min_insync_replicas: 2,
            fetch_backoff_ms: 10,
            fetch_timeout_ms: 1,
            alter_partition_retry_ms: 50,
            fetch_batches_max: 16,
            hw_on_log_end: false,
        }
    }

    fn state(
        leader: BrokerId,
        epoch: i32,
        partition_epoch: i32,
        isr: &[BrokerId],
    ) -> PartitionState {
        PartitionState {
            leader: Some(leader),
            leader_epoch: LeaderEpoch(epoch),
            partition_epoch: PartitionEpoch(partition_epoch),
            isr: isr.to_vec(),
            replicas: vec![B1, B2, B3],
        }
    }

    /// Replicas 1, 2, 3 told that `leader` leads `epoch` with the whole ISR.
    fn cluster(leader: BrokerId, epoch: i32) -> Vec<R> {
        let mut replicas: Vec<R> = [B1, B2, B3]
            .map(|id| Replica::new(id, config(), ModelLog::new()))
            .into();
        for replica in &mut replicas {
            replica.on_partition_state(state(leader, epoch, 0, &[B1, B2, B3]), 0, &mut Vec::new());
        }
        replicas
    }

    fn produce(
        leader: &mut R,
        id: u64,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) -> Result<OffsetRange, ProduceError> {
        leader.produce(
            ProduceId(id),
            2,
            Bytes::from_static(b"v"),
            Acks::All,
            now_ms,
            out,
        )
    }

    /// Replica 1 leads epoch 1; one batch of two records copied to 2 and 3, not flushed.
    fn replicated_batch() -> (Vec<R>, Vec<Action>) {
        let mut replicas = cluster(B1, 1);
        let mut out = Vec::new();
        let (leader, f2, f3) = split(&mut replicas);
        produce(leader, 1, 1, &mut out).unwrap();
        fetch_rounds(leader, f2, 2);
        fetch_rounds(leader, f3, 2);
        (replicas, out)
    }

    fn flush(replica: &mut R, now_ms: u64, out: &mut Vec<Action>) {
        replica.log_mut().flush();
        replica.on_durable(now_ms, out);
    }

    /// Lets `follower` fetch from `leader` until it has nothing more to send; returns
    /// the leader's actions.
    fn fetch_rounds(leader: &mut R, follower: &mut R, now_ms: u64) -> Vec<Action> {
        let mut leader_out = Vec::new();
        let mut follower_out = Vec::new();
        follower.tick(now_ms, &mut follower_out);
        for _ in 0..10 {
            let requests: Vec<FetchRequest> = follower_out
                .drain(..)
                .filter_map(|action| match action {
                    Action::Fetch { request, .. } => Some(request),
                    _ => None,
                })
                .collect();
            if requests.is_empty() {
                break;
            }
            for request in requests {
                let response = leader.on_fetch(follower.id(), &request, now_ms, &mut leader_out);
                follower.on_fetch_response(leader.id(), response, now_ms, &mut follower_out);
            }
        }
        leader_out
    }

    fn acked(actions: &[Action]) -> Vec<(ProduceId, Result<OffsetRange, AckError>)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Produced { id, result } => Some((*id, *result)),
                _ => None,
            })
            .collect()
    }

    fn split(replicas: &mut [R]) -> (&mut R, &mut R, &mut R) {
        let [a, b, c] = replicas else {
            panic!("three replicas")
        };
        (a, b, c)
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member_to_be_durable() {
        // Proves the high watermark is the smallest durable offset across the ISR: copies
        // on followers and the leader's own fsync are not enough until every member
        // reports its fsync, and only then is acks=all answered.
        let mut replicas = cluster(B1, 1);
        let (leader, f2, f3) = split(&mut replicas);
        let mut out = Vec::new();
        let range = produce(leader, 7, 1, &mut out).unwrap();
        assert_eq!(
            range,
            OffsetRange {
                base_offset: Offset(0),
                next_offset: Offset(2)
            }
        );
        flush(leader, 1, &mut out);
        fetch_rounds(leader, f2, 2);
        fetch_rounds(leader, f3, 2);
        assert_eq!(f2.log().log_end(), Offset(2));
        assert_eq!(leader.high_watermark(), Offset(0));
        flush(f2, 3, &mut out);
        flush(f3, 3, &mut out);
        let leader_out = fetch_rounds(leader, f2, 20);
        assert!(
            acked(&leader_out).is_empty(),
            "f3 has not reported its fsync"
        );
        assert_eq!(leader.high_watermark(), Offset(0));
        let leader_out = fetch_rounds(leader, f3, 40);
        assert_eq!(leader.high_watermark(), Offset(2));
        assert_eq!(acked(&leader_out), vec![(ProduceId(7), Ok(range))]);
        // The followers learn the high watermark on their next fetch.
        fetch_rounds(leader, f2, 60);
        assert_eq!(f2.high_watermark(), Offset(2));
    }

    #[test]
    fn fetches_are_fenced_by_leader_epoch() {
        // Proves a fetch naming an older epoch is fenced, a newer one is unknown, and a
        // replica that is not the leader refuses.
        let mut replicas = cluster(B1, 5);
        let (leader, f2, _) = split(&mut replicas);
        let mut request = FetchRequest {
            replica_id: B2,
            fetch_seq: 1,
            current_leader_epoch: LeaderEpoch(4),
            fetch_offset: Offset(0),
            last_fetched_epoch: None,
            durable_offset: Offset(0),
        };
        let mut out = Vec::new();
        let answer = |replica: &mut R, request: &FetchRequest, out: &mut Vec<Action>| {
            replica.on_fetch(B2, request, 0, out).result.unwrap_err()
        };
        let current = LeaderEpoch(5);
        assert_eq!(
            answer(leader, &request, &mut out),
            FetchError::FencedLeaderEpoch {
                requested: LeaderEpoch(4),
                current
            }
        );
        request.current_leader_epoch = LeaderEpoch(6);
        assert_eq!(
            answer(leader, &request, &mut out),
            FetchError::UnknownLeaderEpoch {
                requested: LeaderEpoch(6),
                current
            }
        );
        request.current_leader_epoch = current;
        assert_eq!(
            answer(f2, &request, &mut out),
            FetchError::NotLeaderOrFollower
        );
        assert!(leader.on_fetch(B2, &request, 0, &mut out).result.is_ok());
    }

    #[test]
    fn min_insync_replicas_is_checked_before_and_after_the_append() {
        // Proves acks=all is refused with NotEnoughReplicas when the ISR is already too
        // small, and answered NotEnoughReplicasAfterAppend when it shrank before the high
        // watermark passed the batch.
        let mut replicas = cluster(B1, 1);
        let leader = &mut replicas[0];
        let mut out = Vec::new();
        let range = produce(leader, 1, 1, &mut out).unwrap();
        leader.on_partition_state(state(B1, 1, 1, &[B1]), 2, &mut out);
        assert_eq!(
            produce(leader, 2, 3, &mut out),
            Err(ProduceError::NotEnoughReplicas {
                isr: 1,
                min_insync_replicas: 2
            })
        );
        flush(leader, 5, &mut out);
        assert_eq!(
            acked(&out),
            vec![(
                ProduceId(1),
                Err(AckError::NotEnoughReplicasAfterAppend {
                    isr: 1,
                    min_insync_replicas: 2
                })
            )]
        );
        assert_eq!(leader.high_watermark(), range.next_offset);
    }

    #[test]
    fn follower_truncates_a_divergent_tail_from_the_diverging_epoch() {
        // Proves a follower holding batches of an epoch the new leader never saw cuts
        // them off (and only them) on its first fetch, then copies the leader's batches.
        let (mut replicas, mut out) = replicated_batch();
        // Only the old leader gets the second batch.
        produce(&mut replicas[0], 2, 3, &mut out).unwrap();
        assert_eq!(replicas[0].log().log_end(), Offset(4));
        for replica in &mut replicas {
            replica.on_partition_state(state(B2, 2, 1, &[B2, B3]), 10, &mut out);
        }
        assert!(
            acked(&out)
                .iter()
                .all(|(_, result)| *result == Err(AckError::NotLeaderOrFollower)),
            "the old leader answers its waiters when it steps down"
        );
        let (old, leader, _) = split(&mut replicas);
        produce(leader, 3, 11, &mut out).unwrap();
        fetch_rounds(leader, old, 12);
        assert_eq!(old.log().log_end(), Offset(4));
        assert_eq!(
            old.log().epochs(),
            &[(LeaderEpoch(1), Offset(0)), (LeaderEpoch(2), Offset(2))]
        );
        assert_eq!(
            old.log().read(Offset(2), Offset(4), 1),
            leader.log().read(Offset(2), Offset(4), 1)
        );
    }

    #[test]
    fn new_leader_hides_its_high_watermark_until_it_reaches_the_epoch_start() {
        // Proves OffsetNotAvailable: a new leader whose high watermark lags its epoch
        // start offset does not show it, since it may be below the previous leader's.
        let (mut replicas, mut out) = replicated_batch();
        for replica in &mut replicas {
            replica.on_partition_state(state(B2, 2, 1, &[B1, B2, B3]), 10, &mut out);
        }
        let (f1, leader, f3) = split(&mut replicas);
        assert_eq!(
            leader.client_high_watermark(),
            Err(FetchError::OffsetNotAvailable)
        );
        assert_eq!(
            leader.read(Offset(0), 10),
            Err(FetchError::OffsetNotAvailable)
        );
        assert_eq!(f1.read(Offset(0), 10), Err(FetchError::NotLeaderOrFollower));
        for replica in [&mut *f1, &mut *leader, &mut *f3] {
            flush(replica, 11, &mut out);
        }
        fetch_rounds(leader, f1, 12);
        fetch_rounds(leader, f3, 12);
        assert_eq!(leader.client_high_watermark(), Ok(Offset(2)));
        assert_eq!(leader.read(Offset(0), 10).unwrap().len(), 1);
    }

    #[test]
    fn lagging_follower_is_proposed_out_and_the_proposal_counts_until_resolved() {
        // Proves the ISR shrink after replica.lag.time.max.ms goes to the controller with
        // the partition epoch, an expansion counts toward the high watermark while
        // proposed, and a refused proposal keeps counting until a newer state arrives.
        let mut replicas = cluster(B1, 1);
        let (leader, f2, _) = split(&mut replicas);
        let mut out = Vec::new();
        fetch_rounds(leader, f2, 50);
        leader.tick(150, &mut out);
        let proposal = AlterPartitionRequest {
            leader: B1,
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(0),
            new_isr: vec![B1, B2],
        };
        assert_eq!(out, vec![Action::AlterPartition(proposal.clone())]);
        // No second proposal while one is pending; a resend after the retry time.
        out.clear();
        leader.tick(160, &mut out);
        assert!(out.is_empty());
        leader.tick(200, &mut out);
        assert_eq!(out, vec![Action::AlterPartition(proposal)]);
        leader.on_partition_state(state(B1, 1, 1, &[B1, B2]), 210, &mut out);
        assert_eq!(leader.maximal_isr(), vec![B1, B2]);

        // B3 catches up: proposed back in, and counted at once.
        out.clear();
        let f3 = &mut replicas[2];
        let mut f3_out = Vec::new();
        f3.tick(220, &mut f3_out);
        let Some(Action::Fetch { request, .. }) = f3_out.pop() else {
            panic!("f3 fetches")
        };
        replicas[0].on_fetch(B3, &request, 220, &mut out);
        assert!(matches!(&out[..], [Action::AlterPartition(p)] if p.new_isr == vec![B1, B2, B3]));
        let leader = &mut replicas[0];
        assert_eq!(leader.maximal_isr(), vec![B1, B2, B3]);
        let refused = AlterPartitionResponse {
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(1),
            result: Err(crate::error::AlterPartitionError::InvalidUpdateVersion),
        };
        leader.on_alter_partition_response(refused, 230, &mut out);
        assert_eq!(leader.maximal_isr(), vec![B1, B2, B3]);
        out.clear();
        leader.tick(400, &mut out);
        assert!(
            out.iter()
                .all(|action| !matches!(action, Action::AlterPartition(_))),
            "refused: not resent"
        );
        leader.on_partition_state(state(B1, 1, 2, &[B1, B2, B3]), 410, &mut out);
        assert_eq!(leader.state().isr, vec![B1, B2, B3]);
    }

    #[test]
    fn single_replica_leader_knows_its_high_watermark_after_a_restart() {
        // Proves a restarted single-node leader shows its durable end as the high
        // watermark without waiting for a produce (found by the simulator with one
        // broker: the high watermark stayed unknown forever once traffic stopped).
        let single = |epoch: i32| PartitionState {
            leader: Some(B1),
            leader_epoch: LeaderEpoch(epoch),
            partition_epoch: PartitionEpoch(epoch),
            isr: vec![B1],
            replicas: vec![B1],
        };
        let mut out = Vec::new();
        let mut leader: R = Replica::new(B1, config(), ModelLog::new());
        leader.on_partition_state(single(1), 0, &mut out);
        leader
            .produce(
                ProduceId(1),
                3,
                Bytes::from_static(b"v"),
                Acks::Leader,
                1,
                &mut out,
            )
            .unwrap();
        flush(&mut leader, 2, &mut out);
        assert_eq!(leader.client_high_watermark(), Ok(Offset(3)));
        let mut restarted = Replica::new(B1, config(), leader.into_log());
        restarted.on_partition_state(single(2), 3, &mut out);
        assert_eq!(restarted.client_high_watermark(), Ok(Offset(3)));
    }

    #[test]
    fn older_controller_states_are_ignored() {
        // Proves the network's reordering cannot take a replica back: a state that is not
        // newer by (leader epoch, partition epoch) changes nothing.
        let mut replicas = cluster(B1, 3);
        let leader = &mut replicas[0];
        let mut out = Vec::new();
        leader.on_partition_state(state(B2, 2, 9, &[B2]), 1, &mut out);
        leader.on_partition_state(state(B1, 3, 0, &[B1]), 1, &mut out);
        assert!(leader.is_leader());
        assert_eq!(leader.state().isr, vec![B1, B2, B3]);
        assert_eq!(leader.leader_epoch(), LeaderEpoch(3));
    }

    #[test]
    fn restarted_leader_does_not_lead_an_epoch_its_log_already_has() {
        // Proves a leader restarted before the controller noticed does not lead the same
        // epoch again (it could write different batches under it).
        let mut replicas = cluster(B1, 4);
        let log = std::mem::replace(
            &mut replicas[0],
            Replica::new(B1, config(), ModelLog::new()),
        )
        .into_log();
        let mut restarted = Replica::new(B1, config(), log);
        restarted.on_partition_state(state(B1, 4, 0, &[B1, B2, B3]), 1, &mut Vec::new());
        assert!(!restarted.is_leader());
        restarted.on_partition_state(state(B1, 5, 1, &[B1, B2, B3]), 2, &mut Vec::new());
        assert!(restarted.is_leader());
    }
}
