//! Responses streams: [`StreamEncoder`] writes the conversation's events as the full Responses
//! event sequence, [`StreamDecoder`] reads an upstream's Responses events back into them.
//!
//! Why the whole sequence: clients rebuild the response from it. The OpenAI SDKs' stream
//! helpers need `response.created` first, every content event after its item's
//! `output_item.added` (and text after its `content_part.added`), and take the final response
//! from `response.completed`; Codex keeps the items of `response.output_item.done` as its
//! history and sends them back next turn. So every item is announced, filled and closed, and
//! the final response carries exactly the items that were closed, in output order.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    ContentPart, CustomToolCallItem, FunctionCallItem, IncompleteDetails, Item, MessageItem,
    MessageRole, ReasoningItem, ReasoningSeal, ReasoningText, ResponseObject, ResponseSettings,
    ResponseStatus, ResponseUsage, ResponsesRequest,
    convert::{Ids, custom_input_from_arguments, finish_from_conversation},
};
use crate::{
    ErrorKind, GatewayError,
    conversation::{self as conv, mismatch},
    dialect::error_in_body,
    sse,
    wire::{WireUsage, json_of, unfinished, upstream_unfinished},
};

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// Turns [`Event`](conv::Event)s into Responses server-sent events, each with its
/// `sequence_number`: `response.created` and `response.in_progress` first, then per item
/// `output_item.added`, its content events and `output_item.done`, and last
/// `response.completed` (or `response.incomplete` for the token limit and content filters)
/// with the whole response and its usage.
///
/// Text blocks become `output_text` parts of a message item (consecutive ones share the item),
/// refusals `refusal` parts, thinking blocks the summary parts of a reasoning item (its
/// `encrypted_content` seals their signatures and redacted thinking when a seal is given), and
/// tool calls `function_call` items, or `custom_tool_call` items for the names given to
/// [`custom_tools`](StreamEncoder::custom_tools).
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created_at: u64,
    seal: Option<ReasoningSeal>,
    settings: ResponseSettings,
    custom: Vec<String>,
    ids: Ids,
    sequence: u64,
    started: bool,
    done: bool,
    finish: Option<conv::FinishReason>,
    usage: Option<conv::Usage>,
    /// Output items by output index; `None` while open.
    output: Vec<Option<Item>>,
    message: Option<OpenMessage>,
    reasoning: Option<OpenReasoning>,
    calls: Vec<OpenCall>,
    /// The kind of every block seen, by block index.
    blocks: HashMap<u32, Block>,
    /// Call id by block index, for signatures that come after the call.
    call_ids: HashMap<u32, String>,
    /// Signed calls, sealed into the trailing reasoning item.
    signed_calls: Vec<conv::Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Refusal,
    Thinking,
    Redacted,
    Call,
}

#[derive(Debug)]
struct OpenMessage {
    index: usize,
    id: String,
    content: Vec<ContentPart>,
    /// The open content part: (block, content index).
    part: Option<(u32, usize)>,
}

#[derive(Debug)]
struct OpenReasoning {
    index: usize,
    id: String,
    summary: Vec<String>,
    /// The open summary part: (block, summary index).
    part: Option<(u32, usize)>,
    /// Thinking and redacted parts, for the seal.
    parts: Vec<conv::Part>,
    /// (block, position in `parts`).
    blocks: Vec<(u32, usize)>,
}

#[derive(Debug)]
struct OpenCall {
    block: u32,
    index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
    custom: bool,
}

impl StreamEncoder {
    /// An encoder for response `id` to a client that asked for `model`, created at
    /// `created_at` (unix seconds). With a `seal`, thinking signatures travel in reasoning
    /// items' `encrypted_content`.
    pub fn new(
        id: impl Into<String>,
        model: impl Into<String>,
        created_at: u64,
        seal: Option<ReasoningSeal>,
    ) -> Self {
        let id = id.into();
        Self {
            ids: Ids::new(&id),
            id,
            model: model.into(),
            created_at,
            seal,
            settings: ResponseSettings::required(),
            custom: Vec::new(),
            sequence: 0,
            started: false,
            done: false,
            finish: None,
            usage: None,
            output: Vec::new(),
            message: None,
            reasoning: None,
            calls: Vec::new(),
            blocks: HashMap::new(),
            call_ids: HashMap::new(),
            signed_calls: Vec::new(),
        }
    }

    /// Echo `request`'s settings (tools, instructions, reasoning, ...) in every response
    /// object of the stream, as the API does.
    pub fn echo(mut self, request: &ResponsesRequest) -> Self {
        self.settings = ResponseSettings::echo(request);
        self
    }

