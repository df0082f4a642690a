//! The Gemini CLI pool (`kind = "geminicli"`): Google accounts of Code Assist for individuals
//! beside Antigravity's, served by the same in-process service with the Gemini CLI's client,
//! envelope, metadata and models, against the mock Cloud Code upstream.

use std::path::Path;

use http::StatusCode;
use serde_json::{Value, json};
use test_support::MockUpstream;

use crate::harness::{Gateway, get, get_as, post, post_as, quota_429};

const GEMINI_CLI_CLIENT: &str =
    "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";

fn account(dir: &Path, email: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{email}.json")),
        json!({"refresh_token": format!("1//{email}"), "access_token": format!("ya29.{email}"),
               "expiry": "2999-01-01T00:00:00Z", "project_id": "gcli-project", "email": email})
        .to_string(),
    )
    .unwrap();
}

/// Both pools in front of `upstream`: `[geminicli]` in `dir/gcli`, `[antigravity]` in
/// `dir/ag`; `backends` is the rest of the file.
fn config(upstream: &MockUpstream, dir: &Path, backends: &str) -> String {
    let mock = upstream.url();
    let pool = |section: &str, sub: &str| {
        format!(
            "[{section}]\ncredentials_dir = \"{}\"\nbase_urls = [\"{mock}\"]\nauth_url = \"{mock}/auth\"\n\
             token_url = \"{mock}/token\"\nuserinfo_url = \"{mock}/userinfo\"\n",
            dir.join(sub).display()
        )
    };
    format!(
        "[server]\nadmin_keys = [\"root\"]\n{}{}{backends}",
        pool("geminicli", "gcli"),
        pool("antigravity", "ag")
    )
}

/// The generate calls the upstream received, as JSON bodies with their `User-Agent`.
fn generate_calls(upstream: &MockUpstream) -> Vec<(Value, String)> {
    upstream
        .recorded()
        .into_iter()
        .filter(|r| r.uri.path().ends_with("v1internal:streamGenerateContent"))
        .map(|r| {
            let agent = r.headers[http::header::USER_AGENT]
                .to_str()
                .unwrap()
                .to_owned();
            (r.json(), agent)
        })
        .collect()
}

