//! The topic table: every topic's id, partition count, config overrides and the shard that
//! owns each partition. Shard 0 holds the authoritative copy and is the only writer; every
//! other shard holds a read-only `Arc<TopicTable>` replaced by a `TableUpdate` message.
//! A table is immutable once built: a change makes a new table (`with_*`), so a copy can
//! cross cores as an `Arc`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

/// Index of a shard, equal to the index of its executor in the channel mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A topic as the table knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: Arc<str>,
    pub id: Uuid,
    /// Owning shard of partition `i` at index `i`.
    pub owners: Vec<ShardId>,
    /// Topic-level config overrides (names from `config::TOPIC_CONFIG_NAMES`).
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn partition_count(&self) -> i32 {
        // Partition counts are bounded by `PARTITIONS_MAX`, far below i32::MAX.
        self.owners.len() as i32
    }

    pub fn owner(&self, partition: i32) -> Option<ShardId> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.owners.get(p).copied())
    }
}

/// Kafka's internal topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics clients may read but not produce to or delete (Kafka's `Topic.isInternal`).
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

/// Largest partition count of one topic; bounds what CreateTopics/CreatePartitions may ask.
pub const PARTITIONS_MAX: i32 = 10_000;

/// All topics, plus the number of shards partitions are placed on.
#[derive(Clone, Debug, Default)]
pub struct TopicTable {
    shard_count: u16,
    topics: BTreeMap<Arc<str>, Arc<TopicMeta>>,
    by_id: HashMap<Uuid, Arc<str>>,
}