    /// Write calls of these tools as `custom_tool_call` items, their input unwrapped from
    /// `{"input": ...}` arguments ([`custom_input_from_arguments`]); see
    /// [`custom_tools_as_functions`](super::custom_tools_as_functions).
    pub fn custom_tools(mut self, names: Vec<String>) -> Self {
        self.custom = names;
        self
    }

    /// The sequence number the next event gets.
    pub fn next_sequence_number(&self) -> u64 {
        self.sequence
    }

    /// Go on with a stream another writer began (an upstream whose events reached the client
    /// as they were, and were also pushed here): the next event gets `sequence`, and the items
    /// still open take the ids the client has for their output index. Items already done keep
    /// this encoder's ids in the final response object.
    pub fn resume(&mut self, sequence: u64, item_ids: &HashMap<usize, String>) {
        self.sequence = sequence;
        let id_of = |index: usize, id: &mut String| {
            if let Some(theirs) = item_ids.get(&index) {
                theirs.clone_into(id);
            }
        };
        if let Some(message) = self.message.as_mut() {
            id_of(message.index, &mut message.id);
        }
        if let Some(reasoning) = self.reasoning.as_mut() {
            id_of(reasoning.index, &mut reasoning.id);
        }
        for call in &mut self.calls {
            id_of(call.index, &mut call.id);
        }
    }

    /// The events for one conversation event (often one or none). An event that does not fit
    /// its block (text for a tool call, arguments for a block that started no call) is an
    /// `UpstreamProtocol` error. Content after the finish is ignored; usage is kept.
    pub fn push(&mut self, event: conv::Event) -> Result<Vec<sse::Event>, GatewayError> {
        let mut out = Vec::new();
        self.start(&mut out);
        if self.finish.is_some() {
            if let conv::Event::Usage(usage) = event {
                self.usage = Some(usage);
            }
            return Ok(out);
        }
        match event {
            conv::Event::Start { .. } => {}
            conv::Event::TextDelta { index, text } => {
                if !text.is_empty() {
                    self.text(index, &text, Block::Text, &mut out)?;
                }
            }
            conv::Event::RefusalDelta { index, text } => {
                if !text.is_empty() {
                    self.text(index, &text, Block::Refusal, &mut out)?;
                }
            }
            conv::Event::ThinkingDelta { index, text } => {
                if !text.is_empty() {
                    self.thinking(index, &text, &mut out)?;
                }
            }
            conv::Event::Signature { index, signature } => {
                self.signature(index, signature, &mut out);
            }
            conv::Event::RedactedThinking { index, data } => {
                if !self.claim(index, Block::Redacted)? {
                    return Err(mismatch(index));
                }
                let reasoning = self.open_reasoning(&mut out);
                reasoning.blocks.push((index, reasoning.parts.len()));
                reasoning.parts.push(conv::Part::RedactedThinking {
                    data,
                    extra: conv::Extras::default(),
                });
            }
            conv::Event::ToolCallStart { index, id, name } => {
                self.call_start(index, id, name, &mut out)?;
            }
            conv::Event::ToolCallDelta { index, arguments } => {
                self.call_delta(index, arguments, &mut out)?;
            }
            conv::Event::BlockEnd { index } => self.block_end(index, &mut out),
            conv::Event::Usage(usage) => self.usage = Some(usage),
            conv::Event::Finish { reason } => {
                let status = item_status(&reason);
                self.close_message(status, &mut out);
                self.close_reasoning(&mut out);
                while !self.calls.is_empty() {
                    self.close_call(0, status, &mut out);
                }
                self.finish = Some(reason);
            }
        }
        Ok(out)
    }

    /// The stream ended: the trailing reasoning item sealing tool-call signatures (when there
    /// are any and a seal), then `response.completed` or `response.incomplete`. A stream that
    /// never finished is a `Truncated` error, never a made-up finish.
    pub fn finish(&mut self) -> Result<Vec<sse::Event>, GatewayError> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let Some(reason) = self.finish.clone() else {
            return Err(unfinished());
        };
        self.start(&mut out);
        if let Some(seal) = &self.seal
            && !self.signed_calls.is_empty()
        {
            let index = self.output.len();
            let item = Item::Reasoning(ReasoningItem {
                id: Some(self.ids.make("rs", index)),
                summary: Some(Vec::new()),
                content: None,
                encrypted_content: Some(seal.seal(&self.signed_calls)),
                status: None,
                extra: super::Extra::new(),
            });
            self.emit(
                &mut out,
                "response.output_item.added",
                json!({"output_index": index, "item": json_of(&item)}),
            );
            self.emit(
                &mut out,
                "response.output_item.done",
                json!({"output_index": index, "item": json_of(&item)}),
            );
            self.output.push(Some(item));
        }
        let (status, incomplete_details) = finish_from_conversation(&reason);
        let mut response = self.snapshot(status);
        response.incomplete_details = incomplete_details;
        response.usage = Some(ResponseUsage::from_conversation(
            &self.usage.clone().unwrap_or_default(),
        ));
        let kind = match status {
            Some(ResponseStatus::Incomplete) => "response.incomplete",
            Some(ResponseStatus::Failed) => "response.failed",
            _ => "response.completed",
        };
        self.emit(&mut out, kind, json!({"response": json_of(&response)}));
        self.done = true;
        Ok(out)
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<sse::Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = json_of(&self.snapshot(Some(ResponseStatus::InProgress)));
        self.emit(out, "response.created", json!({"response": response}));
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    /// The response object so far: the closed items, in output order.
    fn snapshot(&self, status: Option<ResponseStatus>) -> ResponseObject {
        ResponseObject {
            id: self.id.clone(),
            object: "response".to_owned(),
            created_at: self.created_at,
            status,
            incomplete_details: None,
            error: None,
            model: self.model.clone(),
            output: self.output.iter().flatten().cloned().collect(),
            usage: None,
            settings: self.settings.clone(),
            extra: super::Extra::new(),
        }
    }

