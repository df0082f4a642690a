//! A scriptable upstream on 127.0.0.1 with fault injection that speaks every protocol the
//! gateway meets: OpenAI Chat Completions, the Antigravity (Cloud Code) API and its OAuth
//! endpoints, Anthropic Messages, OpenAI Responses and the Gemini API.
//!
//! Behaviour is chosen per request: first from the script queue ([`MockUpstream::push`]), else
//! from `x-mock-*` request headers ([`Behaviour::from_headers`]); a model named
//! `...mock-status-NNN...` answers status NNN on any path, so a backend that forwards no
//! header (the in-process Antigravity service) can still be faulted. The mock counts requests,
//! connections and aborted responses, and records every request it received; a process that
//! drives the mock over HTTP reads the record with `GET /_mock/requests` and clears it with
//! `DELETE /_mock/requests` (those two are never recorded themselves).
//!
//! Answers are deterministic. A request that declares tools and whose last user turn carries no
//! tool result is answered with a call of the first declared tool (arguments
//! [`TOOL_ARGUMENTS`]), or of the tool a `mock-call: NAME {json arguments}` line in that turn
//! names. Chat Completions and Antigravity answers are otherwise exactly those of the functions
//! below; the other protocols are planned in `dialects` (thinking blocks with
//! [`MOCK_SIGNATURE`] when the request asks for thinking, and after a tool result a text that
//! starts with [`TOOL_SAID`] and repeats what the tool said).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

mod dialects;

pub use dialects::{MOCK_SIGNATURE, MOCK_TEXT, MOCK_THINKING, TOOL_SAID, token_estimate};

type MockBody = BoxBody<Bytes, std::io::Error>;

/// What the mock does for one request. The defaults answer a normal completion.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Response status (`x-mock-status`).
    pub status: u16,
    /// `Retry-After` value to send (`x-mock-retry-after`).
    pub retry_after: Option<String>,
    /// Delay before the response headers (`x-mock-delay-ms`).
    pub headers_delay: Duration,
    /// Delay between the headers and the first body bytes (`x-mock-ttft-ms`).
    pub first_chunk_delay: Duration,
    /// Content chunks in a stream (`x-mock-chunks`).
    pub chunks: usize,
    /// Delay between stream chunks (`x-mock-interval-ms`).
    pub interval: Duration,
    /// Cut the connection after this many chunks (`x-mock-drop-after`).
    pub drop_after: Option<usize>,
    /// Stop sending after this many chunks, keeping the connection open (`x-mock-stall-after`).
    pub stall_after: Option<usize>,
    /// Write each event in two pieces split inside a UTF-8 code point (`x-mock-split-writes`).
    pub split_writes: bool,
    /// Put invalid UTF-8 into the second chunk (`x-mock-invalid-utf8`).
    pub invalid_utf8: bool,
    /// Send one event whose line has this many bytes (`x-mock-giant-line`).
    pub giant_line: Option<usize>,
    /// Override the response content type (`x-mock-content-type`).
    pub content_type: Option<String>,
    /// Leave out `data: [DONE]` (`x-mock-no-done`).
    pub no_done: bool,
    /// Send an error event after this many chunks (`x-mock-error-event-after`).
    pub error_event_after: Option<usize>,
    /// Close the connection without answering (`x-mock-reset`).
    pub reset_before_headers: bool,
    /// A literal body instead of the generated one (`x-mock-body`).
    pub body: Option<Bytes>,
    /// Answer a stream even if the request did not ask for one (`x-mock-stream`).
    pub force_stream: Option<bool>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            status: 200,
            retry_after: None,
            headers_delay: Duration::ZERO,
            first_chunk_delay: Duration::ZERO,
            chunks: 3,
            interval: Duration::ZERO,
            drop_after: None,
            stall_after: None,
            split_writes: false,
            invalid_utf8: false,
            giant_line: None,
            content_type: None,
            no_done: false,
            error_event_after: None,
            reset_before_headers: false,
            body: None,
            force_stream: None,
        }
    }
}

