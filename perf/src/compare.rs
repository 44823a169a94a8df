//! `sluice-perf compare`: percentiles and throughput of two results side by side, with limits.
//!
//! Each side may be several runs of the same scenario (comma-separated paths); each metric is
//! then the median over those runs, which is what CI uses against a noisy shared machine.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::histogram::{PERCENTILE_NAMES, Percentiles};
use crate::results;

/// Limits that make `compare` fail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `(percentile name, highest allowed new/base ratio)`.
    pub max_ratio: Vec<(String, f64)>,
    /// Lowest allowed new/base records/s ratio.
    pub min_throughput_ratio: Option<f64>,
    /// Latencies below this are raised to it before taking ratios, so that microsecond noise
    /// on tiny values does not count as a regression.
    pub latency_floor_us: u64,
}

/// Parses `p99=1.5,p99.9=2`.
pub fn parse_max_ratio(text: &str) -> Result<Vec<(String, f64)>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (name, ratio) = pair
                .split_once('=')
                .with_context(|| format!("{pair:?} is not NAME=RATIO"))?;
            let name = name.trim();
            if !PERCENTILE_NAMES.iter().any(|(n, _)| *n == name) {
                let known: Vec<_> = PERCENTILE_NAMES.iter().map(|(n, _)| *n).collect();
                bail!("unknown percentile {name:?}; known: {}", known.join(", "));
            }
            let ratio: f64 = ratio
                .trim()
                .parse()
                .with_context(|| format!("ratio in {pair:?}"))?;
            if ratio.is_nan() || ratio <= 0.0 {
                bail!("ratio in {pair:?} must be positive");
            }
            Ok((name.to_string(), ratio))
        })
        .collect()
}

/// One side of the comparison: the median of each metric over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub runs: usize,
    pub percentiles_us: Vec<(String, u64)>,
    pub records_per_s: Option<f64>,
}

fn median_u64(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2
    }
}

