//! Log behaviour on real O_DIRECT files: append/read/flush/close/reopen, rolls and
//! indexes, producer state, timestamps, leader epochs, retention, truncation.

mod common;

use std::rc::Rc;

use bytes::Bytes;
use common::*;
use sluice_engine::batch::{BatchHeader, validate};
use sluice_engine::{
    AppendError, CleanupPolicy, LeaderEpoch, Log, LogConfig, Offset, ReadCache, ReadError,
    TimestampOffset, TimestampType,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

// Proves appends get consecutive offsets, are readable at once, become durable on flush,
// and survive a clean close and reopen byte for byte.
#[test]
fn append_read_flush_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cache = ReadCache::new(1 << 20);
        let log = Log::open(&path, LogConfig::default(), cache.clone())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(0));
        let mut appended = Vec::new();
        for i in 0..50 {
            let info = log
                .append(batch(3, 100 + i, 1000 + i as i64), LeaderEpoch(1), 5)
                .unwrap();
            assert_eq!(info.base_offset, Offset(3 * i as i64));
            assert_eq!(info.last_offset, Offset(3 * i as i64 + 2));
            assert!(!info.duplicate);
            appended.push(info);
        }
        assert_eq!(log.log_end_offset(), Offset(150));
        // Readable before any flush, from memory.
        let r = log.read(Offset(4), 1 << 20).await.unwrap();
        assert_eq!(ranges(&r.batches)[0], (3, 5));
        assert_eq!(r.batches.len(), 49);
        log.wait_durable(Offset(150)).await.unwrap();
        assert_eq!(log.durable_offset(), Offset(150));
        log.close().await.unwrap();
        let before: Vec<_> = r.batches.clone();

        let log = Log::open(&path, LogConfig::default(), cache).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(150));
        // After reopen the cache is empty: served from disk, CRC checked.
        let r = log.read(Offset(3), 1 << 20).await.unwrap();
        assert_eq!(r.batches, before);
        for b in &r.batches {
            validate(b).unwrap();
            assert_eq!(BatchHeader::new(b).unwrap().partition_leader_epoch(), 1);
        }
        let r = log.read(Offset(150), 100).await.unwrap();
        assert!(r.batches.is_empty());
        assert!(matches!(
            log.read(Offset(151), 100).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();
    });
}

// Proves reads return at least one batch even past bytes_max, and whole batches within it.
#[test]
fn read_size_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, LogConfig::default(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        for _ in 0..10 {
            log.append(batch(1, 1000, 0), LeaderEpoch(0), 0).unwrap();
        }
        let one = log.read(Offset(0), 10).await.unwrap();
        assert_eq!(one.batches.len(), 1);
        let three = log.read(Offset(2), 3 * 1061 + 10).await.unwrap();
        assert_eq!(ranges(&three.batches), vec![(2, 2), (3, 3), (4, 4)]);
        log.flush().await.unwrap();
        log.close().await.unwrap();
        let log = Log::open(&path, LogConfig::default(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        let one = log.read(Offset(5), 10).await.unwrap();
        assert_eq!(ranges(&one.batches), vec![(5, 5)]);
        let three = log.read(Offset(2), 3 * 1061 + 10).await.unwrap();
        assert_eq!(ranges(&three.batches), vec![(2, 2), (3, 3), (4, 4)]);
    });
}

