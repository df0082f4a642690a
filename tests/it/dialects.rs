//! Every client protocol served by every kind of backend, through the conversation: Anthropic
//! Messages, OpenAI Responses and Gemini clients on the in-process Antigravity backend and on
//! converted HTTP upstreams, OpenAI Chat clients on an Anthropic upstream, token counts, and
//! failover across protocols.

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use test_support::{Behaviour, MockUpstream, mock};

use gateway_core::{
    anthropic,
    conversation::{Collector, Event, Response},
    gemini, openai, responses, sse,
};

use crate::{
    gateway::{accounts, antigravity_section},
    harness::{Answer, Gateway, send},
};

const JSON: (&str, &str) = ("content-type", "application/json");

fn sse_events(body: &[u8]) -> Vec<sse::Event> {
    let mut decoder = sse::Decoder::default();
    decoder.feed(body);
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        out.push(event);
    }
    if let Some(event) = decoder.finish().unwrap() {
        out.push(event);
    }
    out
}

/// Fold events into one response, failing on any event that does not fit.
fn collect(events: Vec<Event>) -> Response {
    let mut collector = Collector::new(0);
    for event in events {
        collector.push(event).unwrap();
    }
    collector.finish()
}

fn text_of(response: &Response) -> String {
    response.parts.iter().filter_map(|p| p.as_text()).collect()
}

/// An Anthropic stream as a client decodes it.
fn anthropic_stream(answer: &Answer) -> (Vec<String>, Response) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .header("content-type")
            .starts_with("text/event-stream")
    );
    let raw = sse_events(&answer.body);
    let names = raw
        .iter()
        .map(|e| e.event.clone().unwrap_or_default())
        .collect();
    let mut decoder = anthropic::StreamDecoder::new();
    let mut events = Vec::new();
    for event in &raw {
        events.extend(decoder.push(event).unwrap());
    }
    events.extend(decoder.finish().unwrap());
    (names, collect(events))
}

fn responses_stream(answer: &Answer) -> (Vec<String>, Response) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    let raw = sse_events(&answer.body);
    let names = raw
        .iter()
        .map(|e| e.event.clone().unwrap_or_default())
        .collect();
    let mut decoder = responses::StreamDecoder::new();
    let mut events = Vec::new();
    for event in &raw {
        events.extend(decoder.push(event).unwrap());
    }
    events.extend(decoder.finish().unwrap());
    (names, collect(events))
}

fn gemini_chunks(chunks: Vec<Value>) -> Response {
    let mut decoder = gemini::StreamDecoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        let chunk: gemini::GenerateContentResponse = serde_json::from_value(chunk).unwrap();
        events.extend(decoder.push(&chunk).unwrap());
    }
    events.extend(decoder.finish().unwrap());
    collect(events)
}

