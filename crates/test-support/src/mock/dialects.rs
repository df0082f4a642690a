//! The client protocols the mock speaks besides Chat Completions and Antigravity: Anthropic
//! Messages (`/messages`, `/messages/count_tokens`), OpenAI Responses (`/responses`) and the
//! Gemini API (`/models/{m}:generateContent`, `:streamGenerateContent`, `:countTokens`,
//! `GET /v1beta/models`), plus Antigravity's `v1internal:countTokens` and non-streaming
//! `v1internal:generateContent`.
//!
//! Every answer is planned once from the request ([`Plan`]): thinking when the request asks for
//! it, a call of the first declared tool (or the one a `mock-call:` line in the last user turn
//! names) while the last user turn carries no tool result, else text; after a tool result the
//! text repeats what the tool said. The plan is then written in the protocol's JSON or as its
//! event stream, whose content events honour the stream controls of [`Behaviour`].

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::{Behaviour, TOOL_ARGUMENTS};

/// The signature every mock thinking block carries (base64, like a real one).
pub const MOCK_SIGNATURE: &str = "RXFRQkNnSVlBaElNbW9jay10aGlua2luZy1zaWduYXR1cmUtMDAx";

/// The thinking text of every mock thinking block.
pub const MOCK_THINKING: &str = "Let me think about it.";

/// The non-streaming answer text of the protocols the mock plans.
pub const MOCK_TEXT: &str = "Hello from the mock 世界";

/// The prefix of the text answered after a tool result.
pub const TOOL_SAID: &str = "The tool said: ";

/// Which of the planned protocols a request speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Messages,
    CountTokens,
    Responses,
    Generate { stream: bool, sse: bool },
    GeminiCount,
    GeminiList,
    GeminiModel(String),
    AntigravityCount,
    AntigravityGenerate,
}

impl Route {
    /// The route of `path` (with `query`), when it is one of the planned protocols.
    pub(super) fn of(method: &Method, path: &str, query: Option<&str>) -> Option<Self> {
        let sse = query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
        if *method == Method::GET {
            if !path.contains("v1beta/models") {
                return None;
            }
            let rest = path.rsplit_once("/models").map_or("", |(_, rest)| rest);
            return Some(match rest.strip_prefix('/') {
                Some(name) if !name.is_empty() => Self::GeminiModel(name.to_owned()),
                _ => Self::GeminiList,
            });
        }
        if *method != Method::POST {
            return None;
        }
        if path.ends_with("v1internal:countTokens") {
            Some(Self::AntigravityCount)
        } else if path.ends_with("v1internal:generateContent") {
            Some(Self::AntigravityGenerate)
        } else if path.contains("v1internal:") {
            None
        } else if path.ends_with("/messages") {
            Some(Self::Messages)
        } else if path.ends_with("/messages/count_tokens") {
            Some(Self::CountTokens)
        } else if path.ends_with("/responses") {
            Some(Self::Responses)
        } else if path.ends_with(":generateContent") {
            Some(Self::Generate { stream: false, sse })
        } else if path.ends_with(":streamGenerateContent") {
            Some(Self::Generate { stream: true, sse })
        } else if path.ends_with(":countTokens") {
            Some(Self::GeminiCount)
        } else {
            None
        }
    }

    /// Whether the answer is an event stream.
    pub(super) fn streams(&self, json: &Value, force: Option<bool>) -> bool {
        match self {
            Self::Messages | Self::Responses => {
                force.unwrap_or_else(|| json["stream"].as_bool().unwrap_or(false))
            }
            Self::Generate { stream, sse } => force.unwrap_or(*stream && *sse),
            _ => false,
        }
    }

