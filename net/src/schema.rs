//! The wire layout of every request Sluice decodes, as `wire_struct!` tables:
//! each struct's fields in wire order with the versions that carry them, then
//! its tagged fields (tag number and versions). The layouts are Kafka's message
//! schemas (Kafka 3.9's for the versions 4.0 removed); the property tests in
//! `request.rs` check every table against `kafka-protocol`'s encoder for every
//! version it has, and golden frames in `tests.rs` cover the removed ones.

/// One table drives both the decoder (`wire::wire_codec!`) and, under test, the random
/// value generator the property tests encode (`random::gen_struct!`), so the two cannot
/// disagree on a layout.
macro_rules! wire_struct {
    ($($table:tt)*) => {
        crate::wire::wire_codec! { $($table)* }
        #[cfg(any(test, feature = "testing"))]
        crate::random::gen_struct! { $($table)* }
    };
}
pub(crate) use wire_struct;

// api_versions
wire_struct! { api_versions_request::ApiVersionsRequest [0..=4] {
    client_software_name: 3..=4,
    client_software_version: 3..=4,
} tagged {
} }

// metadata
wire_struct! { metadata_request::MetadataRequest [0..=13] {
    topics: 0..=13,
    allow_auto_topic_creation: 4..=13,
    include_cluster_authorized_operations: 8..=10,
    include_topic_authorized_operations: 8..=13,
} tagged {
} }
wire_struct! { metadata_request::MetadataRequestTopic [0..=13] {
    topic_id: 10..=13,
    name: 0..=13,
} tagged {
} }

// produce
wire_struct! { produce_request::PartitionProduceData [0..=13] {
    index: 0..=13,
    records: 0..=13,
} tagged {
} }
wire_struct! { produce_request::ProduceRequest [0..=13] {
    transactional_id: 3..=13,
    acks: 0..=13,
    timeout_ms: 0..=13,
    topic_data: 0..=13,
} tagged {
} }
wire_struct! { produce_request::TopicProduceData [0..=13] {
    name: 0..=12,
    topic_id: 13..=13,
    partition_data: 0..=13,
} tagged {
} }

// fetch
wire_struct! { fetch_request::FetchPartition [0..=18] {
    partition: 0..=18,
    current_leader_epoch: 9..=18,
    fetch_offset: 0..=18,
    last_fetched_epoch: 12..=18,
    log_start_offset: 5..=18,
    partition_max_bytes: 0..=18,
} tagged {
    replica_directory_id: 0 @ 17..=18,
    high_watermark: 1 @ 18..=18,
} }
wire_struct! { fetch_request::FetchRequest [0..=18] {
    replica_id: 0..=14,
    max_wait_ms: 0..=18,
    min_bytes: 0..=18,
    max_bytes: 3..=18,
    isolation_level: 4..=18,
    session_id: 7..=18,
    session_epoch: 7..=18,
    topics: 0..=18,
    forgotten_topics_data: 7..=18,
    rack_id: 11..=18,
} tagged {
    cluster_id: 0 @ 12..=18,
    replica_state: 1 @ 15..=18,
} }
wire_struct! { fetch_request::FetchTopic [0..=18] {
    topic: 0..=12,
    topic_id: 13..=18,
    partitions: 0..=18,
} tagged {
} }
wire_struct! { fetch_request::ForgottenTopic [0..=18] {
    topic: 7..=12,
    topic_id: 13..=18,
    partitions: 7..=18,
} tagged {
} }
wire_struct! { fetch_request::ReplicaState [0..=18] {
    replica_id: 15..=18,
    replica_epoch: 15..=18,
} tagged {
} }

