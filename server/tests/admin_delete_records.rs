//! DeleteRecords (API 21) over raw sockets against the real binary: the log start offset
//! moves up on partitions of both shards, -1 means the high watermark, offsets past it
//! are OFFSET_OUT_OF_RANGE, internal and compact-only topics are refused as Kafka refuses
//! them, and the new log start offset survives a restart.

mod common;

use common::{Broker, Conn, create_topic_with, list_offsets_at, produce_keyed};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// DeleteRecords of `(partition, offset)` pairs of one topic: `(error code, low watermark)` each.
fn delete_records(conn: &mut Conn, topic: &str, parts: &[(i32, i64)]) -> Vec<(i16, i64)> {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, o)| {
                            DeleteRecordsPartition::default()
                                .with_partition_index(*p)
                                .with_offset(*o)
                        })
                        .collect(),
                ),
        ]);
    let resp: DeleteRecordsResponse = conn.call(ApiKey::DeleteRecords, 2, &req);
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0]
        .partitions
        .iter()
        .zip(parts)
        .map(|(r, (p, _))| {
            assert_eq!(r.partition_index, *p);
            (r.error_code, r.low_watermark)
        })
        .collect()
}

/// ListOffsets earliest (-2) of one partition.
fn earliest(conn: &mut Conn, topic: &str, partition: i32) -> i64 {
    let p = list_offsets_at(conn, topic, partition, -2);
    assert_eq!(p.error_code, 0);
    p.offset
}

fn fill(conn: &mut Conn, topic: &str, partition: i32, count: usize) {
    for i in 0..count {
        let r = vec![(format!("k{i}"), format!("value-{i}"))];
        produce_keyed(conn, topic, partition, &r, 1_700_000_000_000);
    }
}

#[test]
fn delete_records_moves_the_log_start_offset() {
    // Proves DeleteRecords is advertised (v0-2) and moves the log start offset of
    // partitions on both shards (ListOffsets earliest follows), that -1 deletes up to
    // the high watermark, that an offset past the high watermark or below -1 is
    // OFFSET_OUT_OF_RANGE and a missing partition UNKNOWN_TOPIC_OR_PARTITION, that
    // __consumer_offsets (INVALID_TOPIC_EXCEPTION) and a compact-only topic
    // (POLICY_VIOLATION) are refused, and that the moved start survives a restart.
    let mut broker = Broker::start();
    let mut conn = broker.connect();

    let versions: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let dr = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::DeleteRecords as i16)
        .expect("DeleteRecords advertised");
    assert_eq!((dr.min_version, dr.max_version), (0, 2));

    // Small segments, so deleting records also deletes whole segment files.
    assert_eq!(
        create_topic_with(&mut conn, "dr", 2, &[("segment.bytes", "200")]),
        0
    );
    fill(&mut conn, "dr", 0, 10);
    fill(&mut conn, "dr", 1, 6);

    assert_eq!(
        delete_records(&mut conn, "dr", &[(0, 3), (1, -1)]),
        vec![(0, 3), (0, 6)]
    );
    assert_eq!(earliest(&mut conn, "dr", 0), 3);
    assert_eq!(earliest(&mut conn, "dr", 1), 6);
    // Below the log start offset it stays where it is.
    assert_eq!(delete_records(&mut conn, "dr", &[(0, 1)]), vec![(0, 3)]);

    let oor = ResponseError::OffsetOutOfRange.code();
    assert_eq!(
        delete_records(&mut conn, "dr", &[(0, 11), (0, -2), (7, 1)]),
        vec![
            (oor, -1),
            (oor, -1),
            (ResponseError::UnknownTopicOrPartition.code(), -1)
        ]
    );
    assert_eq!(
        delete_records(&mut conn, "nope", &[(0, 1)]),
        vec![(ResponseError::UnknownTopicOrPartition.code(), -1)]
    );
    assert_eq!(
        delete_records(&mut conn, "__consumer_offsets", &[(0, 0)]),
        vec![(ResponseError::InvalidTopicException.code(), -1)]
    );
    assert_eq!(
        create_topic_with(&mut conn, "kept", 1, &[("cleanup.policy", "compact")]),
        0
    );
    fill(&mut conn, "kept", 0, 2);
    assert_eq!(
        delete_records(&mut conn, "kept", &[(0, 1)]),
        vec![(ResponseError::PolicyViolation.code(), -1)]
    );
    assert_eq!(earliest(&mut conn, "kept", 0), 0);

    // The rest of the log stays readable from the new start.
    let (records, high_watermark) = common::fetch_raw(&mut conn, "dr", 0, 3);
    assert!(records.is_some_and(|r| !r.is_empty()));
    assert_eq!(high_watermark, 10);

    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(earliest(&mut conn, "dr", 0), 3);
    assert_eq!(earliest(&mut conn, "dr", 1), 6);
}
