//! What the broker checks and changes in a producer's batch before storing it, over raw
//! sockets against the real binary: an unset max timestamp (Sarama writes -1) is set from
//! the records, a compacted topic refuses keyless records naming them in
//! `record_errors`, and a topic's `compression.type` recompresses batches of another
//! codec, which kcat then consumes.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::{Broker, Conn, create_topic_with, fetch_raw, kcat, list_offsets_at, produce_to};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::{self, BatchHeader, Codec, HEADER_BYTES};
use sluice_engine::record::{KeyValue, build_batch, decode_batch, encode_batch};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One record to produce: key (`None` is null), value, timestamp.
type Rec<'a> = (Option<&'a str>, &'a str, i64);

/// A RecordBatch v2 of `records` with the codec in `attributes`, base timestamp the first
/// record's, and `max_timestamp` written in the header as given (-1 as Sarama does).
fn batch_of(attributes: i16, records: &[Rec<'_>], max_timestamp: i64) -> Bytes {
    let base = records[0].2;
    let kvs: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v, _)| (k.map(str::as_bytes), Some(v.as_bytes())))
        .collect();
    let plain = build_batch(0, base, 0, &kvs);
    let mut head = plain[..HEADER_BYTES].to_vec();
    head[21..23].copy_from_slice(&attributes.to_be_bytes());
    head[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let mut decoded = decode_batch(&plain, 1 << 20).unwrap().records;
    for (r, (_, _, ts)) in decoded.iter_mut().zip(records) {
        r.timestamp_delta = ts - base;
    }
    let view = BatchHeader::new(&head).unwrap();
    Bytes::from(encode_batch(&view, &decoded, true).unwrap())
}

fn produce(conn: &mut Conn, version: i16, topic: &str, records: Bytes) -> PartitionProduceResponse {
    produce_to(conn, version, topic, 0, records)
}

/// ListOffsets (v7) of partition 0 at `timestamp`: (error, offset, timestamp).
fn list_offsets(conn: &mut Conn, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let p = list_offsets_at(conn, topic, 0, timestamp);
    (p.error_code, p.offset, p.timestamp)
}

/// Every batch of a Fetch's records field, split by its length field.
fn batches(mut raw: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while raw.len() >= HEADER_BYTES {
        let len = BatchHeader::new(&raw).unwrap().total_bytes().unwrap();
        out.push(raw.split_to(len));
    }
    out
}

/// (key, value, timestamp) of every record of a stored batch.
fn records_of(b: &[u8]) -> Vec<(Option<String>, String, i64)> {
    let h = BatchHeader::new(b).unwrap();
    let text = |x: &Bytes| String::from_utf8(x.to_vec()).unwrap();
    decode_batch(b, 1 << 20)
        .unwrap()
        .records
        .iter()
        .map(|r| {
            (
                r.key.as_ref().map(text),
                text(r.value.as_ref().unwrap()),
                h.base_timestamp() + r.timestamp_delta,
            )
        })
        .collect()
}

#[test]
fn unset_max_timestamp_is_set_from_records() {
    // Proves a batch whose header says max_timestamp = -1 (Sarama 1.22 writes this), sent
    // as Produce v3 like Sarama, uncompressed and gzip, is stored with the records'
    // largest timestamp: ListOffsets by timestamp finds the record at or after it,
    // ListOffsets MAX_TIMESTAMP (-3) reports it, and Fetch serves the batch with that max
    // timestamp and a valid CRC. Before the fix every lookup answered -1.
    let broker = Broker::start();
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "sarama", 1, &[]), 0);
    let plain: [Rec<'_>; 3] = [
        (Some("a"), "1", 5_000),
        (Some("b"), "2", 7_000),
        (None, "3", 6_000),
    ];
    let zipped: [Rec<'_>; 2] = [(Some("c"), "4", 8_000), (Some("d"), "5", 9_000)];
    let p = produce(&mut conn, 3, "sarama", batch_of(0, &plain, -1));
    assert_eq!(p.error_code, 0, "{p:?}");
    let p = produce(&mut conn, 3, "sarama", batch_of(1, &zipped, -1));
    assert_eq!((p.error_code, p.base_offset), (0, 3), "{p:?}");

    assert_eq!(list_offsets(&mut conn, "sarama", 6_500), (0, 1, 7_000));
    // Inside a compressed batch the record at or after the target answers, as in Kafka,
    // not the batch's base offset (3).
    assert_eq!(list_offsets(&mut conn, "sarama", 8_500), (0, 4, 9_000));
    assert_eq!(list_offsets(&mut conn, "sarama", -3), (0, 4, 9_000));
    let (raw, _) = fetch_raw(&mut conn, "sarama", 0, 0);
    let stored = batches(raw.unwrap());
    assert_eq!(stored.len(), 2);
    for (b, max) in stored.iter().zip([7_000, 9_000]) {
        let h = batch::validate(b).unwrap();
        assert_eq!(h.max_timestamp(), max);
    }
    assert_eq!(records_of(&stored[0])[2], (None, "3".into(), 6_000));
}

