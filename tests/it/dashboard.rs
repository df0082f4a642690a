//! The dashboard's side of the server: the page and its redirect, its data endpoints
//! (`/admin/requests`, `/admin/activity`, `/admin/config`, usage as CSV) and the Google sign-in
//! it starts, landing on the gateway. The page itself runs in a real browser in
//! `cargo xtask clients dashboard`.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::MockUpstream;

use crate::harness::{Gateway, get, get_as, post_as, send};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

fn config(upstream: &MockUpstream, accounts: &std::path::Path, extra: &str) -> String {
    let mock = upstream.url();
    format!(
        "[server]\napi_keys = [\"client\"]\nadmin_keys = [\"root\"]\n{extra}\n[state]\nusage_db = \"{db}\"\n\
         [antigravity]\ncredentials_dir = \"{accounts}\"\nbase_urls = [\"{mock}\"]\n\
         auth_url = \"{mock}/auth\"\ntoken_url = \"{mock}/token\"\nuserinfo_url = \"{mock}/userinfo\"\n\
         [backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n\
         [backends.up]\nkind = \"openai\"\nbase_url = \"{mock}/v1\"\nmodels = [\"gpt-*\"]\n",
        db = accounts.join("usage.sqlite").display(),
        accounts = accounts.display(),
    )
}

#[tokio::test]
async fn the_page_is_served_on_loopback_and_the_root_leads_to_it() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(&upstream, dir.path(), "")).await;
    let root = get(&gateway.url("/")).await;
    assert_eq!(root.status, StatusCode::FOUND);
    assert_eq!(root.header("location"), "/ui");
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let answer = get(&gateway.url(path)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert!(answer.header("content-type").starts_with(kind), "{path}");
        assert!(answer.header("content-security-policy").contains("'self'"));
    }
    // Clients that probe the root with HEAD still get their 200.
    let head = send(Method::HEAD, &gateway.url("/"), &[], Bytes::new()).await;
    assert_eq!(head.status, StatusCode::OK);

    let off = Gateway::start(&config(&upstream, dir.path(), "dashboard = false")).await;
    let page = get_as(&off, "client", "/ui").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
}

#[tokio::test]
async fn requests_activity_config_and_csv_are_admin_data() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(&upstream, dir.path(), "")).await;
    for model in ["gpt-4o", "gpt-4o", "unknown-model"] {
        post_as(&gateway, "client", "/v1/chat/completions", &chat(model)).await;
    }
    for path in [
        "/admin/requests",
        "/admin/activity",
        "/admin/config",
        "/admin/usage?format=csv",
    ] {
        let refused = get_as(&gateway, "client", path).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }

    let requests = get_as(&gateway, "root", "/admin/requests").await.json();
    let list = requests["data"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{requests}");
    assert_eq!(list[0]["status"], 404, "newest first: {requests}");
    assert_eq!(list[0]["failed"], true);
    assert_eq!(list[1]["backend"], "up");
    assert_eq!(list[1]["attempts"], "up:200");
    assert_eq!(list[1]["key"], "api_keys[0]");
    assert!(list[1]["input_tokens"].as_u64().unwrap() > 0, "{requests}");
    assert!(list[1]["first_byte_ms"].is_u64(), "{requests}");
    assert!(!requests.to_string().contains("hello"), "no prompt text");

    let activity = get_as(&gateway, "root", "/admin/activity").await.json();
    let minute = &activity["data"][0]["backends"];
    assert_eq!(minute["up"]["requests"], 2, "{activity}");
    assert_eq!(minute["up"]["errors"], 0, "{activity}");
    assert_eq!(minute["(none)"]["errors"], 1, "{activity}");

    let config = get_as(&gateway, "root", "/admin/config").await;
    assert_eq!(config.status, StatusCode::OK);
    let text = config.text();
    assert!(text.contains("[backends.up]"), "{text}");
    assert!(
        !text.contains("\"root\"") && !text.contains("\"client\""),
        "{text}"
    );

    let mut csv = String::new();
    for _ in 0..50 {
        let answer = get_as(&gateway, "root", "/admin/usage?format=csv&group_by=model").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert!(answer.header("content-type").starts_with("text/csv"));
        csv = answer.text();
        if csv.lines().count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("model,requests,input_tokens,output_tokens,reasoning_tokens,cached_tokens"),
        "{csv}"
    );
    assert!(lines.next().unwrap().starts_with("gpt-4o,2,"), "{csv}");
    let bad = get_as(&gateway, "root", "/admin/usage?format=xml").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_account_added_from_the_page_signs_in_through_the_gateway() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(&upstream, dir.path(), "")).await;
    let refused = post_as(&gateway, "client", "/admin/login", &json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let started = post_as(&gateway, "root", "/admin/login", &json!({})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let url = started.json()["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/auth?", upstream.url())),
        "{url}"
    );
    let (_, query) = url.split_once('?').unwrap();
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    let redirect = &params["redirect_uri"];
    assert_eq!(
        redirect,
        &format!("http://{}/oauth-callback", gateway.addr),
        "the redirect lands on the gateway"
    );
    let state = &params["state"];

    // Google's redirect with another state is refused, and does not use up the real one.
    let forged = get(&gateway.url("/oauth-callback?code=abc&state=forged")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(
        forged.text().contains("unknown or expired"),
        "{}",
        forged.text()
    );

    let landed = get(&gateway.url(&format!("/oauth-callback?code=abc&state={state}"))).await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.text());
    assert!(
        landed.text().contains("new.user@example.com"),
        "{}",
        landed.text()
    );
    let accounts = get_as(&gateway, "root", "/admin/accounts").await.json();
    assert_eq!(
        accounts["data"][0]["email"], "new.user@example.com",
        "{accounts}"
    );
    let served = post_as(
        &gateway,
        "client",
        "/v1/chat/completions",
        &chat("gemini-3-pro"),
    )
    .await;
    assert_eq!(
        served.status,
        StatusCode::OK,
        "it serves at once: {}",
        served.text()
    );

    // The page sends ids percent-encoded (an email's `@`).
    let id = accounts["data"][0]["id"]
        .as_str()
        .unwrap()
        .replace('@', "%40");
    let disabled = post_as(
        &gateway,
        "root",
        &format!("/admin/accounts/{id}/disable"),
        &json!({}),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());

    // A state is good once.
    let again = get(&gateway.url(&format!("/oauth-callback?code=abc&state={state}"))).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}
