//! The HTTP server: connection handling, limits, paths, graceful shutdown.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tracing::Instrument;

use gateway_core::{Body, Dialect, ErrorKind, GatewayError};

use crate::{
    admin,
    app::App,
    chat,
    config::Config,
    http::{authorize, error, error_in, json, read_body},
    metrics::RequestLabels,
    models,
};

/// How long connections get after the grace period to close on their own.
const CLOSE_AFTER_GRACE: Duration = Duration::from_secs(1);

/// Serve `config` on `listener` until `shutdown` completes; then stop accepting (new
/// connections are refused), let in-flight requests and streams finish for up to
/// `server.shutdown_grace`, and close what remains.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let app = Arc::new(App::new(config)?);
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
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let flusher = tokio::spawn({
        let app = app.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                app.antigravity.credentials().flush().await;
            }
        }
    });
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
                let app = app.clone();
                let service = hyper::service::service_fn(move |request| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(app, request, peer).await) }
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
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
    app.antigravity.credentials().flush().await;
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
    app: Arc<App>,
    request: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        %peer,
        status = tracing::field::Empty,
        backend = tracing::field::Empty,
        model = tracing::field::Empty,
        attempts = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = tokio::time::Instant::now();
    let endpoint = endpoint_label(request.uri().path());
    let response = route(app.clone(), request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint.to_owned(),
            status: response.status().as_u16().to_string(),
        })
        .inc();
    span.record("duration_ms", started.elapsed().as_millis() as u64);
    span.in_scope(|| tracing::info!("request answered"));
    response
}

async fn route(app: Arc<App>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let public = match path.as_str() {
        "/health" => app.config.server.public_health,
        "/metrics" => app.config.server.public_metrics,
        _ => false,
    };
    // Errors before routing are still in the envelope of the protocol the path belongs to.
    let dialect = api_endpoint(&path).map_or(Dialect::OpenAiChat, Dialect::of_endpoint);
    if !public
        && let Err(err) = authorize(
            &parts.headers,
            parts.uri.query(),
            &app.config.server.api_keys,
        )
    {
        return error_in(dialect, &err);
    }
    if let Err(err) = gateway_proxy::hops(&parts.headers) {
        return error(&err);
    }
    let method = parts.method.clone();
    // Answers that need no body.
    match (&method, path.as_str()) {
        // Clients probe the root (Claude Code sends `HEAD /` before its first request).
        (&Method::GET | &Method::HEAD, "/health" | "/") => {
            return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        }
        (&Method::GET, "/metrics") => {
            let in_flight = app.in_flight.load(std::sync::atomic::Ordering::Relaxed);
            let text = app.metrics.render(&app.breakers.views(), in_flight);
            let mut response = Response::new(gateway_core::body::full(text));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        (&Method::GET, "/admin/backends") => return json(StatusCode::OK, &admin::backends(&app)),
        (&Method::GET, "/admin/accounts") => {
            return json(StatusCode::OK, &admin::accounts(&app).await);
        }
        (&Method::GET, "/antigravity/v1/models") => {
            return match app.antigravity.models().await {
                Ok(list) => json(StatusCode::OK, &list),
                Err(err) => error(&err),
            };
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
            return json(StatusCode::OK, &models::gemini(&list));
        }
        return json(StatusCode::OK, &list);
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
        };
    }
    if let Some(id) = endpoint
        .as_deref()
        .and_then(|e| e.strip_prefix("/responses/"))
        && id != "input_tokens"
        && (method == Method::GET || method == Method::DELETE)
    {
        return stored_response(&app, &method, id);
    }
    let in_flight = match app.enter() {
        Ok(guard) => guard,
        Err(err) => return error(&err),
    };
    let known_post = path == "/antigravity/v1/chat/completions" || endpoint.is_some();
    if method != Method::POST {
        let kind = if known_post {
            ErrorKind::MethodNotAllowed
        } else {
            ErrorKind::NotFound
        };
        return error(&GatewayError::new(kind, format!("no {method} {path}")));
    }
    let body = match read_body(&parts.headers, body, app.config.server.max_body).await {
        Ok(body) => body,
        Err(err) => return error(&err),
    };
    let response = if path == "/antigravity/v1/chat/completions" {
        chat::antigravity_direct(&app, &parts.headers, body).await
    } else if let Some(endpoint) = endpoint {
        chat::routed(
            &app,
            method,
            &endpoint,
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
    // The in-flight count lasts as long as the response body.
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, hold(body, in_flight))
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
        Some(stored) => {
            let mut response = Response::new(gateway_core::body::full(stored.object));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        None => missing(),
    }
}

fn hold(body: Body, guard: crate::app::InFlight) -> Body {
    use http_body_util::BodyExt;
    pin_project_lite::pin_project! {
        struct Holding {
            #[pin]
            body: Body,
            guard: crate::app::InFlight,
        }
    }
    impl http_body::Body for Holding {
        type Data = bytes::Bytes;
        type Error = GatewayError;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, GatewayError>>> {
            self.project().body.poll_frame(cx)
        }
        fn is_end_stream(&self) -> bool {
            self.body.is_end_stream()
        }
        fn size_hint(&self) -> http_body::SizeHint {
            self.body.size_hint()
        }
    }
    Holding { body, guard }.boxed_unsync()
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
