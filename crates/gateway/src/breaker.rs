//! Circuit breaking per (backend, model), fed by live traffic and, where configured, by active
//! health checks.
//!
//! Why it looks like this: a breaker exists to spare a failing provider and the clients waiting
//! on it, but the scorecard that matters to users also asks that a provider that recovered is
//! used again quickly (within 30 s by default). So the open time is short and capped, each
//! backend can tune it, and a probe is only claimed at the moment a request really tries the
//! hop (a request served by an earlier hop must not hold the probe and keep the hop out).
//!
//! Closed: calls flow; `breaker_threshold` consecutive failures (five by default), or at least
//! half of the last twenty calls failing (with at least ten seen), open it. Open: calls skip the
//! hop for `breaker_open` (10 s), doubled each time it opens again, at most `breaker_max_open`
//! (30 s). Half-open after that: one call is let through as the probe ([`Breakers::admit`]); its
//! success closes the breaker, its failure opens it again for longer; a probe that is never
//! used is released. When every hop of a chain is open, the chain is still tried rather than
//! failing blind.
//!
//! Health checks (`health`) mark a whole backend down after two failed checks in a row (its
//! hops are then skipped like open ones) and, on a successful check, turn its open breakers
//! half-open at once, so the next live request probes a recovered backend.

pub(crate) mod health;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Mutex,
    time::Duration,
};

use serde::Serialize;
use tokio::time::Instant;

use crate::config::BackendConfig;

const WINDOW: usize = 20;
const MIN_CALLS: usize = 10;

/// How one backend's breakers trip and how long they stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Consecutive failures that open a breaker.
    pub(crate) threshold: u32,
    /// The first open period.
    pub(crate) open: Duration,
    /// The longest open period.
    pub(crate) max_open: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            threshold: 5,
            open: Duration::from_secs(10),
            max_open: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// The settings of `backend`.
    pub(crate) fn of(backend: &BackendConfig) -> Self {
        Self {
            threshold: backend.breaker_threshold.max(1),
            open: backend.breaker_open,
            max_open: backend.breaker_max_open.max(backend.breaker_open),
        }
    }
}

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

    fn record(&mut self, success: bool, now: Instant, settings: Settings) {
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
        self.consecutive = self.consecutive.saturating_add(1);
        let failures = self.recent.iter().filter(|ok| !**ok).count();
        let ratio_trips = self.recent.len() >= MIN_CALLS && failures * 2 >= self.recent.len();
        match state {
            State::HalfOpen => self.open(now, settings),
            State::Closed if self.consecutive >= settings.threshold || ratio_trips => {
                self.open(now, settings);
            }
            _ => {}
        }
    }

    fn open(&mut self, now: Instant, settings: Settings) {
        let factor = 2u32.saturating_pow(self.times_opened.min(16));
        self.open_until = Some(now + settings.open.saturating_mul(factor).min(settings.max_open));
        self.times_opened = self.times_opened.saturating_add(1);
        self.probing = false;
    }
}

/// What a health check last found of a backend.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Health {
    /// Whether the backend is taken as up (it is until two checks in a row failed).
    pub(crate) up: bool,
    /// Checks made.
    pub(crate) checks: u64,
    /// Failed checks in a row.
    pub(crate) consecutive_failures: u32,
    /// What the last failed check said.
    pub(crate) last_error: Option<String>,
    /// Seconds since the last check, when the view was taken.
    pub(crate) checked_secs_ago: Option<u64>,
    #[serde(skip)]
    checked_at: Option<Instant>,
}

/// Failed health checks in a row that mark a backend down.
const DOWN_AFTER: u32 = 2;

type Map = HashMap<String, HashMap<String, Breaker>>;

/// All breakers of the gateway, the health of the backends that are checked, and what was
/// learned of each (backend, model) that a rescue needs to know.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    /// Backend → model → breaker; looked up by `&str` without allocating.
    map: Mutex<Map>,
    /// Backend → its health, for backends with health checks.
    health: Mutex<HashMap<String, Health>>,
    /// (backend, model) pairs that refused an assistant prefill.
    no_prefill: Mutex<HashSet<(String, String)>>,
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

/// Permission to try a hop now. A probe's permission that is dropped without an outcome is
/// released, so the next request may probe.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    breakers: &'a Breakers,
    backend: &'a str,
    model: &'a str,
    settings: Settings,
    probe: bool,
}

