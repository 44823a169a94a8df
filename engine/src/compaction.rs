//! The cleaning rules of log compaction (`cleanup.policy=compact`), as pure functions
//! over batch bytes: `KeyOffsetMap` records the newest offset of every key over the
//! part of the log being cleaned, and `clean_batch` keeps from one batch only the
//! records that are still the newest for their key, dropping tombstones (null values)
//! older than `delete.retention.ms`. Offsets are kept (gaps are fine); a rewritten batch
//! keeps its base offset, last offset delta, timestamps, producer id/epoch/base
//! sequence and codec, with a fresh CRC32C. Records without a key are always kept, and
//! control batches (transaction markers) are never touched. Records at or past the map's
//! end (the part of the log the map did not cover) are never removed. A batch of an
//! idempotent or transactional producer that loses every record is kept empty when the
//! caller says it is the producer's last batch (Kafka's rule), so the producer's last
//! sequence survives in the log.
//!
//! Both steps are bounded: the map holds at most `keys_max` keys of at most
//! `key_bytes_max` bytes in all (keys are copied, so the map never pins batch buffers),
//! and one batch decompresses to at most `decompressed_bytes_max` bytes. Runs on the shard that owns
//! the partition; no I/O here.

use std::collections::HashMap;

use bytes::Bytes;

use crate::batch::{BatchHeader, HEADER_BYTES, empty_batch};
use crate::record::{self, Record, RecordError};
use crate::{Offset, TimestampType};

/// Why a compaction step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("batch at {base_offset:?}: {source}")]
    Record {
        base_offset: Offset,
        source: RecordError,
    },
    #[error("key map is full ({keys_max} keys); clean up to {next:?} first")]
    KeyMapFull { keys_max: usize, next: Offset },
}

/// Bounds and clock of one cleaning pass.
#[derive(Debug, Clone, Copy)]
pub struct CleanRules {
    /// Wall clock in ms, the reference for tombstone expiry.
    pub now_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays readable.
    pub delete_retention_ms: i64,
    /// Cap on one batch's decompressed record bytes.
    pub decompressed_bytes_max: usize,
}

/// Key -> offset of its newest record, over the range of the log being cleaned.
#[derive(Debug)]
pub struct KeyOffsetMap {
    latest: HashMap<Bytes, Offset>,
    keys_max: usize,
    key_bytes: usize,
    key_bytes_max: usize,
    decompressed_bytes_max: usize,
    /// One past the last offset of the batches added; records at or past it are kept.
    end: Option<Offset>,
}

fn decode(batch: &[u8], bytes_max: usize) -> Result<record::DecodedBatch, CompactError> {
    record::decode_batch(batch, bytes_max).map_err(|source| CompactError::Record {
        base_offset: BatchHeader::new(batch)
            .map(|h| h.base_offset())
            .unwrap_or(Offset(-1)),
        source,
    })
}

impl KeyOffsetMap {
    pub fn new(keys_max: usize, decompressed_bytes_max: usize) -> Self {
        KeyOffsetMap {
            latest: HashMap::new(),
            keys_max,
            key_bytes: 0,
            key_bytes_max: usize::MAX,
            decompressed_bytes_max,
            end: None,
        }
    }

    /// Caps the bytes of all keys together (the map's memory).
    pub fn with_key_bytes_max(mut self, key_bytes_max: usize) -> Self {
        self.key_bytes_max = key_bytes_max;
        self
    }

    /// One past the last offset covered, once a batch was added.
    pub fn end(&self) -> Option<Offset> {
        self.end
    }

    /// Marks `[.., end)` as covered without adding records (a batch skipped because its
    /// records do not decode: none of them will be removed by offset either way).
    pub fn cover_to(&mut self, end: Offset) {
        if self.end.is_none_or(|e| e < end) {
            self.end = Some(end);
        }
    }

