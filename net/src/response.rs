//! Response encoding: size prefix, response header (v0, or v1 with tagged
//! fields for flexible versions; ApiVersions always v0) and the body encoded
//! by `kafka-protocol`.
//!
//! Versions Kafka 4.0 removed (KIP-896) but 3.9 still served, which
//! `kafka-protocol` cannot encode, are encoded at the oldest version it can
//! (`LegacyVersions::encoded_at`) and rewritten to the old layout in one place,
//! `downgrade`: the old layouts are the newer ones without a field or two.
//!
//! `encode_response` returns one contiguous frame. `encode_response_vectored`
//! returns the frame as chunks for a vectored write, in which large `Bytes`
//! fields the caller names (Fetch records read from the log) are the caller's
//! own `Bytes`, not copies.

use std::collections::HashMap;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::reader::{ReadError, Reader};

/// Why a response could not be encoded. The request should fail on the
/// server side; the connection itself is still in sync.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{api_key:?} v{api_version} response could not be encoded: {reason}")]
    Body {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
    #[error("{api_key:?} v{api_version} response of {size} bytes exceeds the maximum frame size")]
    TooLarge {
        api_key: ApiKey,
        api_version: i16,
        size: usize,
    },
    #[error("{api_key:?} v{api_version} response encoded to {written} bytes, expected {expected}")]
    SizeMismatch {
        api_key: ApiKey,
        api_version: i16,
        expected: usize,
        written: usize,
    },
}

/// Versions of an API that Kafka 3.9 served and 4.0 removed, for the APIs
/// Sluice still serves them for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyVersions {
    /// The oldest version served.
    pub min: i16,
    /// The oldest version `kafka-protocol` encodes; the versions below are
    /// encoded at this one and rewritten by `downgrade`.
    pub encoded_at: i16,
}

/// The removed versions Sluice serves for `api_key`, if any.
pub fn legacy_versions(api_key: ApiKey) -> Option<LegacyVersions> {
    let (min, encoded_at) = match api_key {
        ApiKey::Produce => (0, 3),
        ApiKey::Fetch => (0, 4),
        ApiKey::ListOffsets => (0, 1),
        ApiKey::OffsetCommit => (0, 2),
        ApiKey::OffsetFetch => (0, 1),
        ApiKey::CreateTopics => (0, 2),
        ApiKey::DeleteTopics => (0, 1),
        ApiKey::OffsetForLeaderEpoch => (0, 2),
        ApiKey::DescribeConfigs => (0, 1),
        _ => return None,
    };
    Some(LegacyVersions { min, encoded_at })
}

/// The body of a response: encoded by `kafka-protocol`, or for a removed
/// version encoded at `encoded_at` and rewritten to the old layout.
fn encode_body<R: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    body: &R,
) -> Result<Option<Bytes>, EncodeError> {
    let Some(legacy) = legacy_versions(api_key).filter(|l| api_version < l.encoded_at) else {
        return Ok(None);
    };
    let body_err = |reason: String| EncodeError::Body {
        api_key,
        api_version,
        reason,
    };
    if api_version < legacy.min {
        return Err(body_err("version not supported".into()));
    }
    let mut newer = BytesMut::new();
    body.encode(&mut newer, legacy.encoded_at)
        .map_err(|e| body_err(e.to_string()))?;
    match downgrade(api_key, api_version, newer.freeze()) {
        Ok(Some(body)) => Ok(Some(body)),
        Ok(None) => Err(body_err(format!(
            "no rewrite from v{} to v{api_version}",
            legacy.encoded_at
        ))),
        Err(e) => Err(body_err(format!(
            "rewriting v{} to v{api_version}: {e}",
            legacy.encoded_at
        ))),
    }
}

