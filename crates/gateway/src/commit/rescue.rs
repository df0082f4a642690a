//! Stream rescue: a committed stream that breaks (cut, stalled past the idle budget, an error
//! event from the upstream) is continued on the chain's next hop, so the client sees one
//! answer, with one finish and one usage, instead of half an answer and an error.
//!
//! Why it works through the conversation: the continuation hop may speak another dialect or
//! serve another model, and the client's encoder (one message id, one block numbering, one
//! finish) must not notice the change. So the continuation is asked as a conversation (the
//! client's request, plus the text already delivered as an assistant prefill where the hop
//! accepts one, else an explicit instruction to continue), its events are re-numbered into the
//! blocks the client already has, the overlap with what was delivered is removed, and they are
//! fed to the same encoder.
//!
//! What is never rescued: a stream whose answer already finished, one that carried a tool call
//! (a prefill cannot end in a call, and half-sent arguments cannot be completed honestly), one
//! that carried a refusal, a route with `rescue = "off"`, a chain with no hop left. Then the
//! client gets the protocol's terminal error event, as before.
//!
//! Usage after a rescue is the sum of what each hop reported (each was asked, and bills, the
//! whole prompt). The continuation's reasoning is left out: the client already has the answer's
//! beginning, and another model's thoughts would be a second, unrelated reasoning block.
//!
//! The counters `/metrics` shows for the reliability features live here too, process-wide, so
//! the code that counts needs no handle on the registry ([`counters`], [`register`]).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use serde::Deserialize;

use antigravity_service::Credentials;
use gateway_core::{
    CallOptions, Dialect, ErrorKind, Expect, GatewayError, Side, body,
    conversation::{self, Event, EventStream, FinishReason, Message, Part, Role, Usage},
    openai::ChunkEncoder,
    sse,
};

use crate::{
    app::{App, Backend},
    breaker::Settings,
    classify::blames_the_backend,
    convert::{self, Encoder},
    routing::Hop,
};

/// The reliability counters; see [`register`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Malformed upstream events skipped.
    pub(crate) malformed_skipped: Counter,
    /// Rescues of broken streams, by outcome (`continued`, `failed`).
    pub(crate) rescues: Family<OutcomeLabels, Counter>,
    /// Hedged attempts started, by outcome (`won`, `lost`).
    pub(crate) hedges: Family<OutcomeLabels, Counter>,
}

/// One label: what happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) outcome: String,
}

impl Counters {
    /// Count one rescue or hedge outcome.
    pub(crate) fn count(family: &Family<OutcomeLabels, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

static COUNTERS: LazyLock<Counters> = LazyLock::new(Counters::default);

/// The process-wide reliability counters.
pub(crate) fn counters() -> &'static Counters {
    &COUNTERS
}

/// Register the reliability counters with `/metrics`' registry.
pub(crate) fn register(registry: &mut Registry) {
    let counters = counters();
    registry.register(
        "malformed_events_skipped",
        "Malformed upstream stream events skipped (never forwarded)",
        counters.malformed_skipped.clone(),
    );
    registry.register(
        "rescues",
        "Committed streams that broke and were continued on another hop, by outcome",
        counters.rescues.clone(),
    );
    registry.register(
        "hedges",
        "Hops started in parallel because the first content was late, by outcome",
        counters.hedges.clone(),
    );
}

/// What a rescue needs to ask the rest of the chain: the client's request as a conversation,
/// its headers, the hop serving now and the hops after it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) app: Arc<App>,
    pub(crate) request: Conversation,
    pub(crate) headers: Arc<HeaderMap>,
    pub(crate) serving: Hop,
    pub(crate) next: Vec<Hop>,
}

/// The client's request as a conversation: decoded already (a translated chain), or the
/// bytes of a request passed through, decoded only if a rescue needs them.
#[derive(Debug, Clone)]
pub(crate) enum Conversation {
    Decoded(Arc<conversation::Request>),
    Raw(Arc<RawRequest>),
}

/// A request passed through: its dialect, its body, and for Gemini the model and streaming
/// its path named.
#[derive(Debug)]
pub(crate) struct RawRequest {
    pub(crate) dialect: Dialect,
    pub(crate) body: Bytes,
    pub(crate) path: Option<(String, bool)>,
}

impl Conversation {
    /// The request as a conversation (decoded now, for bytes passed through; a Responses
    /// request's sealed reasoning is opened with `seal`).
    fn get(
        &self,
        seal: &gateway_core::responses::ReasoningSeal,
    ) -> Result<Arc<conversation::Request>, GatewayError> {
        match self {
            Self::Decoded(request) => Ok(request.clone()),
            Self::Raw(raw) => {
                let path = raw
                    .path
                    .as_ref()
                    .map(|(model, stream)| (model.as_str(), *stream));
                convert::decode_request(raw.dialect, &raw.body, path, seal).map(Arc::new)
            }
        }
    }
}

