use http::{HeaderMap, HeaderValue};

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|n| n.to_string()).collect();
    names.sort();
    names
}

const CLIENT: &[(&str, &str)] = &[
    ("host", "gateway.local"),
    ("content-type", "application/json"),
    ("accept", "text/event-stream"),
    ("user-agent", "cursor/1.0"),
    ("authorization", "Bearer client-secret"),
    ("x-api-key", "client-secret"),
    ("api-key", "client-secret"),
    ("cookie", "session=1"),
    ("connection", "keep-alive, x-private"),
    ("x-private", "named by connection"),
    ("keep-alive", "timeout=5"),
    ("proxy-authorization", "Basic abc"),
    ("te", "trailers"),
    ("trailer", "x-checksum"),
    ("transfer-encoding", "chunked"),
    ("upgrade", "h2c"),
    ("x-request-id", "req-1"),
    ("x-augment-client", "vscode"),
    ("x-bugment-request", "b"),
    ("x-signature-version", "2"),
    ("x-disable-thinking-signature", "1"),
    ("x-ag-conversation-id", "conv-1"),
    ("x-conversation-id", "conv-2"),
    ("x-forwarded-for", "10.0.0.1"),
    ("openai-beta", "assistants=v2"),
    ("anthropic-version", "2023-06-01"),
    ("anthropic-beta", "context-management-2025-06-27"),
    ("x-custom-one", "1"),
];

#[test]
fn default_policy_passes_only_the_allowlist() {
    let out = HeaderPolicy::new().outgoing(&map(CLIENT)).unwrap();
    assert_eq!(
        names(&out),
        [
            "accept",
            "anthropic-beta",
            "anthropic-version",
            "content-type",
            "openai-beta",
            "user-agent",
            "x-ag-conversation-id",
            "x-augment-client",
            "x-bugment-request",
            "x-conversation-id",
            "x-disable-thinking-signature",
            "x-forwarded-user-agent",
            "x-gateway-hops",
            "x-request-id",
            "x-signature-version",
        ]
    );
    assert_eq!(out["x-forwarded-user-agent"], "cursor/1.0");
    assert_eq!(out["x-gateway-hops"], "1");
}

#[test]
fn configured_key_replaces_client_credentials() {
    let out = HeaderPolicy::new()
        .api_key(Secret::new("sk-backend"))
        .outgoing(&map(CLIENT))
        .unwrap();
    assert_eq!(out["authorization"], "Bearer sk-backend");
    assert!(out["authorization"].is_sensitive());
    for name in ["x-api-key", "api-key", "cookie", "proxy-authorization"] {
        assert!(!out.contains_key(name), "{name}");
    }
}

#[test]
fn the_key_goes_in_the_header_the_backend_reads() {
    let mut client = map(CLIENT);
    client.insert(
        "x-goog-api-key",
        HeaderValue::from_static("client-google-key"),
    );
    for (header, name, value) in [
        (KeyHeader::XApiKey, "x-api-key", "sk-ant"),
        (KeyHeader::XGoogApiKey, "x-goog-api-key", "sk-ant"),
        (KeyHeader::Bearer, "authorization", "Bearer sk-ant"),
    ] {
        let out = HeaderPolicy::new()
            .api_key(Secret::new("sk-ant"))
            .key_header(header)
            .outgoing(&client)
            .unwrap();
        assert_eq!(out[name], value, "{header:?}");
        assert!(out[name].is_sensitive());
        // Exactly one credential header: the backend's own.
        let credentials = [
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "api-key",
            "cookie",
        ]
        .iter()
        .filter(|n| out.contains_key(**n))
        .count();
        assert_eq!(credentials, 1, "{header:?}");
    }
}

#[test]
fn client_credentials_pass_only_when_configured() {
    let out = HeaderPolicy::new()
        .forward_client_auth(true)
        .outgoing(&map(CLIENT))
        .unwrap();
    assert_eq!(out["authorization"], "Bearer client-secret");
    assert_eq!(out["x-api-key"], "client-secret");
    assert_eq!(out["cookie"], "session=1");
    // Proxy credentials are hop-by-hop: never forwarded.
    assert!(!out.contains_key("proxy-authorization"));
    // The backend's own key wins over the client's.
    let out = HeaderPolicy::new()
        .forward_client_auth(true)
        .api_key(Secret::new("sk-backend"))
        .outgoing(&map(CLIENT))
        .unwrap();
    assert_eq!(out["authorization"], "Bearer sk-backend");
}

#[test]
fn extras_by_name_and_prefix() {
    let out = HeaderPolicy::new()
        .forward_headers(["OpenAI-Beta", "x-custom-*", "not a header"])
        .outgoing(&map(CLIENT))
        .unwrap();
    assert_eq!(out["openai-beta"], "assistants=v2");
    assert_eq!(out["x-custom-one"], "1");
    assert!(!out.contains_key("x-forwarded-for"));
}

#[test]
fn extras_cannot_smuggle_hop_by_hop_headers() {
    let out = HeaderPolicy::new()
        .forward_headers([
            "connection",
            "x-private",
            "transfer-encoding",
            "upgrade",
            "te",
        ])
        .outgoing(&map(CLIENT))
        .unwrap();
    for name in [
        "connection",
        "x-private",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        assert!(!out.contains_key(name), "{name}");
    }
}

#[test]
fn empty_key_injects_nothing() {
    let out = HeaderPolicy::new()
        .api_key(Secret::new(""))
        .outgoing(&map(&[]))
        .unwrap();
    assert!(!out.contains_key("authorization"));
}

#[test]
fn hop_counter_counts_and_stops_loops() {
    let out = HeaderPolicy::new()
        .outgoing(&map(&[("x-gateway-hops", "3")]))
        .unwrap();
    assert_eq!(out["x-gateway-hops"], "4");
    let err = HeaderPolicy::new()
        .outgoing(&map(&[("x-gateway-hops", "8")]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoopDetected);
    assert_eq!(err.status().as_u16(), 508);
    assert_eq!(hops(&map(&[("x-gateway-hops", "junk")])).unwrap(), 0);
}

#[test]
fn responses_lose_hop_by_hop_headers() {
    let mut headers = map(&[
        ("content-type", "text/event-stream"),
        ("connection", "close, x-upstream-private"),
        ("x-upstream-private", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("proxy-authenticate", "Basic"),
        ("trailer", "x"),
        ("upgrade", "h2c"),
        ("x-request-id", "kept"),
    ]);
    strip_hop_by_hop(&mut headers);
    assert_eq!(names(&headers), ["content-type", "x-request-id"]);
}
