//! Shared helpers for the integration tests: the real-broker harness (`Broker`: start the
//! `sluice` binary on a free 127.0.0.1 port with `--cores 2` and a temporary data
//! directory, stop or kill it by PID; `Conn`: raw Kafka requests over a std `TcpStream`)
//! comes from `sluice-testkit`; kcat and record-batch helpers live here.
#![allow(dead_code, unused_imports)]

use std::path::Path;

use bytes::{Bytes, BytesMut};

pub use sluice_testkit::{Broker, BrokerOptions, Conn, free_port, sluice_bin};

/// Path of kcat; the test script installs it (scripts/install-test-deps.sh).
pub fn kcat() -> &'static str {
    for p in ["/usr/bin/kcat", "/usr/local/bin/kcat", "/usr/bin/kafkacat"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("kcat is not installed: run scripts/install-test-deps.sh");
}

/// Encodes one uncompressed RecordBatch v2 with kafka-protocol's client-side encoder.
/// `records` are (key, value, timestamp ms); `producer` is (id, epoch, base sequence).
pub fn batch(records: &[(&str, &str, i64)], producer: Option<(i64, i16, i32)>) -> Bytes {
    use kafka_protocol::records::*;
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: *ts,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record in a Fetch `records` field: (offset, key, value, timestamp).
pub fn decode_records(records: &Bytes) -> Vec<(i64, String, String, i64)> {
    use kafka_protocol::records::*;
    let mut buf = records.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            let s = |b: Option<Bytes>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            out.push((r.offset, s(r.key), s(r.value), r.timestamp));
        }
    }
    out
}
