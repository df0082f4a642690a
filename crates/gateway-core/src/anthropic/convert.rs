//! Anthropic Messages to and from the neutral [`conversation`](crate::conversation): requests,
//! whole responses, and streams ([`StreamEncoder`], [`StreamDecoder`]).
//!
//! Why here: Claude Code and the Anthropic SDKs are the main clients, and Anthropic-compatible
//! providers are backends; this module is the only place that knows how Messages spells
//! things, so every other protocol meets Anthropic through the conversation model.
//!
//! Exactness: a request or response decoded from Anthropic and encoded back is the same JSON
//! value (`null` and absent being the same). Unknown fields ride in
//! [`Extras::fields`](conv::Extras) (so do `context_management`, `service_tier`, `citations`,
//! document `context`, and `cache_control` on blocks other than text); where Anthropic can spell
//! one thing in two ways, or says more than the model holds, the decoder writes a hint and the
//! encoder follows it while the model still says the same thing. Hint keys (all tagged
//! [`Protocol::Anthropic`](conv::Protocol)):
//! - request: `system` (`"blocks"` where a string would be the default), `system_blocks`,
//!   `server_tools` (server tools such as `web_search_20250305`, as `[position, tool]` pairs),
//!   `tools` (`"empty"`), `tool_choice`, `thinking` and `output_config` (the original object,
//!   when the model cannot say all of it: `display`, effort `max`, unknown types), `metadata`
//!   (its fields besides `user_id`), `stop_sequences` (`"empty"`), `stream` (`false` sent
//!   explicitly);
//! - message and tool result: `content` (`"blocks"`), `blocks` (blocks without a neutral form,
//!   such as `server_tool_use`, `web_search_tool_result` or documents made of blocks, kept
//!   verbatim as `[position, block]` pairs: only Anthropic sees them);
//! - part: `unsigned` (a thinking block without signature), `is_error` (`false` sent
//!   explicitly), `source` (unknown fields of a source), `source_type` (`"text"` for a plain-text
//!   document, `"base64"` for a base64 one of a `text/*` type); tool: `type` (`"custom"`),
//!   `input_schema` (`"absent"`);
//! - response: `type`, `stop` (the original stop reason and sequence), `blocks`; usage: `usage`
//!   (the original object).
//!
//! Mapping rules:
//! - Usage: the neutral `input_tokens` is the whole input, `input_tokens +
//!   cache_creation_input_tokens + cache_read_input_tokens`; encoding subtracts the cached
//!   counts back out.
//! - Thinking: `enabled` + `budget_tokens` is mode `Enabled` with the budget, `adaptive` is
//!   `Adaptive`, `disabled` is `Disabled`; `output_config.effort` is the effort (`max` becomes
//!   `Xhigh`, the model has no higher level). An effort without a mode encodes as
//!   `output_config.effort` alone: whether a model thinks is the backend's decision.
//! - Tool calls: `tool_use.input` is the call's arguments as JSON text. Arguments from another
//!   protocol that are empty become `{}`; arguments that are not JSON (a truncated stream) are
//!   sent as `{"raw_arguments": "<the text>"}`, so encoding never fails and nothing is lost.
//! - Tool results stay in their user message, in order with its text; a tool result's name is
//!   filled from the call with the same id.
//! - Plain-text documents become base64 documents of type `text/plain` (the model has no text
//!   source) and go back to text sources.
//!
//! Encoding a conversation from another protocol: system and developer messages join the
//! top-level `system` (text only), tool messages become user messages (consecutive ones merged),
//! an allowed-tools choice sends only the allowed tools (Anthropic has no such choice),
//! refusals become text, and a thinking part without a signature is dropped from requests
//! (Anthropic rejects it) and shown with an empty signature in responses. What Anthropic cannot
//! carry (audio, image `detail`, signatures on text or tool calls, JSON-object response
//! format, OpenAI metadata) is left out.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    BlockDelta, CacheControl, Content, ContentBlock, ContentBlockDelta, ContentBlockStart,
    ContentBlockStop, CustomTool, DeltaUsage, DocumentBlock, Extra, FileSource, ImageBlock,
    InputJsonDelta, InputMessage, Marker, MediaSource, MessageDelta, MessageDeltaEvent,
    MessageStart, MessagesRequest, MessagesResponse, Metadata, OutputConfig, OutputTokensDetails,
    RedactedThinkingBlock, Role, SignatureDelta, Source, StopReason, StreamEvent, TextBlock,
    TextDelta, ThinkingBlock, ThinkingConfig, ThinkingDelta, Tool, ToolChoice, ToolResultBlock,
    ToolUseBlock, UrlSource, Usage,
};
use crate::{
    ErrorKind, GatewayError, conversation as conv, dialect, sse,
    wire::{WireUsage, has_calls, invalid, take_typed, unfinished, upstream_unfinished},
};

const ANTHROPIC: conv::Protocol = conv::Protocol::Anthropic;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decode a Messages (or `count_tokens`) request into the neutral model.
///
/// Invalid input is a 400 naming the field: a `tool_choice` of type `tool` without `name`.
/// Unknown fields, blocks, tools and configuration types never fail: they ride along for
/// Anthropic and are invisible to other protocols.
pub fn request_to_conversation(request: MessagesRequest) -> Result<conv::Request, GatewayError> {
    let MessagesRequest {
        model,
        max_tokens,
        messages,
        system,
        tools,
        tool_choice,
        thinking,
        output_config,
        context_management,
        stop_sequences,
        temperature,
        top_p,
        top_k,
        metadata,
        stream,
        service_tier,
        extra,
    } = request;
    let mut fields = extra;
    let mut hints = Map::new();
    let mut calls = Vec::new();

    let system = system
        .map(|content| {
            content_to_parts(
                content,
                true,
                &mut calls,
                &mut hints,
                ("system", "system_blocks"),
            )
        })
        .unwrap_or_default();
    let messages = messages
        .into_iter()
        .map(|message| message_to_conversation(message, &mut calls))
        .collect();

    if tools.as_ref().is_some_and(Vec::is_empty) {
        hints.insert("tools".into(), "empty".into());
    }
    let mut neutral_tools = Vec::new();
    let mut server_tools = Vec::new();
    for (position, tool) in tools.into_iter().flatten().enumerate() {
        match tool {
            Tool::Custom(custom) => neutral_tools.push(tool_to_conversation(custom)),
            Tool::Server(map) => server_tools.push(json!([position, map])),
        }
    }
    if !server_tools.is_empty() {
        hints.insert("server_tools".into(), Value::Array(server_tools));
    }

    let (choice, parallel_tool_calls) = match &tool_choice {
        Some(raw) => tool_choice_to_conversation(raw)?,
        None => (None, None),
    };
    let again = tool_choice_from_conversation(choice.as_ref(), parallel_tool_calls);
    conv::Extras::keep_if_lossy(&mut hints, "tool_choice", &tool_choice, &again);

    let (mode, budget_tokens) = thinking
        .as_ref()
        .map(thinking_to_conversation)
        .unwrap_or_default();
    let (effort, response_format) = output_config
        .as_ref()
        .map(output_config_to_conversation)
        .unwrap_or_default();
    let reasoning = (mode.is_some() || budget_tokens.is_some() || effort.is_some()).then_some(
        conv::Reasoning {
            effort,
            budget_tokens,
            summary: None,
            mode,
        },
    );
    let again = thinking_from_conversation(reasoning.as_ref());
    conv::Extras::keep_if_lossy(&mut hints, "thinking", &thinking, &again);
    let again = output_config_from_conversation(effort, response_format.as_ref());
    conv::Extras::keep_if_lossy(&mut hints, "output_config", &output_config, &again);

    if let Some(value) = context_management {
        fields.insert("context_management".into(), value);
    }
    if let Some(tier) = service_tier {
        fields.insert("service_tier".into(), tier.into());
    }
    if stop_sequences.as_ref().is_some_and(Vec::is_empty) {
        hints.insert("stop_sequences".into(), "empty".into());
    }
    if stream == Some(false) {
        hints.insert("stream".into(), Value::Bool(false));
    }
    let user = match metadata {
        Some(Metadata { user_id, extra }) => {
            if user_id.is_none() || !extra.is_empty() {
                hints.insert("metadata".into(), Value::Object(extra));
            }
            user_id
        }
        None => None,
    };
    let stream = stream.unwrap_or(false);

    Ok(conv::Request {
        model,
        system,
        messages,
        tools: neutral_tools,
        tool_choice: choice,
        parallel_tool_calls,
        generation: conv::Generation {
            max_tokens,
            temperature,
            top_p,
            top_k,
            stop: stop_sequences.unwrap_or_default(),
            ..conv::Generation::default()
        },
        reasoning,
        response_format,
        stream,
        // Anthropic streams always carry usage.
        stream_usage: stream,
        user,
        metadata: None,
        extra: conv::Extras::new(ANTHROPIC, fields, hints),
    })
}

