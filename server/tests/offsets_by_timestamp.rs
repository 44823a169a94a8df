//! ListOffsets by timestamp against the real binary over raw sockets: inside a compressed
//! batch the answer is the first record at or after the target with that record's
//! timestamp (Kafka decompresses the batch the time index lands on), and the max
//! timestamp (-3) answers the record holding it (KIP-734).

mod common;

use bytes::Bytes;
use common::{Broker, Conn, create_topic_with, produce_acks};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::{BatchHeader, Codec};
use sluice_engine::record::build_timed_batch;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// ListOffsets v7 of partition 0 at `timestamp`: (error, offset, timestamp).
fn list_offsets(conn: &mut Conn, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn every_timestamp_maps_to_its_record_in_a_zstd_batch() {
    // Proves that after an uncompressed 2-record batch (offsets 0-1) and a 10-record zstd
    // batch (offsets 2-11) with distinct timestamps out of order, ListOffsets answers
    // every target from before the first to past the last timestamp with the offset and
    // timestamp of the first record at or after it, exactly as computed from the records
    // sent; the batch's base offset (2) answered every target inside it before the fix.
    // -3 answers the record holding the max timestamp (offset 6), not the batch's last.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "ts", 1, &[]), 0);
    let first = [1_000, 1_100];
    let zstd = [
        2_000, 2_010, 2_030, 2_020, 2_900, 2_040, 2_050, 2_060, 2_070, 2_080,
    ];
    let b = build_timed_batch(0, 0, &first);
    assert_eq!(produce_acks(&mut conn, "ts", Bytes::from(b), -1), (0, 0));
    let b = build_timed_batch(0, 4, &zstd);
    assert_eq!(BatchHeader::new(&b).unwrap().codec(), Codec::Zstd);
    assert_eq!(produce_acks(&mut conn, "ts", Bytes::from(b), -1), (0, 2));

    let records: Vec<(i64, i64)> = first
        .iter()
        .chain(&zstd)
        .enumerate()
        .map(|(i, t)| (i as i64, *t))
        .collect();
    let mut targets: Vec<i64> = vec![0, 999, 1_000, 1_050, 1_999, 2_901, 10_000];
    for (_, t) in &records {
        targets.extend([t - 1, *t, t + 1]);
    }
    for target in targets {
        let want = records
            .iter()
            .find(|(_, t)| *t >= target)
            .map_or((0, -1, -1), |(o, t)| (0, *o, *t));
        assert_eq!(
            list_offsets(&mut conn, "ts", target),
            want,
            "target {target}"
        );
    }
    assert_eq!(list_offsets(&mut conn, "ts", 2_015), (0, 4, 2_030));
    assert_eq!(list_offsets(&mut conn, "ts", -3), (0, 6, 2_900));
    assert_eq!(list_offsets(&mut conn, "ts", -1), (0, 12, -1));
}
