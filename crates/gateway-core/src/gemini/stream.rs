//! `streamGenerateContent`: chunks to and from [`Event`](conv::Event)s, SSE framing, and the
//! incremental reader and writer of the JSON-array form.
//!
//! Why two framings: with `alt=sse` (what google-genai and Gemini CLI ask for) each chunk is a
//! `data: <GenerateContentResponse>` event; without it the same chunks arrive as one JSON array
//! written a chunk at a time (`[{...}\n,\r\n{...}\n]`), which a plain JSON parser could only
//! read at the end. [`JsonArrayDecoder`] yields each element as soon as it is complete.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    Candidate, Content, FunctionCall, GenerateContentResponse, Part, UsageMetadata,
    convert::{finish_from_conversation, finish_to_conversation},
};
use crate::{
    ErrorKind, GatewayError, conversation as conv, dialect, sse,
    wire::{Blocks, WireUsage, json_of, unfinished},
};

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// Turns a response's [`Event`](conv::Event)s into Gemini stream chunks, as Gemini writes them:
/// every chunk is a `GenerateContentResponse` with one candidate (`index` 0, role `model`), the
/// client's `modelVersion` and the `responseId`; text and thinking (`thought: true`) go out as
/// they come; a signature of a text or thinking block goes out as an empty part of that kind
/// carrying `thoughtSignature` (Gemini itself ends signed blocks so); each tool call goes out
/// whole, with its signature, as one `functionCall` part when its block ends (Gemini never
/// splits a call's arguments); the finish reason and the usage go out together in a last
/// chunk at [`finish`](StreamEncoder::finish). Refusals are written as text; redacted
/// thinking has no Gemini form.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    response_id: String,
    /// What each block started as.
    blocks: HashMap<u32, Block>,
    /// Calls whose block has not ended, in start order.
    calls: Vec<PendingCall>,
    finish: Option<conv::FinishReason>,
    usage: Option<conv::Usage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Call,
}

#[derive(Debug)]
struct PendingCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

