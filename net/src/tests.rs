//! Codec tests across modules: a property test per request API over every
//! version we decode (kafka-protocol's encoder is the oracle), the allocation
//! bomb, header and error classification, and hand-written golden frames.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest};
use kafka_protocol::protocol::encode_request_header_into_buffer;
use proptest::prelude::*;
use sluice_testkit::{LargestAllocation, largest_allocation_during};

use crate::reader::ReadError;
use crate::request::{
    DECODABLE_API_KEYS, DecodeError, RequestBody, check_round_trip, decodable_versions,
    decode_request,
};

/// Records the largest allocation of each thread, so a test can prove a decoder did not
/// size a buffer from an untrusted count.
#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

fn check_all_versions(api_key: ApiKey, seed: u64) -> Result<(), TestCaseError> {
    let (lo, hi) = decodable_versions(api_key).expect("decodable");
    // kafka-protocol, the oracle, has no versions below its minimum: golden frames below
    // cover those.
    for version in lo.max(api_key.valid_versions().min)..=hi {
        let result = check_round_trip(api_key, version, seed.wrapping_add(version as u64));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
    Ok(())
}

macro_rules! round_trip_tests {
    ($($name:ident => $key:ident,)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            $(
                #[test]
                fn $name(seed: u64) {
                    // Proves our decoder agrees with kafka-protocol's encoder and decoder on random
                    // requests of every version, rejects every truncation of them and ignores bytes
                    // after them.
                    check_all_versions(ApiKey::$key, seed)?;
                }
            )*
        }

        #[test]
        fn every_decodable_api_has_a_round_trip_test() {
            // Proves the list above covers every api key `decode_request` accepts.
            let tested = [$(ApiKey::$key,)*];
            for key in DECODABLE_API_KEYS {
                assert!(tested.contains(key), "{key:?} has no round-trip test");
            }
        }
    };
}

round_trip_tests! {
    produce_round_trips => Produce,
    fetch_round_trips => Fetch,
    list_offsets_round_trips => ListOffsets,
    metadata_round_trips => Metadata,
    offset_commit_round_trips => OffsetCommit,
    offset_fetch_round_trips => OffsetFetch,
    find_coordinator_round_trips => FindCoordinator,
    join_group_round_trips => JoinGroup,
    heartbeat_round_trips => Heartbeat,
    leave_group_round_trips => LeaveGroup,
    sync_group_round_trips => SyncGroup,
    describe_groups_round_trips => DescribeGroups,
    list_groups_round_trips => ListGroups,
    sasl_handshake_round_trips => SaslHandshake,
    api_versions_round_trips => ApiVersions,
    create_topics_round_trips => CreateTopics,
    delete_topics_round_trips => DeleteTopics,
    delete_records_round_trips => DeleteRecords,
    init_producer_id_round_trips => InitProducerId,
    offset_for_leader_epoch_round_trips => OffsetForLeaderEpoch,
    add_partitions_to_txn_round_trips => AddPartitionsToTxn,
    add_offsets_to_txn_round_trips => AddOffsetsToTxn,
    end_txn_round_trips => EndTxn,
    txn_offset_commit_round_trips => TxnOffsetCommit,
    describe_configs_round_trips => DescribeConfigs,
    create_partitions_round_trips => CreatePartitions,
    delete_groups_round_trips => DeleteGroups,
    incremental_alter_configs_round_trips => IncrementalAlterConfigs,
    offset_delete_round_trips => OffsetDelete,
    sasl_authenticate_round_trips => SaslAuthenticate,
    describe_cluster_round_trips => DescribeCluster,
    describe_acls_round_trips => DescribeAcls,
    create_acls_round_trips => CreateAcls,
    delete_acls_round_trips => DeleteAcls,
    alter_configs_round_trips => AlterConfigs,
    describe_log_dirs_round_trips => DescribeLogDirs,
    elect_leaders_round_trips => ElectLeaders,
    write_txn_markers_round_trips => WriteTxnMarkers,
    describe_client_quotas_round_trips => DescribeClientQuotas,
    alter_client_quotas_round_trips => AlterClientQuotas,
    describe_user_scram_credentials_round_trips => DescribeUserScramCredentials,
    alter_user_scram_credentials_round_trips => AlterUserScramCredentials,
    describe_producers_round_trips => DescribeProducers,
    describe_transactions_round_trips => DescribeTransactions,
    list_transactions_round_trips => ListTransactions,
    consumer_group_heartbeat_round_trips => ConsumerGroupHeartbeat,
    consumer_group_describe_round_trips => ConsumerGroupDescribe,
    describe_topic_partitions_round_trips => DescribeTopicPartitions,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_frames_never_panic(
        key in -2i16..100,
        version in -1i16..20,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Proves decode_request returns (Ok or Err) on arbitrary bodies behind any header, and that
        // whatever decodes and can be encoded again by kafka-protocol decodes to the same request.
        let mut frame = BytesMut::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(9);
        frame.put_slice(&body);
        if let Ok(request) = decode_request(frame.freeze()) {
            let mut again = BytesMut::new();
            encode_request_header_into_buffer(&mut again, &request.header).unwrap();
            if request.body.encode(&mut again, request.api_version).is_ok() {
                let reread = decode_request(again.freeze()).unwrap();
                prop_assert_eq!(format!("{reread:?}"), format!("{request:?}"));
            }
        }
    }
}