// list_offsets
wire_struct! { list_offsets_request::ListOffsetsPartition [0..=10] {
    partition_index: 0..=10,
    current_leader_epoch: 4..=10,
    timestamp: 0..=10,
    // v0's answer is the one offset v1 gives (or none), whatever count is asked for.
    max_num_offsets as i32: 0..=0,
} tagged {
} }
wire_struct! { list_offsets_request::ListOffsetsRequest [0..=10] {
    replica_id: 0..=10,
    isolation_level: 2..=10,
    topics: 0..=10,
    timeout_ms: 10..=10,
} tagged {
} }
wire_struct! { list_offsets_request::ListOffsetsTopic [0..=10] {
    name: 0..=10,
    partitions: 0..=10,
} tagged {
} }

// init_producer_id
wire_struct! { init_producer_id_request::InitProducerIdRequest [0..=5] {
    transactional_id: 0..=5,
    transaction_timeout_ms: 0..=5,
    producer_id: 3..=5,
    producer_epoch: 3..=5,
    // enable_2_pc: never on the wire
    // keep_prepared_txn: never on the wire
} tagged {
} }

// create_topics
wire_struct! { create_topics_request::CreatableReplicaAssignment [0..=7] {
    partition_index: 0..=7,
    broker_ids: 0..=7,
} tagged {
} }
wire_struct! { create_topics_request::CreatableTopic [0..=7] {
    name: 0..=7,
    num_partitions: 0..=7,
    replication_factor: 0..=7,
    assignments: 0..=7,
    configs: 0..=7,
} tagged {
} }
wire_struct! { create_topics_request::CreatableTopicConfig [0..=7] {
    name: 0..=7,
    value: 0..=7,
} tagged {
} }
wire_struct! { create_topics_request::CreateTopicsRequest [0..=7] {
    topics: 0..=7,
    timeout_ms: 0..=7,
    validate_only: 1..=7,
} tagged {
} }

// delete_topics
wire_struct! { delete_topics_request::DeleteTopicState [0..=6] {
    name: 6..=6,
    topic_id: 6..=6,
} tagged {
} }
wire_struct! { delete_topics_request::DeleteTopicsRequest [0..=6] {
    topics: 6..=6,
    topic_names: 0..=5,
    timeout_ms: 0..=6,
} tagged {
} }

// create_partitions
wire_struct! { create_partitions_request::CreatePartitionsAssignment [0..=3] {
    broker_ids: 0..=3,
} tagged {
} }
wire_struct! { create_partitions_request::CreatePartitionsRequest [0..=3] {
    topics: 0..=3,
    timeout_ms: 0..=3,
    validate_only: 0..=3,
} tagged {
} }
wire_struct! { create_partitions_request::CreatePartitionsTopic [0..=3] {
    name: 0..=3,
    count: 0..=3,
    assignments: 0..=3,
} tagged {
} }

// describe_configs
wire_struct! { describe_configs_request::DescribeConfigsRequest [0..=4] {
    resources: 0..=4,
    include_synonyms: 1..=4,
    include_documentation: 3..=4,
} tagged {
} }
wire_struct! { describe_configs_request::DescribeConfigsResource [0..=4] {
    resource_type: 0..=4,
    resource_name: 0..=4,
    configuration_keys: 0..=4,
} tagged {
} }

// incremental_alter_configs
wire_struct! { incremental_alter_configs_request::AlterConfigsResource [0..=1] {
    resource_type: 0..=1,
    resource_name: 0..=1,
    configs: 0..=1,
} tagged {
} }
wire_struct! { incremental_alter_configs_request::AlterableConfig [0..=1] {
    name: 0..=1,
    config_operation: 0..=1,
    value: 0..=1,
} tagged {
} }
wire_struct! { incremental_alter_configs_request::IncrementalAlterConfigsRequest [0..=1] {
    resources: 0..=1,
    validate_only: 0..=1,
} tagged {
} }

// offset_for_leader_epoch
wire_struct! { offset_for_leader_epoch_request::OffsetForLeaderEpochRequest [0..=4] {
    replica_id: 3..=4,
    topics: 0..=4,
} tagged {
} }
wire_struct! { offset_for_leader_epoch_request::OffsetForLeaderPartition [0..=4] {
    partition: 0..=4,
    current_leader_epoch: 2..=4,
    leader_epoch: 0..=4,
} tagged {
} }
wire_struct! { offset_for_leader_epoch_request::OffsetForLeaderTopic [0..=4] {
    topic: 0..=4,
    partitions: 0..=4,
} tagged {
} }

