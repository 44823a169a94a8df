//! Kafka requests and responses nest partitions under their topic; code that works on
//! flat `(topic, partition entry)` pairs regroups them here before building a message.

/// Groups `(topic, entry)` pairs under each topic, topics in the order they first appear
/// and entries in their original order within a topic.
pub fn by_topic<T: PartialEq, P>(pairs: impl IntoIterator<Item = (T, P)>) -> Vec<(T, Vec<P>)> {
    let mut topics: Vec<(T, Vec<P>)> = Vec::new();
    for (topic, entry) in pairs {
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, entries)) => entries.push(entry),
            None => topics.push((topic, vec![entry])),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::by_topic;

    #[test]
    fn keeps_first_appearance_order_of_topics_and_entries() {
        let grouped = by_topic([("b", 1), ("a", 7), ("b", 0), ("a", 2), ("c", 5)]);
        assert_eq!(
            grouped,
            vec![("b", vec![1, 0]), ("a", vec![7, 2]), ("c", vec![5])]
        );
        assert!(by_topic(Vec::<(&str, i32)>::new()).is_empty());
    }
}