/// Encode a neutral request as Anthropic Messages. A request decoded from Anthropic comes back
/// as it was sent; see the module docs for how other protocols' conversations are spelled.
pub fn request_from_conversation(request: &conv::Request) -> MessagesRequest {
    let extra = &request.extra;
    let mut fields = extra.fields_of(ANTHROPIC);
    let context_management = fields.remove("context_management");
    let service_tier = take_typed::<String>(&mut fields, "service_tier");

    let mut system_parts: Vec<&conv::Part> = request.system.iter().collect();
    let mut messages: Vec<(InputMessage, bool)> = Vec::new();
    for message in &request.messages {
        match message.role {
            conv::Role::System | conv::Role::Developer => {
                system_parts.extend(message.parts.iter());
            }
            conv::Role::User | conv::Role::Assistant | conv::Role::Tool => {
                push_message(message, &mut messages);
            }
        }
    }
    system_parts.retain(|p| matches!(p, conv::Part::Text { .. }));
    let system = content_from_parts(
        &system_parts,
        extra.hint(ANTHROPIC, "system_blocks"),
        extra.hint_str(ANTHROPIC, "system") == Some("blocks"),
        true,
        Place::Request,
    );

    let allowed = match &request.tool_choice {
        Some(conv::ToolChoice::Allowed { tools, .. }) => Some(tools.as_slice()),
        _ => None,
    };
    let mut tools: Vec<Tool> = request
        .tools
        .iter()
        .filter(|tool| allowed.is_none_or(|names| names.contains(&tool.name)))
        .map(tool_from_conversation)
        .collect();
    if let Some(Value::Array(kept)) = extra.hint(ANTHROPIC, "server_tools") {
        for (position, raw) in positioned(kept) {
            if let Value::Object(map) = raw {
                let at = position.min(tools.len());
                tools.insert(at, Tool::Server(map.clone()));
            }
        }
    }
    let tools = if tools.is_empty() {
        (extra.hint_str(ANTHROPIC, "tools") == Some("empty")).then(Vec::new)
    } else {
        Some(tools)
    };

    let current = (request.tool_choice.clone(), request.parallel_tool_calls);
    let tool_choice = extra
        .kept(
            ANTHROPIC,
            "tool_choice",
            &current,
            |raw: &Option<ToolChoice>| {
                Some(
                    raw.as_ref()
                        .map(tool_choice_to_conversation)
                        .transpose()
                        .ok()?
                        .unwrap_or_default(),
                )
            },
        )
        .unwrap_or_else(|| {
            tool_choice_from_conversation(request.tool_choice.as_ref(), request.parallel_tool_calls)
        });

    let reasoning = request.reasoning.as_ref();
    let current = (
        reasoning.and_then(|r| r.mode),
        reasoning.and_then(|r| r.budget_tokens),
    );
    let thinking = extra
        .kept(
            ANTHROPIC,
            "thinking",
            &current,
            |raw: &Option<ThinkingConfig>| {
                Some(
                    raw.as_ref()
                        .map(thinking_to_conversation)
                        .unwrap_or_default(),
                )
            },
        )
        .unwrap_or_else(|| thinking_from_conversation(reasoning));

    let effort = reasoning.and_then(|r| r.effort);
    let current = (effort, request.response_format.clone());
    let output_config = extra
        .kept(
            ANTHROPIC,
            "output_config",
            &current,
            |raw: &Option<OutputConfig>| {
                Some(
                    raw.as_ref()
                        .map(output_config_to_conversation)
                        .unwrap_or_default(),
                )
            },
        )
        .unwrap_or_else(|| {
            output_config_from_conversation(effort, request.response_format.as_ref())
        });

    let generation = &request.generation;
    let stop_sequences = if generation.stop.is_empty() {
        (extra.hint_str(ANTHROPIC, "stop_sequences") == Some("empty")).then(Vec::new)
    } else {
        Some(generation.stop.clone())
    };
    let metadata_fields = extra
        .hint(ANTHROPIC, "metadata")
        .and_then(Value::as_object)
        .cloned();
    let metadata = (request.user.is_some() || metadata_fields.is_some()).then(|| Metadata {
        user_id: request.user.clone(),
        extra: metadata_fields.unwrap_or_default(),
    });
    let stream = if request.stream {
        Some(true)
    } else {
        extra.hint(ANTHROPIC, "stream").and_then(Value::as_bool)
    };

    MessagesRequest {
        model: request.model.clone(),
        max_tokens: generation.max_tokens,
        messages: messages.into_iter().map(|(message, _)| message).collect(),
        system,
        tools,
        tool_choice,
        thinking,
        output_config,
        context_management,
        stop_sequences,
        temperature: generation.temperature,
        top_p: generation.top_p,
        top_k: generation.top_k,
        metadata,
        stream,
        service_tier,
        extra: fields,
    }
}

fn message_to_conversation(
    message: InputMessage,
    calls: &mut Vec<(String, String)>,
) -> conv::Message {
    let InputMessage {
        role,
        content,
        extra,
    } = message;
    let mut hints = Map::new();
    let parts = content_to_parts(content, false, calls, &mut hints, ("content", "blocks"));
    conv::Message {
        role: match role {
            Role::User => conv::Role::User,
            Role::Assistant => conv::Role::Assistant,
        },
        parts,
        name: None,
        extra: conv::Extras::new(ANTHROPIC, extra, hints),
    }
}

/// Append `message` as an Anthropic message. Tool messages (from protocols with a tool role)
/// are user messages, merged with the user messages next to them: Anthropic wants every result
/// of a turn in the one user message that follows it. Empty text beside other blocks is left
/// out, and so is a message whose every part has no Anthropic form (Anthropic rejects empty
/// content).
fn push_message(message: &conv::Message, out: &mut Vec<(InputMessage, bool)>) {
    let role = match message.role {
        conv::Role::Assistant => Role::Assistant,
        _ => Role::User,
    };
    let parts: Vec<&conv::Part> = message.parts.iter().collect();
    let content = content_from_parts(
        &parts,
        message.extra.hint(ANTHROPIC, "blocks"),
        message.extra.hint_str(ANTHROPIC, "content") == Some("blocks"),
        false,
        Place::Request,
    )
    .unwrap_or(Content::Blocks(Vec::new()));
    // Anthropic rejects empty text blocks: Chat clients send `"content": ""` beside tool calls.
    let content = match content {
        Content::Blocks(mut blocks) if blocks.len() > 1 => {
            blocks.retain(
                |b| !matches!(b, ContentBlock::Text(t) if t.text.is_empty() && is_plain(t)),
            );
            Content::Blocks(blocks)
        }
        other => other,
    };
    if !parts.is_empty() && matches!(&content, Content::Blocks(blocks) if blocks.is_empty()) {
        return;
    }
    let from_tool = message.role == conv::Role::Tool;
    if let Some((last, last_from_tool)) = out.last_mut()
        && last.role == Role::User
        && role == Role::User
        && (from_tool || *last_from_tool)
    {
        let mut blocks = into_blocks(std::mem::replace(
            &mut last.content,
            Content::Blocks(Vec::new()),
        ));
        blocks.extend(into_blocks(content));
        last.content = Content::Blocks(blocks);
        *last_from_tool = from_tool;
        return;
    }
    out.push((
        InputMessage {
            role,
            content,
            extra: message.extra.fields_of(ANTHROPIC),
        },
        from_tool,
    ));
}

