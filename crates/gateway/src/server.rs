//! The HTTP server: connection handling, limits, keys, paths, graceful shutdown, reloads.
//!
//! Each request is served by the state current when it arrived (see `reload`); its answer's
//! body is watched to its end, so the request's log line, its duration metric and its usage
//! cover the whole stream rather than the first byte.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::mpsc};
use tracing::Instrument;

use gateway_core::{Body, Dialect, ErrorKind, GatewayError};

use crate::{
    activity::{Activity, Seen},
    admin,
    app::{App, InFlight},
    auth::{Access, Caller, Limiter},
    chat,
    config::Config,
    http::{error, error_in, json, json_bytes, read_body, with_type},
    metrics::{EndpointLabels, RequestLabels, TokenLabels},
    models,
    reload::Current,
    state::Shared,
    ui::{self, Logins},
    usage::{Account, Meter, Query, Record, Recorder, Scanner, Tokens},
};

/// How long connections get after the grace period to close on their own.
const CLOSE_AFTER_GRACE: Duration = Duration::from_secs(1);

/// What the server keeps across configurations: the current state, the rate windows and the
/// usage writer.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) current: Current,
    pub(crate) limiter: Limiter,
    pub(crate) recorder: Recorder,
    /// The recent requests and per-minute counts the dashboard shows.
    pub(crate) activity: Activity,
    /// Sign-ins started from the dashboard.
    pub(crate) logins: Logins,
}

/// Serve `config` on `listener` until `shutdown` completes; then stop accepting (new
/// connections are refused), let in-flight requests and streams finish for up to
/// `server.shutdown_grace`, and close what remains. The configuration is reloaded on
/// `POST /admin/reload`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let (_never, reloads) = mpsc::channel(1);
    serve_with_reload(listener, config, shutdown, reloads).await
}

/// [`serve`], and reload the configuration file each time `reloads` yields (the binary sends
/// SIGHUP there). A file that does not validate is refused and the old configuration keeps
/// serving.
pub async fn serve_with_reload(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
) -> Result<(), GatewayError> {
    let shared = Shared::start(&config.state)?;
    let app = Arc::new(App::new(config, shared.clone())?);
    crate::breaker::health::spawn(&app);
    let server = Arc::new(Server {
        recorder: Recorder::start(
            app.config.state.usage_db.clone(),
            shared.usage(),
            app.metrics.usage_dropped.clone(),
        ),
        limiter: Limiter::default(),
        activity: Activity::default(),
        logins: Logins::default(),
        current: Current::new(app.clone()),
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.server.header_read_timeout)
        .max_buf_size(app.config.server.max_header_bytes.max(8192))
        .max_headers(app.config.server.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(app.config.server.max_header_bytes).unwrap_or(u32::MAX),
        );
    drop(app);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let flusher = tokio::spawn({
        let server = server.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                server.current.get().antigravity.credentials().flush().await;
            }
        }
    });
    let mut reloading = true;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        // Too many open files and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(handle(server, request, peer).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
            asked = reloads.recv(), if reloading => {
                match asked {
                    Some(()) => {
                        let server = server.clone();
                        tokio::spawn(async move {
                            // The outcome is logged by the reload itself.
                            let _ = server.current.reload().await;
                        });
                    }
                    None => reloading = false,
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let app = server.current.get();
    let grace = app.config.server.shutdown_grace;
    tracing::info!(grace = ?grace, "shutting down: no new connections; finishing in-flight requests");
    let draining = graceful.shutdown();
    tokio::pin!(draining);
    if tokio::time::timeout(grace, &mut draining).await.is_err() {
        tracing::warn!(
            "the grace period ended with requests still in flight; ending their streams"
        );
        app.closing.cancel();
        // Let the terminal events reach the clients and the connections close on their own.
        let _ = tokio::time::timeout(CLOSE_AFTER_GRACE, &mut draining).await;
    }
    flusher.abort();
    for (_, service) in app.locals() {
        service.credentials().flush().await;
    }
    server.recorder.flush().await;
    Ok(())
}

/// The API root a path belongs to, and the endpoint below it: `/v1/chat/completions`,
/// `/chat/completions` and `/gateway/v1/chat/completions` are all `/chat/completions`.
/// A bounded label for the metrics: clients choose paths, not label values.
fn endpoint_label(path: &str) -> &'static str {
    if path == "/antigravity/v1/messages" {
        return "messages";
    }
    if path.starts_with("/antigravity/") {
        return "antigravity";
    }
    match api_endpoint(path) {
        Some("/chat/completions") => "chat_completions",
        Some("/messages") => "messages",
        Some("/responses") => "responses",
        Some("/models") => "models",
        Some(_) if path != "/health" && path != "/metrics" && !path.starts_with("/admin/") => {
            "other"
        }
        _ => match path {
            "/health" => "health",
            "/metrics" => "metrics",
            p if p.starts_with("/admin/") => "admin",
            _ => "unknown",
        },
    }
}

