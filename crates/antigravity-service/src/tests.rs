//! Multi-turn behaviour across the request and response halves.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use gateway_core::{
    GatewayError, body,
    conversation::{Collector, EventStream},
    openai::{self, ChatCompletion, ChatRequest, parse_json},
};

use crate::{
    request::translate, response::StreamTranslator, service::UpstreamEvents,
    signatures::SignatureCache,
};

/// Turn one of the service: translate `request`, answer it with `upstream` events, and return
/// the translated upstream request and the completion the client receives.
async fn turn(
    request: &Value,
    upstream: &str,
    cache: &Arc<SignatureCache>,
) -> (Value, ChatCompletion) {
    let request: ChatRequest = parse_json(request.to_string().as_bytes()).unwrap();
    let request = openai::request_to_conversation(request).unwrap();
    let translated = translate(&request, cache, None, crate::Profile::Antigravity).unwrap();
    let sent = serde_json::to_value(&translated.request).unwrap();
    // The model calls the function by the name the gateway declared.
    let declared = sent["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .unwrap_or("");
    let upstream = upstream.replace("UPSTREAM_NAME", declared);
    let translator = StreamTranslator::new(
        "chatcmpl-turn".to_owned(),
        request.model.clone(),
        translated.names,
        translated.spec.family,
        cache.clone(),
    );
    let frames = futures_util::stream::iter([Ok::<_, GatewayError>(Bytes::from(upstream))]);
    let events: EventStream = Box::pin(UpstreamEvents::new(body::from_stream(frames), translator));
    let answer = Collector::collect(events, 0).await.unwrap();
    (
        sent,
        openai::response_from_conversation(&answer, &request.model),
    )
}

/// What the official SDKs send back: the assistant message as received, then the tool results.
fn second_request(
    first: &Value,
    answer: &ChatCompletion,
    results: &[(&str, &str)],
    echo_reasoning: bool,
) -> Value {
    let message = &answer.choices[0].message;
    let mut assistant =
        json!({"role": "assistant", "content": message.content, "tool_calls": message.tool_calls});
    if echo_reasoning {
        assistant["reasoning_content"] = json!(message.reasoning_content);
    }
    let mut messages = first["messages"].as_array().unwrap().clone();
    messages.push(assistant);
    for (id, output) in results {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": output}));
    }
    let mut next = first.clone();
    next["messages"] = Value::Array(messages);
    next
}

const TOOL: &str = "mcp.server/list_dir";

#[tokio::test]
async fn gemini_tool_call_round_trips_with_its_signature() {
    let cache = Arc::new(SignatureCache::new(100));
    let first = json!({
        "model": "gemini-3-pro",
        "messages": [{"role": "user", "content": "What is in /src?"}],
        "tools": [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    });
    let upstream = "data: {\"response\":{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"UPSTREAM_NAME\",\"args\":{\"path\":\"/src\"}},\"thoughtSignature\":\"gemini-sig-42\"}]},\"finishReason\":\"STOP\"}]}}\n\n";
    let (_, answer) = turn(&first, upstream, &cache).await;
    let calls = answer.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(
        calls[0].function.name, TOOL,
        "the client sees its own tool name"
    );
    let call_id = calls[0].id.clone();
    assert!(call_id.starts_with("call_"));

    let second = second_request(&first, &answer, &[(&call_id, "main.rs lib.rs")], false);
    let (sent, _) = turn(&second, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Two files.\"}]},\"finishReason\":\"STOP\"}]}\n\n", &cache).await;
    let declared = sent["tools"][0]["functionDeclarations"][0]["name"].clone();
    let model_turn = &sent["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(model_turn["parts"][0]["functionCall"]["name"], declared);
    assert_eq!(
        model_turn["parts"][0]["functionCall"]["id"],
        call_id.as_str()
    );
    assert_eq!(model_turn["parts"][0]["thoughtSignature"], "gemini-sig-42");
    let result_turn = &sent["contents"][2];
    assert_eq!(
        result_turn["parts"][0]["functionResponse"]["name"],
        declared
    );
    assert_eq!(
        result_turn["parts"][0]["functionResponse"]["response"]["output"],
        "main.rs lib.rs"
    );
}

#[tokio::test]
async fn claude_thinking_before_a_tool_call_is_sent_back_signed() {
    let cache = Arc::new(SignatureCache::new(100));
    let first = json!({
        "model": "claude-sonnet-4.5-thinking",
        "messages": [{"role": "user", "content": "List /src"}],
        "tools": [{"type": "function", "function": {"name": TOOL}}]
    });
    let upstream = concat!(
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\"I need the listing.\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\"\",\"thoughtSignature\":\"claude-sig-7\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"toolu_9\",\"name\":\"UPSTREAM_NAME\",\"args\":{}}}]},\"finishReason\":\"STOP\"}]}}\n\n",
    );
    let (_, answer) = turn(&first, upstream, &cache).await;
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("I need the listing.")
    );

    // A client that echoes reasoning_content keeps thinking on, signed.
    let second = second_request(&first, &answer, &[("toolu_9", "a b")], true);
    let done = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}]}\n\n";
    let (sent, _) = turn(&second, done, &cache).await;
    let model_turn = &sent["contents"][1];
    assert_eq!(model_turn["parts"][0]["thought"], true);
    assert_eq!(model_turn["parts"][0]["thoughtSignature"], "claude-sig-7");
    assert!(sent["generationConfig"]["thinkingConfig"].is_object());

    // A client that drops it (the official SDKs do) gets thinking off for this turn instead of
    // an upstream rejection.
    let second = second_request(&first, &answer, &[("toolu_9", "a b")], false);
    let (sent, _) = turn(&second, done, &cache).await;
    assert!(
        sent["generationConfig"]["thinkingConfig"].is_null(),
        "{sent}"
    );
    assert!(sent["contents"][1]["parts"][0]["functionCall"].is_object());
}

