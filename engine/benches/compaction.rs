//! Compaction benchmark on real O_DIRECT files: a log of N records over K keys (batches
//! of 100, uncompressed and lz4) is compacted by `Log::compact` in 256 KiB slices with a
//! 1 ms pause between them (as the broker runs it) until nothing is left to do. Prints
//! records and bytes cleaned per second, the size before and after, the longest single
//! slice, and how late a 1 ms ticker on the same executor ran meanwhile (p99, max): the
//! stall an append or fetch on that shard would see. A prober appends one small record to
//! the same log every 1 ms on a fixed schedule (each append its own task) and waits until
//! it is durable, before and during compaction, timed from the scheduled start: the
//! latency an acks=all produce or an OffsetCommit to that partition would see (p50, p99,
//! max).
//! The result is checked: exactly one record per key, the newest.
//! A second run isolates the segment swap: 64 KiB segments whose every second record is
//! superseded by the next one (so each segment is rewritten and swapped in, with its
//! directory syncs and index writes), cleaned in 16 KiB slices (little CPU per slice),
//! with the same durable-append prober; it prints the swaps made and the prober's
//! latencies.
//! A third run times the first pass after a restart: a log of N records over N/2 keys is
//! compacted, gets N/20 newer values (one dirty segment), is closed and reopened, and
//! compacted again, once with the cleaner checkpoint and once with it removed (every
//! byte dirty, as before the checkpoint existed). It prints, for both, the pass's time,
//! the bytes it read and mapped (the dirty share `min.cleanable.dirty.ratio` judges), and
//! the segments and bytes it rewrote.
//! `cargo bench -p sluice-engine --bench compaction` runs 1M records over 10k keys (and
//! 100k records in the swap run, 1M over 500k keys in the restart run); under
//! `cargo test` it runs a tiny input. A further argument (`-- restart`, `-- swap`,
//! `-- codec`) runs only the runs whose name contains it. `SLUICE_BENCH_DIR` picks the
//! directory.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_engine::batch::BatchHeader;
use sluice_engine::record::{KeyValue, build_batch, decode_batch};
use sluice_engine::{CleanupPolicy, LeaderEpoch, Log, LogConfig, Offset, ReadCache};

const T0: i64 = 1_700_000_000_000;
const RECORDS_PER_BATCH: i64 = 100;
const SLICE_BYTES: u64 = 256 << 10;
const PAUSE: Duration = Duration::from_millis(1);
/// Durable appends the prober makes before compaction starts (the idle reference).
const PROBES_IDLE: u32 = 300;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 << 20,
        segment_ms: 1,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_permille: 0,
        flush_interval_ms: 1000,
        ..LogConfig::default()
    }
}

/// Open-loop prober: starts one durable append of a small record every 1 ms on a fixed
/// schedule, each as its own task (so they share flushes as concurrent producers do,
/// and a slow one never delays the next), while `more(probes so far)`. Each latency is
/// taken from the scheduled start, so a stall of the executor counts as well as a wait
/// for the log's locks: what an acks=all producer would see.
async fn probes(log: &Rc<Log>, more: impl Fn(u64) -> bool) -> hdrhistogram::Histogram<u64> {
    let h = Rc::new(RefCell::new(
        hdrhistogram::Histogram::<u64>::new(3).unwrap(),
    ));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while more(n) {
        let due = start + PAUSE * n as u32;
        let now = Instant::now();
        if due > now {
            glommio::timer::sleep(due - now).await;
        }
        let (log, h) = (log.clone(), h.clone());
        tasks.push(glommio::spawn_local(async move {
            let value = format!("probe-{n}");
            let b = build_batch(
                0,
                T0,
                0,
                &[(Some(b"probe".as_slice()), Some(value.as_bytes()))],
            );
            let info = log.append(Bytes::from(b), LeaderEpoch(0), T0).unwrap();
            log.wait_durable(Offset(info.last_offset.0 + 1))
                .await
                .unwrap();
            h.borrow_mut()
                .record(due.elapsed().as_micros() as u64)
                .unwrap();
        }));
        n += 1;
    }
    for t in tasks {
        t.await;
    }
    Rc::try_unwrap(h).unwrap().into_inner()
}

