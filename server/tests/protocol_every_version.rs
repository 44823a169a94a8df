//! Every api key and version the broker advertises in ApiVersions, asked with random field
//! values: each request gets a response frame with its correlation id that kafka-protocol
//! decodes at that version, and the connection stays open (ApiVersions on it is answered
//! next). Bodies come from sluice-net's random generator (`random_request_body`) and are
//! encoded by kafka-protocol; Produce v0-v2, which kafka-protocol no longer encodes, are
//! encoded here by hand. The other versions Kafka 4.0 removed (KIP-896), which the broker
//! serves for old clients, have no kafka-protocol encoder to draw from: they are listed in
//! `REMOVED_IN_KAFKA_4`, checked to be exactly the advertised versions kafka-protocol cannot
//! encode, and asked with hand-built Kafka 3.9 layouts in `protocol_old_clients.rs`.
//! Waits a client chooses are bounded so no request legitimately
//! outlasts the read timeout: Fetch max_wait_ms, Produce timeout_ms and acks (acks=0 is
//! owed no response), JoinGroup rebalance_timeout_ms, the admin timeouts.

mod common;

use std::io::Read;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Broker, Conn};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_net::{RequestBody, random_request_body};

/// Random bodies per advertised (api key, version).
const SEEDS_PER_VERSION: u64 = 8;
/// How long one response may take; every wait a request can ask for is bounded below it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Advertised versions older than kafka-protocol's ranges (Produce v0-v2 excepted, built
/// here by hand): their requests are built by hand in `protocol_old_clients.rs`.
const REMOVED_IN_KAFKA_4: &[(ApiKey, i16)] = &[
    (ApiKey::Fetch, 0),
    (ApiKey::Fetch, 1),
    (ApiKey::Fetch, 2),
    (ApiKey::Fetch, 3),
    (ApiKey::ListOffsets, 0),
    (ApiKey::OffsetCommit, 0),
    (ApiKey::OffsetCommit, 1),
    (ApiKey::OffsetFetch, 0),
    (ApiKey::OffsetForLeaderEpoch, 0),
    (ApiKey::OffsetForLeaderEpoch, 1),
    (ApiKey::CreateTopics, 0),
    (ApiKey::CreateTopics, 1),
    (ApiKey::DeleteTopics, 0),
    (ApiKey::DescribeConfigs, 0),
];

/// Bounds the waits a client may ask for, keeping every other field as drawn.
fn bound_waits(body: &mut RequestBody) {
    match body {
        RequestBody::Fetch(r) => r.max_wait_ms = r.max_wait_ms.clamp(0, 100),
        RequestBody::Produce(r) => {
            // acks=0 is owed no response; the ApiVersions check below would read none.
            if r.acks == 0 {
                r.acks = 1;
            }
            r.timeout_ms = r.timeout_ms.clamp(0, 1_000);
        }
        RequestBody::JoinGroup(r) => {
            r.rebalance_timeout_ms = r.rebalance_timeout_ms.clamp(-1, 1_000);
        }
        RequestBody::CreateTopics(r) => r.timeout_ms = r.timeout_ms.clamp(0, 1_000),
        RequestBody::DeleteTopics(r) => r.timeout_ms = r.timeout_ms.clamp(0, 1_000),
        RequestBody::CreatePartitions(r) => r.timeout_ms = r.timeout_ms.clamp(0, 1_000),
        RequestBody::DeleteRecords(r) => r.timeout_ms = r.timeout_ms.clamp(0, 1_000),
        RequestBody::ElectLeaders(r) => r.timeout_ms = r.timeout_ms.clamp(0, 1_000),
        _ => {}
    }
}

/// A framed request (size prefix included): header for `api_key` at `version`, then `body`.
fn frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    buf.put_slice(body);
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// A Produce v0-v2 body (the layout kafka-protocol dropped): acks, timeout, then topics of
/// partitions with a message set, from `seed`.
fn produce_legacy_body(seed: u64) -> Vec<u8> {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut b = BytesMut::new();
    b.put_i16([-1, 1][(next() % 2) as usize]);
    b.put_i32((next() % 1_000) as i32);
    let topics = next() % 3;
    b.put_i32(topics as i32);
    for t in 0..topics {
        let name = format!("legacy-{t}");
        b.put_i16(name.len() as i16);
        b.put_slice(name.as_bytes());
        let partitions = next() % 3;
        b.put_i32(partitions as i32);
        for p in 0..partitions {
            b.put_i32(p as i32);
            let set: Vec<u8> = (0..next() % 24).map(|_| next() as u8).collect();
            b.put_i32(set.len() as i32);
            b.put_slice(&set);
        }
    }
    b.to_vec()
}

/// The encoded body of one random request, or why there is none.
fn random_body(api_key: ApiKey, version: i16, seed: u64) -> Result<Vec<u8>, String> {
    if api_key == ApiKey::Produce && version <= 2 {
        return Ok(produce_legacy_body(seed));
    }
    let mut body = random_request_body(api_key, version, seed)
        .ok_or_else(|| format!("no random body for {api_key:?} v{version}"))?;
    bound_waits(&mut body);
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version)
        .map_err(|e| format!("{api_key:?} v{version} seed {seed}: {e}"))?;
    Ok(buf.to_vec())
}

