//! One client connection, on the shard that accepted it: admits it against
//! max.connections and max.connections.per.ip (counted on shard 0), reads frames, decodes
//! each request with net's bounded decoders, dispatches it as its own task, and writes the
//! responses strictly in request order while later requests are already being handled
//! (pipelining). At most `PIPELINE_MAX` requests are in flight per connection; beyond
//! that the reader stops reading (backpressure). A frame that cannot be a request closes
//! the connection after the responses already owed are written.
//!
//! Memory: between requests a connection holds no read buffer; it reads into its shard's
//! scratch and keeps only the bytes it got. Once a frame's size is known, the whole frame
//! is reserved from the shard's share of queued.max.request.bytes before more of it is
//! read (the connection waits while the share is used up), and only that frame is read
//! into a buffer of its exact size. So memory held by requests being read is bounded by
//! the share plus one scratch read per connection, whatever sizes clients declare.
//!
//! Time: a connection with no request in flight closes after connections.max.idle.ms
//! without a read or write; a frame must be complete within request.read.timeout.ms of
//! its first byte (time spent waiting for the budget excepted), so a client dribbling
//! bytes cannot hold a connection and its reservation forever.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::sync::Permit;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use sluice_net::{DecodeError, decode_request, frame_size, split_frame};
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::connection_limits::{ADMISSION_SHARD, READ_CHUNK};
use crate::handlers::{self, ConnState, Outcome};
use crate::mesh::{Admission, ShardRequest};
use crate::shard::Shard;

/// Requests decoded but not yet answered, per connection.
const PIPELINE_MAX: usize = 64;
/// When the connection last read or wrote, and how many requests await their response.
struct Activity {
    last: Cell<Instant>,
    in_flight: Cell<usize>,
}

impl Activity {
    fn touch(&self) {
        self.last.set(Instant::now());
    }
}

/// Why the reader stopped.
enum ReadEnd {
    /// The client closed its side, or the socket failed.
    Closed,
    /// connections.max.idle.ms passed with no request in flight.
    Idle,
    /// A frame was not complete within request.read.timeout.ms of its first byte.
    Deadline,
}

/// Admits the connection (when a connection limit is configured), serves it, and gives
/// its admission back when it closes. A refused connection is closed at once, as Kafka
/// does.
pub async fn admit_and_serve(shard: Rc<Shard>, stream: TcpStream, conn: u64) {
    let limited =
        shard.args.max_connections < i32::MAX || shard.args.max_connections_per_ip < i32::MAX;
    if !limited {
        return serve(shard, stream, conn).await;
    }
    let Ok(peer) = stream.peer_addr() else {
        debug!(shard = shard.id.0, conn, "peer gone before admission");
        return;
    };
    let ip = peer.ip();
    match shard
        .ask(ADMISSION_SHARD, |reply| ShardRequest::AdmitConnection {
            ip,
            reply,
        })
        .await
    {
        Ok(Admission::Admitted) => {}
        Ok(refused) => {
            info!(
                shard = shard.id.0,
                conn,
                peer = %peer,
                reason = ?refused,
                max_connections = shard.args.max_connections,
                max_connections_per_ip = shard.args.max_connections_per_ip,
                "connection refused"
            );
            return;
        }
        Err(e) => {
            warn!(shard = shard.id.0, conn, peer = %peer, error = %e, "connection not admitted");
            return;
        }
    }
    serve(shard.clone(), stream, conn).await;
    // Only awaits while the admission shard's inbox is full; the reply is not needed.
    let _ = shard
        .send(ADMISSION_SHARD, |reply| ShardRequest::ReleaseConnection {
            ip,
            reply,
        })
        .await;
}

