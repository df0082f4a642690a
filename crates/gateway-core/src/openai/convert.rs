//! OpenAI Chat Completions to and from the neutral [`conversation`](crate::conversation): requests,
//! whole responses, and streams ([`ChunkEncoder`], [`ChunkDecoder`]).
//!
//! Why here: Chat is one dialect among several; the model in the middle keeps what Chat cannot
//! say (signatures, redacted thinking, cache hints) for the other dialects, and this module is
//! the only place that knows how Chat spells things.
//!
//! Exactness: a request or response decoded from Chat and encoded back is the same JSON value.
//! Unknown fields ride in [`Extras::fields`](conv::Extras); where Chat can spell one thing in
//! two ways, the decoder writes the spelling into [`Extras::hints`](conv::Extras) and the
//! encoder follows it. Hint keys (all tagged [`Protocol::OpenAiChat`](conv::Protocol)):
//! - request: `stream` (`false` sent explicitly), `stream_options` (its unknown fields),
//!   `include_usage` (`false` sent explicitly), `max_tokens` (`"legacy"` when only `max_tokens`
//!   was sent, `"both"` when both were sent equal, or the legacy value when both differ),
//!   `stop` (`"string"` or `"array"` for the empty array), `tools` (`"empty"`), and
//!   `tool_choice` / `response_format` (the original object, used while the model still says the
//!   same thing); `logit_bias` rides in the fields;
//! - message: `content` (`"parts"` where a string would be the default), `role` (`"function"`
//!   for legacy function results), `tool_calls` (`"empty"`), `tool_call_id` (on a role that
//!   does not use it), `thinking_blocks` / `reasoning_content` (LiteLLM's signed thinking
//!   blocks, and `false` when no `reasoning_content` came with them);
//! - part: `cache_control`, `image_url` / `input_audio` / `file` (unknown fields of the inner
//!   object), `file_data` (`"bare"` base64 instead of a data URI), `file_id`, `in_content` (a
//!   refusal part of the content array), `type`, `thought_signature` (Gemini's
//!   `extra_content.google.thought_signature` on a tool call), `function_call` (a legacy call);
//! - response: `object`, `system_fingerprint`, `index`, `logprobs`, `choice`, `role`,
//!   `message_fields`, `content` (`"null"`), `choices` (`"none"`), `more_choices` (choices past
//!   the first, verbatim), `finish_reason`; usage: `usage` (the original object).
//!
//! Encoding a conversation that came from another protocol uses Chat's plain spellings:
//! `max_completion_tokens`, `stop` as an array, content as a string when it is one plain text,
//! top-level system parts as a leading `system` message, each tool result as its own `tool`
//! message. What Chat cannot carry (signatures, redacted thinking, cache hints, `is_error`,
//! thinking budgets) is left out rather than squeezed into text.

use serde_json::{Map, Value};

use super::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, CompletionTokensDetails,
    Content, ContentPart, CustomTool, Delta, Extra, FileRef, FinishReason, FunctionCall,
    FunctionCallDelta, FunctionDefinition, ImageUrl, InputAudio, JsonSchemaFormat, Message,
    NamedToolChoice, PromptTokensDetails, ReasoningEffort, ResponseFormat, ResponseMessage, Role,
    Stop, StreamOptions, Tool, ToolCall, ToolCallDelta, ToolChoice, ToolChoiceMode, ToolName,
    Usage,
};
use crate::{
    ErrorKind, GatewayError, conversation as conv,
    wire::{Blocks, WireUsage, guess_file_mime, has_calls, invalid, unfinished},
};

const CHAT: conv::Protocol = conv::Protocol::OpenAiChat;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decode a Chat request into the neutral model.
///
/// Invalid input is a 400 naming the field: a `tool` message without `tool_call_id`, a legacy
/// `function` message without `name`, a legacy `function_call` without `name`, a `file` part
/// with neither `file_data` nor `file_id`, a named `tool_choice` without its name or of an
/// unknown type.
pub fn request_to_conversation(request: ChatRequest) -> Result<conv::Request, GatewayError> {
    let ChatRequest {
        model,
        messages,
        stream,
        stream_options,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        temperature,
        top_p,
        top_k,
        n,
        stop,
        max_tokens,
        max_completion_tokens,
        presence_penalty,
        frequency_penalty,
        logit_bias,
        logprobs,
        top_logprobs,
        seed,
        user,
        reasoning_effort,
        metadata,
        extra,
    } = request;
    let mut fields = extra;
    let mut hints = Map::new();

    let mut calls = Vec::new();
    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| message_to_conversation(index, message, &mut calls))
        .collect::<Result<Vec<_>, _>>()?;

    if stream == Some(false) {
        hints.insert("stream".into(), Value::Bool(false));
    }
    let stream_usage = stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if let Some(options) = stream_options {
        if options.include_usage == Some(false) {
            hints.insert("include_usage".into(), Value::Bool(false));
        }
        if options.include_usage.is_none() || !options.extra.is_empty() {
            hints.insert("stream_options".into(), Value::Object(options.extra));
        }
    }

    match (max_tokens, max_completion_tokens) {
        (Some(_), None) => {
            hints.insert("max_tokens".into(), "legacy".into());
        }
        (Some(legacy), Some(current)) if legacy == current => {
            hints.insert("max_tokens".into(), "both".into());
        }
        (Some(legacy), Some(_)) => {
            hints.insert("max_tokens".into(), legacy.into());
        }
        (None, _) => {}
    }

    match &stop {
        Some(Stop::One(_)) => {
            hints.insert("stop".into(), "string".into());
        }
        Some(Stop::Many(list)) if list.is_empty() => {
            hints.insert("stop".into(), "array".into());
        }
        _ => {}
    }

    if tools.as_ref().is_some_and(Vec::is_empty) {
        hints.insert("tools".into(), "empty".into());
    }
    let tools: Vec<conv::Tool> = tools
        .into_iter()
        .flatten()
        .map(tool_to_conversation)
        .collect();

    let choice = tool_choice
        .as_ref()
        .map(tool_choice_to_conversation)
        .transpose()?;
    let again = choice
        .as_ref()
        .map(|c| tool_choice_from_conversation(c, &tools));
    conv::Extras::keep_if_lossy(&mut hints, "tool_choice", &tool_choice, &again);

    let format = response_format
        .as_ref()
        .map(response_format_to_conversation);
    let again = format.as_ref().map(response_format_from_conversation);
    conv::Extras::keep_if_lossy(&mut hints, "response_format", &response_format, &again);

    if let Some(bias) = logit_bias {
        fields.insert("logit_bias".into(), Value::Object(bias));
    }

    Ok(conv::Request {
        model,
        system: Vec::new(),
        messages,
        tools,
        tool_choice: choice,
        parallel_tool_calls,
        generation: conv::Generation {
            max_tokens: max_completion_tokens.or(max_tokens),
            temperature,
            top_p,
            top_k,
            stop: stop.as_ref().map(Stop::to_vec).unwrap_or_default(),
            seed,
            presence_penalty,
            frequency_penalty,
            candidates: n,
            logprobs,
            top_logprobs,
        },
        reasoning: reasoning_effort.map(|effort| conv::Reasoning {
            effort: Some(effort_to_conversation(effort)),
            ..conv::Reasoning::default()
        }),
        response_format: format,
        stream: stream.unwrap_or(false),
        stream_usage,
        user,
        metadata,
        extra: conv::Extras::new(CHAT, fields, hints),
    })
}