// Proves segments roll by size, reads cross segment boundaries from disk, and the
// offset index finds batches in the middle of sealed segments after reopen.
#[test]
fn roll_and_read_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cache = ReadCache::new(4096); // tiny: forces disk reads
        let log = Log::open(&path, small_config(), cache.clone())
            .await
            .unwrap();
        for i in 0..200 {
            log.append(batch(2, 300, i), LeaderEpoch(0), 0).unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
        for from in [0i64, 1, 77, 150, 233, 398, 399] {
            let r = log.read(Offset(from), 2000).await.unwrap();
            let first = ranges(&r.batches)[0];
            assert!(
                first.0 <= from && from <= first.1,
                "from {from} got {first:?}"
            );
        }
        // Read everything in small steps and check continuity.
        let mut next = 0i64;
        while next < 400 {
            let r = log.read(Offset(next), 5000).await.unwrap();
            for (b, l) in ranges(&r.batches) {
                assert_eq!(b, next);
                next = l + 1;
            }
        }
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(), cache).await.unwrap();
        let r = log.read(Offset(301), 1).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(300, 301)]);
        assert!(path.join("00000000000000000000.index").exists());
    });
}

// Proves idempotent producer rules: retries return original offsets, gaps and fenced
// epochs are refused, and the state survives a clean reopen and an unclean one.
#[test]
fn producer_state_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        let a = log
            .append(producer_batch(2, 7, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        let b = log
            .append(producer_batch(2, 7, 0, 2), LeaderEpoch(0), 0)
            .unwrap();
        let dup = log
            .append(producer_batch(2, 7, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        assert!(dup.duplicate);
        assert_eq!(
            (dup.base_offset, dup.last_offset),
            (a.base_offset, a.last_offset)
        );
        assert!(matches!(
            log.append(producer_batch(1, 7, 0, 9), LeaderEpoch(0), 0),
            Err(AppendError::OutOfOrderSequence {
                expected: 4,
                got: 9,
                ..
            })
        ));
        log.append(producer_batch(1, 8, 3, 0), LeaderEpoch(0), 0)
            .unwrap();
        assert!(matches!(
            log.append(producer_batch(1, 8, 2, 1), LeaderEpoch(0), 0),
            Err(AppendError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(log.producer_count(), 2);
        assert_eq!(log.log_end_offset(), Offset(5));
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.producer_count(), 2);
        let dup = log
            .append(producer_batch(2, 7, 0, 2), LeaderEpoch(0), 0)
            .unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, b.base_offset);
        // More appends, flushed but no clean close: replay from the snapshot restores them.
        log.append(producer_batch(2, 7, 0, 4), LeaderEpoch(0), 0)
            .unwrap();
        log.append(producer_batch(2, 9, 0, 0), LeaderEpoch(0), 0)
            .unwrap();
        log.flush().await.unwrap();
        drop(log);
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.producer_count(), 3);
        assert_eq!(log.producer_last_sequence(7), Some((0, 5)));
        assert!(
            log.append(producer_batch(2, 7, 0, 4), LeaderEpoch(0), 0)
                .unwrap()
                .duplicate
        );
    });
}

// Proves offset_for_timestamp and max_timestamp on memory and on disk, LogAppendTime
// stamping, and OffsetForLeaderEpoch answers.
#[test]
fn timestamps_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        for i in 0..100i64 {
            let epoch = LeaderEpoch(if i < 50 { 1 } else { 3 });
            log.append(batch(1, 200, 10_000 + i * 10), epoch, 0)
                .unwrap();
        }
        assert_eq!(
            log.max_timestamp(),
            Some(TimestampOffset {
                timestamp_ms: 10_990,
                offset: Offset(99)
            })
        );
        let check = |got: Option<TimestampOffset>, offset: i64, ts: i64| {
            assert_eq!(
                got,
                Some(TimestampOffset {
                    timestamp_ms: ts,
                    offset: Offset(offset)
                })
            );
        };
        check(log.offset_for_timestamp(0).await.unwrap(), 0, 10_000);
        check(log.offset_for_timestamp(10_455).await.unwrap(), 46, 10_460);
        assert_eq!(log.offset_for_timestamp(20_000).await.unwrap(), None);
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(1)),
            Some((LeaderEpoch(1), Offset(50)))
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(2)),
            Some((LeaderEpoch(1), Offset(50)))
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            Some((LeaderEpoch(3), Offset(100)))
        );
        assert_eq!(log.end_offset_for_epoch(LeaderEpoch(0)), None);
        log.close().await.unwrap();
        let cfg = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config()
        };
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        check(log.offset_for_timestamp(10_455).await.unwrap(), 46, 10_460);
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            Some((LeaderEpoch(3), Offset(100)))
        );
        let info = log.append(batch(1, 10, 5), LeaderEpoch(3), 99_999).unwrap();
        assert_eq!(info.log_append_time_ms, 99_999);
        let r = log.read(info.base_offset, 100).await.unwrap();
        let h = BatchHeader::new(&r.batches[0]).unwrap();
        assert_eq!(h.max_timestamp(), 99_999);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        validate(&r.batches[0]).unwrap();
        assert_eq!(log.max_timestamp().unwrap().timestamp_ms, 99_999);
    });
}

