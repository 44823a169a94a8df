//! Fuzz target: arbitrary request frames through the whole request path of a real
//! broker — framing, decoding, the handlers (groups, topics, logs on disk), response
//! encoding — not only the decoders. One one-shard broker runs inside this process
//! (`sluice_server::in_process`) on a temporary data directory for the whole run, so its
//! state (topics, groups, logs) grows from input to input as it would with real clients.
//!
//! An input is one or more request bodies (header and body, no size prefix: the files of
//! `net/tests/golden` are seeds as they are), separated by `FRAME_SEPARATOR`, at most
//! `FRAMES_MAX` of them. They are sent framed, back to back, on one loopback connection,
//! followed by an ApiVersions v0 request with the id `SENTINEL_CORRELATION_ID`; then the
//! client half-closes and reads until the broker closes or `READ_DEADLINE` passes (long
//! polls may outlast it). Closing the connection on a bad frame is legitimate. A crash is:
//! - any panic, on the broker's shard too (libFuzzer's panic hook aborts the process);
//! - a response whose correlation id does not follow request order (each response
//!   answers the next request that is owed one; acks=0 produces are owed none);
//! - a response to a request our decoder accepts that kafka-protocol cannot decode at
//!   that request's version;
//! - a broker that then does not answer ApiVersions on a fresh connection within
//!   `ALIVE_DEADLINE` (dead or half-alive).
//!
//! The broker's state carries over between inputs, so a crash may need the inputs before
//! it: rerun the whole corpus directory rather than the single artifact if it does not
//! reproduce alone.

#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_net::decode_request;
use sluice_net::kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use sluice_net::kafka_protocol::protocol::Decodable;

/// Separates the request bodies of one input.
const FRAME_SEPARATOR: &[u8] = b"#FRAME#";
/// Requests sent per input, the sentinel not counted.
const FRAMES_MAX: usize = 8;
/// Correlation id of the ApiVersions request that follows the fuzzed ones.
const SENTINEL_CORRELATION_ID: i32 = 0x5e47_1ce1;
/// How long one input may read responses before the connection is dropped.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// How long a fresh connection may wait for ApiVersions before the broker counts as dead
/// (then it is asked once more, to report whether it was only stalled).
const ALIVE_DEADLINE: Duration = Duration::from_secs(10);
/// Largest response frame accepted from the broker; the inputs are small, so anything
/// larger is a bug.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// The in-process broker, started by the first input.
fn broker() -> SocketAddr {
    static BROKER: OnceLock<SocketAddr> = OnceLock::new();
    *BROKER.get_or_init(|| {
        // Kept for the whole run: the broker's logs live here until the process ends.
        let dir = Box::leak(Box::new(
            tempfile::Builder::new()
                .prefix("sluice-fuzz-")
                .tempdir()
                .expect("temporary data directory"),
        ));
        sluice_server::in_process::start_one_shard(dir.path(), &[])
            .expect("start the in-process broker")
    })
}

/// A request frame: size prefix, then `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// ApiVersions v0 with `correlation_id`, framed (header v1 with a null client id).
fn api_versions_v0(correlation_id: i32) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(0);
    body.put_i32(correlation_id);
    body.put_i16(-1);
    framed(&body)
}

/// Reads one response frame; `None` when the broker closed the connection or `deadline`
/// passed.
fn read_frame(stream: &mut TcpStream, deadline: Instant) -> Option<Bytes> {
    let mut size = [0u8; 4];
    read_exact_until(stream, &mut size, deadline)?;
    let size = i32::from_be_bytes(size);
    assert!(
        (4..=RESPONSE_BYTES_MAX as i32).contains(&size),
        "response frame of {size} bytes"
    );
    let mut body = vec![0u8; size as usize];
    read_exact_until(stream, &mut body, deadline)?;
    Some(Bytes::from(body))
}

fn read_exact_until(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Option<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return None,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(())
}

/// One request sent: its correlation id and, when our decoder accepts it, what its
/// response must decode as.
struct Sent {
    correlation_id: i32,
    decoded_as: Option<(ApiKey, i16)>,
}