/// Reads one response frame: `None` when the connection closed or timed out.
fn read_frame(conn: &mut Conn) -> Result<Bytes, String> {
    conn.stream
        .set_read_timeout(Some(RESPONSE_TIMEOUT))
        .unwrap();
    let mut size = [0u8; 4];
    conn.stream
        .read_exact(&mut size)
        .map_err(|e| format!("no response ({e})"))?;
    let size = i32::from_be_bytes(size);
    if !(4..=64 << 20).contains(&size) {
        return Err(format!("response frame of {size} bytes"));
    }
    let mut body = vec![0u8; size as usize];
    conn.stream
        .read_exact(&mut body)
        .map_err(|e| format!("response cut short ({e})"))?;
    Ok(Bytes::from(body))
}

/// Checks that `response` answers `correlation_id` and decodes as `api_key` at `version`
/// with nothing left over.
fn check_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: Bytes,
) -> Result<(), String> {
    let mut buf = response;
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| format!("response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response correlation id {} for request {correlation_id}",
            header.correlation_id
        ));
    }
    if api_key == ApiKey::Produce && version <= 2 {
        skip_produce_legacy_response(&mut buf, version)
            .ok_or("Produce v0-v2 response does not decode")?;
    } else {
        ResponseKind::decode(api_key, &mut buf, version)
            .map_err(|e| format!("response does not decode: {e}"))?;
    }
    if buf.has_remaining() {
        return Err(format!("{} bytes after the response", buf.remaining()));
    }
    Ok(())
}

/// Reads past a Produce v0-v2 response body (the layout kafka-protocol dropped): topics
/// of partitions with error code and base offset, log append time from v2, throttle time
/// from v1. `None` if it is cut short.
fn skip_produce_legacy_response(buf: &mut Bytes, version: i16) -> Option<()> {
    fn take(buf: &mut Bytes, n: usize) -> Option<()> {
        (buf.remaining() >= n).then(|| buf.advance(n))
    }
    fn count(buf: &mut Bytes) -> Option<usize> {
        (buf.remaining() >= 4)
            .then(|| buf.get_i32())
            .and_then(|n| usize::try_from(n).ok())
    }
    for _ in 0..count(buf)? {
        let name_len = (buf.remaining() >= 2).then(|| buf.get_i16())?;
        take(buf, usize::try_from(name_len).ok()?)?;
        for _ in 0..count(buf)? {
            // partition index, error code, base offset, then log append time from v2.
            take(buf, 4 + 2 + 8 + if version >= 2 { 8 } else { 0 })?;
        }
    }
    if version >= 1 {
        take(buf, 4)?;
    }
    Some(())
}

/// Sends one random request on `conn`, then ApiVersions, and checks both answers.
fn ask(
    conn: &mut Conn,
    api_key: ApiKey,
    version: i16,
    seed: u64,
    correlation_id: i32,
) -> Result<(), String> {
    let body = random_body(api_key, version, seed)?;
    conn.send_raw(&frame(api_key, version, correlation_id, &body))
        .map_err(|e| format!("send: {e}"))?;
    let response = read_frame(conn)?;
    check_response(api_key, version, correlation_id, response)?;
    let mut probe = BytesMut::new();
    ApiVersionsRequest::default().encode(&mut probe, 0).unwrap();
    conn.send_raw(&frame(ApiKey::ApiVersions, 0, correlation_id + 1, &probe))
        .map_err(|e| format!("send ApiVersions after it: {e}"))?;
    let response = read_frame(conn).map_err(|e| format!("ApiVersions after it: {e}"))?;
    check_response(ApiKey::ApiVersions, 0, correlation_id + 1, response)
        .map_err(|e| format!("ApiVersions after it: {e}"))
}

#[test]
fn every_advertised_version_answers_random_requests() {
    // Proves that no request the broker says it serves closes the connection or goes
    // unanswered: for each (api key, version) of its ApiVersions v3 response, eight
    // requests with random field values (seeded, so a failure names its seed) each get a
    // response that kafka-protocol decodes at that version with their correlation id,
    // followed on the same connection by an ApiVersions response. Every failure is
    // collected, then all are listed.
    let broker = Broker::start();
    let mut conn = broker.connect();
    let advertised: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(advertised.error_code, 0);
    assert!(advertised.api_keys.len() > 10, "{advertised:?}");

    let mut failures = Vec::new();
    let mut without_encoder = Vec::new();
    let mut asked = 0;
    let mut correlation_id = 100;
    for range in &advertised.api_keys {
        let api_key = ApiKey::try_from(range.api_key)
            .unwrap_or_else(|()| panic!("advertised api key {} is not Kafka's", range.api_key));
        for version in range.min_version..=range.max_version {
            let legacy_produce = api_key == ApiKey::Produce && version <= 2;
            if version < api_key.valid_versions().min && !legacy_produce {
                without_encoder.push((api_key, version));
                continue;
            }
            for s in 0..SEEDS_PER_VERSION {
                let seed = (range.api_key as u64) << 32 | (version as u64) << 16 | s;
                correlation_id += 2;
                asked += 1;
                if let Err(e) = ask(&mut conn, api_key, version, seed, correlation_id) {
                    failures.push(format!("{api_key:?} v{version} seed {seed:#x}: {e}"));
                    // The connection may be closed or out of step: start a new one.
                    conn = broker.connect();
                }
            }
        }
    }
    broker.assert_running();
    without_encoder.sort_by_key(|(k, v)| (*k as i16, *v));
    let mut expected = REMOVED_IN_KAFKA_4.to_vec();
    expected.sort_by_key(|(k, v)| (*k as i16, *v));
    assert_eq!(
        without_encoder, expected,
        "advertised versions kafka-protocol cannot encode"
    );
    assert!(
        failures.is_empty(),
        "{} of {asked} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
