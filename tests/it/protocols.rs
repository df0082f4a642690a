//! Every dialect through the relay: streams of other protocols, pass-through of any endpoint and
//! content type, query strings, and failover before the first byte.

use bytes::Bytes;
use http::Method;
use serde_json::json;
use test_support::{Behaviour, MockUpstream};

use crate::harness::{Gateway, send};

/// Two `openai` backends, `primary` first, both serving every model, and Anthropic Messages
/// and Responses themselves (as copilot-api style upstreams do): those pass through.
fn two_backends(primary: &MockUpstream, secondary: &MockUpstream) -> String {
    format!(
        "[backends.primary]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-primary\"\npriority = 1\nmax_retries = 0\nnative_messages = true\nnative_responses = true\n\
         [backends.secondary]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-secondary\"\npriority = 2\nnative_messages = true\nnative_responses = true\n",
        primary.url(),
        secondary.url()
    )
}

fn literal(content_type: &str, body: &[u8]) -> Behaviour {
    Behaviour {
        content_type: Some(content_type.to_owned()),
        body: Some(Bytes::copy_from_slice(body)),
        ..Behaviour::default()
    }
}

const MESSAGES_STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"let me see\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello 世界\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

const RESPONSES_STREAM: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n\
event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n\
event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n\
event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\"}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi from Codex's upstream\"}\n\n\
event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"Hi from Codex's upstream\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":6,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[]}}\n\n";

#[tokio::test]
async fn a_streamed_messages_request_passes_byte_for_byte_with_its_query_and_headers() {
    let upstream = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    upstream.push(literal("text/event-stream", MESSAGES_STREAM.as_bytes()));
    let gateway = Gateway::start(&two_backends(&upstream, &secondary)).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64000, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages?beta=true"),
        &[
            ("content-type", "application/json"),
            ("x-api-key", "client-key"),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "interleaved-thinking-2025-05-14,context-management-2025-06-27",
            ),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), "text/event-stream");
    assert_eq!(answer.body, MESSAGES_STREAM.as_bytes());
    assert_eq!(answer.header("x-gateway-attempts"), "primary:200");
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/messages?beta=true");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    );
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "the client's key is never forwarded"
    );
    assert_eq!(seen.headers["authorization"], "Bearer sk-primary");
    assert_eq!(
        seen.body,
        body.to_string().as_bytes(),
        "the request bytes are unchanged"
    );
    assert_eq!(secondary.requests(), 0);
}

#[tokio::test]
async fn a_streamed_responses_request_passes_byte_for_byte() {
    let upstream = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    upstream.push(literal(
        "text/event-stream; charset=utf-8",
        RESPONSES_STREAM.as_bytes(),
    ));
    let gateway = Gateway::start(&two_backends(&upstream, &secondary)).await;
    let body = json!({"model": "gpt-5-codex", "stream": true, "store": false, "input": "hi"});
    let answer = send(
        Method::POST,
        &gateway.url("/v1/responses?api-version=2025-04-01-preview"),
        &[
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, RESPONSES_STREAM.as_bytes());
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/responses?api-version=2025-04-01-preview");
}

#[tokio::test]
async fn unknown_named_event_streams_and_legacy_completions_pass_byte_for_byte() {
    let upstream = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&two_backends(&upstream, &secondary)).await;

    let custom = "event: progress\nid: 1\ndata: {\"step\":1}\n\n: comment\n\nevent: progress\ndata: not json at all\n\nevent: end\ndata: bye\n\n";
    upstream.push(literal("text/event-stream", custom.as_bytes()));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/agents/run"),
        &[("content-type", "application/json")],
        json!({"model": "any-model", "stream": true}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, custom.as_bytes());

    let legacy = "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"once upon\",\"index\":0,\"finish_reason\":null}]}\n\n\
data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"text\":\" a time\",\"index\":0,\"finish_reason\":\"length\"}]}\n\n\
data: [DONE]\n\n";
    upstream.push(literal("text/event-stream", legacy.as_bytes()));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/completions"),
        &[("content-type", "application/json")],
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "tell", "stream": true}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, legacy.as_bytes());
}

