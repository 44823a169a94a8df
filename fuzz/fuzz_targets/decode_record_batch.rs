//! Fuzz target: arbitrary bytes through `decode_batch`, the record iterator compaction
//! and the group coordinator's load run over batches read from disk. Nothing may panic
//! or allocate beyond the decompression cap plus the input's size, and whatever decodes
//! must survive a round trip: `encode_batch` of the decoded records (same header, same
//! codec, same snappy framing) decodes to the same records.
//!
//! Each input is used three ways, so that most runs reach a decompressor or the record
//! decoder instead of stopping at the 61-byte header:
//! - raw, as a whole batch;
//! - steered: its first byte picks the codec and its next two the record count of a
//!   well-formed header, and the rest is the (compressed) record bytes;
//! - generated: its bytes become the keys and values of a valid batch built with the
//!   codec its first byte picks, which then has one byte replaced, at a position and
//!   with a value the input also picks. This reaches every decompressor with nearly
//!   valid streams without needing seed files.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_record::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};
use sluice_record::records::{KeyValue, build_batch, decode_batch, encode_batch};

/// Small enough that inputs reach the "decompressed records exceed the cap" error.
const DECOMPRESSED_BYTES_MAX: usize = 256 << 10;
/// none, gzip, snappy, lz4, zstd and one unknown codec.
const CODECS: i16 = 6;

fn decode_and_round_trip(batch: &[u8]) {
    let Ok(decoded) = decode_batch(batch, DECOMPRESSED_BYTES_MAX) else {
        return;
    };
    let header = BatchHeader::new(batch).expect("a decoded batch has a header");
    // `encode_batch` asserts its callers' invariants: at least one record, offset
    // deltas within the batch's. Compaction keeps them; arbitrary bytes need not.
    let last = header.last_offset_delta();
    if decoded.records.is_empty() || decoded.records.iter().any(|r| r.offset_delta > last) {
        return;
    }
    let again = encode_batch(&header, &decoded.records, decoded.snappy_xerial)
        .expect("decoded records re-encode");
    // Re-encoding never grows the records (varints become minimal), so the cap holds.
    let reread = decode_batch(&again, DECOMPRESSED_BYTES_MAX).expect("our own encoding decodes");
    assert_eq!(reread.records, decoded.records);
    assert_eq!(reread.snappy_xerial, decoded.snappy_xerial);
}

fn steered(codec_pick: u8, count: [u8; 2], body: &[u8]) -> Vec<u8> {
    let mut batch = vec![0u8; HEADER_BYTES];
    let length = (HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[16] = MAGIC_V2 as u8;
    batch[21..23].copy_from_slice(&(i16::from(codec_pick) % CODECS).to_be_bytes());
    let count = i32::from(u16::from_be_bytes(count));
    batch[23..27].copy_from_slice(&count.saturating_sub(1).max(0).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    batch.extend_from_slice(body);
    batch
}

/// Splits `bytes` into at most 16 records at 0xff bytes; a record's first 0xfe byte
/// splits key from value, and an empty key or value is null.
fn records(bytes: &[u8]) -> Vec<KeyValue<'_>> {
    fn some(b: &[u8]) -> Option<&[u8]> {
        (!b.is_empty()).then_some(b)
    }
    bytes
        .split(|b| *b == 0xff)
        .take(16)
        .map(|r| match r.iter().position(|b| *b == 0xfe) {
            Some(i) => (some(&r[..i]), some(&r[i + 1..])),
            None => (some(r), None),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    decode_and_round_trip(data);

    let [codec_pick, a, b, rest @ ..] = data else {
        return;
    };
    decode_and_round_trip(&steered(*codec_pick, [*a, *b], rest));

    // Codecs 0-4 only: `build_batch` cannot compress with an unknown codec.
    let attributes = i16::from(*codec_pick) % 5;
    let [x, rest @ ..] = rest else {
        return;
    };
    let mut batch = build_batch(0, 1_700_000_000_000, attributes, &records(rest));
    let at = u16::from_be_bytes([*a, *b]) as usize % batch.len();
    batch[at] = *x;
    decode_and_round_trip(&batch);
});
