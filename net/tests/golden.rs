//! Golden frames recorded from real clients with `examples/capture_requests.rs`:
//! kcat 1.7.1 (librdkafka 2.0.2: produce with acks=all, an idempotent producer,
//! a consumer group member) and kafka-python 3.0.12 (flexible versions: the
//! same roles). Each must decode, re-encode bit for bit with kafka-protocol,
//! and carry the values the client was driven with.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use sluice_net::kafka_protocol::messages::ApiKey;
use sluice_net::kafka_protocol::protocol::encode_request_header_into_buffer;
use sluice_net::{Request, RequestBody, decode_request};

const KCAT: &str = "kcat-1.7.1";
const KAFKA_PYTHON: &str = "kafka-python-3.0.12";

fn golden_dir(client: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(client)
}

fn frame(client: &str, name: &str) -> Bytes {
    let path = golden_dir(client).join(format!("{name}.bin"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into()
}

fn load(client: &str, name: &str) -> Request {
    decode_request(frame(client, name)).unwrap_or_else(|e| panic!("{client}/{name}: {e}"))
}

#[test]
fn every_golden_frame_decodes_and_reencodes_identically() {
    // Proves each real-client frame decodes with our bounded decoders into exactly the struct
    // kafka-protocol encodes back to the same bytes, so no field was skipped or misplaced.
    let mut count = 0;
    for client in [KCAT, KAFKA_PYTHON] {
        for entry in std::fs::read_dir(golden_dir(client)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let original = frame(client, &name);
            let request = load(client, &name);
            assert!(
                name.starts_with(&format!("{:?}-v{}", request.api_key, request.api_version)),
                "{name}"
            );
            let mut again = BytesMut::new();
            encode_request_header_into_buffer(&mut again, &request.header).unwrap();
            request
                .body
                .encode(&mut again, request.api_version)
                .unwrap();
            assert_eq!(request.body.api_key(), request.api_key);
            assert_eq!(again.freeze(), original, "{client}/{name}");
            count += 1;
        }
    }
    assert_eq!(count, 22);
}

#[test]
fn librdkafka_produce_carries_acks_all_and_its_batch_zero_copy() {
    // Proves librdkafka's Produce v7 decodes to acks=-1 for topic "golden" partition 0, with
    // the record batch (magic 2, key "key1", value "hello") left in place in the frame.
    let original = frame(KCAT, "Produce-v7");
    let request = decode_request(original.clone()).unwrap();
    assert_eq!(request.header.client_id.as_deref(), Some("rdkafka"));
    let RequestBody::Produce(produce) = request.body else {
        panic!("not a produce")
    };
    assert_eq!(produce.acks, -1);
    assert_eq!(produce.transactional_id, None);
    assert_eq!(&*produce.topic_data[0].name, "golden");
    let partition = &produce.topic_data[0].partition_data[0];
    assert_eq!(partition.index, 0);
    let records = partition.records.as_ref().unwrap();
    assert_eq!(records[16], 2, "magic byte");
    assert!(records.ends_with(b"\x08key1\nhello\x00"));
    let start = records.as_ptr() as usize - original.as_ptr() as usize;
    assert_eq!(start + records.len(), original.len());
}

#[test]
fn librdkafka_idempotent_producer_gets_an_id_then_stamps_batches() {
    // Proves the idempotent flow decodes: InitProducerId v4 asks for a new id, and the next
    // Produce carries producer id 1000 (what the capture broker handed out) in its batch.
    let init = load(KCAT, "InitProducerId-v4");
    let RequestBody::InitProducerId(init) = init.body else {
        panic!()
    };
    assert_eq!(
        (
            init.transactional_id,
            init.producer_id.0,
            init.producer_epoch
        ),
        (None, -1, -1)
    );
    let RequestBody::Produce(produce) = load(KCAT, "Produce-v7-idempotent").body else {
        panic!()
    };
    let records = produce.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    let producer_id = i64::from_be_bytes(records[43..51].try_into().unwrap());
    assert_eq!(producer_id, 1000);
}

#[test]
fn librdkafka_group_member_requests() {
    // Proves the classic group protocol as librdkafka speaks it: FindCoordinator v2 by key,
    // JoinGroup v5 with range and roundrobin, SyncGroup v3 as leader, Heartbeat, LeaveGroup.
    let RequestBody::FindCoordinator(find) = load(KCAT, "FindCoordinator-v2").body else {
        panic!()
    };
    assert_eq!((&*find.key, find.key_type), ("grp", 0));
    let RequestBody::JoinGroup(join) = load(KCAT, "JoinGroup-v5").body else {
        panic!()
    };
    assert_eq!(&*join.group_id.0, "grp");
    assert_eq!(&*join.member_id, "");
    assert_eq!(&*join.protocol_type, "consumer");
    let names: Vec<&str> = join.protocols.iter().map(|p| &*p.name).collect();
    assert_eq!(names, ["range", "roundrobin"]);
    assert_eq!(
        (join.session_timeout_ms, join.rebalance_timeout_ms),
        (45_000, 300_000)
    );
    let RequestBody::SyncGroup(sync) = load(KCAT, "SyncGroup-v3").body else {
        panic!()
    };
    assert_eq!((sync.generation_id, &*sync.member_id), (1, "member-1"));
    assert_eq!(sync.assignments.len(), 1);
    let RequestBody::Heartbeat(beat) = load(KCAT, "Heartbeat-v3").body else {
        panic!()
    };
    assert_eq!((beat.generation_id, &*beat.member_id), (1, "member-1"));
    let RequestBody::LeaveGroup(leave) = load(KCAT, "LeaveGroup-v1").body else {
        panic!()
    };
    assert_eq!(&*leave.member_id, "member-1");
    let RequestBody::ListOffsets(list) = load(KCAT, "ListOffsets-v2").body else {
        panic!()
    };
    assert_eq!(list.topics[0].partitions[0].timestamp, -2, "earliest");
    let RequestBody::Fetch(fetch) = load(KCAT, "Fetch-v11").body else {
        panic!()
    };
    assert_eq!((fetch.max_wait_ms, fetch.isolation_level), (500, 1));
    assert_eq!(&*fetch.topics[0].topic, "golden");
}

#[test]
fn kafka_python_flexible_versions() {
    // Proves the flexible (KIP-482) versions kafka-python 3 sends decode: ApiVersions v4,
    // Metadata v13, Produce v9, batched FindCoordinator v6, OffsetFetch v8 by group, OffsetCommit v8.
    let api_versions = load(KAFKA_PYTHON, "ApiVersions-v4");
    assert_eq!(api_versions.api_key, ApiKey::ApiVersions);
    let RequestBody::ApiVersions(body) = api_versions.body else {
        panic!()
    };
    assert_eq!(
        (&*body.client_software_name, &*body.client_software_version),
        ("kafka-python", "3.0.12")
    );
    let RequestBody::Metadata(metadata) = load(KAFKA_PYTHON, "Metadata-v13").body else {
        panic!()
    };
    assert_eq!(metadata.topics, Some(vec![]));
    let RequestBody::Produce(produce) = load(KAFKA_PYTHON, "Produce-v9").body else {
        panic!()
    };
    assert_eq!((produce.acks, produce.timeout_ms), (-1, 3000));
    assert!(
        produce.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap()
            .ends_with(b"\x02h\x02v")
    );
    let RequestBody::FindCoordinator(find) = load(KAFKA_PYTHON, "FindCoordinator-v6").body else {
        panic!()
    };
    assert_eq!(
        find.coordinator_keys
            .iter()
            .map(|k| &**k)
            .collect::<Vec<_>>(),
        ["grp"]
    );
    let RequestBody::OffsetFetch(fetch) = load(KAFKA_PYTHON, "OffsetFetch-v8").body else {
        panic!()
    };
    assert_eq!(&*fetch.groups[0].group_id.0, "grp");
    assert_eq!(
        fetch.groups[0].topics.as_ref().unwrap()[0].partition_indexes,
        [0]
    );
    let RequestBody::OffsetCommit(commit) = load(KAFKA_PYTHON, "OffsetCommit-v8").body else {
        panic!()
    };
    assert_eq!(commit.topics[0].partitions[0].committed_offset, 0);
    assert_eq!(commit.generation_id_or_member_epoch, 1);
}

#[test]
fn every_truncation_of_a_golden_frame_is_rejected() {
    // Proves no strict prefix of a real client's frame decodes (and none panics).
    for client in [KCAT, KAFKA_PYTHON] {
        for entry in std::fs::read_dir(golden_dir(client)).unwrap() {
            let name = entry
                .unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let original = frame(client, &name);
            for len in 0..original.len() {
                assert!(
                    decode_request(original.slice(..len)).is_err(),
                    "{client}/{name} prefix {len}"
                );
            }
        }
    }
}
