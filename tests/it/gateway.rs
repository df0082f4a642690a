//! The gateway end to end: `gateway::serve` on 127.0.0.1:0 with mock upstreams.

use std::time::Duration;

use antigravity_service::{AccountFile, AccountStore};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{Behaviour, MockUpstream, mock};

use crate::harness::{Gateway, events, get, post, send};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

fn openai_backend(name: &str, upstream: &MockUpstream, extra: &str) -> String {
    format!(
        "[backends.{name}]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n{extra}\n",
        upstream.url()
    )
}

/// An account directory with one usable account.
pub(crate) fn accounts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = AccountFile::from_json(
        br#"{"client_id":"cid","client_secret":"cs","refresh_token":"r","access_token":"ya29.gw",
            "expiry":"2999-01-01T00:00:00Z","project_id":"gw-project","email":"gw@example.com"}"#,
    )
    .unwrap();
    AccountStore::new(dir.path()).add(file).unwrap();
    dir
}

pub(crate) fn antigravity_section(dir: &std::path::Path, upstream: &MockUpstream) -> String {
    format!(
        "[antigravity]\ncredentials_dir = \"{}\"\nbase_urls = [\"{}\"]\n",
        dir.display(),
        upstream.url()
    )
}

#[tokio::test]
async fn chat_json_and_sse_through_an_openai_backend() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = openai_backend(
        "copilot",
        &upstream,
        "api_key = \"sk-backend\"\nmodels = [\"gpt-*\"]",
    );
    let gateway = Gateway::start(&config).await;

    let answer = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer client-key"),
            ("x-request-id", "r-1"),
        ],
        chat("gpt-4o", false).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "Hello from the mock 世界"
    );
    assert_eq!(answer.header("x-gateway-backend"), "copilot");
    assert_eq!(answer.header("x-gateway-model"), "gpt-4o");
    assert_eq!(answer.header("x-gateway-attempts"), "copilot:200");
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(
        seen.headers["authorization"], "Bearer sk-backend",
        "the client's key never reaches the upstream"
    );
    assert_eq!(seen.headers["x-request-id"], "r-1");
    assert_eq!(seen.json()["model"], "gpt-4o");

    let answer = post(&gateway.url("/v1/chat/completions"), &chat("gpt-4o", true)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "text/event-stream");
    assert_eq!(
        answer.body,
        mock::stream_bytes("gpt-4o", 3),
        "the stream passes through byte for byte"
    );
}

