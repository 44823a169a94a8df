//! Log compaction end to end on `Log`: the newest value per key survives against a
//! model, tombstones expire, every codec is rewritten with itself, an emptied producer
//! batch keeps the producer's state, readers during compaction see a consistent log,
//! and reopening after compaction or after a crash in the middle of it loses nothing;
//! min.compaction.lag.ms holds recent segments back and max.compaction.lag.ms forces a
//! pass (also after a reopen); a swap stopped in its directory sync lets flushes of the
//! active segment through while truncation and retention wait for it, and a crash at
//! every file step of a real swap reopens to the same log. The cleaner checkpoint: after a
//! reopen the next pass maps only the dirty part and judges the dirty ratio on it; a
//! damaged or out-of-range checkpoint is ignored; a truncation below it lowers it; crash
//! images around its write reopen correctly; compact/reopen/append cycles keep the
//! newest value per key.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use common::run;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sluice_engine::batch::{self, BatchHeader, HEADER_BYTES};
use sluice_engine::checkpoint::CleanerCheckpoint;
use sluice_engine::disk::Disk;
use sluice_engine::record::{KeyValue, build_batch, decode_batch};
use sluice_engine::sim_disk::{SimDisk, SimRng};
use sluice_engine::{
    AppendInfo, CleanupPolicy, CompactOutcome, LeaderEpoch, Log, LogConfig, Offset, ReadCache,
};

const T0: i64 = 1_000_000_000;
const RETENTION_MS: i64 = 60_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 << 10,
        segment_ms: 1,
        index_interval_bytes: 512,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: RETENTION_MS,
        min_cleanable_dirty_permille: 0,
        flush_interval_ms: 1_000_000,
        ..LogConfig::default()
    }
}

/// Appends `batch`, which may hold keyless records, to a compacted log as if it had
/// arrived before the topic's cleanup.policy became compact: an append to a compacted
/// log refuses keyless records (Kafka's rule for producers), yet the log may hold them
/// from before, and compaction must drop them.
fn append_legacy(log: &Log, batch: Bytes, now_ms: i64) -> AppendInfo {
    let compacted = log.config();
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..compacted
    });
    let info = log.append(batch, LeaderEpoch(0), now_ms);
    log.set_config(compacted);
    info.unwrap()
}

async fn open_sim(dir: &Path, disk: &SimDisk) -> Rc<Log> {
    let d: Rc<dyn Disk> = Rc::new(disk.clone());
    Log::open_with_disk(dir, config(), ReadCache::new(1 << 20), d)
        .await
        .unwrap()
}

/// A batch of records (key, value) with the codec in `attributes`, optionally from an
/// idempotent producer (id, epoch, base sequence).
fn kv_batch(
    records: &[(Option<&str>, Option<&str>)],
    ts: i64,
    codec: i16,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let refs: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (k.map(str::as_bytes), v.map(str::as_bytes)))
        .collect();
    let mut b = build_batch(0, ts, codec, &refs);
    if let Some((pid, epoch, seq)) = producer {
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Bytes::from(b)
}

/// One record as read back: offset, key, value.
type Rec = (i64, Option<String>, Option<String>);

fn text(b: Option<Bytes>) -> Option<String> {
    b.map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// Reads the whole log in small fetches; checks every batch's CRC (stored rules) and that
/// offsets strictly increase. Returns the records and the batches. A read may come back
/// empty before the log end offset only when compaction removed everything up to it.
async fn read_all(log: &Log) -> (Vec<Rec>, Vec<Bytes>) {
    let mut out: Vec<Rec> = Vec::new();
    let mut batches = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let r = log.read(next, 2048).await.unwrap();
        if r.batches.is_empty() {
            break;
        }
        for b in r.batches {
            let h = batch::validate_stored(&b).expect("served batch verifies");
            assert!(h.last_offset() >= next, "batch before the requested offset");
            let base = h.base_offset().0;
            for rec in decode_batch(&b, 1 << 20).unwrap().records {
                let o = base + i64::from(rec.offset_delta);
                if let Some(last) = out.last() {
                    assert!(o > last.0, "offsets must increase: {} after {}", o, last.0);
                }
                out.push((o, text(rec.key), text(rec.value)));
            }
            next = Offset(h.last_offset().0 + 1);
            batches.push(b);
        }
    }
    assert!(next <= end);
    (out, batches)
}

/// Rolls the active segment (segment.ms = 1), flushes, and compacts in slices of
/// `slice_bytes` until a call finds nothing to do. Returns the number of calls.
async fn roll_and_compact(log: &Log, now_ms: i64, slice_bytes: u64) -> u32 {
    log.enforce_retention(now_ms + 1000, log.log_end_offset())
        .await
        .unwrap();
    log.flush().await.unwrap();
    let mut calls = 0;
    loop {
        calls += 1;
        let o = log
            .compact(now_ms, slice_bytes, log.log_end_offset())
            .await
            .unwrap();
        if o.idle && !o.pass_finished {
            return calls;
        }
        futures_lite::future::yield_now().await;
    }
}

/// What the model expects after a full compaction at `now_ms`: keyless records all,
/// keyed ones only the newest of their key, tombstones only while recent.
fn expected(model: &[(i64, Option<String>, Option<String>, i64)], now_ms: i64) -> Vec<Rec> {
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for (o, k, _, _) in model {
        if let Some(k) = k {
            newest.insert(k, *o);
        }
    }
    model
        .iter()
        .filter(|(o, k, v, ts)| match k {
            None => true,
            Some(k) => newest[k.as_str()] == *o && (v.is_some() || now_ms < ts + RETENTION_MS),
        })
        .map(|(o, k, v, _)| (*o, k.clone(), v.clone()))
        .collect()
}

// Proves compaction against a model on real O_DIRECT files: thousands of records over
// hundreds of keys, keyless records, random tombstones (expired and recent) and every
// codec, appended in rounds with partial compaction between them. After the last pass
// exactly the newest record of each key is left (tombstones only while recent), offsets
// are the original ones and increase, the log shrank, and a clean reopen reads the same.
#[test]
fn model_newest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-0");
    run(move || async move {
        let log = Log::open(&path, config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut model: Vec<(i64, Option<String>, Option<String>, i64)> = Vec::new();
        for round in 0..6 {
            for _ in 0..150 {
                let n = rng.random_range(1..=12usize);
                let ts = if rng.random_bool(0.5) {
                    T0 - 10 * RETENTION_MS
                } else {
                    T0 - RETENTION_MS / 2
                };
                let codec = rng.random_range(0..=4i16);
                let recs: Vec<(Option<String>, Option<String>)> = (0..n)
                    .map(|i| {
                        let key = (!rng.random_bool(0.02))
                            .then(|| format!("key-{}", rng.random_range(0..300)));
                        let value = (!rng.random_bool(0.1))
                            .then(|| format!("value-{round}-{i}-{}", rng.random::<u32>()));
                        (key, value)
                    })
                    .collect();
                let refs: Vec<(Option<&str>, Option<&str>)> = recs
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_deref()))
                    .collect();
                let info = append_legacy(&log, kv_batch(&refs, ts, codec, None), T0);

                for (i, (k, v)) in recs.into_iter().enumerate() {
                    model.push((info.base_offset.0 + i as i64, k, v, ts));
                }
            }
            log.flush().await.unwrap();
            // A few slices only: the pass is left unfinished while appends go on.
            for _ in 0..3 {
                log.compact(T0, 16 << 10, log.log_end_offset())
                    .await
                    .unwrap();
            }
        }
        let (before, _) = read_all(&log).await;
        check_from_model(&model, &before);
        let bytes_before = log.size_bytes();
        let calls = roll_and_compact(&log, T0, 32 << 10).await;
        assert!(calls > 1, "bounded slices take several calls");
        // A second pass with nothing dirty changes nothing.
        assert!(
            log.compact(T0, 1 << 30, log.log_end_offset())
                .await
                .unwrap()
                .idle
        );
        let (after, _) = read_all(&log).await;
        let want = expected(&model, T0);
        assert!(want.len() * 3 < model.len());
        assert_eq!(after, want);
        assert!(
            log.size_bytes() * 2 < bytes_before,
            "{} vs {bytes_before}",
            log.size_bytes()
        );
        let leo = log.log_end_offset();
        log.close().await.unwrap();
        let log = Log::open(&path, config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(read_all(&log).await.0, want);
    });
}