/// The instruction sent (after the delivered text) to a hop that refuses an assistant prefill.
const CONTINUE: &str = "Your previous message was cut off. Continue it exactly where it stopped: do not repeat anything already written, do not comment, do not start over; your reply is appended to it as is.";

/// How much of the delivered text the overlap with a continuation is looked for in.
const WINDOW: usize = 4096;

/// The shortest overlap removed when it is not the whole delivered text: shorter ones are too
/// likely to be a real repetition.
const MIN_OVERLAP: usize = 16;

/// Rescues after one stream; each uses up the hops before the one that continued.
const MAX_RESCUES: u32 = 3;

type Opening = Pin<Box<dyn Future<Output = Result<(EventStream, usize), GatewayError>> + Send>>;

/// Watches the events a client receives and, when the stream breaks, continues it.
pub(crate) struct Rescuer {
    plan: Plan,
    /// The answer's text as the client received it.
    delivered: String,
    /// The next free block index on the client's side.
    next_index: u32,
    /// The client's text block still open (no block end yet).
    open_text: Option<u32>,
    tool_started: bool,
    refused: bool,
    finished: bool,
    /// The usage the client would see now (summed over rescued hops).
    usage: Option<Usage>,
    /// Usage of the hops that broke, added to the continuation's.
    carried: Usage,
    /// Continuation block index → client block index (`None`: left out).
    map: HashMap<u32, Option<u32>>,
    continuing: bool,
    dedup: Option<Dedup>,
    opening: Option<Opening>,
    broken: Option<GatewayError>,
    rescues: u32,
}

impl std::fmt::Debug for Rescuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rescuer")
            .field("serving", &self.plan.serving)
            .field("next", &self.plan.next)
            .field("delivered", &self.delivered.len())
            .field("rescues", &self.rescues)
            .finish_non_exhaustive()
    }
}

impl Rescuer {
    /// A rescuer for a stream served by `plan.serving`.
    pub(crate) fn new(plan: Plan) -> Self {
        Self {
            plan,
            delivered: String::new(),
            next_index: 0,
            open_text: None,
            tool_started: false,
            refused: false,
            finished: false,
            usage: None,
            carried: Usage::default(),
            map: HashMap::new(),
            continuing: false,
            dedup: None,
            opening: None,
            broken: None,
            rescues: 0,
        }
    }

    /// The events for the client in place of `event` (none, it, or held ones released).
    pub(crate) fn pass(&mut self, event: Event) -> Vec<Event> {
        let events = if self.continuing {
            self.translate(event)
        } else {
            vec![event]
        };
        for event in &events {
            self.track(event);
        }
        events
    }

    /// The stream ended: whatever the de-duplication still holds.
    pub(crate) fn end(&mut self) -> Vec<Event> {
        let events = self.dedup.as_mut().map(Dedup::decide).unwrap_or_default();
        for event in &events {
            self.track(event);
        }
        events
    }

    /// The stream broke with `err` after the commit: start a rescue, or give the error back.
    pub(crate) fn broke(&mut self, err: GatewayError) -> Result<(), GatewayError> {
        let why_not = if !matches!(err.side(), Side::Upstream) {
            Some("the failure is not the upstream's")
        } else if self.finished {
            Some("the answer had finished")
        } else if self.tool_started {
            Some("a tool call was being sent")
        } else if self.refused {
            Some("the answer was a refusal")
        } else if self.plan.next.is_empty() {
            Some("no hop is left in the chain")
        } else if self.rescues >= MAX_RESCUES {
            Some("it was rescued too often")
        } else {
            None
        };
        if let Some(reason) = why_not {
            tracing::info!(error = %err, reason, "a broken stream is not rescued");
            return Err(err);
        }
        let app = &self.plan.app;
        let serving = &app.backends[self.plan.serving.backend];
        if blames_the_backend(&err) {
            app.breakers.record(
                &serving.config.name,
                &self.plan.serving.model,
                false,
                Settings::of(&serving.config),
            );
        }
        tracing::warn!(backend = %serving.config.name, model = %self.plan.serving.model, error = %err, delivered = self.delivered.len(), "the stream broke after the commit; continuing it on the next hop");
        self.rescues += 1;
        self.carried = self.usage.clone().unwrap_or_default();
        self.opening = Some(Box::pin(open(self.plan.clone(), self.delivered.clone())));
        self.broken = Some(err);
        Ok(())
    }

