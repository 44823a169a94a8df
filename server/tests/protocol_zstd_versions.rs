//! zstd below the request versions that allow it (KIP-110), over raw sockets against the
//! real binary: Produce below v7 refuses a zstd batch with UNSUPPORTED_COMPRESSION_TYPE,
//! Fetch below v10 of a topic whose compression.type is zstd is answered with it, as
//! Kafka's `ProduceRequest.validateRecords` and `maybeConvertFetchedData` do, and Fetch
//! v0-v3 does not down-convert zstd batches, as Kafka's down-conversion does not.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Broker, Conn, create_topic_with};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use sluice_engine::batch::{BatchHeader, Codec};
use sluice_engine::record::build_batch;

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
    let p = common::produce_to(conn, version, topic, 0, records);
    (p.error_code, p.base_offset)
}

/// The log end offset of partition 0 (ListOffsets v7, latest).
fn log_end_offset(conn: &mut Conn, topic: &str) -> i64 {
    common::list_offsets_at(conn, topic, 0, -1).offset
}

/// Fetch at `version` of partition 0 from offset 0: (error, high watermark, records).
fn fetch(conn: &mut Conn, version: i16, topic: &str) -> (i16, i64, Bytes) {
    let p = common::fetch_partition(conn, version, topic, 0, 0, 0, 1 << 20);
    (
        p.error_code,
        p.high_watermark,
        p.records.unwrap_or_default(),
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

/// Fetch v0-v3 (no longer in the protocol crate's schemas) of partition 0 from `offset`,
/// encoded by hand: (error, high watermark, offsets of the messages served).
fn fetch_old(conn: &mut Conn, version: i16, topic: &str, offset: i64) -> (i16, i64, Vec<i64>) {
    let mut f = BytesMut::new();
    f.put_i32(0); // size, set below
    f.put_i16(ApiKey::Fetch as i16);
    f.put_i16(version);
    f.put_i32(7); // correlation id
    f.put_i16(3);
    f.put_slice(b"old"); // client id
    f.put_i32(-1); // replica_id
    f.put_i32(0); // max_wait_ms
    f.put_i32(1); // min_bytes
    if version == 3 {
        f.put_i32(1 << 20); // max_bytes
    }
    f.put_i32(1); // topics
    f.put_i16(topic.len() as i16);
    f.put_slice(topic.as_bytes());
    f.put_i32(1); // partitions
    f.put_i32(0);
    f.put_i64(offset);
    f.put_i32(1 << 20); // partition_max_bytes
    let size = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&size.to_be_bytes());
    conn.send_raw(&f).unwrap();
    let mut b = conn.read_frame().unwrap().expect("a Fetch response");
    assert_eq!(b.get_i32(), 7);
    if version >= 1 {
        b.get_i32(); // throttle_time_ms
    }
    assert_eq!(b.get_i32(), 1);
    let name_len = b.get_i16() as usize;
    b.advance(name_len);
    assert_eq!(b.get_i32(), 1);
    assert_eq!(b.get_i32(), 0); // partition
    let error = b.get_i16();
    let high_watermark = b.get_i64();
    let set_len = b.get_i32().max(0) as usize;
    let mut set = b.split_to(set_len);
    assert!(b.is_empty());
    let mut offsets = Vec::new();
    while set.len() >= 12 {
        offsets.push(set.get_i64());
        let len = set.get_i32() as usize;
        set.advance(len);
    }
    (error, high_watermark, offsets)
}

#[test]
fn fetch_v0_to_v3_does_not_down_convert_zstd() {
    // Proves Fetch v0-v3 (served by down-converting to message format v0/v1) of a
    // compression.type=producer topic holding a gzip batch (offsets 0-2) then a zstd one
    // (3-5) serves the gzip batch's messages and stops before the zstd batch, and that
    // fetching from the zstd batch answers UNSUPPORTED_COMPRESSION_TYPE with no messages
    // and high watermark -1, as Kafka's down-conversion does; a zstd topic is refused at
    // v0-v3 too. Before the fix the zstd batch was converted and served.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "p", 1, &[]), 0);
    assert_eq!(
        create_topic_with(&mut conn, "z", 1, &[("compression.type", "zstd")]),
        0
    );
    assert_eq!(produce(&mut conn, 7, "p", batch(1)), (0, 0));
    assert_eq!(produce(&mut conn, 7, "p", batch(4)), (0, 3));
    assert_eq!(produce(&mut conn, 7, "z", batch(4)), (0, 0));
    let unsupported = ResponseError::UnsupportedCompressionType.code();
    for version in 0..4 {
        assert_eq!(
            fetch_old(&mut conn, version, "p", 0),
            (0, 6, vec![0, 1, 2]),
            "v{version}"
        );
        assert_eq!(
            fetch_old(&mut conn, version, "p", 3),
            (unsupported, -1, vec![]),
            "v{version}"
        );
        assert_eq!(
            fetch_old(&mut conn, version, "z", 0),
            (unsupported, -1, vec![]),
            "v{version}"
        );
    }
}
