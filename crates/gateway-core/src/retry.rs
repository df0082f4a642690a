//! Retry hints: what an upstream says about when to come back, from headers and error bodies.
//!
//! Sources, first match wins for the delay: `retry-after-ms`, `Retry-After` (seconds or an
//! HTTP date), Google's `RetryInfo.retryDelay`, `ErrorInfo.metadata.quotaResetDelay`,
//! `ErrorInfo.metadata.quotaResetTimeStamp`, and OpenAI's "try again in 1.5s" message text.
//! The reason comes from Google's `ErrorInfo.reason` (`RATE_LIMIT_EXCEEDED`, `QUOTA_EXHAUSTED`, ...).
//!
//! Google error bodies come in two forms: the object `{"error": {...}}`, and the same object
//! wrapped in a JSON array (`[{"error": {...}}]`), which is how Cloud Code's streaming endpoint
//! answers and how its answers are logged. Both are read alike ([`error_object`]), so a capacity
//! error is not mistaken for a quota one and a long quota reset keeps its real time.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

/// Longest delay we accept from an upstream; anything longer is clamped.
/// Quota windows run up to a week (Antigravity's weekly quotas report resets 100 hours and more
/// ahead), so a week is kept as given; it still keeps arithmetic far from overflow.
const MAX_HINT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// When, and why, an upstream asked the caller to retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryHint {
    /// How long to wait before the same upstream (and credential) may be asked again.
    pub delay: Option<Duration>,
    /// The upstream's machine-readable reason, e.g. Google's `ErrorInfo.reason`.
    pub reason: Option<String>,
}

impl RetryHint {
    /// Whether the hint says anything at all.
    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.reason.is_none()
    }

    /// Read a hint from an error response's headers and body. `now` converts absolute times
    /// (HTTP dates, RFC 3339 timestamps) into delays; past times become a zero delay.
    pub fn from_response(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let body_hint = json
            .as_ref()
            .map(|v| Self::from_error_json(v, now))
            .unwrap_or_default();
        let delay = header_delay(headers, now).or(body_hint.delay);
        Self {
            delay,
            reason: body_hint.reason,
        }
    }

    /// Read a hint from a parsed Google or OpenAI error body (`{"error": {...}}`, or Google's
    /// array form `[{"error": {...}}]`).
    pub fn from_error_json(body: &Value, now: SystemTime) -> Self {
        let Some(error) = error_object(body) else {
            return Self::default();
        };
        let mut retry_delay = None;
        let mut reset_delay = None;
        let mut reset_at = None;
        let mut reason = None;
        for detail in error
            .get("details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ty = detail.get("@type").and_then(Value::as_str).unwrap_or("");
            if ty.ends_with("google.rpc.RetryInfo") {
                retry_delay = retry_delay.or_else(|| {
                    detail
                        .get("retryDelay")
                        .and_then(Value::as_str)
                        .and_then(parse_google_duration)
                });
            } else if ty.ends_with("google.rpc.ErrorInfo") {
                if reason.is_none() {
                    reason = detail
                        .get("reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                let metadata = detail.get("metadata");
                let field = |name| metadata.and_then(|m| m.get(name)).and_then(Value::as_str);
                reset_delay = reset_delay
                    .or_else(|| field("quotaResetDelay").and_then(parse_google_duration));
                reset_at = reset_at.or_else(|| {
                    field("quotaResetTimeStamp")
                        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                        .map(|at| until(at, now))
                });
            }
        }
        let message_delay = error
            .get("message")
            .and_then(Value::as_str)
            .and_then(parse_try_again_in);
        Self {
            delay: retry_delay
                .or(reset_delay)
                .or(reset_at)
                .or(message_delay)
                .map(clamp),
            reason,
        }
    }
}

/// The error object of an error body: `error` of `{"error": {...}}`, of the first element of
/// Google's array form `[{"error": {...}}]`, or the body itself when it has no `error` member.
/// `None` for an array that holds no error.
pub fn error_object(body: &Value) -> Option<&Value> {
    match body {
        Value::Array(items) => items.iter().find_map(|item| item.get("error")),
        _ => Some(body.get("error").unwrap_or(body)),
    }
}

/// The human-readable message of an error body in any form [`error_object`] reads: the error's
/// `message`, or the error itself when it is a plain string (`{"error": "..."}`).
pub fn error_message(body: &Value) -> Option<&str> {
    let error = error_object(body)?;
    error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
}

fn header_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(clamp(Duration::from_secs(secs)));
    }
    if let Some(d) = value.parse::<f64>().ok().and_then(duration_from_secs) {
        return Some(d);
    }
    httpdate::parse_http_date(value)
        .ok()
        .map(|at| clamp(until(at, now)))
}

fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

fn clamp(d: Duration) -> Duration {
    d.min(MAX_HINT)
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0)
        .then(|| clamp(Duration::from_secs_f64(secs.min(MAX_HINT.as_secs_f64()))))
}

/// Parse Google's duration spellings: protobuf JSON (`"3.5s"`) and Go style as used in
/// `quotaResetDelay` (`"1h2m3.5s"`, `"373.5ms"`, `"26m34.864452816s"`).
pub(crate) fn parse_google_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    duration_from_secs(total)
}

/// OpenAI-compatible providers put the delay in the message: "Please try again in 20s",
/// "try again in 1.5s", "try again in 250ms", "try again in 2m3s", "try again in 20 seconds".
fn parse_try_again_in(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("try again in ")? + "try again in ".len();
    let tail = &lower[start..];
    let end = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or(tail.len());
    let token = tail[..end].trim_end_matches('.');
    if let Some(delay) = parse_google_duration(token) {
        return Some(delay);
    }
    let value: f64 = token.parse().ok()?;
    let unit = tail[end..].trim_start();
    let scale = if unit.starts_with("ms") || unit.starts_with("milli") {
        1e-3
    } else if unit.starts_with("min") {
        60.0
    } else if unit.starts_with('s') {
        1.0
    } else {
        return None;
    };
    duration_from_secs(value * scale)
}

#[cfg(test)]
mod tests;

/// Permission for one more upstream call within a request. The composition crate shares one
/// budget between its chain walk and the services it calls in process, so retries inside a
/// service (another base URL, another account) count against the same budget as the chain's
/// own, and an outage cannot multiply upstream load out of sight.
pub trait RetryAllowance: Send + Sync + std::fmt::Debug {
    /// Take one retry; `false` when the budget is spent (the caller then gives up with the
    /// error it has).
    fn try_retry(&self) -> bool;
}

/// Every retry allowed: for a service used on its own, whose caller bounds its work otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl RetryAllowance for Unlimited {
    fn try_retry(&self) -> bool {
        true
    }
}
