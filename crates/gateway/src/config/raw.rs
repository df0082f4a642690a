//! The configuration file as written: every string keeps its span, so errors found after
//! parsing (an unset variable, a bad duration) still name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(super) type Str = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) antigravity: RawAntigravity,
    #[serde(default)]
    pub(super) geminicli: RawAntigravity,
    #[serde(default)]
    pub(super) backends: BTreeMap<String, RawBackend>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
    #[serde(default)]
    pub(super) aliases: BTreeMap<String, Str>,
    #[serde(default)]
    pub(super) logging: RawLogging,
    #[serde(default)]
    pub(super) keys: Vec<RawKey>,
    #[serde(default)]
    pub(super) state: RawState,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Str>,
    pub(super) api_keys: Option<Vec<Str>>,
    pub(super) seal_key: Option<Str>,
    pub(super) max_body: Option<Str>,
    pub(super) shutdown_grace: Option<Str>,
    pub(super) header_read_timeout: Option<Str>,
    pub(super) max_header_bytes: Option<Str>,
    pub(super) max_headers: Option<usize>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) public_health: Option<bool>,
    pub(super) public_metrics: Option<bool>,
    pub(super) dashboard: Option<bool>,
    pub(super) models_cache_ttl: Option<Str>,
    pub(super) request_timeout: Option<Str>,
    pub(super) max_attempts: Option<usize>,
    pub(super) admin_keys: Option<Vec<Str>>,
}

/// `[[keys]]`: a named client key with its limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) name: Str,
    pub(super) key: Str,
    pub(super) models: Option<Vec<Str>>,
    pub(super) rpm: Option<u32>,
    pub(super) tpm: Option<u64>,
}

/// `[state]`: where shared state lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) backend: Option<Str>,
    pub(super) url: Option<Str>,
    pub(super) prefix: Option<Str>,
    pub(super) usage_db: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAntigravity {
    pub(super) credentials_dir: Option<Str>,
    pub(super) base_urls: Option<Vec<Str>>,
    pub(super) token_url: Option<Str>,
    pub(super) auth_url: Option<Str>,
    pub(super) userinfo_url: Option<Str>,
    pub(super) client_id: Option<Str>,
    pub(super) client_secret: Option<Str>,
    pub(super) user_agent: Option<Str>,
    pub(super) selection: Option<Str>,
    pub(super) max_concurrency_per_account: Option<usize>,
    pub(super) outbound_proxy: Option<Str>,
    pub(super) short_retry_wait: Option<Str>,
    pub(super) first_byte_timeout: Option<Str>,
    pub(super) idle_timeout: Option<Str>,
    pub(super) timeout: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) kind: Str,
    pub(super) base_url: Option<Str>,
    pub(super) proxy_url: Option<Str>,
    pub(super) api_key: Option<Str>,
    pub(super) api_keys: Option<Vec<Str>>,
    pub(super) auth: Option<Str>,
    pub(super) forward_client_auth: Option<bool>,
    pub(super) native_messages: Option<bool>,
    pub(super) native_responses: Option<bool>,
    pub(super) priority: Option<i64>,
    pub(super) models: Option<Vec<Str>>,
    pub(super) model_map: Option<BTreeMap<String, Str>>,
    pub(super) forward_headers: Option<Vec<Str>>,
    pub(super) connect_timeout: Option<Str>,
    pub(super) first_byte_timeout: Option<Str>,
    pub(super) idle_timeout: Option<Str>,
    pub(super) timeout: Option<Str>,
    pub(super) max_retries: Option<u32>,
    pub(super) breaker_threshold: Option<u32>,
    pub(super) breaker_open: Option<Str>,
    pub(super) breaker_max_open: Option<Str>,
    pub(super) health_path: Option<Str>,
    pub(super) health_interval: Option<Str>,
    pub(super) health_timeout: Option<Str>,
    pub(super) enabled: Option<bool>,
    pub(super) outbound_proxy: Option<Str>,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) status: u16,
    pub(super) body: Option<Str>,
    pub(super) action: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) models: Vec<Str>,
    pub(super) chain: Spanned<Vec<RawHop>>,
    pub(super) fallback_on: Option<Spanned<Vec<RawCondition>>>,
    pub(super) hedge_after: Option<Str>,
    pub(super) rescue: Option<Str>,
}

/// A chain entry: a backend name, or a table naming the backend and the model to send.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawHop {
    Name(String),
    Table {
        backend: String,
        model: Option<String>,
    },
}

/// A `fallback_on` entry: an HTTP status or a condition name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawCondition {
    Status(u16),
    Name(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    pub(super) format: Option<Str>,
    pub(super) level: Option<Str>,
}
