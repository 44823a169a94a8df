//! The model controller: one partition's leader, ISR and epochs, as the Raft-replicated
//! metadata would hold them. It never fails (its consensus is tested elsewhere), but every
//! message to and from it crosses the faulty network.
//!
//! Rules, as Kafka's controller: a broker whose heartbeats stop for `lease_ms` is fenced;
//! a fenced leader, or a leader that restarted (a new incarnation), is replaced by a live
//! ISR member and dropped from the ISR; leaders come only from the ISR (no unclean
//! election); an ISR change applies only from the current leader at the current leader
//! and partition epochs; every change bumps the partition epoch, every new leader the
//! leader epoch.

use std::collections::BTreeMap;

use sluice_engine::LeaderEpoch;

use crate::batch::BrokerId;
use crate::error::AlterPartitionError;
use crate::message::{
    AlterPartitionRequest, AlterPartitionResponse, PartitionEpoch, PartitionState,
};

#[derive(Debug, Clone, Copy)]
struct Liveness {
    last_heartbeat_ms: u64,
    incarnation: u64,
}

#[derive(Debug)]
pub struct Controller {
    state: PartitionState,
    lease_ms: u64,
    brokers: BTreeMap<BrokerId, Liveness>,
    /// The leader restarted since it was elected; elect again, with a new epoch.
    leader_restarted: bool,
}

impl Controller {
    pub fn new(replicas: Vec<BrokerId>, lease_ms: u64) -> Self {
        let brokers = replicas
            .iter()
            .map(|id| {
                (
                    *id,
                    Liveness {
                        last_heartbeat_ms: 0,
                        incarnation: 0,
                    },
                )
            })
            .collect();
        let state = PartitionState {
            leader: replicas.first().copied(),
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(1),
            isr: replicas.clone(),
            replicas,
        };
        Self {
            state,
            lease_ms,
            brokers,
            leader_restarted: false,
        }
    }

    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    fn alive(&self, broker: BrokerId, now_ms: u64) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(|liveness| now_ms < liveness.last_heartbeat_ms + self.lease_ms)
    }

    /// Returns true if the broker is a new incarnation (it should get the state at once).
    pub fn on_heartbeat(&mut self, broker: BrokerId, incarnation: u64, now_ms: u64) -> bool {
        let Some(liveness) = self.brokers.get_mut(&broker) else {
            return false;
        };
        if incarnation < liveness.incarnation {
            return false;
        }
        liveness.last_heartbeat_ms = liveness.last_heartbeat_ms.max(now_ms);
        let restarted = incarnation > liveness.incarnation;
        liveness.incarnation = incarnation;
        if restarted && self.state.leader == Some(broker) {
            self.leader_restarted = true;
        }
        restarted
    }

    pub fn on_alter_partition(
        &mut self,
        request: &AlterPartitionRequest,
    ) -> AlterPartitionResponse {
        let refuse = |error| AlterPartitionResponse {
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            result: Err(error),
        };
        if self.state.leader != Some(request.leader)
            || self.state.leader_epoch != request.leader_epoch
        {
            return refuse(AlterPartitionError::FencedLeaderEpoch);
        }
        if self.state.partition_epoch != request.partition_epoch {
            return refuse(AlterPartitionError::InvalidUpdateVersion);
        }
        assert!(
            request.new_isr.contains(&request.leader),
            "a leader proposed an ISR without itself"
        );
        self.state.isr = request.new_isr.clone();
        self.state.partition_epoch = PartitionEpoch(self.state.partition_epoch.0 + 1);
        AlterPartitionResponse {
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            result: Ok(self.state.clone()),
        }
    }

    /// Elects a leader if the current one is fenced, restarted or missing. Returns true if
    /// the state changed.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        let current = self.state.leader;
        let healthy =
            current.is_some_and(|leader| self.alive(leader, now_ms)) && !self.leader_restarted;
        if healthy {
            return false;
        }
        let candidates: Vec<BrokerId> = self
            .state
            .isr
            .iter()
            .copied()
            .filter(|member| self.alive(*member, now_ms))
            .collect();
        // Prefer another member; the restarted leader itself if it is the only one.
        let next = candidates
            .iter()
            .copied()
            .find(|member| Some(*member) != current)
            .or_else(|| candidates.first().copied());
        if next.is_none() && current.is_none() {
            return false;
        }
        if let (Some(old), Some(new)) = (current, next)
            && old != new
            && !self.alive(old, now_ms)
        {
            self.state.isr.retain(|member| *member != old);
        }
        self.leader_restarted = false;
        self.state.leader = next;
        self.state.leader_epoch = LeaderEpoch(self.state.leader_epoch.0 + 1);
        self.state.partition_epoch = PartitionEpoch(self.state.partition_epoch.0 + 1);
        true
    }
}
