//! One attempt: reach one hop's backend, in process or through the proxy, and hold its answer
//! until the commit point.

use std::{sync::Arc, time::Duration};

use antigravity_service::Credentials;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, header};
use tokio::time::Instant;

use gateway_core::{
    Body, CallOptions, ChatContext, Dialect, ErrorKind, Expect, GatewayError, body, conversation,
};

use super::peek::Routed;
use crate::{
    app::{App, Backend},
    commit::{
        ArraySource, Encoder, EventSource, RawSource, Relay, SseSource, checked_json,
        rescue::{self, Rescuer},
    },
    convert::{self, Client},
    dispatch::{Endpoint, Way, way},
    http::{event_stream, json_bytes},
};

/// What one attempt sends: the client's request and the model of the hop.
#[derive(Clone)]
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    /// The endpoint below the API root, with the client's query string.
    pub(crate) path_and_query: &'a str,
    pub(crate) kind: Endpoint,
    pub(crate) client: &'a Client,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) request: &'a Routed,
    pub(crate) original: &'a Bytes,
    pub(crate) model: &'a str,
    /// How a translated stream continues when it breaks after the commit, when the route
    /// rescues.
    pub(crate) rescue: Option<rescue::Plan>,
}

/// Whether a local failure means the in-process service could not serve at all (as opposed
/// to the upstream answering).
fn local_unavailable(err: &GatewayError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Overloaded
    )
}

pub(crate) async fn attempt(
    app: &Arc<App>,
    backend: &Backend,
    call: Call<'_>,
) -> Result<Response<Body>, GatewayError> {
    let service = app.local_of(backend);
    let local_available = service.is_some_and(|s| s.credentials().is_available());
    match way(
        backend.reach.facts(local_available),
        call.client.dialect,
        call.kind,
    ) {
        None if backend.reach.is_in_process() => Err(GatewayError::new(
            ErrorKind::Unavailable,
            if service.is_none_or(|s| s.credentials().is_empty()) {
                let pool = backend.config.kind.name();
                format!(
                    "the {} backend has no account: add one with `gateway login {pool}` or `gateway accounts import FILE{}`",
                    backend.config.name,
                    if pool == "antigravity" {
                        ""
                    } else {
                        " --pool geminicli"
                    }
                )
            } else {
                format!(
                    "the {} backend cannot serve this now and has no proxy_url",
                    backend.config.name
                )
            },
        )),
        None => Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!(
                "the {} backend speaks {:?}, and {:?} requests are not converted to it",
                backend.config.name,
                backend.reach.facts(false).upstream,
                call.client.dialect
            ),
        )),
        Some(Way::Local) => {
            let result = match (call.request, service) {
                (Routed::Conversation(request), Some(service)) => {
                    let rescue = call.rescue.clone();
                    let local = Local {
                        service,
                        settings: app.config.pool(service.profile()),
                    };
                    // Boxed, as the conversions below: the translated paths' futures are
                    // large, and the pass-through path should not carry their size.
                    Box::pin(local_with(
                        app,
                        local,
                        request,
                        call.model,
                        call.headers,
                        call.client,
                        rescue,
                    ))
                    .await
                }
                (Routed::Conversation(_), None) => Err(GatewayError::internal(
                    "an in-process backend without its service",
                )),
                (Routed::Peeked(_), _) => Err(GatewayError::internal(
                    "only decoded requests are served locally",
                )),
            };
            match result {
                // The local service cannot serve right now (every account cooling down or busy):
                // its proxy_url, when configured, is the same backend reached another way.
                Err(err) if local_unavailable(&err) && backend.reach.forwarder().is_some() => {
                    tracing::info!(backend = %backend.config.name, error = %err, "local service unavailable; using proxy_url");
                    proxy(app, backend, call).await
                }
                other => other,
            }
        }
        Some(way) => {
            // A backend with several keys tries its next key after one the upstream limited
            // or refused (the ring has cooled it), while the retry budget allows.
            let mut left = backend.reach.keys();
            loop {
                let result = match way {
                    Way::Convert(upstream) => {
                        Box::pin(converted(app, backend, call.clone(), upstream)).await
                    }
                    _ => proxy(app, backend, call.clone()).await,
                };
                left = left.saturating_sub(1);
                match result {
                    Err(err) if left > 0 && key_specific(&err) && app.budget.try_retry() => {
                        tracing::info!(backend = %backend.config.name, error = %err, "trying the backend's next key");
                    }
                    other => return other,
                }
            }
        }
    }
}

/// Whether a failure is about the key that was used (another key may succeed).
fn key_specific(err: &GatewayError) -> bool {
    matches!(
        err.upstream_status().map(|s| s.as_u16()),
        Some(401 | 403 | 429)
    ) && err.kind() == ErrorKind::Upstream
}