fn sent(body: &[u8]) -> Sent {
    let correlation_id = match body.get(4..8) {
        Some(id) => i32::from_be_bytes(id.try_into().expect("four bytes")),
        None => i32::MIN,
    };
    let decoded_as = decode_request(Bytes::copy_from_slice(body))
        .ok()
        .map(|r| (r.api_key, r.api_version));
    Sent {
        correlation_id,
        decoded_as,
    }
}

/// Checks that `response` decodes as the response of `api_key` at `version`.
fn check_response_decodes(response: &Bytes, api_key: ApiKey, version: i16) {
    let mut buf = response.clone();
    let header_version = api_key.response_header_version(version);
    if let Err(e) = ResponseHeader::decode(&mut buf, header_version) {
        panic!("{api_key:?} v{version}: response header v{header_version} does not decode: {e}");
    }
    if let Err(e) = ResponseKind::decode(api_key, &mut buf, version) {
        panic!(
            "{api_key:?} v{version}: response does not decode: {e}\nresponse: {:02x?}",
            &response[..response.len().min(256)]
        );
    }
}

/// Whether the broker answers ApiVersions on a fresh connection.
fn alive(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + ALIVE_DEADLINE;
    let mut stream =
        TcpStream::connect_timeout(&addr, ALIVE_DEADLINE).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(&api_versions_v0(7))
        .map_err(|e| format!("write: {e}"))?;
    let frame = read_frame(&mut stream, deadline).ok_or("no ApiVersions response")?;
    let correlation_id = (&frame[..]).get_i32();
    if correlation_id != 7 {
        return Err(format!(
            "ApiVersions answered with correlation id {correlation_id}"
        ));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let addr = broker();
    let bodies: Vec<&[u8]> = split_bodies(data);
    let mut requests: Vec<Sent> = bodies.iter().map(|b| sent(b)).collect();
    requests.push(Sent {
        correlation_id: SENTINEL_CORRELATION_ID,
        decoded_as: Some((ApiKey::ApiVersions, 0)),
    });

    let mut stream = TcpStream::connect(addr).expect("connect to the in-process broker");
    let _ = stream.set_nodelay(true);
    let mut out = Vec::new();
    for body in &bodies {
        out.extend_from_slice(&framed(body));
    }
    out.extend_from_slice(&api_versions_v0(SENTINEL_CORRELATION_ID));
    // The broker may close before reading everything (a bad frame): a failed write is fine.
    if stream.write_all(&out).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
    }

    let deadline = Instant::now() + READ_DEADLINE;
    let mut next = 0;
    while let Some(response) = read_frame(&mut stream, deadline) {
        let correlation_id = (&response[..]).get_i32();
        // Responses come in request order; requests owed none (acks=0) are skipped.
        let Some(at) = requests[next..]
            .iter()
            .position(|r| r.correlation_id == correlation_id)
        else {
            let sent: Vec<i32> = requests.iter().map(|r| r.correlation_id).collect();
            panic!(
                "response with correlation id {correlation_id} out of order: sent {sent:?}, \
                 {next} answered before"
            );
        };
        let request = &requests[next + at];
        if let Some((api_key, version)) = request.decoded_as {
            check_response_decodes(&response, api_key, version);
        }
        next += at + 1;
    }
    drop(stream);

    if let Err(e) = alive(addr) {
        // Tell a stall (answers later) from a dead or half-alive broker (never answers).
        let since = Instant::now();
        let later = match alive(addr) {
            Ok(()) => format!("answered {:?} later", since.elapsed()),
            Err(again) => format!("still not after {:?}: {again}", since.elapsed()),
        };
        panic!("the broker stopped answering after this input: {e}; {later}");
    }
});

fn split_bodies(data: &[u8]) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    let mut rest = data;
    while bodies.len() + 1 < FRAMES_MAX {
        match find(rest, FRAME_SEPARATOR) {
            Some(at) => {
                bodies.push(&rest[..at]);
                rest = &rest[at + FRAME_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    bodies.push(rest);
    bodies
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
