//! OpenAI chat request → Antigravity generate request.
//!
//! Every field of the OpenAI request is either mapped, deliberately ignored (listed below with
//! the reason), or rejected with a 400 that names it. See
//! `shared/docs/antigravity.md` for the table this implements.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use gateway_core::{
    GatewayError,
    openai::{
        ChatRequest, Content as OaContent, ContentPart, Message, ReasoningEffort, ResponseFormat,
        Role, Tool, ToolChoice, ToolChoiceMode,
    },
};

use crate::{
    models::{Family, ModelSpec, resolve},
    names::ToolNames,
    schema,
    signatures::{SKIP_SIGNATURE, SignatureCache},
    wire::{
        Content, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
        GenerateRequest, GenerationConfig, InlineData, Part, SystemInstruction, ThinkingConfig,
        ToolConfig, ToolDeclarations,
    },
};

// Fields accepted but not sent, because Antigravity has no equivalent and they do not change
// what a correct answer is: `parallel_tool_calls` (the model decides), `user`, `metadata`,
// `store`, `service_tier` (bookkeeping). `stream` and `stream_options` shape the response side.
// Everything else is mapped or rejected with a 400 naming it.

/// The thinking budget for a `-thinking` model when the client names no effort.
const DEFAULT_THINKING_BUDGET: u32 = 8192;

/// A translated request and what the response side needs to undo it.
#[derive(Debug)]
pub(crate) struct Translated {
    pub(crate) request: GenerateRequest,
    pub(crate) names: ToolNames,
    pub(crate) spec: ModelSpec,
}

/// Translate `request`. `conversation` (a client-supplied conversation id) keys the upstream
/// session when present; otherwise the first user message does.
pub(crate) fn translate(
    request: &ChatRequest,
    cache: &SignatureCache,
    conversation: Option<&str>,
) -> Result<Translated, GatewayError> {
    if request.model.trim().is_empty() {
        return Err(GatewayError::invalid_request("model must not be empty").with_param("model"));
    }
    reject_unsupported(request)?;
    let spec = resolve(&request.model);
    let mut names = ToolNames::default();
    let tools = declarations(request, &mut names)?;
    let mut builder = Builder {
        spec: &spec,
        cache,
        names: &mut names,
        system: Vec::new(),
        contents: Vec::new(),
        calls: Vec::new(),
        pending: Vec::new(),
    };
    for (index, message) in request.messages.iter().enumerate() {
        builder.message(index, message)?;
    }
    let Builder {
        system,
        mut contents,
        ..
    } = builder;
    if contents.is_empty() {
        return Err(GatewayError::invalid_request(
            "messages must contain at least one user, assistant or tool message",
        )
        .with_param("messages"));
    }
    let mut generation = generation_config(request)?;
    let thinking = thinking_config(request, &spec);
    if let Some(thinking) = thinking {
        let unsigned_tool_turn =
            spec.family == Family::Claude && last_model_turn_lacks_signed_thought(&contents);
        if !unsigned_tool_turn {
            if let (Some(budget), Some(max)) =
                (thinking.thinking_budget, generation.max_output_tokens)
            {
                // The client's limit is for the answer; the budget comes on top of it.
                if max <= budget {
                    generation.max_output_tokens = Some(budget.saturating_add(max));
                }
            }
            generation.thinking_config = Some(thinking);
        }
    }
    if spec.family == Family::Claude && generation.thinking_config.is_none() {
        // Claude accepts thinking in its history only while thinking is on.
        strip_thoughts(&mut contents);
    }
    let tool_config = tool_config(request, &mut names, tools.is_some())?;
    let session = session_id(conversation, &request.messages);
    Ok(Translated {
        request: GenerateRequest {
            contents,
            system_instruction: (!system.is_empty()).then_some(SystemInstruction { parts: system }),
            tools,
            tool_config,
            generation_config: (generation != GenerationConfig::default()).then_some(generation),
            session_id: Some(session),
        },
        names,
        spec,
    })
}

