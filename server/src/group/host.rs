//! The coordinator of this shard's groups inside the running broker: one `Coordinator` per
//! shard thread, the waiters of JoinGroup and SyncGroup calls that must wait for other
//! members, a ticker that expires sessions and rebalance deadlines, and the coordinator's
//! `__consumer_offsets` partitions. Requests reach it as `ShardRequest::Group` from any
//! shard (see `handlers/groups.rs`).
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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::oneshot;
use kafka_protocol::ResponseError;
use sluice_engine::Offset;
use sluice_engine::batch::BatchHeader;
use sluice_engine::record::{KeyValue, Record, build_batch, decode_batch};
use sluice_net::consumer_protocol::{CONSUMER_PROTOCOL_TYPE, decode_subscription};
use tracing::{debug, info, warn};

use super::placement::{OFFSETS_TOPIC_PARTITIONS_DEFAULT, offsets_partition};
use super::record::{
    OffsetCommitValue, RecordKey, decode_group_metadata_value, decode_key,
    decode_offset_commit_value, encode_group_metadata_value, encode_key,
    encode_offset_commit_value,
};
use super::{
    Answer, CommitIdentity, CommittedOffset, Coordinator, Delivery, GroupConfig, GroupError,
    GroupState, GroupSummary, GroupWrite, JoinRequest, Joined, LeavingMember, PartitionResults,
    SyncRequest, Synced,
};
use crate::config::BrokerArgs;
use crate::kafka_errors::{append_error, flush_error, group_store_error, offsets_store_error};
use crate::partition::{LEADER_EPOCH, now_ms};
use crate::shard::Shard;
use crate::topic_table::{OFFSETS_TOPIC, ShardId, TopicPartition, TopicTable};

/// How often sessions and deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// Bytes read per step while replaying a `__consumer_offsets` partition.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// Cap on the decompressed records of one batch read while replaying.
const LOAD_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// One group operation, as sent to the coordinator shard.
pub enum GroupOp {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
    },
    Leave {
        group_id: String,
        members: Vec<LeavingMember>,
    },
    Commit {
        who: CommitIdentity,
        offsets: Vec<((String, i32), CommittedOffset)>,
    },
    /// `partitions: None` asks for every committed offset of the group.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// DescribeGroups for one group of this shard.
    Describe {
        group_id: String,
    },
    /// ListGroups on this shard: groups in one of `states` (all when empty).
    List {
        states: Vec<String>,
    },
    /// DeleteGroups for one group of this shard.
    Delete {
        group_id: String,
    },
    /// OffsetDelete: committed offsets of partitions no member subscribes to.
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
    /// To every shard after DeleteTopics: each group of this shard drops its committed
    /// offsets of these topics, durably.
    TopicsDeleted {
        topics: Vec<String>,
    },
}

impl GroupOp {
    /// The group the operation is about; `None` for operations over every group.
    fn group_id(&self) -> Option<&str> {
        match self {
            GroupOp::Join(r) => Some(&r.group_id),
            GroupOp::Sync(r) => Some(&r.group_id),
            GroupOp::Heartbeat { group_id, .. }
            | GroupOp::Leave { group_id, .. }
            | GroupOp::FetchOffsets { group_id, .. }
            | GroupOp::Describe { group_id }
            | GroupOp::Delete { group_id }
            | GroupOp::DeleteOffsets { group_id, .. } => Some(group_id),
            GroupOp::Commit { who, .. } => Some(&who.group_id),
            GroupOp::List { .. } | GroupOp::TopicsDeleted { .. } => None,
        }
    }
}

/// The answer to a `GroupOp`, variant for variant.
pub enum GroupReply {
    Join(Result<Joined, GroupError>),
    Sync(Result<Synced, GroupError>),
    Heartbeat(Result<(), GroupError>),
    Leave(Result<Vec<Result<String, GroupError>>, GroupError>),
    Commit(Result<PartitionResults, GroupError>),
    Offsets(Vec<((String, i32), Option<CommittedOffset>)>),
    Describe(GroupSummary),
    /// (group id, protocol type, state), sorted by group id.
    List(Vec<(String, String, GroupState)>),
    Delete(Result<(), GroupError>),
    DeleteOffsets(Result<PartitionResults, GroupError>),
    TopicsDeleted(Result<(), GroupError>),
    /// The coordinator could not take the operation: its partition is still loading.
    Failed(GroupError),
}

