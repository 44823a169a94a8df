//! A shard: one pinned glommio executor and everything it owns — its partitions, its
//! read-only copy of the topic table, its client connections. This file starts the
//! shards, routes `ShardRequest`s between them over the channel mesh, and runs the
//! controller duties of shard 0 (the only writer of topic metadata and producer ids).
//! Nothing here is shared between shards except immutable `Arc`s.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::channels::oneshot;
use glommio::net::TcpListener;
use glommio::sync::{CancellationToken, Semaphore};
use glommio::{LocalExecutorBuilder, Placement};
use kafka_protocol::ResponseError;
use tracing::{debug, error, info, warn};

use crate::config::{BrokerArgs, CLEANUP_POLICY, SEGMENT_BYTES, validate_topic_config};
use crate::connection;
use crate::foreign_wake::Relayed;
use crate::group::host::{GroupHost, group_config};
use crate::group::store::{OffsetsStorage, offsets_tp};
use crate::partition::{AppendSignal, PartitionSet};
use crate::shard_request::*;
use crate::topic_store::{
    FileTopicStore, ProducerIdBlocks, TopicRecord, TopicStore, load_or_create_cluster_id,
};
use crate::topic_table::{
    OFFSETS_TOPIC, PARTITIONS_MAX, ShardId, TopicPartition, TopicTable, is_internal,
    valid_topic_name,
};

/// Capacity of each mesh channel; a full channel makes the sender wait (backpressure).
const MESH_CHANNEL_CAPACITY: usize = 1024;

/// A cross-core call that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("shard {0:?} is not reachable")]
    Unreachable(ShardId),
    #[error("shard {0:?} dropped the request")]
    Dropped(ShardId),
}

/// The reply to a request already enqueued by `Shard::send`.
pub struct PendingReply<T: Send> {
    rx: oneshot::SharedReceiver<T>,
    from: ShardId,
}

impl<T: Send> PendingReply<T> {
    pub async fn wait(self) -> Result<T, CallError> {
        // Relayed: the replying shard must never drop this task's waker (see foreign_wake).
        Relayed::new(self.rx)
            .await
            .map_err(|_| CallError::Dropped(self.from))
    }
}

/// Everything one shard owns. Lives in an `Rc` on its own executor.
pub struct Shard {
    pub id: ShardId,
    pub args: Arc<BrokerArgs>,
    pub cluster_id: Arc<str>,
    table: RefCell<Arc<TopicTable>>,
    mesh: Senders<ShardRequest>,
    pub partitions: PartitionSet,
    /// Every offline partition of every shard (each owner announces its own), for Metadata.
    offline_partitions: RefCell<std::collections::HashSet<TopicPartition>>,
    pub appends: Rc<AppendSignal>,
    pub shutdown: CancellationToken,
    shutdown_reply: RefCell<Option<Reply<()>>>,
    next_conn: Cell<u64>,
    /// Read budget, read scratch and (on shard 0) connection counts.
    pub connections: connection::ShardConnections,
    controller: Option<Controller>,
    /// This shard's group coordinator.
    pub groups: GroupHost,
}

/// Shard 0's extra state: the writer side of topic metadata and producer ids.
struct Controller {
    store: Arc<dyn TopicStore + Sync>,
    records: RefCell<Vec<TopicRecord>>,
    producer_ids: Rc<RefCell<ProducerIdBlocks>>,
    /// Serializes metadata mutations: one at a time, across their awaits.
    lock: Semaphore,
}

/// The group coordinator's narrow view of its shard.
impl OffsetsStorage for Shard {
    fn table(&self) -> Arc<TopicTable> {
        Shard::table(self)
    }

    fn offsets_log(&self, partition: i32) -> Option<Rc<sluice_engine::Log>> {
        self.partitions.get(&offsets_tp(partition))
    }

    fn appended(&self) {
        self.appends.notify();
    }
}

impl Shard {
    pub fn table(&self) -> Arc<TopicTable> {
        self.table.borrow().clone()
    }

    pub fn shard_count(&self) -> u16 {
        self.table.borrow().shard_count()
    }

    /// Whether a partition (on any shard) is offline: its log could not be opened.
    /// Metadata asks for every partition, so the usual case (none offline) looks nothing
    /// up, and the topic name is shared, not copied.
    pub fn is_offline(&self, topic: &Arc<str>, partition: i32) -> bool {
        let offline = self.offline_partitions.borrow();
        !offline.is_empty()
            && offline.contains(&TopicPartition {
                topic: topic.clone(),
                partition,
            })
    }

    /// Tells every shard (this one included) that `tp` went offline or came back.
    async fn announce_offline(self: &Rc<Self>, tp: TopicPartition, offline: bool) {
        for s in 0..self.shard_count() {
            let tp = tp.clone();
            if let Err(e) = self
                .ask(ShardId(s), |reply| ShardRequest::PartitionOffline {
                    tp,
                    offline,
                    reply,
                })
                .await
            {
                warn!(shard = self.id.0, error = %e, "offline mark not delivered");
            }
        }
    }

