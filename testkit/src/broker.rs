//! A running `sluice` broker for tests: where the binary is, a free port, start and wait
//! until it is ready, its log (appended across restarts), SIGTERM / SIGKILL by PID, and
//! waiting for connection refused after a kill. Dropping the guard kills the broker and,
//! when the test is panicking, prints the broker log.
//!
//! Ready means the broker logged its ready line (every shard accepts connections), not
//! that one connect succeeded: with SO_REUSEPORT one shard's socket answers before the
//! others exist. Ports are drawn at random below the kernel's ephemeral range, so they do
//! not collide with client sockets, and test binaries running in parallel that draw the
//! same port are told apart by the broker itself: the second one exits with "address in
//! use" and the harness starts it again on another port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::conn::Conn;

/// How long a broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM may take before the broker is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts on a freshly drawn port before giving up, when each found its port taken.
const START_ATTEMPTS: u32 = 20;
/// What the broker logs once every shard accepts connections (target `sluice::ready`).
pub const READY_LINE: &str = "sluice ready: every shard accepts connections";
/// The ready line's log target, enabled whatever `SLUICE_TEST_LOG` says.
const READY_TARGET: &str = "sluice::ready";

/// `target/<profile>/<name>`, next to the test executable's `deps/` directory; built with
/// `cargo build -p <package>` first when it is missing (a binary of another crate is not
/// built for this crate's tests).
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable inside target/<profile>/deps")
        .to_path_buf();
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

/// The `sluice` broker binary of this build profile.
pub fn sluice_bin() -> PathBuf {
    workspace_binary("sluice", "sluice-server")
}

/// Lowest port `free_port` draws from.
const PORT_LOW: u16 = 20_000;

/// The first port of the kernel's ephemeral range (what connect and bind(0) hand out).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|low: &u16| *low > PORT_LOW + 1000)
        .unwrap_or(32_768)
}

/// A random number, different on every call and in every process.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// A port that was free a moment ago on 127.0.0.1, drawn at random below the ephemeral
/// range. Another process may take it before the broker binds it; `Broker::launch` then
/// draws again.
pub fn free_port() -> u16 {
    let span = u64::from(ephemeral_low() - PORT_LOW);
    loop {
        let port = PORT_LOW + (random_u64() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// How to start a broker: `--cores`, extra command-line arguments, environment, the host
/// part of `--listen`, a locked-memory limit; and, for a broker expected to exit
/// (`spawn_expecting_exit`), an exact data directory and `--listen` value.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    pub cores: u16,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The host of `--listen`; the harness draws the port. Clients connect to 127.0.0.1,
    /// so any other host must resolve there.
    pub host: String,
    /// RLIMIT_MEMLOCK (soft and hard) of the broker process, in KiB.
    pub memlock_limit_kib: Option<u64>,
    /// `--data-dir` instead of a fresh temporary one (`spawn_expecting_exit` only).
    pub data_dir: Option<PathBuf>,
    /// The whole `--listen` value instead of a drawn port (`spawn_expecting_exit` only).
    pub listen: Option<String>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            cores: 2,
            args: Vec::new(),
            env: Vec::new(),
            host: "127.0.0.1".into(),
            memlock_limit_kib: None,
            data_dir: None,
            listen: None,
        }
    }
}

impl BrokerOptions {
    pub fn cores(mut self, cores: u16) -> Self {
        self.cores = cores;
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_string();
        self
    }

    pub fn memlock_limit_kib(mut self, kib: u64) -> Self {
        self.memlock_limit_kib = Some(kib);
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn listen(mut self, listen: &str) -> Self {
        self.listen = Some(listen.to_string());
        self
    }

    /// Starts a broker that is expected to stop by itself (a refused start, a panic) and
    /// waits up to `timeout` for its exit, killing it after that. Its stderr goes to a
    /// file, not a pipe, so a chatty broker never blocks on a full pipe.
    pub fn spawn_expecting_exit(self, timeout: Duration) -> Exit {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let listen = self
            .listen
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.host, free_port()));
        let mut child = command(dir.path(), &data_dir, &listen, &self)
            .spawn()
            .expect("start sluice");
        let status = wait_or_kill(&mut child, timeout);
        Exit {
            status,
            log: broker_log_since(dir.path(), 0),
        }
    }
}

/// Waits up to `timeout` for `child` to exit; past it, kills it (SIGKILL to its PID only),
/// reaps it and returns `None`.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a broker started with `BrokerOptions::spawn_expecting_exit` ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit status, or `None` when it was still running at the deadline and was killed.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stderr (its log).
    pub log: String,
}

impl Exit {
    /// The exit code, or `None` when it was killed (by a signal or at the deadline).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Whether it exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// A running broker; killed (SIGKILL) when dropped.
pub struct Broker {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    options: BrokerOptions,
}

/// Why a broker did not start.
enum StartError {
    /// Another process holds the port (the broker said "address in use").
    AddressInUse,
}

fn broker_log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("broker.log")).map_or(0, |m| m.len())
}

