//! Model tests of replication on the engine side, on `SimDisk`: a leader log takes random
//! appends and a follower log copies them with `append_replicated` through bounded reads,
//! as a follower's fetch does. Checked: the follower's segment files equal the leader's
//! byte for byte; a truncation followed by re-replication equals a log that got the same
//! batches directly; crash images of the follower taken during replication keep every
//! batch that was durable when the image was taken and show nothing torn. Seeds come
//! from rand, are printed, and `ENGINE_SEED=<n>` replays one.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use common::*;
use futures_lite::future::poll_once;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_engine::batch::{BatchHeader, build_test_batch, stamp_offset_and_epoch, validate};
use sluice_engine::disk::Disk;
use sluice_engine::sim_disk::{SimDisk, SimRng};
use sluice_engine::{
    AppendReplicatedError, AssignEpochError, DeleteRecordsError, LeaderEpoch, Log, LogConfig,
    Offset, ReadCache,
};

const LEADER: &str = "/sim/leader/t-0";
const FOLLOWER: &str = "/sim/follower/t-0";
const DIRECT: &str = "/sim/direct/t-0";

/// Seeds to run: `ENGINE_SEED` alone when set, else a few fixed ones and a fresh one.
fn seeds(fixed: u64) -> Vec<u64> {
    match std::env::var("ENGINE_SEED") {
        Ok(s) => vec![s.parse().expect("ENGINE_SEED is a number")],
        Err(_) => (0..fixed).chain([rand::random::<u64>()]).collect(),
    }
}

fn config(rng: &mut SmallRng) -> LogConfig {
    LogConfig {
        retention_ms: -1,
        ..fixed_config(rng.random_range(2048..8192), rng.random_range(128..1024))
    }
}

/// Small segments and no background flush (tests flush when they mean to).
fn fixed_config(segment_bytes_max: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes,
        flush_interval_ms: 1_000_000,
        ..LogConfig::default()
    }
}

async fn open(dir: &str, cfg: LogConfig, disk: &SimDisk) -> Rc<Log> {
    let d: Rc<dyn Disk> = Rc::new(disk.clone());
    Log::open_with_disk(Path::new(dir), cfg, ReadCache::new(16 << 10), d)
        .await
        .unwrap()
}

/// A leader and a follower log of one seed's random config on one `SimDisk`, and the
/// seed's PRNG.
struct Pair {
    rng: SmallRng,
    cfg: LogConfig,
    disk: SimDisk,
    leader: Rc<Log>,
    follower: Rc<Log>,
}

impl Pair {
    async fn new(test: &str, seed: u64) -> Pair {
        println!("{test} seed {seed}");
        let mut rng = SmallRng::seed_from_u64(seed);
        let cfg = config(&mut rng);
        let disk = SimDisk::new();
        let leader = open(LEADER, cfg, &disk).await;
        let follower = open(FOLLOWER, cfg, &disk).await;
        Pair {
            rng,
            cfg,
            disk,
            leader,
            follower,
        }
    }
}

/// A leader append of a random batch: idempotent-producer batches from two producers
/// or plain ones, random sizes, now and then a new leader epoch.
#[derive(Default)]
struct Leader {
    epoch: i32,
    sequences: [i32; 2],
}

impl Leader {
    fn append(&mut self, log: &Log, rng: &mut SmallRng) {
        if rng.random_ratio(1, 15) {
            self.epoch += 1;
        }
        let count = rng.random_range(1..6);
        let payload = rng.random_range(0..400);
        let ts = 1_000 + rng.random_range(0..1_000);
        let producer = if rng.random_bool(0.5) {
            let p = rng.random_range(0..2);
            let seq = self.sequences[p];
            self.sequences[p] += count;
            Some((p as i64 + 7, 0, seq))
        } else {
            None
        };
        let batch = Bytes::from(build_test_batch(count, payload, ts, producer));
        log.append(batch, LeaderEpoch(self.epoch), 0).unwrap();
    }
}