/// A frame: api key, version, correlation id, then `rest` verbatim.
fn frame(api_key: i16, version: i16, correlation_id: i32, rest: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(correlation_id);
    frame.put_slice(rest);
    frame.freeze()
}

#[test]
fn produce_claiming_two_billion_topics_is_malformed_without_allocating() {
    // Proves the allocation bomb (a tiny Produce whose topic count is i32::MAX) is rejected
    // as Malformed and no allocation anywhere near the claimed size happens.
    // v3, header v1: null client id, null transactional id, acks, timeout, topic count.
    let bomb = frame(
        0,
        3,
        77,
        &[
            0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff,
        ],
    );
    let (result, largest) = largest_allocation_during(|| decode_request(bomb.clone()));
    assert!(
        matches!(
            result,
            Err(DecodeError::Malformed {
                correlation_id: Some(77),
                source: ReadError::CountTooLarge {
                    count: 2147483647,
                    ..
                },
                ..
            })
        ),
        "{result:?}"
    );
    assert!(largest < 4096, "largest allocation {largest} bytes");
    // The same in a flexible version: compact count u32::MAX - 1.
    let bomb = frame(
        0,
        9,
        78,
        &[
            0xff, 0xff, 0, 0, 1, 0, 0, 0x75, 0x30, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ],
    );
    let (result, largest) = largest_allocation_during(|| decode_request(bomb.clone()));
    assert!(
        matches!(
            result,
            Err(DecodeError::Malformed {
                correlation_id: Some(78),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(largest < 4096, "largest allocation {largest} bytes");
    // The 12-byte version from the issue: a header and nothing but a huge count where
    // the client id's length should be.
    let bomb = frame(0, 3, 79, &[0x7f, 0xff, 0xff, 0xff]);
    assert_eq!(bomb.len(), 12);
    let (result, largest) = largest_allocation_during(|| decode_request(bomb.clone()));
    assert!(
        matches!(
            result,
            Err(DecodeError::Malformed {
                correlation_id: Some(79),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(largest < 4096, "largest allocation {largest} bytes");
}

#[test]
fn nested_counts_are_bounded_too() {
    // Proves a partition count deep inside Fetch is checked against the bytes left, not
    // just the top-level topic count.
    let mut rest = BytesMut::new();
    rest.put_i16(-1); // client id
    rest.put_i32(-1); // replica id
    rest.put_i32(500); // max wait
    rest.put_i32(1); // min bytes
    rest.put_i32(1 << 20); // max bytes
    rest.put_i8(0); // isolation level
    rest.put_i32(1); // one topic
    rest.put_i16(1);
    rest.put_u8(b't');
    rest.put_i32(0x1000_0000); // partitions claimed
    rest.put_bytes(0, 64);
    let f = frame(1, 4, 5, &rest);
    let (result, largest) = largest_allocation_during(|| decode_request(f.clone()));
    assert!(
        matches!(
            result,
            Err(DecodeError::Malformed {
                source: ReadError::CountTooLarge {
                    count: 0x1000_0000,
                    ..
                },
                ..
            })
        ),
        "{result:?}"
    );
    assert!(largest < 4096, "largest allocation {largest} bytes");
}

#[test]
fn header_errors_carry_what_the_server_needs_to_answer() {
    // Proves unknown keys, unsupported versions and short frames are told apart, with the
    // correlation id whenever the frame had one.
    assert_eq!(
        decode_request(frame(9999, 0, 3, &[])),
        Err(DecodeError::UnknownApiKey {
            api_key: 9999,
            correlation_id: 3
        })
    );
    assert_eq!(
        decode_request(frame(-1, 0, 3, &[])),
        Err(DecodeError::UnknownApiKey {
            api_key: -1,
            correlation_id: 3
        })
    );
    // Known to Kafka, not decoded by us (Vote, a KRaft controller API).
    assert_eq!(
        decode_request(frame(52, 0, 4, &[])),
        Err(DecodeError::UnknownApiKey {
            api_key: 52,
            correlation_id: 4
        })
    );
    assert_eq!(
        decode_request(frame(18, 99, 5, &[1, 2, 3])),
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            api_version: 99,
            correlation_id: 5
        })
    );
    assert_eq!(
        decode_request(frame(0, 14, 6, &[])),
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            api_version: 14,
            correlation_id: 6
        })
    );
    assert!(matches!(
        decode_request(Bytes::from_static(&[0, 18, 0])),
        Err(DecodeError::Malformed {
            correlation_id: None,
            ..
        })
    ));
    assert!(matches!(
        decode_request(Bytes::from_static(&[0, 18, 0, 3, 0, 0])),
        Err(DecodeError::Malformed {
            correlation_id: None,
            api_key: Some(18),
            api_version: Some(3),
            ..
        })
    ));
    // A field cut short after a valid header: the client id claims 5 bytes, 2 follow.
    assert!(matches!(
        decode_request(frame(18, 0, 7, &[0, 5, b'c', 0xde])),
        Err(DecodeError::Malformed {
            correlation_id: Some(7),
            source: ReadError::UnexpectedEnd { .. },
            ..
        })
    ));
}

#[test]
fn bytes_after_the_body_are_ignored_like_kafka() {
    // Proves bytes after the last field of a request body are ignored, as Kafka does, for a
    // non-flexible and a flexible version, while the same body cut short is still refused.
    let req = decode_request(frame(18, 0, 7, &[0, 1, b'c', 0xde, 0xad])).unwrap();
    assert_eq!(req.header.client_id.as_deref(), Some("c"));
    assert_eq!(
        req.body,
        RequestBody::ApiVersions(ApiVersionsRequest::default())
    );
    // ApiVersions v3: client id, header tags, two compact strings, body tags, then junk.
    let rest: &[u8] = &[0, 1, b'c', 0, 2, b'n', 2, b'v', 0, 0xff, 0xff, 0xff];
    let req = decode_request(frame(18, 3, 8, rest)).unwrap();
    assert_eq!(
        req.body,
        RequestBody::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name("n".into())
                .with_client_software_version("v".into())
        )
    );
    assert!(matches!(
        decode_request(frame(18, 3, 8, &rest[..8])),
        Err(DecodeError::Malformed {
            correlation_id: Some(8),
            ..
        })
    ));
}

#[test]
fn golden_metadata_v12_from_librdkafka_2_16_with_trailing_bytes() {
    // Proves the exact 25-byte Metadata v12 frame librdkafka 2.16 sends (three bytes after the
    // body's tagged fields) decodes to its fields instead of being refused.
    let frame = Bytes::from_static(&[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07, b'r', b'd', b'k', b'a', b'f',
        b'k', b'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    ]);
    assert_eq!(frame.len(), 25);
    let req = decode_request(frame).unwrap();
    assert_eq!(req.api_key, ApiKey::Metadata);
    assert_eq!(req.api_version, 12);
    assert_eq!(req.header.correlation_id, 3);
    assert_eq!(req.header.client_id.as_deref(), Some("rdkafka"));
    // Header tags (0), then the body: null topics (compact 0), allow auto-creation false,
    // include topic authorized operations false, no tagged fields; then 01 00 00 is ignored.
    assert_eq!(
        req.body,
        RequestBody::Metadata(
            MetadataRequest::default()
                .with_topics(None)
                .with_allow_auto_topic_creation(false)
                .with_include_topic_authorized_operations(false)
        )
    );
}

/// An OffsetCommit v8 body (flexible) with a group id of `group_len` bytes, one topic "t"
/// with partition 0 at offset 5, after a header v2 with a null client id.
fn offset_commit_v8_rest(group_len: usize) -> Vec<u8> {
    let mut rest = BytesMut::new();
    rest.put_i16(-1); // client id: null
    rest.put_u8(0); // header tagged fields
    put_unsigned_varint(&mut rest, group_len as u32 + 1);
    rest.put_bytes(b'g', group_len);
    rest.put_i32(-1); // generation id
    rest.put_u8(1); // member id: ""
    rest.put_u8(0); // group instance id: null
    rest.put_u8(2); // one topic
    rest.put_u8(2);
    rest.put_u8(b't');
    rest.put_u8(2); // one partition
    rest.put_i32(0); // partition index
    rest.put_i64(5); // committed offset
    rest.put_i32(-1); // committed leader epoch
    rest.put_u8(0); // committed metadata: null
    rest.put_u8(0); // partition tagged fields
    rest.put_u8(0); // topic tagged fields
    rest.put_u8(0); // body tagged fields
    rest.to_vec()
}

fn put_unsigned_varint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[test]
fn compact_strings_longer_than_kafka_allows_are_malformed() {
    // Proves an OffsetCommit v8 whose compact group id is 40,000 bytes (all present) is
    // refused as Malformed with StringTooLong, while the same request with a 32,767-byte
    // group id decodes.
    let req = decode_request(frame(8, 8, 41, &offset_commit_v8_rest(32_767))).unwrap();
    let RequestBody::OffsetCommit(body) = req.body else {
        panic!("{req:?}")
    };
    assert_eq!(body.group_id.len(), 32_767);
    assert_eq!(body.topics[0].partitions[0].committed_offset, 5);
    assert_eq!(
        decode_request(frame(8, 8, 42, &offset_commit_v8_rest(40_000))),
        Err(DecodeError::Malformed {
            correlation_id: Some(42),
            api_key: Some(8),
            api_version: Some(8),
            source: ReadError::StringTooLong {
                length: 40_000,
                length_max: 32_767
            },
        })
    );
}

/// Decodes a frame built from `rest` (header from the client id on) and checks every
/// strict prefix of it is refused.
fn decode_golden(api_key: i16, version: i16, rest: &[u8]) -> RequestBody {
    let f = frame(api_key, version, 21, rest);
    for len in 0..f.len() {
        assert!(
            decode_request(f.slice(..len)).is_err(),
            "{api_key} v{version}: prefix of {len} bytes decoded"
        );
    }
    let req = decode_request(f).unwrap();
    assert_eq!(req.header.client_id.as_deref(), Some("c"));
    req.body
}

/// A STRING: i16 length, then the bytes.
fn put_string(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn golden_rest() -> BytesMut {
    let mut rest = BytesMut::new();
    put_string(&mut rest, "c"); // client id
    rest
}

#[test]
fn golden_offset_commit_v0_and_v1_from_kafka_3_9_schema() {
    // Proves OffsetCommit v0 (no generation or member) and v1 (with the per-partition
    // commit_timestamp, read and dropped) decode to the fields they carry, and every
    // truncation of them is refused.
    use kafka_protocol::messages::offset_commit_request::*;
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
    let expected = |generation: i32, member: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId("g".into()))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(member.to_string().into())
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName("t".into()))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42)
                            .with_committed_metadata(Some("m".into())),
                    ]),
            ])
    };
    let mut v0 = golden_rest();
    put_string(&mut v0, "g"); // group_id
    v0.put_i32(1); // topics
    put_string(&mut v0, "t");
    v0.put_i32(1); // partitions
    v0.put_i32(1); // partition_index
    v0.put_i64(42); // committed_offset
    put_string(&mut v0, "m"); // committed_metadata
    assert_eq!(
        decode_golden(8, 0, &v0),
        RequestBody::OffsetCommit(expected(-1, ""))
    );
    let mut v1 = golden_rest();
    put_string(&mut v1, "g"); // group_id
    v1.put_i32(7); // generation_id
    put_string(&mut v1, "member"); // member_id
    v1.put_i32(1); // topics
    put_string(&mut v1, "t");
    v1.put_i32(1); // partitions
    v1.put_i32(1); // partition_index
    v1.put_i64(42); // committed_offset
    v1.put_i64(1_700_000_000_000); // commit_timestamp (v1 only)
    put_string(&mut v1, "m"); // committed_metadata
    assert_eq!(
        decode_golden(8, 1, &v1),
        RequestBody::OffsetCommit(expected(7, "member"))
    );
}