impl Behaviour {
    /// Read the `x-mock-*` headers; absent or unparsable ones keep their defaults.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let num = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let ms = |name: &str| num(name).map(Duration::from_millis);
        let flag = |name: &str| text(name).is_some_and(|v| v == "1" || v == "true");
        let d = Self::default();
        Self {
            status: num("x-mock-status").map_or(d.status, |v| v as u16),
            retry_after: text("x-mock-retry-after").map(str::to_owned),
            headers_delay: ms("x-mock-delay-ms").unwrap_or(d.headers_delay),
            first_chunk_delay: ms("x-mock-ttft-ms").unwrap_or(d.first_chunk_delay),
            chunks: num("x-mock-chunks").map_or(d.chunks, |v| v as usize),
            interval: ms("x-mock-interval-ms").unwrap_or(d.interval),
            drop_after: num("x-mock-drop-after").map(|v| v as usize),
            stall_after: num("x-mock-stall-after").map(|v| v as usize),
            split_writes: flag("x-mock-split-writes"),
            invalid_utf8: flag("x-mock-invalid-utf8"),
            giant_line: num("x-mock-giant-line").map(|v| v as usize),
            content_type: text("x-mock-content-type").map(str::to_owned),
            no_done: flag("x-mock-no-done"),
            error_event_after: num("x-mock-error-event-after").map(|v| v as usize),
            reset_before_headers: flag("x-mock-reset"),
            body: text("x-mock-body").map(|v| Bytes::copy_from_slice(v.as_bytes())),
            force_stream: text("x-mock-stream").map(|v| v == "1" || v == "true"),
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub uri: Uri,
    /// The headers as received.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Recorded {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    requests: AtomicUsize,
    connections: AtomicUsize,
    open: AtomicUsize,
    aborts: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    recorded: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Behaviour>>,
    changed: tokio::sync::Notify,
}

/// A running mock upstream; stops when dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("requests", &self.requests)
            .field("connections", &self.connections)
            .field("aborts", &self.aborts)
            .finish_non_exhaustive()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Start on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self { addr, state, task })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue a behaviour for the next request that arrives (first in, first out).
    pub fn push(&self, behaviour: Behaviour) {
        lock(&self.state.script).push_back(behaviour);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// The most requests the mock was answering at the same time (from arrival to the end of the
    /// response body).
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests the peer gave up on before the mock finished answering: before the response
    /// head, or in the middle of a streamed body.
    pub fn aborts(&self) -> usize {
        self.state.aborts.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.state.recorded).clone()
    }

    /// Wait until `predicate` holds for the mock, at most `limit` (tokio time). Returns whether
    /// it held.
    pub async fn wait_until(&self, limit: Duration, predicate: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.state.changed.notified();
            if predicate(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return predicate(self);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::SeqCst);
        state.open.fetch_add(1, Ordering::SeqCst);
        state.changed.notify_waiters();
        let state = state.clone();
        tokio::spawn(async move {
            let per_request = state.clone();
            let service = hyper::service::service_fn(move |req| handle(req, per_request.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            state.open.fetch_sub(1, Ordering::SeqCst);
            state.changed.notify_waiters();
        });
    }
}

#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mock reset")
    }
}

