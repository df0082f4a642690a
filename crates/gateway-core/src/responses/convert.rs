//! OpenAI Responses to and from the neutral [`conversation`](crate::conversation): requests and
//! whole responses (streams are in [`super::stream`]).
//!
//! Why here: the Responses dialect spells a conversation as a flat list of items (messages,
//! function calls, their outputs, reasoning), where the model groups parts into messages. This
//! module is the only place that knows the mapping:
//! - `instructions` is [`Request::system`](conv::Request::system); system and developer message
//!   items stay in `messages`, in place.
//! - Consecutive model items (assistant messages, reasoning, function and custom tool calls) form
//!   one assistant message, so a backend sees thinking, text and calls of one turn together, as
//!   Anthropic and Gemini require. Each `function_call_output` is its own tool message holding
//!   one [`ToolResult`](conv::Part::ToolResult).
//! - A reasoning item becomes thinking parts: with a [`ReasoningSeal`] that opens its
//!   `encrypted_content`, the sealed thinking and redacted thinking blocks with their signatures
//!   (and the signatures of the turn's tool calls); otherwise one unsigned thinking part per
//!   summary text (one empty part when there is none, to carry the item).
//! - Custom tools are [`ToolKind::Custom`](conv::ToolKind::Custom) and their calls tool calls
//!   whose `arguments` are the raw input. The rule for backends without custom tools: each is
//!   offered as a function taking one string parameter `input` ([`custom_tool_as_function`],
//!   [`custom_tools_as_functions`]), and the calls the backend returns are unwrapped again
//!   ([`custom_input_from_arguments`], [`custom_calls_from_functions`]).
//!
//! Exactness: a request or response decoded from Responses and encoded back is the same JSON
//! value. Unknown fields ride in [`Extras::fields`](conv::Extras); the rest in
//! [`Extras::hints`](conv::Extras), tagged [`Protocol::Responses`](conv::Protocol):
//! - request: `input` (`"string"` or `"absent"`), `other_items` and `other_tools` (items and
//!   hosted tools the model has no place for, as `[index, item]` pairs), `tools` (`"empty"`),
//!   `tool_choice` and `format` (the original, while the model still says the same), `text`
//!   (verbosity and unknown fields of `text`), `reasoning` (unknown fields of `reasoning`),
//!   `include`, `store`, `stream` (`false` sent explicitly), `previous_response_id`,
//!   `prompt_cache_key`, `service_tier`, `truncation`;
//! - message: `id`, `status`, `bare` (no `type`), `content` (`"string"`);
//! - part: `type` (a text type other than the role's default), `annotations` and `logprobs`
//!   (`null` for absent where the default is `[]`), `file_id`, `file_url`, `file_data`
//!   (`"bare"`); on the first part of an assistant message item `item` (its id, status and
//!   unknown fields), `item_bare`, `item_content` (`"string"` or `"empty"`); on the first part
//!   of a reasoning item `reasoning` (the item's fields but `type` and `summary`) and `summary`
//!   (the original, when it is not one `summary_text` per non-empty thinking part); on calls and
//!   results `id`, `status`, `custom`, `output` (`"parts"`);
//! - response: `object`, `settings` (the echoed request settings), `error`, `status` (status
//!   and `incomplete_details`, when the finish reason alone does not give them back), `usage`
//!   (the original, when the plain form differs), `other_items`.
//!
//! Encoding a conversation from another protocol uses plain spellings: typed message items
//! with content parts, tool results as string outputs where they are one text, and in responses
//! generated item ids (`msg_`, `rs_`, `fc_`, `ctc_` + the response id) and `"completed"`
//! statuses, `annotations: []` and `logprobs: []` on output text (the SDKs expect them), and the
//! settings the SDKs require (`tools`, `tool_choice`, `parallel_tool_calls`). Thinking parts
//! that did not come from Responses are left out of requests: a Responses upstream cannot verify
//! another provider's reasoning. In responses they become reasoning items whose summary is the
//! thinking text, sealed when a seal is given. A turn's tool-call signatures travel in one
//! trailing reasoning item with an empty summary (the stream encoder can only know them once the
//! calls are done, and both encoders agree).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{
    Content, ContentPart, CustomToolCallItem, Extra, FunctionCallItem, FunctionCallOutputItem,
    FunctionTool, IncompleteDetails, Input, InputTokensDetails, Item, MessageItem, MessageRole,
    NamedToolChoice, OutputTokensDetails, ReasoningConfig, ReasoningItem, ReasoningSeal,
    ReasoningText, ResponseObject, ResponseSettings, ResponseStatus, ResponseUsage,
    ResponsesRequest, TextConfig, TextFormat, Tool, ToolChoice, ToolChoiceMode,
};
use crate::{
    GatewayError, conversation as conv,
    openai::{effort_from_conversation, effort_to_conversation},
    wire::{WireUsage, guess_file_mime, has_calls, invalid},
};

pub(super) const RESPONSES: conv::Protocol = conv::Protocol::Responses;

/// The name of the one string parameter a custom tool gets as a function.
pub const CUSTOM_INPUT: &str = "input";

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decode a Responses request into the neutral model. Reasoning items whose
/// `encrypted_content` opens under `seal` give back their signed thinking.
///
/// Invalid input is a 400 naming the field: an `input_image` with neither `image_url` nor
/// `file_id`, an `input_file` with no file, a `function` or `custom` `tool_choice` without
/// `name`.
pub fn request_to_conversation(
    request: ResponsesRequest,
    seal: Option<&ReasoningSeal>,
) -> Result<conv::Request, GatewayError> {
    let ResponsesRequest {
        model,
        input,
        instructions,
        tools,
        tool_choice,
        parallel_tool_calls,
        text,
        max_output_tokens,
        reasoning,
        include,
        store,
        stream,
        previous_response_id,
        prompt_cache_key,
        metadata,
        temperature,
        top_p,
        user,
        service_tier,
        truncation,
        extra,
    } = request;
    let mut hints = Map::new();

    let mut decoder = ItemDecoder::new(Ctx::INPUT, seal);
    match input {
        None => {
            hints.insert("input".into(), "absent".into());
        }
        Some(Input::Text(text)) => {
            hints.insert("input".into(), "string".into());
            decoder.messages.push(conv::Message::new(
                conv::Role::User,
                vec![conv::Part::text(text)],
            ));
        }
        Some(Input::Items(items)) => {
            for (index, item) in items.into_iter().enumerate() {
                decoder.push(index, item)?;
            }
        }
    }
    let (messages, others) = decoder.finish();
    if !others.is_empty() {
        hints.insert("other_items".into(), Value::Array(others));
    }

    let mut conv_tools = Vec::new();
    let mut other_tools = Vec::new();
    if let Some(list) = tools {
        if list.is_empty() {
            hints.insert("tools".into(), "empty".into());
        }
        for (index, tool) in list.into_iter().enumerate() {
            match tool_to_conversation(tool) {
                Ok(tool) => conv_tools.push(tool),
                Err(raw) => other_tools.push(json!([index, raw])),
            }
        }
    }
    if !other_tools.is_empty() {
        hints.insert("other_tools".into(), Value::Array(other_tools));
    }

    let choice = tool_choice
        .as_ref()
        .map(tool_choice_to_conversation)
        .transpose()?;
    let again = choice
        .as_ref()
        .map(|c| tool_choice_from_conversation(c, &conv_tools));
    conv::Extras::keep_if_lossy(&mut hints, "tool_choice", &tool_choice, &again);

    let response_format = text.map(|text| {
        let TextConfig {
            format,
            verbosity,
            extra,
        } = text;
        let neutral = format.as_ref().map(format_to_conversation);
        let again = neutral.as_ref().map(format_from_conversation);
        conv::Extras::keep_if_lossy(&mut hints, "format", &format, &again);
        let mut rest = extra;
        if let Some(verbosity) = verbosity {
            rest.insert("verbosity".into(), verbosity.into());
        }
        hints.insert("text".into(), Value::Object(rest));
        neutral
    });

    let reasoning = reasoning.map(|config| {
        let ReasoningConfig {
            effort,
            summary,
            extra,
        } = config;
        conv::Extras::insert_object_hint(&mut hints, "reasoning", extra);
        conv::Reasoning {
            effort: effort.map(effort_to_conversation),
            summary,
            ..conv::Reasoning::default()
        }
    });

    if let Some(include) = include {
        hints.insert("include".into(), include.into());
    }
    if let Some(store) = store {
        hints.insert("store".into(), store.into());
    }
    if stream == Some(false) {
        hints.insert("stream".into(), false.into());
    }
    for (key, value) in [
        ("previous_response_id", previous_response_id),
        ("prompt_cache_key", prompt_cache_key),
        ("service_tier", service_tier),
        ("truncation", truncation),
    ] {
        if let Some(value) = value {
            hints.insert(key.into(), value.into());
        }
    }

    let stream = stream.unwrap_or(false);
    Ok(conv::Request {
        model,
        system: instructions
            .map(|text| vec![conv::Part::text(text)])
            .unwrap_or_default(),
        messages,
        tools: conv_tools,
        tool_choice: choice,
        parallel_tool_calls,
        generation: conv::Generation {
            max_tokens: max_output_tokens,
            temperature,
            top_p,
            ..conv::Generation::default()
        },
        reasoning,
        response_format: response_format.flatten(),
        stream,
        // Responses streams always end with usage.
        stream_usage: stream,
        user,
        metadata,
        extra: conv::Extras::new(RESPONSES, extra, hints),
    })
}

