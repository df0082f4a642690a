//! Routed requests: walk the chain of hops until one answers.
//!
//! Before anything reaches the client, a failed hop is recorded and, when the route's
//! `fallback_on` allows, the next hop is tried. A local stream is committed once its first chunk
//! arrived; a proxied one once the upstream answered with a success status. Every response
//! names what served it in `x-gateway-backend`, `x-gateway-model` and `x-gateway-attempts`.

use antigravity_service::Credentials;
use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, header};
use serde_json::Value;

use gateway_core::{
    Body, CallOptions, ChatContext, ChatOutput, ErrorKind, Expect, GatewayError, body,
    openai::{ChatRequest, parse_json},
};
use gateway_proxy::HeaderPolicy;

use tokio::time::Instant;

use crate::{
    app::{App, Backend},
    classify::{Decision, Policy, classify},
    commit::{Relay, checked_json, local_until_content},
    config::{BackendKind, Condition, NamedCondition},
    dispatch::{Endpoint, Via, via},
    http::{chunk_events, error, event_stream, json},
    metrics::{AttemptLabels, FailoverLabels, HopLabels},
    routing::{Plan, plan},
};

/// What the client asked for.
enum Routed {
    /// `/chat/completions`, parsed and validated in full (a chain with an in-process hop).
    Chat(Box<ChatRequest>),
    /// `/chat/completions` for a chain of OpenAI-compatible upstreams only: checked for what
    /// routing needs (valid JSON, a `model` string, a `messages` array, a `stream` flag) and
    /// otherwise left for the upstream to judge, without building the typed request.
    Passthrough(Peek),
    /// Another endpoint with a `model` field, passed through.
    Other(Value),
}

/// The part of a chat request routing needs.
#[derive(Debug, serde::Deserialize)]
struct Peek {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[expect(
        dead_code,
        reason = "deserialised only to check that `messages` is an array"
    )]
    messages: Vec<serde::de::IgnoredAny>,
}

impl Routed {
    fn model(&self) -> &str {
        match self {
            Self::Chat(request) => &request.model,
            Self::Passthrough(peek) => &peek.model,
            Self::Other(value) => value["model"].as_str().unwrap_or(""),
        }
    }

    fn stream(&self) -> bool {
        match self {
            Self::Chat(request) => request.is_stream(),
            Self::Passthrough(peek) => peek.stream.unwrap_or(false),
            Self::Other(value) => value["stream"].as_bool().unwrap_or(false),
        }
    }

    /// The body for a hop that sends `model`: the client's own bytes when the model is the one
    /// it asked for (no re-serialisation on the pass-through path), else re-encoded.
    fn body_for(&self, model: &str, original: &Bytes) -> Result<Bytes, GatewayError> {
        if self.model() == model {
            return Ok(original.clone());
        }
        let encoded = match self {
            Self::Chat(request) => {
                let mut request = request.as_ref().clone();
                request.model = model.to_owned();
                serde_json::to_vec(&request)
            }
            Self::Passthrough(_) => {
                let mut value: serde_json::Map<String, Value> = serde_json::from_slice(original)
                    .map_err(|e| {
                        GatewayError::internal(format!("cannot re-read the request: {e}"))
                    })?;
                value.insert("model".to_owned(), Value::String(model.to_owned()));
                serde_json::to_vec(&value)
            }
            Self::Other(value) => {
                let mut value = value.clone();
                value["model"] = Value::String(model.to_owned());
                serde_json::to_vec(&value)
            }
        };
        encoded
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("cannot encode the request: {e}")))
    }
}

/// The outcome of one hop, as shown in `x-gateway-attempts`.
fn attempt_label(err: &GatewayError) -> String {
    match err.upstream_status() {
        Some(status) if err.kind() == ErrorKind::Upstream => status.as_u16().to_string(),
        _ if err.is_timeout() => "timeout".to_owned(),
        _ => match err.kind() {
            ErrorKind::Connect | ErrorKind::Transport => "connect".to_owned(),
            ErrorKind::RateLimited => "429".to_owned(),
            _ => "unavailable".to_owned(),
        },
    }
}

/// Whether the route lets the chain move on after `err`.
pub(crate) fn falls_back(err: &GatewayError, conditions: &[Condition]) -> bool {
    let status = match err.kind() {
        ErrorKind::Upstream => err.upstream_status().map(|s| s.as_u16()),
        ErrorKind::RateLimited => Some(429),
        _ => None,
    };
    if let Some(status) = status {
        return conditions.contains(&Condition::Status(status));
    }
    let named = if err.is_timeout() {
        NamedCondition::Timeout
    } else {
        match err.kind() {
            ErrorKind::Connect | ErrorKind::Transport => NamedCondition::Connect,
            ErrorKind::Unavailable
            | ErrorKind::Overloaded
            | ErrorKind::UpstreamProtocol
            | ErrorKind::Truncated => NamedCondition::Unavailable,
            _ => return false,
        }
    };
    conditions.contains(&Condition::Named(named))
}

