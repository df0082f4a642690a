//! Passive circuit breaking per (backend, model), fed by live traffic.
//!
//! Closed: calls flow; five consecutive failures, or at least half of the last twenty calls
//! failing (with at least ten seen), open it. Open: calls skip the hop for a time that doubles
//! each time it opens again (30 s, 60 s, ... capped at 300 s). Half-open after that: one live
//! call is let through as the probe; its success closes the breaker, its failure opens it again
//! for longer. When every hop of a chain is open, the chain is still tried rather than failing
//! blind.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;

const CONSECUTIVE: u32 = 5;
const WINDOW: usize = 20;
const MIN_CALLS: usize = 10;
const BASE_OPEN: Duration = Duration::from_secs(30);
const MAX_OPEN: Duration = Duration::from_secs(300);

/// A breaker's state, as `/admin/backends` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub(crate) fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    consecutive: u32,
    recent: VecDeque<bool>,
    open_until: Option<Instant>,
    times_opened: u32,
    probing: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            consecutive: 0,
            recent: VecDeque::with_capacity(WINDOW),
            open_until: None,
            times_opened: 0,
            probing: false,
        }
    }
}

impl Breaker {
    fn state(&self, now: Instant) -> State {
        match self.open_until {
            None => State::Closed,
            Some(until) if now < until => State::Open,
            Some(_) => State::HalfOpen,
        }
    }

    fn record(&mut self, success: bool, now: Instant) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(success);
        let state = self.state(now);
        if success {
            self.consecutive = 0;
            if state != State::Closed {
                // The probe succeeded: close, and forget the history of this episode.
                *self = Self::default();
            }
            return;
        }
        self.consecutive += 1;
        let failures = self.recent.iter().filter(|ok| !**ok).count();
        let ratio_trips = self.recent.len() >= MIN_CALLS && failures * 2 >= self.recent.len();
        match state {
            State::HalfOpen => self.open(now),
            State::Closed if self.consecutive >= CONSECUTIVE || ratio_trips => self.open(now),
            _ => {}
        }
    }

    fn open(&mut self, now: Instant) {
        let factor = 2u32.saturating_pow(self.times_opened.min(8));
        self.open_until = Some(now + (BASE_OPEN * factor).min(MAX_OPEN));
        self.times_opened = self.times_opened.saturating_add(1);
        self.probing = false;
    }
}

/// All breakers of the gateway.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    /// Backend → model → breaker; looked up by `&str` without allocating.
    map: Mutex<HashMap<String, HashMap<String, Breaker>>>,
}

/// A snapshot of one breaker.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct View {
    pub(crate) backend: String,
    pub(crate) model: String,
    pub(crate) state: State,
    pub(crate) consecutive_failures: u32,
    pub(crate) times_opened: u32,
    pub(crate) open_for_secs: Option<u64>,
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Breaker>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `change` to the breaker of (backend, model), creating it on first use. Lookups
    /// borrow the names; only a new breaker allocates its keys.
    fn with(&self, backend: &str, model: &str, change: impl FnOnce(&mut Breaker)) {
        let mut map = self.lock();
        if let Some(breaker) = map
            .get_mut(backend)
            .and_then(|models| models.get_mut(model))
        {
            change(breaker);
            return;
        }
        let mut breaker = Breaker::default();
        change(&mut breaker);
        map.entry(backend.to_owned())
            .or_default()
            .insert(model.to_owned(), breaker);
    }

    /// Whether a call may go to (backend, model) now. In half-open state only one call at a time
    /// is let through, as the probe.
    pub(crate) fn allow(&self, backend: &str, model: &str) -> bool {
        let now = Instant::now();
        let mut map = self.lock();
        let Some(breaker) = map
            .get_mut(backend)
            .and_then(|models| models.get_mut(model))
        else {
            return true;
        };
        match breaker.state(now) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen if breaker.probing => false,
            State::HalfOpen => {
                breaker.probing = true;
                true
            }
        }
    }

    /// Record the outcome of a call.
    pub(crate) fn record(&self, backend: &str, model: &str, success: bool) {
        let now = Instant::now();
        self.with(backend, model, |breaker| breaker.record(success, now));
    }

    /// Keep calls away from (backend, model) for `period`, as the upstream asked.
    pub(crate) fn cool_down(&self, backend: &str, model: &str, period: Duration) {
        let until = Instant::now() + period;
        self.with(backend, model, |breaker| {
            breaker.open_until = Some(breaker.open_until.map_or(until, |u| u.max(until)));
            breaker.probing = false;
        });
    }

    /// Every breaker that has seen a call.
    pub(crate) fn views(&self) -> Vec<View> {
        let now = Instant::now();
        let mut views: Vec<View> = self
            .lock()
            .iter()
            .flat_map(|(backend, models)| {
                models.iter().map(move |(model, breaker)| View {
                    backend: backend.clone(),
                    model: model.clone(),
                    state: breaker.state(now),
                    consecutive_failures: breaker.consecutive,
                    times_opened: breaker.times_opened,
                    open_for_secs: breaker
                        .open_until
                        .filter(|u| *u > now)
                        .map(|u| (u - now).as_secs()),
                })
            })
            .collect();
        views.sort_by(|a, b| (&a.backend, &a.model).cmp(&(&b.backend, &b.model)));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_and_closes() {
        let breakers = Breakers::default();
        for _ in 0..4 {
            breakers.record("a", "m", false);
        }
        assert!(breakers.allow("a", "m"), "four failures keep it closed");
        breakers.record("a", "m", false);
        assert!(!breakers.allow("a", "m"), "the fifth opens it");
        assert!(breakers.allow("a", "other-model"), "per model");
        assert!(breakers.allow("b", "m"), "per backend");

        tokio::time::advance(BASE_OPEN).await;
        assert!(breakers.allow("a", "m"), "half-open lets one probe through");
        assert!(!breakers.allow("a", "m"), "and only one");
        breakers.record("a", "m", false);
        assert!(!breakers.allow("a", "m"), "a failed probe opens it again");
        assert_eq!(
            breakers.views()[0].open_for_secs,
            Some(60),
            "for twice as long"
        );

        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(breakers.allow("a", "m"));
        breakers.record("a", "m", true);
        assert!(
            breakers.allow("a", "m") && breakers.allow("a", "m"),
            "a good probe closes it"
        );
        assert_eq!(breakers.views()[0].state, State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ratio_opens_it_and_the_open_time_is_capped() {
        let breakers = Breakers::default();
        for i in 0..10 {
            breakers.record("a", "m", i % 2 == 0);
        }
        assert!(
            !breakers.allow("a", "m"),
            "half of ten calls failing opens it"
        );
        for _ in 0..10 {
            tokio::time::advance(MAX_OPEN).await;
            assert!(breakers.allow("a", "m"));
            breakers.record("a", "m", false);
        }
        assert_eq!(breakers.views()[0].open_for_secs, Some(MAX_OPEN.as_secs()));
    }
}
