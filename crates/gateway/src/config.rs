//! Configuration: `gateway.toml` (or the embedded default) → a validated [`Config`].
//!
//! Rules (the contract is `docs/configuration.md`):
//! - `${VAR}` and `${VAR:-default}` are substituted in string values only, after parsing, so a
//!   substitution never changes a value's type; `$${` writes a literal `${`.
//! - Durations are written `250ms`, `30s`, `5m`, `1h`; sizes `512KiB`, `32MiB`.
//! - Unknown keys, wrong types, unset variables and invalid values fail with the file, the line
//!   and the key.
//! - Secrets are held in `Secret` and print as `[redacted]`.

mod raw;

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;
use toml::Spanned;

use antigravity_service::{Profile, Selection};
use gateway_core::{GatewayError, Secret, Timeouts};

use raw::{RawBackend, RawCondition, RawConfig, RawHop, Str};

/// The configuration used when no file is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The validated configuration. Only [`Config::parse`], [`Config::load`] and
/// [`Config::embedded`] make one, so every `Config` has passed validation; its parts are read
/// through accessors.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where it came from (a path, or `<embedded default>`).
    #[serde(skip)]
    pub(crate) source: String,
    /// The HTTP server.
    pub(crate) server: ServerConfig,
    /// The in-process Antigravity service.
    pub(crate) antigravity: AntigravityConfig,
    /// The in-process Gemini CLI pool (`[geminicli]`).
    pub(crate) geminicli: AntigravityConfig,
    /// Backends by name.
    pub(crate) backends: Vec<BackendConfig>,
    /// Fallback chains for model patterns; the first matching route wins.
    pub(crate) routes: Vec<RouteConfig>,
    /// Client-visible model names and the model each stands for.
    pub(crate) aliases: BTreeMap<String, String>,
    /// Logging.
    pub(crate) logging: LoggingConfig,
    /// Named client keys (`[[keys]]`), beside `server.api_keys`.
    pub(crate) keys: Vec<KeyConfig>,
    /// Where shared state lives (`[state]`).
    pub(crate) state: StateConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    /// The listen address.
    pub listen: SocketAddr,
    /// Client keys; empty means open.
    #[serde(serialize_with = "redact_all")]
    pub api_keys: Vec<Secret>,
    /// Keys for `/admin/*` and `/metrics`; empty: `api_keys` serve (and, without them, the
    /// named keys).
    #[serde(serialize_with = "redact_all")]
    pub admin_keys: Vec<Secret>,
    /// Signs the reasoning blobs handed to Responses clients (their thinking signatures);
    /// `None`: a random key per process.
    #[serde(serialize_with = "redact_opt")]
    pub seal_key: Option<Secret>,
    /// Largest request body.
    #[serde(serialize_with = "size")]
    pub max_body: usize,
    /// How long in-flight requests may finish at shutdown.
    #[serde(serialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// How long a client may take to send its request headers.
    #[serde(serialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// Largest request head.
    #[serde(serialize_with = "size")]
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Requests in flight before new ones get a fast 503.
    pub max_in_flight: usize,
    /// Whether `/health` answers without a key.
    pub public_health: bool,
    /// Whether `/metrics` answers without a key.
    pub public_metrics: bool,
    /// Whether the dashboard is served at `/ui` (and `GET /` leads there); by default when the
    /// gateway listens on a loopback address.
    pub dashboard: bool,
    /// Whether the file set `dashboard` (else it follows the listen address).
    #[serde(skip)]
    dashboard_set: bool,
    /// How long a merged model list is reused.
    #[serde(serialize_with = "duration")]
    pub models_cache_ttl: Duration,
    /// The deadline for one client request, across every attempt and retry.
    #[serde(serialize_with = "duration")]
    pub request_timeout: Duration,
    /// Upstream attempts per client request, across hops and retries.
    pub max_attempts: usize,
}

/// `[antigravity]` or `[geminicli]`: an in-process Google pool.
#[derive(Debug, Clone, Serialize)]
pub struct AntigravityConfig {
    /// Which pool this is.
    #[serde(skip)]
    pub profile: Profile,
    /// The account files.
    pub credentials_dir: PathBuf,
    /// Upstream base URLs in order.
    pub base_urls: Vec<String>,
    /// OAuth token endpoint.
    pub token_url: String,
    /// OAuth authorization endpoint (login).
    pub auth_url: String,
    /// OAuth user-info endpoint (login).
    pub userinfo_url: String,
    /// OAuth client id for login and for accounts that name none.
    pub client_id: String,
    /// Its secret.
    #[serde(serialize_with = "redact")]
    pub client_secret: Secret,
    /// `User-Agent` upstream.
    pub user_agent: String,
    /// Account selection.
    pub selection: Selection,
    /// Calls in flight per account.
    pub max_concurrency_per_account: usize,
    /// Outbound proxy for this service's upstream traffic.
    pub outbound_proxy: Option<String>,
    /// A retry hint up to this long is waited out on the same account.
    #[serde(serialize_with = "duration")]
    pub short_retry_wait: Duration,
    /// Upstream time budgets.
    #[serde(serialize_with = "timeouts")]
    pub timeouts: Timeouts,
}

