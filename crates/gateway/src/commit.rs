//! The commit point: nothing reaches the client until the first real content has arrived.
//!
//! Before it, every failure (an error status, an error event, an empty or cut stream, a
//! malformed event, no content within the time-to-first-token budget) is returned to the chain,
//! which may fail over invisibly. After it, a failure ends the stream with the OpenAI terminal
//! error event and no `[DONE]`; a stream that finished (a finish reason was seen) but lacks
//! `[DONE]` is finalised at once.
//!
//! Proxied streams are decoded event by event and re-framed as `data: <json>\n\n`, which is
//! byte-identical for well-formed upstreams and never forwards a malformed event.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use gateway_core::{
    Body, ChunkStream, ErrorKind, GatewayError, body,
    openai::{ChatCompletionChunk, Delta},
    sse,
};

/// How much a stream may send before its first content; past it the stream is committed anyway.
const PRECOMMIT_BYTES: usize = 1 << 20;

/// The most a non-streaming answer may weigh.
const MAX_JSON_BYTES: usize = 64 << 20;

/// The part of a chunk the relay looks at.
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    choices: Vec<PeekChoice>,
}

#[derive(Deserialize)]
struct PeekChoice {
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Whether a delta carries something a user would see or a tool would run.
fn delta_has_content(delta: &Value) -> bool {
    ["content", "reasoning_content", "refusal"]
        .iter()
        .any(|key| delta[*key].as_str().is_some_and(|s| !s.is_empty()))
        || delta["tool_calls"]
            .as_array()
            .is_some_and(|calls| !calls.is_empty())
        || delta["function_call"].is_object()
        || delta["audio"].is_object()
}

/// An `{"error": {...}}` answer from an upstream that said 200.
pub(crate) fn error_in_body(error: &Value) -> GatewayError {
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("the upstream reported an error");
    let status = error["code"]
        .as_u64()
        .or_else(|| error["status"].as_u64())
        .and_then(|code| u16::try_from(code).ok())
        .and_then(|code| http::StatusCode::from_u16(code).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(http::StatusCode::BAD_GATEWAY);
    let body = serde_json::json!({ "error": error });
    GatewayError::upstream(status, message.to_owned()).with_body(Bytes::from(body.to_string()))
}

/// Relays a proxied event stream; see the module documentation.
pub(crate) struct Relay {
    body: Body,
    decoder: sse::Decoder,
    out: BytesMut,
    content: bool,
    finished_reason: bool,
    done: bool,
    ended: bool,
    /// Set once the stream is handed to the client; before that, decoding stops at the event
    /// that brings the first content, so later events are judged after the commit.
    committed: bool,
    /// Fired at the end of the shutdown grace period.
    closing: Option<Closing>,
}

/// The shutdown signal as a stream can poll it.
pub(crate) type Closing = Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>;

/// Whether the gateway's shutdown grace is over; the stream then ends with `err`.
pub(crate) fn poll_closing(
    closing: &mut Option<Closing>,
    cx: &mut Context<'_>,
) -> Option<GatewayError> {
    let fired = closing.as_mut()?.as_mut().poll(cx).is_ready();
    fired.then(|| {
        *closing = None;
        GatewayError::new(
            ErrorKind::Unavailable,
            "the gateway is shutting down; the stream was ended",
        )
    })
}

impl Relay {
    fn new(body: Body) -> Self {
        Self {
            body,
            decoder: sse::Decoder::default(),
            out: BytesMut::new(),
            content: false,
            finished_reason: false,
            done: false,
            ended: false,
            committed: false,
            closing: None,
        }
    }

    /// Handle one event: validate, note what it means, re-frame it into `out`.
    fn event(&mut self, event: sse::Event) -> Result<(), GatewayError> {
        if event.is_done() {
            self.done = true;
            self.out.extend_from_slice(sse::DONE);
            return Ok(());
        }
        if self.done {
            // Nothing follows [DONE].
            return Ok(());
        }
        let peek: Peek = serde_json::from_str(&event.data).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("malformed event from the upstream: {e}"),
            )
        })?;
        if let Some(error) = &peek.error {
            return Err(error_in_body(error));
        }
        for choice in &peek.choices {
            if choice.finish_reason.is_some() {
                self.finished_reason = true;
                self.content = true;
            }
            if choice
                .delta
                .as_ref()
                .or(choice.message.as_ref())
                .is_some_and(delta_has_content)
            {
                self.content = true;
            }
        }
        let mut framed = Vec::with_capacity(event.data.len() + 8);
        sse::encode(&event, &mut framed);
        self.out.extend_from_slice(&framed);
        Ok(())
    }

    /// Drain decoded events; at the end of the body, judge how the stream ended.
    fn pump(&mut self) -> Result<(), GatewayError> {
        while self.committed || !self.content {
            let Some(event) = self.decoder.next_event().map_err(sse_error)? else {
                break;
            };
            self.event(event)?;
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<(), GatewayError> {
        while let Some(event) = self.decoder.finish().map_err(sse_error)? {
            self.event(event)?;
        }
        self.ended = true;
        if self.done {
            return Ok(());
        }
        if self.finished_reason {
            // Complete but for the marker: finalise it now.
            self.out.extend_from_slice(sse::DONE);
            self.done = true;
            return Ok(());
        }
        Err(GatewayError::new(
            ErrorKind::Truncated,
            if self.content {
                "the upstream stream ended without a finish reason"
            } else {
                "the upstream stream ended before any content"
            },
        ))
    }

    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    self.decoder.feed(&data);
                }
                Poll::Ready(self.pump())
            }
            Some(Err(err)) => Poll::Ready(Err(err)),
            None => Poll::Ready(self.at_end()),
        }
    }

    /// Read until the first content, the end, an error, or `deadline`.
    pub(crate) async fn until_content(
        body: Body,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Self, GatewayError> {
        let mut relay = Self::new(body);
        let waiting = std::future::poll_fn(|cx| {
            loop {
                if relay.content || relay.ended || relay.done || relay.out.len() > PRECOMMIT_BYTES {
                    return Poll::Ready(Ok(()));
                }
                if let Err(err) = ready!(relay.poll_upstream(cx)) {
                    return Poll::Ready(Err(err));
                }
            }
        });
        match tokio::time::timeout_at(deadline, waiting).await {
            Ok(Ok(())) if relay.content || relay.out.len() > PRECOMMIT_BYTES => {
                relay.committed = true;
                Ok(relay)
            }
            Ok(Ok(())) => Err(GatewayError::new(
                ErrorKind::Truncated,
                "the upstream stream ended before any content",
            )),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(GatewayError::new(
                ErrorKind::FirstByteTimeout,
                format!("no content from the upstream within {budget:?}"),
            )),
        }
    }

    /// The committed stream as a body that also ends when `closing` fires.
    pub(crate) fn into_body(mut self, closing: &tokio_util::sync::CancellationToken) -> Body {
        self.closing = Some(Box::pin(closing.clone().cancelled_owned()));
        body::from_stream(self)
    }
}

