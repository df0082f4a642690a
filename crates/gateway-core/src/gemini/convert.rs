//! Gemini `generateContent` to and from the neutral [`conversation`](crate::conversation):
//! requests and whole responses (streams are in [`stream`](super::StreamEncoder)).
//!
//! Why here: Gemini is one dialect among several; this module is the only place that knows how
//! Gemini spells things, and the model in the middle keeps what the others need (tool call ids,
//! signatures on the parts they came with, tool results paired with their calls).
//!
//! Exactness: a request or response decoded from Gemini and encoded back is the same JSON value
//! (modulo the snake_case spellings the wire types accept, which come back camelCase). Unknown
//! fields ride in [`Extras::fields`](conv::Extras); where the model cannot say what Gemini said,
//! the decoder writes it into [`Extras::hints`](conv::Extras) and the encoder follows it while
//! the model still says the same thing. Hint keys (all tagged
//! [`Protocol::Gemini`](conv::Protocol)):
//! - request: `system_instruction` (`{"fields", "hints"}` of the instruction's content, e.g. its
//!   `role`), `tools` (the layout of the `tools` entries: `[declarations or null, built-in
//!   tool fields]` each), `tool_config`, `thinking_config` and `response_format` (the originals,
//!   used while the model still says the same), `generation_config` (its unknown fields, `{}`
//!   for an empty object), `numbers` (floats sent as integers and back), `stop` (`"empty"`);
//!   `safetySettings` rides in the fields;
//! - message (content): `role` (`"function"`, or `null` when absent), `parts` (`false` when
//!   absent), `opaque_parts` (`[position, part]` for `executableCode`, `codeExecutionResult` and
//!   parts with no data the model knows, put back where they stood);
//! - part: `thought` (when it differs from the default: `true` on thinking, absent elsewhere;
//!   `null` for absent), `text` (`false`: a signature-only part), `thought_signature` (on parts
//!   whose neutral form has no signature), `inline_data` / `file_data` / `function_call` /
//!   `function_response` (unknown fields of the inner object), `mime_type` (of `fileData`;
//!   `null` when absent), `id` (`false`: not sent, generated or matched), `args` (`false`: not
//!   sent), `response` (the original `functionResponse.response` when it is not the plain
//!   `{"output": text}` / `{"error": text}`), `parts` (media results the model cannot hold);
//! - tool: `schema` (`"parameters"` when the schema came as `parameters`, not
//!   `parametersJsonSchema`), `parameters` (when both came);
//! - response: `candidates` (`"absent"` / `"empty"`), `candidate` (the candidate's other fields
//!   when they are not `{"index": 0}`), `content` (`null`: no content), `role`, `parts`,
//!   `content_fields`, `opaque_parts`, `finish_reason` (the original when the neutral reason maps
//!   back to another), `more_candidates`, `prompt_feedback`, `model_version` (`false`: absent);
//!   usage: `usage` (the original `usageMetadata` when its plain form would differ).
//!
//! Tool call ids: Gemini often sends calls and responses without ids and pairs them by name
//! and order; Gemini CLI gives ids to its responses only. Other protocols pair by id, so a
//! request's results are paired with their calls (by id, else with the oldest unanswered call
//! of the same name, which takes the result's id) and what still has no id gets
//! `call_gemini_<n>` (hint `id: false`: not written back). Responses keep an absent id empty,
//! as the conversation's events do.
//!
//! Encoding a conversation that came from another protocol uses Gemini's plain spellings: system
//! and developer messages go to `systemInstruction`, tool schemas to `parametersJsonSchema`,
//! tool results to `{"output": text}` (`{"error": text}` when they failed) with the name of their
//! call, consecutive tool-result messages to one `user` turn (Gemini wants all responses to a
//! turn's calls together), thinking settings to `thinkingBudget` (a budget, 0 when off, -1 when
//! adaptive) or else `thinkingLevel`. What Gemini cannot carry (redacted thinking, cache hints,
//! `parallel_tool_calls`, `user`, custom tool formats) is left out. Signatures are written as
//! they are: the conversation does not say which provider signed them.

use std::collections::HashMap;

use serde_json::{Map, Number, Value, json};

use super::{
    Blob, Candidate, Content, Extra, FileData, FunctionCall, FunctionCallingConfig,
    FunctionDeclaration, FunctionResponse, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, Part, PromptFeedback, SafetySetting, ThinkingConfig, Tool, ToolConfig,
    UsageMetadata,
};
use crate::{
    GatewayError, conversation as conv,
    wire::{WireUsage, has_calls, invalid, json_of, take_typed},
};

const GEMINI: conv::Protocol = conv::Protocol::Gemini;

/// The name a JSON-schema response format gets: Gemini's has none.
const FORMAT_NAME: &str = "response";

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decode a Gemini request into the neutral model. `model` and `stream` come from the URL
/// (`models/{model}:generateContent` or `:streamGenerateContent`); a `models/` prefix is
/// dropped. A stream always reports usage (Gemini sends `usageMetadata` on its chunks).
///
/// Refused with a 400 naming the field: `cachedContent` (a Google-side cache another backend
/// cannot read), `candidateCount` above 1, a role other than `user`, `model` or `function`, a
/// part with two data fields, a function call or response without a name, a `topK` that is no
/// whole number, a `thinkingBudget` below -1.
pub fn request_to_conversation(
    request: GenerateContentRequest,
    model: &str,
    stream: bool,
) -> Result<conv::Request, GatewayError> {
    let GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
        safety_settings,
        cached_content,
        labels,
        extra,
    } = request;
    if cached_content.is_some() {
        return Err(invalid(
            "cachedContent is not supported: the gateway may serve the request from a backend \
             that cannot read google's cache, so send the cached contents in the request",
            "cachedContent",
        ));
    }
    let mut fields = extra;
    let mut hints = Map::new();
    if let Some(settings) = safety_settings {
        fields.insert("safetySettings".into(), json_of(&settings));
    }

    let mut system = Vec::new();
    if let Some(content) = system_instruction {
        let decoded = content_to_parts(content, "systemInstruction", true)?;
        let mut content_hints = decoded.hints;
        if let Some(role) = decoded.role {
            content_hints.insert("role".into(), role.into());
        }
        if !content_hints.is_empty() || !decoded.fields.is_empty() || decoded.parts.is_empty() {
            hints.insert(
                "system_instruction".into(),
                json!({"fields": decoded.fields, "hints": content_hints}),
            );
        }
        system = decoded.parts;
    }

    let mut messages = contents
        .into_iter()
        .enumerate()
        .map(|(index, content)| message_to_conversation(index, content))
        .collect::<Result<Vec<_>, _>>()?;
    pair_calls(&mut messages);

    let tools = tools_to_conversation(tools, &mut hints);
    let tool_choice = tool_config.as_ref().and_then(tool_choice_to_conversation);
    let again = tool_choice.as_ref().map(tool_config_from_conversation);
    conv::Extras::keep_if_lossy(&mut hints, "tool_config", &tool_config, &again);

    let (generation, reasoning, response_format) =
        generation_to_conversation(generation_config, &mut hints)?;

    Ok(conv::Request {
        model: model.strip_prefix("models/").unwrap_or(model).to_owned(),
        system,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: None,
        generation,
        reasoning,
        response_format,
        stream,
        stream_usage: stream,
        user: None,
        metadata: labels,
        extra: conv::Extras::new(GEMINI, fields, hints),
    })
}

