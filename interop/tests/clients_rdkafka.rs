//! The `rdkafka` crate (librdkafka 2.12 built from source) against the real 2-shard
//! broker, in the shape of the other clients' tests (`common::client`): every codec with
//! every field compared (key, null key, value, headers, create time), the admin calls
//! (topics, configs of a topic and of the broker, partitions, DeleteRecords) and the
//! watermarks. Groups with commits, group administration, ListOffsets by timestamp, the
//! idempotent producer and a keyless record to a compacted topic through the same crate
//! are in `consumer_group.rs`, `group_admin.rs`, `offsets_and_poll.rs`,
//! `idempotent_cut.rs` and `produce_validation.rs`.

mod common;

use std::time::{Duration, Instant};

use common::client::{self, Rec};
use common::{Broker, producer};
use futures_lite::future::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(15);

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(TIMEOUT))
}

fn reader(broker: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "rdkafka-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// Produces `records` to partition 0 of `topic` with `extra` producer settings, each
/// with its key, headers and create time.
fn produce(broker: &Broker, topic: &str, records: &[Rec], extra: &[(&str, &str)]) {
    let (p, d) = producer(&broker.bootstrap(), extra);
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::<String, String>::to(topic)
            .payload(&r.value)
            .partition(0)
            .timestamp(r.timestamp_ms)
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        p.send(record).map_err(|(e, _)| e).expect("send");
    }
    p.flush(TIMEOUT).expect("flush");
    assert_eq!(d.failed.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        d.ok.load(std::sync::atomic::Ordering::SeqCst),
        records.len()
    );
}

/// Reads `count` records of partition 0 of `topic` from the beginning.
fn consume(broker: &Broker, topic: &str, count: usize) -> Vec<Rec> {
    let c = reader(broker);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {count}",
            out.len()
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("fetch");
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
        out.push(Rec {
            partition: i64::from(m.partition()),
            offset: m.offset(),
            key: m.key().map(text),
            value: text(m.payload().expect("value")),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), text(h.value.unwrap_or_default())))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis().expect("create time"),
        });
    }
    out
}

#[test]
fn rdkafka_codecs_round_trip_every_field() {
    // Proves librdkafka 2.12's batches under none, gzip, snappy, lz4 and zstd are stored
    // and served intact: the 10 records of each read back at offsets 0..9 with the same
    // key (one null), value, both headers and create time.
    let broker = Broker::start();
    for codec in client::CODECS {
        let topic = format!("codec-{codec}");
        let records = client::records(codec);
        produce(&broker, &topic, &records, &[("compression.type", codec)]);
        assert_eq!(consume(&broker, &topic, records.len()), records, "{codec}");
    }
}

#[test]
fn rdkafka_admin_creates_describes_grows_and_deletes_a_topic() {
    // Proves CreateTopics (with a config), Metadata, DescribeConfigs (topic),
    // CreatePartitions and DeleteTopics through librdkafka's admin client, each checked by
    // the call after it. Topics are looked up by name (Metadata for all topics is
    // another test's known defect), with auto-creation off so the lookup after the
    // delete cannot bring the topic back.
    let broker = Broker::start_with(&["--auto-create-topics-enable", "false"]);
    let admin = admin(&broker);
    let created = block_on(admin.create_topics(
        &[NewTopic::new("admin-t", 3, TopicReplication::Fixed(1)).set("retention.ms", "3600000")],
        &options(),
    ))
    .expect("create topics");
    assert!(created[0].is_ok(), "{created:?}");
    let partitions = |admin: &AdminClient<DefaultClientContext>| -> Option<usize> {
        let md = admin
            .inner()
            .fetch_metadata(Some("admin-t"), TIMEOUT)
            .expect("metadata");
        md.topics()
            .iter()
            .find(|t| t.name() == "admin-t" && t.error().is_none())
            .map(|t| t.partitions().len())
    };
    assert_eq!(partitions(&admin), Some(3));
    let configs =
        block_on(admin.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &options()))
            .expect("describe configs");
    let topic = configs[0].as_ref().expect("topic configs");
    let value = |name: &str| topic.get(name).and_then(|e| e.value.clone());
    assert_eq!(value("retention.ms").as_deref(), Some("3600000"));
    assert_eq!(value("cleanup.policy").as_deref(), Some("delete"));
    let grown = block_on(admin.create_partitions(&[NewPartitions::new("admin-t", 5)], &options()))
        .expect("create partitions");
    assert!(grown[0].is_ok(), "{grown:?}");
    assert_eq!(partitions(&admin), Some(5));
    let deleted = block_on(admin.delete_topics(&["admin-t"], &options())).expect("delete");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while partitions(&admin).is_some() {
        assert!(Instant::now() < deadline, "admin-t still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rdkafka_metadata_lists_every_topic() {
    // Proves Metadata for all topics (fetch_metadata(None)) names the two topics produced
    // to.
    let broker = Broker::start();
    produce(&broker, "listed-a", &client::records("none")[..1], &[]);
    produce(&broker, "listed-b", &client::records("none")[..1], &[]);
    let md = reader(&broker)
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata for all topics");
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert!(
        names.contains(&"listed-a") && names.contains(&"listed-b"),
        "{names:?}"
    );
}

#[test]
fn rdkafka_describe_configs_of_the_broker() {
    // Proves DescribeConfigs for the broker resource reports the broker's settings.
    let broker = Broker::start();
    let admin = admin(&broker);
    let configs = block_on(admin.describe_configs(&[ResourceSpecifier::Broker(0)], &options()))
        .expect("describe configs");
    let resource = configs[0].as_ref().expect("broker configs");
    let value = |name: &str| resource.get(name).and_then(|e| e.value.clone());
    assert_eq!(value("num.partitions").as_deref(), Some("1"), "{configs:?}");
    assert_eq!(value("log.retention.ms").as_deref(), Some("604800000"));
}

#[test]
fn rdkafka_delete_records_moves_the_log_start() {
    // Proves DeleteRecords: the returned low watermark, the watermarks and a read from
    // the beginning all move to the requested offset.
    let broker = Broker::start();
    produce(&broker, "trimmed", &client::records("none"), &[]);
    let admin = admin(&broker);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(4))
        .unwrap();
    let result = block_on(admin.delete_records(&tpl, &options())).expect("delete records");
    let p = result.find_partition("trimmed", 0).expect("partition 0");
    assert!(p.error().is_ok(), "{:?}", p.error());
    assert_eq!(p.offset(), Offset::Offset(4));
    let (low, high) = reader(&broker)
        .fetch_watermarks("trimmed", 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!((low, high), (4, 10));
    assert_eq!(consume(&broker, "trimmed", 1)[0].offset, 4);
}

#[test]
fn rdkafka_watermarks_and_offsets_for_times() {
    // Proves ListOffsets through librdkafka on 10 records in one batch: the watermarks
    // are 0 and 10, and a time between the create times of records 3 and 4 finds 4.
    let broker = Broker::start();
    produce(&broker, "listed", &client::records("none"), &[]);
    let c = reader(&broker);
    assert_eq!(c.fetch_watermarks("listed", 0, TIMEOUT).unwrap(), (0, 10));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        "listed",
        0,
        Offset::Offset(client::BASE_TIMESTAMP_MS + 3500),
    )
    .unwrap();
    let found = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("listed", 0).unwrap().offset(),
        Offset::Offset(4)
    );
}
