//! Produce, Fetch, ListOffsets and OffsetForLeaderEpoch over raw sockets against the
//! real 2-shard binary, with a topic whose partitions sit on both shards so every
//! request is split per owning shard and joined.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, Conn, batch, decode_records};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_string()))
}

fn create(conn: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn produce_req(topic: &str, parts: Vec<(i32, Bytes)>, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(
                    parts
                        .into_iter()
                        .map(|(p, b)| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(b))
                        })
                        .collect(),
                ),
        ])
}

fn fetch_req(topic: &str, parts: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, o)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*o)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ])
}

#[test]
fn produce_and_fetch_span_both_shards() {
    // Proves one Produce and one Fetch covering partitions on both shards are split and
    // joined correctly: every partition gets its own offsets and reads back exactly its
    // own records, in order, with per-partition errors for unknown partitions.
    let broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "spread", 4);
    let parts: Vec<(i32, Bytes)> = (0..4)
        .map(|p| {
            let recs: Vec<(String, String, i64)> = (0..3)
                .map(|i| (format!("k{p}-{i}"), format!("v{p}-{i}"), 1_000 + i))
                .collect();
            let refs: Vec<(&str, &str, i64)> = recs
                .iter()
                .map(|(k, v, t)| (k.as_str(), v.as_str(), *t))
                .collect();
            (p, batch(&refs, None))
        })
        .collect();
    let mut with_bad = parts.clone();
    with_bad.push((9, batch(&[("x", "y", 1)], None)));
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce_req("spread", with_bad, -1));
    let pr = &resp.responses[0].partition_responses;
    assert_eq!(pr.len(), 5);
    for r in &pr[..4] {
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(r.base_offset, 0);
    }
    assert_eq!(
        pr[4].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // Second batch goes after the first (acks=all: fetches serve only durable records).
    let resp: ProduceResponse = conn.call(
        ApiKey::Produce,
        9,
        &produce_req("spread", parts.clone(), -1),
    );
    assert!(
        resp.responses[0]
            .partition_responses
            .iter()
            .all(|r| r.base_offset == 3)
    );

    let resp: FetchResponse = conn.call(
        ApiKey::Fetch,
        12,
        &fetch_req("spread", &[(0, 0), (1, 0), (2, 0), (3, 0)], 0),
    );
    assert_eq!(resp.error_code, 0);
    let got = &resp.responses[0].partitions;
    assert_eq!(got.len(), 4);
    for (p, pd) in got.iter().enumerate() {
        assert_eq!(pd.partition_index, p as i32);
        assert_eq!(pd.error_code, 0);
        assert_eq!(pd.high_watermark, 6);
        let recs = decode_records(pd.records.as_ref().unwrap());
        assert_eq!(recs.len(), 6);
        for (i, (off, k, v, _)) in recs.iter().enumerate() {
            assert_eq!(*off, i as i64);
            assert_eq!(k, &format!("k{p}-{}", i % 3));
            assert_eq!(v, &format!("v{p}-{}", i % 3));
        }
    }

    // Fetch from the middle and past the end.
    let resp: FetchResponse = conn.call(
        ApiKey::Fetch,
        12,
        &fetch_req("spread", &[(1, 3), (2, 99)], 0),
    );
    let got = &resp.responses[0].partitions;
    assert_eq!(decode_records(got[0].records.as_ref().unwrap())[0].0, 3);
    assert_eq!(got[1].error_code, ResponseError::OffsetOutOfRange.code());
}

#[test]
fn list_offsets_and_leader_epochs() {
    // Proves ListOffsets answers earliest (-2), latest (-1), max timestamp (-3) and by
    // timestamp (first batch at or after it), and OffsetForLeaderEpoch ends epoch 0 at
    // the log end offset.
    let broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "times", 1);
    for (k, ts) in [("a", 1_000), ("b", 2_000), ("c", 3_000)] {
        let resp: ProduceResponse = conn.call(
            ApiKey::Produce,
            9,
            &produce_req("times", vec![(0, batch(&[(k, k, ts)], None))], -1),
        );
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    let lo = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("times"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(ts),
                    ]),
            ])
    };
    let mut ask = |ts: i64| -> (i16, i64, i64) {
        let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &lo(ts));
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(ask(-2), (0, 0, -1));
    assert_eq!(ask(-1), (0, 3, -1));
    assert_eq!(ask(-3), (0, 2, 3_000));
    assert_eq!(ask(1_500), (0, 1, 2_000));
    assert_eq!(ask(2_000), (0, 1, 2_000));
    assert_eq!(ask(9_999).1, -1);

    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("times"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0)
                        .with_current_leader_epoch(0),
                ]),
        ]);
    let resp: OffsetForLeaderEpochResponse = conn.call(ApiKey::OffsetForLeaderEpoch, 4, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 3));
}

