//! The pooled upstream client: connector stack, error mapping and the [`Transport`] impl.
//!
//! Connector stack, outermost first: connect timeout (covers TCP, the proxy tunnel and TLS) →
//! rustls with ALPN (`h2`, `http/1.1`) → outbound proxy (none, HTTP CONNECT, or SOCKS5) → TCP with
//! `TCP_NODELAY`.

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{
    client::legacy::{
        self,
        connect::{
            HttpConnector,
            proxy::{SocksV5, Tunnel},
        },
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use rustls::pki_types::CertificateDer;
use tokio::{net::TcpStream, time::Instant};
use tower_service::Service;

use gateway_core::{Body, CallOptions, ErrorKind, Expect, GatewayError, Transport};

use crate::{headers::strip_hop_by_hop, timeout::TimedBody};

type BoxError = Box<dyn StdError + Send + Sync>;

/// How the client connects and pools. The defaults suit a gateway in front of LLM providers.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Budget for TCP connect, proxy tunnel and TLS handshake together.
    pub connect_timeout: Duration,
    /// Idle pooled connections close after this long.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept per host. It should cover the concurrency
    /// a host sees: a connection returned beyond it is closed, and the next burst pays a
    /// new connect (and TLS handshake) for it.
    pub pool_max_idle_per_host: usize,
    /// Outbound proxy for every connection: `http://host:port` (CONNECT) or `socks5://host:port`.
    pub proxy: Option<String>,
    /// Trust these CA certificates besides the webpki roots (private CAs, tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// How much of an upstream error body is kept for the client.
    pub error_body_limit: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
            proxy: None,
            extra_roots: Vec::new(),
            error_body_limit: 64 * 1024,
        }
    }
}

/// A pooled HTTP/1.1 and HTTP/2 client over rustls. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: legacy::Client<TimedConnector, Body>,
    connect_timeout: Duration,
    error_body_limit: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Build a client. Fails on an invalid proxy URL or TLS setup.
    pub fn new(config: ClientConfig) -> Result<Self, GatewayError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let outbound = match config.proxy.as_deref().map(str::trim) {
            None | Some("") => Outbound::Direct(tcp),
            Some(url) => {
                let uri: Uri = url.parse().map_err(|_| {
                    GatewayError::invalid_request(format!("invalid outbound proxy url {url:?}"))
                })?;
                match uri.scheme_str() {
                    Some("http") => Outbound::Tunnel(Tunnel::new(uri, tcp)),
                    Some("socks5") | Some("socks5h") => {
                        let local_dns = uri.scheme_str() == Some("socks5");
                        Outbound::Socks(SocksV5::new(uri, tcp).local_dns(local_dns))
                    }
                    _ => {
                        return Err(GatewayError::invalid_request(format!(
                            "outbound proxy {url:?} must start with http:// or socks5://"
                        )));
                    }
                }
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in config.extra_roots {
            roots.add(cert).map_err(|e| {
                GatewayError::internal(format!("invalid extra root certificate: {e}"))
            })?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::internal(format!("tls setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(outbound);
        let connector = TimedConnector {
            inner: https,
            timeout: config.connect_timeout,
        };
        let inner = legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(connector);
        Ok(Self {
            inner,
            connect_timeout: config.connect_timeout,
            error_body_limit: config.error_body_limit,
        })
    }

    /// Send one request. The request's extensions may carry [`CallOptions`]; without them the
    /// defaults apply.
    ///
    /// Returns `Err` for connection failures, timeouts, error statuses (with the upstream's body
    /// and retry hint), and 2xx answers of the wrong content type. On `Ok` the body is relayed
    /// frame by frame under the first-byte, idle and total budgets; dropping it aborts the
    /// upstream request.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<Body>, GatewayError> {
        let options = request
            .extensions_mut()
            .remove::<CallOptions>()
            .unwrap_or_default();
        let timeouts = options.timeouts;
        let target = Target::of(request.uri());
        let start = Instant::now();
        let total_deadline = timeouts.total.map(|t| start + t);
        let headers_deadline = timeouts.headers.map(|t| start + t);
        let deadline = earliest(headers_deadline, total_deadline);

        let pending = self.inner.request(request);
        let result = match deadline {
            Some(at) => tokio::time::timeout_at(at, pending).await,
            None => Ok(pending.await),
        };
        let response = match result {
            Err(_) if deadline == total_deadline && total_deadline.is_some() => {
                return Err(timeout_error(
                    ErrorKind::AttemptTimeout,
                    &target,
                    timeouts.total,
                ));
            }
            Err(_) => {
                return Err(timeout_error(
                    ErrorKind::HeadersTimeout,
                    &target,
                    timeouts.headers,
                ));
            }
            Ok(Err(err)) => return Err(self.request_error(&err, &target)),
            Ok(Ok(response)) => response,
        };

        let (mut parts, incoming) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = TimedBody::new(incoming, &timeouts, total_deadline, target.to_string());
        if !parts.status.is_success() {
            let bytes = read_limited(body, self.error_body_limit).await;
            return Err(GatewayError::from_upstream_response(
                parts.status,
                &parts.headers,
                bytes,
                &target.0,
            ));
        }
        if let Some(wanted) = unexpected_content_type(options.expect, &parts.headers) {
            let snippet = read_limited(body, 512).await;
            let got = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type");
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!(
                    "{target} answered {} with {got} where {wanted} was expected: {}",
                    parts.status,
                    String::from_utf8_lossy(&snippet).trim()
                ),
            )
            .with_status(parts.status)
            .with_body(snippet));
        }
        Ok(Response::from_parts(parts, body.boxed_unsync()))
    }

    fn request_error(&self, err: &legacy::Error, target: &Target) -> GatewayError {
        let detail = describe_chain(err);
        if err.is_connect() {
            if has_source::<ConnectTimedOut>(err) {
                return timeout_error(
                    ErrorKind::ConnectTimeout,
                    target,
                    Some(self.connect_timeout),
                );
            }
            return GatewayError::new(
                ErrorKind::Connect,
                format!("cannot connect to {target}: {detail}"),
            );
        }
        GatewayError::new(
            ErrorKind::Transport,
            format!("connection to {target} failed before the response: {detail}"),
        )
    }
}