    /// Why the request is malformed, as the upstream would refuse it with a 400.
    pub(super) fn invalid(&self, json: &Value) -> Option<&'static str> {
        match self {
            Self::Messages if !json["max_tokens"].is_u64() => Some("max_tokens: field required"),
            Self::Messages | Self::CountTokens if !json["messages"].is_array() => {
                Some("messages: input should be a valid list")
            }
            Self::Responses if !(json["input"].is_string() || json["input"].is_array()) => {
                Some("input: expected a string or an array of items")
            }
            Self::Generate { .. } | Self::GeminiCount if !json["contents"].is_array() => {
                Some("contents: expected an array of contents")
            }
            _ => None,
        }
    }

    /// The error body of this protocol for `status`.
    pub(super) fn error_body(&self, status: u16) -> String {
        self.error_message(status, &format!("mock error {status}"))
    }

    /// The error body of this protocol for `status` with `message`.
    pub(super) fn error_message(&self, status: u16, message: &str) -> String {
        match self {
            Self::Messages | Self::CountTokens => json!({"type": "error", "error": {
                "type": anthropic_error_type(status), "message": message}})
            .to_string(),
            Self::Responses => json!({"error": {"message": message, "type": "mock_error",
                "param": null, "code": null}})
            .to_string(),
            _ => google_error(status, message).to_string(),
        }
    }
}

fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn google_error(status: u16, message: &str) -> Value {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": message, "status": name}})
}

/// The model a request names: in its body, else in a Gemini path (`models/{m}:method`).
pub(super) fn model_of(json: &Value, path: &str) -> Option<String> {
    if let Some(model) = json["model"].as_str() {
        return Some(model.to_owned());
    }
    let (_, rest) = path.rsplit_once("/models/")?;
    Some(rest.split(':').next().unwrap_or(rest).to_owned())
}

/// The status a model named `...mock-status-NNN...` asks for (any backend can reach it).
pub(super) fn status_from_model(model: &str) -> Option<u16> {
    let (_, rest) = model.split_once("mock-status-")?;
    rest.get(..3)?.parse().ok()
}

/// One event of a mock stream. Content events are where the stream controls apply; each carries
/// the protocol's error event to send instead of it (`x-mock-error-event-after`).
#[derive(Debug)]
pub(super) struct Piece {
    pub(super) bytes: Vec<u8>,
    pub(super) content: Option<Vec<u8>>,
}

impl Piece {
    fn frame(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            content: None,
        }
    }

    fn content(bytes: Vec<u8>, error: Vec<u8>) -> Self {
        Self {
            bytes,
            content: Some(error),
        }
    }
}

/// What the mock answers to one request of a planned protocol.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    model: String,
    thinking: bool,
    call: Option<(String, String)>,
    tool_result: Option<String>,
    input_tokens: u64,
    chunks: usize,
}

/// What a request of any protocol says about tools.
struct Turn {
    /// Declared tool names, in order.
    tools: Vec<String>,
    /// The text of the last user turn.
    user_text: String,
    /// What the tool said, when the last turn answers a call.
    tool_result: Option<String>,
}

impl Plan {
    pub(super) fn new(
        route: &Route,
        json: &Value,
        model: &str,
        body_len: usize,
        b: &Behaviour,
    ) -> Self {
        let turn = match route {
            Route::Messages => anthropic_turn(json),
            Route::Responses => responses_turn(json),
            Route::AntigravityGenerate => gemini_turn(&json["request"]),
            _ => gemini_turn(json),
        };
        let thinking = match route {
            Route::Messages => matches!(
                json["thinking"]["type"].as_str(),
                Some("enabled" | "adaptive")
            ),
            Route::Responses => {
                json["reasoning"].is_object() && json["reasoning"]["effort"] != "none"
            }
            Route::AntigravityGenerate => {
                json["request"]["generationConfig"]["thinkingConfig"]["includeThoughts"] == true
            }
            _ => json["generationConfig"]["thinkingConfig"]["includeThoughts"] == true,
        };
        let call = if turn.tool_result.is_some() {
            None
        } else {
            choose_call(&turn.tools, &turn.user_text)
        };
        Self {
            model: model.to_owned(),
            thinking,
            call,
            tool_result: turn.tool_result,
            input_tokens: token_estimate(body_len),
            chunks: b.chunks,
        }
    }