// describe_cluster
wire_struct! { describe_cluster_request::DescribeClusterRequest [0..=2] {
    include_cluster_authorized_operations: 0..=2,
    endpoint_type: 1..=2,
    include_fenced_brokers: 2..=2,
} tagged {
} }

// find_coordinator
wire_struct! { find_coordinator_request::FindCoordinatorRequest [0..=6] {
    key: 0..=3,
    key_type: 1..=6,
    coordinator_keys: 4..=6,
} tagged {
} }

// join_group
wire_struct! { join_group_request::JoinGroupRequest [0..=9] {
    group_id: 0..=9,
    session_timeout_ms: 0..=9,
    rebalance_timeout_ms: 1..=9,
    member_id: 0..=9,
    group_instance_id: 5..=9,
    protocol_type: 0..=9,
    protocols: 0..=9,
    reason: 8..=9,
} tagged {
} }
wire_struct! { join_group_request::JoinGroupRequestProtocol [0..=9] {
    name: 0..=9,
    metadata: 0..=9,
} tagged {
} }

// sync_group
wire_struct! { sync_group_request::SyncGroupRequest [0..=5] {
    group_id: 0..=5,
    generation_id: 0..=5,
    member_id: 0..=5,
    group_instance_id: 3..=5,
    protocol_type: 5..=5,
    protocol_name: 5..=5,
    assignments: 0..=5,
} tagged {
} }
wire_struct! { sync_group_request::SyncGroupRequestAssignment [0..=5] {
    member_id: 0..=5,
    assignment: 0..=5,
} tagged {
} }

// heartbeat
wire_struct! { heartbeat_request::HeartbeatRequest [0..=4] {
    group_id: 0..=4,
    generation_id: 0..=4,
    member_id: 0..=4,
    group_instance_id: 3..=4,
} tagged {
} }

// leave_group
wire_struct! { leave_group_request::LeaveGroupRequest [0..=5] {
    group_id: 0..=5,
    member_id: 0..=2,
    members: 3..=5,
} tagged {
} }
wire_struct! { leave_group_request::MemberIdentity [0..=5] {
    member_id: 3..=5,
    group_instance_id: 3..=5,
    reason: 5..=5,
} tagged {
} }

// offset_commit
wire_struct! { offset_commit_request::OffsetCommitRequest [0..=9] {
    group_id: 0..=9,
    generation_id_or_member_epoch: 1..=9,
    member_id: 1..=9,
    group_instance_id: 7..=9,
    retention_time_ms: 2..=4,
    topics: 0..=9,
} tagged {
} }
wire_struct! { offset_commit_request::OffsetCommitRequestPartition [0..=9] {
    partition_index: 0..=9,
    committed_offset: 0..=9,
    committed_leader_epoch: 6..=9,
    // The commit time is the broker's, as from v2 on.
    commit_timestamp as i64: 1..=1,
    committed_metadata: 0..=9,
} tagged {
} }
wire_struct! { offset_commit_request::OffsetCommitRequestTopic [0..=9] {
    name: 0..=9,
    // topic_id: never on the wire
    partitions: 0..=9,
} tagged {
} }

// offset_fetch
wire_struct! { offset_fetch_request::OffsetFetchRequest [0..=9] {
    group_id: 0..=7,
    topics: 0..=7,
    groups: 8..=9,
    require_stable: 7..=9,
} tagged {
} }
wire_struct! { offset_fetch_request::OffsetFetchRequestGroup [0..=9] {
    group_id: 8..=9,
    member_id: 9..=9,
    member_epoch: 9..=9,
    topics: 8..=9,
} tagged {
} }
wire_struct! { offset_fetch_request::OffsetFetchRequestTopic [0..=9] {
    name: 0..=7,
    partition_indexes: 0..=7,
} tagged {
} }
wire_struct! { offset_fetch_request::OffsetFetchRequestTopics [0..=9] {
    name: 8..=9,
    // topic_id: never on the wire
    partition_indexes: 8..=9,
} tagged {
} }

