//! A run's results: what was measured, on which machine, against which broker, with which
//! parameters. Written with `--json`, read back by `compare` and `plot` (which also read
//! `.hlog` interval logs and `.hgrm` percentile files).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::histogram::{self, Percentiles};

/// Bumped when the JSON layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// One latency measurement of a run (a run of `e2e` has two: produce and end-to-end).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `produce`, `e2e` or `consume`.
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub duration_s: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub latency: Percentiles,
    /// The full histogram (microseconds), base64 of its compressed V2 encoding.
    pub histogram: String,
}

impl Measurement {
    pub fn new(
        name: &str,
        histogram: &Histogram<u64>,
        records: u64,
        bytes: u64,
        duration: Duration,
    ) -> Result<Self> {
        let seconds = duration.as_secs_f64().max(1e-9);
        Ok(Self {
            name: name.to_string(),
            records,
            bytes,
            duration_s: seconds,
            records_per_s: records as f64 / seconds,
            mb_per_s: bytes as f64 / seconds / 1_000_000.0,
            latency: Percentiles::of(histogram),
            histogram: histogram::to_base64(histogram)?,
        })
    }

    pub fn histogram(&self) -> Result<Histogram<u64>> {
        histogram::from_base64(&self.histogram)
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub hostname: String,
}

impl Machine {
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu_model,
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }
}

/// One API range the broker advertised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiRange {
    pub api_key: i16,
    pub name: String,
    pub min_version: i16,
    pub max_version: i16,
}

/// Everything `--json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub format_version: u32,
    pub tool: String,
    pub command: String,
    /// The commit under test when the caller said so (`SLUICE_PERF_COMMIT`).
    pub commit: Option<String>,
    pub started_unix_ms: u64,
    pub machine: Machine,
    pub broker_api_versions: Vec<ApiRange>,
    pub parameters: serde_json::Value,
    pub measurements: Vec<Measurement>,
    /// Failed requests (error codes or lost connections) during the measured period.
    pub errors: u64,
}

impl RunResult {
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// A result loaded for `compare` or `plot`: one named histogram, with throughput when known.
pub struct Loaded {
    pub label: String,
    pub histogram: Histogram<u64>,
    pub records_per_s: Option<f64>,
}

/// Loads the measurement `name` (the first one when `None`) from a `.json` result, or the
/// merged intervals (with that tag, when given) of an `.hlog` interval log.
pub fn load(path: &Path, name: Option<&str>) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    if bytes.first() == Some(&b'{') {
        let run: RunResult = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {} as a sluice-perf result", path.display()))?;
        let measurement = match name {
            Some(name) => run.measurements.iter().find(|m| m.name == name),
            None => run.measurements.first(),
        }
        .with_context(|| format!("{} has no measurement {name:?}", path.display()))?;
        return Ok(Loaded {
            label,
            histogram: measurement.histogram()?,
            records_per_s: Some(measurement.records_per_s),
        });
    }
    let intervals = histogram::read_hlog(&bytes)
        .with_context(|| format!("reading {} as an interval log", path.display()))?;
    let mut merged = histogram::new_histogram();
    let mut span: Option<(Duration, Duration)> = None;
    for interval in intervals
        .iter()
        .filter(|i| name.is_none() || i.tag.as_deref() == name)
    {
        merged
            .add(&interval.histogram)
            .context("merging intervals")?;
        let end = interval.start + interval.length;
        span = Some(match span {
            None => (interval.start, end),
            Some((s, e)) => (s.min(interval.start), e.max(end)),
        });
    }
    let Some((start, end)) = span else {
        bail!("{} holds no intervals tagged {name:?}", path.display());
    };
    let seconds = (end - start).as_secs_f64();
    Ok(Loaded {
        label,
        records_per_s: (seconds > 0.0).then(|| merged.len() as f64 / seconds),
        histogram: merged,
    })
}
