//! Antigravity stream events → OpenAI chunks, one upstream event at a time; and the collector
//! that turns those chunks into one `chat.completion` for non-streaming requests.
//!
//! Output contract: a role chunk first; reasoning as `reasoning_content`; text as `content`;
//! every function call as a complete tool-call delta with its own index and a unique id; images
//! as markdown data URIs; exactly one finish chunk; then a usage chunk when asked. A stream that
//! ends without a finish reason is a `Truncated` error, never a finish.

use std::sync::Arc;

use serde_json::{Map, Value};

use gateway_core::{
    ErrorKind, GatewayError, RetryHint,
    openai::{
        ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, CompletionTokensDetails, Delta,
        Extra, FinishReason, FunctionCall, FunctionCallDelta, PromptTokensDetails, ResponseMessage,
        Role, ToolCall, ToolCallDelta, Usage,
    },
};

use crate::{
    models::Family,
    names::ToolNames,
    signatures::SignatureCache,
    wire::{GenerateResponse, Part, StreamEvent, UsageMetadata},
};

/// What every chunk of one response shares.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMeta {
    /// `chatcmpl-...`.
    pub(crate) id: String,
    /// Unix seconds of the request.
    pub(crate) created: u64,
    /// The model name the client asked for.
    pub(crate) model: String,
    /// Whether to send the usage chunk.
    pub(crate) include_usage: bool,
}

/// Translates one response's upstream events.
#[derive(Debug)]
pub(crate) struct StreamTranslator {
    meta: ResponseMeta,
    names: ToolNames,
    family: Family,
    cache: Arc<SignatureCache>,
    started: bool,
    tool_calls: u32,
    finish: Option<String>,
    usage: Option<UsageMetadata>,
    thinking: String,
    thinking_signature: Option<String>,
}

impl StreamTranslator {
    pub(crate) fn new(
        meta: ResponseMeta,
        names: ToolNames,
        family: Family,
        cache: Arc<SignatureCache>,
    ) -> Self {
        Self {
            meta,
            names,
            family,
            cache,
            started: false,
            tool_calls: 0,
            finish: None,
            usage: None,
            thinking: String::new(),
            thinking_signature: None,
        }
    }

    /// Translate one event's `data`.
    pub(crate) fn event(&mut self, data: &str) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
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
        let mut chunks = Vec::new();
        self.open(&mut chunks);
        self.response(response, &mut chunks);
        Ok(chunks)
    }

    /// The role chunk, once, before anything else.
    fn open(&mut self, chunks: &mut Vec<ChatCompletionChunk>) {
        if !self.started {
            self.started = true;
            chunks.push(self.chunk(Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            }));
        }
    }

    fn response(&mut self, response: GenerateResponse, chunks: &mut Vec<ChatCompletionChunk>) {
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        let Some(candidate) = response.candidates.into_iter().next() else {
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(delta) = self.part(part) {
                chunks.push(self.chunk(delta));
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(reason);
        }
    }

    fn part(&mut self, part: Part) -> Option<Delta> {
        if part.is_thought() {
            if let Some(signature) = part.thought_signature {
                self.thinking_signature = Some(signature);
            }
            let text = part.text.filter(|t| !t.is_empty())?;
            self.thinking.push_str(&text);
            return Some(Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            });
        }
        if part.text.as_deref().is_some_and(str::is_empty) && part.function_call.is_none() {
            // An empty text part carries at most a signature for the thinking before it.
            if let Some(signature) = part.thought_signature {
                self.thinking_signature = Some(signature);
            }
            return None;
        }
        self.close_thinking();
        if let Some(call) = part.function_call {
            let index = self.tool_calls;
            self.tool_calls += 1;
            let id = call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{}_{index}", id_suffix(&self.meta.id)));
            if let Some(signature) = &part.thought_signature {
                self.cache.remember_tool_call(&id, signature, self.family);
            }
            let arguments = match call.args {
                Value::Null => "{}".to_owned(),
                args => args.to_string(),
            };
            return Some(Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(self.names.client(&call.name).to_owned()),
                        arguments: Some(arguments),
                    }),
                }]),
                ..Delta::default()
            });
        }
        if let Some(image) = part.inline_data {
            return Some(Delta {
                content: Some(format!(
                    "![image](data:{};base64,{})",
                    image.mime_type, image.data
                )),
                ..Delta::default()
            });
        }
        let text = part.text?;
        Some(Delta {
            content: Some(text),
            ..Delta::default()
        })
    }

    /// A thinking block ends: remember its signature for the next turn.
    fn close_thinking(&mut self) {
        if let Some(signature) = self.thinking_signature.take()
            && !self.thinking.trim().is_empty()
        {
            self.cache
                .remember_thinking(&self.thinking, &signature, self.family);
        }
        self.thinking.clear();
    }

    /// The upstream stream ended: the finish chunk and the usage chunk, or the truncation error.
    pub(crate) fn finish(&mut self) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
        self.close_thinking();
        let Some(reason) = self.finish.take() else {
            return Err(GatewayError::new(
                ErrorKind::Truncated,
                "antigravity stream ended without a finish reason",
            ));
        };
        let finish_reason = match reason.as_str() {
            "MAX_TOKENS" => FinishReason::Length,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
            | "IMAGE_SAFETY" => FinishReason::ContentFilter,
            "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => {
                return Err(GatewayError::new(
                    ErrorKind::UpstreamProtocol,
                    format!("the model produced an invalid function call ({reason})"),
                ));
            }
            _ if self.tool_calls > 0 => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        let mut chunks = Vec::with_capacity(3);
        self.open(&mut chunks);
        let mut finish = self.chunk(Delta::default());
        finish.choices[0].finish_reason = Some(finish_reason);
        chunks.push(finish);
        if self.meta.include_usage {
            let mut usage = self.chunk(Delta::default());
            usage.choices.clear();
            usage.usage = Some(convert_usage(self.usage.unwrap_or_default()));
            chunks.push(usage);
        }
        Ok(chunks)
    }

    fn chunk(&self, delta: Delta) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.meta.created,
            model: self.meta.model.clone(),
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