/// The broker log from byte `from` on: the current run's part.
fn broker_log_since(dir: &Path, from: u64) -> String {
    let log = std::fs::read(dir.join("broker.log")).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(log.len());
    String::from_utf8_lossy(&log[from..]).into_owned()
}

/// The `sluice` command for `options`, logging to `dir/broker.log` (appended, so a
/// restarted broker's log follows the previous run's).
fn command(dir: &Path, data_dir: &Path, listen: &str, options: &BrokerOptions) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .expect("open broker.log");
    let filter = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into());
    let mut cmd = Command::new(sluice_bin());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(listen)
        .arg("--cores")
        .arg(options.cores.to_string())
        .args(&options.args)
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", format!("{filter},{READY_TARGET}=info"))
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(kib) = options.memlock_limit_kib {
        let limit = libc::rlimit {
            rlim_cur: kib * 1024,
            rlim_max: kib * 1024,
        };
        // SAFETY: the closure runs in the forked child before exec and only calls
        // setrlimit(2), which is async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    cmd
}

/// Starts the broker and waits for its ready line.
fn spawn(dir: &Path, addr: SocketAddr, options: &BrokerOptions) -> Result<Child, StartError> {
    let log_from = broker_log_len(dir);
    let listen = format!("{}:{}", options.host, addr.port());
    let mut child = command(dir, &dir.join("data"), &listen, options)
        .spawn()
        .expect("start sluice");
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if broker_log_since(dir, log_from).contains(READY_LINE) {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = broker_log_since(dir, log_from);
            if log.to_ascii_lowercase().contains("address in use") {
                return Err(StartError::AddressInUse);
            }
            let all = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
            panic!("sluice exited with {status} before it was ready on {addr}\n{all}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = broker_log_since(dir, log_from);
    panic!("sluice was not ready on {addr} within {START_TIMEOUT:?}\n{log}");
}

impl Broker {
    /// A broker with `--cores 2` and default settings.
    pub fn start() -> Broker {
        Broker::launch(BrokerOptions::default())
    }

    /// A broker with `--cores 1` and default settings, for tests whose client shares the
    /// machine's cores with it.
    pub fn start_single_core() -> Broker {
        Broker::launch(BrokerOptions::default().cores(1))
    }

    /// A broker with `--cores 2` and extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Broker {
        Broker::launch(BrokerOptions::default().args(args))
    }

    /// A broker with `--cores 2` configured through `SLUICE_*` environment variables.
    pub fn start_env(env: &[(&str, &str)]) -> Broker {
        Broker::launch(BrokerOptions::default().env(env))
    }

    pub fn launch(options: BrokerOptions) -> Broker {
        assert!(
            options.data_dir.is_none() && options.listen.is_none(),
            "a fixed data directory or listen address is for spawn_expecting_exit only"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match spawn(dir.path(), addr, &options) {
                Ok(child) => {
                    return Broker {
                        addr,
                        dir,
                        child: Mutex::new(Some(child)),
                        options,
                    };
                }
                Err(StartError::AddressInUse) => continue,
            }
        }
        panic!("sluice found its port taken {START_ATTEMPTS} times in a row");
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The broker's PID, for kill(2).
    pub fn pid(&self) -> libc::pid_t {
        let id = self.child().as_ref().expect("broker running").id();
        libc::pid_t::try_from(id).expect("pid fits pid_t")
    }

    /// Sends SIGTERM and waits for the exit status (clean shutdown), killing the broker if
    /// it takes longer than 30 s.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child().take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on the PID of the child this guard started and has not
        // reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for sluice") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("wait for sluice");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker with SIGKILL (a crash), then waits until its listening sockets
    /// are gone: the kernel tears down a killed process's io_uring (and the accept it
    /// holds) asynchronously, and until then SO_REUSEPORT can still route new
    /// connections to the dead socket.
    pub fn crash(&mut self) {
        let mut child = self.child().take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(self.addr).is_ok() {
            assert!(Instant::now() < deadline, "killed broker still accepting");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same port, data directory and options. Panics if
    /// another process took the port meanwhile (clients of this test know the port).
    pub fn restart(&mut self) {
        assert!(self.child().is_none(), "stop or crash first");
        match spawn(self.dir.path(), self.addr, &self.options) {
            Ok(child) => *self.child() = Some(child),
            Err(StartError::AddressInUse) => panic!(
                "{} was taken by another process while the broker was stopped\n{}",
                self.addr,
                self.log()
            ),
        }
    }

    /// The exit status if the broker has exited (crashed, or stopped by itself).
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child()
            .as_mut()
            .and_then(|c| c.try_wait().expect("wait for sluice"))
    }

    /// Panics with the exit status and the broker log if the broker is no longer running.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!(
                "sluice exited with {status}\n--- broker log ---\n{}",
                self.log()
            );
        }
    }

    /// Everything the broker has logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// A raw Kafka connection to the broker.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log());
        }
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