/// Other endpoints are passed through only under a `/v1`, `/v1beta` (Gemini) or `/gateway`
/// prefix.
fn api_endpoint(path: &str) -> Option<&str> {
    let gateway = path.strip_prefix("/gateway");
    let rest = gateway.unwrap_or(path);
    let v1 = rest
        .strip_prefix("/v1beta")
        .or_else(|| rest.strip_prefix("/v1"));
    let endpoint = v1.unwrap_or(rest);
    let prefixed = gateway.is_some() || v1.is_some();
    let known = matches!(
        endpoint,
        "/chat/completions"
            | "/completions"
            | "/models"
            | "/messages"
            | "/messages/count_tokens"
            | "/responses"
    );
    (endpoint.len() > 1 && endpoint.starts_with('/') && (prefixed || known)).then_some(endpoint)
}

async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    // The state when the request arrived serves it to its end, across any reload.
    let app = server.current.get();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        %peer,
        key = tracing::field::Empty,
        status = tracing::field::Empty,
        backend = tracing::field::Empty,
        model = tracing::field::Empty,
        attempts = tracing::field::Empty,
        input_tokens = tracing::field::Empty,
        output_tokens = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = tokio::time::Instant::now();
    let endpoint = endpoint_label(request.uri().path());
    let meter = Meter::default();
    // Boxed: the routed future is large, and built once in place it is not copied again by
    // every future that holds it.
    let routed = Box::pin(route(&server, app.clone(), request));
    let answer = meter.clone().scope(routed.instrument(span.clone())).await;
    let Answer {
        response,
        in_flight,
        caller,
    } = answer;
    let status = response.status();
    span.record("status", status.as_u16());
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint.to_owned(),
            status: status.as_u16().to_string(),
        })
        .inc();
    let seen = api_traffic(endpoint).then(|| seen(&response, caller.as_ref(), endpoint));
    if let Some(seen) = &seen {
        server.activity.begin(&seen.backend);
    }
    let usage = caller
        .filter(|_| status.is_success())
        .and_then(|caller| Served::of(&response, caller, meter));
    let (parts, body) = response.into_parts();
    let tracked = Tracked {
        body,
        _in_flight: in_flight,
        end: End {
            app,
            server,
            span,
            started,
            endpoint,
            usage,
            seen,
            done: false,
        },
    };
    Response::from_parts(parts, tracked.boxed_unsync())
}

/// Whether requests to `endpoint` (a metrics label) are the traffic the dashboard lists.
fn api_traffic(endpoint: &str) -> bool {
    matches!(
        endpoint,
        "chat_completions" | "messages" | "responses" | "other" | "antigravity"
    )
}

/// What the dashboard keeps of a request, as far as its answer's head tells.
fn seen(response: &Response<Body>, caller: Option<&Caller>, endpoint: &'static str) -> Seen {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = response.status();
    Seen {
        at_ms: crate::activity::unix_ms(),
        endpoint,
        key: caller.map(|c| c.name.to_string()).unwrap_or_default(),
        model: header("x-gateway-model"),
        backend: header("x-gateway-backend"),
        attempts: header("x-gateway-attempts"),
        status: status.as_u16(),
        failed: !status.is_success(),
        first_byte_ms: None,
        duration_ms: 0,
        input_tokens: 0,
        output_tokens: 0,
    }
}

/// What `route` answered, and what the end of the answer needs.
struct Answer {
    response: Response<Body>,
    /// Counts the request in flight until its body ends.
    in_flight: Option<InFlight>,
    /// The caller of a routed request, whose usage is counted.
    caller: Option<Caller>,
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Self {
        Self {
            response,
            in_flight: None,
            caller: None,
        }
    }
}