impl std::error::Error for Reset {}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<MockBody>, Reset> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.uri.path() == "/_mock/requests" {
        return Ok(control(&parts.method, &state));
    }
    let behaviour = lock(&state.script)
        .pop_front()
        .unwrap_or_else(|| Behaviour::from_headers(&parts.headers));
    let recorded = Recorded {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    lock(&state.recorded).push(recorded);
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.changed.notify_waiters();
    let in_flight = InFlight::new(&state);
    let mut unanswered = AbortGuard {
        state: state.clone(),
        finished: false,
        _in_flight: None,
    };

    if behaviour.reset_before_headers {
        unanswered.finished = true;
        return Err(Reset);
    }
    if !behaviour.headers_delay.is_zero() {
        tokio::time::sleep(behaviour.headers_delay).await;
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or("mock-model").to_owned();
    let mut behaviour = behaviour;
    if model == FAIL_BEFORE_CONTENT {
        behaviour.error_event_after = Some(0);
    }
    if model == CUT_AFTER_CONTENT {
        behaviour.drop_after = Some((behaviour.chunks / 2).max(1));
    }
    let named_model = dialects::model_of(&json, parts.uri.path());
    if behaviour.status == 200
        && let Some(status) = named_model.as_deref().and_then(dialects::status_from_model)
    {
        behaviour.status = status;
    }
    let route = dialects::Route::of(&parts.method, parts.uri.path(), parts.uri.query());
    let malformed = route.as_ref().is_some_and(|r| r.invalid(&json).is_some());
    if behaviour.status == 200 && behaviour.body.is_none() && malformed {
        behaviour.status = 400;
    }
    let status = StatusCode::from_u16(behaviour.status).unwrap_or(StatusCode::OK);
    let mut builder = Response::builder().status(status);
    if let Some(retry_after) = &behaviour.retry_after {
        builder = builder.header(header::RETRY_AFTER, retry_after.as_str());
    }

    let stream = behaviour
        .force_stream
        .unwrap_or_else(|| json["stream"].as_bool().unwrap_or(false));
    let tool = tool_to_call(&json);
    let (content_type, body): (&str, MockBody) = if let Some(body) = behaviour.body.clone() {
        ("application/json", full(body))
    } else if let Some(route) = route {
        let model = named_model.unwrap_or(model);
        planned(
            &route,
            &json,
            &model,
            body.len(),
            behaviour.clone(),
            status,
            in_flight,
        )
        .await
    } else if !status.is_success() {
        let message = format!("mock error {}", status.as_u16());
        let body = serde_json::json!({"error": {"message": message, "type": "mock_error", "param": null, "code": null}});
        ("application/json", full(body.to_string()))
    } else if parts.uri.path().ends_with("/token") {
        let mut answer = serde_json::json!({"access_token": "ya29.mock-fresh-token", "expires_in": 3599, "token_type": "Bearer"});
        if String::from_utf8_lossy(&body).contains("grant_type=authorization_code") {
            answer["refresh_token"] = serde_json::json!("1//mock-refresh-token");
        }
        ("application/json", full(answer.to_string()))
    } else if parts.uri.path().ends_with("/userinfo") {
        let answer =
            serde_json::json!({"id": "1", "email": "new.user@example.com", "verified_email": true});
        ("application/json", full(answer.to_string()))
    } else if parts.uri.path().ends_with("v1internal:loadCodeAssist") {
        let answer = serde_json::json!({"currentTier": {"id": "free-tier"}, "cloudaicompanionProject": "mock-project-123"});
        ("application/json", full(answer.to_string()))
    } else if parts.uri.path().ends_with("v1internal:onboardUser") {
        let answer = serde_json::json!({"done": true, "response": {"cloudaicompanionProject": {"id": "onboarded-project-456"}}});
        ("application/json", full(answer.to_string()))
    } else if parts.uri.path().ends_with("v1internal:retrieveUserQuota") {
        let body = serde_json::json!({"buckets": [
            {"modelId": "gemini-2.5-pro", "remainingFraction": 0.25, "resetTime": "2026-11-26T12:00:00Z", "tokenType": "REQUESTS"},
            {"modelId": "gemini-2.5-flash", "remainingFraction": 1.0, "tokenType": "REQUESTS"}
        ]});
        ("application/json", full(body.to_string()))
    } else if parts
        .uri
        .path()
        .ends_with("v1internal:fetchAvailableModels")
    {
        let body = serde_json::json!({"models": {
            "gemini-3-pro-high": {"quotaInfo": {"remainingFraction": 0.8, "resetTime": "2026-11-26T12:00:00Z"}},
            "claude-sonnet-4-5": {"quotaInfo": {"remainingFraction": 1.0}}
        }});
        ("application/json", full(body.to_string()))
    } else if parts
        .uri
        .path()
        .ends_with("v1internal:streamGenerateContent")
    {
        let flavour = if dialects::antigravity_claude_thinking(&json) {
            Flavour::AntigravityThinking
        } else {
            Flavour::Antigravity
        };
        let body = stream_body(
            behaviour.clone(),
            model,
            flavour,
            tool.clone(),
            state.clone(),
            in_flight,
        );
        ("text/event-stream", body)
    } else if parts.uri.path().ends_with("/models") {
        let body = serde_json::json!({"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"},
            {"id": "mock-model-2", "object": "model", "created": 0, "owned_by": "mock"}
        ]});
        ("application/json", full(body.to_string()))
    } else if stream {
        (
            "text/event-stream",
            stream_body(
                behaviour.clone(),
                model,
                if json["stream_options"]["include_usage"] == true {
                    Flavour::OpenAiUsage
                } else {
                    Flavour::OpenAi
                },
                tool.clone(),
                state.clone(),
                in_flight,
            ),
        )
    } else {
        if !behaviour.first_chunk_delay.is_zero() {
            tokio::time::sleep(behaviour.first_chunk_delay).await;
        }
        let body = match &tool {
            Some((name, arguments)) => tool_call_json(&model, name, arguments),
            None => completion_json(&model),
        };
        ("application/json", full(body))
    };
    let content_type = behaviour.content_type.as_deref().unwrap_or(content_type);
    // Answered: from here on, only a streaming body can still be cut short.
    unanswered.finished = true;
    builder
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|_| Reset)
}

