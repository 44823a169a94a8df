//! Deleting a topic deletes the committed offsets of its partitions from every group, as
//! Kafka does, over raw TCP against the real 2-shard binary: OffsetFetch of all offsets
//! no longer lists them, a group left with nothing is gone, and tombstones in
//! `__consumer_offsets` keep it so across a restart even after the topic is recreated.

mod common;
mod group_util;

use common::Broker;
use group_util::*;
use kafka_protocol::messages::*;

/// Every committed offset of `group` (OffsetFetch v7, null topics), sorted.
fn all_committed(c: &mut common::Conn, group: &str) -> Vec<(String, i32, i64)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(None);
    let resp = until_loaded(
        || -> OffsetFetchResponse { c.call(ApiKey::OffsetFetch, 7, &req) },
        |r| r.error_code,
    );
    assert_eq!(resp.error_code, 0);
    let mut out: Vec<(String, i32, i64)> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    out
}

fn delete_topic(c: &mut common::Conn, topic: &str) {
    let req = DeleteTopicsRequest::default().with_topic_names(vec![name(topic)]);
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &req);
    assert_eq!(resp.responses[0].error_code, 0, "delete {topic}");
}

/// Group ids known to the coordinators (ListGroups v4, every state), sorted.
fn listed(c: &mut common::Conn) -> Vec<String> {
    ids(&list(c, 4, &[], &[]))
}

#[test]
fn deleted_topic_offsets_leave_every_group_and_stay_gone_after_restart() {
    // Proves DeleteTopics removes the deleted topic's committed offsets from a group with
    // a live member and from a group that only committed (that one then no longer
    // exists), keeps the other topic's offsets, and that this survives recreating the
    // topic and restarting the broker: the removal is stored as tombstones, not only
    // forgotten in memory. Before the change OffsetFetch kept listing them.
    let mut broker = Broker::start();
    let mut c = broker.connect();
    create_topic(&mut c, "gone", 2);
    create_topic(&mut c, "stays", 1);

    let (mut member, member_id, generation) = sole_member(
        broker.addr,
        "keep",
        "consumer",
        subscription(&["gone", "stays"]),
        assignment("gone", &[0, 1]),
    );
    assert_eq!(
        commit(
            &mut member,
            8,
            "keep",
            generation,
            &member_id,
            &[("gone", 0, 5), ("gone", 1, 7), ("stays", 0, 3)]
        ),
        vec![0, 0, 0]
    );
    assert_eq!(
        commit(&mut c, 8, "only-gone", -1, "", &[("gone", 0, 11)]),
        vec![0]
    );
    assert_eq!(
        all_committed(&mut c, "only-gone"),
        vec![("gone".into(), 0, 11)]
    );
    assert!(listed(&mut c).contains(&"only-gone".to_string()));

    delete_topic(&mut c, "gone");
    let kept = vec![("stays".to_string(), 0, 3)];
    assert_eq!(all_committed(&mut c, "keep"), kept);
    assert!(all_committed(&mut c, "only-gone").is_empty());
    assert!(!listed(&mut c).contains(&"only-gone".to_string()));
    assert_eq!(heartbeat(&mut member, "keep", generation, &member_id), 0);

    // A new topic of the same name starts without the old offsets, also after a restart
    // (replay sees the tombstones, not only a missing topic).
    create_topic(&mut c, "gone", 2);
    assert_eq!(committed(&mut c, "keep", "gone", 0), -1);
    drop(member);
    drop(c);
    assert!(broker.stop().success());
    broker.restart();
    let mut c = broker.connect();
    assert_eq!(all_committed(&mut c, "keep"), kept);
    assert!(all_committed(&mut c, "only-gone").is_empty());
    assert_eq!(
        fetch_offsets(&mut c, "keep", "gone", 2),
        vec![(-1, String::new()), (-1, String::new())]
    );
}