fn micros(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Appends `records` keyed records in batches of `RECORDS_PER_BATCH` with `codec`; the
/// record at offset `o` has key number `key_of(o)` and a value naming its offset.
fn append_keyed(log: &Log, records: i64, codec: i16, key_of: impl Fn(i64) -> i64) {
    for b in 0..records / RECORDS_PER_BATCH {
        let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                let o = b * RECORDS_PER_BATCH + i;
                (
                    format!("key-{:08}", key_of(o)).into_bytes(),
                    format!("value-of-offset-{o:012}").into_bytes(),
                )
            })
            .collect();
        let refs: Vec<KeyValue<'_>> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        log.append(
            Bytes::from(build_batch(0, T0, codec, &refs)),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
    }
}

async fn run_one(dir: PathBuf, records: i64, keys: i64, codec: i16) {
    let log = Log::open(&dir, config(), ReadCache::new(64 << 20))
        .await
        .unwrap();
    append_keyed(&log, records, codec, |o| o % keys);
    log.enforce_retention(T0 + 1000, log.log_end_offset())
        .await
        .unwrap();
    log.flush().await.unwrap();
    let bytes_before = log.size_bytes();
    let idle = probes(&log, |n| n < u64::from(PROBES_IDLE)).await;
    let ticking = Rc::new(std::cell::Cell::new(true));
    let ticker = {
        let ticking = ticking.clone();
        glommio::spawn_local(async move {
            let mut late = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            while ticking.get() {
                let t = Instant::now();
                glommio::timer::sleep(PAUSE).await;
                let over = t.elapsed().saturating_sub(PAUSE);
                late.record(over.as_micros() as u64).unwrap();
            }
            late
        })
    };
    let prober = {
        let (ticking, log) = (ticking.clone(), log.clone());
        glommio::spawn_local(async move { probes(&log, |_| ticking.get()).await })
    };
    let started = Instant::now();
    let mut slice_max = Duration::ZERO;
    let (mut calls, mut read) = (0u32, 0u64);
    loop {
        let t = Instant::now();
        let o = log
            .compact(T0, SLICE_BYTES, log.log_end_offset())
            .await
            .unwrap();
        slice_max = slice_max.max(t.elapsed());
        if std::env::var_os("SLUICE_BENCH_VERBOSE").is_some() {
            println!("slice {calls}: {:?} {o:?}", t.elapsed());
        }
        calls += 1;
        read += o.bytes_read;
        if o.idle && !o.pass_finished {
            break;
        }
        glommio::timer::sleep(PAUSE).await;
    }
    let took = started.elapsed();
    ticking.set(false);
    let late = ticker.await;
    let durable = prober.await;
    let bytes_after = log.size_bytes();
    // Check: one record per key, the newest, at its original offset (the prober's records
    // come after them).
    let mut left = 0i64;
    let mut next = log.log_start_offset();
    loop {
        let r = log.read(next, 1 << 20).await.unwrap();
        if r.batches.is_empty() {
            break;
        }
        for b in &r.batches {
            let h = BatchHeader::new(b).unwrap();
            for rec in decode_batch(b, 1 << 20).unwrap().records {
                let o = h.base_offset().0 + i64::from(rec.offset_delta);
                if o >= records {
                    continue;
                }
                assert!(o >= records - keys, "offset {o} is not a newest one");
                let want = format!("value-of-offset-{o:012}");
                assert_eq!(rec.value.as_deref(), Some(want.as_bytes()));
                left += 1;
            }
            next = Offset(h.last_offset().0 + 1);
        }
    }
    assert_eq!(left, keys);
    println!(
        "codec {codec}: {records} records over {keys} keys: compacted in {:.2} s ({:.0} records/s, {:.1} MiB/s read), \
         {:.1} MiB -> {:.2} MiB, {calls} slices of {} KiB, longest slice {:.1} ms, \
         1 ms ticker late by p99 {:.1} ms max {:.1} ms; \
         durable append every 1 ms: idle p50 {:.2} p99 {:.2} max {:.2} ms, \
         while compacting ({} appends) p50 {:.2} p99 {:.2} max {:.2} ms",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        read as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        bytes_before as f64 / (1 << 20) as f64,
        bytes_after as f64 / (1 << 20) as f64,
        SLICE_BYTES >> 10,
        slice_max.as_secs_f64() * 1000.0,
        late.value_at_quantile(0.99) as f64 / 1000.0,
        late.max() as f64 / 1000.0,
        micros(&idle, 0.5),
        micros(&idle, 0.99),
        idle.max() as f64 / 1000.0,
        durable.len(),
        micros(&durable, 0.5),
        micros(&durable, 0.99),
        durable.max() as f64 / 1000.0,
    );
    log.close().await.unwrap();
}

