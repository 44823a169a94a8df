//! The coordinator of this shard's groups inside the running broker: the `GroupHost` a
//! shard owns, holding its `Coordinator`, the waiters of JoinGroup and SyncGroup calls
//! that must wait for other members, a ticker that expires sessions and rebalance
//! deadlines, and the replay of the shard's `__consumer_offsets` partitions. Requests
//! reach it as `mesh::group::GroupRequest`s from any shard (see `handlers/groups.rs`);
//! it reaches the shard only through `store::OffsetsStorage`, and answers with
//! `GroupError`s and `StoreError`s, never Kafka codes.
//!
//! Persistence: an OffsetCommit is appended to the group's partition and answered once
//! the engine made it durable (acks=all); only then does the coordinator hold it. Group
//! metadata and tombstones (`GroupWrite`) are appended after the call that decided them;
//! a call's own answer waits for their durability, the ticker's writes do not wait. The
//! leader's assignment (`GroupWrite::Assignment`) is always made durable first, and its
//! outcome goes back to the coordinator (`sync_stored`), which only then answers the
//! members waiting in SyncGroup, the leader included. At start each owned partition is
//! replayed from its log start before its groups are served; meanwhile their requests
//! get COORDINATOR_LOAD_IN_PROGRESS.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::oneshot;
use sluice_net::consumer_protocol::{CONSUMER_PROTOCOL_TYPE, decode_subscription};
use tracing::{info, warn};

pub use super::placement::{coordinator_of, coordinator_shard, offsets_partition_count};
use super::record::{OffsetCommitValue, RecordKey, encode_key, encode_offset_commit_value};
use super::store::{
    OffsetsStorage, StoreError, StoredRecord, append_records, load_partition, wall_ms,
    write_records,
};
use super::{
    Answer, CommitIdentity, CommittedOffset, Coordinator, Delivery, GroupConfig, GroupError,
    GroupState, JoinRequest, Joined, LeavingMember, PartitionResults, SyncRequest, Synced,
};
use crate::config::BrokerArgs;
use crate::mesh::group::{
    CommitRefused, CommittedOffsets, GroupRequest, Heartbeat, ListedGroup, PartitionOutcomes,
};
use crate::topic_table::{OFFSETS_TOPIC, ShardId, TopicPartition, TopicTable};

/// How often sessions and deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

/// Broker flags that shape the coordinator.
pub fn group_config(args: &BrokerArgs) -> GroupConfig {
    GroupConfig {
        offsets_retention_ms: args.offsets_retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: args.offsets_retention_check_interval_ms,
        ..GroupConfig::default()
    }
}

/// (group id, member id) of a JoinGroup or SyncGroup waiting for its answer.
type Key = (String, String);

/// The waiting JoinGroup or SyncGroup calls of one kind.
type Waiters<T> = RefCell<HashMap<Key, oneshot::SharedSender<Result<T, GroupError>>>>;

/// A partition as the coordinator keys it.
fn key_of(tp: &TopicPartition) -> (String, i32) {
    (tp.topic.to_string(), tp.partition)
}

fn tp_of((topic, partition): (String, i32)) -> TopicPartition {
    TopicPartition {
        topic: Arc::from(topic),
        partition,
    }
}

fn outcomes(results: PartitionResults) -> PartitionOutcomes {
    results.into_iter().map(|(k, r)| (tp_of(k), r)).collect()
}

/// This shard's group coordinator, owned by the shard. Its background tasks (replay and
/// ticker) share its state and reach the shard through a `Weak` handle, so dropping the
/// shard ends them.
pub struct GroupHost {
    state: Rc<HostState>,
}

struct HostState {
    shard: ShardId,
    coordinator: RefCell<Coordinator>,
    joins: Waiters<Joined>,
    syncs: Waiters<Synced>,
    /// Owned `__consumer_offsets` partitions not yet replayed.
    loading: RefCell<HashSet<i32>>,
}

impl GroupHost {
    pub fn new(shard: ShardId, config: GroupConfig) -> Self {
        GroupHost {
            state: Rc::new(HostState {
                shard,
                coordinator: RefCell::new(Coordinator::new(config)),
                joins: RefCell::new(HashMap::new()),
                syncs: RefCell::new(HashMap::new()),
                loading: RefCell::new(HashSet::new()),
            }),
        }
    }