// Proves ListOffsets by timestamp inside compressed batches: across 20 zstd batches of
// 10 records with distinct, non-monotonic timestamps (over several segments, from memory
// and again from disk after a reopen), every target timestamp answers the offset and
// timestamp of the first record at or after it, not the batch's base offset; and the
// max-timestamp answer is the record holding it, not the batch's last offset.
#[test]
fn timestamp_lookup_inside_compressed_batches() {
    use sluice_engine::record::build_timed_batch;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    // Record i of batch b: 10_000 + 100*b + 10*i, except that record 4 of each batch is
    // the batch's latest (so the batch's max is not at its last offset).
    let timestamps = |b: i64| -> Vec<i64> {
        (0..10)
            .map(|i| 10_000 + 100 * b + if i == 4 { 95 } else { 10 * i })
            .collect()
    };
    let mut records: Vec<(i64, i64)> = Vec::new(); // (offset, timestamp)
    for b in 0..20i64 {
        for (i, t) in timestamps(b).into_iter().enumerate() {
            records.push((b * 10 + i as i64, t));
        }
    }
    let expected = move |target: i64| {
        records
            .iter()
            .find(|(_, t)| *t >= target)
            .map(|(o, t)| TimestampOffset {
                timestamp_ms: *t,
                offset: Offset(*o),
            })
    };
    run(move || async move {
        let config = LogConfig {
            segment_bytes_max: 1 << 10,
            index_interval_bytes: 128,
            ..LogConfig::default()
        };
        let log = Log::open(&path, config, ReadCache::new(1 << 20))
            .await
            .unwrap();
        for b in 0..20i64 {
            let bytes = Bytes::from(build_timed_batch(0, 4, &timestamps(b)));
            log.append(bytes, LeaderEpoch(1), 0).unwrap();
        }
        assert!(log.segment_count() > 2, "spans several segments");
        let max = Some(TimestampOffset {
            timestamp_ms: 11_995,
            offset: Offset(194),
        });
        for target in (9_990..12_010).step_by(5) {
            assert_eq!(
                log.offset_for_timestamp(target).await.unwrap(),
                expected(target),
                "from memory, target {target}"
            );
        }
        assert_eq!(log.offset_for_max_timestamp().await.unwrap(), max);
        log.close().await.unwrap();

        let log = Log::open(&path, config, ReadCache::new(1 << 20))
            .await
            .unwrap();
        for target in (9_990..12_010).step_by(5) {
            assert_eq!(
                log.offset_for_timestamp(target).await.unwrap(),
                expected(target),
                "from disk, target {target}"
            );
        }
        assert_eq!(log.offset_for_max_timestamp().await.unwrap(), max);
        // Below the log start offset a record no longer answers, even though its batch
        // remains: 10_005 was offset 1 (ts 10_010), now it is offset 5 (ts 10_050).
        log.delete_records_before(Offset(5), log.log_end_offset())
            .await
            .unwrap();
        assert_eq!(
            log.offset_for_timestamp(10_005).await.unwrap(),
            Some(TimestampOffset {
                timestamp_ms: 10_050,
                offset: Offset(5)
            })
        );
    });
}