    fn texts(&self, stream: bool) -> Vec<String> {
        match &self.tool_result {
            Some(said) => vec![format!("{TOOL_SAID}{said}")],
            None if stream => (0..self.chunks)
                .map(|i| format!("tok{i} 世界🌏 "))
                .collect(),
            None => vec![MOCK_TEXT.to_owned()],
        }
    }

    fn output_tokens(&self, stream: bool) -> u64 {
        let text: usize = self.texts(stream).iter().map(|t| t.chars().count()).sum();
        (text as u64 / 4).max(1) + u64::from(self.thinking) * 5
    }
}

/// Tokens the mock counts for a request body of `len` bytes (never a constant).
pub fn token_estimate(len: usize) -> u64 {
    (len as u64 / 4).max(1)
}

/// The tool to call and its JSON arguments: the one a `mock-call: NAME {json}` line of the last
/// user turn names when it is declared (none for `mock-call: none`), else the first declared one
/// with the usual arguments.
fn choose_call(tools: &[String], user_text: &str) -> Option<(String, String)> {
    if let Some((name, args)) = directive(user_text) {
        if name == NO_CALL {
            return None;
        }
        if tools.contains(&name) {
            return Some((name, args));
        }
    }
    tools
        .first()
        .map(|name| (name.clone(), TOOL_ARGUMENTS.to_owned()))
}

/// The `mock-call:` name that asks for text even though tools are declared.
pub(super) const NO_CALL: &str = "none";

/// A `mock-call: NAME {json arguments}` line in `text`.
pub(super) fn directive(text: &str) -> Option<(String, String)> {
    let (_, rest) = text.split_once("mock-call:")?;
    let line = rest.lines().next()?.trim();
    let (name, args) = line.split_once(char::is_whitespace).unwrap_or((line, "{}"));
    let args: Value = serde_json::from_str(args.trim())
        .ok()
        .filter(Value::is_object)?;
    Some((name.to_owned(), args.to_string()))
}

/// The text of the last user turn of a Chat Completions or Antigravity request.
pub(super) fn chat_user_text(json: &Value) -> String {
    if let Some(last) = json["messages"].as_array().and_then(|m| m.last()) {
        return text_of(&last["content"]);
    }
    let last = json["request"]["contents"]
        .as_array()
        .and_then(|c| c.last());
    last.map(|c| text_of(&c["parts"])).unwrap_or_default()
}

/// Text of a content that is a string or an array of text parts of any protocol.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(400).collect()
}