#[tokio::test]
async fn chat_json_and_sse_through_the_in_process_antigravity_backend() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let config = format!(
        "{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n",
        antigravity_section(dir.path(), &upstream)
    );
    let gateway = Gateway::start(&config).await;

    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gemini-3-pro");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        mock::antigravity_text(3)
    );
    assert_eq!(answer.header("x-gateway-backend"), "antigravity");
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(
        seen.uri, "/v1internal:streamGenerateContent?alt=sse",
        "a direct call to the upstream: no loopback"
    );
    assert_eq!(seen.json()["project"], "gw-project");

    let answer = post(
        &gateway.url("/gateway/v1/chat/completions"),
        &chat("gemini-3-pro", true),
    )
    .await;
    assert_eq!(answer.status, 200);
    let events = events(&answer.body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let finishes = events
        .iter()
        .filter(|e| e.contains("\"finish_reason\":\"stop\""))
        .count();
    assert_eq!(finishes, 1);

    // The service itself, for another gateway's proxy_url.
    let direct = post(
        &gateway.url("/antigravity/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(direct.status, 200);
    let models = get(&gateway.url("/antigravity/v1/models")).await;
    assert_eq!(models.json()["data"][0]["id"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn the_proxy_serves_when_the_local_service_is_unavailable() {
    let other_gateway = MockUpstream::start().await.unwrap();
    let empty = tempfile::tempdir().unwrap();
    let config = format!(
        "[antigravity]\ncredentials_dir = \"{}\"\n[backends.antigravity]\nkind = \"antigravity\"\nproxy_url = \"{}/antigravity/v1\"\n",
        empty.path().display(),
        other_gateway.url()
    );
    let gateway = Gateway::start(&config).await;
    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        other_gateway.recorded().pop().unwrap().uri,
        "/antigravity/v1/chat/completions"
    );
    // Other endpoints always go through the proxy.
    let answer = post(
        &gateway.url("/v1/embeddings"),
        &json!({"model": "text-embedding-3", "input": "x"}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        other_gateway.recorded().pop().unwrap().uri,
        "/antigravity/v1/embeddings"
    );
}

#[tokio::test]
async fn routing_by_pattern_alias_and_chain_with_model_rewrite() {
    let kiro = MockUpstream::start().await.unwrap();
    let copilot = MockUpstream::start().await.unwrap();
    let config = format!(
        "{}{}\n[[routes]]\nmodels = [\"claude-sonnet-4.5*\"]\nchain = [\"kiro\", {{ backend = \"copilot\", model = \"claude-sonnet-4\" }}]\n\n[aliases]\nsonnet = \"claude-sonnet-4.5\"\n",
        openai_backend(
            "kiro",
            &kiro,
            "priority = 1\nmax_retries = 0\nmodels = [\"claude-*\"]"
        ),
        openai_backend(
            "copilot",
            &copilot,
            "priority = 2\nmodels = [\"gpt-*\", \"claude-*\"]\nmodel_map = { \"claude-3.5-sonnet\" = \"claude-sonnet-4\" }"
        ),
    );
    let gateway = Gateway::start(&config).await;

    // The first hop fails over (a 503), the second is sent the rewritten model.
    kiro.push(Behaviour {
        status: 503,
        ..Behaviour::default()
    });
    let answer = post(&gateway.url("/v1/chat/completions"), &chat("sonnet", false)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-gateway-attempts"), "kiro:503,copilot:200");
    assert_eq!(answer.header("x-gateway-model"), "claude-sonnet-4");
    assert_eq!(kiro.recorded()[0].json()["model"], "claude-sonnet-4.5");
    assert_eq!(copilot.recorded()[0].json()["model"], "claude-sonnet-4");

    // A pattern without a route: by priority, with the backend's model map.
    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &chat("claude-3.5-sonnet", false),
    )
    .await;
    assert_eq!(answer.header("x-gateway-backend"), "kiro");
    kiro.push(Behaviour {
        status: 429,
        ..Behaviour::default()
    });
    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &chat("claude-3.5-sonnet", false),
    )
    .await;
    assert_eq!(answer.header("x-gateway-attempts"), "kiro:429,copilot:200");
    assert_eq!(
        copilot.recorded().last().unwrap().json()["model"],
        "claude-sonnet-4"
    );

    let answer = post(&gateway.url("/v1/chat/completions"), &chat("gpt-4o", false)).await;
    assert_eq!(answer.header("x-gateway-backend"), "copilot");
    assert_eq!((kiro.requests(), copilot.requests()), (3, 3));

    // A client error does not walk the chain.
    kiro.push(Behaviour {
        status: 400,
        ..Behaviour::default()
    });
    let answer = post(&gateway.url("/v1/chat/completions"), &chat("sonnet", false)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("x-gateway-attempts"), "kiro:400");
    assert_eq!(copilot.requests(), 3);
}

#[tokio::test]
async fn the_model_list_survives_a_backend_that_is_down() {
    let up = MockUpstream::start().await.unwrap();
    let down = MockUpstream::start().await.unwrap();
    let down_url = down.url();
    drop(down);
    let config = format!(
        "{}[backends.down]\nkind = \"openai\"\nbase_url = \"{down_url}/v1\"\n[aliases]\nfast = \"mock-model\"\n",
        openai_backend("up", &up, "")
    );
    let gateway = Gateway::start(&config).await;
    let answer = get(&gateway.url("/v1/models")).await;
    assert_eq!(answer.status, 200);
    let ids: Vec<String> = answer.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["fast", "mock-model", "mock-model-2"]);
    // Cached briefly.
    get(&gateway.url("/models")).await;
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn bad_requests_get_openai_envelopes() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[server]\napi_keys = [\"gw-key\"]\nmax_body = \"1KiB\"\n{}",
        openai_backend("copilot", &upstream, "models = [\"gpt-*\"]")
    );
    let gateway = Gateway::start(&config).await;
    let url = gateway.url("/v1/chat/completions");
    let key = ("authorization", "Bearer gw-key");
    let json = ("content-type", "application/json");

    type Case<'a> = (Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![json],
            chat("gpt-4o", false).to_string(),
            401,
            "authentication_error",
        ),
        (
            vec![json, ("authorization", "Bearer wrong")],
            chat("gpt-4o", false).to_string(),
            401,
            "authentication_error",
        ),
        (
            vec![json, key],
            chat("llama-3", false).to_string(),
            404,
            "invalid_request_error",
        ),
        (
            vec![json, key],
            "{\"model\": \"gpt-4o\", \"messages\": [".into(),
            400,
            "invalid_request_error",
        ),
        (
            vec![json, key],
            "{\"model\": 4, \"messages\": []}".into(),
            400,
            "invalid_request_error",
        ),
        (
            vec![json, key],
            "{\"messages\": []}".into(),
            400,
            "invalid_request_error",
        ),
        (
            vec![json, key],
            format!(
                "{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
                "x".repeat(2000)
            ),
            413,
            "invalid_request_error",
        ),
    ];
    for (headers, body, status, ty) in cases {
        let answer = send(Method::POST, &url, &headers, body.clone()).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{body:.80}: {}",
            answer.text()
        );
        assert_eq!(answer.envelope()["error"]["type"], ty);
    }
    let missing = send(Method::POST, &url, &[json, key], "{\"messages\": []}").await;
    assert!(
        missing.envelope()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model")
    );
    let not_found = send(
        Method::POST,
        &url,
        &[json, key],
        chat("llama-3", false).to_string(),
    )
    .await;
    assert_eq!(not_found.envelope()["error"]["code"], "model_not_found");
    // x-api-key works as well as Bearer.
    let ok = send(
        Method::POST,
        &url,
        &[json, ("x-api-key", "gw-key")],
        chat("gpt-4o", false).to_string(),
    )
    .await;
    assert_eq!(ok.status, 200);
    // Health is public; unknown paths are 404 envelopes.
    assert_eq!(
        get(&gateway.url("/health")).await.json(),
        json!({"status": "ok"})
    );
    let unknown = send(Method::GET, &gateway.url("/nope"), &[key], "").await;
    assert_eq!(unknown.status, 404);
    unknown.envelope();
    assert_eq!(
        upstream.requests(),
        1,
        "only the authorised, valid request went upstream"
    );
}