/// Every record read must be the model's record at that offset.
fn check_from_model(model: &[(i64, Option<String>, Option<String>, i64)], read: &[Rec]) {
    let by_offset: BTreeMap<i64, (&Option<String>, &Option<String>)> =
        model.iter().map(|(o, k, v, _)| (*o, (k, v))).collect();
    for (o, k, v) in read {
        assert_eq!(by_offset[o], (k, v), "record at {o} differs from the model");
    }
}

// Proves tombstone expiry: a tombstone that is the newest of its key survives the pass
// that removes the value it deletes, and a later pass removes it once
// delete.retention.ms has passed since its timestamp, due by the expiry alone.
#[test]
fn tombstones_expire_after_delete_retention() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open_sim(Path::new("/sim/t-0"), &disk).await;
        for i in 0..40 {
            let v = format!("v{i}");
            log.append(
                kv_batch(
                    &[(Some("k"), Some(&v)), (Some("other"), Some(&v))],
                    T0,
                    0,
                    None,
                ),
                LeaderEpoch(0),
                T0,
            )
            .unwrap();
        }
        log.append(
            kv_batch(&[(Some("k"), None)], T0, 0, None),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
        roll_and_compact(&log, T0, 4096).await;
        let (recs, _) = read_all(&log).await;
        let keys: Vec<(Option<String>, Option<String>)> =
            recs.iter().map(|r| (r.1.clone(), r.2.clone())).collect();
        assert_eq!(
            keys,
            vec![
                (Some("other".into()), Some("v39".into())),
                (Some("k".into()), None)
            ]
        );
        // Not yet expired: nothing is due, nothing changes.
        let o = log
            .compact(T0 + RETENTION_MS - 1, 1 << 20, log.log_end_offset())
            .await
            .unwrap();
        assert!(o.idle && !o.pass_finished);
        // Expired: a pass is due by the tombstone alone and removes it.
        let o = log
            .compact(T0 + RETENTION_MS, 1 << 20, log.log_end_offset())
            .await
            .unwrap();
        assert!(o.pass_finished, "{o:?}");
        assert_eq!(o.segments_cleaned, 1);
        let (recs, _) = read_all(&log).await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].1.as_deref(), Some("other"));
    });
}

// Proves every codec is cleaned and rewritten with itself: per codec, superseded records
// leave their batches, surviving batches keep codec, base offset, last offset delta and
// timestamps, and their records decode to the newest values.
#[test]
fn every_codec_is_rewritten_with_itself() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open_sim(Path::new("/sim/t-0"), &disk).await;
        let mut originals: HashMap<i64, Bytes> = HashMap::new();
        for round in 0..3 {
            for codec in 0..=4i16 {
                let ka = format!("a{codec}");
                let kb = format!("b{codec}-{round}");
                let v = format!("{round}");
                let b = kv_batch(
                    &[
                        (Some(&ka), Some(&v)),
                        (Some(&kb), Some(&v)),
                        (None, Some("x")),
                    ],
                    T0 + round,
                    codec,
                    None,
                );
                let info = append_legacy(&log, b.clone(), T0);
                originals.insert(info.base_offset.0, b);
            }
        }
        roll_and_compact(&log, T0, 1 << 20).await;
        let (recs, batches) = read_all(&log).await;
        let mut rewritten = 0;
        for b in &batches {
            let h = BatchHeader::new(b).unwrap();
            let orig = &originals[&h.base_offset().0];
            let oh = BatchHeader::new(orig).unwrap();
            assert_eq!(h.codec(), oh.codec());
            assert_eq!(h.last_offset_delta(), oh.last_offset_delta());
            assert_eq!(h.base_timestamp(), oh.base_timestamp());
            assert_eq!(h.max_timestamp(), oh.max_timestamp());
            if h.records_count() < oh.records_count() {
                rewritten += 1;
                assert_ne!(b, orig);
            }
        }
        assert_eq!(rewritten, 10, "the first two rounds lose their `a` record");
        for codec in 0..=4 {
            let ka = format!("a{codec}");
            let a: Vec<&Rec> = recs
                .iter()
                .filter(|r| r.1.as_deref() == Some(&ka))
                .collect();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].2.as_deref(), Some("2"));
        }
        assert_eq!(recs.iter().filter(|r| r.1.is_none()).count(), 15);
        assert_eq!(recs.len(), 15 + 5 + 15);
    });
}

// Proves Kafka's producer rule: a producer's last batch whose records were all
// superseded stays as an empty batch (no records, same offsets and sequence), earlier
// emptied batches go, and after a reopen that must replay batch headers (snapshots
// removed) the producer's epoch and last sequence are right, so its next batch is in
// sequence and a retry of an old one is not appended again.
#[test]
fn emptied_producer_batch_keeps_producer_state() {
    run(|| async {
        let disk = SimDisk::new();
        let dir = Path::new("/sim/t-0");
        let log = open_sim(dir, &disk).await;
        let p = Some((77, 3, 0));
        log.append(
            kv_batch(&[(Some("a"), Some("1")), (Some("b"), Some("1"))], T0, 1, p),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
        log.append(
            kv_batch(&[(Some("c"), Some("1"))], T0, 3, Some((77, 3, 2))),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
        log.append(
            kv_batch(
                &[
                    (Some("a"), Some("2")),
                    (Some("b"), Some("2")),
                    (Some("c"), Some("2")),
                ],
                T0,
                0,
                None,
            ),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
        roll_and_compact(&log, T0, 1 << 20).await;
        let (recs, batches) = read_all(&log).await;
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(batches.len(), 2, "the first producer batch is gone");
        let empty = BatchHeader::new(&batches[0]).unwrap();
        assert_eq!(batches[0].len(), HEADER_BYTES);
        assert_eq!(empty.records_count(), 0);
        assert_eq!(empty.base_offset(), Offset(2));
        assert_eq!(empty.last_offset(), Offset(2));
        assert_eq!(empty.producer_id(), 77);
        assert_eq!(empty.base_sequence(), 2);
        assert_eq!(log.producer_last_sequence(77), Some((3, 2)));
        log.close().await.unwrap();
        for p in disk.paths() {
            if p.extension().is_some_and(|e| e == "snapshot") {
                disk.remove_file(&p).unwrap();
            }
        }
        let log = open_sim(dir, &disk).await;
        assert_eq!(log.producer_last_sequence(77), Some((3, 2)));
        let retry = log
            .append(
                kv_batch(&[(Some("c"), Some("1"))], T0, 3, Some((77, 3, 2))),
                LeaderEpoch(0),
                T0,
            )
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, Offset(2));
        let next = log
            .append(
                kv_batch(&[(Some("d"), Some("1"))], T0, 0, Some((77, 3, 3))),
                LeaderEpoch(0),
                T0,
            )
            .unwrap();
        assert!(!next.duplicate);
        assert_eq!(next.base_offset, Offset(log.log_end_offset().0 - 1));
    });
}

/// Appends `batches` batches of 5 records over 50 keys with a few tombstones; returns the
/// model.
fn fill(log: &Log, batches: usize, seed: u64) -> Vec<(i64, Option<String>, Option<String>, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Vec::new();
    for n in 0..batches {
        let recs: Vec<(Option<String>, Option<String>)> = (0..5)
            .map(|i| {
                let key = Some(format!("k{}", rng.random_range(0..50)));
                let value = (!rng.random_bool(0.05)).then(|| format!("v{n}-{i}"));
                (key, value)
            })
            .collect();
        let refs: Vec<(Option<&str>, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (k.as_deref(), v.as_deref()))
            .collect();
        let codec = (n % 5) as i16;
        let info = log
            .append(kv_batch(&refs, T0, codec, None), LeaderEpoch(0), T0)
            .unwrap();
        for (i, (k, v)) in recs.into_iter().enumerate() {
            model.push((info.base_offset.0 + i as i64, k, v, T0));
        }
    }
    model
}

/// Checks one read of the whole log against the model: every record is the model's
/// record at its offset, and every key's newest record is there.
fn check_consistent(model: &[(i64, Option<String>, Option<String>, i64)], read: &[Rec]) {
    check_from_model(model, read);
    let want = expected(model, T0);
    let got: std::collections::HashSet<i64> = read.iter().map(|r| r.0).collect();
    for (o, k, _) in &want {
        assert!(got.contains(o), "newest record of {k:?} at {o} missing");
    }
}

// Proves readers see a consistent log while compaction runs in small slices: a reader
// task reads the whole log over and over (through the swaps), and every read has
// increasing offsets, only records the model has at those offsets, and the newest
// record of every key; appends made between slices are all readable too.
#[test]
fn reads_during_compaction_are_consistent() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open_sim(Path::new("/sim/t-0"), &disk).await;
        let model = Rc::new(RefCell::new(fill(&log, 400, 1)));
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let done = Rc::new(std::cell::Cell::new(false));
        let reads = Rc::new(std::cell::Cell::new(0u32));
        let reader = {
            let (log, model, done, reads) =
                (log.clone(), model.clone(), done.clone(), reads.clone());
            glommio::spawn_local(async move {
                while !done.get() {
                    // The model as of the start of this read (appends come later).
                    let snapshot = model.borrow().clone();
                    let mut read: Vec<Rec> = Vec::new();
                    let mut next = log.log_start_offset();
                    let end = Offset(snapshot.last().unwrap().0 + 1);
                    while next < end {
                        let r = log.read(next, 700).await.unwrap();
                        assert!(!r.batches.is_empty(), "no batch at {next:?} below {end:?}");
                        for b in r.batches {
                            let h = batch::validate_stored(&b).unwrap();
                            for rec in decode_batch(&b, 1 << 20).unwrap().records {
                                let o = h.base_offset().0 + i64::from(rec.offset_delta);
                                if o >= end.0 {
                                    continue;
                                }
                                if let Some(last) = read.last() {
                                    assert!(o > last.0, "offsets must increase");
                                }
                                read.push((o, text(rec.key), text(rec.value)));
                            }
                            next = Offset(h.last_offset().0 + 1);
                        }
                        futures_lite::future::yield_now().await;
                    }
                    check_consistent(&snapshot, &read);
                    reads.set(reads.get() + 1);
                }
            })
        };
        let mut calls = 0u64;
        let mut cleaned = 0;
        loop {
            let o = log.compact(T0, 1024, log.log_end_offset()).await.unwrap();
            calls += 1;
            cleaned += o.segments_cleaned;
            // Appends go on between slices (into the active segment).
            let more = fill(&log, 1, 100 + calls);
            model.borrow_mut().extend(more);
            for _ in 0..5 {
                futures_lite::future::yield_now().await;
            }
            if o.idle {
                break;
            }
        }
        done.set(true);
        reader.await;
        assert!(cleaned > 3, "segments swapped while reading: {cleaned}");
        assert!(
            reads.get() >= 2,
            "reads completed during compaction: {}",
            reads.get()
        );
        let (all, _) = read_all(&log).await;
        check_consistent(&model.borrow(), &all);
    });
}