fn anthropic_turn(json: &Value) -> Turn {
    let tools = names(&json["tools"], |t| t["name"].as_str());
    let last = json["messages"].as_array().and_then(|m| m.last());
    let mut turn = Turn {
        tools,
        user_text: String::new(),
        tool_result: None,
    };
    let Some(last) = last.filter(|l| l["role"] == "user") else {
        return turn;
    };
    turn.user_text = text_of(&last["content"]);
    let results: Vec<String> = last["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "tool_result")
        .map(|block| text_of(&block["content"]))
        .collect();
    if !results.is_empty() {
        turn.tool_result = Some(clip(&results.join("\n")));
    }
    turn
}

fn responses_turn(json: &Value) -> Turn {
    let tools = names(&json["tools"], |t| {
        (t["type"] == "function")
            .then(|| t["name"].as_str())
            .flatten()
    });
    let mut turn = Turn {
        tools,
        user_text: String::new(),
        tool_result: None,
    };
    let items = match &json["input"] {
        Value::String(text) => {
            turn.user_text = text.clone();
            return turn;
        }
        Value::Array(items) => items,
        _ => return turn,
    };
    let last_user = items.iter().rposition(|i| i["role"] == "user");
    if let Some(at) = last_user {
        turn.user_text = text_of(&items[at]["content"]);
    }
    let after = last_user.map_or(0, |at| at + 1);
    let outputs: Vec<String> = items[after..]
        .iter()
        .filter(|i| i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output")
        .map(|i| match &i["output"] {
            Value::String(text) => text.clone(),
            other => text_of(other),
        })
        .collect();
    if !outputs.is_empty() {
        turn.tool_result = Some(clip(&outputs.join("\n")));
    }
    turn
}

fn gemini_turn(request: &Value) -> Turn {
    let tools = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| names(&t["functionDeclarations"], |d| d["name"].as_str()))
        .collect();
    let last = request["contents"].as_array().and_then(|c| c.last());
    let mut turn = Turn {
        tools,
        user_text: String::new(),
        tool_result: None,
    };
    let Some(last) = last.filter(|l| l["role"] == "user" || l["role"].is_null()) else {
        return turn;
    };
    turn.user_text = text_of(&last["parts"]);
    let results: Vec<String> = last["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| r["response"].to_string())
        .collect();
    if !results.is_empty() {
        turn.tool_result = Some(clip(&results.join("\n")));
    }
    turn
}

fn names(tools: &Value, name: impl Fn(&Value) -> Option<&str>) -> Vec<String> {
    tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| name(t).map(str::to_owned))
        .collect()
}

/// The JSON answer of a planned route (for `streamGenerateContent` without `alt=sse`, the
/// array of its chunks).
pub(super) fn json_answer(route: &Route, plan: &Plan, json: &Value) -> String {
    let answer = match route {
        Route::Messages => anthropic_json(plan),
        Route::CountTokens => json!({"input_tokens": plan.input_tokens}),
        Route::Responses => responses_object(plan, json, "completed"),
        Route::Generate { stream: true, .. } => Value::Array(gemini_chunks(plan)),
        Route::Generate { .. } => gemini_json(plan),
        Route::AntigravityGenerate => json!({"response": gemini_json(plan)}),
        Route::GeminiCount | Route::AntigravityCount => json!({"totalTokens": plan.input_tokens}),
        Route::GeminiList => json!({"models": [gemini_model("gemini-2.5-pro"),
            gemini_model("gemini-2.5-flash"), gemini_model("gemini-3-pro-preview")]}),
        Route::GeminiModel(name) => gemini_model(name),
    };
    answer.to_string()
}

fn gemini_model(name: &str) -> Value {
    let name = name.strip_prefix("models/").unwrap_or(name);
    json!({"name": format!("models/{name}"), "version": "mock", "displayName": name,
        "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"], "thinking": true})
}

/// The events of a planned stream.
pub(super) fn stream_pieces(route: &Route, plan: &Plan, json: &Value) -> Vec<Piece> {
    match route {
        Route::Messages => anthropic_events(plan),
        Route::Responses => responses_events(plan, json),
        _ => gemini_events(plan),
    }
}

