//! `sluicectl segment dump <file>` and `sluicectl segment verify <partition-dir>`: offline
//! inspection of segment files. Reads files with plain buffered I/O (never while a
//! broker writes them), streams batch by batch, and checks every CRC32C. Nothing here
//! writes to the partition.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use sluice_engine::batch::{self, BatchHeader, HEADER_BYTES};
use sluice_engine::{offset_index, time_index};

/// Largest batch the walker will allocate for; a larger length field is corruption.
const BATCH_BYTES_MAX: usize = 1 << 30;

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Print every batch of one segment file (offsets, timestamps, sizes, codec, producer).
    Dump {
        /// A `<base_offset>.log` file.
        file: PathBuf,
    },
    /// Check every batch CRC, offset continuity and the indexes of a partition directory.
    Verify {
        /// A partition directory (`<topic>-<partition>`).
        dir: PathBuf,
    },
}

pub fn run(command: SegmentCommand) -> anyhow::Result<()> {
    match command {
        SegmentCommand::Dump { file } => dump(&file),
        SegmentCommand::Verify { dir } => verify(&dir),
    }
}

/// How a walk over one segment ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    /// Only zero bytes after the last batch: O_DIRECT padding left by an unclean stop.
    Padding {
        position: u64,
        bytes: u64,
    },
    Bad {
        position: u64,
        reason: String,
    },
}

struct Walk {
    batches: u64,
    records: u64,
    first_offset: Option<i64>,
    next_offset: Option<i64>,
    end: End,
}

/// Streams the batches of `path`, calling `each` with the position and whole batch.
fn walk(path: &Path, mut each: impl FnMut(u64, &BatchHeader<'_>)) -> anyhow::Result<Walk> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut w = Walk {
        batches: 0,
        records: 0,
        first_offset: None,
        next_offset: None,
        end: End::Clean,
    };
    let mut pos = 0u64;
    let mut buf = Vec::new();
    while pos < len {
        let left = len - pos;
        if left < HEADER_BYTES as u64 {
            let mut rest = vec![0u8; left as usize];
            r.read_exact(&mut rest)?;
            w.end = if rest.iter().all(|b| *b == 0) {
                End::Padding {
                    position: pos,
                    bytes: left,
                }
            } else {
                End::Bad {
                    position: pos,
                    reason: format!("{left} bytes left, too short for a header"),
                }
            };
            return Ok(w);
        }
        buf.resize(HEADER_BYTES, 0);
        r.read_exact(&mut buf)?;
        let h = BatchHeader::new(&buf).expect("61 bytes");
        let total = match h.total_bytes() {
            Some(t) if t as u64 <= left && t <= BATCH_BYTES_MAX => t,
            _ => {
                let zeros = buf.iter().all(|b| *b == 0);
                w.end = if zeros && rest_is_zero(&mut r)? {
                    End::Padding {
                        position: pos,
                        bytes: left,
                    }
                } else {
                    End::Bad {
                        position: pos,
                        reason: format!("batch length {} with {left} bytes left", h.batch_length()),
                    }
                };
                return Ok(w);
            }
        };
        buf.resize(total, 0);
        r.read_exact(&mut buf[HEADER_BYTES..])?;
        let h = match batch::validate_stored(&buf) {
            Ok(h) => h,
            Err(e) => {
                w.end = End::Bad {
                    position: pos,
                    reason: e.to_string(),
                };
                return Ok(w);
            }
        };
        if let Some(expected) = w.next_offset
            && h.base_offset().0 != expected
        {
            w.end = End::Bad {
                position: pos,
                reason: format!(
                    "base offset {} where {expected} was expected",
                    h.base_offset().0
                ),
            };
            return Ok(w);
        }
        w.first_offset.get_or_insert(h.base_offset().0);
        w.next_offset = Some(h.last_offset().0 + 1);
        w.batches += 1;
        w.records += h.records_count() as u64;
        each(pos, &h);
        pos += total as u64;
    }
    Ok(w)
}

fn rest_is_zero(r: &mut impl Read) -> anyhow::Result<bool> {
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

fn dump(path: &Path) -> anyhow::Result<()> {
    let w = walk(path, |pos, h| {
        let mut flags = String::new();
        if h.is_transactional() {
            flags.push_str(" transactional");
        }
        if h.is_control() {
            flags.push_str(" control");
        }
        println!(
            "offset {}..{} position {pos} bytes {} records {} epoch {} timestamp {}..{} ({:?}) codec {:?} producer {} epoch {} sequence {}{flags} crc ok",
            h.base_offset().0,
            h.last_offset().0,
            h.total_bytes().unwrap_or(0),
            h.records_count(),
            h.partition_leader_epoch(),
            h.base_timestamp(),
            h.max_timestamp(),
            h.timestamp_type(),
            h.codec(),
            h.producer_id(),
            h.producer_epoch(),
            h.base_sequence(),
        );
    })?;
    println!("{} batches, {} records", w.batches, w.records);
    match w.end {
        End::Clean => Ok(()),
        End::Padding { position, bytes } => {
            println!(
                "{bytes} zero bytes of padding at {position} (unclean stop; recovery trims them)"
            );
            Ok(())
        }
        End::Bad { position, reason } => {
            bail!("{}: bad batch at byte {position}: {reason}", path.display())
        }
    }
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    let mut segments: Vec<(i64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<i64>()
        {
            segments.push((base, entry.path()));
        }
    }
    segments.sort();
    let mut problems = 0u32;
    let mut expected_base: Option<i64> = None;
    let (mut batches, mut records) = (0u64, 0u64);
    for (i, (base, path)) in segments.iter().enumerate() {
        let w = walk(path, |_, _| {})?;
        batches += w.batches;
        records += w.records;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(first) = w.first_offset
            && first != *base
        {
            println!("{name}: first batch at offset {first}, file name says {base}");
            problems += 1;
        }
        if let Some(e) = expected_base
            && e != *base
        {
            println!("{name}: starts at {base} but the previous segment ends at {e}");
            problems += 1;
        }
        expected_base = Some(w.next_offset.unwrap_or(*base));
        let last = i + 1 == segments.len();
        match &w.end {
            End::Clean => {}
            End::Padding { position, bytes } if last => {
                println!(
                    "{name}: {bytes} zero bytes of padding at {position} (unclean stop; recovery trims them)"
                );
            }
            End::Padding { position, .. } => {
                println!("{name}: zero bytes at {position} in a sealed segment");
                problems += 1;
            }
            End::Bad { position, reason } => {
                println!("{name}: bad batch at byte {position}: {reason}");
                problems += 1;
            }
        }
        let size = std::fs::metadata(path)?.len();
        let oi = std::fs::read(path.with_extension("index")).ok();
        let ti = std::fs::read(path.with_extension("timeindex")).ok();
        match (
            oi.as_deref().map(offset_index::decode),
            ti.as_deref().map(time_index::decode),
        ) {
            (Some(Some((_, ot))), Some(Some(_))) if ot.segment_bytes == size => {}
            (None, _) | (_, None) if last => {}
            _ => println!("{name}: indexes missing, damaged or stale (rebuilt on open)"),
        }
        println!(
            "{name}: {} batches, offsets {}..{}, {size} bytes",
            w.batches,
            w.first_offset.unwrap_or(*base),
            w.next_offset.unwrap_or(*base)
        );
    }
    println!(
        "{} segments, {batches} batches, {records} records, {problems} problems",
        segments.len()
    );
    if problems > 0 {
        bail!("{problems} problems in {}", dir.display());
    }
    Ok(())
}