    /// Records every keyed record of `batch` (a complete batch). Batches must be added
    /// in offset order. If a new key would pass `keys_max`, nothing of this batch is
    /// added and `KeyMapFull` says where to stop cleaning.
    pub fn add_batch(&mut self, batch: &[u8]) -> Result<(), CompactError> {
        let header = BatchHeader::new(batch).map_err(|e| CompactError::Record {
            base_offset: Offset(-1),
            source: e.into(),
        })?;
        let batch_end = Offset(header.last_offset().0.saturating_add(1));
        if header.is_control() {
            self.cover_to(batch_end);
            return Ok(());
        }
        let decoded = decode(batch, self.decompressed_bytes_max)?;
        let mut new_keys = 0usize;
        let mut new_key_bytes = 0usize;
        for k in decoded.records.iter().filter_map(|r| r.key.as_ref()) {
            if !self.latest.contains_key(k) {
                new_keys += 1;
                new_key_bytes += k.len();
            }
        }
        if self.latest.len() + new_keys > self.keys_max
            || self.key_bytes.saturating_add(new_key_bytes) > self.key_bytes_max
        {
            return Err(CompactError::KeyMapFull {
                keys_max: self.keys_max,
                next: header.base_offset(),
            });
        }
        for r in decoded.records {
            if let Some(key) = r.key {
                let offset = Offset(header.base_offset().0 + i64::from(r.offset_delta));
                match self.latest.get_mut(&key[..]) {
                    Some(o) => *o = offset,
                    None => {
                        self.key_bytes += key.len();
                        self.latest.insert(Bytes::copy_from_slice(&key), offset);
                    }
                }
            }
        }
        self.cover_to(batch_end);
        Ok(())
    }

    /// The newest offset of `key`, if it was seen.
    pub fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// What cleaning did to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanedBatch {
    /// Every record survives; keep the original bytes.
    Unchanged,
    /// Some records survive: the new batch bytes.
    Rewritten(Vec<u8>),
    /// No record survives.
    Removed,
}

fn record_timestamp(header: &BatchHeader<'_>, r: &Record) -> i64 {
    match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp(),
        TimestampType::CreateTime => header.base_timestamp().saturating_add(r.timestamp_delta),
    }
}

/// Whether a record survives: keyless records always; keyed ones only if they are the
/// newest for their key (or newer than the map knows), and tombstones only until
/// `delete.retention.ms` has passed since their timestamp.
fn keep(
    header: &BatchHeader<'_>,
    r: &Record,
    map: &KeyOffsetMap,
    rules: &CleanRules,
    tombstone_expiry_ms: &mut Option<i64>,
) -> bool {
    let Some(key) = &r.key else {
        return true;
    };
    let offset = Offset(header.base_offset().0 + i64::from(r.offset_delta));
    // Past the map's end a newer record of the key (or an older value a tombstone
    // hides) may exist unseen, so nothing there is removed.
    if map.end.is_none_or(|end| offset >= end) {
        return true;
    }
    if map.latest(key).is_some_and(|newest| newest > offset) {
        return false;
    }
    if r.value.is_none() {
        let expires_ms = record_timestamp(header, r).saturating_add(rules.delete_retention_ms);
        if rules.now_ms < expires_ms {
            *tombstone_expiry_ms =
                Some(tombstone_expiry_ms.map_or(expires_ms, |e| e.min(expires_ms)));
            return true;
        }
        return false;
    }
    true
}

/// Cleans one complete batch against `map` (built over at least this batch's range).
pub fn clean_batch(
    batch: &[u8],
    map: &KeyOffsetMap,
    rules: &CleanRules,
) -> Result<CleanedBatch, CompactError> {
    clean_batch_with(batch, map, rules, false, &mut None)
}