fn named(name: &str, data: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

fn data(data: &Value) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

// ---- Anthropic Messages ----

fn anthropic_usage(plan: &Plan, output: u64) -> Value {
    json!({"input_tokens": plan.input_tokens, "output_tokens": output,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn anthropic_stop(plan: &Plan) -> &'static str {
    if plan.call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn anthropic_json(plan: &Plan) -> Value {
    let mut content = Vec::new();
    if plan.thinking {
        content.push(
            json!({"type": "thinking", "thinking": MOCK_THINKING, "signature": MOCK_SIGNATURE}),
        );
    }
    match &plan.call {
        Some((name, args)) => content.push(json!({"type": "tool_use", "id": "toolu_mock_1",
            "name": name, "input": serde_json::from_str::<Value>(args).unwrap_or_default()})),
        None => content.push(json!({"type": "text", "text": plan.texts(false).concat()})),
    }
    json!({"id": "msg_mock_1", "type": "message", "role": "assistant", "model": plan.model,
        "content": content, "stop_reason": anthropic_stop(plan), "stop_sequence": null,
        "usage": anthropic_usage(plan, plan.output_tokens(false))})
}

fn anthropic_events(plan: &Plan) -> Vec<Piece> {
    let error = named(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock error event"}}),
    );
    let delta = |index: usize, delta: Value| {
        Piece::content(
            named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ),
            error.clone(),
        )
    };
    let start = |index: usize, block: Value| {
        named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        )
    };
    let stop = |index: usize| {
        Piece::frame(named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ))
    };
    let mut message = anthropic_json(plan);
    message["content"] = json!([]);
    message["stop_reason"] = Value::Null;
    message["usage"] = anthropic_usage(plan, 1);
    let mut pieces = vec![
        Piece::frame(named(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        )),
        Piece::frame(named("ping", &json!({"type": "ping"}))),
    ];
    let mut index = 0;
    if plan.thinking {
        pieces.push(Piece::frame(start(
            index,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        )));
        pieces.push(delta(
            index,
            json!({"type": "thinking_delta", "thinking": MOCK_THINKING}),
        ));
        pieces.push(delta(
            index,
            json!({"type": "signature_delta", "signature": MOCK_SIGNATURE}),
        ));
        pieces.push(stop(index));
        index += 1;
    }
    match &plan.call {
        Some((name, args)) => {
            pieces.push(Piece::content(
                start(
                    index,
                    json!({"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {}}),
                ),
                error.clone(),
            ));
            let (first, second) = split_half(args);
            for part in [first, second] {
                pieces.push(delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
            pieces.push(stop(index));
        }
        None => {
            pieces.push(Piece::frame(start(
                index,
                json!({"type": "text", "text": ""}),
            )));
            for text in plan.texts(true) {
                pieces.push(delta(index, json!({"type": "text_delta", "text": text})));
            }
            pieces.push(stop(index));
        }
    }
    pieces.push(Piece::frame(named(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": anthropic_stop(plan), "stop_sequence": null},
            "usage": {"output_tokens": plan.output_tokens(true)}}),
    )));
    pieces.push(Piece::frame(named(
        "message_stop",
        &json!({"type": "message_stop"}),
    )));
    pieces
}

/// `text` in two pieces, cut on a character boundary.
fn split_half(text: &str) -> (String, String) {
    let mut at = text.len() / 2;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    (text[..at].to_owned(), text[at..].to_owned())
}

// ---- OpenAI Responses ----

const REASONING_SUMMARY: &str = "Thinking about the request.";

fn responses_items(plan: &Plan, json: &Value, stream: bool) -> Vec<Value> {
    let mut items = Vec::new();
    if plan.thinking {
        let mut reasoning = json!({"id": "rs_mock_1", "type": "reasoning",
            "summary": [{"type": "summary_text", "text": REASONING_SUMMARY}]});
        let encrypted = json["include"]
            .as_array()
            .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
        if encrypted {
            reasoning["encrypted_content"] = json!(MOCK_SIGNATURE);
        }
        items.push(reasoning);
    }
    match &plan.call {
        Some((name, args)) => items.push(json!({"id": "fc_mock_1", "type": "function_call",
            "status": "completed", "call_id": "call_mock_1", "name": name, "arguments": args})),
        None => items.push(json!({"id": "msg_mock_1", "type": "message", "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": plan.texts(stream).concat(),
            "annotations": [], "logprobs": []}]})),
    }
    items
}

fn responses_usage(plan: &Plan, stream: bool) -> Value {
    let output = plan.output_tokens(stream);
    json!({"input_tokens": plan.input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": u64::from(plan.thinking) * 5},
        "total_tokens": plan.input_tokens + output})
}

fn responses_object(plan: &Plan, json: &Value, status: &str) -> Value {
    let stream = json["stream"] == true;
    let done = status == "completed";
    json!({"id": "resp_mock_1", "object": "response", "created_at": 1_700_000_000,
        "status": status, "error": null, "incomplete_details": null,
        "instructions": json.get("instructions").cloned().unwrap_or(Value::Null),
        "model": plan.model,
        "output": if done { Value::Array(responses_items(plan, json, stream)) } else { json!([]) },
        "parallel_tool_calls": json.get("parallel_tool_calls").cloned().unwrap_or(json!(true)),
        "previous_response_id": json.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "reasoning": json.get("reasoning").cloned().unwrap_or(Value::Null),
        "store": json.get("store").cloned().unwrap_or(json!(true)),
        "temperature": null, "top_p": null, "text": {"format": {"type": "text"}},
        "tool_choice": json.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": json.get("tools").cloned().unwrap_or(json!([])),
        "usage": if done { responses_usage(plan, stream) } else { Value::Null },
        "metadata": {}})
}

fn responses_events(plan: &Plan, json: &Value) -> Vec<Piece> {
    struct Seq {
        next: u64,
        pieces: Vec<Piece>,
    }
    impl Seq {
        fn push(&mut self, mut event: Value, content: bool) {
            let seq = self.next;
            self.next += 1;
            event["sequence_number"] = json!(seq);
            let name = event["type"].as_str().unwrap_or("").to_owned();
            let bytes = named(&name, &event);
            self.pieces.push(if content {
                let error = json!({"type": "error", "code": "server_error", "message": "mock error event",
                    "param": null, "sequence_number": seq});
                Piece::content(bytes, named("error", &error))
            } else {
                Piece::frame(bytes)
            });
        }
    }
    let mut out = Seq {
        next: 0,
        pieces: Vec::new(),
    };
    let running = responses_object(plan, json, "in_progress");
    out.push(
        json!({"type": "response.created", "response": running}),
        false,
    );
    out.push(
        json!({"type": "response.in_progress", "response": running}),
        false,
    );
    for (output_index, item) in responses_items(plan, json, true).into_iter().enumerate() {
        let id = item["id"].clone();
        match item["type"].as_str() {
            Some("reasoning") => {
                let mut added = item.clone();
                added["summary"] = json!([]);
                out.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}), false);
                let part = json!({"type": "summary_text", "text": ""});
                out.push(
                    json!({"type": "response.reasoning_summary_part.added", "item_id": id,
                    "output_index": output_index, "summary_index": 0, "part": part}),
                    false,
                );
                out.push(
                    json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                    "output_index": output_index, "summary_index": 0, "delta": REASONING_SUMMARY}),
                    true,
                );
                out.push(
                    json!({"type": "response.reasoning_summary_text.done", "item_id": id,
                    "output_index": output_index, "summary_index": 0, "text": REASONING_SUMMARY}),
                    false,
                );
                out.push(
                    json!({"type": "response.reasoning_summary_part.done", "item_id": id,
                    "output_index": output_index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": REASONING_SUMMARY}}),
                    false,
                );
            }
            Some("function_call") => {
                let mut added = item.clone();
                added["arguments"] = json!("");
                added["status"] = json!("in_progress");
                out.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}), true);
                let args = item["arguments"].as_str().unwrap_or("{}");
                let (first, second) = split_half(args);
                for part in [first, second] {
                    out.push(
                        json!({"type": "response.function_call_arguments.delta", "item_id": id,
                        "output_index": output_index, "delta": part}),
                        true,
                    );
                }
                out.push(
                    json!({"type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": output_index, "name": item["name"], "arguments": args}),
                    false,
                );
            }
            _ => {
                let mut added = item.clone();
                added["content"] = json!([]);
                added["status"] = json!("in_progress");
                out.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}), false);
                let empty =
                    json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                out.push(
                    json!({"type": "response.content_part.added", "item_id": id,
                    "output_index": output_index, "content_index": 0, "part": empty}),
                    false,
                );
                for text in plan.texts(true) {
                    out.push(json!({"type": "response.output_text.delta", "item_id": id,
                        "output_index": output_index, "content_index": 0, "delta": text, "logprobs": []}), true);
                }
                let part = item["content"][0].clone();
                out.push(json!({"type": "response.output_text.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "text": part["text"], "logprobs": []}), false);
                out.push(
                    json!({"type": "response.content_part.done", "item_id": id,
                    "output_index": output_index, "content_index": 0, "part": part}),
                    false,
                );
            }
        }
        out.push(json!({"type": "response.output_item.done", "output_index": output_index, "item": item}), false);
    }
    let mut done = responses_object(plan, json, "completed");
    done["output"] = Value::Array(responses_items(plan, json, true));
    out.push(
        json!({"type": "response.completed", "response": done}),
        false,
    );
    out.pieces
}