/// A routed answer whose usage is counted at its end.
struct Served {
    caller: Caller,
    backend: String,
    model: String,
    account: String,
    scanner: Scanner,
    meter: Meter,
}

impl Served {
    /// The answer names what served it in `x-gateway-backend` and `x-gateway-model`.
    fn of(response: &Response<Body>, caller: Caller, meter: Meter) -> Option<Self> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let backend = header("x-gateway-backend")?;
        let model = header("x-gateway-model").unwrap_or_default();
        let account = response
            .extensions()
            .get::<Account>()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Some(Self {
            caller,
            backend,
            model,
            account,
            scanner: Scanner::new(content_type, meter.clone()),
            meter,
        })
    }
}

/// What happens when an answer ends (its last byte, a failure, or the client leaving): the
/// request's log line and duration cover the whole stream, and its usage is counted.
struct End {
    app: Arc<App>,
    server: Arc<Server>,
    span: tracing::Span,
    started: tokio::time::Instant,
    endpoint: &'static str,
    usage: Option<Served>,
    /// What the dashboard will list, for API traffic.
    seen: Option<Seen>,
    done: bool,
}

impl End {
    fn feed(&mut self, data: &bytes::Bytes) {
        if let Some(usage) = &mut self.usage {
            usage.scanner.feed(data);
        }
        if let Some(seen) = self.seen.as_mut().filter(|s| s.first_byte_ms.is_none()) {
            seen.first_byte_ms = Some(millis(self.started.elapsed()));
        }
    }

    /// The body ended in an error (a stream cut after the commit).
    fn fail(&mut self) {
        if let Some(seen) = &mut self.seen {
            seen.failed = true;
        }
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let took = self.started.elapsed();
        self.app
            .metrics
            .request_duration
            .get_or_create(&EndpointLabels {
                endpoint: self.endpoint,
            })
            .observe(took.as_secs_f64());
        let mut seen = self.seen.take();
        if let Some(mut usage) = self.usage.take() {
            usage.scanner.finish();
            let tokens = usage.meter.tokens();
            if let Some(tokens) = tokens {
                self.span.record("input_tokens", tokens.input);
                self.span.record("output_tokens", tokens.output);
                if let Some(seen) = &mut seen {
                    seen.input_tokens = tokens.input;
                    seen.output_tokens = tokens.output;
                }
            }
            count(&self.app, &self.server, usage, tokens.unwrap_or_default());
        }
        if let Some(mut seen) = seen {
            seen.duration_ms = millis(took);
            self.server.activity.record(seen);
        }
        self.span.record("duration_ms", millis(took));
        self.span.in_scope(|| tracing::info!("request answered"));
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Count a routed answer's tokens: the metrics, the key's token window, the database.
fn count(app: &App, server: &Server, usage: Served, tokens: Tokens) {
    let Served {
        caller,
        backend,
        model,
        account,
        ..
    } = usage;
    let label = app.model_labels.label(&model);
    for (kind, n) in tokens.kinds() {
        if n > 0 {
            app.metrics
                .tokens
                .get_or_create(&TokenLabels {
                    kind,
                    key: caller.name.to_string(),
                    model: label.clone(),
                    backend: backend.clone(),
                })
                .inc_by(n);
        }
    }
    if app.keys.limits(&caller).1.is_some() {
        app.shared
            .spend(&server.limiter, &caller.name, tokens.total());
    }
    server.recorder.record(Record {
        key: caller.name,
        model,
        backend,
        account,
        tokens,
        at: std::time::SystemTime::now(),
    });
}

fn millis(took: Duration) -> u64 {
    u64::try_from(took.as_millis()).unwrap_or(u64::MAX)
}

/// The answer's body, watched to its end.
struct Tracked {
    body: Body,
    end: End,
    _in_flight: Option<InFlight>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = GatewayError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, GatewayError>>> {
        use std::task::Poll;
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.end.feed(data);
                }
                if this.body.is_end_stream() {
                    this.end.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => this.end.fail(),
            Poll::Ready(None) => this.end.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The access a path needs, `None` for a public one.
fn access(app: &App, path: &str) -> Option<Access> {
    match path {
        "/health" if app.config.server.public_health => None,
        // The page holds no data (it asks for an admin key), and a sign-in's redirect is
        // bound to its unguessable `state`.
        "/" | "/ui" | "/ui/" | "/ui/app.js" | "/ui/app.css" if app.config.server.dashboard => None,
        antigravity_service::CALLBACK_PATH => None,
        "/metrics" if app.config.server.public_metrics => None,
        "/metrics" => Some(Access::Admin),
        p if p.starts_with("/admin/") => Some(Access::Admin),
        _ => Some(Access::Client),
    }
}

/// Endpoints that count tokens rather than spend them.
fn counts_tokens(endpoint: &str) -> bool {
    endpoint.ends_with("/count_tokens")
        || endpoint.ends_with("/input_tokens")
        || endpoint.ends_with(":countTokens")
}

/// The model a request asks for, read only for a key limited to some models: from a Gemini
/// path, else the body's `model`.
fn requested_model(endpoint: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(rest) = endpoint.and_then(|e| e.strip_prefix("/models/"))
        && let Some((model, _)) = rest.rsplit_once(':')
    {
        return Some(model.to_owned());
    }
    #[derive(serde::Deserialize)]
    struct Model<'a> {
        #[serde(borrow, default)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Model<'_>>(body)
        .ok()
        .and_then(|m| m.model)
        .map(std::borrow::Cow::into_owned)
}

/// A JSON answer of an admin operation, or its error.
fn admin_answer(result: Result<serde_json::Value, GatewayError>) -> Response<Body> {
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err(err) => error(&err),
    }
}

/// `POST /admin/reload`: 200 with what could not be applied, or 400 with every reason.
async fn reload(server: &Server) -> Response<Body> {
    match server.current.reload().await {
        Ok(reloaded) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "reloaded", "source": reloaded.source, "notes": reloaded.notes}),
        ),
        Err(reasons) => {
            let err = GatewayError::invalid_request(format!(
                "the configuration was not reloaded: {}",
                reasons.join("; ")
            ))
            .with_code("invalid_configuration");
            let mut envelope = Dialect::OpenAiChat.envelope(&err);
            envelope["reasons"] = serde_json::json!(reasons);
            json(StatusCode::BAD_REQUEST, &envelope)
        }
    }
}

