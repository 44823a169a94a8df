//! Request framing: a 4-byte big-endian size, then that many bytes.
//!
//! The size is checked (negative, above `socket.request.max.bytes`) before
//! any buffer is grown for it, so a hostile prefix cannot make us allocate.

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const REQUEST_BYTES_MAX_DEFAULT: u32 = 100 * 1024 * 1024;

/// Why the connection's byte stream is no longer a valid sequence of frames.
/// Either way the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame size {size}")]
    NegativeSize { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes {size_max}")]
    TooLarge { size: u32, size_max: u32 },
}

/// Takes one complete frame (without its size prefix) off the front of `buf`.
/// Returns `Ok(None)` while the frame is incomplete; the caller reads more
/// bytes and calls again. `frame_size_needed` says how much to reserve.
pub fn split_frame(buf: &mut BytesMut, size_max: u32) -> Result<Option<Bytes>, FrameError> {
    let Some(size) = frame_size(buf, size_max)? else {
        return Ok(None);
    };
    let total = 4 + size as usize;
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

/// The validated size of the frame at the front of `buf`, once its 4-byte
/// prefix has arrived. Lets a reader reserve exactly one frame's worth.
pub fn frame_size(buf: &[u8], size_max: u32) -> Result<Option<u32>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size = size as u32;
    if size > size_max {
        return Err(FrameError::TooLarge { size, size_max });
    }
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_only_when_complete() {
        // Proves a frame is returned only once all its bytes are in, and pipelined frames stay separate.
        let mut buf = BytesMut::new();
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[b'c', 0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_sizes_fail_before_any_allocation() {
        // Proves negative and oversize prefixes are errors while the buffer holds only the prefix.
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::NegativeSize { size: -2 })
        );
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let cap_before = buf.capacity();
        assert_eq!(
            split_frame(&mut buf, REQUEST_BYTES_MAX_DEFAULT),
            Err(FrameError::TooLarge {
                size: i32::MAX as u32,
                size_max: REQUEST_BYTES_MAX_DEFAULT
            })
        );
        assert_eq!(buf.capacity(), cap_before);
        let mut buf = BytesMut::from(&[0, 0, 0, 101][..]);
        assert!(split_frame(&mut buf, 100).is_err());
        assert_eq!(frame_size(&[0, 0, 0, 100], 100), Ok(Some(100)));
    }
}
