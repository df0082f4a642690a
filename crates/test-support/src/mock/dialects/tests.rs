use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

use super::{MOCK_SIGNATURE, Route, TOOL_SAID, directive};
use crate::MockUpstream;

#[test]
fn routes_by_method_and_path() {
    let post = Method::POST;
    let cases: &[(&Method, &str, Option<&str>, Option<Route>)] = &[
        (&post, "/v1/messages", None, Some(Route::Messages)),
        (
            &post,
            "/v1/messages/count_tokens",
            None,
            Some(Route::CountTokens),
        ),
        (&post, "/v1/responses", None, Some(Route::Responses)),
        (
            &post,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            None,
            Some(Route::Generate {
                stream: false,
                sse: false,
            }),
        ),
        (
            &post,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            Some("alt=sse"),
            Some(Route::Generate {
                stream: true,
                sse: true,
            }),
        ),
        (
            &post,
            "/v1beta/models/x:countTokens",
            None,
            Some(Route::GeminiCount),
        ),
        (
            &post,
            "/v1internal:countTokens",
            None,
            Some(Route::AntigravityCount),
        ),
        (
            &post,
            "/v1internal:streamGenerateContent",
            Some("alt=sse"),
            None,
        ),
        (&post, "/v1internal:loadCodeAssist", None, None),
        (&post, "/v1/chat/completions", None, None),
        (&Method::GET, "/v1/models", None, None),
        (
            &Method::GET,
            "/v1beta/models",
            None,
            Some(Route::GeminiList),
        ),
        (
            &Method::GET,
            "/v1beta/models/gemini-2.5-pro",
            None,
            Some(Route::GeminiModel("gemini-2.5-pro".to_owned())),
        ),
    ];
    for (method, path, query, expected) in cases {
        assert_eq!(
            &Route::of(method, path, *query),
            expected,
            "{method} {path}"
        );
    }
}

#[test]
fn a_mock_call_line_names_a_tool_and_its_arguments() {
    assert_eq!(
        directive("read it\nmock-call: Read {\"file_path\": \"/tmp/a b\"}\nthanks"),
        Some(("Read".to_owned(), r#"{"file_path":"/tmp/a b"}"#.to_owned()))
    );
    assert_eq!(directive("mock-call: shell not json"), None);
    assert_eq!(directive("no directive"), None);
}

async fn post(mock: &MockUpstream, path: &str, body: Value) -> (u16, String, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("{}{path}", mock.url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, bytes)
}

/// The `data:` payloads of an event stream, as JSON.
fn events(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[tokio::test]
async fn anthropic_messages_think_call_a_tool_then_answer_with_its_result() {
    let mock = MockUpstream::start().await.unwrap();
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let first = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": tools,
        "messages": [{"role": "user", "content": "weather?"}]});
    let (status, content_type, bytes) = post(&mock, "/v1/messages", first).await;
    assert_eq!((status, content_type.as_str()), (200, "text/event-stream"));
    let types: Vec<String> = events(&bytes)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types.first().unwrap(), "message_start");
    assert_eq!(types.last().unwrap(), "message_stop");
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(MOCK_SIGNATURE), "{text}");
    assert!(text.contains(r#""type":"tool_use""#), "{text}");
    assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");

    let second = json!({"model": "claude-x", "max_tokens": 100, "tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_1", "content": "12 degrees"}]}
    ]});
    let (status, _, bytes) = post(&mock, "/v1/messages", second.clone()).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        answer["content"][0]["text"],
        format!("{TOOL_SAID}12 degrees")
    );
    assert_eq!(answer["stop_reason"], "end_turn");

    let (_, _, bytes) = post(&mock, "/v1/messages/count_tokens", second.clone()).await;
    let count: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        count["input_tokens"],
        super::token_estimate(second.to_string().len())
    );
}

#[tokio::test]
async fn responses_stream_numbers_its_events_and_calls_a_declared_function() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"model": "gpt-5", "stream": true, "reasoning": {"effort": "low", "summary": "auto"},
        "tools": [{"type": "function", "name": "shell", "parameters": {}}],
        "input": [{"role": "user", "content": [{"type": "input_text",
            "text": "run it\nmock-call: shell {\"command\": [\"ls\"]}"}]}]});
    let (_, _, bytes) = post(&mock, "/v1/responses", body).await;
    let events = events(&bytes);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i, "{event}");
    }
    assert_eq!(events[0]["type"], "response.created");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.completed");
    let output = done["response"]["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[1]["name"], "shell");
    assert_eq!(output[1]["arguments"], r#"{"command":["ls"]}"#);

    let body = json!({"model": "gpt-5", "tools": [{"type": "function", "name": "shell"}],
        "input": [{"role": "user", "content": "run it"},
            {"type": "function_call", "call_id": "call_mock_1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_mock_1", "output": "file.txt"}]});
    let (_, _, bytes) = post(&mock, "/v1/responses", body).await;
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        format!("{TOOL_SAID}file.txt")
    );
}

#[tokio::test]
async fn gemini_streams_with_usage_and_errors_in_googles_envelope() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (status, content_type, bytes) = post(
        &mock,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        body.clone(),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "text/event-stream"));
    let events = events(&bytes);
    let text: String = events
        .iter()
        .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, crate::mock::antigravity_text(3));
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["promptTokenCount"].as_u64().unwrap() > 0);

    let (status, _, bytes) = post(
        &mock,
        "/v1beta/models/gemini-mock-status-429:generateContent",
        body,
    )
    .await;
    assert_eq!(status, 429);
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");
}

#[tokio::test]
async fn the_record_is_served_over_http_and_cleared() {
    let mock = MockUpstream::start().await.unwrap();
    post(
        &mock,
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    )
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |method: Method| {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}/_mock/requests", mock.url()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };
    let bytes = get(Method::GET)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let record: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(record[0]["uri"], "/v1/chat/completions");
    assert_eq!(record[0]["body"]["model"], "m");
    get(Method::DELETE).await.unwrap();
    assert!(mock.recorded().is_empty());
    assert_eq!(mock.requests(), 1, "control requests are not counted");
}
