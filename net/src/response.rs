//! Response encoding: size prefix, response header (v0, or v1 with tagged
//! fields for flexible versions; ApiVersions always v0) and the body encoded
//! by `kafka-protocol`.
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
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size_prefix);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| body_err(e.to_string()))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| body_err(e.to_string()))?;
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