// Proves crash safety of the swap on SimDisk: for every compacted segment, the disk
// states a crash can leave (a torn or complete `.cleaned` copy beside the original, the
// original without its indexes, the cleaned copy in place without indexes) reopen to a
// log with the same offsets range and every key's newest value, with the leftover copy
// deleted; and a crash image taken while the copy's fsync is in flight does the same.
#[test]
fn reopen_after_crash_mid_swap() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open_sim(dir, &disk).await;
        let model = fill(&log, 300, 2);
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let leo = log.log_end_offset();
        let before = disk.crash_image(&mut SimRng::new(0));
        // A crash while the cleaned copy's fsync is held: the copy may be torn.
        disk.set_hold_fsync(true);
        let compactor = {
            let log = log.clone();
            glommio::spawn_local(async move {
                loop {
                    if log
                        .compact(T0, 1 << 20, log.log_end_offset())
                        .await
                        .unwrap()
                        .idle
                    {
                        break;
                    }
                }
            })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        for seed in 0..5 {
            let img = disk.crash_image(&mut SimRng::new(seed));
            assert!(
                img.paths()
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with(".cleaned"))
            );
            let reopened = open_sim(dir, &img).await;
            assert!(
                !img.paths()
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with(".cleaned"))
            );
            assert_eq!(reopened.log_end_offset(), leo);
            check_consistent(&model, &read_all(&reopened).await.0);
        }
        disk.set_hold_fsync(false);
        compactor.await;
        let after = disk.crash_image(&mut SimRng::new(0));
        let segs: Vec<_> = before
            .paths()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        let mut changed = 0;
        let mut emptied = 0;
        for seg in &segs {
            let Some(old) = before.contents(seg) else {
                continue;
            };
            let Some(new) = after.contents(seg) else {
                // Emptied and deleted: a crash after only its `.log` went.
                emptied += 1;
                let img = before.crash_image(&mut SimRng::new(0));
                img.remove_file(seg).unwrap();
                let reopened = open_sim(dir, &img).await;
                assert_eq!(reopened.log_end_offset(), leo);
                check_consistent(&model, &read_all(&reopened).await.0);
                assert!(!img.paths().contains(&seg.with_extension("index")));
                continue;
            };
            if old == new {
                continue;
            }
            changed += 1;
            let index = seg.with_extension("index");
            let time = seg.with_extension("timeindex");
            let mut cleaned = seg.clone().into_os_string();
            cleaned.push(".cleaned");
            let cleaned = std::path::PathBuf::from(cleaned);
            // 1: complete copy beside the intact original; 2: original without indexes and
            // the copy; 3: the copy renamed in, indexes not yet written.
            for case in 0..3 {
                let img = before.crash_image(&mut SimRng::new(0));
                img.write_file_atomic(&cleaned, &new).await.unwrap();
                if case >= 1 {
                    img.remove_file(&index).unwrap();
                    img.remove_file(&time).unwrap();
                }
                if case == 2 {
                    img.rename(&cleaned, seg).unwrap();
                }
                let reopened = open_sim(dir, &img).await;
                assert_eq!(reopened.log_end_offset(), leo, "case {case}");
                let read = read_all(&reopened).await.0;
                check_consistent(&model, &read);
                reopened.close().await.unwrap();
            }
        }
        assert!(changed >= 1, "{changed} segments compacted");
        assert!(emptied >= 1, "{emptied} segments emptied");
        assert!(
            log.segment_count() < segs.len(),
            "emptied segments are removed"
        );
        // The finished compaction itself reopens (unclean) to exactly the expected log.
        let reopened = open_sim(dir, &after).await;
        assert_eq!(read_all(&reopened).await.0, expected(&model, T0));
    });
}

// Proves a truncation racing with compaction loses nothing: the key map saw newer values
// that a truncation then removes while the compacted copy of an older segment waits for
// its fsync; the copy must not be swapped in, so every key keeps its older value.
#[test]
fn truncation_during_compaction_keeps_older_values() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open_sim(Path::new("/sim/t-0"), &disk).await;
        for round in ["a", "b"] {
            for k in 0..20 {
                let key = format!("k{k}");
                log.append(
                    kv_batch(&[(Some(&key), Some(round))], T0, 0, None),
                    LeaderEpoch(0),
                    T0,
                )
                .unwrap();
            }
            log.enforce_retention(T0 + 1000, log.log_end_offset())
                .await
                .unwrap();
        }
        assert_eq!(
            log.segment_base_offsets(),
            vec![Offset(0), Offset(20), Offset(40)]
        );
        disk.set_hold_fsync(true);
        let compactor = {
            let log = log.clone();
            glommio::spawn_local(async move {
                while !log
                    .compact(T0, 1 << 20, log.log_end_offset())
                    .await
                    .unwrap()
                    .idle
                {}
            })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        let truncation = {
            let log = log.clone();
            glommio::spawn_local(async move { log.truncate_to(Offset(20)).await.unwrap() })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        disk.set_hold_fsync(false);
        truncation.await;
        compactor.await;
        assert_eq!(log.log_end_offset(), Offset(20));
        let (recs, _) = read_all(&log).await;
        assert_eq!(recs.len(), 20, "{recs:?}");
        assert!(recs.iter().all(|r| r.2.as_deref() == Some("a")));
        // A later pass works from the truncated log.
        roll_and_compact(&log, T0, 1 << 20).await;
        assert_eq!(read_all(&log).await.0.len(), 20);
    });
}

