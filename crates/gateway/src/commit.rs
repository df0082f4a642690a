//! The commit point: nothing reaches the client until the first real content has arrived.
//!
//! One [`Relay`] serves every stream, proxied or in-process, of every dialect. It pulls pieces
//! from a [`Source`]: [`SseSource`] (an upstream event stream of a known dialect, watched by a
//! `gateway_core::dialect::Tracker` and forwarded as the upstream's original bytes),
//! [`RawSource`] (pass-through bytes of any content type, committed on the first byte), or
//! [`EventSource`] (the in-process service's conversation events, encoded in the client's
//! dialect).
//!
//! Before the commit, every failure (an error status, an error event, an empty or cut stream,
//! no content within the time-to-first-token budget) is returned to the chain, which may fail
//! over invisibly. After it, a failure ends the stream with the dialect's terminal error event
//! (pass-through streams are cut instead: their format is unknown), unless the route rescues it
//! (`rescue`: the answer continues on the chain's next hop); a finished stream that lacks its
//! end marker is finalised at once.
//!
//! A malformed event (not JSON, or not of the dialect's shape) is never forwarded. It is
//! skipped, counted and logged once per stream, and the stream goes on: providers that emit one
//! broken event usually finish the answer normally, and ending the stream would throw the
//! answer away. Only an event that cannot be skipped safely ends the stream: one inside a tool
//! call's arguments (the arguments would be silently wrong). Bytes that are not UTF-8 still end
//! the stream: the event decoder cannot find the next event boundary safely after them.

pub(crate) mod rescue;

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::Instant;

use gateway_core::{
    Body, Dialect, ErrorKind, GatewayError, body,
    conversation::{self, EventStream},
    dialect::Tracker,
    gemini, sse,
};

pub(crate) use crate::convert::Encoder;

/// How much a stream may send before its first content; past it the stream is committed anyway.
const PRECOMMIT_BYTES: usize = 1 << 20;

/// The most a non-streaming answer may weigh.
const MAX_JSON_BYTES: usize = 64 << 20;

/// Where a relayed stream's pieces come from.
pub(crate) trait Source: Send + Unpin + 'static {
    /// The next bytes for the client (`Ok(None)`: the stream ended properly).
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>>;

    /// Whether what was pulled so far holds content: the stream may be committed.
    fn has_content(&self) -> bool;

    /// The terminal error event after the commit; `None` cuts the stream instead.
    fn error_event(&self, err: &GatewayError) -> Option<Vec<u8>>;

    /// The stream was committed: from now on a failure can no longer be failed over by the
    /// chain (a source may still rescue it).
    fn commit(&mut self) {}
}

/// Whether a tool call's arguments are being streamed, as far as the events of a dialect tell:
/// an event lost there cannot be skipped without corrupting the call.
#[derive(Debug)]
struct ToolWatch {
    dialect: Dialect,
    open: bool,
}

impl ToolWatch {
    /// Nothing seen yet of a stream of `dialect`.
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            open: false,
        }
    }

    /// Follow one well-formed event. Only events that may start or end a tool call are parsed.
    fn observe(&mut self, event: &sse::Event) {
        let data = event.data.as_str();
        let name = event.event.as_deref().unwrap_or("");
        match self.dialect {
            Dialect::OpenAiChat => {
                if !(data.contains("tool_calls")
                    || data.contains("function_call")
                    || data.contains("finish_reason"))
                {
                    return;
                }
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                for choice in value["choices"].as_array().into_iter().flatten() {
                    let delta = &choice["delta"];
                    if delta["tool_calls"]
                        .as_array()
                        .is_some_and(|c| !c.is_empty())
                        || delta["function_call"].is_object()
                    {
                        self.open = true;
                    }
                    if !choice["finish_reason"].is_null() {
                        self.open = false;
                    }
                }
            }
            Dialect::Anthropic => {
                if !(name.starts_with("content_block_st")
                    || name == "message_delta"
                    || data.contains("\"type\":\"content_block_st"))
                {
                    return;
                }
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                match value["type"].as_str().unwrap_or(name) {
                    "content_block_start" => {
                        let kind = value["content_block"]["type"].as_str().unwrap_or("");
                        self.open = kind.ends_with("tool_use");
                    }
                    "content_block_stop" | "message_delta" => self.open = false,
                    _ => {}
                }
            }
            Dialect::Responses => {
                if name == "response.function_call_arguments.delta"
                    || name == "response.custom_tool_call_input.delta"
                {
                    self.open = true;
                    return;
                }
                if !data.contains("output_item") {
                    return;
                }
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                match value["type"].as_str().unwrap_or(name) {
                    "response.output_item.added" => {
                        let kind = value["item"]["type"].as_str().unwrap_or("");
                        self.open = kind.ends_with("call");
                    }
                    "response.output_item.done" => self.open = false,
                    _ => {}
                }
            }
            // Gemini sends each function call whole, in one part.
            Dialect::Gemini | Dialect::Passthrough => {}
        }
    }
}

