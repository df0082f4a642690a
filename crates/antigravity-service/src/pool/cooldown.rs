//! What a call's outcome teaches the pool: counters, cooldowns per (account, model), disabling.
//!
//! A quota 429 cools the account for that model only: for the upstream's hint when it gives
//! one, else for the next tier of a lockout that grows with consecutive strikes. A capacity
//! 429 (`MODEL_CAPACITY_EXHAUSTED`) is the model being busy everywhere and cools nothing. A 403
//! disables the account (configurable). A success clears the model's strikes and cooldown.

use std::{sync::Arc, time::Duration, time::SystemTime};

use tokio::time::Instant;

use gateway_core::{GatewayError, Transport, state::AccountFact};

use super::{Account, AccountPool};
use crate::credentials::unix_ms;

/// The lockout when the configured tiers are empty.
const FALLBACK_LOCKOUT: Duration = Duration::from_secs(60);

/// `MODEL_CAPACITY_EXHAUSTED` is the model being busy everywhere, not this account's quota.
pub(crate) fn is_capacity_error(err: &GatewayError) -> bool {
    err.retry_hint()
        .and_then(|h| h.reason.as_deref())
        .is_some_and(|r| r == "MODEL_CAPACITY_EXHAUSTED")
}

impl<T: Transport> AccountPool<T> {
    /// Record the outcome of a call made with `account` for `model`; returns whether the change
    /// is urgent (a cooldown, a disable, a cleared cooldown) and should be written at once.
    pub(super) fn learn(
        &self,
        account: &Arc<Account>,
        model: &str,
        outcome: Result<(), &GatewayError>,
    ) -> bool {
        let mut urgent = false;
        {
            let mut live = account.live();
            live.requests += 1;
            match outcome {
                Ok(()) => {
                    live.successes += 1;
                    live.last_success = Some(unix_ms(SystemTime::now()));
                    urgent = live.strikes.remove(model).is_some()
                        | live.cooldowns.remove(model).is_some();
                    if urgent {
                        self.config.shared.publish(AccountFact::Cleared {
                            account: super::shared::shared_id(self.config.profile, &account.id),
                            model: model.to_owned(),
                        });
                    }
                }
                Err(err) => {
                    live.failures += 1;
                    live.last_error = Some(err.message().chars().take(300).collect());
                }
            }
        }
        if let Err(err) = outcome {
            match err.upstream_status().map(|s| s.as_u16()) {
                Some(429) if !is_capacity_error(err) => {
                    let delay = self.cool_down(account, model, err);
                    self.config.shared.publish(AccountFact::Cooldown {
                        account: super::shared::shared_id(self.config.profile, &account.id),
                        model: model.to_owned(),
                        until_ms: super::shared::ms_from_now(delay),
                    });
                    urgent = true;
                }
                Some(403) if self.config.disable_on_forbidden => {
                    let reason = format!("forbidden by the upstream: {}", err.message());
                    account.live().disabled = Some(reason.clone());
                    self.config.shared.publish(AccountFact::Disabled {
                        account: super::shared::shared_id(self.config.profile, &account.id),
                        reason,
                    });
                    urgent = true;
                }
                _ => {}
            }
        }
        account.live().dirty = true;
        urgent
    }

    /// Cool `account` down for `model`: the error's retry hint, else the next lockout tier.
    /// Returns for how long.
    fn cool_down(&self, account: &Arc<Account>, model: &str, err: &GatewayError) -> Duration {
        let mut live = account.live();
        let delay = match err.retry_after() {
            Some(delay) => delay,
            None => {
                let strikes = live.strikes.entry(model.to_owned()).or_insert(0);
                *strikes += 1;
                let tier = (*strikes as usize)
                    .saturating_sub(1)
                    .min(self.config.lockout_tiers.len().saturating_sub(1));
                self.config
                    .lockout_tiers
                    .get(tier)
                    .copied()
                    .unwrap_or(FALLBACK_LOCKOUT)
            }
        };
        live.cooldowns
            .insert(model.to_owned(), Instant::now() + delay);
        delay
    }
}