    /// While a rescue is opening: `Ready(None)` when none is, else the continuation's events
    /// (or the error to end the stream with).
    pub(crate) fn poll_continuation(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<EventStream, GatewayError>>> {
        let Some(opening) = self.opening.as_mut() else {
            return Poll::Ready(None);
        };
        let result = std::task::ready!(opening.as_mut().poll(cx));
        self.opening = None;
        let broken = self.broken.take();
        match result {
            Ok((events, used)) => {
                let hop = self.plan.next[used].clone();
                let app = &self.plan.app;
                tracing::info!(backend = %app.backends[hop.backend].config.name, model = %hop.model, "the broken stream continues");
                Counters::count(&counters().rescues, "continued");
                self.plan.next.drain(..=used);
                self.plan.serving = hop;
                self.continuing = true;
                self.map.clear();
                self.dedup = Some(Dedup::new(&self.delivered));
                Poll::Ready(Some(Ok(events)))
            }
            Err(last) => {
                Counters::count(&counters().rescues, "failed");
                tracing::warn!(error = %last, "no hop could continue the broken stream");
                let Some(err) = broken else {
                    return Poll::Ready(Some(Err(last)));
                };
                Poll::Ready(Some(Err(GatewayError::new(
                    err.kind(),
                    format!(
                        "{}; no other hop could continue the answer ({})",
                        err.message(),
                        last.message()
                    ),
                ))))
            }
        }
    }

    /// Follow an event the client receives.
    fn track(&mut self, event: &Event) {
        let index = match event {
            Event::TextDelta { index, text } => {
                self.delivered.push_str(text);
                self.open_text = Some(*index);
                Some(*index)
            }
            Event::ThinkingDelta { index, .. }
            | Event::Signature { index, .. }
            | Event::RedactedThinking { index, .. }
            | Event::ToolCallDelta { index, .. } => Some(*index),
            Event::RefusalDelta { index, .. } => {
                self.refused = true;
                Some(*index)
            }
            Event::ToolCallStart { index, .. } => {
                self.tool_started = true;
                Some(*index)
            }
            Event::BlockEnd { index } => {
                if self.open_text == Some(*index) {
                    self.open_text = None;
                }
                Some(*index)
            }
            Event::Usage(usage) => {
                self.usage = Some(usage.clone());
                None
            }
            Event::Finish { .. } => {
                self.finished = true;
                None
            }
            Event::Start { .. } => None,
        };
        if let Some(index) = index {
            self.next_index = self.next_index.max(index.saturating_add(1));
        }
    }

    /// The client's block for continuation block `index`: the open text block for the first
    /// text, else a fresh one.
    fn block(&mut self, index: u32, text: bool) -> u32 {
        if let Some(Some(mapped)) = self.map.get(&index) {
            return *mapped;
        }
        let mapped = match self.open_text {
            Some(open) if text && !self.map.values().any(|m| *m == Some(open)) => open,
            _ => {
                let fresh = self.next_index;
                self.next_index = self.next_index.saturating_add(1);
                fresh
            }
        };
        self.map.insert(index, Some(mapped));
        mapped
    }

    /// A continuation event in the client's numbering, through the de-duplication.
    fn translate(&mut self, event: Event) -> Vec<Event> {
        let event = match event {
            Event::Start { .. } | Event::Signature { .. } => return Vec::new(),
            Event::ThinkingDelta { index, .. } | Event::RedactedThinking { index, .. } => {
                self.map.insert(index, None);
                return Vec::new();
            }
            Event::BlockEnd { index } => match self.map.get(&index) {
                Some(Some(mapped)) => Event::BlockEnd { index: *mapped },
                _ => return Vec::new(),
            },
            Event::TextDelta { index, text } => Event::TextDelta {
                index: self.block(index, true),
                text,
            },
            Event::RefusalDelta { index, text } => Event::RefusalDelta {
                index: self.block(index, false),
                text,
            },
            Event::ToolCallStart { index, id, name } => Event::ToolCallStart {
                index: self.block(index, false),
                id,
                name,
            },
            Event::ToolCallDelta { index, arguments } => match self.map.get(&index) {
                Some(Some(mapped)) => Event::ToolCallDelta {
                    index: *mapped,
                    arguments,
                },
                _ => return Vec::new(),
            },
            Event::Usage(usage) => Event::Usage(add(&self.carried, &usage)),
            finish @ Event::Finish { .. } => finish,
        };
        match self.dedup.as_mut() {
            Some(dedup) => dedup.push(event),
            None => vec![event],
        }
    }
}

/// The rescue of a stream passed through byte for byte in the client's own dialect (OpenAI
/// Chat, Anthropic, Responses, Gemini): the events are followed as they pass (for the
/// delivered text, the tool calls, the finish, and where the client's stream stands), and after
/// a break the continuation is encoded as the rest of the same answer.
pub(crate) struct PassRescue {
    rescuer: Rescuer,
    follow: Follow,
    /// Why the stream cannot be continued, once something passed that the shadow encoder
    /// cannot mirror (a block or item the decoder leaves out).
    unmirrored: Option<&'static str>,
    encoder: Option<Encoder>,
    events: Option<EventStream>,
    ended: bool,
}

/// How a passed-through stream is followed.
enum Follow {
    /// OpenAI Chat: the chunks are peeked at (their text, calls and finish), and their id,
    /// time and model kept for the chunks of the continuation.
    Chat {
        id: Option<String>,
        created: u64,
        model: Option<String>,
    },
    /// Anthropic, Responses and Gemini: the events are decoded, and fed to an encoder of the
    /// client's dialect (made at the answer's start, with its id) whose output is dropped, so
    /// that it stands where the client's stream stands (the message open, the block
    /// numbering) when the continuation comes. For Responses, the upstream's sequence numbers
    /// and item ids are kept too, for the continuation to carry on.
    Decoded {
        dialect: Dialect,
        decoder: Box<convert::Decoder>,
        shadow: Option<Box<Encoder>>,
        sequence: Option<u64>,
        item_ids: HashMap<usize, String>,
    },
}

/// The parts of a Chat chunk the rescue looks at.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChunkPeek {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    choices: Vec<ChoicePeek>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChoicePeek {
    delta: DeltaPeek,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeltaPeek {
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<serde::de::IgnoredAny>>,
    function_call: Option<serde::de::IgnoredAny>,
}

impl PassRescue {
    /// A rescue for the stream of `dialect` served by `plan.serving`.
    pub(crate) fn new(plan: Plan, dialect: Dialect) -> Option<Self> {
        let follow = match dialect {
            Dialect::OpenAiChat => Follow::Chat {
                id: None,
                created: 0,
                model: None,
            },
            Dialect::Anthropic | Dialect::Responses | Dialect::Gemini => Follow::Decoded {
                dialect,
                decoder: Box::new(convert::Decoder::new(dialect).ok()?),
                shadow: None,
                sequence: None,
                item_ids: HashMap::new(),
            },
            Dialect::Passthrough => return None,
        };
        Some(Self {
            rescuer: Rescuer::new(plan),
            follow,
            unmirrored: None,
            encoder: None,
            events: None,
            ended: false,
        })
    }

