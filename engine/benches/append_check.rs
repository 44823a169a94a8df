//! CPU cost of the append path's record checks (`record::check_for_append`), per batch
//! and per record, on a batch shaped like a default librdkafka one: 100 records with
//! 10-byte keys and 100-byte values (about 12 KiB uncompressed). Cases: a batch whose
//! header needs nothing (not read), an unset max timestamp (decoded, fixed in place), a
//! compacted topic (every record's key checked; lz4 decompressed first), and
//! recompression to the topic's codec. Each iteration hands over a fresh, uniquely owned
//! copy of the batch, as a produce request does; the copy alone is measured as the
//! baseline. `cargo bench -p sluice-engine --bench append_check` runs full size; under
//! `cargo test` it runs a few iterations.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use sluice_engine::batch::{BatchHeader, Codec, HEADER_BYTES};
use sluice_engine::record::{AppendRules, KeyValue, build_batch, check_for_append};

const RECORDS: usize = 100;

/// A batch of `RECORDS` keyed records with the codec in `attributes`, its max timestamp
/// set right or, with `unset`, to -1.
fn sample(attributes: i16, unset: bool) -> Vec<u8> {
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("key-{i:06}")).collect();
    let values: Vec<String> = (0..RECORDS)
        .map(|i| format!("{i:08}-{}", "payload-".repeat(11)))
        .collect();
    let kvs: Vec<KeyValue<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    let mut b = build_batch(0, 1_700_000_000_000, attributes, &kvs);
    if unset {
        b[35..43].copy_from_slice(&(-1i64).to_be_bytes());
        let crc = sluice_engine::batch::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    b
}

fn rules(keys_required: bool, codec: Option<Codec>) -> AppendRules {
    AppendRules {
        keys_required,
        codec,
        log_append_time: false,
        decompressed_bytes_max: 64 << 20,
    }
}

/// Runs `iterations` checks of fresh copies of `batch`; prints and returns ns per batch.
fn case(name: &str, batch: &[u8], rules: Option<AppendRules>, iterations: u32) -> f64 {
    let started = Instant::now();
    let mut out_bytes = 0usize;
    for _ in 0..iterations {
        let fresh = Bytes::from(batch.to_vec());
        let out = match &rules {
            Some(r) => check_for_append(fresh, r).expect("valid batch"),
            None => fresh,
        };
        out_bytes = out.len();
        black_box(out);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(iterations);
    let codec = BatchHeader::new(&batch[..HEADER_BYTES]).unwrap().codec();
    println!(
        "{name:<44} {:>6} B in ({codec:?}), {out_bytes:>6} B out: {:>9.0} ns/batch, {:>10.0} records/s",
        batch.len(),
        ns,
        RECORDS as f64 * 1e9 / ns
    );
    ns
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20_000 } else { 20 };
    let none = sample(0, false);
    let lz4 = sample(3, false);
    let gzip = sample(1, false);
    println!("append checks, {RECORDS} records per batch, {n} iterations per case");
    case("copy only (baseline)", &none, None, n);
    case(
        "header set, nothing to check",
        &none,
        Some(rules(false, None)),
        n,
    );
    case(
        "max timestamp unset: decode, fix in place",
        &sample(0, true),
        Some(rules(false, None)),
        n,
    );
    case(
        "max timestamp unset, lz4: decompress, fix",
        &sample(3, true),
        Some(rules(false, None)),
        n,
    );
    case(
        "compacted: every key checked",
        &none,
        Some(rules(true, None)),
        n,
    );
    case(
        "compacted, lz4: decompress, keys",
        &lz4,
        Some(rules(true, None)),
        n,
    );
    case(
        "recompress none -> zstd",
        &none,
        Some(rules(false, Some(Codec::Zstd))),
        n,
    );
    case(
        "recompress none -> lz4",
        &none,
        Some(rules(false, Some(Codec::Lz4))),
        n,
    );
    case(
        "recompress gzip -> zstd",
        &gzip,
        Some(rules(false, Some(Codec::Zstd))),
        n,
    );
    case(
        "recompress lz4 -> zstd",
        &lz4,
        Some(rules(false, Some(Codec::Zstd))),
        n,
    );
}