fn reject_unsupported(request: &ChatRequest) -> Result<(), GatewayError> {
    let unsupported = |param: &str, why: &str| {
        Err(GatewayError::invalid_request(format!(
            "{param} is not supported by antigravity: {why}"
        ))
        .with_param(param))
    };
    if request.n.is_some_and(|n| n != 1) {
        return unsupported("n", "only one choice per request");
    }
    if request.logprobs == Some(true) {
        return unsupported("logprobs", "the upstream returns no log probabilities");
    }
    if request.top_logprobs.is_some() {
        return unsupported("top_logprobs", "the upstream returns no log probabilities");
    }
    if request.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return unsupported("logit_bias", "the upstream cannot bias tokens");
    }
    for key in [
        "functions",
        "function_call",
        "audio",
        "modalities",
        "prediction",
    ] {
        if request.extra.get(key).is_some_and(|v| !v.is_null()) {
            return unsupported(key, "use tools and text output instead");
        }
    }
    Ok(())
}

fn declarations(
    request: &ChatRequest,
    names: &mut ToolNames,
) -> Result<Option<Vec<ToolDeclarations>>, GatewayError> {
    let Some(tools) = &request.tools else {
        return Ok(None);
    };
    let mut functions = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        match tool {
            Tool::Function { function, .. } => functions.push(FunctionDeclaration {
                name: names.upstream(&function.name),
                description: function.description.clone(),
                parameters: function.parameters.as_ref().map(schema::clean_parameters),
            }),
            Tool::Custom { custom, .. } => {
                return Err(GatewayError::invalid_request(format!(
                    "custom tool {:?} is not supported by antigravity; declare it as a function",
                    custom.name
                ))
                .with_param(format!("tools[{index}]")));
            }
        }
    }
    Ok((!functions.is_empty()).then(|| {
        vec![ToolDeclarations {
            function_declarations: functions,
        }]
    }))
}

struct Builder<'a> {
    spec: &'a ModelSpec,
    cache: &'a SignatureCache,
    names: &'a mut ToolNames,
    system: Vec<Part>,
    contents: Vec<Content>,
    /// Tool calls seen so far: (call id, upstream function name).
    calls: Vec<(String, String)>,
    /// Calls of the latest assistant turn still waiting for their results.
    pending: Vec<(String, String)>,
}

