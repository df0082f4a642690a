//! Recent activity for the dashboard: the last requests (no prompt text), and per-minute
//! counts per backend over the last hour (requests, errors, time to first byte).
//!
//! Kept in memory only, beside the Prometheus metrics (which are cumulative and meant for a
//! scraper): this is what a person looking at `/ui` wants to see without one. One short lock
//! per finished request.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::{Value, json};

/// How many finished requests are kept.
const RECENT: usize = 200;
/// How many minutes of counts are kept.
const MINUTES: usize = 60;

/// One finished API request, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Seen {
    /// When it arrived, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    pub(crate) endpoint: &'static str,
    /// The key's name (empty: no keys are configured, or the request was refused before).
    pub(crate) key: String,
    /// The model that served, when one did.
    pub(crate) model: String,
    /// The backend that served, when one did.
    pub(crate) backend: String,
    /// The hops tried, as in `x-gateway-attempts`.
    pub(crate) attempts: String,
    pub(crate) status: u16,
    /// Whether the answer failed (an error status, or a stream that ended in an error).
    pub(crate) failed: bool,
    /// From arrival to the first byte of the body (the first content of a stream).
    pub(crate) first_byte_ms: Option<u64>,
    pub(crate) duration_ms: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// The counts of one minute for one backend.
#[derive(Debug, Default, Clone, Serialize)]
struct Bucket {
    requests: u64,
    errors: u64,
    first_byte_ms_sum: u64,
    first_byte_count: u64,
}

#[derive(Debug, Default)]
struct Minute {
    /// Minutes since the Unix epoch.
    minute: u64,
    backends: BTreeMap<String, Bucket>,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<Seen>,
    minutes: VecDeque<Minute>,
    /// Answers being sent now, per backend (from the answer's head to its end).
    answering: BTreeMap<String, u64>,
}

/// The recent activity of a running gateway.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    inner: Mutex<Inner>,
}

impl Activity {
    /// An answer from `backend` starts; [`record`](Self::record) of its request ends it.
    pub(crate) fn begin(&self, backend: &str) {
        if backend.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.answering.get_mut(backend) {
            Some(n) => *n += 1,
            None => {
                inner.answering.insert(backend.to_owned(), 1);
            }
        }
    }

    /// Count one finished request (begun with [`begin`](Self::begin)).
    pub(crate) fn record(&self, seen: Seen) {
        let minute = seen.at_ms / 60_000;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = inner.answering.get_mut(&seen.backend) {
            *n = n.saturating_sub(1);
        }
        if inner.minutes.back().is_none_or(|m| m.minute < minute) {
            inner.minutes.push_back(Minute {
                minute,
                backends: BTreeMap::new(),
            });
            while inner.minutes.len() > MINUTES {
                inner.minutes.pop_front();
            }
        }
        // A request that arrived in an earlier minute still counts in the minute it ended.
        if let Some(current) = inner.minutes.back_mut() {
            let name = if seen.backend.is_empty() {
                "(none)"
            } else {
                &seen.backend
            };
            let bucket = match current.backends.get_mut(name) {
                Some(bucket) => bucket,
                None => current.backends.entry(name.to_owned()).or_default(),
            };
            bucket.requests += 1;
            bucket.errors += u64::from(seen.failed);
            if let Some(ms) = seen.first_byte_ms {
                bucket.first_byte_ms_sum += ms;
                bucket.first_byte_count += 1;
            }
        }
        if inner.recent.len() == RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(seen);
    }

    /// `GET /admin/requests`: the last requests, newest first.
    pub(crate) fn requests(&self) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<&Seen> = inner.recent.iter().rev().collect();
        json!({ "object": "list", "data": list })
    }

    /// `GET /admin/activity`: per-minute counts per backend over the last hour, oldest first
    /// (minutes without requests are left out), and the answers being sent now per backend.
    pub(crate) fn minutes(&self) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = unix_ms() / 60_000;
        let list: Vec<Value> = inner
            .minutes
            .iter()
            .filter(|m| m.minute + MINUTES as u64 > now)
            .map(|m| {
                let backends: BTreeMap<&str, Value> = m
                    .backends
                    .iter()
                    .map(|(name, b)| {
                        let average = (b.first_byte_count > 0)
                            .then(|| b.first_byte_ms_sum / b.first_byte_count);
                        (
                            name.as_str(),
                            json!({
                                "requests": b.requests,
                                "errors": b.errors,
                                "first_byte_ms_avg": average,
                            }),
                        )
                    })
                    .collect();
                json!({ "minute": m.minute * 60, "backends": backends })
            })
            .collect();
        json!({ "object": "list", "data": list, "answering": inner.answering })
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at_ms: u64, backend: &str, failed: bool) -> Seen {
        Seen {
            at_ms,
            endpoint: "chat_completions",
            key: "alice".into(),
            model: "gpt-4o".into(),
            backend: backend.into(),
            attempts: format!("{backend}:200"),
            status: if failed { 502 } else { 200 },
            failed,
            first_byte_ms: (!failed).then_some(40),
            duration_ms: 50,
            input_tokens: 5,
            output_tokens: 7,
        }
    }

    #[test]
    fn keeps_the_last_requests_newest_first_and_counts_minutes() {
        let activity = Activity::default();
        let now = unix_ms();
        for i in 0..(RECENT as u64 + 5) {
            activity.begin("up");
            activity.begin("up");
            activity.record(seen(now, "up", i % 4 == 0));
        }
        activity.begin("");
        activity.record(seen(now, "", true));
        let requests = activity.requests();
        let list = requests["data"].as_array().unwrap();
        assert_eq!(list.len(), RECENT);
        assert_eq!(list[0]["backend"], "", "the newest comes first");
        let minutes = activity.minutes();
        let minute = &minutes["data"][0];
        assert_eq!(minute["backends"]["up"]["requests"], RECENT as u64 + 5);
        assert_eq!(minute["backends"]["up"]["errors"], 52);
        assert_eq!(minute["backends"]["up"]["first_byte_ms_avg"], 40);
        assert_eq!(minute["backends"]["(none)"]["errors"], 1);
        assert_eq!(minutes["answering"]["up"], RECENT as u64 + 5);
    }

    #[test]
    fn keeps_an_hour_of_minutes() {
        let activity = Activity::default();
        let now = unix_ms();
        for minute in 0..(MINUTES as u64 + 10) {
            let at = now - (MINUTES as u64 + 10 - minute) * 60_000;
            activity.record(seen(at, "up", false));
        }
        let minutes = activity.minutes();
        let list = minutes["data"].as_array().unwrap();
        assert!(list.len() < MINUTES, "{}", list.len());
        assert!(!list.is_empty());
    }
}