fn median_f64(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl Side {
    pub fn from_runs(runs: &[(Percentiles, Option<f64>)]) -> Self {
        let percentiles_us = PERCENTILE_NAMES
            .iter()
            .map(|(name, read)| {
                let values = runs.iter().map(|(p, _)| read(p)).collect();
                (name.to_string(), median_u64(values))
            })
            .collect();
        let throughputs: Vec<f64> = runs.iter().filter_map(|(_, t)| *t).collect();
        Self {
            runs: runs.len(),
            percentiles_us,
            records_per_s: if throughputs.len() == runs.len() {
                median_f64(throughputs)
            } else {
                None
            },
        }
    }

    pub fn load(paths: &[PathBuf], measurement: Option<&str>) -> Result<Self> {
        let runs = paths
            .iter()
            .map(|path| {
                let loaded = results::load(path, measurement)?;
                Ok((Percentiles::of(&loaded.histogram), loaded.records_per_s))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_runs(&runs))
    }

    fn value(&self, name: &str) -> u64 {
        self.percentiles_us
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// One printed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub base: f64,
    pub new: f64,
    pub ratio: f64,
    pub limit: Option<String>,
    pub violated: bool,
}

/// Compares `new` against `base` under `limits`.
pub fn compare(base: &Side, new: &Side, limits: &Limits) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, _) in PERCENTILE_NAMES {
        let b = base.value(name).max(limits.latency_floor_us);
        let n = new.value(name).max(limits.latency_floor_us);
        let ratio = if b == 0 { 1.0 } else { n as f64 / b as f64 };
        let limit = limits
            .max_ratio
            .iter()
            .find(|(l, _)| l == name)
            .map(|(_, r)| *r);
        rows.push(Row {
            metric: format!("{name} (ms)"),
            base: base.value(name) as f64 / 1000.0,
            new: new.value(name) as f64 / 1000.0,
            ratio,
            limit: limit.map(|l| format!("<= {l}")),
            violated: limit.is_some_and(|l| ratio > l),
        });
    }
    if let (Some(b), Some(n)) = (base.records_per_s, new.records_per_s) {
        let ratio = if b > 0.0 { n / b } else { 1.0 };
        let limit = limits.min_throughput_ratio;
        rows.push(Row {
            metric: "records/s".into(),
            base: b,
            new: n,
            ratio,
            limit: limit.map(|l| format!(">= {l}")),
            violated: limit.is_some_and(|l| ratio < l),
        });
    }
    rows
}

/// The comparison as a table.
pub fn render(rows: &[Row], base: &Side, new: &Side) -> String {
    let mut out = format!(
        "{:<14} {:>14} {:>14} {:>8}  {}\n",
        format!("metric"),
        format!("base (n={})", base.runs),
        format!("new (n={})", new.runs),
        "ratio",
        "limit"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<14} {:>14.3} {:>14.3} {:>8.3}  {}{}\n",
            row.metric,
            row.base,
            row.new,
            row.ratio,
            row.limit.as_deref().unwrap_or(""),
            if row.violated { "  EXCEEDED" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{new_histogram, record};

    fn run(scale: u64, throughput: f64) -> (Percentiles, Option<f64>) {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            record(&mut h, v * scale, 1);
        }
        (Percentiles::of(&h), Some(throughput))
    }

    #[test]
    fn parses_limits_and_rejects_unknown_names() {
        // Proves the --max-ratio syntax from the docs parses and typos are errors.
        assert_eq!(
            parse_max_ratio("p99=1.5,p99.9=2").unwrap(),
            vec![("p99".to_string(), 1.5), ("p99.9".to_string(), 2.0)]
        );
        assert!(parse_max_ratio("p98=1.5").is_err());
        assert!(parse_max_ratio("p99").is_err());
        assert!(parse_max_ratio("p99=-1").is_err());
    }

    #[test]
    fn flags_latency_and_throughput_regressions_only_past_limits() {
        // Proves a doubled latency breaks a 1.5x p99 limit while a 10% rise does not, and a
        // throughput drop to 70% breaks a 0.8 floor.
        let base = Side::from_runs(&[run(100, 1000.0)]);
        let limits = Limits {
            max_ratio: vec![("p99".into(), 1.5)],
            min_throughput_ratio: Some(0.8),
            latency_floor_us: 0,
        };
        let slight = Side::from_runs(&[run(110, 950.0)]);
        assert!(compare(&base, &slight, &limits).iter().all(|r| !r.violated));
        let worse = Side::from_runs(&[run(200, 700.0)]);
        let rows = compare(&base, &worse, &limits);
        let violated: Vec<_> = rows
            .iter()
            .filter(|r| r.violated)
            .map(|r| r.metric.as_str())
            .collect();
        assert_eq!(violated, vec!["p99 (ms)", "records/s"]);
        let p99 = rows.iter().find(|r| r.metric == "p99 (ms)").unwrap();
        assert!((p99.ratio - 2.0).abs() < 0.01, "{p99:?}");
        assert!(render(&rows, &base, &worse).contains("EXCEEDED"));
    }

    #[test]
    fn medians_ignore_one_outlier_run() {
        // Proves several runs per side are summarised by their median, so one noisy run among
        // three does not decide the outcome.
        let side = Side::from_runs(&[run(100, 1000.0), run(1000, 100.0), run(102, 990.0)]);
        assert_eq!(side.runs, 3);
        assert_eq!(side.records_per_s, Some(990.0));
        let p99 = side.value("p99");
        assert!((99_000..=101_500).contains(&p99), "{p99}");
    }

    #[test]
    fn latency_floor_hides_microsecond_noise() {
        // Proves values under the floor compare as equal.
        let base = Side::from_runs(&[run(1, 1.0)]);
        let new = Side::from_runs(&[run(3, 1.0)]);
        let limits = Limits {
            max_ratio: vec![("p50".into(), 1.5)],
            min_throughput_ratio: None,
            latency_floor_us: 10_000,
        };
        assert!(compare(&base, &new, &limits).iter().all(|r| !r.violated));
    }
}
