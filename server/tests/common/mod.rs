//! Shared helpers for the integration tests: start the real `sluice` binary on a free
//! 127.0.0.1 port with `--cores 2` and a temporary data directory, stop it by PID when
//! the guard drops, and speak raw Kafka requests over a std `TcpStream` using
//! kafka-protocol's client-side encoders and decoders.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A running broker; killed (SIGKILL if SIGTERM is not enough) when dropped.
pub struct Broker {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn spawn(dir: &Path, addr: SocketAddr, extra: &[String]) -> Child {
    spawn_env(dir, addr, extra, &[])
}

fn spawn_env(dir: &Path, addr: SocketAddr, extra: &[String], env: &[(&str, &str)]) -> Child {
    // Appended, so a restarted broker's log follows the previous run's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--cores")
        .arg("2")
        .args(extra)
        .envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sluice");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sluice did not start listening on {addr}");
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(dir.path(), addr, &extra);
        Broker {
            addr,
            dir,
            child: Some(child),
            extra,
        }
    }

    /// Starts a broker configured through `SLUICE_*` environment variables.
    pub fn start_env(env: &[(&str, &str)]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = spawn_env(dir.path(), addr, &[], env);
        Broker {
            addr,
            dir,
            child: Some(child),
            extra: Vec::new(),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the exit status (clean shutdown).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on the PID of the child this guard started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker with SIGKILL (a crash), then waits until its listening sockets
    /// are gone: the kernel tears down a killed process's io_uring (and the accept it
    /// holds) asynchronously, and until then SO_REUSEPORT can still route new
    /// connections to the dead socket.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).is_ok() {
            assert!(Instant::now() < deadline, "killed broker still accepting");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or crash first");
        self.child = Some(spawn(self.dir.path(), self.addr, &self.extra));
    }

    /// The exit status if the broker has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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
        let cid = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = Self::frame(api_key, version, cid, body);
        self.send_raw(&frame).unwrap();
        let resp = self
            .read_frame()
            .unwrap()
            .expect("broker closed the connection");
        Self::parse(api_key, version, cid, resp)
    }
}

/// Path of kcat; the test script installs it (scripts/install-test-deps.sh).
pub fn kcat() -> &'static str {
    for p in ["/usr/bin/kcat", "/usr/local/bin/kcat", "/usr/bin/kafkacat"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("kcat is not installed: run scripts/install-test-deps.sh");
}

/// Encodes one uncompressed RecordBatch v2 with kafka-protocol's client-side encoder.
/// `records` are (key, value, timestamp ms); `producer` is (id, epoch, base sequence).
pub fn batch(records: &[(&str, &str, i64)], producer: Option<(i64, i16, i32)>) -> Bytes {
    use kafka_protocol::records::*;
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: *ts,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record in a Fetch `records` field: (offset, key, value, timestamp).
pub fn decode_records(records: &Bytes) -> Vec<(i64, String, String, i64)> {
    use kafka_protocol::records::*;
    let mut buf = records.clone();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            let s = |b: Option<Bytes>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            out.push((r.offset, s(r.key), s(r.value), r.timestamp));
        }
    }
    out
}