impl Transport for Client {
    fn send(
        &self,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, GatewayError>> + Send {
        Client::send(self, request)
    }
}

/// `scheme://host:port` of a request, for messages. Never includes the path or query, which may
/// carry credentials.
#[derive(Debug, Clone)]
struct Target(String);

impl Target {
    fn of(uri: &Uri) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("unknown host", |a| a.as_str());
        Self(format!("{scheme}://{authority}"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn timeout_error(kind: ErrorKind, target: &Target, budget: Option<Duration>) -> GatewayError {
    let phase = match kind {
        ErrorKind::ConnectTimeout => "connecting",
        ErrorKind::HeadersTimeout => "waiting for response headers",
        ErrorKind::FirstByteTimeout => "waiting for the first body byte",
        ErrorKind::IdleTimeout => "waiting for the next body chunk",
        _ => "for the whole attempt",
    };
    let budget = budget.map_or_else(String::new, |d| format!(" after {d:?}"));
    GatewayError::new(kind, format!("{target} timed out {phase}{budget}"))
}

fn unexpected_content_type(expect: Expect, headers: &HeaderMap) -> Option<&'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match expect {
        Expect::Any => None,
        Expect::Json if content_type.contains("json") => None,
        Expect::Json => Some("application/json"),
        Expect::EventStream if content_type.starts_with("text/event-stream") => None,
        Expect::EventStream => Some("text/event-stream"),
    }
}

/// Read at most `limit` bytes of a body; errors and timeouts end the read quietly, because the
/// caller is already reporting a failure and only wants the upstream's words.
async fn read_limited(body: TimedBody, limit: usize) -> Bytes {
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while out.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    out.freeze()
}

/// The messages of an error and its sources, joined with ": ", skipping hyper-util's generic
/// top-level text.
pub(crate) fn describe_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.join(": ")
}

fn has_source<T: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// No proxy, an HTTP CONNECT tunnel, or SOCKS5: a closed set, so an enum.
#[derive(Clone)]
enum Outbound {
    Direct(HttpConnector),
    Tunnel(Tunnel<HttpConnector>),
    Socks(SocksV5<HttpConnector>),
}

type ConnectFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl Service<Uri> for Outbound {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = ConnectFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Self::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
            Self::Socks(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Self::Direct(c) => {
                let f = c.call(uri);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Self::Tunnel(c) => {
                let f = c.call(uri);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Self::Socks(c) => {
                let f = c.call(uri);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
        }
    }
}

/// Puts one budget on the whole connect: TCP, proxy tunnel and TLS handshake.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<Outbound>,
    timeout: Duration,
}

/// Marker error for a connect that ran out of time.
#[derive(Debug)]
struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connect timed out")
    }
}

impl StdError for ConnectTimedOut {}

impl Service<Uri> for TimedConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = ConnectFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}
