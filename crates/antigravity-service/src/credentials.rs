//! Where access tokens and project ids come from.
//!
//! The service asks a [`Credentials`] implementation for a [`Lease`] (an access token and the
//! project id of the same account) per call, and reports how the call went. [`SingleAccount`]
//! serves one account from its exported JSON, refreshing the token ahead of expiry; the account
//! pool implements the same trait.

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::Mutex;

use gateway_core::{
    CallOptions, ErrorKind, Expect, GatewayError, Secret, Timeouts, Transport, body,
};

/// Refresh this long before the token expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// The default token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// One call's credentials: always the token and the project of the same account.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The account's id (its email when known), for logs and reports.
    pub account: String,
    /// The OAuth access token.
    pub access_token: Secret,
    /// The Cloud project of this account.
    pub project_id: String,
}

/// Supplies credentials per call and learns from the outcome.
pub trait Credentials: Send + Sync + 'static {
    /// A lease for a call to `model` (the upstream id).
    fn acquire(&self, model: &str) -> impl Future<Output = Result<Lease, GatewayError>> + Send;

    /// How the call made with `lease` went: `Ok` or the upstream's error.
    fn report(&self, lease: &Lease, model: &str, outcome: Result<(), &GatewayError>);

    /// Whether any account can serve at all.
    fn is_available(&self) -> bool;
}

/// An account as the existing tools export it.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountFile {
    /// OAuth client id the refresh token belongs to.
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
}

impl AccountFile {
    /// Parse an exported account file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(bytes)
            .map_err(|e| GatewayError::invalid_request(format!("invalid account file: {e}")))
    }
}

/// Serves one account. The token is refreshed ahead of expiry, one refresh at a time; a refresh
/// token the issuer rejects disables the account with the reason visible.
#[derive(Debug)]
pub struct SingleAccount<T> {
    transport: T,
    token_url: String,
    state: Mutex<AccountState>,
}

#[derive(Debug)]
struct AccountState {
    file: AccountFile,
    access_token: Option<Secret>,
    expires_at: Option<SystemTime>,
    disabled: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Secret>,
}

impl<T: Transport> SingleAccount<T> {
    /// Serve `file`, refreshing through `transport` at `token_url`.
    pub fn new(file: AccountFile, transport: T, token_url: impl Into<String>) -> Self {
        let expires_at = file
            .expiry
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok());
        Self {
            transport,
            token_url: token_url.into(),
            state: Mutex::new(AccountState {
                access_token: file.access_token.clone(),
                expires_at,
                file,
                disabled: None,
            }),
        }
    }

    /// Why the account is disabled, if it is.
    pub async fn disabled_reason(&self) -> Option<String> {
        self.state.lock().await.disabled.clone()
    }

    async fn refresh(&self, state: &mut AccountState) -> Result<(), GatewayError> {
        let file = &state.file;
        let (Some(client_id), Some(client_secret)) = (&file.client_id, &file.client_secret) else {
            return Err(GatewayError::new(
                ErrorKind::Unavailable,
                "the account file has no client_id and client_secret to refresh its token",
            ));
        };
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose())
            .append_pair("refresh_token", file.refresh_token.expose())
            .append_pair("grant_type", "refresh_token")
            .finish();
        let mut request = Request::post(self.token_url.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body::full(form))
            .map_err(|e| GatewayError::internal(format!("invalid token url: {e}")))?;
        request.extensions_mut().insert(CallOptions {
            timeouts: Timeouts {
                headers: Some(Duration::from_secs(30)),
                first_byte: Some(Duration::from_secs(30)),
                idle: Some(Duration::from_secs(30)),
                total: Some(Duration::from_secs(60)),
            },
            expect: Expect::Json,
        });
        let response = match self.transport.send(request).await {
            Ok(response) => response,
            Err(err) => {
                if is_permanent_refresh_failure(&err) {
                    state.disabled = Some(format!("token refresh rejected: {}", err.message()));
                    return Err(GatewayError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the account's refresh token was rejected ({}); log in again",
                            err.message()
                        ),
                    ));
                }
                return Err(err);
            }
        };
        let bytes: Bytes = response.into_body().collect().await.map(|c| c.to_bytes())?;
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("invalid token response: {e}"),
            )
        })?;
        state.access_token = Some(token.access_token);
        state.expires_at =
            Some(SystemTime::now() + Duration::from_secs(token.expires_in.unwrap_or(3600)));
        if let Some(rotated) = token.refresh_token {
            state.file.refresh_token = rotated;
        }
        Ok(())
    }
}

/// `invalid_grant` and its kin mean the refresh token will never work again.
fn is_permanent_refresh_failure(err: &GatewayError) -> bool {
    let body = err
        .upstream_body()
        .map(|b| String::from_utf8_lossy(b).to_lowercase())
        .unwrap_or_default();
    err.kind() == ErrorKind::Upstream
        && [
            "invalid_grant",
            "unauthorized_client",
            "invalid_client",
            "access_denied",
        ]
        .iter()
        .any(|marker| body.contains(marker) || err.message().contains(marker))
}

impl<T: Transport> Credentials for SingleAccount<T> {
    async fn acquire(&self, _model: &str) -> Result<Lease, GatewayError> {
        let mut state = self.state.lock().await;
        if let Some(reason) = &state.disabled {
            return Err(GatewayError::new(
                ErrorKind::Unavailable,
                format!("the account is disabled: {reason}"),
            ));
        }
        let fresh = state
            .expires_at
            .is_some_and(|at| at > SystemTime::now() + REFRESH_AHEAD);
        if state.access_token.is_none() || !fresh {
            self.refresh(&mut state).await?;
        }
        let Some(project_id) = state.file.project_id.clone().filter(|p| !p.is_empty()) else {
            return Err(GatewayError::new(
                ErrorKind::Unavailable,
                "the account has no project_id; log in again with `gateway login antigravity`",
            ));
        };
        let access_token = state.access_token.clone().unwrap_or_default();
        Ok(Lease {
            account: state
                .file
                .email
                .clone()
                .unwrap_or_else(|| "account".to_owned()),
            access_token,
            project_id,
        })
    }

    fn report(&self, _lease: &Lease, _model: &str, outcome: Result<(), &GatewayError>) {
        if let Err(err) = outcome
            && err.upstream_status() == Some(http::StatusCode::UNAUTHORIZED)
            && let Ok(mut state) = self.state.try_lock()
        {
            // Force a refresh on the next call.
            state.expires_at = None;
        }
    }

    fn is_available(&self) -> bool {
        self.state
            .try_lock()
            .map_or(true, |state| state.disabled.is_none())
    }
}