#[tokio::test]
async fn openai_anthropic_and_gemini_clients_are_served_by_a_geminicli_backend() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    account(&dir.path().join("gcli"), "cli.user@example.com");
    let gateway = Gateway::start(&config(
        &upstream,
        dir.path(),
        "[backends.gcli]\nkind = \"geminicli\"\nmodels = [\"gemini-*\"]\n",
    ))
    .await;

    let chat = post(
        &gateway.url("/v1/chat/completions"),
        &json!({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text());
    assert!(
        chat.json()["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(chat.header("x-gateway-backend"), "gcli");

    let messages = post(
        &gateway.url("/v1/messages"),
        &json!({"model": "gemini-2.5-flash", "max_tokens": 100, "stream": true,
                "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(messages.status, StatusCode::OK, "{}", messages.text());
    assert!(
        messages.text().contains("event: message_stop"),
        "{}",
        messages.text()
    );

    let gemini = post(
        &gateway.url("/v1beta/models/gemini-3-pro-preview:generateContent"),
        &json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}),
    )
    .await;
    assert_eq!(gemini.status, StatusCode::OK, "{}", gemini.text());
    assert!(gemini.json()["candidates"][0]["content"]["parts"].is_array());

    // The upstream saw the Gemini CLI's envelope, model names and user agent.
    let calls = generate_calls(&upstream);
    assert_eq!(calls.len(), 3, "{calls:?}");
    let models: Vec<&str> = calls
        .iter()
        .map(|(b, _)| b["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview"]
    );
    for (body, agent) in &calls {
        assert!(body["user_prompt_id"].is_string(), "{body}");
        assert_eq!(body["project"], "gcli-project");
        assert!(body.get("userAgent").is_none() && body.get("requestType").is_none());
        assert!(body["request"]["contents"].is_array(), "{body}");
        assert!(agent.starts_with("GeminiCLI/"), "{agent}");
    }

    // Its models and its accounts, with their quota.
    let models = get(&gateway.url("/v1/models")).await.json();
    let listed = models["data"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|m| m["id"] == "gemini-2.5-pro" && m["owned_by"] == "geminicli"),
        "{models}"
    );
    let accounts = get_as(&gateway, "root", "/admin/accounts").await.json();
    let gcli: Vec<&Value> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["pool"] == "geminicli")
        .collect();
    assert_eq!(gcli.len(), 1, "{accounts}");
    assert_eq!(gcli[0]["email"], "cli.user@example.com");
    assert_eq!(
        gcli[0]["quota"]["gemini-2.5-pro"]["remainingFraction"],
        0.25
    );
}

#[tokio::test]
async fn a_chain_fails_over_from_a_cooling_geminicli_pool_to_antigravity() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    account(&dir.path().join("gcli"), "cli.user@example.com");
    account(&dir.path().join("ag"), "ag.user@example.com");
    let gateway = Gateway::start(&config(
        &upstream,
        dir.path(),
        "[backends.gcli]\nkind = \"geminicli\"\nmodels = [\"gemini-*\"]\n\
         [backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n\
         [[routes]]\nmodels = [\"gemini-2.5-pro\"]\nchain = [\"gcli\", \"antigravity\"]\n",
    ))
    .await;
    let url = gateway.url("/v1/chat/completions");
    let body =
        json!({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hello"}]});
    let ask = || post(&url, &body);
    upstream.push(quota_429("3600s"));
    let first = ask().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header("x-gateway-backend"), "antigravity");
    assert_eq!(
        first.header("x-gateway-attempts"),
        "gcli:429,antigravity:200"
    );

    // The Gemini CLI account cools for the hour the quota said: the next request does not
    // reach the upstream through it, and Antigravity serves again.
    let second = ask().await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.header("x-gateway-backend"), "antigravity");
    let envelopes: Vec<bool> = generate_calls(&upstream)
        .iter()
        .map(|(body, _)| body.get("user_prompt_id").is_some())
        .collect();
    assert_eq!(
        envelopes,
        [true, false, false],
        "gcli once, then antigravity twice"
    );
    let accounts = get_as(&gateway, "root", "/admin/accounts").await.json();
    let cooling = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pool"] == "geminicli")
        .unwrap()["cooldowns"]["gemini-2.5-pro"]
        .as_u64()
        .unwrap();
    assert!(cooling > 3000, "{accounts}");
}

#[tokio::test]
async fn a_geminicli_sign_in_uses_the_gemini_cli_client_and_lands_in_its_pool() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(
        &upstream,
        dir.path(),
        "[backends.gcli]\nkind = \"geminicli\"\nmodels = [\"gemini-*\"]\n",
    ))
    .await;
    let started = post_as(&gateway, "root", "/admin/login?pool=geminicli", &json!({})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let url = started.json()["url"].as_str().unwrap().to_owned();
    let (_, query) = url.split_once('?').unwrap();
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(params["client_id"], GEMINI_CLI_CLIENT);
    assert!(!params["scope"].contains("cclog"), "{}", params["scope"]);
    let landed = get(&gateway.url(&format!(
        "/oauth-callback?code=abc&state={}",
        params["state"]
    )))
    .await;
    assert_eq!(landed.status, StatusCode::OK, "{}", landed.text());
    assert!(dir.path().join("gcli/new.user@example.com.json").exists());
    assert!(
        !dir.path()
            .join("ag")
            .join("new.user@example.com.json")
            .exists()
    );

    // The code was exchanged with the Gemini CLI's client, and the project discovered with
    // its metadata.
    let recorded = upstream.recorded();
    let token = recorded
        .iter()
        .find(|r| r.uri.path().ends_with("/token"))
        .unwrap();
    assert!(
        String::from_utf8_lossy(&token.body).contains("681255809395-"),
        "{:?}",
        token.body
    );
    let load = recorded
        .iter()
        .find(|r| r.uri.path().ends_with("v1internal:loadCodeAssist"))
        .unwrap();
    assert_eq!(load.json()["metadata"]["ideType"], "IDE_UNSPECIFIED");
    let served = post(
        &gateway.url("/v1/chat/completions"),
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
}

#[tokio::test]
async fn the_gemini_cli_and_gcli2api_files_import_into_the_geminicli_pool() {
    let upstream = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(
        &upstream,
        dir.path(),
        "[backends.gcli]\nkind = \"geminicli\"\nmodels = [\"gemini-*\"]\n",
    ))
    .await;
    for fixture in [
        include_str!("../../crates/antigravity-service/test_data/accounts/oauth_creds.json"),
        include_str!("../../crates/antigravity-service/test_data/accounts/gcli2api-geminicli.json"),
    ] {
        let body: Value = serde_json::from_str(fixture).unwrap();
        let imported = post_as(&gateway, "root", "/admin/accounts?pool=geminicli", &body).await;
        assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
        assert_eq!(imported.json()["data"][0]["outcome"], "added");
    }
    let files = std::fs::read_dir(dir.path().join("gcli"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(files, 2);
    assert!(
        !dir.path().join("ag").exists()
            || std::fs::read_dir(dir.path().join("ag")).unwrap().count() == 0
    );
    let accounts = get_as(&gateway, "root", "/admin/accounts").await.json();
    let pools: Vec<&str> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pool"].as_str().unwrap())
        .collect();
    assert_eq!(pools, ["geminicli", "geminicli"], "{accounts}");
    let wrong = post_as(
        &gateway,
        "root",
        "/admin/accounts?pool=elsewhere",
        &json!({}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
}
