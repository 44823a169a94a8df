//! `SimDisk`: an in-memory `Disk` for crash and fault tests. Every file keeps the bytes
//! that reads see and, separately, the bytes the last `fdatasync` made durable plus the
//! writes since then. `crash_image` builds the disk a power cut would leave behind:
//! durable bytes, plus any subset of the later writes, some of them torn at 512-byte
//! sector granularity. Faults (disk full, failing fsync) are injected here too.
//! Directory operations (remove, rename) and whole-file replacement are modelled as
//! immediately durable. Like POSIX file descriptors, an open handle keeps its file after
//! the name is removed or renamed over. Directory syncs and whole-file replacements can be
//! held and let through one at a time, so a test stops a sequence of file steps between
//! any two of them (to take a crash image there, or to run other work meanwhile).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::disk::{Disk, DiskFile, IoFuture, align_up};
use crate::event::Event;

/// Sector size of the simulated device: the unit a torn write tears at.
pub const SIM_SECTOR_BYTES: u64 = 512;

#[derive(Clone, Debug)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
    since_sync: Vec<Op>,
}

fn apply(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { pos, data } => {
            let end = *pos as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*pos as usize..end].copy_from_slice(data);
        }
        Op::Truncate { len } => buf.resize(*len as usize, 0),
    }
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<PathBuf, Rc<RefCell<SimFile>>>,
    /// Total bytes all files may hold; a write past it fails with ENOSPC.
    space_bytes_max: Option<u64>,
    /// When set, every fdatasync fails with EIO.
    fail_fsync: bool,
    /// When set, fdatasync waits (its writes stay unsynced) until released.
    hold_fsync: bool,
    fsync_count: u64,
    /// When set, `sync_dir` and `write_file_atomic` wait before they take effect.
    hold_dir_ops: bool,
    /// Held directory operations allowed to proceed.
    dir_op_passes: u64,
    /// Directory operations waiting on the hold.
    dir_ops_waiting: usize,
}

/// The simulated disk; clones share the same state.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Rc<RefCell<SimState>>,
    released: Event,
    dir_released: Event,
}

