//! Compaction of `__consumer_offsets` keeps every group's newest state, over raw sockets
//! against the real 2-shard binary with one offsets partition, 16 KiB segments and the
//! cleaner looking every 100 ms. A consumer group's member commits thousands of times over
//! eight partitions (some with metadata strings) and rebalances now and then (new
//! generations, new group metadata records); a second group commits and is deleted
//! (tombstones); a third commits and loses one partition's offset (OffsetDelete). Once the
//! cleaner caught up, the log read back through Fetch holds at most one record per key
//! below the active segment, the newest record of every key is the last one written for
//! it (tombstones stay: delete.retention.ms is a day), and the partition's files shrank to
//! a small fraction of the bytes appended. After a clean restart, the coordinator rebuilt
//! from the compacted log answers as before: the offsets and metadata, the group with its
//! member, generation and assignment, the deleted group gone, the deleted offset gone.
//! Commit latency while the cleaner runs is measured and printed, not asserted.

mod common;
mod group_util;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, Conn};
use group_util::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use sluice_engine::record::{KeyValue, build_batch};
use sluice_server::group::record::{
    OffsetCommitValue, RecordKey, decode_group_metadata_value, decode_key,
    decode_offset_commit_value, encode_key, encode_offset_commit_value,
};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 8;
/// OffsetCommit requests of the consumer group, two partitions each.
const COMMITS: usize = 3_000;
/// The member rejoins (a new generation and group metadata record) this often.
const REJOIN_EVERY: usize = 750;
const SEGMENT_BYTES: u64 = 16 << 10;
const GROUP_A: &str = "group-a";
const GROUP_B: &str = "group-b";
const GROUP_C: &str = "group-c";
/// Commits after everything else, so that the last records of A, B and C sit in closed
/// (cleanable) segments.
const GROUP_FILLER: &str = "group-filler";

/// What the newest record of a key must hold.
#[derive(Clone, Debug, PartialEq)]
enum Newest {
    Offset {
        offset: i64,
        metadata: String,
    },
    Group {
        generation: i32,
        member_id: String,
        assignment: Bytes,
    },
    Tombstone,
}

/// The newest state per encoded key, and the bytes of the commit batches the coordinator
/// appended (computed with the broker's own encoders: one batch per OffsetCommit).
#[derive(Default)]
struct Model {
    newest: BTreeMap<Vec<u8>, Newest>,
    commit_batch_bytes: u64,
    commits: u64,
}

fn offset_key(group: &str, partition: i32) -> Vec<u8> {
    encode_key(&RecordKey::OffsetCommit {
        group: group.into(),
        topic: TOPIC.into(),
        partition,
    })
}

fn group_key(group: &str) -> Vec<u8> {
    encode_key(&RecordKey::GroupMetadata {
        group: group.into(),
    })
}

impl Model {
    fn committed(&mut self, group: &str, offsets: &[(i32, i64, Option<&str>)]) {
        let records: Vec<(Vec<u8>, Vec<u8>)> = offsets
            .iter()
            .map(|(p, o, m)| {
                let value = OffsetCommitValue {
                    offset: *o,
                    leader_epoch: 0,
                    metadata: m.unwrap_or_default().to_string(),
                    commit_timestamp_ms: 0,
                    expire_timestamp_ms: -1,
                };
                (offset_key(group, *p), encode_offset_commit_value(&value))
            })
            .collect();
        let kv: Vec<KeyValue<'_>> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        // The batch's timestamp is in its fixed header; records carry a zero delta.
        self.commit_batch_bytes += build_batch(0, 0, 0, &kv).len() as u64;
        self.commits += 1;
        for (p, o, m) in offsets {
            self.newest.insert(
                offset_key(group, *p),
                Newest::Offset {
                    offset: *o,
                    metadata: m.unwrap_or_default().to_string(),
                },
            );
        }
    }

    fn offsets_of(&self, group: &str) -> Vec<(i64, String)> {
        (0..PARTITIONS)
            .map(|p| match self.newest.get(&offset_key(group, p)) {
                Some(Newest::Offset { offset, metadata }) => (*offset, metadata.clone()),
                _ => (-1, String::new()),
            })
            .collect()
    }
}

/// Commits and checks every partition was accepted; returns how long the call took.
fn commit_ok(
    c: &mut Conn,
    model: &mut Model,
    who: (&str, i32, &str),
    offsets: &[(i32, i64, Option<&str>)],
) -> Duration {
    let (group, generation, member) = who;
    let started = Instant::now();
    let codes = commit_with_metadata(c, group, generation, member, TOPIC, offsets);
    let took = started.elapsed();
    assert!(codes.iter().all(|c| *c == 0), "commit {group}: {codes:?}");
    model.committed(group, offsets);
    took
}

