//! The pass-through regression check (issue 11): this run's pass-through figures side by side
//! with a reference run's, stored in `xtask/bench/reference.json` (the figures of commit
//! `5974545` as `docs/benchmarks.md` recorded them; `cargo xtask bench --record-reference`
//! replaces them with the current run's). A figure more than [`TOLERANCE`] worse than the
//! reference is flagged; nothing fails, since timings on a shared machine are not assertions.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

/// How much worse than the reference a figure may be before it is flagged.
pub(super) const TOLERANCE: f64 = 0.05;

/// (key, what it is, whether lower is better).
const FIGURES: &[(&str, &str, bool)] = &[
    ("b1_p50_us", "B1 pass-through p50 µs", true),
    ("b1_p99_us", "B1 pass-through p99 µs", true),
    ("b1_added_p50_us", "B1 pass-through added p50 µs", true),
    ("b1_added_p99_us", "B1 pass-through added p99 µs", true),
    (
        "b1_added_p50_vs_bare",
        "B1 added p50 / bare proxy's added p50",
        true,
    ),
    ("b2_16_rps", "B2 pass-through rps @16", false),
    ("b2_64_rps", "B2 pass-through rps @64", false),
    (
        "b2_64_vs_bare",
        "B2 pass-through rps / bare proxy's @64",
        false,
    ),
    (
        "b2_64_cpu_us_per_request",
        "B2 pass-through CPU µs/request @64",
        true,
    ),
    (
        "b4_added_ttfc_p50_us",
        "B4 added time to first content p50 µs",
        true,
    ),
    (
        "b4_added_ttfc_p99_us",
        "B4 added time to first content p99 µs",
        true,
    ),
    ("b9_startup_ms", "B9 first 200 after start ms", true),
    ("b9_idle_rss_mib", "B9 idle RSS MiB", true),
    ("b9_stripped_mib", "B9 stripped binary MiB", true),
    ("b5_kib_per_stream", "B5 KiB per stream", true),
    (
        "b6_kib_per_idle_connection",
        "B6 KiB per idle connection",
        true,
    ),
];

fn path(root: &Path) -> std::path::PathBuf {
    root.join("xtask/bench/reference.json")
}

/// The stored reference, or `Null` when there is none.
pub(super) fn stored(root: &Path) -> Value {
    std::fs::read(path(root))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Replace the reference with `now` (this run's figures).
pub(super) fn record(root: &Path, now: &Value, commit: &str, run: &str) -> Result<()> {
    let figures: serde_json::Map<String, Value> = now
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_f64().is_some_and(f64::is_finite))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let reference = json!({"commit": commit, "run": run, "figures": figures});
    std::fs::write(path(root), serde_json::to_vec_pretty(&reference)?)?;
    Ok(())
}

/// One compared figure: label, reference, now, relative change, verdict.
struct Row {
    label: &'static str,
    then: f64,
    now: f64,
    change: f64,
    verdict: &'static str,
}

fn rows(reference: &Value, now: &Value) -> Vec<Row> {
    let mut out = Vec::new();
    for &(key, label, lower_better) in FIGURES {
        let (Some(then), Some(now)) = (
            reference["figures"][key].as_f64(),
            now[key].as_f64().filter(|x| x.is_finite()),
        ) else {
            continue;
        };
        let change = now / then - 1.0;
        let worse = if lower_better { change } else { -change };
        let verdict = if then <= 0.0 || now <= 0.0 {
            // A difference at or below zero has no meaningful percentage.
            "n/a"
        } else if worse > TOLERANCE {
            "worse"
        } else if worse < -TOLERANCE {
            "better"
        } else {
            "within 5%"
        };
        out.push(Row {
            label,
            then,
            now,
            change,
            verdict,
        });
    }
    out
}

fn reference_name(reference: &Value) -> String {
    reference["commit"].as_str().unwrap_or("?").to_owned()
}

pub(super) fn markdown(reference: &Value, now: &Value) -> String {
    if reference.is_null() {
        return "\n## Pass-through against the reference run\n\nNo `xtask/bench/reference.json`.\n"
            .into();
    }
    let name = reference_name(reference);
    let mut md = format!(
        "\n## Pass-through against the reference run (`{name}`)\n\n| figure | `{name}` | this run | change | verdict |\n|---|---|---|---|---|\n"
    );
    for row in rows(reference, now) {
        md += &format!(
            "| {} | {} | {} | {:+.1}% | {} |\n",
            row.label,
            fmt(row.then),
            fmt(row.now),
            row.change * 100.0,
            row.verdict
        );
    }
    md += &format!(
        "\nReference: {}. \"worse\" means more than {:.0}% worse; differences against the floor (added latency) move with the machine's load, so compare them in runs on the same quiet machine.\n",
        reference["run"].as_str().unwrap_or("?"),
        TOLERANCE * 100.0
    );
    md
}

pub(super) fn headline(reference: &Value, now: &Value) -> String {
    if reference.is_null() {
        return String::new();
    }
    let rows = rows(reference, now);
    if rows.is_empty() {
        return String::new();
    }
    let name = reference_name(reference);
    let mut out = format!("Pass-through against the reference run ({name}):\n");
    for row in rows {
        out += &format!(
            "  {:<44} {:>9} -> {:>9}  {:+6.1}%  {}\n",
            row.label,
            fmt(row.then),
            fmt(row.now),
            row.change * 100.0,
            row.verdict
        );
    }
    out
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
