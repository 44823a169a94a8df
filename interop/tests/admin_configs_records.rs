//! librdkafka's admin client against the real 2-shard broker: DescribeConfigs of the
//! broker resource lists its configs with their sources, and DeleteRecords moves the log
//! start offset (End: up to the high watermark), which a consumer then starts from.

mod common;

use std::time::Duration;

use common::Broker;
use common::group::produce_values;
use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(10)))
}

#[test]
fn describe_broker_configs_lists_them_with_sources() {
    // Proves librdkafka's describe_configs of the broker resource gets the full list
    // under Kafka's names, read-only, with STATIC_BROKER for a flag and DEFAULT for the
    // rest; before the change the list was empty.
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    let admin = admin(&broker.bootstrap());
    let results = futures_lite::future::block_on(
        admin.describe_configs(&[ResourceSpecifier::Broker(0)], &opts()),
    )
    .unwrap();
    let resource = results.into_iter().next().unwrap().expect("broker configs");
    assert!(resource.entries.len() >= 25, "{:?}", resource.entries);
    let np = resource.get("num.partitions").expect("num.partitions");
    assert_eq!(np.value.as_deref(), Some("3"));
    assert_eq!(np.source, ConfigSource::StaticBroker);
    assert!(np.is_read_only);
    let seg = resource
        .get("log.segment.bytes")
        .expect("log.segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("1073741824"));
    assert_eq!(seg.source, ConfigSource::Default);
    assert!(seg.is_default);
}

#[test]
fn delete_records_moves_the_start_a_consumer_sees() {
    // Proves librdkafka's delete_records: partition 0 up to offset 4 and partition 1 up
    // to its end (Offset::End) answer the new low watermarks, and a consumer reading
    // from the beginning starts at them.
    let broker = Broker::start_with(&["--num-partitions", "2"]);
    let bootstrap = broker.bootstrap();
    produce_values(&bootstrap, "dr", 0, 40);
    let consumer = common::consumer(&bootstrap);
    let watermarks = |p: i32| {
        consumer
            .fetch_watermarks("dr", p, Duration::from_secs(10))
            .unwrap()
    };
    let (_, high0) = watermarks(0);
    let (_, high1) = watermarks(1);
    assert!(high0 > 4 && high1 > 0, "{high0} {high1}");

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("dr", 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset("dr", 1, Offset::End).unwrap();
    let admin = admin(&bootstrap);
    let result = futures_lite::future::block_on(admin.delete_records(&tpl, &opts())).unwrap();
    let mut answered: Vec<(i32, Offset)> = result
        .elements()
        .iter()
        .map(|e| {
            e.error().unwrap();
            (e.partition(), e.offset())
        })
        .collect();
    answered.sort_by_key(|(p, _)| *p);
    assert_eq!(
        answered,
        vec![(0, Offset::Offset(4)), (1, Offset::Offset(high1))]
    );
    assert_eq!(watermarks(0), (4, high0));
    assert_eq!(watermarks(1), (high1, high1));
}