/// Encode a neutral request as Responses. A request decoded from Responses comes back as it
/// was sent.
pub fn request_from_conversation(request: &conv::Request) -> ResponsesRequest {
    let extra = &request.extra;

    let mut items = Vec::new();
    for message in &request.messages {
        if message.role == conv::Role::Assistant {
            items.extend(assistant_items(
                &message.parts,
                Ctx::INPUT,
                None,
                "",
                &request.tools,
            ));
        } else {
            message_from_conversation(message, &request.tools, &mut items);
        }
    }
    insert_others(&mut items, extra.hint(RESPONSES, "other_items"));
    let input = match (
        extra.hint_str(RESPONSES, "input"),
        request.messages.as_slice(),
    ) {
        (Some("absent"), []) => None,
        (Some("string"), [message]) if message.role == conv::Role::User => {
            match (message.parts.as_slice(), message.extra.is_empty()) {
                ([conv::Part::Text { text, extra, .. }], true) if extra.is_empty() => {
                    Some(Input::Text(text.clone()))
                }
                _ => Some(Input::Items(items)),
            }
        }
        _ => Some(Input::Items(items)),
    };

    let instructions = (!request.system.is_empty()).then(|| {
        let texts: Vec<&str> = request
            .system
            .iter()
            .filter_map(conv::Part::as_text)
            .collect();
        texts.join("\n\n")
    });

    let mut tools: Vec<Tool> = request.tools.iter().map(tool_from_conversation).collect();
    insert_others(&mut tools, extra.hint(RESPONSES, "other_tools"));
    let tools = if tools.is_empty() {
        (extra.hint_str(RESPONSES, "tools") == Some("empty")).then(Vec::new)
    } else {
        Some(tools)
    };

    let tool_choice = extra
        .kept(
            RESPONSES,
            "tool_choice",
            &request.tool_choice,
            |raw: &Option<ToolChoice>| {
                raw.as_ref()
                    .map(tool_choice_to_conversation)
                    .transpose()
                    .ok()
            },
        )
        .unwrap_or_else(|| {
            request
                .tool_choice
                .as_ref()
                .map(|c| tool_choice_from_conversation(c, &request.tools))
        });

    let text_hint = extra
        .hint(RESPONSES, "text")
        .and_then(Value::as_object)
        .cloned();
    let text = (request.response_format.is_some() || text_hint.is_some()).then(|| {
        let mut rest = text_hint.unwrap_or_default();
        let verbosity = match rest.remove("verbosity") {
            Some(Value::String(v)) => Some(v),
            Some(other) => {
                rest.insert("verbosity".into(), other);
                None
            }
            None => None,
        };
        let format = extra
            .kept(
                RESPONSES,
                "format",
                &request.response_format,
                |raw: &Option<TextFormat>| Some(raw.as_ref().map(format_to_conversation)),
            )
            .unwrap_or_else(|| {
                request
                    .response_format
                    .as_ref()
                    .map(format_from_conversation)
            });
        TextConfig {
            format,
            verbosity,
            extra: rest,
        }
    });

    let reasoning = request.reasoning.as_ref().map(|r| ReasoningConfig {
        effort: r.effort.map(effort_from_conversation),
        summary: r.summary.clone(),
        extra: extra.hint_object(RESPONSES, "reasoning"),
    });

    let hinted = |key: &str| extra.hint_str(RESPONSES, key).map(str::to_owned);
    ResponsesRequest {
        model: request.model.clone(),
        input,
        instructions,
        tools,
        tool_choice,
        parallel_tool_calls: request.parallel_tool_calls,
        text,
        max_output_tokens: request.generation.max_tokens,
        reasoning,
        include: extra
            .hint(RESPONSES, "include")
            .and_then(|v| serde_json::from_value(v.clone()).ok()),
        store: extra.hint(RESPONSES, "store").and_then(Value::as_bool),
        stream: if request.stream {
            Some(true)
        } else {
            extra.hint(RESPONSES, "stream").and_then(Value::as_bool)
        },
        previous_response_id: hinted("previous_response_id"),
        prompt_cache_key: hinted("prompt_cache_key"),
        metadata: request.metadata.clone(),
        temperature: request.generation.temperature,
        top_p: request.generation.top_p,
        user: request.user.clone(),
        service_tier: hinted("service_tier"),
        truncation: hinted("truncation"),
        extra: extra.fields_of(RESPONSES),
    }
}

/// Whether items are read from a request's `input` or a response's `output`: the defaults of
/// the two differ (output items always have ids and statuses, output text its annotations).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    output: bool,
}

impl Ctx {
    pub(super) const INPUT: Self = Self { output: false };
    pub(super) const OUTPUT: Self = Self { output: true };

    fn path(self, index: usize) -> String {
        if self.output {
            format!("output[{index}]")
        } else {
            format!("input[{index}]")
        }
    }
}

/// Groups items into messages: runs of model items become one assistant message.
struct ItemDecoder<'a> {
    ctx: Ctx,
    seal: Option<&'a ReasoningSeal>,
    messages: Vec<conv::Message>,
    run: Option<Run>,
    others: Vec<Value>,
    /// (call id, tool name), for results that do not name their tool.
    calls: Vec<(String, String)>,
}

/// The open assistant message and the call signatures its sealed reasoning restored.
#[derive(Default)]
struct Run {
    parts: Vec<conv::Part>,
    signatures: Vec<(String, String)>,
}

impl<'a> ItemDecoder<'a> {
    fn new(ctx: Ctx, seal: Option<&'a ReasoningSeal>) -> Self {
        Self {
            ctx,
            seal,
            messages: Vec::new(),
            run: None,
            others: Vec::new(),
            calls: Vec::new(),
        }
    }