/// One follower fetch: a bounded read of the leader from the follower's log end offset
/// (upper bound: the leader's log end), appended in random groups of whole batches.
/// Returns the batches copied.
async fn fetch_once(leader: &Log, follower: &Log, rng: &mut SmallRng) -> Vec<Bytes> {
    let from = follower.log_end_offset();
    let bytes_max = rng.random_range(1..6000);
    let r = leader
        .read_up_to(from, bytes_max, leader.log_end_offset())
        .await
        .unwrap();
    let mut rest = &r.batches[..];
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len());
        let info = follower.append_replicated(joined(&rest[..n]), 0).unwrap();
        assert_eq!(info.batch_count, n);
        assert_eq!(info.log_end_offset, follower.log_end_offset());
        rest = &rest[n..];
    }
    r.batches
}

async fn catch_up(leader: &Log, follower: &Log, rng: &mut SmallRng) {
    while follower.log_end_offset() < leader.log_end_offset() {
        fetch_once(leader, follower, rng).await;
    }
}

fn joined(batches: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for b in batches {
        out.extend_from_slice(b);
    }
    out.freeze()
}

/// Every batch of the log, in order; each must verify.
async fn read_all(log: &Log) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 16).await.unwrap();
        assert!(!r.batches.is_empty(), "empty read at {next:?}");
        for b in &r.batches {
            validate(b).expect("a served batch verifies");
        }
        next = Offset(ranges(&r.batches).last().unwrap().1 + 1);
        out.extend(r.batches);
    }
    out
}

/// The segment files (`.log`) of `dir` by name and their bytes.
fn segment_files(disk: &SimDisk, dir: &str) -> BTreeMap<String, Vec<u8>> {
    disk.paths()
        .into_iter()
        .filter(|p| p.starts_with(dir) && p.extension().is_some_and(|e| e == "log"))
        .map(|p: PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, disk.contents(&p).unwrap())
        })
        .collect()
}

/// Both logs hold the same batches, the same segment files byte for byte, the same
/// leader epochs and the same producer state.
async fn assert_same_log(disk: &SimDisk, a: (&Log, &str), b: (&Log, &str), ctx: &str) {
    let (la, lb) = (a.0, b.0);
    assert_eq!(la.log_end_offset(), lb.log_end_offset(), "{ctx}");
    assert_eq!(
        la.segment_base_offsets(),
        lb.segment_base_offsets(),
        "{ctx}"
    );
    let (ba, bb) = (read_all(la).await, read_all(lb).await);
    assert_eq!(ranges(&ba), ranges(&bb), "{ctx}");
    assert_eq!(ba, bb, "{ctx}: batch bytes differ");
    let (fa, fb) = (segment_files(disk, a.1), segment_files(disk, b.1));
    assert!(!fa.is_empty(), "{ctx}");
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "{ctx}"
    );
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{ctx}: segment {name} differs");
    }
    for epoch in 0..=la.latest_epoch().map_or(0, |e| e.0) + 1 {
        assert_eq!(
            la.end_offset_for_epoch(LeaderEpoch(epoch)),
            lb.end_offset_for_epoch(LeaderEpoch(epoch)),
            "{ctx}: epoch {epoch}"
        );
    }
    for pid in [7, 8] {
        assert_eq!(
            la.producer_last_sequence(pid),
            lb.producer_last_sequence(pid),
            "{ctx}: producer {pid}"
        );
    }
}

// Proves a follower that copies a leader's batches with append_replicated, fetched by
// bounded reads and appended in random groups while both logs flush at random moments,
// ends with segment files equal to the leader's byte for byte, the same batches, leader
// epochs and producer state, before and after both are closed and reopened.
#[test]
fn follower_segments_equal_leader() {
    run(|| async {
        for seed in seeds(6) {
            let mut p = Pair::new("follower_segments_equal_leader", seed).await;
            let mut writer = Leader::default();
            for _ in 0..300 {
                match p.rng.random_range(0..10) {
                    0..6 => writer.append(&p.leader, &mut p.rng),
                    6..8 => {
                        fetch_once(&p.leader, &p.follower, &mut p.rng).await;
                    }
                    8 => p.leader.flush().await.unwrap(),
                    _ => p.follower.flush().await.unwrap(),
                }
            }
            catch_up(&p.leader, &p.follower, &mut p.rng).await;
            let ctx = format!("seed {seed}");
            p.leader.flush().await.unwrap();
            p.follower.flush().await.unwrap();
            assert_same_log(&p.disk, (&p.leader, LEADER), (&p.follower, FOLLOWER), &ctx).await;
            p.leader.close().await.unwrap();
            p.follower.close().await.unwrap();
            p.leader = open(LEADER, p.cfg, &p.disk).await;
            p.follower = open(FOLLOWER, p.cfg, &p.disk).await;
            assert_same_log(&p.disk, (&p.leader, LEADER), (&p.follower, FOLLOWER), &ctx).await;
        }
    });
}