#[test]
fn golden_offset_fetch_v0_and_describe_configs_v0_from_kafka_3_9_schema() {
    // Proves OffsetFetch v0 and DescribeConfigs v0 (no include_synonyms) decode to the
    // fields they carry, and every truncation of them is refused.
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        DescribeConfigsRequest, GroupId, OffsetFetchRequest, TopicName,
    };
    let mut rest = golden_rest();
    put_string(&mut rest, "g"); // group_id
    rest.put_i32(1); // topics
    put_string(&mut rest, "t");
    rest.put_i32(2); // partition_indexes
    rest.put_i32(0);
    rest.put_i32(1);
    assert_eq!(
        decode_golden(9, 0, &rest),
        RequestBody::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId("g".into()))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName("t".into()))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        )
    );
    let mut rest = golden_rest();
    rest.put_i32(1); // resources
    rest.put_i8(2); // resource_type: topic
    put_string(&mut rest, "t"); // resource_name
    rest.put_i32(-1); // configuration_keys: null (all)
    assert_eq!(
        decode_golden(32, 0, &rest),
        RequestBody::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name("t".into())
                    .with_configuration_keys(None),
            ]))
    );
}

#[test]
fn golden_list_offsets_v0_from_kafka_3_9_schema() {
    // Proves ListOffsets v0 decodes with its max_num_offsets read and dropped, and every
    // truncation of it is refused.
    use kafka_protocol::messages::list_offsets_request::*;
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    let mut rest = golden_rest();
    rest.put_i32(-1); // replica_id
    rest.put_i32(1); // topics
    put_string(&mut rest, "t");
    rest.put_i32(1); // partitions
    rest.put_i32(0); // partition_index
    rest.put_i64(-1); // timestamp: latest
    rest.put_i32(1); // max_num_offsets (v0 only)
    assert_eq!(
        decode_golden(2, 0, &rest),
        RequestBody::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName("t".into()))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ])
        )
    );
}

