//! Pre-built record batches. Each template is encoded once at start; sending a batch copies the
//! template, stamps the send time (wall-clock microseconds in the first 8 bytes of the first
//! record's value, and the batch timestamp), the producer id and sequence, compresses the
//! record section when asked, and recomputes the CRC. No per-record work happens while sending.

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_net::client::batch::{self, BATCH_HEADER_BYTES, Compression};

/// Bytes at the start of each value that carry the send time.
pub const SEND_TIME_BYTES: usize = 8;

/// The shape of the records in a template.
#[derive(Debug, Clone, Copy)]
pub struct RecordShape {
    pub record_bytes: usize,
    pub key_bytes: usize,
    /// Number of distinct keys drawn from uniformly (ignored without keys).
    pub keys: u64,
}

/// One pre-built batch.
pub struct BatchTemplate {
    plain: Bytes,
    value_offset: usize,
    pub records: i32,
    /// Key plus value bytes of all records, for MB/s.
    pub payload_bytes: u64,
    compression: Compression,
}

/// Scratch space reused across sends.
#[derive(Default)]
pub struct Renderer {
    out: BytesMut,
    records: Vec<u8>,
}

impl BatchTemplate {
    pub fn build(
        shape: RecordShape,
        records: i32,
        compression: Compression,
        seed: u64,
    ) -> Result<Self> {
        if shape.record_bytes < SEND_TIME_BYTES {
            bail!(
                "--record-size must be at least {SEND_TIME_BYTES} bytes (it carries the send time)"
            );
        }
        if records < 1 {
            bail!("a batch needs at least one record");
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let list: Vec<_> = (0..records)
            .map(|i| {
                let key = (shape.key_bytes > 0).then(|| {
                    let id = rng.random_range(0..shape.keys.max(1));
                    let mut key = format!("{id:0width$}", width = shape.key_bytes).into_bytes();
                    key.truncate(shape.key_bytes);
                    Bytes::from(key)
                });
                let value: Vec<u8> = (0..shape.record_bytes)
                    .map(|_| rng.random_range(b'A'..=b'Z'))
                    .collect();
                batch::plain_record(i64::from(i), 0, key, Some(Bytes::from(value)))
            })
            .collect();
        let plain = batch::encode_batch(&list, Compression::None)
            .context("building a batch template")?
            .freeze();
        let first = batch::first_record_value(&plain, plain.len())
            .context("reading back a batch template")?
            .context("template has a value")?;
        let value_offset = first.as_ptr() as usize - plain.as_ptr() as usize;
        assert!(value_offset + SEND_TIME_BYTES <= plain.len());
        Ok(Self {
            plain,
            value_offset,
            records,
            payload_bytes: records as u64 * (shape.record_bytes + shape.key_bytes) as u64,
            compression,
        })
    }

    /// The batch to send at `send_wall_us`, optionally as an idempotent producer's batch.
    pub fn render(
        &self,
        renderer: &mut Renderer,
        send_wall_us: u64,
        producer: Option<(i64, i16, i32)>,
    ) -> Result<Bytes> {
        let out = &mut renderer.out;
        out.clear();
        let stamp = send_wall_us.to_be_bytes();
        if self.compression == Compression::None {
            out.extend_from_slice(&self.plain);
            out[self.value_offset..self.value_offset + SEND_TIME_BYTES].copy_from_slice(&stamp);
        } else {
            out.extend_from_slice(&self.plain[..BATCH_HEADER_BYTES]);
            let records = &mut renderer.records;
            records.clear();
            records.extend_from_slice(&self.plain[BATCH_HEADER_BYTES..]);
            let at = self.value_offset - BATCH_HEADER_BYTES;
            records[at..at + SEND_TIME_BYTES].copy_from_slice(&stamp);
            batch::compress(self.compression, records, out).context("compressing a batch")?;
            batch::set_compression_and_length(out, self.compression);
        }
        batch::set_first_timestamp(out, (send_wall_us / 1000) as i64);
        if let Some((producer_id, producer_epoch, base_sequence)) = producer {
            batch::set_producer(out, producer_id, producer_epoch, base_sequence);
        }
        batch::update_crc(out);
        Ok(out.split().freeze())
    }
}

/// Reads the send time a template stamped into a fetched batch.
pub fn send_time_us(batch: &Bytes, uncompressed_bytes_max: usize) -> Option<u64> {
    let value = batch::first_record_value(batch, uncompressed_bytes_max).ok()??;
    let stamp: [u8; SEND_TIME_BYTES] = value.get(..SEND_TIME_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_batches_decode_with_stamped_time_and_producer() {
        // Proves every codec's rendered batch is a valid batch (CRC, length) that decodes to the
        // template's record count, carries the send time in the first value and batch
        // timestamp, and the producer fields of an idempotent send.
        let shape = RecordShape {
            record_bytes: 100,
            key_bytes: 6,
            keys: 10,
        };
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let template = BatchTemplate::build(shape, 20, compression, 7).unwrap();
            let mut renderer = Renderer::default();
            let at = 1_763_000_000_123_456u64;
            let bytes = template
                .render(&mut renderer, at, Some((9, 1, 40)))
                .unwrap();
            assert!(batch::crc_matches(&bytes).unwrap(), "{compression:?}");
            let header = batch::BatchHeader::parse(&bytes).unwrap();
            assert_eq!(header.total_bytes(), bytes.len());
            assert_eq!(header.first_timestamp, 1_763_000_000_123);
            assert_eq!((header.producer_id, header.base_sequence), (9, 40));
            assert_eq!(send_time_us(&bytes, 1 << 20), Some(at));
            let decoded = batch::decode_batch(bytes, 1 << 20).unwrap();
            assert_eq!(decoded.records.len(), 20);
            assert_eq!(decoded.compression, compression);
            assert_eq!(decoded.records[0].key.as_ref().unwrap().len(), 6);
            assert_eq!(decoded.records[19].value.as_ref().unwrap().len(), 100);
            assert_eq!(decoded.records[19].sequence, 59);
            // A second render reuses the scratch and stamps a new time.
            let again = template.render(&mut renderer, at + 1, None).unwrap();
            assert_eq!(send_time_us(&again, 1 << 20), Some(at + 1));
        }
        assert!(
            BatchTemplate::build(
                RecordShape {
                    record_bytes: 4,
                    key_bytes: 0,
                    keys: 1
                },
                1,
                Compression::None,
                1
            )
            .is_err()
        );
    }
}