#[tokio::test]
async fn a_binary_answer_passes_with_its_content_type() {
    let upstream = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    let audio: Vec<u8> = (0u8..=255).cycle().take(64 * 1024).collect();
    upstream.push(literal("audio/mpeg", &audio));
    let gateway = Gateway::start(&two_backends(&upstream, &secondary)).await;
    let answer = send(
        Method::POST,
        &gateway.url("/v1/audio/speech"),
        &[("content-type", "application/json")],
        json!({"model": "tts-1", "input": "hello", "voice": "alloy"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), "audio/mpeg");
    assert_eq!(answer.body, audio);
}

#[tokio::test]
async fn a_pass_through_failure_before_the_first_byte_fails_over() {
    let primary = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&two_backends(&primary, &secondary)).await;
    let request = json!({"model": "claude-sonnet-4-5", "stream": true, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    let headers = [("content-type", "application/json")];

    // Reset before the answer, then a 503: both served by the next hop.
    for behaviour in [
        Behaviour {
            reset_before_headers: true,
            ..Behaviour::default()
        },
        Behaviour {
            status: 503,
            ..Behaviour::default()
        },
    ] {
        primary.push(behaviour);
        secondary.push(literal("text/event-stream", MESSAGES_STREAM.as_bytes()));
        let answer = send(
            Method::POST,
            &gateway.url("/v1/messages"),
            &headers,
            request.clone(),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.body, MESSAGES_STREAM.as_bytes());
        assert!(
            answer
                .header("x-gateway-attempts")
                .ends_with(",secondary:200"),
            "{}",
            answer.header("x-gateway-attempts")
        );
    }

    // An error event before any content: the client never sees it.
    let overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    primary.push(literal("text/event-stream", overloaded.as_bytes()));
    secondary.push(literal("text/event-stream", MESSAGES_STREAM.as_bytes()));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &headers,
        request.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, MESSAGES_STREAM.as_bytes());
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:529,secondary:200"
    );

    // A binary pass-through whose upstream fails before its first byte.
    primary.push(Behaviour {
        status: 502,
        ..Behaviour::default()
    });
    secondary.push(literal("audio/mpeg", b"ID3\x04\x00audio"));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/audio/speech"),
        &headers,
        json!({"model": "tts-1", "input": "x"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.as_ref(), b"ID3\x04\x00audio");
}

#[tokio::test]
async fn errors_are_written_in_the_clients_protocol() {
    let primary = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[backends.primary]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nmodels = [\"claude-*\"]\nmax_retries = 0\nnative_messages = true\n",
        primary.url()
    ))
    .await;
    let headers = [("content-type", "application/json")];
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &headers,
        json!({"model": "no-such-model", "max_tokens": 5, "messages": []}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 404);
    let body = answer.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &headers,
        "{not json",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["type"], "invalid_request_error");
    // An upstream's own Anthropic error passes as written.
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    primary.push(Behaviour {
        status: 529,
        body: Some(Bytes::from_static(overloaded.as_bytes())),
        ..Behaviour::default()
    });
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &headers,
        json!({"model": "claude-x", "max_tokens": 5, "messages": []}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 529);
    assert_eq!(
        answer.json(),
        serde_json::from_str::<serde_json::Value>(overloaded).unwrap()
    );
    // An empty model is refused, not forwarded.
    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &headers,
        json!({"model": "", "messages": []}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["param"], "model");
    assert_eq!(primary.requests(), 1);
    // Clients probe the root.
    let answer = send(Method::HEAD, &gateway.url("/"), &[], Bytes::new()).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn an_anthropic_backend_gets_its_key_as_x_api_key_and_the_stream_unchanged() {
    let kiro = MockUpstream::start().await.unwrap();
    let bearer = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[backends.kiro]\nkind = \"anthropic\"\nbase_url = \"{}/v1\"\napi_key = \"sk-ant-kiro\"\nmodels = [\"claude-*\"]\n\
         [backends.anyrouter]\nkind = \"anthropic\"\nbase_url = \"{}/v1\"\napi_key = \"sk-any\"\nauth = \"bearer\"\nmodels = [\"glm-*\"]\n",
        kiro.url(),
        bearer.url()
    ))
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    kiro.push(literal("text/event-stream", MESSAGES_STREAM.as_bytes()));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages?beta=true"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer client-token"),
            ("anthropic-version", "2023-06-01"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, MESSAGES_STREAM.as_bytes());
    assert_eq!(answer.header("x-gateway-backend"), "kiro");
    let seen = kiro.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/messages?beta=true");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-kiro");
    assert!(
        seen.headers.get("authorization").is_none(),
        "the client's token is never forwarded"
    );
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");

    // count_tokens passes through as JSON.
    kiro.push(literal("application/json", br#"{"input_tokens":12}"#));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages/count_tokens"),
        &[("content-type", "application/json")],
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]})
            .to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["input_tokens"], 12);
    assert_eq!(
        kiro.recorded().pop().unwrap().uri,
        "/v1/messages/count_tokens"
    );

    // `auth = "bearer"` sends the key as a Bearer token instead.
    bearer.push(literal("application/json", br#"{"id":"msg_2","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"#));
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[("content-type", "application/json"), ("x-api-key", "client-key")],
        json!({"model": "glm-4.6", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["content"][0]["text"], "hi");
    let seen = bearer.recorded().pop().unwrap();
    assert_eq!(seen.headers["authorization"], "Bearer sk-any");
    assert!(seen.headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn each_protocols_clients_authenticate_their_own_way() {
    let upstream = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&format!(
        "[server]\napi_keys = [\"gw-key\"]\n[backends.primary]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nnative_messages = true\n",
        upstream.url()
    ))
    .await;
    let chat =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let json = ("content-type", "application/json");
    for (headers, query) in [
        (vec![json, ("authorization", "Bearer gw-key")], ""),
        (vec![json, ("x-api-key", "gw-key")], ""),
        (vec![json, ("x-goog-api-key", "gw-key")], ""),
        (vec![json], "?key=gw-key"),
    ] {
        let url = gateway.url(&format!("/v1/chat/completions{query}"));
        let answer = send(Method::POST, &url, &headers, chat.clone()).await;
        assert_eq!(answer.status, 200, "{headers:?} {query}: {}", answer.text());
    }
    let seen = upstream.recorded();
    assert!(
        seen.iter()
            .all(|r| r.uri.query().is_none() && r.headers.get("x-goog-api-key").is_none()),
        "the client's key never reaches the upstream"
    );
    // A wrong key, in the envelope of the protocol the path belongs to.
    let answer = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[json, ("x-api-key", "wrong")],
        json!({"model": "claude-x", "max_tokens": 5, "messages": []}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["type"], "error");
    assert_eq!(answer.json()["error"]["type"], "authentication_error");
    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions?key=wrong"),
        &[json],
        chat,
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"]["code"], "invalid_api_key");
}