/// The partitions of `TOPIC` in an order that differs per generation, so each
/// generation's assignment bytes differ.
fn assignment_of(generation: i32) -> Bytes {
    let parts: Vec<i32> = (0..PARTITIONS)
        .map(|i| (i + generation).rem_euclid(PARTITIONS))
        .collect();
    assignment(TOPIC, &parts)
}

/// The leader of a one-member Stable group rejoins (Kafka rebalances for a rejoining
/// leader) and syncs its new assignment: the new generation.
fn rebalance(c: &mut Conn, member_id: &str) -> i32 {
    let joined: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        7,
        &join_request(GROUP_A, member_id, "consumer", subscription(&[TOPIC])),
    );
    assert_eq!(joined.error_code, 0, "rejoin");
    assert_eq!(joined.leader.as_str(), member_id);
    let generation = joined.generation_id;
    let synced = sync(
        c,
        GROUP_A,
        generation,
        member_id,
        &[(member_id, assignment_of(generation))],
    );
    assert_eq!(synced.error_code, 0, "sync generation {generation}");
    generation
}

/// Log end offset of `__consumer_offsets-0` (ListOffsets v7, latest).
fn log_end_offset(c: &mut Conn) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(OFFSETS_TOPIC))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets {OFFSETS_TOPIC}");
    p.offset
}

/// Base offset of the active (last) segment, the bytes of all segment files and their
/// number.
fn segments(dir: &Path) -> (i64, u64, usize) {
    let mut active = 0i64;
    let mut bytes = 0u64;
    let mut count = 0usize;
    for entry in std::fs::read_dir(dir).expect("partition directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            let base: i64 = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("segment named by base offset");
            active = active.max(base);
            bytes += std::fs::metadata(&path).expect("segment metadata").len();
            count += 1;
        }
    }
    (active, bytes, count)
}

/// Keys with more than one record below `end`.
fn repeated_keys_below(records: &[OffsetsRecord], end: i64) -> usize {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter(|r| r.offset < end)
        .filter(|r| !seen.insert(r.key.clone()))
        .count()
}

