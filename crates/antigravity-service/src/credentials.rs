//! Where access tokens and project ids come from.
//!
//! The service asks a [`Credentials`] implementation for a [`Lease`] (an access token and the
//! project id of the same account) per call, reports how the call went, and asks for a renewed
//! token once when the upstream rejects one. The account pool is the implementation.

use std::future::Future;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use gateway_core::{GatewayError, Secret};

/// One call's credentials: always the token and the project of the same account. Holding the
/// lease holds one of the account's concurrency slots; dropping it gives the slot back.
#[derive(Debug)]
pub struct Lease {
    /// The account's id (its file name without `.json`), for logs and reports.
    pub account: String,
    /// The OAuth access token.
    pub access_token: Secret,
    /// The Cloud project of this account.
    pub project_id: String,
    pub(crate) _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Lease {
    /// A lease that holds no concurrency slot.
    pub fn new(
        account: impl Into<String>,
        access_token: Secret,
        project_id: impl Into<String>,
    ) -> Self {
        Self {
            account: account.into(),
            access_token,
            project_id: project_id.into(),
            _guard: None,
        }
    }
}

/// `Authorization: Bearer <token>`, marked sensitive so it is never logged.
pub(crate) fn bearer(token: &Secret) -> Result<http::HeaderValue, GatewayError> {
    let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| GatewayError::internal("the access token is not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// What a call needs credentials for.
#[derive(Debug, Clone, Copy)]
pub struct Acquire<'a> {
    /// The upstream model id (cooldowns are per model); empty for model-independent calls.
    pub model: &'a str,
    /// The client's conversation, for sticky selection.
    pub conversation: Option<&'a str>,
    /// Accounts this request already tried.
    pub exclude: &'a [String],
}

/// Supplies credentials per call and learns from the outcome.
pub trait Credentials: Send + Sync + 'static {
    /// A lease for a call. Fails fast with `RateLimited` (and a retry hint) when every usable
    /// account is cooling down for the model, and with `Unavailable` when none is usable at all.
    fn acquire(
        &self,
        request: Acquire<'_>,
    ) -> impl Future<Output = Result<Lease, GatewayError>> + Send;

    /// The upstream rejected the lease's token (401): refresh it and return the same account.
    fn renew(&self, lease: Lease) -> impl Future<Output = Result<Lease, GatewayError>> + Send;

    /// How the call made with `lease` went: `Ok` or the upstream's error.
    fn report(&self, lease: &Lease, model: &str, outcome: Result<(), &GatewayError>);

    /// Whether any account can serve at all.
    fn is_available(&self) -> bool;
}

/// An account as the existing tools export it. Fields this crate does not use are kept and
/// written back unchanged.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountFile {
    /// OAuth client id the refresh token belongs to (the configured client when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The current access token (`access_token`, or `token` in older exports).
    #[serde(default, alias = "token")]
    pub access_token: Option<Secret>,
    /// When the access token expires (RFC 3339).
    #[serde(default)]
    pub expiry: Option<String>,
    /// The Cloud project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The account's email.
    #[serde(default)]
    pub email: Option<String>,
    /// Everything else in the file.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AccountFile {
    /// Parse an exported account file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(bytes)
            .map_err(|e| GatewayError::invalid_request(format!("invalid account file: {e}")))
    }

    /// The file's JSON, secrets included: only for writing the account file itself.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = self.extra.clone();
        map.remove("token");
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        put("client_id", self.client_id.clone().map(Value::String));
        put(
            "client_secret",
            self.client_secret.as_ref().map(|s| json!(s.expose())),
        );
        put("refresh_token", Some(json!(self.refresh_token.expose())));
        put(
            "access_token",
            self.access_token.as_ref().map(|s| json!(s.expose())),
        );
        put("expiry", self.expiry.clone().map(Value::String));
        put("project_id", self.project_id.clone().map(Value::String));
        put("email", self.email.clone().map(Value::String));
        Value::Object(map)
    }
}
