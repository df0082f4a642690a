//! The pictures of `docs/benchmarks.md`, drawn from a run's summary
//! (`target/bench/summary.json`): horizontal grouped bar charts as standalone SVG, one row per
//! target and one bar per series, each bar labelled with its value, so the comparison reads at a
//! glance and the figure stays exact.

use std::{fmt::Write as _, path::Path};

use anyhow::Result;
use serde_json::Value;

/// Draw every chart of `summary` into `docs/bench/`.
pub(super) fn write(root: &Path, summary: &Value) -> Result<()> {
    let dir = root.join("docs/bench");
    std::fs::create_dir_all(&dir)?;
    for (name, svg) in charts(summary) {
        std::fs::write(dir.join(name), svg)?;
    }
    Ok(())
}

/// The charts of a summary: file name and SVG. B11's appear when the run measured it.
pub(super) fn charts(summary: &Value) -> Vec<(&'static str, String)> {
    let rows = |group: &Value, ids: &[&str], keys: &[&str]| -> Vec<(String, Vec<f64>)> {
        ids.iter()
            .filter(|id| group[**id].is_object())
            .map(|id| {
                let target = &group[*id];
                let values = keys
                    .iter()
                    .map(|k| target[*k].as_f64().unwrap_or(f64::NAN))
                    .collect();
                let name = target["name"].as_str().unwrap_or_default();
                (format!("{id} {name}"), values)
            })
            .collect()
    };
    let classic = &summary["targets"];
    let ids: Vec<&str> = classic
        .as_object()
        .map(|targets| targets.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut charts = Vec::new();
    if !ids.is_empty() {
        let latency = Chart {
            title: "B1: sequential non-streaming latency (lower is better)",
            unit: "µs",
            series: &["p50", "p99"],
            rows: rows(classic, &ids, &["b1_p50_us", "b1_p99_us"]),
        };
        let throughput = Chart {
            title: "B2: closed-loop throughput (higher is better)",
            unit: "rps",
            series: &["16 connections", "64 connections"],
            rows: rows(classic, &ids, &["b2_16_rps", "b2_64_rps"]),
        };
        charts.push(("latency.svg", latency.svg()));
        charts.push(("throughput.svg", throughput.svg()));
    }
    let fast = &summary["b11"]["targets"];
    if fast.is_object() {
        let ids = ["U0", "U1", "U3", "U4"];
        let cpu = Chart {
            title: "B11: CPU per request, fast upstream, 64 connections (lower is better)",
            unit: "µs",
            series: &["CPU per request"],
            rows: rows(fast, &ids, &["cpu_us_per_request"]),
        };
        let throughput = Chart {
            title: "B11: throughput, fast upstream, 64 connections (higher is better)",
            unit: "rps",
            series: &["our load client", "wrk"],
            rows: rows(fast, &ids, &["rps", "wrk_rps"]),
        };
        charts.push(("fast-cpu.svg", cpu.svg()));
        charts.push(("fast-throughput.svg", throughput.svg()));
    }
    charts
}

/// One chart: rows of (label, one value per series). A missing value (`NaN`) draws no bar.
pub(super) struct Chart<'a> {
    pub(super) title: &'a str,
    pub(super) unit: &'a str,
    pub(super) series: &'a [&'a str],
    pub(super) rows: Vec<(String, Vec<f64>)>,
}

/// Colours of the series, told apart in grey print as well.
const COLOURS: [&str; 4] = ["#3b6ea5", "#e08a2c", "#5a9e4b", "#8c5aa5"];
/// About the width of one character at the labels' size.
const CHAR: f64 = 6.8;
const PLOT_WIDTH: f64 = 420.0;
const VALUE_WIDTH: f64 = 80.0;
const BAR: f64 = 14.0;
const GAP: f64 = 10.0;
const TOP: f64 = 56.0;