fn describe(c: &mut Conn, group: &str) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    let resp = until_loaded(
        || -> DescribeGroupsResponse { c.call(ApiKey::DescribeGroups, 6, &req) },
        |r| r.groups[0].error_code,
    );
    resp.groups[0].clone()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn compacted_offsets_topic_keeps_newest_state_and_rebuilds() {
    // Proves the cleaner keeps exactly the newest record per key of `__consumer_offsets`
    // (offsets, group metadata, tombstones) and that the coordinator rebuilds the same
    // state from the compacted log: a model of the newest record per key is compared with
    // the log read back through Fetch, then with OffsetFetch/DescribeGroups/Heartbeat after
    // a clean restart and after a SIGKILL.
    let started = Instant::now();
    let mut broker = Broker::start_with(&[
        "--offsets-topic-num-partitions",
        "1",
        "--offsets-topic-segment-bytes",
        &SEGMENT_BYTES.to_string(),
        "--log-cleaner-backoff-ms",
        "100",
    ]);
    let dir = broker.data_dir().join(format!("{OFFSETS_TOPIC}-0"));
    let mut admin = broker.connect();
    create_topic(&mut admin, TOPIC, PARTITIONS);
    let mut model = Model::default();

    // A: one member joins and syncs (group metadata), then commits with its generation.
    let (mut member_conn, member_id, mut generation) = sole_member(
        broker.addr,
        GROUP_A,
        "consumer",
        subscription(&[TOPIC]),
        assignment_of(1),
    );
    assert_eq!(generation, 1);
    // B and C commit outside group management before the storm.
    for group in [GROUP_B, GROUP_C] {
        let offsets: Vec<(i32, i64, Option<&str>)> = (0..4)
            .map(|p| (p, 100 + i64::from(p), Some(group)))
            .collect();
        commit_ok(&mut admin, &mut model, (group, -1, ""), &offsets);
    }

    let compactions_before = broker.log().matches("compacted segments").count();
    let mut latencies = Vec::with_capacity(COMMITS);
    let storm = Instant::now();
    for i in 0..COMMITS {
        if i > 0 && i % REJOIN_EVERY == 0 {
            generation = rebalance(&mut member_conn, &member_id);
        }
        if i == COMMITS / 2 {
            let del: DeleteGroupsResponse = admin.call(
                ApiKey::DeleteGroups,
                2,
                &DeleteGroupsRequest::default().with_groups_names(vec![gid(GROUP_B)]),
            );
            assert_eq!(del.results[0].error_code, 0, "delete {GROUP_B}");
            for p in 0..4 {
                model
                    .newest
                    .insert(offset_key(GROUP_B, p), Newest::Tombstone);
            }
            model.newest.insert(group_key(GROUP_B), Newest::Tombstone);
            let od = offset_delete(&mut admin, GROUP_C, &[(TOPIC, 1)]);
            assert_eq!(od.error_code, 0);
            assert_eq!(delete_codes(&od), [0]);
            model
                .newest
                .insert(offset_key(GROUP_C, 1), Newest::Tombstone);
        }
        let i64i = i as i64;
        let parts = [i as i32 % PARTITIONS, (i as i32 + 3) % PARTITIONS];
        let meta: Vec<String> = parts.iter().map(|p| format!("a-{i}-{p}")).collect();
        // Every fifth commit carries no metadata (stored and answered as "").
        let offsets: Vec<(i32, i64, Option<&str>)> = parts
            .iter()
            .zip(&meta)
            .map(|(p, m)| {
                (
                    *p,
                    10 * i64i + i64::from(*p),
                    (i % 5 != 0).then_some(m.as_str()),
                )
            })
            .collect();
        let took = commit_ok(
            &mut member_conn,
            &mut model,
            (GROUP_A, generation, &member_id),
            &offsets,
        );
        latencies.push(took);
    }
    let storm_took = storm.elapsed();
    model.newest.insert(
        group_key(GROUP_A),
        Newest::Group {
            generation,
            member_id: member_id.clone(),
            assignment: assignment_of(generation),
        },
    );

    // Roll past everything above so the cleaner may compact it.
    let main_end = log_end_offset(&mut admin);
    let mut filler = 0i64;
    while segments(&dir).0 < main_end {
        filler += 1;
        let took = commit_ok(
            &mut admin,
            &mut model,
            (GROUP_FILLER, -1, ""),
            &[(0, filler, Some("filler-metadata-to-fill-segments-faster"))],
        );
        latencies.push(took);
        assert!(filler < 10_000, "the active segment never rolled");
    }
    let log_end = log_end_offset(&mut admin);
    let compactions_during =
        broker.log().matches("compacted segments").count() - compactions_before;

    // Wait until the closed segments hold one record per key and the files shrank.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (records, active_base, bytes_after, segment_count) = loop {
        // The member's session (60 s) must not end before the restart.
        assert_eq!(
            heartbeat(&mut member_conn, GROUP_A, generation, &member_id),
            0
        );
        let (active_base, bytes, count) = segments(&dir);
        let records = read_offsets_topic(&mut admin, 0);
        let repeated = repeated_keys_below(&records, active_base);
        if repeated == 0 && bytes * 10 < model.commit_batch_bytes {
            break (records, active_base, bytes, count);
        }
        assert!(
            Instant::now() < deadline,
            "not compacted: {repeated} repeated keys below {active_base}, {bytes} bytes of {} appended",
            model.commit_batch_bytes
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let waited = storm.elapsed();

    // The raw log: the newest record of each key is the last one written for it.
    let mut newest_in_log: BTreeMap<Vec<u8>, &OffsetsRecord> = BTreeMap::new();
    for r in &records {
        let key = decode_key(&r.key).expect("a key Sluice writes");
        assert!(
            model.newest.contains_key(r.key.as_ref()),
            "record of a key never written: {key:?}"
        );
        newest_in_log.insert(r.key.to_vec(), r);
    }
    for (key, want) in &model.newest {
        let name = decode_key(key).unwrap();
        let r = newest_in_log
            .get(key)
            .unwrap_or_else(|| panic!("no record left for {name:?}"));
        let got = match &r.value {
            None => Newest::Tombstone,
            Some(v) => match name {
                RecordKey::OffsetCommit { .. } => {
                    let d = decode_offset_commit_value(v).unwrap();
                    assert_eq!(d.leader_epoch, 0);
                    Newest::Offset {
                        offset: d.offset,
                        metadata: d.metadata,
                    }
                }
                RecordKey::GroupMetadata { .. } => {
                    let d = decode_group_metadata_value(v).unwrap();
                    assert_eq!(d.protocol_type, "consumer");
                    assert_eq!(d.protocol.as_deref(), Some("range"));
                    assert_eq!(d.leader.as_deref(), Some(member_id.as_str()));
                    assert_eq!(d.members.len(), 1);
                    Newest::Group {
                        generation: d.generation,
                        member_id: d.members[0].member_id.clone(),
                        assignment: d.members[0].assignment.clone(),
                    }
                }
            },
        };
        assert_eq!(&got, want, "newest record of {name:?} at {}", r.offset);
    }
    let tombstones = records.iter().filter(|r| r.value.is_none()).count();
    assert_eq!(
        tombstones, 6,
        "B's four offsets and metadata, C's partition 1"
    );

    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "appended: {} commits ({} commit batch bytes), {} records up to offset {log_end}; \
         storm of {COMMITS} commits took {:.1} s with {compactions_during} compaction runs; \
         compacted after {:.1} s: {} records left, {bytes_after} segment bytes \
         ({:.1}x smaller) in {segment_count} segments, the active one at {active_base}",
        model.commits,
        model.commit_batch_bytes,
        log_end,
        storm_took.as_secs_f64(),
        waited.as_secs_f64(),
        records.len(),
        model.commit_batch_bytes as f64 / bytes_after as f64,
    );
    println!(
        "commit latency while the cleaner ran: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(*sorted.last().unwrap()),
    );
    assert!(
        compactions_during > 0,
        "the cleaner ran while commits were answered"
    );

    // Restart: the coordinator is rebuilt from the compacted log.
    drop(member_conn);
    drop(admin);
    assert!(broker.stop().success());
    broker.restart();
    let mut c = broker.connect();
    assert_eq!(
        fetch_offsets(&mut c, GROUP_A, TOPIC, PARTITIONS),
        model.offsets_of(GROUP_A)
    );
    let loaded = broker
        .log()
        .lines()
        .rfind(|l| l.contains("loaded __consumer_offsets partition"))
        .and_then(|l| l.split("records=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("the load is logged with its record count");
    assert_eq!(loaded, records.len(), "replayed exactly the compacted log");

    // A as it was: Stable (the member's session restarts at load and is 60 s), the same
    // member, generation and assignment.
    let a = describe(&mut c, GROUP_A);
    assert_eq!(a.error_code, 0);
    assert_eq!(a.group_state.as_str(), "Stable");
    assert_eq!(a.protocol_type.as_str(), "consumer");
    assert_eq!(a.protocol_data.as_str(), "range");
    assert_eq!(a.members.len(), 1);
    assert_eq!(a.members[0].member_id.as_str(), member_id);
    assert_eq!(a.members[0].member_assignment, assignment_of(generation));
    assert_eq!(heartbeat(&mut c, GROUP_A, generation, &member_id), 0);
    assert_eq!(
        heartbeat(&mut c, GROUP_A, generation - 1, &member_id),
        ResponseError::IllegalGeneration.code()
    );
    commit_ok(
        &mut c,
        &mut model,
        (GROUP_A, generation, &member_id),
        &[(0, 1_000_000, Some("after restart"))],
    );

    // B stays deleted.
    let b = describe(&mut c, GROUP_B);
    assert_eq!(b.error_code, ResponseError::GroupIdNotFound.code());
    assert_eq!(
        fetch_offsets(&mut c, GROUP_B, TOPIC, PARTITIONS),
        vec![(-1, String::new()); PARTITIONS as usize]
    );
    let listed = ids(&list(&mut c, 5, &[], &[]));
    assert!(!listed.contains(&GROUP_B.to_string()), "{listed:?}");

    // C keeps every offset but the deleted one.
    let c_offsets = fetch_offsets(&mut c, GROUP_C, TOPIC, PARTITIONS);
    assert_eq!(c_offsets, model.offsets_of(GROUP_C));
    assert_eq!(c_offsets[1], (-1, String::new()));
    assert_eq!(c_offsets[0], (100, GROUP_C.to_string()));
    assert_eq!(
        fetch_offsets(&mut c, GROUP_A, TOPIC, PARTITIONS),
        model.offsets_of(GROUP_A)
    );

    // A crash right after the acknowledged commit: recovery of the compacted segments and
    // a second rebuild give the same answers.
    drop(c);
    broker.crash();
    broker.restart();
    let mut c = broker.connect();
    assert_eq!(
        fetch_offsets(&mut c, GROUP_A, TOPIC, PARTITIONS),
        model.offsets_of(GROUP_A)
    );
    assert_eq!(
        describe(&mut c, GROUP_B).error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert_eq!(
        fetch_offsets(&mut c, GROUP_C, TOPIC, PARTITIONS),
        model.offsets_of(GROUP_C)
    );
    let a = describe(&mut c, GROUP_A);
    assert_eq!(a.group_state.as_str(), "Stable");
    assert_eq!(a.members[0].member_assignment, assignment_of(generation));

    // Nothing was skipped while replaying, no compaction failed, nothing degraded.
    let log = broker.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    println!("test runtime {:.1} s", started.elapsed().as_secs_f64());
}