// describe_groups
wire_struct! { describe_groups_request::DescribeGroupsRequest [0..=6] {
    groups: 0..=6,
    include_authorized_operations: 3..=6,
} tagged {
} }

// list_groups
wire_struct! { list_groups_request::ListGroupsRequest [0..=5] {
    states_filter: 4..=5,
    types_filter: 5..=5,
} tagged {
} }

// delete_groups
wire_struct! { delete_groups_request::DeleteGroupsRequest [0..=2] {
    groups_names: 0..=2,
} tagged {
} }

// offset_delete
wire_struct! { offset_delete_request::OffsetDeleteRequest [0..=0] {
    group_id: 0..=0,
    topics: 0..=0,
} never_flexible }
wire_struct! { offset_delete_request::OffsetDeleteRequestPartition [0..=0] {
    partition_index: 0..=0,
} never_flexible }
wire_struct! { offset_delete_request::OffsetDeleteRequestTopic [0..=0] {
    name: 0..=0,
    partitions: 0..=0,
} never_flexible }

// add_partitions_to_txn
wire_struct! { add_partitions_to_txn_request::AddPartitionsToTxnRequest [0..=5] {
    transactions: 4..=5,
    v3_and_below_transactional_id: 0..=3,
    v3_and_below_producer_id: 0..=3,
    v3_and_below_producer_epoch: 0..=3,
    v3_and_below_topics: 0..=3,
} tagged {
} }
wire_struct! { add_partitions_to_txn_request::AddPartitionsToTxnTopic [0..=5] {
    name: 0..=5,
    partitions: 0..=5,
} tagged {
} }
wire_struct! { add_partitions_to_txn_request::AddPartitionsToTxnTransaction [0..=5] {
    transactional_id: 4..=5,
    producer_id: 4..=5,
    producer_epoch: 4..=5,
    verify_only: 4..=5,
    topics: 4..=5,
} tagged {
} }

// add_offsets_to_txn
wire_struct! { add_offsets_to_txn_request::AddOffsetsToTxnRequest [0..=4] {
    transactional_id: 0..=4,
    producer_id: 0..=4,
    producer_epoch: 0..=4,
    group_id: 0..=4,
} tagged {
} }

// end_txn
wire_struct! { end_txn_request::EndTxnRequest [0..=5] {
    transactional_id: 0..=5,
    producer_id: 0..=5,
    producer_epoch: 0..=5,
    committed: 0..=5,
} tagged {
} }

// txn_offset_commit
wire_struct! { txn_offset_commit_request::TxnOffsetCommitRequest [0..=5] {
    transactional_id: 0..=5,
    group_id: 0..=5,
    producer_id: 0..=5,
    producer_epoch: 0..=5,
    generation_id: 3..=5,
    member_id: 3..=5,
    group_instance_id: 3..=5,
    topics: 0..=5,
} tagged {
} }
wire_struct! { txn_offset_commit_request::TxnOffsetCommitRequestPartition [0..=5] {
    partition_index: 0..=5,
    committed_offset: 0..=5,
    committed_leader_epoch: 2..=5,
    committed_metadata: 0..=5,
} tagged {
} }
wire_struct! { txn_offset_commit_request::TxnOffsetCommitRequestTopic [0..=5] {
    name: 0..=5,
    partitions: 0..=5,
} tagged {
} }

// delete_records
wire_struct! { delete_records_request::DeleteRecordsPartition [0..=2] {
    partition_index: 0..=2,
    offset: 0..=2,
} tagged {
} }
wire_struct! { delete_records_request::DeleteRecordsRequest [0..=2] {
    topics: 0..=2,
    timeout_ms: 0..=2,
} tagged {
} }
wire_struct! { delete_records_request::DeleteRecordsTopic [0..=2] {
    name: 0..=2,
    partitions: 0..=2,
} tagged {
} }

