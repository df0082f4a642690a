//! HTTP plumbing for the server: reading bounded bodies, client authentication, JSON and error
//! responses, and the server-sent-event bodies for streamed answers.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use gateway_core::{Body, Dialect, ErrorKind, GatewayError, Secret, body};

/// Read the whole request body, at most `limit` bytes (413 beyond).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
        .with_code("request_too_large")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(GatewayError::new(
            ErrorKind::Cancelled,
            format!("the client stopped sending: {err}"),
        )),
    }
}

/// The key a client presented, each protocol's way: `Authorization: Bearer` (OpenAI),
/// `x-api-key` (Anthropic), `x-goog-api-key` or `?key=` in the `query` (Gemini).
pub(crate) fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .filter(|key| !key.is_empty())
    });
    header(header::AUTHORIZATION.as_str())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header("x-api-key"))
        .or_else(|| header("x-goog-api-key"))
        .or(from_query)
        .map(str::trim)
}

/// Which of `keys` is `presented`, compared in constant time: every key is compared, without
/// stopping early, so timing reveals nothing but the lengths.
pub(crate) fn which_key<'k>(
    presented: &str,
    keys: impl IntoIterator<Item = &'k Secret>,
) -> Option<usize> {
    let mut found = 0u32;
    for (index, key) in keys.into_iter().enumerate() {
        let equal = presented.as_bytes().ct_eq(key.expose().as_bytes());
        let position = u32::try_from(index).unwrap_or(u32::MAX - 1) + 1;
        found = u32::conditional_select(&found, &position, equal);
    }
    found
        .checked_sub(1)
        .and_then(|index| usize::try_from(index).ok())
}

/// The 401 for a request without a key.
pub(crate) fn missing_key() -> GatewayError {
    GatewayError::new(
        ErrorKind::Unauthorized,
        "missing api key (send Authorization: Bearer <key>, x-api-key or x-goog-api-key)",
    )
    .with_code("missing_api_key")
}

/// The 401 for a key that is not configured.
pub(crate) fn invalid_key() -> GatewayError {
    GatewayError::new(ErrorKind::Unauthorized, "invalid api key").with_code("invalid_api_key")
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", body::full(bytes)),
        Err(err) => error(&GatewayError::internal(format!(
            "cannot encode the response: {err}"
        ))),
    }
}

/// Bytes that already hold a JSON document, as a 200 response.
pub(crate) fn json_bytes(bytes: impl Into<bytes::Bytes>) -> Response<Body> {
    with_type(StatusCode::OK, "application/json", body::full(bytes))
}

pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The error as the OpenAI envelope with its status; see [`error_in`].
pub(crate) fn error(err: &GatewayError) -> Response<Body> {
    error_in(Dialect::OpenAiChat, err)
}

/// The error in the envelope of the protocol the client spoke, with its status. An upstream's
/// own error body already in that envelope is passed on as the provider wrote it. A retry hint
/// becomes `Retry-After`.
pub(crate) fn error_in(dialect: Dialect, err: &GatewayError) -> Response<Body> {
    let status = err.status();
    let upstream_envelope = err
        .upstream_body()
        .filter(|_| err.kind() == ErrorKind::Upstream)
        .filter(|bytes| dialect.is_envelope(bytes));
    let mut response = match upstream_envelope {
        Some(bytes) => with_type(status, "application/json", body::full(bytes.clone())),
        None => json(status, &dialect.envelope(err)),
    };
    if let Some(delay) = err.retry_after() {
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// An event-stream response around `body`.
pub(crate) fn event_stream(body: Body) -> Response<Body> {
    let mut response = with_type(StatusCode::OK, "text/event-stream", body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
