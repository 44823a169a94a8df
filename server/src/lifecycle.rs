//! The broker process's life around the shards: the panic policy (a panic on any thread
//! ends the whole process with one ERROR line), the exclusive hold on the data directory
//! (`flock` on `<data-dir>/.lock`, as Kafka's log directory lock) and on the listen
//! address (every shard binds it with SO_REUSEPORT, which would let a second broker share
//! it), and the events the shards report to the main thread (ready, exited, signal).
//! Runs on the main thread and the signal thread; nothing here touches a shard's state.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use tracing::error;

/// Exit status of a process ended by a panic (the status Rust gives an uncaught panic).
pub const PANIC_EXIT_CODE: i32 = 101;
/// Exit status of a process ended by a fatal error after start (a shard failed, a stop
/// that did not finish in time).
pub const FATAL_EXIT_CODE: i32 = 1;

/// Set by the first thread that ends the process. `exit` must run once: a second
/// concurrent call (two shards panicking at once) is undefined behaviour in libc.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Ends the process with `code` at once, without closing any log: acknowledged data is
/// already fsynced, and a log closed by a failing process must not be marked clean. The
/// first caller exits; any later one (another thread failing meanwhile) parks forever.
pub fn exit_now(code: i32) -> ! {
    if EXITING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    std::process::exit(code)
}

/// Installs the panic policy: a panic on any thread (a shard, its blocking pool, the main
/// thread) logs one ERROR line naming the thread, the message and the place, and ends the
/// process with status 101, so a supervisor restarts it. A half-alive broker (some shards
/// dead, the others serving or waiting on them forever) can therefore never exist.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map_or_else(|| "unknown".to_string(), |l| l.to_string());
        if !EXITING.load(Ordering::SeqCst) {
            error!(
                thread,
                location = %location,
                panic = message,
                "panic: stopping the broker at once (acknowledged data is durable; restart it)"
            );
        }
        exit_now(PANIC_EXIT_CODE);
    }));
}

/// Why the broker cannot take its data directory or listen address.
#[derive(Debug, thiserror::Error)]
pub enum ExclusiveError {
    #[error(
        "data directory {} is in use by another sluice process (lock {} held); stop it or choose another --data-dir",
        dir.display(),
        lock.display()
    )]
    DataDirInUse { dir: PathBuf, lock: PathBuf },
    #[error(
        "cannot lock data directory {} (lock file {}; --data-dir must name a directory this user can write)",
        dir.display(),
        lock.display()
    )]
    DataDirLock {
        dir: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--listen {addr}: address in use by another process; stop it or choose another --listen port"
    )]
    AddressInUse { addr: SocketAddr },
    #[error("--listen {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The exclusive `flock` on `<data-dir>/.lock`, held while the value lives (the kernel
/// drops it when the process ends, however it ends).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub const FILE_NAME: &'static str = ".lock";

    pub fn acquire(dir: &Path) -> Result<DataDirLock, ExclusiveError> {
        let lock = dir.join(Self::FILE_NAME);
        let err = |source| ExclusiveError::DataDirLock {
            dir: dir.to_path_buf(),
            lock: lock.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(err)?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(ExclusiveError::DataDirInUse {
                    dir: dir.to_path_buf(),
                    lock,
                });
            }
            return Err(err(e));
        }
        Ok(DataDirLock { _file: file })
    }
}

/// How long a start waits for the listen address to be released when no live broker
/// holds it: a process that just ended keeps its listening sockets until the kernel has
/// torn down its io_uring instances, which happens asynchronously.
const LISTEN_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The claim on the listen address, held while the value lives. Two checks, because the
/// shards' SO_REUSEPORT sockets would accept a second broker's sockets beside them:
/// an abstract unix socket named after the address (exclusive per network namespace,
/// released by the kernel when the process ends) keeps two brokers apart even when they
/// start at the same instant; and no socket (of any program) may be listening on the
/// address, as the kernel's socket table shows. The second check is retried for
/// `LISTEN_RELEASE_WAIT`: sockets of a broker that just ended would otherwise share the
/// port with the new shards and swallow connections. A trial bind cannot stand in for
/// it: connections the old broker accepted linger (FIN_WAIT2, TIME_WAIT) after it is
/// killed while their clients hold them, and a bind without SO_REUSEPORT conflicts with
/// those too, so a restart would be refused for up to a minute.
pub struct ListenClaim {
    _name: UnixListener,
}

