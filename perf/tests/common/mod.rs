//! Starts the real `sluice` broker for tests: a free 127.0.0.1 port, a temporary data
//! directory, `--cores 1`; killed by PID when the guard drops. The binary comes from this
//! workspace's target directory (built here when missing, since it belongs to another crate).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// `target/<profile>/<name>`, next to the test executable's `deps/` directory.
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let path = profile_dir.join(name);
    if !path.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "-p", package, "--bin", name]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let child = Command::new(workspace_binary("sluice", "sluice-server"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--cores")
            .arg("1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice");
        let broker = Broker { addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return broker;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sluice did not listen on {addr}");
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