/// `GET /_mock/requests`: every recorded request as JSON (bodies parsed when they are JSON);
/// `DELETE`: forget them.
fn control(method: &Method, state: &State) -> Response<MockBody> {
    let mut recorded = lock(&state.recorded);
    let body = if *method == Method::DELETE {
        recorded.clear();
        "[]".to_owned()
    } else {
        let list: Vec<serde_json::Value> = recorded
            .iter()
            .map(|r| {
                let headers: serde_json::Map<String, serde_json::Value> = r
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_owned(), serde_json::Value::String(value))
                    })
                    .collect();
                let body = serde_json::from_slice(&r.body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&r.body).into_owned())
                });
                serde_json::json!({"method": r.method.as_str(), "uri": r.uri.to_string(),
                    "headers": headers, "body": body})
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    };
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer of a protocol planned in `dialects`: its error envelope, its JSON, or its event
/// stream under the stream controls of `behaviour`.
async fn planned(
    route: &dialects::Route,
    json: &serde_json::Value,
    model: &str,
    body_len: usize,
    behaviour: Behaviour,
    status: StatusCode,
    in_flight: InFlight,
) -> (&'static str, MockBody) {
    if !status.is_success() {
        let body = match route.invalid(json) {
            Some(reason) if status == StatusCode::BAD_REQUEST => route.error_message(400, reason),
            _ => route.error_body(status.as_u16()),
        };
        return ("application/json", full(body));
    }
    let plan = dialects::Plan::new(route, json, model, body_len, &behaviour);
    if route.streams(json, behaviour.force_stream) {
        let pieces = dialects::stream_pieces(route, &plan, json);
        let state = in_flight.0.clone();
        let guard = AbortGuard {
            state,
            finished: false,
            _in_flight: Some(in_flight),
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tokio::spawn(produce_pieces(behaviour, pieces, tx));
        return (
            "text/event-stream",
            BodyExt::boxed(ChannelBody { rx, guard }),
        );
    }
    if !behaviour.first_chunk_delay.is_zero() {
        tokio::time::sleep(behaviour.first_chunk_delay).await;
    }
    drop(in_flight);
    let body = dialects::json_answer(route, &plan, json);
    ("application/json", full(body))
}

/// Send planned events, applying the stream controls before each content event.
async fn produce_pieces(
    b: Behaviour,
    pieces: Vec<dialects::Piece>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let pause = |d: Duration| {
        let tx = tx.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(d) => true,
                () = tx.closed() => false,
            }
        }
    };
    if !b.first_chunk_delay.is_zero() && !pause(b.first_chunk_delay).await {
        return;
    }
    let mut index = 0;
    for piece in pieces {
        if let Some(error) = piece.content {
            if b.drop_after == Some(index) {
                let _ = tx.send(Err(std::io::Error::other("mock drop"))).await;
                return;
            }
            if b.stall_after == Some(index) {
                tx.closed().await;
                return;
            }
            if b.error_event_after == Some(index) {
                let _ = tx.send(Ok(Bytes::from(error))).await;
                return;
            }
            if index > 0 && !b.interval.is_zero() && !pause(b.interval).await {
                return;
            }
            index += 1;
        }
        let chunks = if b.split_writes {
            split_inside_code_point(piece.bytes)
        } else {
            vec![piece.bytes]
        };
        for chunk in chunks {
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> MockBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The whole non-streaming completion the mock answers for `model`.
pub fn completion_json(model: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock 世界"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    })
    .to_string()
}

/// Asking for this model makes a stream fail with an error event before any content, so a
/// route can fault one hop by its model name.
pub const FAIL_BEFORE_CONTENT: &str = "mock-error-before-content";

/// A model name that makes the mock cut its stream halfway through its content chunks.
pub const CUT_AFTER_CONTENT: &str = "mock-cut-after-content";

/// The arguments every mock tool call carries.
pub const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;

/// The tool a mock answer calls and its JSON arguments: the first declared one, when the last
/// turn is the user's (OpenAI `tools[].function.name` or Antigravity
/// `tools[].functionDeclarations[].name`), or the declared one a `mock-call:` line of that turn
/// names.
fn tool_to_call(json: &serde_json::Value) -> Option<(String, String)> {
    let named = |declared: Vec<&str>| {
        let first = (*declared.first()?).to_owned();
        let chosen = dialects::directive(&dialects::chat_user_text(json));
        match chosen {
            Some((name, _)) if name == dialects::NO_CALL => None,
            Some(call) if declared.contains(&call.0.as_str()) => Some(call),
            _ => Some((first, TOOL_ARGUMENTS.to_owned())),
        }
    };
    let openai_tools: Vec<&str> = json["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    let last_openai = json["messages"].as_array().and_then(|m| m.last());
    let first_named = json["tools"][0]["function"]["name"].is_string();
    if let (true, Some(last)) = (first_named, last_openai) {
        return if last["role"] == "user" {
            named(openai_tools)
        } else {
            None
        };
    }
    let request = &json["request"];
    request["tools"][0]["functionDeclarations"][0]["name"].as_str()?;
    let declared: Vec<&str> = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["functionDeclarations"].as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str())
        .collect();
    let last = request["contents"].as_array()?.last()?;
    let answered = last["parts"]
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    if last["role"] == "user" && !answered {
        named(declared)
    } else {
        None
    }
}

/// A whole completion that calls `tool`.
pub fn tool_completion_json(model: &str, tool: &str) -> String {
    tool_call_json(model, tool, TOOL_ARGUMENTS)
}

fn tool_call_json(model: &str, tool: &str, arguments: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock-tool",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_mock_1", "type": "function", "function": {"name": tool, "arguments": arguments}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    })
    .to_string()
}