/// An upstream event stream of a known dialect, forwarded as the upstream's original bytes
/// after each event was checked.
pub(crate) struct SseSource {
    body: Body,
    decoder: sse::Decoder,
    /// Received bytes not yet handed on, starting at input offset `raw_at`.
    raw: BytesMut,
    raw_at: u64,
    tracker: Tracker,
    tools: ToolWatch,
    /// Malformed events skipped so far.
    skipped: u64,
    upstream_ended: bool,
    finished: bool,
    committed: bool,
    /// Continues the answer on another hop when it breaks after the commit.
    rescue: Option<Box<rescue::PassRescue>>,
}

impl SseSource {
    pub(crate) fn new(body: Body, dialect: Dialect) -> Self {
        Self {
            body,
            decoder: sse::Decoder::default(),
            raw: BytesMut::new(),
            raw_at: 0,
            tracker: Tracker::new(dialect),
            tools: ToolWatch::new(dialect),
            skipped: 0,
            upstream_ended: false,
            finished: false,
            committed: false,
            rescue: None,
        }
    }

    /// Let `plan` continue the answer when the stream breaks after the commit.
    pub(crate) fn rescued_by(mut self, plan: Option<rescue::Plan>) -> Self {
        self.rescue = plan
            .and_then(|plan| rescue::PassRescue::new(plan, self.tools.dialect))
            .map(Box::new);
        self
    }

    /// A malformed event: skipped (its bytes dropped), unless it falls inside a tool call's
    /// arguments.
    fn skip(&mut self, err: GatewayError) -> Result<(), GatewayError> {
        if self.tools.open {
            return Err(GatewayError::new(
                err.kind(),
                format!(
                    "{} (inside a tool call's arguments, so it cannot be skipped)",
                    err.message()
                ),
            ));
        }
        drop(self.take_raw());
        self.skipped += 1;
        rescue::counters().malformed_skipped.inc();
        if self.skipped == 1 {
            tracing::warn!(error = %err, "skipped a malformed event from the upstream; later ones in this stream are skipped silently");
        }
        Ok(())
    }

    /// The raw bytes up to the decoder's position.
    fn take_raw(&mut self) -> Bytes {
        let end = self.decoder.position();
        let len = usize::try_from(end.saturating_sub(self.raw_at))
            .unwrap_or(usize::MAX)
            .min(self.raw.len());
        self.raw_at += len as u64;
        self.raw.split_to(len).freeze()
    }
}

impl Source for SseSource {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>> {
        if let Some(rescue) = self.rescue.as_mut()
            && rescue.active()
        {
            return rescue.poll_piece(cx);
        }
        match ready!(self.poll_upstream(cx)) {
            Err(err) if self.committed && self.rescue.is_some() => {
                let Some(rescue) = self.rescue.as_mut() else {
                    return Poll::Ready(Err(err));
                };
                rescue.broke(err)?;
                // The bytes of an event cut in the middle are dropped with the upstream.
                self.raw.clear();
                rescue.poll_piece(cx)
            }
            other => Poll::Ready(other),
        }
    }

    fn has_content(&self) -> bool {
        self.tracker.has_content()
    }

    fn error_event(&self, err: &GatewayError) -> Option<Vec<u8>> {
        self.tracker.error_event(err)
    }

    fn commit(&mut self) {
        self.committed = true;
    }
}

