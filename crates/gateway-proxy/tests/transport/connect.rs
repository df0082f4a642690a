use gateway_core::Timeouts;
use gateway_proxy::{Client, ClientConfig};
use test_support::{ConnectProxy, MockUpstream, mock};

use crate::*;

#[tokio::test]
async fn requests_go_through_an_http_connect_proxy() {
    let upstream = MockUpstream::start().await.unwrap();
    let proxy = ConnectProxy::start().await.unwrap();
    let client = Client::new(ClientConfig {
        proxy: Some(proxy.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    let response = client
        .send(chat(
            &upstream.url(),
            true,
            &[],
            options(Timeouts::default()),
        ))
        .await
        .unwrap();
    let (bytes, _, error) = drain(response).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, mock::stream_bytes("m", 3));
    assert_eq!(proxy.tunnels(), 1);
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn requests_go_through_a_socks5_proxy() {
    let upstream = MockUpstream::start().await.unwrap();
    let proxy = ConnectProxy::start_socks5().await.unwrap();
    let client = Client::new(ClientConfig {
        proxy: Some(proxy.url()),
        ..ClientConfig::default()
    })
    .unwrap();
    let response = client
        .send(chat(
            &upstream.url(),
            false,
            &[],
            options(Timeouts::default()),
        ))
        .await
        .unwrap();
    let (bytes, _, error) = drain(response).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, mock::completion_json("m").as_bytes());
    assert_eq!(proxy.tunnels(), 1);
}

#[test]
fn invalid_proxy_urls_are_rejected() {
    for url in ["ftp://127.0.0.1:1", "not a url at all"] {
        let config = ClientConfig {
            proxy: Some(url.into()),
            ..ClientConfig::default()
        };
        assert!(Client::new(config).is_err(), "{url}");
    }
}