/// A small deterministic PRNG (splitmix64) so crash images replay from a seed.
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl SimDisk {
    pub fn new() -> Self {
        SimDisk::default()
    }

    /// Limits the bytes all files together may hold (None: unlimited).
    pub fn set_space_bytes_max(&self, max: Option<u64>) {
        self.state.borrow_mut().space_bytes_max = max;
    }

    /// Makes every later fdatasync fail (or succeed again).
    pub fn set_fail_fsync(&self, fail: bool) {
        self.state.borrow_mut().fail_fsync = fail;
    }

    /// While held, every fdatasync blocks with its writes not yet durable: a crash image
    /// taken then contains writes in flight, torn or lost.
    pub fn set_hold_fsync(&self, hold: bool) {
        self.state.borrow_mut().hold_fsync = hold;
        if !hold {
            self.released.notify();
        }
    }

    /// While held, every `sync_dir` and `write_file_atomic` waits before it takes effect
    /// until the hold ends or `pass_dir_op` lets it through.
    pub fn set_hold_dir_ops(&self, hold: bool) {
        {
            let mut st = self.state.borrow_mut();
            st.hold_dir_ops = hold;
            st.dir_op_passes = 0;
        }
        self.dir_released.notify();
    }

    /// Lets one held directory operation (waiting now, or the next one) proceed.
    pub fn pass_dir_op(&self) {
        self.state.borrow_mut().dir_op_passes += 1;
        self.dir_released.notify();
    }

    /// Directory operations waiting on the hold now and not let through yet.
    pub fn dir_ops_waiting(&self) -> usize {
        let st = self.state.borrow();
        st.dir_ops_waiting
            .saturating_sub(usize::try_from(st.dir_op_passes).unwrap_or(usize::MAX))
    }

    /// Waits while directory operations are held (see `set_hold_dir_ops`).
    async fn dir_op_gate(&self) {
        let mut waiting = false;
        loop {
            let listener = self.dir_released.listen();
            {
                let mut st = self.state.borrow_mut();
                let pass = st.dir_op_passes > 0;
                if !st.hold_dir_ops || pass {
                    if st.hold_dir_ops {
                        st.dir_op_passes -= 1;
                    }
                    if waiting {
                        st.dir_ops_waiting -= 1;
                    }
                    return;
                }
                if !waiting {
                    st.dir_ops_waiting += 1;
                    waiting = true;
                }
            }
            listener.await;
        }
    }

    pub fn fsync_count(&self) -> u64 {
        self.state.borrow().fsync_count
    }

    /// Paths of all files, for tests that corrupt them.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.borrow().files.keys().cloned().collect()
    }

    /// Current (visible) contents of a file.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.state
            .borrow()
            .files
            .get(path)
            .map(|f| f.borrow().current.clone())
    }

    /// Overwrites bytes of a file as if the medium changed them (durably).
    pub fn corrupt(&self, path: &Path, pos: u64, xor: u8) {
        let mut st = self.state.borrow_mut();
        if let Some(f) = st.files.get_mut(path) {
            let f = &mut *f.borrow_mut();
            for buf in [&mut f.current, &mut f.durable] {
                if let Some(b) = buf.get_mut(pos as usize) {
                    *b ^= xor;
                }
            }
        }
    }

    /// The disk after a power cut: for each file its durable bytes, then each write since
    /// the last fdatasync either lost, applied, or torn (a random subset of its sectors).
    pub fn crash_image(&self, rng: &mut SimRng) -> SimDisk {
        let st = self.state.borrow();
        let mut files = BTreeMap::new();
        for (path, f) in &st.files {
            let f = f.borrow();
            let mut img = f.durable.clone();
            for op in &f.since_sync {
                match rng.below(3) {
                    0 => {}
                    1 => apply(&mut img, op),
                    _ => match op {
                        Op::Write { pos, data } => {
                            let mut at = 0usize;
                            while at < data.len() {
                                let n = (SIM_SECTOR_BYTES as usize).min(data.len() - at);
                                if rng.below(2) == 0 {
                                    let sector = Op::Write {
                                        pos: pos + at as u64,
                                        data: data[at..at + n].to_vec(),
                                    };
                                    apply(&mut img, &sector);
                                }
                                at += n;
                            }
                        }
                        Op::Truncate { .. } => {}
                    },
                }
            }
            files.insert(
                path.clone(),
                Rc::new(RefCell::new(SimFile {
                    current: img.clone(),
                    durable: img,
                    since_sync: Vec::new(),
                })),
            );
        }
        SimDisk {
            state: Rc::new(RefCell::new(SimState {
                files,
                ..SimState::default()
            })),
            released: Event::new(),
            dir_released: Event::new(),
        }
    }

    fn used_bytes(st: &SimState) -> u64 {
        st.files
            .values()
            .map(|f| f.borrow().current.len() as u64)
            .sum()
    }
}

struct SimFileHandle {
    disk: SimDisk,
    file: Rc<RefCell<SimFile>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Disk for SimDisk {
    fn open(&self, path: &Path, create: bool) -> IoFuture<'_, Rc<dyn DiskFile>> {
        let path = path.to_path_buf();
        Box::pin(async move {
            let mut st = self.state.borrow_mut();
            if !st.files.contains_key(&path) {
                if !create {
                    return Err(not_found(&path));
                }
                st.files.insert(path.clone(), Rc::default());
            }
            let f: Rc<dyn DiskFile> = Rc::new(SimFileHandle {
                disk: self.clone(),
                file: st.files[&path].clone(),
            });
            Ok(f)
        })
    }
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.borrow();
        Ok(st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state.borrow_mut().files.remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let f = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> IoFuture<'_, ()> {
        self.state
            .borrow_mut()
            .files
            .retain(|p, _| !p.starts_with(path));
        Box::pin(std::future::ready(Ok(())))
    }
    fn sync_dir(&self, _dir: &Path) -> IoFuture<'_, ()> {
        Box::pin(async move {
            self.dir_op_gate().await;
            Ok(())
        })
    }
    fn write_file_atomic<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> IoFuture<'a, ()> {
        Box::pin(async move {
            self.dir_op_gate().await;
            let mut st = self.state.borrow_mut();
            if st.fail_fsync {
                return Err(io::Error::other("injected fsync failure"));
            }
            let old = st
                .files
                .get(path)
                .map(|f| f.borrow().current.len() as u64)
                .unwrap_or(0);
            if let Some(max) = st.space_bytes_max
                && Self::used_bytes(&st) - old + data.len() as u64 > max
            {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            st.files.insert(
                path.to_path_buf(),
                Rc::new(RefCell::new(SimFile {
                    current: data.to_vec(),
                    durable: data.to_vec(),
                    since_sync: Vec::new(),
                })),
            );
            Ok(())
        })
    }
    fn read_file(&self, path: &Path) -> IoFuture<'_, Option<Vec<u8>>> {
        let r = self
            .state
            .borrow()
            .files
            .get(path)
            .map(|f| f.borrow().current.clone());
        Box::pin(async move { Ok(r) })
    }
}