// Proves retention by size and time deletes whole old segments and moves the log start
// offset, delete_records_before moves it further, and reads below it are out of range.
#[test]
fn retention_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            retention_bytes: 40 << 10,
            retention_ms: -1,
            ..small_config()
        };
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        for i in 0..300i64 {
            log.append(batch(1, 400, i), LeaderEpoch(0), 0).unwrap();
        }
        let segs = log.segment_count();
        let out = log
            .enforce_retention(0, log.log_end_offset())
            .await
            .unwrap();
        assert!(out.segments_deleted > 0);
        assert_eq!(log.segment_count(), segs - out.segments_deleted);
        assert!(log.size_bytes() <= (40 << 10) + (16 << 10));
        let lso = log.log_start_offset();
        assert_eq!(lso, log.segment_base_offsets()[0]);
        assert!(matches!(
            log.read(Offset(lso.0 - 1), 100).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert_eq!(ranges(&log.read(lso, 1).await.unwrap().batches)[0].0, lso.0);
        let new_lso = log
            .delete_records_before(Offset(lso.0 + 40), log.log_end_offset())
            .await
            .unwrap();
        assert_eq!(new_lso, Offset(lso.0 + 40));
        assert_eq!(
            ranges(&log.read(new_lso, 1).await.unwrap().batches)[0].0,
            new_lso.0
        );
        // Time retention: everything is older than now - 1000, the active segment rolls.
        log.set_config(LogConfig {
            retention_ms: 1000,
            retention_bytes: -1,
            ..small_config()
        });
        let out = log
            .enforce_retention(1_000_000, log.log_end_offset())
            .await
            .unwrap();
        assert!(out.rolled);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), Offset(300));
        assert_eq!(log.log_end_offset(), Offset(300));
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), Offset(300));
        assert_eq!(log.log_end_offset(), Offset(300));
        assert_eq!(
            log.append(batch(1, 10, 0), LeaderEpoch(0), 0)
                .unwrap()
                .base_offset,
            Offset(300)
        );
    });
}

// Proves truncate_to removes whole batches from the one containing the offset, across
// segments, rewinds epochs and producer state, and that appends continue from there.
#[test]
fn truncate_to_rewinds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        for i in 0..100i64 {
            let epoch = LeaderEpoch(if i < 60 { 1 } else { 2 });
            log.append(batch(2, 300, i), epoch, 0).unwrap();
        }
        log.append(producer_batch(1, 5, 0, 0), LeaderEpoch(2), 0)
            .unwrap();
        log.flush().await.unwrap();
        assert_eq!(log.producer_count(), 1);
        log.truncate_to(Offset(101)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(100));
        assert_eq!(log.producer_count(), 0);
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(2)),
            Some((LeaderEpoch(1), Offset(100)))
        );
        let r = log.read(Offset(98), 1 << 20).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(98, 99)]);
        assert_eq!(log.max_timestamp().unwrap().timestamp_ms, 49);
        let info = log.append(batch(1, 10, 7), LeaderEpoch(4), 0).unwrap();
        assert_eq!(info.base_offset, Offset(100));
        log.flush().await.unwrap();
        log.truncate_to(Offset(0)).await.unwrap();
        assert_eq!(log.log_end_offset(), Offset(0));
        assert_eq!(log.segment_count(), 1);
        log.append(batch(1, 10, 7), LeaderEpoch(5), 0).unwrap();
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(1));
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(5)),
            Some((LeaderEpoch(5), Offset(1)))
        );
    });
}

