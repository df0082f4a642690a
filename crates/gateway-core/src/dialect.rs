//! What the gateway must know of each client protocol to relay it without understanding all of
//! it: which endpoint speaks which [`Dialect`], what counts as content in its event stream (the
//! commit point), how a finished stream ends, how an error is written in its envelope, and its
//! terminal error event once a stream has started.
//!
//! The relay forwards a stream's original bytes; a [`Tracker`] watches the decoded events beside
//! them. Nothing here allocates per event beyond the JSON peek of the event's data.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ErrorKind, GatewayError, sse};

/// A protocol the gateway serves to clients (and relays from upstreams that speak it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions (and the legacy Completions): `data:` chunks, then `[DONE]`.
    OpenAiChat,
    /// Anthropic Messages: named events from `message_start` to `message_stop`.
    Anthropic,
    /// OpenAI Responses: named `response.*` events ending in `response.completed`.
    Responses,
    /// Gemini `generateContent`: `data:` chunks of candidates; the last carries `finishReason`.
    Gemini,
    /// Anything else: bytes in both directions, committed on the first byte, any content type.
    Passthrough,
}

impl Dialect {
    /// The dialect of an endpoint path below the API root (`/chat/completions`, `/messages`,
    /// `/responses`, `/models/gemini-2.5-pro:streamGenerateContent`, ...).
    pub fn of_endpoint(path: &str) -> Self {
        match path {
            "/chat/completions" | "/completions" => Self::OpenAiChat,
            "/messages" => Self::Anthropic,
            "/responses" => Self::Responses,
            p if p.ends_with(":streamGenerateContent") || p.ends_with(":generateContent") => {
                Self::Gemini
            }
            _ => Self::Passthrough,
        }
    }

    /// The error as a response body in this protocol's envelope (OpenAI's for pass-through).
    pub fn envelope(self, err: &GatewayError) -> Value {
        match self {
            Self::OpenAiChat | Self::Responses | Self::Passthrough => {
                serde_json::to_value(err.to_envelope()).unwrap_or(Value::Null)
            }
            Self::Anthropic => json!({
                "type": "error",
                "error": {"type": anthropic_error_type(err), "message": err.message()},
            }),
            Self::Gemini => json!({
                "error": {
                    "code": err.status().as_u16(),
                    "message": err.message(),
                    "status": google_status(err.status()),
                }
            }),
        }
    }

    /// Whether an upstream's error body is already in this protocol's envelope, so it can be
    /// passed on as the provider wrote it.
    pub fn is_envelope(self, body: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        match self {
            Self::OpenAiChat | Self::Responses | Self::Passthrough => {
                value["error"]["message"].is_string()
            }
            Self::Anthropic => {
                value["type"] == "error"
                    && value["error"]["type"].is_string()
                    && value["error"]["message"].is_string()
            }
            Self::Gemini => {
                value["error"]["code"].is_u64() && value["error"]["message"].is_string()
            }
        }
    }

    /// Whether responses of this dialect are event streams the relay can read event by event.
    pub fn has_events(self) -> bool {
        !matches!(self, Self::Passthrough)
    }

    /// Check a non-streaming 200 answer: a body that is not JSON, an error in the body, or an
    /// answer of the wrong shape is a failure, never content.
    ///
    /// Only the top-level keys that decide are read; the rest is checked for syntax and skipped
    /// without building a document (an answer's bytes are relayed as they came).
    pub fn check_answer(self, body: &[u8]) -> Result<(), GatewayError> {
        match serde_json::from_slice::<Top>(body) {
            Ok(top) if top.error.is_none_or(|e| e == Kind::Null) => self.shaped(&top),
            // An error in the body, or an unusual document (not an object, a key twice): the
            // whole document decides.
            Ok(_) | Err(_) => {
                let value: Value = serde_json::from_slice(body).map_err(|e| {
                    GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("the upstream answered 200 with invalid json: {e}"),
                    )
                })?;
                self.check_value(&value)
            }
        }
    }

    fn check_value(self, value: &Value) -> Result<(), GatewayError> {
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            return Err(error_in_body(error, value));
        }
        self.shaped(&Top::of(value))
    }

    /// Whether an answer without an error has the shape of this dialect's answers.
    fn shaped(self, top: &Top) -> Result<(), GatewayError> {
        let shaped = match self {
            Self::OpenAiChat => top.choices == Some(Kind::Array),
            Self::Anthropic => top.content == Some(Kind::Array),
            Self::Responses => {
                top.output == Some(Kind::Array) || top.object == Some(Kind::Response)
            }
            Self::Gemini => {
                top.candidates == Some(Kind::Array) || top.prompt_feedback == Some(Kind::Object)
            }
            Self::Passthrough => true,
        };
        if shaped {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                "the upstream answer is not of the expected shape",
            ))
        }
    }
}

