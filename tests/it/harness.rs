//! A gateway under test: `gateway::serve` on 127.0.0.1:0, and a raw HTTP client that shows
//! responses as they are (statuses, headers, bytes).

use std::net::SocketAddr;

use bytes::Bytes;
use gateway::Config;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy, rt::TokioExecutor};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<JoinHandle<Result<(), gateway_core::GatewayError>>>,
}

impl Gateway {
    /// A gateway on `toml`. One that names no `[state]` keeps no usage database (the default
    /// is relative to the working directory, which would collect every test's rows in the
    /// source tree).
    pub(crate) async fn start(toml: &str) -> Self {
        let toml = if toml.contains("[state]") {
            toml.to_owned()
        } else {
            format!("{toml}\n[state]\nusage_db = \"\"\n")
        };
        let config = Config::parse(&toml, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
        Self::start_with(config).await
    }

    /// A gateway on `config` (which must name its usage database, or none).
    pub(crate) async fn start_with(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Begin the graceful shutdown.
    pub(crate) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the client saw.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error envelope, checked for shape.
    pub(crate) fn envelope(&self) -> Value {
        let json = self.json();
        let error = &json["error"];
        assert!(error["message"].is_string(), "{json}");
        assert!(error["type"].is_string(), "{json}");
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{json}"
        );
        json
    }
}

pub(crate) fn client() -> legacy::Client<legacy::connect::HttpConnector, Full<Bytes>> {
    legacy::Client::builder(TokioExecutor::new()).build_http()
}

pub(crate) async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client()
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub(crate) async fn post(url: &str, json: &Value) -> Answer {
    send(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        json.to_string(),
    )
    .await
}

pub(crate) async fn get(url: &str) -> Answer {
    send(Method::GET, url, &[], Bytes::new()).await
}

/// The data of each event in an SSE body.
pub(crate) fn events(body: &[u8]) -> Vec<String> {
    let mut decoder = gateway_core::sse::Decoder::default();
    decoder.feed(body);
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        out.push(event.data);
    }
    if let Some(event) = decoder.finish().unwrap() {
        out.push(event.data);
    }
    out
}

/// A JSON `POST` with `key` as the bearer token.
pub(crate) async fn post_as(gateway: &Gateway, key: &str, path: &str, body: &Value) -> Answer {
    send(
        Method::POST,
        &gateway.url(path),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {key}")),
        ],
        body.to_string(),
    )
    .await
}

/// A `GET` with `key` as the bearer token.
pub(crate) async fn get_as(gateway: &Gateway, key: &str, path: &str) -> Answer {
    send(
        Method::GET,
        &gateway.url(path),
        &[("authorization", &format!("Bearer {key}"))],
        Bytes::new(),
    )
    .await
}

/// A Cloud Code quota 429 whose reset is `delay` away (`"3600s"`).
pub(crate) fn quota_429(delay: &str) -> test_support::Behaviour {
    test_support::Behaviour {
        status: 429,
        body: Some(
            format!(
                r#"{{"error":{{"code":429,"message":"You have exhausted your capacity on this model.","status":"RESOURCE_EXHAUSTED",
                   "details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED",
                   "metadata":{{"quotaResetDelay":"{delay}"}}}}]}}}}"#
            )
            .into(),
        ),
        ..test_support::Behaviour::default()
    }
}