impl ListenClaim {
    pub fn acquire(addr: SocketAddr) -> Result<ListenClaim, ExclusiveError> {
        let in_use = || ExclusiveError::AddressInUse { addr };
        let name = format!("sluice-listen/{addr}");
        let unix = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|source| ExclusiveError::Listen { addr, source })?;
        let claim = match UnixListener::bind_addr(&unix) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(in_use()),
            Err(source) => return Err(ExclusiveError::Listen { addr, source }),
        };
        let deadline = std::time::Instant::now() + LISTEN_RELEASE_WAIT;
        loop {
            match listening_on(addr) {
                Ok(false) => return Ok(ListenClaim { _name: claim }),
                Ok(true) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(in_use());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(source) => return Err(ExclusiveError::Listen { addr, source }),
            }
        }
    }
}

/// The kernel's TCP socket state for a socket that listens (`TCP_LISTEN`).
const TCP_LISTEN_STATE: &str = "0A";

/// Whether a socket in this network namespace listens on `addr`'s port at `addr`'s IP,
/// or where one of the two addresses is the wildcard, from `/proc/net/tcp` and
/// `/proc/net/tcp6`.
fn listening_on(addr: SocketAddr) -> std::io::Result<bool> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            // No IPv6 in this kernel: nothing listens there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if text.lines().skip(1).any(|line| listens_at(line, addr)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether one line of `/proc/net/tcp{,6}` is a listening socket that conflicts with
/// `addr`. Lines that do not parse are not a conflict.
fn listens_at(line: &str, addr: SocketAddr) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(_slot), Some(local), Some(_remote), Some(state)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    if state != TCP_LISTEN_STATE {
        return false;
    }
    let Some((ip_hex, port_hex)) = local.split_once(':') else {
        return false;
    };
    if u16::from_str_radix(port_hex, 16).ok() != Some(addr.port()) {
        return false;
    }
    let Some(ip) = parse_proc_ip(ip_hex) else {
        return false;
    };
    ip.is_unspecified() || addr.ip().is_unspecified() || ip == addr.ip() || {
        // An IPv4 address as a v4-mapped IPv6 socket sees it.
        match (ip, addr.ip()) {
            (std::net::IpAddr::V6(v6), std::net::IpAddr::V4(v4)) => v6.to_ipv4_mapped() == Some(v4),
            _ => false,
        }
    }
}

/// An address as `/proc/net/tcp{,6}` prints it: 32-bit words in hex, each in the host's
/// (little-endian on the machines Sluice runs on) byte order.
fn parse_proc_ip(hex: &str) -> Option<std::net::IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(std::net::IpAddr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(std::net::IpAddr::from(bytes))
        }
        _ => None,
    }
}

/// Bytes of I/O buffer arena each shard's executor allocates and registers with each of
/// its io_uring rings (glommio's default, set explicitly so the numbers below hold).
pub const IO_MEMORY_PER_SHARD: usize = 10 << 20;
/// io_uring rings per shard (main, latency, poll); the kernel counts a registered buffer
/// against the locked-memory limit once per ring.
const RINGS_PER_SHARD: u64 = 3;
/// Locked memory below which glommio refuses to create an executor at all.
const MEMLOCK_MIN_BYTES: u64 = 512 << 10;

/// Locked memory `shards` executors register for their I/O buffers.
pub fn memlock_needed_bytes(shards: usize) -> u64 {
    shards as u64 * RINGS_PER_SHARD * IO_MEMORY_PER_SHARD as u64
}

/// Checks the locked-memory limit (RLIMIT_MEMLOCK, `ulimit -l`) before any executor
/// exists, so a too-low limit is one message saying what to raise and to what, not an
/// executor failing with `MemLockLimit(65536/524288)`. Returns a warning to log when the
/// limit lets the executors start but not register their I/O buffers (glommio then skips
/// the registration and uses slower unregistered I/O).
pub fn check_memlock(shards: usize) -> Result<Option<String>, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Ok(None);
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return Ok(None);
    }
    let have = limit.rlim_cur;
    let need = memlock_needed_bytes(shards);
    let advice = format!(
        "raise it to at least {} KiB for {shards} shards ({} MiB each: a {} MiB I/O buffer \
         arena registered with each of a shard's {RINGS_PER_SHARD} io_uring rings), e.g. \
         `ulimit -l {}` or `ulimit -l unlimited`, LimitMEMLOCK= in a systemd unit, \
         --ulimit memlock= for a container",
        need >> 10,
        (RINGS_PER_SHARD * IO_MEMORY_PER_SHARD as u64) >> 20,
        IO_MEMORY_PER_SHARD >> 20,
        need >> 10,
    );
    if have < MEMLOCK_MIN_BYTES {
        return Err(format!(
            "the locked-memory limit (RLIMIT_MEMLOCK, ulimit -l) is {} KiB, below the {} KiB \
             io_uring needs to start a shard: {advice}",
            have >> 10,
            MEMLOCK_MIN_BYTES >> 10
        ));
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let privileged = unsafe { libc::geteuid() } == 0;
    if have < need && !privileged {
        return Ok(Some(format!(
            "the locked-memory limit (ulimit -l) is {} KiB: too low to register I/O buffers, \
             I/O will be slower; {advice}",
            have >> 10
        )));
    }
    Ok(None)
}

