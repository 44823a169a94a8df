//! Fault tests: random byte flips in every file of a partition, a full disk (a write that
//! is retried once space is back, retention and delete-records that free it), a failing
//! fsync, and a crash image taken with writes in flight. The log must answer with typed
//! errors or recover, never panic, never serve a batch that fails its CRC, and never
//! lose data acknowledged as durable.

mod common;

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use sluice_engine::batch::validate;
use sluice_engine::disk::Disk;
use sluice_engine::sim_disk::{SimDisk, SimRng};
use sluice_engine::{
    AppendError, FlushError, LeaderEpoch, Log, LogConfig, Offset, OpenError, ReadCache, ReadError,
};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 << 10,
        index_interval_bytes: 256,
        flush_interval_ms: 1_000_000,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, disk: &SimDisk) -> Result<Rc<Log>, OpenError> {
    let d: Rc<dyn Disk> = Rc::new(disk.clone());
    Log::open_with_disk(dir, cfg(), ReadCache::new(1 << 20), d).await
}

/// Reads the whole log; every batch served must verify. Returns the offsets read or the
/// typed corruption error.
async fn read_all(log: &Log) -> Result<i64, ReadError> {
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 4096).await?;
        assert!(!r.batches.is_empty());
        for b in &r.batches {
            validate(b).expect("served batch must verify");
        }
        next = Offset(ranges(&r.batches).last().unwrap().1 + 1);
    }
    Ok(next.0)
}

// Proves that flipping random bytes in any file of a partition (segments, indexes,
// checkpoints, snapshots), after a clean or an unclean stop, gives either a recovered log
// whose reads verify or a typed error, and never a panic.
#[test]
fn random_byte_flips_never_panic() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let mut outcomes = [0u32; 4]; // opened+read ok, read corrupt, open corrupt, truncated
        for seed in 0..150u64 {
            let mut rng = SimRng::new(seed);
            let disk = SimDisk::new();
            let log = open(dir, &disk).await.unwrap();
            let mut seq = 0;
            for i in 0..60 {
                let count = 1 + (i % 3);
                log.append(producer_batch(count, 4, 0, seq), LeaderEpoch(i / 20), 0)
                    .unwrap();
                seq += count;
            }
            log.flush().await.unwrap();
            let clean = rng.below(2) == 0;
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            let leo_before = i64::from(seq);
            let paths = disk.paths();
            for _ in 0..1 + rng.below(3) {
                let path = &paths[rng.below(paths.len() as u64) as usize];
                let len = disk.contents(path).unwrap().len() as u64;
                if len > 0 {
                    disk.corrupt(path, rng.below(len), 1 << rng.below(8));
                }
            }
            match open(dir, &disk).await {
                Ok(log) => match read_all(&log).await {
                    Ok(end) => {
                        outcomes[if end < leo_before { 3 } else { 0 }] += 1;
                    }
                    Err(ReadError::Corrupt { .. } | ReadError::CrcMismatch { .. }) => {
                        outcomes[1] += 1
                    }
                    Err(e) => panic!("seed {seed}: unexpected read error {e}"),
                },
                Err(OpenError::Corrupt { .. }) => outcomes[2] += 1,
                Err(e) => panic!("seed {seed}: unexpected open error {e}"),
            }
        }
        println!(
            "flips: ok {} read-corrupt {} open-corrupt {} truncated {}",
            outcomes[0], outcomes[1], outcomes[2], outcomes[3]
        );
        assert!(
            outcomes[1] + outcomes[2] + outcomes[3] > 0,
            "no flip was ever detected"
        );
    });
}

/// Bytes all files of the simulated disk hold now.
fn used_bytes(disk: &SimDisk) -> u64 {
    disk.paths()
        .iter()
        .map(|p| disk.contents(p).unwrap().len() as u64)
        .sum()
}

/// Waits (on the executor's timer, so the flusher runs) until `done` or 5 s passed.
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    done()
}