    fn emit(&mut self, out: &mut Vec<sse::Event>, kind: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), kind.into());
            map.insert("sequence_number".into(), self.sequence.into());
        }
        self.sequence += 1;
        out.push(sse::Event {
            event: Some(kind.to_owned()),
            data: data.to_string(),
            id: None,
            retry: None,
        });
    }

    /// Record block `index` as `kind`: `true` when it is new, an error when it was another kind.
    fn claim(&mut self, index: u32, kind: Block) -> Result<bool, GatewayError> {
        match self.blocks.get(&index) {
            Some(&known) if known == kind => Ok(false),
            Some(_) => Err(mismatch(index)),
            None => {
                self.blocks.insert(index, kind);
                Ok(true)
            }
        }
    }

    fn text(
        &mut self,
        index: u32,
        text: &str,
        kind: Block,
        out: &mut Vec<sse::Event>,
    ) -> Result<(), GatewayError> {
        let new = self.claim(index, kind)?;
        let open = self
            .message
            .as_ref()
            .and_then(|m| m.part)
            .is_some_and(|(block, _)| block == index);
        if !open {
            if !new {
                // Its content part is closed already.
                return Err(mismatch(index));
            }
            self.close_reasoning(out);
            self.close_content_part(out);
            if self.message.is_none() {
                let index = self.output.len();
                self.output.push(None);
                let id = self.ids.make("msg", index);
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({
                        "output_index": index,
                        "item": {"id": id, "type": "message", "status": "in_progress",
                                 "role": "assistant", "content": []},
                    }),
                );
                self.message = Some(OpenMessage {
                    index,
                    id,
                    content: Vec::new(),
                    part: None,
                });
            }
            let Some(message) = self.message.as_mut() else {
                return Err(mismatch(index));
            };
            let part = if kind == Block::Refusal {
                ContentPart::Refusal {
                    refusal: String::new(),
                    extra: super::Extra::new(),
                }
            } else {
                output_text(String::new())
            };
            let content_index = message.content.len();
            message.content.push(part.clone());
            message.part = Some((index, content_index));
            let (item_id, output_index) = (message.id.clone(), message.index);
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": output_index,
                       "content_index": content_index, "part": json_of(&part)}),
            );
        }
        let Some(message) = self.message.as_mut() else {
            return Err(mismatch(index));
        };
        let Some((_, content_index)) = message.part else {
            return Err(mismatch(index));
        };
        let (item_id, output_index) = (message.id.clone(), message.index);
        match message.content.get_mut(content_index) {
            Some(ContentPart::OutputText { text: t, .. }) => {
                t.push_str(text);
                self.emit(
                    out,
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": output_index,
                           "content_index": content_index, "delta": text, "logprobs": []}),
                );
            }
            Some(ContentPart::Refusal { refusal, .. }) => {
                refusal.push_str(text);
                self.emit(
                    out,
                    "response.refusal.delta",
                    json!({"item_id": item_id, "output_index": output_index,
                           "content_index": content_index, "delta": text}),
                );
            }
            _ => return Err(mismatch(index)),
        }
        Ok(())
    }

    fn close_content_part(&mut self, out: &mut Vec<sse::Event>) {
        let Some(message) = self.message.as_mut() else {
            return;
        };
        let Some((_, content_index)) = message.part.take() else {
            return;
        };
        let (item_id, output_index) = (message.id.clone(), message.index);
        let Some(part) = message.content.get(content_index).cloned() else {
            return;
        };
        let base = json!({"item_id": item_id, "output_index": output_index,
                          "content_index": content_index});
        match &part {
            ContentPart::Refusal { refusal, .. } => {
                self.emit(
                    out,
                    "response.refusal.done",
                    merged(&base, json!({"refusal": refusal})),
                );
            }
            ContentPart::OutputText { text, .. } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    merged(&base, json!({"text": text, "logprobs": []})),
                );
            }
            _ => {}
        }
        self.emit(
            out,
            "response.content_part.done",
            merged(&base, json!({"part": json_of(&part)})),
        );
    }

    fn close_message(&mut self, status: &str, out: &mut Vec<sse::Event>) {
        self.close_content_part(out);
        let Some(message) = self.message.take() else {
            return;
        };
        let item = Item::Message(MessageItem {
            role: MessageRole::Assistant,
            content: super::Content::Parts(message.content),
            id: Some(message.id),
            status: Some(status.to_owned()),
            bare: false,
            extra: super::Extra::new(),
        });
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": message.index, "item": json_of(&item)}),
        );
        if let Some(slot) = self.output.get_mut(message.index) {
            *slot = Some(item);
        }
    }

    /// The open reasoning item, or a new one (closing the open message).
    fn open_reasoning(&mut self, out: &mut Vec<sse::Event>) -> &mut OpenReasoning {
        let reasoning = match self.reasoning.take() {
            Some(reasoning) => reasoning,
            None => {
                self.close_message("completed", out);
                let index = self.output.len();
                self.output.push(None);
                let id = self.ids.make("rs", index);
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": index,
                           "item": {"id": id, "type": "reasoning", "summary": []}}),
                );
                OpenReasoning {
                    index,
                    id,
                    summary: Vec::new(),
                    part: None,
                    parts: Vec::new(),
                    blocks: Vec::new(),
                }
            }
        };
        self.reasoning.insert(reasoning)
    }

    fn thinking(
        &mut self,
        index: u32,
        text: &str,
        out: &mut Vec<sse::Event>,
    ) -> Result<(), GatewayError> {
        let new = self.claim(index, Block::Thinking)?;
        let mine = self
            .reasoning
            .as_ref()
            .is_some_and(|r| r.blocks.iter().any(|&(block, _)| block == index));
        if !new && !mine {
            // Its reasoning item is closed already.
            return Err(mismatch(index));
        }
        let reasoning = self.open_reasoning(out);
        let at = match reasoning.blocks.iter().find(|&&(block, _)| block == index) {
            Some(&(_, at)) => at,
            None => {
                reasoning.blocks.push((index, reasoning.parts.len()));
                reasoning.parts.push(conv::Part::thinking("", None));
                reasoning.parts.len() - 1
            }
        };
        if let Some(conv::Part::Thinking { text: t, .. }) = reasoning.parts.get_mut(at) {
            t.push_str(text);
        }
        let (item_id, output_index) = (reasoning.id.clone(), reasoning.index);
        let current = reasoning.part.filter(|&(block, _)| block == index);
        let summary_index = match current {
            Some((_, summary_index)) => summary_index,
            None => {
                self.close_summary_part(out);
                let Some(reasoning) = self.reasoning.as_mut() else {
                    return Err(mismatch(index));
                };
                let summary_index = reasoning.summary.len();
                reasoning.summary.push(String::new());
                reasoning.part = Some((index, summary_index));
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": item_id, "output_index": output_index,
                           "summary_index": summary_index,
                           "part": {"type": "summary_text", "text": ""}}),
                );
                summary_index
            }
        };
        if let Some(summary) = self
            .reasoning
            .as_mut()
            .and_then(|r| r.summary.get_mut(summary_index))
        {
            summary.push_str(text);
        }
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            json!({"item_id": item_id, "output_index": output_index,
                   "summary_index": summary_index, "delta": text}),
        );
        Ok(())
    }

    fn close_summary_part(&mut self, out: &mut Vec<sse::Event>) {
        let Some(reasoning) = self.reasoning.as_mut() else {
            return;
        };
        let Some((_, summary_index)) = reasoning.part.take() else {
            return;
        };
        let text = reasoning
            .summary
            .get(summary_index)
            .cloned()
            .unwrap_or_default();
        let base = json!({"item_id": reasoning.id, "output_index": reasoning.index,
                          "summary_index": summary_index});
        self.emit(
            out,
            "response.reasoning_summary_text.done",
            merged(&base, json!({"text": text})),
        );
        self.emit(
            out,
            "response.reasoning_summary_part.done",
            merged(
                &base,
                json!({"part": {"type": "summary_text", "text": text}}),
            ),
        );
    }

    fn close_reasoning(&mut self, out: &mut Vec<sse::Event>) {
        self.close_summary_part(out);
        let Some(reasoning) = self.reasoning.take() else {
            return;
        };
        let encrypted_content = self
            .seal
            .as_ref()
            .filter(|_| ReasoningSeal::is_worth_sealing(&reasoning.parts))
            .map(|seal| seal.seal(&reasoning.parts));
        let item = Item::Reasoning(ReasoningItem {
            id: Some(reasoning.id),
            summary: Some(
                reasoning
                    .summary
                    .into_iter()
                    .map(ReasoningText::summary)
                    .collect(),
            ),
            content: None,
            encrypted_content,
            status: None,
            extra: super::Extra::new(),
        });
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": reasoning.index, "item": json_of(&item)}),
        );
        if let Some(slot) = self.output.get_mut(reasoning.index) {
            *slot = Some(item);
        }
    }

    fn signature(&mut self, index: u32, signature: String, out: &mut Vec<sse::Event>) {
        match self.blocks.get(&index) {
            Some(Block::Thinking) => {
                let part = self.reasoning.as_mut().and_then(|r| {
                    let &(_, at) = r.blocks.iter().find(|&&(block, _)| block == index)?;
                    r.parts.get_mut(at)
                });
                // A signature for reasoning already closed cannot be sealed with its text.
                if let Some(conv::Part::Thinking { signature: s, .. }) = part {
                    *s = Some(signature);
                }
            }
            Some(Block::Call) => {
                if let Some(call_id) = self.call_ids.get(&index) {
                    self.signed_calls.push(conv::Part::ToolCall {
                        id: call_id.clone(),
                        name: String::new(),
                        arguments: String::new(),
                        signature: Some(signature),
                        extra: conv::Extras::default(),
                    });
                }
            }
            // Text signatures (Gemini's on a last text part) are optional and not kept.
            Some(Block::Text | Block::Refusal | Block::Redacted) => {}
            None => {
                // A signature before any text: a thinking block with nothing to show.
                self.blocks.insert(index, Block::Thinking);
                let reasoning = self.open_reasoning(out);
                reasoning.blocks.push((index, reasoning.parts.len()));
                reasoning
                    .parts
                    .push(conv::Part::thinking("", Some(signature)));
            }
        }
    }

    fn call_start(
        &mut self,
        index: u32,
        id: String,
        name: String,
        out: &mut Vec<sse::Event>,
    ) -> Result<(), GatewayError> {
        if !self.claim(index, Block::Call)? {
            return Err(mismatch(index));
        }
        self.close_message("completed", out);
        self.close_reasoning(out);
        let output_index = self.output.len();
        self.output.push(None);
        let custom = self.custom.contains(&name);
        let call_id = if id.is_empty() {
            self.ids.make("call", output_index)
        } else {
            id
        };
        let item_id = self
            .ids
            .make(if custom { "ctc" } else { "fc" }, output_index);
        let item = if custom {
            json!({"id": item_id, "type": "custom_tool_call", "status": "in_progress",
                   "call_id": call_id, "name": name, "input": ""})
        } else {
            json!({"id": item_id, "type": "function_call", "status": "in_progress",
                   "arguments": "", "call_id": call_id, "name": name})
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        self.call_ids.insert(index, call_id.clone());
        self.calls.push(OpenCall {
            block: index,
            index: output_index,
            id: item_id,
            call_id,
            name,
            arguments: String::new(),
            custom,
        });
        Ok(())
    }

    fn call_delta(
        &mut self,
        index: u32,
        arguments: String,
        out: &mut Vec<sse::Event>,
    ) -> Result<(), GatewayError> {
        let Some(call) = self.calls.iter_mut().find(|c| c.block == index) else {
            return Err(GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!(
                    "tool call arguments for content block {index}, which is no open tool call"
                ),
            ));
        };
        if arguments.is_empty() {
            return Ok(());
        }
        call.arguments.push_str(&arguments);
        if !call.custom {
            let data = json!({"item_id": call.id, "output_index": call.index,
                              "delta": arguments});
            self.emit(out, "response.function_call_arguments.delta", data);
        }
        Ok(())
    }

    fn close_call(&mut self, position: usize, status: &str, out: &mut Vec<sse::Event>) {
        if position >= self.calls.len() {
            return;
        }
        let call = self.calls.remove(position);
        let base = json!({"item_id": call.id, "output_index": call.index});
        let item = if call.custom {
            let input = custom_input_from_arguments(&call.arguments);
            if !input.is_empty() {
                self.emit(
                    out,
                    "response.custom_tool_call_input.delta",
                    merged(&base, json!({"delta": input})),
                );
            }
            self.emit(
                out,
                "response.custom_tool_call_input.done",
                merged(&base, json!({"input": input})),
            );
            Item::CustomToolCall(CustomToolCallItem {
                call_id: call.call_id,
                name: call.name,
                input,
                id: Some(call.id),
                status: Some(status.to_owned()),
                extra: super::Extra::new(),
            })
        } else {
            self.emit(
                out,
                "response.function_call_arguments.done",
                merged(&base, json!({"arguments": call.arguments})),
            );
            Item::FunctionCall(FunctionCallItem {
                call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
                id: Some(call.id),
                status: Some(status.to_owned()),
                extra: super::Extra::new(),
            })
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": call.index, "item": json_of(&item)}),
        );
        if let Some(slot) = self.output.get_mut(call.index) {
            *slot = Some(item);
        }
    }

    fn block_end(&mut self, index: u32, out: &mut Vec<sse::Event>) {
        match self.blocks.get(&index) {
            Some(Block::Text | Block::Refusal) => {
                let open = self
                    .message
                    .as_ref()
                    .and_then(|m| m.part)
                    .is_some_and(|(block, _)| block == index);
                if open {
                    self.close_content_part(out);
                }
            }
            Some(Block::Thinking) => {
                let open = self
                    .reasoning
                    .as_ref()
                    .and_then(|r| r.part)
                    .is_some_and(|(block, _)| block == index);
                if open {
                    self.close_summary_part(out);
                }
            }
            Some(Block::Call) => {
                if let Some(position) = self.calls.iter().position(|c| c.block == index) {
                    self.close_call(position, "completed", out);
                }
            }
            Some(Block::Redacted) | None => {}
        }
    }
}

