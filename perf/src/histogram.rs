//! Latency histograms: recording bounds, percentile summaries, the `.hgrm` percentile text,
//! HdrHistogram interval logs (`.hlog`), and the compact base64 form kept in `--json` results.
//!
//! Values are microseconds. Files written for people and for HdrHistogram's own tools show
//! milliseconds (the `.hgrm` value column, the `.hlog` max column), as those tools expect.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Highest latency recorded: one hour in microseconds. Longer values are clamped to it.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
const US_PER_MS: f64 = 1000.0;

/// A latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
        .expect("static bounds are valid")
}

/// Records `count` observations of `latency_us`, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, latency_us: u64, count: u64) {
    let value = latency_us.clamp(1, LATENCY_US_MAX);
    histogram
        .record_n(value, count)
        .expect("value is clamped into the histogram's range");
}

/// The percentiles a summary reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
}

/// The names `compare --max-ratio` accepts, with how to read each from [`Percentiles`].
/// Reads one percentile out of a summary.
pub type PercentileReader = fn(&Percentiles) -> u64;

pub const PERCENTILE_NAMES: &[(&str, PercentileReader)] = &[
    ("p50", |p| p.p50_us),
    ("p90", |p| p.p90_us),
    ("p99", |p| p.p99_us),
    ("p99.9", |p| p.p999_us),
    ("p99.99", |p| p.p9999_us),
    ("max", |p| p.max_us),
];

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            p9999_us: histogram.value_at_quantile(0.9999),
            max_us: histogram.max(),
        }
    }
}

/// Writes the standard HdrHistogram percentile distribution (values in milliseconds).
pub fn write_hgrm(histogram: &Histogram<u64>, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total: u64 = 0;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / US_PER_MS;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            writeln!(
                out,
                "{value:12.3} {quantile:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - quantile)
            )?;
        } else {
            writeln!(out, "{value:12.3} {quantile:2.12} {total:10}")?;
        }
    }
    let (mean, stdev) = if histogram.is_empty() {
        (0.0, 0.0)
    } else {
        (histogram.mean() / US_PER_MS, histogram.stdev() / US_PER_MS)
    };
    writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64 / US_PER_MS,
        histogram.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        histogram.distinct_values()
    )?;
    Ok(())
}

/// One row of an `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmRow {
    pub value_ms: f64,
    pub percentile: f64,
    pub total_count: u64,
}

/// Reads the rows of an `.hgrm` file (as written by us or by HdrHistogram's tools).
pub fn parse_hgrm(text: &str) -> Result<Vec<HgrmRow>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || line.trim_start().starts_with('#') {
            continue;
        }
        let (Ok(value_ms), Ok(percentile), Ok(total_count)) =
            (fields[0].parse(), fields[1].parse(), fields[2].parse())
        else {
            continue;
        };
        rows.push(HgrmRow {
            value_ms,
            percentile,
            total_count,
        });
    }
    if rows.is_empty() {
        bail!("no percentile rows found");
    }
    Ok(rows)
}

/// Encodes a histogram as base64 of its compressed V2 form (as in HdrHistogram logs).
pub fn to_base64(histogram: &Histogram<u64>) -> Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| anyhow::anyhow!("serializing histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes [`to_base64`]'s output.
pub fn from_base64(text: &str) -> Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("decoding histogram: {e:?}"))
}

/// Collects interval histograms and writes them as an HdrHistogram interval log. The log is
/// written whole at the end (runs are short), which keeps the writer free of borrows.
pub struct HlogWriter {
    path: std::path::PathBuf,
    start: SystemTime,
    comment: String,
    intervals: Vec<(Histogram<u64>, Duration, Duration, String)>,
}

impl HlogWriter {
    pub fn create(path: &std::path::Path, start: SystemTime, comment: &str) -> Result<Self> {
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            start,
            comment: comment.to_string(),
            intervals: Vec::new(),
        })
    }

    /// Adds one interval that started `offset` after the log's start.
    pub fn write(
        &mut self,
        histogram: &Histogram<u64>,
        offset: Duration,
        length: Duration,
        tag: &str,
    ) -> Result<()> {
        self.intervals
            .push((histogram.clone(), offset, length, tag.to_string()));
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        let mut out = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut log = IntervalLogWriterBuilder::new()
                .add_comment(&self.comment)
                .with_start_time(self.start)
                .with_base_time(self.start)
                .with_max_value_divisor(US_PER_MS)
                .begin_log_with(&mut out, &mut serializer)?;
            log.write_comment(
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"",
            )?;
            for (histogram, offset, length, tag) in &self.intervals {
                let tag = hdrhistogram::serialization::interval_log::Tag::new(tag);
                log.write_histogram(histogram, *offset, *length, tag)
                    .map_err(|e| anyhow::anyhow!("writing interval: {e:?}"))?;
            }
        }
        std::fs::write(&self.path, out).with_context(|| format!("writing {}", self.path.display()))
    }
}