/// The context the in-process service gets: the conversation id.
pub(crate) fn context(headers: &HeaderMap) -> ChatContext {
    let conversation_id = ["x-ag-conversation-id", "x-conversation-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::to_owned);
    ChatContext { conversation_id }
}

/// Serve `request` with `model` in process, answering `client`.
pub(crate) async fn local(
    app: &Arc<App>,
    request: &conversation::Request,
    model: &str,
    headers: &HeaderMap,
    client: &Client,
) -> Result<Response<Body>, GatewayError> {
    let local = Local {
        service: &app.antigravity,
        settings: &app.config.antigravity,
    };
    local_with(app, local, request, model, headers, client, None).await
}

/// An in-process service and its settings.
struct Local<'a> {
    service: &'a Arc<crate::app::Antigravity>,
    settings: &'a crate::config::AntigravityConfig,
}

/// [`local`], with the rescue of a stream that breaks after the commit.
async fn local_with(
    app: &Arc<App>,
    local: Local<'_>,
    request: &conversation::Request,
    model: &str,
    headers: &HeaderMap,
    client: &Client,
    rescue: Option<rescue::Plan>,
) -> Result<Response<Body>, GatewayError> {
    let mut request = request.clone();
    request.model = model.to_owned();
    let budget = local
        .settings
        .timeouts
        .first_byte
        .unwrap_or(Duration::from_secs(60));
    let deadline = Instant::now() + budget;
    let generation = local.service.generate(&request, &context(headers)).await?;
    let timing = (deadline, budget);
    let mut response = answer(
        app,
        generation.events,
        &request,
        model,
        client,
        timing,
        rescue,
    )
    .await?;
    response
        .extensions_mut()
        .insert(crate::usage::Account(generation.account));
    Ok(response)
}

/// Serve `request` with `model` from an HTTP upstream of another dialect, through the
/// conversation.
async fn converted(
    app: &Arc<App>,
    backend: &Backend,
    call: Call<'_>,
    upstream: Dialect,
) -> Result<Response<Body>, GatewayError> {
    let Routed::Conversation(request) = call.request else {
        return Err(GatewayError::internal(
            "only decoded requests are converted",
        ));
    };
    let Some((key, forwarder)) = backend.reach.pick()? else {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!("the {} backend has no upstream url", backend.config.name),
        ));
    };
    let mut request = request.as_ref().clone();
    request.model = call.model.to_owned();
    let (path, payload) = convert::encode_request(upstream, &request)?;
    let options = CallOptions {
        timeouts: backend.config.timeouts,
        expect: if request.stream {
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
    let sent = forwarder
        .forward(
            Method::POST,
            &path,
            call.headers,
            body::full(payload),
            options,
        )
        .await;
    backend.reach.report(key, sent.as_ref().map(|_| ()));
    let response = sent?;
    let body = response.into_body();
    if request.stream {
        let events: conversation::EventStream = Box::pin(convert::Decoded::new(body, upstream)?);
        return answer(
            app,
            events,
            &request,
            call.model,
            call.client,
            (deadline, budget),
            call.rescue,
        )
        .await;
    }
    let bytes = checked_json(body, upstream).await?;
    let answer = convert::decode_response(upstream, &bytes)?;
    whole(app, answer, &request, call.model, call.client)
}

/// A whole answer for `client`, kept when the client's protocol keeps responses.
fn whole(
    app: &Arc<App>,
    mut answer: conversation::Response,
    request: &conversation::Request,
    model: &str,
    client: &Client,
) -> Result<Response<Body>, GatewayError> {
    let id = response_id(client.dialect);
    answer.id.clone_from(&id);
    let encoded = convert::encode_response(client, &answer, model, &app.seal)?;
    if keeps(client, request) {
        app.responses
            .put(id, stored(request, &answer, encoded.clone()));
    }
    Ok(json_bytes(encoded))
}

/// Answer `client` from conversation events: held until the first content and relayed (the
/// same relay as a proxied stream), or collected into one answer.
async fn answer(
    app: &Arc<App>,
    events: conversation::EventStream,
    request: &conversation::Request,
    model: &str,
    client: &Client,
    (deadline, budget): (Instant, Duration),
    rescue: Option<rescue::Plan>,
) -> Result<Response<Body>, GatewayError> {
    let created = unix_now();
    if !request.stream {
        let answer = conversation::Collector::collect(events, created).await?;
        return whole(app, answer, request, model, client);
    }
    let id = response_id(client.dialect);
    let events = if keeps(client, request) {
        recording(
            app.clone(),
            events,
            request,
            model,
            id.clone(),
            created,
            client,
        )
    } else {
        events
    };
    let encoder = Encoder::for_client(client, request, model, id, created, &app.seal)?;
    let content_type = encoder.content_type();
    let source = EventSource::new(events, encoder).rescued_by(rescue.map(Rescuer::new));
    let relay = Relay::until_content(source, deadline, budget).await?;
    let mut response = event_stream(relay.into_body(&app.closing));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

/// Whether the gateway keeps this answer: Responses clients, unless they said `store: false`.
fn keeps(client: &Client, request: &conversation::Request) -> bool {
    client.dialect == Dialect::Responses
        && request
            .extra
            .hint(conversation::Protocol::Responses, "store")
            .and_then(serde_json::Value::as_bool)
            != Some(false)
}

/// What is kept of an answer: the conversation with the answer as its last message.
fn stored(
    request: &conversation::Request,
    answer: &conversation::Response,
    object: Bytes,
) -> crate::responses_store::Stored {
    let mut messages = request.messages.clone();
    messages.push(conversation::Message::new(
        conversation::Role::Assistant,
        answer.parts.clone(),
    ));
    crate::responses_store::Stored { messages, object }
}

/// The events as they pass, collected; a stream that ends cleanly is kept under `id`.
fn recording(
    app: Arc<App>,
    events: conversation::EventStream,
    request: &conversation::Request,
    model: &str,
    id: String,
    created: u64,
    client: &Client,
) -> conversation::EventStream {
    Box::pin(Recording {
        events,
        collector: Some(conversation::Collector::new(created)),
        failed: false,
        app,
        request: request.clone(),
        model: model.to_owned(),
        id,
        client: client.clone(),
    })
}

/// See [`recording`].
struct Recording {
    events: conversation::EventStream,
    collector: Option<conversation::Collector>,
    failed: bool,
    app: Arc<App>,
    request: conversation::Request,
    model: String,
    id: String,
    client: Client,
}

impl futures_core::Stream for Recording {
    type Item = Result<conversation::Event, GatewayError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.events.as_mut().poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                if let Some(collector) = this.collector.as_mut() {
                    this.failed |= collector.push(event.clone()).is_err();
                }
            }
            Some(Err(_)) => this.failed = true,
            None => {
                if let Some(collector) = this.collector.take()
                    && !this.failed
                {
                    let mut answer = collector.finish();
                    answer.id.clone_from(&this.id);
                    if let Ok(object) =
                        convert::encode_response(&this.client, &answer, &this.model, &this.app.seal)
                    {
                        let kept = stored(&this.request, &answer, object);
                        this.app.responses.put(this.id.clone(), kept);
                    }
                }
            }
        }
        std::task::Poll::Ready(item)
    }
}

