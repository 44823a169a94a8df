//! Model-based test: random sequences of append / flush / roll (small segments) /
//! truncate / delete-records / retention / clean reopen / crash-reopen / read, checked
//! against an in-memory list of batches. Runs on `SimDisk` so crashes can be simulated;
//! every seed is printed on failure and `SLUICE_MODEL_SEED=<n>` replays one.

mod common;

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use sluice_engine::batch::{BatchHeader, build_test_batch, stamp_offset_and_epoch};
use sluice_engine::disk::Disk;
use sluice_engine::sim_disk::{SimDisk, SimRng};
use sluice_engine::{LeaderEpoch, Log, LogConfig, Offset, ReadCache};

struct Model {
    /// (base, last, stamped bytes)
    batches: Vec<(i64, i64, Vec<u8>)>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn drop_below(&mut self, lso: i64) {
        self.batches.retain(|b| b.1 >= lso);
    }
}

fn config(rng: &mut SimRng) -> LogConfig {
    LogConfig {
        segment_bytes_max: 2048 + rng.below(8192),
        index_interval_bytes: 128 + rng.below(1024) as u32,
        retention_ms: -1,
        flush_interval_ms: 1_000_000,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, cfg: LogConfig, disk: &SimDisk) -> Rc<Log> {
    let d: Rc<dyn Disk> = Rc::new(disk.clone());
    Log::open_with_disk(dir, cfg, ReadCache::new(16 << 10), d)
        .await
        .unwrap()
}

async fn check_read(log: &Log, model: &Model, from: i64, bytes_max: u32, ctx: &str) {
    let r = log
        .read(Offset(from), bytes_max)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: read {from}: {e}"));
    assert_eq!(r.log_end_offset.0, model.log_end, "{ctx}");
    if from == model.log_end {
        assert!(r.batches.is_empty(), "{ctx}");
        return;
    }
    assert!(!r.batches.is_empty(), "{ctx}: empty read at {from}");
    let start = model
        .batches
        .iter()
        .position(|b| b.1 >= from)
        .expect("model has the offset");
    let total: usize = r.batches.iter().map(|b| b.len()).sum();
    assert!(
        r.batches.len() == 1 || total <= bytes_max as usize,
        "{ctx}: {total} > {bytes_max}"
    );
    for (i, got) in r.batches.iter().enumerate() {
        let want = &model.batches[start + i];
        assert_eq!(
            &got[..],
            &want.2[..],
            "{ctx}: batch {} differs (read from {from})",
            want.0
        );
    }
}

thread_local! {
    /// Crashes during a flush after which some, but not all, in-flight data survived.
    static PARTIAL_RECOVERIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

async fn run_seed(seed: u64) {
    let mut rng = SimRng::new(seed);
    let dir = Path::new("/sim/t-0");
    let mut disk = SimDisk::new();
    let mut cfg = config(&mut rng);
    let mut log = open(dir, cfg, &disk).await;
    let mut model = Model {
        batches: Vec::new(),
        log_start: 0,
        log_end: 0,
    };
    let mut epoch = 0i32;
    for step in 0..300 {
        let ctx = format!("seed {seed} step {step}");
        let op = rng.below(100);
        if std::env::var("SLUICE_MODEL_VERBOSE").is_ok() {
            println!(
                "{ctx}: op {op} lso {} leo {} segs {:?}",
                model.log_start,
                model.log_end,
                log.segment_base_offsets()
            );
        }
        match op {
            0..=44 => {
                for _ in 0..1 + rng.below(4) {
                    let count = 1 + rng.below(5) as i32;
                    let raw = build_test_batch(count, rng.below(700) as usize, 1000 + step, None);
                    let info = log
                        .append(Bytes::from(raw.clone()), LeaderEpoch(epoch), 0)
                        .unwrap();
                    assert_eq!(info.base_offset.0, model.log_end, "{ctx}");
                    let mut stamped = raw;
                    stamp_offset_and_epoch(&mut stamped, info.base_offset, epoch);
                    model
                        .batches
                        .push((info.base_offset.0, info.last_offset.0, stamped));
                    model.log_end = info.last_offset.0 + 1;
                }
            }
            45..=54 => log.flush().await.unwrap(),
            55..=59 => epoch += 1,
            60..=64 => {
                let to = model.log_start
                    + rng.below((model.log_end - model.log_start + 1) as u64) as i64;
                let first_base = log.segment_base_offsets()[0].0;
                log.truncate_to(Offset(to)).await.unwrap();
                if to >= model.log_end {
                } else if to < model.log_start
                    || to <= first_base
                    || model
                        .batches
                        .iter()
                        .find(|b| b.1 >= to)
                        .is_some_and(|b| b.0 < model.log_start)
                {
                    model.batches.clear();
                    model.log_start = to;
                    model.log_end = to;
                } else {
                    let cut = model.batches.iter().position(|b| b.1 >= to).unwrap();
                    model.log_end = model.batches[cut].0;
                    model.batches.truncate(cut);
                }
                assert_eq!(
                    log.log_end_offset().0,
                    model.log_end,
                    "{ctx}: truncate_to {to}"
                );
                assert_eq!(
                    log.log_start_offset().0,
                    model.log_start,
                    "{ctx}: truncate_to {to}"
                );
            }
            65..=67 => {
                let to = model.log_start
                    + rng.below((model.log_end - model.log_start + 1) as u64) as i64;
                let lso = log
                    .delete_records_before(Offset(to), log.log_end_offset())
                    .await
                    .unwrap();
                model.log_start = model.log_start.max(to);
                assert_eq!(lso.0, model.log_start, "{ctx}");
                model.drop_below(model.log_start);
            }
            68..=70 => {
                let mut c = cfg;
                c.retention_bytes = rng.below(20_000) as i64;
                log.set_config(c);
                log.enforce_retention(0, log.log_end_offset())
                    .await
                    .unwrap();
                log.set_config(cfg);
                let lso = log.log_start_offset().0;
                assert!(lso >= model.log_start, "{ctx}");
                assert!(
                    lso == model.log_start
                        || lso == model.log_end
                        || model.batches.iter().any(|b| b.0 == lso),
                    "{ctx}: lso {lso} not a batch start"
                );
                model.log_start = lso;
                model.drop_below(lso);
            }
            71..=74 => {
                log.close().await.unwrap();
                drop(log);
                cfg = config(&mut rng);
                log = open(dir, cfg, &disk).await;
                assert_eq!(log.log_end_offset().0, model.log_end, "{ctx}: clean reopen");
                assert_eq!(
                    log.log_start_offset().0,
                    model.log_start,
                    "{ctx}: clean reopen"
                );
            }
            75..=79 => {
                let durable = log.durable_offset().0;
                let crashed = disk.crash_image(&mut rng);
                drop(log);
                disk = crashed;
                cfg = config(&mut rng);
                log = open(dir, cfg, &disk).await;
                let leo = log.log_end_offset().0;
                assert!(
                    leo >= durable,
                    "{ctx}: crash lost durable data: leo {leo} < durable {durable}"
                );
                assert!(leo <= model.log_end, "{ctx}: crash invented data");
                assert!(
                    leo == model.log_start || model.batches.iter().any(|b| b.1 + 1 == leo),
                    "{ctx}: torn end {leo}"
                );
                model.batches.retain(|b| b.0 < leo);
                model.log_end = leo;
                assert_eq!(log.log_start_offset().0, model.log_start.min(leo), "{ctx}");
            }
            80..=84 => {
                // Crash while a flush is in flight: its writes are on the way, unsynced.
                let durable = log.durable_offset().0;
                disk.set_hold_fsync(true);
                let flushing = {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        let _ = log.flush().await;
                    })
                };
                for _ in 0..1 + rng.below(4) {
                    futures_lite::future::yield_now().await;
                }
                let crashed = disk.crash_image(&mut rng);
                disk.set_hold_fsync(false);
                flushing.await;
                drop(log);
                disk = crashed;
                cfg = config(&mut rng);
                log = open(dir, cfg, &disk).await;
                let leo = log.log_end_offset().0;
                assert!(
                    leo >= durable,
                    "{ctx}: crash lost durable data: leo {leo} < durable {durable}"
                );
                assert!(leo <= model.log_end, "{ctx}: crash invented data");
                assert!(
                    leo == model.log_start || model.batches.iter().any(|b| b.1 + 1 == leo),
                    "{ctx}: torn end {leo}"
                );
                if leo > durable && leo < model.log_end {
                    PARTIAL_RECOVERIES.with(|c| c.set(c.get() + 1));
                }
                model.batches.retain(|b| b.0 < leo);
                model.log_end = leo;
                assert_eq!(log.log_start_offset().0, model.log_start.min(leo), "{ctx}");
            }
            _ => {
                let from = model.log_start
                    + rng.below((model.log_end - model.log_start + 1) as u64) as i64;
                check_read(&log, &model, from, 1 + rng.below(6000) as u32, &ctx).await;
            }
        }
        // Invariants after every step.
        assert!(log.durable_offset() <= log.log_end_offset(), "{ctx}");
        assert_eq!(log.log_end_offset().0, model.log_end, "{ctx}");
    }
    // Full scan at the end, then once more after a clean reopen.
    let mut next = model.log_start;
    while next < model.log_end {
        check_read(&log, &model, next, 3000, &format!("seed {seed} final")).await;
        let r = log.read(Offset(next), 3000).await.unwrap();
        next = BatchHeader::new(r.batches.last().unwrap())
            .unwrap()
            .last_offset()
            .0
            + 1;
    }
    log.close().await.unwrap();
}

// Proves the log matches the model over many seeded random operation sequences,
// including clean and crash reopens.
#[test]
fn model_random_sequences() {
    let single = std::env::var("SLUICE_MODEL_SEED").ok();
    let seeds: Vec<u64> = match std::env::var("SLUICE_MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("numeric seed")],
        Err(_) => (0..200).map(|i| 0x5eed_0000 + i).collect(),
    };
    run(move || async move {
        for seed in seeds {
            println!("model seed {seed}");
            run_seed(seed).await;
        }
        let partial = PARTIAL_RECOVERIES.with(|c| c.get());
        println!("crashes mid-flush that kept part of the in-flight data: {partial}");
        if single.is_none() {
            assert!(
                partial > 0,
                "the seeds never tore a flush; the crash path went untested"
            );
        }
    });
}