#[test]
fn golden_create_and_delete_topics_v0_v1_from_kafka_3_9_schema() {
    // Proves CreateTopics v0 (no validate_only) and v1, and DeleteTopics v0, decode to the
    // fields they carry, and every truncation of them is refused.
    use kafka_protocol::messages::create_topics_request::*;
    use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, TopicName};
    let topics = |b: &mut BytesMut| {
        b.put_i32(1); // topics
        put_string(b, "t"); // name
        b.put_i32(3); // num_partitions
        b.put_i16(1); // replication_factor
        b.put_i32(0); // assignments
        b.put_i32(1); // configs
        put_string(b, "retention.ms");
        put_string(b, "1000");
        b.put_i32(5000); // timeout_ms
    };
    let expected = |validate_only: bool| {
        RequestBody::CreateTopics(
            CreateTopicsRequest::default()
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(TopicName("t".into()))
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_configs(vec![
                            CreatableTopicConfig::default()
                                .with_name("retention.ms".into())
                                .with_value(Some("1000".into())),
                        ]),
                ])
                .with_timeout_ms(5000)
                .with_validate_only(validate_only),
        )
    };
    let mut v0 = golden_rest();
    topics(&mut v0);
    assert_eq!(decode_golden(19, 0, &v0), expected(false));
    let mut v1 = golden_rest();
    topics(&mut v1);
    v1.put_u8(1); // validate_only
    assert_eq!(decode_golden(19, 1, &v1), expected(true));

    let mut rest = golden_rest();
    rest.put_i32(2); // topic_names
    put_string(&mut rest, "a");
    put_string(&mut rest, "b");
    rest.put_i32(3000); // timeout_ms
    assert_eq!(
        decode_golden(20, 0, &rest),
        RequestBody::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName("a".into()), TopicName("b".into())])
                .with_timeout_ms(3000)
        )
    );
}

