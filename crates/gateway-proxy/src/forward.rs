//! [`Forwarder`]: pass-through to one OpenAI-compatible upstream.

use http::{HeaderMap, Method, Request, Response, Uri};

use gateway_core::{Body, CallOptions, GatewayError};

use crate::{Client, HeaderPolicy};

/// Sends client requests to one upstream base URL under one header policy.
///
/// The body is passed through untouched; the caller rewrites it first when a model map applies.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: Client,
    base: String,
    policy: HeaderPolicy,
}

impl Forwarder {
    /// A forwarder to `base_url` (for example `http://127.0.0.1:8141/v1`).
    pub fn new(client: Client, base_url: &str, policy: HeaderPolicy) -> Result<Self, GatewayError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| {
            GatewayError::invalid_request(format!("invalid upstream url {base_url:?}"))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(GatewayError::invalid_request(format!(
                "upstream url {base_url:?} must be an absolute http:// or https:// url"
            )));
        }
        Ok(Self {
            client,
            base,
            policy,
        })
    }

    /// The upstream URL for an endpoint path such as `/chat/completions` (query included).
    pub fn url_for(&self, path_and_query: &str) -> Result<Uri, GatewayError> {
        let path = if path_and_query.starts_with('/') {
            path_and_query.to_owned()
        } else {
            format!("/{path_and_query}")
        };
        format!("{}{path}", self.base).parse().map_err(|_| {
            GatewayError::invalid_request(format!("invalid request path {path_and_query:?}"))
        })
    }

    /// Forward one request: `incoming` are the client's headers, filtered by the policy.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        incoming: &HeaderMap,
        body: Body,
        options: CallOptions,
    ) -> Result<Response<Body>, GatewayError> {
        let headers = self.policy.outgoing(incoming)?;
        let mut request = Request::builder()
            .method(method)
            .uri(self.url_for(path_and_query)?)
            .body(body)
            .map_err(|e| GatewayError::internal(format!("cannot build upstream request: {e}")))?;
        *request.headers_mut() = headers;
        request.extensions_mut().insert(options);
        self.client.send(request).await
    }
}
