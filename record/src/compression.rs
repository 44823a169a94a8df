//! The four Kafka codecs over a batch's record bytes: gzip, snappy (one raw block as
//! librdkafka writes it, or xerial-framed as snappy-java does), lz4 frame and zstd.
//! Decompression is bounded: each codec has exactly one decoder here, and each stops at
//! `bytes_max` output bytes with `RecordError::DecompressedTooLarge` instead of
//! allocating more, whatever the compressed bytes claim.

use std::io::{Read, Write};

use crate::batch::Codec;
use crate::error::RecordError;

/// The magic bytes that open a xerial (snappy-java) framed stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible-version fields of the xerial header.
pub const XERIAL_HEADER_BYTES: usize = 16;
/// Xerial chunk size snappy-java writes; used when re-encoding.
pub const XERIAL_CHUNK_BYTES: usize = 32 * 1024;

/// Reads everything from `reader` up to `bytes_max`; more is an error.
fn read_capped(
    mut reader: impl Read,
    codec: Codec,
    bytes_max: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let cap = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    (&mut reader)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > bytes_max {
        return Err(RecordError::DecompressedTooLarge { bytes_max });
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], out: &mut Vec<u8>, bytes_max: usize) -> Result<(), RecordError> {
    let err = |e: snap::Error| RecordError::Decompress {
        codec: Codec::Snappy,
        reason: e.to_string(),
    };
    let n = snap::raw::decompress_len(block).map_err(err)?;
    if n > bytes_max.saturating_sub(out.len()) {
        return Err(RecordError::DecompressedTooLarge { bytes_max });
    }
    let at = out.len();
    out.resize(at + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(err)?;
    out.truncate(at + written);
    Ok(())
}

/// Decompresses snappy records, raw or xerial-framed; returns whether they were framed.
fn snappy_decompress(data: &[u8], bytes_max: usize) -> Result<(Vec<u8>, bool), RecordError> {
    let mut out = Vec::new();
    if data.len() < XERIAL_HEADER_BYTES || data[..8] != XERIAL_MAGIC {
        snappy_raw(data, &mut out, bytes_max)?;
        return Ok((out, false));
    }
    let mut at = XERIAL_HEADER_BYTES;
    while at < data.len() {
        let Some(len_bytes) = data.get(at..at + 4) else {
            return Err(RecordError::Truncated {
                what: "xerial chunk length",
                position: at,
            });
        };
        let len = i32::from_be_bytes(len_bytes.try_into().expect("4 bytes"));
        at += 4;
        let n = usize::try_from(len)
            .ok()
            .filter(|n| *n <= data.len() - at)
            .ok_or(RecordError::BadLength {
                what: "xerial chunk",
                len: i64::from(len),
                position: at,
            })?;
        snappy_raw(&data[at..at + n], &mut out, bytes_max)?;
        at += n;
    }
    Ok((out, true))
}

/// The largest window (log2 of its bytes) a zstd frame may declare when its output is
/// capped at `bytes_max`: the smallest power of two above the cap, within zstd's own
/// limits (2^10 to its default 2^27). The decoder allocates the declared window before it
/// writes a byte, so without this nine hostile bytes make it allocate 128 MiB whatever
/// the cap. Encoders size the window from the content when they know it, and records
/// that fit the cap never need a longer one; a frame declaring one is refused.
pub(crate) fn zstd_window_log_max(bytes_max: usize) -> u32 {
    (usize::BITS - bytes_max.leading_zeros()).clamp(10, 27)
}

/// Decompresses a batch's record bytes with an output cap of `bytes_max`; also says
/// whether snappy bytes were xerial-framed. The server uses it for the old message
/// formats' compressed wrapper messages too.
pub fn decompress(
    codec: Codec,
    data: &[u8],
    bytes_max: usize,
) -> Result<(Vec<u8>, bool), RecordError> {
    match codec {
        Codec::None => Ok((data.to_vec(), false)),
        Codec::Gzip => Ok((
            read_capped(flate2::read::MultiGzDecoder::new(data), codec, bytes_max)?,
            false,
        )),
        Codec::Snappy => snappy_decompress(data, bytes_max),
        Codec::Lz4 => Ok((
            read_capped(lz4_flex::frame::FrameDecoder::new(data), codec, bytes_max)?,
            false,
        )),
        Codec::Zstd => {
            let err = |e: std::io::Error| RecordError::Decompress {
                codec,
                reason: e.to_string(),
            };
            // A frame stating a content size over the cap (librdkafka's do) is refused
            // from its header, before the decoder allocates a window for it.
            if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(data)
                && n > u64::try_from(bytes_max).unwrap_or(u64::MAX)
            {
                return Err(RecordError::DecompressedTooLarge { bytes_max });
            }
            // The slice is read in place (no input buffer), and the window is limited.
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(err)?;
            decoder
                .window_log_max(zstd_window_log_max(bytes_max))
                .map_err(err)?;
            Ok((read_capped(decoder, codec, bytes_max)?, false))
        }
        Codec::Unknown(_) => Err(RecordError::UnsupportedCodec(codec)),
    }
}

/// Compresses a batch's record bytes with `codec`; snappy is xerial-framed (as the Java
/// producer writes it, which every client reads) when `snappy_xerial` is set, one raw
/// block otherwise.
pub fn compress(codec: Codec, plain: &[u8], snappy_xerial: bool) -> Result<Vec<u8>, RecordError> {
    let err = |e: std::io::Error| RecordError::Compress {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Codec::None => Ok(plain.to_vec()),
        Codec::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(plain).map_err(err)?;
            enc.finish().map_err(err)
        }
        Codec::Snappy => {
            let serr = |e: snap::Error| RecordError::Compress {
                codec,
                reason: e.to_string(),
            };
            let mut encoder = snap::raw::Encoder::new();
            if !snappy_xerial {
                return encoder.compress_vec(plain).map_err(serr);
            }
            let mut out = Vec::with_capacity(plain.len() / 2 + XERIAL_HEADER_BYTES);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for chunk in plain.chunks(XERIAL_CHUNK_BYTES) {
                let block = encoder.compress_vec(chunk).map_err(serr)?;
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(plain).map_err(err)?;
            enc.finish().map_err(|e| RecordError::Compress {
                codec,
                reason: e.to_string(),
            })
        }
        Codec::Zstd => zstd::bulk::compress(plain, 3).map_err(err),
        Codec::Unknown(_) => Err(RecordError::UnsupportedCodec(codec)),
    }
}