#[test]
fn golden_offset_for_leader_epoch_v0_v1_from_kafka_3_9_schema() {
    // Proves OffsetForLeaderEpoch v0 and v1 (no current_leader_epoch, no replica_id) decode
    // with the fields' defaults for what they lack, and every truncation is refused.
    use kafka_protocol::messages::offset_for_leader_epoch_request::*;
    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, TopicName};
    let mut rest = golden_rest();
    rest.put_i32(1); // topics
    put_string(&mut rest, "t");
    rest.put_i32(1); // partitions
    rest.put_i32(2); // partition
    rest.put_i32(5); // leader_epoch
    let expected = RequestBody::OffsetForLeaderEpoch(
        OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName("t".into()))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(2)
                        .with_leader_epoch(5),
                ]),
        ]),
    );
    assert_eq!(decode_golden(23, 0, &rest), expected);
    assert_eq!(decode_golden(23, 1, &rest), expected);
}

#[test]
fn golden_fetch_v0_and_v3_from_kafka_3_9_schema() {
    // Proves Fetch v0 (no max_bytes) and v3 (with max_bytes) decode to the fields they carry,
    // read uncommitted and with the struct's defaults for the rest, and every truncation is
    // refused.
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    let body = |max_bytes: Option<i32>| {
        let mut rest = golden_rest();
        rest.put_i32(-1); // replica_id
        rest.put_i32(500); // max_wait_ms
        rest.put_i32(1); // min_bytes
        if let Some(m) = max_bytes {
            rest.put_i32(m); // max_bytes (v3+)
        }
        rest.put_i32(1); // topics
        put_string(&mut rest, "t");
        rest.put_i32(1); // partitions
        rest.put_i32(0); // partition
        rest.put_i64(7); // fetch_offset
        rest.put_i32(4096); // partition_max_bytes
        rest
    };
    let expected = |max_bytes: i32| {
        RequestBody::Fetch(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(max_bytes)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName("t".into()))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(7)
                                .with_partition_max_bytes(4096),
                        ]),
                ]),
        )
    };
    let v0 = decode_golden(1, 0, &body(None));
    assert_eq!(v0, expected(i32::MAX));
    let RequestBody::Fetch(ref f) = v0 else {
        unreachable!()
    };
    assert_eq!(f.isolation_level, 0, "read uncommitted");
    assert_eq!(decode_golden(1, 3, &body(Some(65_536))), expected(65_536));
}