/// `clean_batch`, and: with `retain_empty`, a batch losing every record becomes an empty
/// batch instead of being removed (a producer's last batch); `tombstone_expiry_ms` is
/// lowered to the expiry time of every tombstone kept only because it is still recent.
pub fn clean_batch_with(
    batch: &[u8],
    map: &KeyOffsetMap,
    rules: &CleanRules,
    retain_empty: bool,
    tombstone_expiry_ms: &mut Option<i64>,
) -> Result<CleanedBatch, CompactError> {
    let header = BatchHeader::new(batch).map_err(|e| CompactError::Record {
        base_offset: Offset(-1),
        source: e.into(),
    })?;
    if header.is_control() {
        return Ok(CleanedBatch::Unchanged);
    }
    let decoded = decode(batch, rules.decompressed_bytes_max)?;
    let total = decoded.records.len();
    if total == 0 && !retain_empty {
        // An empty producer batch that is no longer the producer's last one.
        return Ok(CleanedBatch::Removed);
    }
    let kept: Vec<Record> = decoded
        .records
        .into_iter()
        .filter(|r| keep(&header, r, map, rules, tombstone_expiry_ms))
        .collect();
    if kept.len() == total {
        return Ok(CleanedBatch::Unchanged);
    }
    if kept.is_empty() {
        if retain_empty {
            return Ok(CleanedBatch::Rewritten(empty_batch(&header)));
        }
        return Ok(CleanedBatch::Removed);
    }
    let header_bytes = &batch[..HEADER_BYTES];
    let view = BatchHeader::new(header_bytes).expect("61 bytes checked above");
    record::encode_batch(&view, &kept, decoded.snappy_xerial)
        .map(CleanedBatch::Rewritten)
        .map_err(|source| CompactError::Record {
            base_offset: header.base_offset(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;
    use crate::record::{KeyValue, build_batch, decode_batch};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const NOW_MS: i64 = 10_000_000;
    const RETENTION_MS: i64 = 1_000;

    fn rules() -> CleanRules {
        CleanRules {
            now_ms: NOW_MS,
            delete_retention_ms: RETENTION_MS,
            decompressed_bytes_max: 1 << 20,
        }
    }

    /// A record the model knows: offset, key, value, timestamp.
    type ModelRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);
    /// A record read back after cleaning: offset, key, value.
    type Survivor = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    // Proves the cleaning rules against a model: thousands of records over many keys,
    // random tombstones (some expired, some not), keyless records and every codec.
    // After cleaning, exactly the newest record of each key survives (unless it is an
    // expired tombstone), every keyless record survives, offsets are the original ones
    // and strictly increase, and every rewritten batch keeps its header and CRC-checks.
    #[test]
    fn model_newest_value_per_key_survives() {
        for seed in 0..4u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut model: Vec<ModelRecord> = Vec::new();
            let mut batches = Vec::new();
            let mut offset = 0i64;
            while offset < 3_000 {
                let n = rng.random_range(1..=20usize);
                // Old batches have expired tombstones, recent ones do not.
                let ts = if rng.random_bool(0.5) {
                    NOW_MS - 10 * RETENTION_MS
                } else {
                    NOW_MS - RETENTION_MS / 2
                };
                let codec = rng.random_range(0..=4i16);
                let mut recs = Vec::new();
                for i in 0..n {
                    let key = if rng.random_bool(0.03) {
                        None
                    } else {
                        Some(format!("key-{}", rng.random_range(0..200)).into_bytes())
                    };
                    let value = if rng.random_bool(0.15) {
                        None
                    } else {
                        Some(format!("v{}", offset + i as i64).into_bytes())
                    };
                    model.push((offset + i as i64, key.clone(), value.clone(), ts));
                    recs.push((key, value));
                }
                let refs: Vec<KeyValue<'_>> = recs
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_deref()))
                    .collect();
                batches.push(build_batch(offset, ts, codec, &refs));
                offset += n as i64;
            }

            let mut map = KeyOffsetMap::new(10_000, 1 << 20);
            for b in &batches {
                map.add_batch(b).unwrap();
            }
            let mut survived: Vec<Survivor> = Vec::new();
            for b in &batches {
                let h = batch::validate(b).unwrap();
                let bytes = match clean_batch(b, &map, &rules()).unwrap() {
                    CleanedBatch::Unchanged => b.clone(),
                    CleanedBatch::Removed => continue,
                    CleanedBatch::Rewritten(nb) => {
                        let nh = BatchHeader::new(&nb).unwrap();
                        assert_eq!(nh.crc(), batch::compute_crc(&nb));
                        assert_eq!(nh.total_bytes(), Some(nb.len()));
                        assert_eq!(nh.base_offset(), h.base_offset());
                        assert_eq!(nh.last_offset_delta(), h.last_offset_delta());
                        assert_eq!(nh.codec(), h.codec());
                        assert_eq!(nh.base_timestamp(), h.base_timestamp());
                        assert_eq!(nh.max_timestamp(), h.max_timestamp());
                        assert!(nh.records_count() < h.records_count());
                        nb
                    }
                };
                let base = BatchHeader::new(&bytes).unwrap().base_offset().0;
                for r in decode_batch(&bytes, 1 << 20).unwrap().records {
                    survived.push((
                        base + i64::from(r.offset_delta),
                        r.key.map(|k| k.to_vec()),
                        r.value.map(|v| v.to_vec()),
                    ));
                }
            }

            let mut newest: HashMap<Vec<u8>, i64> = HashMap::new();
            for (o, k, _, _) in &model {
                if let Some(k) = k {
                    newest.insert(k.clone(), *o);
                }
            }
            let expected: Vec<Survivor> = model
                .iter()
                .filter(|(o, k, v, ts)| match k {
                    None => true,
                    Some(k) => newest[k] == *o && (v.is_some() || NOW_MS < ts + RETENTION_MS),
                })
                .map(|(o, k, v, _)| (*o, k.clone(), v.clone()))
                .collect();
            assert!(survived.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(expected.len() < model.len() / 2, "seed {seed}");
            assert_eq!(survived, expected, "seed {seed}");
        }
    }

    // Proves tombstone expiry: a tombstone that is the newest for its key survives until
    // delete.retention.ms has passed since its timestamp, then is removed.
    #[test]
    fn tombstones_expire_after_delete_retention() {
        let b = build_batch(
            0,
            NOW_MS,
            0,
            &[(Some(b"k"), Some(b"v")), (Some(b"k"), None)],
        );
        let mut map = KeyOffsetMap::new(10, 1 << 20);
        map.add_batch(&b).unwrap();
        assert_eq!(map.latest(b"k"), Some(Offset(1)));
        let mut r = rules();
        r.now_ms = NOW_MS + RETENTION_MS - 1;
        let CleanedBatch::Rewritten(kept) = clean_batch(&b, &map, &r).unwrap() else {
            panic!("the superseded value must go and the tombstone stay");
        };
        let recs = decode_batch(&kept, 1 << 20).unwrap().records;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset_delta, 1);
        assert_eq!(recs[0].value, None);
        r.now_ms = NOW_MS + RETENTION_MS;
        assert_eq!(clean_batch(&b, &map, &r).unwrap(), CleanedBatch::Removed);
        // A batch whose records are all newest is left byte for byte.
        let fresh = build_batch(5, NOW_MS, 4, &[(Some(b"a"), Some(b"1"))]);
        let mut m2 = KeyOffsetMap::new(10, 1 << 20);
        m2.add_batch(&fresh).unwrap();
        assert_eq!(
            clean_batch(&fresh, &m2, &rules()).unwrap(),
            CleanedBatch::Unchanged
        );
    }

    // Proves the key map is bounded: a batch that would pass keys_max is refused whole
    // and the error names the offset where cleaning must stop.
    #[test]
    fn key_map_is_bounded() {
        let mut map = KeyOffsetMap::new(2, 1 << 20);
        map.add_batch(&build_batch(
            0,
            1,
            0,
            &[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2"))],
        ))
        .unwrap();
        map.add_batch(&build_batch(2, 1, 0, &[(Some(b"a"), Some(b"3"))]))
            .unwrap();
        let err = map
            .add_batch(&build_batch(3, 1, 0, &[(Some(b"c"), Some(b"4"))]))
            .unwrap_err();
        assert_eq!(
            err,
            CompactError::KeyMapFull {
                keys_max: 2,
                next: Offset(3)
            }
        );
        assert_eq!(map.len(), 2);
        assert_eq!(map.latest(b"a"), Some(Offset(2)));
    }

    // Proves the scale: 1M records over 10k keys (lz4 batches of 100) clean down
    // to exactly one record per key, the newest. Ignored by default; run with
    // `cargo test --release -p sluice-engine -- --ignored scale` (prints the time).
    #[test]
    #[ignore]
    fn scale_million_records_ten_thousand_keys() {
        let keys = 10_000i64;
        let mut batches = Vec::new();
        for b in 0..10_000i64 {
            let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..100)
                .map(|i| {
                    let o = b * 100 + i;
                    (
                        format!("key-{}", o % keys).into_bytes(),
                        o.to_be_bytes().to_vec(),
                    )
                })
                .collect();
            let refs: Vec<KeyValue<'_>> = recs
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
                .collect();
            batches.push(build_batch(b * 100, NOW_MS, 3, &refs));
        }
        let started = std::time::Instant::now();
        let mut map = KeyOffsetMap::new(keys as usize, 1 << 20);
        for b in &batches {
            map.add_batch(b).unwrap();
        }
        let mut survivors = 0usize;
        for b in &batches {
            let kept = match clean_batch(b, &map, &rules()).unwrap() {
                CleanedBatch::Removed => continue,
                CleanedBatch::Unchanged => b.clone(),
                CleanedBatch::Rewritten(nb) => nb,
            };
            let base = BatchHeader::new(&kept).unwrap().base_offset().0;
            for r in decode_batch(&kept, 1 << 20).unwrap().records {
                let o = base + i64::from(r.offset_delta);
                assert!(o >= 1_000_000 - keys);
                assert_eq!(r.value.as_deref(), Some(&o.to_be_bytes()[..]));
                survivors += 1;
            }
        }
        assert_eq!(survivors, keys as usize);
        println!(
            "compacted 1000000 records over {keys} keys in {:?}",
            started.elapsed()
        );
    }

    // Proves a corrupt batch gives a typed error from both steps, not a panic.
    #[test]
    fn corrupt_batch_is_an_error() {
        let mut b = build_batch(7, 1, 1, &[(Some(b"k"), Some(b"v"))]);
        let last = b.len() - 3;
        b[HEADER_BYTES..last].fill(0xAB);
        let mut map = KeyOffsetMap::new(10, 1 << 20);
        assert!(matches!(
            map.add_batch(&b),
            Err(CompactError::Record {
                base_offset: Offset(7),
                ..
            })
        ));
        assert!(clean_batch(&b, &map, &rules()).is_err());
    }
}