// Proves bad batches are refused with typed errors and change nothing.
#[test]
fn bad_batches_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        };
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        assert!(matches!(
            log.append(batch(1, 5000, 0), LeaderEpoch(0), 0),
            Err(AppendError::MessageTooLarge { .. })
        ));
        let mut bad = batch(1, 100, 0).to_vec();
        bad[100] ^= 1;
        assert!(matches!(
            log.append(bad.into(), LeaderEpoch(0), 0),
            Err(AppendError::CorruptMessage(_))
        ));
        let mut magic = batch(1, 100, 0).to_vec();
        magic[16] = 1;
        assert!(matches!(
            log.append(magic.into(), LeaderEpoch(0), 0),
            Err(AppendError::CorruptMessage(_))
        ));
        assert!(matches!(
            log.append(vec![0u8; 30].into(), LeaderEpoch(0), 0),
            Err(AppendError::CorruptMessage(_))
        ));
        assert_eq!(log.log_end_offset(), Offset(0));
    });
}

// Proves many concurrent waiters share flushes (group commit) and all see durability.
#[test]
fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log: Rc<Log> = Log::open(&path, LogConfig::default(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                for _ in 0..10 {
                    let info = log.append(batch(1, 1000, 0), LeaderEpoch(0), 0).unwrap();
                    log.wait_durable(Offset(info.last_offset.0 + 1))
                        .await
                        .unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        assert_eq!(log.durable_offset(), Offset(320));
    });
}

// Proves the background flusher makes data durable with nobody waiting (acks=1).
#[test]
fn background_flush_without_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            flush_interval_ms: 5,
            ..LogConfig::default()
        };
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        log.append(batch(1, 100, 0), LeaderEpoch(0), 0).unwrap();
        for _ in 0..400 {
            if log.durable_offset() == Offset(1) {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(log.durable_offset(), Offset(1));
    });
}

// Proves delete removes the partition directory.
#[test]
fn delete_removes_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, LogConfig::default(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        log.append(batch(1, 100, 0), LeaderEpoch(0), 0).unwrap();
        log.flush().await.unwrap();
        assert!(path.exists());
        log.clone().delete().await.unwrap();
        assert!(!path.exists());
        assert!(matches!(
            log.append(batch(1, 1, 0), LeaderEpoch(0), 0),
            Err(AppendError::Closed)
        ));
    });
}

/// A batch of records keyed `k<i>` (no key where `keyless` names the index) at base
/// timestamp 1000 plus `deltas`, codec from `attributes`, whose header says
/// `max_timestamp`.
fn records_batch(attributes: i16, deltas: &[i64], keyless: &[usize], max_timestamp: i64) -> Bytes {
    use sluice_engine::record::{build_batch, decode_batch, encode_batch};
    let keys: Vec<String> = (0..deltas.len()).map(|i| format!("k{i}")).collect();
    let kvs: Vec<_> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&b"value"[..])))
        .collect();
    let plain = build_batch(0, 1000, 0, &kvs);
    let mut head = plain[..61].to_vec();
    head[21..23].copy_from_slice(&attributes.to_be_bytes());
    head[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let mut records = decode_batch(&plain, 1 << 20).unwrap().records;
    for (i, r) in records.iter_mut().enumerate() {
        r.timestamp_delta = deltas[i];
        if keyless.contains(&i) {
            r.key = None;
        }
    }
    Bytes::from(encode_batch(&BatchHeader::new(&head).unwrap(), &records, true).unwrap())
}

// Proves a batch whose header leaves the max timestamp unset (-1, as Sarama writes it),
// uncompressed or zstd, is stored with the records' largest timestamp and a valid CRC:
// read back from memory and, after a reopen, from disk; the log's max timestamp and the
// lookup by timestamp see it. Without the append check both would answer -1.
#[test]
fn unset_max_timestamp_is_stored_from_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        for attributes in [0i16, 4] {
            log.append(
                records_batch(attributes, &[0, 40, 25], &[], -1),
                LeaderEpoch(0),
                0,
            )
            .unwrap();
        }
        let check = |batches: &[Bytes]| {
            assert_eq!(batches.len(), 2);
            for b in batches {
                let h = validate(b).unwrap();
                assert_eq!(h.max_timestamp(), 1040);
                assert_eq!(h.base_timestamp(), 1000);
            }
        };
        check(&log.read(Offset(0), 1 << 20).await.unwrap().batches);
        assert_eq!(log.max_timestamp().unwrap().timestamp_ms, 1040);
        let found = log.offset_for_timestamp(1030).await.unwrap().unwrap();
        assert_eq!(found.offset, Offset(1));
        assert_eq!(found.timestamp_ms, 1040);
        log.close().await.unwrap();
        let log = Log::open(&path, small_config(), ReadCache::new(1 << 20))
            .await
            .unwrap();
        check(&log.read(Offset(0), 1 << 20).await.unwrap().batches);
        assert_eq!(log.max_timestamp().unwrap().timestamp_ms, 1040);
        log.close().await.unwrap();
    });
}