    /// Follow one well-formed event that was forwarded.
    pub(crate) fn observe(&mut self, event: &sse::Event) {
        match &mut self.follow {
            Follow::Chat { id, created, model } => {
                peek(&mut self.rescuer, id, created, model, event);
            }
            Follow::Decoded {
                dialect,
                decoder,
                shadow,
                sequence,
                item_ids,
            } => {
                if *dialect == Dialect::Responses {
                    follow_responses(event, sequence, item_ids);
                }
                if self.unmirrored.is_none() {
                    self.unmirrored = unmirrored(*dialect, event);
                }
                let plan = &self.rescuer.plan;
                let mut dropped = Vec::new();
                let events = decoder.event(event).unwrap_or_default();
                if shadow.is_none() {
                    let (id, model) = match events.first() {
                        Some(Event::Start { id, model }) if !model.is_empty() => {
                            (id.as_str(), model.as_str())
                        }
                        Some(Event::Start { id, .. }) => (id.as_str(), plan.serving.model.as_str()),
                        _ => ("", plan.serving.model.as_str()),
                    };
                    *shadow = Encoder::resumed(*dialect, id, model, &plan.app.seal).map(Box::new);
                }
                for event in events {
                    self.rescuer.pass(event.clone());
                    // The client has these bytes already, from the upstream.
                    if let Some(shadow) = shadow.as_mut() {
                        let _ = shadow.push(event, &mut dropped);
                    }
                    dropped.clear();
                }
            }
        }
    }

    /// Whether the stream now comes from the rescue.
    pub(crate) fn active(&self) -> bool {
        self.rescuer.opening.is_some() || self.events.is_some() || self.ended
    }

    /// The stream broke after the commit: start a rescue, or give the error back.
    pub(crate) fn broke(&mut self, err: GatewayError) -> Result<(), GatewayError> {
        if let Some(why) = self.unmirrored {
            tracing::info!(error = %err, why, "the broken stream is not continued");
            return Err(err);
        }
        self.rescuer.broke(err)
    }