#[test]
fn compacted_topic_refuses_keyless_records() {
    // Proves a cleanup.policy=compact topic refuses a batch holding a keyless record with
    // INVALID_RECORD (87): from Produce v8 the response names the record's index in
    // record_errors with a message and carries an error_message; v7 gets the code alone;
    // nothing is appended (the log end stays 0), and the same records with keys are then
    // stored at offset 0. Before the fix the keyless batch was stored.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let compact = [("cleanup.policy", "compact")];
    assert_eq!(create_topic_with(&mut conn, "keys", 1, &compact), 0);
    let keyless: [Rec<'_>; 3] = [
        (Some("a"), "1", 1_000),
        (None, "2", 1_000),
        (Some("c"), "3", 1_000),
    ];
    for version in [8, 9, 11] {
        for codec in [0, 4] {
            let p = produce(&mut conn, version, "keys", batch_of(codec, &keyless, 1_000));
            assert_eq!(p.error_code, ResponseError::InvalidRecord.code(), "{p:?}");
            assert_eq!(p.record_errors.len(), 1, "{p:?}");
            assert_eq!(p.record_errors[0].batch_index, 1);
            let message = p.record_errors[0].batch_index_error_message.as_ref();
            assert!(message.unwrap().contains("without a key"), "{p:?}");
            assert!(p.error_message.is_some());
        }
    }
    let p = produce(&mut conn, 7, "keys", batch_of(0, &keyless, 1_000));
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(list_offsets(&mut conn, "keys", -1).1, 0);
    let keyed: [Rec<'_>; 3] = [
        (Some("a"), "1", 1_000),
        (Some("b"), "2", 1_000),
        (Some("c"), "3", 1_000),
    ];
    let p = produce(&mut conn, 9, "keys", batch_of(0, &keyed, 1_000));
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    assert!(p.record_errors.is_empty());
    assert_eq!(list_offsets(&mut conn, "keys", -1).1, 3);
}

/// DescribeConfigs (v4) of one topic: the value of `name` and its source.
fn described(conn: &mut Conn, topic: &str, name: &str) -> (String, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic)),
    ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    let c = resp.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"));
    (c.value.as_ref().unwrap().to_string(), c.config_source)
}

#[test]
fn compression_type_recompresses_batches() {
    // Proves the compression.type topic config: a bad value is refused with
    // INVALID_CONFIG, DescribeConfigs shows the override (zstd, TOPIC_CONFIG) and the
    // broker's value (--compression-type, here lz4 from SLUICE_COMPRESSION_TYPE, so
    // STATIC_BROKER_CONFIG as Kafka reports a server.properties value); uncompressed,
    // gzip and zstd batches sent to the zstd topic are all served as zstd batches whose
    // records (keys, values, timestamps) equal what was sent, and kcat (librdkafka)
    // consumes them; the other topic stores lz4. Before the fix the config was refused.
    let broker = Broker::start_env(&[("SLUICE_COMPRESSION_TYPE", "lz4")]);
    let mut conn = broker.connect();
    let bad = create_topic_with(&mut conn, "bad", 1, &[("compression.type", "brotli")]);
    assert_eq!(bad, ResponseError::InvalidConfig.code());
    assert_eq!(
        create_topic_with(&mut conn, "z", 1, &[("compression.type", "zstd")]),
        0
    );
    assert_eq!(create_topic_with(&mut conn, "dflt", 1, &[]), 0);
    assert_eq!(
        described(&mut conn, "z", "compression.type"),
        ("zstd".into(), 1)
    );
    assert_eq!(
        described(&mut conn, "dflt", "compression.type"),
        // Set by the broker's environment: STATIC_BROKER_CONFIG, as Kafka reports it.
        ("lz4".into(), 4)
    );

    let mut sent = Vec::new();
    for (codec, name) in [(0i16, "none"), (1, "gzip"), (4, "zstd")] {
        let recs: Vec<(String, String, i64)> = (0..20)
            .map(|i| {
                (
                    format!("{name}-k{i}"),
                    format!("{name}-v{i}-{}", "x".repeat(i)),
                    10_000 + i as i64,
                )
            })
            .collect();
        let refs: Vec<Rec<'_>> = recs
            .iter()
            .map(|(k, v, t)| (Some(k.as_str()), v.as_str(), *t))
            .collect();
        let p = produce(&mut conn, 9, "z", batch_of(codec, &refs, 10_019));
        assert_eq!(p.error_code, 0, "{p:?}");
        let p = produce(&mut conn, 9, "dflt", batch_of(codec, &refs, 10_019));
        assert_eq!(p.error_code, 0, "{p:?}");
        sent.extend(recs);
    }
    for (topic, codec) in [("z", Codec::Zstd), ("dflt", Codec::Lz4)] {
        let mut got = Vec::new();
        let mut next = 0;
        while next < 60 {
            let (raw, _) = fetch_raw(&mut conn, topic, 0, next);
            for b in batches(raw.unwrap()) {
                let h = batch::validate(&b).unwrap();
                assert_eq!(h.codec(), codec, "{topic}");
                assert_eq!(h.max_timestamp(), 10_019);
                next = h.last_offset().0 + 1;
                got.extend(records_of(&b));
            }
        }
        let want: Vec<_> = sent
            .iter()
            .map(|(k, v, t)| (Some(k.clone()), v.clone(), *t))
            .collect();
        assert_eq!(got, want, "{topic}");
    }

    let out = Command::new(kcat())
        .args([
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            "z",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%k=%s\n"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = sent.iter().map(|(k, v, _)| format!("{k}={v}")).collect();
    assert_eq!(lines, want);
}
