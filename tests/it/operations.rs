//! Operating a running gateway: named keys and their limits, admin keys, usage accounting,
//! reloading the configuration, and the account operations of the admin API.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use test_support::{Behaviour, MockUpstream};

use crate::harness::{Gateway, client, get_as, post_as, send};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

fn backend(name: &str, upstream: &MockUpstream, models: &str) -> String {
    format!(
        "[backends.{name}]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nmodels = {models}\n",
        upstream.url()
    )
}

#[tokio::test]
async fn named_keys_are_limited_to_their_models_and_rates() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[[keys]]\nname = \"alice\"\nkey = \"alice-key\"\nmodels = [\"gpt-*\"]\nrpm = 2\n\
         [[keys]]\nname = \"bob\"\nkey = \"bob-key\"\ntpm = 10\n\
         [state]\nusage_db = \"\"\n{}",
        backend("up", &upstream, "[\"*\"]")
    );
    let gateway = Gateway::start(&config).await;

    // Another model is a 403 in the envelope of the protocol the client spoke.
    let refused = post_as(
        &gateway,
        "alice-key",
        "/v1/chat/completions",
        &chat("claude-sonnet-4", false),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(refused.envelope()["error"]["code"], "model_not_allowed");
    let anthropic = send(
        Method::POST,
        &gateway.url("/v1/messages"),
        &[("content-type", "application/json"), ("x-api-key", "alice-key")],
        json!({"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
    )
    .await;
    assert_eq!(anthropic.status, StatusCode::FORBIDDEN);
    assert_eq!(anthropic.json()["type"], "error", "{}", anthropic.text());
    assert_eq!(anthropic.json()["error"]["type"], "permission_error");
    let gemini = send(
        Method::POST,
        &gateway.url("/v1beta/models/gemini-2.5-pro:generateContent"),
        &[
            ("content-type", "application/json"),
            ("x-goog-api-key", "alice-key"),
        ],
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string(),
    )
    .await;
    assert_eq!(gemini.status, StatusCode::FORBIDDEN);
    assert_eq!(
        gemini.json()["error"]["status"],
        "PERMISSION_DENIED",
        "{}",
        gemini.text()
    );
    assert_eq!(
        upstream.requests(),
        0,
        "refused requests never reach an upstream"
    );

    // Two requests a minute; the refusals above did not count.
    for _ in 0..2 {
        let ok = post_as(
            &gateway,
            "alice-key",
            "/v1/chat/completions",
            &chat("gpt-4o", false),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    }
    let limited = post_as(
        &gateway,
        "alice-key",
        "/v1/chat/completions",
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "retry-after {wait}");
    assert_eq!(limited.envelope()["error"]["code"], "rate_limit_exceeded");

    // Tokens: the mock's answer costs 11, past bob's 10 a minute.
    let first = post_as(
        &gateway,
        "bob-key",
        "/v1/chat/completions",
        &chat("claude-x", false),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let second = post_as(
        &gateway,
        "bob-key",
        "/v1/chat/completions",
        &chat("claude-x", false),
    )
    .await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert!(!second.header("retry-after").is_empty());
    let message = second.envelope()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("\"bob\""), "named by name: {message}");
    assert!(!second.text().contains("bob-key"), "never by value");

    let unknown = post_as(
        &gateway,
        "nobody",
        "/v1/chat/completions",
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.requests(), 3);
}

#[tokio::test]
async fn admin_paths_and_metrics_refuse_client_keys_once_admin_keys_exist() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[server]\napi_keys = [\"plain-key\"]\nadmin_keys = [\"root-key\"]\n\
         [[keys]]\nname = \"alice\"\nkey = \"alice-key\"\n[state]\nusage_db = \"\"\n{}",
        backend("up", &upstream, "[\"gpt-*\"]")
    );
    let gateway = Gateway::start(&config).await;
    for path in [
        "/admin/backends",
        "/admin/accounts",
        "/admin/usage",
        "/metrics",
    ] {
        for key in ["plain-key", "alice-key"] {
            let answer = get_as(&gateway, key, path).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{key} on {path}: {}",
                answer.text()
            );
        }
        assert_eq!(
            get_as(&gateway, "wrong", path).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let reload = post_as(&gateway, "alice-key", "/admin/reload", &json!({})).await;
    assert_eq!(reload.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get_as(&gateway, "root-key", "/admin/backends").await.status,
        StatusCode::OK
    );
    // The admin key is not a client key.
    let as_client = post_as(
        &gateway,
        "root-key",
        "/v1/chat/completions",
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(as_client.status, StatusCode::UNAUTHORIZED);

    // Traffic, then the token counters: the model label is the configured pattern.
    for key in ["alice-key", "plain-key"] {
        let ok = post_as(
            &gateway,
            key,
            "/v1/chat/completions",
            &chat("gpt-4o-made-up-123", false),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    }
    let metrics = get_as(&gateway, "root-key", "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    let tokens: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("gateway_tokens_total"))
        .collect();
    assert!(
        tokens.iter().any(|l| l.contains("kind=\"input\"")
            && l.contains("key=\"alice\"")
            && l.contains("model=\"gpt-*\"")
            && l.contains("backend=\"up\"")
            && l.ends_with(" 5")),
        "{text}"
    );
    assert!(
        tokens.iter().any(|l| l.contains("key=\"api_keys[0]\"")),
        "{text}"
    );
    // Clients do not create token or circuit series. (The attempt and duration series take
    // their model label in chat/walk.rs, which still passes the requested model.)
    for line in text
        .lines()
        .filter(|l| l.starts_with("gateway_tokens") || l.starts_with("gateway_circuit"))
    {
        assert!(!line.contains("gpt-4o-made-up-123"), "{line}");
    }
    assert!(!text.contains("alice-key") && !text.contains("plain-key"));
    assert!(text.contains("gateway_request_duration_seconds"), "{text}");
}

/// The usage rows, polled (bounded) until `ready` holds.
async fn usage_until(
    gateway: &Gateway,
    key: &str,
    query: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..50 {
        let answer = get_as(gateway, key, &format!("/admin/usage{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        last = answer.json();
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("usage never showed what was expected: {last}");
}

fn requests(usage: &Value) -> i64 {
    usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn usage_is_counted_per_key_and_model_and_survives_a_restart() {
    let upstream = MockUpstream::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("state/usage.sqlite");
    let config = format!(
        "[server]\nadmin_keys = [\"root\"]\n[[keys]]\nname = \"alice\"\nkey = \"alice-key\"\n\
         [state]\nusage_db = \"{}\"\n{}",
        db.display(),
        backend("up", &upstream, "[\"gpt-*\"]")
    );
    let mut gateway = Gateway::start(&config).await;
    let plain = post_as(
        &gateway,
        "alice-key",
        "/v1/chat/completions",
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(plain.status, StatusCode::OK);
    let mut streamed = chat("gpt-4o", true);
    streamed["stream_options"] = json!({"include_usage": true});
    let stream = post_as(&gateway, "alice-key", "/v1/chat/completions", &streamed).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert!(stream.text().contains("\"usage\""), "{}", stream.text());
    // Count endpoints are not usage.
    let counted = post_as(
        &gateway,
        "alice-key",
        "/v1/messages/count_tokens",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.text());

    let usage = usage_until(&gateway, "root", "?group_by=key,model,backend", |u| {
        requests(u) == 2
    })
    .await;
    assert_eq!(
        usage["data"],
        json!([{"key": "alice", "model": "gpt-4o", "backend": "up", "requests": 2,
                "input_tokens": 10, "output_tokens": 12, "reasoning_tokens": 0, "cached_tokens": 0}]),
        "{usage}"
    );
    let by_day = usage_until(&gateway, "root", "?group_by=day", |u| requests(u) == 2).await;
    assert_eq!(
        by_day["data"][0]["day"].as_str().unwrap().len(),
        10,
        "{by_day}"
    );
    let other = get_as(&gateway, "root", "/admin/usage?model=gpt-5")
        .await
        .json();
    assert_eq!(other["data"], json!([]), "{other}");
    let bad = get_as(&gateway, "root", "/admin/usage?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // A restart on the same database keeps the rows and adds to them.
    gateway.shutdown();
    gateway.task.take().unwrap().await.unwrap().unwrap();
    assert!(db.exists());
    let gateway = Gateway::start(&config).await;
    let before = usage_until(&gateway, "root", "?key=alice", |u| requests(u) == 2).await;
    assert_eq!(before["data"][0]["input_tokens"], 10, "{before}");
    let again = post_as(
        &gateway,
        "alice-key",
        "/v1/chat/completions",
        &chat("gpt-4o", false),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    let after = usage_until(&gateway, "root", "?key=alice&group_by=key", |u| {
        requests(u) == 3
    })
    .await;
    assert_eq!(after["data"][0]["output_tokens"], 18, "{after}");
}

/// Start a streaming chat and hand back its body, to be read frame by frame.
async fn open_stream(gateway: &Gateway) -> (http::HeaderMap, hyper::body::Incoming) {
    let request = http::Request::post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(chat("gpt-4o", true).to_string())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (parts, body) = response.into_parts();
    (parts.headers, body)
}

#[tokio::test]
async fn a_reload_keeps_a_stream_whole_and_routes_the_next_request_by_the_new_file() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[state]\nusage_db = \"\"\n{}",
            backend("first", &first, "[\"*\"]")
        ),
    )
    .unwrap();
    let gateway = Gateway::start_with(gateway::Config::load(&path).unwrap()).await;

    first.push(Behaviour {
        chunks: 6,
        interval: Duration::from_millis(100),
        ..Behaviour::default()
    });
    let (headers, mut body) = open_stream(&gateway).await;
    assert_eq!(headers["x-gateway-backend"], "first");
    let mut received = Vec::new();
    let frame = body.frame().await.unwrap().unwrap();
    received.extend_from_slice(frame.data_ref().unwrap());

    // The file now names another backend; the reload takes while the stream runs.
    std::fs::write(
        &path,
        format!(
            "[state]\nusage_db = \"\"\n{}",
            backend("second", &second, "[\"*\"]")
        ),
    )
    .unwrap();
    let reloaded = send(
        Method::POST,
        &gateway.url("/admin/reload"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    assert_eq!(reloaded.json()["status"], "reloaded");

    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(
        received,
        test_support::mock::stream_bytes("gpt-4o", 6),
        "the stream is whole"
    );

    let next =
        crate::harness::post(&gateway.url("/v1/chat/completions"), &chat("gpt-4o", false)).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    assert_eq!(next.header("x-gateway-backend"), "second");
    assert_eq!((first.requests(), second.requests()), (1, 1));
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_old_configuration_serves() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let good = format!(
        "[state]\nusage_db = \"\"\n{}",
        backend("up", &upstream, "[\"*\"]")
    );
    std::fs::write(&path, &good).unwrap();
    let gateway = Gateway::start_with(gateway::Config::load(&path).unwrap()).await;

    std::fs::write(
        &path,
        format!("{good}[server]\nlisten = 5\nmax_body = \"lots\"\n"),
    )
    .unwrap();
    let refused = send(
        Method::POST,
        &gateway.url("/admin/reload"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let reasons = refused.json()["reasons"].clone();
    let first = reasons[0].as_str().unwrap();
    assert!(
        first.contains("gateway.toml:") && first.contains("server.listen:"),
        "{reasons}"
    );
    assert!(!refused.text().contains("serde"), "{}", refused.text());
    assert_eq!(refused.envelope()["error"]["code"], "invalid_configuration");

    std::fs::write(
        &path,
        format!("{good}[backends.other]\nkind = \"openai\"\n"),
    )
    .unwrap();
    let refused = send(
        Method::POST,
        &gateway.url("/admin/reload"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text().contains("backends.other.base_url"),
        "{}",
        refused.text()
    );

    let served =
        crate::harness::post(&gateway.url("/v1/chat/completions"), &chat("gpt-4o", false)).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
    assert_eq!(served.header("x-gateway-backend"), "up");
}

#[tokio::test]
async fn accounts_are_imported_enabled_disabled_and_removed_through_the_admin_api() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nadmin_keys = [\"root\"]\n[state]\nusage_db = \"\"\n\
         [antigravity]\ncredentials_dir = \"{}\"\nbase_urls = [\"{}\"]\n\
         [backends.antigravity]\nkind = \"antigravity\"\n",
        dir.path().display(),
        upstream.url()
    );
    let gateway = Gateway::start(&config).await;
    let before = crate::harness::post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(
        before.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        before.text()
    );

    // A gcli2api export (both `token` and `access_token`).
    let export = json!({"client_id": "cid", "client_secret": "cs", "refresh_token": "r-ops",
        "token": "ya29.ops", "access_token": "ya29.ops", "expiry": "2999-01-01T00:00:00Z",
        "project_id": "ops-project", "email": "ops@example.com"});
    let imported = post_as(&gateway, "root", "/admin/accounts", &export).await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    assert_eq!(imported.json()["data"][0]["outcome"], "added");
    let id = imported.json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = crate::harness::post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_eq!(
        served.status,
        StatusCode::OK,
        "the import serves without a restart: {}",
        served.text()
    );

    let disabled = post_as(
        &gateway,
        "root",
        &format!("/admin/accounts/{id}/disable"),
        &json!({}),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());
    let listed = get_as(&gateway, "root", "/admin/accounts").await.json();
    assert!(listed["data"][0]["disabled_reason"].is_string(), "{listed}");
    let file = std::fs::read_to_string(dir.path().join(format!("{id}.json"))).unwrap();
    assert!(file.contains("disabled"), "the file says so: {file}");
    let refused = crate::harness::post(
        &gateway.url("/v1/chat/completions"),
        &chat("gemini-3-pro", false),
    )
    .await;
    assert_ne!(
        refused.status,
        StatusCode::OK,
        "a disabled account does not serve"
    );

    let enabled = post_as(
        &gateway,
        "root",
        &format!("/admin/accounts/{id}/enable"),
        &json!({}),
    )
    .await;
    assert_eq!(enabled.status, StatusCode::OK);
    let listed = get_as(&gateway, "root", "/admin/accounts").await.json();
    assert!(listed["data"][0]["disabled_reason"].is_null(), "{listed}");

    let bad = post_as(
        &gateway,
        "root",
        "/admin/accounts",
        &json!({"refresh_token": ""}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let missing = post_as(
        &gateway,
        "root",
        "/admin/accounts/nobody/enable",
        &json!({}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let deleted = send(
        Method::DELETE,
        &gateway.url(&format!("/admin/accounts/{id}")),
        &[("authorization", "Bearer root")],
        Bytes::new(),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    assert!(!dir.path().join(format!("{id}.json")).exists());
    let listed = get_as(&gateway, "root", "/admin/accounts").await.json();
    assert_eq!(listed["data"], json!([]), "{listed}");
    let again = send(
        Method::DELETE,
        &gateway.url(&format!("/admin/accounts/{id}")),
        &[("authorization", "Bearer root")],
        Bytes::new(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn usage_names_the_antigravity_account_that_served() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nadmin_keys = [\"root\"]\n[state]\nusage_db = \"{}\"\n\
         [antigravity]\ncredentials_dir = \"{}\"\nbase_urls = [\"{}\"]\n\
         [backends.antigravity]\nkind = \"antigravity\"\n",
        data.path().join("usage.sqlite").display(),
        dir.path().display(),
        upstream.url()
    );
    let gateway = Gateway::start(&config).await;
    let export = json!({"client_id": "cid", "client_secret": "cs", "refresh_token": "r-usage",
        "access_token": "ya29.usage", "expiry": "2999-01-01T00:00:00Z",
        "project_id": "usage-project", "email": "usage@example.com"});
    let imported = post_as(&gateway, "root", "/admin/accounts", &export).await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    let id = imported.json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for stream in [false, true] {
        let served = crate::harness::post(
            &gateway.url("/v1/chat/completions"),
            &chat("gemini-3-pro", stream),
        )
        .await;
        assert_eq!(served.status, StatusCode::OK, "{}", served.text());
    }
    let usage = usage_until(&gateway, "root", "?group_by=backend,account", |u| {
        requests(u) == 2
    })
    .await;
    assert_eq!(usage["data"][0]["backend"], "antigravity", "{usage}");
    assert_eq!(usage["data"][0]["account"], id.as_str(), "{usage}");
    assert!(
        usage["data"][0]["input_tokens"].as_i64().unwrap() > 0,
        "{usage}"
    );
}