#[test]
fn golden_produce_v0_to_v2_from_kafka_3_9_schema() {
    // Proves Produce v0-v2 (no transactional_id) decode to the fields they carry with the
    // records as a slice of the frame, and every truncation is refused.
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let mut rest = golden_rest();
    rest.put_i16(1); // acks
    rest.put_i32(1500); // timeout_ms
    rest.put_i32(1); // topic_data
    put_string(&mut rest, "t");
    rest.put_i32(1); // partition_data
    rest.put_i32(2); // index
    rest.put_i32(3); // records
    rest.put_slice(b"set");
    for v in 0..=2 {
        assert_eq!(
            decode_golden(0, v, &rest),
            RequestBody::Produce(
                ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(1500)
                    .with_topic_data(vec![
                        TopicProduceData::default()
                            .with_name(TopicName("t".into()))
                            .with_partition_data(vec![
                                PartitionProduceData::default()
                                    .with_index(2)
                                    .with_records(Some(Bytes::from_static(b"set"))),
                            ]),
                    ])
            ),
            "v{v}"
        );
    }
}

#[test]
fn golden_api_versions_v3_from_the_spec() {
    // Proves a hand-assembled ApiVersions v3 request (header v2, compact strings, as librdkafka
    // sends it) decodes to the expected fields.
    let rest: &[u8] = &[
        0x00, 0x07, b'r', b'd', b'k', b'a', b'f', b'k',
        b'a', // client id (non-compact even in header v2)
        0x00, // header tagged fields
        0x0b, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k',
        b'a', // client software name
        0x06, b'2', b'.', b'0', b'.', b'2', // client software version
        0x00, // body tagged fields
    ];
    let req = decode_request(frame(18, 3, 1, rest)).unwrap();
    assert_eq!(req.header.client_id.as_deref(), Some("rdkafka"));
    let RequestBody::ApiVersions(body) = req.body else {
        panic!("wrong body")
    };
    let expected = ApiVersionsRequest::default()
        .with_client_software_name("librdkafka".into())
        .with_client_software_version("2.0.2".into());
    assert_eq!(body, expected);
}