fn tool_call_events(model: &str, tool: &str, arguments: &str) -> Vec<Vec<u8>> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        event(&serde_json::json!({
            "id": "chatcmpl-mock-tool", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        }))
    };
    vec![
        chunk(
            serde_json::json!({"role": "assistant", "content": null}),
            serde_json::Value::Null,
        ),
        chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function",
                "function": {"name": tool, "arguments": arguments}}]}),
            serde_json::Value::Null,
        ),
        chunk(serde_json::json!({}), serde_json::json!("tool_calls")),
        b"data: [DONE]\n\n".to_vec(),
    ]
}

fn antigravity_tool_call_events(tool: &str, arguments: &str) -> Vec<Vec<u8>> {
    let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or_default();
    vec![event(&serde_json::json!({"response": {
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": tool, "args": args}}
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4}
    }}))]
}

/// Content chunk `index` of a mock stream (index 0 carries the role).
pub fn chunk_event(model: &str, index: usize) -> Vec<u8> {
    let delta = if index == 0 {
        serde_json::json!({"role": "assistant", "content": ""})
    } else {
        serde_json::json!({"content": format!("tok{index} 世界🌏 ")})
    };
    event(&serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": null}]
    }))
}

/// The finishing chunk of a mock stream.
pub fn finish_event(model: &str) -> Vec<u8> {
    event(&serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    }))
}

/// The exact bytes of a healthy mock stream with `chunks` content chunks.
pub fn stream_bytes(model: &str, chunks: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for index in 0..chunks {
        out.extend(chunk_event(model, index));
    }
    out.extend(finish_event(model));
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn event(json: &serde_json::Value) -> Vec<u8> {
    format!("data: {json}\n\n").into_bytes()
}

/// Which protocol a mock stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    OpenAi,
    /// OpenAI asked for `stream_options.include_usage`: a usage chunk before `[DONE]`.
    OpenAiUsage,
    Antigravity,
    /// Antigravity for a Claude model asked for thoughts: a signed thought comes first.
    AntigravityThinking,
}

/// Content event `index` of a mock Antigravity stream.
pub fn antigravity_event(index: usize) -> Vec<u8> {
    event(&serde_json::json!({"response": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": format!("tok{index} 世界🌏 ")}]}}],
        "modelVersion": "mock"
    }}))
}

/// The finishing event of a mock Antigravity stream, with usage.
pub fn antigravity_finish_event() -> Vec<u8> {
    event(&serde_json::json!({"response": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 5, "thoughtsTokenCount": 2, "totalTokenCount": 14}
    }}))
}

/// The text a client receives from a healthy mock Antigravity stream of `chunks` events.
pub fn antigravity_text(chunks: usize) -> String {
    (0..chunks).map(|i| format!("tok{i} 世界🌏 ")).collect()
}

