//! The controller: shard 0's writer side of cluster metadata. It alone creates, deletes,
//! grows and reconfigures topics (persisting them through the `TopicStore`, opening or
//! closing partitions on their owners, then publishing the new `TopicTable` to every
//! shard) and hands out producer ids from durable blocks. Mutations run one at a time
//! (`lock`), across their awaits. Runs on shard 0 only; other shards reach it through
//! the mesh (`ShardRequest::CreateTopics` and friends).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::config::validate_topic_config;
use crate::mesh::{
    ConfigChange, ConfigOp, NewTopic, PartitionError, PartitionGrowth, ProducerIdError,
    ShardRequest, TopicError, TopicOutcome,
};
use crate::shard::Shard;
use crate::topic_store::{ProducerIdBlocks, TopicRecord, TopicStore};
use crate::topic_table::{PARTITIONS_MAX, ShardId, TopicTable, is_internal, valid_topic_name};

/// Shard 0's extra state: the writer side of topic metadata and producer ids.
pub struct Controller {
    shard: Rc<Shard>,
    store: Arc<dyn TopicStore + Sync>,
    records: RefCell<Vec<TopicRecord>>,
    producer_ids: Rc<RefCell<ProducerIdBlocks>>,
    /// Serializes metadata mutations: one at a time, across their awaits.
    lock: Semaphore,
}

/// What the process loads before the shards start and hands to shard 0's controller.
pub struct ControllerParts {
    pub store: Arc<dyn TopicStore + Sync>,
    pub records: Vec<TopicRecord>,
    pub producer_ids: ProducerIdBlocks,
}

impl Controller {
    pub fn new(shard: Rc<Shard>, parts: ControllerParts) -> Controller {
        assert_eq!(shard.id, ShardId(0), "the controller runs on shard 0");
        Controller {
            shard,
            store: parts.store,
            records: RefCell::new(parts.records),
            producer_ids: Rc::new(RefCell::new(parts.producer_ids)),
            lock: Semaphore::new(1),
        }
    }

    /// Installs `table` here and on every other shard; returns once all have it.
    async fn publish(&self, table: TopicTable) {
        let table = Arc::new(table);
        self.shard.set_table(table.clone());
        for s in 0..self.shard.shard_count() {
            let to = ShardId(s);
            if to == self.shard.id {
                continue;
            }
            let t = table.clone();
            if let Err(e) = self
                .shard
                .ask(to, |reply| ShardRequest::TableUpdate { table: t, reply })
                .await
            {
                warn!(shard = self.shard.id.0, error = %e, "table update not delivered");
            }
        }
    }

    /// The table and records a mutation starts from (it holds `lock` meanwhile).
    fn draft(&self) -> (TopicTable, Vec<TopicRecord>) {
        let table = TopicTable::clone(&self.shard.table());
        (table, self.records.borrow().clone())
    }

    /// Persists a mutation's records through the store, off the reactor thread, and only
    /// then makes them the controller's.
    async fn commit(&self, records: Vec<TopicRecord>) -> Result<(), TopicError> {
        let store = self.store.clone();
        let saved = records.clone();
        let persisted = glommio::executor()
            .spawn_blocking(move || store.save(&saved))
            .await;
        if let Err(e) = persisted {
            error!(error = %e, "topic metadata not persisted");
            return Err(TopicError::NotPersisted(e.to_string()));
        }
        *self.records.borrow_mut() = records;
        Ok(())
    }