async fn open_sim_with(dir: &Path, disk: &SimDisk, config: LogConfig) -> Rc<Log> {
    let d: Rc<dyn Disk> = Rc::new(disk.clone());
    Log::open_with_disk(dir, config, ReadCache::new(1 << 20), d)
        .await
        .unwrap()
}

/// Appends `n` batches at `ts` (also the append's wall clock), each holding `key` and
/// `other` with the value `<tag>-<i>`.
fn append_versions(log: &Log, key: &str, other: &str, tag: &str, n: usize, ts: i64) {
    for i in 0..n {
        let v = format!("{tag}-{i}");
        log.append(
            kv_batch(
                &[(Some(key), Some(&v)), (Some(other), Some(&v))],
                ts,
                0,
                None,
            ),
            LeaderEpoch(0),
            ts,
        )
        .unwrap();
    }
}

/// Compacts at `now_ms` until a call starts no pass. Returns the passes finished.
async fn compact_until_idle(log: &Log, now_ms: i64) -> u32 {
    compact_until_idle_below(log, now_ms, log.log_end_offset()).await
}

/// `compact_until_idle` with `high_watermark` as the compaction bound.
async fn compact_until_idle_below(log: &Log, now_ms: i64, high_watermark: Offset) -> u32 {
    let mut passes = 0;
    loop {
        let o = log.compact(now_ms, 1 << 20, high_watermark).await.unwrap();
        if o.pass_finished {
            passes += 1;
        } else if o.idle {
            return passes;
        }
    }
}

/// (key, value) of every record, in offset order.
async fn key_values(log: &Log) -> Vec<(String, String)> {
    let (recs, _) = read_all(log).await;
    recs.into_iter()
        .map(|(_, k, v)| (k.unwrap(), v.unwrap()))
        .collect()
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

// Proves compaction stays below the high watermark it is given: with the high watermark
// inside the first closed segment nothing is compacted; inside the second, the first is
// compacted on its own keys while the second keeps every record (and the first's values
// that it supersedes); at the log end both are compacted.
#[test]
fn compaction_stays_below_high_watermark() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open_sim_with(Path::new("/sim/hw-0"), &disk, config()).await;
        append_versions(&log, "k", "a", "old", 20, T0);
        let rolled = log.enforce_retention(T0 + 1, log.log_end_offset()).await;
        assert!(rolled.unwrap().rolled);
        append_versions(&log, "k", "b", "new", 20, T0 + 1);
        let rolled = log.enforce_retention(T0 + 2, log.log_end_offset()).await;
        assert!(rolled.unwrap().rolled);
        log.flush().await.unwrap();
        let bases = log.segment_base_offsets();
        assert_eq!(bases.len(), 3);
        let all = key_values(&log).await;

        let inside_first = Offset(bases[1].0 - 1);
        assert_eq!(compact_until_idle_below(&log, T0, inside_first).await, 0);
        assert_eq!(key_values(&log).await, all);

        let inside_second = Offset(bases[2].0 - 1);
        assert_eq!(compact_until_idle_below(&log, T0, inside_second).await, 1);
        let mut want = vec![kv("k", "old-19"), kv("a", "old-19")];
        want.extend(all[40..].iter().cloned());
        assert_eq!(key_values(&log).await, want);

        assert_eq!(compact_until_idle(&log, T0).await, 1);
        assert_eq!(
            key_values(&log).await,
            vec![kv("a", "old-19"), kv("k", "new-19"), kv("b", "new-19")]
        );
    });
}

const MIN_LAG_MS: i64 = 10_000;
const MAX_LAG_MS: i64 = 30_000;

// Proves min.compaction.lag.ms: of two closed segments, the one whose records are older
// than the lag is compacted while the newer one keeps every record (its duplicates of a
// key, and the older segment's value that they supersede, survive); one ms before the
// lag has passed for it nothing changes, and at the lag it is compacted too.
#[test]
fn min_compaction_lag_holds_back_recent_segments() {
    run(|| async {
        let disk = SimDisk::new();
        let cfg = LogConfig {
            min_compaction_lag_ms: MIN_LAG_MS,
            ..config()
        };
        let log = open_sim_with(Path::new("/sim/lag-0"), &disk, cfg).await;
        append_versions(&log, "k", "a", "old", 20, T0 - 2 * MIN_LAG_MS);
        assert!(
            log.enforce_retention(T0, log.log_end_offset())
                .await
                .unwrap()
                .rolled
        );
        append_versions(&log, "k", "b", "new", 20, T0);
        assert!(
            log.enforce_retention(T0 + 1, log.log_end_offset())
                .await
                .unwrap()
                .rolled
        );
        log.flush().await.unwrap();
        let recent: Vec<(String, String)> = (0..20)
            .flat_map(|i| [kv("k", &format!("new-{i}")), kv("b", &format!("new-{i}"))])
            .collect();

        assert_eq!(compact_until_idle(&log, T0).await, 1);
        let mut want = vec![kv("k", "old-19"), kv("a", "old-19")];
        want.extend(recent.iter().cloned());
        assert_eq!(key_values(&log).await, want);

        assert_eq!(compact_until_idle(&log, T0 + MIN_LAG_MS - 1).await, 0);
        assert_eq!(key_values(&log).await, want);

        assert_eq!(compact_until_idle(&log, T0 + MIN_LAG_MS).await, 1);
        assert_eq!(
            key_values(&log).await,
            vec![kv("a", "old-19"), kv("k", "new-19"), kv("b", "new-19")]
        );
    });
}

/// A compacted log whose dirty share never reaches min.cleanable.dirty.ratio (1.0) once
/// a first pass cleaned its first segment, with max.compaction.lag.ms and a segment.ms
/// far longer than it. Returns it with "k" and "a" compacted in the first segment and
/// the active segment empty.
async fn max_lag_log(disk: &SimDisk) -> Rc<Log> {
    let log = open_sim_with(Path::new("/sim/lag-0"), disk, max_lag_config()).await;
    append_versions(&log, "k", "a", "old", 20, T0);
    // The active segment rolls at the max lag, not at segment.ms.
    assert!(
        !log.enforce_retention(T0 + MAX_LAG_MS - 1, log.log_end_offset())
            .await
            .unwrap()
            .rolled
    );
    assert!(
        log.enforce_retention(T0 + MAX_LAG_MS, log.log_end_offset())
            .await
            .unwrap()
            .rolled
    );
    log.flush().await.unwrap();
    // All dirty: due by the ratio.
    assert_eq!(compact_until_idle(&log, T0 + 1).await, 1);
    assert_eq!(
        key_values(&log).await,
        vec![kv("k", "old-19"), kv("a", "old-19")]
    );
    log
}

fn max_lag_config() -> LogConfig {
    LogConfig {
        segment_ms: 7 * 24 * 3600 * 1000,
        min_cleanable_dirty_permille: 1000,
        max_compaction_lag_ms: MAX_LAG_MS,
        ..config()
    }
}

// Proves max.compaction.lag.ms: with a dirty ratio that cannot trigger, a closed dirty
// segment is left alone while its first batch is not older than the max lag (at exactly
// the lag, several calls) and compacted by the first pass after that; the active segment
// rolls at the max lag although segment.ms is a week.
#[test]
fn max_compaction_lag_forces_a_pass() {
    run(|| async {
        let disk = SimDisk::new();
        let log = max_lag_log(&disk).await;
        let t1 = T0 + MAX_LAG_MS;
        append_versions(&log, "k", "b", "new", 20, t1);
        assert!(
            log.enforce_retention(t1 + MAX_LAG_MS, log.log_end_offset())
                .await
                .unwrap()
                .rolled
        );
        log.flush().await.unwrap();
        for _ in 0..3 {
            assert_eq!(compact_until_idle(&log, t1 + MAX_LAG_MS).await, 0);
        }
        assert_eq!(key_values(&log).await.len(), 2 + 40);

        assert_eq!(compact_until_idle(&log, t1 + MAX_LAG_MS + 1).await, 1);
        assert_eq!(
            key_values(&log).await,
            vec![kv("a", "old-19"), kv("k", "new-19"), kv("b", "new-19")]
        );
    });
}