    /// Announces, in a task of its own (the caller may be a handler the announcement
    /// waits behind), the partitions of `topic` that are offline here.
    fn announce_offline_later(
        self: &Rc<Self>,
        topic: &Arc<str>,
        partitions: &[i32],
        offline: bool,
    ) {
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|&partition| TopicPartition {
                topic: topic.clone(),
                partition,
            })
            .collect();
        let me = self.clone();
        glommio::spawn_local(async move {
            for tp in tps {
                me.announce_offline(tp, offline).await;
            }
        })
        .detach();
    }

    pub fn next_conn_id(&self) -> u64 {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        // Unique across shards: the shard id is in the low bits.
        n * u64::from(self.shard_count()) + u64::from(self.id.0)
    }

    /// Sends a request to shard `to` (or handles it here when `to` is this shard) and
    /// waits for its reply.
    pub async fn ask<T: Send + 'static>(
        self: &Rc<Self>,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, CallError> {
        self.send(to, make).await?.wait().await
    }

    /// Enqueues a request for shard `to` and returns the pending reply. Requests sent one
    /// after another from one task reach the destination's handlers in that order, and
    /// each handler starts in arrival order, which keeps pipelined produces ordered.
    pub async fn send<T: Send + 'static>(
        self: &Rc<Self>,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<PendingReply<T>, CallError> {
        let (tx, rx) = oneshot::shared::<T>();
        let req = make(tx);
        if to == self.id {
            let me = self.clone();
            glommio::spawn_local(async move { me.handle(req).await }).detach();
        } else if self.mesh.send_to(to.index(), req).await.is_err() {
            return Err(CallError::Unreachable(to));
        }
        Ok(PendingReply { rx, from: to })
    }

    /// Handles one request addressed to this shard, replying through its handle.
    async fn handle(self: Rc<Self>, req: ShardRequest) {
        // A failed reply send means the asker went away (connection closed); nothing to do.
        match req {
            ShardRequest::Produce {
                tp,
                records,
                acks,
                reply,
            } => {
                let r = self
                    .partitions
                    .produce(&tp, records, acks, &self.appends)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::Fetch {
                parts,
                wait_until,
                reply,
            } => {
                let r = self
                    .partitions
                    .fetch(&parts, wait_until, &self.appends)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::ListOffsets {
                tp,
                timestamp,
                reply,
            } => {
                let r = self.partitions.list_offsets(&tp, timestamp).await;
                let _ = reply.send(r);
            }
            ShardRequest::EpochEnd {
                tp,
                leader_epoch,
                reply,
            } => {
                let r = self.partitions.epoch_end(&tp, leader_epoch);
                let _ = reply.send(r);
            }
            ShardRequest::DeleteRecords { tp, offset, reply } => {
                let r = self.partitions.delete_records(&tp, offset).await;
                let _ = reply.send(r);
            }
            ShardRequest::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let r = self.create_topics(topics, validate_only).await;
                let _ = reply.send(r);
            }
            ShardRequest::DeleteTopics { names, reply } => {
                let r = self.delete_topics(names).await;
                let _ = reply.send(r);
            }
            ShardRequest::CreatePartitions {
                topics,
                validate_only,
                reply,
            } => {
                let r = self.create_partitions(topics, validate_only).await;
                let _ = reply.send(r);
            }
            ShardRequest::AlterConfigs {
                changes,
                validate_only,
                reply,
            } => {
                let r = self.alter_configs(changes, validate_only).await;
                let _ = reply.send(r);
            }
            ShardRequest::AllocateProducerId { reply } => {
                let r = self.allocate_producer_id().await;
                let _ = reply.send(r);
            }
            ShardRequest::OpenPartitions {
                topic,
                partitions,
                configs,
                reply,
            } => {
                // One partition that cannot be opened goes offline alone; the rest open.
                let mut result = Ok(());
                let mut failed = Vec::new();
                for p in partitions {
                    if let Err(e) = self
                        .partitions
                        .open(&self.args, topic.clone(), p, &configs)
                        .await
                    {
                        failed.push(p);
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                }
                if !failed.is_empty() {
                    self.announce_offline_later(&topic, &failed, true);
                }
                let _ = reply.send(result);
            }
            ShardRequest::ClosePartitions {
                topic,
                partitions,
                delete,
                reply,
            } => {
                let mut were_offline = Vec::new();
                for p in partitions {
                    let tp = TopicPartition {
                        topic: topic.clone(),
                        partition: p,
                    };
                    if self.partitions.is_offline(&tp) {
                        were_offline.push(p);
                    }
                    self.partitions
                        .close(&self.args, topic.clone(), p, delete)
                        .await;
                }
                if !were_offline.is_empty() {
                    self.announce_offline_later(&topic, &were_offline, false);
                }
                let _ = reply.send(());
            }
            ShardRequest::SetConfig {
                topic,
                configs,
                reply,
            } => {
                self.partitions.set_config(&self.args, &topic, &configs);
                let _ = reply.send(());
            }
            ShardRequest::Group(req) => self.groups.serve(&*self, req).await,
            ShardRequest::TableUpdate { table, reply } => {
                *self.table.borrow_mut() = table;
                let _ = reply.send(());
            }
            ShardRequest::PartitionOffline { tp, offline, reply } => {
                if offline {
                    self.offline_partitions.borrow_mut().insert(tp);
                } else {
                    self.offline_partitions.borrow_mut().remove(&tp);
                }
                let _ = reply.send(());
            }
            ShardRequest::Shutdown { reply } => {
                *self.shutdown_reply.borrow_mut() = Some(reply);
                self.shutdown.cancel();
            }
            ShardRequest::AdmitConnection { ip, reply } => {
                let _ = reply.send(self.connections.admit(ip, &self.args));
            }
            ShardRequest::ReleaseConnection { ip, reply } => {
                self.connections.release(ip);
                let _ = reply.send(());
            }
        }
    }

    fn controller(&self) -> &Controller {
        self.controller
            .as_ref()
            .expect("metadata mutations are only sent to shard 0")
    }

    /// Installs `table` here and on every other shard; returns once all have it.
    async fn publish(self: &Rc<Self>, table: TopicTable) {
        let table = Arc::new(table);
        *self.table.borrow_mut() = table.clone();
        for s in 0..self.shard_count() {
            let to = ShardId(s);
            if to == self.id {
                continue;
            }
            let t = table.clone();
            if let Err(e) = self
                .ask(to, |reply| ShardRequest::TableUpdate { table: t, reply })
                .await
            {
                warn!(shard = self.id.0, error = %e, "table update not delivered");
            }
        }
    }

    /// Persists the controller's records through the store, off the reactor thread.
    async fn persist(&self, records: Vec<TopicRecord>) -> Result<(), String> {
        let store = self.controller().store.clone();
        glommio::executor()
            .spawn_blocking(move || store.save(&records))
            .await
            .map_err(|e| e.to_string())
    }

    /// Opens every partition of `topic` numbered in `range` on its owning shard.
    async fn open_on_owners(
        self: &Rc<Self>,
        table: &TopicTable,
        topic: &str,
        range: std::ops::Range<i32>,
    ) -> Result<(), String> {
        let meta = table.get(topic).expect("topic in table").clone();
        let mut by_owner: BTreeMap<ShardId, Vec<i32>> = BTreeMap::new();
        for p in range {
            by_owner
                .entry(meta.owner(p).expect("partition placed"))
                .or_default()
                .push(p);
        }
        for (owner, parts) in by_owner {
            let name = meta.name.clone();
            let configs = meta.configs.clone();
            self.ask(owner, |reply| ShardRequest::OpenPartitions {
                topic: name,
                partitions: parts,
                configs,
                reply,
            })
            .await
            .map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    async fn create_topics(
        self: &Rc<Self>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let ctl = self.controller();
        let _permit = ctl.lock.acquire_permit(1).await;
        let mut table = TopicTable::clone(&self.table());
        let mut records = ctl.records.borrow().clone();
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut created = Vec::new();
        for t in &topics {
            let dup = topics.iter().filter(|o| o.name == t.name).count() > 1;
            let outcome = if dup {
                fail(
                    ResponseError::InvalidRequest,
                    "topic named twice in one request",
                )
            } else if !valid_topic_name(&t.name) {
                fail(ResponseError::InvalidTopicException, "illegal topic name")
            } else if table.get(&t.name).is_some() {
                fail(ResponseError::TopicAlreadyExists, "topic already exists")
            } else if !(1..=PARTITIONS_MAX).contains(&t.partitions) {
                fail(
                    ResponseError::InvalidPartitions,
                    &format!("partition count must be in 1..={PARTITIONS_MAX}"),
                )
            } else if let Some(msg) = t
                .configs
                .iter()
                .find_map(|(k, v)| validate_topic_config(k, v).err())
                .or_else(|| self.args.validate_topic_configs(&t.configs).err())
            {
                fail(ResponseError::InvalidConfig, &msg)
            } else {
                if !validate_only {
                    let id = uuid::Uuid::from_u128(rand::random::<u128>());
                    table = table.with_topic(&t.name, id, t.partitions as usize, t.configs.clone());
                    records.push(TopicRecord {
                        name: t.name.clone(),
                        id,
                        partitions: t.partitions,
                        configs: t.configs.clone(),
                    });
                    created.push(t.name.clone());
                }
                TopicOutcome::default()
            };
            outcomes.push(outcome);
        }
        if created.is_empty() {
            return outcomes;
        }
        if let Err(msg) = self.persist(records.clone()).await {
            error!(error = %msg, "topic metadata not persisted");
            for (t, o) in topics.iter().zip(outcomes.iter_mut()) {
                if created.contains(&t.name) {
                    *o = fail(ResponseError::KafkaStorageError, &msg);
                }
            }
            return outcomes;
        }
        *ctl.records.borrow_mut() = records;
        for name in &created {
            let count = table.get(name).expect("created").partition_count();
            if let Err(msg) = self.open_on_owners(&table, name, 0..count).await {
                error!(topic = %name, error = %msg, "partitions not opened");
                if let Some(i) = topics.iter().position(|t| &t.name == name) {
                    outcomes[i] = fail(ResponseError::KafkaStorageError, &msg);
                }
            }
            info!(topic = %name, partitions = count, "created topic");
        }
        self.publish(table).await;
        outcomes
    }

    async fn delete_topics(self: &Rc<Self>, names: Vec<String>) -> Vec<TopicOutcome> {
        let ctl = self.controller();
        let _permit = ctl.lock.acquire_permit(1).await;
        let mut table = TopicTable::clone(&self.table());
        let mut records = ctl.records.borrow().clone();
        let mut outcomes = Vec::with_capacity(names.len());
        let mut deleted = Vec::new();
        for name in &names {
            match table.get(name) {
                None => outcomes.push(fail(
                    ResponseError::UnknownTopicOrPartition,
                    "no such topic",
                )),
                // Group coordinators live on it; deleting it would lose every commit.
                Some(_) if is_internal(name) => outcomes.push(fail(
                    ResponseError::InvalidRequest,
                    "internal topic cannot be deleted",
                )),
                Some(meta) => {
                    deleted.push(meta.clone());
                    table = table.without_topic(name);
                    records.retain(|r| &r.name != name);
                    outcomes.push(TopicOutcome::default());
                }
            }
        }
        if deleted.is_empty() {
            return outcomes;
        }
        if let Err(msg) = self.persist(records.clone()).await {
            error!(error = %msg, "topic metadata not persisted");
            return names
                .iter()
                .map(|_| fail(ResponseError::KafkaStorageError, &msg))
                .collect();
        }
        *ctl.records.borrow_mut() = records;
        self.publish(table).await;
        let deleted_names: Vec<String> = deleted.iter().map(|m| m.name.to_string()).collect();
        for meta in deleted {
            let mut by_owner: BTreeMap<ShardId, Vec<i32>> = BTreeMap::new();
            for (p, owner) in meta.owners.iter().enumerate() {
                by_owner.entry(*owner).or_default().push(p as i32);
            }
            for (owner, parts) in by_owner {
                let topic = meta.name.clone();
                let _ = self
                    .ask(owner, |reply| ShardRequest::ClosePartitions {
                        topic,
                        partitions: parts,
                        delete: true,
                        reply,
                    })
                    .await;
            }
            info!(topic = %meta.name, "deleted topic");
        }
        self.forget_deleted_offsets(deleted_names).await;
        outcomes
    }

    /// Has every shard's coordinator drop (durably) its groups' committed offsets of
    /// deleted topics, as Kafka does; a failure is logged, and a later restart skips
    /// those offsets anyway when it replays `__consumer_offsets`.
    async fn forget_deleted_offsets(self: &Rc<Self>, topics: Vec<String>) {
        use crate::mesh::group::GroupRequest;
        for s in 0..self.shard_count() {
            let topics = topics.clone();
            match self
                .ask(ShardId(s), |reply| {
                    ShardRequest::Group(GroupRequest::TopicsDeleted { topics, reply })
                })
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(shard = s, error = %e, "offsets of deleted topics not removed"),
                Err(e) => warn!(shard = s, error = %e, "offsets of deleted topics not removed"),
            }
        }
    }

    async fn create_partitions(
        self: &Rc<Self>,
        topics: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let ctl = self.controller();
        let _permit = ctl.lock.acquire_permit(1).await;
        let mut table = TopicTable::clone(&self.table());
        let mut records = ctl.records.borrow().clone();
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut grown = Vec::new();
        for (name, count) in &topics {
            let outcome = match table.get(name) {
                None => fail(ResponseError::UnknownTopicOrPartition, "no such topic"),
                // Groups are hashed over its partition count; growing it would move them.
                Some(_) if is_internal(name) => fail(
                    ResponseError::InvalidRequest,
                    "the partition count of an internal topic cannot change",
                ),
                Some(meta) if *count <= meta.partition_count() => fail(
                    ResponseError::InvalidPartitions,
                    &format!(
                        "topic has {} partitions; the count can only grow",
                        meta.partition_count()
                    ),
                ),
                Some(_) if *count > PARTITIONS_MAX => fail(
                    ResponseError::InvalidPartitions,
                    &format!("partition count must be at most {PARTITIONS_MAX}"),
                ),
                Some(meta) => {
                    if !validate_only {
                        let old = meta.partition_count();
                        table = table.with_more_partitions(name, (*count - old) as usize);
                        if let Some(r) = records.iter_mut().find(|r| &r.name == name) {
                            r.partitions = *count;
                        }
                        grown.push((name.clone(), old, *count));
                    }
                    TopicOutcome::default()
                }
            };
            outcomes.push(outcome);
        }
        if grown.is_empty() {
            return outcomes;
        }
        if let Err(msg) = self.persist(records.clone()).await {
            return topics
                .iter()
                .map(|_| fail(ResponseError::KafkaStorageError, &msg))
                .collect();
        }
        *ctl.records.borrow_mut() = records;
        for (name, old, new) in &grown {
            if let Err(msg) = self.open_on_owners(&table, name, *old..*new).await {
                error!(topic = %name, error = %msg, "new partitions not opened");
            }
        }
        self.publish(table).await;
        outcomes
    }

    async fn alter_configs(
        self: &Rc<Self>,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let ctl = self.controller();
        let _permit = ctl.lock.acquire_permit(1).await;
        let mut table = TopicTable::clone(&self.table());
        let mut records = ctl.records.borrow().clone();
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut altered = Vec::new();
        for ch in &changes {
            let Some(meta) = table.get(&ch.topic) else {
                outcomes.push(fail(
                    ResponseError::UnknownTopicOrPartition,
                    "no such topic",
                ));
                continue;
            };
            let mut configs = meta.configs.clone();
            let mut bad = None;
            for (k, v) in &ch.ops {
                match v {
                    Some(v) => match validate_topic_config(k, v) {
                        Ok(()) => {
                            configs.insert(k.clone(), v.clone());
                        }
                        Err(m) => bad = Some(m),
                    },
                    None => {
                        if let Err(m) = validate_topic_config(k, "0")
                            && m.starts_with("unknown")
                        {
                            bad = Some(m);
                        }
                        configs.remove(k);
                    }
                }
            }
            if let Some(m) = bad.or_else(|| self.args.validate_topic_configs(&configs).err()) {
                outcomes.push(fail(ResponseError::InvalidConfig, &m));
                continue;
            }
            if !validate_only {
                table = table.with_configs(&ch.topic, configs.clone());
                if let Some(r) = records.iter_mut().find(|r| r.name == ch.topic) {
                    r.configs = configs;
                }
                altered.push(ch.topic.clone());
            }
            outcomes.push(TopicOutcome::default());
        }
        if altered.is_empty() {
            return outcomes;
        }
        if let Err(msg) = self.persist(records.clone()).await {
            return changes
                .iter()
                .map(|_| fail(ResponseError::KafkaStorageError, &msg))
                .collect();
        }
        *ctl.records.borrow_mut() = records;
        for name in &altered {
            let meta = table.get(name).expect("altered").clone();
            let mut owners: Vec<ShardId> = meta.owners.clone();
            owners.sort();
            owners.dedup();
            for owner in owners {
                let topic = meta.name.clone();
                let configs = meta.configs.clone();
                let _ = self
                    .ask(owner, |reply| ShardRequest::SetConfig {
                        topic,
                        configs,
                        reply,
                    })
                    .await;
            }
        }
        self.publish(table).await;
        outcomes
    }

    async fn allocate_producer_id(&self) -> Result<i64, String> {
        let ctl = self.controller();
        let _permit = ctl.lock.acquire_permit(1).await;
        let blocks = ctl.producer_ids.clone();
        if let Some(id) = blocks.borrow_mut().next_id() {
            return Ok(id);
        }
        // Reserve the next block on a blocking thread: it fsyncs.
        let path_blocks = blocks.borrow().clone();
        let reserved = glommio::executor()
            .spawn_blocking(move || {
                let mut b = path_blocks;
                b.reserve_block().map(|_| b)
            })
            .await
            .map_err(|e| e.to_string())?;
        *blocks.borrow_mut() = reserved;
        blocks
            .borrow_mut()
            .next_id()
            .ok_or_else(|| "producer id block empty after reserve".to_string())
    }
}

fn fail(error: ResponseError, message: &str) -> TopicOutcome {
    TopicOutcome {
        error: Some(error),
        message: Some(message.to_string()),
    }
}

/// `__consumer_offsets` as first created: compacted, Kafka's partition count and segment size.
fn offsets_topic_record(args: &BrokerArgs) -> TopicRecord {
    let mut configs = BTreeMap::new();
    configs.insert(CLEANUP_POLICY.to_string(), "compact".to_string());
    configs.insert(
        SEGMENT_BYTES.to_string(),
        args.offsets_topic_segment_bytes.to_string(),
    );
    TopicRecord {
        name: OFFSETS_TOPIC.to_string(),
        id: uuid::Uuid::from_u128(rand::random::<u128>()),
        partitions: args.offsets_topic_num_partitions,
        configs,
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is plain data that sched_getaffinity fills; size is passed with it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// How long a requested stop may take (every shard closing its logs) before the process
/// ends without waiting further; the logs not closed by then are recovered at the next
/// start like after a crash.
pub const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a shard looks at the process-wide stop flag.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// The target of the one INFO line that says every shard accepts connections; tests wait
/// for it (it is logged whatever `RUST_LOG` filters elsewhere, if this target is enabled).
pub const READY_TARGET: &str = "sluice::ready";

/// Loads metadata, takes the data directory and listen address for this process alone,
/// starts one pinned executor per shard, and supervises them from this thread: logs the
/// ready line once every shard accepts connections, stops them all on SIGINT/SIGTERM
/// (bounded by `SHUTDOWN_TIMEOUT`), and ends the process at once if any shard fails.
/// Returns an error only for startup failures.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::lifecycle::{
        DataDirLock, ExitReport, FATAL_EXIT_CODE, IO_MEMORY_PER_SHARD, KICK_INTERVAL, ListenClaim,
        ShardEvent, check_memlock, exit_now, install_kick_handler, kick, spawn_signal_thread,
    };

    args.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "creating data directory {} (--data-dir must name a directory this user can write)",
            args.data_dir.display()
        )
    })?;
    // Held until this function returns; the kernel releases both if the process dies.
    let _data_dir_lock = DataDirLock::acquire(&args.data_dir)?;
    let _listen_claim = ListenClaim::acquire(args.listen)?;
    let cpus = allowed_cpus();
    let shard_count = args.cores.unwrap_or(cpus.len()).clamp(1, 256);
    match check_memlock(shard_count) {
        Ok(None) => {}
        Ok(Some(warning)) => warn!("{warning}"),
        Err(e) => anyhow::bail!(e),
    }
    let data_dir = args.data_dir.display().to_string();
    let store: Arc<dyn TopicStore + Sync> = Arc::new(FileTopicStore::new(&args.data_dir));
    let mut records = store
        .load()
        .with_context(|| format!("reading topic metadata in {data_dir}"))?;
    if !records.iter().any(|r| r.name == OFFSETS_TOPIC) {
        records.push(offsets_topic_record(&args));
        store
            .save(&records)
            .with_context(|| format!("writing topic metadata in {data_dir}"))?;
        info!(
            partitions = args.offsets_topic_num_partitions,
            "created {OFFSETS_TOPIC}"
        );
    }
    let mut table = TopicTable::new(shard_count as u16);
    for r in &records {
        table = table.with_topic(&r.name, r.id, r.partitions as usize, r.configs.clone());
    }
    let table = Arc::new(table);
    let producer_ids = ProducerIdBlocks::open(&args.data_dir)
        .with_context(|| format!("producer id blocks in {data_dir}"))?;
    let cluster_id: Arc<str> = Arc::from(
        load_or_create_cluster_id(&args.data_dir)
            .with_context(|| format!("cluster id in {data_dir}"))?,
    );
    info!(
        shards = shard_count,
        topics = records.len(),
        listen = %args.listen,
        data_dir = %args.data_dir.display(),
        "starting sluice"
    );

    // Signals are blocked before any other thread exists, so every thread inherits the
    // mask and only the signal thread's sigwait takes them.
    glommio::signal::block(&[libc::SIGINT, libc::SIGTERM])
        .map_err(|e| anyhow::anyhow!("blocking signals: {e}"))?;
    install_kick_handler().context("installing the kick signal handler")?;
    let (events, inbox) = std::sync::mpsc::channel::<ShardEvent>();
    spawn_signal_thread(events.clone()).context("starting the signal thread")?;

    let args = Arc::new(args);
    let stop = Arc::new(AtomicBool::new(false));
    let mesh = MeshBuilder::<ShardRequest, _>::full(shard_count, MESH_CHANNEL_CAPACITY);
    let mut controller_parts = Some((store, records, producer_ids));
    let mut handles = Vec::new();
    for s in 0..shard_count {
        let cpu = cpus[s % cpus.len()];
        let args = args.clone();
        let mesh = mesh.clone();
        let table = table.clone();
        let cluster_id = cluster_id.clone();
        let ctl = if s == 0 {
            controller_parts.take()
        } else {
            None
        };
        let life = ShardLife {
            stop: stop.clone(),
            events: events.clone(),
        };
        let report = ExitReport::new(s as u16, events.clone());
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{s}"))
            .io_memory(IO_MEMORY_PER_SHARD)
            .spawn(move || async move {
                let r =
                    shard_main(ShardId(s as u16), args, cluster_id, mesh, table, ctl, life).await;
                report.report(r);
            })
            .map_err(|e| anyhow::anyhow!("starting shard {s}: {e}"))?;
        handles.push(Some(h));
    }
    drop(events);

    let (mut ready, mut exited) = (0usize, 0usize);
    let mut stop_deadline: Option<std::time::Instant> = None;
    // Each running shard's thread, kicked every KICK_INTERVAL (see `kick`).
    let mut threads: Vec<Option<libc::pthread_t>> = vec![None; shard_count];
    let mut next_kick = std::time::Instant::now() + KICK_INTERVAL;
    while exited < shard_count {
        let now = std::time::Instant::now();
        if stop_deadline.is_some_and(|d| now >= d) {
            error!(
                stopped = exited,
                shards = shard_count,
                timeout_ms = SHUTDOWN_TIMEOUT.as_millis() as u64,
                "shards did not stop in time: stopping at once, logs not closed"
            );
            exit_now(FATAL_EXIT_CODE);
        }
        if now >= next_kick {
            threads.iter().flatten().for_each(|t| kick(*t));
            next_kick = now + KICK_INTERVAL;
        }
        let wait = next_kick.saturating_duration_since(now);
        let event = match inbox.recv_timeout(wait) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                error!("every shard and the signal thread are gone: stopping");
                exit_now(FATAL_EXIT_CODE);
            }
        };
        match event {
            ShardEvent::Started(s, thread) => {
                if let Some(slot) = threads.get_mut(usize::from(s)) {
                    *slot = Some(thread);
                }
            }
            ShardEvent::Ready(_) => {
                ready += 1;
                if ready == shard_count {
                    info!(
                        target: READY_TARGET,
                        shards = shard_count,
                        listen = %args.listen,
                        "sluice ready: every shard accepts connections"
                    );
                }
            }
            ShardEvent::Exited(s, Ok(())) if stop_deadline.is_some() => {
                threads[usize::from(s)] = None;
                exited += 1;
            }
            ShardEvent::Exited(s, Ok(())) => {
                error!(
                    shard = s,
                    "shard stopped without a stop request: stopping the broker"
                );
                exit_now(FATAL_EXIT_CODE);
            }
            ShardEvent::Exited(s, Err(e)) => {
                // Its thread is ending: the join returns at once, with the executor's
                // own error if it could not be created (e.g. the memlock limit).
                let cause = handles
                    .get_mut(usize::from(s))
                    .and_then(Option::take)
                    .and_then(|h| h.join().err())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                error!(shard = s, error = %format!("{e}{cause}"), "shard failed: stopping the broker");
                exit_now(FATAL_EXIT_CODE);
            }
            // Supervisors may signal the process and its group: a stop already under way
            // is bounded by SHUTDOWN_TIMEOUT, so a repeated signal changes nothing.
            ShardEvent::Signal(sig) if stop_deadline.is_some() => {
                info!(signal = sig, "already shutting down");
            }
            ShardEvent::Signal(sig) => {
                info!(signal = sig, "shutting down");
                stop.store(true, Ordering::SeqCst);
                stop_deadline = Some(std::time::Instant::now() + SHUTDOWN_TIMEOUT);
            }
        }
    }
    for h in handles.into_iter().flatten() {
        let _ = h.join();
    }
    info!("sluice stopped cleanly");
    Ok(())
}