/// How often the main thread kicks every shard's executor thread: the longest glommio's
/// park with runnable tasks (see `kick`) can hold a shard; a request that crosses shards
/// can meet one per hop. Under a stall-prone load the worst cross-shard hop was 188 ms
/// with kicks every 100 ms (none over 1 s in 9,600 hops) and 176 ms with kicks every
/// 20 ms (18,600 hops), against stalls of 106 s to 185 s without kicks: the rest of the
/// tail is the busy CPUs' scheduling, which a shorter period does not shorten. A kick
/// costs each shard one signal and one interrupted io_uring_enter; 10 per second per
/// shard is nothing next to a shard's own wake-ups.
pub const KICK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// The signal that kicks a shard; its handler does nothing (SIGURG's default is to ignore).
const KICK_SIGNAL: libc::c_int = libc::SIGURG;

extern "C" fn on_kick(_: libc::c_int) {}

/// Installs the do-nothing handler of the kick signal, with SA_RESTART so system calls
/// that can restart do.
pub fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: `action` is plain data initialised before sigaction(2) reads it; the
    // handler is an `extern "C"` function that touches nothing (async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(KICK_SIGNAL, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Interrupts whatever system call the shard's executor thread is blocked in, so that
/// glommio-ng 0.12 cannot park a shard that has runnable tasks for good.
///
/// The race (glommio-ng 0.12.0 sources): each turn of `LocalExecutor::run` arms the
/// preemption timer on the latency ring (`src/executor/mod.rs:1607`, 100 ms by default)
/// and then runs the task queues. `run_task_queues` (`:1451`) checks `need_preempt()`
/// (`src/reactor.rs:190`: the latency ring holds a completion) before each queue and
/// returns `ran`, still `false`, when it is preempted before it has run one (`:1455`), the
/// same `false` that means "nothing to run". On `false` the loop parks (`:1617-1628`), and
/// `Reactor::wait` decides to sleep from the rings, channels and timers alone, never
/// from the task queues (`src/sys/uring.rs:2063`): it reaps the expired timer, which
/// wakes no task, and blocks in `io_uring_enter(min_complete=1)` on the main ring
/// (`SleepableRing::sleep`, `src/sys/uring.rs:1294`) with tasks queued. So whenever the
/// thread loses the CPU for longer than the preemption timer between arming it and
/// checking it (a busy machine), the shard sleeps until something outside it completes
/// or wakes it: a shard whose next step is its own runnable task (a shard still in
/// `channel_mesh` join, a task woken by another local task) never does. Nothing is
/// pending anywhere while it sleeps (every completion queue empty, every eventfd
/// counter 0), which is why it looked like a lost wake-up; a debugger attaching ends it
/// by interrupting the system call, and so does a kick.
///
/// Why a kick ends it: io_uring_enter returns EINTR (it never restarts, whatever
/// SA_RESTART says), glommio takes it as a spurious wake-up (`Reactor::intr_ok`), the
/// loop turns again, and `run_task_queues` runs the queued tasks. Nothing is lost to
/// the kick but the sleep. A kick reaches every shard, parked or not: which one parked
/// cannot be seen from outside.
///
/// Seen in a reproducer of three executors pinned as our shards are, joining a
/// `channel_mesh` and passing messages round it between blocking-pool fsyncs and
/// direct-I/O file operations, on two busy CPUs: four parks in about eleven minutes,
/// of 185 s (inside the join, ended by one kick to that executor), 151 s, 106 s and
/// 1 s; none over 1 s with kicks. With a 10 µs preemption timer the park is nearly
/// certain (the test below).
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is a shard thread that has not been joined yet (the main thread
    // joins them only after their last kick), so the handle is valid; a thread that
    // has already ended gets ESRCH.
    unsafe {
        libc::pthread_kill(thread, KICK_SIGNAL);
    }
}

/// What shards and the signal thread tell the main thread.
#[derive(Debug)]
pub enum ShardEvent {
    /// The shard's executor runs on this thread (for `kick`).
    Started(u16, libc::pthread_t),
    /// The shard opened its partitions and accepts connections.
    Ready(u16),
    /// The shard's executor ended: `Ok` after a requested stop, `Err` when it failed.
    Exited(u16, Result<(), String>),
    /// SIGINT or SIGTERM arrived.
    Signal(i32),
}