/// Partitions of `__consumer_offsets`: the existing topic's count (the broker flag only
/// sets it at creation, as in Kafka).
pub fn offsets_partition_count(table: &TopicTable) -> i32 {
    table
        .get(OFFSETS_TOPIC)
        .map_or(OFFSETS_TOPIC_PARTITIONS_DEFAULT, |m| m.partition_count())
        .max(1)
}

/// The `__consumer_offsets` partition of `group_id` and the shard that owns it, which is
/// the group's coordinator: partition `p` lives on shard `p % shard_count`
/// (`TopicTable::place`).
pub fn coordinator_of(group_id: &str, table: &TopicTable) -> (i32, ShardId) {
    let p = offsets_partition(group_id, offsets_partition_count(table));
    let shard = table
        .get(OFFSETS_TOPIC)
        .and_then(|m| m.owner(p))
        .unwrap_or_else(|| {
            let n = usize::from(table.shard_count().max(1));
            let p = usize::try_from(p).expect("partition is not negative");
            ShardId((p % n) as u16)
        });
    (p, shard)
}

/// The shard that coordinates `group_id`.
pub fn coordinator_shard(group_id: &str, table: &TopicTable) -> ShardId {
    coordinator_of(group_id, table).1
}

/// Broker flags that shape the coordinator.
pub fn group_config(args: &BrokerArgs) -> GroupConfig {
    GroupConfig {
        offsets_retention_ms: args.offsets_retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: args.offsets_retention_check_interval_ms,
        ..GroupConfig::default()
    }
}

type Key = (String, String);

struct Host {
    coordinator: RefCell<Coordinator>,
    joins: RefCell<HashMap<Key, oneshot::SharedSender<Result<Joined, GroupError>>>>,
    syncs: RefCell<HashMap<Key, oneshot::SharedSender<Result<Synced, GroupError>>>>,
    /// Owned `__consumer_offsets` partitions not yet replayed.
    loading: RefCell<HashSet<i32>>,
}

thread_local! {
    static HOST: RefCell<Option<Rc<Host>>> = const { RefCell::new(None) };
}

fn host() -> Rc<Host> {
    HOST.with(|h| {
        h.borrow()
            .as_ref()
            .expect("the group host is started before requests are served")
            .clone()
    })
}

/// Wall-clock milliseconds: commit timestamps and offset retention outlive the process.
fn wall_ms() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Starts this shard's coordinator: replays its `__consumer_offsets` partitions in the
/// background and runs the ticker. Call once per shard, after its partitions are open
/// and before it serves requests.
pub fn start(shard: &Rc<Shard>) {
    let table = shard.table();
    let mine: Vec<i32> = table
        .get(OFFSETS_TOPIC)
        .map(|m| {
            (0..m.partition_count())
                .filter(|p| m.owner(*p) == Some(shard.id))
                .collect()
        })
        .unwrap_or_default();
    let host = Rc::new(Host {
        coordinator: RefCell::new(Coordinator::new(group_config(&shard.args))),
        joins: RefCell::new(HashMap::new()),
        syncs: RefCell::new(HashMap::new()),
        loading: RefCell::new(mine.iter().copied().collect()),
    });
    HOST.with(|h| *h.borrow_mut() = Some(host.clone()));

    let weak_host = Rc::downgrade(&host);
    let weak_shard = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(TICK).await;
            let (Some(h), Some(shard)) = (weak_host.upgrade(), weak_shard.upgrade()) else {
                break;
            };
            // Expiry while a partition is half replayed could remove a group whose
            // offsets come later in the log.
            if !h.loading.borrow().is_empty() {
                continue;
            }
            h.coordinator.borrow_mut().tick(wall_ms());
            h.deliver();
            if let Err(e) = h.persist(&shard, false).await {
                warn!(shard = shard.id.0, error = %e, "group records not stored");
            }
        }
    })
    .detach();

    let weak_shard: Weak<Shard> = Rc::downgrade(shard);
    let loader_host = host.clone();
    glommio::spawn_local(async move {
        let h = loader_host;
        for p in mine {
            let Some(shard) = weak_shard.upgrade() else {
                return;
            };
            match load_partition(&shard, &h, p).await {
                Ok(records) => {
                    info!(shard = shard.id.0, partition = p, records, "loaded {OFFSETS_TOPIC} partition")
                }
                // The partition stays loading: its groups keep getting
                // COORDINATOR_LOAD_IN_PROGRESS rather than state missing commits.
                Err(e) => {
                    warn!(shard = shard.id.0, partition = p, error = %e, "{OFFSETS_TOPIC} partition not loaded");
                    continue;
                }
            }
            h.loading.borrow_mut().remove(&p);
        }
    })
    .detach();
}