/// One interval read back from an interval log.
pub struct HlogInterval {
    pub tag: Option<String>,
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// Reads every interval of an interval log.
pub fn read_hlog(bytes: &[u8]) -> Result<Vec<HlogInterval>> {
    let mut intervals = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("reading interval log: {e:?}"))?;
        if let LogEntry::Interval(interval) = entry {
            intervals.push(HlogInterval {
                tag: interval.tag().map(|t| t.as_str().to_string()),
                start: interval.start_timestamp(),
                length: interval.duration(),
                histogram: from_base64(interval.encoded_histogram())?,
            });
        }
    }
    Ok(intervals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic() -> Histogram<u64> {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record(&mut h, v * 10, 1);
        }
        record(&mut h, 5_000_000, 3);
        h
    }

    #[test]
    fn hgrm_total_count_equals_recorded_count() {
        // Proves the percentile file's last TotalCount and footer equal what was recorded, and
        // that its values are milliseconds.
        let h = synthetic();
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows = parse_hgrm(&text).unwrap();
        assert_eq!(rows.last().unwrap().total_count, 10_003);
        assert_eq!(rows.last().unwrap().percentile, 1.0);
        assert!((rows.last().unwrap().value_ms - 5000.0).abs() < 5.0);
        assert!(text.contains("Total count    =        10003"), "{text}");
        assert!(rows.windows(2).all(|w| w[0].percentile <= w[1].percentile));
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        // Proves the summary's percentiles read the right quantiles (within HdrHistogram's
        // 3-significant-digit precision).
        let p = Percentiles::of(&synthetic());
        assert_eq!(p.count, 10_003);
        assert!(
            (p.p50_us as f64 - 50_000.0).abs() / 50_000.0 < 0.002,
            "{p:?}"
        );
        assert!(
            (p.p99_us as f64 - 99_000.0).abs() / 99_000.0 < 0.002,
            "{p:?}"
        );
        assert!(p.max_us >= 5_000_000 && p.max_us < 5_010_000);
        let clamped = record_clamps();
        assert!(histogram_equivalent(clamped, LATENCY_US_MAX), "{clamped}");
    }

    /// Whether two values fall in the same bucket at 3 significant digits.
    fn histogram_equivalent(a: u64, b: u64) -> bool {
        let h = new_histogram();
        h.equivalent(a, b)
    }

    fn record_clamps() -> u64 {
        let mut h = new_histogram();
        record(&mut h, u64::MAX, 1);
        record(&mut h, 0, 1);
        assert_eq!(h.min(), 1);
        h.max()
    }

    #[test]
    fn base64_and_interval_log_round_trip() {
        // Proves histograms survive the base64 form and the interval log, intervals keep their
        // tags and offsets, and the merged intervals equal the whole.
        let h = synthetic();
        assert_eq!(from_base64(&to_base64(&h).unwrap()).unwrap(), h);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.hlog");
        let mut writer = HlogWriter::create(&path, SystemTime::now(), "test").unwrap();
        let mut a = new_histogram();
        record(&mut a, 100, 5);
        let mut b = new_histogram();
        record(&mut b, 2000, 7);
        writer
            .write(
                &a,
                Duration::from_secs(1),
                Duration::from_secs(1),
                "produce",
            )
            .unwrap();
        writer
            .write(
                &b,
                Duration::from_secs(2),
                Duration::from_secs(1),
                "produce",
            )
            .unwrap();
        writer.finish().unwrap();
        let text = std::fs::read(&path).unwrap();
        let intervals = read_hlog(&text).unwrap();
        assert_eq!(intervals.len(), 2);
        assert_eq!(intervals[0].tag.as_deref(), Some("produce"));
        assert_eq!(intervals[1].start, Duration::from_secs(2));
        assert_eq!(
            intervals[0].histogram.len() + intervals[1].histogram.len(),
            12
        );
    }
}
