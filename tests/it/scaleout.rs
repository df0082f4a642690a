//! Many replicas as one gateway: two replicas with separate copies of the same accounts share
//! cooldowns, token refreshes, rate windows and usage through a real `redis-server` (Debian's,
//! installed by `cargo xtask test`) on a free loopback port; they keep serving while it is
//! down and converge when it returns. The same scenarios run with `backend = "local"` on one
//! replica (both "replicas" are then the same gateway).

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use http::StatusCode;
use serde_json::{Value, json};
use test_support::MockUpstream;

use crate::harness::{Answer, Gateway, get_as, post_as, quota_429};

/// A `redis-server` of our own; killed when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is needed (cargo xtask test installs it): {e}")
            });
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not listen on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The account both replicas hold a copy of; `expired` makes its token need a refresh.
fn account(dir: &Path, expired: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let expiry = if expired {
        "2000-01-01T00:00:00Z"
    } else {
        "2999-01-01T00:00:00Z"
    };
    std::fs::write(
        dir.join("one@example.com.json"),
        json!({"client_id": "cid", "client_secret": "cs", "refresh_token": "1//one",
               "access_token": "ya29.old", "expiry": expiry, "project_id": "one-project",
               "email": "one@example.com"})
        .to_string(),
    )
    .unwrap();
}

/// Where the replicas keep state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Local,
    Redis,
}

/// Two replicas (one gateway twice, for the local engine) in front of `upstream`.
struct Replicas {
    a: Gateway,
    b: Option<Gateway>,
    _dirs: tempfile::TempDir,
    redis: Option<Redis>,
}

impl Replicas {
    async fn start(engine: Engine, upstream: &MockUpstream, expired: bool, keys: &str) -> Self {
        let dirs = tempfile::tempdir().unwrap();
        let redis = (engine == Engine::Redis).then(Redis::start);
        let prefix = format!("test-{}", uuid_like());
        let config = |name: &str| {
            let accounts = dirs.path().join(name);
            account(&accounts, expired);
            let mock = upstream.url();
            let state = match &redis {
                Some(redis) => format!(
                    "[state]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}\"\nusage_db = \"\"\n",
                    redis.url()
                ),
                None => format!(
                    "[state]\nusage_db = \"{}\"\n",
                    dirs.path().join("usage.sqlite").display()
                ),
            };
            format!(
                "[server]\nadmin_keys = [\"root\"]\n{keys}\n{state}\
                 [antigravity]\ncredentials_dir = \"{}\"\nbase_urls = [\"{mock}\"]\n\
                 token_url = \"{mock}/token\"\nselection = \"round-robin\"\n\
                 [backends.antigravity]\nkind = \"antigravity\"\n",
                accounts.display()
            )
        };
        let a = Gateway::start(&config("a")).await;
        let b = match engine {
            Engine::Redis => Some(Gateway::start(&config("b")).await),
            Engine::Local => None,
        };
        let replicas = Self {
            a,
            b,
            _dirs: dirs,
            redis,
        };
        if engine == Engine::Redis {
            for gateway in replicas.both() {
                until(gateway, "/admin/backends", |v| v["state"]["up"] == true).await;
            }
        }
        replicas
    }

    fn b(&self) -> &Gateway {
        self.b.as_ref().unwrap_or(&self.a)
    }

