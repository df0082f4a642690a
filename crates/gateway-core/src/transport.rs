//! The transport contract: send a request with a streaming body, get a response with a
//! streaming body.
//!
//! `gateway-proxy` implements [`Transport`]; `antigravity-service` consumes it, so translation
//! and stream handling are testable without sockets. Per-call settings ride in the request's
//! extensions as a [`CallOptions`], which keeps the trait to one method.

use std::{future::Future, time::Duration};

use http::{Request, Response};

use crate::{GatewayError, body::Body};

/// Sends one HTTP request upstream.
///
/// Dropping the returned future, or the response body, cancels the upstream request.
/// Error responses (4xx/5xx) are returned as `Err` with kind `Upstream`, their status, retry hint
/// and body; only successful responses come back as `Ok`.
pub trait Transport: Send + Sync + 'static {
    /// Send `request`; its extensions may carry [`CallOptions`].
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send;
}

/// Per-phase time budgets for one attempt. `None` means no limit for that phase.
///
/// The connect budget (TCP, proxy tunnel and TLS) belongs to the transport's own configuration,
/// because a pooled connection outlives the request that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From sending the request to the response headers.
    pub headers: Option<Duration>,
    /// From the response headers to the first body byte.
    pub first_byte: Option<Duration>,
    /// Longest gap between two body chunks.
    pub idle: Option<Duration>,
    /// The whole attempt, from send to the end of the body.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            headers: Some(Duration::from_secs(60)),
            first_byte: Some(Duration::from_secs(60)),
            idle: Some(Duration::from_secs(120)),
            total: Some(Duration::from_secs(600)),
        }
    }
}

/// What the caller expects the successful response body to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Anything goes (pass-through).
    #[default]
    Any,
    /// `application/json`.
    Json,
    /// `text/event-stream`.
    EventStream,
}

/// Settings for one call, attached with `request.extensions_mut().insert(options)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallOptions {
    /// Time budgets for this attempt.
    pub timeouts: Timeouts,
    /// The content type a 2xx response must have; anything else is an `UpstreamProtocol` error.
    pub expect: Expect,
}