impl AntigravityConfig {
    /// The HTTP client of this pool's upstream traffic (through its `outbound_proxy`).
    pub fn client(&self) -> Result<gateway_proxy::Client, GatewayError> {
        gateway_proxy::Client::new(gateway_proxy::ClientConfig {
            proxy: self.outbound_proxy.clone(),
            ..gateway_proxy::ClientConfig::default()
        })
    }

    /// A login that adds an account to this pool (`gateway login` and the dashboard's "add
    /// account").
    pub fn login(
        &self,
    ) -> Result<antigravity_service::LoginFlow<gateway_proxy::Client>, GatewayError> {
        Ok(antigravity_service::LoginFlow::new(
            self.client()?,
            self.oauth(),
        ))
    }

    /// The OAuth settings of a login (`gateway login` and the dashboard's "add account").
    pub fn oauth(&self) -> antigravity_service::OAuthConfig {
        antigravity_service::OAuthConfig {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            auth_url: self.auth_url.clone(),
            token_url: self.token_url.clone(),
            userinfo_url: self.userinfo_url.clone(),
            base_url: self.base_urls.first().cloned().unwrap_or_default(),
            ..self.profile.oauth()
        }
    }
}

/// What a backend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The in-process Antigravity service (and its `proxy_url` for everything else).
    Antigravity,
    /// Any OpenAI-compatible upstream.
    Openai,
    /// Any Anthropic-Messages upstream (Kiro gateways, AnyRouter, api.anthropic.com).
    Anthropic,
    /// A Gemini API upstream (AI Studio keys).
    Gemini,
    /// The in-process Gemini CLI pool (Code Assist for individuals, `[geminicli]`).
    Geminicli,
}

impl BackendKind {
    /// The in-process pool a backend of this kind is served by, if it is one.
    pub fn profile(self) -> Option<Profile> {
        match self {
            Self::Antigravity => Some(Profile::Antigravity),
            Self::Geminicli => Some(Profile::GeminiCli),
            Self::Openai | Self::Anthropic | Self::Gemini => None,
        }
    }

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Antigravity => "antigravity",
            Self::Geminicli => "geminicli",
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}

/// How a backend's own key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `Authorization: Bearer <key>` (the default for `openai`).
    Bearer,
    /// `x-api-key: <key>` (the default for `anthropic`).
    XApiKey,
    /// `x-goog-api-key: <key>` (the default for `gemini`).
    XGoogApiKey,
}

/// `[backends.NAME]`.
#[derive(Debug, Clone, Serialize)]
pub struct BackendConfig {
    /// The name.
    pub name: String,
    /// What it is.
    pub kind: BackendKind,
    /// OpenAI-compatible base URL (`openai`).
    pub base_url: Option<String>,
    /// Where other endpoints go, and every call while the local service is unavailable
    /// (`antigravity`).
    pub proxy_url: Option<String>,
    /// The backend's own key.
    #[serde(serialize_with = "redact")]
    pub api_key: Secret,
    /// More keys, rotated with `api_key` and cooled one by one on rate limits.
    #[serde(serialize_with = "redact_all")]
    pub api_keys: Vec<Secret>,
    /// How the key is sent.
    pub auth: Auth,
    /// Whether the client's own credentials are forwarded.
    pub forward_client_auth: bool,
    /// `openai` only: the upstream serves Anthropic `/v1/messages` itself (passed through, not
    /// converted to chat completions).
    pub native_messages: bool,
    /// `openai` only: the upstream serves `/v1/responses` itself (passed through, not
    /// converted to chat completions).
    pub native_responses: bool,
    /// Lower is tried first.
    pub priority: i64,
    /// Model patterns it serves.
    pub models: Vec<String>,
    /// Requested model → model sent.
    pub model_map: BTreeMap<String, String>,
    /// Headers forwarded besides the built-in allowlist.
    pub forward_headers: Vec<String>,
    /// Connect budget.
    #[serde(serialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Response-phase budgets.
    #[serde(serialize_with = "timeouts")]
    pub timeouts: Timeouts,
    /// Same-backend retries before failing over.
    pub max_retries: u32,
    /// Consecutive failures that open the breaker of one of its models.
    pub breaker_threshold: u32,
    /// How long a breaker stays open the first time; each failed probe doubles it.
    #[serde(serialize_with = "duration")]
    pub breaker_open: Duration,
    /// The longest a breaker stays open: a recovered backend is used again within this.
    #[serde(serialize_with = "duration")]
    pub breaker_max_open: Duration,
    /// Active health checks: the path asked with `GET` (below `base_url`), when set.
    pub health_path: Option<String>,
    /// Time between two health checks.
    #[serde(serialize_with = "duration")]
    pub health_interval: Duration,
    /// How long one health check may take.
    #[serde(serialize_with = "duration")]
    pub health_timeout: Duration,
    /// Whether it serves at all.
    pub enabled: bool,
    /// Outbound proxy for this backend.
    pub outbound_proxy: Option<String>,
    /// Extra rules: what an error status (and body text) means for this backend.
    pub rules: Vec<Rule>,
}

