//! The one cross-crate error: [`GatewayError`].
//!
//! Callers branch on [`GatewayError::kind`] and the predicates, never on message text.
//! The mapping to an HTTP status and to the OpenAI error envelope lives here, so every crate
//! renders the same error the same way.

use std::{error::Error as StdError, fmt, time::Duration};

use bytes::Bytes;
use http::StatusCode;

use crate::{openai::ErrorEnvelope, retry::RetryHint};

/// What went wrong, coarse enough to decide on, fine enough to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client's request is malformed or asks for something unsupported (400).
    InvalidRequest,
    /// The client did not present a valid gateway key (401).
    Unauthorized,
    /// The client may not do this (403).
    PermissionDenied,
    /// No backend serves the requested model (404 `model_not_found`).
    ModelNotFound,
    /// The path does not exist (404).
    NotFound,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The request body exceeds the configured limit (413).
    PayloadTooLarge,
    /// The request headers exceed the configured limits (431).
    HeadersTooLarge,
    /// The gateway itself refuses for now, for example every account is cooling down (429).
    RateLimited,
    /// The gateway is at its in-flight cap (503, answered fast).
    Overloaded,
    /// The backend cannot serve at all right now, for example no accounts are configured (503).
    Unavailable,
    /// Could not establish a connection to the upstream (TCP, TLS, proxy tunnel).
    Connect,
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// The upstream did not send response headers in time.
    HeadersTimeout,
    /// The upstream sent headers but no first body byte (or first content) in time.
    FirstByteTimeout,
    /// The upstream stalled between two body chunks for longer than the idle timeout.
    IdleTimeout,
    /// The whole attempt exceeded its deadline.
    AttemptTimeout,
    /// The connection failed after it was established (reset, broken framing).
    Transport,
    /// The upstream answered with an error status; see [`GatewayError::status`].
    Upstream,
    /// The upstream answered 2xx with something that is not what was asked for
    /// (wrong content type, malformed event, an error event inside a stream).
    UpstreamProtocol,
    /// The upstream stream ended without its terminal marker or finish reason.
    Truncated,
    /// The client went away; nobody will read this error.
    Cancelled,
    /// The request has already passed through too many gateways (508): a backend points back
    /// at a gateway in the same chain.
    LoopDetected,
    /// A bug or an unexpected local failure (500).
    Internal,
}

/// Which side of the gateway an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client sent something wrong or went away.
    Client,
    /// The gateway itself (configuration, limits, bugs).
    Gateway,
    /// The upstream provider or the network to it.
    Upstream,
}

