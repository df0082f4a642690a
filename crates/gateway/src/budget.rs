//! The global retry budget: retries may add at most a fifth of the requests of the last ten
//! seconds (and at least three a window), so an outage cannot multiply upstream load.

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(10);
const RATIO: f64 = 0.2;
const MIN_RETRIES: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct RetryBudget {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: VecDeque<Instant>,
    retries: VecDeque<Instant>,
}

impl Inner {
    fn trim(&mut self, now: Instant) {
        for queue in [&mut self.requests, &mut self.retries] {
            while queue
                .front()
                .is_some_and(|at| now.duration_since(*at) > WINDOW)
            {
                queue.pop_front();
            }
        }
    }
}

impl RetryBudget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client request arrived.
    pub(crate) fn request(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.trim(now);
        // Bounded: a window never needs more entries than a busy gateway makes in it.
        if inner.requests.len() < 1_000_000 {
            inner.requests.push_back(now);
        }
    }

    /// Take one retry from the budget; `false` when it is spent.
    pub(crate) fn try_retry(&self) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.trim(now);
        let allowed = ((inner.requests.len() as f64 * RATIO) as usize).max(MIN_RETRIES);
        if inner.retries.len() >= allowed {
            return false;
        }
        inner.retries.push_back(now);
        true
    }
}

impl gateway_core::retry::RetryAllowance for RetryBudget {
    fn try_retry(&self) -> bool {
        RetryBudget::try_retry(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_fifth_of_requests_with_a_floor() {
        let budget = RetryBudget::default();
        for _ in 0..3 {
            assert!(
                budget.try_retry(),
                "the floor allows a few retries with no traffic"
            );
        }
        assert!(!budget.try_retry());
        for _ in 0..50 {
            budget.request();
        }
        let granted = (0..50).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 7, "10 of 50 requests, minus the 3 already spent");
        tokio::time::advance(WINDOW + Duration::from_secs(1)).await;
        assert!(budget.try_retry(), "the window moves on");
    }
}