// Proves the max lag also counts for a segment whose indexes were loaded at open (its
// first batch timestamp is read from the file): the active segment is closed and
// reopened, gets one more batch, rolls, and is compacted only once its first batch
// (from before the restart, not the later one) is older than the max lag.
#[test]
fn max_compaction_lag_after_reopen() {
    run(|| async {
        let disk = SimDisk::new();
        let log = max_lag_log(&disk).await;
        let t1 = T0 + MAX_LAG_MS;
        append_versions(&log, "k", "b", "new", 20, t1);
        log.close().await.unwrap();
        drop(log);
        let log = open_sim_with(Path::new("/sim/lag-0"), &disk, max_lag_config()).await;
        // The cleaner checkpoint says the first segment is clean: no pass is due.
        assert_eq!(compact_until_idle(&log, t1).await, 0);
        assert_eq!(key_values(&log).await.len(), 2 + 40);
        let t2 = t1 + 5_000;
        append_versions(&log, "k", "c", "late", 1, t2);
        assert!(
            log.enforce_retention(t2 + MAX_LAG_MS, log.log_end_offset())
                .await
                .unwrap()
                .rolled
        );
        log.flush().await.unwrap();

        assert_eq!(compact_until_idle(&log, t1 + MAX_LAG_MS).await, 0);
        assert_eq!(key_values(&log).await.len(), 2 + 42);
        assert_eq!(compact_until_idle(&log, t1 + MAX_LAG_MS + 1).await, 1);
        assert_eq!(
            key_values(&log).await,
            vec![
                kv("a", "old-19"),
                kv("b", "new-19"),
                kv("k", "late-0"),
                kv("c", "late-0")
            ]
        );
    });
}

/// Waits (polling every ms, at most 5 s) until `ready` holds.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..5000 {
        if ready() {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Runs `op` in a task with every directory sync and whole-file write of `disk` held,
/// and at each held step runs `at_stop` (crash images, checks) before letting that one
/// step through; returns once `op` finished, with nothing held any more.
async fn step_through_held_dir_ops(
    disk: &SimDisk,
    op: impl std::future::Future<Output = ()> + 'static,
    mut at_stop: impl AsyncFnMut(),
) {
    disk.set_hold_dir_ops(true);
    let done = Rc::new(std::cell::Cell::new(false));
    let task = {
        let done = done.clone();
        glommio::spawn_local(async move {
            op.await;
            done.set(true);
        })
    };
    loop {
        wait_until("a held step or the end", || {
            done.get() || disk.dir_ops_waiting() == 1
        })
        .await;
        if done.get() {
            break;
        }
        at_stop().await;
        disk.pass_dir_op();
    }
    task.await;
    disk.set_hold_dir_ops(false);
}

/// Compacts `log` at `T0` in 1 MiB slices until a call starts no pass.
async fn compact_to_idle(log: Rc<Log>) {
    while !log
        .compact(T0, 1 << 20, log.log_end_offset())
        .await
        .unwrap()
        .idle
    {}
}

/// Appends one record for `key` and waits until it is durable; false if that took more
/// than a second.
async fn durable_append(log: &Log, key: &str, value: &str) -> bool {
    let info = log
        .append(
            kv_batch(&[(Some(key), Some(value))], T0, 0, None),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
    let flushed = async {
        log.wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .unwrap();
        true
    };
    let late = async {
        glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
        false
    };
    futures_lite::future::or(flushed, late).await
}

/// A log of two closed segments and an active one holding one durable record: [0, 30)
/// holds k0..k19 = "a" then u0..u9 = "u" at `old_ts`, [30, 50) k0..k19 = "b", and "x" at
/// 50 (the active segment's file exists, so flushing it creates no file). Compaction
/// shrinks the first segment to the u* records and leaves the second as it is.
async fn swap_log(disk: &SimDisk, cfg: LogConfig, old_ts: i64) -> Rc<Log> {
    let log = open_sim_with(Path::new("/sim/swap-0"), disk, cfg).await;
    for (prefix, value, n, ts) in [("k", "a", 20, old_ts), ("u", "u", 10, old_ts)] {
        for i in 0..n {
            let key = format!("{prefix}{i}");
            log.append(
                kv_batch(&[(Some(&key), Some(value))], ts, 0, None),
                LeaderEpoch(0),
                ts,
            )
            .unwrap();
        }
    }
    assert!(
        log.enforce_retention(old_ts + 1000, log.log_end_offset())
            .await
            .unwrap()
            .rolled
    );
    for i in 0..20 {
        let key = format!("k{i}");
        log.append(
            kv_batch(&[(Some(&key), Some("b"))], T0, 0, None),
            LeaderEpoch(0),
            T0,
        )
        .unwrap();
    }
    assert!(
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap()
            .rolled
    );
    assert!(durable_append(&log, "x", "x").await);
    assert_eq!(
        log.segment_base_offsets(),
        vec![Offset(0), Offset(30), Offset(50)]
    );
    log
}

/// Starts compaction at T0 until idle with directory operations held, and waits until the
/// swap of the first segment stops at its first directory sync (index files removed, the
/// copy not yet renamed in). The task's flag is set when compaction is done.
async fn hold_first_swap(
    disk: &SimDisk,
    log: &Rc<Log>,
) -> (glommio::Task<()>, Rc<std::cell::Cell<bool>>) {
    disk.set_hold_dir_ops(true);
    let done = Rc::new(std::cell::Cell::new(false));
    let compactor = {
        let (log, done) = (log.clone(), done.clone());
        glommio::spawn_local(async move {
            compact_to_idle(log).await;
            done.set(true);
        })
    };
    wait_until("the swap waits in its directory sync", || {
        disk.dir_ops_waiting() == 1
    })
    .await;
    let dir = Path::new("/sim/swap-0");
    assert!(
        disk.contents(&dir.join("00000000000000000000.log.cleaned"))
            .is_some()
    );
    assert!(
        disk.contents(&dir.join("00000000000000000000.index"))
            .is_none()
    );
    (compactor, done)
}

// Proves a swap holds no lock that flushes wait for, while truncation waits for it: with
// the swap of a compacted segment stopped inside its directory sync (SimDisk holds it),
// appends to the active segment are made durable one after another (each within a
// second; before, a flush waited for the whole swap), a truncate_to started meanwhile
// does not run (log end offset and segments unchanged) until the swap finished, and then
// truncates after it: the log reads the compacted first segment, the second one and the
// active segment up to the truncation point.
#[test]
fn flush_goes_on_and_truncation_waits_while_swap_syncs() {
    run(|| async {
        let disk = SimDisk::new();
        let log = swap_log(&disk, config(), T0).await;
        let (compactor, compacted) = hold_first_swap(&disk, &log).await;
        for i in 0..10 {
            assert!(
                durable_append(&log, "p", &format!("{i}")).await,
                "flush {i} waited for the swap"
            );
        }
        assert_eq!(log.durable_offset(), Offset(61));
        let truncated = Rc::new(std::cell::Cell::new(false));
        let truncation = {
            let (log, truncated) = (log.clone(), truncated.clone());
            glommio::spawn_local(async move {
                log.truncate_to(Offset(55)).await.unwrap();
                truncated.set(true);
            })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!truncated.get());
        assert_eq!(log.log_end_offset(), Offset(61));
        assert_eq!(disk.dir_ops_waiting(), 1);
        assert!(!compacted.get());
        disk.set_hold_dir_ops(false);
        compactor.await;
        truncation.await;
        assert_eq!(log.log_end_offset(), Offset(55));
        let mut want: Vec<(String, String)> = (0..10).map(|i| kv(&format!("u{i}"), "u")).collect();
        want.extend((0..20).map(|i| kv(&format!("k{i}"), "b")));
        want.push(kv("x", "x"));
        want.extend((0..4).map(|i| kv("p", &format!("{i}"))));
        assert_eq!(key_values(&log).await, want);
        assert_eq!(
            read_all(&log).await.0[0].0,
            20,
            "the first segment was compacted"
        );
        log.close().await.unwrap();
        let reopened = open_sim_with(Path::new("/sim/swap-0"), &disk, config()).await;
        assert_eq!(key_values(&reopened).await, want);
    });
}

// Proves retention waits for a swap instead of racing it: with the swap of the first
// segment stopped inside its directory sync, enforce_retention (compact,delete, the
// first segment past retention.ms) does not run until the swap finished, then deletes
// the compacted segment whole: no file of it is left, not even the copy, and the log
// starts at the second segment, also after a reopen.
#[test]
fn retention_waits_for_swap() {
    run(|| async {
        let disk = SimDisk::new();
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy::CompactDelete,
            ..config()
        };
        let old_ts = T0 - 7_200_000;
        let log = swap_log(&disk, cfg, old_ts).await;
        let (compactor, _) = hold_first_swap(&disk, &log).await;
        log.set_config(LogConfig {
            retention_ms: 3_600_000,
            ..cfg
        });
        let retained = Rc::new(std::cell::Cell::new(None));
        let retention = {
            let (log, retained) = (log.clone(), retained.clone());
            glommio::spawn_local(async move {
                retained.set(Some(
                    log.enforce_retention(T0 + 1000, log.log_end_offset())
                        .await
                        .unwrap(),
                ));
            })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        assert!(retained.get().is_none());
        assert_eq!(log.log_start_offset(), Offset(0));
        assert!(durable_append(&log, "p", "0").await);
        disk.set_hold_dir_ops(false);
        compactor.await;
        retention.await;
        let outcome = retained.get().unwrap();
        assert_eq!(outcome.segments_deleted, 1);
        assert_eq!(outcome.log_start_offset, Offset(30));
        let mut want: Vec<(String, String)> = (0..20).map(|i| kv(&format!("k{i}"), "b")).collect();
        want.push(kv("x", "x"));
        want.push(kv("p", "0"));
        assert_eq!(key_values(&log).await, want);
        assert!(
            !disk
                .paths()
                .iter()
                .any(|p| p.to_string_lossy().contains("00000000000000000000.")),
            "{:?}",
            disk.paths()
        );
        let reopened = open_sim_with(Path::new("/sim/swap-0"), &disk, cfg).await;
        assert_eq!(reopened.log_start_offset(), Offset(30));
        assert_eq!(key_values(&reopened).await, want);
    });
}

// Proves every file step of the swap is crash-safe as it actually runs: compaction of a
// log of many segments runs with every directory sync and index write held, and at each
// stop crash images (unsynced writes lost, applied or torn) reopen to a log with the same
// log end offset, the newest value of every key, only the model's records, and no
// leftover copy. The stops cover each step: before the rename (indexes removed, copy
// beside the original), after it (both the directory sync and the first index write),
// between the two index writes, and the removal of an emptied segment.
#[test]
fn crash_at_every_swap_step() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open_sim(dir, &disk).await;
        let model = fill(&log, 300, 2);
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let leo = log.log_end_offset();
        let name = |p: &std::path::PathBuf| p.file_name().unwrap().to_string_lossy().to_string();
        let (mut before_rename, mut after_rename, mut between_indexes, mut other) = (0, 0, 0, 0);
        step_through_held_dir_ops(&disk, compact_to_idle(log.clone()), async || {
            let names: Vec<String> = disk.paths().iter().map(name).collect();
            let has = |n: &str| names.iter().any(|m| m == n);
            let logs: Vec<&String> = names.iter().filter(|n| n.ends_with(".log")).collect();
            let stem = |n: &String| n.trim_end_matches(".log").to_string();
            if names.iter().any(|n| n.ends_with(".log.cleaned"))
                && logs.iter().any(|l| !has(&format!("{}.index", stem(l))))
            {
                before_rename += 1;
            } else if logs.iter().any(|l| {
                has(&format!("{}.index", stem(l))) && !has(&format!("{}.timeindex", stem(l)))
            }) {
                between_indexes += 1;
            } else if logs.iter().any(|l| !has(&format!("{}.index", stem(l)))) {
                after_rename += 1;
            } else {
                other += 1;
            }
            for seed in 0..2 {
                let img = disk.crash_image(&mut SimRng::new(seed));
                let reopened = open_sim(dir, &img).await;
                assert!(
                    !img.paths()
                        .iter()
                        .any(|p| p.to_string_lossy().ends_with(".cleaned"))
                );
                assert_eq!(reopened.log_end_offset(), leo);
                check_consistent(&model, &read_all(&reopened).await.0);
            }
        })
        .await;
        assert!(before_rename >= 1, "{before_rename}");
        assert!(after_rename >= 2, "{after_rename}");
        assert!(between_indexes >= 1, "{between_indexes}");
        assert!(other >= 1, "emptied segments: {other}");
        assert_eq!(read_all(&log).await.0, expected(&model, T0));
    });
}