/// Reports `Exited` for a shard when dropped without `report` (its executor could not be
/// created, or its thread unwound), so the main thread never waits on a shard that is gone.
pub struct ExitReport {
    shard: u16,
    tx: Option<Sender<ShardEvent>>,
}

impl ExitReport {
    pub fn new(shard: u16, tx: Sender<ShardEvent>) -> Self {
        ExitReport {
            shard,
            tx: Some(tx),
        }
    }

    pub fn report(mut self, result: Result<(), String>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(ShardEvent::Exited(self.shard, result));
        }
    }
}

impl Drop for ExitReport {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(ShardEvent::Exited(
                self.shard,
                Err("the shard's executor ended before running it".into()),
            ));
        }
    }
}

/// Waits for SIGINT/SIGTERM (blocked in every thread before any was started) on a thread
/// of its own, so a stop request is seen whatever state the shards are in.
pub fn spawn_signal_thread(tx: Sender<ShardEvent>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                // SAFETY: `set` is plain data initialised by sigemptyset/sigaddset before
                // sigwait reads it; `sig` is written by sigwait.
                let sig = unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGINT);
                    libc::sigaddset(&mut set, libc::SIGTERM);
                    let mut sig: libc::c_int = 0;
                    if libc::sigwait(&set, &mut sig) != 0 {
                        continue;
                    }
                    sig
                };
                if tx.send(ShardEvent::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::os::unix::thread::JoinHandleExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    const YIELDS: u64 = 1_000;

    /// Runs an executor whose preemption timer (10 µs) expires before it reaches its
    /// first task, so glommio-ng parks it with a yielding task runnable (see `kick`);
    /// `kicking` every `period` while it runs. Returns the yields done by `limit`.
    fn yields_done(period: Option<Duration>, limit: Duration) -> u64 {
        install_kick_handler().unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let counter = done.clone();
        let executor = std::thread::spawn(move || {
            let ex = LocalExecutorBuilder::new(Placement::Unbound)
                .preempt_timer(Duration::from_micros(10))
                .make()
                .unwrap();
            ex.run(async move {
                for _ in 0..YIELDS {
                    futures_lite::future::yield_now().await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        });
        let thread = executor.as_pthread_t();
        let deadline = Instant::now() + limit;
        while !executor.is_finished() && Instant::now() < deadline {
            std::thread::sleep(period.unwrap_or(Duration::from_millis(10)));
            if period.is_some() {
                kick(thread);
            }
        }
        let result = done.load(Ordering::Relaxed);
        // Let a parked executor finish so the thread can be joined.
        while !executor.is_finished() {
            kick(thread);
            std::thread::sleep(Duration::from_millis(1));
        }
        executor.join().unwrap();
        result
    }

    #[test]
    fn kicks_end_a_park_with_runnable_tasks() {
        // Proves the kick ends glommio-ng's park with a runnable task: an executor parked
        // that way makes progress only when its io_uring_enter is interrupted, so with a
        // kick every 10 ms its 1,000 yields finish well inside 20 s, where unkicked it
        // stays parked (0 to a few hundred yields in 3 s when measured).
        assert_eq!(
            yields_done(Some(Duration::from_millis(10)), Duration::from_secs(20)),
            YIELDS
        );
    }

    // Proves the socket-table check sees a listening socket on its exact address and
    // through the wildcard, and not once it is closed while a connection accepted from it
    // (what lingers after a killed broker) is still open.
    #[test]
    fn listening_sockets_are_found_in_the_kernel_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(listening_on(addr).unwrap());
        let wildcard = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(listening_on(wildcard).unwrap());
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(listener);
        assert!(!listening_on(addr).unwrap());
        drop((client, accepted));
    }

    // Proves the address parser reads /proc/net/tcp's host-order words for IPv4 and IPv6.
    #[test]
    fn proc_addresses_parse() {
        let v4 = std::net::Ipv4Addr::new(127, 0, 0, 1);
        let hex = format!("{:08X}", u32::from_ne_bytes(v4.octets()));
        assert_eq!(parse_proc_ip(&hex), Some(v4.into()));
        let v6 = std::net::Ipv6Addr::LOCALHOST;
        let hex: String = v6
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap())))
            .collect();
        assert_eq!(parse_proc_ip(&hex), Some(v6.into()));
        assert_eq!(parse_proc_ip("XYZ"), None);
        let line = format!("  0: {}:{:04X} 00000000:0000 0A 0 0", "0100007F", 9092);
        let addr: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        assert_eq!(listens_at(&line, addr), cfg!(target_endian = "little"));
        assert!(!listens_at(&line.replace(" 0A ", " 01 "), addr));
    }
}
