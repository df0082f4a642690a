//! Fault-injection conformance: what the client sees, and what each upstream was asked, when a
//! provider misbehaves in every way `shared/docs/reliability.md` lists. Paused time throughout.
//!
//! The chain for model `m` is `primary` then `secondary` (both OpenAI-compatible mocks); faults
//! are scripted on the primary.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use test_support::{Behaviour, MockUpstream, mock};

use crate::harness::{Answer, Gateway, client, events, post};

struct Setup {
    primary: MockUpstream,
    secondary: MockUpstream,
    gateway: Gateway,
}

async fn setup() -> Setup {
    let primary = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    let backend = |name: &str, mock: &MockUpstream, priority: u8| {
        format!(
            "[backends.{name}]\nkind = \"openai\"\nbase_url = \"{}/v1\"\npriority = {priority}\nmodels = [\"m*\"]\nfirst_byte_timeout = \"5s\"\nidle_timeout = \"3s\"\ntimeout = \"60s\"\n",
            mock.url()
        )
    };
    let config = format!(
        "{}{}",
        backend("primary", &primary, 1),
        backend("secondary", &secondary, 2)
    );
    let gateway = Gateway::start(&config).await;
    Setup {
        primary,
        secondary,
        gateway,
    }
}

fn request(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

impl Setup {
    async fn ask(&self, stream: bool) -> Answer {
        post(&self.gateway.url("/v1/chat/completions"), &request(stream)).await
    }

    fn hits(&self) -> (usize, usize) {
        (self.primary.requests(), self.secondary.requests())
    }
}

fn status(code: u16) -> Behaviour {
    Behaviour {
        status: code,
        ..Behaviour::default()
    }
}

fn error_body(code: u16, body: &str) -> Behaviour {
    Behaviour {
        status: code,
        body: Some(Bytes::copy_from_slice(body.as_bytes())),
        ..Behaviour::default()
    }
}

/// A stream that ended normally: content, one finish, `[DONE]` last.
fn assert_clean_stream(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events = events(&answer.body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(!answer.text().contains("\"error\""), "{}", answer.text());
}

/// A stream that failed after it started: an error event last, no `[DONE]`, never a finish.
fn assert_failed_stream(answer: &Answer) -> Value {
    assert_eq!(answer.status, 200);
    let events = events(&answer.body);
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    assert!(
        !answer.text().contains("\"finish_reason\":\"stop\""),
        "a failure must never look like a finish"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    last
}

#[tokio::test(start_paused = true)]
async fn rate_limit_with_a_short_retry_after_waits_and_retries_the_same_hop() {
    let s = setup().await;
    s.primary.push(Behaviour {
        status: 429,
        retry_after: Some("1".into()),
        ..Behaviour::default()
    });
    let started = tokio::time::Instant::now();
    let answer = s.ask(false).await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:429,primary:200"
    );
    assert_eq!(s.hits(), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_without_a_hint_fails_over() {
    let s = setup().await;
    s.primary.push(status(429));
    let answer = s.ask(false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:429,secondary:200"
    );
    assert_eq!(s.hits(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_with_a_long_retry_after_cools_the_hop_down() {
    let s = setup().await;
    s.primary.push(Behaviour {
        status: 429,
        retry_after: Some("120".into()),
        ..Behaviour::default()
    });
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "primary:429,secondary:200"
    );
    // While it cools down the primary is not asked at all.
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "secondary:200"
    );
    assert_eq!(s.hits(), (1, 2));
    tokio::time::advance(Duration::from_secs(121)).await;
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "primary:200"
    );
}

#[tokio::test(start_paused = true)]
async fn a_500_once_is_retried_on_the_same_hop() {
    let s = setup().await;
    s.primary.push(status(500));
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:500,primary:200"
    );
    assert_eq!(s.hits(), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_persistent_503_fails_over_after_the_retry() {
    let s = setup().await;
    for _ in 0..2 {
        s.primary.push(status(503));
    }
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:503,primary:503,secondary:200"
    );
    assert_eq!(s.hits(), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_reset_before_headers_is_retried_then_failed_over() {
    let s = setup().await;
    for _ in 0..2 {
        s.primary.push(Behaviour {
            reset_before_headers: true,
            ..Behaviour::default()
        });
    }
    let answer = s.ask(false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:connect,primary:connect,secondary:200"
    );
    assert_eq!(s.hits(), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn no_response_at_all_fails_over_without_asking_the_silent_hop_again() {
    let s = setup().await;
    s.primary.push(Behaviour {
        headers_delay: Duration::from_secs(3600),
        ..Behaviour::default()
    });
    let started = tokio::time::Instant::now();
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:timeout,secondary:200"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.hits(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_token_fails_over_before_anything_is_sent() {
    let s = setup().await;
    s.primary.push(Behaviour {
        first_chunk_delay: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:timeout,secondary:200"
    );
    // No trace of the first hop in what the client received.
    assert_eq!(answer.body, mock::stream_bytes("m", 3));
    assert_eq!(s.hits(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_error_event_before_content_fails_over_invisibly() {
    let s = setup().await;
    // An error event is a server error: retried once on the same hop, then failed over.
    for _ in 0..2 {
        s.primary.push(Behaviour {
            error_event_after: Some(0),
            ..Behaviour::default()
        });
    }
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.body,
        mock::stream_bytes("m", 3),
        "no trace of the failed hop"
    );
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:502,primary:502,secondary:200"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_stream_fails_over() {
    let s = setup().await;
    s.primary.push(Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(Bytes::new()),
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:unavailable,secondary:200"
    );
    // A finish without content is an answer (an empty one), not a failure.
    s.primary.push(Behaviour {
        chunks: 0,
        ..Behaviour::default()
    });
    let empty = s.ask(true).await;
    assert_clean_stream(&empty);
    assert_eq!(empty.header("x-gateway-attempts"), "primary:200");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_content_type_fails_over() {
    let s = setup().await;
    s.primary.push(Behaviour {
        content_type: Some("text/html".into()),
        body: Some(Bytes::from_static(b"<html>maintenance</html>")),
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:unavailable,secondary:200"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_mid_answer_ends_with_an_error_event() {
    let s = setup().await;
    s.primary.push(Behaviour {
        chunks: 10,
        drop_after: Some(4),
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    let last = assert_failed_stream(&answer);
    assert!(
        answer
            .text()
            .starts_with(&String::from_utf8(mock::chunk_event("m", 0)).unwrap())
    );
    assert!(
        answer.text().contains("tok3"),
        "the content before the cut arrived"
    );
    assert_eq!(last["error"]["type"], "server_error");
    assert_eq!(s.hits(), (1, 0), "after the commit there is no retry");
}

#[tokio::test(start_paused = true)]
async fn a_stall_mid_stream_ends_with_an_error_event_at_the_idle_timeout() {
    let s = setup().await;
    s.primary.push(Behaviour {
        chunks: 10,
        stall_after: Some(3),
        ..Behaviour::default()
    });
    let started = tokio::time::Instant::now();
    let answer = s.ask(true).await;
    let last = assert_failed_stream(&answer);
    assert_eq!(last["error"]["type"], "timeout_error");
    assert!(
        started.elapsed() >= Duration::from_secs(3) && started.elapsed() < Duration::from_secs(5)
    );
    assert!(
        s.primary
            .wait_until(Duration::from_secs(1), |m| m.aborts() == 1)
            .await,
        "the stalled upstream is cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_malformed_event_is_never_forwarded() {
    // Before any content (the mock's second event is the broken one): failed over invisibly.
    let s = setup().await;
    s.primary.push(Behaviour {
        chunks: 5,
        invalid_utf8: true,
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:unavailable,secondary:200"
    );
    assert!(!answer.body.windows(2).any(|w| w == b"\xff\xfe"));
    // After content: the terminal error event, and the broken bytes never reach the client.
    s.primary.push(Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(Bytes::from(format!(
            "{}{}data: {{\"choices\": [broken\n\n",
            String::from_utf8(mock::chunk_event("m", 0)).unwrap(),
            String::from_utf8(mock::chunk_event("m", 1)).unwrap()
        ))),
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    let last = assert_failed_stream(&answer);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed event"),
        "{last}"
    );
    assert!(!answer.text().contains("broken"));
}

#[tokio::test(start_paused = true)]
async fn a_finished_stream_missing_done_is_finalised() {
    let s = setup().await;
    s.primary.push(Behaviour {
        no_done: true,
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(answer.body, mock::stream_bytes("m", 3), "[DONE] was added");
}

#[tokio::test(start_paused = true)]
async fn context_length_and_content_policy_400s_stop_with_the_providers_reason() {
    let s = setup().await;
    let context = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    let policy = r#"{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","param":null,"code":"content_policy_violation"}}"#;
    for (body, code) in [
        (context, "context_length_exceeded"),
        (policy, "content_policy_violation"),
    ] {
        s.primary.push(error_body(400, body));
        let answer = s.ask(false).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.envelope()["error"]["code"], code);
        assert_eq!(answer.header("x-gateway-attempts"), "primary:400");
    }
    assert_eq!(s.hits(), (2, 0), "neither retried nor failed over");
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_is_down_opens_its_breaker_then_recovers() {
    let s = setup().await;
    // Down: every call fails until the script runs out.
    for _ in 0..6 {
        s.primary.push(status(502));
    }
    for _ in 0..3 {
        let answer = s.ask(false).await;
        assert_eq!(answer.header("x-gateway-backend"), "secondary");
    }
    assert_eq!(
        s.primary.requests(),
        6,
        "two attempts per request until the breaker opened"
    );
    // Open: the primary is skipped entirely.
    for _ in 0..5 {
        assert_eq!(
            s.ask(false).await.header("x-gateway-attempts"),
            "secondary:200"
        );
    }
    assert_eq!(s.primary.requests(), 6);
    let admin = crate::harness::get(&s.gateway.url("/admin/backends"))
        .await
        .json();
    assert_eq!(admin["circuits"][0]["state"], "open", "{admin}");
    let metrics = crate::harness::get(&s.gateway.url("/metrics")).await.text();
    assert!(
        metrics.contains("gateway_circuit_state{backend=\"primary\",model=\"m\"} 1"),
        "{metrics}"
    );
    // Recovered: after the open period one live call probes it, and its success closes it.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "primary:200"
    );
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "primary:200"
    );
    let admin = crate::harness::get(&s.gateway.url("/admin/backends"))
        .await
        .json();
    assert_eq!(admin["circuits"][0]["state"], "closed");
}

#[tokio::test(start_paused = true)]
async fn accounting_after_failover_names_what_served() {
    let s = setup().await;
    s.primary.push(status(429));
    let answer = s.ask(false).await;
    let body = answer.json();
    assert_eq!(answer.header("x-gateway-backend"), "secondary");
    assert_eq!(answer.header("x-gateway-model"), "m");
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:429,secondary:200"
    );
    assert_eq!(body["model"], "m");
    assert_eq!(
        body["usage"]["total_tokens"], 11,
        "usage is the serving backend's"
    );
    let metrics = crate::harness::get(&s.gateway.url("/metrics")).await.text();
    for line in [
        "gateway_failovers_total{from=\"primary\",to=\"secondary\"} 1",
        "gateway_attempts_total{backend=\"primary\",model=\"m\",outcome=\"429\"} 1",
        "gateway_attempts_total{backend=\"secondary\",model=\"m\",outcome=\"ok\"} 1",
        "gateway_requests_total{endpoint=\"chat_completions\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("gateway_overhead_seconds_count 1"),
        "{metrics}"
    );
}

/// Send a request and give up after `after`, as a client that goes away.
async fn abandon(s: &Setup, stream: bool, after: Duration) {
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(s.gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(request(stream).to_string())))
        .unwrap();
    let client = client();
    let _ = tokio::time::timeout(after, async {
        let response = client.request(request).await.unwrap();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_cancels_the_upstream_in_every_phase() {
    let phases = [
        (
            "before the upstream answers",
            true,
            Behaviour {
                headers_delay: Duration::from_secs(4),
                ..Behaviour::default()
            },
        ),
        (
            "while waiting for the first token",
            true,
            Behaviour {
                first_chunk_delay: Duration::from_secs(4),
                ..Behaviour::default()
            },
        ),
        (
            "mid-stream",
            true,
            Behaviour {
                chunks: 100,
                interval: Duration::from_millis(200),
                ..Behaviour::default()
            },
        ),
        (
            "non-streaming",
            false,
            Behaviour {
                first_chunk_delay: Duration::from_secs(4),
                ..Behaviour::default()
            },
        ),
    ];
    for (phase, stream, behaviour) in phases {
        let s = setup().await;
        s.primary.push(behaviour);
        abandon(&s, stream, Duration::from_secs(2)).await;
        assert!(
            s.primary
                .wait_until(Duration::from_secs(1), |m| m.aborts() == 1)
                .await,
            "{phase}: the upstream was not cancelled within a second"
        );
        assert_eq!(s.hits(), (1, 0), "{phase}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_429s_without_hints_stays_within_the_budget() {
    let upstream = MockUpstream::start().await.unwrap();
    let config = format!(
        "[backends.only]\nkind = \"openai\"\nbase_url = \"{}/v1\"\nmax_retries = 3\n",
        upstream.url()
    );
    let gateway = Gateway::start(&config).await;
    for _ in 0..20 {
        upstream.push(status(429));
    }
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let url = gateway.url("/v1/chat/completions");
            tokio::spawn(async move { post(&url, &request(false)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().status, 429);
    }
    assert_eq!(
        upstream.requests(),
        20,
        "a rate-limited upstream is not asked again"
    );

    // Server errors are retried, but the global budget caps the extra load.
    for _ in 0..100 {
        upstream.push(status(500));
    }
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let url = gateway.url("/v1/chat/completions");
            tokio::spawn(async move { post(&url, &request(false)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().status, 500);
    }
    let extra = upstream.requests() - 40;
    assert!(
        extra <= 8,
        "{extra} retries for 40 requests in the window: over the 20% budget"
    );
}
