//! The dashboard: `/ui`, a page with its script and style embedded at build time (no CDN, no
//! build step, no request outside the gateway: its content security policy says so), whose
//! data comes from `/admin/*` with an admin key the page keeps for its tab only; and the
//! Google sign-in it starts (`POST /admin/login`), whose redirect lands on the gateway itself
//! (`GET /oauth-callback`).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use antigravity_service::{AccountStore, CALLBACK_PATH, LoginFlow, Profile};
use gateway_core::{Body, ErrorKind, GatewayError, body};
use gateway_proxy::Client;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::{app::App, http::with_type};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Only the gateway's own script, style and API; no frames, no inline code.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a started sign-in waits for Google's redirect.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Sign-ins waiting at once.
const MAX_PENDING: usize = 16;

/// The dashboard's files: `/ui`, `/ui/app.js`, `/ui/app.css`.
pub(crate) fn asset(path: &str) -> Option<Response<Body>> {
    let (content_type, text) = match path {
        "/ui" | "/ui/" => ("text/html; charset=utf-8", INDEX),
        "/ui/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/ui/app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    Some(page(StatusCode::OK, content_type, text.to_owned()))
}

/// `GET /` when the dashboard is on.
pub(crate) fn to_ui() -> Response<Body> {
    let mut response = with_type(StatusCode::FOUND, "text/plain", body::full("/ui"));
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui"));
    response
}

fn page(status: StatusCode, content_type: &'static str, text: String) -> Response<Body> {
    let mut response = with_type(status, content_type, body::full(text));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

struct Pending {
    flow: LoginFlow<Client>,
    profile: Profile,
    redirect: String,
    started: Instant,
}

/// Sign-ins started from the dashboard, waiting for Google's redirect.
#[derive(Default)]
pub(crate) struct Logins {
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins").finish_non_exhaustive()
    }
}

impl Logins {
    /// `POST /admin/login`: a new sign-in whose redirect comes back to this gateway, at the
    /// address the browser used (`Host`). Answers the URL to open.
    pub(crate) fn start(
        &self,
        app: &App,
        profile: Profile,
        headers: &HeaderMap,
    ) -> Result<Value, GatewayError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_host(h))
            .map_or_else(|| app.config.server.listen.to_string(), str::to_owned);
        let redirect = format!("http://{host}{CALLBACK_PATH}");
        let flow = app.config.pool(profile).login()?;
        let url = flow.authorization_url(&redirect);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.started.elapsed() < LOGIN_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(GatewayError::new(
                ErrorKind::RateLimited,
                "too many sign-ins are waiting; finish one or wait ten minutes",
            ));
        }
        pending.insert(
            flow.state().to_owned(),
            Pending {
                flow,
                profile,
                redirect,
                started: Instant::now(),
            },
        );
        tracing::info!(
            pool = profile.name(),
            "a sign-in was started from the dashboard"
        );
        Ok(json!({ "url": url, "expires_in": LOGIN_TTL.as_secs() }))
    }

    /// `GET /oauth-callback`: finish the sign-in whose `state` the redirect carries, save the
    /// account and take it into the running pool. Answers a page for the person.
    pub(crate) async fn finish(&self, app: &App, query: Option<&str>) -> Response<Body> {
        let query = query.unwrap_or("");
        let state = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "state")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        let waiting = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .remove(&state)
                .filter(|p| p.started.elapsed() < LOGIN_TTL)
        };
        let Some(Pending {
            flow,
            profile,
            redirect,
            ..
        }) = waiting
        else {
            return done(
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown or expired. Start it again from the dashboard.",
            );
        };
        match self::add(app, profile, &flow, &redirect, query).await {
            Ok(name) => {
                tracing::info!("an account was added from the dashboard");
                done(
                    StatusCode::OK,
                    &format!("Account {name} added. It serves now; this window can be closed."),
                )
            }
            Err(err) => {
                tracing::warn!(error = %err, "a sign-in from the dashboard failed");
                done(
                    StatusCode::BAD_GATEWAY,
                    &format!("The sign-in failed: {}", err.message()),
                )
            }
        }
    }
}

/// Exchange the redirect's code and save the account; its email (or id) for the page.
async fn add(
    app: &App,
    profile: Profile,
    flow: &LoginFlow<Client>,
    redirect: &str,
    query: &str,
) -> Result<String, GatewayError> {
    let code = flow.code_from_pasted(&format!("{CALLBACK_PATH}?{query}"))?;
    let account = flow.complete(&code, redirect).await?;
    let email = account.email.clone();
    let store = AccountStore::new(&app.config.pool(profile).credentials_dir);
    let id = tokio::task::spawn_blocking(move || store.add(account))
        .await
        .map_err(|e| GatewayError::internal(format!("saving the account failed: {e}")))??;
    crate::admin::refresh(app, profile).await;
    Ok(email.unwrap_or(id))
}

/// The page the browser lands on after Google.
fn done(status: StatusCode, text: &str) -> Response<Body> {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Gateway sign-in</title>\
         <link rel=\"stylesheet\" href=\"/ui/app.css\"></head><body><main><h1>Gateway sign-in</h1>\
         <p role=\"status\">{escaped}</p><p><a href=\"/ui\">Back to the dashboard</a></p></main></body></html>"
    );
    page(status, "text/html; charset=utf-8", html)
}

/// A `Host` value safe to put in a URL: a name or address and an optional port.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_with_a_strict_policy() {
        for path in ["/ui", "/ui/app.js", "/ui/app.css"] {
            let response = asset(path).unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(policy.contains("connect-src 'self'"), "{policy}");
        }
        assert!(asset("/ui/other.js").is_none());
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_stays_small() {
        for text in [INDEX, SCRIPT, STYLE] {
            // The SVG namespace is a name, not an address that is fetched.
            let text = text.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("//cdn") && !text.contains("@import"));
        }
        let weight = INDEX.len() + SCRIPT.len() + STYLE.len();
        assert!(weight < 200 * 1024, "{weight} bytes");
    }

    #[test]
    fn hosts_are_checked() {
        assert!(valid_host("127.0.0.1:7861"));
        assert!(valid_host("[::1]:7861"));
        assert!(valid_host("gateway.local"));
        assert!(!valid_host("evil.com/x?"));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }

    #[tokio::test]
    async fn the_landing_page_escapes_text() {
        use http_body_util::BodyExt;
        let response = done(StatusCode::OK, "<script>x</script> & \"y\"");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt; &amp; &quot;y&quot;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }
}