/// The status of items still open when the response ends for `reason`.
fn item_status(reason: &conv::FinishReason) -> &'static str {
    match reason {
        conv::FinishReason::Length | conv::FinishReason::ContentFilter => "incomplete",
        _ => "completed",
    }
}

fn output_text(text: String) -> ContentPart {
    ContentPart::OutputText {
        text,
        annotations: Some(Vec::new()),
        logprobs: Some(Vec::new()),
        extra: super::Extra::new(),
    }
}

/// `base` with the fields of `more` added.
fn merged(base: &Value, more: Value) -> Value {
    let mut value = base.clone();
    if let (Value::Object(map), Value::Object(more)) = (&mut value, more) {
        map.extend(more);
    }
    value
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// Turns an upstream's Responses events into [`Event`](conv::Event)s, for Responses upstreams
/// serving other protocols.
///
/// Each output text or refusal part, each summary part (or raw reasoning text part) and each
/// function or custom tool call is one content block, ended by its `done` event. Items that
/// arrive only whole (an `output_item.done` without content events) are replayed as blocks.
/// `response.failed` and `error` events are the upstream's error; a stream without
/// `response.completed` or `response.incomplete` is `Truncated`. Opaque reasoning
/// (`encrypted_content`) has no neutral form and is not passed on.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    next_block: u32,
    /// Open and ended blocks by (output index, slot).
    blocks: HashMap<(u64, Slot), BlockState>,
    /// Open blocks in the order they started.
    open: Vec<u32>,
    calls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Content(u64),
    Summary(u64),
    Reasoning(u64),
    Call,
}