/// `[[backends.NAME.rules]]`: an error with this status, and this text in its body when given,
/// leads to this action, before the default classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The upstream status.
    pub status: u16,
    /// Text the body must contain (case-insensitive).
    pub body: Option<String>,
    /// What to do.
    pub action: RuleAction,
}

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Retry the same backend (while its retries last), then fail over.
    Retry,
    /// Move to the next hop.
    Failover,
    /// Give the client the error.
    Stop,
}

/// One hop of a route's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HopConfig {
    /// The backend's name.
    pub backend: String,
    /// The model to send; the requested one (after `model_map`) when absent.
    pub model: Option<String>,
}

/// When a chain moves to its next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Condition {
    /// The upstream answered this status.
    Status(u16),
    /// A named condition.
    Named(NamedCondition),
}

/// The named `fallback_on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NamedCondition {
    /// Any timeout.
    Timeout,
    /// A connection failure.
    Connect,
    /// The backend cannot serve (no accounts, local service unavailable, malformed answer).
    Unavailable,
}

/// The default `fallback_on`.
pub fn default_fallback_on() -> Vec<Condition> {
    let mut conditions: Vec<Condition> = [429, 500, 502, 503, 504, 529]
        .into_iter()
        .map(Condition::Status)
        .collect();
    conditions.extend(
        [
            NamedCondition::Timeout,
            NamedCondition::Connect,
            NamedCondition::Unavailable,
        ]
        .map(Condition::Named),
    );
    conditions
}

/// `[[routes]]`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteConfig {
    /// Model patterns (`*`, `?`).
    pub models: Vec<String>,
    /// Hops in order.
    pub chain: Vec<HopConfig>,
    /// When to move to the next hop.
    pub fallback_on: Vec<Condition>,
    /// Start the next hop in parallel when the first content is this late.
    #[serde(
        serialize_with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub hedge_after: Option<Duration>,
    /// What happens to a committed stream that breaks.
    pub rescue: Rescue,
}

/// What a route does when a stream breaks after content reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rescue {
    /// Continue the answer on the chain's next hop.
    #[default]
    Continue,
    /// End the stream with the protocol's terminal error event.
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[logging]`.
#[derive(Debug, Clone, Serialize)]
pub struct LoggingConfig {
    /// The format.
    pub format: LogFormat,
    /// The filter (`info`, `gateway=debug,info`, ...).
    pub level: String,
}

/// `[[keys]]`: a named client key. Logs and usage name it by `name`, never by its value.
#[derive(Debug, Clone, Serialize)]
pub struct KeyConfig {
    /// The name usage and logs show.
    pub name: String,
    /// The key clients send.
    #[serde(serialize_with = "redact")]
    pub key: Secret,
    /// Model patterns (`*`, `?`, case-insensitive) this key may use.
    pub models: Vec<String>,
    /// Requests per sliding minute; `None`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens of finished requests per sliding minute; `None`: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

/// `[state]`: where shared state lives.
#[derive(Debug, Clone, Serialize)]
pub struct StateConfig {
    /// `local`: files and SQLite under the data directory; `redis`: shared with the other
    /// replicas through Redis at `url`.
    pub backend: String,
    /// The Redis URL (`redis://[:password@]host:port/db`, `rediss://` for TLS).
    #[serde(serialize_with = "redact")]
    pub url: Secret,
    /// What every key this gateway writes in Redis starts with, so several gateways can share
    /// one Redis.
    pub prefix: String,
    /// The usage database; `None` (written `usage_db = ""`): usage is counted in the
    /// metrics only.
    #[serde(serialize_with = "path_or_empty")]
    pub usage_db: Option<PathBuf>,
}

/// The usage database when `[state]` does not name one.
pub const DEFAULT_USAGE_DB: &str = "data/usage.sqlite";

fn path_or_empty<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    )
}

