//! Request decoding cost: our bounded decoders against kafka-protocol's own
//! (unbounded) decoders on the same frames, for a small real Produce, a large
//! multi-partition Produce and a wide Fetch. `cargo bench -p sluice-net --bench
//! decode` prints ns per request; under `cargo test` it runs a few iterations
//! so it cannot rot.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_net::decode_request;
use sluice_net::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use sluice_net::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use sluice_net::kafka_protocol::messages::{
    ApiKey, FetchRequest, ProduceRequest, RequestHeader, TopicName,
};
use sluice_net::kafka_protocol::protocol::{
    Decodable, Encodable, decode_request_header_from_buffer, encode_request_header_into_buffer,
};

fn frame<T: Encodable>(api_key: ApiKey, version: i16, body: &T) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some("bench".into()));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn large_produce() -> Bytes {
    let topics = (0..4)
        .map(|t| {
            let partitions = (0..25)
                .map(|p| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(Bytes::from(vec![7u8; 16 * 1024])))
                })
                .collect();
            TopicProduceData::default()
                .with_name(TopicName(format!("topic-{t}").into()))
                .with_partition_data(partitions)
        })
        .collect();
    frame(
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(topics),
    )
}

fn wide_fetch() -> Bytes {
    let topics = (0..10)
        .map(|t| {
            let partitions = (0..50)
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(1 << 20)
                })
                .collect();
            FetchTopic::default()
                .with_topic(TopicName(format!("topic-{t}").into()))
                .with_partitions(partitions)
        })
        .collect();
    frame(
        ApiKey::Fetch,
        12,
        &FetchRequest::default()
            .with_max_wait_ms(500)
            .with_topics(topics),
    )
}

fn small_produce() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/kcat-1.7.1/Produce-v7.bin"
    );
    std::fs::read(path).unwrap().into()
}

fn theirs<T: Decodable>(frame: &Bytes, version: i16) -> T {
    let mut buf = frame.clone();
    let _header = decode_request_header_from_buffer(&mut buf).unwrap();
    T::decode(&mut buf, version).unwrap()
}

fn time(label: &str, bytes: usize, iterations: u32, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{label:<34} {bytes:>7} B  {ns:>10.0} ns/request");
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let scale = if benching { 1 } else { 1000 };
    let cases = [
        ("produce v7 kcat 1 partition", small_produce(), 7, 200_000),
        (
            "produce v9 100 partitions x 16 KiB",
            large_produce(),
            9,
            20_000,
        ),
        ("fetch v12 500 partitions", wide_fetch(), 12, 5_000),
    ];
    for (label, f, version, iterations) in cases {
        let iterations = (iterations / scale).max(1);
        assert!(decode_request(f.clone()).is_ok());
        time(&format!("sluice   {label}"), f.len(), iterations, || {
            black_box(decode_request(black_box(f.clone())).unwrap());
        });
        if label.starts_with("fetch") {
            time(
                &format!("kafka-protocol {label}"),
                f.len(),
                iterations,
                || {
                    black_box(theirs::<FetchRequest>(black_box(&f), version));
                },
            );
        } else {
            time(
                &format!("kafka-protocol {label}"),
                f.len(),
                iterations,
                || {
                    black_box(theirs::<ProduceRequest>(black_box(&f), version));
                },
            );
        }
    }
}
