//! Connection limits over real sockets against the real binary: memory held by idle
//! connections.

mod common;

use std::time::Duration;

use common::{Broker, Conn};
use kafka_protocol::messages::*;

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
