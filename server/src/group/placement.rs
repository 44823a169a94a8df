//! Which `__consumer_offsets` partition a group belongs to: Kafka's rule,
//! `abs(groupId.hashCode()) % offsets.topic.num.partitions`, with Java's `String.hashCode`
//! over UTF-16 code units and Kafka's `abs` (`x & 0x7fffffff`), so a group lands on the
//! same partition number as on a Kafka broker. The coordinator shard of a group is the
//! shard that owns that partition.

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
