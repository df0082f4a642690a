use gateway_core::{ErrorKind, Timeouts};
use gateway_proxy::{Client, ClientConfig};
use test_support::MockUpstream;
use tokio::time::Instant;

use crate::*;

fn budgets(headers: u64, first_byte: u64, idle: u64, total: u64) -> Timeouts {
    let s = Duration::from_secs;
    Timeouts {
        headers: Some(s(headers)),
        first_byte: Some(s(first_byte)),
        idle: Some(s(idle)),
        total: Some(s(total)),
    }
}

/// Run a request and return the error that ended it (at send or mid-body) and when.
async fn failure(
    upstream: &MockUpstream,
    mock: &[(&str, &str)],
    timeouts: Timeouts,
) -> (ErrorKind, Duration) {
    let start = Instant::now();
    let error = match client()
        .send(chat(&upstream.url(), true, mock, options(timeouts)))
        .await
    {
        Err(err) => err,
        Ok(response) => drain(response)
            .await
            .2
            .expect("the request should have failed"),
    };
    (error.kind(), start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn headers_timeout() {
    let upstream = MockUpstream::start().await.unwrap();
    let (kind, at) = failure(
        &upstream,
        &[("x-mock-delay-ms", "5000")],
        budgets(2, 30, 30, 60),
    )
    .await;
    assert_eq!(kind, ErrorKind::HeadersTimeout);
    assert!(at >= 2 * SECOND && at < 3 * SECOND, "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn first_byte_timeout() {
    let upstream = MockUpstream::start().await.unwrap();
    let (kind, at) = failure(
        &upstream,
        &[("x-mock-ttft-ms", "9000")],
        budgets(30, 3, 30, 60),
    )
    .await;
    assert_eq!(kind, ErrorKind::FirstByteTimeout);
    assert!(at >= 3 * SECOND && at < 4 * SECOND, "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout() {
    let upstream = MockUpstream::start().await.unwrap();
    let (kind, at) = failure(
        &upstream,
        &[("x-mock-chunks", "10"), ("x-mock-stall-after", "3")],
        budgets(30, 30, 4, 60),
    )
    .await;
    assert_eq!(kind, ErrorKind::IdleTimeout);
    assert!(at >= 4 * SECOND && at < 5 * SECOND, "{at:?}");
    // The mock sees the abandoned stream as aborted.
    assert!(upstream.wait_until(SECOND, |m| m.aborts() == 1).await);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout() {
    let upstream = MockUpstream::start().await.unwrap();
    let mock = [("x-mock-chunks", "100"), ("x-mock-interval-ms", "500")];
    let (kind, at) = failure(&upstream, &mock, budgets(30, 30, 2, 5)).await;
    assert_eq!(kind, ErrorKind::AttemptTimeout);
    assert!(at >= 5 * SECOND && at < 6 * SECOND, "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_while_waiting_for_headers() {
    let upstream = MockUpstream::start().await.unwrap();
    let (kind, at) = failure(
        &upstream,
        &[("x-mock-delay-ms", "9000")],
        budgets(30, 30, 30, 4),
    )
    .await;
    assert_eq!(kind, ErrorKind::AttemptTimeout);
    assert!(at >= 4 * SECOND && at < 5 * SECOND, "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_covers_the_tls_handshake() {
    // A TCP server that accepts and never answers the TLS client hello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = ClientConfig {
        connect_timeout: 3 * SECOND,
        ..ClientConfig::default()
    };
    let client = Client::new(config).unwrap();
    let start = Instant::now();
    let err = client
        .send(chat(
            &format!("https://{addr}"),
            false,
            &[],
            options(budgets(30, 30, 30, 60)),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout, "{err:?}");
    let at = start.elapsed();
    assert!(at >= 3 * SECOND && at < 4 * SECOND, "{at:?}");
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_flowing_stream_never_times_out() {
    let upstream = MockUpstream::start().await.unwrap();
    // 40 chunks 900 ms apart (36 s) under a 1 s idle budget and a 2 s first-byte budget.
    let mock = [
        ("x-mock-chunks", "40"),
        ("x-mock-interval-ms", "900"),
        ("x-mock-ttft-ms", "1500"),
    ];
    let response = client()
        .send(chat(
            &upstream.url(),
            true,
            &mock,
            options(budgets(5, 2, 1, 120)),
        ))
        .await
        .unwrap();
    let (bytes, _, error) = drain(response).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, test_support::mock::stream_bytes("m", 40));
}
