//! Who is calling, and what they may do.
//!
//! Client keys are `server.api_keys` (unnamed, unrestricted) and `[[keys]]` (named, limited to
//! model patterns, a request rate and a token rate): a teammate can get a key of their own
//! without seeing anyone else's, and usage is counted per name. Admin keys open `/admin/*` and
//! `/metrics`; when `server.admin_keys` is empty, `server.api_keys` act as admin keys (and,
//! without them, the named keys), so a gateway configured before admin keys existed keeps
//! working. A client key is refused there with 403 once admin keys are set, so a key handed to
//! a teammate cannot import accounts or reload the configuration.
//!
//! Keys are compared in constant time against every configured key. Logs, usage and metrics
//! name a key by its `name` (an unnamed key by its place, `api_keys[0]`), never by its value.
//!
//! The rate windows live in a [`Limiter`] that outlives a configuration reload, keyed by name,
//! so reloading cannot reset a key's minute.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use http::HeaderMap;
use tokio::time::Instant;
use wildmatch::WildMatch;

use gateway_core::{ErrorKind, GatewayError, Secret, retry::RetryHint};

use crate::{
    config::Config,
    http::{invalid_key, missing_key, presented_key, which_key},
};

/// The length of the sliding rate windows.
const MINUTE: Duration = Duration::from_secs(60);

/// What a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The API a client uses.
    Client,
    /// `/admin/*` and `/metrics`.
    Admin,
}

/// The caller of one request, as far as keys tell.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The key's name; empty when the gateway is open (no keys configured).
    pub(crate) name: Arc<str>,
    /// The client key, by index into [`Keys`]; `None` for admin keys and open access.
    client: Option<usize>,
}

impl Caller {
    fn anonymous() -> Self {
        Self {
            name: Arc::from(""),
            client: None,
        }
    }
}

/// One client key.
#[derive(Debug)]
struct ClientKey {
    name: Arc<str>,
    secret: Secret,
    /// `None`: every model.
    models: Option<Vec<WildMatch>>,
    rpm: Option<u32>,
    tpm: Option<u64>,
}

/// Which keys open the admin paths.
#[derive(Debug)]
enum AdminBy {
    /// `server.admin_keys`.
    Keys(Vec<Secret>),
    /// The first this many client keys.
    Clients(usize),
    /// No key at all is configured.
    Open,
}

/// The configured keys; built per configuration.
#[derive(Debug)]
pub(crate) struct Keys {
    clients: Vec<ClientKey>,
    admin: AdminBy,
}

impl Keys {
    /// The keys of `config`.
    pub(crate) fn new(config: &Config) -> Self {
        let unnamed = config
            .server
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, key)| ClientKey {
                name: Arc::from(format!("api_keys[{i}]")),
                secret: key.clone(),
                models: None,
                rpm: None,
                tpm: None,
            });
        let named = config.keys.iter().map(|key| ClientKey {
            name: Arc::from(key.name.as_str()),
            secret: key.key.clone(),
            models: (!key.models.iter().any(|m| m == "*")).then(|| {
                key.models
                    .iter()
                    .map(|m| WildMatch::new_case_insensitive(m))
                    .collect()
            }),
            rpm: key.rpm,
            tpm: key.tpm,
        });
        let clients: Vec<ClientKey> = unnamed.chain(named).collect();
        let admin = if !config.server.admin_keys.is_empty() {
            AdminBy::Keys(config.server.admin_keys.clone())
        } else if !config.server.api_keys.is_empty() {
            AdminBy::Clients(config.server.api_keys.len())
        } else if !clients.is_empty() {
            tracing::warn!(
                "server.admin_keys is empty: every [[keys]] entry may use /admin and /metrics; set admin_keys before handing keys out"
            );
            AdminBy::Clients(clients.len())
        } else {
            AdminBy::Open
        };
        Self { clients, admin }
    }

    /// Who sent `headers` (and `query`), if they may use a path that needs `access`: 401
    /// without a known key, 403 for a client key on an admin path.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        access: Access,
    ) -> Result<Caller, GatewayError> {
        let open = match access {
            Access::Client => self.clients.is_empty(),
            Access::Admin => matches!(self.admin, AdminBy::Open),
        };
        if open {
            return Ok(Caller::anonymous());
        }
        let presented = presented_key(headers, query).ok_or_else(missing_key)?;
        let client = which_key(presented, self.clients.iter().map(|k| &k.secret));
        let caller = |index: usize| Caller {
            name: self.clients[index].name.clone(),
            client: Some(index),
        };
        match (access, &self.admin) {
            (Access::Client, _) => client.map(caller).ok_or_else(invalid_key),
            (Access::Admin, AdminBy::Keys(admin)) => {
                if which_key(presented, admin).is_some() {
                    Ok(Caller {
                        name: Arc::from("admin"),
                        client: None,
                    })
                } else if client.is_some() {
                    Err(not_admin())
                } else {
                    Err(invalid_key())
                }
            }
            (Access::Admin, AdminBy::Clients(admins)) => match client {
                Some(index) if index < *admins => Ok(caller(index)),
                Some(_) => Err(not_admin()),
                None => Err(invalid_key()),
            },
            (Access::Admin, AdminBy::Open) => Ok(Caller::anonymous()),
        }
    }

    fn key(&self, caller: &Caller) -> Option<&ClientKey> {
        caller.client.and_then(|index| self.clients.get(index))
    }

    /// Whether the caller's key is limited to some models (the model must then be read).
    pub(crate) fn restricted(&self, caller: &Caller) -> bool {
        self.key(caller).is_some_and(|key| key.models.is_some())
    }

    /// Whether the caller may use `model`: it, or the model its alias stands for, matches one
    /// of the key's patterns.
    pub(crate) fn allows(
        &self,
        caller: &Caller,
        model: &str,
        aliases: &BTreeMap<String, String>,
    ) -> Result<(), GatewayError> {
        let Some(patterns) = self.key(caller).and_then(|key| key.models.as_ref()) else {
            return Ok(());
        };
        let target = aliases.get(model).map(String::as_str);
        let allowed = patterns
            .iter()
            .any(|p| p.matches(model) || target.is_some_and(|t| p.matches(t)));
        if allowed {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the key {:?} may not use the model {model:?}",
                    &*caller.name
                ),
            )
            .with_code("model_not_allowed")
            .with_param("model"))
        }
    }

    /// The caller's request and token limits per minute.
    pub(crate) fn limits(&self, caller: &Caller) -> (Option<u32>, Option<u64>) {
        self.key(caller)
            .map_or((None, None), |key| (key.rpm, key.tpm))
    }
}