fn messages(model: &str, stream: bool) -> String {
    json!({"model": model, "max_tokens": 1024, "stream": stream,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string()
}

fn openai_backend(upstream: &MockUpstream, extra: &str) -> String {
    format!(
        "[backends.copilot]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-copilot\"\n{extra}\n",
        upstream.url()
    )
}

#[tokio::test]
async fn anthropic_clients_on_a_chat_upstream_are_converted() {
    let upstream = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&openai_backend(&upstream, "")).await;
    let url = gateway.url("/v1/messages");

    let answer = send(Method::POST, &url, &[JSON], messages("gpt-4o", false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.header("request-id").starts_with("req_"));
    let body = answer.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock 世界");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 5);
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    let sent = seen.json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(sent["messages"][1]["content"], "hello");

    let answer = send(Method::POST, &url, &[JSON], messages("gpt-4o", true)).await;
    let (names, response) = anthropic_stream(&answer);
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let expected: String = (1..3).map(|i| format!("tok{i} 世界🌏 ")).collect();
    assert_eq!(text_of(&response), expected);
    let sent = upstream.recorded().pop().unwrap().json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn anthropic_and_responses_clients_on_the_in_process_backend() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let gateway = Gateway::start(&format!(
        "{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\", \"claude-*\"]\n",
        antigravity_section(dir.path(), &upstream)
    ))
    .await;
    let text = mock::antigravity_text(3);

    // Anthropic Messages, streamed and not.
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[JSON],
        messages("claude-sonnet-4-5", true),
    )
    .await;
    let (names, response) = anthropic_stream(&answer);
    assert!(
        names.contains(&"content_block_delta".to_owned()),
        "{names:?}"
    );
    assert_eq!(text_of(&response), text);
    assert_eq!(answer.header("x-gateway-backend"), "antigravity");
    let sent = upstream.recorded().pop().unwrap().json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(
        sent["request"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[JSON],
        messages("claude-sonnet-4-5", false),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["content"][0]["text"], text);
    assert_eq!(answer.json()["usage"]["output_tokens"], 7);

    // Responses, streamed and not.
    let request = json!({"model": "gemini-2.5-pro", "stream": true, "store": false,
        "instructions": "be brief", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]});
    let answer = send(
        Method::POST,
        &gateway.url("/v1/responses"),
        &[JSON],
        request.to_string(),
    )
    .await;
    let (names, response) = responses_stream(&answer);
    assert_eq!(names.first().map(String::as_str), Some("response.created"));
    assert_eq!(names.last().map(String::as_str), Some("response.completed"));
    assert_eq!(text_of(&response), text);
    let mut request = request;
    request["stream"] = json!(false);
    let answer = send(
        Method::POST,
        &gateway.url("/v1/responses"),
        &[JSON],
        request.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["content"][0]["text"], text);
}

#[tokio::test]
async fn gemini_clients_on_the_in_process_backend_in_every_stream_form() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let gateway = Gateway::start(&format!(
        "[server]\napi_keys = [\"gw-key\"]\n{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n",
        antigravity_section(dir.path(), &upstream)
    ))
    .await;
    let text = mock::antigravity_text(3);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 0, "thinkingConfig": {"includeThoughts": true}}})
    .to_string();
    let key = ("x-goog-api-key", "gw-key");

    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
        &[JSON, key],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), "text/event-stream");
    let chunks = sse_events(&answer.body)
        .into_iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .collect();
    assert_eq!(text_of(&gemini_chunks(chunks)), text);
    let sent = upstream.recorded().pop().unwrap().json();
    assert_eq!(sent["model"], "gemini-2.5-pro");
    assert_eq!(
        sent["request"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );

    // Without alt=sse: one JSON array, streamed.
    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=gw-key"),
        &[JSON],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), "application/json");
    let chunks: Vec<Value> = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(text_of(&gemini_chunks(chunks)), text);

    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:generateContent"),
        &[JSON, key],
        body,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    assert_eq!(json["candidates"][0]["content"]["parts"][0]["text"], text);
    assert_eq!(json["candidates"][0]["finishReason"], "STOP");

    // The model list in Gemini's form, and errors in Google's envelope.
    let answer = send(
        Method::GET,
        &gateway.url("/v1beta/models"),
        &[key],
        Bytes::new(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let models = answer.json();
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "models/gemini-3-pro-high"),
        "{models}"
    );
    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gpt-4o:generateContent"),
        &[JSON, key],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["status"], "NOT_FOUND");
    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:generateContent"),
        &[JSON, key],
        json!({"contents": [], "cachedContent": "cachedContents/abc"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");
}

const ANTHROPIC_ANSWER: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"let me see\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello 世界\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[tokio::test]
async fn chat_clients_on_an_anthropic_upstream_are_converted_both_ways() {
    let kiro = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[backends.kiro]\nkind = \"anthropic\"\nbase_url = \"{}/v1\"\napi_key = \"sk-ant\"\n",
        kiro.url()
    ))
    .await;
    kiro.push(Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(Bytes::from_static(ANTHROPIC_ANSWER.as_bytes())),
        ..Behaviour::default()
    });
    let chat = json!({"model": "claude-sonnet-4-5", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]});
    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[JSON],
        chat.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut decoder = openai::ChunkDecoder::new();
    let mut events = Vec::new();
    for event in sse_events(&answer.body) {
        if event.is_done() {
            continue;
        }
        events.extend(decoder.push(serde_json::from_str(&event.data).unwrap()));
    }
    events.extend(decoder.finish().unwrap());
    let response = collect(events);
    assert_eq!(text_of(&response), "Hello 世界");
    assert!(
        answer
            .text()
            .contains(r#""reasoning_content":"let me see""#),
        "{}",
        answer.text()
    );
    assert!(answer.text().ends_with("data: [DONE]\n\n"));
    let usage = response.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (12, 9));
    let seen = kiro.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant");
    let sent = seen.json();
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["messages"][0]["content"], "hello");
    assert_eq!(sent["max_tokens"], 8192, "anthropic needs an output limit");

    // Not streamed: the Anthropic answer as a chat completion.
    kiro.push(Behaviour {
        body: Some(Bytes::from_static(br#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}"#)),
        ..Behaviour::default()
    });
    let mut chat = chat;
    chat["stream"] = json!(false);
    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[JSON],
        chat.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "hi there"
    );
    assert_eq!(answer.json()["usage"]["total_tokens"], 5);
}

