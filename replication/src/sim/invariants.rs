//! The invariants the simulator checks after every step:
//! 1. No acknowledged record is lost: every controller ISR member holds every acknowledged
//!    record, with the same content, in its durable prefix.
//!    And every leader's high watermark (stale leaders' too) is at or below the durable
//!    end of every controller ISR member (checked in `Sim::check`).
//! 2. Replicas agree below the high watermark: every live replica's log below its own
//!    high watermark matches what every other replica and consumer saw at those offsets.
//! 3. The high watermark never moves back: per replica while it runs, and as clients see
//!    it: a leader of epoch E never shows less than any leader of an older epoch showed.
//! 4. What a consumer saw never changes (checked with 2, on the same map).
//! 5. At most one leader accepts writes per epoch.
//! 6. Epochs only grow: each replica's leader epoch while it runs.

use std::collections::BTreeMap;

use sluice_engine::{LeaderEpoch, Offset};

use crate::batch::BrokerId;
use crate::model_log::ModelLog;
use crate::replica::OffsetRange;
use crate::{ReplicaLog, batch::Batch};

/// A record's content in the simulator: the produce id and its index in the batch.
pub type Content = (u64, u32);

pub fn content(batch: &Batch, index: u32) -> Content {
    let id = u64::from_le_bytes(
        batch.payload[..8]
            .try_into()
            .expect("sim payloads hold an id"),
    );
    (id, index)
}

pub fn record(log: &ModelLog, offset: Offset) -> Option<Content> {
    log.record_at(offset)
        .map(|(batch, index)| content(batch, index))
}

#[derive(Debug)]
struct BrokerCheck {
    /// Log offsets below this were checked against `committed` and not removed since.
    agreed_upto: Offset,
    /// The same for the durable prefix against acknowledged records.
    durable_agreed_upto: Offset,
    high_watermark: Offset,
    leader_epoch: LeaderEpoch,
}

impl Default for BrokerCheck {
    fn default() -> Self {
        Self {
            agreed_upto: Offset(0),
            durable_agreed_upto: Offset(0),
            high_watermark: Offset(0),
            // A replica starts below every epoch the controller assigns.
            leader_epoch: LeaderEpoch(-1),
        }
    }
}

#[derive(Debug, Default)]
pub struct Checker {
    /// The content at every offset some replica's high watermark or a consumer passed.
    committed: BTreeMap<i64, Content>,
    acked: BTreeMap<i64, Content>,
    acked_end: Offset,
    brokers: BTreeMap<BrokerId, BrokerCheck>,
    /// The largest high watermark a leader of each epoch showed to clients.
    shown: BTreeMap<LeaderEpoch, Offset>,
    writers: BTreeMap<LeaderEpoch, BrokerId>,
    pub acked_batches: u64,
}

pub type Violation = String;

impl Checker {
    pub fn acked_end(&self) -> Offset {
        self.acked_end
    }

    /// A broker restarted: its high watermark and epoch start over.
    pub fn on_restart(&mut self, broker: BrokerId) {
        let check = self.brokers.entry(broker).or_default();
        check.high_watermark = Offset(0);
        check.leader_epoch = LeaderEpoch(-1);
    }

    /// Content was removed from a broker's log at and above `from`.
    pub fn on_removed(&mut self, broker: BrokerId, from: Offset) {
        let check = self.brokers.entry(broker).or_default();
        check.agreed_upto = check.agreed_upto.min(from);
        check.durable_agreed_upto = check.durable_agreed_upto.min(from);
    }

    fn agree(&mut self, offset: Offset, seen: Content, who: &str) -> Result<(), Violation> {
        let known = *self.committed.entry(offset.0).or_insert(seen);
        if known != seen {
            return Err(format!(
                "{who} has {seen:?} at offset {} where {known:?} was committed",
                offset.0
            ));
        }
        Ok(())
    }

    pub fn on_write(&mut self, broker: BrokerId, epoch: LeaderEpoch) -> Result<(), Violation> {
        let writer = *self.writers.entry(epoch).or_insert(broker);
        if writer != broker {
            return Err(format!(
                "brokers {} and {} both accepted writes in epoch {}",
                writer.0, broker.0, epoch.0
            ));
        }
        Ok(())
    }

