//! Which `__consumer_offsets` partition a group belongs to: Kafka's rule,
//! `abs(groupId.hashCode()) % offsets.topic.num.partitions`, with Java's `String.hashCode`
//! over UTF-16 code units and Kafka's `abs` (`x & 0x7fffffff`), so a group lands on the
//! same partition number as on a Kafka broker. The coordinator shard of a group is the
//! shard that owns that partition.

use crate::topic_table::{OFFSETS_TOPIC, ShardId, TopicTable};

/// offsets.topic.num.partitions default.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 16;

/// Java's `String.hashCode`.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group_id`; `partitions` must be positive.
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "offsets.topic.num.partitions is validated at startup"
    );
    (java_string_hash(group_id) & 0x7fff_ffff) % partitions
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_string_hash_and_kafka_abs() {
        // Proves the hash equals Java's for known strings, including one whose hash is
        // i32::MIN (Kafka's abs maps it to 0) and one outside the BMP (surrogate pairs).
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(offsets_partition("polygenelubricants", 16), 0);
        assert_eq!(offsets_partition("hello", 16), 99_162_322 % 16);
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16: 0xD83D * 31 + 0xDE00.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
        for g in ["a", "group-1", "\u{1F600}x", "polygenelubricants"] {
            let p = offsets_partition(g, OFFSETS_TOPIC_PARTITIONS_DEFAULT);
            assert!((0..OFFSETS_TOPIC_PARTITIONS_DEFAULT).contains(&p));
        }
    }
}
