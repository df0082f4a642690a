//! Antigravity stream events → conversation events, one upstream event at a time.
//!
//! Output contract: blocks in the order the upstream sends them (thinking, text, tool calls),
//! each opened by its first delta and closed by `BlockEnd`; every function call with a unique
//! id, the client's tool name and its arguments in one delta; signatures as `Signature` events
//! on the block they belong to (and remembered for clients that cannot carry them); images as
//! markdown data URIs in text; exactly one `Finish`, after the last content and before the
//! final `Usage`. A stream that ends without a finish reason is a `Truncated` error, never a
//! finish, with one exception: a prompt the upstream refused to answer (`promptFeedback` with a
//! `blockReason`, and no candidate) is a content-filter finish, because that is the upstream's
//! answer, not a cut stream (an error would be retried elsewhere and count against the backend).
//!
//! Finish reasons: `MAX_TOKENS` is the length limit; the safety, recitation, blocklist and
//! prohibited-content reasons (the image ones included) are a content filter; a malformed or
//! unexpected call and `MISSING_THOUGHT_SIGNATURE` (the upstream refusing a history whose
//! reasoning lost its signature) are protocol errors that say so, not an empty answer.
//!
//! Usage: the tool-use prompt (`toolUsePromptTokenCount`) is input like the prompt, so the
//! total matches the upstream's `totalTokenCount`.

use std::sync::Arc;

use serde_json::{Map, Value};

use gateway_core::{
    ErrorKind, GatewayError, RetryHint,
    conversation::{Event, FinishReason, Usage},
};

use crate::{
    models::Family,
    names::ToolNames,
    signatures::SignatureCache,
    wire::{GenerateResponse, Part, StreamEvent, UsageMetadata},
};

/// The kind of the block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
}

/// Translates one response's upstream events.
#[derive(Debug)]
pub(crate) struct StreamTranslator {
    /// The response id, for tool-call ids the upstream did not give.
    id: String,
    model: String,
    names: ToolNames,
    family: Family,
    cache: Arc<SignatureCache>,
    started: bool,
    /// The open block and its index.
    open: Option<(Block, u32)>,
    next_index: u32,
    tool_calls: u32,
    finish: Option<String>,
    /// Why the upstream refused the prompt, when it did.
    blocked: Option<String>,
    usage: Option<UsageMetadata>,
    /// The open thinking block's text.
    thinking: String,
    thinking_signature: Option<String>,
    /// Every thinking text of the response, as a client concatenates it.
    reasoning: String,
    /// The signed thinking blocks: their byte range in `reasoning` and their signature.
    signed_blocks: Vec<(std::ops::Range<usize>, String)>,
    /// How many thinking blocks the response had, signed or not.
    thinking_blocks: usize,
}

impl StreamTranslator {
    /// A translator for response `id` of `model` (the name the client asked for).
    pub(crate) fn new(
        id: String,
        model: String,
        names: ToolNames,
        family: Family,
        cache: Arc<SignatureCache>,
    ) -> Self {
        Self {
            id,
            model,
            names,
            family,
            cache,
            started: false,
            open: None,
            next_index: 0,
            tool_calls: 0,
            finish: None,
            blocked: None,
            usage: None,
            thinking: String::new(),
            thinking_signature: None,
            reasoning: String::new(),
            signed_blocks: Vec::new(),
            thinking_blocks: 0,
        }
    }

