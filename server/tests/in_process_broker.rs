//! The in-process broker (`sluice_server::in_process`, which the request_path fuzz target
//! embeds): it serves Kafka requests on its own address, and the process embedding it
//! survives clients that close their connection while responses are still being written.

use std::io::Write;
use std::net::TcpStream;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
use sluice_testkit::Conn;

#[test]
fn embedding_process_survives_clients_that_vanish() {
    // Proves the in-process broker answers ApiVersions, and that a process whose SIGPIPE
    // disposition is the default (libFuzzer's main leaves it so; Rust's runtime, which
    // this test harness runs on, ignores it) is not killed when clients close their
    // connections with pipelined responses unread: this test resets SIGPIPE to the
    // default first, then 40 connections each send 32 Metadata requests and close at
    // once, so the shard writes responses to sockets whose peer reset them. Without the
    // broker ignoring SIGPIPE this test process dies of the signal.
    // SAFETY: signal(2) with SIG_DFL installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let dir = tempfile::tempdir().unwrap();
    let addr = sluice_server::in_process::start_one_shard(dir.path(), &[]).unwrap();

    let mut conn = Conn::connect(addr);
    let resp: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);

    let mut pipelined = Vec::new();
    for cid in 0..32 {
        pipelined.extend_from_slice(&Conn::frame(
            ApiKey::Metadata,
            12,
            cid,
            &MetadataRequest::default(),
        ));
    }
    for _ in 0..40 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&pipelined).unwrap();
        // Closed at once: the broker reads the requests after the close, and its second
        // response write meets the reset its first one caused.
        drop(stream);
    }

    let mut conn = Conn::connect(addr);
    let again: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(again.error_code, 0);
}
