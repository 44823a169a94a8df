//! `decode_request`: from one frame to a `Request` holding the header and
//! `kafka-protocol`'s request struct for the body.
//!
//! The api key, version and correlation id sit at fixed offsets, so they are
//! read first: an unknown key or unsupported version is reported with the
//! correlation id the server needs to answer. Then the header (v1, or v2 with
//! tagged fields) and the body are read with the bounded decoders of
//! `schema.rs`. Like Kafka, bytes after the last field of the body are
//! ignored (logged at debug with their count): the newest librdkafka sends
//! some. A field cut short is still malformed.

use bytes::Bytes;
use kafka_protocol::messages::{self as msg, ApiKey, RequestHeader};

use crate::reader::{ReadError, Reader};
use crate::wire::{Cx, Wire};

/// One decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub body: RequestBody,
}

/// Why a frame is not a request we can serve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// An api key Kafka does not define, or one Sluice does not decode.
    /// Kafka closes the connection.
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// A known api key at a version outside `decodable_versions`. The server
    /// answers with UNSUPPORTED_VERSION (35); for ApiVersions that is a v0
    /// body listing the supported ranges.
    #[error("{api_key:?} v{api_version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
    },
    /// The header or body does not parse. The server closes the connection.
    /// `correlation_id` is known when the frame held at least 8 bytes.
    #[error(
        "malformed request (api key {api_key:?}, v{api_version:?}, correlation id {correlation_id:?}): {source}"
    )]
    Malformed {
        correlation_id: Option<i32>,
        api_key: Option<i16>,
        api_version: Option<i16>,
        #[source]
        source: ReadError,
    },
}

macro_rules! requests {
    ($( $variant:ident($ty:ident) $lo:literal ..= $hi:literal, )*) => {
        /// The body of a request, one variant per API Sluice decodes.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestBody {
            $( $variant(msg::$ty), )*
        }

        /// The versions this crate can decode, per api key; the server
        /// intersects this with what it implements before advertising.
        pub fn decodable_versions(api_key: ApiKey) -> Option<(i16, i16)> {
            match api_key {
                $( ApiKey::$variant => Some(($lo, $hi)), )*
                _ => None,
            }
        }

        impl RequestBody {
            /// Encodes the body with `kafka-protocol` (for forwarding a request,
            /// and for tests that check decoding against encoding).
            pub fn encode(&self, buf: &mut bytes::BytesMut, api_version: i16) -> Result<(), crate::response::EncodeError> {
                use kafka_protocol::protocol::Encodable;
                let result = match self {
                    $( RequestBody::$variant(body) => body.encode(buf, api_version), )*
                };
                result.map_err(|e| crate::response::EncodeError::Body {
                    api_key: self.api_key(),
                    api_version,
                    reason: e.to_string(),
                })
            }

            /// The api key of this body.
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $( RequestBody::$variant(_) => ApiKey::$variant, )*
                }
            }
        }

        /// Every api key this crate decodes, in api key order.
        pub const DECODABLE_API_KEYS: &[ApiKey] = &[$( ApiKey::$variant, )*];

        fn decode_body(api_key: ApiKey, r: &mut Reader, cx: Cx) -> Result<RequestBody, ReadError> {
            match api_key {
                $( ApiKey::$variant => msg::$ty::read(r, cx).map(RequestBody::$variant), )*
                // `decode_request` checked `decodable_versions`, generated from this same list.
                other => unreachable!("{other:?} is not decodable"),
            }
        }

        /// A request body of `api_key` with random field values for `version`, drawn from
        /// `seed` (the same seed gives the same body), that kafka-protocol can encode;
        /// `None` for an api key this crate does not decode or a version it cannot draw.
        #[cfg(any(test, feature = "testing"))]
        pub fn random_request_body(api_key: ApiKey, version: i16, seed: u64) -> Option<RequestBody> {
            match api_key {
                $( ApiKey::$variant => crate::random::encodable::<msg::$ty>(api_key, version, seed).map(RequestBody::$variant), )*
                _ => None,
            }
        }

        #[cfg(test)]
        pub(crate) fn check_round_trip(api_key: ApiKey, version: i16, seed: u64) -> Result<(), String> {
            match api_key {
                $( ApiKey::$variant => crate::request::tests::round_trip::<msg::$ty>(api_key, version, seed, |b| match b {
                    RequestBody::$variant(x) => Some(x),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }), )*
                _ => Err(format!("{api_key:?} is not decodable")),
            }
        }
    };
}