#[tokio::test]
async fn a_loop_back_to_this_gateway_is_stopped() {
    // The backend is the gateway itself.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = gateway::Config::parse(
        &format!("[server]\nlisten = \"{addr}\"\n[backends.me]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n"),
        "test.toml",
        &|_| None,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let answer = post(
        &format!("http://{addr}/v1/chat/completions"),
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(answer.status, 508, "{}", answer.text());
    assert!(answer.header("x-gateway-attempts").matches("me:").count() >= 1);
    task.abort();
}

#[tokio::test]
async fn the_embedded_default_starts_without_accounts_and_says_how_to_add_one() {
    let empty = tempfile::tempdir().unwrap();
    let default = gateway::config::EMBEDDED_DEFAULT;
    let toml = default.replace(
        "credentials_dir = \"data/antigravity\"",
        &format!("credentials_dir = {:?}", empty.path().display().to_string()),
    );
    assert_ne!(
        toml, default,
        "the embedded default names its credentials directory"
    );
    let gateway = Gateway::start(&toml).await;
    assert_eq!(get(&gateway.url("/health")).await.status, 200);
    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(answer.status, 503);
    let message = answer.envelope()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("gateway login antigravity"), "{message}");
}

#[tokio::test]
async fn admin_views_show_state_without_secrets() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let config = format!(
        "{}{}[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n",
        antigravity_section(dir.path(), &upstream),
        openai_backend(
            "copilot",
            &upstream,
            "api_key = \"sk-very-secret\"\nmodels = [\"gpt-*\"]"
        ),
    );
    let gateway = Gateway::start(&config).await;
    post(&gateway.url("/v1/chat/completions"), &chat("gpt-4o", false)).await;
    let backends = get(&gateway.url("/admin/backends")).await;
    assert_eq!(backends.status, 200);
    let text = backends.text();
    assert!(!text.contains("sk-very-secret"), "{text}");
    let copilot = backends.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "copilot")
        .cloned()
        .unwrap();
    assert_eq!(copilot["requests"], 1);
    let accounts = get(&gateway.url("/admin/accounts")).await;
    assert!(!accounts.text().contains("ya29"), "{}", accounts.text());
    assert_eq!(accounts.json()["data"][0]["id"], "gw@example.com");
}