/// A configuration error: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key path, e.g. `backends.copilot.timeout`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}: {}", self.file, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Where it came from (a path, or `<embedded default>`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `[server]`.
    pub fn server(&self) -> &ServerConfig {
        &self.server
    }

    /// `[backends.*]`, by name.
    pub fn backends(&self) -> &[BackendConfig] {
        &self.backends
    }

    /// `[antigravity]`.
    pub fn antigravity(&self) -> &AntigravityConfig {
        &self.antigravity
    }

    /// The settings of the pool of `profile`: `[antigravity]` or `[geminicli]`.
    pub fn pool(&self, profile: Profile) -> &AntigravityConfig {
        match profile {
            Profile::Antigravity => &self.antigravity,
            Profile::GeminiCli => &self.geminicli,
        }
    }

    /// `[logging]`.
    pub fn logging(&self) -> &LoggingConfig {
        &self.logging
    }

    /// The same configuration listening on `listen` (the `--listen` flag); a dashboard the
    /// file did not set follows the new address.
    #[must_use]
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.server.listen = listen;
        if !self.server.dashboard_set {
            self.server.dashboard = listen.ip().is_loopback();
        }
        self
    }

    /// Load `path`, with variables from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: None,
                key: "(file)".to_owned(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(&text, &path.display().to_string(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// The embedded default, with variables from the process environment.
    pub fn embedded() -> Result<Self, ConfigErrors> {
        Self::parse(EMBEDDED_DEFAULT, "<embedded default>", &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parse and validate `text`; `file` names it in errors, `env` resolves variables.
    pub fn parse(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let lines = LineIndex::new(text);
        let raw: RawConfig = toml::Deserializer::parse(text)
            .map_err(|e| ConfigErrors(vec![toml_error(file, &lines, "(syntax)", &e)]))
            .and_then(|de| {
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let key = e.path().to_string();
                    ConfigErrors(vec![toml_error(file, &lines, &key, e.inner())])
                })
            })?;
        let mut v = Validator {
            file,
            lines: &lines,
            env,
            errors: Vec::new(),
        };
        let config = v.config(raw);
        if v.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(v.errors))
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }

    /// The backend named `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }
}

fn toml_error(file: &str, lines: &LineIndex, key: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().replace('\n', " ");
    let message = if message.starts_with("unknown field") {
        message.replacen("unknown field", "unknown key", 1)
    } else {
        message
    };
    ConfigError {
        file: file.to_owned(),
        line: error.span().map(|span| lines.line(span.start)),
        // A type error inside a span-keeping value names serde's private field; the user
        // wrote the key before it.
        key: match key.replace(".$__serde_spanned_private_value", "") {
            key if key == "." => "(root)".to_owned(),
            key => key,
        },
        message,
    }
}

/// Byte offset → line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|start| *start <= offset)
    }
}