// Proves truncate_to followed by re-replication gives the same log as replicating the
// same batches directly: a follower copies a prefix of the leader, takes a divergent
// tail of its own as a former leader (a higher epoch), truncates at the divergence (or
// a random earlier offset) and copies the rest; its segment files, batches, epochs and
// producer state then equal those of a log that only ever copied the leader.
#[test]
fn truncate_then_reappend_equals_direct() {
    run(|| async {
        for seed in seeds(6) {
            let mut p = Pair::new("truncate_then_reappend_equals_direct", seed).await;
            let direct = open(DIRECT, p.cfg, &p.disk).await;
            let mut writer = Leader::default();
            for _ in 0..p.rng.random_range(20..120) {
                writer.append(&p.leader, &mut p.rng);
            }
            catch_up(&p.leader, &p.follower, &mut p.rng).await;
            let diverged_at = p.follower.log_end_offset();
            // The p.follower led epoch 1000 for a while; nobody copied those batches.
            p.follower.assign_epoch(LeaderEpoch(1000)).await.unwrap();
            for _ in 0..p.rng.random_range(0..40) {
                let b = batch(p.rng.random_range(1..4), p.rng.random_range(0..300), 5);
                p.follower.append(b, LeaderEpoch(1000), 0).unwrap();
            }
            if p.rng.random_bool(0.5) {
                p.follower.flush().await.unwrap();
            }
            for _ in 0..p.rng.random_range(1..120) {
                writer.append(&p.leader, &mut p.rng);
            }
            let cut = if p.rng.random_bool(0.5) {
                diverged_at
            } else {
                Offset(p.rng.random_range(1..=diverged_at.0.max(1)))
            };
            p.follower.truncate_to(cut).await.unwrap();
            assert!(p.follower.log_end_offset() <= cut);
            assert!(p.follower.durable_offset() <= p.follower.log_end_offset());
            catch_up(&p.leader, &p.follower, &mut p.rng).await;
            // Epoch 1000 is gone: cut off, or (never written) replaced by the p.leader's.
            assert_eq!(p.follower.latest_epoch(), p.leader.latest_epoch());
            catch_up(&p.leader, &direct, &mut p.rng).await;
            p.leader.flush().await.unwrap();
            p.follower.flush().await.unwrap();
            direct.flush().await.unwrap();
            let ctx = format!("seed {seed} cut {cut:?}");
            assert_same_log(&p.disk, (&direct, DIRECT), (&p.follower, FOLLOWER), &ctx).await;
            assert_same_log(&p.disk, (&p.leader, LEADER), (&p.follower, FOLLOWER), &ctx).await;
        }
    });
}

// Proves crash images of a follower taken during replication lose nothing that was
// durable: after reopening each image, every batch below the durable offset the
// follower had when the image was taken is present and identical to the leader's, and
// every batch the reopened log shows verifies and is the leader's batch at that offset
// (nothing torn or half-written is visible).
#[test]
fn follower_crash_images_keep_durable_batches() {
    run(|| async {
        let (mut images, mut tails_lost) = (0, 0);
        for seed in seeds(8) {
            let mut p = Pair::new("follower_crash_images_keep_durable_batches", seed).await;
            let mut writer = Leader::default();
            let mut copied: BTreeMap<i64, Bytes> = BTreeMap::new();
            for step in 0..200 {
                match p.rng.random_range(0..10) {
                    0..5 => writer.append(&p.leader, &mut p.rng),
                    5..8 => {
                        for b in fetch_once(&p.leader, &p.follower, &mut p.rng).await {
                            copied.insert(base(&b).0, b);
                        }
                    }
                    8 => {
                        // A flush that may still be syncing when the image is taken.
                        let f = p.follower.clone();
                        glommio::spawn_local(async move {
                            let _ = f.flush().await;
                        })
                        .detach();
                    }
                    _ => {
                        let durable = p.follower.durable_offset();
                        let image = p.disk.crash_image(&mut SimRng::new(p.rng.random::<u64>()));
                        let ctx = format!("seed {seed} step {step} durable {durable:?}");
                        let recovered =
                            check_crash_image(&image, p.cfg, durable, &copied, &ctx).await;
                        images += 1;
                        tails_lost += usize::from(recovered < p.follower.log_end_offset());
                    }
                }
            }
        }
        assert!(
            tails_lost > 0 && tails_lost < images,
            "{tails_lost} of {images} images lost a tail: the crash path went untested"
        );
    });
}