/// Segment size and slice of the swap run.
const SWAP_SEGMENT_BYTES: u64 = 64 << 10;
const SWAP_SLICE_BYTES: u64 = 16 << 10;

async fn run_swaps(dir: PathBuf, records: i64) {
    let cfg = LogConfig {
        segment_bytes_max: SWAP_SEGMENT_BYTES,
        ..config()
    };
    let log = Log::open(&dir, cfg, ReadCache::new(64 << 20))
        .await
        .unwrap();
    append_keyed(&log, records, 0, |o| o / 2);
    log.enforce_retention(T0 + 1000, log.log_end_offset())
        .await
        .unwrap();
    log.flush().await.unwrap();
    let segments = log.segment_count();
    let idle = probes(&log, |n| n < u64::from(PROBES_IDLE)).await;
    let probing = Rc::new(std::cell::Cell::new(true));
    let prober = {
        let (probing, log) = (probing.clone(), log.clone());
        glommio::spawn_local(async move { probes(&log, |_| probing.get()).await })
    };
    let started = Instant::now();
    let mut swapped = 0u32;
    loop {
        let o = log
            .compact(T0, SWAP_SLICE_BYTES, log.log_end_offset())
            .await
            .unwrap();
        swapped += o.segments_cleaned;
        if o.idle && !o.pass_finished {
            break;
        }
        glommio::timer::sleep(PAUSE).await;
    }
    let took = started.elapsed();
    probing.set(false);
    let durable = prober.await;
    // Check: exactly the odd offsets are left below `records` (the probes come after).
    let (mut left, mut next) = (0i64, log.log_start_offset());
    loop {
        let r = log.read(next, 1 << 20).await.unwrap();
        if r.batches.is_empty() {
            break;
        }
        for b in &r.batches {
            let h = BatchHeader::new(b).unwrap();
            for rec in decode_batch(b, 1 << 20).unwrap().records {
                let o = h.base_offset().0 + i64::from(rec.offset_delta);
                if o < records {
                    assert_eq!(o % 2, 1, "offset {o} was superseded");
                    left += 1;
                }
            }
            next = Offset(h.last_offset().0 + 1);
        }
    }
    assert_eq!(left, records / 2);
    println!(
        "swap run: {records} records in {segments} segments of {} KiB, {swapped} swapped in {:.2} s \
         ({} KiB slices); durable append every 1 ms: idle p50 {:.2} p99 {:.2} max {:.2} ms, \
         while compacting ({} appends) p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
        SWAP_SEGMENT_BYTES >> 10,
        took.as_secs_f64(),
        SWAP_SLICE_BYTES >> 10,
        micros(&idle, 0.5),
        micros(&idle, 0.99),
        idle.max() as f64 / 1000.0,
        durable.len(),
        micros(&durable, 0.5),
        micros(&durable, 0.99),
        micros(&durable, 0.999),
        durable.max() as f64 / 1000.0,
    );
    log.close().await.unwrap();
}

