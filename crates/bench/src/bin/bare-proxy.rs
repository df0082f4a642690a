//! The floor: a hyper pass-through proxy with no logic. Prints its address on the first line of
//! stdout, then forwards every request to `--upstream`, streaming both ways.

#![expect(
    clippy::print_stdout,
    reason = "the address is printed for the harness"
)]

use std::convert::Infallible;

use anyhow::{Context, Result};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    client::legacy,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

type Body = BoxBody<Bytes, hyper::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    let mut upstream = String::new();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => listen = args.next().context("--listen needs a value")?,
            "--upstream" => upstream = args.next().context("--upstream needs a value")?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let upstream: Uri = upstream.parse().context("--upstream must be a url")?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("{}", listener.local_addr()?);
    let mut connector = legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: legacy::Client<_, Incoming> = legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: &legacy::Client<legacy::connect::HttpConnector, Incoming>,
    upstream: &Uri,
    request: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = format!("{}{}", upstream.to_string().trim_end_matches('/'), path);
    parts.uri = uri.parse().unwrap_or_default();
    parts.headers.remove(http::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(_) => {
            let mut response = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    }
}
