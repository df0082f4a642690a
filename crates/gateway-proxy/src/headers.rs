//! The one header policy for every upstream, in both directions.
//!
//! Upstream requests are built from an allowlist, never by copying the client's headers:
//! content negotiation, `User-Agent` (also sent as `X-Forwarded-User-Agent`), the control headers
//! the original gateway forwarded, and per-backend extras. The client's credentials pass only
//! when a backend is configured to forward them; the backend's own key is injected. Hop-by-hop
//! headers never cross in either direction, and a hop counter stops a backend that points back at
//! a gateway in the same chain from recursing.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use gateway_core::{ErrorKind, GatewayError, Secret};

/// The hop counter header: how many gateways this request has already passed.
pub const HOPS_HEADER: &str = "x-gateway-hops";

/// More hops than this is a loop.
pub const MAX_HOPS: u32 = 8;

/// Headers forwarded by exact name.
const ALLOWED: &[&str] = &[
    "content-type",
    "accept",
    "user-agent",
    "x-request-id",
    "x-disable-thinking-signature",
    "x-ag-conversation-id",
    "x-conversation-id",
    // Protocol versions and opt-ins the upstream must see to answer in the client's dialect.
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
];

/// Headers forwarded by prefix.
const ALLOWED_PREFIXES: &[&str] = &["x-augment-", "x-bugment-", "x-signature-"];

/// The client's credentials: removed unless the backend forwards them.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
];

/// Hop-by-hop headers (RFC 9110 section 7.6.1), plus `Proxy-*`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Which header carries a backend's own key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI-compatible upstreams).
    #[default]
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini API).
    XGoogApiKey,
}

/// How requests to one backend get their headers.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    api_key: Option<Secret>,
    key_header: KeyHeader,
    forward_client_auth: bool,
    extra_exact: Vec<HeaderName>,
    extra_prefixes: Vec<String>,
}

impl HeaderPolicy {
    /// The built-in allowlist, no key, client credentials removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inject `key` as `Authorization: Bearer <key>`, or in the header set by
    /// [`key_header`](Self::key_header) (an empty key injects nothing).
    #[must_use]
    pub fn api_key(mut self, key: Secret) -> Self {
        self.api_key = (!key.is_empty()).then_some(key);
        self
    }

    /// Send the backend's key in `header` instead of `Authorization: Bearer`.
    #[must_use]
    pub fn key_header(mut self, header: KeyHeader) -> Self {
        self.key_header = header;
        self
    }

    /// Forward the client's `Authorization`, `x-api-key`, `api-key` and `Cookie` headers.
    #[must_use]
    pub fn forward_client_auth(mut self, forward: bool) -> Self {
        self.forward_client_auth = forward;
        self
    }

    /// Also forward these headers: exact names, or prefixes written with a trailing `*`.
    /// Names that are not valid header names are ignored.
    #[must_use]
    pub fn forward_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for name in names {
            let name = name.as_ref().trim().to_ascii_lowercase();
            if let Some(prefix) = name.strip_suffix('*') {
                self.extra_prefixes.push(prefix.to_owned());
            } else if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                self.extra_exact.push(name);
            }
        }
        self
    }

    /// The headers to send upstream for a client request that arrived with `incoming`.
    ///
    /// Fails with `LoopDetected` when the request has passed too many gateways already.
    pub fn outgoing(&self, incoming: &HeaderMap) -> Result<HeaderMap, GatewayError> {
        let hops = hops(incoming)?;
        let named_by_connection = connection_tokens(incoming);
        let mut out = HeaderMap::with_capacity(8);
        for (name, value) in incoming {
            let text = name.as_str();
            if is_hop_by_hop(text) || named_by_connection.iter().any(|n| n == text) {
                continue;
            }
            let allowed = if CREDENTIALS.contains(&text) {
                self.forward_client_auth
            } else {
                self.allows(name)
            };
            if allowed {
                out.append(name.clone(), value.clone());
            }
        }
        if let Some(agent) = incoming.get(header::USER_AGENT) {
            out.insert(
                HeaderName::from_static("x-forwarded-user-agent"),
                agent.clone(),
            );
        }
        if let Some(key) = &self.api_key {
            let (name, text) = match self.key_header {
                KeyHeader::Bearer => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
                KeyHeader::XApiKey => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
                KeyHeader::XGoogApiKey => (
                    HeaderName::from_static("x-goog-api-key"),
                    key.expose().to_owned(),
                ),
            };
            let mut value = HeaderValue::try_from(text).map_err(|_| {
                GatewayError::internal("the configured api key is not a valid header value")
            })?;
            value.set_sensitive(true);
            out.insert(name, value);
        }
        out.insert(
            HeaderName::from_static(HOPS_HEADER),
            HeaderValue::from(hops + 1),
        );
        Ok(out)
    }

    fn allows(&self, name: &HeaderName) -> bool {
        let text = name.as_str();
        ALLOWED.contains(&text)
            || ALLOWED_PREFIXES.iter().any(|p| text.starts_with(p))
            || self.extra_exact.contains(name)
            || self
                .extra_prefixes
                .iter()
                .any(|p| text.starts_with(p.as_str()))
    }
}

/// How many gateways the request has passed, or `LoopDetected` past [`MAX_HOPS`].
pub fn hops(incoming: &HeaderMap) -> Result<u32, GatewayError> {
    let hops = incoming
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if hops >= MAX_HOPS {
        return Err(GatewayError::new(
            ErrorKind::LoopDetected,
            format!(
                "request passed {hops} gateways; a backend probably points back at this gateway"
            ),
        )
        .with_code("loop_detected"));
    }
    Ok(hops)
}

/// Remove hop-by-hop headers, and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_tokens(headers) {
        headers.remove(name.as_str());
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name) || name.starts_with("proxy-")
}

fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

#[cfg(test)]
mod tests;