impl StreamEncoder {
    /// An encoder for a client that asked for `model`, answering as `response_id` (omitted
    /// from the chunks when empty).
    pub fn new(model: impl Into<String>, response_id: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            response_id: response_id.into(),
            blocks: HashMap::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    /// The chunks for one event (often none or one). Arguments for a block that started no
    /// tool call, and a tool call whose arguments are no JSON, are `UpstreamProtocol` errors.
    /// Events after the finish (but usage) are ignored.
    pub fn push(
        &mut self,
        event: conv::Event,
    ) -> Result<Vec<GenerateContentResponse>, GatewayError> {
        let mut chunks = Vec::new();
        if self.finish.is_some() {
            if let conv::Event::Usage(usage) = event {
                self.usage = Some(usage);
            }
            return Ok(chunks);
        }
        match event {
            conv::Event::Start { .. } | conv::Event::RedactedThinking { .. } => {}
            conv::Event::TextDelta { index, text } | conv::Event::RefusalDelta { index, text } => {
                self.blocks.entry(index).or_insert(Block::Text);
                if !text.is_empty() {
                    chunks.push(self.chunk(vec![Part::text(text)], None));
                }
            }
            conv::Event::ThinkingDelta { index, text } => {
                self.blocks.entry(index).or_insert(Block::Thinking);
                if !text.is_empty() {
                    chunks.push(self.chunk(vec![thought(text, None)], None));
                }
            }
            conv::Event::Signature { index, signature } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.index == index) {
                    call.signature = Some(signature);
                } else {
                    let part = match self.blocks.get(&index) {
                        Some(Block::Text) => Part {
                            thought_signature: Some(signature),
                            ..Part::text("")
                        },
                        _ => thought(String::new(), Some(signature)),
                    };
                    chunks.push(self.chunk(vec![part], None));
                }
            }
            conv::Event::ToolCallStart { index, id, name } => {
                self.blocks.insert(index, Block::Call);
                self.calls.push(PendingCall {
                    index,
                    id,
                    name,
                    arguments: String::new(),
                    signature: None,
                });
            }
            conv::Event::ToolCallDelta { index, arguments } => {
                let Some(call) = self.calls.iter_mut().find(|c| c.index == index) else {
                    return Err(GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!(
                            "tool call arguments for content block {index}, which started no open tool call"
                        ),
                    ));
                };
                call.arguments.push_str(&arguments);
            }
            conv::Event::BlockEnd { index } => {
                if let Some(at) = self.calls.iter().position(|c| c.index == index) {
                    let call = self.calls.remove(at);
                    chunks.push(self.call_chunk(call)?);
                }
            }
            conv::Event::Usage(usage) => self.usage = Some(usage),
            conv::Event::Finish { reason } => {
                for call in std::mem::take(&mut self.calls) {
                    chunks.push(self.call_chunk(call)?);
                }
                self.finish = Some(reason);
            }
        }
        Ok(chunks)
    }

    /// The stream ended: the last chunk, with the finish reason (a tool use is `STOP`, as
    /// Gemini says it) and the usage (when any came). A stream that never finished is a
    /// `Truncated` error, never a made-up finish.
    pub fn finish(&mut self) -> Result<Vec<GenerateContentResponse>, GatewayError> {
        let mut chunks = Vec::new();
        for call in std::mem::take(&mut self.calls) {
            chunks.push(self.call_chunk(call)?);
        }
        let Some(reason) = self.finish.take() else {
            return Err(unfinished());
        };
        let mut last = self.chunk(
            vec![Part::text("")],
            Some(finish_from_conversation(&reason)),
        );
        last.usage_metadata = self
            .usage
            .take()
            .as_ref()
            .map(UsageMetadata::from_conversation);
        chunks.push(last);
        Ok(chunks)
    }

    /// One chunk as a server-sent event (`data: <json>`), for `alt=sse`.
    pub fn to_sse(chunk: &GenerateContentResponse) -> Result<sse::Event, GatewayError> {
        serde_json::to_string(chunk)
            .map(sse::Event::data)
            .map_err(|e| GatewayError::internal(format!("cannot serialize a gemini chunk: {e}")))
    }

    fn call_chunk(&self, call: PendingCall) -> Result<GenerateContentResponse, GatewayError> {
        let PendingCall {
            id,
            name,
            arguments,
            signature,
            ..
        } = call;
        let args = if arguments.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&arguments).map_err(|e| {
                GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    format!("the arguments of tool call {name:?} are not valid json: {e}"),
                )
            })?
        };
        let part = Part {
            function_call: Some(FunctionCall {
                id: (!id.is_empty()).then_some(id),
                name,
                args: Some(args),
                extra: serde_json::Map::new(),
            }),
            thought_signature: signature,
            ..Part::default()
        };
        Ok(self.chunk(vec![part], None))
    }

    fn chunk(&self, parts: Vec<Part>, finish_reason: Option<String>) -> GenerateContentResponse {
        GenerateContentResponse {
            candidates: Some(vec![Candidate {
                content: Some(Content::new("model", parts)),
                finish_reason,
                index: Some(0),
                ..Candidate::default()
            }]),
            prompt_feedback: None,
            usage_metadata: None,
            model_version: Some(self.model.clone()),
            response_id: (!self.response_id.is_empty()).then(|| self.response_id.clone()),
            extra: serde_json::Map::new(),
        }
    }
}