// Proves a write that finds the disk full (here written in part, as a short O_DIRECT
// write is) leaves the log writable later: the flush fails with `OutOfSpace`, the log is
// not failed, appends are refused while full, reads below the durable offset work, and
// once space is back the background flusher rewrites the range from its aligned start on
// its own: every batch appended before the disk filled becomes durable, verifies after a
// crash, and appends are taken again.
#[test]
fn disk_full_write_is_retried_once_space_is_back() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open(dir, &disk).await.unwrap();
        for _ in 0..20 {
            log.append(batch(1, 500, 0), LeaderEpoch(0), 0).unwrap();
        }
        log.flush().await.unwrap();
        let durable = log.durable_offset();
        assert_eq!(durable, Offset(20));
        disk.set_space_bytes_max(Some(used_bytes(&disk) + 1000));
        for _ in 0..20 {
            log.append(batch(1, 500, 0), LeaderEpoch(0), 0).unwrap();
        }
        let err = log.flush().await.unwrap_err();
        assert!(
            matches!(err, FlushError::OutOfSpace(ref m) if m.contains("No space left")),
            "{err}"
        );
        assert_eq!(log.failure(), None);
        assert!(matches!(
            log.append(batch(1, 5, 0), LeaderEpoch(0), 0),
            Err(AppendError::OutOfSpace(_))
        ));
        assert!(matches!(
            log.wait_durable(Offset(40)).await,
            Err(FlushError::OutOfSpace(_))
        ));
        assert_eq!(log.durable_offset(), durable);
        let r = log.read_up_to(Offset(0), 1 << 20, durable).await.unwrap();
        assert_eq!(ranges(&r.batches).last(), Some(&(19, 19)));
        for b in &r.batches {
            validate(b).unwrap();
        }
        // Still full: retries fail and nothing more becomes durable.
        glommio::timer::sleep(Duration::from_millis(500)).await;
        assert_eq!(log.durable_offset(), durable);

        disk.set_space_bytes_max(None);
        assert!(
            wait_for(|| log.durable_offset() == Offset(40)).await,
            "the write was not retried once space was back"
        );
        log.append(batch(1, 5, 0), LeaderEpoch(0), 0).unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.failure(), None);
        drop(log);
        let crashed = disk.crash_image(&mut SimRng::new(7));
        let log = open(dir, &crashed).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(41));
        assert_eq!(read_all(&log).await.unwrap(), 41);
    });
}

// Proves retention and delete-records run on a log that is out of space, and that the
// space retention frees is what lets the log's retried write succeed (nobody else frees
// any): old segments go, everything appended before the disk filled becomes durable.
#[test]
fn retention_and_delete_records_work_while_out_of_space() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open(dir, &disk).await.unwrap();
        for _ in 0..60 {
            log.append(batch(1, 500, 0), LeaderEpoch(0), 0).unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.segment_count() >= 4);
        disk.set_space_bytes_max(Some(used_bytes(&disk) + 600));
        for _ in 0..10 {
            log.append(batch(1, 500, 0), LeaderEpoch(0), 0).unwrap();
        }
        assert!(matches!(log.flush().await, Err(FlushError::OutOfSpace(_))));

        let lso = log
            .delete_records_before(Offset(10), log.log_end_offset())
            .await
            .unwrap();
        assert_eq!(lso, Offset(10));
        let segments = log.segment_count();
        log.set_config(LogConfig {
            retention_bytes: 9 << 10,
            ..cfg()
        });
        let o = log
            .enforce_retention(0, log.log_end_offset())
            .await
            .unwrap();
        assert!(o.segments_deleted >= 2, "{o:?}");
        assert_eq!(log.segment_count(), segments - o.segments_deleted);
        assert!(
            wait_for(|| log.durable_offset() == Offset(70)).await,
            "retention freed space but the write was not retried"
        );
        assert_eq!(log.failure(), None);
        log.append(batch(1, 5, 0), LeaderEpoch(0), 0).unwrap();
        log.flush().await.unwrap();
        let first = log.log_start_offset();
        let r = log.read(first, 1 << 20).await.unwrap();
        assert_eq!(ranges(&r.batches).first().map(|b| b.0), Some(first.0));
    });
}

