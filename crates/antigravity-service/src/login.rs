//! `gateway login antigravity`: the installed-app OAuth flow that adds an account.
//!
//! The binary drives the conversation with the user; this module does the protocol:
//! 1. [`LoginFlow::authorization_url`] for the user to open, with a random `state`;
//! 2. the code arrives either at the loopback callback ([`LoginFlow::receive_callback`] on an
//!    ephemeral port of 127.0.0.1) or pasted by the user ([`LoginFlow::code_from_pasted`]) on a
//!    machine without a browser;
//! 3. [`LoginFlow::complete`] exchanges the code, reads the email, discovers the project, and
//!    returns the account file to store.
//!
//! Every Google URL is configuration, so tests point them at loopback mocks.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use gateway_core::{ErrorKind, GatewayError, Secret, Transport};

use crate::{
    credentials::AccountFile,
    pool::{
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TOKEN_URL, discover_project, post_form,
        send_with_backoff,
    },
    service::DEFAULT_BASE_URLS,
};

/// The path of the loopback callback.
pub const CALLBACK_PATH: &str = "/oauth-callback";

/// OAuth settings for the login flow.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The installed-app client id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Secret,
    /// Google's authorization endpoint.
    pub auth_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// The user-info endpoint (for the email).
    pub userinfo_url: String,
    /// Where project discovery goes.
    pub base_url: String,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// The pool the account is for (how its project is discovered).
    pub profile: crate::Profile,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: Secret::new(DEFAULT_CLIENT_SECRET),
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            userinfo_url: "https://www.googleapis.com/oauth2/v2/userinfo".to_owned(),
            base_url: DEFAULT_BASE_URLS[0].to_owned(),
            scopes: [
                "https://www.googleapis.com/auth/cloud-platform",
                "https://www.googleapis.com/auth/userinfo.email",
                "https://www.googleapis.com/auth/userinfo.profile",
                "https://www.googleapis.com/auth/cclog",
                "https://www.googleapis.com/auth/experimentsandconfigs",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            profile: crate::Profile::Antigravity,
        }
    }
}

/// One login.
#[derive(Debug)]
pub struct LoginFlow<T> {
    transport: T,
    config: OAuthConfig,
    state: String,
}

#[derive(Deserialize)]
struct CodeExchange {
    access_token: Secret,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl<T: Transport> LoginFlow<T> {
    /// A login with a fresh random `state`.
    pub fn new(transport: T, config: OAuthConfig) -> Self {
        Self {
            transport,
            config,
            state: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The random `state` this login's redirect must carry back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The URL the user opens; Google redirects to `redirect_uri` with the code.
    pub fn authorization_url(&self, redirect_uri: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent")
            .append_pair("state", &self.state)
            .finish();
        format!("{}?{query}", self.config.auth_url)
    }

    /// Wait on `listener` for the browser's redirect and return the code. Other requests (a
    /// favicon, a probe) are answered 404 and ignored; a redirect with the wrong `state` or with
    /// an `error` ends the login.
    pub async fn receive_callback(&self, listener: &TcpListener) -> Result<String, GatewayError> {
        loop {
            let (mut socket, _) = listener
                .accept()
                .await
                .map_err(|e| GatewayError::internal(format!("login callback: {e}")))?;
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&head);
            let target = head.split_whitespace().nth(1).unwrap_or("");
            if !target.starts_with(CALLBACK_PATH) {
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            }
            let outcome = self.code_from_pasted(target);
            let page: &[u8] = match outcome {
                Ok(_) => b"Login complete. You can close this window and return to the terminal.",
                Err(_) => b"Login failed. Return to the terminal for details.",
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.write_all(page).await;
            return outcome;
        }
    }

    /// The code from what the user pasted: the whole redirected URL (or its path and query), or
    /// the bare code.
    pub fn code_from_pasted(&self, pasted: &str) -> Result<String, GatewayError> {
        let pasted = pasted.trim();
        let Some((_, query)) = pasted.split_once('?') else {
            if pasted.is_empty() || pasted.contains(char::is_whitespace) {
                return Err(GatewayError::invalid_request(
                    "paste the redirected url or the code",
                ));
            }
            return Ok(pasted.to_owned());
        };
        let mut code = None;
        let mut state = None;
        let mut error = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "code" => code = Some(value.into_owned()),
                "state" => state = Some(value.into_owned()),
                "error" => error = Some(value.into_owned()),
                _ => {}
            }
        }
        if let Some(error) = error {
            return Err(GatewayError::new(
                ErrorKind::PermissionDenied,
                format!("google refused the login: {error}"),
            ));
        }
        if state.as_deref() != Some(self.state.as_str()) {
            return Err(GatewayError::invalid_request(
                "the login answer does not belong to this login (state mismatch)",
            ));
        }
        code.filter(|c| !c.is_empty())
            .ok_or_else(|| GatewayError::invalid_request("the redirected url carries no code"))
    }

    /// Exchange `code`, read the email, discover the project: the account file to save.
    pub async fn complete(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<AccountFile, GatewayError> {
        let tokens: CodeExchange = post_form(
            &self.transport,
            &self.config.token_url,
            &[
                ("code", code),
                ("client_id", &self.config.client_id),
                ("client_secret", self.config.client_secret.expose()),
                ("redirect_uri", redirect_uri),
                ("grant_type", "authorization_code"),
            ],
        )
        .await?;
        let Some(refresh_token) = tokens.refresh_token.filter(|t| !t.is_empty()) else {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                "google returned no refresh token; revoke the gateway's access in your google account and log in again",
            ));
        };
        let email = self.email(&tokens.access_token).await?;
        let project = discover_project(
            &self.transport,
            &self.config.base_url,
            &tokens.access_token,
            self.config.profile,
        )
        .await?;
        let expires = SystemTime::now() + Duration::from_secs(tokens.expires_in.unwrap_or(3600));
        Ok(AccountFile {
            client_id: Some(self.config.client_id.clone()),
            client_secret: Some(self.config.client_secret.clone()),
            refresh_token,
            access_token: Some(tokens.access_token),
            expiry: Some(humantime::format_rfc3339_seconds(expires).to_string()),
            project_id: Some(project),
            email,
            extra: serde_json::Map::new(),
        })
    }

