//! Benchmark tooling for `cargo xtask bench` (see `docs/benchmarks.md` for the method).
//!
//! - `load`: the load client. Sequential, closed loop (`--connections`), or open loop at a fixed
//!   rate (`--rate`, latency counted from each request's intended start so coordinated omission
//!   is not hidden). Sends `--body` or the bytes of `--body-file` (bodies too large for an
//!   argument). Records latency, time to first byte and the gaps between body frames in HDR
//!   histograms, checks that every body is identical, and prints one JSON line, with its own CPU
//!   time during the run (`cpu_ticks`, from `/proc/self/stat`) so the harness can show how busy
//!   the client's core was.
//! - `bare-proxy`: a hyper pass-through proxy with no logic at all: the physical limit of one
//!   hop in Rust, which the gateway is compared with.
//!
//! Invariant: both talk only to the addresses they are given (loopback in every use here).
//!
//! ```
//! let mut latencies = bench::histogram()?;
//! for micros in [120, 130, 150, 900] {
//!     latencies.record(micros)?;
//! }
//! let summary = bench::summary(&latencies);
//! assert_eq!(summary["count"], 4);
//! assert!(summary["p50"].as_u64() >= Some(130) && summary["p99"].as_u64() >= Some(900));
//! # Ok::<(), anyhow::Error>(())
//! ```

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A latency histogram in microseconds, 1 µs to 100 s, three significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 100_000_000, 3)?)
}

/// Percentiles of a histogram as JSON.
pub fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "max": h.max(),
        "mean": h.mean(),
    })
}
