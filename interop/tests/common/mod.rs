//! Helpers for the rdkafka interop tests: start the real `sluice` binary (built by the
//! same `cargo test --workspace` run, found next to this test executable) on a free
//! 127.0.0.1 port with `--cores 2`, stop it by PID, and build librdkafka clients for it.
#![allow(dead_code)]

pub mod group;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};

/// The `sluice` binary of this build profile: `target/<profile>/sluice`.
pub fn sluice_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("sluice");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p sluice-server` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Broker {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

fn spawn(dir: &Path, addr: SocketAddr, extra: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .unwrap();
    let mut child = Command::new(sluice_bin())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--cores", "2"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sluice did not start on {addr}");
}

impl Broker {
    pub fn start(extra: &[&str]) -> Broker {
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

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on the PID of the child this guard started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.child = Some(spawn(self.dir.path(), self.addr, &self.extra));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Counts delivery reports, failed ones separately.
#[derive(Clone, Default)]
pub struct Deliveries {
    pub ok: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err((e, _)) => {
                eprintln!("delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

pub fn producer(
    bootstrap: &str,
    extra: &[(&str, &str)],
) -> (ThreadedProducer<Deliveries>, Deliveries) {
    let ctx = Deliveries::default();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let p = cfg.create_with_context(ctx.clone()).unwrap();
    (p, ctx)
}

pub fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-interop")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap()
}

/// A TCP proxy in front of the broker whose connections can be cut on demand, to
/// interrupt a client mid-stream.
pub struct Proxy {
    pub addr: SocketAddr,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
    pub cuts: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream_port_hint: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", upstream_port_hint)).unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
        let upstream: Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
        let proxy = Proxy {
            addr,
            conns: conns.clone(),
            cuts: Default::default(),
        };
        let _ = upstream;
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let target = UPSTREAM.lock().unwrap().expect("upstream set");
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                conns.lock().unwrap().push(client.try_clone().unwrap());
                conns.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    pub fn set_upstream(&self, upstream: SocketAddr) {
        *UPSTREAM.lock().unwrap() = Some(upstream);
    }

    /// Cuts every connection through the proxy (both directions), mid-request or not.
    pub fn cut_all(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        self.cuts.fetch_add(1, Ordering::SeqCst);
    }
}

static UPSTREAM: std::sync::Mutex<Option<SocketAddr>> = std::sync::Mutex::new(None);