/// Builds the restart run's log in `dir` and closes it: `records` over `records / 2`
/// keys, compacted, then `records / 20` newer values of the first keys in a closed
/// segment and one record in the active segment (so the dirty segment stays closed after
/// the reopen).
async fn restart_log(dir: &std::path::Path, records: i64) {
    let log = Log::open(dir, config(), ReadCache::new(64 << 20))
        .await
        .unwrap();
    let keys = records / 2;
    append_keyed(&log, records, 0, |o| o % keys);
    log.enforce_retention(T0 + 1000, log.log_end_offset())
        .await
        .unwrap();
    log.flush().await.unwrap();
    while !log
        .compact(T0, 64 << 20, log.log_end_offset())
        .await
        .unwrap()
        .idle
    {}
    let base = log.log_end_offset().0;
    let newer = records / 20;
    for b in 0..newer / RECORDS_PER_BATCH {
        let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                let n = b * RECORDS_PER_BATCH + i;
                (
                    format!("key-{n:08}").into_bytes(),
                    format!("value-of-offset-{:012}", base + n).into_bytes(),
                )
            })
            .collect();
        let refs: Vec<KeyValue<'_>> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        log.append(
            Bytes::from(build_batch(0, T0, 0, &refs)),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
    }
    log.enforce_retention(T0 + 1000, log.log_end_offset())
        .await
        .unwrap();
    let tail = build_batch(
        0,
        T0,
        0,
        &[(Some(b"tail".as_slice()), Some(b"x".as_slice()))],
    );
    log.append(Bytes::from(tail), LeaderEpoch(0), T0).unwrap();
    log.flush().await.unwrap();
    log.close().await.unwrap();
}

async fn run_restart(dir: PathBuf, records: i64) {
    for with_checkpoint in [true, false] {
        let dir = dir.join(if with_checkpoint { "with" } else { "without" });
        restart_log(&dir, records).await;
        let checkpoint = dir.join(sluice_engine::checkpoint::CLEANER_FILE);
        assert!(checkpoint.exists());
        if !with_checkpoint {
            std::fs::remove_file(&checkpoint).unwrap();
        }
        let log = Log::open(&dir, config(), ReadCache::new(64 << 20))
            .await
            .unwrap();
        let size = log.size_bytes();
        let started = Instant::now();
        let mut sum = sluice_engine::CompactOutcome::default();
        let mut calls = 0u32;
        loop {
            calls += 1;
            let o = log
                .compact(T0, SLICE_BYTES, log.log_end_offset())
                .await
                .unwrap();
            sum.add(&o);
            if o.idle && !o.pass_finished {
                break;
            }
            glommio::timer::sleep(PAUSE).await;
        }
        let took = started.elapsed();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "restart run {}: {records} records over {} keys + {} newer values, {:.2} MiB; \
             first pass after the reopen: {:.3} s ({} slices paused 1 ms), read {:.2} MiB, \
             mapped {:.2} MiB ({:.0}% of the log), rewrote {} segments \
             ({:.2} MiB -> {:.2} MiB written)",
            if with_checkpoint {
                "with the cleaner checkpoint"
            } else {
                "without (before)"
            },
            records / 2,
            records / 20,
            mib(size),
            took.as_secs_f64(),
            calls,
            mib(sum.bytes_read),
            mib(sum.bytes_mapped),
            100.0 * sum.bytes_mapped as f64 / size.max(1) as f64,
            sum.segments_cleaned,
            mib(sum.bytes_before),
            mib(sum.bytes_after),
        );
        log.close().await.unwrap();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let only = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let (records, keys) = if full {
        (1_000_000, 10_000)
    } else {
        (20_000, 1_000)
    };
    let base = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().to_path_buf()
        });
    let tmp = tempfile::Builder::new()
        .prefix("sluice-bench-compaction-")
        .tempdir_in(&base)
        .unwrap();
    let dir = tmp.path().to_path_buf();
    println!(
        "sluice-engine compaction bench in {} ({})",
        dir.display(),
        if full { "full" } else { "tiny" }
    );
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            if "codec".contains(only.as_str()) {
                for (i, codec) in [0i16, 3].into_iter().enumerate() {
                    run_one(dir.join(format!("c-{i}")), records, keys, codec).await;
                }
            }
            if "swap".contains(only.as_str()) {
                run_swaps(dir.join("swaps"), if full { 100_000 } else { 10_000 }).await;
            }
            if "restart".contains(only.as_str()) {
                run_restart(dir.join("restart"), records).await;
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