/// Reads into the shard's scratch and appends what arrived to `buf`, which a connection
/// between requests keeps empty and unallocated.
async fn read_into_scratch(
    shard: &Shard,
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    futures_lite::future::poll_fn(|cx| {
        // The scratch is lent only within this poll: glommio reads a socket with a
        // plain recv once it is readable and keeps no buffer across polls.
        let mut scratch = shard.connections.scratch.borrow_mut();
        match Pin::new(&mut *rd).poll_read(cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => {
                buf.extend_from_slice(&scratch[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
    .await
}

/// Waits for the first bytes of the next request, closing after connections.max.idle.ms
/// of no reads or writes while no request is in flight.
async fn read_idle(
    shard: &Shard,
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    activity: &Activity,
) -> Result<(), ReadEnd> {
    let idle_max = Duration::from_millis(shard.args.connections_max_idle_ms);
    loop {
        let now = Instant::now();
        let wake = if activity.in_flight.get() > 0 {
            // The writer touches `last` when the response goes out; look again then.
            now + idle_max
        } else {
            activity.last.get() + idle_max
        };
        if wake <= now {
            return Err(ReadEnd::Idle);
        }
        let read = read_into_scratch(shard, rd, buf);
        let timer = async {
            glommio::timer::sleep(wake - now).await;
            None
        };
        match futures_lite::future::or(async { Some(read.await) }, timer).await {
            Some(Ok(0)) => return Err(ReadEnd::Closed),
            Some(Ok(_)) => {
                activity.touch();
                return Ok(());
            }
            Some(Err(e)) => {
                debug!(error = %e, "read failed");
                return Err(ReadEnd::Closed);
            }
            None => {}
        }
    }
}

/// Reads more of the frame at the start of `buf`, at most up to its end, before `deadline`.
async fn read_frame_part(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    frame_bytes: usize,
    deadline: Instant,
) -> Result<(), ReadEnd> {
    let len = buf.len();
    let want = frame_bytes.saturating_sub(len).clamp(1, READ_CHUNK);
    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
        return Err(ReadEnd::Deadline);
    };
    buf.resize(len + want, 0);
    let read = rd.read(&mut buf[len..]);
    let timer = async {
        glommio::timer::sleep(left).await;
        None
    };
    let got = futures_lite::future::or(async { Some(read.await) }, timer).await;
    match got {
        Some(Ok(0)) => Err(ReadEnd::Closed),
        Some(Ok(n)) => {
            buf.truncate(len + n);
            Ok(())
        }
        Some(Err(e)) => {
            debug!(error = %e, "read failed");
            Err(ReadEnd::Closed)
        }
        None => Err(ReadEnd::Deadline),
    }
}

fn log_end(end: ReadEnd, read_timeout: Duration) {
    match end {
        ReadEnd::Closed => {}
        ReadEnd::Idle => debug!("idle past connections.max.idle.ms; closing"),
        ReadEnd::Deadline => warn!(
            request_read_timeout_ms = read_timeout.as_millis() as u64,
            "request not complete within request.read.timeout.ms of its first byte; closing"
        ),
    }
}

/// Writes each request's response in request order as its task finishes; stops at the
/// first failed write or at a request that closes the connection.
async fn write_responses(
    rx: local_channel::LocalReceiver<JoinHandle<Outcome>>,
    mut wr: futures_lite::io::WriteHalf<TcpStream>,
    written: Rc<Activity>,
) {
    while let Some(pending) = rx.recv().await {
        let outcome = pending.await;
        // Written or not, this request no longer holds the connection open.
        written.in_flight.set(written.in_flight.get() - 1);
        written.touch();
        let chunks = match outcome {
            Some(Outcome::Respond(frame)) => vec![frame],
            Some(Outcome::RespondChunks(chunks)) => chunks,
            Some(Outcome::Silent) => Vec::new(),
            Some(Outcome::Close) | None => break,
        };
        let mut failed = false;
        for chunk in chunks {
            if let Err(e) = wr.write_all(&chunk).await {
                debug!(error = %e, "write failed");
                failed = true;
                break;
            }
        }
        if failed {
            break;
        }
        written.touch();
    }
    let _ = wr.close().await;
}

/// Decodes one frame and starts its handler as a task of its own; `None` when the frame
/// is not a request we can answer and the connection must close.
fn start_request(
    shard: &Rc<Shard>,
    state: &Rc<ConnState>,
    frame: Bytes,
) -> Option<JoinHandle<Outcome>> {
    match decode_request(frame) {
        Ok(req) => {
            let cid = req.header.correlation_id;
            let handler = handlers::dispatch(shard.clone(), req, state.clone())
                .instrument(debug_span!("req", correlation_id = cid));
            Some(glommio::spawn_local(handler).detach())
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            api_version,
        }) => {
            debug!(api_version, "ApiVersions above our range; v0 fallback");
            let out = handlers::api_versions::unsupported_version(correlation_id);
            Some(glommio::spawn_local(async move { out }).detach())
        }
        Err(e) => {
            warn!(error = %e, "undecodable request; closing");
            None
        }
    }
}

/// Reserves a frame whose size prefix says `size` from the shard's share of
/// queued.max.request.bytes, waiting while the share is used up; returns the reservation
/// (none when there is no budget) and how long it waited. `None` closes the connection:
/// the frame is larger than the whole share, or the budget was closed.
async fn reserve_frame(shard: &Shard, size: u32) -> Option<(Option<Permit<'_>>, Duration)> {
    let frame_bytes = 4 + u64::from(size);
    let Some(budget) = &shard.connections.budget else {
        return Some((None, Duration::ZERO));
    };
    let share = shard.connections.budget_bytes_max;
    if frame_bytes > share {
        warn!(
            size,
            share, "request larger than this shard's share of queued.max.request.bytes; closing"
        );
        return None;
    }
    let waiting = Instant::now();
    let permit = budget.acquire_permit(frame_bytes).await.ok()?;
    Some((Some(permit), waiting.elapsed()))
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, conn: u64) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    let client_host = peer_addr
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let span = debug_span!("conn", shard = shard.id.0, conn, peer = %peer);
    let state = Rc::new(ConnState {
        id: conn,
        client_host,
        fetch_sessions: Default::default(),
        produce_gate: glommio::sync::Semaphore::new(1),
    });
    let activity = Rc::new(Activity {
        last: Cell::new(Instant::now()),
        in_flight: Cell::new(0),
    });
    async move {
        debug!("connection opened");
        let (mut rd, wr) = futures_lite::io::split(stream);
        let (tx, rx) = local_channel::new_bounded::<JoinHandle<Outcome>>(PIPELINE_MAX);
        let written = activity.clone();
        let writer = glommio::spawn_local(write_responses(rx, wr, written).in_current_span());
        let size_max = shard.args.socket_request_max_bytes;
        let read_timeout = Duration::from_millis(shard.args.request_read_timeout_ms);
        let mut buf = BytesMut::new();
        // The frame in progress: whether its size is known and reserved, its share of
        // the budget, and when it must be complete.
        let mut sized = false;
        let mut permit = None;
        let mut deadline: Option<Instant> = None;
        'conn: loop {
            loop {
                let frame = match split_frame(&mut buf, size_max) {
                    Ok(Some(frame)) => {
                        // Read in full: what it holds now belongs to its request.
                        sized = false;
                        permit = None;
                        deadline = None;
                        frame
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "bad frame; closing");
                        break 'conn;
                    }
                };
                let Some(task) = start_request(&shard, &state, frame) else {
                    break 'conn;
                };
                activity.in_flight.set(activity.in_flight.get() + 1);
                if tx.send(task).await.is_err() {
                    break 'conn;
                }
            }
            if buf.is_empty() {
                // Between requests: let go of the last frame's allocation.
                buf = BytesMut::new();
                match read_idle(&shard, &mut rd, &mut buf, &activity).await {
                    Ok(()) => continue,
                    Err(end) => {
                        log_end(end, read_timeout);
                        break;
                    }
                }
            }
            let due = *deadline.get_or_insert_with(|| Instant::now() + read_timeout);
            // The size prefix was already checked against socket.request.max.bytes.
            let size = frame_size(&buf, size_max).ok().flatten();
            let frame_bytes = size.map_or(4, |size| 4 + size as usize);
            if let Some(size) = size
                && !sized
            {
                sized = true;
                let Some((reserved, waited)) = reserve_frame(&shard, size).await else {
                    break;
                };
                permit = reserved;
                // The client is not to blame for the wait.
                deadline = Some(due + waited);
                // Only this frame's bytes are read into it, so this is all it needs.
                buf.reserve(frame_bytes.saturating_sub(buf.len()));
            }
            let due = deadline.unwrap_or(due);
            match read_frame_part(&mut rd, &mut buf, frame_bytes, due).await {
                Ok(()) => activity.touch(),
                Err(end) => {
                    log_end(end, read_timeout);
                    break;
                }
            }
        }
        drop(permit);
        drop(tx);
        writer.await;
        debug!("connection closed");
    }
    .instrument(span)
    .await
}
