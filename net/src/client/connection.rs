//! One client connection to a broker: framing, correlation ids, pipelining, ApiVersions.
//!
//! Invariant: the queue of in-flight requests holds exactly the requests written that expect a
//! response, in write order. A request is queued before its bytes are written, so the reader
//! can never see a response it does not know about. Kafka answers in request order on one
//! connection, so the reader matches each response to the front of the queue and checks the
//! correlation id. Both halves live on the executor that connected; the queue is an `Rc`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::versions::{ApiVersionTable, client_range};

/// Kafka's error code for an API version the broker does not support.
const UNSUPPORTED_VERSION: i16 = 35;
/// The smallest read issued on the socket; larger frames are read in one go.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How to open a connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header.
    pub client_id: String,
    /// Responses claiming to be larger than this close the connection with an error.
    pub response_bytes_max: usize,
    /// Bound on the TCP connect.
    pub connect_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: "sluice-client".to_string(),
            response_bytes_max: 128 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Failure to connect and negotiate versions.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("ApiVersions exchange with {addr}: {source}")]
    Call { addr: String, source: CallError },
    #[error("broker {addr} answered ApiVersions with error code {error_code}")]
    Refused { addr: String, error_code: i16 },
}

/// Failure to encode or write a request.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("broker and client share no version of {api:?}")]
    UnsupportedApi { api: ApiKey },
    #[error("encoding {api:?} v{version}: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("writing request: {0}")]
    Io(#[from] std::io::Error),
}

/// Failure to read or decode a response.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("reading response: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker closed the connection")]
    Closed,
    #[error("response frame of {len} bytes is outside [0, {max}]")]
    FrameSize { len: i64, max: usize },
    #[error("response arrived with no request in flight")]
    NothingInFlight,
    #[error("response correlation id {got} does not match the oldest request's {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("expected a {expected:?} response, the oldest request in flight is {got:?}")]
    WrongApi { expected: ApiKey, got: ApiKey },
    #[error("decoding {api:?} v{version} response: {message}")]
    Decode {
        api: ApiKey,
        version: i16,
        message: String,
    },
}

/// Failure of a request/response round trip.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Recv(#[from] RecvError),
}

/// A request written to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub correlation_id: i32,
    pub version: i16,
}

#[derive(Debug)]
struct InFlight {
    correlation_id: i32,
    api: ApiKey,
    version: i16,
}

type InFlightQueue = Rc<RefCell<VecDeque<InFlight>>>;

/// A response read off the socket whose header matched the oldest request in flight.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    pub correlation_id: i32,
    pub api: ApiKey,
    pub version: i16,
    /// The response body, after the response header.
    pub body: Bytes,
}

impl ResponseFrame {
    /// Decodes the body as `T` at the version the request was sent with.
    pub fn decode<T: Decodable>(&self) -> Result<T, RecvError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.version).map_err(|e| RecvError::Decode {
            api: self.api,
            version: self.version,
            message: e.to_string(),
        })
    }
}

/// The sending half of a connection.
pub struct ConnectionWriter {
    stream: WriteHalf<TcpStream>,
    in_flight: InFlightQueue,
    versions: Rc<ApiVersionTable>,
    client_id: StrBytes,
    next_correlation_id: i32,
    frame: BytesMut,
}

/// The receiving half of a connection.
pub struct ConnectionReader {
    stream: ReadHalf<TcpStream>,
    in_flight: InFlightQueue,
    rx: BytesMut,
    response_bytes_max: usize,
}

/// A negotiated connection to one broker.
pub struct Connection {
    writer: ConnectionWriter,
    reader: ConnectionReader,
    api_versions: ApiVersionsResponse,
}