    fn run(&mut self) -> &mut Run {
        self.run.get_or_insert_with(Run::default)
    }

    fn push(&mut self, index: usize, item: Item) -> Result<(), GatewayError> {
        let at = self.ctx.path(index);
        match item {
            Item::Message(message) if message.role == MessageRole::Assistant => {
                let parts = assistant_message_to_parts(message, self.ctx, &at)?;
                self.run().parts.extend(parts);
            }
            Item::Message(message) => {
                self.close();
                let message = message_to_conversation(message, &at)?;
                self.messages.push(message);
            }
            Item::FunctionCall(call) => {
                self.calls.push((call.call_id.clone(), call.name.clone()));
                let part = function_call_to_part(call, self.ctx);
                self.run().parts.push(part);
            }
            Item::CustomToolCall(call) => {
                self.calls.push((call.call_id.clone(), call.name.clone()));
                let part = custom_call_to_part(call, self.ctx);
                self.run().parts.push(part);
            }
            Item::Reasoning(item) => {
                let raw = serde_json::to_value(Item::Reasoning(item.clone()));
                let (parts, signatures) = reasoning_to_parts(item, self.seal, self.ctx);
                if parts.is_empty()
                    && let Ok(raw) = raw
                {
                    // Only call signatures: restored on the calls; the item itself is kept
                    // for Responses alone.
                    self.others.push(json!([index, raw]));
                }
                let run = self.run();
                run.parts.extend(parts);
                run.signatures.extend(signatures);
            }
            Item::FunctionCallOutput(output) => self.result(output, false, &at)?,
            Item::CustomToolCallOutput(output) => self.result(output, true, &at)?,
            Item::Other(raw) => self.others.push(json!([index, raw])),
        }
        Ok(())
    }

    /// A function or custom tool call's result: a tool message of its own.
    fn result(
        &mut self,
        item: FunctionCallOutputItem,
        custom: bool,
        at: &str,
    ) -> Result<(), GatewayError> {
        self.close();
        let FunctionCallOutputItem {
            call_id,
            output,
            id,
            status,
            extra,
        } = item;
        let mut hints = Map::new();
        meta_hint(&mut hints, "id", id, Ctx::INPUT);
        meta_hint(&mut hints, "status", status, Ctx::INPUT);
        if custom {
            hints.insert("custom".into(), true.into());
        }
        let (parts, string) = content_to_parts(output, "input_text", Ctx::INPUT, at, ".output")?;
        if !string && as_string(&content_from_parts(&parts, "input_text", Ctx::INPUT)).is_some() {
            hints.insert("output".into(), "parts".into());
        }
        let name = self
            .calls
            .iter()
            .rev()
            .find(|(call, _)| *call == call_id)
            .map(|(_, name)| name.clone());
        let part = conv::Part::ToolResult {
            id: call_id,
            name,
            parts,
            is_error: false,
            extra: conv::Extras::new(RESPONSES, extra, hints),
        };
        self.messages
            .push(conv::Message::new(conv::Role::Tool, vec![part]));
        Ok(())
    }

    /// End the open assistant message: restore the call signatures its reasoning carried.
    fn close(&mut self) {
        let Some(Run {
            mut parts,
            signatures,
        }) = self.run.take()
        else {
            return;
        };
        for (call, sig) in signatures {
            let unsigned = parts.iter_mut().find_map(|part| match part {
                conv::Part::ToolCall { id, signature, .. } if *id == call => Some(signature),
                _ => None,
            });
            if let Some(signature @ None) = unsigned {
                *signature = Some(sig);
            }
        }
        if !parts.is_empty() {
            self.messages
                .push(conv::Message::new(conv::Role::Assistant, parts));
        }
    }

    fn finish(mut self) -> (Vec<conv::Message>, Vec<Value>) {
        self.close();
        (self.messages, self.others)
    }
}

fn message_to_conversation(message: MessageItem, at: &str) -> Result<conv::Message, GatewayError> {
    let MessageItem {
        role,
        content,
        id,
        status,
        bare,
        extra,
    } = message;
    let mut hints = Map::new();
    meta_hint(&mut hints, "id", id, Ctx::INPUT);
    meta_hint(&mut hints, "status", status, Ctx::INPUT);
    if bare {
        hints.insert("bare".into(), true.into());
    }
    let (parts, string) = content_to_parts(content, "input_text", Ctx::INPUT, at, ".content")?;
    if string {
        hints.insert("content".into(), "string".into());
    }
    let role = match role {
        MessageRole::User => conv::Role::User,
        MessageRole::System => conv::Role::System,
        MessageRole::Developer => conv::Role::Developer,
        MessageRole::Assistant => conv::Role::Assistant,
    };
    Ok(conv::Message {
        role,
        parts,
        name: None,
        extra: conv::Extras::new(RESPONSES, extra, hints),
    })
}

/// The parts of an assistant message item; the first carries the item's own fields.
fn assistant_message_to_parts(
    message: MessageItem,
    ctx: Ctx,
    at: &str,
) -> Result<Vec<conv::Part>, GatewayError> {
    let MessageItem {
        content,
        id,
        status,
        bare,
        extra,
        ..
    } = message;
    let mut item = extra;
    meta_hint(&mut item, "id", id, ctx);
    meta_hint(&mut item, "status", status, ctx);
    let (mut parts, string) = content_to_parts(content, "output_text", ctx, at, ".content")?;
    let mut hints = vec![("item", Value::Object(item))];
    if bare {
        hints.push(("item_bare", true.into()));
    }
    if string {
        hints.push(("item_content", "string".into()));
    }
    if parts.is_empty() {
        hints.push(("item_content", "empty".into()));
        parts.push(conv::Part::text(""));
    }
    if let Some(first) = parts.first_mut() {
        for (key, value) in hints {
            add_hint(first, key, value);
        }
    }
    Ok(parts)
}

fn function_call_to_part(call: FunctionCallItem, ctx: Ctx) -> conv::Part {
    let FunctionCallItem {
        call_id,
        name,
        arguments,
        id,
        status,
        extra,
    } = call;
    let mut hints = Map::new();
    meta_hint(&mut hints, "id", id, ctx);
    meta_hint(&mut hints, "status", status, ctx);
    conv::Part::ToolCall {
        id: call_id,
        name,
        arguments,
        signature: None,
        extra: conv::Extras::new(RESPONSES, extra, hints),
    }
}

fn custom_call_to_part(call: CustomToolCallItem, ctx: Ctx) -> conv::Part {
    let CustomToolCallItem {
        call_id,
        name,
        input,
        id,
        status,
        extra,
    } = call;
    let mut hints = Map::new();
    hints.insert("custom".into(), true.into());
    meta_hint(&mut hints, "id", id, ctx);
    meta_hint(&mut hints, "status", status, ctx);
    conv::Part::ToolCall {
        id: call_id,
        name,
        arguments: input,
        signature: None,
        extra: conv::Extras::new(RESPONSES, extra, hints),
    }
}

