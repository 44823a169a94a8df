//! `sluice-perf plot`: percentile-distribution curves of one or more runs, as PNG or SVG.
//!
//! The x axis is HdrHistogram's: 1/(1-percentile) on a log scale, labelled as percentiles, so
//! the tail (99%, 99.9%, 99.99%) gets as much room as the body. Text needs a TrueType font,
//! found at run time (`SLUICE_PERF_FONT` or the usual DejaVu/Liberation paths); without one
//! the curves are drawn unlabelled and a warning says so.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Candidate font files, first found wins.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers a system font with plotters once; returns whether text can be drawn.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let from_env = std::env::var("SLUICE_PERF_FONT").ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied());
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One curve: `(1/(1-percentile), latency in ms)` points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Highest x drawn: the 99.9999th percentile.
const X_MAX: f64 = 1_000_000.0;

impl Curve {
    pub fn from_histogram(label: &str, histogram: &Histogram<u64>) -> Self {
        let points = histogram
            .iter_quantiles(5)
            .filter(|step| step.quantile_iterated_to() < 1.0)
            .map(|step| {
                let x = (1.0 / (1.0 - step.quantile_iterated_to())).min(X_MAX);
                (x, step.value_iterated_to() as f64 / 1000.0)
            })
            .collect();
        Self {
            label: label.to_string(),
            points,
        }
    }
}

impl Curve {
    /// A curve from the rows of an `.hgrm` percentile file.
    pub fn from_hgrm(label: &str, rows: &[crate::histogram::HgrmRow]) -> Self {
        let points = rows
            .iter()
            .filter(|r| r.percentile < 1.0)
            .map(|r| ((1.0 / (1.0 - r.percentile)).min(X_MAX), r.value_ms))
            .collect();
        Self {
            label: label.to_string(),
            points,
        }
    }
}

fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    match p {
        p if p < 0.5 => "0%".into(),
        p if p < 99.0 => format!("{p:.0}%"),
        p => {
            let digits = ((1.0 / (1.0 - p / 100.0)).log10().round() as usize).saturating_sub(2);
            format!("{p:.digits$}%")
        }
    }
}

/// Draws `curves` to `output`; the extension (`.png` or `.svg`) picks the format.
pub fn plot(curves: &[Curve], title: &str, output: &Path) -> Result<()> {
    if curves.iter().all(|c| c.points.is_empty()) {
        bail!("nothing to plot: every histogram is empty");
    }
    let text = font_available();
    if !text {
        eprintln!("warning: no TrueType font found (set SLUICE_PERF_FONT); drawing without labels");
    }
    let size = (1280, 720);
    match output.extension().and_then(|e| e.to_str()) {
        Some("png") => {
            let root = BitMapBackend::new(output, size).into_drawing_area();
            draw(&root, curves, title, text)?;
            root.present()
                .map_err(|e| anyhow!("writing {}: {e}", output.display()))
        }
        Some("svg") => {
            let root = SVGBackend::new(output, size).into_drawing_area();
            draw(&root, curves, title, text)?;
            root.present()
                .map_err(|e| anyhow!("writing {}: {e}", output.display()))
        }
        _ => bail!("output {} must end in .png or .svg", output.display()),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    title: &str,
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let x_max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(10.0f64, f64::max)
        .min(X_MAX);
    let y_max = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold(0.001f64, f64::max)
        * 1.05;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        builder
            .caption(title, ("sans-serif", 28))
            .x_label_area_size(50)
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d((1.0f64..x_max * 1.5).log_scale(), 0.0f64..y_max)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&percentile_label);
    if text {
        mesh.x_desc("percentile")
            .y_desc("latency (ms)")
            .label_style(("sans-serif", 16));
    } else {
        mesh.disable_x_mesh().disable_y_mesh();
    }
    if text {
        mesh.draw().map_err(err)?;
    }
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series = chart
            .draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        if text {
            series.label(curve.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{new_histogram, record};

    #[test]
    fn percentile_labels_read_like_hdrhistograms() {
        // Proves the log x axis is labelled in percentiles with enough digits for the tail.
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&100_000.0), "99.999%");
    }

    #[test]
    fn draws_png_and_svg_with_one_labelled_line_per_run() {
        // Proves both formats are written from synthetic histograms and, where a font exists,
        // the SVG carries each run's label.
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=10_000u64 {
            record(&mut a, v, 1);
            record(&mut b, v * 2, 1);
        }
        let curves = vec![
            Curve::from_histogram("base", &a),
            Curve::from_histogram("new", &b),
        ];
        assert!(curves[0].points.len() > 10);
        assert!(curves[0].points.windows(2).all(|w| w[0].0 <= w[1].0));
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("x.png");
        let svg = dir.path().join("x.svg");
        plot(&curves, "test", &png).unwrap();
        plot(&curves, "test", &svg).unwrap();
        let png_bytes = std::fs::read(&png).unwrap();
        assert_eq!(&png_bytes[..4], b"\x89PNG");
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.contains("<polyline") || svg_text.contains("<path"));
        if font_available() {
            let texts: Vec<&str> = svg_text.lines().map(str::trim).collect();
            assert!(
                texts.contains(&"base") && texts.contains(&"new"),
                "labels missing"
            );
        }
        assert!(plot(&curves, "test", &dir.path().join("x.gif")).is_err());
    }
}
