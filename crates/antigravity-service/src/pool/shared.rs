//! What this pool tells the other replicas of its gateway, and what it takes from them (see
//! `gateway_core::state`): cooldowns, disabled accounts and fresh tokens. Facts from elsewhere
//! change only this pool's memory (written to the files with the rest of its learned state);
//! they are never published again.

use std::{
    sync::{Arc, Weak},
    time::{Duration, SystemTime},
};

use tokio::{sync::Notify, time::Instant};

use gateway_core::state::{AccountFact, FactSink};

use super::roster::Roster;
use crate::credentials::unix_ms;

/// The sink that applies the other replicas' facts to `roster` while it lives.
pub(super) fn sink(roster: Weak<Roster>, released: Arc<Notify>) -> FactSink {
    Arc::new(move |fact| {
        if let Some(roster) = roster.upgrade() {
            apply(&roster, fact);
            // A cooldown that ended, or a token that arrived, may free a waiting call.
            released.notify_waiters();
        }
    })
}

fn apply(roster: &Roster, fact: AccountFact) {
    let Some(account) = roster.find(fact.account()) else {
        return;
    };
    let mut live = account.live();
    match fact {
        AccountFact::Cooldown {
            model, until_ms, ..
        } => {
            let left = Duration::from_millis(until_ms.saturating_sub(unix_ms(SystemTime::now())));
            if left.is_zero() {
                return;
            }
            let until = Instant::now() + left;
            let current = live.cooldowns.entry(model).or_insert(until);
            *current = (*current).max(until);
        }
        AccountFact::Cleared { model, .. } => {
            live.cooldowns.remove(&model);
            live.strikes.remove(&model);
        }
        AccountFact::Disabled { reason, .. } => live.disabled = Some(reason),
        AccountFact::Enabled { .. } => live.disabled = None,
        AccountFact::Token {
            access_token,
            expires_ms,
            ..
        } => {
            let expires = SystemTime::UNIX_EPOCH + Duration::from_millis(expires_ms);
            if live.token_expires.is_none_or(|mine| mine < expires) {
                live.file.access_token = Some(access_token);
                live.file.expiry = Some(crate::credentials::format_rfc3339(expires));
                live.token_expires = Some(expires);
            }
        }
    }
    live.dirty = true;
}

/// Unix milliseconds `delay` from now.
pub(super) fn ms_from_now(delay: Duration) -> u64 {
    unix_ms(SystemTime::now() + delay)
}