// Versions: the maxima `kafka-protocol` 0.18 can encode; the minima are Kafka
// 3.9's for the APIs whose removed versions `response::legacy_versions` can
// answer (KIP-896), and kafka-protocol's for the rest. Produce v0-v2 carry
// message sets of the old formats, which the server converts.
requests! {
    Produce(ProduceRequest) 0..=13,
    Fetch(FetchRequest) 0..=18,
    ListOffsets(ListOffsetsRequest) 0..=10,
    Metadata(MetadataRequest) 0..=13,
    OffsetCommit(OffsetCommitRequest) 0..=9,
    OffsetFetch(OffsetFetchRequest) 0..=9,
    FindCoordinator(FindCoordinatorRequest) 0..=6,
    JoinGroup(JoinGroupRequest) 0..=9,
    Heartbeat(HeartbeatRequest) 0..=4,
    LeaveGroup(LeaveGroupRequest) 0..=5,
    SyncGroup(SyncGroupRequest) 0..=5,
    DescribeGroups(DescribeGroupsRequest) 0..=6,
    ListGroups(ListGroupsRequest) 0..=5,
    SaslHandshake(SaslHandshakeRequest) 0..=1,
    ApiVersions(ApiVersionsRequest) 0..=4,
    CreateTopics(CreateTopicsRequest) 0..=7,
    DeleteTopics(DeleteTopicsRequest) 0..=6,
    DeleteRecords(DeleteRecordsRequest) 0..=2,
    InitProducerId(InitProducerIdRequest) 0..=5,
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest) 0..=4,
    AddPartitionsToTxn(AddPartitionsToTxnRequest) 0..=5,
    AddOffsetsToTxn(AddOffsetsToTxnRequest) 0..=4,
    EndTxn(EndTxnRequest) 0..=5,
    TxnOffsetCommit(TxnOffsetCommitRequest) 0..=5,
    DescribeConfigs(DescribeConfigsRequest) 0..=4,
    CreatePartitions(CreatePartitionsRequest) 0..=3,
    DeleteGroups(DeleteGroupsRequest) 0..=2,
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest) 0..=1,
    OffsetDelete(OffsetDeleteRequest) 0..=0,
    SaslAuthenticate(SaslAuthenticateRequest) 0..=2,
    DescribeCluster(DescribeClusterRequest) 0..=2,
    DescribeAcls(DescribeAclsRequest) 1..=3,
    CreateAcls(CreateAclsRequest) 1..=3,
    DeleteAcls(DeleteAclsRequest) 1..=3,
    AlterConfigs(AlterConfigsRequest) 0..=2,
    DescribeLogDirs(DescribeLogDirsRequest) 1..=4,
    ElectLeaders(ElectLeadersRequest) 0..=2,
    WriteTxnMarkers(WriteTxnMarkersRequest) 1..=1,
    DescribeClientQuotas(DescribeClientQuotasRequest) 0..=1,
    AlterClientQuotas(AlterClientQuotasRequest) 0..=1,
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest) 0..=0,
    AlterUserScramCredentials(AlterUserScramCredentialsRequest) 0..=0,
    DescribeProducers(DescribeProducersRequest) 0..=0,
    DescribeTransactions(DescribeTransactionsRequest) 0..=0,
    ListTransactions(ListTransactionsRequest) 0..=2,
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest) 0..=1,
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest) 0..=1,
    DescribeTopicPartitions(DescribeTopicPartitionsRequest) 0..=0,
}