// sasl_handshake
wire_struct! { sasl_handshake_request::SaslHandshakeRequest [0..=1] {
    mechanism: 0..=1,
} never_flexible }

// sasl_authenticate
wire_struct! { sasl_authenticate_request::SaslAuthenticateRequest [0..=2] {
    auth_bytes: 0..=2,
} tagged {
} }

// describe_acls
wire_struct! { describe_acls_request::DescribeAclsRequest [1..=3] {
    resource_type_filter: 1..=3,
    resource_name_filter: 1..=3,
    pattern_type_filter: 1..=3,
    principal_filter: 1..=3,
    host_filter: 1..=3,
    operation: 1..=3,
    permission_type: 1..=3,
} tagged {
} }

// create_acls
wire_struct! { create_acls_request::AclCreation [1..=3] {
    resource_type: 1..=3,
    resource_name: 1..=3,
    resource_pattern_type: 1..=3,
    principal: 1..=3,
    host: 1..=3,
    operation: 1..=3,
    permission_type: 1..=3,
} tagged {
} }
wire_struct! { create_acls_request::CreateAclsRequest [1..=3] {
    creations: 1..=3,
} tagged {
} }

// delete_acls
wire_struct! { delete_acls_request::DeleteAclsFilter [1..=3] {
    resource_type_filter: 1..=3,
    resource_name_filter: 1..=3,
    pattern_type_filter: 1..=3,
    principal_filter: 1..=3,
    host_filter: 1..=3,
    operation: 1..=3,
    permission_type: 1..=3,
} tagged {
} }
wire_struct! { delete_acls_request::DeleteAclsRequest [1..=3] {
    filters: 1..=3,
} tagged {
} }

// alter_configs
wire_struct! { alter_configs_request::AlterConfigsRequest [0..=2] {
    resources: 0..=2,
    validate_only: 0..=2,
} tagged {
} }
wire_struct! { alter_configs_request::AlterConfigsResource [0..=2] {
    resource_type: 0..=2,
    resource_name: 0..=2,
    configs: 0..=2,
} tagged {
} }
wire_struct! { alter_configs_request::AlterableConfig [0..=2] {
    name: 0..=2,
    value: 0..=2,
} tagged {
} }

// describe_log_dirs
wire_struct! { describe_log_dirs_request::DescribableLogDirTopic [1..=4] {
    topic: 1..=4,
    partitions: 1..=4,
} tagged {
} }
wire_struct! { describe_log_dirs_request::DescribeLogDirsRequest [1..=4] {
    topics: 1..=4,
} tagged {
} }

// describe_producers
wire_struct! { describe_producers_request::DescribeProducersRequest [0..=0] {
    topics: 0..=0,
} tagged {
} }
wire_struct! { describe_producers_request::TopicRequest [0..=0] {
    name: 0..=0,
    partition_indexes: 0..=0,
} tagged {
} }

// describe_transactions
wire_struct! { describe_transactions_request::DescribeTransactionsRequest [0..=0] {
    transactional_ids: 0..=0,
} tagged {
} }

// list_transactions
wire_struct! { list_transactions_request::ListTransactionsRequest [0..=2] {
    state_filters: 0..=2,
    producer_id_filters: 0..=2,
    duration_filter: 1..=2,
    transactional_id_pattern: 2..=2,
} tagged {
} }

// write_txn_markers
wire_struct! { write_txn_markers_request::WritableTxnMarker [1..=1] {
    producer_id: 1..=1,
    producer_epoch: 1..=1,
    transaction_result: 1..=1,
    topics: 1..=1,
    coordinator_epoch: 1..=1,
} tagged {
} }
wire_struct! { write_txn_markers_request::WritableTxnMarkerTopic [1..=1] {
    name: 1..=1,
    partition_indexes: 1..=1,
} tagged {
} }
wire_struct! { write_txn_markers_request::WriteTxnMarkersRequest [1..=1] {
    markers: 1..=1,
} tagged {
} }

