//! Durable topic metadata: the `TopicStore` trait (the cluster work will replace the
//! implementation with a replicated log) and `FileTopicStore`, a single text file in the
//! data directory, checked by CRC32 and replaced atomically (write tmp, fsync, rename,
//! fsync dir). Only shard 0 writes it; it is read once at startup. The producer-id block
//! file lives here too, with the same write discipline.
//!
//! File layout (`topics.meta`), one record per line, in creation order:
//! ```text
//! sluice-topics v1 crc32=<8 hex digits over everything after this line>
//! topic <name> <uuid as 32 hex digits> <partition count>
//! config <name> <key>=<value>
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::topic_table::{PARTITIONS_MAX, valid_topic_name};

/// One topic as persisted: placement is not stored, it is recomputed on load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Where topic metadata is kept. `save` is given every topic, in creation order.
pub trait TopicStore: Send {
    fn load(&self) -> Result<Vec<TopicRecord>, StoreError>;
    fn save(&self, topics: &[TopicRecord]) -> Result<(), StoreError>;
}

/// Largest metadata file read back; bounds the allocation on load.
const META_FILE_BYTES_MAX: u64 = 64 << 20;
const HEADER_PREFIX: &str = "sluice-topics v1 crc32=";

pub struct FileTopicStore {
    path: PathBuf,
}

impl FileTopicStore {
    pub fn new(data_dir: &Path) -> Self {
        FileTopicStore {
            path: data_dir.join("topics.meta"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `body` to `path` atomically: a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, body: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(body).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        let d = fs::File::open(dir).map_err(io_err(dir))?;
        d.sync_all().map_err(io_err(dir))?;
    }
    Ok(())
}

/// Reads a file written by `write_atomically` with a `<prefix><crc hex>` first line.
fn read_checked(path: &Path, prefix: &str) -> Result<Option<String>, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if meta.len() > META_FILE_BYTES_MAX {
        return Err(corrupt("file too large"));
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let (header, body) = text.split_once('\n').ok_or_else(|| corrupt("no header"))?;
    let crc_hex = header
        .strip_prefix(prefix)
        .ok_or_else(|| corrupt("bad header"))?;
    let crc = u32::from_str_radix(crc_hex, 16).map_err(|_| corrupt("bad crc field"))?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err(corrupt("crc mismatch"));
    }
    Ok(Some(body.to_string()))
}

fn with_header(prefix: &str, body: &str) -> String {
    format!("{prefix}{:08x}\n{body}", crc32fast::hash(body.as_bytes()))
}

impl TopicStore for FileTopicStore {
    fn load(&self) -> Result<Vec<TopicRecord>, StoreError> {
        let Some(body) = read_checked(&self.path, HEADER_PREFIX)? else {
            return Ok(Vec::new());
        };
        parse_topics(&body).map_err(|reason| StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        })
    }

    fn save(&self, topics: &[TopicRecord]) -> Result<(), StoreError> {
        let body = render_topics(topics);
        write_atomically(&self.path, with_header(HEADER_PREFIX, &body).as_bytes())
    }
}

fn render_topics(topics: &[TopicRecord]) -> String {
    let mut s = String::new();
    for t in topics {
        s.push_str(&format!(
            "topic {} {} {}\n",
            t.name,
            t.id.simple(),
            t.partitions
        ));
        for (k, v) in &t.configs {
            // Values are validated config values: no newlines, so one line each.
            assert!(!v.contains('\n') && !k.contains('\n'));
            s.push_str(&format!("config {} {}={}\n", t.name, k, v));
        }
    }
    s
}