/// Rewrites a non-flexible response body encoded at `legacy_versions(api_key)`'s
/// `encoded_at` to the layout of the older `api_version` (Kafka 3.9's schemas);
/// `None` for a version this does not know.
fn downgrade(api_key: ApiKey, api_version: i16, newer: Bytes) -> Result<Option<Bytes>, ReadError> {
    let mut w = Rewrite {
        r: Reader::new(newer.clone()),
        out: BytesMut::with_capacity(newer.len()),
    };
    match (api_key, api_version) {
        // v0 and v1 are v2's layout; v1 differs only in its request.
        (ApiKey::OffsetCommit, 0 | 1) | (ApiKey::OffsetFetch, 0) => return Ok(Some(newer)),
        // v1 added throttle_time_ms in front.
        (ApiKey::DeleteTopics, 0) => w.skip(4)?,
        // v2 added throttle_time_ms in front.
        (ApiKey::CreateTopics, 1) | (ApiKey::OffsetForLeaderEpoch, 1) => w.skip(4)?,
        (ApiKey::CreateTopics, 0) => w.create_topics_v0()?,
        // v2 is v3's layout (v3 changed only the request).
        (ApiKey::Produce, 2) => return Ok(Some(newer)),
        (ApiKey::Produce, 0 | 1) => w.produce_v0_v1(api_version)?,
        (ApiKey::Fetch, 0..=3) => w.fetch_v0_v3(api_version)?,
        (ApiKey::OffsetForLeaderEpoch, 0) => w.offset_for_leader_epoch_v0()?,
        (ApiKey::ListOffsets, 0) => w.list_offsets_v0()?,
        (ApiKey::DescribeConfigs, 0) => w.describe_configs_v0()?,
        _ => return Ok(None),
    }
    w.out.extend_from_slice(w.r.rest());
    Ok(Some(w.out.freeze()))
}

/// DescribeConfigs' config_source of a value nobody set (DEFAULT_CONFIG), which is
/// what v0's is_default says.
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// A cursor over an encoded body and the rewritten body, for `downgrade`.
struct Rewrite {
    r: Reader,
    out: BytesMut,
}

impl Rewrite {
    fn copy(&mut self, len: usize) -> Result<(), ReadError> {
        let b = self.r.bytes(len)?;
        self.out.extend_from_slice(&b);
        Ok(())
    }
    fn skip(&mut self, len: usize) -> Result<(), ReadError> {
        self.r.bytes(len).map(drop)
    }
    /// An array count (null counts as empty), not copied.
    fn count(&mut self) -> Result<usize, ReadError> {
        Ok(self.r.array_len(false, 1)?.unwrap_or(0))
    }
    /// An array count, copied as it was.
    fn copy_count(&mut self) -> Result<usize, ReadError> {
        let raw = self.r.rest().slice(..4.min(self.r.remaining()));
        let count = self.count()?;
        self.out.extend_from_slice(&raw);
        Ok(count)
    }
    /// A nullable STRING (i16 length).
    fn copy_string(&mut self) -> Result<(), ReadError> {
        let len = self.r.i16()?;
        self.out.put_i16(len);
        if len > 0 {
            self.copy(len as usize)?;
        }
        Ok(())
    }
    fn skip_string(&mut self) -> Result<(), ReadError> {
        let len = self.r.i16()?;
        if len > 0 {
            self.skip(len as usize)?;
        }
        Ok(())
    }

    // The layouts `downgrade` rewrites, each from the version `legacy_versions` encodes at
    // down to the one named; what follows the rewritten part is copied as it is.

    /// v1 added each topic's error_message.
    fn create_topics_v0(&mut self) -> Result<(), ReadError> {
        self.skip(4)?;
        for _ in 0..self.copy_count()? {
            self.copy_string()?; // name
            self.copy(2)?; // error_code
            self.skip_string()?; // error_message
        }
        Ok(())
    }

    /// v2 added each partition's log_append_time_ms, v1 throttle_time_ms at the end.
    fn produce_v0_v1(&mut self, api_version: i16) -> Result<(), ReadError> {
        for _ in 0..self.copy_count()? {
            self.copy_string()?; // name
            for _ in 0..self.copy_count()? {
                self.copy(4 + 2 + 8)?; // index, error_code, base_offset
                self.skip(8)?; // log_append_time_ms
            }
        }
        if api_version == 0 {
            self.skip(4)?; // throttle_time_ms
        }
        Ok(())
    }