/// Encode a neutral request as Gemini. A request decoded from Gemini comes back as it was sent.
pub fn request_from_conversation(request: &conv::Request) -> GenerateContentRequest {
    let extra = &request.extra;
    let mut fields = extra.fields_of(GEMINI);
    let safety_settings = take_typed::<Vec<SafetySetting>>(&mut fields, "safetySettings");
    let names = call_names(request);

    let system_parts: Vec<&conv::Part> = request.system_parts().collect();
    let system_instruction = system_from_conversation(&system_parts, extra, &names);

    let mut contents: Vec<Content> = Vec::new();
    let mut merge = false;
    for message in &request.messages {
        if matches!(message.role, conv::Role::System | conv::Role::Developer) {
            continue;
        }
        let parts: Vec<&conv::Part> = message.parts.iter().collect();
        let content = content_from_parts(role_out(message), &parts, &message.extra, &names);
        // Foreign tool results, one message per result (OpenAI Chat), go into one turn.
        let results_only = message.role == conv::Role::Tool
            && message.extra.protocol != Some(GEMINI)
            && message
                .parts
                .iter()
                .all(|p| matches!(p, conv::Part::ToolResult { .. }));
        if results_only
            && merge
            && let Some(last) = contents.last_mut()
        {
            last.parts
                .get_or_insert_with(Vec::new)
                .extend(content.parts.unwrap_or_default());
            continue;
        }
        merge = results_only;
        contents.push(content);
    }

    let tool_config = extra
        .kept(
            GEMINI,
            "tool_config",
            &request.tool_choice,
            |raw: &Option<ToolConfig>| Some(raw.as_ref().and_then(tool_choice_to_conversation)),
        )
        .unwrap_or_else(|| {
            request
                .tool_choice
                .as_ref()
                .map(tool_config_from_conversation)
        });

    GenerateContentRequest {
        contents,
        system_instruction,
        tools: tools_from_conversation(&request.tools, extra),
        tool_config,
        generation_config: generation_from_conversation(request),
        safety_settings,
        cached_content: None,
        labels: request.metadata.clone(),
        extra: fields,
    }
}

fn message_to_conversation(index: usize, content: Content) -> Result<conv::Message, GatewayError> {
    let at = format!("contents[{index}]");
    let Decoded {
        role,
        parts,
        mut hints,
        fields,
    } = content_to_parts(content, &at, true)?;
    let results = !parts.is_empty()
        && parts
            .iter()
            .all(|p| matches!(p, conv::Part::ToolResult { .. }));
    let role = match role.as_deref() {
        Some("model") => conv::Role::Assistant,
        Some("user") if results => conv::Role::Tool,
        Some("user") => conv::Role::User,
        Some("function") => {
            hints.insert("role".into(), "function".into());
            conv::Role::Tool
        }
        None => {
            hints.insert("role".into(), Value::Null);
            if results {
                conv::Role::Tool
            } else {
                conv::Role::User
            }
        }
        Some(other) => {
            return Err(invalid(
                format!("unknown role {other:?}: a turn is from user or model"),
                format!("{at}.role"),
            ));
        }
    };
    Ok(conv::Message {
        role,
        parts,
        name: None,
        extra: conv::Extras::new(GEMINI, fields, hints),
    })
}

/// The role a message is written with: as the source spelled it, else `model` for the
/// assistant and `user` for everyone else.
fn role_out(message: &conv::Message) -> Option<String> {
    match message.extra.hint(GEMINI, "role") {
        Some(Value::String(role)) => Some(role.clone()),
        Some(Value::Null) => None,
        _ => Some(
            match message.role {
                conv::Role::Assistant => "model",
                _ => "user",
            }
            .to_owned(),
        ),
    }
}

fn system_from_conversation(
    parts: &[&conv::Part],
    extra: &conv::Extras,
    names: &HashMap<&str, &str>,
) -> Option<Content> {
    let kept = extra.hint(GEMINI, "system_instruction");
    if parts.is_empty() && kept.is_none() {
        return None;
    }
    let map = |key: &str| match kept.and_then(|k| k.get(key)) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let content_extra = conv::Extras::new(GEMINI, map("fields"), map("hints"));
    let role = content_extra.hint_str(GEMINI, "role").map(str::to_owned);
    Some(content_from_parts(role, parts, &content_extra, names))
}