impl DiskFile for SimFileHandle {
    fn alignment(&self) -> u64 {
        SIM_SECTOR_BYTES
    }
    fn write_at(&self, pos: u64, parts: Vec<Bytes>) -> IoFuture<'_, ()> {
        Box::pin(async move {
            assert_eq!(pos % SIM_SECTOR_BYTES, 0);
            let mut data: Vec<u8> = Vec::new();
            for p in &parts {
                data.extend_from_slice(p);
            }
            data.resize(align_up(data.len() as u64, SIM_SECTOR_BYTES) as usize, 0);
            let st = self.disk.state.borrow();
            let used = SimDisk::used_bytes(&st);
            let space = st.space_bytes_max;
            let f = &mut *self.file.borrow_mut();
            let grow = (pos + data.len() as u64).saturating_sub(f.current.len() as u64);
            if let Some(max) = space
                && used + grow > max
            {
                // Like a short O_DIRECT write on a full device: the sectors that fit
                // (overwritten ones and as many new ones as there is room for) are
                // written, then the write fails.
                let room = max.saturating_sub(used);
                let fits = (f.current.len() as u64).saturating_sub(pos) + room;
                let fits = fits - fits % SIM_SECTOR_BYTES;
                if fits > 0 {
                    let op = Op::Write {
                        pos,
                        data: data[..(fits as usize).min(data.len())].to_vec(),
                    };
                    apply(&mut f.current, &op);
                    f.since_sync.push(op);
                }
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let op = Op::Write { pos, data };
            apply(&mut f.current, &op);
            f.since_sync.push(op);
            Ok(())
        })
    }
    fn read_at(&self, pos: u64, len: usize) -> IoFuture<'_, Bytes> {
        let r = {
            let f = self.file.borrow();
            let start = (pos as usize).min(f.current.len());
            let end = (pos as usize).saturating_add(len).min(f.current.len());
            Bytes::copy_from_slice(&f.current[start..end])
        };
        Box::pin(async move { Ok(r) })
    }
    fn fdatasync(&self) -> IoFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let listener = self.disk.released.listen();
                if !self.disk.state.borrow().hold_fsync {
                    break;
                }
                listener.await;
            }
            let mut st = self.disk.state.borrow_mut();
            st.fsync_count += 1;
            if st.fail_fsync {
                return Err(io::Error::other("injected fsync failure"));
            }
            drop(st);
            let f = &mut *self.file.borrow_mut();
            let ops = std::mem::take(&mut f.since_sync);
            for op in &ops {
                apply(&mut f.durable, op);
            }
            Ok(())
        })
    }
    fn truncate(&self, len: u64) -> IoFuture<'_, ()> {
        Box::pin(async move {
            let f = &mut *self.file.borrow_mut();
            let op = Op::Truncate { len };
            apply(&mut f.current, &op);
            f.since_sync.push(op);
            Ok(())
        })
    }
    fn size(&self) -> IoFuture<'_, u64> {
        let r = self.file.borrow().current.len() as u64;
        Box::pin(async move { Ok(r) })
    }
}
