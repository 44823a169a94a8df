//! ApiVersions: the APIs and version ranges this broker advertises. Only what fully works
//! is listed, each range clipped to what net can decode. A request above our ApiVersions
//! range gets the v0 fallback: error UNSUPPORTED_VERSION (35) and our ranges in a v0 body,
//! so old and new clients can both negotiate.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, api_versions_response::ApiVersion};
use sluice_net::decodable_versions;

use super::Outcome;

/// What the handlers implement: `(api, min, max)`. The minima are Kafka 3.9's: KIP-896
/// removed some versions in 4.0, but clients such as Sarama 1.22 still send them. net
/// decodes them and rewrites their responses; Produce v0-v2 and Fetch v0-v3 also have
/// their records converted from and to the old message formats.
const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 0, 16),
    (ApiKey::ListOffsets, 0, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// The advertised range of `key`: our range intersected with net's decodable range.
pub fn advertised_range(key: ApiKey) -> Option<(i16, i16)> {
    let (_, lo, hi) = IMPLEMENTED.iter().find(|(k, _, _)| *k == key)?;
    let (dlo, dhi) = decodable_versions(key)?;
    let hi = (*hi).min(dhi);
    let lo = (*lo).max(dlo);
    (lo <= hi).then_some((lo, hi))
}

/// Whether a decoded request at `version` is one we serve.
pub fn advertised(key: ApiKey, version: i16) -> bool {
    advertised_range(key).is_some_and(|(lo, hi)| (lo..=hi).contains(&version))
}

fn api_keys() -> Vec<ApiVersion> {
    IMPLEMENTED
        .iter()
        .filter_map(|(k, _, _)| {
            let (lo, hi) = advertised_range(*k)?;
            Some(
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(lo)
                    .with_max_version(hi),
            )
        })
        .collect()
}

pub fn response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 fallback for an ApiVersions request above our maximum version.
pub fn unsupported_version(correlation_id: i32) -> Outcome {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    super::respond(correlation_id, ApiKey::ApiVersions, 0, &body)
}