struct Validator<'a> {
    file: &'a str,
    lines: &'a LineIndex,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(
        &mut self,
        key: &str,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: span.map(|s| self.lines.line(s.start)),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// A string with variables substituted.
    fn text(&mut self, key: &str, value: &Str) -> String {
        match substitute(value.get_ref(), self.env) {
            Ok(text) => text,
            Err(message) => {
                self.error(key, Some(value.span()), message);
                String::new()
            }
        }
    }

    fn opt_text(&mut self, key: &str, value: Option<&Str>) -> Option<String> {
        value.map(|v| self.text(key, v))
    }

    fn texts(&mut self, key: &str, values: Option<&Vec<Str>>) -> Option<Vec<String>> {
        values.map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, v)| self.text(&format!("{key}[{i}]"), v))
                .collect()
        })
    }

    fn duration(&mut self, key: &str, value: Option<&Str>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        let text = self.text(key, value);
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => duration,
            Err(_) => {
                self.error(
                    key,
                    Some(value.span()),
                    format!("{text:?} is not a duration (write 250ms, 30s, 5m or 1h)"),
                );
                default
            }
        }
    }

    fn size(&mut self, key: &str, value: Option<&Str>, default: usize) -> usize {
        let Some(value) = value else { return default };
        let text = self.text(key, value);
        match text.trim().parse::<bytesize::ByteSize>() {
            Ok(size) => usize::try_from(size.as_u64()).unwrap_or(usize::MAX),
            Err(_) => {
                self.error(
                    key,
                    Some(value.span()),
                    format!("{text:?} is not a size (write 512KiB or 32MiB)"),
                );
                default
            }
        }
    }

    fn url(&mut self, key: &str, value: Option<&Str>) -> Option<String> {
        let span = value.map(Spanned::span);
        let text = self.opt_text(key, value)?;
        let text = text.trim().trim_end_matches('/').to_owned();
        if text.is_empty() {
            return None;
        }
        let valid = text.parse::<http::Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !valid {
            self.error(
                key,
                span,
                format!("{text:?} is not an http:// or https:// url"),
            );
        }
        Some(text)
    }

    fn proxy(&mut self, key: &str, value: Option<&Str>) -> Option<String> {
        let span = value.map(Spanned::span);
        let text = self.opt_text(key, value)?.trim().to_owned();
        if text.is_empty() {
            return None;
        }
        if !(text.starts_with("http://")
            || text.starts_with("socks5://")
            || text.starts_with("socks5h://"))
        {
            self.error(
                key,
                span,
                format!("{text:?} must start with http:// or socks5://"),
            );
        }
        Some(text)
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let server = self.server(&raw.server);
        let antigravity = self.pool(&raw.antigravity, Profile::Antigravity);
        let geminicli = self.pool(&raw.geminicli, Profile::GeminiCli);
        let backends: Vec<BackendConfig> = raw
            .backends
            .iter()
            .map(|(name, backend)| self.backend(name, backend))
            .collect();
        let routes = raw
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| self.route(i, route, &backends))
            .collect();
        let aliases = raw
            .aliases
            .iter()
            .map(|(name, target)| (name.clone(), self.text(&format!("aliases.{name}"), target)))
            .collect();
        let format = match self
            .opt_text("logging.format", raw.logging.format.as_ref())
            .as_deref()
        {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                let span = raw.logging.format.as_ref().map(Spanned::span);
                self.error(
                    "logging.format",
                    span,
                    format!("{other:?} is not a log format (human or json)"),
                );
                LogFormat::Human
            }
        };
        let level = self
            .opt_text("logging.level", raw.logging.level.as_ref())
            .unwrap_or_else(|| "info".to_owned());
        Config {
            source: self.file.to_owned(),
            server,
            antigravity,
            geminicli,
            backends,
            routes,
            aliases,
            logging: LoggingConfig { format, level },
            keys: self.keys(&raw.keys),
            state: self.state(&raw.state),
        }
    }

    fn server(&mut self, raw: &raw::RawServer) -> ServerConfig {
        let listen_text = self
            .opt_text("server.listen", raw.listen.as_ref())
            .unwrap_or_else(|| "127.0.0.1:7861".to_owned());
        let listen = listen_text.trim().parse().unwrap_or_else(|_| {
            let span = raw.listen.as_ref().map(Spanned::span);
            self.error(
                "server.listen",
                span,
                format!("{listen_text:?} is not an address like 127.0.0.1:7861"),
            );
            SocketAddr::from(([127, 0, 0, 1], 7861))
        });
        let api_keys = self
            .texts("server.api_keys", raw.api_keys.as_ref())
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        let admin_keys = self
            .texts("server.admin_keys", raw.admin_keys.as_ref())
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        let seal_key = self
            .opt_text("server.seal_key", raw.seal_key.as_ref())
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        ServerConfig {
            listen,
            api_keys,
            admin_keys,
            seal_key,
            max_body: self.size("server.max_body", raw.max_body.as_ref(), 32 << 20),
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                raw.shutdown_grace.as_ref(),
                Duration::from_secs(30),
            ),
            header_read_timeout: self.duration(
                "server.header_read_timeout",
                raw.header_read_timeout.as_ref(),
                Duration::from_secs(10),
            ),
            max_header_bytes: self.size(
                "server.max_header_bytes",
                raw.max_header_bytes.as_ref(),
                64 << 10,
            ),
            max_headers: raw.max_headers.unwrap_or(100),
            max_in_flight: raw.max_in_flight.unwrap_or(1024),
            public_health: raw.public_health.unwrap_or(true),
            public_metrics: raw.public_metrics.unwrap_or(false),
            dashboard: raw.dashboard.unwrap_or(listen.ip().is_loopback()),
            dashboard_set: raw.dashboard.is_some(),
            models_cache_ttl: self.duration(
                "server.models_cache_ttl",
                raw.models_cache_ttl.as_ref(),
                Duration::from_secs(30),
            ),
            request_timeout: self.duration(
                "server.request_timeout",
                raw.request_timeout.as_ref(),
                Duration::from_secs(15 * 60),
            ),
            max_attempts: raw.max_attempts.unwrap_or(6).max(1),
        }
    }

    /// `[[keys]]`: names unique and non-empty, values unique, limits positive; an entry whose
    /// key is empty (`${VAR:-}` unset) is left out, as empty `api_keys` are.
    fn keys(&mut self, raw: &[raw::RawKey]) -> Vec<KeyConfig> {
        let mut keys: Vec<KeyConfig> = Vec::new();
        for (i, entry) in raw.iter().enumerate() {
            let at = |field: &str| format!("keys[{i}].{field}");
            let name = self.text(&at("name"), &entry.name).trim().to_owned();
            let value = self.text(&at("key"), &entry.key);
            if name.is_empty() {
                self.error(&at("name"), Some(entry.name.span()), "a key needs a name");
            } else if keys.iter().any(|k| k.name == name) {
                self.error(
                    &at("name"),
                    Some(entry.name.span()),
                    format!("{name:?} names two keys"),
                );
            }
            if !value.is_empty() && keys.iter().any(|k| k.key.expose() == value) {
                self.error(
                    &at("key"),
                    Some(entry.key.span()),
                    format!("key {name:?} has the same value as another key"),
                );
            }
            let models = self
                .texts(&at("models"), entry.models.as_ref())
                .unwrap_or_else(|| vec!["*".to_owned()]);
            if models.is_empty() {
                self.error(
                    &at("models"),
                    Some(entry.name.span()),
                    "an empty list allows no model (leave models out to allow every model)",
                );
            }
            for (field, zero) in [("rpm", entry.rpm == Some(0)), ("tpm", entry.tpm == Some(0))] {
                if zero {
                    self.error(&at(field), Some(entry.name.span()), "must be at least 1");
                }
            }
            if value.is_empty() {
                continue;
            }
            keys.push(KeyConfig {
                name,
                key: Secret::new(value),
                models,
                rpm: entry.rpm,
                tpm: entry.tpm,
            });
        }
        keys
    }

    fn state(&mut self, raw: &raw::RawState) -> StateConfig {
        let backend = self
            .opt_text("state.backend", raw.backend.as_ref())
            .unwrap_or_else(|| "local".to_owned());
        let url = self
            .opt_text("state.url", raw.url.as_ref())
            .unwrap_or_default();
        match backend.as_str() {
            "local" => {}
            "redis" => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    let span = raw.url.as_ref().or(raw.backend.as_ref()).map(Spanned::span);
                    self.error(
                        "state.url",
                        span,
                        "the redis backend needs url = \"redis://host:port\" (or rediss:// for TLS)",
                    );
                }
            }
            _ => {
                let span = raw.backend.as_ref().map(Spanned::span);
                self.error(
                    "state.backend",
                    span,
                    format!("{backend:?} is not a state backend (local or redis)"),
                );
            }
        }
        let prefix = self
            .opt_text("state.prefix", raw.prefix.as_ref())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "gateway".to_owned());
        let usage_db = match self.opt_text("state.usage_db", raw.usage_db.as_ref()) {
            None => Some(PathBuf::from(DEFAULT_USAGE_DB)),
            Some(path) if path.trim().is_empty() => None,
            Some(path) => Some(PathBuf::from(path.trim())),
        };
        StateConfig {
            backend,
            url: Secret::new(url),
            prefix,
            usage_db,
        }
    }

    /// `[antigravity]` or `[geminicli]`: one in-process Google pool, with its profile's
    /// defaults.
    fn pool(&mut self, raw: &raw::RawAntigravity, profile: Profile) -> AntigravityConfig {
        let section = profile.name();
        let field = |name: &str| format!("{section}.{name}");
        let defaults = profile.oauth();
        let selection = match self
            .opt_text(&field("selection"), raw.selection.as_ref())
            .as_deref()
        {
            None | Some("round-robin") => Selection::RoundRobin,
            Some("fill-first") => Selection::FillFirst,
            Some("sticky") => Selection::Sticky,
            Some(other) => {
                let span = raw.selection.as_ref().map(Spanned::span);
                self.error(
                    &field("selection"),
                    span,
                    format!("{other:?} is not round-robin, fill-first or sticky"),
                );
                Selection::RoundRobin
            }
        };
        let base_urls = match &raw.base_urls {
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, url)| self.url(&format!("{section}.base_urls[{i}]"), Some(url)))
                .collect(),
            None => profile
                .base_urls()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        let base = Timeouts::default();
        AntigravityConfig {
            profile,
            credentials_dir: PathBuf::from(
                self.opt_text(&field("credentials_dir"), raw.credentials_dir.as_ref())
                    .unwrap_or_else(|| profile.credentials_dir().to_owned()),
            ),
            base_urls,
            token_url: self
                .url(&field("token_url"), raw.token_url.as_ref())
                .unwrap_or(defaults.token_url),
            auth_url: self
                .url(&field("auth_url"), raw.auth_url.as_ref())
                .unwrap_or(defaults.auth_url),
            userinfo_url: self
                .url(&field("userinfo_url"), raw.userinfo_url.as_ref())
                .unwrap_or(defaults.userinfo_url),
            client_id: self
                .opt_text(&field("client_id"), raw.client_id.as_ref())
                .filter(|s| !s.is_empty())
                .unwrap_or(defaults.client_id),
            client_secret: self
                .opt_text(&field("client_secret"), raw.client_secret.as_ref())
                .filter(|s| !s.is_empty())
                .map_or(defaults.client_secret, Secret::new),
            user_agent: self
                .opt_text(&field("user_agent"), raw.user_agent.as_ref())
                .unwrap_or_else(|| profile.user_agent().to_owned()),
            selection,
            max_concurrency_per_account: raw.max_concurrency_per_account.unwrap_or(4).max(1),
            outbound_proxy: self.proxy(&field("outbound_proxy"), raw.outbound_proxy.as_ref()),
            short_retry_wait: self.duration(
                &field("short_retry_wait"),
                raw.short_retry_wait.as_ref(),
                Duration::from_secs(3),
            ),
            timeouts: Timeouts {
                headers: Some(self.duration(
                    &field("first_byte_timeout"),
                    raw.first_byte_timeout.as_ref(),
                    Duration::from_secs(60),
                )),
                first_byte: Some(self.duration(
                    &field("first_byte_timeout"),
                    raw.first_byte_timeout.as_ref(),
                    Duration::from_secs(60),
                )),
                idle: Some(self.duration(
                    &field("idle_timeout"),
                    raw.idle_timeout.as_ref(),
                    base.idle.unwrap_or(Duration::from_secs(120)),
                )),
                total: Some(self.duration(
                    &field("timeout"),
                    raw.timeout.as_ref(),
                    Duration::from_secs(600),
                )),
            },
        }
    }

    fn backend(&mut self, name: &str, raw: &RawBackend) -> BackendConfig {
        let key = |field: &str| format!("backends.{name}.{field}");
        let kind = match self.text(&key("kind"), &raw.kind).as_str() {
            "antigravity" => BackendKind::Antigravity,
            "geminicli" => BackendKind::Geminicli,
            "openai" => BackendKind::Openai,
            "anthropic" => BackendKind::Anthropic,
            "gemini" => BackendKind::Gemini,
            other => {
                self.error(
                    &key("kind"),
                    Some(raw.kind.span()),
                    format!(
                        "{other:?} is not a backend kind (antigravity, geminicli, openai, anthropic or gemini)"
                    ),
                );
                BackendKind::Openai
            }
        };
        let base_url = self.url(&key("base_url"), raw.base_url.as_ref());
        if kind.profile().is_none() && base_url.is_none() {
            self.error(
                &key("base_url"),
                Some(raw.kind.span()),
                format!("an {} backend needs base_url", kind.name()),
            );
        }
        let auth = match self.opt_text(&key("auth"), raw.auth.as_ref()).as_deref() {
            None if kind == BackendKind::Anthropic => Auth::XApiKey,
            None if kind == BackendKind::Gemini => Auth::XGoogApiKey,
            None => Auth::Bearer,
            Some("bearer") => Auth::Bearer,
            Some("x-api-key") => Auth::XApiKey,
            Some("x-goog-api-key") => Auth::XGoogApiKey,
            Some(other) => {
                self.error(
                    &key("auth"),
                    raw.auth.as_ref().map(|a| a.span()),
                    format!(
                        "{other:?} is not a way to send the key (bearer, x-api-key or x-goog-api-key)"
                    ),
                );
                Auth::Bearer
            }
        };
        let model_map = raw
            .model_map
            .iter()
            .flatten()
            .map(|(from, to)| {
                (
                    from.clone(),
                    self.text(&key(&format!("model_map.{from}")), to),
                )
            })
            .collect();
        let breaker_open = self.duration(
            &key("breaker_open"),
            raw.breaker_open.as_ref(),
            Duration::from_secs(10),
        );
        let breaker_max_open = self.duration(
            &key("breaker_max_open"),
            raw.breaker_max_open.as_ref(),
            Duration::from_secs(30),
        );
        let health_path = self.opt_text(&key("health_path"), raw.health_path.as_ref());
        if let (Some(path), Some(span)) = (&health_path, raw.health_path.as_ref()) {
            if !path.starts_with('/') {
                self.error(
                    &key("health_path"),
                    Some(span.span()),
                    format!("{path:?} must start with /"),
                );
            } else if kind.profile().is_some() {
                self.error(
                    &key("health_path"),
                    Some(span.span()),
                    "health checks are for http backends (an in-process pool has its own account checks)",
                );
            }
        }
        BackendConfig {
            name: name.to_owned(),
            kind,
            base_url,
            proxy_url: self.url(&key("proxy_url"), raw.proxy_url.as_ref()),
            api_key: Secret::new(
                self.opt_text(&key("api_key"), raw.api_key.as_ref())
                    .unwrap_or_default(),
            ),
            api_keys: self
                .texts(&key("api_keys"), raw.api_keys.as_ref())
                .unwrap_or_default()
                .into_iter()
                .filter(|k| !k.is_empty())
                .map(Secret::new)
                .collect(),
            auth,
            forward_client_auth: raw.forward_client_auth.unwrap_or(false),
            native_messages: raw.native_messages.unwrap_or(false),
            native_responses: raw.native_responses.unwrap_or(false),
            priority: raw.priority.unwrap_or(100),
            models: self
                .texts(&key("models"), raw.models.as_ref())
                .unwrap_or_else(|| vec!["*".to_owned()]),
            model_map,
            forward_headers: self
                .texts(&key("forward_headers"), raw.forward_headers.as_ref())
                .unwrap_or_default(),
            connect_timeout: self.duration(
                &key("connect_timeout"),
                raw.connect_timeout.as_ref(),
                Duration::from_secs(5),
            ),
            timeouts: {
                let first_byte = self.duration(
                    &key("first_byte_timeout"),
                    raw.first_byte_timeout.as_ref(),
                    Duration::from_secs(60),
                );
                Timeouts {
                    headers: Some(first_byte),
                    first_byte: Some(first_byte),
                    idle: Some(self.duration(
                        &key("idle_timeout"),
                        raw.idle_timeout.as_ref(),
                        Duration::from_secs(120),
                    )),
                    total: Some(self.duration(
                        &key("timeout"),
                        raw.timeout.as_ref(),
                        Duration::from_secs(600),
                    )),
                }
            },
            max_retries: raw.max_retries.unwrap_or(1),
            breaker_threshold: raw.breaker_threshold.unwrap_or(5).max(1),
            breaker_open,
            breaker_max_open: breaker_max_open.max(breaker_open),
            health_path,
            health_interval: self.duration(
                &key("health_interval"),
                raw.health_interval.as_ref(),
                Duration::from_secs(10),
            ),
            health_timeout: self.duration(
                &key("health_timeout"),
                raw.health_timeout.as_ref(),
                Duration::from_secs(5),
            ),
            enabled: raw.enabled.unwrap_or(true),
            outbound_proxy: self.proxy(&key("outbound_proxy"), raw.outbound_proxy.as_ref()),
            rules: raw
                .rules
                .iter()
                .enumerate()
                .filter_map(|(i, rule)| {
                    let key = key(&format!("rules[{i}]"));
                    let action = match self.text(&format!("{key}.action"), &rule.action).as_str() {
                        "retry" => RuleAction::Retry,
                        "failover" => RuleAction::Failover,
                        "stop" => RuleAction::Stop,
                        other => {
                            self.error(
                                &format!("{key}.action"),
                                Some(rule.action.span()),
                                format!("{other:?} is not retry, failover or stop"),
                            );
                            return None;
                        }
                    };
                    Some(Rule {
                        status: rule.status,
                        body: self.opt_text(&format!("{key}.body"), rule.body.as_ref()),
                        action,
                    })
                })
                .collect(),
        }
    }

    fn route(
        &mut self,
        index: usize,
        raw: &raw::RawRoute,
        backends: &[BackendConfig],
    ) -> RouteConfig {
        let key = |field: &str| format!("routes[{index}].{field}");
        let models = raw
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| self.text(&format!("{}[{i}]", key("models")), m))
            .collect();
        let span = raw.chain.span();
        let chain: Vec<HopConfig> = raw
            .chain
            .get_ref()
            .iter()
            .map(|hop| match hop {
                RawHop::Name(backend) => HopConfig {
                    backend: backend.clone(),
                    model: None,
                },
                RawHop::Table { backend, model } => HopConfig {
                    backend: backend.clone(),
                    model: model.clone(),
                },
            })
            .collect();
        if chain.is_empty() {
            self.error(
                &key("chain"),
                Some(span.clone()),
                "a route needs at least one hop",
            );
        }
        for hop in &chain {
            if !backends.iter().any(|b| b.name == hop.backend) {
                self.error(
                    &key("chain"),
                    Some(span.clone()),
                    format!("no backend is named {:?}", hop.backend),
                );
            }
        }
        let fallback_on = match &raw.fallback_on {
            None => default_fallback_on(),
            Some(list) => {
                let span = list.span();
                list.get_ref()
                    .iter()
                    .filter_map(|condition| match condition {
                        RawCondition::Status(code) if (400..=599).contains(code) => Some(Condition::Status(*code)),
                        RawCondition::Status(code) => {
                            self.error(&key("fallback_on"), Some(span.clone()), format!("{code} is not an error status"));
                            None
                        }
                        RawCondition::Name(name) => match name.as_str() {
                            "timeout" => Some(Condition::Named(NamedCondition::Timeout)),
                            "connect" => Some(Condition::Named(NamedCondition::Connect)),
                            "unavailable" => Some(Condition::Named(NamedCondition::Unavailable)),
                            other => {
                                self.error(
                                    &key("fallback_on"),
                                    Some(span.clone()),
                                    format!("{other:?} is not a condition (a status, timeout, connect or unavailable)"),
                                );
                                None
                            }
                        },
                    })
                    .collect()
            }
        };
        let hedge_after = raw
            .hedge_after
            .as_ref()
            .map(|value| self.duration(&key("hedge_after"), Some(value), Duration::ZERO))
            .filter(|after| !after.is_zero());
        let rescue = match self
            .opt_text(&key("rescue"), raw.rescue.as_ref())
            .as_deref()
        {
            None | Some("continue") => Rescue::Continue,
            Some("off") => Rescue::Off,
            Some(other) => {
                let span = raw.rescue.as_ref().map(Spanned::span);
                self.error(
                    &key("rescue"),
                    span,
                    format!("{other:?} is not continue or off"),
                );
                Rescue::Continue
            }
        };
        RouteConfig {
            models,
            chain,
            fallback_on,
            hedge_after,
            rescue,
        }
    }
}

/// Substitute `${VAR}` and `${VAR:-default}`; `$${` is a literal `${`.
pub(crate) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(format!("unterminated ${{...}} in {text:?}"));
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("{name:?} is not a variable name"));
            }
            match (env(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for an optional one)"
                    ));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn redact_opt<S: serde::Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => redact(secret, s),
        None => s.serialize_none(),
    }
}

fn redact<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_empty() { "" } else { "[redacted]" })
}

fn redact_all<S: serde::Serializer>(secrets: &[Secret], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(secrets.iter().map(|_| "[redacted]"))
}

fn duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn duration_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => duration(d, s),
        None => s.serialize_none(),
    }
}

fn size<S: serde::Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
    let text = match *n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    };
    s.serialize_str(&text)
}

fn timeouts<S: serde::Serializer>(t: &Timeouts, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(4))?;
    for (name, value) in [
        ("headers", t.headers),
        ("first_byte", t.first_byte),
        ("idle", t.idle),
        ("total", t.total),
    ] {
        if let Some(value) = value {
            map.serialize_entry(name, &humantime::format_duration(value).to_string())?;
        }
    }
    map.end()
}

#[cfg(test)]
mod tests;
