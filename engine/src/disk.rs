//! The `Disk` trait: the only way the engine touches files. `DmaDisk` is the real
//! implementation over glommio's O_DIRECT `DmaFile` (io_uring); `SimDisk` (sim_disk.rs)
//! is an in-memory disk for crash tests. Everything here runs on the shard's own
//! executor (directory syncs and whole-file replacements on its blocking thread pool);
//! handles are `Rc` and never cross threads.
//!
//! Data files are written only at aligned positions in aligned lengths (O_DIRECT rules);
//! small metadata files (indexes, checkpoints) are replaced atomically as whole files.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

/// A boxed, local (not `Send`) I/O future.
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + 'a>>;

/// A directory of files as the engine sees it.
pub trait Disk {
    /// Opens `path` for reading and writing, creating it when `create` is set.
    fn open(&self, path: &Path, create: bool) -> IoFuture<'_, Rc<dyn DiskFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` over `to` atomically (POSIX rename). Open handles of the replaced
    /// file keep reading its old bytes. Durable after `sync_dir`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it (a deleted partition).
    fn remove_dir_all(&self, path: &Path) -> IoFuture<'_, ()>;
    /// Makes the directory's entries (created or removed files) durable.
    fn sync_dir(&self, dir: &Path) -> IoFuture<'_, ()>;
    /// Replaces `path` with `data` atomically and durably (temp file, fsync, rename,
    /// directory fsync).
    fn write_file_atomic<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> IoFuture<'a, ()>;
    /// Whole contents of a small file, `None` if it does not exist.
    fn read_file(&self, path: &Path) -> IoFuture<'_, Option<Vec<u8>>>;
}

/// One open data file.
pub trait DiskFile {
    /// O_DIRECT alignment for positions and lengths of writes.
    fn alignment(&self) -> u64;
    /// Writes the concatenation of `parts` at `pos` (aligned), padded with zeros up to
    /// the alignment. Large writes are split at the device's max transfer size.
    fn write_at(&self, pos: u64, parts: Vec<Bytes>) -> IoFuture<'_, ()>;
    /// Reads up to `len` bytes at any `pos`; shorter at the end of the file.
    fn read_at(&self, pos: u64, len: usize) -> IoFuture<'_, Bytes>;
    fn fdatasync(&self) -> IoFuture<'_, ()>;
    fn truncate(&self, len: u64) -> IoFuture<'_, ()>;
    fn size(&self) -> IoFuture<'_, u64>;
}

/// Rounds `v` down to a multiple of `align` (a power of two).
pub fn align_down(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    v & !(align - 1)
}

/// Rounds `v` up to a multiple of `align` (a power of two).
pub fn align_up(v: u64, align: u64) -> u64 {
    align_down(v + align - 1, align)
}

/// The real disk: glommio DMA files for data, std::fs for directory operations and
/// small whole-file metadata (written rarely: roll, close, epoch change).
#[derive(Debug, Clone)]
pub struct DmaDisk {
    /// Largest single I/O; bigger requests are split (the device's max transfer size).
    pub io_bytes_max: usize,
}

impl Default for DmaDisk {
    fn default() -> Self {
        DmaDisk {
            io_bytes_max: 512 << 10,
        }
    }
}

struct DmaDiskFile {
    file: Rc<glommio::io::DmaFile>,
    io_bytes_max: usize,
}