#[tokio::test]
async fn a_chain_fails_over_across_protocols_before_the_first_byte() {
    let kiro = MockUpstream::start().await.unwrap();
    let copilot = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[backends.kiro]\nkind = \"anthropic\"\nbase_url = \"{}/v1\"\nmax_retries = 0\n\
         [backends.copilot]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\
         [[routes]]\nmodels = [\"claude-*\"]\nchain = [\"kiro\", {{ backend = \"copilot\", model = \"gpt-4o\" }}]\n",
        kiro.url(),
        copilot.url()
    ))
    .await;
    kiro.push(Behaviour {
        status: 529,
        body: Some(Bytes::from_static(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[JSON],
        messages("claude-sonnet-4-5", true),
    )
    .await;
    let (names, response) = anthropic_stream(&answer);
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(
        text_of(&response).starts_with("tok1"),
        "{}",
        text_of(&response)
    );
    assert_eq!(answer.header("x-gateway-attempts"), "kiro:529,copilot:200");
    assert_eq!(copilot.recorded().pop().unwrap().json()["model"], "gpt-4o");
}

#[tokio::test]
async fn token_counts_come_from_the_upstream_or_a_tokenizer() {
    let kiro = MockUpstream::start().await.unwrap();
    let copilot = MockUpstream::start().await.unwrap();
    let cloud = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let gateway = Gateway::start(&format!(
        "{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n\
         [backends.kiro]\nkind = \"anthropic\"\nbase_url = \"{}/v1\"\nmodels = [\"claude-*\"]\n\
         [backends.copilot]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nmodels = [\"gpt-*\"]\n",
        antigravity_section(dir.path(), &cloud),
        kiro.url(),
        copilot.url()
    ))
    .await;
    let count = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "hello world, how are you today?"}]}).to_string()
    };
    // An Anthropic upstream counts itself.
    kiro.push(Behaviour {
        body: Some(Bytes::from_static(br#"{"input_tokens":77}"#)),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages/count_tokens?beta=true"),
        &[JSON],
        count("claude-sonnet-4-5"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["input_tokens"], 77);
    assert_eq!(
        kiro.recorded().pop().unwrap().uri,
        "/v1/messages/count_tokens?beta=true"
    );
    // Cloud Code counts for the in-process backend.
    cloud.push(Behaviour {
        body: Some(Bytes::from_static(br#"{"totalTokens":31}"#)),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages/count_tokens"),
        &[JSON],
        count("gemini-2.5-pro"),
    )
    .await;
    assert_eq!(answer.json()["input_tokens"], 31, "{}", answer.text());
    // A chat upstream cannot count: the tokenizer estimates, never a constant.
    let short = send(
        Method::POST,
        &gateway.url("/v1/messages/count_tokens"),
        &[JSON],
        count("gpt-4o"),
    )
    .await;
    assert_eq!(short.header("x-gateway-token-count"), "estimate");
    let long_body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world ".repeat(200)}]}).to_string();
    let long = send(
        Method::POST,
        &gateway.url("/v1/messages/count_tokens"),
        &[JSON],
        long_body,
    )
    .await;
    let (short, long) = (
        short.json()["input_tokens"].as_u64().unwrap(),
        long.json()["input_tokens"].as_u64().unwrap(),
    );
    assert!(short > 5 && short < 20, "{short}");
    assert!(long > 390 && long < 420, "{long}");
    assert_eq!(copilot.requests(), 0);
    // Gemini's countTokens, in Gemini's form.
    cloud.push(Behaviour {
        body: Some(Bytes::from_static(br#"{"totalTokens":12}"#)),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:countTokens"),
        &[JSON],
        json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}).to_string(),
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({"totalTokens": 12}),
        "{}",
        answer.text()
    );
}

const GEMINI_ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi from AI Studio"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":5,"totalTokenCount":9}}"#;

fn gemini_answer(status: u16) -> Behaviour {
    Behaviour {
        status,
        body: Some(Bytes::from_static(if status == 200 {
            GEMINI_ANSWER.as_bytes()
        } else {
            br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#
        })),
        ..Behaviour::default()
    }
}

#[tokio::test]
async fn gemini_backends_pass_gemini_clients_convert_others_and_rotate_keys() {
    let studio = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[server]\napi_keys = [\"gw-key\"]\n\
         [backends.studio]\nkind = \"gemini\"\nbase_url = \"{}/v1beta\"\napi_key = \"key-a\"\napi_keys = [\"key-b\"]\nmodels = [\"gemini-*\"]\n\
         [aliases]\nflash = \"gemini-2.5-flash\"\n",
        studio.url()
    ))
    .await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}).to_string();

    // A Gemini client through an alias: bytes as sent, the model rewritten in the path, the
    // client's key replaced by the backend's.
    studio.push(gemini_answer(200));
    let answer = send(
        Method::POST,
        &gateway.url("/v1beta/models/flash:generateContent?key=gw-key"),
        &[JSON],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["candidates"][0]["content"]["parts"][0]["text"],
        "Hi from AI Studio"
    );
    let seen = studio.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.headers["x-goog-api-key"], "key-a");

    // The next request takes the next key.
    studio.push(gemini_answer(200));
    let url = gateway.url("/v1beta/models/gemini-2.5-flash:generateContent");
    let answer = send(
        Method::POST,
        &url,
        &[JSON, ("x-goog-api-key", "gw-key")],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        studio.recorded().pop().unwrap().headers["x-goog-api-key"],
        "key-b"
    );

    // A rate-limited key cools down; the retry and the next requests use the other one.
    studio.push(gemini_answer(429));
    studio.push(gemini_answer(200));
    let answer = send(
        Method::POST,
        &url,
        &[JSON, ("x-goog-api-key", "gw-key")],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let keys: Vec<String> = studio
        .recorded()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.headers["x-goog-api-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        ["key-b", "key-a"],
        "newest first: the 429 was key-a, the retry key-b"
    );
    for _ in 0..2 {
        studio.push(gemini_answer(200));
        send(
            Method::POST,
            &url,
            &[JSON, ("x-goog-api-key", "gw-key")],
            body.clone(),
        )
        .await;
        assert_eq!(
            studio.recorded().pop().unwrap().headers["x-goog-api-key"],
            "key-b"
        );
    }

    // An OpenAI client is converted: the request in Gemini's shape to the model's path.
    studio.push(gemini_answer(200));
    let chat =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]});
    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[JSON, ("authorization", "Bearer gw-key")],
        chat.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Hi from AI Studio"
    );
    assert_eq!(answer.json()["usage"]["total_tokens"], 9);
    let seen = studio.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.json()["contents"][0]["parts"][0]["text"], "hello");
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn responses_are_kept_for_previous_response_id_and_can_be_read_and_deleted() {
    let upstream = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&openai_backend(&upstream, "")).await;
    let url = gateway.url("/v1/responses");
    // Streamed and kept (store defaults to true).
    let first = json!({"model": "gpt-4o", "stream": true, "input": "My name is Ada."});
    let answer = send(Method::POST, &url, &[JSON], first.to_string()).await;
    let raw = sse_events(&answer.body);
    let completed: Value = serde_json::from_str(&raw.last().unwrap().data).unwrap();
    let id = completed["response"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_"), "{id}");

    let second =
        json!({"model": "gpt-4o", "input": "What is my name?", "previous_response_id": id});
    let answer = send(Method::POST, &url, &[JSON], second.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sent = upstream.recorded().pop().unwrap().json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"], "My name is Ada.");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(
        messages[1]["content"].as_str().unwrap().contains("tok1"),
        "{sent}"
    );
    assert_eq!(messages[2]["content"], "What is my name?");
    let second_id = answer.json()["id"].as_str().unwrap().to_owned();

    let got = send(
        Method::GET,
        &gateway.url(&format!("/v1/responses/{second_id}")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["id"], second_id);
    assert_eq!(
        got.json()["output"][0]["content"][0]["text"],
        "Hello from the mock 世界"
    );
    let deleted = send(
        Method::DELETE,
        &gateway.url(&format!("/v1/responses/{second_id}")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(deleted.json()["deleted"], true);
    let gone = send(
        Method::GET,
        &gateway.url(&format!("/v1/responses/{second_id}")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(gone.status, 404);

    // store: false is not kept; an unknown id is a clear 400 that reaches no upstream.
    let before = upstream.requests();
    let unstored = json!({"model": "gpt-4o", "input": "hi", "store": false});
    let answer = send(Method::POST, &url, &[JSON], unstored.to_string()).await;
    let unstored_id = answer.json()["id"].as_str().unwrap().to_owned();
    let missing = json!({"model": "gpt-4o", "input": "hi", "previous_response_id": unstored_id});
    let answer = send(Method::POST, &url, &[JSON], missing.to_string()).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["error"]["param"], "previous_response_id");
    assert_eq!(upstream.requests(), before + 1);
}

#[tokio::test]
async fn stateless_responses_turns_restore_gemini_signatures_from_the_sealed_reasoning() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let config = |key: &str| {
        format!(
            "[server]\nseal_key = \"{key}\"\n{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n",
            antigravity_section(dir.path(), &upstream)
        )
    };
    let signed_call = "data: {\"response\":{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"id\":\"call_1\",\"name\":\"list_dir\",\"args\":{\"path\":\".\"}},\"thoughtSignature\":\"sig-real-gemini3\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":4}}}\n\n";
    let tools = json!([{"type": "function", "name": "list_dir", "description": "list a directory",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]);
    let user =
        json!({"role": "user", "content": [{"type": "input_text", "text": "what is here?"}]});

    // Turn one, on one gateway.
    let first = Gateway::start(&config("seal-one")).await;
    upstream.push(Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(Bytes::from(signed_call)),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &first.url("/v1/responses"),
        &[JSON],
        json!({"model": "gemini-3-pro", "store": false, "input": [user], "tools": tools})
            .to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let output = answer.json()["output"].as_array().unwrap().clone();
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["call_id"], "call_1");
    let sealed = output
        .iter()
        .find(|i| i["type"] == "reasoning")
        .and_then(|i| i["encrypted_content"].as_str())
        .expect("the signature travels sealed in a reasoning item")
        .to_owned();
    assert!(!sealed.contains("sig-real-gemini3"), "opaque: {sealed}");
    drop(first);

    // Turn two, as Codex sends it (store: false, the whole history), to gateways that never
    // saw turn one: only the sealed blob can bring the signature back.
    let mut input = vec![user];
    input.extend(output.clone());
    input.push(json!({"type": "function_call_output", "call_id": "call_1", "output": "README.md"}));
    let second = json!({"model": "gemini-3-pro", "store": false, "input": input, "tools": tools})
        .to_string();
    for (key, expected) in [
        ("seal-one", "sig-real-gemini3"),
        // Another gateway's blob is ignored, not an error: Gemini 3 then gets the sentinel.
        ("seal-two", "skip_thought_signature_validator"),
    ] {
        let gateway = Gateway::start(&config(key)).await;
        let answer = send(
            Method::POST,
            &gateway.url("/v1/responses"),
            &[JSON],
            second.clone(),
        )
        .await;
        assert_eq!(answer.status, 200, "{key}: {}", answer.text());
        let sent = upstream.recorded().pop().unwrap().json();
        let parts = sent["request"]["contents"][1]["parts"].as_array().unwrap();
        let call = parts
            .iter()
            .find(|p| p.get("functionCall").is_some())
            .unwrap();
        assert_eq!(call["thoughtSignature"], expected, "{key}: {sent}");
        assert_eq!(
            sent["request"]["contents"][2]["parts"][0]["functionResponse"]["name"],
            "list_dir"
        );
    }
}
