//! HTTP plumbing for the server: reading bounded bodies, client authentication, JSON and error
//! responses, and the server-sent-event bodies for streamed answers.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::commit::{Closing, poll_closing};

use gateway_core::{
    Body, ChunkStream, ErrorKind, GatewayError, Secret, body,
    openai::{ChatCompletionChunk, ErrorEnvelope},
    sse,
};

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

/// Check the client's key (`Authorization: Bearer` or `x-api-key`) against `keys` in constant
/// time; with no keys configured every request passes.
pub(crate) fn authorize(headers: &HeaderMap, keys: &[Secret]) -> Result<(), GatewayError> {
    if keys.is_empty() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "missing api key (send Authorization: Bearer <key> or x-api-key)",
        )
        .with_code("missing_api_key"));
    };
    // Compare against every key, without stopping early, so timing reveals nothing.
    let mut matched = subtle::Choice::from(0u8);
    for key in keys {
        matched |= presented.as_bytes().ct_eq(key.expose().as_bytes());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(
            GatewayError::new(ErrorKind::Unauthorized, "invalid api key")
                .with_code("invalid_api_key"),
        )
    }
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

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The error as the OpenAI envelope with its status. An upstream's own OpenAI-shaped error body
/// is passed on as the provider wrote it. A retry hint becomes `Retry-After`.
pub(crate) fn error(err: &GatewayError) -> Response<Body> {
    let status = err.status();
    let upstream_envelope = err
        .upstream_body()
        .filter(|_| err.kind() == ErrorKind::Upstream)
        .filter(|bytes| serde_json::from_slice::<ErrorEnvelope>(bytes).is_ok());
    let mut response = match upstream_envelope {
        Some(bytes) => with_type(status, "application/json", body::full(bytes.clone())),
        None => json(status, &err.to_envelope()),
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

/// Chunks as server-sent events: each chunk one `data:` event, `[DONE]` after a clean end, and
/// after a failure the terminal error event and no `[DONE]`.
pub(crate) fn chunk_events(
    held: VecDeque<ChatCompletionChunk>,
    rest: ChunkStream,
    closing: &tokio_util::sync::CancellationToken,
) -> Body {
    body::from_stream(ChunkEvents {
        held,
        rest,
        finished: false,
        closing: Some(Box::pin(closing.clone().cancelled_owned())),
    })
}

struct ChunkEvents {
    closing: Option<Closing>,
    held: VecDeque<ChatCompletionChunk>,
    rest: ChunkStream,
    finished: bool,
}

impl Stream for ChunkEvents {
    type Item = Result<Bytes, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(err) = poll_closing(&mut self.closing, cx) {
            self.finished = true;
            let mut out = Vec::new();
            sse::encode_error(&err, &mut out);
            return Poll::Ready(Some(Ok(Bytes::from(out))));
        }
        let item = match self.held.pop_front() {
            Some(chunk) => Some(Ok(chunk)),
            None => ready!(self.rest.as_mut().poll_next(cx)),
        };
        let mut out = Vec::with_capacity(256);
        match item {
            Some(Ok(chunk)) => match serde_json::to_vec(&chunk) {
                Ok(json) => sse::encode_data_line(&json, &mut out),
                Err(err) => {
                    self.finished = true;
                    sse::encode_error(
                        &GatewayError::internal(format!("cannot encode a chunk: {err}")),
                        &mut out,
                    );
                }
            },
            Some(Err(err)) => {
                self.finished = true;
                tracing::warn!(error = %err, kind = ?err.kind(), "stream failed after it started");
                sse::encode_error(&err, &mut out);
            }
            None => {
                self.finished = true;
                out.extend_from_slice(sse::DONE);
            }
        }
        Poll::Ready(Some(Ok(Bytes::from(out))))
    }
}