impl Ticket<'_> {
    /// Whether this call is the half-open breaker's probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// Record the outcome of the call; `true` when the breaker is open afterwards.
    pub(crate) fn record(mut self, success: bool) -> bool {
        self.probe = false;
        self.breakers
            .record(self.backend, self.model, success, self.settings);
        self.breakers.is_open(self.backend, self.model)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe {
            let mut map = self.breakers.lock();
            if let Some(breaker) = map
                .get_mut(self.backend)
                .and_then(|models| models.get_mut(self.model))
            {
                breaker.probing = false;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        lock(&self.map)
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

    /// Whether health checks found `backend` down.
    fn down(&self, backend: &str) -> bool {
        lock(&self.health).get(backend).is_some_and(|h| !h.up)
    }

    /// Whether a request should plan to try (backend, model): its breaker is not open, it is
    /// not probed by another request, and health checks did not find it down. Claims nothing.
    pub(crate) fn usable(&self, backend: &str, model: &str) -> bool {
        if self.down(backend) {
            return false;
        }
        let now = Instant::now();
        self.lock()
            .get(backend)
            .and_then(|models| models.get(model))
            .is_none_or(|breaker| match breaker.state(now) {
                State::Closed => true,
                State::Open => false,
                State::HalfOpen => !breaker.probing,
            })
    }

    /// Permission to call (backend, model) now, decided at the moment of the attempt. In
    /// half-open state one call at a time is let through, as the probe. `force` lets a call
    /// through whatever the state (every hop of the chain is open), without making it a probe.
    pub(crate) fn admit<'a>(
        &'a self,
        backend: &'a str,
        model: &'a str,
        settings: Settings,
        force: bool,
    ) -> Option<Ticket<'a>> {
        let ticket = |probe| Ticket {
            breakers: self,
            backend,
            model,
            settings,
            probe,
        };
        if force {
            return Some(ticket(false));
        }
        if self.down(backend) {
            return None;
        }
        let now = Instant::now();
        let mut map = self.lock();
        let Some(breaker) = map
            .get_mut(backend)
            .and_then(|models| models.get_mut(model))
        else {
            return Some(ticket(false));
        };
        match breaker.state(now) {
            State::Closed => Some(ticket(false)),
            State::Open => None,
            State::HalfOpen if breaker.probing => None,
            State::HalfOpen => {
                breaker.probing = true;
                Some(ticket(true))
            }
        }
    }

    /// Whether the breaker of (backend, model) is open (or the backend is down).
    pub(crate) fn is_open(&self, backend: &str, model: &str) -> bool {
        if self.down(backend) {
            return true;
        }
        let now = Instant::now();
        self.lock()
            .get(backend)
            .and_then(|models| models.get(model))
            .is_some_and(|breaker| breaker.state(now) == State::Open)
    }

    /// Record the outcome of a call.
    pub(crate) fn record(&self, backend: &str, model: &str, success: bool, settings: Settings) {
        let now = Instant::now();
        self.with(backend, model, |breaker| {
            breaker.record(success, now, settings);
        });
    }

    /// Keep calls away from (backend, model) for `period`, as the upstream asked.
    pub(crate) fn cool_down(&self, backend: &str, model: &str, period: Duration) {
        let until = Instant::now() + period;
        self.with(backend, model, |breaker| {
            breaker.open_until = Some(breaker.open_until.map_or(until, |u| u.max(until)));
            breaker.probing = false;
        });
    }

    /// The outcome of a health check of `backend`: a success marks it up and makes its open
    /// breakers half-open now (the next request probes); two failures in a row mark it down.
    pub(crate) fn checked(&self, backend: &str, outcome: Result<(), String>) {
        let now = Instant::now();
        let success = outcome.is_ok();
        {
            let mut health = lock(&self.health);
            let entry = health.entry(backend.to_owned()).or_insert_with(|| Health {
                up: true,
                ..Health::default()
            });
            entry.checks = entry.checks.saturating_add(1);
            entry.checked_at = Some(now);
            match outcome {
                Ok(()) => {
                    entry.up = true;
                    entry.consecutive_failures = 0;
                }
                Err(message) => {
                    entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
                    entry.last_error = Some(message);
                    if entry.consecutive_failures >= DOWN_AFTER {
                        entry.up = false;
                    }
                }
            }
        }
        if success && let Some(models) = self.lock().get_mut(backend) {
            for breaker in models.values_mut() {
                if breaker.state(now) == State::Open {
                    breaker.open_until = Some(now);
                    breaker.probing = false;
                }
            }
        }
    }

    /// The health of `backend`, when it is checked.
    pub(crate) fn health(&self, backend: &str) -> Option<Health> {
        let now = Instant::now();
        lock(&self.health).get(backend).map(|health| Health {
            checked_secs_ago: health.checked_at.map(|at| (now - at).as_secs()),
            ..health.clone()
        })
    }

    /// Whether (backend, model) refused an assistant prefill before.
    pub(crate) fn refuses_prefill(&self, backend: &str, model: &str) -> bool {
        lock(&self.no_prefill).contains(&(backend.to_owned(), model.to_owned()))
    }

    /// Remember that (backend, model) refuses an assistant prefill.
    pub(crate) fn refused_prefill(&self, backend: &str, model: &str) {
        let mut set = lock(&self.no_prefill);
        // Bounded: the pairs come from the configuration and the routing of requests.
        if set.len() < 10_000 {
            set.insert((backend.to_owned(), model.to_owned()));
        }
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

    const S: Settings = Settings {
        threshold: 5,
        open: Duration::from_secs(10),
        max_open: Duration::from_secs(30),
    };

    fn allow(breakers: &Breakers, backend: &str, model: &str) -> bool {
        breakers.admit(backend, model, S, false).is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_and_closes() {
        let breakers = Breakers::default();
        for _ in 0..4 {
            breakers.record("a", "m", false, S);
        }
        assert!(allow(&breakers, "a", "m"), "four failures keep it closed");
        breakers.record("a", "m", false, S);
        assert!(!allow(&breakers, "a", "m"), "the fifth opens it");
        assert!(allow(&breakers, "a", "other-model"), "per model");
        assert!(allow(&breakers, "b", "m"), "per backend");

        tokio::time::advance(S.open).await;
        assert!(breakers.usable("a", "m"), "half-open: worth planning");
        let probe = breakers.admit("a", "m", S, false).unwrap();
        assert!(probe.is_probe(), "half-open lets one probe through");
        assert!(!allow(&breakers, "a", "m"), "and only one");
        assert!(!breakers.usable("a", "m"));
        assert!(probe.record(false), "a failed probe opens it again");
        assert!(!allow(&breakers, "a", "m"));
        assert_eq!(
            breakers.views()[0].open_for_secs,
            Some(20),
            "for twice as long"
        );

        tokio::time::advance(Duration::from_secs(20)).await;
        let probe = breakers.admit("a", "m", S, false).unwrap();
        assert!(!probe.record(true));
        assert!(
            allow(&breakers, "a", "m") && allow(&breakers, "a", "m"),
            "a good probe closes it"
        );
        assert_eq!(breakers.views()[0].state, State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_probe_is_released() {
        let breakers = Breakers::default();
        for _ in 0..5 {
            breakers.record("a", "m", false, S);
        }
        tokio::time::advance(S.open).await;
        let probe = breakers.admit("a", "m", S, false);
        assert!(probe.as_ref().is_some_and(Ticket::is_probe));
        drop(probe);
        assert!(
            breakers
                .admit("a", "m", S, false)
                .is_some_and(|t| t.is_probe()),
            "the next request may probe"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ratio_opens_it_and_the_open_time_is_capped() {
        let breakers = Breakers::default();
        for i in 0..10 {
            breakers.record("a", "m", i % 2 == 0, S);
        }
        assert!(
            !allow(&breakers, "a", "m"),
            "half of ten calls failing opens it"
        );
        for _ in 0..10 {
            tokio::time::advance(S.max_open).await;
            let probe = breakers.admit("a", "m", S, false).unwrap();
            probe.record(false);
        }
        assert_eq!(
            breakers.views()[0].open_for_secs,
            Some(S.max_open.as_secs())
        );
        let custom = Settings {
            threshold: 1,
            open: Duration::from_secs(2),
            max_open: Duration::from_secs(4),
        };
        breakers.record("b", "m", false, custom);
        assert!(breakers.is_open("b", "m"), "a threshold of one");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!breakers.is_open("b", "m"));
    }

    #[tokio::test(start_paused = true)]
    async fn health_checks_mark_a_backend_down_and_bring_it_back() {
        let breakers = Breakers::default();
        for _ in 0..5 {
            breakers.record("a", "m", false, S);
        }
        breakers.checked("a", Err("connect".into()));
        assert!(
            breakers.health("a").is_some_and(|h| h.up),
            "one failed check is not enough"
        );
        breakers.checked("a", Err("connect".into()));
        assert!(!breakers.usable("a", "other"), "down: every model skipped");
        assert!(breakers.is_open("a", "other"));
        breakers.checked("a", Ok(()));
        assert!(breakers.usable("a", "other"));
        let probe = breakers.admit("a", "m", S, false).unwrap();
        assert!(
            probe.is_probe(),
            "a good check turns the open breaker half-open at once"
        );
        assert!(breakers.admit("a", "m", S, true).is_some(), "forced");
    }

    #[test]
    fn prefill_refusals_are_remembered() {
        let breakers = Breakers::default();
        assert!(!breakers.refuses_prefill("a", "m"));
        breakers.refused_prefill("a", "m");
        assert!(breakers.refuses_prefill("a", "m"));
        assert!(!breakers.refuses_prefill("a", "n"));
    }
}
