//! Storage-engine benchmark, all on one directory of the same disk, each engine number
//! next to a raw O_DIRECT baseline the benchmark measures itself:
//! (a) durable sequential appends of 1 MiB batches vs raw 1 MiB write+fdatasync,
//! (b) 64 concurrent appenders of 16 KiB batches waiting for durability (group commit):
//!     throughput and latency, vs the raw 4 KiB write+fdatasync latency,
//! (c) read throughput from the read cache and from disk,
//! (d) recovery time per GiB after an unclean stop.
//! `cargo bench -p sluice-engine` runs full size; under `cargo test` it runs tiny inputs.
//! `SLUICE_BENCH_DIR` picks the directory (default: a temp dir under the target dir).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::DmaFile;
use hdrhistogram::Histogram;
use sluice_engine::batch::build_test_batch;
use sluice_engine::{LeaderEpoch, Log, LogConfig, Offset, ReadCache};

struct Sizes {
    seq_bytes: u64,
    concurrent_batches_each: u64,
    raw_small_syncs: u64,
    read_bytes: u64,
    recovery_bytes: u64,
}

const MIB: u64 = 1 << 20;

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

async fn raw_small_sync_latency(path: &Path, n: u64) -> Histogram<u64> {
    let f: DmaFile = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .unwrap();
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 0..n {
        let mut buf = f.alloc_dma_buffer(4096);
        buf.as_bytes_mut().fill(i as u8);
        let t = Instant::now();
        f.write_at(buf, i * 4096).await.unwrap();
        f.fdatasync().await.unwrap();
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    f.close().await.unwrap();
    std::fs::remove_file(path).unwrap();
    h
}

fn config() -> LogConfig {
    LogConfig {
        max_message_bytes: 2 << 20,
        flush_interval_ms: 1000,
        ..LogConfig::default()
    }
}

async fn bench(dir: PathBuf, s: Sizes) {
    let cache = ReadCache::new(256 * MIB);
    // (a) Durable sequential 1 MiB appends vs raw O_DIRECT 1 MiB write + fdatasync. Raw
    // and engine operations alternate one by one so both see the same background load
    // (the machine is shared). Buffers are prepared outside the timed regions.
    let log = Log::open(&dir.join("seq-0"), config(), cache.clone())
        .await
        .unwrap();
    let payload = build_test_batch(16, MIB as usize - 61, 0, None);
    let raw_file = Rc::new(
        glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(dir.join("raw-seq"))
            .await
            .unwrap(),
    );
    let (mut raw_time, mut eng_time) = (Duration::ZERO, Duration::ZERO);
    let mut raw_pos = 0u64;
    let mut appended = 0u64;
    for _ in 0..s.seq_bytes / MIB {
        let mut buf = raw_file.alloc_dma_buffer(MIB as usize);
        buf.as_bytes_mut().fill(0x5a);
        let start = Instant::now();
        raw_file.write_at(buf, raw_pos).await.unwrap();
        raw_file.fdatasync().await.unwrap();
        raw_time += start.elapsed();
        raw_pos += MIB;
        let batch = Bytes::from(payload.clone());
        let start = Instant::now();
        let info = log.append(batch, LeaderEpoch(0), 0).unwrap();
        log.wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .unwrap();
        eng_time += start.elapsed();
        appended += payload.len() as u64;
    }
    let (raw_t, eng_t) = (mib_per_s(raw_pos, raw_time), mib_per_s(appended, eng_time));
    println!(
        "(a) sequential 1 MiB appends, each durable: engine {eng_t:.0} MiB/s, raw O_DIRECT write+fdatasync {raw_t:.0} MiB/s, ratio {:.2}",
        eng_t / raw_t
    );
    // Streaming: 64 MiB groups, durable at the end of each group. Raw keeps all 64 1 MiB
    // writes of a group in flight, then fdatasyncs, like the engine's flush does.
    let group = 64u64.min(s.seq_bytes / MIB);
    let (mut raw_time, mut eng_time) = (Duration::ZERO, Duration::ZERO);
    let (mut raw_bytes, mut eng_bytes) = (0u64, 0u64);
    for _ in 0..(s.seq_bytes / MIB / group).max(1) {
        let bufs: Vec<_> = (0..group)
            .map(|_| {
                let mut b = raw_file.alloc_dma_buffer(MIB as usize);
                b.as_bytes_mut().fill(0x5a);
                b
            })
            .collect();
        let start = Instant::now();
        let tasks: Vec<_> = bufs
            .into_iter()
            .map(|b| {
                let f = raw_file.clone();
                let at = raw_pos;
                raw_pos += MIB;
                glommio::spawn_local(async move { f.write_at(b, at).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        raw_file.fdatasync().await.unwrap();
        raw_time += start.elapsed();
        raw_bytes += group * MIB;
        let batches: Vec<Bytes> = (0..group).map(|_| Bytes::from(payload.clone())).collect();
        let start = Instant::now();
        for b in batches {
            eng_bytes += b.len() as u64;
            log.append(b, LeaderEpoch(0), 0).unwrap();
        }
        log.flush().await.unwrap();
        eng_time += start.elapsed();
    }
    let (raw_t, eng_t) = (
        mib_per_s(raw_bytes, raw_time),
        mib_per_s(eng_bytes, eng_time),
    );
    println!(
        "    streaming, durable every {group} MiB: engine {eng_t:.0} MiB/s, raw O_DIRECT {raw_t:.0} MiB/s, ratio {:.2}",
        eng_t / raw_t
    );
    drop(raw_file);
    std::fs::remove_file(dir.join("raw-seq")).unwrap();

    // (c) Reads: from the cache (tail), then from disk (reopened with a tiny cache).
    let leo = log.log_end_offset();
    let read_from = |log: Rc<Log>, total: u64| async move {
        let start = Instant::now();
        let mut next = log.log_start_offset();
        let mut bytes = 0u64;
        while bytes < total {
            if next >= log.log_end_offset() {
                next = log.log_start_offset();
            }
            let r = log.read(next, MIB as u32).await.unwrap();
            bytes += r.bytes() as u64;
            let last = r.batches.last().unwrap();
            next = Offset(
                sluice_engine::batch::BatchHeader::new(last)
                    .unwrap()
                    .last_offset()
                    .0
                    + 1,
            );
        }
        mib_per_s(bytes, start.elapsed())
    };
    let cached_from = Offset(leo.0 - 16 * 64); // the last 64 MiB are still cached
    let start = Instant::now();
    let mut bytes = 0u64;
    while bytes < s.read_bytes {
        let mut next = cached_from.max(log.log_start_offset());
        while next < leo {
            let r = log.read(next, MIB as u32).await.unwrap();
            bytes += r.bytes() as u64;
            next = Offset(
                sluice_engine::batch::BatchHeader::new(r.batches.last().unwrap())
                    .unwrap()
                    .last_offset()
                    .0
                    + 1,
            );
        }
    }
    let cache_rate = mib_per_s(bytes, start.elapsed());
    log.close().await.unwrap();
    let cold = Log::open(&dir.join("seq-0"), config(), ReadCache::new(MIB))
        .await
        .unwrap();
    let disk_rate = read_from(cold.clone(), s.read_bytes.min(2 * s.seq_bytes)).await;
    println!(
        "(c) reads with 1 MiB fetches: from cache {cache_rate:.0} MiB/s, from disk {disk_rate:.0} MiB/s (CRC checked)"
    );
    cold.clone().delete().await.unwrap();

    // (b) 64 concurrent appenders of 16 KiB batches, each waiting for durability.
    let raw_small = raw_small_sync_latency(&dir.join("raw-small"), s.raw_small_syncs).await;
    let log = Log::open(&dir.join("conc-0"), config(), cache.clone())
        .await
        .unwrap();
    let small = build_test_batch(8, 16 * 1024 - 61, 0, None);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let log = log.clone();
        let small = small.clone();
        let n = s.concurrent_batches_each;
        tasks.push(glommio::spawn_local(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for _ in 0..n {
                let t = Instant::now();
                let info = log
                    .append(Bytes::from(small.clone()), LeaderEpoch(0), 0)
                    .unwrap();
                log.wait_durable(Offset(info.last_offset.0 + 1))
                    .await
                    .unwrap();
                h.record(t.elapsed().as_micros() as u64).unwrap();
            }
            h
        }));
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        h.add(t.await).unwrap();
    }
    let d = start.elapsed();
    let total = 64 * s.concurrent_batches_each * small.len() as u64;
    println!(
        "(b) 64 appenders x 16 KiB, durable: {:.0} MiB/s, {:.0} batches/s, latency p50 {} us p99 {} us max {} us; raw 4 KiB write+fdatasync p50 {} us p99 {} us",
        mib_per_s(total, d),
        (64 * s.concurrent_batches_each) as f64 / d.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        raw_small.value_at_quantile(0.5),
        raw_small.value_at_quantile(0.99),
    );
    log.clone().delete().await.unwrap();

    // (d) Recovery after an unclean stop: everything in one active segment is rescanned.
    let rdir = dir.join("recover-0");
    let log = Log::open(&rdir, config(), cache.clone()).await.unwrap();
    let mut appended = 0u64;
    while appended < s.recovery_bytes {
        log.append(Bytes::from(payload.clone()), LeaderEpoch(0), 0)
            .unwrap();
        appended += payload.len() as u64;
        if appended.is_multiple_of(64 * MIB) {
            log.flush().await.unwrap();
        }
    }
    log.flush().await.unwrap();
    let leo = log.log_end_offset();
    drop(log); // no close: the next open recovers
    let start = Instant::now();
    let log = Log::open(&rdir, config(), cache.clone()).await.unwrap();
    let d = start.elapsed();
    assert_eq!(log.log_end_offset(), leo);
    let per_gib = d.as_secs_f64() * (1u64 << 30) as f64 / appended as f64;
    println!(
        "(d) recovery of {} MiB after an unclean stop: {:.3} s, {per_gib:.2} s per GiB",
        appended / MIB,
        d.as_secs_f64()
    );
    log.delete().await.unwrap();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            seq_bytes: 512 * MIB,
            concurrent_batches_each: 200,
            raw_small_syncs: 2000,
            read_bytes: 1024 * MIB,
            recovery_bytes: 1024 * MIB,
        }
    } else {
        Sizes {
            seq_bytes: 4 * MIB,
            concurrent_batches_each: 2,
            raw_small_syncs: 10,
            read_bytes: 4 * MIB,
            recovery_bytes: 4 * MIB,
        }
    };
    let base = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().to_path_buf()
        });
    let tmp = tempfile::Builder::new()
        .prefix("sluice-bench-")
        .tempdir_in(&base)
        .unwrap();
    let dir = tmp.path().to_path_buf();
    println!(
        "sluice-engine bench in {} ({})",
        dir.display(),
        if full { "full" } else { "tiny" }
    );
    glommio::LocalExecutorBuilder::default()
        .spawn(move || bench(dir, sizes))
        .unwrap()
        .join()
        .unwrap();
}
