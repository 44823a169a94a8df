//! Records the request frames a real Kafka client sends, as golden files for
//! the decoder tests in `net/tests/golden.rs`.
//!
//! A minimal single-node stand-in broker on 127.0.0.1: it answers ApiVersions
//! with the versions `sluice-net` decodes, Metadata with one topic of one
//! partition led by itself, and Produce, ListOffsets, Fetch, InitProducerId and the
//! consumer group APIs with success as the only member of any group, enough
//! for a client to get as far as sending each request.
//! Every other request is recorded and its connection closed. The first frame
//! of each (api key, version) is written to `<dir>/<ApiKey>-v<version>.bin`.
//!
//! Usage: `cargo run -p sluice-net --example capture_requests -- <port> <dir> <seconds>`,
//! then point a client at 127.0.0.1:<port>.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_net::{
    DECODABLE_API_KEYS, Request, RequestBody, decodable_versions, decode_request, encode_response,
    split_frame,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(19092);
    let dir = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("golden"));
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    std::fs::create_dir_all(&dir).expect("create output dir");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let dir = dir.clone();
                std::thread::spawn(move || serve(stream, port, &dir));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn serve(mut stream: TcpStream, port: u16, dir: &Path) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Ok(Some(frame)) = split_frame(&mut buf, 1 << 24) {
            let Ok(request) = decode_request(frame.clone()) else {
                eprintln!("undecodable frame of {} bytes", frame.len());
                return;
            };
            let path = dir.join(format!(
                "{:?}-v{}.bin",
                request.api_key, request.api_version
            ));
            if !path.exists() {
                std::fs::write(&path, &frame).expect("write golden frame");
                eprintln!("captured {}", path.display());
            }
            let Some(response) = respond(&request, port) else {
                return;
            };
            if stream.write_all(&response).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn respond(request: &Request, port: u16) -> Option<Bytes> {
    let correlation_id = request.header.correlation_id;
    let version = request.api_version;
    let key = request.api_key;
    let encoded = match &request.body {
        RequestBody::ApiVersions(_) => {
            let api_keys = DECODABLE_API_KEYS
                .iter()
                .map(|&k| {
                    let (min, max) = decodable_versions(k).unwrap();
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect();
            encode_response(
                correlation_id,
                key,
                version,
                &ApiVersionsResponse::default().with_api_keys(api_keys),
            )
        }
        RequestBody::Metadata(_) => {
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(0))
                .with_host("127.0.0.1".into())
                .with_port(port as i32);
            let partition = MetadataResponsePartition::default()
                .with_leader_id(BrokerId(0))
                .with_replica_nodes(vec![BrokerId(0)])
                .with_isr_nodes(vec![BrokerId(0)]);
            let topic = MetadataResponseTopic::default()
                .with_name(Some(TopicName("golden".into())))
                .with_partitions(vec![partition]);
            let body = MetadataResponse::default()
                .with_brokers(vec![broker])
                .with_controller_id(BrokerId(0))
                .with_cluster_id(Some("golden".into()))
                .with_topics(vec![topic]);
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::Produce(req) => {
            let responses = req
                .topic_data
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_data
                        .iter()
                        .map(|p| PartitionProduceResponse::default().with_index(p.index))
                        .collect();
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(partitions)
                })
                .collect();
            encode_response(
                correlation_id,
                key,
                version,
                &ProduceResponse::default().with_responses(responses),
            )
        }
        RequestBody::ListOffsets(req) => {
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_offset(0)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            encode_response(
                correlation_id,
                key,
                version,
                &ListOffsetsResponse::default().with_topics(topics),
            )
        }
        RequestBody::Fetch(req) => {
            let responses = req
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_records(Some(Bytes::new()))
                        })
                        .collect();
                    FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(partitions)
                })
                .collect();
            encode_response(
                correlation_id,
                key,
                version,
                &FetchResponse::default().with_responses(responses),
            )
        }
        RequestBody::FindCoordinator(req) => {
            let mut body = FindCoordinatorResponse::default();
            if version >= 4 {
                body.coordinators = req
                    .coordinator_keys
                    .iter()
                    .map(|k| {
                        find_coordinator_response::Coordinator::default()
                            .with_key(k.clone())
                            .with_node_id(BrokerId(0))
                            .with_host("127.0.0.1".into())
                            .with_port(port as i32)
                    })
                    .collect();
            } else {
                body = body
                    .with_node_id(BrokerId(0))
                    .with_host("127.0.0.1".into())
                    .with_port(port as i32);
            }
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::InitProducerId(_) => {
            let body = InitProducerIdResponse::default().with_producer_id(ProducerId(1000));
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::JoinGroup(req) => {
            // The only member, so the client leads and assigns.
            let member_id = StrBytes::from_static_str("member-1");
            let protocol = req.protocols.first()?;
            let member = join_group_response::JoinGroupResponseMember::default()
                .with_member_id(member_id.clone())
                .with_metadata(protocol.metadata.clone());
            let body = JoinGroupResponse::default()
                .with_generation_id(1)
                .with_protocol_type(Some(req.protocol_type.clone()))
                .with_protocol_name(Some(protocol.name.clone()))
                .with_leader(member_id.clone())
                .with_member_id(member_id)
                .with_members(vec![member]);
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::SyncGroup(req) => {
            let assignment = req
                .assignments
                .first()
                .map(|a| a.assignment.clone())
                .unwrap_or_default();
            let body = SyncGroupResponse::default()
                .with_protocol_type(req.protocol_type.clone())
                .with_protocol_name(req.protocol_name.clone())
                .with_assignment(assignment);
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::OffsetFetch(req) => {
            let mut body = OffsetFetchResponse::default();
            if version >= 8 {
                body.groups = req
                    .groups
                    .iter()
                    .map(|g| {
                        let topics = g
                            .topics
                            .iter()
                            .flatten()
                            .map(|t| {
                                let partitions = t
                                    .partition_indexes
                                    .iter()
                                    .map(|&i| {
                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(i)
                                            .with_committed_offset(-1)
                                    })
                                    .collect();
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(partitions)
                            })
                            .collect();
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_topics(topics)
                    })
                    .collect();
            } else {
                body.topics = req
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        let partitions = t
                            .partition_indexes
                            .iter()
                            .map(|&i| {
                                offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_partition_index(i)
                                    .with_committed_offset(-1)
                            })
                            .collect();
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
            }
            encode_response(correlation_id, key, version, &body)
        }
        RequestBody::OffsetCommit(req) => {
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                        })
                        .collect();
                    offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            encode_response(
                correlation_id,
                key,
                version,
                &OffsetCommitResponse::default().with_topics(topics),
            )
        }
        RequestBody::Heartbeat(_) => {
            encode_response(correlation_id, key, version, &HeartbeatResponse::default())
        }
        RequestBody::LeaveGroup(_) => {
            encode_response(correlation_id, key, version, &LeaveGroupResponse::default())
        }
        _ => return None,
    };
    encoded.ok()
}
