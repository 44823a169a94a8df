//! CreateTopics and CreatePartitions with manual replica assignments over raw sockets
//! against the real binary: on one broker an assignment naming only this broker is valid
//! (the partition count comes from it), and the rest is refused with Kafka's codes.

mod common;

use common::{Broker, Conn};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NODE: i32 = 4;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A topic whose partition `i` is assigned to `lists[i].1` with index `lists[i].0`.
fn assigned(name: &str, partitions: i32, rf: i16, lists: &[(i32, &[i32])]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_assignments(
            lists
                .iter()
                .map(|(p, ids)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(*p)
                        .with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect())
                })
                .collect(),
        )
}

/// CreateTopics v7: (error code, num_partitions answered) per topic.
fn create(conn: &mut Conn, topics: Vec<CreatableTopic>) -> Vec<(i16, i32)> {
    let req = CreateTopicsRequest::default().with_topics(topics);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req);
    resp.topics
        .iter()
        .map(|t| (t.error_code, t.num_partitions))
        .collect()
}

/// (partition count, replicas of partition 0) from Metadata, or the topic's error code.
fn metadata(conn: &mut Conn, topic: &str) -> Result<(usize, Vec<i32>), i16> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req);
    let t = &resp.topics[0];
    if t.error_code != 0 {
        return Err(t.error_code);
    }
    Ok((
        t.partitions.len(),
        t.partitions[0].replica_nodes.iter().map(|b| b.0).collect(),
    ))
}

#[test]
fn manual_assignments_naming_this_broker_are_accepted() {
    // Proves CreateTopics with a replica assignment that names only this broker creates
    // the topic with the assignment's partition count, and that Kafka's checks hold: set
    // num_partitions or replication_factor (INVALID_REQUEST), another broker, a broker
    // twice, an empty list, a repeated or non-consecutive partition index
    // (INVALID_REPLICA_ASSIGNMENT). CreatePartitions with one valid list per new partition
    // grows the topic; a wrong number of lists or another broker is refused.
    let broker = Broker::start_with(&["--node-id", &NODE.to_string()]);
    let mut conn = broker.connect();
    let me: &[i32] = &[NODE];
    assert_eq!(
        create(
            &mut conn,
            vec![assigned("manual", -1, -1, &[(0, me), (1, me), (2, me)])]
        ),
        vec![(0, 3)]
    );
    assert_eq!(metadata(&mut conn, "manual"), Ok((3, vec![NODE])));

    let invalid_request = ResponseError::InvalidRequest.code();
    let invalid_assignment = ResponseError::InvalidReplicaAssignment.code();
    let refused = create(
        &mut conn,
        vec![
            assigned("r1", 1, -1, &[(0, me)]),
            assigned("r2", -1, 1, &[(0, me)]),
            assigned("r3", -1, -1, &[(0, &[NODE + 1])]),
            assigned("r4", -1, -1, &[(0, &[NODE, NODE])]),
            assigned("r5", -1, -1, &[(0, &[])]),
            assigned("r6", -1, -1, &[(0, me), (0, me)]),
            assigned("r7", -1, -1, &[(0, me), (2, me)]),
        ],
    );
    let codes: Vec<i16> = refused.iter().map(|r| r.0).collect();
    assert_eq!(
        codes,
        vec![
            invalid_request,
            invalid_request,
            invalid_assignment,
            invalid_assignment,
            invalid_assignment,
            invalid_assignment,
            invalid_assignment,
        ]
    );
    for name in ["r1", "r2", "r3", "r4", "r5", "r6", "r7"] {
        assert_eq!(
            metadata(&mut conn, name),
            Err(ResponseError::UnknownTopicOrPartition.code()),
            "{name} not created"
        );
    }

    let grow = |count: i32, lists: &[&[i32]]| {
        CreatePartitionsTopic::default()
            .with_name(TopicName(s("manual")))
            .with_count(count)
            .with_assignments(Some(
                lists
                    .iter()
                    .map(|ids| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect())
                    })
                    .collect(),
            ))
    };
    for (topic, expected) in [
        (grow(5, &[me]), invalid_assignment),
        (grow(5, &[me, &[NODE + 1]]), invalid_assignment),
        (grow(5, &[me, me]), 0),
    ] {
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000);
        let resp: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 3, &req);
        assert_eq!(
            resp.results[0].error_code, expected,
            "{:?}",
            resp.results[0]
        );
    }
    assert_eq!(metadata(&mut conn, "manual"), Ok((5, vec![NODE])));
}
