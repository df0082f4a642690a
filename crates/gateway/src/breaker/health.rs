//! Active health checks: a backend with `health_path` is asked `GET <base_url><health_path>`
//! every `health_interval`, within `health_timeout` (5 s by default, as the original system
//! did), whether or not any request is using it.
//!
//! Why: passive breakers only learn from live traffic, so a backend that recovered is found
//! again only when a probe happens to be sent, and one that died is found only by the requests
//! that pay for it. A check result feeds [`Breakers::checked`](super::Breakers::checked): two
//! failures in a row take the backend out of every chain, a success brings it back at once
//! (its open breakers become half-open).

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use gateway_core::{CallOptions, Expect, Timeouts, body};

use crate::app::{App, Backend};

/// The most of a health answer that is read.
const MAX_BODY: usize = 64 << 10;

/// Start one checking task per backend that has a `health_path` and an HTTP upstream. The
/// tasks hold the state weakly and end when it is dropped or the gateway shuts down.
pub(crate) fn spawn(app: &Arc<App>) {
    for (index, backend) in app.backends.iter().enumerate() {
        if backend.config.health_path.is_some() && backend.reach.forwarder().is_some() {
            tokio::spawn(run(Arc::downgrade(app), index));
        }
    }
}

async fn run(app: Weak<App>, index: usize) {
    let Some(interval) = app
        .upgrade()
        .and_then(|app| app.backends.get(index).map(|b| b.config.health_interval))
    else {
        return;
    };
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(app) = app.upgrade() else { return };
        if app.closing.is_cancelled() {
            return;
        }
        let Some(backend) = app.backends.get(index) else {
            return;
        };
        let outcome = check(backend).await;
        if let Err(message) = &outcome {
            tracing::info!(backend = %backend.config.name, error = %message, "health check failed");
        }
        app.breakers.checked(&backend.config.name, outcome);
    }
}

/// One check: a 2xx within the timeout is healthy; anything else says why not.
pub(crate) async fn check(backend: &Backend) -> Result<(), String> {
    let config = &backend.config;
    let (Some(path), Some(forwarder)) = (config.health_path.as_deref(), backend.reach.forwarder())
    else {
        return Err("no health check is configured".to_owned());
    };
    let timeout = config.health_timeout;
    let options = CallOptions {
        timeouts: Timeouts {
            headers: Some(timeout),
            first_byte: Some(timeout),
            idle: Some(timeout),
            total: Some(timeout),
        },
        expect: Expect::Any,
    };
    let asked = async {
        let response = forwarder
            .forward(Method::GET, path, &HeaderMap::new(), body::empty(), options)
            .await
            .map_err(|e| e.message().to_owned())?;
        http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|_| ())
            .map_err(|e| format!("health answer: {e}"))
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no health answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::Config;

    /// A server that answers every request with `status` (empty body).
    async fn answering(status: u16) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, task)
    }

    fn state(url: &str) -> Arc<App> {
        let toml = format!(
            "[antigravity]\ncredentials_dir = \"/nonexistent/gateway-health-test\"\n[backends.up]\nkind = \"openai\"\nbase_url = \"{url}/v1\"\nhealth_path = \"/models\"\nhealth_interval = \"1s\"\n"
        );
        let config = Config::parse(&toml, "test.toml", &|_| None).unwrap();
        Arc::new(App::new(config, crate::state::Shared::default()).unwrap())
    }

    #[tokio::test]
    async fn checks_mark_a_backend_down_and_up_without_traffic() {
        let (url, server) = answering(503).await;
        let app = state(&url);
        assert!(check(&app.backends[0]).await.is_err(), "a 503 is unhealthy");
        spawn(&app);
        let down = async {
            while app.breakers.health("up").is_none_or(|h| h.up) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), down)
            .await
            .expect("two failed checks mark it down");
        assert!(!app.breakers.usable("up", "m"));
        server.abort();

        let (url, _server) = answering(200).await;
        let healthy = state(&url);
        assert_eq!(check(&healthy.backends[0]).await, Ok(()));
        healthy.breakers.checked("up", Ok(()));
        assert!(healthy.breakers.health("up").is_some_and(|h| h.up));
    }
}