/// Encode a neutral request as Chat. A request decoded from Chat comes back as it was sent.
pub fn request_from_conversation(request: &conv::Request) -> ChatRequest {
    let extra = &request.extra;
    let mut fields = extra.fields_of(CHAT);
    let logit_bias = match fields.remove("logit_bias") {
        Some(Value::Object(bias)) => Some(bias),
        Some(other) => {
            fields.insert("logit_bias".into(), other);
            None
        }
        None => None,
    };

    let mut messages = Vec::new();
    if !request.system.is_empty() {
        let parts: Vec<&conv::Part> = request.system.iter().collect();
        let mut message = Message::text(Role::System, "");
        message.content = content_from_parts(&parts, false);
        messages.push(message);
    }
    for message in &request.messages {
        message_from_conversation(message, &mut messages);
    }

    let stream = if request.stream {
        Some(true)
    } else {
        extra.hint(CHAT, "stream").and_then(Value::as_bool)
    };
    let include_usage = if request.stream_usage {
        Some(true)
    } else {
        extra.hint(CHAT, "include_usage").and_then(Value::as_bool)
    };
    let options_extra = extra
        .hint(CHAT, "stream_options")
        .and_then(Value::as_object)
        .cloned();
    let stream_options =
        (include_usage.is_some() || options_extra.is_some()).then(|| StreamOptions {
            include_usage,
            extra: options_extra.unwrap_or_default(),
        });

    let generation = &request.generation;
    let limit = generation.max_tokens;
    let (max_tokens, max_completion_tokens) = match extra.hint(CHAT, "max_tokens") {
        Some(Value::String(s)) if s == "legacy" => (limit, None),
        Some(Value::String(s)) if s == "both" => (limit, limit),
        Some(Value::Number(legacy)) => (
            limit.and(legacy.as_u64().and_then(|v| u32::try_from(v).ok())),
            limit,
        ),
        _ => (None, limit),
    };

    let stop = match (generation.stop.as_slice(), extra.hint_str(CHAT, "stop")) {
        ([one], Some("string")) => Some(Stop::One(one.clone())),
        ([], Some("array")) => Some(Stop::Many(Vec::new())),
        ([], _) => None,
        (many, _) => Some(Stop::Many(many.to_vec())),
    };

    let tools = if request.tools.is_empty() {
        (extra.hint_str(CHAT, "tools") == Some("empty")).then(Vec::new)
    } else {
        Some(request.tools.iter().map(tool_from_conversation).collect())
    };

    let tool_choice = extra
        .kept(
            CHAT,
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

    let response_format = extra
        .kept(
            CHAT,
            "response_format",
            &request.response_format,
            |raw: &Option<ResponseFormat>| Some(raw.as_ref().map(response_format_to_conversation)),
        )
        .unwrap_or_else(|| {
            request
                .response_format
                .as_ref()
                .map(response_format_from_conversation)
        });

    ChatRequest {
        model: request.model.clone(),
        messages,
        stream,
        stream_options,
        tools,
        tool_choice,
        parallel_tool_calls: request.parallel_tool_calls,
        response_format,
        temperature: generation.temperature,
        top_p: generation.top_p,
        top_k: generation.top_k,
        n: generation.candidates,
        stop,
        max_tokens,
        max_completion_tokens,
        presence_penalty: generation.presence_penalty,
        frequency_penalty: generation.frequency_penalty,
        logit_bias,
        logprobs: generation.logprobs,
        top_logprobs: generation.top_logprobs,
        seed: generation.seed,
        user: request.user.clone(),
        reasoning_effort: request
            .reasoning
            .as_ref()
            .and_then(|r| r.effort)
            .map(effort_from_conversation),
        metadata: request.metadata.clone(),
        extra: fields,
    }
}

fn message_to_conversation(
    index: usize,
    message: Message,
    calls: &mut Vec<(String, String)>,
) -> Result<conv::Message, GatewayError> {
    let at = |suffix: &str| format!("messages[{index}]{suffix}");
    let Message {
        role,
        content,
        mut name,
        tool_calls,
        tool_call_id,
        reasoning_content,
        refusal,
        extra,
    } = message;
    let mut fields = extra;
    let mut hints = Map::new();

    let mut parts = thinking_to_parts(reasoning_content, &mut fields, &mut hints);
    let content = content_to_parts(content, &at(".content"), &mut hints)?;
    match role {
        Role::Tool => {
            let id = tool_call_id
                .ok_or_else(|| invalid("tool message without tool_call_id", at(".tool_call_id")))?;
            let tool = calls
                .iter()
                .rev()
                .find(|(call, _)| *call == id)
                .map(|(_, tool)| tool.clone());
            parts.push(conv::Part::ToolResult {
                id,
                name: tool,
                parts: content,
                is_error: false,
                extra: conv::Extras::default(),
            });
        }
        Role::Function => {
            let function = name
                .take()
                .ok_or_else(|| invalid("function message without name", at(".name")))?;
            hints.insert("role".into(), "function".into());
            parts.push(conv::Part::ToolResult {
                id: String::new(),
                name: Some(function),
                parts: content,
                is_error: false,
                extra: conv::Extras::default(),
            });
        }
        Role::System | Role::Developer | Role::User | Role::Assistant => {
            if let Some(id) = tool_call_id {
                hints.insert("tool_call_id".into(), id.into());
            }
            parts.extend(content);
        }
    }
    if let Some(text) = refusal {
        parts.push(conv::Part::Refusal {
            text,
            extra: conv::Extras::default(),
        });
    }
    if let Some(list) = tool_calls {
        if list.is_empty() {
            hints.insert("tool_calls".into(), "empty".into());
        }
        for call in list {
            calls.push((call.id.clone(), call.function.name.clone()));
            parts.push(tool_call_to_conversation(call));
        }
    }
    if let Some(legacy) = fields.remove("function_call") {
        if legacy.is_null() {
            fields.insert("function_call".into(), legacy);
        } else {
            parts.push(legacy_call_to_conversation(
                legacy,
                &at(".function_call.name"),
            )?);
        }
    }

    Ok(conv::Message {
        role: role_to_conversation(role),
        parts,
        name,
        extra: conv::Extras::new(CHAT, fields, hints),
    })
}

fn role_to_conversation(role: Role) -> conv::Role {
    match role {
        Role::System => conv::Role::System,
        Role::Developer => conv::Role::Developer,
        Role::User => conv::Role::User,
        Role::Assistant => conv::Role::Assistant,
        Role::Tool | Role::Function => conv::Role::Tool,
    }
}

/// Write `message` as one Chat message, or several when it holds tool results beside other
/// parts (each result becomes its own `tool` message, the rest follows them).
fn message_from_conversation(message: &conv::Message, out: &mut Vec<Message>) {
    let (results, rest): (Vec<&conv::Part>, Vec<&conv::Part>) = message
        .parts
        .iter()
        .partition(|p| matches!(p, conv::Part::ToolResult { .. }));
    let loose_content = rest.iter().any(|p| is_content_part(p));
    if let ([result], conv::Role::Tool, false) = (results.as_slice(), message.role, loose_content) {
        out.push(assemble(message, message.role, Some(result), &rest));
        return;
    }
    for result in &results {
        if let conv::Part::ToolResult {
            id,
            name,
            parts,
            extra,
            ..
        } = result
        {
            out.push(result_message(id, name.as_deref(), parts, extra));
        }
    }
    if results.is_empty() || !rest.is_empty() {
        let role = match message.role {
            conv::Role::Tool => conv::Role::User,
            role => role,
        };
        out.push(assemble(message, role, None, &rest));
    }
}

/// One Chat message from `parts`; with `result`, a tool message whose content is the result's.
fn assemble(
    message: &conv::Message,
    role: conv::Role,
    result: Option<&conv::Part>,
    parts: &[&conv::Part],
) -> Message {
    let extra = &message.extra;
    let mut fields = extra.fields_of(CHAT);
    let legacy_result = extra.hint_str(CHAT, "role") == Some("function");
    let (role, name, tool_call_id, content_parts): (Role, _, _, Vec<&conv::Part>) =
        match (role, result) {
            (conv::Role::Tool, Some(conv::Part::ToolResult { name, parts, .. }))
                if legacy_result =>
            {
                (Role::Function, name.clone(), None, parts.iter().collect())
            }
            (_, Some(conv::Part::ToolResult { id, parts, .. })) => (
                Role::Tool,
                message.name.clone(),
                Some(id.clone()),
                parts.iter().collect(),
            ),
            (role, _) => (
                role_from_conversation(role),
                message.name.clone(),
                extra.hint_str(CHAT, "tool_call_id").map(str::to_owned),
                parts
                    .iter()
                    .copied()
                    .filter(|p| is_content_part(p))
                    .collect(),
            ),
        };
    let content = content_from_parts(
        &content_parts,
        extra.hint_str(CHAT, "content") == Some("parts"),
    );
    let reasoning_content = reasoning_from_parts(parts, extra, &mut fields);
    let refusal = refusal_from_parts(parts);
    let (calls, legacy) = calls_from_parts(parts);
    let tool_calls = if calls.is_empty() {
        (extra.hint_str(CHAT, "tool_calls") == Some("empty")).then(Vec::new)
    } else {
        Some(calls)
    };
    if let Some(legacy) = legacy {
        fields.insert("function_call".into(), legacy);
    }
    Message {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
        reasoning_content,
        refusal,
        extra: fields,
    }
}

/// A tool result that shares its message with other parts, as its own Chat message.
fn result_message(
    id: &str,
    name: Option<&str>,
    parts: &[conv::Part],
    extra: &conv::Extras,
) -> Message {
    let parts: Vec<&conv::Part> = parts.iter().collect();
    let legacy = id.is_empty() && name.is_some();
    Message {
        role: if legacy { Role::Function } else { Role::Tool },
        content: content_from_parts(&parts, extra.hint_str(CHAT, "content") == Some("parts")),
        name: if legacy {
            name.map(str::to_owned)
        } else {
            None
        },
        tool_calls: None,
        tool_call_id: (!legacy).then(|| id.to_owned()),
        reasoning_content: None,
        refusal: None,
        extra: extra.fields_of(CHAT),
    }
}

fn role_from_conversation(role: conv::Role) -> Role {
    match role {
        conv::Role::System => Role::System,
        conv::Role::Developer => Role::Developer,
        conv::Role::User => Role::User,
        conv::Role::Assistant => Role::Assistant,
        conv::Role::Tool => Role::Tool,
    }
}

/// Whether a part belongs in a Chat message's `content` (not in reasoning, refusal or calls).
fn is_content_part(part: &conv::Part) -> bool {
    match part {
        conv::Part::Text { .. }
        | conv::Part::Image { .. }
        | conv::Part::Document { .. }
        | conv::Part::Audio { .. } => true,
        conv::Part::Refusal { extra, .. } => extra.flag(CHAT, "in_content"),
        conv::Part::Thinking { .. }
        | conv::Part::RedactedThinking { .. }
        | conv::Part::ToolCall { .. }
        | conv::Part::ToolResult { .. } => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Content parts
// ---------------------------------------------------------------------------------------------

fn content_to_parts(
    content: Option<Content>,
    at: &str,
    hints: &mut Map<String, Value>,
) -> Result<Vec<conv::Part>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![conv::Part::text(text)]),
        Some(Content::Parts(items)) => {
            let parts = items
                .into_iter()
                .enumerate()
                .map(|(j, item)| content_part_to_conversation(item, &format!("{at}[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&conv::Part> = parts.iter().collect();
            if !matches!(content_from_parts(&refs, false), Some(Content::Parts(_))) {
                hints.insert("content".into(), "parts".into());
            }
            Ok(parts)
        }
    }
}

/// Chat content from content parts: `None` when there are none, a string when there is one
/// plain text part (unless `as_parts`), else the parts.
fn content_from_parts(parts: &[&conv::Part], as_parts: bool) -> Option<Content> {
    let items: Vec<ContentPart> = parts
        .iter()
        .filter_map(|p| content_part_from_conversation(p))
        .collect();
    if as_parts {
        return Some(Content::Parts(items));
    }
    match items.as_slice() {
        [] => None,
        [ContentPart::Text { text, extra }] if extra.is_empty() => {
            Some(Content::Text(text.clone()))
        }
        _ => Some(Content::Parts(items)),
    }
}

fn content_part_to_conversation(item: ContentPart, at: &str) -> Result<conv::Part, GatewayError> {
    let mut hints = Map::new();
    Ok(match item {
        ContentPart::Text { text, mut extra } => {
            let cache = take_cache_control(&mut extra);
            if cache.is_some() {
                hints.insert("cache_control".into(), Value::Bool(true));
            }
            conv::Part::Text {
                text,
                signature: None,
                cache,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
        ContentPart::ImageUrl {
            image_url:
                ImageUrl {
                    url,
                    detail,
                    extra: inner,
                },
            extra,
        } => {
            conv::Extras::insert_object_hint(&mut hints, "image_url", inner);
            conv::Part::Image {
                source: conv::Media::from_url(&url),
                detail,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
        ContentPart::InputAudio {
            input_audio:
                InputAudio {
                    data,
                    format,
                    extra: inner,
                },
            extra,
        } => {
            conv::Extras::insert_object_hint(&mut hints, "input_audio", inner);
            conv::Part::Audio {
                data,
                format,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
        ContentPart::File {
            file:
                FileRef {
                    file_data,
                    file_id,
                    filename,
                    extra: inner,
                },
            extra,
        } => {
            conv::Extras::insert_object_hint(&mut hints, "file", inner);
            let source = match (file_data, file_id) {
                (Some(data), id) => {
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
                (None, Some(id)) => conv::Media::FileId { id },
                (None, None) => {
                    return Err(invalid(
                        "file part without file_data or file_id",
                        format!("{at}.file"),
                    ));
                }
            };
            conv::Part::Document {
                source,
                name: filename,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
        ContentPart::Refusal { refusal, extra } => {
            hints.insert("in_content".into(), Value::Bool(true));
            conv::Part::Refusal {
                text: refusal,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
    })
}

fn content_part_from_conversation(part: &conv::Part) -> Option<ContentPart> {
    Some(match part {
        conv::Part::Text {
            text, cache, extra, ..
        } => {
            let mut fields = extra.fields_of(CHAT);
            if let Some(cache) = cache
                && extra.flag(CHAT, "cache_control")
            {
                fields.insert("cache_control".into(), cache_control(cache));
            }
            ContentPart::Text {
                text: text.clone(),
                extra: fields,
            }
        }
        conv::Part::Image {
            source,
            detail,
            extra,
        } => ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: media_url(source),
                detail: detail.clone(),
                extra: extra.hint_object(CHAT, "image_url"),
            },
            extra: extra.fields_of(CHAT),
        },
        conv::Part::Audio {
            data,
            format,
            extra,
        } => ContentPart::InputAudio {
            input_audio: InputAudio {
                data: data.clone(),
                format: format.clone(),
                extra: extra.hint_object(CHAT, "input_audio"),
            },
            extra: extra.fields_of(CHAT),
        },
        conv::Part::Document {
            source,
            name,
            extra,
        } => {
            let file_id = extra.hint_str(CHAT, "file_id").map(str::to_owned);
            let (file_data, file_id) = match source {
                conv::Media::Base64 { data, .. }
                    if extra.hint_str(CHAT, "file_data") == Some("bare") =>
                {
                    (Some(data.clone()), file_id)
                }
                conv::Media::FileId { id } => (None, Some(id.clone())),
                // Chat has no URL form for files; the upstream judges the URL.
                other => (other.to_url(), file_id),
            };
            ContentPart::File {
                file: FileRef {
                    file_data,
                    file_id,
                    filename: name.clone(),
                    extra: extra.hint_object(CHAT, "file"),
                },
                extra: extra.fields_of(CHAT),
            }
        }
        conv::Part::Refusal { text, extra } => ContentPart::Refusal {
            refusal: text.clone(),
            extra: extra.fields_of(CHAT),
        },
        conv::Part::Thinking { .. }
        | conv::Part::RedactedThinking { .. }
        | conv::Part::ToolCall { .. }
        | conv::Part::ToolResult { .. } => return None,
    })
}

/// `cache_control: {"type": "ephemeral", "ttl"?}` taken out of `fields`; anything richer stays.
fn take_cache_control(fields: &mut Extra) -> Option<conv::CacheHint> {
    let Some(Value::Object(control)) = fields.get("cache_control") else {
        return None;
    };
    if control.get("type").and_then(Value::as_str) != Some("ephemeral")
        || control.keys().any(|k| k != "type" && k != "ttl")
    {
        return None;
    }
    let ttl = match control.get("ttl") {
        None => None,
        Some(Value::String(ttl)) => Some(ttl.clone()),
        Some(_) => return None,
    };
    fields.remove("cache_control");
    Some(conv::CacheHint { ttl })
}

fn cache_control(cache: &conv::CacheHint) -> Value {
    let mut control = Map::new();
    control.insert("type".into(), "ephemeral".into());
    if let Some(ttl) = &cache.ttl {
        control.insert("ttl".into(), ttl.clone().into());
    }
    Value::Object(control)
}

fn media_url(media: &conv::Media) -> String {
    match media {
        conv::Media::FileId { id } => id.clone(),
        other => other.to_url().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reasoning, refusals and tool calls of assistant messages
// ---------------------------------------------------------------------------------------------

/// Thinking parts from `reasoning_content`, or from LiteLLM's `thinking_blocks` (which carry
/// signatures and redacted blocks) when they agree with it.
fn thinking_to_parts(
    reasoning: Option<String>,
    fields: &mut Extra,
    hints: &mut Map<String, Value>,
) -> Vec<conv::Part> {
    if let Some(blocks) = fields.get("thinking_blocks").and_then(thinking_blocks) {
        let joined: String = blocks
            .iter()
            .filter_map(|p| match p {
                conv::Part::Thinking { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if reasoning.as_deref().is_none_or(|r| r == joined) {
            fields.remove("thinking_blocks");
            hints.insert("thinking_blocks".into(), Value::Bool(true));
            if reasoning.is_none() {
                hints.insert("reasoning_content".into(), Value::Bool(false));
            }
            return blocks;
        }
    }
    reasoning
        .map(|text| vec![conv::Part::thinking(text, None)])
        .unwrap_or_default()
}

/// `[{"type": "thinking", "thinking", "signature"?} | {"type": "redacted_thinking", "data"}]`;
/// `None` for anything else, which then stays an unknown field.
fn thinking_blocks(value: &Value) -> Option<Vec<conv::Part>> {
    value
        .as_array()?
        .iter()
        .map(|block| {
            let block = block.as_object()?;
            let string = |key: &str| block.get(key).and_then(Value::as_str).map(str::to_owned);
            match block.get("type").and_then(Value::as_str)? {
                "thinking"
                    if block
                        .keys()
                        .all(|k| ["type", "thinking", "signature"].contains(&k.as_str())) =>
                {
                    let signature = match block.get("signature") {
                        None => None,
                        Some(_) => Some(string("signature")?),
                    };
                    Some(conv::Part::thinking(string("thinking")?, signature))
                }
                "redacted_thinking" if block.len() == 2 => Some(conv::Part::RedactedThinking {
                    data: string("data")?,
                    extra: conv::Extras::default(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `reasoning_content` from thinking parts (and `thinking_blocks` into `fields` when the source
/// sent them).
fn reasoning_from_parts(
    parts: &[&conv::Part],
    extra: &conv::Extras,
    fields: &mut Extra,
) -> Option<String> {
    let thinking: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            conv::Part::Thinking { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if extra.flag(CHAT, "thinking_blocks") {
        let blocks = parts
            .iter()
            .filter_map(|p| match p {
                conv::Part::Thinking {
                    text, signature, ..
                } => {
                    let mut block = Map::new();
                    block.insert("type".into(), "thinking".into());
                    block.insert("thinking".into(), text.clone().into());
                    if let Some(signature) = signature {
                        block.insert("signature".into(), signature.clone().into());
                    }
                    Some(Value::Object(block))
                }
                conv::Part::RedactedThinking { data, .. } => {
                    let mut block = Map::new();
                    block.insert("type".into(), "redacted_thinking".into());
                    block.insert("data".into(), data.clone().into());
                    Some(Value::Object(block))
                }
                _ => None,
            })
            .collect();
        fields.insert("thinking_blocks".into(), Value::Array(blocks));
        if extra.hint(CHAT, "reasoning_content") == Some(&Value::Bool(false)) {
            return None;
        }
        return Some(thinking.concat());
    }
    (!thinking.is_empty()).then(|| thinking.concat())
}

/// The message-level `refusal`: refusal parts that were not in the content array.
fn refusal_from_parts(parts: &[&conv::Part]) -> Option<String> {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            conv::Part::Refusal { text, extra } if !extra.flag(CHAT, "in_content") => {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

/// `tool_calls`, and the legacy `function_call` when one came that way.
fn calls_from_parts(parts: &[&conv::Part]) -> (Vec<ToolCall>, Option<Value>) {
    let mut calls = Vec::new();
    let mut legacy = None;
    for part in parts {
        if let conv::Part::ToolCall { extra, .. } = part {
            if extra.hint(CHAT, "function_call").is_some() {
                legacy = legacy_call_from_conversation(part);
            } else if let Some(call) = tool_call_from_conversation(part) {
                calls.push(call);
            }
        }
    }
    (calls, legacy)
}

fn tool_call_to_conversation(call: ToolCall) -> conv::Part {
    let ToolCall {
        id,
        kind,
        function: FunctionCall { name, arguments },
        extra,
    } = call;
    let mut fields = extra;
    let mut hints = Map::new();
    if kind != "function" {
        hints.insert("type".into(), kind.into());
    }
    let signature = take_thought_signature(&mut fields);
    if signature.is_some() {
        hints.insert("thought_signature".into(), Value::Bool(true));
    }
    conv::Part::ToolCall {
        id,
        name,
        arguments,
        signature,
        extra: conv::Extras::new(CHAT, fields, hints),
    }
}

fn tool_call_from_conversation(part: &conv::Part) -> Option<ToolCall> {
    let conv::Part::ToolCall {
        id,
        name,
        arguments,
        signature,
        extra,
    } = part
    else {
        return None;
    };
    let mut fields = extra.fields_of(CHAT);
    if let Some(signature) = signature
        && extra.flag(CHAT, "thought_signature")
    {
        put_thought_signature(&mut fields, signature);
    }
    Some(ToolCall {
        id: id.clone(),
        kind: extra
            .hint_str(CHAT, "type")
            .unwrap_or("function")
            .to_owned(),
        function: FunctionCall {
            name: name.clone(),
            arguments: arguments.clone(),
        },
        extra: fields,
    })
}

/// Gemini's OpenAI endpoint puts a call's thought signature at
/// `extra_content.google.thought_signature`.
fn take_thought_signature(fields: &mut Extra) -> Option<String> {
    let Some(Value::Object(outer)) = fields.get_mut("extra_content") else {
        return None;
    };
    let Some(Value::Object(google)) = outer.get_mut("google") else {
        return None;
    };
    let Some(Value::String(_)) = google.get("thought_signature") else {
        return None;
    };
    let signature = match google.remove("thought_signature") {
        Some(Value::String(signature)) => signature,
        _ => return None,
    };
    if google.is_empty() {
        outer.remove("google");
    }
    if outer.is_empty() {
        fields.remove("extra_content");
    }
    Some(signature)
}

fn put_thought_signature(fields: &mut Extra, signature: &str) {
    let outer = fields
        .entry("extra_content")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(outer) = outer {
        let google = outer
            .entry("google")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(google) = google {
            google.insert("thought_signature".into(), signature.into());
        }
    }
}

/// The legacy assistant `function_call: {"name", "arguments"}` as a tool call without an id.
fn legacy_call_to_conversation(legacy: Value, param: &str) -> Result<conv::Part, GatewayError> {
    let (name, arguments) =
        legacy_call_fields(&legacy).ok_or_else(|| invalid("function_call without name", param))?;
    let again = legacy_call(&name, &arguments);
    let mut hints = Map::new();
    hints.insert(
        "function_call".into(),
        if again == legacy {
            Value::Bool(true)
        } else {
            legacy
        },
    );
    Ok(conv::Part::ToolCall {
        id: String::new(),
        name,
        arguments,
        signature: None,
        extra: conv::Extras::new(CHAT, Map::new(), hints),
    })
}

fn legacy_call_fields(legacy: &Value) -> Option<(String, String)> {
    let name = legacy.get("name")?.as_str()?.to_owned();
    let arguments = legacy
        .get("arguments")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((name, arguments))
}

fn legacy_call(name: &str, arguments: &str) -> Value {
    let mut call = Map::new();
    call.insert("name".into(), name.into());
    call.insert("arguments".into(), arguments.into());
    Value::Object(call)
}

fn legacy_call_from_conversation(part: &conv::Part) -> Option<Value> {
    let conv::Part::ToolCall {
        name,
        arguments,
        extra,
        ..
    } = part
    else {
        return None;
    };
    match extra.hint(CHAT, "function_call") {
        Some(raw @ Value::Object(_))
            if legacy_call_fields(raw).as_ref() == Some(&(name.clone(), arguments.clone())) =>
        {
            Some(raw.clone())
        }
        _ => Some(legacy_call(name, arguments)),
    }
}

// ---------------------------------------------------------------------------------------------
// Tools, tool choice, response format, reasoning effort
// ---------------------------------------------------------------------------------------------

fn tool_to_conversation(tool: Tool) -> conv::Tool {
    let mut hints = Map::new();
    match tool {
        Tool::Function {
            function:
                FunctionDefinition {
                    name,
                    description,
                    parameters,
                    strict,
                    extra: inner,
                },
            extra,
        } => {
            conv::Extras::insert_object_hint(&mut hints, "function", inner);
            conv::Tool {
                name,
                description,
                parameters: parameters.unwrap_or(Value::Null),
                strict,
                kind: conv::ToolKind::Function,
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
        Tool::Custom {
            custom:
                CustomTool {
                    name,
                    description,
                    format,
                    extra: inner,
                },
            extra,
        } => {
            conv::Extras::insert_object_hint(&mut hints, "custom", inner);
            conv::Tool {
                name,
                description,
                parameters: Value::Null,
                strict: None,
                kind: conv::ToolKind::Custom { format },
                extra: conv::Extras::new(CHAT, extra, hints),
            }
        }
    }
}

fn tool_from_conversation(tool: &conv::Tool) -> Tool {
    let extra = &tool.extra;
    match &tool.kind {
        conv::ToolKind::Function => Tool::Function {
            function: FunctionDefinition {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: (!tool.parameters.is_null()).then(|| tool.parameters.clone()),
                strict: tool.strict,
                extra: extra.hint_object(CHAT, "function"),
            },
            extra: extra.fields_of(CHAT),
        },
        conv::ToolKind::Custom { format } => Tool::Custom {
            custom: CustomTool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                format: format.clone(),
                extra: extra.hint_object(CHAT, "custom"),
            },
            extra: extra.fields_of(CHAT),
        },
    }
}

fn tool_choice_to_conversation(choice: &ToolChoice) -> Result<conv::ToolChoice, GatewayError> {
    Ok(match choice {
        ToolChoice::Mode(ToolChoiceMode::None) => conv::ToolChoice::None,
        ToolChoice::Mode(ToolChoiceMode::Auto) => conv::ToolChoice::Auto,
        ToolChoice::Mode(ToolChoiceMode::Required) => conv::ToolChoice::Required,
        ToolChoice::Named(named) => match named.kind.as_str() {
            "function" => conv::ToolChoice::Tool(
                named
                    .function
                    .as_ref()
                    .ok_or_else(|| {
                        invalid(
                            "tool_choice of type function without function.name",
                            "tool_choice.function",
                        )
                    })?
                    .name
                    .clone(),
            ),
            "custom" => conv::ToolChoice::Tool(
                named
                    .custom
                    .as_ref()
                    .ok_or_else(|| {
                        invalid(
                            "tool_choice of type custom without custom.name",
                            "tool_choice.custom",
                        )
                    })?
                    .name
                    .clone(),
            ),
            "allowed_tools" => {
                let allowed = named.extra.get("allowed_tools");
                let required =
                    allowed.and_then(|a| a.get("mode")).and_then(Value::as_str) == Some("required");
                let tools = allowed
                    .and_then(|a| a.get("tools"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        t.pointer("/function/name")
                            .or_else(|| t.get("name"))
                            .and_then(Value::as_str)
                    })
                    .map(str::to_owned)
                    .collect();
                conv::ToolChoice::Allowed { tools, required }
            }
            other => {
                return Err(invalid(
                    format!("unsupported tool_choice type {other:?}"),
                    "tool_choice.type",
                ));
            }
        },
    })
}

fn tool_choice_from_conversation(choice: &conv::ToolChoice, tools: &[conv::Tool]) -> ToolChoice {
    match choice {
        conv::ToolChoice::Auto => ToolChoice::Mode(ToolChoiceMode::Auto),
        conv::ToolChoice::None => ToolChoice::Mode(ToolChoiceMode::None),
        conv::ToolChoice::Required => ToolChoice::Mode(ToolChoiceMode::Required),
        conv::ToolChoice::Tool(name) => {
            let custom = tools
                .iter()
                .any(|t| t.name == *name && matches!(t.kind, conv::ToolKind::Custom { .. }));
            let named = Some(ToolName { name: name.clone() });
            ToolChoice::Named(NamedToolChoice {
                kind: if custom { "custom" } else { "function" }.to_owned(),
                function: if custom { None } else { named.clone() },
                custom: if custom { named } else { None },
                extra: Extra::new(),
            })
        }
        conv::ToolChoice::Allowed { tools, required } => {
            let listed: Vec<Value> = tools
                .iter()
                .map(|name| serde_json::json!({"type": "function", "function": {"name": name}}))
                .collect();
            let mut extra = Extra::new();
            extra.insert(
                "allowed_tools".to_owned(),
                serde_json::json!({
                    "mode": if *required { "required" } else { "auto" },
                    "tools": listed,
                }),
            );
            ToolChoice::Named(NamedToolChoice {
                kind: "allowed_tools".to_owned(),
                function: None,
                custom: None,
                extra,
            })
        }
    }
}

fn response_format_to_conversation(format: &ResponseFormat) -> conv::ResponseFormat {
    match format {
        ResponseFormat::Text => conv::ResponseFormat::Text,
        ResponseFormat::JsonObject => conv::ResponseFormat::JsonObject,
        ResponseFormat::JsonSchema { json_schema } => conv::ResponseFormat::JsonSchema {
            name: json_schema.name.clone(),
            description: json_schema.description.clone(),
            schema: json_schema.schema.clone().unwrap_or(Value::Null),
            strict: json_schema.strict,
        },
    }
}

fn response_format_from_conversation(format: &conv::ResponseFormat) -> ResponseFormat {
    match format {
        conv::ResponseFormat::Text => ResponseFormat::Text,
        conv::ResponseFormat::JsonObject => ResponseFormat::JsonObject,
        conv::ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: name.clone(),
                description: description.clone(),
                schema: (!schema.is_null()).then(|| schema.clone()),
                strict: *strict,
                extra: Extra::new(),
            },
        },
    }
}

pub(crate) fn effort_to_conversation(effort: ReasoningEffort) -> conv::Effort {
    match effort {
        ReasoningEffort::None => conv::Effort::None,
        ReasoningEffort::Minimal => conv::Effort::Minimal,
        ReasoningEffort::Low => conv::Effort::Low,
        ReasoningEffort::Medium => conv::Effort::Medium,
        ReasoningEffort::High => conv::Effort::High,
        ReasoningEffort::Xhigh => conv::Effort::Xhigh,
    }
}

pub(crate) fn effort_from_conversation(effort: conv::Effort) -> ReasoningEffort {
    match effort {
        conv::Effort::None => ReasoningEffort::None,
        conv::Effort::Minimal => ReasoningEffort::Minimal,
        conv::Effort::Low => ReasoningEffort::Low,
        conv::Effort::Medium => ReasoningEffort::Medium,
        conv::Effort::High => ReasoningEffort::High,
        conv::Effort::Xhigh => ReasoningEffort::Xhigh,
    }
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

/// Decode a whole completion. The first choice becomes the parts; further choices (`n` > 1)
/// are kept verbatim for Chat and invisible to other protocols.
pub fn response_to_conversation(completion: ChatCompletion) -> conv::Response {
    let ChatCompletion {
        id,
        object,
        created,
        model,
        choices,
        usage,
        system_fingerprint,
        extra,
    } = completion;
    let mut hints = Map::new();
    if object != "chat.completion" {
        hints.insert("object".into(), object.into());
    }
    if let Some(fingerprint) = system_fingerprint {
        hints.insert("system_fingerprint".into(), fingerprint.into());
    }
    let mut choices = choices.into_iter();
    let (parts, finish) = match choices.next() {
        Some(choice) => choice_to_conversation(choice, &mut hints),
        None => {
            hints.insert("choices".into(), "none".into());
            (Vec::new(), None)
        }
    };
    let rest: Vec<Choice> = choices.collect();
    if !rest.is_empty()
        && let Ok(rest) = serde_json::to_value(rest)
    {
        hints.insert("more_choices".into(), rest);
    }
    conv::Response {
        id,
        model,
        created,
        parts,
        finish,
        usage: usage.as_ref().map(WireUsage::to_conversation),
        extra: conv::Extras::new(CHAT, extra, hints),
    }
}

fn choice_to_conversation(
    choice: Choice,
    hints: &mut Map<String, Value>,
) -> (Vec<conv::Part>, Option<conv::FinishReason>) {
    let Choice {
        index,
        message,
        finish_reason,
        logprobs,
        extra,
    } = choice;
    if index != 0 {
        hints.insert("index".into(), index.into());
    }
    if let Some(logprobs) = logprobs {
        hints.insert("logprobs".into(), logprobs);
    }
    conv::Extras::insert_object_hint(hints, "choice", extra);
    let ResponseMessage {
        role,
        content,
        reasoning_content,
        tool_calls,
        refusal,
        extra,
    } = message;
    if role != Role::Assistant
        && let Ok(role) = serde_json::to_value(role)
    {
        hints.insert("role".into(), role);
    }
    let mut fields = extra;
    let mut parts = thinking_to_parts(reasoning_content, &mut fields, hints);
    let had_content = content.is_some();
    if let Some(text) = content {
        parts.push(conv::Part::text(text));
    }
    if let Some(text) = refusal {
        parts.push(conv::Part::Refusal {
            text,
            extra: conv::Extras::default(),
        });
    }
    if let Some(list) = tool_calls {
        if list.is_empty() {
            hints.insert("tool_calls".into(), "empty".into());
        }
        parts.extend(list.into_iter().map(tool_call_to_conversation));
    }
    if !had_content && response_content(&parts).is_some() {
        hints.insert("content".into(), "null".into());
    }
    conv::Extras::insert_object_hint(hints, "message_fields", fields);
    let finish = finish_reason.map(finish_to_conversation);
    let again = finish
        .as_ref()
        .map(|f| finish_from_conversation(f, has_calls(&parts)));
    conv::Extras::keep_if_lossy(hints, "finish_reason", &finish_reason, &again);
    (parts, finish)
}

/// Encode a whole completion for a client that asked for `model`.
pub fn response_from_conversation(response: &conv::Response, model: &str) -> ChatCompletion {
    let extra = &response.extra;
    let parts: Vec<&conv::Part> = response.parts.iter().collect();
    let mut fields = extra.hint_object(CHAT, "message_fields");
    let reasoning_content = reasoning_from_parts(&parts, extra, &mut fields);
    let (calls, legacy) = calls_from_parts(&parts);
    if let Some(legacy) = legacy {
        fields.insert("function_call".into(), legacy);
    }
    let tool_calls = if calls.is_empty() {
        (extra.hint_str(CHAT, "tool_calls") == Some("empty")).then(Vec::new)
    } else {
        Some(calls)
    };
    let content = if extra.hint_str(CHAT, "content") == Some("null")
        && !response.parts.iter().any(|p| p.as_text().is_some())
    {
        None
    } else {
        response_content(&response.parts)
    };
    let role = extra
        .hint(CHAT, "role")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or(Role::Assistant);
    let message = ResponseMessage {
        role,
        content,
        reasoning_content,
        tool_calls,
        refusal: refusal_from_parts(&parts),
        extra: fields,
    };
    let finish_reason = extra
        .kept(
            CHAT,
            "finish_reason",
            &response.finish,
            |raw: &Option<FinishReason>| Some(raw.map(finish_to_conversation)),
        )
        .unwrap_or_else(|| {
            response
                .finish
                .as_ref()
                .map(|f| finish_from_conversation(f, has_calls(&response.parts)))
        });
    let mut choices = Vec::new();
    let empty = response.parts.is_empty() && response.finish.is_none();
    if !(empty && extra.hint_str(CHAT, "choices") == Some("none")) {
        choices.push(Choice {
            index: extra
                .hint(CHAT, "index")
                .and_then(Value::as_u64)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(0),
            message,
            finish_reason,
            logprobs: extra.hint(CHAT, "logprobs").cloned(),
            extra: extra.hint_object(CHAT, "choice"),
        });
    }
    if let Some(more) = extra
        .hint(CHAT, "more_choices")
        .and_then(|m| serde_json::from_value::<Vec<Choice>>(m.clone()).ok())
    {
        choices.extend(more);
    }
    ChatCompletion {
        id: response.id.clone(),
        object: extra
            .hint_str(CHAT, "object")
            .unwrap_or("chat.completion")
            .to_owned(),
        created: response.created,
        model: model.to_owned(),
        choices,
        usage: response.usage.as_ref().map(Usage::from_conversation),
        system_fingerprint: extra
            .hint_str(CHAT, "system_fingerprint")
            .map(str::to_owned),
        extra: extra.fields_of(CHAT),
    }
}

/// A response's `content`: its text, `null` when it is only tool calls or a refusal, else `""`.
fn response_content(parts: &[conv::Part]) -> Option<String> {
    let texts: Vec<&str> = parts.iter().filter_map(conv::Part::as_text).collect();
    if !texts.is_empty() {
        return Some(texts.concat());
    }
    let only_calls_or_refusal = parts
        .iter()
        .any(|p| matches!(p, conv::Part::ToolCall { .. } | conv::Part::Refusal { .. }));
    (!only_calls_or_refusal).then(String::new)
}

fn finish_to_conversation(reason: FinishReason) -> conv::FinishReason {
    match reason {
        FinishReason::Stop => conv::FinishReason::Stop,
        FinishReason::Length => conv::FinishReason::Length,
        FinishReason::ToolCalls => conv::FinishReason::ToolUse,
        FinishReason::ContentFilter => conv::FinishReason::ContentFilter,
        FinishReason::FunctionCall => conv::FinishReason::Other("function_call".to_owned()),
    }
}

/// Chat's finish reason: a turn that made tool calls finishes with `tool_calls` unless it was
/// cut by the length limit or a filter.
fn finish_from_conversation(reason: &conv::FinishReason, tool_calls: bool) -> FinishReason {
    match reason {
        conv::FinishReason::Length => FinishReason::Length,
        conv::FinishReason::ContentFilter => FinishReason::ContentFilter,
        conv::FinishReason::ToolUse => FinishReason::ToolCalls,
        conv::FinishReason::Other(name) if name == "function_call" => FinishReason::FunctionCall,
        conv::FinishReason::Stop
        | conv::FinishReason::StopSequence(_)
        | conv::FinishReason::Other(_) => {
            if tool_calls {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            }
        }
    }
}

/// Chat usage: the original object is kept when Chat's plain form of the counts would differ
/// from it (details absent, unknown fields).
impl WireUsage for Usage {
    const PROTOCOL: conv::Protocol = CHAT;

    fn counts(&self) -> conv::Usage {
        let prompt = self.prompt_tokens_details.as_ref();
        let cache_write = prompt
            .and_then(|d| d.extra.get("cache_write_tokens"))
            .or_else(|| self.extra.get("cache_creation_input_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        conv::Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_read_tokens: prompt.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: cache_write,
            extra: conv::Extras::default(),
        }
    }

    /// Chat usage as the gateway has always sent it: completion includes reasoning, total is the
    /// sum, both detail objects present.
    fn from_counts(usage: &conv::Usage) -> Self {
        Usage {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(usage.cache_read_tokens),
                ..PromptTokensDetails::default()
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: Some(usage.reasoning_tokens),
                ..CompletionTokensDetails::default()
            }),
            extra: Extra::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// Turns a response's [`Event`](conv::Event)s into Chat chunks, with the semantics clients rely
/// on: a role chunk first (`{"role": "assistant", "content": ""}`); reasoning as
/// `reasoning_content`; text as `content`; each tool call as one delta with its own index
/// (0, 1, ... per call), an id (generated as `call_<id suffix>_<n>` when the upstream gave
/// none), `type: function`, the name and the first piece of the arguments, then argument
/// deltas; exactly one finish chunk (`tool_calls` when calls were made, unless cut by length
/// or a filter); then, at the end and when asked, a usage chunk with no choices. Id, creation
/// time and model come from the constructor, never from the upstream. Signatures and redacted
/// thinking have no Chat form and produce no chunk.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    finished: bool,
    /// The block index of each tool call, in call order (the position is Chat's index).
    calls: Vec<u32>,
    /// A call start held until its first arguments, so both go out in one delta.
    pending: Option<ToolCallDelta>,
    usage: Option<conv::Usage>,
}

impl ChunkEncoder {
    /// An encoder for the response `id` (`chatcmpl-...`) created at `created` (unix seconds)
    /// for a client that asked for `model`; `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        include_usage: bool,
    ) -> Self {
        Self {
            id: id.into(),
            created,
            model: model.into(),
            include_usage,
            started: false,
            finished: false,
            calls: Vec::new(),
            pending: None,
            usage: None,
        }
    }

    /// The chunks for one event (often none or one). Arguments for a block that started no
    /// tool call are an `UpstreamProtocol` error.
    pub fn push(&mut self, event: conv::Event) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
        let mut chunks = Vec::new();
        if !self.started {
            self.started = true;
            chunks.push(self.chunk(Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            }));
        }
        match event {
            conv::Event::Start { .. }
            | conv::Event::Signature { .. }
            | conv::Event::RedactedThinking { .. } => {}
            conv::Event::TextDelta { text, .. } => {
                if !text.is_empty() {
                    self.flush(&mut chunks);
                    chunks.push(self.chunk(Delta {
                        content: Some(text),
                        ..Delta::default()
                    }));
                }
            }
            conv::Event::ThinkingDelta { text, .. } => {
                if !text.is_empty() {
                    self.flush(&mut chunks);
                    chunks.push(self.chunk(Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    }));
                }
            }
            conv::Event::RefusalDelta { text, .. } => {
                if !text.is_empty() {
                    self.flush(&mut chunks);
                    chunks.push(self.chunk(Delta {
                        refusal: Some(text),
                        ..Delta::default()
                    }));
                }
            }
            conv::Event::ToolCallStart { index, id, name } => {
                self.flush(&mut chunks);
                let number = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                self.calls.push(index);
                let id = if id.is_empty() {
                    let suffix = self.id.strip_prefix("chatcmpl-").unwrap_or(&self.id);
                    format!("call_{suffix}_{number}")
                } else {
                    id
                };
                self.pending = Some(ToolCallDelta {
                    index: number,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    }),
                });
            }
            conv::Event::ToolCallDelta { index, arguments } => {
                let Some(number) = self.calls.iter().position(|&block| block == index) else {
                    return Err(GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!(
                            "tool call arguments for content block {index}, which started no tool call"
                        ),
                    ));
                };
                let number = u32::try_from(number).unwrap_or(u32::MAX);
                if arguments.is_empty() {
                    return Ok(chunks);
                }
                match &mut self.pending {
                    Some(pending) if pending.index == number => {
                        if let Some(function) = &mut pending.function {
                            function.arguments = Some(arguments);
                        }
                        self.flush(&mut chunks);
                    }
                    _ => {
                        self.flush(&mut chunks);
                        chunks.push(self.chunk(Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: number,
                                id: None,
                                kind: None,
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(arguments),
                                }),
                            }]),
                            ..Delta::default()
                        }));
                    }
                }
            }
            conv::Event::BlockEnd { .. } => self.flush(&mut chunks),
            conv::Event::Usage(usage) => self.usage = Some(usage),
            conv::Event::Finish { reason } => {
                self.flush(&mut chunks);
                if !self.finished {
                    self.finished = true;
                    let reason = finish_from_conversation(&reason, !self.calls.is_empty());
                    let mut chunk = self.chunk(Delta::default());
                    for choice in &mut chunk.choices {
                        choice.finish_reason = Some(reason);
                    }
                    chunks.push(chunk);
                }
            }
        }
        Ok(chunks)
    }

    /// The stream ended: the usage chunk when asked for (zero counts when the upstream sent
    /// none). A stream that never finished is a `Truncated` error, never a made-up finish.
    pub fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
        let mut chunks = Vec::new();
        self.flush(&mut chunks);
        if !self.finished {
            return Err(unfinished());
        }
        if self.include_usage {
            let usage = self.usage.take().unwrap_or_default();
            let mut chunk = self.chunk(Delta::default());
            chunk.choices.clear();
            chunk.usage = Some(Usage::from_conversation(&usage));
            chunks.push(chunk);
        }
        Ok(chunks)
    }

    fn flush(&mut self, chunks: &mut Vec<ChatCompletionChunk>) {
        if let Some(call) = self.pending.take() {
            chunks.push(self.chunk(Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            }));
        }
    }

    fn chunk(&self, delta: Delta) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: None,
                logprobs: None,
                extra: Extra::new(),
            }],
            usage: None,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }
}

/// Turns an upstream's Chat chunks into [`Event`](conv::Event)s, for OpenAI upstreams serving
/// other protocols.
///
/// The first chunk gives [`Start`](conv::Event::Start); each run of reasoning, text or refusal
/// and each tool call (by Chat index) is one content block, ended when the next block starts
/// or the stream finishes. Only choice 0 is read: other protocols have no place for more.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    finished: bool,
    blocks: Blocks<Block>,
    /// (Chat tool-call index, block index).
    calls: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Refusal,
    Call,
}

impl ChunkDecoder {
    /// A decoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of one chunk.
    pub fn push(&mut self, chunk: ChatCompletionChunk) -> Vec<conv::Event> {
        let ChatCompletionChunk {
            id,
            model,
            choices,
            usage,
            ..
        } = chunk;
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(conv::Event::Start { id, model });
        }
        for choice in choices.into_iter().filter(|c| c.index == 0) {
            let Delta {
                content,
                reasoning_content,
                tool_calls,
                refusal,
                ..
            } = choice.delta;
            if let Some(text) = reasoning_content.filter(|t| !t.is_empty()) {
                let index = self.blocks.enter(Block::Thinking, &mut events);
                events.push(conv::Event::ThinkingDelta { index, text });
            }
            if let Some(text) = content.filter(|t| !t.is_empty()) {
                let index = self.blocks.enter(Block::Text, &mut events);
                events.push(conv::Event::TextDelta { index, text });
            }
            if let Some(text) = refusal.filter(|t| !t.is_empty()) {
                let index = self.blocks.enter(Block::Refusal, &mut events);
                events.push(conv::Event::RefusalDelta { index, text });
            }
            for call in tool_calls.into_iter().flatten() {
                let (name, arguments) = call
                    .function
                    .map(|f| (f.name, f.arguments))
                    .unwrap_or_default();
                let known = self.calls.iter().find(|(number, _)| *number == call.index);
                let index = match known {
                    Some(&(_, block)) => block,
                    None => {
                        let block = self.blocks.start(Block::Call, &mut events);
                        self.calls.push((call.index, block));
                        events.push(conv::Event::ToolCallStart {
                            index: block,
                            id: call.id.unwrap_or_default(),
                            name: name.unwrap_or_default(),
                        });
                        block
                    }
                };
                if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                    events.push(conv::Event::ToolCallDelta { index, arguments });
                }
            }
            if let Some(reason) = choice.finish_reason
                && !self.finished
            {
                self.finished = true;
                self.blocks.close(&mut events);
                events.push(conv::Event::Finish {
                    reason: finish_to_conversation(reason),
                });
            }
        }
        if let Some(usage) = usage {
            events.push(conv::Event::Usage(usage.to_conversation()));
        }
        events
    }

    /// The upstream stream ended: the open block ends. A stream without a finish reason is a
    /// `Truncated` error.
    pub fn finish(&mut self) -> Result<Vec<conv::Event>, GatewayError> {
        self.blocks.end_stream(self.finished)
    }
}

/// Whether a chunk is content for the commit point: non-empty text, reasoning or refusal, a
/// tool call, a finish reason, or usage.
pub fn chunk_is_content(chunk: &ChatCompletionChunk) -> bool {
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

#[cfg(test)]
mod tests;
