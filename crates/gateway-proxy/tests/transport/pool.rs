use gateway_core::Timeouts;
use gateway_proxy::{Client, ClientConfig};
use test_support::MockUpstream;

use crate::*;

#[tokio::test(start_paused = true)]
async fn sequential_requests_reuse_connections() {
    let upstream = MockUpstream::start().await.unwrap();
    let client = client();
    for i in 0..1000 {
        let stream = i % 2 == 0;
        let response = client
            .send(chat(
                &upstream.url(),
                stream,
                &[],
                options(Timeouts::default()),
            ))
            .await
            .unwrap();
        let (_, _, error) = drain(response).await;
        assert!(error.is_none());
    }
    assert_eq!(upstream.requests(), 1000);
    assert!(
        upstream.connections() <= 2,
        "{} connections for 1000 requests",
        upstream.connections()
    );
}

#[tokio::test(start_paused = true)]
async fn idle_connections_close_after_the_pool_timeout() {
    let upstream = MockUpstream::start().await.unwrap();
    let client = Client::new(ClientConfig {
        pool_idle_timeout: 30 * SECOND,
        ..ClientConfig::default()
    })
    .unwrap();
    let send = || {
        client.send(chat(
            &upstream.url(),
            false,
            &[],
            options(Timeouts::default()),
        ))
    };
    drain(send().await.unwrap()).await;
    assert_eq!(upstream.open_connections(), 1);
    // Still pooled before the timeout.
    tokio::time::sleep(10 * SECOND).await;
    drain(send().await.unwrap()).await;
    assert_eq!(upstream.connections(), 1);
    // Closed by the pool's timer after it, without any further request.
    assert!(
        upstream
            .wait_until(60 * SECOND, |m| m.open_connections() == 0)
            .await
    );
    drain(send().await.unwrap()).await;
    assert_eq!(upstream.connections(), 2);
}