impl Connection {
    /// Connects to `addr` (host:port) and negotiates API versions with ApiVersions, falling
    /// back to the version the broker names when it rejects ours (KIP-511).
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Self, ConnectError> {
        let io_err = |source| ConnectError::Io {
            addr: addr.to_string(),
            source,
        };
        let stream = TcpStream::connect_timeout(addr, config.connect_timeout)
            .await
            .map_err(|e| io_err(std::io::Error::other(e)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| io_err(std::io::Error::other(e)))?;
        let (read_half, write_half) = futures_lite::io::split(stream);
        let in_flight: InFlightQueue = Rc::default();
        let mut connection = Connection {
            writer: ConnectionWriter {
                stream: write_half,
                in_flight: in_flight.clone(),
                versions: Rc::default(),
                client_id: StrBytes::from_string(config.client_id.clone()),
                next_correlation_id: 0,
                frame: BytesMut::with_capacity(READ_CHUNK_BYTES),
            },
            reader: ConnectionReader {
                stream: read_half,
                in_flight,
                rx: BytesMut::with_capacity(READ_CHUNK_BYTES),
                response_bytes_max: config.response_bytes_max,
            },
            api_versions: ApiVersionsResponse::default(),
        };
        let call_err = |source| ConnectError::Call {
            addr: addr.to_string(),
            source,
        };
        let ours = client_range(ApiKey::ApiVersions).expect("client speaks ApiVersions");
        let mut version = ours.max;
        let response = loop {
            let frame = connection
                .call_frame(&api_versions_request(), version, true)
                .await
                .map_err(call_err)?;
            let decoded = frame.decode::<ApiVersionsResponse>();
            match decoded {
                Ok(response) if response.error_code == 0 => break response,
                _ => {}
            }
            // A broker that does not speak our version answers with a v0 body naming its range.
            let v0 = ResponseFrame {
                version: 0,
                ..frame
            }
            .decode::<ApiVersionsResponse>()
            .map_err(|e| call_err(e.into()))?;
            let theirs = v0
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map(|k| k.max_version);
            match theirs {
                Some(max) if v0.error_code == UNSUPPORTED_VERSION && max < version => {
                    version = max.max(ours.min);
                }
                _ => {
                    return Err(ConnectError::Refused {
                        addr: addr.to_string(),
                        error_code: v0.error_code,
                    });
                }
            }
        };
        connection.set_versions(ApiVersionTable::from_response(&response));
        connection.api_versions = response;
        Ok(connection)
    }

    fn set_versions(&mut self, table: ApiVersionTable) {
        self.writer.versions = Rc::new(table);
    }

    /// The negotiated versions.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.writer.versions
    }

    /// The broker's ApiVersions response as received.
    pub fn api_versions(&self) -> &ApiVersionsResponse {
        &self.api_versions
    }

    /// Sends one request at the negotiated version and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, CallError> {
        let api = api_key_of::<R>();
        let version = self
            .writer
            .versions
            .version(api)
            .ok_or(SendError::UnsupportedApi { api })?;
        let frame = self.call_frame(request, version, true).await?;
        Ok(frame.decode::<R::Response>()?)
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_unanswered<R: Request>(&mut self, request: &R) -> Result<Sent, SendError> {
        let api = api_key_of::<R>();
        let version = self
            .writer
            .versions
            .version(api)
            .ok_or(SendError::UnsupportedApi { api })?;
        self.writer.send_version(request, version, false).await
    }

    async fn call_frame<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<ResponseFrame, CallError> {
        self.writer
            .send_version(request, version, expect_response)
            .await?;
        Ok(self.reader.recv_frame().await?)
    }

    /// Splits into a writer and a reader so requests can be pipelined: the writer keeps
    /// sending while the reader collects responses in order.
    pub fn split(self) -> (ConnectionWriter, ConnectionReader) {
        (self.writer, self.reader)
    }
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-net"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).expect("kafka-protocol request types carry known api keys")
}

impl ConnectionWriter {
    /// The negotiated versions.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// Writes `request` at the negotiated version; its response must be read from the reader.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<Sent, SendError> {
        let api = api_key_of::<R>();
        let version = self
            .versions
            .version(api)
            .ok_or(SendError::UnsupportedApi { api })?;
        self.send_version(request, version, true).await
    }

    /// Writes `request` at `version`. With `expect_response == false` (Produce with acks=0)
    /// the broker sends nothing back and nothing is queued for the reader.
    pub async fn send_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<Sent, SendError> {
        let api = api_key_of::<R>();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        encode_request(
            &mut self.frame,
            request,
            api,
            version,
            correlation_id,
            &self.client_id,
        )?;
        if expect_response {
            self.in_flight.borrow_mut().push_back(InFlight {
                correlation_id,
                api,
                version,
            });
        }
        self.stream.write_all(&self.frame).await?;
        Ok(Sent {
            correlation_id,
            version,
        })
    }

    /// Requests written whose responses have not been read yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    /// Closes the write side of the socket.
    pub async fn close(&mut self) -> Result<(), std::io::Error> {
        self.stream.close().await
    }
}

