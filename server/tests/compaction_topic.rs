//! Log compaction in the real 2-shard binary: a `cleanup.policy=compact` topic with
//! small segments is compacted in the background (`--log-cleaner-backoff-ms`), and what
//! Fetch serves before, during and after is checked against the records produced.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{
    Broker, Conn, create_topic_with, decode_records, fetch_raw, produce_keyed, read_keyed,
};

const TOPIC: &str = "compacted";
const PARTITIONS: i32 = 2;
const KEYS: usize = 20;
const VERSIONS: usize = 150;

fn create(conn: &mut Conn) {
    create_named(conn, TOPIC, PARTITIONS);
}

fn create_named(conn: &mut Conn, topic: &str, partitions: i32) {
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "3600000"),
    ];
    assert_eq!(create_topic_with(conn, topic, partitions, &configs), 0);
}

/// One fetch from `offset`: (records, high watermark).
fn fetch(conn: &mut Conn, partition: i32, offset: i64) -> (Vec<(i64, String, String, i64)>, i64) {
    let (raw, hw) = fetch_raw(conn, TOPIC, partition, offset);
    let recs = raw.as_ref().map(decode_records).unwrap_or_default();
    (recs, hw)
}

/// (base offset, last offset, records count) of every batch of partition 0, read with
/// raw fetches from offset 0.
fn batch_headers(conn: &mut Conn, topic: &str) -> Vec<(i64, i64, i32)> {
    let mut out = Vec::new();
    let mut next = 0i64;
    loop {
        let (raw, _) = fetch_raw(conn, topic, 0, next);
        let raw = raw.unwrap_or_default();
        let mut at = 0usize;
        let before = out.len();
        while at + 61 <= raw.len() {
            let h = &raw[at..];
            let base = i64::from_be_bytes(h[0..8].try_into().unwrap());
            let len = i32::from_be_bytes(h[8..12].try_into().unwrap()) as usize;
            let delta = i32::from_be_bytes(h[23..27].try_into().unwrap());
            let count = i32::from_be_bytes(h[57..61].try_into().unwrap());
            if at + 12 + len > raw.len() {
                break;
            }
            let last = base + i64::from(delta);
            if last >= next {
                out.push((base, last, count));
                next = last + 1;
            }
            at += 12 + len;
        }
        if out.len() == before {
            return out;
        }
    }
}

const KCAT_RECORDS: usize = 2000;
const KCAT_KEYS: usize = 10;