fn into_blocks(content: Content) -> Vec<ContentBlock> {
    match content {
        Content::Text(text) => vec![ContentBlock::Text(TextBlock::new(text))],
        Content::Blocks(blocks) => blocks,
    }
}

// ---------------------------------------------------------------------------------------------
// Content blocks
// ---------------------------------------------------------------------------------------------

/// Where blocks are encoded: requests and responses treat unsigned thinking differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Request,
    Response,
}

/// Parts from content; `keys` are the hint keys for the spelling and for kept blocks. With
/// `empty_absent`, empty content is spelled by leaving the field out.
fn content_to_parts(
    content: Content,
    empty_absent: bool,
    calls: &mut Vec<(String, String)>,
    hints: &mut Map<String, Value>,
    (spelling, kept): (&str, &str),
) -> Vec<conv::Part> {
    match content {
        Content::Text(text) => vec![conv::Part::text(text)],
        Content::Blocks(blocks) => {
            let default_is_not_blocks = match blocks.as_slice() {
                [] => empty_absent,
                [ContentBlock::Text(text)] => is_plain(text),
                _ => false,
            };
            if default_is_not_blocks {
                hints.insert(spelling.to_owned(), "blocks".into());
            }
            blocks_to_parts(blocks, calls, hints, kept)
        }
    }
}

/// Content from parts: `None` when there are none and `empty_absent`, a string when there is
/// one plain text part (unless `as_blocks`), else blocks.
fn content_from_parts(
    parts: &[&conv::Part],
    kept: Option<&Value>,
    as_blocks: bool,
    empty_absent: bool,
    place: Place,
) -> Option<Content> {
    let blocks = parts_to_blocks(parts, kept, place);
    if as_blocks {
        return Some(Content::Blocks(blocks));
    }
    match blocks.as_slice() {
        [] if empty_absent => None,
        [ContentBlock::Text(text)] if is_plain(text) => Some(Content::Text(text.text.clone())),
        _ => Some(Content::Blocks(blocks)),
    }
}

fn is_plain(text: &TextBlock) -> bool {
    text.citations.is_none() && text.cache_control.is_none() && text.extra.is_empty()
}

/// Parts from blocks; blocks without a neutral form are kept verbatim in hint `key` as
/// `[position, block]` pairs.
fn blocks_to_parts(
    blocks: Vec<ContentBlock>,
    calls: &mut Vec<(String, String)>,
    hints: &mut Map<String, Value>,
    key: &str,
) -> Vec<conv::Part> {
    let mut parts = Vec::with_capacity(blocks.len());
    let mut kept = Vec::new();
    for (position, block) in blocks.into_iter().enumerate() {
        match block_to_part(block, calls) {
            Ok(part) => parts.push(part),
            Err(block) => {
                let raw = serde_json::to_value(&*block).unwrap_or_default();
                kept.push(json!([position, raw]));
            }
        }
    }
    if !kept.is_empty() {
        hints.insert(key.to_owned(), Value::Array(kept));
    }
    parts
}

/// Blocks from parts, with the kept blocks put back where they were.
fn parts_to_blocks(parts: &[&conv::Part], kept: Option<&Value>, place: Place) -> Vec<ContentBlock> {
    let mut blocks: Vec<ContentBlock> = parts
        .iter()
        .filter_map(|part| part_to_block(part, place))
        .collect();
    if let Some(Value::Array(kept)) = kept {
        for (position, raw) in positioned(kept) {
            let block = serde_json::from_value::<ContentBlock>(raw.clone()).unwrap_or_else(|_| {
                ContentBlock::Other(raw.as_object().cloned().unwrap_or_default())
            });
            let at = position.min(blocks.len());
            blocks.insert(at, block);
        }
    }
    blocks
}

/// `[position, value]` pairs of a positional hint.
fn positioned(kept: &[Value]) -> impl Iterator<Item = (usize, &Value)> {
    kept.iter().filter_map(|entry| {
        let position = entry.get(0)?.as_u64()?;
        Some((
            usize::try_from(position).unwrap_or(usize::MAX),
            entry.get(1)?,
        ))
    })
}

/// The part for a block, or the block back when it has no neutral form.
fn block_to_part(
    block: ContentBlock,
    calls: &mut Vec<(String, String)>,
) -> Result<conv::Part, Box<ContentBlock>> {
    let mut hints = Map::new();
    Ok(match block {
        ContentBlock::Text(TextBlock {
            text,
            citations,
            cache_control,
            extra,
        }) => {
            let mut fields = extra;
            if let Some(citations) = citations {
                fields.insert("citations".into(), Value::Array(citations));
            }
            let cache = match cache_control {
                Some(control) => match cache_hint(&control) {
                    Some(hint) => Some(hint),
                    None => {
                        insert_typed(&mut fields, "cache_control", &control);
                        None
                    }
                },
                None => None,
            };
            conv::Part::Text {
                text,
                signature: None,
                cache,
                extra: conv::Extras::new(ANTHROPIC, fields, hints),
            }
        }
        ContentBlock::Image(ImageBlock {
            source,
            cache_control,
            extra,
        }) => {
            let source = match source_to_media(source, false, &mut hints) {
                Ok(media) => media,
                Err(source) => {
                    return Err(Box::new(ContentBlock::Image(ImageBlock {
                        source,
                        cache_control,
                        extra,
                    })));
                }
            };
            let mut fields = extra;
            insert_option(&mut fields, "cache_control", cache_control.as_ref());
            conv::Part::Image {
                source,
                detail: None,
                extra: conv::Extras::new(ANTHROPIC, fields, hints),
            }
        }
        ContentBlock::Document(DocumentBlock {
            source,
            title,
            context,
            citations,
            cache_control,
            extra,
        }) => {
            let source = match source_to_media(source, true, &mut hints) {
                Ok(media) => media,
                Err(source) => {
                    return Err(Box::new(ContentBlock::Document(DocumentBlock {
                        source,
                        title,
                        context,
                        citations,
                        cache_control,
                        extra,
                    })));
                }
            };
            let mut fields = extra;
            insert_option(&mut fields, "context", context.as_ref());
            insert_option(&mut fields, "citations", citations.as_ref());
            insert_option(&mut fields, "cache_control", cache_control.as_ref());
            conv::Part::Document {
                source,
                name: title,
                extra: conv::Extras::new(ANTHROPIC, fields, hints),
            }
        }
        ContentBlock::Thinking(ThinkingBlock {
            thinking,
            signature,
            extra,
        }) => {
            if signature.is_none() {
                hints.insert("unsigned".into(), Value::Bool(true));
            }
            conv::Part::Thinking {
                text: thinking,
                signature,
                extra: conv::Extras::new(ANTHROPIC, extra, hints),
            }
        }
        ContentBlock::RedactedThinking(RedactedThinkingBlock { data, extra }) => {
            conv::Part::RedactedThinking {
                data,
                extra: conv::Extras::new(ANTHROPIC, extra, hints),
            }
        }
        ContentBlock::ToolUse(ToolUseBlock {
            id,
            name,
            input,
            cache_control,
            extra,
        }) => {
            let mut fields = extra;
            insert_option(&mut fields, "cache_control", cache_control.as_ref());
            calls.push((id.clone(), name.clone()));
            conv::Part::ToolCall {
                id,
                name,
                arguments: input.to_string(),
                signature: None,
                extra: conv::Extras::new(ANTHROPIC, fields, hints),
            }
        }
        ContentBlock::ToolResult(ToolResultBlock {
            tool_use_id,
            content,
            is_error,
            cache_control,
            extra,
        }) => {
            let mut fields = extra;
            insert_option(&mut fields, "cache_control", cache_control.as_ref());
            if is_error == Some(false) {
                hints.insert("is_error".into(), Value::Bool(false));
            }
            let parts = content
                .map(|content| {
                    content_to_parts(content, true, calls, &mut hints, ("content", "blocks"))
                })
                .unwrap_or_default();
            let name = calls
                .iter()
                .rev()
                .find(|(call, _)| *call == tool_use_id)
                .map(|(_, name)| name.clone());
            conv::Part::ToolResult {
                id: tool_use_id,
                name,
                parts,
                is_error: is_error.unwrap_or(false),
                extra: conv::Extras::new(ANTHROPIC, fields, hints),
            }
        }
        other @ ContentBlock::Other(_) => return Err(Box::new(other)),
    })
}

