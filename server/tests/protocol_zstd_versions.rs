//! zstd below the request versions that allow it (KIP-110), over raw sockets against the
//! real binary: Produce below v7 refuses a zstd batch with UNSUPPORTED_COMPRESSION_TYPE,
//! and Fetch below v10 of a topic whose compression.type is zstd is answered with it, as
//! Kafka's `ProduceRequest.validateRecords` and `maybeConvertFetchedData` do.

mod common;

use bytes::Bytes;
use common::{Broker, Conn, create_topic_with};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::{BatchHeader, Codec};
use sluice_engine::record::build_batch;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A 3-record batch with the codec in `attributes`.
fn batch(attributes: i16) -> Bytes {
    let b = build_batch(
        0,
        1_000,
        attributes,
        &[(None, Some(b"a")), (None, Some(b"b")), (None, Some(b"c"))],
    );
    Bytes::from(b)
}

/// Produce at `version`, acks=all, of one batch to partition 0: (error, base offset).
fn produce(conn: &mut Conn, version: i16, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, version, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The log end offset of partition 0 (ListOffsets v7, latest).
fn log_end_offset(conn: &mut Conn, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req);
    resp.topics[0].partitions[0].offset
}

/// Fetch at `version` of partition 0 from offset 0: (error, high watermark, records).
fn fetch(conn: &mut Conn, version: i16, topic: &str) -> (i16, i64, Bytes) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, version, &req);
    let p = &resp.responses[0].partitions[0];
    (
        p.error_code,
        p.high_watermark,
        p.records.clone().unwrap_or_default(),
    )
}

#[test]
fn produce_below_v7_refuses_zstd() {
    // Proves Produce v3-v6 of a zstd batch answers UNSUPPORTED_COMPRESSION_TYPE (76) and
    // appends nothing (the log end offset stays 0), while a gzip batch at v3 and the same
    // zstd batch at v7 are appended. Before the fix v3-v6 appended the zstd batch.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "p", 1, &[]), 0);
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    for version in 3..7 {
        assert_eq!(
            produce(&mut conn, version, "p", batch(4)),
            (unsupported, -1),
            "v{version}"
        );
    }
    assert_eq!(log_end_offset(&mut conn, "p"), 0);
    assert_eq!(produce(&mut conn, 3, "p", batch(1)), (0, 0));
    assert_eq!(produce(&mut conn, 7, "p", batch(4)), (0, 3));
    assert_eq!(log_end_offset(&mut conn, "p"), 6);
}

#[test]
fn fetch_below_v10_of_a_zstd_topic_is_refused() {
    // Proves Fetch v4-v9 of a topic whose compression.type is zstd answers
    // UNSUPPORTED_COMPRESSION_TYPE with no records and high watermark -1, while v10 and
    // v12 serve its zstd batch; a topic with compression.type=producer holding the same
    // zstd batch is served at v9 too, as Kafka, which checks the topic config, does.
    // Before the fix v4-v9 served the zstd topic.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(
        create_topic_with(&mut conn, "z", 1, &[("compression.type", "zstd")]),
        0
    );
    assert_eq!(create_topic_with(&mut conn, "p", 1, &[]), 0);
    assert_eq!(produce(&mut conn, 7, "z", batch(4)), (0, 0));
    assert_eq!(produce(&mut conn, 7, "p", batch(4)), (0, 0));
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    for version in 4..10 {
        assert_eq!(
            fetch(&mut conn, version, "z"),
            (unsupported, -1, Bytes::new()),
            "v{version}"
        );
    }
    for version in [10, 12] {
        let (error, high_watermark, records) = fetch(&mut conn, version, "z");
        assert_eq!((error, high_watermark), (0, 3), "v{version}");
        assert_eq!(BatchHeader::new(&records).unwrap().codec(), Codec::Zstd);
    }
    let (error, high_watermark, records) = fetch(&mut conn, 9, "p");
    assert_eq!((error, high_watermark), (0, 3));
    assert_eq!(BatchHeader::new(&records).unwrap().codec(), Codec::Zstd);
}