fn parse_topics(body: &str) -> Result<Vec<TopicRecord>, String> {
    let mut out: Vec<TopicRecord> = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let bad = || format!("line {}: {line:?}", n + 2);
        let mut parts = line.splitn(4, ' ');
        match parts.next() {
            Some("topic") => {
                let name = parts.next().ok_or_else(bad)?;
                let id = parts.next().ok_or_else(bad)?;
                let count = parts.next().ok_or_else(bad)?;
                let id = Uuid::try_parse(id).map_err(|_| bad())?;
                let partitions: i32 = count.parse().map_err(|_| bad())?;
                if !valid_topic_name(name) || !(1..=PARTITIONS_MAX).contains(&partitions) {
                    return Err(bad());
                }
                out.push(TopicRecord {
                    name: name.to_string(),
                    id,
                    partitions,
                    configs: BTreeMap::new(),
                });
            }
            Some("config") => {
                let name = parts.next().ok_or_else(bad)?;
                let rest = line
                    .split_once(' ')
                    .and_then(|(_, r)| r.split_once(' '))
                    .map(|(_, r)| r)
                    .ok_or_else(bad)?;
                let (k, v) = rest.split_once('=').ok_or_else(bad)?;
                let t = out
                    .iter_mut()
                    .rev()
                    .find(|t| t.name == name)
                    .ok_or_else(bad)?;
                t.configs.insert(k.to_string(), v.to_string());
            }
            Some("") if line.is_empty() => {}
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Reads the cluster id from `<data-dir>/cluster.id`, creating a random one on first start.
pub fn load_or_create_cluster_id(data_dir: &Path) -> Result<String, StoreError> {
    const PREFIX: &str = "sluice-cluster-id v1 crc32=";
    let path = data_dir.join("cluster.id");
    if let Some(body) = read_checked(&path, PREFIX)? {
        return Ok(body.trim().to_string());
    }
    let id = Uuid::from_u128(rand::random::<u128>()).simple().to_string();
    write_atomically(&path, with_header(PREFIX, &format!("{id}\n")).as_bytes())?;
    Ok(id)
}

/// Producer ids are handed out from blocks; the end of the current block is persisted
/// before any id in it is used, so after a restart ids start past every id ever issued.
#[derive(Clone)]
pub struct ProducerIdBlocks {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

const PRODUCER_ID_PREFIX: &str = "sluice-producer-ids v1 crc32=";
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl ProducerIdBlocks {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("producer-ids.meta");
        let start = match read_checked(&path, PRODUCER_ID_PREFIX)? {
            None => 0,
            Some(body) => body
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| StoreError::Corrupt {
                    path: path.clone(),
                    reason: "bad block end".into(),
                })?,
        };
        Ok(ProducerIdBlocks {
            path,
            next: start,
            block_end: start,
        })
    }

    /// Whether `next_id` must persist a new block first (a blocking fsync).
    pub fn needs_new_block(&self) -> bool {
        self.next >= self.block_end
    }

    /// Persists the next block; call when `needs_new_block`.
    pub fn reserve_block(&mut self) -> Result<(), StoreError> {
        let end = self.block_end + PRODUCER_ID_BLOCK;
        let body = format!("{end}\n");
        write_atomically(
            &self.path,
            with_header(PRODUCER_ID_PREFIX, &body).as_bytes(),
        )?;
        self.block_end = end;
        Ok(())
    }

    /// The next unused producer id; `None` if a block must be reserved first.
    pub fn next_id(&mut self) -> Option<i64> {
        if self.needs_new_block() {
            return None;
        }
        let id = self.next;
        self.next += 1;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves topics and configs survive a save/load round trip through a real file, and
    // that a flipped byte is detected as corruption instead of being loaded.
    #[test]
    fn round_trip_and_crc() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTopicStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        configs.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let topics = vec![
            TopicRecord {
                name: "a".into(),
                id: Uuid::from_u128(7),
                partitions: 3,
                configs,
            },
            TopicRecord {
                name: "b.c_d-e".into(),
                id: Uuid::from_u128(8),
                partitions: 1,
                configs: BTreeMap::new(),
            },
        ];
        store.save(&topics).unwrap();
        assert_eq!(store.load().unwrap(), topics);
        let path = dir.path().join("topics.meta");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
    }

    // Proves producer ids never repeat across a reopen, even when the block was not used up.
    #[test]
    fn producer_ids_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ProducerIdBlocks::open(dir.path()).unwrap();
        assert_eq!(p.next_id(), None);
        p.reserve_block().unwrap();
        let a = p.next_id().unwrap();
        let b = p.next_id().unwrap();
        assert!(b > a);
        drop(p);
        let mut p = ProducerIdBlocks::open(dir.path()).unwrap();
        p.reserve_block().unwrap();
        let c = p.next_id().unwrap();
        assert!(c > b);
    }
}