/// Decodes one frame (as returned by `split_frame`, without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let mut r = Reader::new(frame);
    let malformed_early = |source| DecodeError::Malformed {
        correlation_id: None,
        api_key: None,
        api_version: None,
        source,
    };
    let raw_api_key = r.i16().map_err(malformed_early)?;
    let api_version = r.i16().map_err(malformed_early)?;
    let correlation_id = r.i32().map_err(|source| DecodeError::Malformed {
        correlation_id: None,
        api_key: Some(raw_api_key),
        api_version: Some(api_version),
        source,
    })?;
    let unknown = DecodeError::UnknownApiKey {
        api_key: raw_api_key,
        correlation_id,
    };
    let api_key = ApiKey::try_from(raw_api_key).map_err(|_| unknown.clone())?;
    let (version_min, version_max) = decodable_versions(api_key).ok_or(unknown)?;
    if !(version_min..=version_max).contains(&api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |source| DecodeError::Malformed {
        correlation_id: Some(correlation_id),
        api_key: Some(raw_api_key),
        api_version: Some(api_version),
        source,
    };
    let header_version = api_key.request_header_version(api_version);
    let mut header = RequestHeader::default()
        .with_request_api_key(raw_api_key)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id);
    header.client_id = None;
    if header_version >= 1 {
        // The client id stays a non-compact nullable string even in header v2.
        header.client_id = r.nullable_string(false).map_err(malformed)?;
    }
    if header_version >= 2 {
        r.tagged_fields(&mut header.unknown_tagged_fields, |_, _| Ok(false))
            .map_err(malformed)?;
    }
    let cx = Cx {
        version: api_version,
        flex: header_version >= 2,
    };
    let body = decode_body(api_key, &mut r, cx).map_err(malformed)?;
    if r.remaining() > 0 {
        tracing::debug!(
            api_key = raw_api_key,
            api_version,
            correlation_id,
            ignored_bytes = r.remaining(),
            "bytes after the end of the request body ignored"
        );
    }
    Ok(Request {
        header,
        api_key,
        api_version,
        body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::random::{Gen, Rng};
    use bytes::BytesMut;
    use kafka_protocol::protocol::{
        Decodable, Encodable, Message, encode_request_header_into_buffer,
    };

    /// Encodes a header and body with `kafka-protocol` into one frame (no size prefix).
    pub(crate) fn encode_frame<T: Encodable>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &T,
    ) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some("sluice-test".into()));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    /// Generates a random body for `version`, encodes it with `kafka-protocol`,
    /// and checks that our decoder returns the same struct as the input and as
    /// `kafka-protocol`'s own decoder, that re-encoding ours gives the same
    /// bytes, that every strict prefix of the frame is rejected, and that bytes
    /// appended after the body are ignored.
    pub(crate) fn round_trip<T>(
        api_key: ApiKey,
        version: i16,
        seed: u64,
        unwrap: fn(RequestBody) -> Option<T>,
    ) -> Result<(), String>
    where
        T: Gen + Encodable + Decodable + Message + PartialEq + std::fmt::Debug,
    {
        let mut g = Rng::new(seed);
        let flex = api_key.request_header_version(version) >= 2;
        // kafka-protocol refuses to encode null in a version where the field is not
        // nullable; draw again in that case.
        let mut attempt = 0;
        let (input, body_bytes) = loop {
            let input = T::generate(&mut g, Cx { version, flex });
            let mut buf = BytesMut::new();
            if input.encode(&mut buf, version).is_ok() {
                break (input, buf.freeze());
            }
            attempt += 1;
            if attempt == 200 {
                return Err(format!(
                    "{api_key:?} v{version}: no encodable value in 200 draws (seed {seed})"
                ));
            }
        };
        let frame = encode_frame(api_key, version, seed as i32, &input);
        let decoded = decode_request(frame.clone())
            .map_err(|e| format!("{api_key:?} v{version} seed {seed}: {e}"))?;
        if decoded.header.correlation_id != seed as i32
            || decoded.api_version != version
            || decoded.api_key != api_key
        {
            return Err(format!(
                "{api_key:?} v{version}: header mismatch {:?}",
                decoded.header
            ));
        }
        let ours = unwrap(decoded.body).ok_or("wrong body variant")?;
        let theirs = T::decode(&mut body_bytes.clone(), version).map_err(|e| e.to_string())?;
        if ours != input || ours != theirs {
            return Err(format!(
                "{api_key:?} v{version} seed {seed}:\n input {input:?}\n ours  {ours:?}\n theirs {theirs:?}"
            ));
        }
        let mut again = BytesMut::new();
        ours.encode(&mut again, version)
            .map_err(|e| e.to_string())?;
        if again.freeze() != body_bytes {
            return Err(format!(
                "{api_key:?} v{version} seed {seed}: re-encoding differs"
            ));
        }
        for len in 0..frame.len() {
            if decode_request(frame.slice(..len)).is_ok() {
                return Err(format!(
                    "{api_key:?} v{version} seed {seed}: prefix of {len} bytes decoded"
                ));
            }
        }
        // Bytes after the body are ignored, as Kafka does.
        let mut longer = BytesMut::from(&frame[..]);
        longer.extend_from_slice(&[0xa5, 0x00, 0xff][..1 + (seed % 3) as usize]);
        let longer = decode_request(longer.freeze())
            .map_err(|e| format!("{api_key:?} v{version} seed {seed}, trailing bytes: {e}"))?;
        if unwrap(longer.body).as_ref() != Some(&input) {
            return Err(format!(
                "{api_key:?} v{version} seed {seed}: trailing bytes changed the body"
            ));
        }
        Ok(())
    }

    #[test]
    fn decodable_versions_lie_within_kafka_protocol_ranges() {
        // Proves we never claim a version kafka-protocol's structs cannot represent, nor one
        // below its range that response.rs cannot rewrite a response to.
        for &key in DECODABLE_API_KEYS {
            let (lo, hi) = decodable_versions(key).unwrap();
            let valid = key.valid_versions();
            assert!(lo <= hi, "{key:?}");
            assert!(hi <= valid.max, "{key:?} {lo}..{hi} vs {valid}");
            match crate::response::legacy_versions(key) {
                Some(legacy) => {
                    assert_eq!(legacy.encoded_at, valid.min, "{key:?}");
                    assert_eq!(legacy.min, lo, "{key:?}");
                }
                None => assert!(valid.min <= lo, "{key:?} {lo}..{hi} vs {valid}"),
            }
        }
    }
}