/// The thinking parts of a reasoning item, and the call signatures its seal carried.
fn reasoning_to_parts(
    item: ReasoningItem,
    seal: Option<&ReasoningSeal>,
    ctx: Ctx,
) -> (Vec<conv::Part>, Vec<(String, String)>) {
    let ReasoningItem {
        id,
        summary,
        content,
        encrypted_content,
        status,
        extra,
    } = item;
    let opened = encrypted_content
        .as_deref()
        .and_then(|blob| seal?.open(blob));
    let mut signatures = Vec::new();
    let mut parts = Vec::new();
    match opened {
        Some(sealed) => {
            for part in sealed {
                match part {
                    conv::Part::ToolCall {
                        id,
                        signature: Some(signature),
                        ..
                    } => signatures.push((id, signature)),
                    other => parts.push(other),
                }
            }
            if parts.is_empty() {
                return (parts, signatures);
            }
        }
        None => {
            let texts = match (&summary, &content) {
                (Some(summary), _) if !summary.is_empty() => summary.as_slice(),
                (_, Some(content)) => content.as_slice(),
                _ => &[],
            };
            parts.extend(
                texts
                    .iter()
                    .map(|t| conv::Part::thinking(t.text.clone(), None)),
            );
            if parts.is_empty() {
                parts.push(conv::Part::thinking("", None));
            }
        }
    }

    let mut raw = extra;
    meta_hint(&mut raw, "id", id, ctx);
    if let Some(status) = status {
        raw.insert("status".into(), status.into());
    }
    if let Some(blob) = encrypted_content {
        raw.insert("encrypted_content".into(), blob.into());
    }
    if let Some(content) = content
        && let Ok(content) = serde_json::to_value(content)
    {
        raw.insert("content".into(), content);
    }
    let generated = summary_of(&parts.iter().collect::<Vec<_>>());
    let summary_hint = (summary.as_ref() != Some(&generated))
        .then(|| serde_json::to_value(&summary).unwrap_or(Value::Null));
    if let Some(first) = parts.first_mut() {
        add_hint(first, "reasoning", Value::Object(raw));
        if let Some(summary) = summary_hint {
            add_hint(first, "summary", summary);
        }
    }
    (parts, signatures)
}