fn offsets_tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic: Arc::from(OFFSETS_TOPIC),
        partition,
    }
}

/// Replays one partition from its log start into the coordinator; the number of records.
async fn load_partition(shard: &Shard, h: &Host, partition: i32) -> Result<usize, String> {
    let tp = offsets_tp(partition);
    let log = shard
        .partitions
        .get(&tp)
        .ok_or_else(|| format!("{tp} is not open on this shard"))?;
    let end = log.log_end_offset();
    let mut at = log.log_start_offset();
    let mut records = 0usize;
    let now = wall_ms();
    while at < end {
        let r = log
            .read(at, LOAD_READ_BYTES)
            .await
            .map_err(|e| format!("{tp} at {}: {e}", at.0))?;
        if r.batches.is_empty() {
            break;
        }
        for batch in &r.batches {
            let header = BatchHeader::new(batch).map_err(|e| format!("{tp}: {e}"))?;
            let base = header.base_offset().0;
            let next = Offset(header.last_offset().0 + 1);
            if next <= at {
                return Err(format!(
                    "{tp}: batch at {base} does not advance past {}",
                    at.0
                ));
            }
            at = next;
            if header.is_control() {
                continue;
            }
            match decode_batch(batch, LOAD_DECOMPRESSED_BYTES_MAX) {
                Ok(decoded) => {
                    let mut c = h.coordinator.borrow_mut();
                    let table = shard.table();
                    for rec in decoded.records {
                        let position = base + i64::from(rec.offset_delta);
                        apply_record(&mut c, rec, position, now, &tp, &table);
                        records += 1;
                    }
                }
                Err(e) => {
                    warn!(partition = %tp, base_offset = base, error = %e, "skipping undecodable batch")
                }
            }
            glommio::yield_if_needed().await;
        }
    }
    // Replayed records must not be written back.
    h.coordinator.borrow_mut().take_writes();
    Ok(records)
}

/// Applies one replayed record; records Sluice does not know (other key versions, bad
/// bytes) are skipped with a warning. Commits to topics that no longer exist are skipped
/// too: a topic deleted while this partition was loading, or before its tombstones were
/// stored, must not bring its offsets back.
fn apply_record(
    c: &mut Coordinator,
    rec: Record,
    position: i64,
    now_ms: u64,
    tp: &TopicPartition,
    table: &TopicTable,
) {
    let Some(key) = rec.key else {
        warn!(partition = %tp, offset = position, "record without key skipped");
        return;
    };
    let key = match decode_key(&key) {
        Ok(k) => k,
        Err(e) => {
            debug!(partition = %tp, offset = position, error = %e, "record key skipped");
            return;
        }
    };
    match key {
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            if table.get(&topic).is_none() {
                debug!(partition = %tp, offset = position, topic, "commit of a deleted topic skipped");
                return;
            }
            let value = match rec.value.as_deref().map(decode_offset_commit_value) {
                None => None,
                Some(Ok(v)) => Some(CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: Some(v.metadata),
                    commit_timestamp_ms: u64::try_from(v.commit_timestamp_ms).unwrap_or(0),
                }),
                Some(Err(e)) => {
                    warn!(partition = %tp, offset = position, error = %e, "offset commit value skipped");
                    return;
                }
            };
            c.load_offset(&group, (topic, partition), value, position);
        }
        RecordKey::GroupMetadata { group } => {
            let value = match rec.value.as_deref().map(decode_group_metadata_value) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    warn!(partition = %tp, offset = position, error = %e, "group metadata value skipped");
                    return;
                }
            };
            c.load_group(&group, value, now_ms);
        }
    }
}

/// One `__consumer_offsets` record: encoded key and value, `None` for a tombstone.
type StoredRecord = (Vec<u8>, Option<Vec<u8>>);

/// Appends `records` (key, value or tombstone) as one batch to `__consumer_offsets`
/// partition `partition`; with `durable`, returns only once they are fdatasync'ed.
/// Returns the log offset of the first record, or the error a produce would get, which
/// the caller maps as Kafka's coordinator does for what it stored.
async fn append_records(
    shard: &Shard,
    partition: i32,
    records: &[StoredRecord],
    durable: bool,
) -> Result<i64, ResponseError> {
    assert!(!records.is_empty());
    let log = shard
        .partitions
        .get(&offsets_tp(partition))
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let kv: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    let now = now_ms();
    let batch = build_batch(0, now, 0, &kv);
    let info = log
        .append(Bytes::from(batch), LEADER_EPOCH, now)
        .map_err(|e| append_error(&e))?;
    shard.appends.notify();
    if durable {
        log.wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .map_err(|e| flush_error(&e))?;
    }
    Ok(info.base_offset.0)
}

