use std::sync::Arc;

use gateway_core::{ErrorKind, Timeouts};
use gateway_proxy::{Client, ClientConfig};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::*;

/// A CA and an HTTPS server on 127.0.0.1 with a leaf certificate it signed. Answers every
/// request with the HTTP version it negotiated.
async fn tls_server() -> (
    std::net::SocketAddr,
    CertificateDer<'static>,
    tokio::task::JoinHandle<()>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let version = format!("{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(version)),
                        ))
                    },
                );
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca.der().clone(), task)
}

#[tokio::test]
async fn tls_with_a_trusted_ca_negotiates_http2() {
    let (addr, ca, server) = tls_server().await;
    let client = Client::new(ClientConfig {
        extra_roots: vec![ca],
        ..ClientConfig::default()
    })
    .unwrap();
    let response = client
        .send(chat(
            &format!("https://{addr}"),
            false,
            &[],
            options(Timeouts::default()),
        ))
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (bytes, _, error) = drain(response).await;
    assert!(error.is_none());
    assert_eq!(bytes, "HTTP/2.0");
    server.abort();
}

#[tokio::test]
async fn an_untrusted_certificate_fails_clearly() {
    let (addr, _ca, server) = tls_server().await;
    let err = client()
        .send(chat(
            &format!("https://{addr}"),
            false,
            &[],
            options(Timeouts::default()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    let message = err.message().to_lowercase();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains(&addr.to_string()), "{message}");
    server.abort();
}