/// The top-level keys of an answer that [`Dialect::check_answer`] reads.
#[derive(Deserialize)]
struct Top {
    error: Option<Kind>,
    choices: Option<Kind>,
    content: Option<Kind>,
    output: Option<Kind>,
    object: Option<Kind>,
    candidates: Option<Kind>,
    #[serde(rename = "promptFeedback")]
    prompt_feedback: Option<Kind>,
}

impl Top {
    /// The same keys, read from a whole document.
    fn of(value: &Value) -> Self {
        let kind = |key: &str| value.get(key).map(Kind::of);
        Self {
            error: kind("error"),
            choices: kind("choices"),
            content: kind("content"),
            output: kind("output"),
            object: kind("object"),
            candidates: kind("candidates"),
            prompt_feedback: kind("promptFeedback"),
        }
    }
}

/// What kind of JSON value a key holds; the value itself is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Array,
    Object,
    /// The string `"response"` (a Responses answer's `object`).
    Response,
    Other,
}

impl Kind {
    fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
            Value::String(text) if text == "response" => Self::Response,
            _ => Self::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct KindVisitor;
        impl<'de> Visitor<'de> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Kind, E> {
                Ok(Kind::Null)
            }
            fn visit_none<E>(self) -> Result<Kind, E> {
                Ok(Kind::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
                Ok(if v == "response" {
                    Kind::Response
                } else {
                    Kind::Other
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Kind::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Kind::Object)
            }
        }
        deserializer.deserialize_any(KindVisitor)
    }
}

/// Anthropic's `error.type` for an error.
fn anthropic_error_type(err: &GatewayError) -> &'static str {
    match err.status().as_u16() {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Google's canonical status name for an HTTP status.
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The status an error `type` or `code` string stands for, when it names one.
fn status_of_type(kind: &str) -> Option<StatusCode> {
    let code = match kind {
        "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "authentication_error" | "UNAUTHENTICATED" => 401,
        "permission_error" | "PERMISSION_DENIED" => 403,
        "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED" => 429,
        "overloaded_error" => 529,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    };
    StatusCode::from_u16(code).ok()
}

/// An error an upstream wrote into a 200 answer or an event: `error` is the inner object (or
/// string), `whole` the event or body it came in, kept as the error's upstream body.
pub fn error_in_body(error: &Value, whole: &Value) -> GatewayError {
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("the upstream reported an error");
    let numeric = error["code"]
        .as_u64()
        .or_else(|| error["status"].as_u64())
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok());
    let named = ["type", "status", "code"]
        .iter()
        .find_map(|key| error[*key].as_str().and_then(status_of_type));
    let status = numeric
        .or(named)
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    GatewayError::upstream(status, message.to_owned()).with_body(Bytes::from(whole.to_string()))
}

/// Watches one event stream of a dialect: whether content has arrived (the commit point),
/// whether the answer finished, whether the end marker came, and what the terminal error event
/// must say.
#[derive(Debug)]
pub struct Tracker {
    dialect: Dialect,
    content: bool,
    finished: bool,
    done: bool,
    /// Responses: the last `sequence_number` and the response id, for `response.failed`.
    sequence: Option<u64>,
    response_id: Option<String>,
}

/// The parts of an event's JSON the tracker looks at, across dialects.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Peek {
    #[serde(rename = "type")]
    kind: Option<String>,
    error: Option<Value>,
    choices: Vec<PeekChoice>,
    candidates: Vec<PeekCandidate>,
    delta: Option<Value>,
    content_block: Option<Value>,
    item: Option<Value>,
    response: Option<Value>,
    sequence_number: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeekChoice {
    delta: Option<Value>,
    message: Option<Value>,
    text: Option<Value>,
    finish_reason: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PeekCandidate {
    content: Option<Value>,
    finish_reason: Option<Value>,
}

fn non_empty(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.is_empty())
}

