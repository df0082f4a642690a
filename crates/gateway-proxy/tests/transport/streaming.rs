use gateway_core::{ErrorKind, Expect, Timeouts};
use test_support::{MockUpstream, mock};

use crate::*;

#[tokio::test(start_paused = true)]
async fn a_long_stream_arrives_incrementally_and_byte_identical() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        true,
        &[
            ("x-mock-chunks", "200"),
            ("x-mock-interval-ms", "10"),
            ("x-mock-split-writes", "1"),
        ],
        CallOptions {
            timeouts: Timeouts::default(),
            expect: Expect::EventStream,
        },
    );
    let response = client().send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let (bytes, frames, error) = drain(response).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, mock::stream_bytes("m", 200));
    // Each event was written in two pieces 10 ms apart from the next event: a relay that
    // buffered would deliver far fewer frames.
    assert!(frames >= 200, "only {frames} frames: the body was buffered");
}

#[tokio::test(start_paused = true)]
async fn non_streaming_json_passes_through() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        false,
        &[],
        CallOptions {
            timeouts: Timeouts::default(),
            expect: Expect::Json,
        },
    );
    let response = client().send(request).await.unwrap();
    let (bytes, _, error) = drain(response).await;
    assert!(error.is_none());
    assert_eq!(bytes, mock::completion_json("m").as_bytes());
}

#[tokio::test(start_paused = true)]
async fn error_statuses_keep_status_body_and_retry_hint() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        true,
        &[("x-mock-status", "429"), ("x-mock-retry-after", "7")],
        options(Timeouts::default()),
    );
    let err = client().send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert_eq!(err.status().as_u16(), 429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.message(), "mock error 429");
    let body: serde_json::Value = serde_json::from_slice(err.upstream_body().unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "mock_error");
    assert!(err.allows_failover());

    let google = r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#;
    let request = chat(
        &upstream.url(),
        false,
        &[("x-mock-status", "400"), ("x-mock-body", google)],
        options(Timeouts::default()),
    );
    let err = client().send(request).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 400);
    assert_eq!(err.message(), "Invalid JSON payload received.");
    assert!(!err.allows_failover());
}

#[tokio::test(start_paused = true)]
async fn a_200_of_the_wrong_content_type_is_an_error() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        false,
        &[
            ("x-mock-content-type", "text/html"),
            (
                "x-mock-body",
                "<html>This version of Antigravity is no longer supported</html>",
            ),
        ],
        CallOptions {
            timeouts: Timeouts::default(),
            expect: Expect::EventStream,
        },
    );
    let err = client().send(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
    assert!(err.message().contains("text/html"), "{}", err.message());
    assert!(
        err.message().contains("no longer supported"),
        "{}",
        err.message()
    );
    assert!(err.allows_failover());
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_ends_with_a_transport_error() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        true,
        &[("x-mock-chunks", "10"), ("x-mock-drop-after", "4")],
        options(Timeouts::default()),
    );
    let response = client().send(request).await.unwrap();
    let (bytes, _, error) = drain(response).await;
    let error = error.expect("a cut stream must end in an error");
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    let expected: Vec<u8> = (0..4).flat_map(|i| mock::chunk_event("m", i)).collect();
    assert_eq!(bytes, expected);
}

#[tokio::test(start_paused = true)]
async fn reset_before_headers_and_refused_connections_are_typed() {
    let upstream = MockUpstream::start().await.unwrap();
    let err = client()
        .send(chat(
            &upstream.url(),
            false,
            &[("x-mock-reset", "1")],
            options(Timeouts::default()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = client()
        .send(chat(
            &format!("http://{closed}"),
            false,
            &[],
            options(Timeouts::default()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert!(
        err.message().contains(&closed.to_string()),
        "{}",
        err.message()
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_mid_stream_aborts_the_upstream() {
    let upstream = MockUpstream::start().await.unwrap();
    let request = chat(
        &upstream.url(),
        true,
        &[("x-mock-chunks", "1000"), ("x-mock-interval-ms", "10")],
        options(Timeouts::default()),
    );
    let response = client().send(request).await.unwrap();
    let mut body = response.into_body();
    for _ in 0..5 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(upstream.aborts(), 0);
    drop(body);
    assert!(
        upstream.wait_until(SECOND, |m| m.aborts() == 1).await,
        "the mock did not see the abort within a second"
    );
}