/// Serve a routed request for `endpoint` (a path relative to the API root).
pub(crate) async fn routed(
    app: &Arc<App>,
    method: Method,
    endpoint: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let kind = Endpoint::of(endpoint);
    let request = match kind {
        Endpoint::ChatCompletions => parse_json::<Peek>(&body).map(Routed::Passthrough),
        _ => parse_json::<Value>(&body).and_then(|value| {
            if value["model"].as_str().is_some_and(|m| !m.is_empty()) {
                Ok(Routed::Other(value))
            } else {
                Err(GatewayError::invalid_request("the request needs a model").with_param("model"))
            }
        }),
    };
    let request = match request {
        Ok(request) => request,
        Err(err) => return error(&err),
    };
    let plan = match plan(&app.config, &app.patterns, request.model()) {
        Ok(plan) => plan,
        Err(err) => return error(&err),
    };
    // The in-process service needs the typed request; a chain of proxies does not.
    let local_hop = plan
        .hops
        .iter()
        .any(|hop| app.backends[hop.backend].config.kind == BackendKind::Antigravity);
    let request = match request {
        Routed::Passthrough(_) if local_hop => match parse_json::<ChatRequest>(&body) {
            Ok(full) => Routed::Chat(Box::new(full)),
            Err(err) => return error(&err),
        },
        other => other,
    };
    let span = tracing::Span::current();
    span.record("model", plan.model.as_str());
    walk(app, &plan, method, endpoint, kind, headers, &request, &body).await
}

/// Time since the request arrived, for the metrics.
struct Clock {
    started: Instant,
    upstream: Duration,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the whole request travels down the chain"
)]
async fn walk(
    app: &Arc<App>,
    plan: &Plan,
    method: Method,
    endpoint: &str,
    kind: Endpoint,
    headers: &HeaderMap,
    request: &Routed,
    original: &Bytes,
) -> Response<Body> {
    let mut clock = Clock {
        started: Instant::now(),
        upstream: Duration::ZERO,
    };
    let deadline = clock.started + app.config.server.request_timeout;
    app.budget.request();
    // Hops whose breaker is open are skipped; if that leaves nothing, they are all tried anyway.
    let mut skipped = Vec::new();
    let mut order = Vec::with_capacity(plan.hops.len());
    for hop in &plan.hops {
        if app
            .breakers
            .allow(&app.backends[hop.backend].config.name, &hop.model)
        {
            order.push(hop);
        } else {
            skipped.push(hop);
        }
    }
    if order.is_empty() {
        order = skipped;
    }
    let mut attempts: Vec<String> = Vec::new();
    let mut last: Option<GatewayError> = None;
    let mut previous: Option<&str> = None;
    'hops: for hop in order {
        let backend = &app.backends[hop.backend];
        let name = backend.config.name.as_str();
        if let Some(from) = previous {
            app.metrics
                .failovers
                .get_or_create(&FailoverLabels {
                    from: from.to_owned(),
                    to: name.to_owned(),
                })
                .inc();
        }
        previous = Some(name);
        let mut retries = 0;
        loop {
            if attempts.len() >= app.config.server.max_attempts || Instant::now() >= deadline {
                break 'hops;
            }
            let began = Instant::now();
            let call = Call {
                method: method.clone(),
                endpoint,
                kind,
                headers,
                request,
                original,
                model: &hop.model,
            };
            let result = attempt(app, backend, call).await;
            let took = began.elapsed();
            clock.upstream += took;
            let labels = HopLabels {
                backend: name.to_owned(),
                model: hop.model.clone(),
            };
            app.metrics
                .upstream_duration
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
            backend.stats.record(result.as_ref().map(|_| ()));
            let err = match result {
                Ok(mut response) => {
                    app.breakers.record(name, &hop.model, true);
                    app.metrics
                        .attempts
                        .get_or_create(&AttemptLabels {
                            backend: name.to_owned(),
                            model: hop.model.clone(),
                            outcome: "ok".to_owned(),
                        })
                        .inc();
                    if request.stream() {
                        app.metrics
                            .time_to_first_token
                            .get_or_create(&labels)
                            .observe(clock.started.elapsed().as_secs_f64());
                    }
                    let overhead = clock.started.elapsed().saturating_sub(clock.upstream);
                    app.metrics.gateway_overhead.observe(overhead.as_secs_f64());
                    attempts.push(format!("{name}:{}", response.status().as_u16()));
                    name_the_server(response.headers_mut(), name, &hop.model, &attempts);
                    let span = tracing::Span::current();
                    span.record("backend", name);
                    span.record("attempts", attempts.join(",").as_str());
                    return response;
                }
                Err(err) => err,
            };
            let label = attempt_label(&err);
            app.metrics
                .attempts
                .get_or_create(&AttemptLabels {
                    backend: name.to_owned(),
                    model: hop.model.clone(),
                    outcome: label.clone(),
                })
                .inc();
            attempts.push(format!("{name}:{label}"));
            if blames_the_backend(&err) {
                app.breakers.record(name, &hop.model, false);
            }
            let policy = Policy {
                fallback_on: &plan.fallback_on,
                rules: &backend.config.rules,
                retries,
                max_retries: backend.config.max_retries,
                short_hint: SHORT_HINT,
                backoff: backoff(retries),
            };
            let decision = classify(&err, &policy);
            tracing::info!(backend = name, model = %hop.model, error = %err, kind = ?err.kind(), ?decision, "attempt failed");
            let fall_back = falls_back(&err, &plan.fallback_on);
            last = Some(err);
            match decision {
                Decision::RetrySame(delay)
                    if Instant::now() + delay < deadline && app.budget.try_retry() =>
                {
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
                Decision::RetrySame(_) if fall_back => continue 'hops,
                Decision::FailOver => continue 'hops,
                Decision::CoolDownAndFailOver(delay) => {
                    app.breakers.cool_down(name, &hop.model, delay);
                    continue 'hops;
                }
                Decision::RetrySame(_) | Decision::Stop => break 'hops,
            }
        }
    }
    let err = last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "no hop could be tried before the deadline",
        )
    });
    let mut response = error(&err);
    let served = attempts
        .last()
        .and_then(|a| a.split(':').next())
        .unwrap_or("");
    name_the_server(response.headers_mut(), served, "", &attempts);
    tracing::Span::current().record("attempts", attempts.join(",").as_str());
    response
}

