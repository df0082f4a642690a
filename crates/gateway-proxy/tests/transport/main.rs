//! `gateway-proxy` against the mock upstream on 127.0.0.1, with paused time for timeouts.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly on broken setup"
)]

mod connect;
mod headers;
mod pool;
mod streaming;
mod timeouts;
mod tls;

use std::time::Duration;

use bytes::Bytes;
use gateway_core::{Body, CallOptions, Expect, GatewayError, Timeouts, body};
use gateway_proxy::{Client, ClientConfig};
use http::{Request, Response};
use http_body_util::BodyExt;

pub(crate) fn client() -> Client {
    Client::new(ClientConfig::default()).unwrap()
}

pub(crate) fn options(timeouts: Timeouts) -> CallOptions {
    CallOptions {
        timeouts,
        expect: Expect::Any,
    }
}

/// A chat request to `url` with `x-mock-*` headers.
pub(crate) fn chat(
    url: &str,
    stream: bool,
    mock: &[(&str, &str)],
    options: CallOptions,
) -> Request<Body> {
    let mut builder = Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json");
    for (name, value) in mock {
        builder = builder.header(*name, *value);
    }
    let json = format!(
        r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let mut request = builder.body(body::full(json)).unwrap();
    request.extensions_mut().insert(options);
    request
}

/// Read a whole body, returning the bytes, the number of data frames and the error that ended it.
pub(crate) async fn drain(response: Response<Body>) -> (Bytes, usize, Option<GatewayError>) {
    let mut body = response.into_body();
    let mut out = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    frames += 1;
                    out.extend_from_slice(&data);
                }
            }
            Err(err) => return (Bytes::from(out), frames, Some(err)),
        }
    }
    (Bytes::from(out), frames, None)
}

pub(crate) const SECOND: Duration = Duration::from_secs(1);