impl SseSource {
    /// The next checked event's bytes from the upstream.
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>> {
        loop {
            if self.finished || self.tracker.is_done() {
                return Poll::Ready(Ok(None));
            }
            let next = if self.upstream_ended {
                self.decoder.finish()
            } else {
                self.decoder.next_event()
            };
            match next.map_err(sse_error)? {
                Some(event) => match self.tracker.observe(&event) {
                    Ok(()) => {
                        self.tools.observe(&event);
                        if let Some(rescue) = self.rescue.as_mut() {
                            rescue.observe(&event);
                        }
                        return Poll::Ready(Ok(Some(self.take_raw())));
                    }
                    Err(err) if err.kind() == ErrorKind::UpstreamProtocol => self.skip(err)?,
                    Err(err) => return Poll::Ready(Err(err)),
                },
                None if self.upstream_ended => {
                    // Whatever followed the last event (comments, blank lines), then the end
                    // marker of a finished stream that lacked it, or the truncation error.
                    self.finished = true;
                    let mut tail = BytesMut::from(&self.raw[..]);
                    self.raw.clear();
                    if let Some(marker) = self.tracker.at_end()? {
                        tail.extend_from_slice(marker);
                    }
                    return Poll::Ready(Ok((!tail.is_empty()).then(|| tail.freeze())));
                }
                None => {}
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                        self.raw.extend_from_slice(&data);
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(err)),
                None => self.upstream_ended = true,
            }
        }
    }
}

/// A Gemini answer streamed as one JSON array (without `alt=sse`), passed through: each element
/// checked as it completes (an error element before content fails over, as in an event
/// stream), then forwarded as the upstream wrote it; the brackets and commas between elements
/// are written anew, so that a terminal error can close the array validly.
pub(crate) struct ArraySource {
    body: Body,
    decoder: gemini::JsonArrayDecoder,
    tracker: Tracker,
    elements: usize,
    upstream_ended: bool,
    finished: bool,
}

impl ArraySource {
    pub(crate) fn new(body: Body) -> Self {
        Self {
            body,
            decoder: gemini::JsonArrayDecoder::default(),
            tracker: Tracker::new(Dialect::Gemini),
            elements: 0,
            upstream_ended: false,
            finished: false,
        }
    }
}

impl Source for ArraySource {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>> {
        loop {
            if self.finished {
                return Poll::Ready(Ok(None));
            }
            if self.decoder.next()?.is_some() {
                let element = self.decoder.last_element();
                self.tracker
                    .observe(&sse::Event::data(String::from_utf8_lossy(element)))?;
                let mut piece = Vec::with_capacity(element.len() + 1);
                piece.push(if self.elements == 0 { b'[' } else { b',' });
                piece.extend_from_slice(element);
                self.elements += 1;
                return Poll::Ready(Ok(Some(Bytes::from(piece))));
            }
            if self.upstream_ended {
                self.decoder.finish()?;
                self.tracker.at_end()?;
                self.finished = true;
                let close: &'static [u8] = if self.elements == 0 { b"[]" } else { b"]" };
                return Poll::Ready(Ok(Some(Bytes::from_static(close))));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(err)),
                None => self.upstream_ended = true,
            }
        }
    }

    fn has_content(&self) -> bool {
        self.tracker.has_content()
    }

    fn error_event(&self, err: &GatewayError) -> Option<Vec<u8>> {
        if self.finished {
            // The array is closed: nothing may follow it.
            return None;
        }
        let envelope = Dialect::Gemini.envelope(err).to_string();
        let open = if self.elements == 0 { "[" } else { "," };
        Some(format!("{open}{envelope}]").into_bytes())
    }
}

/// Pass-through bytes of any content type: committed on the first byte, never inspected.
pub(crate) struct RawSource {
    body: Body,
    content: bool,
}

impl RawSource {
    pub(crate) fn new(body: Body) -> Self {
        Self {
            body,
            content: false,
        }
    }
}

impl Source for RawSource {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>> {
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.content = true;
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(err)),
                None => {
                    // An empty answer is a complete one.
                    self.content = true;
                    return Poll::Ready(Ok(None));
                }
            }
        }
    }

    fn has_content(&self) -> bool {
        self.content
    }

    fn error_event(&self, _err: &GatewayError) -> Option<Vec<u8>> {
        None
    }
}

/// Conversation events (from the in-process service, or decoded from an upstream of another
/// dialect), encoded in the client's dialect.
pub(crate) struct EventSource {
    events: EventStream,
    encoder: Encoder,
    content: bool,
    ended: bool,
    committed: bool,
    /// Continues the answer on another hop when the stream breaks after the commit.
    rescue: Option<Box<rescue::Rescuer>>,
    /// Counts the answer's tokens for usage accounting.
    meter: Option<crate::usage::Meter>,
}

impl EventSource {
    pub(crate) fn new(events: EventStream, encoder: Encoder) -> Self {
        Self {
            events,
            encoder,
            content: false,
            ended: false,
            committed: false,
            rescue: None,
            meter: crate::usage::Meter::current(),
        }
    }

    /// Let `rescuer` continue the answer when the stream breaks after the commit.
    pub(crate) fn rescued_by(mut self, rescuer: Option<rescue::Rescuer>) -> Self {
        self.rescue = rescuer.map(Box::new);
        self
    }