/// The tool name of every call id in the conversation, for results that do not name theirs.
fn call_names(request: &conv::Request) -> HashMap<&str, &str> {
    request
        .messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            conv::Part::ToolCall { id, name, .. } if !id.is_empty() => {
                Some((id.as_str(), name.as_str()))
            }
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Contents and parts
// ---------------------------------------------------------------------------------------------

/// Pair tool results with their calls by id, as other protocols do. Gemini pairs them by
/// name and order and often sends no ids (Gemini CLI gives ids to its responses only): a result
/// takes the call with its id, else the oldest unanswered call of its name without an id (which
/// takes the result's id), and calls and results still without one get `call_gemini_<n>`. Ids
/// filled so carry the hint `id: false` from decoding and are not written back.
fn pair_calls(messages: &mut [conv::Message]) {
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut generated = 0usize;
    let mut fresh = || {
        generated += 1;
        format!("call_gemini_{}", generated - 1)
    };
    for m in 0..messages.len() {
        for p in 0..messages[m].parts.len() {
            let (id, name) = match &messages[m].parts[p] {
                conv::Part::ToolCall { .. } => {
                    pending.push((m, p));
                    continue;
                }
                conv::Part::ToolResult { id, name, .. } => (id.clone(), name.clone()),
                _ => continue,
            };
            let call = |&(cm, cp): &(usize, usize)| match messages
                .get(cm)
                .and_then(|c| c.parts.get(cp))
            {
                Some(conv::Part::ToolCall { id, name, .. }) => Some((id.as_str(), name.as_str())),
                _ => None,
            };
            let name = name.as_deref().unwrap_or_default();
            let found = if id.is_empty() {
                pending
                    .iter()
                    .position(|at| call(at).is_some_and(|(_, n)| n == name))
            } else {
                pending
                    .iter()
                    .position(|at| call(at).is_some_and(|(i, _)| i == id))
                    .or_else(|| {
                        pending
                            .iter()
                            .position(|at| call(at).is_some_and(|(i, n)| i.is_empty() && n == name))
                    })
            };
            let Some(found) = found else {
                continue;
            };
            let (cm, cp) = pending.remove(found);
            let call_id = call(&(cm, cp))
                .map(|(i, _)| i.to_owned())
                .unwrap_or_default();
            let paired = match (id.is_empty(), call_id.is_empty()) {
                (false, _) => id,
                (true, false) => call_id,
                (true, true) => fresh(),
            };
            if let Some(conv::Part::ToolCall { id, .. }) =
                messages.get_mut(cm).and_then(|c| c.parts.get_mut(cp))
                && id.is_empty()
            {
                id.clone_from(&paired);
            }
            if let Some(conv::Part::ToolResult { id, .. }) = messages[m].parts.get_mut(p)
                && id.is_empty()
            {
                *id = paired;
            }
        }
    }
    for (cm, cp) in pending {
        if let Some(conv::Part::ToolCall { id, .. }) =
            messages.get_mut(cm).and_then(|c| c.parts.get_mut(cp))
            && id.is_empty()
        {
            *id = fresh();
        }
    }
}

/// A content's parts in the neutral form, with what the model does not hold.
struct Decoded {
    role: Option<String>,
    parts: Vec<conv::Part>,
    hints: Map<String, Value>,
    fields: Extra,
}

/// `strict` (a request): a malformed part is a 400; else (a response) it is kept verbatim.
fn content_to_parts(content: Content, at: &str, strict: bool) -> Result<Decoded, GatewayError> {
    let Content { role, parts, extra } = content;
    let mut hints = Map::new();
    if parts.is_none() {
        hints.insert("parts".into(), Value::Bool(false));
    }
    let mut out = Vec::new();
    let mut opaque = Vec::new();
    for (j, part) in parts.into_iter().flatten().enumerate() {
        if let Err(err) = check_part(&part, &format!("{at}.parts[{j}]")) {
            if strict {
                return Err(err);
            }
            opaque.push(json!([j, json_of(&part)]));
            continue;
        }
        match part_to_conversation(part) {
            Piece::Part(part) => out.push(part),
            Piece::Opaque(value) => opaque.push(json!([j, value])),
        }
    }
    if !opaque.is_empty() {
        hints.insert("opaque_parts".into(), Value::Array(opaque));
    }
    Ok(Decoded {
        role,
        parts: out,
        hints,
        fields: extra,
    })
}

/// A content from neutral parts, with the opaque parts put back where they stood.
fn content_from_parts(
    role: Option<String>,
    parts: &[&conv::Part],
    extra: &conv::Extras,
    names: &HashMap<&str, &str>,
) -> Content {
    let mut out: Vec<Part> = parts
        .iter()
        .filter_map(|p| part_from_conversation(p, names))
        .collect();
    put_back_opaque(&mut out, extra);
    let absent = extra.hint(GEMINI, "parts") == Some(&Value::Bool(false));
    Content {
        role,
        parts: (!(out.is_empty() && absent)).then_some(out),
        extra: extra.fields_of(GEMINI),
    }
}

fn put_back_opaque(parts: &mut Vec<Part>, extra: &conv::Extras) {
    let Some(Value::Array(opaque)) = extra.hint(GEMINI, "opaque_parts") else {
        return;
    };
    for item in opaque {
        let (Some(at), Some(part)) = (
            item.get(0).and_then(Value::as_u64),
            item.get(1)
                .and_then(|p| serde_json::from_value::<Part>(p.clone()).ok()),
        ) else {
            continue;
        };
        let at = usize::try_from(at).unwrap_or(usize::MAX).min(parts.len());
        parts.insert(at, part);
    }
}

enum Piece {
    Part(conv::Part),
    /// A part the model has no form for, kept verbatim.
    Opaque(Value),
}

/// A part has one data field, and a function call or response names its function.
fn check_part(part: &Part, at: &str) -> Result<(), GatewayError> {
    let data = [
        part.text.is_some(),
        part.inline_data.is_some(),
        part.file_data.is_some(),
        part.function_call.is_some(),
        part.function_response.is_some(),
        part.executable_code.is_some(),
        part.code_execution_result.is_some(),
    ]
    .into_iter()
    .filter(|&set| set)
    .count();
    if data > 1 {
        return Err(invalid(
            "a part holds more than one of text, inlineData, fileData, functionCall, \
             functionResponse, executableCode and codeExecutionResult",
            at,
        ));
    }
    if part
        .function_call
        .as_ref()
        .is_some_and(|c| c.name.is_empty())
    {
        return Err(invalid(
            "functionCall without name",
            format!("{at}.functionCall.name"),
        ));
    }
    if part
        .function_response
        .as_ref()
        .is_some_and(|r| r.name.is_empty())
    {
        return Err(invalid(
            "functionResponse without name",
            format!("{at}.functionResponse.name"),
        ));
    }
    Ok(())
}

/// A checked part in the neutral form, or kept verbatim when the model has no form for it.
fn part_to_conversation(part: Part) -> Piece {
    let data = [
        part.text.is_some(),
        part.inline_data.is_some(),
        part.file_data.is_some(),
        part.function_call.is_some(),
        part.function_response.is_some(),
    ]
    .into_iter()
    .any(|set| set);
    if part.executable_code.is_some()
        || part.code_execution_result.is_some()
        || (!data && part.thought_signature.is_none())
    {
        return Piece::Opaque(json_of(&part));
    }
    let Part {
        text,
        thought,
        thought_signature,
        inline_data,
        file_data,
        function_call,
        function_response,
        executable_code: _,
        code_execution_result: _,
        extra,
    } = part;
    let mut hints = Map::new();
    let unsigned = |hints: &mut Map<String, Value>| {
        if let Some(signature) = &thought_signature {
            hints.insert("thought_signature".into(), signature.clone().into());
        }
    };
    let (part, default_thought) = if let Some(call) = function_call {
        let part = call_to_conversation(call, thought_signature.clone(), &mut hints);
        (part, None)
    } else if let Some(response) = function_response {
        unsigned(&mut hints);
        (result_to_conversation(response, &mut hints), None)
    } else if let Some(blob) = inline_data {
        unsigned(&mut hints);
        (blob_to_conversation(blob, &mut hints), None)
    } else if let Some(file) = file_data {
        unsigned(&mut hints);
        (file_to_conversation(file, &mut hints), None)
    } else if let Some(text) = text {
        if thought == Some(true) {
            (
                conv::Part::thinking(text, thought_signature.clone()),
                Some(true),
            )
        } else {
            let part = conv::Part::Text {
                text,
                signature: thought_signature.clone(),
                cache: None,
                extra: conv::Extras::default(),
            };
            (part, None)
        }
    } else {
        // A signature alone: the model's reasoning, without its text.
        hints.insert("text".into(), Value::Bool(false));
        (
            conv::Part::thinking("", thought_signature.clone()),
            Some(true),
        )
    };
    if thought != default_thought {
        hints.insert("thought".into(), thought.map_or(Value::Null, Value::Bool));
    }
    let mut part = part;
    *part.extra_mut() = conv::Extras::new(GEMINI, extra, hints);
    Piece::Part(part)
}

fn part_from_conversation(part: &conv::Part, names: &HashMap<&str, &str>) -> Option<Part> {
    let extra = part.extra();
    let mut out = Part {
        extra: extra.fields_of(GEMINI),
        ..Part::default()
    };
    let mut default_thought = None;
    match part {
        conv::Part::Text {
            text, signature, ..
        } => {
            out.text = Some(text.clone());
            out.thought_signature = signature.clone();
        }
        conv::Part::Refusal { text, .. } => out.text = Some(text.clone()),
        conv::Part::Thinking {
            text, signature, ..
        } => {
            default_thought = Some(true);
            if extra.hint(GEMINI, "text") != Some(&Value::Bool(false)) || !text.is_empty() {
                out.text = Some(text.clone());
            }
            out.thought_signature = signature.clone();
        }
        conv::Part::RedactedThinking { .. } => return None,
        conv::Part::Image { source, .. } | conv::Part::Document { source, .. } => {
            media_from_conversation(source, extra, &mut out);
        }
        conv::Part::Audio { data, format, .. } => {
            out.inline_data = Some(Blob {
                mime_type: format!("audio/{format}"),
                data: data.clone(),
                extra: extra.hint_object(GEMINI, "inline_data"),
            });
        }
        conv::Part::ToolCall {
            id,
            name,
            arguments,
            signature,
            ..
        } => {
            out.function_call = Some(FunctionCall {
                id: id_out(id, extra),
                name: name.clone(),
                args: args_out(arguments, extra),
                extra: extra.hint_object(GEMINI, "function_call"),
            });
            out.thought_signature = signature.clone();
        }
        conv::Part::ToolResult {
            id,
            name,
            parts,
            is_error,
            ..
        } => {
            let name = name
                .clone()
                .or_else(|| names.get(id.as_str()).map(|n| (*n).to_owned()))
                .unwrap_or_default();
            out.function_response = Some(result_from_conversation(
                id, name, parts, *is_error, extra, names,
            ));
        }
    }
    if out.thought_signature.is_none() {
        out.thought_signature = extra
            .hint_str(GEMINI, "thought_signature")
            .map(str::to_owned);
    }
    out.thought = match extra.hint(GEMINI, "thought") {
        Some(Value::Null) => None,
        Some(Value::Bool(thought)) => Some(*thought),
        _ => default_thought,
    };
    Some(out)
}

fn blob_to_conversation(blob: Blob, hints: &mut Map<String, Value>) -> conv::Part {
    let Blob {
        mime_type,
        data,
        extra,
    } = blob;
    if !extra.is_empty() {
        hints.insert("inline_data".into(), Value::Object(extra));
    }
    if mime_type.to_ascii_lowercase().starts_with("image/") {
        return conv::Part::Image {
            source: conv::Media::Base64 {
                mime: mime_type,
                data,
            },
            detail: None,
            extra: conv::Extras::default(),
        };
    }
    if let Some(format) = mime_type.strip_prefix("audio/") {
        return conv::Part::Audio {
            data,
            format: format.to_owned(),
            extra: conv::Extras::default(),
        };
    }
    conv::Part::Document {
        source: conv::Media::Base64 {
            mime: mime_type,
            data,
        },
        name: None,
        extra: conv::Extras::default(),
    }
}

fn file_to_conversation(file: FileData, hints: &mut Map<String, Value>) -> conv::Part {
    let FileData {
        mime_type,
        file_uri,
        extra,
    } = file;
    if !extra.is_empty() {
        hints.insert("file_data".into(), Value::Object(extra));
    }
    let image = mime_type
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().starts_with("image/"));
    hints.insert(
        "mime_type".into(),
        mime_type.map_or(Value::Null, Value::String),
    );
    let source = conv::Media::Url { url: file_uri };
    if image {
        conv::Part::Image {
            source,
            detail: None,
            extra: conv::Extras::default(),
        }
    } else {
        conv::Part::Document {
            source,
            name: None,
            extra: conv::Extras::default(),
        }
    }
}