/// Reopens a crash image of the follower and checks it keeps every batch below
/// `durable` and shows only verified batches equal to the ones copied from the leader.
/// Returns the recovered log end offset.
async fn check_crash_image(
    image: &SimDisk,
    cfg: LogConfig,
    durable: Offset,
    copied: &BTreeMap<i64, Bytes>,
    ctx: &str,
) -> Offset {
    let log = open(FOLLOWER, cfg, image).await;
    assert!(
        log.log_end_offset() >= durable,
        "{ctx}: lost {log_end:?}",
        log_end = log.log_end_offset()
    );
    let got = read_all(&log).await;
    for b in &got {
        let at = base(b).0;
        let want = copied
            .get(&at)
            .unwrap_or_else(|| panic!("{ctx}: batch {at} never copied"));
        assert!(b == want, "{ctx}: batch {at} differs from the leader's");
    }
    let below: Vec<i64> = copied.keys().copied().filter(|o| *o < durable.0).collect();
    let got_below: Vec<i64> = got
        .iter()
        .map(|b| base(b).0)
        .filter(|o| *o < durable.0)
        .collect();
    assert_eq!(below, got_below, "{ctx}: durable batches missing");
    let recovered = log.log_end_offset();
    log.close().await.unwrap();
    recovered
}

/// A batch with base offset `base` and leader epoch `epoch`, as a leader stores it.
fn stamped(count: i32, base: i64, epoch: i32) -> Bytes {
    let mut b = build_test_batch(count, 50, 1000, None);
    stamp_offset_and_epoch(&mut b, Offset(base), epoch);
    Bytes::from(b)
}

// Proves gaps a leader's compaction leaves are accepted: batches that skip offsets (also
// across a roll and at the first batch) are readable at their offsets, from offsets in
// a gap, and after an unclean reopen; an overlap, a bad CRC or an epoch going back is
// refused with its typed error and appends nothing.
#[test]
fn gaps_accepted_and_bad_input_refused() {
    run(|| async {
        let disk = SimDisk::new();
        let cfg = fixed_config(300, 64);
        let log = open(FOLLOWER, cfg, &disk).await;
        let batches = [
            stamped(2, 3, 0),
            stamped(1, 5, 0),
            stamped(3, 10, 1),
            stamped(2, 20, 1),
            stamped(1, 30, 2),
            stamped(1, 31, 2),
            stamped(2, 40, 2),
        ];
        log.append_replicated(joined(&batches[..3]), 0).unwrap();
        log.flush().await.unwrap();
        log.append_replicated(joined(&batches[3..]), 0).unwrap();
        assert_eq!(log.log_end_offset(), Offset(42));
        assert!(log.segment_count() > 1);

        let leo = log.log_end_offset();
        let overlap = log.append_replicated(stamped(1, 41, 2), 0);
        assert!(matches!(
            overlap,
            Err(AppendReplicatedError::OffsetMismatch { expected, got: Offset(41) }) if expected == leo
        ));
        let mut bad = BytesMut::from(&stamped(1, 42, 2)[..]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            log.append_replicated(joined(&[stamped(1, 42, 2), bad.freeze()]), 0),
            Err(AppendReplicatedError::Corrupt { .. })
        ));
        assert!(matches!(
            log.append_replicated(stamped(1, 50, 1), 0),
            Err(AppendReplicatedError::EpochRegression { .. })
        ));
        assert_eq!(
            log.log_end_offset(),
            leo,
            "a refused append appends nothing"
        );

        // From memory (a gap before the pending batches), then from the files.
        check_gapped(&log, &batches).await;
        log.flush().await.unwrap();
        check_gapped(&log, &batches).await;
        drop(log);
        let image = disk.crash_image(&mut SimRng::new(1));
        let reopened = open(FOLLOWER, cfg, &image).await;
        check_gapped(&reopened, &batches).await;
    });
}