/// Test hook, in debug builds only (release builds do not read the variable):
/// `SLUICE_TEST_PANIC_SHARD=N` makes shard N panic `TEST_PANIC_DELAY` after it starts
/// accepting connections, so tests can watch the panic policy end the whole process.
#[cfg(debug_assertions)]
fn arm_test_panic(id: ShardId) {
    const TEST_PANIC_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
    let armed = std::env::var("SLUICE_TEST_PANIC_SHARD")
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        == Some(id.0);
    if armed {
        glommio::spawn_local(async move {
            glommio::timer::sleep(TEST_PANIC_DELAY).await;
            panic!("SLUICE_TEST_PANIC_SHARD={}: test panic", id.0);
        })
        .detach();
    }
}

/// What a shard needs from the process around it: the stop flag the main thread sets on
/// SIGINT/SIGTERM, and the channel on which it reports being ready.
struct ShardLife {
    stop: Arc<std::sync::atomic::AtomicBool>,
    events: std::sync::mpsc::Sender<crate::lifecycle::ShardEvent>,
}

type ControllerParts = (
    Arc<dyn TopicStore + Sync>,
    Vec<TopicRecord>,
    ProducerIdBlocks,
);

async fn shard_main(
    id: ShardId,
    args: Arc<BrokerArgs>,
    cluster_id: Arc<str>,
    mesh: MeshBuilder<ShardRequest, glommio::channels::channel_mesh::Full>,
    table: Arc<TopicTable>,
    ctl: Option<ControllerParts>,
    life: ShardLife,
) -> Result<(), String> {
    // SAFETY: pthread_self(3) has no arguments and cannot fail.
    let thread = unsafe { libc::pthread_self() };
    let _ = life
        .events
        .send(crate::lifecycle::ShardEvent::Started(id.0, thread));
    let (senders, mut receivers) = mesh.join().await.map_err(|e| e.to_string())?;
    // Bound before the partitions open, as Kafka binds before loading logs: a taken
    // address fails the start at once, and early clients wait in the backlog.
    let listener =
        TcpListener::bind(args.listen).map_err(|e| format!("bind {}: {e}", args.listen))?;
    let controller = ctl.map(|(store, records, producer_ids)| Controller {
        store,
        records: RefCell::new(records),
        producer_ids: Rc::new(RefCell::new(producer_ids)),
        lock: Semaphore::new(1),
    });
    let shard = Rc::new(Shard {
        id,
        args: args.clone(),
        cluster_id,
        table: RefCell::new(table.clone()),
        mesh: senders,
        partitions: PartitionSet::new(&args),
        offline_partitions: RefCell::new(Default::default()),
        appends: Rc::new(AppendSignal::default()),
        shutdown: CancellationToken::new(),
        shutdown_reply: RefCell::new(None),
        next_conn: Cell::new(0),
        connections: connection::ShardConnections::new(&args, id, table.shard_count()),
        controller,
        groups: GroupHost::new(id, group_config(&args)),
    });

    // Open the partitions this shard owns before taking any connection. One that cannot
    // be opened goes offline alone (logged by `open`); the others serve.
    let mut offline = Vec::new();
    for meta in table.topics() {
        for (p, owner) in meta.owners.iter().enumerate() {
            if *owner == id && !life.stop.load(std::sync::atomic::Ordering::SeqCst) {
                let opened = shard
                    .partitions
                    .open(&args, meta.name.clone(), p as i32, &meta.configs)
                    .await;
                if opened.is_err() {
                    offline.push(TopicPartition {
                        topic: meta.name.clone(),
                        partition: p as i32,
                    });
                }
            }
        }
    }

    // The main thread's stop request (SIGINT/SIGTERM), checked between
    // partition opens above and by this task from now on.
    {
        let shard = shard.clone();
        let stop = life.stop.clone();
        glommio::spawn_local(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                glommio::timer::sleep(STOP_POLL).await;
            }
            shard.shutdown.cancel();
        })
        .detach();
    }

    // The group coordinator, before any request can reach it.
    shard.groups.start(Rc::downgrade(&shard));

    for (peer, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(req) = rx.recv().await {
                let s = shard.clone();
                glommio::spawn_local(async move { s.handle(req).await }).detach();
            }
            debug!(shard = shard.id.0, peer, "mesh receiver closed");
        })
        .detach();
    }

    // Retention: delete segments past retention.ms / retention.bytes, roll by segment.ms.
    {
        let shard = shard.clone();
        let every = std::time::Duration::from_millis(args.log_retention_check_interval_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.partitions.enforce_retention().await;
            }
        })
        .detach();
    }

    // Compaction of cleanup.policy=compact partitions, in slices between other work.
    {
        let shard = shard.clone();
        let every = std::time::Duration::from_millis(args.log_cleaner_backoff_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.partitions.compact().await;
            }
        })
        .detach();
    }

    // Only now that every shard's mesh receivers run (each spawns them before waiting on
    // anyone) can announcements wait for their replies without a deadlock; they are
    // delivered before this shard reports ready.
    for tp in offline {
        shard.announce_offline(tp, true).await;
    }

    info!(shard = id.0, listen = %args.listen, "accepting connections");
    let _ = life.events.send(crate::lifecycle::ShardEvent::Ready(id.0));
    #[cfg(debug_assertions)]
    arm_test_panic(id);

    let accept_loop = {
        let shard = shard.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        // Admission (max.connections, max.connections.per.ip) runs in
                        // the connection's own task, so a slow answer from shard 0
                        // never stalls accepting.
                        let conn = shard.next_conn_id();
                        let s = shard.clone();
                        glommio::spawn_local(connection::admit_and_serve(s, stream, conn)).detach();
                    }
                    Err(e) => {
                        warn!(shard = shard.id.0, error = %e, "accept failed");
                        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        }
    };
    futures_lite::future::or(accept_loop, shard.shutdown.cancelled()).await;

    // Stop: shard 0 first tells every other shard and waits until each has closed its logs.
    if id.0 == 0 {
        for s in 1..shard.shard_count() {
            let _ = shard
                .ask(ShardId(s), |reply| ShardRequest::Shutdown { reply })
                .await;
        }
    }
    let unclean = shard.partitions.close_all().await;
    info!(shard = id.0, "shard stopped");
    if let Some(reply) = shard.shutdown_reply.borrow_mut().take() {
        let _ = reply.send(());
    }
    // Logs left unflushed by a failed write make the stop unclean: a non-zero exit.
    if unclean > 0 {
        return Err(format!("{unclean} partition logs not closed cleanly"));
    }
    Ok(())
}
