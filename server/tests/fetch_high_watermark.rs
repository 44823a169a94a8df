//! The high watermark is the durable end: with a flush interval far longer than the test,
//! records produced with acks=1 are not served, counted by ListOffsets or reported as
//! the high watermark until a flush makes them durable; a waiting fetch asks for that
//! flush and is answered by it (not by the append, not by the interval); records never
//! made durable vanish in a crash without a consumer having seen them.

mod common;

use std::time::{Duration, Instant};

use common::{Broker, BrokerOptions, batch, create_topic_with, decode_records, fetch_at};
use common::{list_offset, produce_acks};

/// Offsets and values of the records in a fetch response.
fn records(raw: &bytes::Bytes) -> Vec<(i64, String)> {
    decode_records(raw)
        .into_iter()
        .map(|(o, _, v, _)| (o, v))
        .collect()
}

#[test]
fn fetch_serves_only_durable_records() {
    // Proves a fetch never returns offsets at or past the durable end and reports it as
    // the high watermark: acks=1 records stay invisible to a non-waiting fetch and to
    // ListOffsets(latest) while no flush ran, a waiting fetch gets them within a fraction
    // of the 10-minute flush interval (it asked for the flush), a waiting fetch is woken
    // by a later append's flush, and after SIGKILL the never-flushed batch is gone while
    // everything a consumer saw reads back the same.
    let mut broker = Broker::launch(
        BrokerOptions::default()
            .cores(1)
            .args(&["--log-flush-interval-ms", "600000"]),
    );
    let mut conn = broker.connect();
    assert_eq!(create_topic_with(&mut conn, "hw", 1, &[]), 0);
    let (err, base) = produce_acks(
        &mut conn,
        "hw",
        batch(&[("k", "a0", 1), ("k", "a1", 1), ("k", "a2", 1)], None),
        1,
    );
    assert_eq!((err, base), (0, 0));
    assert_eq!(
        list_offset(&mut conn, "hw", -1),
        0,
        "latest offset past the durable end"
    );
    let (err, hw, raw) = fetch_at(&mut conn, "hw", 0, 0, 1 << 20);
    assert_eq!(err, 0);
    assert_eq!(hw, 0, "high watermark past the durable end");
    assert!(
        raw.is_empty(),
        "served records not yet durable: {:?}",
        records(&raw)
    );

    let started = Instant::now();
    let (err, hw, raw) = fetch_at(&mut conn, "hw", 0, 20_000, 1 << 20);
    let waited = started.elapsed();
    assert_eq!(err, 0);
    assert_eq!(hw, 3);
    assert_eq!(
        records(&raw),
        vec![(0, "a0".into()), (1, "a1".into()), (2, "a2".into())]
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} for a flush"
    );
    assert_eq!(list_offset(&mut conn, "hw", -1), 3);

    // A fetch waiting at the end is answered once a later append is flushed.
    let addr = broker.addr;
    let waiter = std::thread::spawn(move || {
        let mut c = common::Conn::connect(addr);
        let started = Instant::now();
        let r = fetch_at(&mut c, "hw", 3, 20_000, 1 << 20);
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        produce_acks(&mut conn, "hw", batch(&[("k", "b3", 1)], None), 1),
        (0, 3)
    );
    let ((err, hw, raw), waited) = waiter.join().unwrap();
    assert_eq!((err, hw), (0, 4));
    assert_eq!(records(&raw), vec![(3, "b3".into())]);
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    // Never flushed: invisible, and gone after a crash.
    assert_eq!(
        produce_acks(&mut conn, "hw", batch(&[("k", "lost", 1)], None), 1),
        (0, 4)
    );
    let (err, hw, raw) = fetch_at(&mut conn, "hw", 4, 0, 1 << 20);
    assert_eq!((err, hw), (0, 4));
    assert!(raw.is_empty(), "served {:?}", records(&raw));
    broker.crash();
    broker.restart();
    let mut conn = broker.connect();
    assert_eq!(
        produce_acks(&mut conn, "hw", batch(&[("k", "c4", 1)], None), -1),
        (0, 4)
    );
    let (err, hw, raw) = fetch_at(&mut conn, "hw", 0, 0, 1 << 20);
    assert_eq!((err, hw), (0, 5));
    assert_eq!(
        records(&raw),
        vec![
            (0, "a0".into()),
            (1, "a1".into()),
            (2, "a2".into()),
            (3, "b3".into()),
            (4, "c4".into())
        ]
    );
}
