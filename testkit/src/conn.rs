//! A raw Kafka connection to the broker over a std `TcpStream`: frames requests with
//! kafka-protocol's client-side encoders and reads and decodes responses, with a bounded
//! response size and a read timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The client id of requests sent without one of their own.
const CLIENT_ID: &str = "sluice-test";

/// A raw Kafka connection.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Encodes a request frame (size prefix included).
    pub fn frame<Req: Encodable>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &Req,
    ) -> Bytes {
        Self::frame_as(CLIENT_ID, api_key, version, correlation_id, body)
    }

    /// `frame` with `client_id` in the request header.
    pub fn frame_as<Req: Encodable>(
        client_id: &str,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &Req,
    ) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.freeze()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame: `Ok(None)` when the broker closed the connection.
    pub fn read_frame(&mut self) -> std::io::Result<Option<Bytes>> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let size = i32::from_be_bytes(size);
        assert!((0..=256 << 20).contains(&size), "response size {size}");
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Bytes::from(body)))
    }

    /// Whether the broker closes this connection within `timeout` (reads return EOF).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 1024];
        let deadline = Instant::now() + timeout;
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }

    pub fn parse<Resp: Decodable>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Resp {
        let mut frame = frame;
        let header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let resp = Resp::decode(&mut frame, version).unwrap();
        assert_eq!(
            frame.remaining(),
            0,
            "trailing bytes in {api_key:?} v{version} response"
        );
        resp
    }

    /// Sends one request and reads its response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        self.call_as(CLIENT_ID, api_key, version, body)
    }

    /// `call` with `client_id` in the request header.
    pub fn call_as<Req: Encodable, Resp: Decodable>(
        &mut self,
        client_id: &str,
        api_key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let cid = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = Self::frame_as(client_id, api_key, version, cid, body);
        self.send_raw(&frame).unwrap();
        let resp = self
            .read_frame()
            .unwrap()
            .expect("broker closed the connection");
        Self::parse(api_key, version, cid, resp)
    }
}
