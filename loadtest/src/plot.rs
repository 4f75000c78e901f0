//! `--plot FILE.svg`: the latency percentile distribution, the classic HdrHistogram chart.
//!
//! The x axis is `log10(1 / (1 - q))`, so 90%, 99%, 99.9% and 99.99% are evenly spaced and the
//! tail, where servers differ, gets as much room as the median. SVG only, drawn by plotters with
//! no font backend: the SVG viewer renders the text, so no system fonts are needed to build or run.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::Report;

/// Draws `latency` (µs) to an SVG file at `path`.
pub fn latency_svg(path: &Path, latency: &Histogram<u64>, report: &Report) -> Result<(), String> {
    let points = percentile_points(latency);
    let max_x = points.last().map_or(1.0, |p| p.0).max(1.0);
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "latency by percentile: {} {} clients, {} msg/s, {} deliveries",
        report.protocol, report.clients_connected, report.rate, report.delivered
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, from scheduled send)")
        .x_labels(max_x.ceil() as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!(
            "p50 {:.2} ms · p99 {:.2} ms · p99.9 {:.2} ms · max {:.2} ms",
            report.latency_ms.p50,
            report.latency_ms.p99,
            report.latency_ms.p999,
            report.latency_ms.max
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `(log10(1/(1-q)), latency ms)` along the distribution, ending at the maximum.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    // Beyond 1 - 1/samples the percentiles are just the maximum.
    let last_x = (h.len() as f64).log10().max(1.0);
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                last_x
            } else {
                (1.0 / (1.0 - q)).log10().min(last_x)
            };
            (
                x,
                h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
            )
        })
        .collect();
    points.push((last_x, h.max() as f64 / 1000.0));
    points.dedup_by(|a, b| a.0 <= b.0 && a.1 <= b.1 && a.0 == b.0);
    points
}

/// `1` → `90%`, `2` → `99%`, `3` → `99.9%`.
fn percentile_label(x: f64) -> String {
    let q = 100.0 - 100.0 / 10f64.powf(x);
    let s = format!("{q:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
    }

    #[test]
    fn draws_an_svg() {
        let mut h = crate::stats::micros_histogram();
        for us in 1..=10_000 {
            h.record(us * 10).unwrap();
        }
        let points = percentile_points(&h);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((points.last().unwrap().1 - 100.0).abs() < 0.1);
        let path = std::env::temp_dir().join(format!("loadtest-plot-{}.svg", std::process::id()));
        latency_svg(&path, &h, &Report::default()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg") && svg.contains("99.9%") && svg.contains("<polyline"));
    }
}
