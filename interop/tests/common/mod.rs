//! Helpers for the rdkafka interop tests: the real `sluice` binary (built by the same
//! `cargo test --workspace` run, found next to this test executable) started on a free
//! 127.0.0.1 port with `--cores 2` and stopped by PID through `sluice-testkit`, and
//! librdkafka clients for it.
// Compiled into every test binary of this crate, each using only some of it.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod group;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};

pub use sluice_testkit::{Broker, BrokerOptions, free_port, sluice_bin};

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