// ---- Gemini ----

fn gemini_usage(plan: &Plan, stream: bool) -> Value {
    let output = plan.output_tokens(stream);
    let mut usage = json!({"promptTokenCount": plan.input_tokens, "candidatesTokenCount": output,
        "totalTokenCount": plan.input_tokens + output});
    if plan.thinking {
        usage["thoughtsTokenCount"] = json!(5);
        usage["totalTokenCount"] = json!(plan.input_tokens + output + 5);
    }
    usage
}

fn gemini_response(
    plan: &Plan,
    parts: Vec<Value>,
    finish: bool,
    usage: bool,
    stream: bool,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if finish {
        candidate["finishReason"] = json!("STOP");
    }
    let mut answer = json!({"candidates": [candidate], "modelVersion": plan.model,
        "responseId": "mock-response-1"});
    if usage {
        answer["usageMetadata"] = gemini_usage(plan, stream);
    }
    answer
}

fn gemini_thought() -> Value {
    json!({"text": MOCK_THINKING, "thought": true})
}

fn gemini_call(plan: &Plan) -> Option<Value> {
    let (name, args) = plan.call.as_ref()?;
    let args: Value = serde_json::from_str(args).unwrap_or_default();
    Some(json!({"functionCall": {"name": name, "args": args}, "thoughtSignature": MOCK_SIGNATURE}))
}