/// Encodes a size-prefixed request frame into `frame` (cleared first).
pub(crate) fn encode_request<R: Request>(
    frame: &mut BytesMut,
    request: &R,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<(), SendError> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    frame.clear();
    frame.put_i32(0);
    header
        .encode(frame, api.request_header_version(version))
        .map_err(|e| encode_error(api, version, e))?;
    request
        .encode(frame, version)
        .map_err(|e| encode_error(api, version, e))?;
    let len = i32::try_from(frame.len() - 4).map_err(|_| SendError::Encode {
        api,
        version,
        message: format!("request of {} bytes does not fit a frame", frame.len()),
    })?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// `kafka-protocol` reports errors as `anyhow::Error`; only its message is kept.
fn encode_error(api: ApiKey, version: i16, e: impl std::fmt::Display) -> SendError {
    SendError::Encode {
        api,
        version,
        message: e.to_string(),
    }
}

impl ConnectionReader {
    /// Reads the next response frame and matches it to the oldest request in flight.
    pub async fn recv_frame(&mut self) -> Result<ResponseFrame, RecvError> {
        let mut frame = self.read_frame().await?;
        let pending = self
            .in_flight
            .borrow_mut()
            .pop_front()
            .ok_or(RecvError::NothingInFlight)?;
        let header_version = pending.api.response_header_version(pending.version);
        let header =
            ResponseHeader::decode(&mut frame, header_version).map_err(|e| RecvError::Decode {
                api: pending.api,
                version: pending.version,
                message: format!("response header: {e}"),
            })?;
        if header.correlation_id != pending.correlation_id {
            return Err(RecvError::CorrelationMismatch {
                expected: pending.correlation_id,
                got: header.correlation_id,
            });
        }
        Ok(ResponseFrame {
            correlation_id: header.correlation_id,
            api: pending.api,
            version: pending.version,
            body: frame,
        })
    }

    /// Reads the next response, which must answer a request of type `R`.
    pub async fn recv<R: Request>(&mut self) -> Result<R::Response, RecvError> {
        let frame = self.recv_frame().await?;
        let expected = api_key_of::<R>();
        if frame.api != expected {
            return Err(RecvError::WrongApi {
                expected,
                got: frame.api,
            });
        }
        frame.decode::<R::Response>()
    }

    /// Responses still owed by the broker.
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    /// Reads one size-prefixed frame; the length is checked before anything is allocated.
    async fn read_frame(&mut self) -> Result<Bytes, RecvError> {
        loop {
            if self.rx.len() >= 4 {
                let len = i32::from_be_bytes(self.rx[..4].try_into().expect("4 bytes"));
                let len = match usize::try_from(len) {
                    Ok(len) if len <= self.response_bytes_max => len,
                    _ => {
                        return Err(RecvError::FrameSize {
                            len: i64::from(len),
                            max: self.response_bytes_max,
                        });
                    }
                };
                if self.rx.len() >= 4 + len {
                    self.rx.advance(4);
                    return Ok(self.rx.split_to(len).freeze());
                }
                let missing = 4 + len - self.rx.len();
                self.fill(missing.max(READ_CHUNK_BYTES)).await?;
            } else {
                self.fill(READ_CHUNK_BYTES).await?;
            }
        }
    }

    async fn fill(&mut self, want: usize) -> Result<(), RecvError> {
        let start = self.rx.len();
        self.rx.resize(start + want, 0);
        let read = self.stream.read(&mut self.rx[start..]).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.rx.truncate(start);
                return Err(e.into());
            }
        };
        self.rx.truncate(start + n);
        if n == 0 {
            return Err(RecvError::Closed);
        }
        Ok(())
    }
}