impl TopicTable {
    pub fn new(shard_count: u16) -> Self {
        assert!(shard_count > 0);
        TopicTable {
            shard_count,
            topics: BTreeMap::new(),
            by_id: HashMap::new(),
        }
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn get_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.by_id.get(id).and_then(|n| self.topics.get(n))
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicMeta>> {
        self.topics.values()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// The shard owning `tp`, if the topic and partition exist.
    pub fn owner(&self, tp: &TopicPartition) -> Option<ShardId> {
        self.topics
            .get(&tp.topic)
            .and_then(|t| t.owner(tp.partition))
    }

    /// Places `count` new partitions of topic `name` (which may already have some):
    /// each goes to the shard with the fewest partitions of this topic, ties broken by the
    /// fewest partitions overall, then by the lowest shard id. Deterministic, so a table
    /// rebuilt from the store in creation order places partitions the same way.
    ///
    /// `__consumer_offsets` is the exception: partition `p` lives on shard
    /// `p % shard_count`, the rule `group::host::coordinator_shard` uses, so a group's
    /// coordinator owns the partition its records go to. Placement is recomputed at every
    /// start, so a restart with another `--cores` moves partitions and coordinators
    /// together (partition directories do not depend on the shard).
    pub fn place(&self, name: &str, count: usize) -> Vec<ShardId> {
        let n = usize::from(self.shard_count);
        if name == OFFSETS_TOPIC {
            let first = self.topics.get(name).map_or(0, |t| t.owners.len());
            return (first..first + count)
                .map(|p| ShardId((p % n) as u16))
                .collect();
        }
        let mut total = vec![0usize; n];
        for t in self.topics.values() {
            for s in &t.owners {
                if let Some(c) = total.get_mut(s.index()) {
                    *c += 1;
                }
            }
        }
        let mut mine = vec![0usize; n];
        if let Some(t) = self.topics.get(name) {
            for s in &t.owners {
                if let Some(c) = mine.get_mut(s.index()) {
                    *c += 1;
                }
            }
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let best = (0..n)
                .min_by_key(|&s| (mine[s], total[s], s))
                .expect("at least one shard");
            mine[best] += 1;
            total[best] += 1;
            out.push(ShardId(best as u16));
        }
        out
    }

    /// A new table with topic `name` added, its partitions placed by `place`.
    pub fn with_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: usize,
        configs: BTreeMap<String, String>,
    ) -> TopicTable {
        assert!(!self.topics.contains_key(name));
        let owners = self.place(name, partitions);
        let name: Arc<str> = Arc::from(name);
        let mut t = self.clone();
        t.by_id.insert(id, name.clone());
        t.topics.insert(
            name.clone(),
            Arc::new(TopicMeta {
                name,
                id,
                owners,
                configs,
            }),
        );
        t
    }

    /// A new table with `extra` partitions appended to an existing topic.
    pub fn with_more_partitions(&self, name: &str, extra: usize) -> TopicTable {
        let old = self.topics.get(name).expect("topic exists");
        let mut meta = TopicMeta::clone(old);
        meta.owners.extend(self.place(name, extra));
        let mut t = self.clone();
        t.topics.insert(meta.name.clone(), Arc::new(meta));
        t
    }

    /// A new table with a topic's config overrides replaced.
    pub fn with_configs(&self, name: &str, configs: BTreeMap<String, String>) -> TopicTable {
        let old = self.topics.get(name).expect("topic exists");
        let mut meta = TopicMeta::clone(old);
        meta.configs = configs;
        let mut t = self.clone();
        t.topics.insert(meta.name.clone(), Arc::new(meta));
        t
    }

    /// A new table without topic `name`.
    pub fn without_topic(&self, name: &str) -> TopicTable {
        let mut t = self.clone();
        if let Some(meta) = t.topics.remove(name) {
            t.by_id.remove(&meta.id);
        }
        t
    }
}

/// Kafka's topic name rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves placement spreads one topic's partitions evenly over shards and a second
    // topic starts on the less loaded shard, so shard loads differ by at most one.
    #[test]
    fn placement_spreads_by_count_and_topic() {
        let t = TopicTable::new(2);
        let t = t.with_topic("a", Uuid::from_u128(1), 3, BTreeMap::new());
        let a = t.get("a").unwrap();
        assert_eq!(a.owners, vec![ShardId(0), ShardId(1), ShardId(0)]);
        let t = t.with_topic("b", Uuid::from_u128(2), 1, BTreeMap::new());
        assert_eq!(t.get("b").unwrap().owners, vec![ShardId(1)]);
        let t = t.with_more_partitions("b", 3);
        let b = t.get("b").unwrap();
        assert_eq!(b.owners.len(), 4);
        assert_eq!(b.owners.iter().filter(|s| s.0 == 0).count(), 2);
        assert_eq!(
            t.owner(&TopicPartition {
                topic: "b".into(),
                partition: 0
            }),
            Some(ShardId(1))
        );
        assert_eq!(
            t.owner(&TopicPartition {
                topic: "b".into(),
                partition: 4
            }),
            None
        );
        assert_eq!(t.get_by_id(&Uuid::from_u128(2)).unwrap().name.as_ref(), "b");
        let t = t.without_topic("a");
        assert!(t.get("a").is_none());
        assert!(t.get_by_id(&Uuid::from_u128(1)).is_none());
    }

    // Proves `__consumer_offsets` partition p is placed on shard p % shard_count whatever
    // other topics exist, for several shard counts.
    #[test]
    fn offsets_topic_follows_partition_modulo_shards() {
        for shards in [1u16, 2, 3, 5] {
            let t = TopicTable::new(shards).with_topic("x", Uuid::from_u128(1), 3, BTreeMap::new());
            let t = t.with_topic(OFFSETS_TOPIC, Uuid::from_u128(2), 16, BTreeMap::new());
            let owners = &t.get(OFFSETS_TOPIC).unwrap().owners;
            for (p, s) in owners.iter().enumerate() {
                assert_eq!(s.0 as usize, p % shards as usize);
            }
        }
        assert!(is_internal(OFFSETS_TOPIC));
        assert!(!is_internal("x"));
    }

    // Proves the topic name rule rejects empty, dot-only, too long and illegal-character names.
    #[test]
    fn topic_names() {
        assert!(valid_topic_name("orders.v1_x-y"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a b"));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }
}