/// One `summary_text` per non-empty thinking part.
fn summary_of(parts: &[&conv::Part]) -> Vec<ReasoningText> {
    parts
        .iter()
        .filter_map(|part| match part {
            conv::Part::Thinking { text, .. } if !text.is_empty() => {
                Some(ReasoningText::summary(text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Write a non-assistant message: its tool results as output items first, then the rest as
/// one message item (none when it held only results).
fn message_from_conversation(message: &conv::Message, tools: &[conv::Tool], out: &mut Vec<Item>) {
    let (results, rest): (Vec<&conv::Part>, Vec<&conv::Part>) = message
        .parts
        .iter()
        .partition(|p| matches!(p, conv::Part::ToolResult { .. }));
    out.extend(results.iter().filter_map(|r| result_item(r, tools)));
    let parts: Vec<conv::Part> = rest.into_iter().cloned().collect();
    let content = content_from_parts(&parts, "input_text", Ctx::INPUT);
    if !results.is_empty() && content.is_empty() {
        return;
    }
    let extra = &message.extra;
    let role = match message.role {
        conv::Role::System => MessageRole::System,
        conv::Role::Developer => MessageRole::Developer,
        conv::Role::Assistant => MessageRole::Assistant,
        conv::Role::User | conv::Role::Tool => MessageRole::User,
    };
    let content = match as_string(&content) {
        Some(text) if extra.hint_str(RESPONSES, "content") == Some("string") => Content::Text(text),
        _ => Content::Parts(content),
    };
    out.push(Item::Message(MessageItem {
        role,
        content,
        id: meta(extra, "id", || None),
        status: meta(extra, "status", || None),
        bare: extra.flag(RESPONSES, "bare"),
        extra: extra.fields_of(RESPONSES),
    }));
}

fn result_item(part: &conv::Part, tools: &[conv::Tool]) -> Option<Item> {
    let conv::Part::ToolResult {
        id,
        name,
        parts,
        extra,
        ..
    } = part
    else {
        return None;
    };
    let custom = extra.flag(RESPONSES, "custom")
        || (extra.hints_for(RESPONSES).is_none()
            && name.as_deref().is_some_and(|n| is_custom(n, tools)));
    let list = content_from_parts(parts, "input_text", Ctx::INPUT);
    let output = match as_string(&list) {
        Some(text) if extra.hint_str(RESPONSES, "output") != Some("parts") => Content::Text(text),
        _ => Content::Parts(list),
    };
    let (item_id, status, fields) = (
        meta(extra, "id", || None),
        meta(extra, "status", || None),
        extra.fields_of(RESPONSES),
    );
    let item = FunctionCallOutputItem {
        call_id: id.clone(),
        output,
        id: item_id,
        status,
        extra: fields,
    };
    Some(if custom {
        Item::CustomToolCallOutput(item)
    } else {
        Item::FunctionCallOutput(item)
    })
}

fn is_custom(name: &str, tools: &[conv::Tool]) -> bool {
    tools
        .iter()
        .any(|t| t.name == name && matches!(t.kind, conv::ToolKind::Custom { .. }))
}

/// The items of one assistant message, in order: runs of text and refusal parts become message
/// items, runs of thinking parts reasoning items, and each tool call its call item. `base` is
/// the response id generated output item ids derive from (unused for requests).
pub(super) fn assistant_items(
    parts: &[conv::Part],
    ctx: Ctx,
    seal: Option<&ReasoningSeal>,
    base: &str,
    tools: &[conv::Tool],
) -> Vec<Item> {
    let mut encoder = ItemEncoder {
        ctx,
        seal,
        ids: Ids::new(base),
        items: Vec::new(),
        message: Vec::new(),
        reasoning: Vec::new(),
    };
    for part in parts {
        match part {
            conv::Part::Thinking { extra, .. } | conv::Part::RedactedThinking { extra, .. } => {
                encoder.flush_message();
                if extra.hint(RESPONSES, "reasoning").is_some() {
                    encoder.flush_reasoning();
                }
                encoder.reasoning.push(part);
            }
            conv::Part::ToolCall { .. } => {
                encoder.flush_message();
                encoder.flush_reasoning();
                let n = encoder.items.len();
                encoder
                    .items
                    .push(call_item(part, ctx, &encoder.ids, n, tools));
            }
            conv::Part::ToolResult { .. } => {
                encoder.flush_message();
                encoder.flush_reasoning();
                encoder.items.extend(result_item(part, tools));
            }
            conv::Part::Text { extra, .. }
            | conv::Part::Refusal { extra, .. }
            | conv::Part::Image { extra, .. }
            | conv::Part::Document { extra, .. }
            | conv::Part::Audio { extra, .. } => {
                encoder.flush_reasoning();
                if extra.hint(RESPONSES, "item").is_some() {
                    encoder.flush_message();
                }
                encoder.message.push(part);
            }
        }
    }
    encoder.flush_message();
    encoder.flush_reasoning();
    encoder.items
}

/// Generated output item ids: `<prefix>_<response id without resp_>_<output index>`.
#[derive(Debug)]
pub(super) struct Ids {
    base: String,
}

impl Ids {
    pub(super) fn new(response_id: &str) -> Self {
        Self {
            base: response_id
                .strip_prefix("resp_")
                .unwrap_or(response_id)
                .to_owned(),
        }
    }

    pub(super) fn make(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}_{n}", self.base)
    }
}

struct ItemEncoder<'a, 'p> {
    ctx: Ctx,
    seal: Option<&'a ReasoningSeal>,
    ids: Ids,
    items: Vec<Item>,
    message: Vec<&'p conv::Part>,
    reasoning: Vec<&'p conv::Part>,
}

impl ItemEncoder<'_, '_> {
    fn flush_message(&mut self) {
        let group = std::mem::take(&mut self.message);
        let Some(first) = group.first() else {
            return;
        };
        let first = first.extra();
        let ctx = self.ctx;
        let n = self.items.len();
        let mut item = first.hint_object(RESPONSES, "item");
        let id = meta_in(&mut item, "id", || {
            ctx.output.then(|| self.ids.make("msg", n))
        });
        let status = meta_in(&mut item, "status", || {
            ctx.output.then(|| "completed".to_owned())
        });
        let parts: Vec<conv::Part> = group.into_iter().cloned().collect();
        let list = content_from_parts(&parts, "output_text", ctx);
        let content = match (first.hint_str(RESPONSES, "item_content"), as_string(&list)) {
            (Some("empty"), _) => Content::Parts(Vec::new()),
            (Some("string"), Some(text)) => Content::Text(text),
            _ => Content::Parts(list),
        };
        self.items.push(Item::Message(MessageItem {
            role: MessageRole::Assistant,
            content,
            id,
            status,
            bare: first.flag(RESPONSES, "item_bare"),
            extra: item,
        }));
    }

    fn flush_reasoning(&mut self) {
        let group = std::mem::take(&mut self.reasoning);
        let Some(first) = group.first() else {
            return;
        };
        let first = first.extra();
        let hinted = first.hint(RESPONSES, "reasoning").is_some();
        if !hinted && !self.ctx.output {
            // Another provider's reasoning: a Responses upstream cannot use it.
            return;
        }
        let n = self.items.len();
        let summary = match first.hint(RESPONSES, "summary") {
            Some(raw) => serde_json::from_value(raw.clone()).unwrap_or_default(),
            None => Some(summary_of(&group)),
        };
        let mut raw = first.hint_object(RESPONSES, "reasoning");
        let ctx = self.ctx;
        let id = meta_in(&mut raw, "id", || {
            ctx.output.then(|| self.ids.make("rs", n))
        });
        let status = meta_in(&mut raw, "status", || None);
        let encrypted_content = if hinted {
            meta_in(&mut raw, "encrypted_content", || None)
        } else {
            let parts: Vec<conv::Part> = group.iter().map(|p| (*p).clone()).collect();
            self.seal
                .filter(|_| ReasoningSeal::is_worth_sealing(&parts))
                .map(|seal| seal.seal(&parts))
        };
        let content = raw
            .remove("content")
            .and_then(|c| serde_json::from_value(c).ok());
        self.items.push(Item::Reasoning(ReasoningItem {
            id,
            summary,
            content,
            encrypted_content,
            status,
            extra: raw,
        }));
    }
}

fn call_item(part: &conv::Part, ctx: Ctx, ids: &Ids, n: usize, tools: &[conv::Tool]) -> Item {
    let conv::Part::ToolCall {
        id,
        name,
        arguments,
        extra,
        ..
    } = part
    else {
        return Item::Other(Extra::new());
    };
    let custom = extra.flag(RESPONSES, "custom")
        || (extra.hints_for(RESPONSES).is_none() && is_custom(name, tools));
    let call_id = if id.is_empty() && ctx.output {
        ids.make("call", n)
    } else {
        id.clone()
    };
    let status = meta(extra, "status", || {
        ctx.output.then(|| "completed".to_owned())
    });
    if custom {
        Item::CustomToolCall(CustomToolCallItem {
            call_id,
            name: name.clone(),
            input: arguments.clone(),
            id: meta(extra, "id", || ctx.output.then(|| ids.make("ctc", n))),
            status,
            extra: extra.fields_of(RESPONSES),
        })
    } else {
        Item::FunctionCall(FunctionCallItem {
            call_id,
            name: name.clone(),
            arguments: arguments.clone(),
            id: meta(extra, "id", || ctx.output.then(|| ids.make("fc", n))),
            status,
            extra: extra.fields_of(RESPONSES),
        })
    }
}

/// Put items the model has no place for back where they were: `[[index, item], ...]`.
fn insert_others<T: DeserializeOwned>(list: &mut Vec<T>, others: Option<&Value>) {
    for pair in others.and_then(Value::as_array).into_iter().flatten() {
        let Some((Some(index), Ok(item))) = pair.as_array().and_then(|p| match p.as_slice() {
            [index, item] => Some((
                index.as_u64().and_then(|i| usize::try_from(i).ok()),
                serde_json::from_value::<T>(item.clone()),
            )),
            _ => None,
        }) else {
            continue;
        };
        list.insert(index.min(list.len()), item);
    }
}

// ---------------------------------------------------------------------------------------------
// Content parts
// ---------------------------------------------------------------------------------------------

/// Parts from message content or a tool output, and whether it was a plain string.
fn content_to_parts(
    content: Content,
    default_type: &str,
    ctx: Ctx,
    at: &str,
    field: &str,
) -> Result<(Vec<conv::Part>, bool), GatewayError> {
    match content {
        Content::Text(text) => Ok((vec![conv::Part::text(text)], true)),
        Content::Parts(list) => list
            .into_iter()
            .enumerate()
            .map(|(j, part)| {
                content_part_to_conversation(part, default_type, ctx, &format!("{at}{field}[{j}]"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| (parts, false)),
    }
}

fn content_part_to_conversation(
    part: ContentPart,
    default_type: &str,
    ctx: Ctx,
    at: &str,
) -> Result<conv::Part, GatewayError> {
    let mut hints = Map::new();
    Ok(match part {
        ContentPart::InputText { text, extra } => {
            if default_type != "input_text" {
                hints.insert("type".into(), "input_text".into());
            }
            text_part(text, conv::Extras::new(RESPONSES, extra, hints))
        }
        ContentPart::OutputText {
            text,
            annotations,
            logprobs,
            extra,
        } => {
            if default_type != "output_text" {
                hints.insert("type".into(), "output_text".into());
            }
            let default = ctx.output.then(Vec::new);
            for (key, list) in [("annotations", annotations), ("logprobs", logprobs)] {
                if list != default {
                    hints.insert(key.into(), list.map_or(Value::Null, Value::Array));
                }
            }
            text_part(text, conv::Extras::new(RESPONSES, extra, hints))
        }
        ContentPart::InputImage {
            image_url,
            file_id,
            detail,
            extra,
        } => {
            let source = match (image_url, file_id) {
                (Some(url), id) => {
                    if let Some(id) = id {
                        hints.insert("file_id".into(), id.into());
                    }
                    conv::Media::from_url(&url)
                }
                (None, Some(id)) => conv::Media::FileId { id },
                (None, None) => {
                    return Err(invalid("input_image without image_url or file_id", at));
                }
            };
            conv::Part::Image {
                source,
                detail,
                extra: conv::Extras::new(RESPONSES, extra, hints),
            }
        }
        ContentPart::InputFile {
            file_data,
            file_id,
            file_url,
            filename,
            extra,
        } => {
            let source = match (file_data, file_url, file_id) {
                (Some(data), url, id) => {
                    if let Some(url) = url {
                        hints.insert("file_url".into(), url.into());
                    }
                    if let Some(id) = id {
                        hints.insert("file_id".into(), id.into());
                    }
                    match conv::Media::from_url(&data) {
                        media @ conv::Media::Base64 { .. } => media,
                        _ => {
                            hints.insert("file_data".into(), "bare".into());
                            conv::Media::Base64 {
                                mime: guess_file_mime(filename.as_deref()).to_owned(),
                                data,
                            }
                        }
                    }
                }
                (None, Some(url), id) => {
                    if let Some(id) = id {
                        hints.insert("file_id".into(), id.into());
                    }
                    conv::Media::Url { url }
                }
                (None, None, Some(id)) => conv::Media::FileId { id },
                (None, None, None) => {
                    return Err(invalid(
                        "input_file without file_data, file_url or file_id",
                        at,
                    ));
                }
            };
            conv::Part::Document {
                source,
                name: filename,
                extra: conv::Extras::new(RESPONSES, extra, hints),
            }
        }
        ContentPart::Refusal { refusal, extra } => conv::Part::Refusal {
            text: refusal,
            extra: conv::Extras::new(RESPONSES, extra, hints),
        },
    })
}

fn text_part(text: String, extra: conv::Extras) -> conv::Part {
    conv::Part::Text {
        text,
        signature: None,
        cache: None,
        extra,
    }
}

/// The content parts of `parts` that Responses message content can hold.
fn content_from_parts(parts: &[conv::Part], default_type: &str, ctx: Ctx) -> Vec<ContentPart> {
    parts
        .iter()
        .filter_map(|p| content_part_from_conversation(p, default_type, ctx))
        .collect()
}

fn content_part_from_conversation(
    part: &conv::Part,
    default_type: &str,
    ctx: Ctx,
) -> Option<ContentPart> {
    Some(match part {
        conv::Part::Text { text, extra, .. } => {
            if extra.hint_str(RESPONSES, "item_content") == Some("empty") {
                return None;
            }
            let kind = extra.hint_str(RESPONSES, "type").unwrap_or(default_type);
            if kind == "output_text" {
                ContentPart::OutputText {
                    text: text.clone(),
                    annotations: listed(extra, "annotations", ctx),
                    logprobs: listed(extra, "logprobs", ctx),
                    extra: extra.fields_of(RESPONSES),
                }
            } else {
                ContentPart::InputText {
                    text: text.clone(),
                    extra: extra.fields_of(RESPONSES),
                }
            }
        }
        conv::Part::Image {
            source,
            detail,
            extra,
        } => {
            let (image_url, file_id) = match source {
                conv::Media::FileId { id } => (None, Some(id.clone())),
                other => (
                    other.to_url(),
                    extra.hint_str(RESPONSES, "file_id").map(str::to_owned),
                ),
            };
            ContentPart::InputImage {
                image_url,
                file_id,
                detail: detail.clone(),
                extra: extra.fields_of(RESPONSES),
            }
        }
        conv::Part::Document {
            source,
            name,
            extra,
        } => {
            let hinted = |key: &str| extra.hint_str(RESPONSES, key).map(str::to_owned);
            let (file_data, file_url, file_id) = match source {
                conv::Media::Base64 { data, .. }
                    if extra.hint_str(RESPONSES, "file_data") == Some("bare") =>
                {
                    (Some(data.clone()), hinted("file_url"), hinted("file_id"))
                }
                conv::Media::Base64 { .. } => {
                    (source.to_url(), hinted("file_url"), hinted("file_id"))
                }
                conv::Media::Url { url } => (None, Some(url.clone()), hinted("file_id")),
                conv::Media::FileId { id } => (None, None, Some(id.clone())),
            };
            ContentPart::InputFile {
                file_data,
                file_id,
                file_url,
                filename: name.clone(),
                extra: extra.fields_of(RESPONSES),
            }
        }
        conv::Part::Refusal { text, extra } => ContentPart::Refusal {
            refusal: text.clone(),
            extra: extra.fields_of(RESPONSES),
        },
        conv::Part::Audio { .. }
        | conv::Part::Thinking { .. }
        | conv::Part::RedactedThinking { .. }
        | conv::Part::ToolCall { .. }
        | conv::Part::ToolResult { .. } => return None,
    })
}

/// `annotations` / `logprobs` of output text: the hinted list, absent for a `null` hint, else
/// `[]` in responses and absent in requests.
fn listed(extra: &conv::Extras, key: &str, ctx: Ctx) -> Option<Vec<Value>> {
    match extra.hint(RESPONSES, key) {
        Some(Value::Array(list)) => Some(list.clone()),
        Some(Value::Null) => None,
        _ => ctx.output.then(Vec::new),
    }
}

/// The text of content that is one plain text part.
fn as_string(parts: &[ContentPart]) -> Option<String> {
    match parts {
        [ContentPart::InputText { text, extra }] if extra.is_empty() => Some(text.clone()),
        [
            ContentPart::OutputText {
                text,
                annotations: None,
                logprobs: None,
                extra,
            },
        ] if extra.is_empty() => Some(text.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tools, tool choice, text format, reasoning effort
// ---------------------------------------------------------------------------------------------

/// A function or custom tool; any other tool back as its JSON.
fn tool_to_conversation(tool: Tool) -> Result<conv::Tool, Value> {
    match tool {
        Tool::Function(FunctionTool {
            name,
            description,
            parameters,
            strict,
            extra,
        }) => Ok(conv::Tool {
            name,
            description,
            parameters: parameters.unwrap_or(Value::Null),
            strict,
            kind: conv::ToolKind::Function,
            extra: conv::Extras::new(RESPONSES, extra, Map::new()),
        }),
        Tool::Custom(super::CustomTool {
            name,
            description,
            format,
            extra,
        }) => Ok(conv::Tool {
            name,
            description,
            parameters: Value::Null,
            strict: None,
            kind: conv::ToolKind::Custom { format },
            extra: conv::Extras::new(RESPONSES, extra, Map::new()),
        }),
        Tool::Other(raw) => Err(Value::Object(raw)),
    }
}

fn tool_from_conversation(tool: &conv::Tool) -> Tool {
    match &tool.kind {
        conv::ToolKind::Function => Tool::Function(FunctionTool {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: (!tool.parameters.is_null()).then(|| tool.parameters.clone()),
            strict: tool.strict,
            extra: tool.extra.fields_of(RESPONSES),
        }),
        conv::ToolKind::Custom { format } => Tool::Custom(super::CustomTool {
            name: tool.name.clone(),
            description: tool.description.clone(),
            format: format.clone(),
            extra: tool.extra.fields_of(RESPONSES),
        }),
    }
}

fn tool_choice_to_conversation(choice: &ToolChoice) -> Result<conv::ToolChoice, GatewayError> {
    Ok(match choice {
        ToolChoice::Mode(ToolChoiceMode::None) => conv::ToolChoice::None,
        ToolChoice::Mode(ToolChoiceMode::Auto) => conv::ToolChoice::Auto,
        ToolChoice::Mode(ToolChoiceMode::Required) => conv::ToolChoice::Required,
        ToolChoice::Named(named) => match named.kind.as_str() {
            "function" | "custom" => {
                conv::ToolChoice::Tool(named.name.clone().ok_or_else(|| {
                    invalid(
                        format!("tool_choice of type {} without name", named.kind),
                        "tool_choice.name",
                    )
                })?)
            }
            "allowed_tools" => conv::ToolChoice::Allowed {
                tools: named
                    .extra
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
                required: named.extra.get("mode").and_then(Value::as_str) == Some("required"),
            },
            // A hosted tool (web search, file search, MCP, ...) has no neutral form either.
            _ => conv::ToolChoice::Auto,
        },
    })
}

fn tool_choice_from_conversation(choice: &conv::ToolChoice, tools: &[conv::Tool]) -> ToolChoice {
    match choice {
        conv::ToolChoice::Auto => ToolChoice::Mode(ToolChoiceMode::Auto),
        conv::ToolChoice::None => ToolChoice::Mode(ToolChoiceMode::None),
        conv::ToolChoice::Required => ToolChoice::Mode(ToolChoiceMode::Required),
        conv::ToolChoice::Tool(name) => ToolChoice::Named(NamedToolChoice {
            kind: if is_custom(name, tools) {
                "custom"
            } else {
                "function"
            }
            .to_owned(),
            name: Some(name.clone()),
            extra: Extra::new(),
        }),
        conv::ToolChoice::Allowed {
            tools: names,
            required,
        } => {
            let mut extra = Extra::new();
            extra.insert(
                "mode".into(),
                if *required { "required" } else { "auto" }.into(),
            );
            let listed: Vec<Value> = names
                .iter()
                .map(|name| {
                    let kind = if is_custom(name, tools) {
                        "custom"
                    } else {
                        "function"
                    };
                    json!({"type": kind, "name": name})
                })
                .collect();
            extra.insert("tools".into(), Value::Array(listed));
            ToolChoice::Named(NamedToolChoice {
                kind: "allowed_tools".to_owned(),
                name: None,
                extra,
            })
        }
    }
}

fn format_to_conversation(format: &TextFormat) -> conv::ResponseFormat {
    match format {
        TextFormat::Text { .. } => conv::ResponseFormat::Text,
        TextFormat::JsonObject { .. } => conv::ResponseFormat::JsonObject,
        TextFormat::JsonSchema {
            name,
            schema,
            description,
            strict,
            ..
        } => conv::ResponseFormat::JsonSchema {
            name: name.clone(),
            description: description.clone(),
            schema: schema.clone().unwrap_or(Value::Null),
            strict: *strict,
        },
    }
}

fn format_from_conversation(format: &conv::ResponseFormat) -> TextFormat {
    match format {
        conv::ResponseFormat::Text => TextFormat::Text {
            extra: Extra::new(),
        },
        conv::ResponseFormat::JsonObject => TextFormat::JsonObject {
            extra: Extra::new(),
        },
        conv::ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => TextFormat::JsonSchema {
            name: name.clone(),
            schema: (!schema.is_null()).then(|| schema.clone()),
            description: description.clone(),
            strict: *strict,
            extra: Extra::new(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Custom tools on backends without them
// ---------------------------------------------------------------------------------------------

/// A custom tool as a function for a backend without custom tools: the same name, one required
/// string parameter [`CUSTOM_INPUT`] holding the raw input, and the input format (a grammar)
/// appended to the description so the model still knows what to write. Function tools come
/// back unchanged.
pub fn custom_tool_as_function(tool: &conv::Tool) -> conv::Tool {
    let conv::ToolKind::Custom { format } = &tool.kind else {
        return tool.clone();
    };
    let mut description = tool.description.clone().unwrap_or_default();
    if let Some(format) = format
        && format.get("type").and_then(Value::as_str) == Some("grammar")
    {
        let syntax = format
            .get("syntax")
            .and_then(Value::as_str)
            .unwrap_or("grammar");
        let definition = format
            .get("definition")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "The `{CUSTOM_INPUT}` must follow this {syntax} grammar:\n{definition}"
        ));
    }
    conv::Tool {
        name: tool.name.clone(),
        description: (!description.is_empty()).then_some(description),
        parameters: json!({
            "type": "object",
            "properties": {
                CUSTOM_INPUT: {
                    "type": "string",
                    "description": "The raw input, passed to the tool verbatim."
                }
            },
            "required": [CUSTOM_INPUT],
            "additionalProperties": false
        }),
        strict: None,
        kind: conv::ToolKind::Function,
        extra: conv::Extras::default(),
    }
}

/// Offer `request`'s custom tools as functions ([`custom_tool_as_function`]) and wrap the raw
/// input of earlier calls to them as `{"input": ...}` arguments. Returns the names of the tools
/// rewritten, for [`custom_calls_from_functions`] and the stream encoder's
/// [`custom_tools`](super::StreamEncoder::custom_tools).
pub fn custom_tools_as_functions(request: &mut conv::Request) -> Vec<String> {
    let names: Vec<String> = request
        .tools
        .iter()
        .filter(|t| matches!(t.kind, conv::ToolKind::Custom { .. }))
        .map(|t| t.name.clone())
        .collect();
    if names.is_empty() {
        return names;
    }
    for tool in &mut request.tools {
        *tool = custom_tool_as_function(tool);
    }
    for message in &mut request.messages {
        for part in &mut message.parts {
            if let conv::Part::ToolCall {
                name, arguments, ..
            } = part
                && names.contains(name)
            {
                *arguments = json!({ CUSTOM_INPUT: arguments }).to_string();
            }
        }
    }
    names
}

/// The raw input of a custom tool call a backend made as a function: the `input` of arguments
/// `{"input": "..."}`, or the arguments unchanged (a backend that called the tool natively).
pub fn custom_input_from_arguments(arguments: &str) -> String {
    match serde_json::from_str::<Map<String, Value>>(arguments) {
        Ok(map) if map.len() == 1 => match map.get(CUSTOM_INPUT) {
            Some(Value::String(input)) => input.clone(),
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// Turn the calls of `names` in a backend's response back into custom tool calls: raw input,
/// marked so [`response_from_conversation`] writes `custom_tool_call` items.
pub fn custom_calls_from_functions(response: &mut conv::Response, names: &[String]) {
    for part in &mut response.parts {
        if let conv::Part::ToolCall {
            name, arguments, ..
        } = part
            && names.contains(name)
        {
            *arguments = custom_input_from_arguments(arguments);
            add_hint(part, "custom", true.into());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

/// Decode a whole response. Its output items are one assistant turn; items that are not model
/// output (web search calls, ...) are kept verbatim for Responses and invisible to others.
pub fn response_to_conversation(response: ResponseObject) -> conv::Response {
    let ResponseObject {
        id,
        object,
        created_at,
        status,
        incomplete_details,
        error,
        model,
        output,
        usage,
        settings,
        extra,
    } = response;
    let mut hints = Map::new();
    if object != "response" {
        hints.insert("object".into(), object.into());
    }
    if let Ok(Value::Object(settings)) = serde_json::to_value(&settings) {
        hints.insert("settings".into(), Value::Object(settings));
    }
    if let Some(error) = error
        && let Ok(error) = serde_json::to_value(error)
    {
        hints.insert("error".into(), error);
    }

    let mut decoder = ItemDecoder::new(Ctx::OUTPUT, None);
    for (index, item) in output.into_iter().enumerate() {
        let item = match item {
            model @ (Item::Message(MessageItem {
                role: MessageRole::Assistant,
                ..
            })
            | Item::FunctionCall(_)
            | Item::CustomToolCall(_)
            | Item::Reasoning(_)) => model,
            other => Item::Other(match serde_json::to_value(&other) {
                Ok(Value::Object(map)) => map,
                _ => Extra::new(),
            }),
        };
        // An item the model cannot hold (an image without a source) stays as it was.
        let fallback = item.clone();
        if decoder.push(index, item).is_err() {
            let raw = match serde_json::to_value(&fallback) {
                Ok(Value::Object(map)) => map,
                _ => Extra::new(),
            };
            decoder.others.push(json!([index, raw]));
        }
    }
    let (messages, others) = decoder.finish();
    if !others.is_empty() {
        hints.insert("other_items".into(), Value::Array(others));
    }
    let parts: Vec<conv::Part> = messages.into_iter().flat_map(|m| m.parts).collect();

    let calls = has_calls(&parts);
    let finish = finish_to_conversation(status, incomplete_details.as_ref(), calls);
    let again = finish
        .as_ref()
        .map_or((Some(ResponseStatus::InProgress), None), |f| {
            finish_from_conversation(f)
        });
    conv::Extras::keep_if_lossy(&mut hints, "status", &(status, incomplete_details), &again);

    conv::Response {
        id,
        model,
        created: created_at,
        parts,
        finish,
        usage: usage.as_ref().map(WireUsage::to_conversation),
        extra: conv::Extras::new(RESPONSES, extra, hints),
    }
}

/// Encode a whole response for a client that asked for `model`. Reasoning that came from
/// another protocol is sealed under `seal`, so the next stateless turn gets its signatures back.
/// A response from another protocol echoes only the settings the SDKs require; set
/// [`ResponseObject::settings`] to [`ResponseSettings::echo`] of the request to echo them all.
pub fn response_from_conversation(
    response: &conv::Response,
    model: &str,
    seal: Option<&ReasoningSeal>,
) -> ResponseObject {
    let extra = &response.extra;
    let mut output = assistant_items(&response.parts, Ctx::OUTPUT, seal, &response.id, &[]);
    if let Some(item) =
        call_signature_item(&response.parts, seal, &Ids::new(&response.id), output.len())
    {
        output.push(item);
    }
    insert_others(&mut output, extra.hint(RESPONSES, "other_items"));

    let (status, incomplete_details) = extra
        .kept(
            RESPONSES,
            "status",
            &response.finish,
            |raw: &(Option<ResponseStatus>, Option<IncompleteDetails>)| {
                Some(finish_to_conversation(
                    raw.0,
                    raw.1.as_ref(),
                    has_calls(&response.parts),
                ))
            },
        )
        .unwrap_or_else(|| {
            response.finish.as_ref().map_or(
                (Some(ResponseStatus::InProgress), None),
                finish_from_conversation,
            )
        });

    ResponseObject {
        id: response.id.clone(),
        object: extra
            .hint_str(RESPONSES, "object")
            .unwrap_or("response")
            .to_owned(),
        created_at: response.created,
        status,
        incomplete_details,
        error: extra
            .hint(RESPONSES, "error")
            .and_then(|e| serde_json::from_value(e.clone()).ok()),
        model: model.to_owned(),
        output,
        usage: response
            .usage
            .as_ref()
            .map(ResponseUsage::from_conversation),
        settings: extra
            .hint(RESPONSES, "settings")
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_else(ResponseSettings::required),
        extra: extra.fields_of(RESPONSES),
    }
}

/// The trailing reasoning item that carries the signatures of a turn's tool calls that came
/// from another protocol, when there are any and a seal.
pub(super) fn call_signature_item(
    parts: &[conv::Part],
    seal: Option<&ReasoningSeal>,
    ids: &Ids,
    n: usize,
) -> Option<Item> {
    let seal = seal?;
    let calls: Vec<conv::Part> = parts
        .iter()
        .filter(|p| {
            matches!(p, conv::Part::ToolCall { signature: Some(_), extra, .. }
                if extra.hints_for(RESPONSES).is_none())
        })
        .cloned()
        .collect();
    (!calls.is_empty()).then(|| {
        Item::Reasoning(ReasoningItem {
            id: Some(ids.make("rs", n)),
            summary: Some(Vec::new()),
            content: None,
            encrypted_content: Some(seal.seal(&calls)),
            status: None,
            extra: Extra::new(),
        })
    })
}

/// The finish reason a response status says: `None` while it is not over.
pub(super) fn finish_to_conversation(
    status: Option<ResponseStatus>,
    details: Option<&IncompleteDetails>,
    calls: bool,
) -> Option<conv::FinishReason> {
    match status? {
        ResponseStatus::Completed if calls => Some(conv::FinishReason::ToolUse),
        ResponseStatus::Completed => Some(conv::FinishReason::Stop),
        ResponseStatus::Incomplete => Some(match details.and_then(|d| d.reason.as_deref()) {
            Some("max_output_tokens") => conv::FinishReason::Length,
            Some("content_filter") => conv::FinishReason::ContentFilter,
            Some(other) => conv::FinishReason::Other(other.to_owned()),
            None => conv::FinishReason::Other("incomplete".to_owned()),
        }),
        ResponseStatus::Failed => Some(conv::FinishReason::Other("failed".to_owned())),
        ResponseStatus::Cancelled => Some(conv::FinishReason::Other("cancelled".to_owned())),
        ResponseStatus::InProgress | ResponseStatus::Queued => None,
    }
}

/// A response's status and `incomplete_details` for a finish reason: the token limit and
/// content filters are `incomplete`, every other end `completed`.
pub(super) fn finish_from_conversation(
    reason: &conv::FinishReason,
) -> (Option<ResponseStatus>, Option<IncompleteDetails>) {
    let incomplete = |reason: &str| {
        (
            Some(ResponseStatus::Incomplete),
            Some(IncompleteDetails {
                reason: Some(reason.to_owned()),
                extra: Extra::new(),
            }),
        )
    };
    match reason {
        conv::FinishReason::Length => incomplete("max_output_tokens"),
        conv::FinishReason::ContentFilter => incomplete("content_filter"),
        conv::FinishReason::Other(other) if other == "failed" => {
            (Some(ResponseStatus::Failed), None)
        }
        conv::FinishReason::Other(other) if other == "cancelled" => {
            (Some(ResponseStatus::Cancelled), None)
        }
        conv::FinishReason::Other(other) if other == "incomplete" => {
            (Some(ResponseStatus::Incomplete), None)
        }
        conv::FinishReason::Stop
        | conv::FinishReason::StopSequence(_)
        | conv::FinishReason::ToolUse
        | conv::FinishReason::Other(_) => (Some(ResponseStatus::Completed), None),
    }
}

/// Responses usage: the original object is kept when the plain form of the counts differs.
impl WireUsage for ResponseUsage {
    const PROTOCOL: conv::Protocol = RESPONSES;

    fn counts(&self) -> conv::Usage {
        conv::Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_read_tokens: self
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            extra: conv::Extras::default(),
        }
    }

    /// Both breakdowns included (the SDKs require them).
    fn from_counts(usage: &conv::Usage) -> Self {
        ResponseUsage {
            input_tokens: usage.input_tokens,
            input_tokens_details: Some(InputTokensDetails {
                cached_tokens: Some(usage.cache_read_tokens),
                extra: Extra::new(),
            }),
            output_tokens: usage.output_tokens,
            output_tokens_details: Some(OutputTokensDetails {
                reasoning_tokens: Some(usage.reasoning_tokens),
                extra: Extra::new(),
            }),
            total_tokens: usage.total_tokens(),
            extra: Extra::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hints of items and parts
// ---------------------------------------------------------------------------------------------

/// Record an item's `id` or `status`: its value, or `null` where the output default (a
/// generated id, `completed`) would otherwise fill in an absent one.
fn meta_hint(hints: &mut Map<String, Value>, key: &str, value: Option<String>, ctx: Ctx) {
    match value {
        Some(value) => {
            hints.insert(key.to_owned(), value.into());
        }
        None if ctx.output => {
            hints.insert(key.to_owned(), Value::Null);
        }
        None => {}
    }
}

/// An item's `id` or `status` from its hint: the value, absent for `null`, else the default.
fn meta(
    extra: &conv::Extras,
    key: &str,
    default: impl FnOnce() -> Option<String>,
) -> Option<String> {
    match extra.hint(RESPONSES, key) {
        Some(Value::String(value)) => Some(value.clone()),
        Some(Value::Null) => None,
        _ => default(),
    }
}

/// [`meta`] for a value inside a hint object, taken out of it.
fn meta_in(map: &mut Extra, key: &str, default: impl FnOnce() -> Option<String>) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(value)) => Some(value),
        Some(Value::Null) => None,
        Some(other) => {
            map.insert(key.to_owned(), other);
            default()
        }
        None => default(),
    }
}

/// Add a Responses hint to a part this module decoded (or is marking for its own encoder).
fn add_hint(part: &mut conv::Part, key: &str, value: Value) {
    let extra = part.extra_mut();
    if extra.protocol != Some(RESPONSES) {
        *extra = conv::Extras::default();
    }
    extra.protocol = Some(RESPONSES);
    extra.hints.insert(key.to_owned(), value);
}
