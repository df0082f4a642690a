//! Where shared state lives (`[state]`): the embedded default keeps it in this process (and
//! its files and SQLite database); `backend = "redis"` shares it between the replicas of one
//! gateway through Redis.
//!
//! Shared through Redis: what the account pools learn (cooldowns per account and model, disabled
//! accounts, fresh tokens, and one token refresh at a time across replicas), the rate windows of
//! keys with `rpm` or `tpm`, and usage. Not shared: circuit breakers, health checks, the retry
//! budget and kept Responses (each replica judges its own upstream connections).
//!
//! A request never waits on Redis longer than [`redis::BOUND`]; while Redis is unreachable
//! every replica serves on its local state, logs that once a minute, and shows it in
//! `/admin/backends` and `/metrics`; when Redis is back, each replica writes what it learned
//! meanwhile and reads what the others did.

pub(crate) mod redis;

use std::sync::Arc;

use gateway_core::{
    GatewayError,
    state::{Alone, SharedAccounts},
};
use serde_json::{Value, json};

use crate::{auth::Limiter, config::StateConfig};

/// The engine in use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared {
    redis: Option<Arc<redis::RedisState>>,
}

impl Shared {
    /// The engine `config` names; Redis is connected in the background.
    pub(crate) fn start(config: &StateConfig) -> Result<Self, GatewayError> {
        if config.backend != "redis" {
            return Ok(Self::default());
        }
        let state = redis::RedisState::start(config.url.expose(), &config.prefix)?;
        Ok(Self { redis: Some(state) })
    }

    /// What the account pools share.
    pub(crate) fn accounts(&self) -> Arc<dyn SharedAccounts> {
        match &self.redis {
            Some(redis) => redis.clone(),
            None => Arc::new(Alone),
        }
    }

    /// Admit one request of the key `name` under its limits: across replicas through Redis,
    /// on this replica's windows when Redis cannot answer in time.
    pub(crate) async fn admit(
        &self,
        limiter: &Limiter,
        name: &Arc<str>,
        rpm: Option<u32>,
        tpm: Option<u64>,
    ) -> Result<(), GatewayError> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        if let Some(redis) = &self.redis
            && let Some(answer) = redis.admit(name, rpm, tpm).await
        {
            return answer;
        }
        limiter.admit(name, rpm, tpm)
    }

    /// Count the tokens a request of `name` spent (a key with a token limit).
    pub(crate) fn spend(&self, limiter: &Limiter, name: &Arc<str>, tokens: u64) {
        limiter.spend(name, tokens);
        if let Some(redis) = &self.redis {
            redis.spend(name, tokens);
        }
    }

    /// The Redis the usage writer also writes to, and `/admin/usage` reads from.
    pub(crate) fn usage(&self) -> Option<redis::UsageLink> {
        self.redis.as_ref().map(|r| r.usage_link())
    }

    /// Whether the engine is reachable (`None`: the local engine, always there).
    pub(crate) fn up(&self) -> Option<bool> {
        self.redis.as_ref().map(|r| r.is_up())
    }

    /// What `/admin/backends` shows.
    pub(crate) fn view(&self) -> Value {
        match &self.redis {
            None => json!({"backend": "local"}),
            Some(redis) => redis.view(),
        }
    }
}