fn gemini_json(plan: &Plan) -> Value {
    let mut parts = Vec::new();
    if plan.thinking {
        parts.push(gemini_thought());
    }
    match gemini_call(plan) {
        Some(call) => parts.push(call),
        None => {
            let mut text = json!({"text": plan.texts(false).concat()});
            if plan.thinking {
                text["thoughtSignature"] = json!(MOCK_SIGNATURE);
            }
            parts.push(text);
        }
    }
    gemini_response(plan, parts, true, true, false)
}

fn gemini_chunks(plan: &Plan) -> Vec<Value> {
    let mut chunks = Vec::new();
    if plan.thinking {
        chunks.push(gemini_response(
            plan,
            vec![gemini_thought()],
            false,
            false,
            true,
        ));
    }
    match gemini_call(plan) {
        Some(call) => chunks.push(gemini_response(plan, vec![call], true, true, true)),
        None => {
            for (i, text) in plan.texts(true).into_iter().enumerate() {
                let mut part = json!({"text": text});
                if plan.thinking && i == 0 {
                    part["thoughtSignature"] = json!(MOCK_SIGNATURE);
                }
                chunks.push(gemini_response(plan, vec![part], false, false, true));
            }
            chunks.push(gemini_response(
                plan,
                vec![json!({"text": ""})],
                true,
                true,
                true,
            ));
        }
    }
    chunks
}

fn gemini_events(plan: &Plan) -> Vec<Piece> {
    let error = data(&google_error(500, "mock error event"));
    let chunks = gemini_chunks(plan);
    let last = chunks.len().saturating_sub(1);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let bytes = data(&chunk);
            if i == last && plan.call.is_none() {
                Piece::frame(bytes)
            } else {
                Piece::content(bytes, error.clone())
            }
        })
        .collect()
}

/// The thought event an Antigravity stream for a Claude model starts with when the request asks
/// for thoughts: thinking text with its signature.
pub(super) fn antigravity_thought_event() -> Bytes {
    Bytes::from(data(
        &json!({"response": {"candidates": [{"content": {"role": "model", "parts": [
        {"text": MOCK_THINKING, "thought": true, "thoughtSignature": MOCK_SIGNATURE}
    ]}}], "modelVersion": "mock"}}),
    ))
}

/// Whether an Antigravity request for a Claude model asks for thoughts.
pub(super) fn antigravity_claude_thinking(json: &Value) -> bool {
    json["model"]
        .as_str()
        .is_some_and(|m| m.starts_with("claude"))
        && json["request"]["generationConfig"]["thinkingConfig"]["includeThoughts"] == true
}

#[cfg(test)]
mod tests;