fn glommio_err(e: glommio::GlommioError<()>) -> io::Error {
    match e {
        glommio::GlommioError::IoError(e) => e,
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

impl Disk for DmaDisk {
    fn open(&self, path: &Path, create: bool) -> IoFuture<'_, Rc<dyn DiskFile>> {
        let path = path.to_path_buf();
        Box::pin(async move {
            let file = glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .dma_open(&path)
                .await
                .map_err(glommio_err)?;
            let f: Rc<dyn DiskFile> = Rc::new(DmaDiskFile {
                file: Rc::new(file),
                io_bytes_max: self.io_bytes_max,
            });
            Ok(f)
        })
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    // Directory removals, directory syncs and whole-file replacements run on the
    // executor's blocking thread pool: done inline, their unlinks and fsyncs would stall
    // every task of the shard (every partition's flushes and fetches; deleting a topic of
    // 10,000 partitions stalled its shard for 21 s). The pool has one thread per executor, so they
    // run one at a time and in order, also when a caller's future is dropped meanwhile.
    fn remove_dir_all(&self, path: &Path) -> IoFuture<'_, ()> {
        let path = path.to_path_buf();
        Box::pin(glommio::executor().spawn_blocking(move || std::fs::remove_dir_all(&path)))
    }
    fn sync_dir(&self, dir: &Path) -> IoFuture<'_, ()> {
        let dir = dir.to_path_buf();
        Box::pin(glommio::executor().spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()))
    }
    fn write_file_atomic<'a>(&'a self, path: &'a Path, data: &'a [u8]) -> IoFuture<'a, ()> {
        let path = path.to_path_buf();
        let data = data.to_vec();
        Box::pin(glommio::executor().spawn_blocking(move || {
            use std::io::Write;
            let tmp = tmp_path(&path);
            let written = std::fs::File::create(&tmp).and_then(|mut f| {
                f.write_all(&data)?;
                f.sync_data()
            });
            if let Err(e) = written {
                // On a full disk the partial copy would hold space retention must free.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        }))
    }
    fn read_file(&self, path: &Path) -> IoFuture<'_, Option<Vec<u8>>> {
        let path = path.to_path_buf();
        Box::pin(async move {
            match std::fs::read(&path) {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// The temporary name used while replacing `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

impl DiskFile for DmaDiskFile {
    fn alignment(&self) -> u64 {
        self.file.alignment()
    }

    fn write_at(&self, pos: u64, parts: Vec<Bytes>) -> IoFuture<'_, ()> {
        Box::pin(async move {
            let align = self.file.alignment();
            assert_eq!(pos % align, 0);
            let total: usize = parts.iter().map(|p| p.len()).sum();
            let padded = align_up(total as u64, align) as usize;
            let chunk_max = align_down(self.io_bytes_max as u64, align).max(align) as usize;
            // Fill aligned DMA buffers straight from the parts (the one copy O_DIRECT needs)
            // and keep every chunk of this write in flight at once.
            let mut tasks = Vec::new();
            let mut part_idx = 0usize;
            let mut part_off = 0usize;
            let mut done = 0usize;
            while done < padded {
                let chunk = chunk_max.min(padded - done);
                let mut buf = self.file.alloc_dma_buffer(chunk);
                let out = buf.as_bytes_mut();
                let mut filled = 0usize;
                while filled < chunk && part_idx < parts.len() {
                    let src = &parts[part_idx][part_off..];
                    let n = src.len().min(chunk - filled);
                    out[filled..filled + n].copy_from_slice(&src[..n]);
                    filled += n;
                    part_off += n;
                    if part_off == parts[part_idx].len() {
                        part_idx += 1;
                        part_off = 0;
                    }
                }
                out[filled..].fill(0);
                let file = self.file.clone();
                let at = pos + done as u64;
                tasks.push(glommio::spawn_local(async move {
                    let n = file.write_at(buf, at).await.map_err(glommio_err)?;
                    if n != chunk {
                        // A short O_DIRECT write to a regular file means the device filled
                        // up part-way (the rest would fail with ENOSPC): reported as such,
                        // the caller rewrites the whole range once there is space.
                        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                    }
                    Ok::<(), io::Error>(())
                }));
                done += chunk;
                // Let the write just spawned reach the ring before copying the next chunk,
                // so copies overlap with device time.
                if done < padded {
                    futures_lite::future::yield_now().await;
                }
            }
            let mut first_err = None;
            for t in tasks {
                if let Err(e) = t.await {
                    first_err.get_or_insert(e);
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn read_at(&self, pos: u64, len: usize) -> IoFuture<'_, Bytes> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(len);
            let chunk_max = self.io_bytes_max.max(4096);
            while out.len() < len {
                let want = chunk_max.min(len - out.len());
                let r = self
                    .file
                    .read_at(pos + out.len() as u64, want)
                    .await
                    .map_err(glommio_err)?;
                out.extend_from_slice(&r);
                if r.len() < want {
                    break;
                }
            }
            Ok(Bytes::from(out))
        })
    }

    fn fdatasync(&self) -> IoFuture<'_, ()> {
        Box::pin(async move { self.file.fdatasync().await.map_err(glommio_err) })
    }

    fn truncate(&self, len: u64) -> IoFuture<'_, ()> {
        Box::pin(async move { self.file.truncate(len).await.map_err(glommio_err) })
    }

    fn size(&self) -> IoFuture<'_, u64> {
        Box::pin(async move { self.file.file_size().await.map_err(glommio_err) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves alignment math on the boundaries.
    #[test]
    fn align_math() {
        assert_eq!(align_down(4095, 4096), 0);
        assert_eq!(align_down(4096, 4096), 4096);
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(0, 512), 0);
    }

    // Proves a write made of several parts, larger than the split size, reads back
    // byte for byte through the real DMA file, with zero padding after it.
    #[test]
    fn dma_gather_write_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let disk = DmaDisk { io_bytes_max: 8192 };
                let f = disk.open(&path, true).await.unwrap();
                let a = Bytes::from(vec![1u8; 5000]);
                let b = Bytes::from((0..20000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
                f.write_at(0, vec![a.clone(), b.clone()]).await.unwrap();
                f.fdatasync().await.unwrap();
                let back = f.read_at(0, 25000).await.unwrap();
                assert_eq!(&back[..5000], &a[..]);
                assert_eq!(&back[5000..], &b[..]);
                let pad = f.read_at(25000, 1000).await.unwrap();
                assert!(pad.iter().all(|x| *x == 0));
                assert_eq!(f.size().await.unwrap(), align_up(25000, f.alignment()));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