impl Builder<'_> {
    fn message(&mut self, index: usize, message: &Message) -> Result<(), GatewayError> {
        let at = |suffix: &str| format!("messages[{index}]{suffix}");
        if !matches!(message.role, Role::Tool | Role::Function) {
            self.answer_missing_results();
        }
        match message.role {
            Role::System | Role::Developer => {
                for text in texts(message.content.as_ref(), &at(".content"))? {
                    if !text.is_empty() {
                        self.system.push(Part::text(text));
                    }
                }
            }
            Role::User => {
                let Some(content) = &message.content else {
                    return Err(
                        GatewayError::invalid_request("user message without content")
                            .with_param(at(".content")),
                    );
                };
                let parts = user_parts(content, &at(".content"))?;
                self.push("user", parts);
            }
            Role::Assistant => {
                let parts = self.model_parts(message, index)?;
                self.push("model", parts);
            }
            Role::Tool => {
                let Some(id) = message.tool_call_id.as_deref() else {
                    return Err(
                        GatewayError::invalid_request("tool message without tool_call_id")
                            .with_param(at(".tool_call_id")),
                    );
                };
                let Some((_, name)) = self.calls.iter().find(|(call, _)| call == id) else {
                    return Err(GatewayError::invalid_request(format!(
                        "tool result for call {id:?}, which no earlier assistant message made"
                    ))
                    .with_param(at(".tool_call_id")));
                };
                let name = name.clone();
                self.pending.retain(|(call, _)| call != id);
                let output = texts(message.content.as_ref(), &at(".content"))?.join("\n");
                self.push(
                    "user",
                    vec![function_response(
                        Some(id.to_owned()),
                        name,
                        json!({ "output": output }),
                    )],
                );
            }
            Role::Function => {
                let Some(name) = message.name.as_deref() else {
                    return Err(
                        GatewayError::invalid_request("function message without name")
                            .with_param(at(".name")),
                    );
                };
                let output = texts(message.content.as_ref(), &at(".content"))?.join("\n");
                let name = self.names.upstream(name);
                self.push(
                    "user",
                    vec![function_response(None, name, json!({ "output": output }))],
                );
            }
        }
        Ok(())
    }

    /// An assistant turn whose calls got no result (a cancelled tool, an interrupted client) is
    /// followed by an explicit error result, so the model sees what happened.
    fn answer_missing_results(&mut self) {
        let missing = std::mem::take(&mut self.pending);
        if missing.is_empty() {
            return;
        }
        let parts = missing
            .into_iter()
            .map(|(id, name)| {
                function_response(
                    Some(id),
                    name,
                    json!({ "error": "the client returned no result for this call" }),
                )
            })
            .collect();
        self.push("user", parts);
    }

    fn model_parts(&mut self, message: &Message, index: usize) -> Result<Vec<Part>, GatewayError> {
        let family = self.spec.family;
        let mut parts = Vec::new();
        if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            // Reasoning goes back only with the signature the upstream gave it; unprovable
            // reasoning is left out rather than signed with an invented value.
            if let Some(signature) = self.cache.thinking(reasoning, family) {
                parts.push(Part {
                    text: Some(reasoning.to_owned()),
                    thought: Some(true),
                    thought_signature: Some(signature),
                    ..Part::default()
                });
            }
        }
        if let Some(content) = &message.content {
            for text in texts(Some(content), &format!("messages[{index}].content"))? {
                if !text.is_empty() {
                    parts.push(Part::text(text));
                }
            }
        }
        if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
            parts.push(Part::text(refusal));
        }
        for (call_index, call) in message.tool_calls.iter().flatten().enumerate() {
            let param = format!("messages[{index}].tool_calls[{call_index}].function.arguments");
            let args = decode_arguments(&call.function.arguments, &param)?;
            let name = self.names.upstream(&call.function.name);
            let signature = match family {
                Family::Gemini3 => Some(
                    self.cache
                        .tool_call(&call.id, family)
                        .unwrap_or_else(|| SKIP_SIGNATURE.to_owned()),
                ),
                _ => None,
            };
            parts.push(Part {
                function_call: Some(FunctionCall {
                    id: Some(call.id.clone()),
                    name: name.clone(),
                    args,
                }),
                thought_signature: signature,
                ..Part::default()
            });
            self.calls.push((call.id.clone(), name.clone()));
            self.pending.push((call.id.clone(), name));
        }
        if let Some(legacy) = message.extra.get("function_call").filter(|v| !v.is_null()) {
            let name = legacy.get("name").and_then(Value::as_str).ok_or_else(|| {
                GatewayError::invalid_request("function_call without name")
                    .with_param(format!("messages[{index}].function_call.name"))
            })?;
            let arguments = legacy
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let args = decode_arguments(
                arguments,
                &format!("messages[{index}].function_call.arguments"),
            )?;
            parts.push(Part {
                function_call: Some(FunctionCall {
                    id: None,
                    name: self.names.upstream(name),
                    args,
                }),
                ..Part::default()
            });
        }
        Ok(parts)
    }

    /// Append a turn, merging it into the previous one when the role is the same (Gemini wants
    /// alternating turns; consecutive tool results become one user turn).
    fn push(&mut self, role: &str, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        match self.contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => self.contents.push(Content {
                role: role.to_owned(),
                parts,
            }),
        }
    }
}

fn function_response(id: Option<String>, name: String, response: Value) -> Part {
    Part {
        function_response: Some(FunctionResponse { id, name, response }),
        ..Part::default()
    }
}

fn decode_arguments(arguments: &str, param: &str) -> Result<Value, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(
            GatewayError::invalid_request("tool call arguments must be a json object")
                .with_param(param),
        ),
        Err(e) => Err(GatewayError::invalid_request(format!(
            "tool call arguments are not valid json: {e}"
        ))
        .with_param(param)),
    }
}