    /// Opens every partition of `topic` numbered in `range` on its owning shard.
    async fn open_on_owners(
        &self,
        table: &TopicTable,
        topic: &str,
        range: std::ops::Range<i32>,
    ) -> Result<(), TopicError> {
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
            self.shard
                .ask(owner, |reply| ShardRequest::OpenPartitions {
                    topic: name,
                    partitions: parts,
                    configs,
                    reply,
                })
                .await
                .map_err(|e| TopicError::NotOpened(PartitionError::Unreachable(e)))?
                .map_err(TopicError::NotOpened)?;
        }
        Ok(())
    }

    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let _permit = self.lock.acquire_permit(1).await;
        let (mut table, mut records) = self.draft();
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut created = Vec::new();
        for t in &topics {
            let dup = topics.iter().filter(|o| o.name == t.name).count() > 1;
            let outcome = if dup {
                Err(TopicError::NamedTwice)
            } else if !valid_topic_name(&t.name) {
                Err(TopicError::InvalidName)
            } else if table.get(&t.name).is_some() {
                Err(TopicError::AlreadyExists)
            } else if !(1..=PARTITIONS_MAX).contains(&t.partitions) {
                Err(TopicError::PartitionCountOutOfRange)
            } else if let Some(msg) = t
                .configs
                .iter()
                .find_map(|(k, v)| validate_topic_config(k, v).err())
                .or_else(|| self.shard.args.validate_topic_configs(&t.configs).err())
            {
                Err(TopicError::InvalidConfig(msg))
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
                Ok(())
            };
            outcomes.push(outcome);
        }
        if created.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            for (t, o) in topics.iter().zip(outcomes.iter_mut()) {
                if created.contains(&t.name) {
                    *o = Err(e.clone());
                }
            }
            return outcomes;
        }
        for name in &created {
            let count = table.get(name).expect("created").partition_count();
            if let Err(e) = self.open_on_owners(&table, name, 0..count).await {
                error!(topic = %name, error = %e, "partitions not opened");
                if let Some(i) = topics.iter().position(|t| &t.name == name) {
                    outcomes[i] = Err(e);
                }
            }
            info!(topic = %name, partitions = count, "created topic");
        }
        self.publish(table).await;
        outcomes
    }

    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<TopicOutcome> {
        let _permit = self.lock.acquire_permit(1).await;
        let (mut table, mut records) = self.draft();
        let mut outcomes = Vec::with_capacity(names.len());
        let mut deleted = Vec::new();
        for name in &names {
            match table.get(name) {
                None => outcomes.push(Err(TopicError::Unknown)),
                // Group coordinators live on it; deleting it would lose every commit.
                Some(_) if is_internal(name) => {
                    outcomes.push(Err(TopicError::InternalNotDeletable))
                }
                Some(meta) => {
                    deleted.push(meta.clone());
                    table = table.without_topic(name);
                    records.retain(|r| &r.name != name);
                    outcomes.push(Ok(()));
                }
            }
        }
        if deleted.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            return vec![Err(e); names.len()];
        }
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
                    .shard
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
    async fn forget_deleted_offsets(&self, topics: Vec<String>) {
        use crate::mesh::group::GroupRequest;
        for s in 0..self.shard.shard_count() {
            let topics = topics.clone();
            match self
                .shard
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

    pub async fn create_partitions(
        &self,
        topics: Vec<PartitionGrowth>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let _permit = self.lock.acquire_permit(1).await;
        let (mut table, mut records) = self.draft();
        let mut outcomes = Vec::with_capacity(topics.len());
        let mut grown = Vec::new();
        for PartitionGrowth { topic: name, count } in &topics {
            let outcome = match table.get(name) {
                None => Err(TopicError::Unknown),
                // Groups are hashed over its partition count; growing it would move them.
                Some(_) if is_internal(name) => Err(TopicError::InternalPartitionCountFixed),
                Some(meta) if *count <= meta.partition_count() => Err(
                    TopicError::PartitionCountCannotShrink(meta.partition_count()),
                ),
                Some(_) if *count > PARTITIONS_MAX => Err(TopicError::PartitionCountTooLarge),
                Some(meta) => {
                    if !validate_only {
                        let old = meta.partition_count();
                        table = table.with_more_partitions(name, (*count - old) as usize);
                        if let Some(r) = records.iter_mut().find(|r| &r.name == name) {
                            r.partitions = *count;
                        }
                        grown.push((name.clone(), old, *count));
                    }
                    Ok(())
                }
            };
            outcomes.push(outcome);
        }
        if grown.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            return vec![Err(e); topics.len()];
        }
        for (name, old, new) in &grown {
            if let Err(e) = self.open_on_owners(&table, name, *old..*new).await {
                error!(topic = %name, error = %e, "new partitions not opened");
            }
        }
        self.publish(table).await;
        outcomes
    }

    pub async fn alter_configs(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Vec<TopicOutcome> {
        let _permit = self.lock.acquire_permit(1).await;
        let (mut table, mut records) = self.draft();
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut altered = Vec::new();
        for ch in &changes {
            let Some(meta) = table.get(&ch.topic) else {
                outcomes.push(Err(TopicError::Unknown));
                continue;
            };
            let mut configs = meta.configs.clone();
            let mut bad = None;
            for op in &ch.ops {
                match op {
                    ConfigOp::Set { name, value } => match validate_topic_config(name, value) {
                        Ok(()) => {
                            configs.insert(name.clone(), value.clone());
                        }
                        Err(m) => bad = Some(m),
                    },
                    ConfigOp::Delete { name } => {
                        if let Err(m) = validate_topic_config(name, "0")
                            && m.starts_with("unknown")
                        {
                            bad = Some(m);
                        }
                        configs.remove(name);
                    }
                }
            }
            if let Some(m) = bad.or_else(|| self.shard.args.validate_topic_configs(&configs).err())
            {
                outcomes.push(Err(TopicError::InvalidConfig(m)));
                continue;
            }
            if !validate_only {
                table = table.with_configs(&ch.topic, configs.clone());
                if let Some(r) = records.iter_mut().find(|r| r.name == ch.topic) {
                    r.configs = configs;
                }
                altered.push(ch.topic.clone());
            }
            outcomes.push(Ok(()));
        }
        if altered.is_empty() {
            return outcomes;
        }
        if let Err(e) = self.commit(records).await {
            return vec![Err(e); changes.len()];
        }
        for name in &altered {
            let meta = table.get(name).expect("altered").clone();
            let mut owners: Vec<ShardId> = meta.owners.clone();
            owners.sort();
            owners.dedup();
            for owner in owners {
                let topic = meta.name.clone();
                let configs = meta.configs.clone();
                let _ = self
                    .shard
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

    pub async fn allocate_producer_id(&self) -> Result<i64, ProducerIdError> {
        let _permit = self.lock.acquire_permit(1).await;
        let blocks = self.producer_ids.clone();
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
            .map_err(|e| ProducerIdError::Reserve(e.to_string()))?;
        *blocks.borrow_mut() = reserved;
        blocks
            .borrow_mut()
            .next_id()
            .ok_or(ProducerIdError::EmptyAfterReserve)
    }
}