fn checkpoint_path(dir: &Path) -> std::path::PathBuf {
    dir.join(sluice_engine::checkpoint::CLEANER_FILE)
}

/// The cleaner checkpoint in `dir` on `disk`, if there is a valid one.
fn checkpoint_of(disk: &SimDisk, dir: &Path) -> Option<CleanerCheckpoint> {
    CleanerCheckpoint::decode(&disk.contents(&checkpoint_path(dir))?)
}

/// Sums the outcomes of `compact` calls at `now_ms` until one starts no pass.
async fn compact_sum(log: &Log, now_ms: i64, slice_bytes: u64) -> CompactOutcome {
    let mut sum = CompactOutcome::default();
    loop {
        let o = log
            .compact(now_ms, slice_bytes, log.log_end_offset())
            .await
            .unwrap();
        sum.add(&o);
        if o.idle && !o.pass_finished {
            return sum;
        }
    }
}

/// The `.log` files of `dir` and their contents.
fn segment_files(disk: &SimDisk) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    disk.paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let c = disk.contents(&p).unwrap();
            (p, c)
        })
        .collect()
}

/// A compacted, cleanly closed log at /sim/t-0: `fill` of 300 batches, rolled and
/// compacted until idle. Returns the model and the bytes of its (all clean) segments.
async fn compacted_closed_log(
    disk: &SimDisk,
    cfg: LogConfig,
) -> (Vec<(i64, Option<String>, Option<String>, i64)>, u64) {
    let dir = Path::new("/sim/t-0");
    let log = open_sim_with(dir, disk, cfg).await;
    let model = fill(&log, 300, 2);
    roll_and_compact(&log, T0, 1 << 20).await;
    assert_eq!(read_all(&log).await.0, expected(&model, T0));
    let clean_bytes = log.size_bytes();
    let c = checkpoint_of(disk, dir).expect("a finished pass writes the checkpoint");
    assert_eq!(c.first_dirty, log.log_end_offset());
    log.close().await.unwrap();
    (model, clean_bytes)
}

/// Appends `n` batches of new keys `n<i>` plus one new value of `k0`; returns the model
/// rows.
fn append_new_keys(
    log: &Log,
    n: usize,
    tag: &str,
) -> Vec<(i64, Option<String>, Option<String>, i64)> {
    let mut rows = Vec::new();
    for i in 0..n {
        let key = format!("n{tag}{i}");
        let value = format!("{tag}-{i}");
        let recs: [(Option<&str>, Option<&str>); 2] = if i == 0 {
            [(Some(&key), Some(&value)), (Some("k0"), Some(&value))]
        } else {
            [(Some(&key), Some(&value)), (None, Some(&value))]
        };
        let info = append_legacy(log, kv_batch(&recs, T0, 0, None), T0);

        for (j, (k, v)) in recs.iter().enumerate() {
            rows.push((
                info.base_offset.0 + j as i64,
                k.map(str::to_string),
                v.map(str::to_string),
                T0,
            ));
        }
    }
    rows
}