fn kcat_produce(broker: &Broker, topic: &str, run: usize) {
    let mut child = Command::new(common::kcat())
        .args(["-b", &broker.bootstrap(), "-P", "-t", topic, "-K", ":"])
        .args(["-z", "gzip", "-X", "enable.idempotence=true"])
        .args(["-X", "batch.num.messages=50", "-X", "linger.ms=5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = child.stdin.as_mut().unwrap();
        for i in 0..KCAT_RECORDS {
            writeln!(stdin, "key-{}:run-{run}-record-{i}", i % KCAT_KEYS).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every key's newest value must be there, as the last record of that key.
fn check_newest(read: &[(i64, String, String)], partition: i32) {
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (_, k, v) in read {
        last.insert(k, v);
    }
    for key in 0..KEYS {
        let k = format!("p{partition}-key-{key}");
        let want = format!("p{partition}-key-{key}-version-{}", VERSIONS - 1);
        assert_eq!(last.get(k.as_str()).copied(), Some(want.as_str()), "{k}");
    }
}

#[test]
fn compacted_topic_keeps_newest_value_per_key() {
    // Proves background compaction on the real broker: many versions of a few keys over
    // tiny segments shrink to about one record per key within bounded time, offsets
    // keep increasing, every key's newest value survives, and a consumer reading the
    // partitions over and over while compaction runs sees the same guarantees each time.
    let broker = Broker::start_with(&["--log-cleaner-backoff-ms", "200"]);
    let mut conn = broker.connect();
    create(&mut conn);
    for partition in 0..PARTITIONS {
        for version in 0..VERSIONS {
            let records: Vec<(String, String)> = (0..KEYS)
                .map(|key| {
                    (
                        format!("p{partition}-key-{key}"),
                        format!("p{partition}-key-{key}-version-{version}"),
                    )
                })
                .collect();
            produce_keyed(&mut conn, TOPIC, partition, &records, 1_000);
        }
    }
    let produced = KEYS * VERSIONS;

    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU32::new(0));
    let reader = {
        let (stop, scans) = (stop.clone(), scans.clone());
        let addr = broker.addr;
        std::thread::spawn(move || {
            let mut conn = Conn::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                for partition in 0..PARTITIONS {
                    let read = read_keyed(&mut conn, TOPIC, partition);
                    check_newest(&read, partition);
                }
                scans.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    let sizes = loop {
        let sizes = (0..PARTITIONS)
            .map(|p| read_keyed(&mut conn, TOPIC, p).len())
            .collect::<Vec<_>>();
        // The active segment keeps its duplicates; everything before it is compacted.
        if sizes.iter().all(|n| *n < produced / 5) {
            break sizes;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {sizes:?} of {produced}\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let the reader overlap with later passes too.
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader saw a consistent log");
    assert!(scans.load(Ordering::Relaxed) >= 1);
    for partition in 0..PARTITIONS {
        let read = read_keyed(&mut conn, TOPIC, partition);
        check_newest(&read, partition);
        let (_, hw) = fetch(&mut conn, partition, 0);
        assert_eq!(hw, produced as i64, "offsets are kept");
    }
    println!("records left per partition: {sizes:?} of {produced}");
    assert!(broker.log().contains("compacted segments"), "{sizes:?}");
}

#[test]
fn kcat_consumes_compacted_topic_with_gaps_and_empty_batches() {
    // Proves a real client (librdkafka via kcat) reads a compacted topic: two idempotent
    // gzip producers write many versions of ten keys; after background compaction the
    // first producer's last batch is kept empty (records count 0), batches are rewritten
    // and offsets have gaps, and `kcat -C -e` still reads to the end with increasing
    // offsets and every key's newest value last.
    let broker = Broker::start_with(&["--log-cleaner-backoff-ms", "200"]);
    let mut conn = broker.connect();
    let topic = "kcat-compacted";
    create_named(&mut conn, topic, 1);
    kcat_produce(&broker, topic, 0);
    kcat_produce(&broker, topic, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let headers = loop {
        let headers = batch_headers(&mut conn, topic);
        let records: i32 = headers.iter().map(|h| h.2).sum();
        if headers.iter().any(|h| h.2 == 0) && (records as usize) < KCAT_RECORDS / 2 {
            break headers;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {records} records in {} batches\n{}",
            headers.len(),
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(headers.windows(2).all(|w| w[0].1 < w[1].0));
    let out = Command::new(common::kcat())
        .args(["-b", &broker.bootstrap(), "-C", "-t", topic])
        .args(["-o", "beginning", "-e", "-f", "%o|%k|%s\n"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kcat consume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut last_offset = -1i64;
    let mut newest: HashMap<String, String> = HashMap::new();
    let mut lines = 0;
    for line in stdout.lines() {
        let mut parts = line.splitn(3, '|');
        let offset: i64 = parts.next().unwrap().parse().unwrap();
        let key = parts.next().unwrap().to_string();
        let value = parts.next().unwrap().to_string();
        assert!(offset > last_offset, "offset {offset} after {last_offset}");
        last_offset = offset;
        newest.insert(key, value);
        lines += 1;
    }
    assert!(lines < KCAT_RECORDS, "{lines} records read");
    assert_eq!(newest.len(), KCAT_KEYS);
    for k in 0..KCAT_KEYS {
        let last_i = (0..KCAT_RECORDS)
            .filter(|i| i % KCAT_KEYS == k)
            .max()
            .unwrap();
        assert_eq!(
            newest[&format!("key-{k}")],
            format!("run-1-record-{last_i}"),
            "key-{k}"
        );
    }
}