    /// v4 added each partition's last_stable_offset and aborted_transactions, v1
    /// throttle_time_ms. The records are copied as they are: the caller converts them
    /// to the message format of the version (v0-1: magic 0, v2-3: magic 1).
    fn fetch_v0_v3(&mut self, api_version: i16) -> Result<(), ReadError> {
        if api_version == 0 {
            self.skip(4)?;
        } else {
            self.copy(4)?;
        }
        for _ in 0..self.copy_count()? {
            self.copy_string()?; // topic
            for _ in 0..self.copy_count()? {
                self.copy(4 + 2 + 8)?; // partition_index, error_code, high_watermark
                self.skip(8)?; // last_stable_offset
                for _ in 0..self.count()? {
                    self.skip(8 + 8)?; // aborted: producer_id, first_offset
                }
                let len = self.r.i32()?;
                self.out.put_i32(len);
                if len > 0 {
                    self.copy(len as usize)?; // records
                }
            }
        }
        Ok(())
    }

    /// v1 added each partition's leader_epoch.
    fn offset_for_leader_epoch_v0(&mut self) -> Result<(), ReadError> {
        self.skip(4)?;
        for _ in 0..self.copy_count()? {
            self.copy_string()?; // topic
            for _ in 0..self.copy_count()? {
                self.copy(2 + 4)?; // error_code, partition
                self.skip(4)?; // leader_epoch
                self.copy(8)?; // end_offset
            }
        }
        Ok(())
    }

    /// v1 replaced the list of offsets (old_style_offsets) by one timestamp and offset.
    fn list_offsets_v0(&mut self) -> Result<(), ReadError> {
        for _ in 0..self.copy_count()? {
            self.copy_string()?; // name
            for _ in 0..self.copy_count()? {
                self.copy(4)?; // partition_index
                let error_code = self.r.i16()?;
                self.out.put_i16(error_code);
                let _timestamp = self.r.i64()?;
                let offset = self.r.i64()?;
                if error_code == 0 && offset >= 0 {
                    self.out.put_i32(1);
                    self.out.put_i64(offset);
                } else {
                    self.out.put_i32(0);
                }
            }
        }
        Ok(())
    }

    /// v1 replaced is_default by config_source (same width) and added synonyms.
    fn describe_configs_v0(&mut self) -> Result<(), ReadError> {
        self.copy(4)?; // throttle_time_ms
        for _ in 0..self.copy_count()? {
            self.copy(2)?; // error_code
            self.copy_string()?; // error_message
            self.copy(1)?; // resource_type
            self.copy_string()?; // resource_name
            for _ in 0..self.copy_count()? {
                self.copy_string()?; // name
                self.copy_string()?; // value
                self.copy(1)?; // read_only
                let is_default = self.r.i8()? == CONFIG_SOURCE_DEFAULT;
                self.out.put_u8(u8::from(is_default));
                self.copy(1)?; // is_sensitive
                for _ in 0..self.count()? {
                    self.skip_string()?; // name
                    self.skip_string()?; // value
                    self.skip(1)?; // source
                }
            }
        }
        Ok(())
    }
}

/// Encodes one complete response frame, size prefix included.
pub fn encode_response<R: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let body_err = |reason: String| EncodeError::Body {
        api_key,
        api_version,
        reason,
    };
    let legacy_body = encode_body(api_key, api_version, body)?;
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| body_err(e.to_string()))?;
    let body_size = match &legacy_body {
        Some(b) => b.len(),
        None => body
            .compute_size(api_version)
            .map_err(|e| body_err(e.to_string()))?,
    };
    let size = header_size + body_size;
    let Ok(size_prefix) = i32::try_from(size) else {
        return Err(EncodeError::TooLarge {
            api_key,
            api_version,
            size,
        });
    };
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size_prefix);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| body_err(e.to_string()))?;
    match legacy_body {
        Some(b) => buf.extend_from_slice(&b),
        None => body
            .encode(&mut buf, api_version)
            .map_err(|e| body_err(e.to_string()))?,
    }
    if buf.len() != 4 + size {
        return Err(EncodeError::SizeMismatch {
            api_key,
            api_version,
            expected: 4 + size,
            written: buf.len() - 4,
        });
    }
    Ok(buf.freeze())
}