    /// The next bytes of the rescued stream.
    pub(crate) fn poll_piece(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, GatewayError>> {
        let mut out = Vec::new();
        while out.is_empty() {
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            if let Some(next) = std::task::ready!(self.rescuer.poll_continuation(cx)) {
                self.events = Some(next?);
                if self.encoder.is_none() {
                    self.encoder = Some(self.encoder()?);
                }
                continue;
            }
            let (Some(events), Some(encoder)) = (self.events.as_mut(), self.encoder.as_mut())
            else {
                return Poll::Ready(Ok(None));
            };
            match std::task::ready!(events.as_mut().poll_next(cx)) {
                Some(Ok(event)) => {
                    for event in self.rescuer.pass(event) {
                        encoder.push(event, &mut out)?;
                    }
                }
                Some(Err(err)) => {
                    self.events = None;
                    self.rescuer.broke(err)?;
                }
                None => {
                    for event in self.rescuer.end() {
                        encoder.push(event, &mut out)?;
                    }
                    self.ended = true;
                    encoder.finish(&mut out)?;
                }
            }
        }
        Poll::Ready(Ok(Some(Bytes::from(out))))
    }

    /// An encoder that goes on where the client's stream stands: for Chat, the chunks of the
    /// response the client has (its id, time and model; no second role chunk); otherwise the
    /// shadow encoder.
    fn encoder(&mut self) -> Result<Encoder, GatewayError> {
        let (id, created, model) = match &mut self.follow {
            Follow::Chat { id, created, model } => (id.clone(), *created, model.clone()),
            Follow::Decoded {
                shadow,
                sequence,
                item_ids,
                ..
            } => {
                let mut encoder = shadow
                    .take()
                    .map(|shadow| *shadow)
                    .ok_or_else(|| GatewayError::internal("the rescue has no encoder"))?;
                if let Encoder::Responses(responses) = &mut encoder {
                    let next = sequence.map_or(responses.next_sequence_number(), |last| last + 1);
                    responses.resume(next, item_ids);
                }
                return Ok(encoder);
            }
        };
        let usage = self
            .rescuer
            .plan
            .request
            .get(&self.rescuer.plan.app.seal)?
            .stream_usage;
        let model = model.unwrap_or_else(|| self.rescuer.plan.serving.model.clone());
        let id = id.unwrap_or_else(|| "chatcmpl-rescued".to_owned());
        let mut encoder = ChunkEncoder::new(id, created, model, usage);
        // The role chunk the client already had.
        encoder.push(Event::Start {
            id: String::new(),
            model: String::new(),
        })?;
        Ok(Encoder::OpenAi(encoder))
    }
}

/// What in a passed-through event the shadow encoder cannot mirror, if anything: a block or
/// output item the decoder leaves out (an Anthropic server tool's blocks, a Responses web
/// search or a reasoning item, which may carry no summary), after which the client's numbering
/// and the shadow's differ.
fn unmirrored(dialect: Dialect, event: &sse::Event) -> Option<&'static str> {
    let kind = |data: &serde_json::Value, field: &str| -> Option<String> {
        data[field]["type"].as_str().map(str::to_owned)
    };
    match dialect {
        Dialect::Anthropic if event.data.contains("content_block_start") => {
            let data: serde_json::Value = serde_json::from_str(&event.data).ok()?;
            let block = kind(&data, "content_block")?;
            (!matches!(
                block.as_str(),
                "text" | "thinking" | "redacted_thinking" | "tool_use"
            ))
            .then_some("a content block the gateway does not follow")
        }
        Dialect::Responses if event.data.contains("response.output_item.added") => {
            let data: serde_json::Value = serde_json::from_str(&event.data).ok()?;
            let item = kind(&data, "item")?;
            (!matches!(
                item.as_str(),
                "message" | "function_call" | "custom_tool_call"
            ))
            .then_some("an output item the gateway does not follow")
        }
        _ => None,
    }
}

/// Follow one Responses event: its sequence number, and the id of an item it opens.
fn follow_responses(
    event: &sse::Event,
    sequence: &mut Option<u64>,
    item_ids: &mut HashMap<usize, String>,
) {
    let Ok(data) = serde_json::from_str::<serde_json::Value>(&event.data) else {
        return;
    };
    if let Some(number) = data["sequence_number"].as_u64() {
        *sequence = Some(number);
    }
    if data["type"] == "response.output_item.added"
        && let (Some(index), Some(id)) =
            (data["output_index"].as_u64(), data["item"]["id"].as_str())
    {
        item_ids.insert(usize::try_from(index).unwrap_or(usize::MAX), id.to_owned());
    }
}

/// Follow one Chat chunk: its text, refusal, calls and finish for `rescuer`, and the
/// response's id, time and model (from the first chunk).
fn peek(
    rescuer: &mut Rescuer,
    id: &mut Option<String>,
    created: &mut u64,
    model: &mut Option<String>,
    event: &sse::Event,
) {
    if event.is_done() {
        return;
    }
    let Ok(chunk) = serde_json::from_str::<ChunkPeek>(&event.data) else {
        return;
    };
    if id.is_none() {
        *id = chunk.id;
        *created = chunk.created.unwrap_or(0);
        *model = chunk.model;
    }
    for choice in chunk.choices {
        let delta = choice.delta;
        let mut seen = Vec::new();
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            seen.push(Event::TextDelta { index: 0, text });
        }
        if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
            seen.push(Event::RefusalDelta { index: 1, text });
        }
        if delta.tool_calls.is_some_and(|c| !c.is_empty()) || delta.function_call.is_some() {
            seen.push(Event::ToolCallStart {
                index: 2,
                id: String::new(),
                name: String::new(),
            });
        }
        if let Some(reason) = choice.finish_reason {
            seen.push(Event::Finish {
                reason: FinishReason::Other(reason),
            });
        }
        for event in seen {
            rescuer.pass(event);
        }
    }
}

