//! librdkafka against the real 2-shard broker: ListOffsets by timestamp through
//! `offsets_for_times`, and a consumer long-polling with fetch.wait.max.ms=10s that
//! receives a record within milliseconds of its produce (the Fetch is woken by the append).

mod common;

use std::time::{Duration, Instant};

use common::{Broker, consumer, producer};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn offsets_for_times_finds_the_first_later_record() {
    // Proves ListOffsets by timestamp returns the offset of the first record at or after
    // the asked time, and the end offset (-1) when nothing is that late.
    let broker = Broker::start_with(&[]);
    let (p, d) = producer(&broker.bootstrap(), &[("linger.ms", "0")]);
    for i in 0..10i64 {
        let v = i.to_string();
        p.send(
            BaseRecord::<str, str>::to("times")
                .payload(&v)
                .timestamp(1_000_000 + i * 1000)
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        // One batch per record, so batch-granular lookup is record-granular here.
        p.flush(Duration::from_secs(30)).unwrap();
    }
    assert_eq!(d.ok.load(std::sync::atomic::Ordering::SeqCst), 10);
    let c = consumer(&broker.bootstrap());
    let ask = |ts: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let r = c.offsets_for_times(tpl, Duration::from_secs(10)).unwrap();
        r.find_partition("times", 0).unwrap().offset()
    };
    assert_eq!(ask(1_000_000), Offset::Offset(0));
    assert_eq!(ask(1_004_500), Offset::Offset(5));
    assert_eq!(ask(1_009_000), Offset::Offset(9));
    assert_eq!(ask(2_000_000), Offset::End);
}

#[test]
fn long_poll_delivers_within_milliseconds() {
    // Proves a consumer whose fetches may wait 10 s gets a new record long before that:
    // the broker wakes the waiting Fetch when the append lands. Prints the latency.
    let broker = Broker::start_with(&["--num-partitions", "2"]);
    let (p, _) = producer(&broker.bootstrap(), &[("linger.ms", "0"), ("acks", "1")]);
    // A warm-up record on each partition: draining both proves both partitions are in
    // the consumer's fetches before anything is timed (a partition still resolving its
    // offset would sit out a whole 10 s fetch).
    for part in 0..2 {
        p.send(
            BaseRecord::<str, str>::to("tail")
                .payload("warm")
                .partition(part),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "tail")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10000")
        .set("fetch.min.bytes", "1")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("tail", 0, Offset::Offset(0))
        .unwrap();
    tpl.add_partition_offset("tail", 1, Offset::Offset(0))
        .unwrap();
    c.assign(&tpl).unwrap();
    // Drain both warm-up records so the next fetch is a waiting one on both partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warm = 0;
    while warm < 2 {
        assert!(Instant::now() < deadline, "warm-up records not consumed");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            assert_eq!(m.unwrap().payload(), Some(&b"warm"[..]));
            warm += 1;
        }
    }
    let mut latencies = Vec::new();
    for round in 0..5 {
        // Let the consumer's next fetch reach the broker and start waiting.
        std::thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        let v = format!("r{round}");
        p.send(
            BaseRecord::<str, str>::to("tail")
                .payload(&v)
                .partition(round % 2),
        )
        .map_err(|(e, _)| e)
        .unwrap();
        let got = loop {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.unwrap();
                assert_eq!(m.payload(), Some(v.as_bytes()));
                break Instant::now();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(9),
                "record not delivered before the fetch deadline"
            );
        };
        latencies.push(got.duration_since(sent));
    }
    println!("produce-to-consume latency with a 10 s long poll: {latencies:?}");
}