/// The text of a content that may only hold text (system, tool and assistant messages).
fn texts(content: Option<&OaContent>, param: &str) -> Result<Vec<String>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(OaContent::Text(text)) => Ok(vec![text.clone()]),
        Some(OaContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| match part {
                ContentPart::Text { text, .. } => Ok(text.clone()),
                ContentPart::Refusal { refusal, .. } => Ok(refusal.clone()),
                _ => Err(GatewayError::invalid_request(
                    "only text parts are allowed in this message",
                )
                .with_param(format!("{param}[{i}]"))),
            })
            .collect(),
    }
}

fn user_parts(content: &OaContent, param: &str) -> Result<Vec<Part>, GatewayError> {
    match content {
        OaContent::Text(text) => Ok(vec![Part::text(text.clone())]),
        OaContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let at = format!("{param}[{i}]");
                match part {
                    ContentPart::Text { text, .. } => Ok(Part::text(text.clone())),
                    ContentPart::ImageUrl { image_url, .. } => {
                        let Some((mime_type, data)) = parse_data_uri(&image_url.url) else {
                            return Err(GatewayError::invalid_request(
                                "image_url must be a base64 data: uri; antigravity cannot fetch image urls",
                            )
                            .with_param(format!("{at}.image_url.url")));
                        };
                        Ok(Part {
                            inline_data: Some(InlineData { mime_type, data }),
                            ..Part::default()
                        })
                    }
                    ContentPart::InputAudio { .. } => {
                        Err(GatewayError::invalid_request("audio input is not supported by antigravity").with_param(at))
                    }
                    ContentPart::File { .. } => {
                        Err(GatewayError::invalid_request("file input is not supported by antigravity").with_param(at))
                    }
                    ContentPart::Refusal { refusal, .. } => Ok(Part::text(refusal.clone())),
                }
            })
            .collect(),
    }
}

/// `data:<mime>;base64,<data>` → (mime, data).
fn parse_data_uri(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    (!mime.is_empty() && !data.is_empty()).then(|| (mime.to_owned(), data.to_owned()))
}

fn generation_config(request: &ChatRequest) -> Result<GenerationConfig, GatewayError> {
    let (mime, schema) = match &request.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json".to_owned()), None),
        Some(ResponseFormat::JsonSchema { json_schema }) => (
            Some("application/json".to_owned()),
            json_schema.schema.as_ref().map(schema::clean),
        ),
    };
    let stop = request
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .filter(|s| !s.is_empty());
    if stop.as_ref().is_some_and(|s| s.len() > 5) {
        return Err(
            GatewayError::invalid_request("at most 5 stop sequences are supported")
                .with_param("stop"),
        );
    }
    Ok(GenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        max_output_tokens: request.max_output_tokens(),
        stop_sequences: stop,
        candidate_count: request.n,
        seed: request.seed,
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        response_mime_type: mime,
        response_schema: schema,
        thinking_config: None,
    })
}

fn budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::None => 0,
        ReasoningEffort::Minimal => 1024,
        ReasoningEffort::Low => 2048,
        ReasoningEffort::Medium => 8192,
        ReasoningEffort::High => 16384,
        ReasoningEffort::Xhigh => 32768,
    }
}

fn thinking_config(request: &ChatRequest, spec: &ModelSpec) -> Option<ThinkingConfig> {
    let effort = request.reasoning_effort;
    if effort == Some(ReasoningEffort::None) {
        // Gemini 2.5 Flash can switch thinking off; others simply get no thinking config.
        return (spec.family == Family::Gemini).then_some(ThinkingConfig {
            include_thoughts: false,
            thinking_budget: Some(0),
            thinking_level: None,
        });
    }
    match spec.family {
        Family::Gemini3 => Some(ThinkingConfig {
            include_thoughts: true,
            thinking_budget: None,
            thinking_level: effort.map(|e| {
                if matches!(e, ReasoningEffort::Minimal | ReasoningEffort::Low) {
                    "low"
                } else {
                    "high"
                }
                .to_owned()
            }),
        }),
        _ if effort.is_some() || spec.thinking => Some(ThinkingConfig {
            include_thoughts: true,
            thinking_budget: Some(effort.map_or(DEFAULT_THINKING_BUDGET, budget)),
            thinking_level: None,
        }),
        _ => None,
    }
}

