//! Which account serves a call, and the concurrency slots that bound each account.
//!
//! Candidates are the accounts that are enabled, not removed, not cooling down for the model
//! and not yet tried by this request, in selection order (round-robin, fill-first, or sticky
//! per conversation). When none is usable the caller learns why at once: a `RateLimited` error
//! carrying the earliest free-up time when every account cools, else `Unavailable`.

use std::sync::{Arc, atomic::Ordering};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit},
    time::Instant,
};

use gateway_core::{ErrorKind, GatewayError, RetryHint, Transport};

use super::{Account, AccountPool, Selection};
use crate::credentials::{Acquire, Lease};

/// Holds one of an account's slots for as long as the lease lives; giving it back wakes calls
/// waiting for a slot.
struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    released: Arc<Notify>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.released.notify_waiters();
    }
}

/// Bound on remembered conversations for sticky selection.
const STICKY_LIMIT: usize = 10_000;

impl<T: Transport> AccountPool<T> {
    /// Candidates for `request` in selection order, or why there are none.
    pub(super) fn candidates(
        &self,
        request: &Acquire<'_>,
    ) -> Result<Vec<Arc<Account>>, GatewayError> {
        let now = Instant::now();
        let accounts = self.roster.accounts();
        let mut usable = Vec::new();
        let mut earliest: Option<Instant> = None;
        let mut reasons = Vec::new();
        for account in accounts.iter() {
            if account.removed.load(Ordering::Acquire) {
                continue;
            }
            let live = account.live();
            if let Some(reason) = &live.disabled {
                reasons.push(format!("{}: {reason}", account.id));
                continue;
            }
            // Accounts this request already tried still count for "when does one free up".
            if let Some(until) = live.cooling(request.model, now) {
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
                continue;
            }
            if !request.exclude.contains(&account.id) {
                usable.push(account.clone());
            }
        }
        if usable.is_empty() {
            if let Some(until) = earliest {
                let wait = until - now;
                return Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "every antigravity account is cooling down for {}; the first frees up in {}s",
                        request.model,
                        wait.as_secs().max(1)
                    ),
                )
                .with_retry(RetryHint {
                    delay: Some(wait),
                    reason: Some("ACCOUNTS_COOLING_DOWN".to_owned()),
                }));
            }
            let message = if accounts.is_empty() {
                "no antigravity account is configured; add one with `gateway login antigravity` or `gateway accounts import FILE`".to_owned()
            } else if reasons.is_empty() {
                "every antigravity account was already tried for this request".to_owned()
            } else {
                format!("no usable antigravity account ({})", reasons.join("; "))
            };
            return Err(GatewayError::new(ErrorKind::Unavailable, message));
        }
        let n = usable.len();
        let start = match self.config.selection {
            Selection::FillFirst => 0,
            Selection::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) % n,
            Selection::Sticky => {
                let remembered = request.conversation.and_then(|c| {
                    let sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
                    sticky
                        .get(c)
                        .and_then(|id| usable.iter().position(|a| &a.id == id))
                });
                remembered.unwrap_or_else(|| self.cursor.fetch_add(1, Ordering::Relaxed) % n)
            }
        };
        usable.rotate_left(start);
        Ok(usable)
    }

    /// Keep `conversation` on `account` (sticky selection only).
    pub(super) fn remember_conversation(&self, conversation: Option<&str>, account: &str) {
        if self.config.selection != Selection::Sticky {
            return;
        }
        let Some(conversation) = conversation else {
            return;
        };
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if sticky.len() >= STICKY_LIMIT {
            // Bounded: forget everything rather than grow without end.
            sticky.clear();
        }
        sticky.insert(conversation.to_owned(), account.to_owned());
    }

    /// A lease on `account`, holding `permit`: a fresh token and the account's project.
    pub(super) async fn lease(
        &self,
        account: &Arc<Account>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Lease, GatewayError> {
        self.ensure_token(account).await?;
        let project_id = self.ensure_project(account).await?;
        let access_token = account.live().file.access_token.clone().unwrap_or_default();
        Ok(Lease {
            account: account.id.clone(),
            access_token,
            project_id,
            _guard: Some(Box::new(SlotGuard {
                _permit: permit,
                released: self.released.clone(),
            })),
        })
    }
}