fn media_from_conversation(source: &conv::Media, extra: &conv::Extras, out: &mut Part) {
    let file = |uri: &str| {
        let mime_type = match extra.hint(GEMINI, "mime_type") {
            Some(Value::String(mime)) => Some(mime.clone()),
            Some(Value::Null) => None,
            _ => guess_mime(uri).map(str::to_owned),
        };
        FileData {
            mime_type,
            file_uri: uri.to_owned(),
            extra: extra.hint_object(GEMINI, "file_data"),
        }
    };
    match source {
        conv::Media::Base64 { mime, data } => {
            out.inline_data = Some(Blob {
                mime_type: mime.clone(),
                data: data.clone(),
                extra: extra.hint_object(GEMINI, "inline_data"),
            });
        }
        conv::Media::Url { url } => out.file_data = Some(file(url)),
        conv::Media::FileId { id } => out.file_data = Some(file(id)),
    }
}

/// A media type from a URL's file extension, when it is a common one.
fn guess_mime(uri: &str) -> Option<&'static str> {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let (_, extension) = path.rsplit_once('.')?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => return None,
    })
}

fn call_to_conversation(
    call: FunctionCall,
    signature: Option<String>,
    hints: &mut Map<String, Value>,
) -> conv::Part {
    let FunctionCall {
        id,
        name,
        args,
        extra,
    } = call;
    let id = id.unwrap_or_else(|| {
        hints.insert("id".into(), Value::Bool(false));
        String::new()
    });
    let arguments = match args {
        Some(args) => args.to_string(),
        None => {
            hints.insert("args".into(), Value::Bool(false));
            "{}".to_owned()
        }
    };
    if !extra.is_empty() {
        hints.insert("function_call".into(), Value::Object(extra));
    }
    conv::Part::ToolCall {
        id,
        name,
        arguments,
        signature,
        extra: conv::Extras::default(),
    }
}

/// A call or response id as Gemini gets it: none when it was not sent or is empty.
fn id_out(id: &str, extra: &conv::Extras) -> Option<String> {
    (!id.is_empty() && extra.hint(GEMINI, "id") != Some(&Value::Bool(false))).then(|| id.to_owned())
}

/// Arguments as a JSON value: `{}` when empty, the raw text as a string when it is no JSON
/// (the upstream then judges it), absent when the source sent none.
fn args_out(arguments: &str, extra: &conv::Extras) -> Option<Value> {
    if extra.hint(GEMINI, "args") == Some(&Value::Bool(false)) && arguments == "{}" {
        return None;
    }
    if arguments.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    Some(serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned())))
}

fn result_to_conversation(
    response: FunctionResponse,
    hints: &mut Map<String, Value>,
) -> conv::Part {
    let FunctionResponse {
        id,
        name,
        response,
        parts: media,
        extra,
    } = response;
    let id = id.unwrap_or_else(|| {
        hints.insert("id".into(), Value::Bool(false));
        String::new()
    });
    let (text, is_error) = response_text(response.as_ref());
    if Some(response_value(text.as_deref(), is_error)) != response {
        hints.insert("response".into(), response.unwrap_or(Value::Null));
    }
    let mut parts: Vec<conv::Part> = text.map(conv::Part::text).into_iter().collect();
    if let Some(media) = media {
        let decoded: Option<Vec<conv::Part>> = media
            .iter()
            .cloned()
            .map(|part| {
                let media = part.inline_data.is_some() || part.file_data.is_some();
                if !media || check_part(&part, "").is_err() {
                    return None;
                }
                match part_to_conversation(part) {
                    Piece::Part(part) => Some(part),
                    Piece::Opaque(_) => None,
                }
            })
            .collect();
        match decoded {
            Some(decoded) => parts.extend(decoded),
            None => {
                hints.insert("parts".into(), json_of(&media));
            }
        }
    }
    if !extra.is_empty() {
        hints.insert("function_response".into(), Value::Object(extra));
    }
    conv::Part::ToolResult {
        id,
        name: Some(name),
        parts,
        is_error,
        extra: conv::Extras::default(),
    }
}