fn sse_error(err: sse::SseError) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        format!("upstream stream: {err}"),
    )
}

impl Stream for Relay {
    type Item = Result<Bytes, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if !self.out.is_empty() {
                let bytes = self.out.split().freeze();
                return Poll::Ready(Some(Ok(bytes)));
            }
            if self.ended || self.done {
                return Poll::Ready(None);
            }
            if let Some(err) = poll_closing(&mut self.closing, cx) {
                self.ended = true;
                let mut out = Vec::new();
                sse::encode_error(&err, &mut out);
                self.out.extend_from_slice(&out);
                continue;
            }
            let buffered = self.pump();
            if !self.out.is_empty() && buffered.is_ok() {
                continue;
            }
            let step = match buffered {
                Err(err) => Err(err),
                Ok(()) => ready!(self.poll_upstream(cx)),
            };
            if let Err(err) = step {
                // After whatever valid events came before it, the terminal error event.
                self.ended = true;
                tracing::warn!(error = %err, kind = ?err.kind(), "stream failed after it started");
                let mut out = Vec::new();
                sse::encode_error(&err, &mut out);
                self.out.extend_from_slice(&out);
            }
        }
    }
}

/// A non-streaming answer, checked: a 200 whose JSON is an error (or not JSON at all) is a
/// failure, never content.
pub(crate) async fn checked_json(body: Body, chat: bool) -> Result<Bytes, GatewayError> {
    let bytes = http_body_util::Limited::new(body, MAX_JSON_BYTES)
        .collect()
        .await
        .map_err(|e| match e.downcast::<GatewayError>() {
            Ok(err) => *err,
            Err(other) => GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("the upstream answer is too large: {other}"),
            ),
        })?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamProtocol,
            format!("the upstream answered 200 with invalid json: {e}"),
        )
    })?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(error_in_body(error));
    }
    if chat && !value["choices"].is_array() {
        return Err(GatewayError::new(
            ErrorKind::UpstreamProtocol,
            "the upstream answer has no choices",
        ));
    }
    Ok(bytes)
}

/// Whether a local chunk carries content (or the finish).
fn chunk_has_content(chunk: &ChatCompletionChunk) -> bool {
    chunk.choices.iter().any(|choice| {
        let Delta {
            content,
            reasoning_content,
            tool_calls,
            refusal,
            ..
        } = &choice.delta;
        choice.finish_reason.is_some()
            || [content, reasoning_content, refusal]
                .iter()
                .any(|t| t.as_deref().is_some_and(|s| !s.is_empty()))
            || tool_calls.as_ref().is_some_and(|c| !c.is_empty())
    }) || chunk.usage.is_some()
}

/// Hold a local chunk stream until its first content; the chunks so far and the rest.
pub(crate) async fn local_until_content(
    mut stream: ChunkStream,
    deadline: Instant,
    budget: Duration,
) -> Result<(VecDeque<ChatCompletionChunk>, ChunkStream), GatewayError> {
    let mut held = VecDeque::new();
    let waiting = async {
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let content = chunk_has_content(&chunk);
                    held.push_back(chunk);
                    if content {
                        return Ok(());
                    }
                }
                Some(Err(err)) => return Err(err),
                None => {
                    return Err(GatewayError::new(
                        ErrorKind::Truncated,
                        "the stream ended before any content",
                    ));
                }
            }
        }
    };
    match tokio::time::timeout_at(deadline, waiting).await {
        Ok(Ok(())) => Ok((held, stream)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(GatewayError::new(
            ErrorKind::FirstByteTimeout,
            format!("no content from the upstream within {budget:?}"),
        )),
    }
}

#[cfg(test)]
mod tests;