fn id_suffix(response_id: &str) -> &str {
    response_id.strip_prefix("chatcmpl-").unwrap_or(response_id)
}

/// OpenAI usage from Gemini's: completion includes reasoning, total is their sum.
pub(crate) fn convert_usage(usage: UsageMetadata) -> Usage {
    let completion = usage.candidates_token_count + usage.thoughts_token_count;
    Usage {
        prompt_tokens: usage.prompt_token_count,
        completion_tokens: completion,
        total_tokens: usage.prompt_token_count + completion,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(usage.cached_content_token_count),
            ..PromptTokensDetails::default()
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: Some(usage.thoughts_token_count),
            ..CompletionTokensDetails::default()
        }),
        extra: Extra::new(),
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

/// Gathers chunks into one completion.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    content: String,
    reasoning: String,
    calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    first: Option<(String, u64, String)>,
}

impl Collector {
    pub(crate) fn push(&mut self, chunk: ChatCompletionChunk) {
        if self.first.is_none() {
            self.first = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices {
            let delta = choice.delta;
            if let Some(text) = delta.content {
                self.content.push_str(&text);
            }
            if let Some(text) = delta.reasoning_content {
                self.reasoning.push_str(&text);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                let index = call.index as usize;
                if self.calls.len() <= index {
                    self.calls.resize_with(index + 1, || ToolCall {
                        id: String::new(),
                        kind: "function".to_owned(),
                        function: FunctionCall {
                            name: String::new(),
                            arguments: String::new(),
                        },
                        extra: Extra::new(),
                    });
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call.id {
                    slot.id = id;
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name {
                        slot.function.name = name;
                    }
                    if let Some(arguments) = function.arguments {
                        slot.function.arguments.push_str(&arguments);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                self.finish = choice.finish_reason;
            }
        }
    }

    pub(crate) fn finish(self, meta: &ResponseMeta) -> ChatCompletion {
        let (id, created, model) = self
            .first
            .unwrap_or_else(|| (meta.id.clone(), meta.created, meta.model.clone()));
        let has_calls = !self.calls.is_empty();
        ChatCompletion {
            id,
            object: "chat.completion".to_owned(),
            created,
            model,
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: Role::Assistant,
                    content: if self.content.is_empty() && has_calls {
                        None
                    } else {
                        Some(self.content)
                    },
                    reasoning_content: (!self.reasoning.is_empty()).then_some(self.reasoning),
                    tool_calls: has_calls.then_some(self.calls),
                    refusal: None,
                    extra: Extra::new(),
                },
                finish_reason: self.finish,
                logprobs: None,
                extra: Extra::new(),
            }],
            usage: self.usage,
            system_fingerprint: None,
            extra: Extra::new(),
        }
    }
}

#[cfg(test)]
mod tests;