    /// Starts the coordinator: replays this shard's `__consumer_offsets` partitions in
    /// the background and runs the ticker. Call once, after the shard's partitions are
    /// open and before it serves requests.
    pub fn start<S: OffsetsStorage + 'static>(&self, storage: Weak<S>) {
        let Some(table) = storage.upgrade().map(|s| s.table()) else {
            return;
        };
        let mine: Vec<i32> = table
            .get(OFFSETS_TOPIC)
            .map(|m| {
                (0..m.partition_count())
                    .filter(|p| m.owner(*p) == Some(self.state.shard))
                    .collect()
            })
            .unwrap_or_default();
        *self.state.loading.borrow_mut() = mine.iter().copied().collect();
        spawn_ticker(Rc::downgrade(&self.state), storage.clone());
        spawn_loader(self.state.clone(), storage, mine);
    }

    /// Runs one operation on this shard's coordinator and sends its reply, waiting for
    /// other members if needed. Records the operation decided are appended (durably)
    /// before its own answer; waiters are registered before that await, so no delivery
    /// can miss them.
    pub async fn serve(&self, storage: &impl OffsetsStorage, req: GroupRequest) {
        let h = &*self.state;
        let table = storage.table();
        match req {
            GroupRequest::Join { req, reply } => {
                let r = match h.ready(&table, &req.group_id) {
                    Ok(()) => h.join(storage, req).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            GroupRequest::Sync { req, reply } => {
                let r = match h.ready(&table, &req.group_id) {
                    Ok(()) => h.sync(storage, req).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            GroupRequest::Heartbeat { beat, reply } => {
                let r = match h.ready(&table, &beat.group_id) {
                    Ok(()) => h.heartbeat(storage, beat).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            GroupRequest::Leave {
                group_id,
                members,
                reply,
            } => {
                let r = match h.ready(&table, &group_id) {
                    Ok(()) => h.leave(storage, &group_id, &members).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            GroupRequest::Commit {
                who,
                offsets,
                reply,
            } => {
                let r = match h.ready(&table, &who.group_id) {
                    Ok(()) => h.commit(storage, who, offsets).await,
                    Err(_) => Err(CommitRefused::Loading),
                };
                let _ = reply.send(r);
            }
            GroupRequest::FetchOffsets {
                group_id,
                partitions,
                reply,
            } => {
                let r = h
                    .ready(&table, &group_id)
                    .map(|()| h.fetch_offsets(&group_id, partitions));
                let _ = reply.send(r);
            }
            GroupRequest::Describe { group_id, reply } => {
                let r = h
                    .ready(&table, &group_id)
                    .map(|()| h.coordinator.borrow().describe(&group_id));
                let _ = reply.send(r);
            }
            GroupRequest::List { states, reply } => {
                let _ = reply.send(h.all_ready().map(|()| h.list(&states)));
            }
            GroupRequest::Delete { group_id, reply } => {
                let r = match h.ready(&table, &group_id) {
                    Ok(()) => h.delete(storage, &group_id).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            GroupRequest::DeleteOffsets {
                group_id,
                partitions,
                reply,
            } => {
                let r = match h.ready(&table, &group_id) {
                    Ok(()) => h.delete_offsets(storage, &group_id, &partitions).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            // A partition still replaying skips the offsets of topics no longer in the
            // table (`store::apply_record`), so a deletion need not wait for it.
            GroupRequest::TopicsDeleted { topics, reply } => {
                h.coordinator.borrow_mut().topics_deleted(&topics);
                let _ = reply.send(h.persist(storage, true).await);
            }
        }
    }
}

/// Every `TICK`, expires sessions and deadlines and stores what that decided, until the
/// host or the shard is gone.
fn spawn_ticker<S: OffsetsStorage + 'static>(host: Weak<HostState>, storage: Weak<S>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(TICK).await;
            let (Some(h), Some(storage)) = (host.upgrade(), storage.upgrade()) else {
                break;
            };
            // Expiry while a partition is half replayed could remove a group whose
            // offsets come later in the log.
            if !h.loading.borrow().is_empty() {
                continue;
            }
            h.coordinator.borrow_mut().tick(wall_ms());
            h.deliver();
            if let Err(e) = h.persist(&*storage, false).await {
                warn!(shard = h.shard.0, error = %e, "group records not stored");
            }
        }
    })
    .detach();
}

/// Replays the partitions in `mine` one after the other; each one's groups are served
/// once it is done.
fn spawn_loader<S: OffsetsStorage + 'static>(h: Rc<HostState>, storage: Weak<S>, mine: Vec<i32>) {
    glommio::spawn_local(async move {
        for p in mine {
            let Some(storage) = storage.upgrade() else {
                return;
            };
            match load_partition(&*storage, &h.coordinator, p).await {
                Ok(records) => {
                    info!(shard = h.shard.0, partition = p, records, "loaded {OFFSETS_TOPIC} partition")
                }
                // The partition stays loading: its groups keep getting
                // COORDINATOR_LOAD_IN_PROGRESS rather than state missing commits.
                Err(e) => {
                    warn!(shard = h.shard.0, partition = p, error = %e, "{OFFSETS_TOPIC} partition not loaded");
                    continue;
                }
            }
            h.loading.borrow_mut().remove(&p);
        }
    })
    .detach();
}

impl HostState {
    /// Refuses a group whose `__consumer_offsets` partition is still being replayed.
    fn ready(&self, table: &TopicTable, group_id: &str) -> Result<(), GroupError> {
        let p = coordinator_of(group_id, table).0;
        if self.loading.borrow().contains(&p) {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// Refuses an operation over every group while any partition is being replayed.
    fn all_ready(&self) -> Result<(), GroupError> {
        if !self.loading.borrow().is_empty() {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    fn deliver(&self) {
        let deliveries = self.coordinator.borrow_mut().take_deliveries();
        for d in deliveries {
            match d {
                Delivery::Join {
                    group_id,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = self.joins.borrow_mut().remove(&(group_id, member_id)) {
                        let _ = tx.send(result);
                    }
                }
                Delivery::Sync {
                    group_id,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = self.syncs.borrow_mut().remove(&(group_id, member_id)) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }

    /// Appends the coordinator's pending writes, one batch per partition. A partition
    /// whose batch holds a leader's assignment is always made durable, and the outcome
    /// completes that SyncGroup (`sync_stored`) before its answers are handed out.
    /// Returns the failure of the last batch not stored.
    async fn persist(
        &self,
        storage: &impl OffsetsStorage,
        durable: bool,
    ) -> Result<(), StoreError> {
        let writes = self.coordinator.borrow_mut().take_writes();
        if writes.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        for (p, batch) in write_records(writes, &storage.table()) {
            let durable = durable || !batch.assignments.is_empty();
            let stored = append_records(storage, p, &batch.records, durable).await;
            let outcome = stored
                .as_ref()
                .map(|_| ())
                .map_err(StoreError::assignment_error);
            if let Err(e) = stored {
                warn!(shard = self.shard.0, partition = p, error = %e, "group records not stored");
                result = Err(e);
            }
            if batch.assignments.is_empty() {
                continue;
            }
            {
                let mut c = self.coordinator.borrow_mut();
                for (group_id, generation_id) in &batch.assignments {
                    c.sync_stored(group_id, *generation_id, outcome.clone(), wall_ms());
                }
            }
            self.deliver();
        }
        result
    }

    /// Stores the records of the call that just ran, logging a failure: the call's
    /// answer stands. A leader's assignment is the exception: its failure reaches the
    /// members through `sync_stored` inside `persist`.
    async fn persist_logged(&self, storage: &impl OffsetsStorage) {
        let _ = self.persist(storage, true).await;
    }

    /// The answer of a JoinGroup or SyncGroup: at once, or once the coordinator delivers
    /// it to the waiter registered here for (`group_id`, member id).
    async fn answer<T: Send + 'static>(
        &self,
        storage: &impl OffsetsStorage,
        answer: Answer<T>,
        group_id: String,
        waiters: &Waiters<T>,
    ) -> Result<T, GroupError> {
        self.deliver();
        let rx = match answer {
            Answer::Done(r) => {
                self.persist_logged(storage).await;
                return r;
            }
            Answer::Pending { member_id } => {
                let (tx, rx) = oneshot::shared();
                waiters.borrow_mut().insert((group_id, member_id), tx);
                rx
            }
        };
        self.persist_logged(storage).await;
        rx.await.unwrap_or(Err(GroupError::RebalanceInProgress))
    }

    async fn join(
        &self,
        storage: &impl OffsetsStorage,
        req: JoinRequest,
    ) -> Result<Joined, GroupError> {
        let group_id = req.group_id.clone();
        let answer = self.coordinator.borrow_mut().join_group(req, wall_ms());
        self.answer(storage, answer, group_id, &self.joins).await
    }

    async fn sync(
        &self,
        storage: &impl OffsetsStorage,
        req: SyncRequest,
    ) -> Result<Synced, GroupError> {
        let group_id = req.group_id.clone();
        let answer = self.coordinator.borrow_mut().sync_group(req, wall_ms());
        self.answer(storage, answer, group_id, &self.syncs).await
    }

    async fn heartbeat(
        &self,
        storage: &impl OffsetsStorage,
        beat: Heartbeat,
    ) -> Result<(), GroupError> {
        let r = self.coordinator.borrow_mut().heartbeat(
            &beat.group_id,
            beat.generation_id.0,
            &beat.member_id,
            beat.group_instance_id.as_deref(),
            wall_ms(),
        );
        self.deliver();
        self.persist_logged(storage).await;
        r
    }

    async fn leave(
        &self,
        storage: &impl OffsetsStorage,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        let r = self
            .coordinator
            .borrow_mut()
            .leave_group(group_id, members, wall_ms());
        self.deliver();
        self.persist_logged(storage).await;
        r
    }

    /// OffsetCommit: check, append durably, then materialize.
    async fn commit(
        &self,
        storage: &impl OffsetsStorage,
        who: CommitIdentity,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Result<PartitionOutcomes, CommitRefused> {
        let offsets = offsets
            .iter()
            .map(|(tp, o)| (key_of(tp), o.clone()))
            .collect();
        let prepared = self
            .coordinator
            .borrow_mut()
            .prepare_commit(&who, offsets, wall_ms())
            .map_err(CommitRefused::Member)?;
        if prepared.accepted.is_empty() {
            return Ok(outcomes(prepared.results));
        }
        let records: Vec<StoredRecord> = prepared
            .accepted
            .iter()
            .map(|((topic, partition), o)| {
                let key = encode_key(&RecordKey::OffsetCommit {
                    group: who.group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                });
                let value = encode_offset_commit_value(&OffsetCommitValue {
                    offset: o.offset.0,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone().unwrap_or_default(),
                    commit_timestamp_ms: i64::try_from(o.commit_timestamp_ms).unwrap_or(i64::MAX),
                    expire_timestamp_ms: -1,
                });
                (key, Some(value))
            })
            .collect();
        let partition = coordinator_of(&who.group_id, &storage.table()).0;
        match append_records(storage, partition, &records, true).await {
            Ok(base) => {
                let stored = prepared
                    .accepted
                    .into_iter()
                    .zip(base.0..)
                    .map(|((tp, o), position)| (tp, o, Some(position)))
                    .collect();
                self.coordinator
                    .borrow_mut()
                    .materialize_commit(&who.group_id, stored);
                Ok(outcomes(prepared.results))
            }
            Err(e) => {
                let e = e.offsets_error();
                Ok(prepared
                    .results
                    .into_iter()
                    .map(|(tp, r)| (tp_of(tp), r.and(Err(e.clone()))))
                    .collect())
            }
        }
    }

    /// OffsetFetch: the committed offsets of `partitions`, or every one of the group.
    fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<TopicPartition>>,
    ) -> CommittedOffsets {
        let c = self.coordinator.borrow();
        match partitions {
            Some(tps) => tps
                .into_iter()
                .map(|tp| {
                    let o = c.committed(group_id, &key_of(&tp)).cloned();
                    (tp, o)
                })
                .collect(),
            None => c
                .all_committed(group_id)
                .into_iter()
                .map(|(tp, o)| (tp_of(tp), Some(o)))
                .collect(),
        }
    }

    fn list(&self, states: &[String]) -> Vec<ListedGroup> {
        self.coordinator
            .borrow()
            .list(states)
            .into_iter()
            .map(|(group_id, protocol_type, state)| ListedGroup {
                group_id,
                protocol_type,
                state,
            })
            .collect()
    }

    /// DeleteGroups, answered as Kafka does once the tombstones are written.
    async fn delete(
        &self,
        storage: &impl OffsetsStorage,
        group_id: &str,
    ) -> Result<(), GroupError> {
        let r = self.coordinator.borrow_mut().delete_group(group_id);
        match (r, self.persist(storage, true).await) {
            (Ok(()), Err(e)) => Err(e.offsets_error()),
            (r, _) => r,
        }
    }

    /// OffsetDelete, answered once the tombstones are written.
    async fn delete_offsets(
        &self,
        storage: &impl OffsetsStorage,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<PartitionOutcomes, GroupError> {
        let keys: Vec<(String, i32)> = partitions.iter().map(key_of).collect();
        let r = delete_offsets(&mut self.coordinator.borrow_mut(), group_id, &keys);
        let r = match (r, self.persist(storage, true).await) {
            (Ok(results), Err(e)) => {
                let e = e.offsets_error();
                Ok(results
                    .into_iter()
                    .map(|(tp, r)| (tp, r.and(Err(e.clone()))))
                    .collect())
            }
            (r, _) => r,
        };
        r.map(outcomes)
    }
}

/// OffsetDelete as Kafka rules it: a group with members may only lose offsets of topics
/// none of them subscribes to, which is known only for the consumer protocol; any other
/// protocol type with members is NON_EMPTY_GROUP.
fn delete_offsets(
    c: &mut Coordinator,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<PartitionResults, GroupError> {
    let summary = c.describe(group_id);
    let has_members = !matches!(summary.state, GroupState::Empty | GroupState::Dead);
    if has_members && summary.protocol_type != CONSUMER_PROTOCOL_TYPE {
        return Err(GroupError::NonEmptyGroup);
    }
    c.delete_offsets(group_id, partitions, |metadata| {
        decode_subscription(metadata.clone())
            .ok()
            .map(|(_, s)| s.topics.iter().map(|t| t.to_string()).collect())
    })
}
