//! A corrupt batch in a closed segment hides nothing before it: after a clean stop a byte
//! is flipped in the records of a batch in the middle of a closed segment; after the
//! restart a consumer reading from offset 0 gets every batch before it, the read at it
//! fails with CORRUPT_MESSAGE, and the broker logs an ERROR naming the partition, the
//! segment, the byte position and the stored and computed CRC32C.

mod common;

use std::path::PathBuf;

use common::{Broker, batch, create_topic_with, decode_records, fetch_at, produce_acks};

const CORRUPT_MESSAGE: i16 = 2;

/// (position, base offset, total bytes) of every batch in a segment file.
fn batches_of(bytes: &[u8]) -> Vec<(usize, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        if len <= 0 {
            break;
        }
        let total = 12 + len as usize;
        out.push((pos, base, total));
        pos += total;
    }
    out
}

#[test]
fn fetch_serves_intact_batches_before_a_corrupt_one() {
    // Proves the read path stops exactly at a corrupt batch: small fetches from offset 0
    // (as a consumer makes) return every offset before the corrupt batch without error,
    // the fetch at its base offset answers CORRUPT_MESSAGE (not KAFKA_STORAGE_ERROR for
    // the whole partition), the batch after it still reads, and the log has the ERROR
    // line with segment, position and both CRCs.
    let mut broker = Broker::start_single_core();
    let mut conn = broker.connect();
    assert_eq!(
        create_topic_with(&mut conn, "bad", 1, &[("segment.bytes", "4096")]),
        0
    );
    let value = "v".repeat(300);
    for i in 0..40 {
        let v = format!("{i:03}{value}");
        assert_eq!(
            produce_acks(&mut conn, "bad", batch(&[("k", &v, 1)], None), -1),
            (0, i)
        );
    }
    assert!(broker.stop().success());

    let dir = broker.data_dir().join("bad-0");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    // A closed segment, not the first: batches of earlier segments come before it too.
    let path = &segments[1];
    let mut bytes = std::fs::read(path).unwrap();
    let in_file = batches_of(&bytes);
    assert!(in_file.len() >= 3, "{in_file:?}");
    let (pos, corrupt_base, total) = in_file[in_file.len() / 2];
    // Inside the records, after the 61-byte header: only the CRC can notice.
    bytes[pos + 61 + (total - 61) / 2] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    let segment_base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();

    broker.restart();
    let mut conn = broker.connect();
    let mut next = 0i64;
    loop {
        let (err, _hw, raw) = fetch_at(&mut conn, "bad", next, 0, 1500);
        if err != 0 {
            assert_eq!(next, corrupt_base, "error {err} before the corrupt batch");
            assert_eq!(err, CORRUPT_MESSAGE);
            break;
        }
        let recs = decode_records(&raw);
        assert!(!recs.is_empty(), "no records and no error at {next}");
        for (o, _, v, _) in recs {
            assert_eq!(o, next);
            assert_eq!(v, format!("{o:03}{value}"));
            next += 1;
        }
    }
    let (err, _, raw) = fetch_at(&mut conn, "bad", corrupt_base + 1, 0, 1500);
    assert_eq!(err, 0);
    assert_eq!(decode_records(&raw)[0].0, corrupt_base + 1);

    let log = broker.log();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("CRC32C mismatch"))
        .unwrap_or_else(|| panic!("no ERROR line for the corrupt batch:\n{log}"));
    for want in [
        "partition=bad-0".to_string(),
        format!("segment={segment_base}"),
        format!("position={pos}"),
        "stored_crc=0x".to_string(),
        "computed_crc=0x".to_string(),
    ] {
        assert!(line.contains(&want), "{want} missing in {line}");
    }
}