// Proves the first pass after a reopen starts at the cleaner checkpoint: a compacted log
// is closed, reopened, gets one dirty segment (new keys and a newer value of one old
// key) and is compacted. With the checkpoint the pass maps exactly the dirty segment's
// bytes, rewrites only the old segment holding the superseded value (every other
// segment file stays byte for byte), and leaves every key's newest value. The same log
// reopened without the checkpoint (the control) maps every closed byte again and ends
// the same; its pass writes the checkpoint again.
#[test]
fn reopen_resumes_from_cleaner_checkpoint() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let (mut model, clean_bytes) = compacted_closed_log(&disk, config()).await;
        let control = disk.crash_image(&mut SimRng::new(0));
        control.remove_file(&checkpoint_path(dir)).unwrap();
        let mut results = Vec::new();
        for d in [&disk, &control] {
            let log = open_sim(dir, d).await;
            let rows = append_new_keys(&log, 40, "a");
            log.enforce_retention(T0 + 1000, log.log_end_offset())
                .await
                .unwrap();
            log.flush().await.unwrap();
            let dirty_bytes = log.size_bytes() - clean_bytes;
            let before = segment_files(d);
            let o = compact_sum(&log, T0, 4096).await;
            let after = segment_files(d);
            let changed = before
                .iter()
                .filter(|(p, c)| after.get(*p) != Some(c))
                .count();
            if results.is_empty() {
                model.extend(rows);
            }
            assert_eq!(read_all(&log).await.0, expected(&model, T0));
            assert_eq!(
                checkpoint_of(d, dir).map(|c| c.first_dirty),
                Some(log.log_end_offset())
            );
            results.push((o, dirty_bytes, changed));
        }
        let (with, dirty_bytes, changed) = results[0];
        assert_eq!(with.bytes_mapped, dirty_bytes, "{with:?}");
        assert_eq!(with.segments_cleaned, 1, "{with:?}");
        assert_eq!(changed, 1);
        let (without, _, _) = results[1];
        assert_eq!(
            without.bytes_mapped,
            clean_bytes + dirty_bytes,
            "{without:?}"
        );
        assert_eq!(without.segments_cleaned, 1);
        assert_eq!(with.bytes_read + clean_bytes, without.bytes_read);
    });
}

// Proves min.cleanable.dirty.ratio is judged on the dirty part only after a reopen: with
// a ratio of 0.5, a compacted log reopened with a dirty segment smaller than its clean
// part starts no pass (reopened without the checkpoint, everything counts as dirty and a
// pass runs), and once the dirty part outweighs the clean part a pass runs.
#[test]
fn dirty_ratio_after_reopen_counts_only_the_dirty_part() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let cfg = LogConfig {
            min_cleanable_dirty_permille: 500,
            ..config()
        };
        let disk = SimDisk::new();
        let (_, clean_bytes) = compacted_closed_log(&disk, cfg).await;
        let control = disk.crash_image(&mut SimRng::new(0));
        control.remove_file(&checkpoint_path(dir)).unwrap();

        let log = open_sim_with(dir, &control, cfg).await;
        append_new_keys(&log, 10, "a");
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        assert!(compact_sum(&log, T0, 1 << 20).await.pass_finished);

        let log = open_sim_with(dir, &disk, cfg).await;
        append_new_keys(&log, 10, "a");
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        assert!(log.size_bytes() - clean_bytes < clean_bytes);
        let o = compact_sum(&log, T0, 1 << 20).await;
        assert!(!o.pass_finished && o.bytes_read == 0, "{o:?}");
        let mut n = 0;
        while log.size_bytes() - clean_bytes < clean_bytes {
            n += 1;
            append_new_keys(&log, 10, &format!("b{n}"));
            log.enforce_retention(T0 + 1000, log.log_end_offset())
                .await
                .unwrap();
        }
        let dirty_bytes = log.size_bytes() - clean_bytes;
        let o = compact_sum(&log, T0, 1 << 20).await;
        assert!(o.pass_finished, "{o:?}");
        assert_eq!(o.bytes_mapped, dirty_bytes);
    });
}

// Proves a damaged or out-of-range cleaner checkpoint is ignored at open (a log line,
// not a failed open) and removed: the log reads as before, the next pass maps every
// closed byte, compaction still keeps the newest value per key and writes a good
// checkpoint; a checkpoint below the log start offset (segments deleted after it was
// written) makes the dirty part start at the log start.
#[test]
fn bad_cleaner_checkpoint_is_ignored() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let (mut model, _) = compacted_closed_log(&disk, config()).await;
        let good = checkpoint_of(&disk, dir).unwrap();
        let leo = good.first_dirty;
        let past_active = CleanerCheckpoint {
            first_dirty: Offset(leo.0 + 1),
            tombstone_expiry_ms: None,
        }
        .encode();
        let mut damaged = good.encode();
        damaged[9] ^= 1;
        for (case, bytes) in [
            ("damaged", damaged),
            ("past active", past_active),
            ("short", vec![1, 2, 3]),
        ] {
            let img = disk.crash_image(&mut SimRng::new(0));
            img.write_file_atomic(&checkpoint_path(dir), &bytes)
                .await
                .unwrap();
            let log = open_sim(dir, &img).await;
            assert!(
                img.contents(&checkpoint_path(dir)).is_none(),
                "{case}: removed at open"
            );
            assert_eq!(log.log_end_offset(), leo);
            assert_eq!(read_all(&log).await.0, expected(&model, T0), "{case}");
            let rows = append_new_keys(&log, 5, "a");
            log.enforce_retention(T0 + 1000, log.log_end_offset())
                .await
                .unwrap();
            let size = log.size_bytes();
            let o = compact_sum(&log, T0, 1 << 20).await;
            assert_eq!(o.bytes_mapped, size, "{case}: everything mapped");
            let mut want = model.clone();
            want.extend(rows);
            assert_eq!(read_all(&log).await.0, expected(&want, T0), "{case}");
            assert_eq!(
                checkpoint_of(&img, dir).map(|c| c.first_dirty),
                Some(log.log_end_offset())
            );
        }
        // Below the log start: delete-records past the first segment, with a checkpoint
        // at 0.
        let log = open_sim(dir, &disk).await;
        let second = log.segment_base_offsets()[1];
        log.delete_records_before(second, log.log_end_offset())
            .await
            .unwrap();
        model.retain(|r| r.0 >= second.0);
        log.close().await.unwrap();
        let zero = CleanerCheckpoint {
            first_dirty: Offset(0),
            tombstone_expiry_ms: None,
        };
        disk.write_file_atomic(&checkpoint_path(dir), &zero.encode())
            .await
            .unwrap();
        let log = open_sim(dir, &disk).await;
        assert_eq!(log.log_start_offset(), second);
        model.extend(append_new_keys(&log, 5, "b"));
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        let kept = log.size_bytes();
        let o = compact_sum(&log, T0, 1 << 20).await;
        assert_eq!(o.bytes_mapped, kept, "mapped from the log start");
        assert_eq!(read_all(&log).await.0, expected(&model, T0));
    });
}