#[derive(Debug, Clone, Copy)]
struct BlockState {
    index: u32,
    /// Whether any delta came (a call's arguments, a part's text).
    filled: bool,
}

impl StreamDecoder {
    /// A decoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of one server-sent event. An error event, a failed response or a malformed
    /// event is the error it stands for.
    pub fn push(&mut self, event: &sse::Event) -> Result<Vec<conv::Event>, GatewayError> {
        let mut out = Vec::new();
        if self.finished || event.is_done() {
            return Ok(out);
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("malformed event from the upstream: {e}"),
            )
        })?;
        let kind = event
            .event
            .as_deref()
            .or_else(|| data["type"].as_str())
            .unwrap_or("")
            .to_owned();
        let output_index = data["output_index"].as_u64().unwrap_or(0);
        match kind.as_str() {
            "error" => return Err(error_in_body(&data, &data)),
            "response.failed" => {
                return Err(error_in_body(&data["response"]["error"], &data));
            }
            "response.created" | "response.in_progress" | "response.queued" => {
                self.start(&data["response"], &mut out);
            }
            "response.output_item.added" => {
                self.start(&Value::Null, &mut out);
                let item = &data["item"];
                if let Some(field) = call_field(item) {
                    let block = self.begin(output_index, Slot::Call, &mut out);
                    self.calls = true;
                    out.push(conv::Event::ToolCallStart {
                        index: block,
                        id: str_of(&item["call_id"]),
                        name: str_of(&item["name"]),
                    });
                    self.call_delta(output_index, str_of(&item[field]), &mut out);
                }
            }
            "response.content_part.added" => {
                self.start(&Value::Null, &mut out);
                let slot = Slot::Content(data["content_index"].as_u64().unwrap_or(0));
                self.begin(output_index, slot, &mut out);
                self.part_text(output_index, slot, &data["part"], &mut out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.start(&Value::Null, &mut out);
                let slot = Slot::Content(data["content_index"].as_u64().unwrap_or(0));
                let block = self.block(output_index, slot, &mut out);
                let text = str_of(&data["delta"]);
                if !text.is_empty() {
                    self.fill(output_index, slot);
                    out.push(if kind == "response.refusal.delta" {
                        conv::Event::RefusalDelta { index: block, text }
                    } else {
                        conv::Event::TextDelta { index: block, text }
                    });
                }
            }
            "response.content_part.done" => {
                let slot = Slot::Content(data["content_index"].as_u64().unwrap_or(0));
                self.part_text(output_index, slot, &data["part"], &mut out);
                self.end(output_index, slot, &mut out);
            }
            "response.reasoning_summary_part.added" => {
                self.start(&Value::Null, &mut out);
                let slot = Slot::Summary(data["summary_index"].as_u64().unwrap_or(0));
                self.begin(output_index, slot, &mut out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                self.start(&Value::Null, &mut out);
                let slot = if kind == "response.reasoning_text.delta" {
                    Slot::Reasoning(data["content_index"].as_u64().unwrap_or(0))
                } else {
                    Slot::Summary(data["summary_index"].as_u64().unwrap_or(0))
                };
                let block = self.block(output_index, slot, &mut out);
                let text = str_of(&data["delta"]);
                if !text.is_empty() {
                    self.fill(output_index, slot);
                    out.push(conv::Event::ThinkingDelta { index: block, text });
                }
            }
            "response.reasoning_summary_part.done" => {
                let slot = Slot::Summary(data["summary_index"].as_u64().unwrap_or(0));
                self.end(output_index, slot, &mut out);
            }
            "response.reasoning_text.done" => {
                let slot = Slot::Reasoning(data["content_index"].as_u64().unwrap_or(0));
                self.end(output_index, slot, &mut out);
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                self.call_delta(output_index, str_of(&data["delta"]), &mut out);
            }
            "response.output_item.done" => {
                self.start(&Value::Null, &mut out);
                self.item_done(output_index, &data["item"], &mut out);
            }
            "response.completed" | "response.incomplete" => {
                self.start(&data["response"], &mut out);
                self.complete(&data["response"], &mut out);
            }
            _ => {}
        }
        Ok(out)
    }

    /// The upstream stream ended. A stream without its final response is `Truncated`.
    pub fn finish(&mut self) -> Result<Vec<conv::Event>, GatewayError> {
        if !self.finished {
            return Err(upstream_unfinished());
        }
        Ok(Vec::new())
    }

    fn start(&mut self, response: &Value, out: &mut Vec<conv::Event>) {
        if !self.started {
            self.started = true;
            out.push(conv::Event::Start {
                id: str_of(&response["id"]),
                model: str_of(&response["model"]),
            });
        }
    }

    /// A new block for (output index, slot), ending an earlier one of the same slot.
    fn begin(&mut self, output_index: u64, slot: Slot, out: &mut Vec<conv::Event>) -> u32 {
        self.end(output_index, slot, out);
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        self.blocks.insert(
            (output_index, slot),
            BlockState {
                index,
                filled: false,
            },
        );
        self.open.push(index);
        index
    }

    /// The block of (output index, slot), begun if its start event never came.
    fn block(&mut self, output_index: u64, slot: Slot, out: &mut Vec<conv::Event>) -> u32 {
        match self.blocks.get(&(output_index, slot)) {
            Some(state) => state.index,
            None => self.begin(output_index, slot, out),
        }
    }

    fn fill(&mut self, output_index: u64, slot: Slot) {
        if let Some(state) = self.blocks.get_mut(&(output_index, slot)) {
            state.filled = true;
        }
    }

    fn end(&mut self, output_index: u64, slot: Slot, out: &mut Vec<conv::Event>) {
        if let Some(state) = self.blocks.get(&(output_index, slot))
            && let Some(at) = self.open.iter().position(|&b| b == state.index)
        {
            self.open.remove(at);
            out.push(conv::Event::BlockEnd { index: state.index });
        }
    }

    fn is_open(&self, output_index: u64, slot: Slot) -> bool {
        self.blocks
            .get(&(output_index, slot))
            .is_some_and(|s| self.open.contains(&s.index))
    }

    fn call_delta(&mut self, output_index: u64, arguments: String, out: &mut Vec<conv::Event>) {
        let Some(state) = self.blocks.get(&(output_index, Slot::Call)).copied() else {
            return;
        };
        if !arguments.is_empty() {
            self.fill(output_index, Slot::Call);
            out.push(conv::Event::ToolCallDelta {
                index: state.index,
                arguments,
            });
        }
    }

    /// The text of a content part event, when no delta filled its block.
    fn part_text(
        &mut self,
        output_index: u64,
        slot: Slot,
        part: &Value,
        out: &mut Vec<conv::Event>,
    ) {
        let Some(state) = self.blocks.get(&(output_index, slot)).copied() else {
            return;
        };
        if state.filled || !self.open.contains(&state.index) {
            return;
        }
        let (text, refusal) = (str_of(&part["text"]), str_of(&part["refusal"]));
        if !text.is_empty() {
            self.fill(output_index, slot);
            out.push(conv::Event::TextDelta {
                index: state.index,
                text,
            });
        } else if !refusal.is_empty() {
            self.fill(output_index, slot);
            out.push(conv::Event::RefusalDelta {
                index: state.index,
                text: refusal,
            });
        }
    }

    /// An item is complete: replay what did not stream, end its blocks.
    fn item_done(&mut self, output_index: u64, item: &Value, out: &mut Vec<conv::Event>) {
        match item["type"].as_str() {
            Some("function_call" | "custom_tool_call") => {
                let field = call_field(item).unwrap_or("arguments");
                if !self.blocks.contains_key(&(output_index, Slot::Call)) {
                    let block = self.begin(output_index, Slot::Call, out);
                    self.calls = true;
                    out.push(conv::Event::ToolCallStart {
                        index: block,
                        id: str_of(&item["call_id"]),
                        name: str_of(&item["name"]),
                    });
                }
                let filled = self
                    .blocks
                    .get(&(output_index, Slot::Call))
                    .is_some_and(|s| s.filled);
                if !filled {
                    self.call_delta(output_index, str_of(&item[field]), out);
                }
                self.end(output_index, Slot::Call, out);
            }
            Some("message") => {
                for (j, part) in item["content"].as_array().into_iter().flatten().enumerate() {
                    let slot = Slot::Content(j as u64);
                    if !self.blocks.contains_key(&(output_index, slot)) {
                        self.begin(output_index, slot, out);
                    }
                    self.part_text(output_index, slot, part, out);
                    self.end(output_index, slot, out);
                }
            }
            Some("reasoning") => {
                let lists = [
                    ("summary", Slot::Summary as fn(u64) -> Slot),
                    ("content", Slot::Reasoning),
                ];
                for (field, slot_of) in lists {
                    for (j, part) in item[field].as_array().into_iter().flatten().enumerate() {
                        let slot = slot_of(j as u64);
                        if !self.blocks.contains_key(&(output_index, slot)) {
                            let block = self.begin(output_index, slot, out);
                            let text = str_of(&part["text"]);
                            if !text.is_empty() {
                                out.push(conv::Event::ThinkingDelta { index: block, text });
                            }
                        }
                        self.end(output_index, slot, out);
                    }
                }
            }
            _ => {}
        }
        // Anything of the item still open ends with it.
        let open: Vec<Slot> = self
            .blocks
            .keys()
            .filter(|(index, _)| *index == output_index)
            .map(|&(_, slot)| slot)
            .collect();
        let mut open: Vec<(u32, Slot)> = open
            .into_iter()
            .filter(|&slot| self.is_open(output_index, slot))
            .filter_map(|slot| Some((self.blocks.get(&(output_index, slot))?.index, slot)))
            .collect();
        open.sort_unstable_by_key(|&(index, _)| index);
        for (_, slot) in open {
            self.end(output_index, slot, out);
        }
    }

    fn complete(&mut self, response: &Value, out: &mut Vec<conv::Event>) {
        if self.blocks.is_empty() {
            // Nothing streamed: the final response's items are the answer.
            let output = response["output"].as_array().cloned().unwrap_or_default();
            for (index, item) in output.iter().enumerate() {
                self.item_done(index as u64, item, out);
            }
        }
        for index in std::mem::take(&mut self.open) {
            out.push(conv::Event::BlockEnd { index });
        }
        if let Ok(usage) = serde_json::from_value(response["usage"].clone()) {
            out.push(conv::Event::Usage(ResponseUsage::to_conversation(&usage)));
        }
        let status = serde_json::from_value(response["status"].clone()).ok();
        let details: Option<IncompleteDetails> =
            serde_json::from_value(response["incomplete_details"].clone()).ok();
        let reason = super::convert::finish_to_conversation(
            status.or(Some(ResponseStatus::Completed)),
            details.as_ref(),
            self.calls,
        )
        .unwrap_or(conv::FinishReason::Stop);
        out.push(conv::Event::Finish { reason });
        self.finished = true;
    }
}

/// The field holding a call item's arguments: `arguments` or a custom call's `input`.
fn call_field(item: &Value) -> Option<&'static str> {
    match item["type"].as_str()? {
        "function_call" => Some("arguments"),
        "custom_tool_call" => Some("input"),
        _ => None,
    }
}

fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}