/// A gateway with `shutdown_grace`, and a stream of `chunks` chunks `interval_ms` apart running
/// through it (started, and seen by the upstream).
async fn stream_through_gateway(
    grace: &str,
    chunks: u32,
    interval_ms: u32,
) -> (
    MockUpstream,
    Gateway,
    tokio::task::JoinHandle<crate::harness::Answer>,
) {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[server]\nshutdown_grace = \"{grace}\"\n{}",
        openai_backend("copilot", &upstream, "forward_headers = [\"x-mock-*\"]")
    );
    let gateway = Gateway::start(&config).await;
    let url = gateway.url("/v1/chat/completions");
    let (chunks, interval) = (chunks.to_string(), interval_ms.to_string());
    let stream = tokio::spawn(async move {
        send(
            Method::POST,
            &url,
            &[
                ("content-type", "application/json"),
                ("x-mock-chunks", &chunks),
                ("x-mock-interval-ms", &interval),
            ],
            chat("gpt-4o", true).to_string(),
        )
        .await
    });
    assert!(
        upstream
            .wait_until(Duration::from_secs(5), |m| m.requests() == 1)
            .await
    );
    (upstream, gateway, stream)
}

#[tokio::test]
async fn graceful_shutdown_finishes_streams_and_refuses_new_connections() {
    let (_upstream, mut gateway, stream) = stream_through_gateway("30s", 20, 20).await;
    gateway.shutdown();
    // New connections are refused once the listener is gone.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(gateway.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "the gateway still accepts connections after shutdown began"
    );
    let answer = stream.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        mock::stream_bytes("gpt-4o", 20),
        "the in-flight stream finished"
    );
    let finished = gateway.task.take().unwrap().await.unwrap();
    assert!(finished.is_ok());
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[server]\nmax_header_bytes = \"16KiB\"\nmax_headers = 20\n{}",
        openai_backend("copilot", &upstream, "")
    );
    let gateway = Gateway::start(&config).await;
    let big = "x".repeat(40 * 1024);
    let answer = send(Method::GET, &gateway.url("/health"), &[("x-big", &big)], "").await;
    assert_eq!(answer.status, 431);
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let answer = send(Method::GET, &gateway.url("/health"), &many, "").await;
    assert_eq!(answer.status, 431);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = Gateway::start("[server]\nheader_read_timeout = \"2s\"\n").await;
    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    let upstream = MockUpstream::start().await.unwrap();
    let gateway = Gateway::start(&openai_backend("copilot", &upstream, "")).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            chat("gpt-4o", true).to_string(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, mock::stream_bytes("gpt-4o", 3));
}

#[tokio::test]
async fn the_proxy_serves_while_every_local_account_cools_down() {
    let upstream = MockUpstream::start().await.unwrap();
    let other_gateway = MockUpstream::start().await.unwrap();
    let dir = accounts();
    let config = format!(
        "{}[backends.antigravity]\nkind = \"antigravity\"\nproxy_url = \"{}/antigravity/v1\"\nmodels = [\"gemini-*\"]\n",
        antigravity_section(dir.path(), &upstream),
        other_gateway.url()
    );
    let gateway = Gateway::start(&config).await;
    // The only account hits a long quota limit: it cools down for this model.
    upstream.push(Behaviour {
        status: 429,
        body: Some(bytes::Bytes::from_static(
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"600s"}]}}"#,
        )),
        ..Behaviour::default()
    });
    let first = post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        other_gateway.requests(),
        1,
        "the cooling account sent the call to proxy_url"
    );
    // While it cools, calls go straight to the proxy, without asking the upstream.
    let second = post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!((upstream.requests(), other_gateway.requests()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn streams_still_running_after_the_grace_period_end_with_an_error_event() {
    let (upstream, mut gateway, stream) = stream_through_gateway("2s", 1000, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.shutdown();
    let shutdown_at = tokio::time::Instant::now();
    let answer = stream.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    let events = events(&answer.body);
    assert!(events.len() > 5, "content flowed during the grace period");
    assert!(
        shutdown_at.elapsed() < Duration::from_secs(4),
        "{:?}",
        shutdown_at.elapsed()
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{last}"
    );
    assert!(gateway.task.take().unwrap().await.unwrap().is_ok());
    assert!(
        upstream
            .wait_until(Duration::from_secs(1), |m| m.aborts() == 1)
            .await,
        "the upstream stream was cancelled"
    );
}
