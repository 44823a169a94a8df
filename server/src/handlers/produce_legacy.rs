//! Produce v0-v2: advertised (min 0, as clients expect) but refused. net does not decode
//! them and kafka-protocol cannot encode their responses, so this file reads just enough
//! of the request (topic names and partition indexes, every count bounded by the bytes
//! left) to answer each partition with UNSUPPORTED_VERSION in the v0-v2 layout.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;

/// Smallest encoded topic entry (name length + partition count) and partition entry
/// (index + records length): bounds the counts read from the request.
const TOPIC_BYTES_MIN: usize = 2 + 4;
const PARTITION_BYTES_MIN: usize = 4 + 4;

fn take(buf: &mut Bytes, n: usize) -> Option<Bytes> {
    (buf.remaining() >= n).then(|| buf.split_to(n))
}

fn i16_(buf: &mut Bytes) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn i32_(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

/// A count of entries each at least `min` bytes long, checked against what is left.
fn count(buf: &mut Bytes, min: usize) -> Option<usize> {
    let n = usize::try_from(i32_(buf)?).ok()?;
    (n <= buf.remaining() / min).then_some(n)
}

/// The response frame (size prefix included) for a Produce v0-v2 `frame`; empty for
/// acks=0 (no response is owed); `None` if the frame does not parse (the connection is
/// then closed).
pub fn unsupported_version_response(frame: &Bytes) -> Option<Bytes> {
    let mut b = frame.clone();
    let _api_key = i16_(&mut b)?;
    let version = i16_(&mut b)?;
    let correlation_id = i32_(&mut b)?;
    let client_id_len = i16_(&mut b)?;
    if client_id_len > 0 {
        take(&mut b, client_id_len as usize)?;
    }
    let acks = i16_(&mut b)?;
    let _timeout_ms = i32_(&mut b)?;
    let mut topics = Vec::new();
    for _ in 0..count(&mut b, TOPIC_BYTES_MIN)? {
        let name_len = usize::try_from(i16_(&mut b)?).ok()?;
        let name = take(&mut b, name_len)?;
        let mut partitions = Vec::new();
        for _ in 0..count(&mut b, PARTITION_BYTES_MIN)? {
            partitions.push(i32_(&mut b)?);
            let records_len = i32_(&mut b)?;
            if records_len > 0 {
                take(&mut b, records_len as usize)?;
            }
        }
        topics.push((name, partitions));
    }
    if b.has_remaining() || !(0..=2).contains(&version) {
        return None;
    }
    if acks == 0 {
        return Some(Bytes::new());
    }
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i32(topics.len() as i32);
    for (name, partitions) in &topics {
        out.put_i16(name.len() as i16);
        out.put_slice(name);
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a v2 request with two partitions gets both back with error 35 in the v2
    // layout, and that a request claiming 2^31-1 topics is refused without allocating.
    #[test]
    fn answers_each_partition_and_bounds_counts() {
        let mut req = BytesMut::new();
        req.put_i16(0);
        req.put_i16(2);
        req.put_i32(42);
        req.put_i16(-1);
        req.put_i16(1);
        req.put_i32(1000);
        req.put_i32(1);
        req.put_i16(1);
        req.put_slice(b"t");
        req.put_i32(2);
        for p in [3, 5] {
            req.put_i32(p);
            req.put_i32(2);
            req.put_slice(b"xy");
        }
        let resp = unsupported_version_response(&req.freeze()).unwrap();
        let mut r = resp.clone();
        assert_eq!(r.get_i32() as usize, resp.len() - 4);
        assert_eq!(r.get_i32(), 42);
        assert_eq!(r.get_i32(), 1);
        assert_eq!(r.get_i16(), 1);
        assert_eq!(r.get_u8(), b't');
        assert_eq!(r.get_i32(), 2);
        for p in [3, 5] {
            assert_eq!(r.get_i32(), p);
            assert_eq!(r.get_i16(), 35);
            assert_eq!(r.get_i64(), -1);
            assert_eq!(r.get_i64(), -1);
        }
        assert_eq!(r.get_i32(), 0);
        assert!(!r.has_remaining());

        let mut bomb = BytesMut::new();
        bomb.put_i16(0);
        bomb.put_i16(1);
        bomb.put_i32(1);
        bomb.put_i16(-1);
        bomb.put_i16(1);
        bomb.put_i32(1000);
        bomb.put_i32(i32::MAX);
        assert!(unsupported_version_response(&bomb.freeze()).is_none());
    }
}
