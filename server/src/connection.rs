//! One client connection, on the shard that accepted it: reads frames, decodes each
//! request with net's bounded decoders, dispatches it as its own task, and writes the
//! responses strictly in request order while later requests are already being handled
//! (pipelining). At most `PIPELINE_MAX` requests are in flight per connection; beyond
//! that the reader stops reading (backpressure). A frame that cannot be a request closes
//! the connection after the responses already owed are written.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use sluice_net::{DecodeError, decode_request, frame_size, split_frame};
use tracing::{Instrument, debug, debug_span, warn};

use crate::handlers;
use crate::shard::Shard;

/// Requests decoded but not yet answered, per connection.
const PIPELINE_MAX: usize = 64;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Per-connection state shared by the requests of one connection.
pub struct ConnState {
    pub id: u64,
    /// The client's address as Kafka shows it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    pub fetch_sessions: std::cell::RefCell<handlers::fetch::FetchSessions>,
    /// Held while a Produce enqueues its appends, so pipelined Produce requests reach
    /// the owning shards in request order.
    pub produce_gate: glommio::sync::Semaphore,
}

/// What a handler produced for one request.
pub enum Outcome {
    /// An encoded response frame, size prefix included.
    Respond(Bytes),
    /// One response frame as chunks written back to back (Fetch: record batches are
    /// their own chunks, never copied into the frame).
    RespondChunks(Vec<Bytes>),
    /// No response is owed (Produce with acks=0).
    Silent,
    /// The request cannot be answered; close the connection after earlier responses.
    Close,
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
    async move {
        debug!("connection opened");
        let (mut rd, mut wr) = futures_lite::io::split(stream);
        let (tx, rx) = local_channel::new_bounded::<JoinHandle<Outcome>>(PIPELINE_MAX);
        let writer = glommio::spawn_local(
            async move {
                while let Some(pending) = rx.recv().await {
                    match pending.await {
                        Some(Outcome::Respond(frame)) => {
                            if let Err(e) = wr.write_all(&frame).await {
                                debug!(error = %e, "write failed");
                                break;
                            }
                        }
                        Some(Outcome::RespondChunks(chunks)) => {
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
                        }
                        Some(Outcome::Silent) => {}
                        Some(Outcome::Close) | None => break,
                    }
                }
                let _ = wr.close().await;
            }
            .in_current_span(),
        );
        let size_max = shard.args.socket_request_max_bytes;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        'conn: loop {
            loop {
                let frame = match split_frame(&mut buf, size_max) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "bad frame; closing");
                        break 'conn;
                    }
                };
                let task = match decode_request(frame) {
                    Ok(req) => {
                        let s = shard.clone();
                        let cid = req.header.correlation_id;
                        glommio::spawn_local(
                            handlers::dispatch(s, req, state.clone())
                                .instrument(debug_span!("req", correlation_id = cid)),
                        )
                        .detach()
                    }
                    Err(DecodeError::UnsupportedVersion {
                        api_key: ApiKey::ApiVersions,
                        correlation_id,
                        api_version,
                    }) => {
                        debug!(api_version, "ApiVersions above our range; v0 fallback");
                        let out = handlers::api_versions::unsupported_version(correlation_id);
                        glommio::spawn_local(async move { out }).detach()
                    }
                    Err(e) => {
                        warn!(error = %e, "undecodable request; closing");
                        break 'conn;
                    }
                };
                if tx.send(task).await.is_err() {
                    break 'conn;
                }
            }
            let len = buf.len();
            // Reserve the whole pending frame at once (its size was already checked
            // against socket.request.max.bytes), so a large Produce is not regrown per read.
            if let Ok(Some(size)) = frame_size(&buf, size_max) {
                buf.reserve((4 + size as usize).saturating_sub(len));
            }
            buf.resize(len + READ_CHUNK, 0);
            match rd.read(&mut buf[len..]).await {
                Ok(0) => {
                    buf.truncate(len);
                    break;
                }
                Ok(n) => buf.truncate(len + n),
                Err(e) => {
                    debug!(error = %e, "read failed");
                    break;
                }
            }
        }
        drop(tx);
        writer.await;
        debug!("connection closed");
    }
    .instrument(span)
    .await
}
