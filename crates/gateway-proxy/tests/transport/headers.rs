use gateway_core::{Secret, Timeouts, body};
use gateway_proxy::{Forwarder, HeaderPolicy};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use test_support::MockUpstream;

use crate::*;

#[tokio::test(start_paused = true)]
async fn only_the_policy_reaches_the_upstream() {
    let upstream = MockUpstream::start().await.unwrap();
    let policy = HeaderPolicy::new()
        .api_key(Secret::new("sk-configured"))
        .forward_headers(["openai-beta"]);
    let forwarder = Forwarder::new(client(), &format!("{}/v1/", upstream.url()), policy).unwrap();
    let mut incoming = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("user-agent", "claude-cli/1.0"),
        ("authorization", "Bearer client-gateway-key"),
        ("x-api-key", "client-gateway-key"),
        ("api-key", "client-gateway-key"),
        ("cookie", "sid=1"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic x"),
        ("te", "trailers"),
        ("trailer", "x-sum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-request-id", "req-42"),
        ("x-augment-request", "a"),
        ("x-signature-vector", "v"),
        ("openai-beta", "x"),
        ("x-unlisted", "dropped"),
    ] {
        incoming.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let response = forwarder
        .forward(
            Method::POST,
            "/chat/completions?trace=1",
            &incoming,
            body::full(r#"{"model":"m","messages":[]}"#),
            options(Timeouts::default()),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("connection"));

    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri.to_string(), "/v1/chat/completions?trace=1");
    assert_eq!(seen.headers["authorization"], "Bearer sk-configured");
    for name in [
        "x-api-key",
        "api-key",
        "cookie",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-unlisted",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream"
        );
    }
    for (name, value) in [
        ("user-agent", "claude-cli/1.0"),
        ("x-forwarded-user-agent", "claude-cli/1.0"),
        ("x-request-id", "req-42"),
        ("x-augment-request", "a"),
        ("x-signature-vector", "v"),
        ("openai-beta", "x"),
        ("x-gateway-hops", "1"),
    ] {
        assert_eq!(seen.headers[name], value, "{name}");
    }
    assert_eq!(seen.json()["model"], "m");
}

#[tokio::test(start_paused = true)]
async fn invalid_upstream_urls_are_rejected() {
    for url in ["", "ftp://x", "/relative", "http://"] {
        assert!(
            Forwarder::new(client(), url, HeaderPolicy::new()).is_err(),
            "{url}"
        );
    }
}