async fn route(server: &Server, app: Arc<App>, request: Request<Incoming>) -> Answer {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    // Errors before routing are still in the envelope of the protocol the path belongs to.
    let dialect = api_endpoint(&path).map_or(Dialect::OpenAiChat, Dialect::of_endpoint);
    let caller = match access(&app, &path) {
        None => None,
        Some(access) => match app.keys.check(&parts.headers, parts.uri.query(), access) {
            Ok(caller) => Some(caller),
            Err(err) => return error_in(dialect, &err).into(),
        },
    };
    if let Some(caller) = caller.as_ref().filter(|c| !c.name.is_empty()) {
        tracing::Span::current().record("key", &*caller.name);
    }
    if let Err(err) = gateway_proxy::hops(&parts.headers) {
        return error(&err).into();
    }
    let method = parts.method.clone();
    // Answers that need no body.
    match (&method, path.as_str()) {
        (&Method::GET, "/") if app.config.server.dashboard => return ui::to_ui().into(),
        (&Method::GET, p) if p.starts_with("/ui") && app.config.server.dashboard => {
            if let Some(asset) = ui::asset(p) {
                return asset.into();
            }
        }
        (&Method::GET, antigravity_service::CALLBACK_PATH) => {
            return server.logins.finish(&app, parts.uri.query()).await.into();
        }
        (&Method::POST, "/admin/login") => {
            let started = admin::pool(parts.uri.query())
                .and_then(|pool| server.logins.start(&app, pool, &parts.headers));
            return admin_answer(started).into();
        }
        (&Method::GET, "/admin/requests") => {
            return json(StatusCode::OK, &server.activity.requests()).into();
        }
        (&Method::GET, "/admin/activity") => {
            return json(StatusCode::OK, &server.activity.minutes()).into();
        }
        (&Method::GET, "/admin/config") => {
            let text = crate::effective::effective_toml(&app.config);
            return with_type(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                gateway_core::body::full(text),
            )
            .into();
        }
        // Clients probe the root (Claude Code sends `HEAD /` before its first request).
        (&Method::GET | &Method::HEAD, "/health" | "/") => {
            return json(StatusCode::OK, &serde_json::json!({"status": "ok"})).into();
        }
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let in_flight = app.in_flight.load(std::sync::atomic::Ordering::Relaxed);
            let text = app.metrics.render(
                &app.breakers.views(),
                in_flight,
                &app.model_labels,
                app.shared.up().unwrap_or(true),
            );
            // OpenMetrics to a scraper that asks for it (Prometheus does), else the 0.0.4 text.
            let openmetrics = parts
                .headers
                .get_all(http::header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            let (content_type, text) = if openmetrics {
                (
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )
            } else {
                (
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::metrics::text_004(&text),
                )
            };
            return with_type(StatusCode::OK, content_type, gateway_core::body::full(text)).into();
        }
        (&Method::GET, "/admin/backends") => {
            return json(StatusCode::OK, &admin::backends(&app)).into();
        }
        (&Method::GET, "/admin/accounts") => {
            return json(StatusCode::OK, &admin::accounts(&app).await).into();
        }
        (&Method::GET, "/admin/usage") => {
            let query = match Query::parse(parts.uri.query()) {
                Ok(query) => query,
                Err(err) => return error(&err).into(),
            };
            let csv = query.csv;
            let answer = server.recorder.query(query).await;
            if csv {
                return match answer.and_then(|rows| crate::usage::csv(&rows)) {
                    Ok(text) => {
                        let mut response = with_type(
                            StatusCode::OK,
                            "text/csv; charset=utf-8",
                            gateway_core::body::full(text),
                        );
                        response.headers_mut().insert(
                            http::header::CONTENT_DISPOSITION,
                            http::HeaderValue::from_static("attachment; filename=\"usage.csv\""),
                        );
                        response
                    }
                    Err(err) => error(&err),
                }
                .into();
            }
            return admin_answer(answer).into();
        }
        (&Method::POST, "/admin/reload") => return reload(server).await.into(),
        (&Method::POST, "/admin/accounts") => {
            let answer = match (
                admin::pool(parts.uri.query()),
                read_body(&parts.headers, body, app.config.server.max_body).await,
            ) {
                (Ok(pool), Ok(bytes)) => admin::import(&app, pool, bytes).await,
                (Err(err), _) | (_, Err(err)) => Err(err),
            };
            return admin_answer(answer).into();
        }
        (&Method::POST | &Method::DELETE, p) if p.starts_with("/admin/accounts/") => {
            // Ids are file names (often an email): the client may percent-encode them.
            let rest = percent_encoding::percent_decode_str(&p["/admin/accounts/".len()..])
                .decode_utf8_lossy()
                .into_owned();
            let pool = match admin::pool(parts.uri.query()) {
                Ok(pool) => pool,
                Err(err) => return error(&err).into(),
            };
            let answer = match (&method, rest.rsplit_once('/')) {
                (&Method::POST, Some((id, "enable"))) => {
                    admin::set_enabled(&app, pool, id, true).await
                }
                (&Method::POST, Some((id, "disable"))) => {
                    admin::set_enabled(&app, pool, id, false).await
                }
                (&Method::DELETE, None) if !rest.is_empty() => {
                    admin::remove(&app, pool, &rest).await
                }
                _ => Err(GatewayError::new(
                    ErrorKind::NotFound,
                    format!("no {method} {path}"),
                )),
            };
            return admin_answer(answer).into();
        }
        (&Method::GET, "/antigravity/v1/models") => {
            return match app.antigravity.models().await {
                Ok(list) => json(StatusCode::OK, &list),
                Err(err) => error(&err),
            }
            .into();
        }
        _ => {}
    }
    let endpoint = if path == "/antigravity/v1/messages" {
        Some("/messages".to_owned())
    } else {
        api_endpoint(&path).map(str::to_owned)
    };
    if method == Method::GET && endpoint.as_deref() == Some("/models") {
        let list = models::merged(&app, &parts.headers).await;
        if path.contains("/v1beta/") {
            return json(StatusCode::OK, &models::gemini(&list)).into();
        }
        return json(StatusCode::OK, &list).into();
    }
    if method == Method::GET
        && path.contains("/v1beta/")
        && let Some(name) = endpoint.as_deref().and_then(|e| e.strip_prefix("/models/"))
    {
        let list = models::merged(&app, &parts.headers).await;
        return match models::gemini_one(&list, name) {
            Some(model) => json(StatusCode::OK, &model),
            None => error_in(
                Dialect::Gemini,
                &GatewayError::new(
                    ErrorKind::NotFound,
                    format!("model {name} is not served here"),
                ),
            ),
        }
        .into();
    }
    if let Some(id) = endpoint
        .as_deref()
        .and_then(|e| e.strip_prefix("/responses/"))
        && id != "input_tokens"
        && (method == Method::GET || method == Method::DELETE)
    {
        return stored_response(&app, &method, id).into();
    }
    let in_flight = match app.enter() {
        Ok(guard) => guard,
        Err(err) => return error(&err).into(),
    };
    let known_post = path == "/antigravity/v1/chat/completions" || endpoint.is_some();
    if method != Method::POST {
        let kind = if known_post {
            ErrorKind::MethodNotAllowed
        } else {
            ErrorKind::NotFound
        };
        return error(&GatewayError::new(kind, format!("no {method} {path}"))).into();
    }
    let body = match read_body(&parts.headers, body, app.config.server.max_body).await {
        Ok(body) => body,
        Err(err) => return error(&err).into(),
    };
    if known_post && let Some(caller) = &caller {
        if app.keys.restricted(caller)
            && let Some(model) = requested_model(endpoint.as_deref(), &body)
            && let Err(err) = app.keys.allows(caller, &model, &app.config.aliases)
        {
            return error_in(dialect, &err).into();
        }
        let (rpm, tpm) = app.keys.limits(caller);
        if let Err(err) = app
            .shared
            .admit(&server.limiter, &caller.name, rpm, tpm)
            .await
        {
            return error_in(dialect, &err).into();
        }
    }
    let response = if path == "/antigravity/v1/chat/completions" {
        chat::antigravity_direct(&app, &parts.headers, body).await
    } else if let Some(endpoint) = &endpoint {
        chat::routed(
            &app,
            method,
            endpoint,
            parts.uri.query(),
            &parts.headers,
            body,
        )
        .await
    } else {
        error(&GatewayError::new(
            ErrorKind::NotFound,
            format!("no {method} {path}"),
        ))
    };
    let counted = endpoint.as_deref().is_some_and(|e| !counts_tokens(e));
    Answer {
        response,
        in_flight: Some(in_flight),
        caller: caller.filter(|_| counted),
    }
}