fn result_from_conversation(
    id: &str,
    name: String,
    parts: &[conv::Part],
    is_error: bool,
    extra: &conv::Extras,
    names: &HashMap<&str, &str>,
) -> FunctionResponse {
    let texts: Vec<&str> = parts.iter().filter_map(conv::Part::as_text).collect();
    let text = (!texts.is_empty()).then(|| texts.concat());
    let response = match extra.hint(GEMINI, "response") {
        Some(kept) => {
            let kept = (!kept.is_null()).then(|| kept.clone());
            if response_text(kept.as_ref()) == (text.clone(), is_error) {
                kept
            } else {
                Some(response_value(text.as_deref(), is_error))
            }
        }
        None => Some(response_value(text.as_deref(), is_error)),
    };
    let media: Vec<Part> = parts
        .iter()
        .filter(|p| p.as_text().is_none())
        .filter_map(|p| part_from_conversation(p, names))
        .collect();
    let media = if media.is_empty() {
        extra
            .hint(GEMINI, "parts")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
    } else {
        Some(media)
    };
    FunctionResponse {
        id: id_out(id, extra),
        name,
        response,
        parts: media,
        extra: extra.hint_object(GEMINI, "function_response"),
    }
}

/// The text of a function response and whether it reports a failure: the string of
/// `{"output": text}` or `{"error": text}`, else the response as JSON text.
fn response_text(response: Option<&Value>) -> (Option<String>, bool) {
    let Some(response) = response else {
        return (None, false);
    };
    if let Value::Object(map) = response
        && map.len() == 1
    {
        if let Some(Value::String(text)) = map.get("output") {
            return (Some(text.clone()), false);
        }
        if let Some(Value::String(text)) = map.get("error") {
            return (Some(text.clone()), true);
        }
    }
    (Some(response.to_string()), false)
}

fn response_value(text: Option<&str>, is_error: bool) -> Value {
    let key = if is_error { "error" } else { "output" };
    json!({ key: text.unwrap_or_default() })
}

// ---------------------------------------------------------------------------------------------
// Tools and tool choice
// ---------------------------------------------------------------------------------------------

/// One `tools` entry's shape: how many declarations it held (`None`: no
/// `functionDeclarations`), and its other fields (built-in tools).
type ToolLayout = Vec<(Option<usize>, Extra)>;

fn tools_to_conversation(
    tools: Option<Vec<Tool>>,
    hints: &mut Map<String, Value>,
) -> Vec<conv::Tool> {
    let Some(tools) = tools else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut layout: ToolLayout = Vec::new();
    for tool in tools {
        let Tool {
            function_declarations,
            extra,
        } = tool;
        layout.push((function_declarations.as_ref().map(Vec::len), extra));
        out.extend(
            function_declarations
                .into_iter()
                .flatten()
                .map(declaration_to_conversation),
        );
    }
    let plain = matches!(layout.as_slice(), [(Some(n), extra)] if *n > 0 && extra.is_empty());
    if !plain {
        hints.insert("tools".into(), json_of(&layout));
    }
    out
}

fn tools_from_conversation(tools: &[conv::Tool], extra: &conv::Extras) -> Option<Vec<Tool>> {
    let declarations: Vec<FunctionDeclaration> =
        tools.iter().map(declaration_from_conversation).collect();
    let layout: Option<ToolLayout> = extra
        .hint(GEMINI, "tools")
        .and_then(|l| serde_json::from_value(l.clone()).ok());
    let Some(layout) = layout else {
        return (!declarations.is_empty()).then(|| {
            vec![Tool {
                function_declarations: Some(declarations),
                extra: Extra::new(),
            }]
        });
    };
    let counted: usize = layout.iter().filter_map(|(n, _)| *n).sum();
    if counted == declarations.len() {
        let mut rest = declarations.into_iter();
        return Some(
            layout
                .into_iter()
                .map(|(n, extra)| Tool {
                    function_declarations: n.map(|n| rest.by_ref().take(n).collect()),
                    extra,
                })
                .collect(),
        );
    }
    // The declarations changed: all of them in one entry, then the built-in tools.
    let mut out = Vec::new();
    if !declarations.is_empty() {
        out.push(Tool {
            function_declarations: Some(declarations),
            extra: Extra::new(),
        });
    }
    out.extend(
        layout
            .into_iter()
            .filter(|(n, _)| n.is_none())
            .map(|(_, extra)| Tool {
                function_declarations: None,
                extra,
            }),
    );
    (!out.is_empty()).then_some(out)
}

fn declaration_to_conversation(declaration: FunctionDeclaration) -> conv::Tool {
    let FunctionDeclaration {
        name,
        description,
        parameters,
        parameters_json_schema,
        extra,
    } = declaration;
    let mut hints = Map::new();
    let parameters = match (parameters, parameters_json_schema) {
        (Some(parameters), None) => {
            hints.insert("schema".into(), "parameters".into());
            parameters
        }
        (None, Some(schema)) => schema,
        (Some(parameters), Some(schema)) => {
            hints.insert("parameters".into(), parameters);
            schema
        }
        (None, None) => Value::Null,
    };
    conv::Tool {
        name,
        description,
        parameters,
        strict: None,
        kind: conv::ToolKind::Function,
        extra: conv::Extras::new(GEMINI, extra, hints),
    }
}

/// A tool's declaration; custom (free-form) tools become functions without parameters.
fn declaration_from_conversation(tool: &conv::Tool) -> FunctionDeclaration {
    let extra = &tool.extra;
    let schema = (!tool.parameters.is_null()).then(|| tool.parameters.clone());
    let (parameters, parameters_json_schema) = match (
        extra.hint_str(GEMINI, "schema"),
        extra.hint(GEMINI, "parameters"),
    ) {
        (Some("parameters"), _) => (schema, None),
        (_, Some(parameters)) => (Some(parameters.clone()), schema),
        _ => (None, schema),
    };
    FunctionDeclaration {
        name: tool.name.clone(),
        description: tool.description.clone(),
        parameters,
        parameters_json_schema,
        extra: extra.fields_of(GEMINI),
    }
}

/// `AUTO` and `VALIDATED` leave it to the model, `NONE` forbids calls, `ANY` requires one;
/// `allowedFunctionNames` narrows the choice (one name with `ANY` is a named choice).
fn tool_choice_to_conversation(config: &ToolConfig) -> Option<conv::ToolChoice> {
    let calling = config.function_calling_config.as_ref()?;
    let mode = calling.mode.as_deref()?.to_ascii_uppercase();
    let allowed = calling
        .allowed_function_names
        .as_deref()
        .filter(|names| !names.is_empty());
    Some(match (mode.as_str(), allowed) {
        ("NONE", _) => conv::ToolChoice::None,
        ("AUTO" | "VALIDATED", None) => conv::ToolChoice::Auto,
        ("AUTO" | "VALIDATED", Some(names)) => conv::ToolChoice::Allowed {
            tools: names.to_vec(),
            required: false,
        },
        ("ANY", None) => conv::ToolChoice::Required,
        ("ANY", Some([name])) => conv::ToolChoice::Tool(name.clone()),
        ("ANY", Some(names)) => conv::ToolChoice::Allowed {
            tools: names.to_vec(),
            required: true,
        },
        _ => return None,
    })
}