// Proves a flush that wrote the active segment and then found the disk full writing a
// checkpoint does not let a later flush claim that data durable unsynced: the retry's
// sync ticket fdatasyncs the segment, so every crash image afterwards holds the batch.
#[test]
fn write_before_a_full_disk_failure_is_synced_by_the_retry() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        for seed in 0..20u64 {
            let disk = SimDisk::new();
            let log = open(dir, &disk).await.unwrap();
            log.append(batch(1, 100, 0), LeaderEpoch(0), 0).unwrap();
            log.flush().await.unwrap();
            // The next batch fits in the segment's last sector; the grown leader-epoch
            // checkpoint does not fit anywhere.
            disk.set_space_bytes_max(Some(used_bytes(&disk)));
            log.append(batch(1, 100, 0), LeaderEpoch(1), 0).unwrap();
            let err = log.flush().await.unwrap_err();
            assert!(
                matches!(err, FlushError::OutOfSpace(ref m) if m.contains("epoch")),
                "{err}"
            );
            assert_eq!(log.durable_offset(), Offset(1));
            disk.set_space_bytes_max(None);
            assert!(wait_for(|| log.durable_offset() == Offset(2)).await);
            drop(log);
            let crashed = disk.crash_image(&mut SimRng::new(seed));
            let log = open(dir, &crashed).await.unwrap();
            assert_eq!(log.log_end_offset(), Offset(2), "seed {seed}");
        }
    });
}

// Proves a failed fsync is never retried: the log stays failed even after the disk
// recovers, and everything fsync'ed before survives reopen.
#[test]
fn failed_fsync_is_final() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open(dir, &disk).await.unwrap();
        log.append(batch(2, 100, 0), LeaderEpoch(0), 0).unwrap();
        log.flush().await.unwrap();
        log.append(batch(2, 100, 0), LeaderEpoch(0), 0).unwrap();
        disk.set_fail_fsync(true);
        let syncs = disk.fsync_count();
        assert!(log.wait_durable(Offset(4)).await.is_err());
        disk.set_fail_fsync(false);
        assert!(matches!(log.flush().await, Err(FlushError::LogFailed(_))));
        assert!(matches!(
            log.wait_durable(Offset(4)).await,
            Err(FlushError::LogFailed(_))
        ));
        assert_eq!(
            disk.fsync_count(),
            syncs + 1,
            "the failed fsync was retried"
        );
        assert!(matches!(
            log.append(batch(1, 1, 0), LeaderEpoch(0), 0),
            Err(AppendError::LogFailed(_))
        ));
        assert_eq!(log.durable_offset(), Offset(2));
        drop(log);
        let crashed = disk.crash_image(&mut SimRng::new(1));
        let log = open(dir, &crashed).await.unwrap();
        assert!(log.log_end_offset() >= Offset(2));
        read_all(&log).await.unwrap();
    });
}

// Proves that across many crash points with flushes in flight, every offset reported
// durable before the crash is readable after recovery and nothing torn is served.
#[test]
fn crash_with_writes_in_flight_keeps_durable_data() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        for seed in 0..100u64 {
            let mut rng = SimRng::new(seed);
            let disk = SimDisk::new();
            let log = open(dir, &disk).await.unwrap();
            for _ in 0..rng.below(30) {
                log.append(
                    batch(1 + rng.below(3) as i32, rng.below(2000) as usize, 0),
                    LeaderEpoch(0),
                    0,
                )
                .unwrap();
                if rng.below(4) == 0 {
                    log.flush().await.unwrap();
                }
            }
            let durable = log.durable_offset();
            disk.set_hold_fsync(true);
            let l2 = log.clone();
            let t = glommio::spawn_local(async move {
                let _ = l2.flush().await;
            });
            for _ in 0..rng.below(5) {
                futures_lite::future::yield_now().await;
            }
            let crashed = disk.crash_image(&mut rng);
            disk.set_hold_fsync(false);
            t.await;
            let recovered = open(dir, &crashed).await.unwrap();
            assert!(recovered.log_end_offset() >= durable, "seed {seed}");
            assert_eq!(
                read_all(&recovered).await.unwrap(),
                recovered.log_end_offset().0,
                "seed {seed}"
            );
        }
    });
}