    /// Translate one event's `data`.
    pub(crate) fn event(&mut self, data: &str) -> Result<Vec<Event>, GatewayError> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let event: StreamEvent = serde_json::from_str(data).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("malformed antigravity event: {e}"),
            )
        })?;
        let response = match event {
            StreamEvent::Wrapped { response } | StreamEvent::Bare(response) => response,
            StreamEvent::Error { error } => return Err(error_event(&error)),
        };
        let mut events = Vec::new();
        self.start(&mut events);
        self.response(response, &mut events);
        Ok(events)
    }

    /// The start, once, before anything else.
    fn start(&mut self, events: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            events.push(Event::Start {
                id: self.id.clone(),
                model: self.model.clone(),
            });
        }
    }

    fn response(&mut self, response: GenerateResponse, events: &mut Vec<Event>) {
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if let Some(reason) = response.prompt_feedback.and_then(|f| f.block_reason) {
            self.blocked = Some(reason);
        }
        let Some(candidate) = response.candidates.into_iter().next() else {
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            self.part(part, events);
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(reason);
        }
    }

    /// The index of the open block of `kind`, opening it (and closing another) when needed.
    fn block(&mut self, kind: Block, events: &mut Vec<Event>) -> u32 {
        match self.open {
            Some((open, index)) if open == kind => index,
            _ => {
                self.close(events);
                let index = self.next_index;
                self.next_index += 1;
                self.open = Some((kind, index));
                index
            }
        }
    }

    /// Close the open block; a thinking block's signature is remembered for the next turn, by
    /// its text and by its place in the response's reasoning.
    fn close(&mut self, events: &mut Vec<Event>) {
        if let Some((kind, index)) = self.open.take() {
            if kind == Block::Thinking {
                self.thinking_blocks += 1;
                if let Some(signature) = self.thinking_signature.take() {
                    if !self.thinking.trim().is_empty() {
                        self.cache
                            .remember_thinking(&self.thinking, &signature, self.family);
                        let end = self.reasoning.len();
                        let start = end.saturating_sub(self.thinking.len());
                        self.signed_blocks.push((start..end, signature.clone()));
                    }
                    events.push(Event::Signature { index, signature });
                }
                self.thinking.clear();
            }
            events.push(Event::BlockEnd { index });
        }
    }

    fn part(&mut self, part: Part, events: &mut Vec<Event>) {
        if part.is_thought() {
            if let Some(signature) = part.thought_signature {
                self.thinking_signature = Some(signature);
            }
            let Some(text) = part.text.filter(|t| !t.is_empty()) else {
                return;
            };
            let index = self.block(Block::Thinking, events);
            self.thinking.push_str(&text);
            self.reasoning.push_str(&text);
            events.push(Event::ThinkingDelta { index, text });
            return;
        }
        if part.text.as_deref().is_some_and(str::is_empty) && part.function_call.is_none() {
            // An empty text part carries at most a signature for the thinking before it.
            if let Some(signature) = part.thought_signature {
                self.thinking_signature = Some(signature);
            }
            return;
        }
        if let Some(call) = part.function_call {
            self.close(events);
            let index = self.next_index;
            self.next_index += 1;
            let number = self.tool_calls;
            self.tool_calls += 1;
            let id = call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{}_{number}", id_suffix(&self.id)));
            let arguments = match call.args {
                Value::Null => "{}".to_owned(),
                args => args.to_string(),
            };
            events.push(Event::ToolCallStart {
                index,
                id: id.clone(),
                name: self.names.client(&call.name).to_owned(),
            });
            events.push(Event::ToolCallDelta { index, arguments });
            if let Some(signature) = part.thought_signature {
                self.cache.remember_tool_call(&id, &signature, self.family);
                events.push(Event::Signature { index, signature });
            }
            events.push(Event::BlockEnd { index });
            return;
        }
        let text = match (part.inline_data, part.text) {
            (Some(image), _) => format!("![image](data:{};base64,{})", image.mime_type, image.data),
            (None, Some(text)) => text,
            (None, None) => return,
        };
        let index = self.block(Block::Text, events);
        events.push(Event::TextDelta { index, text });
        if let Some(signature) = part.thought_signature {
            // Gemini signs the text itself when the turn has no call; it rides on the block.
            events.push(Event::Signature { index, signature });
        }
    }

    /// The upstream stream ended: the finish and the usage, or the truncation error.
    pub(crate) fn finish(&mut self) -> Result<Vec<Event>, GatewayError> {
        let mut events = Vec::with_capacity(4);
        self.close(&mut events);
        self.remember_turn();
        let reason = match (self.finish.take(), self.blocked.take()) {
            (Some(reason), _) => finish_reason(&reason, self.tool_calls > 0)?,
            // The prompt was refused before any candidate: the upstream's whole answer.
            (None, Some(_)) => FinishReason::ContentFilter,
            (None, None) => {
                return Err(GatewayError::new(
                    ErrorKind::Truncated,
                    "antigravity stream ended without a finish reason",
                ));
            }
        };
        self.start(&mut events);
        events.push(Event::Finish { reason });
        events.push(Event::Usage(convert_usage(
            self.usage.take().unwrap_or_default(),
        )));
        Ok(events)
    }

    /// A response of several thinking blocks reaches an OpenAI client as one concatenated
    /// string: remember where each signed block lies in it, for the next turn.
    fn remember_turn(&mut self) {
        if self.thinking_blocks > 1 && !self.signed_blocks.is_empty() {
            self.cache
                .remember_turn(&self.reasoning, &self.signed_blocks, self.family);
        }
        self.signed_blocks.clear();
    }
}

/// The neutral finish for an upstream `finishReason`, or the error it stands for.
fn finish_reason(reason: &str, calls: bool) -> Result<FinishReason, GatewayError> {
    Ok(match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("the model produced an invalid function call ({reason})"),
            ));
        }
        "MISSING_THOUGHT_SIGNATURE" => {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                "the upstream refused the conversation: an earlier tool call or reasoning of \
                 the model lacks its thought signature (MISSING_THOUGHT_SIGNATURE); send the \
                 assistant turns back as they were received, or start a new conversation",
            ));
        }
        _ if calls => FinishReason::ToolUse,
        _ => FinishReason::Stop,
    })
}

fn id_suffix(response_id: &str) -> &str {
    response_id.strip_prefix("chatcmpl-").unwrap_or(response_id)
}

/// Neutral usage from Gemini's: input includes the tool-use prompt, output includes reasoning,
/// so the total is the upstream's `totalTokenCount`.
pub(crate) fn convert_usage(usage: UsageMetadata) -> Usage {
    Usage {
        input_tokens: usage
            .prompt_token_count
            .saturating_add(usage.tool_use_prompt_token_count),
        output_tokens: usage
            .candidates_token_count
            .saturating_add(usage.thoughts_token_count),
        reasoning_tokens: usage.thoughts_token_count,
        cache_read_tokens: usage.cached_content_token_count,
        ..Usage::default()
    }
}

/// An error event inside a 200 stream: `{"error": {"code", "message", "status", "details"}}`.
fn error_event(error: &Map<String, Value>) -> GatewayError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("antigravity sent an error event");
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(http::StatusCode::BAD_GATEWAY);
    let body = Value::Object(
        [("error".to_owned(), Value::Object(error.clone()))]
            .into_iter()
            .collect(),
    );
    let hint = RetryHint::from_error_json(&body, std::time::SystemTime::now());
    let mut err = GatewayError::upstream(status, message).with_body(body.to_string().into());
    if !hint.is_empty() {
        err = err.with_retry(hint);
    }
    err
}

#[cfg(test)]
mod tests;