/// Whether an OpenAI delta (or message) carries something a user would see or a tool would run.
fn openai_delta_has_content(delta: &Value) -> bool {
    ["content", "reasoning_content", "reasoning", "refusal"]
        .iter()
        .any(|key| non_empty(&delta[*key]))
        || delta["tool_calls"]
            .as_array()
            .is_some_and(|calls| !calls.is_empty())
        || delta["function_call"].is_object()
        || delta["audio"].is_object()
}

impl Tracker {
    /// A tracker for a stream of `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            content: false,
            finished: false,
            done: false,
            sequence: None,
            response_id: None,
        }
    }

    /// Whether content (or the finish) has arrived: the stream may be committed.
    pub fn has_content(&self) -> bool {
        self.content
    }

    /// Whether the end marker arrived; nothing after it is relayed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Observe one event. An error event (or a malformed one) is returned as the error it
    /// stands for; the caller decides whether it is still time to fail over.
    pub fn observe(&mut self, event: &sse::Event) -> Result<(), GatewayError> {
        if self.done {
            return Ok(());
        }
        if self.dialect == Dialect::OpenAiChat && event.is_done() {
            self.done = true;
            return Ok(());
        }
        let name = event.event.as_deref();
        if self.dialect == Dialect::Anthropic && name == Some("ping") {
            return Ok(());
        }
        let peek: Peek = serde_json::from_str(&event.data).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("malformed event from the upstream: {e}"),
            )
        })?;
        // The whole event, read again only when it reports an error.
        let whole = || serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null);
        let kind = name.or(peek.kind.as_deref()).unwrap_or("");
        match self.dialect {
            Dialect::OpenAiChat => self.openai(&peek, whole),
            Dialect::Anthropic => self.anthropic(kind, &peek, whole),
            Dialect::Responses => self.responses(kind, &peek, whole),
            Dialect::Gemini => self.gemini(&peek, whole),
            Dialect::Passthrough => {
                self.content = true;
                Ok(())
            }
        }
    }

    fn openai(&mut self, peek: &Peek, whole: impl Fn() -> Value) -> Result<(), GatewayError> {
        if let Some(error) = peek.error.as_ref().filter(|e| !e.is_null()) {
            return Err(error_in_body(error, &whole()));
        }
        for choice in &peek.choices {
            if choice.finish_reason.as_ref().is_some_and(|r| !r.is_null()) {
                self.finished = true;
                self.content = true;
            }
            let delta = choice.delta.as_ref().or(choice.message.as_ref());
            if delta.is_some_and(openai_delta_has_content)
                || choice.text.as_ref().is_some_and(non_empty)
            {
                self.content = true;
            }
        }
        Ok(())
    }

    fn anthropic(
        &mut self,
        kind: &str,
        peek: &Peek,
        whole: impl Fn() -> Value,
    ) -> Result<(), GatewayError> {
        match kind {
            "error" => {
                let error = peek.error.clone().unwrap_or(Value::Null);
                Err(error_in_body(&error, &whole()))
            }
            "content_block_start" => {
                let block = peek.content_block.as_ref().unwrap_or(&Value::Null);
                let kind = block["type"].as_str().unwrap_or("");
                if matches!(kind, "tool_use" | "server_tool_use" | "redacted_thinking")
                    || non_empty(&block["text"])
                    || non_empty(&block["thinking"])
                {
                    self.content = true;
                }
                Ok(())
            }
            "content_block_delta" => {
                let delta = peek.delta.as_ref().unwrap_or(&Value::Null);
                if ["text", "thinking", "partial_json"]
                    .iter()
                    .any(|key| non_empty(&delta[*key]))
                {
                    self.content = true;
                }
                Ok(())
            }
            "message_delta" => {
                let delta = peek.delta.as_ref().unwrap_or(&Value::Null);
                if !delta["stop_reason"].is_null() {
                    self.finished = true;
                    self.content = true;
                }
                Ok(())
            }
            "message_stop" => {
                self.finished = true;
                self.content = true;
                self.done = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn responses(
        &mut self,
        kind: &str,
        peek: &Peek,
        whole: impl Fn() -> Value,
    ) -> Result<(), GatewayError> {
        if let Some(sequence) = peek.sequence_number {
            self.sequence = Some(sequence);
        }
        if let Some(id) = peek.response.as_ref().and_then(|r| r["id"].as_str()) {
            self.response_id = Some(id.to_owned());
        }
        match kind {
            "error" => {
                let whole = whole();
                Err(error_in_body(&whole, &whole))
            }
            "response.failed" => {
                let response = peek.response.as_ref().unwrap_or(&Value::Null);
                Err(error_in_body(&response["error"], &whole()))
            }
            "response.completed" | "response.incomplete" => {
                self.finished = true;
                self.content = true;
                self.done = true;
                Ok(())
            }
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_text.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta" => {
                if peek.delta.as_ref().is_some_and(non_empty) {
                    self.content = true;
                }
                Ok(())
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item = peek.item.as_ref().unwrap_or(&Value::Null);
                if item["type"]
                    .as_str()
                    .is_some_and(|t| t != "message" && t != "reasoning")
                {
                    self.content = true;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn gemini(&mut self, peek: &Peek, whole: impl Fn() -> Value) -> Result<(), GatewayError> {
        if let Some(error) = peek.error.as_ref().filter(|e| !e.is_null()) {
            return Err(error_in_body(error, &whole()));
        }
        for candidate in &peek.candidates {
            let parts = candidate
                .content
                .as_ref()
                .and_then(|c| c["parts"].as_array());
            if parts.is_some_and(|parts| {
                parts.iter().any(|part| {
                    non_empty(&part["text"])
                        || part["functionCall"].is_object()
                        || part["inlineData"].is_object()
                })
            }) {
                self.content = true;
            }
            if candidate
                .finish_reason
                .as_ref()
                .is_some_and(|r| !r.is_null())
            {
                self.finished = true;
                self.content = true;
            }
        }
        Ok(())
    }

    /// At the end of the upstream stream: `Ok(Some(bytes))` to append (the end marker of a
    /// finished stream that lacked it), `Ok(None)` when the stream ended properly, or the
    /// truncation error.
    pub fn at_end(&mut self) -> Result<Option<&'static [u8]>, GatewayError> {
        if self.done {
            return Ok(None);
        }
        match self.dialect {
            Dialect::Passthrough => return Ok(None),
            Dialect::Gemini if self.finished => return Ok(None),
            Dialect::OpenAiChat if self.finished => {
                self.done = true;
                return Ok(Some(sse::DONE));
            }
            Dialect::Anthropic if self.finished => {
                self.done = true;
                return Ok(Some(ANTHROPIC_STOP));
            }
            _ => {}
        }
        Err(GatewayError::new(
            ErrorKind::Truncated,
            if self.content {
                "the upstream stream ended without a finish reason"
            } else {
                "the upstream stream ended before any content"
            },
        ))
    }

    /// The terminal error event for `err`, in this dialect; the stream must end right after.
    /// Pass-through streams have none (the connection is cut instead): `None`.
    pub fn error_event(&self, err: &GatewayError) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        match self.dialect {
            Dialect::OpenAiChat => sse::encode_error(err, &mut out),
            Dialect::Gemini => sse::encode_data_line(
                Dialect::Gemini.envelope(err).to_string().as_bytes(),
                &mut out,
            ),
            Dialect::Anthropic => named(&mut out, "error", &Dialect::Anthropic.envelope(err)),
            Dialect::Responses => {
                let sequence = self.sequence.map_or(0, |s| s + 1);
                let code = match err.status().as_u16() {
                    429 => "rate_limit_exceeded",
                    _ => "server_error",
                };
                let event = json!({
                    "type": "response.failed",
                    "sequence_number": sequence,
                    "response": {
                        "id": self.response_id.as_deref().unwrap_or("resp_gateway_error"),
                        "object": "response",
                        "status": "failed",
                        "error": {"code": code, "message": err.message()},
                        "output": [],
                    },
                });
                named(&mut out, "response.failed", &event);
            }
            Dialect::Passthrough => return None,
        }
        Some(out)
    }
}

/// The end of an Anthropic message, for a finished stream that lacked it.
const ANTHROPIC_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn named(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    sse::encode_data_line(data.to_string().as_bytes(), out);
}

#[cfg(test)]
mod tests;