/// Fields shorter than this are copied even when shared: an extra iovec
/// costs more than copying a few hundred bytes.
pub const SHARED_BYTES_MIN: usize = 1024;

/// Encodes one response frame, size prefix included, as chunks whose
/// concatenation equals `encode_response`'s frame. Every `Bytes` field of
/// `body` that is one of `shared` (same memory, e.g. a clone of it) and at
/// least `SHARED_BYTES_MIN` long becomes its own chunk without being copied.
pub fn encode_response_vectored<R: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &R,
    shared: &[Bytes],
) -> Result<Vec<Bytes>, EncodeError> {
    if legacy_versions(api_key).is_some_and(|l| api_version < l.encoded_at) {
        return encode_response(correlation_id, api_key, api_version, body).map(|f| vec![f]);
    }
    let body_err = |reason: String| EncodeError::Body {
        api_key,
        api_version,
        reason,
    };
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| body_err(e.to_string()))?;
    let body_size = body
        .compute_size(api_version)
        .map_err(|e| body_err(e.to_string()))?;
    let size = header_size + body_size;
    let Ok(size_prefix) = i32::try_from(size) else {
        return Err(EncodeError::TooLarge {
            api_key,
            api_version,
            size,
        });
    };
    let shared_len: usize = shared
        .iter()
        .filter(|b| b.len() >= SHARED_BYTES_MIN)
        .map(Bytes::len)
        .sum();
    let mut out = Gather::new(shared, (4 + size).saturating_sub(shared_len));
    out.put_i32(size_prefix);
    header
        .encode(&mut out, header_version)
        .map_err(|e| body_err(e.to_string()))?;
    body.encode(&mut out, api_version)
        .map_err(|e| body_err(e.to_string()))?;
    let chunks = out.finish();
    let written: usize = chunks.iter().map(Bytes::len).sum();
    if written != 4 + size {
        return Err(EncodeError::SizeMismatch {
            api_key,
            api_version,
            expected: 4 + size,
            written: written - 4,
        });
    }
    Ok(chunks)
}

/// A `BufMut` that copies writes into a tail buffer, except writes of a whole
/// shared `Bytes`, which are recognised by address and length and kept as a
/// reference-counted chunk.
struct Gather {
    shared: HashMap<(usize, usize), Bytes>,
    chunks: Vec<Bytes>,
    tail: BytesMut,
}