/// A choice among some tools without requiring one is `VALIDATED` (the one mode besides
/// `ANY` that takes `allowedFunctionNames`).
fn tool_config_from_conversation(choice: &conv::ToolChoice) -> ToolConfig {
    let (mode, allowed) = match choice {
        conv::ToolChoice::Auto => ("AUTO", None),
        conv::ToolChoice::None => ("NONE", None),
        conv::ToolChoice::Required => ("ANY", None),
        conv::ToolChoice::Tool(name) => ("ANY", Some(vec![name.clone()])),
        conv::ToolChoice::Allowed { tools, required } => (
            if *required { "ANY" } else { "VALIDATED" },
            Some(tools.clone()),
        ),
    };
    ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            mode: Some(mode.to_owned()),
            allowed_function_names: allowed,
            extra: Extra::new(),
        }),
        extra: Extra::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Generation settings, thinking, response format
// ---------------------------------------------------------------------------------------------

type Settings = (
    conv::Generation,
    Option<conv::Reasoning>,
    Option<conv::ResponseFormat>,
);

/// `responseMimeType`, `responseSchema`, `responseJsonSchema`.
type FormatFields = (Option<String>, Option<Value>, Option<Value>);

fn generation_to_conversation(
    config: Option<GenerationConfig>,
    hints: &mut Map<String, Value>,
) -> Result<Settings, GatewayError> {
    let Some(config) = config else {
        return Ok((conv::Generation::default(), None, None));
    };
    let bare = GenerationConfig {
        extra: Extra::new(),
        ..config.clone()
    } == GenerationConfig::default();
    let GenerationConfig {
        temperature,
        top_p,
        top_k,
        candidate_count,
        max_output_tokens,
        stop_sequences,
        seed,
        presence_penalty,
        frequency_penalty,
        response_logprobs,
        logprobs,
        response_mime_type,
        response_schema,
        response_json_schema,
        thinking_config,
        extra,
    } = config;
    if candidate_count.is_some_and(|n| n > 1) {
        return Err(invalid(
            "candidateCount above 1 is not supported: the gateway serves one candidate",
            "generationConfig.candidateCount",
        ));
    }
    let mut numbers = Map::new();
    let temperature = float_in(&mut numbers, "temperature", temperature);
    let top_p = float_in(&mut numbers, "topP", top_p);
    let presence_penalty = float_in(&mut numbers, "presencePenalty", presence_penalty);
    let frequency_penalty = float_in(&mut numbers, "frequencyPenalty", frequency_penalty);
    let top_k = match top_k {
        None => None,
        Some(n) => {
            let k = whole(&n)
                .ok_or_else(|| invalid("topK must be a whole number", "generationConfig.topK"))?;
            if Number::from(k) != n {
                numbers.insert("topK".into(), Value::Number(n));
            }
            Some(k)
        }
    };
    if !numbers.is_empty() {
        hints.insert("numbers".into(), Value::Object(numbers));
    }
    if stop_sequences.as_ref().is_some_and(Vec::is_empty) {
        hints.insert("stop".into(), "empty".into());
    }

    let format_fields: FormatFields = (response_mime_type, response_schema, response_json_schema);
    let format = format_to_conversation(&format_fields);
    let again = format
        .as_ref()
        .map(format_from_conversation)
        .unwrap_or_default();
    conv::Extras::keep_if_lossy(hints, "response_format", &format_fields, &again);

    let reasoning = thinking_config
        .as_ref()
        .map(reasoning_to_conversation)
        .transpose()?;
    let again = reasoning.as_ref().map(thinking_from_conversation);
    conv::Extras::keep_if_lossy(hints, "thinking_config", &thinking_config, &again);

    if bare || !extra.is_empty() {
        hints.insert("generation_config".into(), Value::Object(extra));
    }
    let generation = conv::Generation {
        max_tokens: max_output_tokens,
        temperature,
        top_p,
        top_k,
        stop: stop_sequences.unwrap_or_default(),
        seed,
        presence_penalty,
        frequency_penalty,
        candidates: candidate_count,
        logprobs: response_logprobs,
        top_logprobs: logprobs,
    };
    Ok((generation, reasoning, format))
}

fn generation_from_conversation(request: &conv::Request) -> Option<GenerationConfig> {
    let extra = &request.extra;
    let generation = &request.generation;
    let (response_mime_type, response_schema, response_json_schema) = extra
        .kept(
            GEMINI,
            "response_format",
            &request.response_format,
            |raw: &FormatFields| Some(format_to_conversation(raw)),
        )
        .unwrap_or_else(|| {
            request
                .response_format
                .as_ref()
                .map(format_from_conversation)
                .unwrap_or_default()
        });
    let thinking_config = extra
        .kept(
            GEMINI,
            "thinking_config",
            &request.reasoning,
            |raw: &Option<ThinkingConfig>| {
                raw.as_ref().map(reasoning_to_conversation).transpose().ok()
            },
        )
        .unwrap_or_else(|| request.reasoning.as_ref().map(thinking_from_conversation));
    let top_k = generation.top_k.map(|k| match number_hint(extra, "topK") {
        Some(n) if whole(n) == Some(k) => n.clone(),
        _ => Number::from(k),
    });
    let stop_sequences = if generation.stop.is_empty() {
        (extra.hint_str(GEMINI, "stop") == Some("empty")).then(Vec::new)
    } else {
        Some(generation.stop.clone())
    };
    let config = GenerationConfig {
        temperature: float_out(extra, "temperature", generation.temperature),
        top_p: float_out(extra, "topP", generation.top_p),
        top_k,
        candidate_count: generation.candidates,
        max_output_tokens: generation.max_tokens,
        stop_sequences,
        seed: generation.seed,
        presence_penalty: float_out(extra, "presencePenalty", generation.presence_penalty),
        frequency_penalty: float_out(extra, "frequencyPenalty", generation.frequency_penalty),
        response_logprobs: generation.logprobs,
        logprobs: generation.top_logprobs,
        response_mime_type,
        response_schema,
        response_json_schema,
        thinking_config,
        extra: extra.hint_object(GEMINI, "generation_config"),
    };
    let keep =
        config != GenerationConfig::default() || extra.hint(GEMINI, "generation_config").is_some();
    keep.then_some(config)
}

/// A float setting; its spelling is kept in `numbers` when the plain float would not give it
/// back (`1` instead of `1.0`).
fn float_in(numbers: &mut Map<String, Value>, key: &str, value: Option<Number>) -> Option<f64> {
    let number = value?;
    let float = number.as_f64()?;
    if Number::from_f64(float).as_ref() != Some(&number) {
        numbers.insert(key.to_owned(), Value::Number(number));
    }
    Some(float)
}

