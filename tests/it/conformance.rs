//! Fault-injection conformance: what the client sees, and what each upstream was asked, when a
//! provider misbehaves in every way `docs/reliability.md` lists. Paused time throughout.
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
    setup_with("", "").await
}

/// The usual pair, with `primary` (more keys of the primary's table) and `extra` (more tables)
/// added to the configuration.
async fn setup_with(primary_keys: &str, extra: &str) -> Setup {
    pair("openai", "v1", primary_keys, extra).await
}

/// Two backends of `kind` at `{mock}/{root}` (the primary first), with `primary_keys` added to
/// the primary's table and `extra` to the configuration.
async fn pair(kind: &str, root: &str, primary_keys: &str, extra: &str) -> Setup {
    let primary = MockUpstream::start().await.unwrap();
    let secondary = MockUpstream::start().await.unwrap();
    let backend = |name: &str, mock: &MockUpstream, priority: u8, keys: &str| {
        format!(
            "[backends.{name}]\nkind = \"{kind}\"\nbase_url = \"{}/{root}\"\npriority = {priority}\nmodels = [\"m*\"]\nfirst_byte_timeout = \"5s\"\nidle_timeout = \"3s\"\ntimeout = \"60s\"\n{keys}",
            mock.url()
        )
    };
    let config = format!(
        "{}{}{extra}",
        backend("primary", &primary, 1, primary_keys),
        backend("secondary", &secondary, 2, "")
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

/// Ten chunks, the connection dropped after `sent` of them: a stream cut after its content.
fn cut_after(sent: usize) -> Behaviour {
    Behaviour {
        chunks: 10,
        drop_after: Some(sent),
        ..Behaviour::default()
    }
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

/// A route over the usual pair that does not rescue broken streams.
const NO_RESCUE: &str =
    "[[routes]]\nmodels = [\"m\"]\nchain = [\"primary\", \"secondary\"]\nrescue = \"off\"\n";

#[tokio::test(start_paused = true)]
async fn a_stream_cut_mid_answer_ends_with_an_error_event() {
    let s = setup_with("", NO_RESCUE).await;
    s.primary.push(cut_after(4));
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
    let s = setup_with("", NO_RESCUE).await;
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
    // Bytes that are not UTF-8, before any content (the mock's second event): the event
    // decoder cannot go on after them, so the hop failed, invisibly.
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
    // After content: a broken last event is skipped, and then the stream is cut (no finish).
    let s = setup_with("", NO_RESCUE).await;
    s.primary.push(sse_body(&[
        chunk(0),
        chunk(1),
        "data: {\"choices\": [broken\n\n".to_owned(),
    ]));
    let answer = s.ask(true).await;
    let last = assert_failed_stream(&answer);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a finish"),
        "{last}"
    );
    assert!(!answer.text().contains("broken"));
}

fn chunk(index: usize) -> String {
    String::from_utf8(mock::chunk_event("m", index)).unwrap()
}

/// A literal event stream.
fn sse_body(events: &[String]) -> Behaviour {
    Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(Bytes::from(events.concat())),
        ..Behaviour::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_event_is_skipped_and_the_stream_goes_on() {
    let s = setup().await;
    let broken = "data: {\"choices\": [broken\n\n".to_owned();
    let finish = String::from_utf8(mock::finish_event("m")).unwrap();
    let done = "data: [DONE]\n\n".to_owned();
    // After the commit: skipped, and the rest of the answer arrives.
    s.primary.push(sse_body(&[
        chunk(0),
        chunk(1),
        broken.clone(),
        chunk(2),
        finish.clone(),
        done.clone(),
    ]));
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(answer.header("x-gateway-attempts"), "primary:200");
    let expected = [chunk(0), chunk(1), chunk(2), finish.clone(), done.clone()].concat();
    assert_eq!(answer.text(), expected, "everything but the broken event");

    // Before the commit: skipped too, not a failure.
    s.primary.push(sse_body(&[
        chunk(0),
        broken.clone(),
        chunk(1),
        finish.clone(),
        done.clone(),
    ]));
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(answer.header("x-gateway-attempts"), "primary:200");
    assert!(answer.text().contains("tok1") && !answer.text().contains("broken"));

    // Unless it is all there is: then the hop failed, and the chain moves on.
    s.primary.push(sse_body(std::slice::from_ref(&broken)));
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:unavailable,secondary:200"
    );

    // Inside a tool call's arguments it cannot be skipped: the stream ends honestly.
    let call = |arguments: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
                "type": "function", "function": {"name": "f", "arguments": arguments}}]},
                "finish_reason": null}]})
        )
    };
    s.primary.push(sse_body(&[
        chunk(0),
        call("{\"city\":"),
        broken,
        call("\"Paris\"}"),
        finish,
        done,
    ]));
    let answer = s.ask(true).await;
    let last = assert_failed_stream(&answer);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tool call"),
        "{last}"
    );
    assert!(!answer.text().contains("Paris"), "nothing after it is sent");
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
    assert_eq!(
        s.hits(),
        (2, 0),
        "neither retried nor failed over (the next hop sends the same model)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_context_length_400_fails_over_to_a_hop_with_another_model() {
    let s = setup_with(
        "",
        "[[routes]]\nmodels = [\"m\"]\nchain = [{ backend = \"primary\", model = \"m-small\" }, { backend = \"secondary\", model = \"m-small\" }, { backend = \"secondary\", model = \"m-large\" }]\n",
    )
    .await;
    s.primary.push(error_body(
        400,
        r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    ));
    let answer = s.ask(false).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:400,secondary:200"
    );
    assert_eq!(answer.header("x-gateway-model"), "m-large");
    assert_eq!(s.hits(), (1, 1), "the same small model was not asked again");
    assert_eq!(s.secondary.recorded()[0].json()["model"], "m-large");
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_is_down_opens_its_breaker_then_recovers() {
    let s = setup().await;
    // Down: every call fails until the script runs out.
    for _ in 0..5 {
        s.primary.push(status(502));
    }
    for _ in 0..3 {
        let answer = s.ask(false).await;
        assert_eq!(
            answer.header("x-gateway-backend"),
            "secondary",
            "{}",
            answer.text()
        );
    }
    assert_eq!(
        s.primary.requests(),
        5,
        "two attempts per request until the breaker opened, and no retry once it did"
    );
    // Open: the primary is skipped entirely.
    for _ in 0..5 {
        assert_eq!(
            s.ask(false).await.header("x-gateway-attempts"),
            "secondary:200"
        );
    }
    assert_eq!(s.primary.requests(), 5);
    let admin = crate::harness::get(&s.gateway.url("/admin/backends"))
        .await
        .json();
    assert_eq!(admin["circuits"][0]["state"], "open", "{admin}");
    let metrics = crate::harness::get(&s.gateway.url("/metrics")).await.text();
    assert!(
        metrics.lines().any(|line| line
            .starts_with("gateway_circuit_state{backend=\"primary\",model=")
            && line.ends_with("} 1")),
        "{metrics}"
    );
    // Recovered: after the open period one live call probes it, and its success closes it.
    tokio::time::advance(Duration::from_secs(11)).await;
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
    assert_eq!(
        answer.header("x-gateway-backend"),
        "secondary",
        "{}",
        answer.text()
    );
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
        "gateway_attempts_total{backend=\"primary\",model=\"m*\",outcome=\"429\"} 1",
        "gateway_attempts_total{backend=\"secondary\",model=\"m*\",outcome=\"ok\"} 1",
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

#[tokio::test(start_paused = true)]
async fn a_primary_down_for_60s_is_used_again_within_30s_of_recovering() {
    // The primary answers 502 while the client's requests carry `x-mock-status: 502`, which
    // only the primary is sent.
    let s = setup_with("forward_headers = [\"x-mock-status\"]\n", "").await;
    let start = tokio::time::Instant::now();
    let mut increases: Vec<(u64, usize)> = Vec::new();
    let mut back_at = None;
    for second in 0..100u64 {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        let down = second < 60;
        let headers: &[(&str, &str)] = if down {
            &[
                ("content-type", "application/json"),
                ("x-mock-status", "502"),
            ]
        } else {
            &[("content-type", "application/json")]
        };
        let before = s.primary.requests();
        let answer = crate::harness::send(
            Method::POST,
            &s.gateway.url("/v1/chat/completions"),
            headers,
            request(false).to_string(),
        )
        .await;
        assert_eq!(answer.status, 200, "at {second} s: {}", answer.text());
        let asked = s.primary.requests() - before;
        if asked > 0 {
            increases.push((second, asked));
        }
        if !down && answer.header("x-gateway-backend") == "primary" && back_at.is_none() {
            back_at = Some(second);
        }
    }
    // Opening: 2 + 2 + 1 attempts (no retry once the breaker opened during the third request).
    assert_eq!(&increases[..3], &[(0, 2), (1, 2), (2, 1)], "{increases:?}");
    // Then, while it is down, one probe at a time, at least the first open period (10 s)
    // apart: at 12 s, then 20 s later, then 30 s (the cap) later.
    let probes: Vec<(u64, usize)> = increases[3..]
        .iter()
        .copied()
        .filter(|(second, _)| *second < 60)
        .collect();
    assert_eq!(probes, [(12, 1), (32, 1)], "{increases:?}");
    let back_at = back_at.expect("the primary serves again");
    assert_eq!(
        back_at, 62,
        "the probe after the capped open period: {increases:?}"
    );
    assert!(
        back_at - 60 <= 30,
        "the recovered primary served again {} s after it recovered ({increases:?})",
        back_at - 60
    );
}

#[tokio::test(start_paused = true)]
async fn hedging_answers_a_slow_first_token_from_the_next_hop() {
    let s = setup_with(
        "",
        "[[routes]]\nmodels = [\"m\"]\nchain = [\"primary\", \"secondary\"]\nhedge_after = \"2s\"\n",
    )
    .await;
    s.primary.push(Behaviour {
        first_chunk_delay: Duration::from_secs(20),
        ..Behaviour::default()
    });
    let started = tokio::time::Instant::now();
    let answer = s.ask(true).await;
    let took = started.elapsed();
    assert_clean_stream(&answer);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        answer.header("x-gateway-attempts"),
        "primary:hedged,secondary:200"
    );
    assert_eq!(answer.body, mock::stream_bytes("m", 3));
    assert!(
        s.primary
            .wait_until(Duration::from_secs(1), |m| m.aborts() == 1)
            .await,
        "the slow hop is cancelled"
    );
    // Not counted as a failure: the next request goes to the primary first, and it is fast.
    let answer = s.ask(true).await;
    assert_eq!(answer.header("x-gateway-attempts"), "primary:200");
    // A non-streaming request is not hedged.
    s.primary.push(Behaviour {
        first_chunk_delay: Duration::from_secs(3),
        ..Behaviour::default()
    });
    assert_eq!(
        s.ask(false).await.header("x-gateway-attempts"),
        "primary:200"
    );
}