// describe_topic_partitions
wire_struct! { describe_topic_partitions_request::Cursor [0..=0] {
    topic_name: 0..=0,
    partition_index: 0..=0,
} tagged {
} }
wire_struct! { describe_topic_partitions_request::DescribeTopicPartitionsRequest [0..=0] {
    topics: 0..=0,
    response_partition_limit: 0..=0,
    cursor: 0..=0,
} tagged {
} }
wire_struct! { describe_topic_partitions_request::TopicRequest [0..=0] {
    name: 0..=0,
} tagged {
} }

// elect_leaders
wire_struct! { elect_leaders_request::ElectLeadersRequest [0..=2] {
    election_type: 1..=2,
    topic_partitions: 0..=2,
    timeout_ms: 0..=2,
} tagged {
} }
wire_struct! { elect_leaders_request::TopicPartitions [0..=2] {
    topic: 0..=2,
    partitions: 0..=2,
} tagged {
} }

// describe_user_scram_credentials
wire_struct! { describe_user_scram_credentials_request::DescribeUserScramCredentialsRequest [0..=0] {
    users: 0..=0,
} tagged {
} }
wire_struct! { describe_user_scram_credentials_request::UserName [0..=0] {
    name: 0..=0,
} tagged {
} }

// alter_user_scram_credentials
wire_struct! { alter_user_scram_credentials_request::AlterUserScramCredentialsRequest [0..=0] {
    deletions: 0..=0,
    upsertions: 0..=0,
} tagged {
} }
wire_struct! { alter_user_scram_credentials_request::ScramCredentialDeletion [0..=0] {
    name: 0..=0,
    mechanism: 0..=0,
} tagged {
} }
wire_struct! { alter_user_scram_credentials_request::ScramCredentialUpsertion [0..=0] {
    name: 0..=0,
    mechanism: 0..=0,
    iterations: 0..=0,
    salt: 0..=0,
    salted_password: 0..=0,
} tagged {
} }

// describe_client_quotas
wire_struct! { describe_client_quotas_request::ComponentData [0..=1] {
    entity_type: 0..=1,
    match_type: 0..=1,
    _match: 0..=1,
} tagged {
} }
wire_struct! { describe_client_quotas_request::DescribeClientQuotasRequest [0..=1] {
    components: 0..=1,
    strict: 0..=1,
} tagged {
} }

// alter_client_quotas
wire_struct! { alter_client_quotas_request::AlterClientQuotasRequest [0..=1] {
    entries: 0..=1,
    validate_only: 0..=1,
} tagged {
} }
wire_struct! { alter_client_quotas_request::EntityData [0..=1] {
    entity_type: 0..=1,
    entity_name: 0..=1,
} tagged {
} }
wire_struct! { alter_client_quotas_request::EntryData [0..=1] {
    entity: 0..=1,
    ops: 0..=1,
} tagged {
} }
wire_struct! { alter_client_quotas_request::OpData [0..=1] {
    key: 0..=1,
    value: 0..=1,
    remove: 0..=1,
} tagged {
} }

// consumer_group_heartbeat
wire_struct! { consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest [0..=1] {
    group_id: 0..=1,
    member_id: 0..=1,
    member_epoch: 0..=1,
    instance_id: 0..=1,
    rack_id: 0..=1,
    rebalance_timeout_ms: 0..=1,
    subscribed_topic_names: 0..=1,
    subscribed_topic_regex: 1..=1,
    server_assignor: 0..=1,
    topic_partitions: 0..=1,
} tagged {
} }
wire_struct! { consumer_group_heartbeat_request::TopicPartitions [0..=1] {
    topic_id: 0..=1,
    partitions: 0..=1,
} tagged {
} }

// consumer_group_describe
wire_struct! { consumer_group_describe_request::ConsumerGroupDescribeRequest [0..=1] {
    group_ids: 0..=1,
    include_authorized_operations: 0..=1,
} tagged {
} }
