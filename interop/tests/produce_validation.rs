//! librdkafka (rdkafka crate) against the real broker's append checks: a keyless record
//! sent to a compacted topic fails its delivery with INVALID_RECORD while keyed ones are
//! delivered and stored.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, consumer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// A delivery report: the record's value and its error, if any.
type Report = (String, Option<RDKafkaErrorCode>);

/// Each delivery report in arrival order.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<Report>>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let value = |m: &rdkafka::message::BorrowedMessage<'_>| {
            String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()
        };
        let report = match result {
            Ok(m) => (value(m), None),
            Err((KafkaError::MessageProduction(code), m)) => (value(m), Some(*code)),
            Err((e, m)) => panic!("unexpected delivery error for {}: {e}", value(m)),
        };
        self.0.lock().unwrap().push(report);
    }
}

fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = futures_lite::future::block_on(admin.create_topics(&[topic], &opts)).unwrap();
    assert_eq!(results, vec![Ok(name.to_string())]);
}

/// Sends each (key, value) and waits for its delivery report before the next, so each
/// record travels in a batch of its own.
fn produce_one_by_one(
    bootstrap: &str,
    topic: &str,
    codec: &str,
    records: &[(Option<&str>, &str)],
) -> Vec<Report> {
    let reports = Reports::default();
    let p: ThreadedProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("compression.type", codec)
        .set("message.timeout.ms", "20000")
        .create_with_context(reports.clone())
        .unwrap();
    for (key, value) in records {
        let mut rec = BaseRecord::<str, str>::to(topic).payload(*value);
        if let Some(k) = key {
            rec = rec.key(*k);
        }
        p.send(rec).map_err(|(e, _)| e).unwrap();
        p.flush(Duration::from_secs(30)).unwrap();
    }
    reports.0.lock().unwrap().clone()
}

#[test]
fn keyless_record_to_compacted_topic_fails_delivery() {
    // Proves librdkafka reports INVALID_RECORD for a keyless record produced to a
    // cleanup.policy=compact topic (the broker refuses its batch and names it in
    // record_errors), while the keyed records before and after it are delivered and are
    // the only ones stored (the high watermark is 2). Before the fix all three were
    // delivered.
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "compacted", &[("cleanup.policy", "compact")]);
    let reports = produce_one_by_one(
        &bootstrap,
        "compacted",
        "none",
        &[(Some("a"), "first"), (None, "keyless"), (Some("b"), "last")],
    );
    assert_eq!(
        reports,
        vec![
            ("first".to_string(), None),
            ("keyless".to_string(), Some(RDKafkaErrorCode::InvalidRecord)),
            ("last".to_string(), None),
        ]
    );
    assert_eq!(consume(&bootstrap, "compacted", 2), ["first", "last"]);
    let watermarks = consumer(&bootstrap).fetch_watermarks("compacted", 0, Duration::from_secs(10));
    assert_eq!(watermarks.unwrap(), (0, 2));
}

/// Reads partition 0 of `topic` from the beginning until `count` values arrived.
fn consume(bootstrap: &str, topic: &str, count: usize) -> Vec<String> {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < count {
        assert!(Instant::now() < deadline, "only {got:?} consumed");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    got
}