/// The block for a part; `None` for parts Anthropic cannot carry.
fn part_to_block(part: &conv::Part, place: Place) -> Option<ContentBlock> {
    Some(match part {
        conv::Part::Text {
            text, cache, extra, ..
        } => {
            let mut fields = extra.fields_of(ANTHROPIC);
            let citations = take_typed(&mut fields, "citations");
            let cache_control = match cache {
                Some(cache) => {
                    fields.remove("cache_control");
                    Some(CacheControl::ephemeral(cache.ttl.clone()))
                }
                None => take_typed(&mut fields, "cache_control"),
            };
            ContentBlock::Text(TextBlock {
                text: text.clone(),
                citations,
                cache_control,
                extra: fields,
            })
        }
        conv::Part::Image { source, extra, .. } => {
            let mut fields = extra.fields_of(ANTHROPIC);
            ContentBlock::Image(ImageBlock {
                source: media_to_source(source, false, extra),
                cache_control: take_typed(&mut fields, "cache_control"),
                extra: fields,
            })
        }
        conv::Part::Document {
            source,
            name,
            extra,
        } => {
            let mut fields = extra.fields_of(ANTHROPIC);
            ContentBlock::Document(DocumentBlock {
                source: media_to_source(source, true, extra),
                title: name.clone(),
                context: take_typed(&mut fields, "context"),
                citations: take_typed(&mut fields, "citations"),
                cache_control: take_typed(&mut fields, "cache_control"),
                extra: fields,
            })
        }
        conv::Part::Audio { .. } => return None,
        conv::Part::Thinking {
            text,
            signature,
            extra,
        } => {
            let signature = match (signature, place) {
                (Some(signature), _) => Some(signature.clone()),
                (None, _) if extra.flag(ANTHROPIC, "unsigned") => None,
                // Anthropic rejects unsigned thinking on input; clients expect a signature.
                (None, Place::Request) => return None,
                (None, Place::Response) => Some(String::new()),
            };
            ContentBlock::Thinking(ThinkingBlock {
                thinking: text.clone(),
                signature,
                extra: extra.fields_of(ANTHROPIC),
            })
        }
        conv::Part::RedactedThinking { data, extra } => {
            ContentBlock::RedactedThinking(RedactedThinkingBlock {
                data: data.clone(),
                extra: extra.fields_of(ANTHROPIC),
            })
        }
        conv::Part::ToolCall {
            id,
            name,
            arguments,
            extra,
            ..
        } => {
            let mut fields = extra.fields_of(ANTHROPIC);
            ContentBlock::ToolUse(ToolUseBlock {
                id: id.clone(),
                name: name.clone(),
                input: input_from_arguments(arguments),
                cache_control: take_typed(&mut fields, "cache_control"),
                extra: fields,
            })
        }
        conv::Part::ToolResult {
            id,
            parts,
            is_error,
            extra,
            ..
        } => {
            let mut fields = extra.fields_of(ANTHROPIC);
            let inner: Vec<&conv::Part> = parts.iter().collect();
            let content = content_from_parts(
                &inner,
                extra.hint(ANTHROPIC, "blocks"),
                extra.hint_str(ANTHROPIC, "content") == Some("blocks"),
                true,
                place,
            );
            let is_error = if *is_error {
                Some(true)
            } else {
                extra.hint(ANTHROPIC, "is_error").and_then(Value::as_bool)
            };
            ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: id.clone(),
                content,
                is_error,
                cache_control: take_typed(&mut fields, "cache_control"),
                extra: fields,
            })
        }
        conv::Part::Refusal { text, extra } => ContentBlock::Text(TextBlock {
            text: text.clone(),
            citations: None,
            cache_control: None,
            extra: extra.fields_of(ANTHROPIC),
        }),
    })
}

/// `tool_use.input` for arguments: the JSON they hold, `{}` when empty, else the raw text
/// under `raw_arguments` (see the module docs).
fn input_from_arguments(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({"raw_arguments": arguments}))
}

/// The cache hint for a plain `{"type": "ephemeral", "ttl"?}`; anything richer stays a field.
fn cache_hint(control: &CacheControl) -> Option<conv::CacheHint> {
    (control.kind == "ephemeral" && control.extra.is_empty()).then(|| conv::CacheHint {
        ttl: control.ttl.clone(),
    })
}

/// Where a source's bytes are, or the source back when the model has no form for it.
fn source_to_media(
    source: Source,
    document: bool,
    hints: &mut Map<String, Value>,
) -> Result<conv::Media, Source> {
    Ok(match source {
        Source::Base64(MediaSource {
            media_type,
            data,
            extra,
        }) => {
            conv::Extras::insert_object_hint(hints, "source", extra);
            if document && media_type.starts_with("text/") {
                hints.insert("source_type".into(), "base64".into());
            }
            conv::Media::Base64 {
                mime: media_type,
                data,
            }
        }
        Source::Text(MediaSource {
            media_type,
            data,
            extra,
        }) if document => {
            conv::Extras::insert_object_hint(hints, "source", extra);
            hints.insert("source_type".into(), "text".into());
            conv::Media::Base64 {
                mime: media_type,
                data: base64_encode(data.as_bytes()),
            }
        }
        Source::Url(UrlSource { url, extra }) => {
            conv::Extras::insert_object_hint(hints, "source", extra);
            conv::Media::Url { url }
        }
        Source::File(FileSource { file_id, extra }) => {
            conv::Extras::insert_object_hint(hints, "source", extra);
            conv::Media::FileId { id: file_id }
        }
        other => return Err(other),
    })
}