fn not_admin() -> GatewayError {
    GatewayError::new(
        ErrorKind::PermissionDenied,
        "this is a client key; /admin and /metrics take an admin key (server.admin_keys)",
    )
    .with_code("admin_key_required")
}

/// One key's last minute.
#[derive(Debug, Default)]
struct Window {
    /// When each admitted request arrived (at most `rpm` kept).
    requests: VecDeque<Instant>,
    /// Tokens of finished requests, in one-second buckets.
    tokens: VecDeque<(Instant, u64)>,
    token_sum: u64,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|at| now.duration_since(*at) >= MINUTE)
        {
            self.requests.pop_front();
        }
        while let Some((at, tokens)) = self.tokens.front().copied() {
            if now.duration_since(at) < MINUTE {
                break;
            }
            self.token_sum = self.token_sum.saturating_sub(tokens);
            self.tokens.pop_front();
        }
    }
}

/// Sliding-minute request and token windows per key name; shared across reloads.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: Mutex<HashMap<Arc<str>, Window>>,
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit one request of `name` under `rpm` and `tpm`, or the 429 with how long to wait.
    pub(crate) fn admit(
        &self,
        name: &Arc<str>,
        rpm: Option<u32>,
        tpm: Option<u64>,
    ) -> Result<(), GatewayError> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        let mut windows = self.lock();
        let window = windows.entry(name.clone()).or_default();
        window.prune(now);
        if let Some(tpm) = tpm
            && window.token_sum >= tpm
        {
            // Wait until enough buckets leave the window to bring the sum below the limit.
            let mut left = window.token_sum;
            let mut until = now;
            for (at, tokens) in &window.tokens {
                left = left.saturating_sub(*tokens);
                until = *at + MINUTE;
                if left < tpm {
                    break;
                }
            }
            return Err(limited(
                format!("the key {:?} used its {tpm} tokens per minute", &**name),
                until.saturating_duration_since(now),
            ));
        }
        if let Some(rpm) = rpm {
            let rpm = usize::try_from(rpm).unwrap_or(usize::MAX);
            if window.requests.len() >= rpm {
                let oldest = window.requests[window.requests.len() - rpm];
                return Err(limited(
                    format!("the key {:?} made its {rpm} requests per minute", &**name),
                    (oldest + MINUTE).saturating_duration_since(now),
                ));
            }
            window.requests.push_back(now);
        }
        Ok(())
    }

    /// Count `tokens` of a finished request of `name` (only keys with a token limit).
    pub(crate) fn spend(&self, name: &Arc<str>, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        let mut windows = self.lock();
        let window = windows.entry(name.clone()).or_default();
        window.prune(now);
        window.token_sum = window.token_sum.saturating_add(tokens);
        match window.tokens.back_mut() {
            Some((at, sum)) if now.duration_since(*at) < Duration::from_secs(1) => {
                *sum = sum.saturating_add(tokens);
            }
            _ => window.tokens.push_back((now, tokens)),
        }
    }
}

