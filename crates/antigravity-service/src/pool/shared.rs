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

/// The name of account `id` of a `profile` pool in the facts the replicas share: the two
/// pools may hold the same Google account (the same id), and their facts must not mix.
pub(super) fn shared_id(profile: crate::Profile, id: &str) -> String {
    format!("{}:{id}", profile.name())
}

/// The sink that applies the other replicas' facts about `profile` accounts to `roster` while
/// it lives.
pub(super) fn sink(
    roster: Weak<Roster>,
    released: Arc<Notify>,
    profile: crate::Profile,
) -> FactSink {
    let prefix = format!("{}:", profile.name());
    Arc::new(move |fact| {
        let Some(roster) = roster.upgrade() else {
            return false;
        };
        if let Some(id) = fact.account().strip_prefix(&prefix) {
            let id = id.to_owned();
            apply(&roster, &id, fact);
            // A cooldown that ended, or a token that arrived, may free a waiting call.
            released.notify_waiters();
        }
        true
    })
}

fn apply(roster: &Roster, id: &str, fact: AccountFact) {
    let Some(account) = roster.find(id) else {
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