/// A fresh response id in the client protocol's own style.
fn response_id(dialect: Dialect) -> String {
    let random = format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..));
    match dialect {
        Dialect::Anthropic => format!("msg_{random}"),
        Dialect::Responses => format!("resp_{random}"),
        Dialect::Gemini => random,
        _ => format!("chatcmpl-{random}"),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

async fn proxy(
    app: &Arc<App>,
    backend: &Backend,
    call: Call<'_>,
) -> Result<Response<Body>, GatewayError> {
    let Call {
        method,
        path_and_query,
        client,
        headers,
        request,
        original,
        model,
        rescue: call_rescue,
        ..
    } = call;
    let dialect = client.dialect;
    let Some((key, forwarder)) = backend.reach.pick()? else {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!("the {} backend has no upstream url", backend.config.name),
        ));
    };
    let stream = request.stream();
    // A Gemini stream without `alt=sse` is one JSON array.
    let array = dialect == Dialect::Gemini && stream && !client.sse;
    let expect = match dialect {
        // Pass-through answers may be of any content type: audio, files, event streams.
        Dialect::Passthrough => Expect::Any,
        _ if stream && !array => Expect::EventStream,
        _ => Expect::Json,
    };
    let options = CallOptions {
        timeouts: backend.config.timeouts,
        expect,
    };
    let budget = backend
        .config
        .timeouts
        .first_byte
        .unwrap_or(Duration::from_secs(60));
    let deadline = Instant::now() + budget;
    let payload = request.body_for(model, original, dialect)?;
    // Gemini names the model in the path: a hop that sends another model rewrites it there.
    let rewritten;
    let path_and_query = if dialect == Dialect::Gemini && request.model() != model {
        rewritten = path_and_query.replacen(
            &format!("/models/{}:", request.model()),
            &format!("/models/{model}:"),
            1,
        );
        rewritten.as_str()
    } else {
        path_and_query
    };
    let sent = forwarder
        .forward(
            method,
            path_and_query,
            headers,
            body::full(payload),
            options,
        )
        .await;
    backend.reach.report(key, sent.as_ref().map(|_| ()));
    let response = sent?;
    let (mut parts, body) = response.into_parts();
    let body = if dialect.has_events() && is_event_stream(&parts.headers) {
        // Committed once the dialect's first content arrived; each event checked, then sent
        // as the upstream wrote it.
        let source = SseSource::new(body, dialect).rescued_by(call_rescue);
        let relay = Relay::until_content(source, deadline, budget).await?;
        parts.headers.remove(header::CONTENT_LENGTH);
        relay.into_body(&app.closing)
    } else if array {
        // One JSON array, relayed element by element.
        let relay = Relay::until_content(ArraySource::new(body), deadline, budget).await?;
        parts.headers.remove(header::CONTENT_LENGTH);
        relay.into_body(&app.closing)
    } else if dialect.has_events() || is_json(&parts.headers) {
        body::full(checked_json(body, dialect).await?)
    } else {
        // Any other answer passes byte for byte, committed on its first byte.
        let relay = Relay::until_content(RawSource::new(body), deadline, budget).await?;
        relay.into_body(&app.closing)
    };
    Ok(Response::from_parts(parts, body))
}