// Proves a corrupt byte in an older, trusted segment is never served: after a clean stop
// the read of that batch is `ReadError::CrcMismatch` with both CRCs, a read from before
// it serves every intact batch up to it (other batches still read), and when
// the segment's indexes are missing too, open refuses with `OpenError::Corrupt` instead
// of silently truncating acknowledged data.
#[test]
fn corrupt_old_segment_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            segment_bytes_max: 4096,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, cfg, ReadCache::new(1 << 20)).await.unwrap();
        for _ in 0..60 {
            log.append(batch(1, 400, 0), LeaderEpoch(0), 0).unwrap();
        }
        log.close().await.unwrap();
        let first = dir.join("00000000000000000000.log");
        let mut bytes = std::fs::read(&first).unwrap();
        let batch_len = 461;
        bytes[batch_len * 2 + 200] ^= 0x01; // inside the payload of offset 2
        std::fs::write(&first, &bytes).unwrap();

        let log = Log::open(&dir, cfg, ReadCache::new(1 << 20)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(60));
        match log.read(Offset(2), 100).await {
            Err(ReadError::CrcMismatch {
                segment: Offset(0),
                position: 922,
                stored,
                computed,
            }) => assert_ne!(stored, computed),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(log.read(Offset(0), 100).await, Ok(r) if ranges(&r.batches) == vec![(0, 0)])
        );
        // A read from before the bad batch serves every intact batch up to it.
        let r = log.read(Offset(0), 1 << 20).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(0, 0), (1, 1)]);
        let r = log.read(Offset(1), 1 << 20).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(1, 1)]);
        assert!(log.read(Offset(30), 100).await.is_ok());
        log.close().await.unwrap();

        std::fs::remove_file(dir.join("00000000000000000000.index")).unwrap();
        match Log::open(&dir, cfg, ReadCache::new(1 << 20)).await {
            Err(OpenError::Corrupt {
                segment, position, ..
            }) => {
                assert_eq!((segment, position), (Offset(0), 922));
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a corrupt trusted segment was accepted"),
        }
    });
}

// Proves a caller dropping its wait_durable future mid-flush (a client that went away)
// neither stalls later flushes nor lets durability be claimed early.
#[test]
fn dropped_waiter_does_not_stall_group_commit() {
    run(|| async {
        let dir = Path::new("/sim/t-0");
        let disk = SimDisk::new();
        let log = open(dir, &disk).await.unwrap();
        log.append(batch(1, 100, 0), LeaderEpoch(0), 0).unwrap();
        disk.set_hold_fsync(true);
        let l2 = log.clone();
        let waiter = glommio::spawn_local(async move { l2.flush().await });
        for _ in 0..3 {
            futures_lite::future::yield_now().await;
        }
        drop(waiter); // cancels the waiting task while its fsync is held
        log.append(batch(1, 100, 0), LeaderEpoch(0), 0).unwrap();
        assert_eq!(log.durable_offset(), Offset(0));
        let l3 = log.clone();
        let second = glommio::spawn_local(async move { l3.flush().await });
        for _ in 0..3 {
            futures_lite::future::yield_now().await;
        }
        assert_eq!(
            log.durable_offset(),
            Offset(0),
            "durable before any fsync completed"
        );
        disk.set_hold_fsync(false);
        second.await.unwrap();
        assert_eq!(log.durable_offset(), Offset(2));
        log.close().await.unwrap();
    });
}