/// Whether a local failure means the in-process service could not serve at all (as opposed
/// to the upstream answering).
fn local_unavailable(err: &GatewayError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Overloaded
    )
}

/// Rate-limit hints up to this long are waited out on the same hop.
const SHORT_HINT: Duration = Duration::from_secs(3);

/// Exponential backoff with full jitter: uniform in [0, 100 ms × 2^retries], at most 2 s.
fn backoff(retries: u32) -> Duration {
    let cap = Duration::from_millis(100)
        .saturating_mul(1 << retries.min(5))
        .min(Duration::from_secs(2));
    cap.mul_f64(fastrand::f64())
}

/// Whether the failure says something about the backend's health (and feeds its breaker):
/// upstream failures, but not the client's own bad requests.
fn blames_the_backend(err: &GatewayError) -> bool {
    match err.upstream_status().map(|s| s.as_u16()) {
        Some(status) if err.kind() == ErrorKind::Upstream => {
            status == 408 || status == 429 || status >= 500
        }
        _ => matches!(err.side(), gateway_core::Side::Upstream),
    }
}

/// What one attempt sends: the client's request and the model of the hop.
struct Call<'a> {
    method: Method,
    endpoint: &'a str,
    kind: Endpoint,
    headers: &'a HeaderMap,
    request: &'a Routed,
    original: &'a Bytes,
    model: &'a str,
}

async fn attempt(
    app: &Arc<App>,
    backend: &Backend,
    call: Call<'_>,
) -> Result<Response<Body>, GatewayError> {
    let local_available = app.antigravity.credentials().is_available();
    match via(
        backend.config.kind,
        call.kind,
        local_available,
        backend.forwarder.is_some(),
    ) {
        None => Err(GatewayError::new(
            ErrorKind::Unavailable,
            if app.antigravity.credentials().is_empty() {
                "the antigravity backend has no account: add one with `gateway login antigravity` or `gateway accounts import FILE`".to_owned()
            } else {
                format!(
                    "the {} backend cannot serve this now and has no proxy_url",
                    backend.config.name
                )
            },
        )),
        Some(Via::Local) => {
            let result = match call.request {
                Routed::Chat(chat) => local(app, chat, call.model, call.headers).await,
                Routed::Passthrough(_) | Routed::Other(_) => Err(GatewayError::internal(
                    "only parsed chat completions are served locally",
                )),
            };
            match result {
                // The local service cannot serve right now (every account cooling down or busy):
                // its proxy_url, when configured, is the same backend reached another way.
                Err(err) if local_unavailable(&err) && backend.forwarder.is_some() => {
                    tracing::info!(backend = %backend.config.name, error = %err, "local service unavailable; using proxy_url");
                    proxy(app, backend, call).await
                }
                other => other,
            }
        }
        Some(Via::Proxy) => proxy(app, backend, call).await,
    }
}

