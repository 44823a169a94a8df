//! min.compaction.lag.ms and max.compaction.lag.ms on the real 2-shard binary over raw
//! Kafka requests: both are validated like Kafka's LogConfig at CreateTopics and
//! IncrementalAlterConfigs, DescribeConfigs reports them, and the background cleaner
//! leaves records younger than the min lag alone.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Broker, Conn, create_topic_with, produce_keyed, read_keyed};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const MIN_LAG: &str = "min.compaction.lag.ms";
const MAX_LAG: &str = "max.compaction.lag.ms";
const INVALID_CONFIG: i16 = 40;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// IncrementalAlterConfigs of one topic: (name, Some(value)) sets, (name, None) deletes.
fn alter(conn: &mut Conn, topic: &str, ops: &[(&str, Option<&str>)]) -> i16 {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(
                ops.iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(if v.is_some() { 0 } else { 1 })
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let resp: IncrementalAlterConfigsResponse = conn.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    resp.responses[0].error_code
}

/// DescribeConfigs of a topic: name -> (value, config source).
fn describe(conn: &mut Conn, topic: &str) -> BTreeMap<String, (String, i8)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic)),
    ]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0, "{r:?}");
    r.configs
        .iter()
        .map(|c| {
            let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), (v, c.config_source))
        })
        .collect()
}

fn lags(conn: &mut Conn, topic: &str) -> ((String, i8), (String, i8)) {
    let d = describe(conn, topic);
    (d[MIN_LAG].clone(), d[MAX_LAG].clone())
}

#[test]
fn lag_configs_are_validated_and_described() {
    // Proves Kafka's rules for the two lags: CreateTopics refuses a min lag above the max
    // lag, a negative min lag and a max lag below 1 with INVALID_CONFIG and creates
    // nothing; DescribeConfigs shows overrides and the defaults (0 and Long.MAX_VALUE);
    // IncrementalAlterConfigs refuses a min lag above the topic's max lag (either side
    // changed) and keeps the old values, accepts both raised together, and removing the
    // max lag override falls back to the default.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let bad = [
        vec![(MIN_LAG, "10000"), (MAX_LAG, "5000")],
        vec![(MIN_LAG, "-1")],
        vec![(MAX_LAG, "0")],
        vec![(MAX_LAG, "9223372036854775808")],
    ];
    for (i, configs) in bad.iter().enumerate() {
        let name = format!("bad-{i}");
        assert_eq!(
            create_topic_with(&mut conn, &name, 1, configs),
            INVALID_CONFIG,
            "{configs:?}"
        );
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(&name)),
        ]);
        let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req);
        assert_eq!(
            resp.results[0].error_code,
            ResponseError::UnknownTopicOrPartition.code(),
            "{name} was not created"
        );
    }
    assert_eq!(INVALID_CONFIG, ResponseError::InvalidConfig.code());

    assert_eq!(
        create_topic_with(&mut conn, "plain", 1, &[("cleanup.policy", "compact")]),
        0
    );
    assert_eq!(
        lags(&mut conn, "plain"),
        (("0".into(), 5), ("9223372036854775807".into(), 5))
    );
    let lagged = [(MIN_LAG, "5000"), (MAX_LAG, "5000")];
    assert_eq!(create_topic_with(&mut conn, "lagged", 1, &lagged), 0);
    assert_eq!(
        lags(&mut conn, "lagged"),
        (("5000".into(), 1), ("5000".into(), 1))
    );

    assert_eq!(
        alter(&mut conn, "lagged", &[(MIN_LAG, Some("5001"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut conn, "lagged", &[(MAX_LAG, Some("4999"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        lags(&mut conn, "lagged"),
        (("5000".into(), 1), ("5000".into(), 1)),
        "a refused change changes nothing"
    );
    assert_eq!(
        alter(
            &mut conn,
            "lagged",
            &[(MIN_LAG, Some("20000")), (MAX_LAG, Some("30000"))]
        ),
        0
    );
    assert_eq!(
        lags(&mut conn, "lagged"),
        (("20000".into(), 1), ("30000".into(), 1))
    );
    assert_eq!(alter(&mut conn, "lagged", &[(MAX_LAG, None)]), 0);
    assert_eq!(
        lags(&mut conn, "lagged"),
        (("20000".into(), 1), ("9223372036854775807".into(), 5))
    );
    assert_eq!(
        alter(&mut conn, "plain", &[(MAX_LAG, Some("1"))]),
        0,
        "min lag default 0 <= 1"
    );
}

const LAG_MS: i64 = 8_000;
const KEYS: usize = 10;
const VERSIONS: usize = 60;

#[test]
fn min_compaction_lag_keeps_recent_duplicates() {
    // Proves min.compaction.lag.ms in the background cleaner: two compacted topics with
    // small segments and a dirty ratio of 0.01 get the same records, all stamped with
    // the time the test starts; the one without a lag is compacted within a few cleaner
    // ticks (200 ms apart), while every read of the one with an 8 s lag that ends before
    // the lag has passed returns every record (duplicates included), over several ticks
    // after the first topic was compacted. Once the lag has passed it is compacted too,
    // not earlier, and the newest value of every key is the last one read.
    let broker = Broker::start_with(&["--log-cleaner-backoff-ms", "200"]);
    let mut conn = broker.connect();
    let base = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    assert_eq!(create_topic_with(&mut conn, "no-lag", 1, &base), 0);
    let lag = LAG_MS.to_string();
    let mut with_lag = base.to_vec();
    with_lag.push((MIN_LAG, &lag));
    assert_eq!(create_topic_with(&mut conn, "with-lag", 1, &with_lag), 0);

    let ts = now_ms();
    let started = Instant::now();
    for version in 0..VERSIONS {
        let records: Vec<(String, String)> = (0..KEYS)
            .map(|k| (format!("key-{k}"), format!("key-{k}-version-{version}")))
            .collect();
        produce_keyed(&mut conn, "no-lag", 0, &records, ts);
        produce_keyed(&mut conn, "with-lag", 0, &records, ts);
    }
    let produced = KEYS * VERSIONS;
    let compacted = |n: usize| n < produced / 3;

    // Reads of the lagged topic that ended before the lag passed see everything.
    let mut full_reads_after_other_compacted = 0;
    let mut other_compacted = false;
    let deadline = started + Duration::from_millis(LAG_MS as u64 + 20_000);
    let lagged = loop {
        let read = read_keyed(&mut conn, "with-lag", 0);
        let ended_ms = now_ms();
        if ended_ms < ts + LAG_MS {
            assert_eq!(read.len(), produced, "compacted before the lag passed");
            if other_compacted {
                full_reads_after_other_compacted += 1;
            }
        } else if compacted(read.len()) {
            break read;
        }
        if !other_compacted {
            other_compacted = compacted(read_keyed(&mut conn, "no-lag", 0).len());
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {} of {produced} records\n{}",
            read.len(),
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(other_compacted, "the topic without a lag was compacted");
    assert!(
        full_reads_after_other_compacted >= 5,
        "the machine was too slow to watch the lag hold: {full_reads_after_other_compacted} reads"
    );
    let mut newest: HashMap<&str, &str> = HashMap::new();
    for (_, k, v) in &lagged {
        newest.insert(k, v);
    }
    for k in 0..KEYS {
        let key = format!("key-{k}");
        let want = format!("key-{k}-version-{}", VERSIONS - 1);
        assert_eq!(newest.get(key.as_str()).copied(), Some(want.as_str()));
    }
    println!(
        "records left: {} of {produced}; full reads while the lag held, after the other topic was compacted: {full_reads_after_other_compacted}",
        lagged.len()
    );
}