/// The records of the coordinator's writes for one `__consumer_offsets` partition.
#[derive(Default)]
struct PartitionWrites {
    records: Vec<StoredRecord>,
    /// (group id, generation) of each `GroupWrite::Assignment` among the records.
    assignments: Vec<(String, i32)>,
}

/// The records of the coordinator's writes, by `__consumer_offsets` partition.
fn write_records(writes: Vec<GroupWrite>, table: &TopicTable) -> BTreeMap<i32, PartitionWrites> {
    let mut out: BTreeMap<i32, PartitionWrites> = BTreeMap::new();
    for w in writes {
        match w {
            GroupWrite::Metadata { group_id, value } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata { group: group_id });
                out.entry(p)
                    .or_default()
                    .records
                    .push((key, Some(encode_group_metadata_value(&value))));
            }
            GroupWrite::Assignment {
                group_id,
                generation_id,
                value,
            } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata {
                    group: group_id.clone(),
                });
                let entry = out.entry(p).or_default();
                entry
                    .records
                    .push((key, Some(encode_group_metadata_value(&value))));
                entry.assignments.push((group_id, generation_id));
            }
            GroupWrite::OffsetsRemoved {
                group_id,
                partitions,
            } => {
                let p = coordinator_of(&group_id, table).0;
                let entry = out.entry(p).or_default();
                for (topic, partition) in partitions {
                    let key = encode_key(&RecordKey::OffsetCommit {
                        group: group_id.clone(),
                        topic,
                        partition,
                    });
                    entry.records.push((key, None));
                }
            }
            GroupWrite::GroupRemoved { group_id } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata { group: group_id });
                out.entry(p).or_default().records.push((key, None));
            }
        }
    }
    out
}

impl Host {
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
    async fn persist(&self, shard: &Shard, durable: bool) -> Result<(), GroupError> {
        let writes = self.coordinator.borrow_mut().take_writes();
        if writes.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        for (p, batch) in write_records(writes, &shard.table()) {
            let durable = durable || !batch.assignments.is_empty();
            let stored = append_records(shard, p, &batch.records, durable).await;
            if let Err(e) = stored {
                warn!(shard = shard.id.0, partition = p, error = ?e, "group records not stored");
                result = Err(offsets_store_error(e));
            }
            if batch.assignments.is_empty() {
                continue;
            }
            let outcome = stored.map(|_| ()).map_err(group_store_error);
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
    async fn persist_logged(&self, shard: &Shard) {
        let _ = self.persist(shard, true).await;
    }

    /// OffsetCommit: check, append durably, then materialize.
    async fn commit(
        &self,
        shard: &Shard,
        who: CommitIdentity,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<PartitionResults, GroupError> {
        let prepared = self
            .coordinator
            .borrow_mut()
            .prepare_commit(&who, offsets, wall_ms())?;
        if prepared.accepted.is_empty() {
            return Ok(prepared.results);
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
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone().unwrap_or_default(),
                    commit_timestamp_ms: i64::try_from(o.commit_timestamp_ms).unwrap_or(i64::MAX),
                    expire_timestamp_ms: -1,
                });
                (key, Some(value))
            })
            .collect();
        let partition = coordinator_of(&who.group_id, &shard.table()).0;
        match append_records(shard, partition, &records, true).await {
            Ok(base) => {
                let stored = prepared
                    .accepted
                    .into_iter()
                    .zip(base..)
                    .map(|((tp, o), position)| (tp, o, Some(position)))
                    .collect();
                self.coordinator
                    .borrow_mut()
                    .materialize_commit(&who.group_id, stored);
                Ok(prepared.results)
            }
            Err(e) => {
                let e = offsets_store_error(e);
                Ok(prepared
                    .results
                    .into_iter()
                    .map(|(tp, r)| (tp, r.and(Err(e.clone()))))
                    .collect())
            }
        }
    }
}

