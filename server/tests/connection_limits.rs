//! Connection limits over real sockets against the real binary: memory held by idle
//! connections, connections.max.idle.ms, the request read deadline against a client that
//! dribbles bytes, max.connections and max.connections.per.ip, and queued.max.request.bytes
//! against frames that declare huge sizes.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, BrokerOptions, Conn, batch};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Connections held open by the idle-memory measurement.
const IDLE_CONNECTIONS: usize = 2000;

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: libc::pid_t) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: libc::pid_t, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB")
}

fn api_versions(conn: &mut Conn) -> i16 {
    let r: ApiVersionsResponse = conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    r.error_code
}

#[test]
fn idle_connections_hold_little_memory() {
    // Proves an idle connection holds no read buffer: opens 2,000 connections, makes one
    // request on each so each has read a frame, then measures the broker's resident
    // memory growth per connection (printed) and asserts it stays under 16 KiB, where a
    // 64 KiB read buffer kept per connection would cost more than 64 KiB each.
    let broker = Broker::start();
    let mut warm = broker.connect();
    assert_eq!(api_versions(&mut warm), 0);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(broker.pid());
    let mut conns = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        let mut c = broker.connect();
        assert_eq!(api_versions(&mut c), 0);
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(broker.pid());
    let per_conn_bytes = (after.saturating_sub(before) * 1024) / IDLE_CONNECTIONS as u64;
    println!(
        "idle connections: {IDLE_CONNECTIONS}, broker RSS {before} KiB -> {after} KiB, \
         {per_conn_bytes} bytes per connection"
    );
    broker.assert_running();
    assert_eq!(api_versions(&mut conns[0]), 0);
    assert!(
        per_conn_bytes < 16 * 1024,
        "{per_conn_bytes} bytes per idle connection"
    );
}

/// Sends ApiVersions and reads its answer; false when the broker closed the connection.
fn answers(conn: &mut Conn) -> bool {
    let frame = Conn::frame(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default());
    if conn.send_raw(&frame).is_err() {
        return false;
    }
    matches!(conn.read_frame(), Ok(Some(_)))
}

fn create_topic(conn: &mut Conn, topic: &str) {
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn produce_frame(topic: &str, records: Bytes, correlation_id: i32) -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    Conn::frame(ApiKey::Produce, 9, correlation_id, &req)
}