/// Two usages summed.
fn add(a: &Usage, b: &Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_add(b.input_tokens),
        output_tokens: a.output_tokens.saturating_add(b.output_tokens),
        reasoning_tokens: a.reasoning_tokens.saturating_add(b.reasoning_tokens),
        cache_read_tokens: a.cache_read_tokens.saturating_add(b.cache_read_tokens),
        cache_write_tokens: a.cache_write_tokens.saturating_add(b.cache_write_tokens),
        extra: b.extra.clone(),
    }
}

/// The request that asks a hop to continue `delivered`: as an assistant prefill (the text
/// without its trailing whitespace, which some providers refuse), or followed by an explicit
/// instruction.
pub(crate) fn continuation(
    request: &conversation::Request,
    delivered: &str,
    prefill: bool,
) -> conversation::Request {
    let mut request = request.clone();
    request.stream = true;
    if delivered.trim().is_empty() {
        return request;
    }
    let text = if prefill {
        delivered.trim_end()
    } else {
        delivered
    };
    request
        .messages
        .push(Message::new(Role::Assistant, vec![Part::text(text)]));
    if !prefill {
        request
            .messages
            .push(Message::new(Role::User, vec![Part::text(CONTINUE)]));
    }
    request
}

/// Ask the hops of `plan.next` in order for the continuation of `delivered`, until one
/// produces content; the events (the held ones first) and which hop it was.
async fn open(plan: Plan, delivered: String) -> Result<(EventStream, usize), GatewayError> {
    let app = &plan.app;
    let asked = plan.request.get(&plan.app.seal)?;
    let mut last: Option<GatewayError> = None;
    for (position, hop) in plan.next.iter().enumerate() {
        let backend = &app.backends[hop.backend];
        let name = backend.config.name.as_str();
        let settings = Settings::of(&backend.config);
        let Some(ticket) = app.breakers.admit(name, &hop.model, settings, false) else {
            continue;
        };
        let budget = backend
            .config
            .timeouts
            .first_byte
            .unwrap_or(Duration::from_secs(60));
        let mut prefill = !app.breakers.refuses_prefill(name, &hop.model);
        loop {
            let request = continuation(&asked, &delivered, prefill);
            let opened = events(app, backend, &request, &hop.model, &plan.headers);
            match first_content(opened, budget).await {
                Ok(events) => {
                    ticket.record(true);
                    tracing::info!(backend = name, model = %hop.model, prefill, "a hop continues the broken stream");
                    return Ok((events, position));
                }
                Err(err)
                    if prefill
                        && !delivered.trim().is_empty()
                        && err.upstream_status().is_some_and(|s| s.as_u16() == 400) =>
                {
                    tracing::info!(backend = name, model = %hop.model, error = %err, "the hop refuses an assistant prefill; asking it to continue instead");
                    app.breakers.refused_prefill(name, &hop.model);
                    prefill = false;
                }
                Err(err) => {
                    if blames_the_backend(&err) {
                        ticket.record(false);
                    }
                    last = Some(err);
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "every other hop of the chain is unavailable",
        )
    }))
}