/// Runs one operation on this shard's coordinator, waiting for other members if needed.
/// Records the operation decided are appended (durably) before its own answer; waiters
/// are registered before that await, so no delivery can miss them.
pub async fn serve(shard: &Rc<Shard>, op: GroupOp) -> GroupReply {
    let h = host();
    let loading = match op.group_id() {
        Some(g) => {
            let p = coordinator_of(g, &shard.table()).0;
            h.loading.borrow().contains(&p)
        }
        // A partition still replaying skips the offsets of topics no longer in the table
        // (`apply_record`), so a deletion need not wait for it.
        None if matches!(op, GroupOp::TopicsDeleted { .. }) => false,
        None => !h.loading.borrow().is_empty(),
    };
    if loading {
        return GroupReply::Failed(GroupError::CoordinatorLoadInProgress);
    }
    let now = wall_ms();
    match op {
        GroupOp::Join(req) => {
            let group_id = req.group_id.clone();
            let answer = h.coordinator.borrow_mut().join_group(req, now);
            h.deliver();
            let rx = match answer {
                Answer::Done(r) => {
                    h.persist_logged(shard).await;
                    return GroupReply::Join(r);
                }
                Answer::Pending { member_id } => {
                    let (tx, rx) = oneshot::shared();
                    h.joins.borrow_mut().insert((group_id, member_id), tx);
                    rx
                }
            };
            h.persist_logged(shard).await;
            GroupReply::Join(rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)))
        }
        GroupOp::Sync(req) => {
            let group_id = req.group_id.clone();
            let answer = h.coordinator.borrow_mut().sync_group(req, now);
            h.deliver();
            let rx = match answer {
                Answer::Done(r) => {
                    h.persist_logged(shard).await;
                    return GroupReply::Sync(r);
                }
                Answer::Pending { member_id } => {
                    let (tx, rx) = oneshot::shared();
                    h.syncs.borrow_mut().insert((group_id, member_id), tx);
                    rx
                }
            };
            h.persist_logged(shard).await;
            GroupReply::Sync(rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)))
        }
        GroupOp::Heartbeat {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
        } => {
            let r = h.coordinator.borrow_mut().heartbeat(
                &group_id,
                generation_id,
                &member_id,
                group_instance_id.as_deref(),
                now,
            );
            h.deliver();
            h.persist_logged(shard).await;
            GroupReply::Heartbeat(r)
        }
        GroupOp::Leave { group_id, members } => {
            let r = h
                .coordinator
                .borrow_mut()
                .leave_group(&group_id, &members, now);
            h.deliver();
            h.persist_logged(shard).await;
            GroupReply::Leave(r)
        }
        GroupOp::Commit { who, offsets } => GroupReply::Commit(h.commit(shard, who, offsets).await),
        GroupOp::FetchOffsets {
            group_id,
            partitions,
        } => {
            let c = h.coordinator.borrow();
            let out = match partitions {
                Some(tps) => tps
                    .into_iter()
                    .map(|tp| {
                        let o = c.committed(&group_id, &tp).cloned();
                        (tp, o)
                    })
                    .collect(),
                None => c
                    .all_committed(&group_id)
                    .into_iter()
                    .map(|(tp, o)| (tp, Some(o)))
                    .collect(),
            };
            GroupReply::Offsets(out)
        }
        GroupOp::Describe { group_id } => {
            GroupReply::Describe(h.coordinator.borrow().describe(&group_id))
        }
        GroupOp::List { states } => GroupReply::List(h.coordinator.borrow().list(&states)),
        GroupOp::Delete { group_id } => {
            let r = h.coordinator.borrow_mut().delete_group(&group_id);
            // Kafka answers DeleteGroups once the tombstones are written.
            let r = match (r, h.persist(shard, true).await) {
                (Ok(()), Err(e)) => Err(e),
                (r, _) => r,
            };
            GroupReply::Delete(r)
        }
        GroupOp::DeleteOffsets {
            group_id,
            partitions,
        } => {
            let r = delete_offsets(&mut h.coordinator.borrow_mut(), &group_id, &partitions);
            let r = match (r, h.persist(shard, true).await) {
                (Ok(results), Err(e)) => Ok(results
                    .into_iter()
                    .map(|(tp, r)| (tp, r.and(Err(e.clone()))))
                    .collect()),
                (r, _) => r,
            };
            GroupReply::DeleteOffsets(r)
        }
        GroupOp::TopicsDeleted { topics } => {
            h.coordinator.borrow_mut().topics_deleted(&topics);
            GroupReply::TopicsDeleted(h.persist(shard, true).await)
        }
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