fn float_out(extra: &conv::Extras, key: &str, value: Option<f64>) -> Option<Number> {
    let float = value?;
    match number_hint(extra, key) {
        Some(number) if number.as_f64() == Some(float) => Some(number.clone()),
        _ => Number::from_f64(float),
    }
}

fn number_hint<'a>(extra: &'a conv::Extras, key: &str) -> Option<&'a Number> {
    match extra.hint(GEMINI, "numbers")?.get(key)? {
        Value::Number(number) => Some(number),
        _ => None,
    }
}

/// A non-negative whole number (google-genai sends `topK` as a float).
fn whole(number: &Number) -> Option<u32> {
    if let Some(n) = number.as_u64() {
        return u32::try_from(n).ok();
    }
    let float = number.as_f64()?;
    (float.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&float)).then_some(float as u32)
}

/// `thinkingBudget` 0 turns thinking off (effort `none`), -1 lets the model decide (adaptive),
/// a positive budget enables it (with an effort by size: up to 1024 low, up to 8192 medium,
/// else high); `thinkingLevel` is the effort; `includeThoughts` asks for visible reasoning
/// (summary `auto`).
fn reasoning_to_conversation(config: &ThinkingConfig) -> Result<conv::Reasoning, GatewayError> {
    let mut reasoning = conv::Reasoning::default();
    match config.thinking_budget {
        None => {}
        Some(0) => {
            reasoning.mode = Some(conv::ReasoningMode::Disabled);
            reasoning.effort = Some(conv::Effort::None);
        }
        Some(-1) => reasoning.mode = Some(conv::ReasoningMode::Adaptive),
        Some(budget) => {
            let budget = u32::try_from(budget).map_err(|_| {
                invalid(
                    "thinkingBudget must be -1, 0 or a positive number of tokens",
                    "generationConfig.thinkingConfig.thinkingBudget",
                )
            })?;
            reasoning.budget_tokens = Some(budget);
            reasoning.mode = Some(conv::ReasoningMode::Enabled);
            reasoning.effort = Some(match budget {
                0..=1024 => conv::Effort::Low,
                1025..=8192 => conv::Effort::Medium,
                _ => conv::Effort::High,
            });
        }
    }
    if let Some(level) = &config.thinking_level {
        let effort = match level.to_ascii_uppercase().as_str() {
            "MINIMAL" => Some(conv::Effort::Minimal),
            "LOW" => Some(conv::Effort::Low),
            "MEDIUM" => Some(conv::Effort::Medium),
            "HIGH" => Some(conv::Effort::High),
            _ => None,
        };
        if effort.is_some() {
            reasoning.effort = effort;
        }
    }
    if config.include_thoughts == Some(true) {
        reasoning.summary = Some("auto".to_owned());
    }
    Ok(reasoning)
}

fn thinking_from_conversation(reasoning: &conv::Reasoning) -> ThinkingConfig {
    let mut config = ThinkingConfig::default();
    let off = reasoning.is_off();
    if let Some(budget) = reasoning.budget_tokens {
        config.thinking_budget = Some(i32::try_from(budget).unwrap_or(i32::MAX));
    } else if off {
        config.thinking_budget = Some(0);
    } else if let Some(effort) = reasoning.effort {
        config.thinking_level = Some(
            match effort {
                conv::Effort::None | conv::Effort::Minimal => "MINIMAL",
                conv::Effort::Low => "LOW",
                conv::Effort::Medium => "MEDIUM",
                conv::Effort::High | conv::Effort::Xhigh => "HIGH",
            }
            .to_owned(),
        );
    } else if reasoning.mode == Some(conv::ReasoningMode::Adaptive) {
        config.thinking_budget = Some(-1);
    }
    let summary = reasoning.summary.as_deref().is_some_and(|s| s != "none");
    let on = matches!(
        reasoning.mode,
        Some(conv::ReasoningMode::Enabled | conv::ReasoningMode::Adaptive)
    );
    if !off && (summary || on) {
        config.include_thoughts = Some(true);
    }
    config
}

/// `application/json` with a schema (`responseJsonSchema` first) is a JSON schema format,
/// without one a JSON object; `text/plain` is text; other types (`text/x.enum`) have no
/// neutral form.
fn format_to_conversation(fields: &FormatFields) -> Option<conv::ResponseFormat> {
    let (mime, schema, json_schema) = fields;
    let mime = mime.as_deref()?.to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Some(match json_schema.as_ref().or(schema.as_ref()) {
            Some(schema) => conv::ResponseFormat::JsonSchema {
                name: FORMAT_NAME.to_owned(),
                description: None,
                schema: schema.clone(),
                strict: None,
            },
            None => conv::ResponseFormat::JsonObject,
        }),
        "text/plain" if schema.is_none() && json_schema.is_none() => {
            Some(conv::ResponseFormat::Text)
        }
        _ => None,
    }
}

