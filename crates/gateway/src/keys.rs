//! A backend's keys, rotated and cooled like accounts: each request takes the next key that is
//! not cooling down; a rate limit cools that key for the upstream's hint (a minute without
//! one), a rejected key for an hour, and when every key cools the backend answers at once with
//! the earliest time one frees up, so the chain moves on.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use gateway_core::{ErrorKind, GatewayError, RetryHint};
use gateway_proxy::Forwarder;

/// How long a key rests after a rate limit without a hint.
const RATE_LIMITED: Duration = Duration::from_secs(60);

/// How long a key the upstream refused (401, 403) rests: a revoked key stays out of the way,
/// a key that was only briefly refused comes back.
const REFUSED: Duration = Duration::from_secs(3600);

/// One forwarder per key.
#[derive(Debug)]
pub(crate) struct KeyRing {
    forwarders: Vec<Forwarder>,
    cooling: Mutex<Vec<Option<Instant>>>,
    next: AtomicUsize,
}

impl KeyRing {
    /// A ring over `forwarders` (one per key; at least one, which may carry no key).
    pub(crate) fn new(forwarders: Vec<Forwarder>) -> Self {
        let cooling = Mutex::new(vec![None; forwarders.len()]);
        Self {
            forwarders,
            cooling,
            next: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.cooling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next key that is not cooling down, or a fast `RateLimited` error that says when the
    /// first one frees up.
    pub(crate) fn pick(&self) -> Result<(usize, &Forwarder), GatewayError> {
        let count = self.forwarders.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let cooling = self.lock();
        for offset in 0..count {
            let index = (start + offset) % count;
            if cooling[index].is_none_or(|until| until <= now)
                && let Some(forwarder) = self.forwarders.get(index)
            {
                return Ok((index, forwarder));
            }
        }
        let wait = cooling
            .iter()
            .flatten()
            .map(|until| until.saturating_duration_since(now))
            .min()
            .unwrap_or(RATE_LIMITED);
        Err(GatewayError::new(
            ErrorKind::RateLimited,
            "every key of this backend is cooling down",
        )
        .with_retry(RetryHint {
            delay: Some(wait),
            ..RetryHint::default()
        }))
    }

    /// How many keys the ring holds.
    pub(crate) fn len(&self) -> usize {
        self.forwarders.len()
    }

    /// Any forwarder, for calls that do not count against a key (model lists).
    pub(crate) fn any(&self) -> Option<&Forwarder> {
        self.pick().ok().map(|(_, f)| f).or(self.forwarders.first())
    }

    /// What the upstream said of key `index`.
    pub(crate) fn report(&self, index: usize, outcome: Result<(), &GatewayError>) {
        let Err(err) = outcome else {
            return;
        };
        let rest = match err.upstream_status().map(|s| s.as_u16()) {
            Some(429) => err.retry_after().unwrap_or(RATE_LIMITED),
            Some(401 | 403) => REFUSED,
            _ => return,
        };
        if self.forwarders.len() < 2 {
            // A single key: cooling it would only turn the upstream's answer into ours.
            return;
        }
        if let Some(slot) = self.lock().get_mut(index) {
            *slot = Some(Instant::now() + rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_proxy::{Client, ClientConfig, HeaderPolicy};
    use http::StatusCode;

    use super::*;

    fn ring(keys: usize) -> KeyRing {
        let client = Client::new(ClientConfig::default()).unwrap();
        KeyRing::new(
            (0..keys)
                .map(|_| {
                    Forwarder::new(client.clone(), "http://127.0.0.1:9", HeaderPolicy::new())
                        .unwrap()
                })
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn keys_rotate_cool_and_come_back() {
        let ring = ring(3);
        let picked: Vec<usize> = (0..6).map(|_| ring.pick().unwrap().0).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
        let limited = GatewayError::upstream(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .with_retry(RetryHint {
                delay: Some(Duration::from_secs(10)),
                ..RetryHint::default()
            });
        ring.report(0, Err(&limited));
        ring.report(
            1,
            Err(&GatewayError::upstream(StatusCode::FORBIDDEN, "bad key")),
        );
        // A server error says nothing about the key.
        ring.report(
            2,
            Err(&GatewayError::upstream(StatusCode::BAD_GATEWAY, "x")),
        );
        for _ in 0..4 {
            assert_eq!(ring.pick().unwrap().0, 2);
        }
        ring.report(2, Err(&limited));
        let err = ring.pick().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(11)).await;
        let back: Vec<usize> = (0..4).map(|_| ring.pick().unwrap().0).collect();
        assert!(
            back.contains(&0) && back.contains(&2) && !back.contains(&1),
            "{back:?}"
        );
    }

    #[test]
    fn a_single_key_is_never_cooled() {
        let ring = ring(1);
        ring.report(
            0,
            Err(&GatewayError::upstream(StatusCode::TOO_MANY_REQUESTS, "x")),
        );
        assert!(ring.pick().is_ok());
    }
}
