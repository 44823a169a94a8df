//! An idempotent librdkafka producer whose connections are cut mid-stream (through a TCP
//! proxy the broker advertises) retries its in-flight batches; the broker's per-producer
//! sequence dedupe must leave exactly one copy of every record, in order.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Broker, Proxy, consumer, producer};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const RECORDS: usize = 30_000;

#[test]
fn cut_connections_leave_no_duplicates() {
    // Proves that after five connection cuts during a 30k-record idempotent produce, the
    // topic holds each record exactly once and in send order per partition.
    let proxy = Proxy::start(0);
    let advertise = proxy.addr.to_string();
    let broker = Broker::start_with(&["--num-partitions", "4", "--advertise", &advertise]);
    proxy.set_upstream(broker.addr);
    let (p, d) = producer(
        &advertise,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.size", "16384"),
            ("retry.backoff.ms", "20"),
        ],
    );
    let topic = "idem";
    std::thread::scope(|s| {
        let cutter = s.spawn(|| {
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(150));
                proxy.cut_all();
            }
        });
        for i in 0..RECORDS {
            let key = format!("k{}", i % 97);
            let value = i.to_string();
            let mut rec = BaseRecord::to(topic).key(&key).payload(&value);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => panic!("send: {e}"),
                }
            }
            // Spread the sends over the cut window (about 1 s).
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(35));
            }
        }
        cutter.join().unwrap();
    });
    p.flush(Duration::from_secs(120)).unwrap();
    assert_eq!(d.failed.load(Ordering::SeqCst), 0, "every record delivered");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 5);

    let c = consumer(&broker.bootstrap());
    let mut tpl = TopicPartitionList::new();
    for part in 0..4 {
        tpl.add_partition_offset(topic, part, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut seen = vec![0u32; RECORDS];
    let mut last: HashMap<i32, usize> = HashMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count < RECORDS {
        assert!(Instant::now() < deadline, "only {count} records consumed");
        let Some(m) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.unwrap();
        let i: usize = std::str::from_utf8(m.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        seen[i] += 1;
        assert_eq!(seen[i], 1, "record {i} duplicated");
        if let Some(prev) = last.insert(m.partition(), i) {
            assert!(
                prev < i,
                "partition {} out of order: {prev} then {i}",
                m.partition()
            );
        }
        count += 1;
    }
    // Nothing beyond the expected records: a short extra poll finds no more.
    let extra_deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < extra_deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            panic!("unexpected extra record at offset {}", m.unwrap().offset());
        }
    }
}