fn format_from_conversation(format: &conv::ResponseFormat) -> FormatFields {
    match format {
        conv::ResponseFormat::Text => (Some("text/plain".to_owned()), None, None),
        conv::ResponseFormat::JsonObject => (Some("application/json".to_owned()), None, None),
        conv::ResponseFormat::JsonSchema { schema, .. } => (
            Some("application/json".to_owned()),
            None,
            (!schema.is_null()).then(|| schema.clone()),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

/// Decode a whole response. The first candidate becomes the parts; further candidates are kept
/// verbatim for Gemini and invisible to other protocols. A prompt blocked before any candidate
/// (`promptFeedback.blockReason`) finishes with [`ContentFilter`](conv::FinishReason), not an
/// error. Tool calls without an id keep an empty one.
pub fn response_to_conversation(response: GenerateContentResponse) -> conv::Response {
    let GenerateContentResponse {
        candidates,
        prompt_feedback,
        usage_metadata,
        model_version,
        response_id,
        extra,
    } = response;
    let mut hints = Map::new();
    let mut candidates = match candidates {
        None => {
            hints.insert("candidates".into(), "absent".into());
            Vec::new()
        }
        Some(list) if list.is_empty() => {
            hints.insert("candidates".into(), "empty".into());
            list
        }
        Some(list) => list,
    };
    let rest = candidates.split_off(candidates.len().min(1));
    if !rest.is_empty() {
        hints.insert("more_candidates".into(), json_of(&rest));
    }
    let (parts, mut finish) = match candidates.pop() {
        Some(candidate) => candidate_to_conversation(candidate, &mut hints),
        None => (Vec::new(), None),
    };
    if let Some(feedback) = prompt_feedback {
        if finish.is_none() && feedback.block_reason.is_some() {
            finish = Some(conv::FinishReason::ContentFilter);
        }
        hints.insert("prompt_feedback".into(), json_of(&feedback));
    }
    if model_version.is_none() {
        hints.insert("model_version".into(), Value::Bool(false));
    }
    conv::Response {
        id: response_id.unwrap_or_default(),
        model: model_version.unwrap_or_default(),
        created: 0,
        parts,
        finish,
        usage: usage_metadata.as_ref().map(WireUsage::to_conversation),
        extra: conv::Extras::new(GEMINI, extra, hints),
    }
}

fn candidate_to_conversation(
    candidate: Candidate,
    hints: &mut Map<String, Value>,
) -> (Vec<conv::Part>, Option<conv::FinishReason>) {
    let Candidate {
        content,
        finish_reason,
        safety_ratings,
        index,
        citation_metadata,
        extra,
    } = candidate;
    let meta = Candidate {
        content: None,
        finish_reason: None,
        safety_ratings,
        index,
        citation_metadata,
        extra,
    };
    let meta = json_of(&meta);
    if meta != json!({"index": 0}) {
        hints.insert("candidate".into(), meta);
    }
    let parts = match content {
        None => {
            hints.insert("content".into(), Value::Null);
            Vec::new()
        }
        Some(content) => {
            match content_to_parts(content, "candidates[0].content", false) {
                Ok(decoded) => {
                    if decoded.role.as_deref() != Some("model") {
                        hints.insert(
                            "role".into(),
                            decoded.role.map_or(Value::Null, Value::String),
                        );
                    }
                    hints.extend(decoded.hints);
                    if !decoded.fields.is_empty() {
                        hints.insert("content_fields".into(), Value::Object(decoded.fields));
                    }
                    decoded.parts
                }
                // Not strict: malformed parts are kept verbatim, so this cannot happen.
                Err(_) => Vec::new(),
            }
        }
    };
    let finish = finish_reason.map(|reason| {
        let neutral = finish_to_conversation(&reason, has_calls(&parts));
        if finish_from_conversation(&neutral) != reason {
            hints.insert("finish_reason".into(), reason.into());
        }
        neutral
    });
    (parts, finish)
}

/// Encode a whole response for a client that asked for `model` (its `modelVersion`).
pub fn response_from_conversation(
    response: &conv::Response,
    model: &str,
) -> GenerateContentResponse {
    let extra = &response.extra;
    let names = HashMap::new();
    let parts: Vec<&conv::Part> = response.parts.iter().collect();
    let empty = response.parts.is_empty();
    let candidates = match extra.hint_str(GEMINI, "candidates") {
        Some("absent") if empty => None,
        Some("empty") if empty => Some(Vec::new()),
        _ => {
            let mut candidate = extra
                .hint(GEMINI, "candidate")
                .and_then(|c| serde_json::from_value::<Candidate>(c.clone()).ok())
                .unwrap_or_else(|| Candidate {
                    index: Some(0),
                    ..Candidate::default()
                });
            let no_content = extra.hint(GEMINI, "content") == Some(&Value::Null);
            if !(no_content && empty) {
                let role = match extra.hint(GEMINI, "role") {
                    Some(Value::String(role)) => Some(role.clone()),
                    Some(Value::Null) => None,
                    _ => Some("model".to_owned()),
                };
                let content_extra =
                    conv::Extras::new(GEMINI, extra.hint_object(GEMINI, "content_fields"), {
                        let mut hints = Map::new();
                        for key in ["parts", "opaque_parts"] {
                            if let Some(value) = extra.hint(GEMINI, key) {
                                hints.insert(key.to_owned(), value.clone());
                            }
                        }
                        hints
                    });
                candidate.content = Some(content_from_parts(role, &parts, &content_extra, &names));
            }
            candidate.finish_reason = response.finish.as_ref().map(|finish| {
                match extra.hint_str(GEMINI, "finish_reason") {
                    Some(kept)
                        if finish_to_conversation(kept, has_calls(&response.parts)) == *finish =>
                    {
                        kept.to_owned()
                    }
                    _ => finish_from_conversation(finish),
                }
            });
            let mut list = vec![candidate];
            if let Some(more) = extra
                .hint(GEMINI, "more_candidates")
                .and_then(|m| serde_json::from_value::<Vec<Candidate>>(m.clone()).ok())
            {
                list.extend(more);
            }
            Some(list)
        }
    };
    GenerateContentResponse {
        candidates,
        prompt_feedback: extra
            .hint(GEMINI, "prompt_feedback")
            .and_then(|f| serde_json::from_value::<PromptFeedback>(f.clone()).ok()),
        usage_metadata: response
            .usage
            .as_ref()
            .map(UsageMetadata::from_conversation),
        model_version: (extra.hint(GEMINI, "model_version") != Some(&Value::Bool(false)))
            .then(|| model.to_owned()),
        response_id: (!response.id.is_empty()).then(|| response.id.clone()),
        extra: extra.fields_of(GEMINI),
    }
}

/// `STOP` is a natural end (a tool use when the turn made calls), `MAX_TOKENS` the length
/// limit, the safety, recitation, blocklist and prohibited-content reasons a content filter;
/// anything else (`MALFORMED_FUNCTION_CALL`, `OTHER`, ...) keeps its name.
pub(super) fn finish_to_conversation(reason: &str, calls: bool) -> conv::FinishReason {
    match reason {
        "STOP" if calls => conv::FinishReason::ToolUse,
        "STOP" => conv::FinishReason::Stop,
        "MAX_TOKENS" => conv::FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => conv::FinishReason::ContentFilter,
        other => conv::FinishReason::Other(other.to_owned()),
    }
}

/// Gemini's `finishReason`; a foreign reason that is no Gemini-style name becomes `OTHER`.
pub(super) fn finish_from_conversation(reason: &conv::FinishReason) -> String {
    match reason {
        conv::FinishReason::Stop
        | conv::FinishReason::StopSequence(_)
        | conv::FinishReason::ToolUse => "STOP".to_owned(),
        conv::FinishReason::Length => "MAX_TOKENS".to_owned(),
        conv::FinishReason::ContentFilter => "SAFETY".to_owned(),
        conv::FinishReason::Other(name)
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            name.clone()
        }
        conv::FinishReason::Other(_) => "OTHER".to_owned(),
    }
}

/// Gemini usage: input is the prompt plus the tool-use prompt, output the candidates plus the
/// thoughts. The original is kept when its plain form would differ.
impl WireUsage for UsageMetadata {
    const PROTOCOL: conv::Protocol = GEMINI;

    fn counts(&self) -> conv::Usage {
        let count = |n: Option<u64>| n.unwrap_or(0);
        let thoughts = count(self.thoughts_token_count);
        conv::Usage {
            input_tokens: count(self.prompt_token_count)
                .saturating_add(count(self.tool_use_prompt_token_count)),
            output_tokens: count(self.candidates_token_count).saturating_add(thoughts),
            reasoning_tokens: thoughts,
            cache_read_tokens: count(self.cached_content_token_count),
            cache_write_tokens: 0,
            extra: conv::Extras::default(),
        }
    }

    /// Usage as Gemini writes it: prompt, candidates (thinking excluded) and total; thoughts and
    /// cached tokens when there are any.
    fn from_counts(usage: &conv::Usage) -> Self {
        UsageMetadata {
            prompt_token_count: Some(usage.input_tokens),
            candidates_token_count: Some(
                usage.output_tokens.saturating_sub(usage.reasoning_tokens),
            ),
            thoughts_token_count: (usage.reasoning_tokens > 0).then_some(usage.reasoning_tokens),
            cached_content_token_count: (usage.cache_read_tokens > 0)
                .then_some(usage.cache_read_tokens),
            tool_use_prompt_token_count: None,
            total_token_count: Some(usage.total_tokens()),
            extra: Extra::new(),
        }
    }
}