/// A 429 asking to come back after `wait` (at least a second).
pub(crate) fn limited(message: String, wait: Duration) -> GatewayError {
    GatewayError::new(ErrorKind::RateLimited, message)
        .with_code("rate_limit_exceeded")
        .with_retry(RetryHint {
            delay: Some(wait.max(Duration::from_secs(1))),
            reason: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(toml: &str) -> Keys {
        let config = Config::parse(toml, "t.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
        Keys::new(&config)
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::try_from(format!("Bearer {key}")).unwrap_or_else(|e| panic!("{e}")),
        );
        headers
    }

    #[test]
    fn admin_keys_refuse_client_keys_and_client_keys_refuse_admin_keys() {
        let keys = keys(
            "[server]\napi_keys=[\"plain\"]\nadmin_keys=[\"root\"]\n[[keys]]\nname=\"alice\"\nkey=\"a-1\"\nmodels=[\"gpt-*\"]\n",
        );
        let status = |key: &str, access| {
            keys.check(&bearer(key), None, access)
                .map(|c| c.name.to_string())
                .map_err(|e| e.status().as_u16())
        };
        assert_eq!(status("a-1", Access::Client), Ok("alice".to_owned()));
        assert_eq!(
            status("plain", Access::Client),
            Ok("api_keys[0]".to_owned())
        );
        assert_eq!(status("root", Access::Client), Err(401));
        assert_eq!(status("a-1", Access::Admin), Err(403));
        assert_eq!(status("plain", Access::Admin), Err(403));
        assert_eq!(status("root", Access::Admin), Ok("admin".to_owned()));
        assert_eq!(status("nope", Access::Admin), Err(401));
    }

    #[test]
    fn without_admin_keys_the_unnamed_keys_are_admin() {
        let keys = keys("[server]\napi_keys=[\"plain\"]\n[[keys]]\nname=\"alice\"\nkey=\"a-1\"\n");
        assert!(keys.check(&bearer("plain"), None, Access::Admin).is_ok());
        let refused = keys.check(&bearer("a-1"), None, Access::Admin);
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.status().as_u16()),
            Err(403)
        );
        let open = self::keys("");
        assert!(open.check(&HeaderMap::new(), None, Access::Admin).is_ok());
        assert!(open.check(&HeaderMap::new(), None, Access::Client).is_ok());
    }

    #[test]
    fn models_match_the_name_or_the_alias_target() {
        let keys = keys(
            "[aliases]\nfast=\"gpt-4o-mini\"\n[[keys]]\nname=\"alice\"\nkey=\"a-1\"\nmodels=[\"gpt-*\"]\n",
        );
        let config = Config::parse("[aliases]\nfast=\"gpt-4o-mini\"\n", "t.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let alice = keys
            .check(&bearer("a-1"), None, Access::Client)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(keys.restricted(&alice));
        assert!(keys.allows(&alice, "GPT-4o", &config.aliases).is_ok());
        assert!(keys.allows(&alice, "fast", &config.aliases).is_ok());
        let refused = keys.allows(&alice, "claude-sonnet-4", &config.aliases);
        assert_eq!(refused.map_err(|e| e.status().as_u16()), Err(403));
    }

    #[tokio::test(start_paused = true)]
    async fn windows_slide() {
        let limiter = Limiter::default();
        let name: Arc<str> = Arc::from("alice");
        assert!(limiter.admit(&name, Some(2), None).is_ok());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(limiter.admit(&name, Some(2), None).is_ok());
        let refused = limiter
            .admit(&name, Some(2), None)
            .map_err(|e| e.retry_after());
        assert_eq!(refused, Err(Some(Duration::from_secs(50))));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(limiter.admit(&name, Some(2), None).is_ok());

        let tokens: Arc<str> = Arc::from("bob");
        assert!(limiter.admit(&tokens, None, Some(100)).is_ok());
        limiter.spend(&tokens, 60);
        tokio::time::advance(Duration::from_secs(30)).await;
        limiter.spend(&tokens, 60);
        let refused = limiter
            .admit(&tokens, None, Some(100))
            .map_err(|e| e.retry_after());
        assert_eq!(refused, Err(Some(Duration::from_secs(30))));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(limiter.admit(&tokens, None, Some(100)).is_ok());
    }
}
