//! Conversation → Antigravity generate request.
//!
//! Every field of the conversation is either mapped, deliberately ignored (listed below with
//! the reason), or rejected with a 400 that names it. See
//! `docs/ARCHITECTURE.md` (antigravity-service) for the table this implements.
//!
//! Shapes the upstream refuses are settled here rather than forwarded:
//! - Two tools of the same name: identical declarations are one function (the later copy is
//!   left out, as clients that merge tool lists repeat them); different ones are a 400 naming
//!   the second, because the model could not tell which one it calls.
//! - Empty text parts (`{"text": ""}`) say nothing and the upstream rejects them: left out,
//!   and a turn left without parts is left out with them.
//! - A `tool_choice` naming a function that is not declared is a 400 naming `tool_choice`
//!   (`allowedFunctionNames` must name declared functions).
//! - Thinking on Claude follows the model id: Antigravity serves Claude's thinking only under
//!   its `-thinking` ids. A client asking for reasoning (`reasoning_effort`, a budget) on a plain
//!   id that has a thinking twin (`claude-sonnet-4-5`) is served by the twin
//!   (`claude-sonnet-4-5-thinking`) with its `thinkingConfig`; a plain id without one gets no
//!   `thinkingConfig` at all, whatever the client asks.
//! - Remembered tool-call signatures go back for every family that sent them (Gemini 2.5 too);
//!   only Gemini 3 gets the sentinel for a call without one.

use serde_json::{Value, json};

use gateway_core::{
    GatewayError,
    conversation::{
        Effort, Media, Message, Part as Neutral, ReasoningMode, Request, ResponseFormat, Role,
        ToolChoice, ToolKind,
    },
};