fn name_the_server(headers: &mut HeaderMap, backend: &str, model: &str, attempts: &[String]) {
    for (name, value) in [
        ("x-gateway-backend", backend.to_owned()),
        ("x-gateway-model", model.to_owned()),
        ("x-gateway-attempts", attempts.join(",")),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
}

/// The context the in-process service gets: the control headers and the conversation id.
fn context(headers: &HeaderMap) -> ChatContext {
    let conversation_id = ["x-ag-conversation-id", "x-conversation-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::to_owned);
    ChatContext {
        headers: HeaderPolicy::new().outgoing(headers).unwrap_or_default(),
        conversation_id,
    }
}

async fn local(
    app: &Arc<App>,
    request: &ChatRequest,
    model: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let mut request = request.clone();
    request.model = model.to_owned();
    let budget = app
        .config
        .antigravity
        .timeouts
        .first_byte
        .unwrap_or(Duration::from_secs(60));
    let deadline = Instant::now() + budget;
    match app.antigravity.chat(request, context(headers)).await? {
        ChatOutput::Complete(completion) => Ok(json(http::StatusCode::OK, &completion)),
        ChatOutput::Stream(stream) => {
            // Committed only once the upstream produced real content.
            let (held, rest) = local_until_content(stream, deadline, budget).await?;
            Ok(event_stream(chunk_events(held, rest, &app.closing)))
        }
    }
}

async fn proxy(
    app: &Arc<App>,
    backend: &Backend,
    call: Call<'_>,
) -> Result<Response<Body>, GatewayError> {
    let Call {
        method,
        endpoint,
        headers,
        request,
        original,
        model,
        ..
    } = call;
    let Some(forwarder) = &backend.forwarder else {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!("the {} backend has no upstream url", backend.config.name),
        ));
    };
    let stream = request.stream();
    let options = CallOptions {
        timeouts: backend.config.timeouts,
        expect: if stream {
            Expect::EventStream
        } else {
            Expect::Json
        },
    };
    let budget = backend
        .config
        .timeouts
        .first_byte
        .unwrap_or(Duration::from_secs(60));
    let deadline = Instant::now() + budget;
    let payload = request.body_for(model, original)?;
    let response = forwarder
        .forward(method, endpoint, headers, body::full(payload), options)
        .await?;
    let (mut parts, body) = response.into_parts();
    if stream {
        // Committed only once the upstream produced real content; re-framed and checked after.
        let relay = Relay::until_content(body, deadline, budget).await?;
        parts.headers.remove(header::CONTENT_LENGTH);
        return Ok(Response::from_parts(parts, relay.into_body(&app.closing)));
    }
    let bytes = checked_json(body, !matches!(request, Routed::Other(_))).await?;
    Ok(Response::from_parts(parts, body::full(bytes)))
}

/// Serve `/antigravity/v1/chat/completions`: the in-process service itself, no routing.
pub(crate) async fn antigravity_direct(
    app: &Arc<App>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let request = match parse_json::<ChatRequest>(&body) {
        Ok(request) => request,
        Err(err) => return error(&err),
    };
    let model = request.model.clone();
    match local(app, &request, &model, headers).await {
        Ok(response) => response,
        Err(err) => error(&err),
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::ErrorKind;
    use http::StatusCode;

    use super::*;
    use crate::config::default_fallback_on;

    #[test]
    fn default_fallback_conditions() {
        let upstream = |code| GatewayError::upstream(StatusCode::from_u16(code).unwrap(), "x");
        let on = default_fallback_on();
        let cases = [
            (upstream(429), true),
            (upstream(500), true),
            (upstream(503), true),
            (upstream(400), false),
            (upstream(401), false),
            (upstream(404), false),
            (GatewayError::new(ErrorKind::Connect, "x"), true),
            (GatewayError::new(ErrorKind::FirstByteTimeout, "x"), true),
            (GatewayError::new(ErrorKind::Unavailable, "x"), true),
            (GatewayError::new(ErrorKind::RateLimited, "x"), true),
            (GatewayError::invalid_request("x"), false),
        ];
        for (err, expected) in cases {
            assert_eq!(falls_back(&err, &on), expected, "{err:?}");
        }
        // A route may narrow it.
        let narrow = [Condition::Status(429)];
        assert!(falls_back(&upstream(429), &narrow));
        assert!(!falls_back(&upstream(503), &narrow));
        assert!(!falls_back(
            &GatewayError::new(ErrorKind::IdleTimeout, "x"),
            &narrow
        ));
        assert_eq!(attempt_label(&upstream(429)), "429");
        assert_eq!(
            attempt_label(&GatewayError::new(ErrorKind::HeadersTimeout, "x")),
            "timeout"
        );
    }
}