    fn push(&mut self, event: conversation::Event, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        self.content |= conversation::is_content(&event);
        self.encoder.push(event, out)
    }
}

impl Source for EventSource {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GatewayError>> {
        let mut out = Vec::new();
        while out.is_empty() {
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            if let Some(rescuer) = self.rescue.as_mut()
                && let Some(next) = ready!(rescuer.poll_continuation(cx))
            {
                // The answer goes on from another hop, or the rescue failed (with the error
                // of the break, or of the last hop tried).
                self.events = next?;
                continue;
            }
            match ready!(self.events.as_mut().poll_next(cx)) {
                Some(Ok(event)) => {
                    if let (conversation::Event::Usage(usage), Some(meter)) = (&event, &self.meter)
                    {
                        meter.observe(usage);
                    }
                    match self.rescue.as_mut() {
                        Some(rescuer) => {
                            for event in rescuer.pass(event) {
                                self.push(event, &mut out)?;
                            }
                        }
                        None => self.push(event, &mut out)?,
                    }
                }
                Some(Err(err)) => match self.rescue.as_mut() {
                    Some(rescuer) if self.committed => rescuer.broke(err)?,
                    _ => return Poll::Ready(Err(err)),
                },
                None => {
                    if let Some(rescuer) = self.rescue.as_mut() {
                        for event in rescuer.end() {
                            self.push(event, &mut out)?;
                        }
                    }
                    self.ended = true;
                    self.encoder.finish(&mut out)?;
                }
            }
        }
        Poll::Ready(Ok(Some(Bytes::from(out))))
    }

    fn has_content(&self) -> bool {
        self.content
    }

    fn error_event(&self, err: &GatewayError) -> Option<Vec<u8>> {
        Some(self.encoder.error_event(err))
    }

    fn commit(&mut self) {
        self.committed = true;
    }
}

/// Relays a stream from a [`Source`]; see the module documentation.
pub(crate) struct Relay<S> {
    source: S,
    /// Bytes for the client not yet handed on.
    out: BytesMut,
    ended: bool,
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

impl<S: Source> Relay<S> {
    /// Read until the first content, the end, an error, or `deadline`; the committed relay.
    pub(crate) async fn until_content(
        source: S,
        deadline: Instant,
        budget: Duration,
    ) -> Result<Self, GatewayError> {
        let mut relay = Self {
            source,
            out: BytesMut::new(),
            ended: false,
            closing: None,
        };
        let waiting = std::future::poll_fn(|cx| {
            loop {
                if relay.source.has_content() || relay.ended || relay.out.len() > PRECOMMIT_BYTES {
                    return Poll::Ready(Ok(()));
                }
                match ready!(relay.source.poll_piece(cx)) {
                    Ok(Some(bytes)) => relay.out.extend_from_slice(&bytes),
                    Ok(None) => relay.ended = true,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
        });
        match tokio::time::timeout_at(deadline, waiting).await {
            Ok(Ok(())) if relay.source.has_content() || relay.out.len() > PRECOMMIT_BYTES => {
                relay.source.commit();
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

    /// End the stream after `err`: its terminal event, or a cut when the dialect has none.
    fn fail(&mut self, err: GatewayError) -> Option<Result<Bytes, GatewayError>> {
        self.ended = true;
        tracing::warn!(error = %err, kind = ?err.kind(), "stream failed after it started");
        match self.source.error_event(&err) {
            Some(event) => Some(Ok(Bytes::from(event))),
            None => Some(Err(err)),
        }
    }
}

fn sse_error(err: sse::SseError) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        format!("upstream stream: {err}"),
    )
}

impl<S: Source> Stream for Relay<S> {
    type Item = Result<Bytes, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.out.is_empty() {
            return Poll::Ready(Some(Ok(this.out.split().freeze())));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(err) = poll_closing(&mut this.closing, cx) {
            return Poll::Ready(this.fail(err));
        }
        match ready!(this.source.poll_piece(cx)) {
            Ok(Some(bytes)) => Poll::Ready(Some(Ok(bytes))),
            Ok(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Err(err) => Poll::Ready(this.fail(err)),
        }
    }
}

/// A non-streaming answer of `dialect`, checked: a 200 whose JSON is an error (or not JSON at
/// all, or not of the dialect's shape) is a failure, never content.
pub(crate) async fn checked_json(body: Body, dialect: Dialect) -> Result<Bytes, GatewayError> {
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
    dialect.check_answer(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
