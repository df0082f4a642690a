//! The pictures of `docs/benchmarks.md`: horizontal grouped bar charts as standalone SVG, one
//! row per target and one bar per series, each bar labelled with its value, so the comparison
//! reads at a glance and the figure stays exact.

use std::fmt::Write as _;

/// One chart: rows of (label, one value per series). A missing value (`NaN`) draws no bar.
pub(super) struct Chart<'a> {
    pub(super) title: &'a str,
    pub(super) unit: &'a str,
    pub(super) series: &'a [&'a str],
    pub(super) rows: Vec<(String, Vec<f64>)>,
}

/// Colours of the series, told apart in grey print as well.
const COLOURS: [&str; 4] = ["#3b6ea5", "#e08a2c", "#5a9e4b", "#8c5aa5"];
const LABEL_WIDTH: f64 = 250.0;
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
        let row_height = BAR * self.series.len() as f64 + GAP;
        let width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH;
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
        let mut x = LABEL_WIDTH;
        for (i, series) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="31" width="10" height="10" fill="{}"/><text x="{}" y="40">{}</text>"#,
                COLOURS[i % COLOURS.len()],
                x + 16.0,
                escape(series)
            );
            x += 24.0 + 7.0 * series.chars().count() as f64;
        }
        for (r, (label, values)) in self.rows.iter().enumerate() {
            let y0 = TOP + row_height * r as f64;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL_WIDTH - 8.0,
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
                    r#"<rect x="{LABEL_WIDTH}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{} {}</text>"#,
                    BAR - 2.0,
                    COLOURS[i % COLOURS.len()],
                    LABEL_WIDTH + w + 4.0,
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
}