    async fn email(&self, token: &Secret) -> Result<Option<String>, GatewayError> {
        let build = || {
            let value = crate::credentials::bearer(token)?;
            let mut request = http::Request::get(self.config.userinfo_url.as_str())
                .header(http::header::AUTHORIZATION, value)
                .body(gateway_core::body::empty())
                .map_err(|e| GatewayError::invalid_request(format!("invalid userinfo url: {e}")))?;
            request.extensions_mut().insert(gateway_core::CallOptions {
                expect: gateway_core::Expect::Json,
                ..gateway_core::CallOptions::default()
            });
            Ok(request)
        };
        let info: serde_json::Value = send_with_backoff(build, &self.transport).await?;
        Ok(info
            .get("email")
            .and_then(|e| e.as_str())
            .map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::{Body, GatewayError};
    use http::{Request, Response};

    use super::*;

    /// A transport that must never be called.
    struct Offline;

    impl Transport for Offline {
        async fn send(&self, _request: Request<Body>) -> Result<Response<Body>, GatewayError> {
            Err(GatewayError::internal("offline"))
        }
    }

    #[test]
    fn the_authorization_url_asks_for_offline_access_with_state() {
        let flow = LoginFlow::new(Offline, OAuthConfig::default());
        let url = flow.authorization_url("http://127.0.0.1:4242/oauth-callback");
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://accounts.google.com/o/oauth2/v2/auth");
        let pairs: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            pairs["redirect_uri"],
            "http://127.0.0.1:4242/oauth-callback"
        );
        assert_eq!(pairs["access_type"], "offline");
        assert_eq!(pairs["state"], flow.state);
        assert!(pairs["scope"].contains("cloud-platform"));
    }

    #[test]
    fn pasted_answers() {
        let flow = LoginFlow::new(Offline, OAuthConfig::default());
        let state = flow.state.clone();
        let url = format!("http://localhost:1/oauth-callback?state={state}&code=4%2F0Abc&scope=x");
        assert_eq!(flow.code_from_pasted(&url).unwrap(), "4/0Abc");
        assert_eq!(flow.code_from_pasted("  4/0Bare  ").unwrap(), "4/0Bare");
        let wrong = "http://localhost:1/oauth-callback?state=other&code=x";
        assert!(
            flow.code_from_pasted(wrong)
                .unwrap_err()
                .message()
                .contains("state")
        );
        let denied = format!("/oauth-callback?state={state}&error=access_denied");
        assert_eq!(
            flow.code_from_pasted(&denied).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        assert!(flow.code_from_pasted("").is_err());
        assert!(flow.code_from_pasted("two words").is_err());
    }
}