/// Claude rejects a tool-use turn that does not start with signed thinking while thinking is on.
fn last_model_turn_lacks_signed_thought(contents: &[Content]) -> bool {
    let Some(turn) = contents.iter().rev().find(|c| c.role == "model") else {
        return false;
    };
    let has_call = turn.parts.iter().any(|p| p.function_call.is_some());
    let signed_first = turn
        .parts
        .first()
        .is_some_and(|p| p.is_thought() && p.thought_signature.is_some());
    has_call && !signed_first
}

fn strip_thoughts(contents: &mut Vec<Content>) {
    for content in contents.iter_mut() {
        content.parts.retain(|p| !p.is_thought());
    }
    contents.retain(|c| !c.parts.is_empty());
}

fn tool_config(
    request: &ChatRequest,
    names: &mut ToolNames,
    has_tools: bool,
) -> Result<Option<ToolConfig>, GatewayError> {
    let config = |mode: &str, allowed: Option<Vec<String>>| {
        Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode: mode.to_owned(),
                allowed_function_names: allowed,
            },
        })
    };
    let needs_tools = || {
        Err(GatewayError::invalid_request(
            "tool_choice asks for a tool call but no tools are declared",
        )
        .with_param("tool_choice"))
    };
    match &request.tool_choice {
        None if has_tools => Ok(config("VALIDATED", None)),
        None => Ok(None),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => {
            Ok(has_tools.then(|| config("AUTO", None)).flatten())
        }
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
            Ok(has_tools.then(|| config("NONE", None)).flatten())
        }
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) if has_tools => Ok(config("ANY", None)),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => needs_tools(),
        Some(ToolChoice::Named(named)) if !has_tools => {
            let _ = named;
            needs_tools()
        }
        Some(ToolChoice::Named(named)) => match named.kind.as_str() {
            "function" => {
                let Some(function) = &named.function else {
                    return Err(GatewayError::invalid_request(
                        "tool_choice of type function needs function.name",
                    )
                    .with_param("tool_choice.function"));
                };
                Ok(config("ANY", Some(vec![names.upstream(&function.name)])))
            }
            "allowed_tools" => {
                let allowed = named.extra.get("allowed_tools");
                let mode = match allowed.and_then(|a| a.get("mode")).and_then(Value::as_str) {
                    Some("required") => "ANY",
                    _ => "AUTO",
                };
                let listed: Vec<String> = allowed
                    .and_then(|a| a.get("tools"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                    .map(|name| names.upstream(name))
                    .collect();
                Ok(config(mode, (!listed.is_empty()).then_some(listed)))
            }
            other => Err(GatewayError::invalid_request(format!(
                "tool_choice of type {other:?} is not supported by antigravity"
            ))
            .with_param("tool_choice.type")),
        },
    }
}

/// A stable id per conversation, so the upstream can reuse its cache: the client's conversation
/// id when given, else the first user message.
fn session_id(conversation: Option<&str>, messages: &[Message]) -> String {
    let mut hasher = DefaultHasher::new();
    match conversation {
        Some(id) => id.hash(&mut hasher),
        None => {
            let first = messages
                .iter()
                .find(|m| m.role == Role::User)
                .and_then(|m| m.content.as_ref());
            match first {
                Some(OaContent::Text(text)) => text.hash(&mut hasher),
                Some(OaContent::Parts(parts)) => {
                    for part in parts {
                        if let ContentPart::Text { text, .. } = part {
                            text.hash(&mut hasher);
                        }
                    }
                }
                None => {}
            }
        }
    }
    format!("-{}", hasher.finish() >> 1)
}

#[cfg(test)]
mod tests;