fn media_to_source(media: &conv::Media, document: bool, extra: &conv::Extras) -> Source {
    let source_extra = extra.hint_object(ANTHROPIC, "source");
    match media {
        conv::Media::Base64 { mime, data } => {
            let spelled = extra.hint_str(ANTHROPIC, "source_type");
            let as_text = document
                && match spelled {
                    Some(kind) => kind == "text",
                    None => mime.starts_with("text/"),
                };
            let text = as_text
                .then(|| base64_decode(data))
                .flatten()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            match text {
                Some(text) => Source::Text(MediaSource {
                    media_type: if spelled == Some("text") {
                        mime.clone()
                    } else {
                        "text/plain".to_owned()
                    },
                    data: text,
                    extra: source_extra,
                }),
                None => Source::Base64(MediaSource {
                    media_type: mime.clone(),
                    data: data.clone(),
                    extra: source_extra,
                }),
            }
        }
        conv::Media::Url { url } => Source::Url(UrlSource {
            url: url.clone(),
            extra: source_extra,
        }),
        conv::Media::FileId { id } => Source::File(FileSource {
            file_id: id.clone(),
            extra: source_extra,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Tools, tool choice, thinking, output config
// ---------------------------------------------------------------------------------------------

fn tool_to_conversation(tool: CustomTool) -> conv::Tool {
    let CustomTool {
        kind,
        name,
        description,
        input_schema,
        strict,
        cache_control,
        extra,
    } = tool;
    let mut fields = extra;
    let mut hints = Map::new();
    if let Some(kind) = kind {
        hints.insert("type".into(), kind.into());
    }
    if input_schema.is_none() {
        hints.insert("input_schema".into(), "absent".into());
    }
    insert_option(&mut fields, "cache_control", cache_control.as_ref());
    conv::Tool {
        name,
        description,
        parameters: input_schema.unwrap_or(Value::Null),
        strict,
        kind: conv::ToolKind::Function,
        extra: conv::Extras::new(ANTHROPIC, fields, hints),
    }
}

/// A custom tool; a tool without a schema (or an OpenAI custom tool) takes any object.
fn tool_from_conversation(tool: &conv::Tool) -> Tool {
    let extra = &tool.extra;
    let mut fields = extra.fields_of(ANTHROPIC);
    let input_schema = if !tool.parameters.is_null() {
        Some(tool.parameters.clone())
    } else if extra.hint_str(ANTHROPIC, "input_schema") == Some("absent") {
        None
    } else {
        Some(json!({"type": "object", "properties": {}}))
    };
    Tool::Custom(CustomTool {
        kind: extra.hint_str(ANTHROPIC, "type").map(str::to_owned),
        name: tool.name.clone(),
        description: tool.description.clone(),
        input_schema,
        strict: tool.strict,
        cache_control: take_typed(&mut fields, "cache_control"),
        extra: fields,
    })
}

/// The neutral choice and `parallel_tool_calls`; an unknown type says nothing.
fn tool_choice_to_conversation(
    choice: &ToolChoice,
) -> Result<(Option<conv::ToolChoice>, Option<bool>), GatewayError> {
    let parallel = choice.disable_parallel_tool_use.map(|disable| !disable);
    let neutral =
        match choice.kind.as_str() {
            "auto" => conv::ToolChoice::Auto,
            "any" => conv::ToolChoice::Required,
            "none" => conv::ToolChoice::None,
            "tool" => conv::ToolChoice::Tool(choice.name.clone().ok_or_else(|| {
                invalid("tool_choice of type tool without name", "tool_choice.name")
            })?),
            _ => return Ok((None, None)),
        };
    Ok((Some(neutral), parallel))
}

fn tool_choice_from_conversation(
    choice: Option<&conv::ToolChoice>,
    parallel: Option<bool>,
) -> Option<ToolChoice> {
    let mut disable = parallel.map(|p| !p);
    let (kind, name) = match choice {
        None if disable.is_some() => ("auto", None),
        None => return None,
        Some(conv::ToolChoice::Auto) => ("auto", None),
        Some(conv::ToolChoice::Required) => ("any", None),
        Some(conv::ToolChoice::None) => {
            disable = None;
            ("none", None)
        }
        Some(conv::ToolChoice::Tool(name)) => ("tool", Some(name.clone())),
        // The tool list itself is cut down to the allowed tools.
        Some(conv::ToolChoice::Allowed { tools, required }) => match (tools.as_slice(), required) {
            ([only], true) => ("tool", Some(only.clone())),
            (_, true) => ("any", None),
            (_, false) => ("auto", None),
        },
    };
    Some(ToolChoice {
        kind: kind.to_owned(),
        name,
        disable_parallel_tool_use: disable,
        extra: Extra::new(),
    })
}

fn thinking_to_conversation(
    thinking: &ThinkingConfig,
) -> (Option<conv::ReasoningMode>, Option<u32>) {
    let mode = match thinking.kind.as_str() {
        "enabled" => conv::ReasoningMode::Enabled,
        "adaptive" => conv::ReasoningMode::Adaptive,
        "disabled" => conv::ReasoningMode::Disabled,
        _ => return (None, None),
    };
    (Some(mode), thinking.budget_tokens)
}

/// `thinking` from the neutral settings: the mode when there is one, else a budget (0 turns
/// thinking off) or effort `none`.
fn thinking_from_conversation(reasoning: Option<&conv::Reasoning>) -> Option<ThinkingConfig> {
    let reasoning = reasoning?;
    let (kind, budget) = match reasoning.mode {
        Some(conv::ReasoningMode::Enabled) => ("enabled", reasoning.budget_tokens),
        Some(conv::ReasoningMode::Adaptive) => ("adaptive", None),
        Some(conv::ReasoningMode::Disabled) => ("disabled", None),
        None => match (reasoning.budget_tokens, reasoning.effort) {
            (Some(0), _) | (None, Some(conv::Effort::None)) => ("disabled", None),
            (Some(budget), _) => ("enabled", Some(budget)),
            (None, _) => return None,
        },
    };
    Some(ThinkingConfig {
        kind: kind.to_owned(),
        budget_tokens: budget,
        display: None,
        extra: Extra::new(),
    })
}

fn output_config_to_conversation(
    config: &OutputConfig,
) -> (Option<conv::Effort>, Option<conv::ResponseFormat>) {
    let effort = match config.effort.as_deref() {
        Some("low") => Some(conv::Effort::Low),
        Some("medium") => Some(conv::Effort::Medium),
        Some("high") => Some(conv::Effort::High),
        Some("xhigh" | "max") => Some(conv::Effort::Xhigh),
        _ => None,
    };
    let format = config
        .format
        .as_ref()
        .filter(|f| f["type"] == "json_schema")
        .map(|f| conv::ResponseFormat::JsonSchema {
            name: "output".to_owned(),
            description: None,
            schema: f.get("schema").cloned().unwrap_or(Value::Null),
            strict: None,
        });
    (effort, format)
}

fn output_config_from_conversation(
    effort: Option<conv::Effort>,
    format: Option<&conv::ResponseFormat>,
) -> Option<OutputConfig> {
    let effort = effort.and_then(|effort| {
        Some(
            match effort {
                conv::Effort::None => return None,
                conv::Effort::Minimal | conv::Effort::Low => "low",
                conv::Effort::Medium => "medium",
                conv::Effort::High => "high",
                conv::Effort::Xhigh => "xhigh",
            }
            .to_owned(),
        )
    });
    let format = match format {
        Some(conv::ResponseFormat::JsonSchema { schema, .. }) => {
            Some(json!({"type": "json_schema", "schema": schema}))
        }
        _ => None,
    };
    (effort.is_some() || format.is_some()).then(|| OutputConfig {
        effort,
        format,
        extra: Extra::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

/// Decode a whole message. Anthropic has no creation time: `created` is 0.
pub fn response_to_conversation(message: MessagesResponse) -> conv::Response {
    let MessagesResponse {
        id,
        kind,
        role: _,
        content,
        model,
        stop_reason,
        stop_sequence,
        usage,
        extra,
    } = message;
    let mut hints = Map::new();
    if kind != "message" {
        hints.insert("type".into(), kind.into());
    }
    let mut calls = Vec::new();
    let parts = blocks_to_parts(content, &mut calls, &mut hints, "blocks");
    let finish = stop_reason
        .as_ref()
        .map(|reason| finish_to_conversation(reason, stop_sequence.clone()));
    let again = stop_of(finish.as_ref(), has_calls(&parts));
    conv::Extras::keep_if_lossy(&mut hints, "stop", &(stop_reason, stop_sequence), &again);
    conv::Response {
        id,
        model,
        created: 0,
        parts,
        finish,
        usage: Some(usage.to_conversation()),
        extra: conv::Extras::new(ANTHROPIC, extra, hints),
    }
}

/// Encode a whole message for a client that asked for `model`. Tool calls without an id get
/// one (`toolu_<response id>_<n>`): Anthropic clients answer each call by its id.
pub fn response_from_conversation(response: &conv::Response, model: &str) -> MessagesResponse {
    let extra = &response.extra;
    let parts: Vec<&conv::Part> = response.parts.iter().collect();
    let mut content = parts_to_blocks(&parts, extra.hint(ANTHROPIC, "blocks"), Place::Response);
    let mut number = 0;
    for block in &mut content {
        if let ContentBlock::ToolUse(call) = block {
            if call.id.is_empty() {
                call.id = call_id(&response.id, number);
            }
            number += 1;
        }
    }
    type Stop = (Option<StopReason>, Option<String>);
    let (stop_reason, stop_sequence) = extra
        .kept(ANTHROPIC, "stop", &response.finish, |raw: &Stop| {
            Some(
                raw.0
                    .as_ref()
                    .map(|reason| finish_to_conversation(reason, raw.1.clone())),
            )
        })
        .unwrap_or_else(|| stop_of(response.finish.as_ref(), has_calls(&response.parts)));
    MessagesResponse {
        id: response.id.clone(),
        kind: extra
            .hint_str(ANTHROPIC, "type")
            .unwrap_or("message")
            .to_owned(),
        role: Role::Assistant,
        content,
        model: model.to_owned(),
        stop_reason,
        stop_sequence,
        usage: response
            .usage
            .as_ref()
            .map(Usage::from_conversation)
            .unwrap_or_default(),
        extra: extra.fields_of(ANTHROPIC),
    }
}

fn call_id(response_id: &str, number: usize) -> String {
    let suffix = response_id.strip_prefix("msg_").unwrap_or(response_id);
    format!("toolu_{suffix}_{number}")
}

fn finish_to_conversation(reason: &StopReason, sequence: Option<String>) -> conv::FinishReason {
    match reason {
        StopReason::EndTurn => conv::FinishReason::Stop,
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => {
            conv::FinishReason::Length
        }
        StopReason::StopSequence => conv::FinishReason::StopSequence(sequence),
        StopReason::ToolUse => conv::FinishReason::ToolUse,
        StopReason::Refusal => conv::FinishReason::ContentFilter,
        StopReason::PauseTurn => conv::FinishReason::Other("pause_turn".to_owned()),
        StopReason::Other(name) => conv::FinishReason::Other(name.clone()),
    }
}

/// Anthropic's stop reason and sequence. Clients run tools when the reason is `tool_use`, so a
/// turn with tool calls that ended naturally says `tool_use`, and one without calls never does.
fn stop_of(
    reason: Option<&conv::FinishReason>,
    tool_calls: bool,
) -> (Option<StopReason>, Option<String>) {
    let natural = if tool_calls {
        StopReason::ToolUse
    } else {
        StopReason::EndTurn
    };
    let Some(reason) = reason else {
        return (None, None);
    };
    let stop = match reason {
        conv::FinishReason::StopSequence(sequence) => {
            return (Some(StopReason::StopSequence), sequence.clone());
        }
        conv::FinishReason::Length => StopReason::MaxTokens,
        conv::FinishReason::ContentFilter => StopReason::Refusal,
        conv::FinishReason::Other(name) => match StopReason::from(name.clone()) {
            known @ (StopReason::PauseTurn
            | StopReason::Refusal
            | StopReason::ModelContextWindowExceeded) => known,
            _ => natural,
        },
        conv::FinishReason::Stop | conv::FinishReason::ToolUse => natural,
    };
    (Some(stop), None)
}

/// Anthropic usage: the original object is kept when Anthropic's plain form of the counts would
/// differ from it.
impl WireUsage for Usage {
    const PROTOCOL: conv::Protocol = ANTHROPIC;

    fn counts(&self) -> conv::Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        conv::Usage {
            input_tokens: self.input_tokens.saturating_add(read).saturating_add(write),
            output_tokens: self.output_tokens,
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
            cache_read_tokens: read,
            cache_write_tokens: write,
            extra: conv::Extras::default(),
        }
    }

    /// Anthropic usage from neutral counts: both cache counts present, thinking tokens when known.
    fn from_counts(usage: &conv::Usage) -> Self {
        Usage {
            input_tokens: usage
                .input_tokens
                .saturating_sub(usage.cache_read_tokens)
                .saturating_sub(usage.cache_write_tokens),
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: Some(usage.cache_write_tokens),
            cache_read_input_tokens: Some(usage.cache_read_tokens),
            output_tokens_details: (usage.reasoning_tokens > 0).then(|| OutputTokensDetails {
                thinking_tokens: Some(usage.reasoning_tokens),
                extra: Extra::new(),
            }),
            extra: Extra::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// What kind of Anthropic block a stream block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    RedactedThinking,
    ToolUse,
}

/// Turns a response's [`Event`](conv::Event)s into Anthropic SSE events, with the semantics
/// Claude Code and the SDKs rely on: `message_start` first (the skeleton, with input usage when
/// the upstream reported it before any content), then blocks one at a time, numbered 0, 1, ...
/// whatever the neutral indices (`content_block_start`, deltas, `content_block_stop`; a block
/// ends when the next starts), then `message_delta` with the stop reason and the final usage,
/// and `message_stop`. Refusals are text blocks; a signature for an unknown block opens a
/// thinking block (Anthropic's `omitted` display); signatures on text or tool calls, or on a
/// thinking block that already ended, have no Anthropic form and are dropped. The stop reason waits for [`finish`](StreamEncoder::finish),
/// since usage may follow the finish. Id and model come from the constructor.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    done: bool,
    /// (neutral index, kind); the position is the Anthropic index.
    blocks: Vec<(u32, Block)>,
    /// The position of the open block.
    open: Option<usize>,
    calls: usize,
    usage: Option<conv::Usage>,
    finish: Option<conv::FinishReason>,
}

impl StreamEncoder {
    /// An encoder for the message `id` (`msg_...`) for a client that asked for `model`.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            started: false,
            done: false,
            blocks: Vec::new(),
            open: None,
            calls: 0,
            usage: None,
            finish: None,
        }
    }

    /// A `ping` event, for keep-alives while the upstream is silent.
    pub fn ping() -> sse::Event {
        named("ping", r#"{"type":"ping"}"#.to_owned())
    }

    /// The SSE events for one event (often none or one). A delta for a block of another kind,
    /// or for a block that already ended, is an `UpstreamProtocol` error.
    pub fn push(&mut self, event: conv::Event) -> Result<Vec<sse::Event>, GatewayError> {
        let mut out = Vec::new();
        match event {
            conv::Event::Start { .. } => {}
            conv::Event::Usage(usage) => self.usage = Some(usage),
            conv::Event::TextDelta { index, text } | conv::Event::RefusalDelta { index, text } => {
                if text.is_empty() && !self.knows(index) {
                    return Ok(out);
                }
                let at = self.enter(index, Block::Text, &mut out)?;
                if !text.is_empty() {
                    self.delta(
                        at,
                        BlockDelta::Text(TextDelta {
                            text,
                            extra: Extra::new(),
                        }),
                        &mut out,
                    )?;
                }
            }
            conv::Event::ThinkingDelta { index, text } => {
                if text.is_empty() && !self.knows(index) {
                    return Ok(out);
                }
                let at = self.enter(index, Block::Thinking, &mut out)?;
                if !text.is_empty() {
                    let delta = BlockDelta::Thinking(ThinkingDelta {
                        thinking: text,
                        extra: Extra::new(),
                    });
                    self.delta(at, delta, &mut out)?;
                }
            }
            conv::Event::Signature { index, signature } => {
                // A signature for a text or tool call block, or for a thinking block that
                // already ended, has no Anthropic form: dropped rather than failing the stream.
                let open = self
                    .open
                    .and_then(|at| self.blocks.get(at))
                    .map(|(i, _)| *i);
                let fits = match self.kind_of(index) {
                    None => true,
                    Some(kind) => kind == Block::Thinking && open == Some(index),
                };
                if fits {
                    let at = self.enter(index, Block::Thinking, &mut out)?;
                    let delta = BlockDelta::Signature(SignatureDelta {
                        signature,
                        extra: Extra::new(),
                    });
                    self.delta(at, delta, &mut out)?;
                }
            }
            conv::Event::RedactedThinking { index, data } => {
                let block = ContentBlock::RedactedThinking(RedactedThinkingBlock {
                    data,
                    extra: Extra::new(),
                });
                self.open_block(index, Block::RedactedThinking, block, &mut out)?;
            }
            conv::Event::ToolCallStart { index, id, name } => {
                let id = if id.is_empty() {
                    call_id(&self.id, self.calls)
                } else {
                    id
                };
                self.calls += 1;
                let block = ContentBlock::ToolUse(ToolUseBlock {
                    id,
                    name,
                    input: Value::Object(Map::new()),
                    cache_control: None,
                    extra: Extra::new(),
                });
                self.open_block(index, Block::ToolUse, block, &mut out)?;
            }
            conv::Event::ToolCallDelta { index, arguments } => {
                if self.kind_of(index) != Some(Block::ToolUse) {
                    return Err(protocol(format!(
                        "tool call arguments for content block {index}, which started no tool call"
                    )));
                }
                let at = self.enter(index, Block::ToolUse, &mut out)?;
                if !arguments.is_empty() {
                    let delta = BlockDelta::InputJson(InputJsonDelta {
                        partial_json: arguments,
                        extra: Extra::new(),
                    });
                    self.delta(at, delta, &mut out)?;
                }
            }
            conv::Event::BlockEnd { index } => {
                if let Some(at) = self.open
                    && self
                        .blocks
                        .get(at)
                        .is_some_and(|(neutral, _)| *neutral == index)
                {
                    self.close(&mut out)?;
                }
            }
            conv::Event::Finish { reason } => {
                self.close(&mut out)?;
                if self.finish.is_none() {
                    self.finish = Some(reason);
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: `message_delta` with the stop reason and usage (zero counts when the
    /// upstream sent none), then `message_stop`. A stream that never finished is a `Truncated`
    /// error, never a made-up stop reason.
    pub fn finish(&mut self) -> Result<Vec<sse::Event>, GatewayError> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let Some(reason) = self.finish.clone() else {
            return Err(unfinished());
        };
        self.close(&mut out)?;
        self.start(&mut out)?;
        let calls = self.blocks.iter().any(|(_, kind)| *kind == Block::ToolUse);
        let (stop_reason, stop_sequence) = stop_of(Some(&reason), calls);
        let usage = self
            .usage
            .as_ref()
            .map(Usage::from_conversation)
            .unwrap_or_else(|| Usage::from_counts(&conv::Usage::default()));
        let event = StreamEvent::MessageDelta(MessageDeltaEvent {
            delta: MessageDelta {
                stop_reason,
                stop_sequence,
                extra: Extra::new(),
            },
            usage: Some(DeltaUsage::from(usage)),
            extra: Extra::new(),
        });
        out.push(encode(&event)?);
        out.push(encode(&StreamEvent::MessageStop(Marker::default()))?);
        self.done = true;
        Ok(out)
    }

    fn knows(&self, index: u32) -> bool {
        self.kind_of(index).is_some()
    }

    fn kind_of(&self, index: u32) -> Option<Block> {
        self.blocks
            .iter()
            .find(|(neutral, _)| *neutral == index)
            .map(|(_, kind)| *kind)
    }

    /// The Anthropic index of block `index`, started as `kind` when new; the block must be of
    /// `kind` and still open.
    fn enter(
        &mut self,
        index: u32,
        kind: Block,
        out: &mut Vec<sse::Event>,
    ) -> Result<u32, GatewayError> {
        match self
            .blocks
            .iter()
            .position(|(neutral, _)| *neutral == index)
        {
            Some(at) => {
                if self.blocks.get(at).map(|(_, k)| *k) != Some(kind) {
                    return Err(conv::mismatch(index));
                }
                if self.open != Some(at) {
                    return Err(protocol(format!(
                        "stream event for content block {index} after it ended"
                    )));
                }
                anthropic_index(at)
            }
            None => {
                let block = match kind {
                    Block::Thinking => ContentBlock::Thinking(ThinkingBlock {
                        thinking: String::new(),
                        signature: Some(String::new()),
                        extra: Extra::new(),
                    }),
                    _ => ContentBlock::Text(TextBlock::new("")),
                };
                self.open_block(index, kind, block, out)
            }
        }
    }

    /// Start a new block: the open one ends first.
    fn open_block(
        &mut self,
        index: u32,
        kind: Block,
        block: ContentBlock,
        out: &mut Vec<sse::Event>,
    ) -> Result<u32, GatewayError> {
        if self.knows(index) {
            return Err(conv::mismatch(index));
        }
        self.start(out)?;
        self.close(out)?;
        let at = self.blocks.len();
        let anthropic = anthropic_index(at)?;
        self.blocks.push((index, kind));
        self.open = Some(at);
        let event = StreamEvent::ContentBlockStart(ContentBlockStart {
            index: anthropic,
            content_block: block,
            extra: Extra::new(),
        });
        out.push(encode(&event)?);
        Ok(anthropic)
    }

    fn delta(
        &self,
        index: u32,
        delta: BlockDelta,
        out: &mut Vec<sse::Event>,
    ) -> Result<(), GatewayError> {
        let event = StreamEvent::ContentBlockDelta(ContentBlockDelta {
            index,
            delta,
            extra: Extra::new(),
        });
        out.push(encode(&event)?);
        Ok(())
    }

    fn close(&mut self, out: &mut Vec<sse::Event>) -> Result<(), GatewayError> {
        if let Some(at) = self.open.take() {
            let event = StreamEvent::ContentBlockStop(ContentBlockStop {
                index: anthropic_index(at)?,
                extra: Extra::new(),
            });
            out.push(encode(&event)?);
        }
        Ok(())
    }

    /// `message_start`, once, before anything else.
    fn start(&mut self, out: &mut Vec<sse::Event>) -> Result<(), GatewayError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        // Counts the upstream has not reported yet are zero; `message_delta` has them all.
        let mut usage = self
            .usage
            .as_ref()
            .map(Usage::from_conversation)
            .unwrap_or_default();
        // Output is counted at the end.
        usage.output_tokens = 0;
        usage.output_tokens_details = None;
        let event = StreamEvent::MessageStart(MessageStart {
            message: MessagesResponse {
                id: self.id.clone(),
                kind: "message".to_owned(),
                role: Role::Assistant,
                content: Vec::new(),
                model: self.model.clone(),
                stop_reason: None,
                stop_sequence: None,
                usage,
                extra: Extra::new(),
            },
            extra: Extra::new(),
        });
        out.push(encode(&event)?);
        Ok(())
    }
}

fn anthropic_index(position: usize) -> Result<u32, GatewayError> {
    u32::try_from(position).map_err(|_| protocol("too many content blocks".to_owned()))
}

/// Turns an upstream's Anthropic SSE events into [`Event`](conv::Event)s, for Anthropic
/// upstreams serving other protocols.
///
/// `message_start` gives [`Start`](conv::Event::Start) and the input usage; each text,
/// thinking, redacted thinking and tool use block is one neutral block, numbered 0, 1, ... in
/// the order they start. Blocks without a neutral form (`server_tool_use`, web search results,
/// ...) and citations are skipped. `message_delta` gives one [`Usage`](conv::Event::Usage)
/// (its counts merged over those of `message_start`) and then the
/// [`Finish`](conv::Event::Finish). `ping` is ignored; an `error` event is returned as the error
/// it names (status from its `type`, e.g. 529 for `overloaded_error`).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    finished: bool,
    done: bool,
    usage: Option<Usage>,
    /// Anthropic index -> neutral index (`None` for a skipped block).
    blocks: HashMap<u32, Option<u32>>,
    next: u32,
}

impl StreamDecoder {
    /// A decoder for one response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of one SSE event. Malformed JSON, or a delta for a block that never
    /// started, is an `UpstreamProtocol` error; an `error` event is the upstream's error.
    pub fn push(&mut self, event: &sse::Event) -> Result<Vec<conv::Event>, GatewayError> {
        let mut out = Vec::new();
        if self.done || event.event.as_deref() == Some("ping") {
            return Ok(out);
        }
        let parsed: StreamEvent = serde_json::from_str(&event.data).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("malformed event from the upstream: {e}"),
            )
        })?;
        let whole = || serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null);
        match parsed {
            StreamEvent::Error(error) => {
                return Err(dialect::error_in_body(&error.error, &whole()));
            }
            StreamEvent::Other(map) if event.event.as_deref() == Some("error") => {
                let error = map.get("error").cloned().unwrap_or(Value::Null);
                return Err(dialect::error_in_body(&error, &whole()));
            }
            StreamEvent::MessageStart(MessageStart { message, .. }) => {
                out.push(conv::Event::Start {
                    id: message.id,
                    model: message.model,
                });
                self.usage = Some(message.usage);
            }
            StreamEvent::ContentBlockStart(ContentBlockStart {
                index,
                content_block,
                ..
            }) => self.start_block(index, content_block, &mut out),
            StreamEvent::ContentBlockDelta(ContentBlockDelta { index, delta, .. }) => {
                let Some(neutral) = self.neutral(index)? else {
                    return Ok(out);
                };
                let index = neutral;
                match delta {
                    BlockDelta::Text(TextDelta { text, .. }) => {
                        out.push(conv::Event::TextDelta { index, text });
                    }
                    BlockDelta::Thinking(ThinkingDelta { thinking, .. }) => {
                        out.push(conv::Event::ThinkingDelta {
                            index,
                            text: thinking,
                        });
                    }
                    BlockDelta::Signature(SignatureDelta { signature, .. }) => {
                        out.push(conv::Event::Signature { index, signature });
                    }
                    BlockDelta::InputJson(InputJsonDelta { partial_json, .. }) => {
                        if !partial_json.is_empty() {
                            out.push(conv::Event::ToolCallDelta {
                                index,
                                arguments: partial_json,
                            });
                        }
                    }
                    BlockDelta::Citations(_) | BlockDelta::Other(_) => {}
                }
            }
            StreamEvent::ContentBlockStop(ContentBlockStop { index, .. }) => {
                if let Some(index) = self.neutral(index)? {
                    out.push(conv::Event::BlockEnd { index });
                }
            }
            StreamEvent::MessageDelta(MessageDeltaEvent { delta, usage, .. }) => {
                if let Some(delta_usage) = usage {
                    let mut merged = self.usage.take().unwrap_or_default();
                    delta_usage.apply_to(&mut merged);
                    out.push(conv::Event::Usage(merged.to_conversation()));
                    self.usage = Some(merged);
                }
                if let Some(reason) = delta.stop_reason
                    && !self.finished
                {
                    self.finished = true;
                    out.push(conv::Event::Finish {
                        reason: finish_to_conversation(&reason, delta.stop_sequence),
                    });
                }
            }
            StreamEvent::MessageStop(_) => self.done = true,
            StreamEvent::Ping(_) | StreamEvent::Other(_) => {}
        }
        Ok(out)
    }

    /// The upstream stream ended. A stream without a stop reason is a `Truncated` error.
    pub fn finish(&mut self) -> Result<Vec<conv::Event>, GatewayError> {
        if !self.finished {
            return Err(upstream_unfinished());
        }
        Ok(Vec::new())
    }

    fn start_block(&mut self, index: u32, block: ContentBlock, out: &mut Vec<conv::Event>) {
        let neutral = self.next;
        let known = matches!(
            block,
            ContentBlock::Text(_)
                | ContentBlock::Thinking(_)
                | ContentBlock::RedactedThinking(_)
                | ContentBlock::ToolUse(_)
        );
        self.blocks.insert(index, known.then_some(neutral));
        if !known {
            return;
        }
        self.next = self.next.saturating_add(1);
        let index = neutral;
        match block {
            ContentBlock::Text(TextBlock { text, .. }) if !text.is_empty() => {
                out.push(conv::Event::TextDelta { index, text });
            }
            ContentBlock::Thinking(ThinkingBlock {
                thinking,
                signature,
                ..
            }) => {
                if !thinking.is_empty() {
                    out.push(conv::Event::ThinkingDelta {
                        index,
                        text: thinking,
                    });
                }
                if let Some(signature) = signature.filter(|s| !s.is_empty()) {
                    out.push(conv::Event::Signature { index, signature });
                }
            }
            ContentBlock::RedactedThinking(RedactedThinkingBlock { data, .. }) => {
                out.push(conv::Event::RedactedThinking { index, data });
            }
            ContentBlock::ToolUse(ToolUseBlock {
                id, name, input, ..
            }) => {
                out.push(conv::Event::ToolCallStart { index, id, name });
                let empty = input.is_null() || input.as_object().is_some_and(Map::is_empty);
                if !empty {
                    out.push(conv::Event::ToolCallDelta {
                        index,
                        arguments: input.to_string(),
                    });
                }
            }
            _ => {}
        }
    }

    /// The neutral index of Anthropic block `index`: `None` when skipped.
    fn neutral(&self, index: u32) -> Result<Option<u32>, GatewayError> {
        self.blocks.get(&index).copied().ok_or_else(|| {
            protocol(format!(
                "stream event for content block {index}, which never started"
            ))
        })
    }
}

/// One SSE event: `event: <type>` and the JSON.
fn encode(event: &StreamEvent) -> Result<sse::Event, GatewayError> {
    let data = serde_json::to_string(event)
        .map_err(|e| GatewayError::internal(format!("cannot encode a stream event: {e}")))?;
    Ok(named(event.name().unwrap_or("message"), data))
}

fn named(name: &str, data: String) -> sse::Event {
    sse::Event {
        event: Some(name.to_owned()),
        data,
        id: None,
        retry: None,
    }
}

fn protocol(message: String) -> GatewayError {
    GatewayError::new(ErrorKind::UpstreamProtocol, message)
}

// ---------------------------------------------------------------------------------------------
// Base64, for plain-text documents
// ---------------------------------------------------------------------------------------------

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let sextet = usize::try_from((n >> shift) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET.get(sextet).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` for anything else.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (number, chunk) in bytes.chunks(4).enumerate() {
        let last = number + 1 == chunks;
        let padding = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &byte in chunk.get(..4 - padding)? {
            let value = ALPHABET.iter().position(|&a| a == byte)?;
            n = (n << 6) | u32::try_from(value).ok()?;
        }
        n <<= 6 * u32::try_from(padding).ok()?;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(decoded.get(..3 - padding)?);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Unknown fields
// ---------------------------------------------------------------------------------------------

fn insert_typed<T: Serialize>(fields: &mut Extra, key: &str, value: &T) {
    if let Ok(value) = serde_json::to_value(value) {
        fields.insert(key.to_owned(), value);
    }
}

fn insert_option<T: Serialize>(fields: &mut Extra, key: &str, value: Option<&T>) {
    if let Some(value) = value {
        insert_typed(fields, key, value);
    }
}
