//! Where access tokens and project ids come from.
//!
//! The service asks a [`Credentials`] implementation for a [`Lease`] (an access token and the
//! project id of the same account) per call, reports how the call went, and asks for a renewed
//! token once when the upstream rejects one. The account pool is the implementation.

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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
///
/// [`AccountFile::from_json`] reads the single-account exports of the tools people migrate
/// from (see `store::formats`); deserializing this type directly reads only the canonical
/// form the store writes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AccountFile {
    /// OAuth client id the refresh token belongs to (the configured client when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The current access token.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// When the access token expires (RFC 3339, UTC).
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
    /// Parse an exported account file holding one account, in any format
    /// [`crate::AccountStore::import_all`] accepts (a file of many accounts is refused here).
    pub fn from_json(bytes: &[u8]) -> Result<Self, GatewayError> {
        let mut accounts = crate::store::formats::accounts_in(bytes)?;
        match (accounts.pop(), accounts.is_empty()) {
            (Some(account), true) => Ok(account),
            (Some(_), false) => Err(GatewayError::invalid_request(format!(
                "the file holds {} accounts; import it with `gateway accounts import`",
                accounts.len() + 1
            ))),
            (None, _) => Err(GatewayError::invalid_request(
                "invalid account file: it holds no account",
            )),
        }
    }

    /// When the access token expires, if the file says.
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        self.expiry.as_deref().and_then(parse_rfc3339)
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

/// Parse an RFC 3339 timestamp with any offset (`Z`, `+08:00`) and optional fractional seconds,
/// as the exporting tools write them.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (local, offset_secs): (&str, i64) =
        if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
            (local, 0)
        } else {
            let split = text.len().checked_sub(6)?;
            let (local, offset) = (text.get(..split)?, text.get(split..)?);
            let bytes = offset.as_bytes();
            let sign = match bytes.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                // No offset at all: read as UTC, as the store always wrote it.
                _ => return humantime::parse_rfc3339_weak(text).ok(),
            };
            if bytes.get(3) != Some(&b':') {
                return None;
            }
            let hours: i64 = offset.get(1..3)?.parse().ok()?;
            let minutes: i64 = offset.get(4..6)?.parse().ok()?;
            (local, sign * (hours * 3600 + minutes * 60))
        };
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    // The local time minus its offset is UTC.
    let magnitude = Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        local.checked_sub(magnitude)
    } else {
        local.checked_add(magnitude)
    }
}

/// `at` as RFC 3339 in UTC, whole seconds: the form the store writes.
pub(crate) fn format_rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Unix milliseconds of `at` (0 before the epoch).
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let utc = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339(utc), "2026-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-01-01T08:00:00+08:00"), Some(utc));
        assert_eq!(parse_rfc3339("2025-12-31T19:00:00-05:00"), Some(utc));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.250000+00:00"),
            Some(utc + Duration::from_millis(250))
        );
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00"), Some(utc));
        assert_eq!(parse_rfc3339("tomorrow"), None);
        assert_eq!(parse_rfc3339(""), None);
        assert_eq!(unix_ms(utc), 1_767_225_600_000);
    }
}