/// `GET` or `DELETE /v1/responses/{id}`: a response the gateway kept.
fn stored_response(app: &App, method: &Method, id: &str) -> Response<Body> {
    let missing = || {
        error(&GatewayError::new(
            ErrorKind::NotFound,
            format!("no response {id:?} is kept here"),
        ))
    };
    if method == Method::DELETE {
        return if app.responses.delete(id) {
            json(
                StatusCode::OK,
                &serde_json::json!({"id": id, "object": "response.deleted", "deleted": true}),
            )
        } else {
            missing()
        };
    }
    match app.responses.get(id) {
        Some(stored) => json_bytes(stored.object),
        None => missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_aliases() {
        for (path, endpoint) in [
            ("/v1/chat/completions", Some("/chat/completions")),
            ("/chat/completions", Some("/chat/completions")),
            ("/gateway/v1/chat/completions", Some("/chat/completions")),
            ("/gateway/chat/completions", Some("/chat/completions")),
            ("/v1/models", Some("/models")),
            ("/gateway/v1/models", Some("/models")),
            ("/v1/embeddings", Some("/embeddings")),
            ("/messages", Some("/messages")),
            ("/responses", Some("/responses")),
            (
                "/gateway/v1/messages/count_tokens",
                Some("/messages/count_tokens"),
            ),
            ("/completions", Some("/completions")),
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                Some("/models/gemini-2.5-pro:streamGenerateContent"),
            ),
            ("/v1", None),
            ("/", None),
            ("/anything", None),
        ] {
            assert_eq!(api_endpoint(path), endpoint, "{path}");
        }
    }
}