fn thought(text: String, signature: Option<String>) -> Part {
    Part {
        text: Some(text),
        thought: Some(true),
        thought_signature: signature,
        ..Part::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// Turns an upstream's Gemini chunks into [`Event`](conv::Event)s, for Gemini upstreams serving
/// other protocols.
///
/// The first chunk gives [`Start`](conv::Event::Start) (`responseId`, `modelVersion`). Each run
/// of text or of thinking is one block; a `thoughtSignature` ends the block it signs (a
/// signature alone, with no open block, is a thinking block of its own). Each `functionCall` is
/// one whole block: start, arguments, signature, end; an absent id stays empty. Usage (which
/// Gemini repeats on every chunk) is reported twice: the first counts at once, the last ones
/// right before the finish (and again if a chunk after the finish changes them). Only
/// candidate 0 is read; media,
/// code and other parts the events cannot carry are skipped. A prompt blocked with no
/// candidate finishes with [`ContentFilter`](conv::FinishReason::ContentFilter). An
/// `{"error": {...}}` chunk is the error it reports.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    blocks: Blocks<Block>,
    made_calls: bool,
    /// The last usage reported, and a newer one not reported yet.
    usage: Option<conv::Usage>,
    pending_usage: Option<conv::Usage>,
}

impl StreamDecoder {
    /// A decoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of one chunk.
    pub fn push(
        &mut self,
        chunk: &GenerateContentResponse,
    ) -> Result<Vec<conv::Event>, GatewayError> {
        if let Some(error) = chunk.extra.get("error").filter(|e| !e.is_null()) {
            return Err(dialect::error_in_body(error, &json_of(chunk)));
        }
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(conv::Event::Start {
                id: chunk.response_id.clone().unwrap_or_default(),
                model: chunk.model_version.clone().unwrap_or_default(),
            });
        }
        let candidates = chunk.candidates.as_deref().unwrap_or_default();
        let candidate = candidates.iter().find(|c| c.index.unwrap_or(0) == 0);
        if let Some(candidate) = candidate
            && !self.finished
        {
            let parts = candidate
                .content
                .as_ref()
                .map(Content::parts)
                .unwrap_or_default();
            for part in parts {
                self.part(part, &mut events);
            }
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.pending_usage = Some(usage.to_conversation());
            // The first counts (the prompt's) go out at once; later ones before the finish.
            if self.usage.is_none() || self.finished {
                self.report_usage(&mut events);
            }
        }
        if !self.finished {
            let reason = candidate
                .and_then(|c| c.finish_reason.as_deref())
                .map(|r| finish_to_conversation(r, self.made_calls));
            let blocked = candidates.is_empty()
                && chunk
                    .prompt_feedback
                    .as_ref()
                    .is_some_and(|f| f.block_reason.is_some());
            let reason = reason.or(blocked.then_some(conv::FinishReason::ContentFilter));
            if let Some(reason) = reason {
                self.finished = true;
                self.blocks.close(&mut events);
                self.report_usage(&mut events);
                events.push(conv::Event::Finish { reason });
            }
        }
        Ok(events)
    }

    /// The upstream stream ended: the open block ends. A stream without a finish reason is a
    /// `Truncated` error.
    pub fn finish(&mut self) -> Result<Vec<conv::Event>, GatewayError> {
        self.blocks.end_stream(self.finished)
    }

    fn report_usage(&mut self, events: &mut Vec<conv::Event>) {
        if let Some(usage) = self.pending_usage.take()
            && self.usage.as_ref() != Some(&usage)
        {
            self.usage = Some(usage.clone());
            events.push(conv::Event::Usage(usage));
        }
    }

    fn part(&mut self, part: &Part, events: &mut Vec<conv::Event>) {
        if let Some(call) = &part.function_call {
            let index = self.blocks.start(Block::Call, events);
            self.blocks.open = None;
            self.made_calls = true;
            events.push(conv::Event::ToolCallStart {
                index,
                id: call.id.clone().unwrap_or_default(),
                name: call.name.clone(),
            });
            let arguments = call
                .args
                .as_ref()
                .map_or_else(|| "{}".to_owned(), Value::to_string);
            events.push(conv::Event::ToolCallDelta { index, arguments });
            if let Some(signature) = &part.thought_signature {
                events.push(conv::Event::Signature {
                    index,
                    signature: signature.clone(),
                });
            }
            events.push(conv::Event::BlockEnd { index });
            return;
        }
        let kind = if part.is_thought() {
            Block::Thinking
        } else {
            Block::Text
        };
        match &part.text {
            Some(text) if !text.is_empty() => {
                let index = self.blocks.enter(kind, events);
                events.push(match kind {
                    Block::Thinking => conv::Event::ThinkingDelta {
                        index,
                        text: text.clone(),
                    },
                    Block::Text | Block::Call => conv::Event::TextDelta {
                        index,
                        text: text.clone(),
                    },
                });
            }
            Some(_) => {}
            // Media, code and unknown parts have no event; a bare signature signs the open
            // block.
            None if part.thought_signature.is_none() => return,
            None => {}
        }
        if let Some(signature) = &part.thought_signature {
            let index = match (self.blocks.open, &part.text) {
                (Some((_, index)), None) => index,
                (Some((open, index)), Some(_)) if open == kind => index,
                _ => self.blocks.start(Block::Thinking, events),
            };
            events.push(conv::Event::Signature {
                index,
                signature: signature.clone(),
            });
            self.blocks.close(events);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON-array framing
// ---------------------------------------------------------------------------------------------

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Default cap on one element of a streamed JSON array: the SSE decoder's cap on one event.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = sse::DEFAULT_MAX_EVENT_BYTES;

/// An incremental reader of a streamed JSON array (`streamGenerateContent` without
/// `alt=sse`): [`feed`](JsonArrayDecoder::feed) bytes as they arrive, then call
/// [`next`](JsonArrayDecoder::next) until it returns `Ok(None)`; at end of input call
/// [`finish`](JsonArrayDecoder::finish).
///
/// Elements must be objects or arrays; whitespace and commas between them are skipped. A body
/// that is one bare object (an error envelope) is yielded as one element. Bytes are scanned
/// once (string and nesting state survive across reads), so any split point works; one element
/// is capped in size. Every error is final: `UpstreamProtocol` for malformed input, `Truncated`
/// at [`finish`](JsonArrayDecoder::finish) for an array never closed.
#[derive(Debug)]
pub struct JsonArrayDecoder {
    buf: Vec<u8>,
    /// Start of the unread part of `buf` (the current element's first byte while in one).
    pos: usize,
    /// Where scanning the current element resumes.
    scan: usize,
    max_element: usize,
    state: ArrayState,
    failed: Option<String>,
    /// Where in `buf` the element [`next`](JsonArrayDecoder::next) yielded last lies.
    last: (usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Before the opening bracket.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    After,
    /// After `,`: an element.
    Next,
    /// Inside an element.
    Element {
        depth: u32,
        in_string: bool,
        escape: bool,
        /// A bare top-level object rather than an array element.
        bare: bool,
    },
    /// After the closing bracket (or a bare object): only whitespace may follow.
    Done,
}

impl Default for JsonArrayDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ELEMENT_BYTES)
    }
}

impl JsonArrayDecoder {
    /// A decoder that rejects elements larger than `max_element_bytes`.
    pub fn new(max_element_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            scan: 0,
            max_element: max_element_bytes,
            state: ArrayState::Start,
            failed: None,
            last: (0, 0),
        }
    }

    /// The bytes of the element [`next`](JsonArrayDecoder::next) yielded last, as the upstream
    /// wrote them (for a relay that forwards them unchanged); empty once more bytes were fed.
    pub fn last_element(&self) -> &[u8] {
        self.buf.get(self.last.0..self.last.1).unwrap_or_default()
    }

    /// Append received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.last = (0, 0);
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos * 2 > self.buf.len()) {
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete element, `Ok(None)` when more input is needed (or the array ended).
    #[expect(
        clippy::should_implement_trait,
        reason = "not an iterator: `Ok(None)` means feed more bytes, not the end, and errors are items"
    )]
    pub fn next(&mut self) -> Result<Option<Value>, GatewayError> {
        if let Some(message) = &self.failed {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                message.clone(),
            ));
        }
        loop {
            if let ArrayState::Element {
                depth,
                in_string,
                escape,
                bare,
            } = self.state
            {
                return self.element(depth, in_string, escape, bare);
            }
            // Between elements: skip whitespace (and a leading byte-order mark).
            if self.state == ArrayState::Start {
                let head = &self.buf[self.pos..];
                if head.starts_with(BOM) {
                    self.pos += BOM.len();
                } else if !head.is_empty() && BOM.starts_with(head) {
                    return Ok(None);
                }
            }
            while self
                .buf
                .get(self.pos)
                .is_some_and(|b| b.is_ascii_whitespace())
            {
                self.pos += 1;
            }
            self.scan = self.pos;
            let Some(&byte) = self.buf.get(self.pos) else {
                return Ok(None);
            };
            let element = |bare| ArrayState::Element {
                depth: 0,
                in_string: false,
                escape: false,
                bare,
            };
            self.state = match (self.state, byte) {
                (ArrayState::Start, b'[') => {
                    self.pos += 1;
                    ArrayState::First
                }
                (ArrayState::Start, b'{') => element(true),
                (ArrayState::First | ArrayState::After, b']') => {
                    self.pos += 1;
                    ArrayState::Done
                }
                (ArrayState::After, b',') => {
                    self.pos += 1;
                    ArrayState::Next
                }
                (ArrayState::First | ArrayState::Next, b'{' | b'[') => element(false),
                (state, byte) => {
                    let what = match state {
                        ArrayState::Start => "a json array",
                        ArrayState::First => "an element or `]`",
                        ArrayState::After => "`,` or `]`",
                        ArrayState::Next => "an object or array element",
                        ArrayState::Done | ArrayState::Element { .. } => "the end of the stream",
                    };
                    return Err(self.fail(format!(
                        "malformed json array stream from the upstream: expected {what}, found {:?}",
                        char::from(byte)
                    )));
                }
            };
        }
    }

    /// Signal end of input: an array that was never closed (or never opened) is a `Truncated`
    /// error.
    pub fn finish(&mut self) -> Result<(), GatewayError> {
        if let Some(message) = &self.failed {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                message.clone(),
            ));
        }
        if self.state == ArrayState::Done {
            return Ok(());
        }
        Err(GatewayError::new(
            ErrorKind::Truncated,
            "the upstream json array stream ended before its closing bracket",
        ))
    }

    /// Scan the current element from `scan`; yield it when its last bracket arrives.
    fn element(
        &mut self,
        mut depth: u32,
        mut in_string: bool,
        mut escape: bool,
        bare: bool,
    ) -> Result<Option<Value>, GatewayError> {
        let mut end = None;
        for (offset, &byte) in self.buf[self.scan..].iter().enumerate() {
            if in_string {
                if escape {
                    escape = false;
                } else if byte == b'\\' {
                    escape = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth = depth.saturating_add(1),
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(self.scan + offset + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            self.scan = self.buf.len();
            self.state = ArrayState::Element {
                depth,
                in_string,
                escape,
                bare,
            };
            if self.buf.len() - self.pos > self.max_element {
                return Err(self.fail(format!(
                    "json array element larger than {} bytes",
                    self.max_element
                )));
            }
            return Ok(None);
        };
        if end - self.pos > self.max_element {
            return Err(self.fail(format!(
                "json array element larger than {} bytes",
                self.max_element
            )));
        }
        let value = serde_json::from_slice::<Value>(&self.buf[self.pos..end]);
        self.last = (self.pos, end);
        self.pos = end;
        self.scan = end;
        self.state = if bare {
            ArrayState::Done
        } else {
            ArrayState::After
        };
        match value {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(self.fail(format!(
                "malformed json array element from the upstream: {e}"
            ))),
        }
    }

    fn fail(&mut self, message: String) -> GatewayError {
        self.failed = Some(message.clone());
        self.buf = Vec::new();
        self.pos = 0;
        self.scan = 0;
        GatewayError::new(ErrorKind::UpstreamProtocol, message)
    }
}

/// Writes chunks as one streamed JSON array, as Gemini does without `alt=sse`: `[` before the
/// first, `,\r\n` between two, `]` at the end (`[]` when there were none).
#[derive(Debug, Default)]
pub struct JsonArrayEncoder {
    started: bool,
}

impl JsonArrayEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one chunk to `out`.
    pub fn push(
        &mut self,
        chunk: &GenerateContentResponse,
        out: &mut Vec<u8>,
    ) -> Result<(), GatewayError> {
        out.extend_from_slice(if self.started { b",\r\n" } else { b"[" });
        self.started = true;
        serde_json::to_writer(&mut *out, chunk)
            .map_err(|e| GatewayError::internal(format!("cannot serialize a gemini chunk: {e}")))
    }

    /// Append the end of the array to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            out.push(b'[');
            self.started = true;
        }
        out.push(b']');
    }
}
