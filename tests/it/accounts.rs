//! The account pool against a mock token endpoint and a mock Antigravity upstream on loopback,
//! and a running gateway whose accounts the operator changes through the store (what the
//! `gateway accounts` commands do).

use std::{sync::Arc, time::Duration};

use antigravity_service::{
    AccountFile, AccountPool, AccountState, AccountStore, CALLBACK_PATH, Credentials, LoginFlow,
    OAuthConfig, PoolConfig, Service, ServiceConfig, StoredAccount,
};
use futures_util::StreamExt;
use gateway_core::{
    ChatContext, ChatOutput, ErrorKind, GatewayError,
    openai::{ChatRequest, parse_json},
};
use gateway_proxy::{Client, ClientConfig};
use test_support::{Behaviour, MockUpstream};
use tokio::time::Instant;

use crate::harness::{Gateway, post, quota_429};

type Svc = Service<Client, AccountPool<Client>>;

struct Setup {
    upstream: MockUpstream,
    token: MockUpstream,
    service: Arc<Svc>,
}

fn file(email: &str, token: &str, expired: bool) -> AccountFile {
    let expiry = if expired {
        "2000-01-01T00:00:00Z"
    } else {
        "2999-01-01T00:00:00Z"
    };
    AccountFile::from_json(
        format!(
            r#"{{"client_id":"cid","client_secret":"cs","refresh_token":"refresh-{email}","access_token":"{token}",
                "expiry":"{expiry}","project_id":"project-{email}","email":"{email}"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn stored(email: &str, token: &str, expired: bool) -> StoredAccount {
    StoredAccount {
        id: email.to_owned(),
        file: file(email, token, expired),
        state: AccountState::default(),
    }
}

async fn setup(
    accounts: Vec<StoredAccount>,
    store: Option<AccountStore>,
    tune: impl FnOnce(&mut PoolConfig),
) -> Setup {
    let upstream = MockUpstream::start().await.unwrap();
    let token = MockUpstream::start().await.unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    let mut config = PoolConfig {
        token_url: format!("{}/token", token.url()),
        base_url: upstream.url(),
        ..PoolConfig::default()
    };
    tune(&mut config);
    let pool = AccountPool::new(client.clone(), config, accounts, store);
    let service = Service::new(
        client,
        pool,
        ServiceConfig {
            base_urls: vec![upstream.url()],
            ..ServiceConfig::default()
        },
    );
    Setup {
        upstream,
        token,
        service: Arc::new(service),
    }
}

fn chat(model: &str) -> ChatRequest {
    parse_json(
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
            .as_bytes(),
    )
    .unwrap()
}

/// Run one non-streaming chat and return the error, if any.
async fn run(service: &Svc, model: &str) -> Result<(), GatewayError> {
    match service.chat(chat(model), ChatContext::default()).await? {
        ChatOutput::Complete(_) => Ok(()),
        ChatOutput::Stream(mut stream) => {
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok(())
        }
    }
}

/// Run `n` chats at once; all must succeed.
async fn run_concurrently(service: &Arc<Svc>, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { run(&service, "gemini-3-pro").await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

/// Which account served each upstream call, by the token it sent.
fn tokens_seen(upstream: &MockUpstream) -> Vec<String> {
    upstream
        .recorded()
        .iter()
        .filter(|r| r.uri.path().contains("streamGenerateContent"))
        .map(|r| {
            r.headers["authorization"]
                .to_str()
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_twenty_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.save(&stored("a@x", "ya29.expired", true)).unwrap();
    let (accounts, _) = store.load();
    let setup = setup(accounts, Some(store.clone()), |c| {
        c.max_concurrency_per_account = 32
    })
    .await;
    // A slow token endpoint makes every request arrive while the refresh is in flight.
    setup.token.push(Behaviour {
        headers_delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    run_concurrently(&setup.service, 20).await;
    assert_eq!(setup.token.requests(), 1, "one refresh for twenty requests");
    assert!(
        tokens_seen(&setup.upstream)
            .iter()
            .all(|t| t == "ya29.mock-fresh-token")
    );
    let (accounts, _) = store.load();
    assert_eq!(
        accounts[0].file.access_token.as_ref().unwrap().expose(),
        "ya29.mock-fresh-token"
    );
    let expiry = accounts[0].file.expiry.clone().unwrap();
    assert!(expiry.as_str() > "2026", "{expiry}");
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh_and_one_retry() {
    let setup = setup(vec![stored("a@x", "ya29.revoked", false)], None, |_| {}).await;
    setup.upstream.push(Behaviour {
        status: 401,
        body: Some(r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#.into()),
        ..Behaviour::default()
    });
    run(&setup.service, "gemini-3-pro").await.unwrap();
    assert_eq!(setup.token.requests(), 1);
    assert_eq!(
        tokens_seen(&setup.upstream),
        ["ya29.revoked", "ya29.mock-fresh-token"]
    );

    // A second 401 after the retry is the client's answer, not another loop.
    setup.upstream.push(Behaviour {
        status: 401,
        ..Behaviour::default()
    });
    setup.upstream.push(Behaviour {
        status: 401,
        ..Behaviour::default()
    });
    let err = run(&setup.service, "gemini-3-pro").await.unwrap_err();
    assert_eq!(err.status().as_u16(), 401);
    assert_eq!(setup.token.requests(), 2);
    assert_eq!(tokens_seen(&setup.upstream).len(), 4);
}

#[tokio::test]
async fn invalid_grant_disables_only_that_account() {
    let setup = setup(
        vec![
            stored("a@x", "ya29.a-expired", true),
            stored("b@x", "ya29.b", false),
        ],
        None,
        |c| c.selection = antigravity_service::Selection::FillFirst,
    )
    .await;
    setup.token.push(Behaviour {
        status: 400,
        body: Some(
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
                .into(),
        ),
        ..Behaviour::default()
    });
    run(&setup.service, "gemini-3-pro").await.unwrap();
    run(&setup.service, "gemini-3-pro").await.unwrap();
    assert_eq!(tokens_seen(&setup.upstream), ["ya29.b", "ya29.b"]);
    assert_eq!(
        setup.token.requests(),
        1,
        "a disabled account is not refreshed again"
    );
    let views = setup.service.credentials().views(false).await;
    let a = views.iter().find(|v| v.id == "a@x").unwrap();
    assert!(
        a.disabled_reason
            .as_deref()
            .unwrap()
            .contains("invalid_grant"),
        "{a:?}"
    );
    assert!(
        views
            .iter()
            .find(|v| v.id == "b@x")
            .unwrap()
            .disabled_reason
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_quota_429_cools_one_account_for_one_model() {
    let setup = setup(
        vec![
            stored("a@x", "ya29.a", false),
            stored("b@x", "ya29.b", false),
        ],
        None,
        |_| {},
    )
    .await;
    let model = "claude-sonnet-4.5";
    setup.upstream.push(quota_429("90s"));
    run(&setup.service, model).await.unwrap();
    assert_eq!(
        tokens_seen(&setup.upstream),
        ["ya29.a", "ya29.b"],
        "A's 429 is served by B"
    );

    for _ in 0..4 {
        run(&setup.service, model).await.unwrap();
    }
    assert!(
        tokens_seen(&setup.upstream)[2..]
            .iter()
            .all(|t| t == "ya29.b"),
        "A is not used for M while cooling"
    );

    // A still serves another model.
    for _ in 0..4 {
        run(&setup.service, "gemini-3-pro").await.unwrap();
    }
    assert!(
        tokens_seen(&setup.upstream)[6..]
            .iter()
            .any(|t| t == "ya29.a")
    );

    // After the delay A serves M again.
    tokio::time::advance(Duration::from_secs(91)).await;
    let before = tokens_seen(&setup.upstream).len();
    for _ in 0..4 {
        run(&setup.service, model).await.unwrap();
    }
    assert!(
        tokens_seen(&setup.upstream)[before..]
            .iter()
            .any(|t| t == "ya29.a")
    );
}

#[tokio::test(start_paused = true)]
async fn a_short_hint_is_waited_out_on_the_same_account() {
    let setup = setup(
        vec![
            stored("a@x", "ya29.a", false),
            stored("b@x", "ya29.b", false),
        ],
        None,
        |_| {},
    )
    .await;
    setup.upstream.push(Behaviour {
        status: 429,
        retry_after: Some("2".into()),
        ..Behaviour::default()
    });
    let start = tokio::time::Instant::now();
    run(&setup.service, "gemini-3-pro").await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(tokens_seen(&setup.upstream), ["ya29.a", "ya29.a"]);
}

#[tokio::test(start_paused = true)]
async fn when_every_account_cools_the_client_gets_a_429_at_once() {
    let setup = setup(
        vec![
            stored("a@x", "ya29.a", false),
            stored("b@x", "ya29.b", false),
        ],
        None,
        |_| {},
    )
    .await;
    setup.upstream.push(quota_429("10m"));
    setup.upstream.push(quota_429("20m"));
    let err = run(&setup.service, "gemini-3-pro").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.status().as_u16(), 429);
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
        "{wait:?}"
    );

    let start = tokio::time::Instant::now();
    let again = run(&setup.service, "gemini-3-pro").await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::RateLimited);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no sleeping inside the request"
    );
    assert_eq!(
        setup.upstream.requests(),
        2,
        "a cooling pool sends nothing upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_limit_holds_under_fifty_concurrent_requests() {
    let setup = setup(
        vec![
            stored("a@x", "ya29.a", false),
            stored("b@x", "ya29.b", false),
        ],
        None,
        |c| {
            c.max_concurrency_per_account = 3;
        },
    )
    .await;
    for _ in 0..50 {
        setup.upstream.push(Behaviour {
            chunks: 5,
            interval: Duration::from_millis(100),
            ..Behaviour::default()
        });
    }
    run_concurrently(&setup.service, 50).await;
    assert_eq!(setup.upstream.requests(), 50);
    assert!(
        setup.upstream.max_in_flight() <= 6,
        "{} in flight",
        setup.upstream.max_in_flight()
    );
    assert!(
        setup.upstream.max_in_flight() >= 2,
        "both accounts served at once"
    );
}

#[tokio::test]
async fn cooldowns_and_disabled_reasons_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.save(&stored("a@x", "ya29.a", false)).unwrap();
    store.save(&stored("b@x", "ya29.b", false)).unwrap();
    let model = "gemini-3-pro";
    {
        let (accounts, _) = store.load();
        let setup = setup(accounts, Some(store.clone()), |_| {}).await;
        setup.upstream.push(quota_429("1h"));
        run(&setup.service, model).await.unwrap();
        assert!(setup.service.credentials().set_enabled("b@x", false).await);
        // The cooldown is written off the request path; wait for it, bounded.
        for _ in 0..100 {
            if !store.load().0[0].state.cooldowns.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (accounts, _) = store.load();
    assert!(
        accounts[0]
            .state
            .cooldowns
            .contains_key("gemini-3-pro-high"),
        "{:?}",
        accounts[0].state
    );
    assert_eq!(
        accounts[1].state.disabled_reason.as_deref(),
        Some("disabled by the operator")
    );

    let restarted = setup(accounts, Some(store), |_| {}).await;
    let err = run(&restarted.service, model).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err:?}");
    assert_eq!(restarted.upstream.requests(), 0);
    let views = restarted.service.credentials().views(false).await;
    assert!(views[0].cooldowns["gemini-3-pro-high"] > 3000);
}

#[tokio::test]
async fn the_admin_view_shows_quota_and_no_secrets() {
    let setup = setup(
        vec![stored("a@x", "ya29.secret-token", false)],
        None,
        |_| {},
    )
    .await;
    run(&setup.service, "gemini-3-pro").await.unwrap();
    let views = setup.service.credentials().views(true).await;
    let json = serde_json::to_string(&views).unwrap();
    assert!(
        !json.contains("ya29") && !json.contains("refresh-a@x"),
        "{json}"
    );
    assert_eq!(views[0].requests, 1);
    assert_eq!(
        views[0].quota.as_ref().unwrap()["gemini-3-pro-high"]["remainingFraction"],
        0.8
    );
    // Cached: a second view does not ask again.
    setup.service.credentials().views(true).await;
    let lookups = setup
        .upstream
        .recorded()
        .iter()
        .filter(|r| r.uri.path().contains("fetchAvailableModels"))
        .count();
    assert_eq!(lookups, 1);
}

#[tokio::test]
async fn a_missing_project_is_discovered_not_faked() {
    let mut account = stored("a@x", "ya29.a", false);
    account.file.project_id = None;
    let setup = setup(vec![account], None, |_| {}).await;
    run(&setup.service, "gemini-3-pro").await.unwrap();
    let generate = setup
        .upstream
        .recorded()
        .into_iter()
        .find(|r| r.uri.path().contains("streamGenerateContent"))
        .unwrap();
    assert_eq!(generate.json()["project"], "mock-project-123");
}

#[tokio::test]
async fn the_login_flow_completes_against_a_mock_oauth_server() {
    let google = MockUpstream::start().await.unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    let config = OAuthConfig {
        auth_url: format!("{}/o/oauth2/v2/auth", google.url()),
        token_url: format!("{}/token", google.url()),
        userinfo_url: format!("{}/oauth2/v2/userinfo", google.url()),
        base_url: google.url(),
        ..OAuthConfig::default()
    };
    // No current tier: the account is onboarded.
    google.push(Behaviour::default()); // token exchange
    google.push(Behaviour::default()); // userinfo
    google.push(Behaviour {
        body: Some(r#"{"allowedTiers":[{"id":"free-tier","isDefault":true}]}"#.into()),
        ..Behaviour::default()
    });
    let flow = LoginFlow::new(client.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}{CALLBACK_PATH}", listener.local_addr().unwrap());
    let url = flow.authorization_url(&redirect);
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();

    // The browser: Google redirects it to the loopback callback.
    let browser = tokio::spawn({
        let client = client.clone();
        let callback = format!("{redirect}?state={state}&code=4%2F0-mock-code&scope=x");
        async move {
            let request = http::Request::get(callback)
                .body(gateway_core::body::empty())
                .unwrap();
            client.send(request).await.map(|r| r.status())
        }
    });
    let code = flow.receive_callback(&listener).await.unwrap();
    assert_eq!(code, "4/0-mock-code");
    assert_eq!(browser.await.unwrap().unwrap(), 200);

    let account = flow.complete(&code, &redirect).await.unwrap();
    let exchange = String::from_utf8(google.recorded()[0].body.to_vec()).unwrap();
    assert!(
        exchange.contains("grant_type=authorization_code")
            && exchange.contains("code=4%2F0-mock-code"),
        "{exchange}"
    );
    assert_eq!(account.email.as_deref(), Some("new.user@example.com"));
    assert_eq!(account.project_id.as_deref(), Some("onboarded-project-456"));
    assert_eq!(account.refresh_token.expose(), "1//mock-refresh-token");

    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(account_json(&account).as_bytes()).unwrap();
    assert_eq!(id, "new.user@example.com");
    assert_eq!(
        store.load().0[0].file.project_id.as_deref(),
        Some("onboarded-project-456")
    );
}

fn account_json(account: &AccountFile) -> String {
    serde_json::json!({
        "client_id": account.client_id,
        "client_secret": account.client_secret.as_ref().map(|s| s.expose()),
        "refresh_token": account.refresh_token.expose(),
        "access_token": account.access_token.as_ref().map(|s| s.expose()),
        "expiry": account.expiry,
        "project_id": account.project_id,
        "email": account.email,
    })
    .to_string()
}

#[tokio::test]
async fn an_empty_pool_says_how_to_add_an_account() {
    let setup = setup(vec![], None, |_| {}).await;
    assert!(!setup.service.credentials().is_available());
    let err = run(&setup.service, "gemini-3-pro").await.unwrap_err();
    assert_eq!(err.status().as_u16(), 503);
    assert!(
        err.message().contains("gateway login antigravity"),
        "{}",
        err.message()
    );
}

/// A gateway serving `gemini-*` from the in-process service over the accounts in `dir`.
async fn gateway_over(
    dir: &std::path::Path,
    upstream: &MockUpstream,
    token: &MockUpstream,
) -> Gateway {
    let config = format!(
        "[antigravity]\ncredentials_dir = \"{}\"\nbase_urls = [\"{}\"]\ntoken_url = \"{}/token\"\n\n\
         [backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-*\"]\n",
        dir.display(),
        upstream.url(),
        token.url()
    );
    Gateway::start(&config).await
}

/// One chat through the gateway: the token of the account that served it, or the status.
async fn served_by(gateway: &Gateway, upstream: &MockUpstream) -> Result<String, u16> {
    let answer = post(
        &gateway.url("/v1/chat/completions"),
        &serde_json::json!({"model": "gemini-3-pro", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    if answer.status != 200 {
        return Err(answer.status.as_u16());
    }
    Ok(tokens_seen(upstream).pop().unwrap_or_default())
}

/// Chat until `n` answers in a row are served with `token`; fails after five seconds.
async fn until_served_only_by(gateway: &Gateway, upstream: &MockUpstream, token: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut streak = 0;
    let mut last = Err(0);
    while streak < n {
        assert!(
            Instant::now() < deadline,
            "not served only by {token} within 5 s (last: {last:?})"
        );
        last = served_by(gateway, upstream).await;
        if last.as_deref() == Ok(token) {
            streak += 1;
        } else {
            streak = 0;
            // Bounded polling: the gateway looks at its directory every two seconds.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Stop the gateway gracefully (its final flush included) and wait for it.
async fn stop(mut gateway: Gateway) {
    gateway.shutdown();
    let task = gateway.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_account_disabled_while_the_gateway_runs_is_skipped_and_stays_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.save(&stored("a@x", "ya29.a", false)).unwrap();
    store.save(&stored("b@x", "ya29.b", false)).unwrap();
    let upstream = MockUpstream::start().await.unwrap();
    let token = MockUpstream::start().await.unwrap();
    let gateway = gateway_over(dir.path(), &upstream, &token).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(served_by(&gateway, &upstream).await.unwrap());
    }
    assert_eq!(seen.len(), 2, "both accounts serve: {seen:?}");

    // What `gateway accounts disable a@x` does, while the gateway runs.
    assert!(store.set_enabled("a@x", false).unwrap());
    until_served_only_by(&gateway, &upstream, "ya29.b", 4).await;

    // The final flush writes what the gateway learned about a@x without reverting the disable.
    stop(gateway).await;
    let (accounts, _) = store.load();
    let a = accounts.iter().find(|a| a.id == "a@x").unwrap();
    assert_eq!(
        a.state.disabled_reason.as_deref(),
        Some("disabled by the operator")
    );
    // The disable was written while the gateway's counters for a@x were still in memory: they
    // are on disk now, so the gateway did write a@x after the disable, and merged it.
    assert!(a.state.requests >= 2, "{:?}", a.state);
    assert_eq!(token.requests(), 0);
}

#[tokio::test]
async fn an_account_imported_while_the_gateway_runs_serves_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let upstream = MockUpstream::start().await.unwrap();
    let token = MockUpstream::start().await.unwrap();
    let gateway = gateway_over(dir.path(), &upstream, &token).await;
    assert_eq!(
        served_by(&gateway, &upstream).await,
        Err(503),
        "no account yet"
    );

    // What `gateway accounts import FILE` does, while the gateway runs.
    let id = store
        .import(account_json(&file("new@x", "ya29.new", false)).as_bytes())
        .unwrap();
    assert_eq!(id, "new@x");
    until_served_only_by(&gateway, &upstream, "ya29.new", 2).await;
    stop(gateway).await;
    assert!(store.load().0[0].state.requests >= 2);
}

#[tokio::test]
async fn a_removed_account_stops_serving_and_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.save(&stored("a@x", "ya29.a", false)).unwrap();
    store.save(&stored("b@x", "ya29.b", false)).unwrap();
    let upstream = MockUpstream::start().await.unwrap();
    let token = MockUpstream::start().await.unwrap();
    let gateway = gateway_over(dir.path(), &upstream, &token).await;
    for _ in 0..2 {
        served_by(&gateway, &upstream).await.unwrap();
    }

    // What `gateway accounts remove b@x` does, while the gateway runs.
    assert!(store.remove("b@x").unwrap());
    until_served_only_by(&gateway, &upstream, "ya29.a", 4).await;
    stop(gateway).await;
    let ids: Vec<String> = store.load().0.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["a@x"], "the final flush does not bring b@x back");
    assert!(!dir.path().join("b@x.json").exists());
}