/// Streams events from a producer task through a one-slot channel, so a slow reader slows the
/// producer and a reader that goes away is noticed at once.
fn stream_body(
    behaviour: Behaviour,
    model: String,
    flavour: Flavour,
    tool: Option<(String, String)>,
    state: Arc<State>,
    in_flight: InFlight,
) -> MockBody {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let guard = AbortGuard {
        state: state.clone(),
        finished: false,
        _in_flight: Some(in_flight),
    };
    tokio::spawn(produce(behaviour, model, flavour, tool, tx));
    BodyExt::boxed(ChannelBody { rx, guard })
}

async fn produce(
    b: Behaviour,
    model: String,
    flavour: Flavour,
    tool: Option<(String, String)>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    if flavour == Flavour::AntigravityThinking
        && tx
            .send(Ok(dialects::antigravity_thought_event()))
            .await
            .is_err()
    {
        return;
    }
    if let Some((name, arguments)) = tool {
        let events = match flavour {
            Flavour::OpenAi | Flavour::OpenAiUsage => tool_call_events(&model, &name, &arguments),
            Flavour::Antigravity | Flavour::AntigravityThinking => {
                antigravity_tool_call_events(&name, &arguments)
            }
        };
        for event in events {
            if tx.send(Ok(Bytes::from(event))).await.is_err() {
                return;
            }
        }
        return;
    }
    let pause = |d: Duration| {
        let tx = tx.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(d) => true,
                () = tx.closed() => false,
            }
        }
    };
    if !b.first_chunk_delay.is_zero() && !pause(b.first_chunk_delay).await {
        return;
    }
    for index in 0..b.chunks {
        if b.drop_after == Some(index) {
            let _ = tx.send(Err(std::io::Error::other("mock drop"))).await;
            return;
        }
        if b.stall_after == Some(index) {
            // Hold the connection open until the reader gives up.
            tx.closed().await;
            return;
        }
        if b.error_event_after == Some(index) {
            let error = serde_json::json!({"error": {"message": "mock error event", "type": "server_error", "param": null, "code": null}});
            let _ = tx.send(Ok(Bytes::from(event(&error)))).await;
            return;
        }
        if index > 0 && !b.interval.is_zero() && !pause(b.interval).await {
            return;
        }
        let mut bytes = match flavour {
            Flavour::OpenAi | Flavour::OpenAiUsage => chunk_event(&model, index),
            Flavour::Antigravity | Flavour::AntigravityThinking => antigravity_event(index),
        };
        if b.invalid_utf8 && index == 1 {
            bytes = b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n".to_vec();
        }
        if b.giant_line.is_some() && index == 1 {
            let size = b.giant_line.unwrap_or(0);
            bytes = format!("data: {{\"pad\":\"{}\"}}\n\n", "x".repeat(size)).into_bytes();
        }
        let pieces = if b.split_writes {
            split_inside_code_point(bytes)
        } else {
            vec![bytes]
        };
        for piece in pieces {
            if tx.send(Ok(Bytes::from(piece))).await.is_err() {
                return;
            }
        }
    }
    if b.stall_after == Some(b.chunks) {
        tx.closed().await;
        return;
    }
    let finish = match flavour {
        Flavour::OpenAi | Flavour::OpenAiUsage => finish_event(&model),
        Flavour::Antigravity | Flavour::AntigravityThinking => antigravity_finish_event(),
    };
    if tx.send(Ok(Bytes::from(finish))).await.is_err() {
        return;
    }
    if flavour == Flavour::OpenAiUsage {
        let usage = event(&serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
        }));
        if tx.send(Ok(Bytes::from(usage))).await.is_err() {
            return;
        }
    }
    if !b.no_done && matches!(flavour, Flavour::OpenAi | Flavour::OpenAiUsage) {
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    }
}

/// Split an event in two, the cut falling inside the first multi-byte code point.
fn split_inside_code_point(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    match bytes.iter().position(|b| *b >= 0x80) {
        Some(at) => vec![bytes[..=at].to_vec(), bytes[at + 1..].to_vec()],
        None => vec![bytes],
    }
}

/// Counts a request as in flight from its arrival until its response body ends.
struct InFlight(Arc<State>);

impl InFlight {
    fn new(state: &Arc<State>) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct AbortGuard {
    state: Arc<State>,
    finished: bool,
    _in_flight: Option<InFlight>,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.aborts.fetch_add(1, Ordering::SeqCst);
            self.state.changed.notify_waiters();
        }
    }
}

struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    guard: AbortGuard,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Err(err))) => {
                // An injected fault, not the reader going away.
                self.guard.finished = true;
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                self.guard.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