impl Gather {
    fn new(shared: &[Bytes], copied_bytes: usize) -> Self {
        let shared = shared
            .iter()
            .filter(|b| b.len() >= SHARED_BYTES_MIN)
            .map(|b| ((b.as_ptr() as usize, b.len()), b.clone()))
            .collect();
        Gather {
            shared,
            chunks: Vec::new(),
            tail: BytesMut::with_capacity(copied_bytes),
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.tail.is_empty() {
            self.chunks.push(self.tail.freeze());
        }
        self.chunks
    }
}

// SAFETY: every method forwards to the `BytesMut` tail, which upholds the
// `BufMut` contract; `put_slice` only adds whole chunks in front of it.
unsafe impl BufMut for Gather {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee for `cnt` is about the tail's `chunk_mut`.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared.get(&(src.as_ptr() as usize, src.len())) {
            Some(bytes) => {
                if !self.tail.is_empty() {
                    self.chunks.push(self.tail.split().freeze());
                }
                self.chunks.push(bytes.clone());
            }
            None => self.tail.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for Gather {
    fn offset(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    fn seek(&mut self, offset: usize) {
        let base = self.offset() - self.tail.len();
        assert!(offset >= base, "seek before a shared chunk");
        self.tail.resize(offset - base, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let base = self.offset() - self.tail.len();
        assert!(r.start >= base, "back-patch across a shared chunk");
        &mut self.tail[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse};
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn api_versions_uses_header_v0_even_when_flexible() {
        // Proves the ApiVersions response header is v0 (no tagged fields) at v3, as clients require.
        let body = ApiVersionsResponse::default().with_error_code(35);
        let frame = encode_response(7, ApiKey::ApiVersions, 3, &body).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
        let mut rest = frame.slice(8..);
        let decoded = ApiVersionsResponse::decode(&mut rest, 3).unwrap();
        assert_eq!(decoded, body);
    }

    #[test]
    fn flexible_responses_get_header_v1() {
        // Proves flexible responses carry the header's empty tagged-field section after the correlation id.
        let body = MetadataResponse::default();
        let frame = encode_response(-5, ApiKey::Metadata, 12, &body).unwrap();
        assert_eq!(&frame[4..8], &(-5i32).to_be_bytes());
        assert_eq!(frame[8], 0);
        let mut rest = frame.slice(9..);
        assert_eq!(MetadataResponse::decode(&mut rest, 12).unwrap(), body);
        let frame = encode_response(1, ApiKey::Metadata, 8, &body).unwrap();
        let mut rest = frame.slice(8..);
        assert_eq!(MetadataResponse::decode(&mut rest, 8).unwrap(), body);
    }

    /// A frame with header v0 holding `body`, as Kafka 3.9 writes it.
    fn v0_frame(correlation_id: i32, body: &[u8]) -> Bytes {
        let mut f = BytesMut::new();
        f.put_i32(4 + body.len() as i32);
        f.put_i32(correlation_id);
        f.put_slice(body);
        f.freeze()
    }

    /// A STRING: i16 length, then the bytes.
    fn put_string(b: &mut BytesMut, s: &str) {
        b.put_i16(s.len() as i16);
        b.put_slice(s.as_bytes());
    }

    fn topic(name: &str) -> kafka_protocol::messages::TopicName {
        kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
            name.to_string(),
        ))
    }

    #[test]
    fn legacy_offset_commit_and_offset_fetch_match_kafka_3_9_bytes() {
        // Proves OffsetCommit v0/v1 and OffsetFetch v0 responses are the bytes of Kafka 3.9's
        // schemas (which equal the next version's layout), header v0 included.
        use kafka_protocol::messages::offset_commit_response::*;
        use kafka_protocol::messages::offset_fetch_response::*;
        use kafka_protocol::messages::{OffsetCommitResponse, OffsetFetchResponse};
        let commit = OffsetCommitResponse::default().with_topics(vec![
            OffsetCommitResponseTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(3)
                        .with_error_code(25),
                ]),
        ]);
        // topics: [name, partitions: [partition_index, error_code]]
        let mut want = BytesMut::new();
        want.put_i32(1);
        put_string(&mut want, "t");
        want.put_i32(1);
        want.put_i32(3);
        want.put_i16(25);
        for v in [0, 1] {
            let frame = encode_response(9, ApiKey::OffsetCommit, v, &commit).unwrap();
            assert_eq!(frame, v0_frame(9, &want), "v{v}");
        }
        let fetch = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_metadata(Some("m".into()))
                        .with_error_code(0),
                ]),
        ]);
        // topics: [name, partitions: [partition_index, committed_offset, metadata, error_code]]
        let mut want = BytesMut::new();
        want.put_i32(1);
        put_string(&mut want, "t");
        want.put_i32(1);
        want.put_i32(0);
        want.put_i64(42);
        put_string(&mut want, "m");
        want.put_i16(0);
        let frame = encode_response(10, ApiKey::OffsetFetch, 0, &fetch).unwrap();
        assert_eq!(frame, v0_frame(10, &want));
    }

    #[test]
    fn legacy_describe_configs_v0_has_is_default_and_no_synonyms() {
        // Proves DescribeConfigs v0 is Kafka 3.9's layout: is_default (true exactly for
        // DEFAULT_CONFIG) where v1 has config_source, and no synonyms array.
        use kafka_protocol::messages::DescribeConfigsResponse;
        use kafka_protocol::messages::describe_configs_response::*;
        let body = DescribeConfigsResponse::default()
            .with_throttle_time_ms(7)
            .with_results(vec![
                DescribeConfigsResult::default()
                    .with_error_code(0)
                    .with_error_message(None)
                    .with_resource_type(2)
                    .with_resource_name("t".into())
                    .with_configs(vec![
                        DescribeConfigsResourceResult::default()
                            .with_name("a".into())
                            .with_value(Some("1".into()))
                            .with_read_only(false)
                            .with_config_source(5)
                            .with_is_sensitive(false),
                        DescribeConfigsResourceResult::default()
                            .with_name("b".into())
                            .with_value(None)
                            .with_read_only(true)
                            .with_config_source(1)
                            .with_is_sensitive(true)
                            .with_synonyms(vec![
                                DescribeConfigsSynonym::default()
                                    .with_name("b".into())
                                    .with_value(Some("x".into()))
                                    .with_source(1),
                            ]),
                    ]),
            ]);
        // throttle_time_ms, results: [error_code, error_message, resource_type, resource_name,
        // configs: [name, value, read_only, is_default, is_sensitive]]
        let mut want = BytesMut::new();
        want.put_i32(7);
        want.put_i32(1);
        want.put_i16(0);
        want.put_i16(-1);
        want.put_i8(2);
        put_string(&mut want, "t");
        want.put_i32(2);
        put_string(&mut want, "a");
        put_string(&mut want, "1");
        want.put_u8(0);
        want.put_u8(1);
        want.put_u8(0);
        put_string(&mut want, "b");
        want.put_i16(-1);
        want.put_u8(1);
        want.put_u8(0);
        want.put_u8(1);
        let frame = encode_response(11, ApiKey::DescribeConfigs, 0, &body).unwrap();
        assert_eq!(frame, v0_frame(11, &want));
    }

    #[test]
    fn legacy_list_offsets_v0_answers_a_list_of_offsets() {
        // Proves ListOffsets v0 carries old_style_offsets: the one offset found, or none
        // for an error or no offset, in Kafka 3.9's layout.
        use kafka_protocol::messages::ListOffsetsResponse;
        use kafka_protocol::messages::list_offsets_response::*;
        let body = ListOffsetsResponse::default().with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)
                        .with_offset(42),
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(1)
                        .with_error_code(3)
                        .with_offset(-1),
                ]),
        ]);
        // topics: [name, partitions: [partition_index, error_code, old_style_offsets: [i64]]]
        let mut want = BytesMut::new();
        want.put_i32(1);
        put_string(&mut want, "t");
        want.put_i32(2);
        want.put_i32(0);
        want.put_i16(0);
        want.put_i32(1);
        want.put_i64(42);
        want.put_i32(1);
        want.put_i16(3);
        want.put_i32(0);
        let frame = encode_response(12, ApiKey::ListOffsets, 0, &body).unwrap();
        assert_eq!(frame, v0_frame(12, &want));
    }

    #[test]
    fn legacy_create_delete_topics_and_offset_for_leader_epoch_drop_newer_fields() {
        // Proves CreateTopics v0/v1, DeleteTopics v0 and OffsetForLeaderEpoch v0/v1 are
        // Kafka 3.9's layouts: no throttle_time_ms, and v0 without CreateTopics'
        // error_message or OffsetForLeaderEpoch's leader_epoch.
        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
        use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
        use kafka_protocol::messages::offset_for_leader_epoch_response::*;
        use kafka_protocol::messages::{
            CreateTopicsResponse, DeleteTopicsResponse, OffsetForLeaderEpochResponse,
        };
        let create = CreateTopicsResponse::default()
            .with_throttle_time_ms(5)
            .with_topics(vec![
                CreatableTopicResult::default()
                    .with_name(topic("t"))
                    .with_error_code(36)
                    .with_error_message(Some("exists".into())),
            ]);
        let mut v1 = BytesMut::new();
        v1.put_i32(1);
        put_string(&mut v1, "t");
        v1.put_i16(36);
        let mut v0 = v1.clone();
        put_string(&mut v1, "exists");
        assert_eq!(
            encode_response(1, ApiKey::CreateTopics, 1, &create).unwrap(),
            v0_frame(1, &v1)
        );
        assert_eq!(
            encode_response(2, ApiKey::CreateTopics, 0, &create).unwrap(),
            v0_frame(2, &v0)
        );
        v0.clear();

        let delete = DeleteTopicsResponse::default()
            .with_throttle_time_ms(5)
            .with_responses(vec![
                DeletableTopicResult::default()
                    .with_name(Some(topic("t")))
                    .with_error_code(3),
            ]);
        let mut want = BytesMut::new();
        want.put_i32(1);
        put_string(&mut want, "t");
        want.put_i16(3);
        assert_eq!(
            encode_response(3, ApiKey::DeleteTopics, 0, &delete).unwrap(),
            v0_frame(3, &want)
        );

        let epochs = OffsetForLeaderEpochResponse::default()
            .with_throttle_time_ms(5)
            .with_topics(vec![
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        EpochEndOffset::default()
                            .with_error_code(0)
                            .with_partition(2)
                            .with_leader_epoch(4)
                            .with_end_offset(99),
                    ]),
            ]);
        // topics: [topic, partitions: [error_code, partition, (v1: leader_epoch), end_offset]]
        for (v, leader_epoch) in [(0, None), (1, Some(4))] {
            let mut want = BytesMut::new();
            want.put_i32(1);
            put_string(&mut want, "t");
            want.put_i32(1);
            want.put_i16(0);
            want.put_i32(2);
            if let Some(e) = leader_epoch {
                want.put_i32(e);
            }
            want.put_i64(99);
            assert_eq!(
                encode_response(4, ApiKey::OffsetForLeaderEpoch, v, &epochs).unwrap(),
                v0_frame(4, &want),
                "v{v}"
            );
        }
    }

    #[test]
    fn legacy_fetch_v0_to_v3_drop_v4_fields_and_keep_records() {
        // Proves Fetch v0-v3 responses are Kafka 3.9's layout: each partition without
        // last_stable_offset and aborted_transactions, v1-v3 with throttle_time_ms in front
        // and v0 without it, the records bytes copied unchanged.
        use kafka_protocol::messages::fetch_response::*;
        use kafka_protocol::messages::{FetchResponse, ProducerId};
        let records = Bytes::from_static(b"message set bytes");
        let body = FetchResponse::default()
            .with_throttle_time_ms(6)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(1)
                            .with_error_code(0)
                            .with_high_watermark(10)
                            .with_last_stable_offset(10)
                            .with_aborted_transactions(Some(vec![
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(4))
                                    .with_first_offset(2),
                            ]))
                            .with_records(Some(records.clone())),
                        PartitionData::default()
                            .with_partition_index(2)
                            .with_error_code(1)
                            .with_high_watermark(-1)
                            .with_records(None),
                    ]),
            ]);
        // [throttle_time_ms], responses: [topic, partitions: [partition_index, error_code,
        // high_watermark, records]]
        for v in 0..=3 {
            let mut want = BytesMut::new();
            if v > 0 {
                want.put_i32(6);
            }
            want.put_i32(1);
            put_string(&mut want, "t");
            want.put_i32(2);
            want.put_i32(1);
            want.put_i16(0);
            want.put_i64(10);
            want.put_i32(records.len() as i32);
            want.put_slice(&records);
            want.put_i32(2);
            want.put_i16(1);
            want.put_i64(-1);
            want.put_i32(-1);
            let frame = encode_response(5, ApiKey::Fetch, v, &body).unwrap();
            assert_eq!(frame, v0_frame(5, &want), "v{v}");
            let chunks = encode_response_vectored(
                5,
                ApiKey::Fetch,
                v,
                &body,
                std::slice::from_ref(&records),
            )
            .unwrap();
            assert_eq!(chunks.concat(), frame.to_vec(), "vectored v{v}");
        }
    }

    #[test]
    fn legacy_produce_v0_to_v2_match_kafka_3_9_bytes() {
        // Proves Produce v2 responses are v3's layout, v1 drops each partition's
        // log_append_time_ms, and v0 also the trailing throttle_time_ms.
        use kafka_protocol::messages::ProduceResponse;
        use kafka_protocol::messages::produce_response::*;
        let body = ProduceResponse::default()
            .with_throttle_time_ms(8)
            .with_responses(vec![
                TopicProduceResponse::default()
                    .with_name(topic("t"))
                    .with_partition_responses(vec![
                        PartitionProduceResponse::default()
                            .with_index(1)
                            .with_error_code(0)
                            .with_base_offset(17)
                            .with_log_append_time_ms(99),
                    ]),
            ]);
        // responses: [name, partition_responses: [index, error_code, base_offset,
        // (v2: log_append_time_ms)]], (v1+: throttle_time_ms)
        for v in 0..=2 {
            let mut want = BytesMut::new();
            want.put_i32(1);
            put_string(&mut want, "t");
            want.put_i32(1);
            want.put_i32(1);
            want.put_i16(0);
            want.put_i64(17);
            if v == 2 {
                want.put_i64(99);
            }
            if v >= 1 {
                want.put_i32(8);
            }
            let frame = encode_response(6, ApiKey::Produce, v, &body).unwrap();
            assert_eq!(frame, v0_frame(6, &want), "v{v}");
        }
    }

    #[test]
    fn versions_below_the_legacy_minimum_are_refused() {
        // Proves a version below what Kafka 3.9 served is an encode error, never bytes.
        use kafka_protocol::messages::ListOffsetsResponse;
        assert!(matches!(
            encode_response(1, ApiKey::ListOffsets, -1, &ListOffsetsResponse::default()),
            Err(EncodeError::Body { .. })
        ));
    }

    #[test]
    fn vectored_fetch_response_shares_large_records() {
        // Proves the vectored frame equals the contiguous one byte for byte, and that records of
        // at least SHARED_BYTES_MIN are the caller's own memory while small ones are copied.
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let big: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 64 * 1024])).collect();
        let small = Bytes::from(vec![9u8; 100]);
        let mut partitions: Vec<PartitionData> = big
            .iter()
            .enumerate()
            .map(|(i, b)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(b.clone()))
            })
            .collect();
        partitions.push(
            PartitionData::default()
                .with_partition_index(3)
                .with_records(Some(small.clone())),
        );
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName("t".into()))
            .with_partitions(partitions);
        let body = FetchResponse::default().with_responses(vec![topic]);
        let mut shared = big.clone();
        shared.push(small.clone());
        for version in [4, 11, 12] {
            let contiguous = encode_response(3, ApiKey::Fetch, version, &body).unwrap();
            let chunks =
                encode_response_vectored(3, ApiKey::Fetch, version, &body, &shared).unwrap();
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, contiguous[..]);
            for b in &big {
                assert!(
                    chunks
                        .iter()
                        .any(|c| c.as_ptr() == b.as_ptr() && c.len() == b.len()),
                    "v{version}"
                );
            }
            assert!(!chunks.iter().any(|c| c.as_ptr() == small.as_ptr()));
            // Header chunk, three records chunks with the fields between them, then the rest.
            assert_eq!(chunks.len(), 7, "v{version}");
        }
    }
}