/// The events of `request` for `model` from `backend`: in process when the service can serve,
/// else from its HTTP upstream in that upstream's dialect (a `proxy_url` is another gateway, asked
/// in OpenAI Chat), whatever the client speaks.
async fn events(
    app: &Arc<App>,
    backend: &Backend,
    request: &conversation::Request,
    model: &str,
    headers: &HeaderMap,
) -> Result<EventStream, GatewayError> {
    let mut request = request.clone();
    model.clone_into(&mut request.model);
    if let Some(service) = app
        .local_of(backend)
        .filter(|s| s.credentials().is_available())
    {
        let context = crate::chat::context(headers);
        let generation = service.generate(&request, &context).await?;
        return Ok(generation.events);
    }
    let upstream = match backend.reach.facts(false).upstream {
        Dialect::Passthrough => Dialect::OpenAiChat,
        dialect => dialect,
    };
    let Some((key, forwarder)) = backend.reach.pick()? else {
        return Err(GatewayError::new(
            ErrorKind::Unavailable,
            format!("the {} backend has no upstream url", backend.config.name),
        ));
    };
    let (path, payload) = convert::encode_request(upstream, &request)?;
    let timeouts = match backend.reach.profile() {
        Some(profile) => app.config.pool(profile).timeouts,
        None => backend.config.timeouts,
    };
    let options = CallOptions {
        timeouts,
        expect: Expect::EventStream,
    };
    let sent = forwarder
        .forward(
            http::Method::POST,
            &path,
            headers,
            body::full(payload),
            options,
        )
        .await;
    backend.reach.report(key, sent.as_ref().map(|_| ()));
    let body = sent?.into_body();
    Ok(Box::pin(convert::Decoded::new(body, upstream)?))
}

/// The events of `opened` once the first content arrived within `budget` (those before it
/// held and replayed).
async fn first_content(
    opened: impl Future<Output = Result<EventStream, GatewayError>>,
    budget: Duration,
) -> Result<EventStream, GatewayError> {
    let waiting = async {
        let mut events = opened.await?;
        let mut held = Vec::new();
        while let Some(event) = events.next().await {
            let event = event?;
            let content = conversation::is_content(&event);
            held.push(Ok(event));
            if content {
                let replay = futures_util::stream::iter(held);
                return Ok(Box::pin(replay.chain(events)) as EventStream);
            }
        }
        Err(GatewayError::new(
            ErrorKind::Truncated,
            "the continuation ended before any content",
        ))
    };
    tokio::time::timeout(budget, waiting)
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::new(
                ErrorKind::FirstByteTimeout,
                format!("no continuation within {budget:?}"),
            ))
        })
}

/// Removes from the start of a continuation what repeats the end of the delivered text (a hop
/// that ignores the prefill and starts over, or overlaps a little). Continuation events are
/// held until the overlap is known: as soon as the text can no longer grow into a longer one.
#[derive(Debug)]
struct Dedup {
    /// The end of the delivered text.
    window: String,
    /// Whether `window` is all of it (then a whole restart is recognised).
    whole: bool,
    /// Trailing whitespace of the delivered text (left out of a prefill).
    trailing_space: usize,
    /// The continuation's text so far.
    text: String,
    held: Vec<Event>,
    decided: bool,
}

impl Dedup {
    /// Ready to compare a continuation with `delivered`.
    fn new(delivered: &str) -> Self {
        let mut start = delivered.len().saturating_sub(WINDOW);
        while !delivered.is_char_boundary(start) {
            start += 1;
        }
        Self {
            window: delivered[start..].to_owned(),
            whole: start == 0,
            trailing_space: delivered.len() - delivered.trim_end().len(),
            text: String::new(),
            held: Vec::new(),
            decided: delivered.is_empty(),
        }
    }

    /// The events to release for `event` (none while the overlap is not known yet).
    fn push(&mut self, event: Event) -> Vec<Event> {
        if self.decided {
            return vec![event];
        }
        match &event {
            Event::TextDelta { text, .. } => {
                self.text.push_str(text);
                self.held.push(event);
                if self.settled() {
                    return self.decide();
                }
                Vec::new()
            }
            other if conversation::is_content(other) => {
                self.held.push(event);
                self.decide()
            }
            _ => {
                self.held.push(event);
                Vec::new()
            }
        }
    }

    /// Whether the overlap can no longer grow: the text is as long as the window, or it occurs
    /// nowhere in the window short of its end.
    fn settled(&self) -> bool {
        if self.text.len() >= self.window.len() {
            return true;
        }
        let last = self.window.chars().next_back().map_or(0, char::len_utf8);
        let head = &self.window[..self.window.len() - last];
        !head.contains(self.text.as_str())
    }