#[test]
fn long_poll_wakes_on_produce() {
    // Proves a Fetch with max_wait_ms=20s on an empty partition on the other shard
    // returns with the record as soon as another connection produces it, not at the
    // deadline. Prints the wake-up latency.
    let broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "poll", 2);
    let addr = broker.addr;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut c = Conn::connect(addr);
        let sent = Instant::now();
        let resp: ProduceResponse = c.call(
            ApiKey::Produce,
            9,
            &produce_req("poll", vec![(1, batch(&[("k", "late", 5)], None))], 1),
        );
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        sent
    });
    let started = Instant::now();
    let resp: FetchResponse = conn.call(
        ApiKey::Fetch,
        12,
        &fetch_req("poll", &[(0, 0), (1, 0)], 20_000),
    );
    let returned = Instant::now();
    let sent = producer.join().unwrap();
    let recs: Vec<_> = resp.responses[0]
        .partitions
        .iter()
        .flat_map(|p| decode_records(p.records.as_ref().unwrap()))
        .collect();
    assert_eq!(recs.len(), 1, "the fetch returned with the produced record");
    assert_eq!(recs[0].2, "late");
    assert!(returned.duration_since(started) < Duration::from_secs(20));
    println!(
        "long poll woke {:?} after the produce was sent",
        returned.saturating_duration_since(sent)
    );
}

#[test]
fn incremental_fetch_session_sends_only_changes() {
    // Proves a full fetch at session epoch 0 opens a session, an incremental fetch with
    // no partitions listed returns only partitions that changed, and a wrong epoch is
    // refused with INVALID_FETCH_SESSION_EPOCH.
    let broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "sess", 2);
    let mut full = fetch_req("sess", &[(0, 0), (1, 0)], 0);
    full.session_id = 0;
    full.session_epoch = 0;
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &full);
    assert_ne!(resp.session_id, 0);
    assert_eq!(resp.responses[0].partitions.len(), 2);
    let sid = resp.session_id;

    let resp: ProduceResponse = conn.call(
        ApiKey::Produce,
        9,
        &produce_req("sess", vec![(1, batch(&[("k", "v", 5)], None))], -1),
    );
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let inc = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(sid)
        .with_session_epoch(1);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &inc);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        resp.responses[0].partitions.len(),
        1,
        "only the changed partition"
    );
    assert_eq!(resp.responses[0].partitions[0].partition_index, 1);

    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &inc);
    assert_eq!(
        resp.error_code,
        ResponseError::InvalidFetchSessionEpoch.code()
    );
}

#[test]
fn acks_zero_sends_no_response() {
    // Proves a Produce with acks=0 gets no response (the next response on the
    // connection answers the next request) while its records are still appended (a
    // waiting fetch gets them once flushed).
    let broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "fire", 1);
    let f = Conn::frame(
        ApiKey::Produce,
        9,
        500,
        &produce_req("fire", vec![(0, batch(&[("k", "v", 1)], None))], 0),
    );
    conn.send_raw(&f).unwrap();
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &fetch_req("fire", &[(0, 0)], 10_000));
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
    assert_eq!(decode_records(p.records.as_ref().unwrap()).len(), 1);
}

#[test]
fn idempotent_producer_dedupes_across_restart() {
    // Proves a retried idempotent batch gets its original offset instead of a second
    // copy, a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER, and the
    // producer state survives a clean restart (a retry after it is still deduped).
    let mut broker = Broker::start();
    let mut conn = broker.connect();
    create(&mut conn, "idem", 1);
    let init: InitProducerIdResponse = conn.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let first = batch(
        &[("a", "1", 1), ("b", "2", 1), ("c", "3", 1)],
        Some((pid, 0, 0)),
    );
    let second = batch(&[("d", "4", 1)], Some((pid, 0, 3)));
    let gap = batch(&[("e", "5", 1)], Some((pid, 0, 10)));
    let send = |conn: &mut Conn, b: &Bytes| -> (i16, i64) {
        let resp: ProduceResponse = conn.call(
            ApiKey::Produce,
            9,
            &produce_req("idem", vec![(0, b.clone())], -1),
        );
        let r = &resp.responses[0].partition_responses[0];
        (r.error_code, r.base_offset)
    };
    assert_eq!(send(&mut conn, &first), (0, 0));
    assert_eq!(send(&mut conn, &first), (0, 0), "retry deduped");
    assert_eq!(send(&mut conn, &second), (0, 3));
    assert_eq!(
        send(&mut conn, &gap).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    drop(conn);
    assert!(broker.stop().success());
    broker.restart();
    let mut conn = broker.connect();
    // The restarted broker opened the partition without recovery (clean shutdown mark).
    let deadline = Instant::now() + Duration::from_secs(10);
    let second_run = loop {
        let full = broker.log();
        // `idem` and the internal `__consumer_offsets`.
        let run = full.rfind("topics=2").map(|at| full[at..].to_string());
        if let Some(run) = run.filter(|r| r.contains("opened log")) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "restarted broker never opened the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(second_run.contains("clean=true"), "{second_run}");
    assert!(!second_run.contains("clean=false"), "{second_run}");
    assert_eq!(
        send(&mut conn, &second),
        (0, 3),
        "retry after restart deduped"
    );
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &fetch_req("idem", &[(0, 0)], 0));
    let recs = decode_records(resp.responses[0].partitions[0].records.as_ref().unwrap());
    let values: Vec<&str> = recs.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(values, vec!["1", "2", "3", "4"]);
}