/// The gapped log of `gaps_accepted_and_bad_input_refused` holds `batches`, serves the
/// next batch for a read from inside a gap, and knows where epoch 1 ends.
async fn check_gapped(log: &Log, batches: &[Bytes]) {
    assert_eq!(read_all(log).await, batches.to_vec());
    for from in [0, 4, 6, 9, 15, 25, 35] {
        let r = log.read(Offset(from), 1).await.unwrap();
        let want = batches
            .iter()
            .find(|b| BatchHeader::new(b).unwrap().last_offset().0 >= from);
        assert_eq!(r.batches.first(), want, "read from {from}");
    }
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        Some((LeaderEpoch(1), Offset(30)))
    );
}

// Proves assign_epoch starts the epoch at the log end offset and persists it with a
// flush (which fires the durability event), refuses a lower epoch, and that the
// retention and DeleteRecords bounds hold: nothing at or above the given high watermark
// is deleted.
#[test]
fn assign_epoch_and_high_watermark_bounds() {
    run(|| async {
        let disk = SimDisk::new();
        let cfg = LogConfig {
            retention_bytes: 0,
            ..fixed_config(1024, 4096)
        };
        let log = open(LEADER, cfg, &disk).await;
        for _ in 0..20 {
            log.append(batch(2, 200, 0), LeaderEpoch(3), 0).unwrap();
        }
        let moved = log.durable_moved();
        log.assign_epoch(LeaderEpoch(5)).await.unwrap();
        assert_eq!(log.durable_offset(), Offset(40));
        assert!(
            poll_once(moved).await.is_some(),
            "the flush moved the durable end"
        );
        let moved = log.durable_moved();
        log.flush().await.unwrap();
        assert!(
            poll_once(moved).await.is_none(),
            "nothing new became durable"
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(4)),
            Some((LeaderEpoch(3), Offset(40)))
        );
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
        assert!(matches!(
            log.assign_epoch(LeaderEpoch(4)).await,
            Err(AssignEpochError::StaleEpoch { .. })
        ));
        log.assign_epoch(LeaderEpoch(5)).await.unwrap();

        let hw = Offset(17);
        assert!(matches!(
            log.delete_records_before(Offset(18), hw).await,
            Err(DeleteRecordsError::OffsetOutOfRange { requested: Offset(18), high_watermark }) if high_watermark == hw
        ));
        log.enforce_retention(0, hw).await.unwrap();
        let lso = log.log_start_offset();
        assert!(lso > Offset(0) && lso <= hw, "{lso:?}");
        assert_eq!(log.delete_records_before(hw, hw).await.unwrap(), hw);
        let r = log.read(hw, 1).await.unwrap();
        assert!(ranges(&r.batches)[0].0 <= hw.0);
        log.enforce_retention(0, log.log_end_offset())
            .await
            .unwrap();
        assert!(log.log_start_offset() > hw);
    });
}

// Proves the durability event fires when an fsync moves the durable end, when a
// truncation lowers it, and when a failed fsync means it will never move again.
#[test]
fn durable_moved_on_sync_truncation_and_failure() {
    run(|| async {
        let disk = SimDisk::new();
        let log = open(FOLLOWER, fixed_config(4096, 4096), &disk).await;
        let two = joined(&[stamped(2, 0, 0), stamped(3, 2, 0)]);
        log.append_replicated(two, 0).unwrap();
        let moved = log.durable_moved();
        log.flush().await.unwrap();
        assert!(poll_once(moved).await.is_some());
        assert_eq!(log.durable_offset(), Offset(5));

        let moved = log.durable_moved();
        log.truncate_to(Offset(2)).await.unwrap();
        assert!(poll_once(moved).await.is_some());
        assert_eq!(log.durable_offset(), Offset(2));

        log.append_replicated(stamped(1, 2, 0), 0).unwrap();
        disk.set_fail_fsync(true);
        let moved = log.durable_moved();
        assert!(log.flush().await.is_err());
        assert!(poll_once(moved).await.is_some());
        assert!(log.failure().is_some());
        assert_eq!(log.durable_offset(), Offset(2));
    });
}