/// Lets the broker see the start-up probe connection of the test harness close, so it
/// no longer counts against a connection limit.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn dribbling_client_is_cut_off_at_the_read_deadline() {
    // Proves a client sending one byte every 200 ms of a frame it never finishes, and one
    // that sends part of a frame and stops, are each closed about
    // request.read.timeout.ms (1 s) after their first byte, while a complete
    // request sent in pieces within the deadline is answered and a bystander connection
    // keeps being served.
    let broker = Broker::start_with(&["--request-read-timeout-ms", "1000"]);
    let mut bystander = broker.connect();
    assert!(answers(&mut bystander));

    let frame = Conn::frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    let mut slow = broker.connect();
    for piece in frame.chunks(frame.len() / 3 + 1) {
        slow.send_raw(piece).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(matches!(slow.read_frame(), Ok(Some(_))), "slow but in time");

    let mut dribbler = broker.connect();
    dribbler
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A 300-byte frame, of which at most 30 bytes are sent.
    let mut bytes = 300u32.to_be_bytes().to_vec();
    bytes.resize(30, 0x11);
    let started = Instant::now();
    let mut closed_after = None;
    for b in &bytes {
        if dribbler.stream.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut one = [0u8; 1];
        match dribbler.stream.read(&mut one) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(_) => panic!("an answer to a frame never completed"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("dribbling connection still open after 6 s");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );

    // A client that sends part of a frame and then nothing is closed just as well.
    let mut stalled = broker.connect();
    stalled.send_raw(&bytes).unwrap();
    let stalled_at = Instant::now();
    assert!(
        stalled.closed_within(CLOSE_WAIT),
        "stalled connection still open"
    );
    let stalled_for = stalled_at.elapsed();
    assert!(
        stalled_for >= Duration::from_millis(900) && stalled_for < Duration::from_secs(4),
        "closed after {stalled_for:?}"
    );
    assert!(answers(&mut bystander));
    broker.assert_running();
    assert!(broker.log().contains("request.read.timeout.ms"));
}

#[test]
fn idle_connection_is_closed_after_connections_max_idle_ms() {
    // Proves a connection with no request in flight is closed about
    // connections.max.idle.ms (1 s) after its last response, while one making a request
    // every 300 ms stays open for 2.5 s, and one waiting 2 s for a long-polling Fetch is
    // not closed before its response arrives.
    let broker = Broker::start_with(&["--connections-max-idle-ms", "1000"]);
    let mut setup = broker.connect();
    create_topic(&mut setup, "quiet");

    let mut idle = broker.connect();
    assert!(answers(&mut idle));
    let answered = Instant::now();

    let mut busy = broker.connect();
    let busy_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < busy_until {
        assert!(answers(&mut busy), "a busy connection was closed");
        std::thread::sleep(Duration::from_millis(300));
    }

    let mut waiting = broker.connect();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(2000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("quiet")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let asked = Instant::now();
    let resp: FetchResponse = waiting.call(ApiKey::Fetch, 12, &fetch);
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "fetch did not wait"
    );

    // The idle connection was closed long ago; the read sees its EOF at once.
    assert!(idle.closed_within(CLOSE_WAIT), "idle connection still open");
    assert!(answered.elapsed() >= Duration::from_millis(900));
    broker.assert_running();
}

#[test]
fn connections_over_max_connections_per_ip_are_closed_at_once() {
    // Proves with max.connections.per.ip=3 the 4th connection from 127.0.0.1 is closed
    // right after accept (and logged) while the first three keep working, and that a
    // closed connection gives its place back.
    let broker = Broker::start_with(&["--max-connections-per-ip", "3"]);
    settle();
    let mut open: Vec<Conn> = (0..3).map(|_| broker.connect()).collect();
    for c in &mut open {
        assert!(answers(c));
    }
    let mut fourth = broker.connect();
    let refused = Instant::now();
    assert!(fourth.closed_within(CLOSE_WAIT), "4th connection kept open");
    assert!(refused.elapsed() < Duration::from_secs(2));
    for c in &mut open {
        assert!(answers(c), "an admitted connection was closed");
    }
    assert!(broker.log().contains("connection refused"));

    drop(open.pop());
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        let mut again = broker.connect();
        if answers(&mut again) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's place never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_max_connections_are_closed_at_once() {
    // Proves SLUICE_MAX_CONNECTIONS=2 caps the whole broker (over both shards): the 3rd
    // connection is closed right after accept while the first two keep working.
    let broker = Broker::launch(BrokerOptions::default().env(&[("SLUICE_MAX_CONNECTIONS", "2")]));
    settle();
    let mut open: Vec<Conn> = (0..2).map(|_| broker.connect()).collect();
    for c in &mut open {
        assert!(answers(c));
    }
    let mut third = broker.connect();
    assert!(third.closed_within(CLOSE_WAIT), "3rd connection kept open");
    for c in &mut open {
        assert!(answers(c), "an admitted connection was closed");
    }
}

/// Virtual memory size of a process in KiB: what `reserve` of a declared frame grows.
fn vm_size_kib(pid: libc::pid_t) -> u64 {
    status_kib(pid, "VmSize:")
}

#[test]
fn huge_declared_frames_reserve_no_more_than_the_budget() {
    // Proves 20 connections each declaring a 100 MB frame (and sending nothing more)
    // make the broker reserve at most its queued.max.request.bytes default (512 MiB),
    // not 2 GB, by its virtual size, while other connections are served.
    let broker = Broker::start();
    let mut bystander = broker.connect();
    assert!(answers(&mut bystander));
    let before = vm_size_kib(broker.pid());
    let mut hogs = Vec::new();
    for _ in 0..20 {
        let mut c = broker.connect();
        c.send_raw(&100_000_000u32.to_be_bytes()).unwrap();
        hogs.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(answers(&mut bystander));
    let grown_kib = vm_size_kib(broker.pid()).saturating_sub(before);
    println!("20 declared 100 MB frames grew the broker's virtual size by {grown_kib} KiB");
    assert!(grown_kib < 700 * 1024, "virtual size grew {grown_kib} KiB");
    broker.assert_running();
}

#[test]
fn frames_wait_for_the_budget_and_larger_ones_are_refused() {
    // Proves with one shard and queued.max.request.bytes=1,000,000: a frame larger than
    // the budget closes its connection (logged); a 500 KB Produce is not read while
    // another connection's 600 KB frame holds the budget, and is answered once that
    // connection goes away; small requests are served meanwhile.
    let broker = Broker::launch(
        BrokerOptions::default()
            .cores(1)
            .args(&["--queued-max-request-bytes", "1000000"]),
    );
    let mut small = broker.connect();
    create_topic(&mut small, "budget");

    let mut too_big = broker.connect();
    too_big.send_raw(&2_000_000u32.to_be_bytes()).unwrap();
    assert!(
        too_big.closed_within(CLOSE_WAIT),
        "frame above the budget kept"
    );
    assert!(broker.log().contains("queued.max.request.bytes"));

    let mut holder = broker.connect();
    let mut start = 600_000u32.to_be_bytes().to_vec();
    start.extend_from_slice(&[0u8; 10]);
    holder.send_raw(&start).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let value = "v".repeat(500_000);
    let frame = produce_frame("budget", batch(&[("k", &value, 1)], None), 42);
    let mut producer = broker.connect();
    let mut writer = producer.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&frame).is_ok());
    producer
        .stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut size = [0u8; 4];
    let early = producer.stream.read(&mut size);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut),
        "answered while the budget was held: {early:?}"
    );
    assert!(answers(&mut small), "small request not served meanwhile");

    drop(holder);
    producer
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let resp = producer.read_frame().unwrap().expect("producer closed");
    let resp: ProduceResponse = Conn::parse(ApiKey::Produce, 9, 42, resp);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert!(sender.join().unwrap());
    broker.assert_running();
}