impl Chart<'_> {
    pub(super) fn svg(&self) -> String {
        let max = self
            .rows
            .iter()
            .flat_map(|(_, values)| values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max);
        let scale = if max > 0.0 { PLOT_WIDTH / max } else { 0.0 };
        let longest = self
            .rows
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let label_width = 16.0 + CHAR * longest as f64;
        let row_height = BAR * self.series.len() as f64 + GAP;
        let width = label_width + PLOT_WIDTH + VALUE_WIDTH;
        let height = TOP + row_height * self.rows.len() as f64 + 10.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            svg,
            r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="18" font-size="14" font-weight="bold">{}</text>"#,
            escape(self.title)
        );
        let mut x = label_width;
        for (i, series) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="31" width="10" height="10" fill="{}"/><text x="{}" y="40">{}</text>"#,
                COLOURS[i % COLOURS.len()],
                x + 16.0,
                escape(series)
            );
            x += 24.0 + CHAR * series.chars().count() as f64;
        }
        for (r, (label, values)) in self.rows.iter().enumerate() {
            let y0 = TOP + row_height * r as f64;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                label_width - 8.0,
                y0 + row_height / 2.0,
                escape(label)
            );
            for (i, value) in values.iter().enumerate() {
                let y = y0 + BAR * i as f64;
                if !value.is_finite() {
                    continue;
                }
                let w = (value * scale).max(1.0);
                let _ = write!(
                    svg,
                    r#"<rect x="{label_width:.1}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{} {}</text>"#,
                    BAR - 2.0,
                    COLOURS[i % COLOURS.len()],
                    label_width + w + 4.0,
                    y + BAR - 4.0,
                    figure(*value),
                    escape(self.unit)
                );
            }
        }
        svg += "</svg>\n";
        svg
    }
}

/// A value as the tables print it: whole numbers from 100 up, one decimal below.
fn figure(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_skip_missing_ones() {
        let chart = Chart {
            title: "B2 <throughput>",
            unit: "rps",
            series: &["@16", "@64"],
            rows: vec![
                ("T1 gateway".into(), vec![10_000.0, 20_000.0]),
                ("T3 bare".into(), vec![5_000.0, f64::NAN]),
            ],
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("B2 &lt;throughput&gt;"));
        // The largest value spans the plot; half of it, half the plot.
        assert!(svg.contains(&format!(r#"width="{PLOT_WIDTH:.1}""#)));
        assert!(svg.contains(&format!(r#"width="{:.1}""#, PLOT_WIDTH / 4.0)));
        assert!(svg.contains(">20000 rps<"));
        // Three bars: the missing value draws none.
        assert_eq!(svg.matches(r#"height="12""#).count(), 3);
    }

    #[test]
    fn a_summary_gives_a_chart_per_figure_and_b11_only_when_measured() {
        let summary = serde_json::json!({
            "targets": {
                "T0": {"name": "mock upstream (floor)", "b1_p50_us": 54.0, "b1_p99_us": 139.0, "b2_16_rps": 15315.0, "b2_64_rps": 15881.0},
                "T1": {"name": "gateway, pass-through", "b1_p50_us": 230.0, "b1_p99_us": 553.0, "b2_16_rps": 11690.0, "b2_64_rps": 10896.0}
            },
            "b11": null
        });
        let drawn = charts(&summary);
        let names: Vec<&str> = drawn.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["latency.svg", "throughput.svg"]);
        let (_, latency) = &drawn[0];
        assert!(latency.contains(">T1 gateway, pass-through<"));
        assert!(latency.contains(">553 µs<"));
        let mut summary = summary;
        summary["b11"] = serde_json::json!({"targets": {"U1": {"name": "gateway", "rps": 12913.0, "wrk_rps": 11824.0, "cpu_us_per_request": 76.3}}});
        let drawn = charts(&summary);
        assert_eq!(drawn.len(), 4);
        assert!(drawn[2].1.contains(">76.3 µs<"));
    }
}