    fn both(&self) -> [&Gateway; 2] {
        [&self.a, self.b()]
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Poll an admin path (bounded) until `ready` holds of its JSON.
async fn until(gateway: &Gateway, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let answer = get_as(gateway, "root", path).await;
        last = answer.json();
        if answer.status == StatusCode::OK && ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{path} never showed what was expected: {last}");
}

async fn chat(gateway: &Gateway, key: &str) -> Answer {
    post_as(
        gateway,
        key,
        "/v1/chat/completions",
        &json!({"model": "gemini-3-pro", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await
}

fn generate_calls(upstream: &MockUpstream) -> usize {
    upstream
        .recorded()
        .iter()
        .filter(|r| r.uri.path().ends_with("streamGenerateContent"))
        .count()
}

async fn a_cooldown_learned_by_one_replica_is_honoured_by_the_other(engine: Engine) {
    let upstream = MockUpstream::start().await.unwrap();
    let replicas = Replicas::start(engine, &upstream, false, "").await;
    upstream.push(quota_429("3600s"));
    let first = chat(&replicas.a, "root").await;
    assert_eq!(
        first.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        first.text()
    );
    until(replicas.b(), "/admin/accounts", |v| {
        v["data"][0]["cooldowns"]["gemini-3-pro-high"].as_u64() > Some(3000)
    })
    .await;
    let calls = generate_calls(&upstream);
    let second = chat(replicas.b(), "root").await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert!(second.header("retry-after").parse::<u64>().unwrap() > 3000);
    assert_eq!(
        generate_calls(&upstream),
        calls,
        "the cooling account was not tried"
    );
}

async fn an_expired_token_is_refreshed_once_for_twelve_requests(engine: Engine) {
    let upstream = MockUpstream::start().await.unwrap();
    let replicas = Replicas::start(engine, &upstream, true, "").await;
    let requests = (0..12).map(|i| chat(replicas.both()[i % 2], "root"));
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let refreshes = upstream
        .recorded()
        .iter()
        .filter(|r| r.uri.path().ends_with("/token"))
        .count();
    assert_eq!(refreshes, 1, "one refresh across the replicas");
    for request in upstream
        .recorded()
        .iter()
        .filter(|r| r.uri.path().ends_with("streamGenerateContent"))
    {
        assert_eq!(
            request.headers["authorization"], "Bearer ya29.mock-fresh-token",
            "every call used the refreshed token"
        );
    }
}

async fn rpm_holds_across_replicas(engine: Engine) {
    let upstream = MockUpstream::start().await.unwrap();
    let keys = "[[keys]]\nname = \"alice\"\nkey = \"alice-key\"\nrpm = 3\n";
    let replicas = Replicas::start(engine, &upstream, false, keys).await;
    for gateway in [&replicas.a, replicas.b(), &replicas.a] {
        let answer = chat(gateway, "alice-key").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    for gateway in replicas.both() {
        let refused = chat(gateway, "alice-key").await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            refused.text()
        );
        assert!(refused.header("retry-after").parse::<u64>().unwrap() >= 1);
        assert!(
            refused.text().contains("3 requests per minute"),
            "{}",
            refused.text()
        );
    }
}

async fn usage_recorded_on_either_is_visible_on_both(engine: Engine) {
    let upstream = MockUpstream::start().await.unwrap();
    let replicas = Replicas::start(engine, &upstream, false, "").await;
    for gateway in replicas.both() {
        let answer = chat(gateway, "root").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    for gateway in replicas.both() {
        let usage = until(gateway, "/admin/usage?group_by=backend", |v| {
            v["data"][0]["requests"] == 2
        })
        .await;
        assert_eq!(usage["data"][0]["backend"], "antigravity", "{usage}");
        assert!(
            usage["data"][0]["input_tokens"].as_u64().unwrap() > 0,
            "{usage}"
        );
    }
}

#[tokio::test]
async fn local_a_cooldown_is_honoured() {
    a_cooldown_learned_by_one_replica_is_honoured_by_the_other(Engine::Local).await;
}

#[tokio::test]
async fn redis_a_cooldown_learned_by_one_replica_is_honoured_by_the_other() {
    a_cooldown_learned_by_one_replica_is_honoured_by_the_other(Engine::Redis).await;
}

#[tokio::test]
async fn local_an_expired_token_is_refreshed_once_for_twelve_requests() {
    an_expired_token_is_refreshed_once_for_twelve_requests(Engine::Local).await;
}

#[tokio::test]
async fn redis_an_expired_token_is_refreshed_once_for_twelve_requests_over_both() {
    an_expired_token_is_refreshed_once_for_twelve_requests(Engine::Redis).await;
}

#[tokio::test]
async fn local_rpm_holds() {
    rpm_holds_across_replicas(Engine::Local).await;
}

#[tokio::test]
async fn redis_rpm_holds_across_replicas() {
    rpm_holds_across_replicas(Engine::Redis).await;
}

#[tokio::test]
async fn local_usage_is_visible() {
    usage_recorded_on_either_is_visible_on_both(Engine::Local).await;
}

#[tokio::test]
async fn redis_usage_recorded_on_either_is_visible_on_both() {
    usage_recorded_on_either_is_visible_on_both(Engine::Redis).await;
}

#[tokio::test]
async fn without_redis_both_replicas_serve_and_when_it_returns_the_state_converges() {
    let upstream = MockUpstream::start().await.unwrap();
    let mut replicas = Replicas::start(Engine::Redis, &upstream, false, "").await;
    replicas.redis.as_mut().unwrap().stop();
    for gateway in replicas.both() {
        until(gateway, "/admin/backends", |v| v["state"]["up"] == false).await;
        let answer = chat(gateway, "root").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let metrics = get_as(&replicas.a, "root", "/metrics").await.text();
    assert!(metrics.contains("gateway_state_up 0"), "{metrics}");

    // Learned while Redis is away: a cooldown on A only.
    upstream.push(quota_429("3600s"));
    let cooled = chat(&replicas.a, "root").await;
    assert_eq!(cooled.status, StatusCode::TOO_MANY_REQUESTS);
    let b = get_as(replicas.b(), "root", "/admin/accounts").await.json();
    assert!(
        b["data"][0]["cooldowns"].as_object().unwrap().is_empty(),
        "{b}"
    );

    replicas.redis.as_mut().unwrap().restart();
    for gateway in replicas.both() {
        until(gateway, "/admin/backends", |v| v["state"]["up"] == true).await;
    }
    until(replicas.b(), "/admin/accounts", |v| {
        v["data"][0]["cooldowns"]["gemini-3-pro-high"].as_u64() > Some(3000)
    })
    .await;
    let metrics = get_as(&replicas.a, "root", "/metrics").await.text();
    assert!(metrics.contains("gateway_state_up 1"), "{metrics}");
}
