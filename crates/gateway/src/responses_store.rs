//! Responses the gateway made itself (for Responses clients on a translated path), kept so a
//! later request can continue one with `previous_response_id`, and so clients can `GET` or
//! `DELETE` it.
//!
//! In memory and bounded: at most [`CAPACITY`] responses, each for at most [`TTL`], the oldest
//! going first; a restart forgets them. A miss is a clear 400, never a silent fresh start.
//! Responses asked with `store: false` (Codex) are not kept: such clients send their history.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use bytes::Bytes;
use tokio::time::Instant;

use gateway_core::conversation::Message;

/// How many responses are kept.
pub(crate) const CAPACITY: usize = 512;

/// How long one is kept.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

/// One kept response: the conversation up to and including its answer, and the response object
/// as the client received it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) messages: Vec<Message>,
    pub(crate) object: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, (Instant, Stored)>,
    order: VecDeque<String>,
}

/// The store; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ResponseStore {
    inner: Mutex<Inner>,
}

impl ResponseStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `stored` under `id`, dropping the oldest beyond the capacity.
    pub(crate) fn put(&self, id: String, stored: Stored) {
        let mut inner = self.lock();
        if inner
            .by_id
            .insert(id.clone(), (Instant::now(), stored))
            .is_none()
        {
            inner.order.push_back(id);
        }
        while inner.order.len() > CAPACITY {
            if let Some(oldest) = inner.order.pop_front() {
                inner.by_id.remove(&oldest);
            }
        }
    }

    /// The response `id`, while it is kept.
    pub(crate) fn get(&self, id: &str) -> Option<Stored> {
        let mut inner = self.lock();
        match inner.by_id.get(id) {
            Some((at, stored)) if at.elapsed() < TTL => Some(stored.clone()),
            Some(_) => {
                inner.by_id.remove(id);
                inner.order.retain(|kept| kept != id);
                None
            }
            None => None,
        }
    }

    /// Forget the response `id`; whether it was kept.
    pub(crate) fn delete(&self, id: &str) -> bool {
        let mut inner = self.lock();
        inner.order.retain(|kept| kept != id);
        inner.by_id.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> Stored {
        Stored {
            messages: Vec::new(),
            object: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_in_count_and_time() {
        let store = ResponseStore::default();
        for i in 0..CAPACITY + 2 {
            store.put(format!("resp_{i}"), stored("x"));
        }
        assert!(store.get("resp_0").is_none() && store.get("resp_1").is_none());
        assert!(store.get("resp_2").is_some());
        assert!(store.delete("resp_2"));
        assert!(!store.delete("resp_2"));
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        assert!(store.get(&format!("resp_{}", CAPACITY + 1)).is_none());
    }
}