/// The gateway's error: a kind, a message, and the details a caller may need to decide
/// whether to retry, fail over or stop.
///
/// Messages are lowercase without a trailing period, and never contain secrets.
pub struct GatewayError {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<StatusCode>,
    param: Option<String>,
    code: Option<String>,
    retry: Option<RetryHint>,
    body: Option<Bytes>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl GatewayError {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                param: None,
                code: None,
                retry: None,
                body: None,
                source: None,
            }),
        }
    }

    /// A 400 for the client, naming the offending field when known.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// A 500 for a failure that should not happen.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An upstream error response: its status, and the body kept for the client.
    pub fn upstream(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message).with_status(status)
    }

    /// The error for an upstream's error response: its status, the provider's message (from an
    /// OpenAI or Google error body, Google's array form included, else the start of the body
    /// text), its retry hint, and the body kept for the client. `target` names the upstream
    /// (`scheme://host:port`) when the body says nothing.
    pub fn from_upstream_response(
        status: StatusCode,
        headers: &http::HeaderMap,
        body: Bytes,
        target: &str,
    ) -> Self {
        let hint = RetryHint::from_response(headers, &body, std::time::SystemTime::now());
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let message = json
            .as_ref()
            .and_then(crate::retry::error_message)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() {
                    format!("{target} answered {status}")
                } else {
                    text.chars().take(300).collect()
                }
            });
        let mut error = Self::upstream(status, message).with_body(body);
        if !hint.is_empty() {
            error = error.with_retry(hint);
        }
        error
    }

    /// Attach the HTTP status the upstream answered with (or that should be reported).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Name the request field at fault (the envelope's `param`).
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.inner.param = Some(param.into());
        self
    }

    /// Set the machine-readable code (the envelope's `code`), e.g. `model_not_found`.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Attach what the upstream said about when to retry.
    #[must_use]
    pub fn with_retry(mut self, hint: RetryHint) -> Self {
        self.inner.retry = Some(hint);
        self
    }

    /// Keep the upstream's error body so the client can see the provider's own words.
    #[must_use]
    pub fn with_body(mut self, body: Bytes) -> Self {
        self.inner.body = Some(body);
        self
    }

    /// Attach the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The upstream's status, when the upstream answered.
    pub fn upstream_status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The request field at fault, when known.
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// The machine-readable code, when known.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// When and why the upstream asked us to come back, if it said.
    pub fn retry_hint(&self) -> Option<&RetryHint> {
        self.inner.retry.as_ref()
    }

    /// The upstream's own error body, when kept.
    pub fn upstream_body(&self) -> Option<&Bytes> {
        self.inner.body.as_ref()
    }

    /// Which side failed.
    pub fn side(&self) -> Side {
        use ErrorKind::*;
        match self.inner.kind {
            InvalidRequest | Unauthorized | PermissionDenied | ModelNotFound | NotFound
            | MethodNotAllowed | PayloadTooLarge | HeadersTooLarge | Cancelled => Side::Client,
            RateLimited | Overloaded | Unavailable | LoopDetected | Internal => Side::Gateway,
            Connect | ConnectTimeout | HeadersTimeout | FirstByteTimeout | IdleTimeout
            | AttemptTimeout | Transport | Upstream | UpstreamProtocol | Truncated => {
                Side::Upstream
            }
        }
    }

    /// Whether this is one of the timeout kinds.
    pub fn is_timeout(&self) -> bool {
        use ErrorKind::*;
        matches!(
            self.inner.kind,
            ConnectTimeout | HeadersTimeout | FirstByteTimeout | IdleTimeout | AttemptTimeout
        )
    }

    /// Whether trying the same upstream again may succeed: connection failures, 408, 429 and
    /// 5xx answers. A timeout waiting for the upstream is not: a silent upstream stays silent.
    pub fn is_retryable(&self) -> bool {
        use ErrorKind::*;
        match self.inner.kind {
            Connect | ConnectTimeout | Transport => true,
            Upstream => self.inner.status.is_some_and(|s| {
                s == StatusCode::REQUEST_TIMEOUT
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s.is_server_error()
            }),
            _ => false,
        }
    }

    /// Whether another backend may serve the request instead: every upstream failure that is
    /// not the client's fault. A 4xx other than 408 and 429 is the client's request, and
    /// another backend would refuse it as well.
    pub fn allows_failover(&self) -> bool {
        use ErrorKind::*;
        match self.inner.kind {
            Upstream => self.inner.status.is_some_and(|s| {
                s == StatusCode::REQUEST_TIMEOUT
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s.is_server_error()
            }),
            Connect | ConnectTimeout | HeadersTimeout | FirstByteTimeout | IdleTimeout
            | AttemptTimeout | Transport | UpstreamProtocol | Truncated | Unavailable
            | RateLimited => true,
            _ => false,
        }
    }

    /// The delay the upstream asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry.as_ref().and_then(|h| h.delay)
    }

    /// The HTTP status the client receives for this error.
    pub fn status(&self) -> StatusCode {
        use ErrorKind::*;
        match self.inner.kind {
            InvalidRequest => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            PermissionDenied => StatusCode::FORBIDDEN,
            ModelNotFound | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Overloaded | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Connect | Transport | UpstreamProtocol | Truncated => StatusCode::BAD_GATEWAY,
            ConnectTimeout | HeadersTimeout | FirstByteTimeout | IdleTimeout | AttemptTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Upstream => self
                .inner
                .status
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::BAD_GATEWAY),
            // Nobody reads it; 499 is what access logs conventionally record.
            Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            LoopDetected => StatusCode::LOOP_DETECTED,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI `error.type` for this error.
    pub fn error_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 if self.inner.kind == ErrorKind::NotFound => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ if self.is_timeout() => "timeout_error",
            _ => "server_error",
        }
    }

    /// The OpenAI error envelope for this error.
    pub fn to_envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope::new(
            self.inner.message.clone(),
            self.error_type(),
            self.inner.param.clone(),
            self.inner.code.clone().or_else(|| {
                self.inner
                    .retry
                    .as_ref()
                    .and_then(|hint| hint.reason.clone())
            }),
        )
    }
}

impl fmt::Debug for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GatewayError");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(param) = &self.inner.param {
            d.field("param", param);
        }
        if let Some(code) = &self.inner.code {
            d.field("code", code);
        }
        if let Some(retry) = &self.inner.retry {
            d.field("retry", retry);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl StdError for GatewayError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests;