    pub fn on_ack(&mut self, log: &ModelLog, range: OffsetRange, id: u64) -> Result<(), Violation> {
        self.acked_batches += 1;
        for (index, offset) in (range.base_offset.0..range.next_offset.0).enumerate() {
            let expected = (id, u32::try_from(index).expect("small batch"));
            if record(log, Offset(offset)) != Some(expected) {
                return Err(format!(
                    "acknowledged produce {id} is not at offset {offset} on its leader"
                ));
            }
            self.acked.insert(offset, expected);
            self.agree(Offset(offset), expected, "an acknowledgement")?;
        }
        self.acked_end = self.acked_end.max(range.next_offset);
        Ok(())
    }

    /// A consumer read `batches` from a leader of `epoch` showing `high_watermark`.
    pub fn on_consume(
        &mut self,
        epoch: LeaderEpoch,
        high_watermark: Offset,
        batches: &[Batch],
    ) -> Result<(), Violation> {
        self.on_shown(epoch, high_watermark)?;
        for batch in batches {
            for index in 0..batch.record_count {
                let offset = Offset(batch.base_offset.0 + i64::from(index));
                if offset < high_watermark {
                    self.agree(offset, content(batch, index), "a consumer")?;
                }
            }
        }
        Ok(())
    }

    pub fn on_shown(
        &mut self,
        epoch: LeaderEpoch,
        high_watermark: Offset,
    ) -> Result<(), Violation> {
        if let Some((older, shown)) = self.shown.range(..epoch).max_by_key(|(_, shown)| **shown)
            && *shown > high_watermark
        {
            return Err(format!(
                "epoch {} shows high watermark {} below {} shown in epoch {}",
                epoch.0, high_watermark.0, shown.0, older.0
            ));
        }
        let entry = self.shown.entry(epoch).or_default();
        *entry = (*entry).max(high_watermark);
        Ok(())
    }

    /// Checks a running replica: its epoch and high watermark did not go back, and its log
    /// below the high watermark matches what was committed.
    pub fn check_replica(
        &mut self,
        broker: BrokerId,
        log: &ModelLog,
        high_watermark: Offset,
        leader_epoch: LeaderEpoch,
    ) -> Result<(), Violation> {
        let check = self.brokers.entry(broker).or_default();
        if leader_epoch < check.leader_epoch {
            return Err(format!(
                "broker {} went from epoch {} to {}",
                broker.0, check.leader_epoch.0, leader_epoch.0
            ));
        }
        if high_watermark < check.high_watermark {
            return Err(format!(
                "broker {} high watermark went from {} to {}",
                broker.0, check.high_watermark.0, high_watermark.0
            ));
        }
        check.leader_epoch = leader_epoch;
        check.high_watermark = high_watermark;
        let from = check.agreed_upto;
        if high_watermark > log.log_end() {
            return Err(format!(
                "broker {} high watermark {} past its log end",
                broker.0, high_watermark.0
            ));
        }
        for offset in from.0..high_watermark.0 {
            let seen = record(log, Offset(offset)).expect("below log end");
            self.agree(Offset(offset), seen, &format!("broker {}", broker.0))?;
        }
        let check = self.brokers.get_mut(&broker).expect("inserted above");
        check.agreed_upto = check.agreed_upto.max(high_watermark);
        Ok(())
    }

    /// Checks a controller ISR member (running or not) holds every acknowledged record in
    /// its durable prefix.
    pub fn check_isr_member(&mut self, broker: BrokerId, log: &ModelLog) -> Result<(), Violation> {
        if log.durable_end() < self.acked_end {
            return Err(format!(
                "ISR member {} is durable to {} but records up to {} were acknowledged",
                broker.0,
                log.durable_end().0,
                self.acked_end.0
            ));
        }
        let check = self.brokers.entry(broker).or_default();
        let from = check.durable_agreed_upto;
        for offset in from.0..self.acked_end.0 {
            let Some(expected) = self.acked.get(&offset) else {
                continue;
            };
            let seen = record(log, Offset(offset));
            if seen != Some(*expected) {
                return Err(format!(
                    "ISR member {} has {seen:?} at acknowledged offset {offset}, not {expected:?}",
                    broker.0
                ));
            }
        }
        check.durable_agreed_upto = check.durable_agreed_upto.max(self.acked_end);
        Ok(())
    }
}