#[test]
fn golden_metadata_v1_null_topics_means_all() {
    // Proves Metadata v1 with a null topic array (all topics) decodes to None, and v0's empty
    // array stays an empty list.
    let req = decode_request(frame(3, 1, 2, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).unwrap();
    assert_eq!(req.header.client_id, None);
    assert_eq!(
        req.body,
        RequestBody::Metadata(MetadataRequest::default().with_topics(None))
    );
    let req = decode_request(frame(3, 0, 2, &[0, 0, 0, 0, 0, 0])).unwrap();
    assert_eq!(req.header.client_id.as_deref(), Some(""));
    assert_eq!(
        req.body,
        RequestBody::Metadata(MetadataRequest::default().with_topics(Some(vec![])))
    );
}

#[test]
fn produce_records_are_a_slice_of_the_frame() {
    // Proves the record batch bytes of a Produce request are not copied out of the frame.
    let mut rest = BytesMut::new();
    rest.put_i16(-1); // client id
    rest.put_i16(-1); // transactional id
    rest.put_i16(-1); // acks
    rest.put_i32(30_000);
    rest.put_i32(1);
    rest.put_i16(1);
    rest.put_u8(b't');
    rest.put_i32(1);
    rest.put_i32(0); // partition
    rest.put_i32(5);
    rest.put_slice(b"batch");
    let f = frame(0, 7, 11, &rest);
    let req = decode_request(f.clone()).unwrap();
    let RequestBody::Produce(ProduceRequest {
        ref topic_data,
        acks: -1,
        ..
    }) = req.body
    else {
        panic!("{req:?}")
    };
    let records = topic_data[0].partition_data[0].records.as_ref().unwrap();
    assert_eq!(&records[..], b"batch");
    assert_eq!(records.as_ptr(), f[f.len() - 5..].as_ptr());
}

/// Encodes a consumer protocol message the way a client does: version, then the struct.
fn consumer_protocol_bytes(
    version: i16,
    msg: &impl kafka_protocol::protocol::Encodable,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    msg.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// A decoded consumer protocol message encoded again behind its version, read as the
/// newest known one when above it. `None` when kafka-protocol refuses a value our
/// decoder accepts; such messages cannot be compared.
fn reencoded(version: i16, msg: &impl kafka_protocol::protocol::Encodable) -> Option<Bytes> {
    use crate::consumer_protocol::CONSUMER_PROTOCOL_VERSION_MAX;
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    msg.encode(&mut buf, version.min(CONSUMER_PROTOCOL_VERSION_MAX))
        .ok()?;
    Some(buf.freeze())
}

/// Decodes `bytes` as both a subscription and an assignment, checks each that decodes
/// survives kafka-protocol's encoder, and returns the largest allocation decoding made.
fn consumer_protocol_decodes(bytes: &[u8]) -> Result<usize, TestCaseError> {
    use crate::consumer_protocol::{decode_assignment, decode_subscription};
    let input = Bytes::copy_from_slice(bytes);
    let (subscription, largest_s) =
        largest_allocation_during(|| decode_subscription(input.clone()));
    let (assignment, largest_a) = largest_allocation_during(|| decode_assignment(input.clone()));
    if let Ok((v, s)) = subscription
        && let Some(b) = reencoded(v, &s)
    {
        prop_assert_eq!(decode_subscription(b).unwrap(), (v, s));
    }
    if let Ok((v, a)) = assignment
        && let Some(b) = reencoded(v, &a)
    {
        prop_assert_eq!(decode_assignment(b).unwrap(), (v, a));
    }
    Ok(largest_s.max(largest_a))
}

/// The most a consumer protocol decode may allocate at once for `len` input bytes: every
/// count is checked against the bytes left, and the largest element (an assigned or owned
/// topic partition) is under 128 bytes while each takes at least 6 input bytes.
fn consumer_protocol_allocation_max(len: usize) -> usize {
    1024 + 32 * len
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn arbitrary_consumer_protocol_bytes_never_panic_or_overallocate(
        version in -1i16..6,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Proves arbitrary subscription and assignment bytes behind any version decode to Ok
        // or an error, whatever decodes survives a re-encode, and no allocation is sized
        // from an untrusted count.
        let mut bytes = version.to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let largest = consumer_protocol_decodes(&bytes)?;
        prop_assert!(largest <= consumer_protocol_allocation_max(bytes.len()), "{largest} bytes");
    }

    #[test]
    fn mutated_consumer_protocol_messages_never_panic_or_overallocate(
        seed: u64,
        version in 0i16..4,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        // Proves real encodings (kafka-protocol's, of random subscriptions and assignments)
        // with a few bytes replaced, and each such encoding truncated, are decoded without a
        // panic or an allocation sized from a corrupted count.
        use crate::random::{Gen, Rng};
        use crate::wire::Cx;
        use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
        let mut g = Rng::new(seed);
        let cx = Cx { version, flex: false };
        let encodings = [
            consumer_protocol_bytes(version, &ConsumerProtocolSubscription::generate(&mut g, cx)),
            consumer_protocol_bytes(version, &ConsumerProtocolAssignment::generate(&mut g, cx)),
        ];
        for mut bytes in encodings {
            for (at, byte) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            let largest = consumer_protocol_decodes(&bytes)?;
            prop_assert!(largest <= consumer_protocol_allocation_max(bytes.len()), "{largest} bytes");
            let short = &bytes[..cut.index(bytes.len())];
            let largest = consumer_protocol_decodes(short)?;
            prop_assert!(largest <= consumer_protocol_allocation_max(short.len()), "{largest} bytes");
        }
    }
}