    /// The longest acceptable overlap: the window ends with the text's first `n` bytes.
    fn overlap(&self) -> usize {
        let most = self.text.len().min(self.window.len());
        (1..=most)
            .rev()
            .filter(|n| self.text.is_char_boundary(*n))
            .find(|n| {
                let candidate = &self.text[..*n];
                self.window.ends_with(candidate)
                    && (*n >= MIN_OVERLAP
                        || (self.whole && *n == self.window.len())
                        || (candidate.trim().is_empty() && *n <= self.trailing_space))
            })
            .unwrap_or(0)
    }

    /// Release the held events without the overlap.
    fn decide(&mut self) -> Vec<Event> {
        if self.decided {
            return std::mem::take(&mut self.held);
        }
        self.decided = true;
        let mut cut = self.overlap();
        let mut out = Vec::with_capacity(self.held.len());
        for event in self.held.drain(..) {
            match event {
                Event::TextDelta { index, text } if cut > 0 => {
                    if text.len() <= cut {
                        cut -= text.len();
                    } else {
                        out.push(Event::TextDelta {
                            index,
                            text: text[cut..].to_owned(),
                        });
                        cut = 0;
                    }
                }
                other => out.push(other),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(index: u32, text: &str) -> Event {
        Event::TextDelta {
            index,
            text: text.to_owned(),
        }
    }

    fn run(delivered: &str, continuation: &[&str]) -> String {
        let mut dedup = Dedup::new(delivered);
        let mut out = Vec::new();
        for piece in continuation {
            out.extend(dedup.push(text(0, piece)));
        }
        out.extend(dedup.decide());
        out.iter()
            .map(|e| match e {
                Event::TextDelta { text, .. } => text.as_str(),
                _ => "",
            })
            .collect()
    }

    #[test]
    fn overlaps_are_removed_and_real_text_kept() {
        let delivered = "tok1 世界🌏 tok2 世界🌏 tok3 世界🌏 ";
        // A hop that starts over.
        assert_eq!(
            run(delivered, &["tok1 世", "界🌏 tok2 世界🌏 tok3 世界🌏 tok4"]),
            "tok4"
        );
        // A hop that continues exactly.
        assert_eq!(
            run(delivered, &["tok4 世界🌏 ", "tok5"]),
            "tok4 世界🌏 tok5"
        );
        // A hop that repeats the last words.
        assert_eq!(run(delivered, &["tok3 世界🌏 tok4"]), "tok4");
        // The space a prefill left out is not doubled.
        assert_eq!(run(delivered, &[" tok4"]), "tok4");
        // A short coincidence is not an overlap.
        assert_eq!(run("the cat sat on the", &[" the mat"]), " the mat");
        assert_eq!(run("", &["fresh"]), "fresh");
    }

    #[test]
    fn the_counters_are_exported() {
        let mut registry = Registry::with_prefix("gateway");
        register(&mut registry);
        counters().malformed_skipped.inc();
        Counters::count(&counters().rescues, "continued");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("gateway_malformed_events_skipped_total"),
            "{out}"
        );
        assert!(
            out.contains("gateway_rescues_total{outcome=\"continued\"}"),
            "{out}"
        );
    }

    #[test]
    fn continuation_requests_prefill_or_instruct() {
        let request = conversation::Request {
            model: "m".into(),
            messages: vec![Message::new(Role::User, vec![Part::text("hi")])],
            ..conversation::Request::default()
        };
        let prefill = continuation(&request, "Hello ", true);
        assert_eq!(prefill.messages.len(), 2);
        assert_eq!(prefill.messages[1].role, Role::Assistant);
        assert!(prefill.stream);
        let instruct = continuation(&request, "Hello ", false);
        assert_eq!(instruct.messages.len(), 3);
        assert_eq!(instruct.messages[2].role, Role::User);
        assert_eq!(continuation(&request, " ", true).messages.len(), 1);
    }

    #[test]
    fn blocks_and_items_the_shadow_cannot_mirror_stop_a_rescue() {
        let event = |data: &str| sse::Event::data(data);
        let server_tool = event(
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"web_search","input":{}}}"#,
        );
        assert!(unmirrored(Dialect::Anthropic, &server_tool).is_some());
        let text = event(
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        );
        assert!(unmirrored(Dialect::Anthropic, &text).is_none());
        let reasoning = event(
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}"#,
        );
        assert!(unmirrored(Dialect::Responses, &reasoning).is_some());
        let message = event(
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_1","role":"assistant","content":[]}}"#,
        );
        assert!(unmirrored(Dialect::Responses, &message).is_none());
        assert!(unmirrored(Dialect::Gemini, &server_tool).is_none());
    }
}
