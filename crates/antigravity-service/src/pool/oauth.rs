//! OAuth: fresh access tokens, one refresh per account at a time.
//!
//! A token is refreshed ahead of its expiry; concurrent calls wait for the one refresh in
//! flight instead of starting their own. Transport failures and 5xx answers are retried with
//! backoff; a refresh token the issuer rejects for good (`invalid_grant` and kin) disables only
//! its account. The form call is shared with the login flow.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use serde::Deserialize;

use gateway_core::{
    CallOptions, ErrorKind, Expect, GatewayError, Secret, Timeouts, Transport, body,
    state::AccountFact,
};

use super::{Account, AccountPool, roster};
use crate::credentials::format_rfc3339;

/// How often, and how many times, a call looks for the token another replica is refreshing
/// (ten seconds in all, past a refresh's own retries, then it refreshes itself).
const SHARED_TOKEN_POLL: Duration = Duration::from_millis(50);
const SHARED_TOKEN_POLLS: usize = 200;

/// How long a refreshed token lives when the issuer does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Secret>,
}

impl<T: Transport> AccountPool<T> {
    /// Make sure the account has a fresh token, refreshing at most once at a time.
    pub(super) async fn ensure_token(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
        if account.live().token_fresh() {
            return Ok(());
        }
        let _refreshing = account.refreshing.lock().await;
        // Another call may have refreshed while this one waited.
        if account.live().token_fresh() {
            return Ok(());
        }
        // Another replica may be refreshing this account's token: its token arrives as a fact.
        if !self
            .config
            .shared
            .claim_refresh(&super::shared::shared_id(self.config.profile, &account.id))
            .await
            && self.await_shared_token(account).await
        {
            return Ok(());
        }
        let result = self.refresh_token(account).await;
        match &result {
            Ok(()) => {
                let live = account.live();
                if let (Some(token), Some(expires)) = (&live.file.access_token, live.token_expires)
                {
                    self.config.shared.publish(AccountFact::Token {
                        account: super::shared::shared_id(self.config.profile, &account.id),
                        access_token: token.clone(),
                        expires_ms: crate::credentials::unix_ms(expires),
                    });
                }
            }
            Err(err) if is_permanent_refresh_failure(err) => {
                let reason = format!("token refresh rejected: {}", err.message());
                account.live().disabled = Some(reason.clone());
                self.config.shared.publish(AccountFact::Disabled {
                    account: super::shared::shared_id(self.config.profile, &account.id),
                    reason,
                });
            }
            Err(err) => {
                account.live().last_error = Some(format!("token refresh failed: {}", err.message()))
            }
        }
        roster::persist(self.roster.clone(), account.clone()).await;
        result
    }

    /// Wait (bounded) for the token another replica is refreshing; whether it came.
    async fn await_shared_token(&self, account: &Arc<Account>) -> bool {
        for _ in 0..SHARED_TOKEN_POLLS {
            tokio::time::sleep(SHARED_TOKEN_POLL).await;
            if account.live().token_fresh() {
                return true;
            }
        }
        // The other replica's refresh did not arrive (it failed, or the engine lost it):
        // refresh here.
        false
    }

    async fn refresh_token(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
        let (client_id, client_secret, refresh_token) = {
            let live = account.live();
            (
                live.file
                    .client_id
                    .clone()
                    .unwrap_or_else(|| self.config.client_id.clone()),
                live.file
                    .client_secret
                    .clone()
                    .unwrap_or_else(|| self.config.client_secret.clone()),
                live.file.refresh_token.clone(),
            )
        };
        let token: TokenResponse = post_form(
            &self.transport,
            &self.config.token_url,
            &[
                ("client_id", &client_id),
                ("client_secret", client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
                ("grant_type", "refresh_token"),
            ],
        )
        .await?;
        let mut live = account.live();
        if live.file.refresh_token != refresh_token {
            // The operator imported new credentials while this refresh was in flight: theirs
            // stand, this token belongs to the old grant.
            return Ok(());
        }
        live.file.access_token = Some(token.access_token);
        let lifetime = token
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let expires = SystemTime::now() + lifetime;
        live.token_expires = Some(expires);
        live.file.expiry = Some(format_rfc3339(expires));
        if let Some(rotated) = token.refresh_token.filter(|t| !t.is_empty()) {
            live.file.refresh_token = rotated;
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

/// Timeouts for the small JSON calls of OAuth and Cloud Code.
pub(super) fn small_call_options() -> CallOptions {
    CallOptions {
        timeouts: Timeouts {
            headers: Some(Duration::from_secs(30)),
            first_byte: Some(Duration::from_secs(30)),
            idle: Some(Duration::from_secs(30)),
            total: Some(Duration::from_secs(60)),
        },
        expect: Expect::Json,
    }
}

/// POST an OAuth form (the token endpoint) and decode the JSON answer, with backoff.
pub(crate) async fn post_form<T, R>(
    transport: &T,
    url: &str,
    pairs: &[(&str, &str)],
) -> Result<R, GatewayError>
where
    T: Transport,
    R: serde::de::DeserializeOwned,
{
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let build = || {
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body::full(form.clone()))
            .map_err(|e| {
                GatewayError::invalid_request(format!("invalid oauth url {url:?}: {e}"))
            })?;
        request.extensions_mut().insert(small_call_options());
        Ok(request)
    };
    send_with_backoff(build, transport).await
}

/// Send a request built by `build`, retrying connection failures and 5xx answers with backoff
/// (three tries: now, after 250 ms, after 1 s), and decode the JSON answer.
pub(crate) async fn send_with_backoff<T, R>(
    build: impl Fn() -> Result<Request<gateway_core::Body>, GatewayError>,
    transport: &T,
) -> Result<R, GatewayError>
where
    T: Transport,
    R: serde::de::DeserializeOwned,
{
    let delays = [Duration::from_millis(250), Duration::from_secs(1)];
    let mut attempt = 0;
    loop {
        match transport.send(build()?).await {
            Ok(response) => {
                let bytes: Bytes = response.into_body().collect().await.map(|c| c.to_bytes())?;
                return serde_json::from_slice(&bytes).map_err(|e| {
                    GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("invalid oauth answer: {e}"),
                    )
                });
            }
            Err(err) if err.is_retryable() && attempt < delays.len() => {
                tokio::time::sleep(delays[attempt]).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}