#[tokio::test]
async fn gemini25_tool_call_signatures_come_back_too() {
    let cache = Arc::new(SignatureCache::new(100));
    let first = json!({
        "model": "gemini-2.5-flash",
        "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "What is in /src?"}],
        "tools": [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    });
    let upstream = "data: {\"response\":{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"UPSTREAM_NAME\",\"args\":{\"path\":\"/src\"}},\"thoughtSignature\":\"gemini25-sig-9\"}]},\"finishReason\":\"STOP\"}]}}\n\n";
    let (_, answer) = turn(&first, upstream, &cache).await;
    let call_id = answer.choices[0].message.tool_calls.clone().unwrap()[0]
        .id
        .clone();

    let second = second_request(&first, &answer, &[(&call_id, "main.rs")], false);
    let done = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"One file.\"}]},\"finishReason\":\"STOP\"}]}\n\n";
    let (sent, _) = turn(&second, done, &cache).await;
    let call = &sent["contents"][1]["parts"][0];
    assert_eq!(call["functionCall"]["id"], call_id.as_str());
    assert_eq!(call["thoughtSignature"], "gemini25-sig-9", "{sent}");
}

#[tokio::test]
async fn claude_interleaved_thinking_blocks_come_back_each_with_its_signature() {
    let cache = Arc::new(SignatureCache::new(100));
    let first = json!({
        "model": "claude-sonnet-4.5-thinking",
        "messages": [{"role": "user", "content": "List /src and /docs"}],
        "tools": [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    });
    // Thinking, a call, more thinking, another call: two signed blocks in one turn.
    let upstream = concat!(
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\"First /src.\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\"\",\"thoughtSignature\":\"claude-sig-a\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"toolu_a\",\"name\":\"UPSTREAM_NAME\",\"args\":{\"path\":\"/src\"}}}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\" Then /docs.\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"thought\":true,\"text\":\"\",\"thoughtSignature\":\"claude-sig-b\"}]}}]}}\n\n",
        "data: {\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"toolu_b\",\"name\":\"UPSTREAM_NAME\",\"args\":{\"path\":\"/docs\"}}}]},\"finishReason\":\"STOP\"}]}}\n\n",
    );
    let (_, answer) = turn(&first, upstream, &cache).await;
    // What an OpenAI client holds: one string for both blocks.
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("First /src. Then /docs.")
    );

    let second = second_request(
        &first,
        &answer,
        &[("toolu_a", "main.rs"), ("toolu_b", "guide.md")],
        true,
    );
    let done = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}]}\n\n";
    let (sent, _) = turn(&second, done, &cache).await;
    let parts = sent["contents"][1]["parts"].as_array().unwrap();
    let thoughts: Vec<(&str, &str)> = parts
        .iter()
        .filter(|p| p["thought"] == true)
        .map(|p| {
            (
                p["text"].as_str().unwrap(),
                p["thoughtSignature"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        thoughts,
        [
            ("First /src.", "claude-sig-a"),
            (" Then /docs.", "claude-sig-b")
        ],
        "{sent}"
    );
    assert_eq!(
        parts[0]["thought"], true,
        "the tool turn starts with signed thinking"
    );
    assert_eq!(
        parts
            .iter()
            .filter(|p| p["functionCall"].is_object())
            .count(),
        2
    );
    assert!(
        sent["generationConfig"]["thinkingConfig"].is_object(),
        "thinking stays on: {sent}"
    );
}

/// Cloud Code logs its errors as `[{"error": ...}]`; a capacity 429 in that form is still a
/// capacity error, which cools no account.
#[test]
fn capacity_errors_in_the_array_form_are_recognised() {
    let body = r#"[{"error":{"code":429,"message":"No capacity available for model claude-sonnet-4-5 on the server","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"MODEL_CAPACITY_EXHAUSTED","domain":"cloudcode-pa.googleapis.com","metadata":{"model":"claude-sonnet-4-5"}}]}}]"#;
    let err = GatewayError::from_upstream_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        &http::HeaderMap::new(),
        Bytes::from_static(body.as_bytes()),
        "https://daily-cloudcode-pa.googleapis.com:443",
    );
    assert!(crate::pool::is_capacity_error(&err), "{err:?}");
    assert_eq!(
        err.message(),
        "No capacity available for model claude-sonnet-4-5 on the server"
    );
}