// Proves a truncation below the cleaner checkpoint lowers it to the truncation point
// before any file is cut, so records appended after the truncation are never taken as
// clean: a compacted log (checkpoint at its end) is truncated into its clean part (the
// cut-off part held only keys of its own), then gets an expired tombstone for a key whose
// value lies below the cut, and more records past the old checkpoint; after a reopen a
// pass maps from the cut, so the tombstone removes the older value and no key comes
// back. Crash images at each step of the truncation hold the old checkpoint only while no
// file was cut, and the lowered one before the first file is cut.
#[test]
fn truncation_below_checkpoint_lowers_it() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open_sim(dir, &disk).await;
        let mut model = fill(&log, 200, 3);
        let cut = log.log_end_offset();
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        // Keys of their own after the cut, so nothing below it was superseded by them.
        model.extend(append_new_keys(&log, 120, "t"));
        model.retain(|r| r.0 < cut.0 || r.1.as_deref() != Some("k0"));
        roll_and_compact(&log, T0, 1 << 20).await;
        let old = checkpoint_of(&disk, dir).unwrap().first_dirty;
        assert!(old.0 > cut.0 + 100);
        assert!(log.segment_base_offsets().iter().any(|b| *b > cut));
        // The key whose value below the cut the tombstone must remove.
        let victim = expected(&model, T0)
            .into_iter()
            .find(|r| r.0 < cut.0 && r.2.is_some())
            .unwrap()
            .1
            .unwrap();
        let old_leo = log.log_end_offset();
        // Crash images at every whole-file write and directory sync of the truncation:
        // the checkpoint is the old one only while no file was cut, and never above what
        // the reopened log holds.
        let mut lowered_before_cut = 0;
        let truncation = {
            let log = log.clone();
            async move { log.truncate_to(cut).await.unwrap() }
        };
        step_through_held_dir_ops(&disk, truncation, async || {
            let img = disk.crash_image(&mut SimRng::new(0));
            let c = checkpoint_of(&img, dir).unwrap().first_dirty;
            let reopened = open_sim(dir, &img).await;
            if c == old {
                assert_eq!(reopened.log_end_offset(), old_leo);
            } else {
                assert_eq!(c, cut);
                lowered_before_cut += u32::from(reopened.log_end_offset() == old_leo);
            }
            let after = checkpoint_of(&img, dir).map(|c| c.first_dirty);
            assert!(
                after.is_none_or(|c| c <= reopened.log_end_offset()),
                "{after:?}"
            );
        })
        .await;
        assert!(
            lowered_before_cut >= 1,
            "a stop between the checkpoint write and the cut"
        );
        assert_eq!(checkpoint_of(&disk, dir).unwrap().first_dirty, cut);
        model.retain(|r| r.0 < cut.0);
        let info = log
            .append(
                kv_batch(&[(Some(&victim), None)], T0 - 10 * RETENTION_MS, 0, None),
                LeaderEpoch(0),
                T0,
            )
            .unwrap();
        model.push((
            info.base_offset.0,
            Some(victim.clone()),
            None,
            T0 - 10 * RETENTION_MS,
        ));
        model.extend(append_new_keys(&log, 150, "u"));
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        assert!(log.log_end_offset() > old);
        log.close().await.unwrap();
        let log = open_sim(dir, &disk).await;
        // Reopened, the last segment is active again: one more append lets it roll.
        model.extend(append_new_keys(&log, 1, "z"));
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        let o = compact_sum(&log, T0, 1 << 20).await;
        assert!(o.pass_finished);
        let read = read_all(&log).await.0;
        assert!(
            !read.iter().any(|r| r.1.as_deref() == Some(victim.as_str())),
            "{victim} came back"
        );
        assert_eq!(read, expected(&model, T0));
    });
}

// Proves crash images around the checkpoint write reopen correctly: a second pass over a
// compacted log with newer values runs with every directory operation held; at each
// stop (each swap step and, last, the checkpoint write) crash images reopen to the same
// log end offset with a checkpoint no newer than what was mapped (the first pass's
// until the write lands), and compacting the reopened image until idle gives exactly the
// model's newest values. After the write the checkpoint is the second pass's end.
#[test]
fn crash_around_checkpoint_write() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open_sim(dir, &disk).await;
        let mut model = fill(&log, 150, 4);
        roll_and_compact(&log, T0, 1 << 20).await;
        let first = checkpoint_of(&disk, dir).unwrap().first_dirty;
        model.extend(fill(&log, 100, 5));
        log.enforce_retention(T0 + 1000, log.log_end_offset())
            .await
            .unwrap();
        log.flush().await.unwrap();
        let leo = log.log_end_offset();
        let mut stops = 0;
        step_through_held_dir_ops(&disk, compact_to_idle(log.clone()), async || {
            stops += 1;
            assert_eq!(checkpoint_of(&disk, dir).unwrap().first_dirty, first);
            for seed in 0..2 {
                let img = disk.crash_image(&mut SimRng::new(seed));
                let reopened = open_sim(dir, &img).await;
                assert_eq!(reopened.log_end_offset(), leo);
                check_consistent(&model, &read_all(&reopened).await.0);
                // Reopened, the last closed segment is active again, and segment.ms counts
                // from the first append after the restart: append one record and roll.
                let mut m = model.clone();
                m.extend(append_new_keys(&reopened, 1, "z"));
                roll_and_compact(&reopened, T0, 1 << 20).await;
                assert_eq!(read_all(&reopened).await.0, expected(&m, T0));
                assert_eq!(
                    checkpoint_of(&img, dir).unwrap().first_dirty,
                    reopened.log_end_offset()
                );
            }
        })
        .await;
        assert!(stops >= 4, "{stops}");
        assert_eq!(checkpoint_of(&disk, dir).unwrap().first_dirty, leo);
        let reopened = open_sim(dir, &disk.crash_image(&mut SimRng::new(0))).await;
        assert_eq!(compact_until_idle(&reopened, T0).await, 0);
        assert_eq!(read_all(&reopened).await.0, expected(&model, T0));
    });
}

// Proves the newest value per key is kept across compact/reopen/append/compact cycles
// against a model: each cycle appends random keyed records (tombstones, expired and
// recent, keyless records, every codec) in one or more segments, compacts fully or only
// a few slices, and reopens either after a clean close or from a crash image (after a
// flush, so nothing acknowledged is lost; a pass in flight is cut off). After every full
// pass the log is exactly the model's newest values, and every read matches the model.
#[test]
fn model_compact_reopen_cycles() {
    run(|| async {
        let dir = Path::new("/sim/m-0");
        let mut disk = SimDisk::new();
        let mut rng = StdRng::seed_from_u64(11);
        let mut model: Vec<(i64, Option<String>, Option<String>, i64)> = Vec::new();
        let mut log = open_sim(dir, &disk).await;
        let mut full_passes = 0;
        for cycle in 0..24 {
            for _ in 0..rng.random_range(1..=3) {
                for _ in 0..rng.random_range(5..60) {
                    let n = rng.random_range(1..=6usize);
                    let ts = if rng.random_bool(0.5) {
                        T0 - 10 * RETENTION_MS
                    } else {
                        T0 - RETENTION_MS / 2
                    };
                    let recs: Vec<(Option<String>, Option<String>)> = (0..n)
                        .map(|i| {
                            let key = (!rng.random_bool(0.03))
                                .then(|| format!("key-{}", rng.random_range(0..80)));
                            let value = (!rng.random_bool(0.1))
                                .then(|| format!("v{cycle}-{i}-{}", rng.random::<u16>()));
                            (key, value)
                        })
                        .collect();
                    let refs: Vec<(Option<&str>, Option<&str>)> = recs
                        .iter()
                        .map(|(k, v)| (k.as_deref(), v.as_deref()))
                        .collect();
                    let codec = rng.random_range(0..=4i16);
                    let info = append_legacy(&log, kv_batch(&refs, ts, codec, None), T0);

                    for (i, (k, v)) in recs.into_iter().enumerate() {
                        model.push((info.base_offset.0 + i as i64, k, v, ts));
                    }
                }
                log.enforce_retention(T0 + 1000, log.log_end_offset())
                    .await
                    .unwrap();
            }
            log.flush().await.unwrap();
            if rng.random_bool(0.6) {
                compact_until_idle(&log, T0).await;
                full_passes += 1;
                assert_eq!(
                    read_all(&log).await.0,
                    expected(&model, T0),
                    "cycle {cycle}"
                );
            } else {
                for _ in 0..rng.random_range(1..4) {
                    log.compact(T0, 2048, log.log_end_offset()).await.unwrap();
                }
                check_consistent(&model, &read_all(&log).await.0);
            }
            if rng.random_bool(0.5) {
                log.close().await.unwrap();
            } else {
                disk = disk.crash_image(&mut SimRng::new(cycle));
            }
            drop(log);
            log = open_sim(dir, &disk).await;
            check_consistent(&model, &read_all(&log).await.0);
        }
        compact_until_idle(&log, T0).await;
        assert_eq!(read_all(&log).await.0, expected(&model, T0));
        assert!(full_passes >= 8, "{full_passes}");
    });
}