// Proves a compacted log refuses a batch holding a keyless record with the record's
// index (Kafka's INVALID_RECORD with record_errors) and appends nothing, while a delete
// log takes the same batch.
#[test]
fn compacted_log_refuses_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    run(move || async move {
        let compacted = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..small_config()
        };
        let log = Log::open(&dir.path().join("c-0"), compacted, ReadCache::new(1 << 20))
            .await
            .unwrap();
        for attributes in [0i16, 1] {
            let keyless = records_batch(attributes, &[0, 0, 0], &[2], 1000);
            match log.append(keyless, LeaderEpoch(0), 0) {
                Err(AppendError::RecordsRejected(r)) => {
                    assert_eq!(r.len(), 1);
                    assert_eq!(r[0].batch_index, 2);
                }
                other => panic!("keyless batch: {other:?}"),
            }
        }
        assert_eq!(log.log_end_offset(), Offset(0));
        log.append(records_batch(0, &[0, 0], &[], 1000), LeaderEpoch(0), 0)
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(2));
        let log = Log::open(
            &dir.path().join("d-0"),
            small_config(),
            ReadCache::new(1 << 20),
        )
        .await
        .unwrap();
        log.append(records_batch(0, &[0, 0, 0], &[2], 1000), LeaderEpoch(0), 0)
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(3));
    });
}

// Proves a read bounded by the high watermark serves only whole batches ending below it:
// a batch straddling it is not served, a read at or past it is empty (not an error below
// the log end offset), and with the durable offset as the bound, appends stay invisible
// until a flush makes them durable, after which `synced` has fired.
#[test]
fn read_up_to_serves_only_batches_below_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            flush_interval_ms: 1_000_000,
            ..small_config()
        };
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        for _ in 0..4 {
            log.append(batch(3, 100, 0), LeaderEpoch(0), 0).unwrap();
        }
        assert_eq!(log.durable_offset(), Offset(0));
        let durable = log.read_up_to(Offset(0), 1 << 20, log.durable_offset());
        assert!(durable.await.unwrap().batches.is_empty());
        // Offsets 0..=11 in batches of three; a bound of 7 cuts the batch 6..=8.
        let r = log.read_up_to(Offset(0), 1 << 20, Offset(7)).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(0, 2), (3, 5)]);
        let r = log.read_up_to(Offset(7), 1 << 20, Offset(7)).await.unwrap();
        assert!(r.batches.is_empty());
        let synced = log.synced();
        log.flush().await.unwrap();
        synced.await;
        assert_eq!(log.durable_offset(), Offset(12));
        let r = log
            .read_up_to(Offset(4), 1 << 20, log.durable_offset())
            .await
            .unwrap();
        assert_eq!(ranges(&r.batches), vec![(3, 5), (6, 8), (9, 11)]);
        // The same bound applies to batches read back from the file.
        log.close().await.unwrap();
        let log = Log::open(&path, cfg, ReadCache::new(1 << 20))
            .await
            .unwrap();
        let r = log.read_up_to(Offset(0), 1 << 20, Offset(9)).await.unwrap();
        assert_eq!(ranges(&r.batches), vec![(0, 2), (3, 5), (6, 8)]);
    });
}
