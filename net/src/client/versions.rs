//! Version negotiation: which API versions this client speaks and which it picked for a broker.
//!
//! The client's ranges are deliberately capped below `kafka-protocol`'s maxima where newer
//! versions change the request shape (Produce v13 and Fetch v13+ address topics by id only),
//! so that callers can always name topics.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;

/// An inclusive range of versions of one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: i16,
    pub max: i16,
}

/// The APIs this client can send, with the versions it can encode and decode.
pub const CLIENT_API_RANGES: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, VersionRange { min: 3, max: 12 }),
    (ApiKey::Fetch, VersionRange { min: 4, max: 12 }),
    (ApiKey::ListOffsets, VersionRange { min: 1, max: 9 }),
    (ApiKey::Metadata, VersionRange { min: 1, max: 12 }),
    (ApiKey::ApiVersions, VersionRange { min: 0, max: 3 }),
    (ApiKey::CreateTopics, VersionRange { min: 2, max: 7 }),
    (ApiKey::DeleteTopics, VersionRange { min: 1, max: 6 }),
    (ApiKey::InitProducerId, VersionRange { min: 0, max: 4 }),
    (ApiKey::DescribeConfigs, VersionRange { min: 1, max: 4 }),
    (
        ApiKey::IncrementalAlterConfigs,
        VersionRange { min: 0, max: 1 },
    ),
    (ApiKey::FindCoordinator, VersionRange { min: 0, max: 6 }),
    (ApiKey::JoinGroup, VersionRange { min: 1, max: 9 }),
    (ApiKey::SyncGroup, VersionRange { min: 0, max: 5 }),
    (ApiKey::Heartbeat, VersionRange { min: 0, max: 4 }),
    (ApiKey::LeaveGroup, VersionRange { min: 0, max: 5 }),
    (ApiKey::OffsetCommit, VersionRange { min: 2, max: 8 }),
    (ApiKey::OffsetFetch, VersionRange { min: 1, max: 7 }),
    (ApiKey::ListGroups, VersionRange { min: 0, max: 5 }),
    (ApiKey::DescribeGroups, VersionRange { min: 0, max: 6 }),
    (ApiKey::DeleteGroups, VersionRange { min: 0, max: 2 }),
];

/// The range this client supports for `key`, if it supports the API at all.
pub fn client_range(key: ApiKey) -> Option<VersionRange> {
    CLIENT_API_RANGES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, range)| *range)
}

/// What the broker advertised and, per API, the version this client will use with it.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionTable {
    /// The broker's advertised ranges, as `(api_key, min, max)`, in the broker's order.
    pub broker: Vec<(i16, VersionRange)>,
    chosen: Vec<(ApiKey, i16)>,
}

impl ApiVersionTable {
    /// Intersects the broker's advertised ranges with the client's and picks the highest
    /// version both sides speak for each API.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let broker: Vec<(i16, VersionRange)> = response
            .api_keys
            .iter()
            .map(|v| {
                (
                    v.api_key,
                    VersionRange {
                        min: v.min_version,
                        max: v.max_version,
                    },
                )
            })
            .collect();
        let chosen = CLIENT_API_RANGES
            .iter()
            .filter_map(|(key, ours)| {
                let theirs = broker.iter().find(|(k, _)| *k == *key as i16)?.1;
                let version = ours.max.min(theirs.max);
                (version >= ours.min && version >= theirs.min).then_some((*key, version))
            })
            .collect();
        Self { broker, chosen }
    }

    /// The version to use for `key`, or `None` when the two sides share no version.
    pub fn version(&self, key: ApiKey) -> Option<i16> {
        self.chosen.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn advertised(ranges: &[(i16, i16, i16)]) -> ApiVersionsResponse {
        let mut response = ApiVersionsResponse::default();
        response.api_keys = ranges
            .iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect();
        response
    }

    #[test]
    fn picks_highest_common_version_and_drops_disjoint_apis() {
        // Proves negotiation takes min(client max, broker max) and refuses APIs whose ranges
        // do not overlap (an old broker's Produce v0-v2 only).
        let table = ApiVersionsResponse::default();
        assert_eq!(
            ApiVersionTable::from_response(&table).version(ApiKey::Produce),
            None
        );
        let table = ApiVersionTable::from_response(&advertised(&[
            (ApiKey::Produce as i16, 0, 2),
            (ApiKey::Fetch as i16, 0, 17),
            (ApiKey::Metadata as i16, 0, 9),
        ]));
        assert_eq!(table.version(ApiKey::Produce), None);
        assert_eq!(table.version(ApiKey::Fetch), Some(12));
        assert_eq!(table.version(ApiKey::Metadata), Some(9));
        assert_eq!(table.version(ApiKey::ListOffsets), None);
        assert_eq!(table.broker.len(), 3);
    }
}