/// An Anthropic Messages request for `m` (served by the OpenAI mocks through the conversation).
fn messages_request(tools: bool) -> Value {
    let mut request = json!({"model": "m", "max_tokens": 256, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    if tools {
        request["tools"] = json!([{"name": "weather", "description": "w",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    }
    request
}

/// The JSON of every event of an SSE body.
fn event_values(answer: &Answer) -> Vec<Value> {
    events(&answer.body)
        .iter()
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}

/// The text an Anthropic client assembles from the stream, and the number of events of `kind`.
fn anthropic_text(answer: &Answer) -> String {
    event_values(answer)
        .iter()
        .filter(|e| e["type"] == "content_block_delta" && e["delta"]["type"] == "text_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn count(answer: &Answer, kind: &str) -> usize {
    event_values(answer)
        .iter()
        .filter(|e| e["type"] == kind)
        .count()
}

/// The mock's answer text for content chunks 1..chunks.
fn mock_text(chunks: usize) -> String {
    (1..chunks).map(|i| format!("tok{i} 世界🌏 ")).collect()
}

/// One clean Anthropic answer with exactly `text`: one message, one finish, no error.
fn assert_one_anthropic_answer(answer: &Answer, text: &str) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(anthropic_text(answer), text, "{}", answer.text());
    assert_eq!(count(answer, "message_start"), 1, "{}", answer.text());
    assert_eq!(count(answer, "message_delta"), 1, "{}", answer.text());
    assert_eq!(count(answer, "message_stop"), 1, "{}", answer.text());
    assert_eq!(count(answer, "error"), 0, "{}", answer.text());
}

impl Setup {
    async fn ask_messages(&self, tools: bool) -> Answer {
        post(&self.gateway.url("/v1/messages"), &messages_request(tools)).await
    }
}

/// A Claude client's stream cut after four of ten chunks is continued on the next hop: one
/// clean answer with the text (`text(chunks)` is the mock's text of that many chunks) whole and
/// once, the next hop asked with the delivered text as an assistant prefill.
async fn assert_anthropic_stream_continued(s: &Setup, text: impl Fn(usize) -> String) {
    s.primary.push(cut_after(4));
    // The next hop ignores the prefill and starts over: the repeated beginning is removed.
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let answer = s.ask_messages(false).await;
    assert_one_anthropic_answer(&answer, &text(10));
    assert_eq!(answer.header("x-gateway-backend"), "primary");
    assert_eq!(s.hits(), (1, 1));
    // Asked with the delivered text as an assistant prefill (without its trailing space).
    let asked = s.secondary.recorded()[0].json();
    let last = asked["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "assistant", "{asked}");
    assert_eq!(last["content"], text(4).trim_end(), "{asked}");
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_after_content_is_continued_on_the_next_hop() {
    assert_anthropic_stream_continued(&setup().await, mock_text).await;
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_is_continued_where_the_next_hop_refuses_a_prefill() {
    let s = setup().await;
    s.primary.push(cut_after(4));
    s.secondary.push(error_body(
        400,
        r#"{"error":{"message":"This model does not support assistant message prefill. The conversation must end with a user message.","type":"invalid_request_error","param":null,"code":null}}"#,
    ));
    // This one continues exactly after the delivered text.
    let continuation: Vec<String> = (4..8)
        .map(|i| {
            format!(
                "data: {}\n\n",
                json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": format!("tok{i} 世界🌏 ")}, "finish_reason": null}]})
            )
        })
        .chain([
            String::from_utf8(mock::finish_event("m")).unwrap(),
            "data: [DONE]\n\n".to_owned(),
        ])
        .collect();
    s.secondary.push(sse_body(&continuation));
    let answer = s.ask_messages(false).await;
    assert_one_anthropic_answer(&answer, &mock_text(8));
    assert_eq!(s.hits(), (1, 2));
    let asked = s.secondary.recorded()[1].json();
    let last = asked["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["role"], "user",
        "an explicit instruction instead: {asked}"
    );
    assert!(last["content"].as_str().unwrap().contains("Continue"));
    // Remembered: the next rescue on that hop asks without a prefill at once.
    s.primary.push(cut_after(4));
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    assert_one_anthropic_answer(&s.ask_messages(false).await, &mock_text(10));
    assert_eq!(s.hits(), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_continued_on_the_next_hop() {
    let s = setup().await;
    s.primary.push(Behaviour {
        chunks: 10,
        stall_after: Some(3),
        ..Behaviour::default()
    });
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let started = tokio::time::Instant::now();
    let answer = s.ask_messages(false).await;
    assert_one_anthropic_answer(&answer, &mock_text(10));
    assert!(
        started.elapsed() >= Duration::from_secs(3) && started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        s.primary
            .wait_until(Duration::from_secs(1), |m| m.aborts() == 1)
            .await,
        "the stalled upstream is cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_responses_stream_cut_is_continued_too() {
    let s = setup().await;
    s.primary.push(cut_after(4));
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let answer = post(
        &s.gateway.url("/v1/responses"),
        &json!({"model": "m", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text: String = event_values(&answer)
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, mock_text(10), "{}", answer.text());
    assert_eq!(count(&answer, "response.completed"), 1, "{}", answer.text());
    assert_eq!(count(&answer, "response.failed"), 0, "{}", answer.text());
}

#[tokio::test(start_paused = true)]
async fn a_cut_inside_a_tool_call_is_not_rescued() {
    let s = setup().await;
    let call = format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
            "type": "function", "function": {"name": "weather", "arguments": "{\"city\":"}}]},
            "finish_reason": null}]})
    );
    s.primary.push(sse_body(&[chunk(0), call]));
    let answer = s.ask_messages(true).await;
    assert_eq!(answer.status, 200);
    let values = event_values(&answer);
    assert_eq!(values.last().unwrap()["type"], "error", "{}", answer.text());
    assert_eq!(count(&answer, "message_stop"), 0);
    assert_eq!(s.hits(), (1, 0), "the next hop was not asked");
}

#[tokio::test(start_paused = true)]
async fn a_route_without_rescue_ends_a_broken_stream_with_the_error() {
    let s = setup_with("", NO_RESCUE).await;
    s.primary.push(cut_after(4));
    let answer = s.ask_messages(false).await;
    assert_eq!(anthropic_text(&answer), mock_text(4));
    assert_eq!(event_values(&answer).last().unwrap()["type"], "error");
    assert_eq!(s.hits(), (1, 0));
}

/// The text an OpenAI SDK assembles from a Chat stream (the concatenated content deltas), and
/// the finish reasons it saw.
fn chat_text(answer: &Answer) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut finishes = Vec::new();
    for chunk in event_values(answer) {
        assert!(chunk.get("error").is_none(), "{}", answer.text());
        assert_eq!(chunk["id"], "chatcmpl-mock", "one response id");
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if let Some(piece) = choice["delta"]["content"].as_str() {
                text.push_str(piece);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finishes.push(reason.to_owned());
            }
        }
    }
    (text, finishes)
}

#[tokio::test(start_paused = true)]
async fn a_chat_stream_cut_after_content_is_continued_on_the_next_hop() {
    let s = setup().await;
    s.primary.push(cut_after(4));
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    let (text, finishes) = chat_text(&answer);
    assert_eq!(text, mock_text(10), "the text whole, and once");
    assert_eq!(finishes, ["stop"]);
    assert!(
        answer.text().starts_with(&mock_text_events(4)),
        "the first hop's bytes as it wrote them"
    );
    assert_eq!(
        answer.text().matches("\"role\":\"assistant\"").count(),
        1,
        "one role chunk"
    );
    assert_eq!(s.hits(), (1, 1));
    let asked = s.secondary.recorded()[0].json();
    assert_eq!(asked["messages"][1]["role"], "assistant", "{asked}");
}

/// The first `chunks` events of a mock stream, as the client received them.
fn mock_text_events(chunks: usize) -> String {
    (0..chunks).map(chunk).collect()
}

#[tokio::test(start_paused = true)]
async fn a_chat_stream_is_continued_where_the_next_hop_refuses_a_prefill() {
    let s = setup().await;
    s.primary.push(cut_after(4));
    s.secondary.push(error_body(
        400,
        r#"{"error":{"message":"assistant prefill is not supported for this model","type":"invalid_request_error","param":null,"code":null}}"#,
    ));
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    let (text, finishes) = chat_text(&answer);
    assert_eq!(text, mock_text(10));
    assert_eq!(finishes, ["stop"]);
    assert_eq!(s.hits(), (1, 2));
    assert!(
        !answer.text().contains("prefill"),
        "the refusal never reaches the client"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_chat_stream_is_continued_on_the_next_hop() {
    let s = setup().await;
    s.primary.push(Behaviour {
        chunks: 10,
        stall_after: Some(3),
        ..Behaviour::default()
    });
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let answer = s.ask(true).await;
    assert_clean_stream(&answer);
    assert_eq!(chat_text(&answer).0, mock_text(10));
}

/// Two Anthropic-compatible backends (Claude clients' streams pass through byte for byte).
async fn anthropic_pair() -> Setup {
    pair("anthropic", "v1", "", "").await
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_stream_passed_through_is_continued_on_the_next_hop() {
    // The mock's own Anthropic stream counts from tok0.
    let native =
        |chunks: usize| -> String { (0..chunks).map(|i| format!("tok{i} 世界🌏 ")).collect() };
    assert_anthropic_stream_continued(&anthropic_pair().await, native).await;
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_tool_call_cut_passed_through_is_not_rescued() {
    let s = anthropic_pair().await;
    s.primary.push(cut_after(2));
    let answer = s.ask_messages(true).await;
    assert_eq!(count(&answer, "error"), 1, "{}", answer.text());
    assert_eq!(count(&answer, "message_stop"), 0, "{}", answer.text());
    assert_eq!(s.hits(), (1, 0), "a half-sent call is not continued");
}

/// Ask with `ask` twice: once answered whole by the primary (for comparison), once cut after
/// four of ten chunks there and continued on the secondary (a 200, checked).
async fn whole_then_cut<F>(s: &Setup, ask: impl Fn() -> F) -> (Answer, Answer)
where
    F: std::future::Future<Output = Answer>,
{
    s.primary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let whole = ask().await;
    s.primary.push(cut_after(4));
    s.secondary.push(Behaviour {
        chunks: 10,
        ..Behaviour::default()
    });
    let cut = ask().await;
    assert_eq!(cut.status, 200, "{}", cut.text());
    (whole, cut)
}

/// The text of a Gemini SSE answer, and how many finish reasons it carried.
fn gemini_text(answer: &Answer) -> (String, usize) {
    let mut text = String::new();
    let mut finishes = 0;
    for data in crate::harness::events(answer.body.as_ref()) {
        let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        for part in chunk["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            text += part["text"].as_str().unwrap_or("");
        }
        finishes += usize::from(chunk["candidates"][0]["finishReason"].is_string());
    }
    (text, finishes)
}

#[tokio::test(start_paused = true)]
async fn a_gemini_stream_passed_through_is_continued_on_the_next_hop() {
    let s = pair("gemini", "v1beta", "api_key = \"k\"\n", "").await;
    let url = s
        .gateway
        .url("/v1beta/models/m:streamGenerateContent?alt=sse");
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (whole, answer) = whole_then_cut(&s, || post(&url, &body)).await;
    let (expected, _) = gemini_text(&whole);
    let (text, finishes) = gemini_text(&answer);
    assert_eq!(
        text,
        expected,
        "the text whole, and once: {}",
        answer.text()
    );
    assert_eq!(finishes, 1, "{}", answer.text());
    assert!(!answer.text().contains("\"error\""), "{}", answer.text());
    assert_eq!(s.hits(), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_responses_stream_passed_through_is_continued_with_its_ids_and_numbers() {
    let s = pair("openai", "v1", "native_responses = true\n", "").await;
    let url = s.gateway.url("/v1/responses");
    let body = json!({"model": "m", "stream": true, "input": "hi"});
    let (whole, answer) = whole_then_cut(&s, || post(&url, &body)).await;
    let text_of = |answer: &Answer| -> (String, Vec<Value>) {
        let events: Vec<Value> = crate::harness::events(answer.body.as_ref())
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect();
        let text = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap_or("").to_owned())
            .collect();
        (text, events)
    };
    let (expected, _) = text_of(&whole);
    assert!(!expected.is_empty(), "{}", whole.text());
    let (text, events) = text_of(&answer);
    assert_eq!(
        text,
        expected,
        "the text whole, and once: {}",
        answer.text()
    );
    let completed = events
        .iter()
        .filter(|e| e["type"] == "response.completed")
        .count();
    assert_eq!(completed, 1, "{}", answer.text());
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "error" || e["type"] == "response.failed"),
        "{}",
        answer.text()
    );
    // One numbering from the upstream's first event to the continuation's last.
    let numbers: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence_number"].as_u64())
        .collect();
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..first + numbers.len() as u64).collect::<Vec<_>>(),
        "{}",
        answer.text()
    );
    // Every text delta names the one message item the client was told of.
    let items: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["item_id"].as_str())
        .collect();
    assert_eq!(items.len(), 1, "{}", answer.text());
    assert_eq!(s.hits(), (2, 1));
}

/// A Gemini stream without `alt=sse` (one JSON array) to the pair of Gemini backends.
async fn ask_gemini_array(s: &Setup) -> Answer {
    post(
        &s.gateway.url("/v1beta/models/m:streamGenerateContent"),
        &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await
}

fn array_behaviour(body: &'static str) -> Behaviour {
    Behaviour {
        body: Some(Bytes::from_static(body.as_bytes())),
        content_type: Some("application/json".to_owned()),
        ..Behaviour::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_gemini_json_array_stream_is_relayed_element_by_element() {
    let s = pair("gemini", "v1beta", "", "").await;
    let answer = ask_gemini_array(&s).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .header("content-type")
            .starts_with("application/json")
    );
    // The same elements as the upstream's own answer.
    let direct = post(
        &format!(
            "{}/v1beta/models/m:streamGenerateContent",
            s.secondary.url()
        ),
        &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(answer.json(), direct.json(), "{}", answer.text());
    assert!(answer.json().as_array().unwrap().len() > 1);
}

#[tokio::test(start_paused = true)]
async fn a_gemini_json_array_cut_after_content_closes_with_an_error_element() {
    let s = pair(
        "gemini",
        "v1beta",
        "",
        "[[routes]]\nmodels = [\"m\"]\nchain = [\"primary\"]\n",
    )
    .await;
    // The upstream's array breaks off after one element.
    s.primary.push(array_behaviour(
        r#"[{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"}]},"index":0}]},{"candid"#,
    ));
    let answer = ask_gemini_array(&s).await;
    assert_eq!(
        answer.status,
        200,
        "the content was already on its way: {}",
        answer.text()
    );
    let elements = answer.json();
    let elements = elements.as_array().unwrap();
    assert_eq!(elements.len(), 2, "{}", answer.text());
    assert_eq!(
        elements[0]["candidates"][0]["content"]["parts"][0]["text"],
        "Hello"
    );
    assert!(
        elements[1]["error"]["message"].is_string(),
        "{}",
        answer.text()
    );
}

#[tokio::test(start_paused = true)]
async fn a_gemini_json_array_that_fails_before_content_fails_over() {
    let s = pair("gemini", "v1beta", "", "").await;
    s.primary.push(array_behaviour(
        r#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#,
    ));
    let answer = ask_gemini_array(&s).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // The 503 inside the 200 is retried (the same hop, then the next), never shown.
    assert!(
        answer
            .header("x-gateway-attempts")
            .starts_with("primary:503,"),
        "{}",
        answer.header("x-gateway-attempts")
    );
    assert!(!answer.text().contains("overloaded"), "{}", answer.text());
    let elements = answer.json();
    assert!(elements.as_array().unwrap().len() > 1, "{}", answer.text());
}