use crate::{
    models::{Family, ModelSpec, resolve, thinking_id},
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
// cache hints, and the source protocol's bookkeeping fields. `stream` and the usage option
// shape the response side. Everything else is mapped or rejected with a 400 naming it.

/// The thinking budget for a `-thinking` model when the client names no effort.
const DEFAULT_THINKING_BUDGET: u32 = 8192;

/// Fields of a source protocol that ask for what Antigravity cannot do: a 400, not silence.
const REFUSED_FIELDS: [(&str, &str); 6] = [
    ("logit_bias", "the upstream cannot bias tokens"),
    ("functions", "use tools and text output instead"),
    ("function_call", "use tools and text output instead"),
    ("audio", "use tools and text output instead"),
    ("modalities", "use tools and text output instead"),
    ("prediction", "use tools and text output instead"),
];

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
    request: &Request,
    cache: &SignatureCache,
    conversation: Option<&str>,
    profile: crate::Profile,
) -> Result<Translated, GatewayError> {
    if request.model.trim().is_empty() {
        return Err(GatewayError::invalid_request("model must not be empty").with_param("model"));
    }
    reject_unsupported(request)?;
    let mut spec = resolve(&request.model, profile);
    if spec.family == Family::Claude
        && !spec.thinking
        && reasoning_asked(request)
        && let Some(id) = thinking_id(&spec.upstream)
    {
        spec.upstream = id.to_owned();
        spec.thinking = true;
    }
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
    for part in &request.system {
        builder.system_part(part, "system")?;
    }
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
    clamp_output(&mut generation, spec.max_output);
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

fn reject_unsupported(request: &Request) -> Result<(), GatewayError> {
    let unsupported = |param: &str, why: &str| {
        Err(GatewayError::invalid_request(format!(
            "{param} is not supported by antigravity: {why}"
        ))
        .with_param(param))
    };
    let generation = &request.generation;
    if generation.candidates.is_some_and(|n| n != 1) {
        return unsupported("n", "only one choice per request");
    }
    if generation.logprobs == Some(true) {
        return unsupported("logprobs", "the upstream returns no log probabilities");
    }
    if generation.top_logprobs.is_some() {
        return unsupported("top_logprobs", "the upstream returns no log probabilities");
    }
    for (key, why) in REFUSED_FIELDS {
        let asked = request.extra.fields.get(key).is_some_and(|v| match v {
            Value::Null => false,
            Value::Object(map) => !map.is_empty(),
            _ => true,
        });
        if asked {
            return unsupported(key, why);
        }
    }
    Ok(())
}

fn declarations(
    request: &Request,
    names: &mut ToolNames,
) -> Result<Option<Vec<ToolDeclarations>>, GatewayError> {
    if request.tools.is_empty() {
        return Ok(None);
    }
    let mut functions = Vec::with_capacity(request.tools.len());
    for (index, tool) in request.tools.iter().enumerate() {
        let earlier = request.tools[..index]
            .iter()
            .position(|other| other.name == tool.name);
        if let Some(first) = earlier {
            let other = &request.tools[first];
            if other.kind == tool.kind
                && other.description == tool.description
                && other.parameters == tool.parameters
            {
                // The same declaration twice: one function.
                continue;
            }
            return Err(GatewayError::invalid_request(format!(
                "tool {:?} is declared twice with different definitions (tools[{first}] and \
                 tools[{index}]); function names must be unique",
                tool.name
            ))
            .with_param(format!("tools[{index}]")));
        }
        match &tool.kind {
            ToolKind::Function => functions.push(FunctionDeclaration {
                name: names.upstream(&tool.name),
                description: tool.description.clone(),
                parameters: schema::clean_parameters(&tool.parameters),
            }),
            ToolKind::Custom { .. } => {
                return Err(GatewayError::invalid_request(format!(
                    "custom tool {:?} is not supported by antigravity; declare it as a function",
                    tool.name
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
    fn system_part(&mut self, part: &Neutral, param: &str) -> Result<(), GatewayError> {
        match part {
            Neutral::Text { text, .. } | Neutral::Refusal { text, .. } => {
                if !text.is_empty() {
                    self.system.push(Part::text(text.clone()));
                }
                Ok(())
            }
            _ => Err(
                GatewayError::invalid_request("only text parts are allowed in this message")
                    .with_param(param),
            ),
        }
    }

    fn message(&mut self, index: usize, message: &Message) -> Result<(), GatewayError> {
        let at = |suffix: &str| format!("messages[{index}]{suffix}");
        let answers = message
            .parts
            .iter()
            .any(|p| matches!(p, Neutral::ToolResult { .. }));
        if !answers {
            self.answer_missing_results();
        }
        match message.role {
            Role::System | Role::Developer => {
                for (i, part) in message.parts.iter().enumerate() {
                    self.system_part(part, &at(&format!(".content[{i}]")))?;
                }
            }
            Role::User | Role::Tool => {
                if message.parts.is_empty() && message.role == Role::User {
                    return Err(
                        GatewayError::invalid_request("user message without content")
                            .with_param(at(".content")),
                    );
                }
                let mut parts = Vec::with_capacity(message.parts.len());
                for (i, part) in message.parts.iter().enumerate() {
                    let param = at(&format!(".content[{i}]"));
                    parts.extend(self.user_part(part, message, index, &param)?);
                }
                self.push("user", parts);
            }
            Role::Assistant => {
                let parts = self.model_parts(message, index)?;
                self.push("model", parts);
            }
        }
        Ok(())
    }

    /// One part of a user turn: text and images, or the result of an earlier call; `None` for
    /// an empty text, which the upstream would refuse.
    fn user_part(
        &mut self,
        part: &Neutral,
        message: &Message,
        index: usize,
        param: &str,
    ) -> Result<Option<Part>, GatewayError> {
        match part {
            Neutral::Text { text, .. } | Neutral::Refusal { text, .. } => {
                Ok((!text.is_empty()).then(|| Part::text(text.clone())))
            }
            Neutral::Image { source, .. } => match source {
                Media::Base64 { mime, data } => Ok(Some(Part {
                    inline_data: Some(InlineData {
                        mime_type: mime.clone(),
                        data: data.clone(),
                    }),
                    ..Part::default()
                })),
                _ => Err(GatewayError::invalid_request(
                    "image_url must be a base64 data: uri; antigravity cannot fetch image urls",
                )
                .with_param(format!("{param}.image_url.url"))),
            },
            Neutral::Audio { .. } => Err(GatewayError::invalid_request(
                "audio input is not supported by antigravity",
            )
            .with_param(param)),
            Neutral::Document { .. } => Err(GatewayError::invalid_request(
                "file input is not supported by antigravity",
            )
            .with_param(param)),
            Neutral::ToolResult {
                id,
                name,
                parts,
                is_error,
                ..
            } => self
                .tool_result(id, name.as_deref(), parts, *is_error, message, index)
                .map(Some),
            Neutral::Thinking { .. }
            | Neutral::RedactedThinking { .. }
            | Neutral::ToolCall { .. } => Err(GatewayError::invalid_request(
                "only the model's own turns may hold reasoning and tool calls",
            )
            .with_param(param)),
        }
    }

    fn tool_result(
        &mut self,
        id: &str,
        name: Option<&str>,
        parts: &[Neutral],
        is_error: bool,
        message: &Message,
        index: usize,
    ) -> Result<Part, GatewayError> {
        let at = |suffix: &str| format!("messages[{index}]{suffix}");
        let output = texts(parts, &at(".content"))?.join("\n");
        let response = if is_error {
            json!({ "error": output })
        } else {
            json!({ "output": output })
        };
        if id.is_empty() {
            // OpenAI's legacy `function` message: named, without a call id.
            let Some(name) = name.or(message.name.as_deref()) else {
                return Err(
                    GatewayError::invalid_request("function message without name")
                        .with_param(at(".name")),
                );
            };
            let name = self.names.upstream(name);
            return Ok(function_response(None, name, response));
        }
        let Some((_, name)) = self.calls.iter().find(|(call, _)| call == id) else {
            return Err(GatewayError::invalid_request(format!(
                "tool result for call {id:?}, which no earlier assistant message made"
            ))
            .with_param(at(".tool_call_id")));
        };
        let name = name.clone();
        self.pending.retain(|(call, _)| call != id);
        Ok(function_response(Some(id.to_owned()), name, response))
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
        let mut calls = 0;
        for part in &message.parts {
            match part {
                Neutral::Thinking {
                    text, signature, ..
                } => {
                    if text.trim().is_empty() && signature.is_none() {
                        continue;
                    }
                    // Reasoning goes back only with the signature the upstream gave it (sent
                    // by the client, or remembered here); unprovable reasoning is left out
                    // rather than signed with an invented value. Several blocks concatenated
                    // into one string come back as the blocks, each with its own signature.
                    let signature = signature
                        .clone()
                        .or_else(|| self.cache.thinking(text, family));
                    let blocks = match signature {
                        Some(signature) => vec![(text.clone(), signature)],
                        None => self
                            .cache
                            .turn(text, family)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|block| (block.text, block.signature))
                            .collect(),
                    };
                    for (text, signature) in blocks {
                        parts.push(Part {
                            text: Some(text),
                            thought: Some(true),
                            thought_signature: Some(signature),
                            ..Part::default()
                        });
                    }
                }
                // Antigravity has no form for encrypted reasoning: left out, as unprovable.
                Neutral::RedactedThinking { .. } => {}
                Neutral::Text {
                    text, signature, ..
                } => {
                    if !text.is_empty() {
                        parts.push(Part {
                            thought_signature: signature.clone(),
                            ..Part::text(text.clone())
                        });
                    }
                }
                Neutral::Refusal { text, .. } => {
                    if !text.is_empty() {
                        parts.push(Part::text(text.clone()));
                    }
                }
                Neutral::ToolCall {
                    id,
                    name,
                    arguments,
                    signature,
                    ..
                } => {
                    let param = if id.is_empty() {
                        format!("messages[{index}].function_call.arguments")
                    } else {
                        format!("messages[{index}].tool_calls[{calls}].function.arguments")
                    };
                    let args = decode_arguments(arguments, &param)?;
                    let upstream = self.names.upstream(name);
                    if id.is_empty() {
                        parts.push(Part {
                            function_call: Some(FunctionCall {
                                id: None,
                                name: upstream,
                                args,
                            }),
                            ..Part::default()
                        });
                        continue;
                    }
                    calls += 1;
                    // Whatever family signed the call gets its signature back; Gemini 3 refuses
                    // a call without one, so an unknown one is the documented sentinel there.
                    let signature = signature
                        .clone()
                        .or_else(|| self.cache.tool_call(id, family))
                        .or_else(|| (family == Family::Gemini3).then(|| SKIP_SIGNATURE.to_owned()));
                    parts.push(Part {
                        function_call: Some(FunctionCall {
                            id: Some(id.clone()),
                            name: upstream.clone(),
                            args,
                        }),
                        thought_signature: signature,
                        ..Part::default()
                    });
                    self.calls.push((id.clone(), upstream.clone()));
                    self.pending.push((id.clone(), upstream));
                }
                other => {
                    return Err(GatewayError::invalid_request(format!(
                        "an assistant message cannot hold {}",
                        kind(other)
                    ))
                    .with_param(format!("messages[{index}].content")));
                }
            }
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

/// What a part is, for messages.
fn kind(part: &Neutral) -> &'static str {
    match part {
        Neutral::Text { .. } => "text",
        Neutral::Image { .. } => "an image",
        Neutral::Document { .. } => "a document",
        Neutral::Audio { .. } => "audio",
        Neutral::Thinking { .. } => "reasoning",
        Neutral::RedactedThinking { .. } => "redacted reasoning",
        Neutral::ToolCall { .. } => "a tool call",
        Neutral::ToolResult { .. } => "a tool result",
        Neutral::Refusal { .. } => "a refusal",
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

/// The texts of parts that may only hold text (tool results).
fn texts(parts: &[Neutral], param: &str) -> Result<Vec<String>, GatewayError> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| match part {
            Neutral::Text { text, .. } | Neutral::Refusal { text, .. } => Ok(text.clone()),
            _ => Err(
                GatewayError::invalid_request("only text parts are allowed in this message")
                    .with_param(format!("{param}[{i}]")),
            ),
        })
        .collect()
}

fn generation_config(request: &Request) -> Result<GenerationConfig, GatewayError> {
    let (mime, schema) = match &request.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json".to_owned()), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => (
            Some("application/json".to_owned()),
            schema::clean_response(schema),
        ),
    };
    let generation = &request.generation;
    let stop = Some(generation.stop.clone()).filter(|s| !s.is_empty());
    if stop.as_ref().is_some_and(|s| s.len() > 5) {
        return Err(
            GatewayError::invalid_request("at most 5 stop sequences are supported")
                .with_param("stop"),
        );
    }
    Ok(GenerationConfig {
        temperature: generation.temperature,
        top_p: generation.top_p,
        top_k: generation.top_k,
        max_output_tokens: generation.max_tokens,
        stop_sequences: stop,
        candidate_count: generation.candidates,
        seed: generation.seed,
        presence_penalty: generation.presence_penalty,
        frequency_penalty: generation.frequency_penalty,
        response_mime_type: mime,
        response_schema: schema,
        thinking_config: None,
    })
}

/// Keep the output limit within what the model accepts, and the thinking budget below it.
fn clamp_output(generation: &mut GenerationConfig, limit: Option<u32>) {
    let Some(limit) = limit else {
        return;
    };
    let max = generation.max_output_tokens.map(|max| max.min(limit));
    generation.max_output_tokens = max;
    if let (Some(max), Some(thinking)) = (max, generation.thinking_config.as_mut())
        && let Some(budget) = thinking.thinking_budget.as_mut()
        && *budget >= max
    {
        // The budget is part of the output: leave the answer half of what remains.
        *budget = max / 2;
    }
}

fn budget(effort: Effort) -> u32 {
    match effort {
        Effort::None => 0,
        Effort::Minimal => 1024,
        Effort::Low => 2048,
        Effort::Medium => 8192,
        Effort::High => 16384,
        Effort::Xhigh => 32768,
    }
}

/// Whether the request asks for reasoning: an effort other than `none`, a budget, or thinking
/// switched on.
fn reasoning_asked(request: &Request) -> bool {
    request.reasoning.as_ref().is_some_and(|r| {
        !r.is_off()
            && (r.effort.is_some()
                || r.budget_tokens.is_some()
                || matches!(
                    r.mode,
                    Some(ReasoningMode::Enabled | ReasoningMode::Adaptive)
                ))
    })
}

fn thinking_config(request: &Request, spec: &ModelSpec) -> Option<ThinkingConfig> {
    let reasoning = request.reasoning.as_ref();
    if reasoning.is_some_and(|r| r.is_off()) {
        // Gemini 2.5 Flash can switch thinking off; others simply get no thinking config.
        return (spec.family == Family::Gemini).then_some(ThinkingConfig {
            include_thoughts: false,
            thinking_budget: Some(0),
            thinking_level: None,
        });
    }
    let effort = reasoning.and_then(|r| r.effort);
    let explicit_budget = reasoning.and_then(|r| r.budget_tokens);
    let asked = reasoning_asked(request);
    match spec.family {
        Family::Gemini3 => Some(ThinkingConfig {
            include_thoughts: true,
            thinking_budget: None,
            thinking_level: effort.map(|e| {
                if matches!(e, Effort::Minimal | Effort::Low) {
                    "low"
                } else {
                    "high"
                }
                .to_owned()
            }),
        }),
        // Claude thinks only under a thinking id (`translate` moved a plain id to its twin).
        Family::Claude if !spec.thinking => None,
        _ if asked || spec.thinking => Some(ThinkingConfig {
            include_thoughts: true,
            thinking_budget: Some(
                explicit_budget.unwrap_or_else(|| effort.map_or(DEFAULT_THINKING_BUDGET, budget)),
            ),
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
    request: &Request,
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
    let undeclared = |name: &str| {
        Err(GatewayError::invalid_request(format!(
            "tool_choice names function {name:?}, which the request does not declare in tools"
        ))
        .with_param("tool_choice"))
    };
    let declared = |name: &str| request.tools.iter().any(|tool| tool.name == name);
    match &request.tool_choice {
        None if has_tools => Ok(config("VALIDATED", None)),
        None => Ok(None),
        Some(ToolChoice::Auto) => Ok(has_tools.then(|| config("AUTO", None)).flatten()),
        Some(ToolChoice::None) => Ok(has_tools.then(|| config("NONE", None)).flatten()),
        Some(ToolChoice::Required | ToolChoice::Tool(_)) if !has_tools => needs_tools(),
        Some(ToolChoice::Required) => Ok(config("ANY", None)),
        Some(ToolChoice::Tool(name)) if !declared(name) => undeclared(name),
        Some(ToolChoice::Tool(name)) => Ok(config("ANY", Some(vec![names.upstream(name)]))),
        Some(ToolChoice::Allowed { tools, required }) => {
            if let Some(name) = tools.iter().find(|name| !declared(name)) {
                return undeclared(name);
            }
            let listed: Vec<String> = tools.iter().map(|name| names.upstream(name)).collect();
            let mode = if *required { "ANY" } else { "AUTO" };
            Ok(config(mode, (!listed.is_empty()).then_some(listed)))
        }
    }
}

/// A stable id per conversation, so the upstream can reuse its cache: the client's conversation
/// id when given, else the first user message.
fn session_id(conversation: Option<&str>, messages: &[Message]) -> String {
    // A hash whose value Rust's releases do not change: the upstream sees the same id for the
    // same conversation across restarts and upgrades.
    let mut hasher = crate::hash::StableHasher::new();
    match conversation {
        Some(id) => hasher.write_str(id),
        None => {
            let first = messages.iter().find(|m| m.role == Role::User);
            for part in first.map(|m| m.parts.as_slice()).unwrap_or_default() {
                if let Neutral::Text { text, .. } = part {
                    hasher.write_str(text);
                }
            }
        }
    }
    format!("-{}", hasher.finish() >> 1)
}

#[cfg(test)]
mod tests;
