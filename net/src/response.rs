//! Response encoding: size prefix, response header (v0, or v1 with tagged
//! fields for flexible versions; ApiVersions always v0) and the body encoded
//! by `kafka-protocol`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

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
}
