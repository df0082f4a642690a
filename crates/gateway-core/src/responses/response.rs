//! The response object: what a non-streaming request returns, and what `response.created`,
//! `response.completed` and their kin carry in a stream.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Extra, Item, ReasoningConfig, ResponsesRequest, TextConfig, Tool, ToolChoice, ToolChoiceMode,
};

/// A response as the Responses API returns it.
///
/// A field sent as `null` is treated as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    /// The response id (`resp_...`).
    pub id: String,
    /// Always `response`.
    #[serde(default = "response_object")]
    pub object: String,
    /// Unix seconds of its creation.
    #[serde(default)]
    pub created_at: u64,
    /// `completed`, `incomplete`, `failed`, `in_progress`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Why an `incomplete` response stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_details: Option<IncompleteDetails>,
    /// Why a `failed` response failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// The model that served.
    pub model: String,
    /// What the model produced, in order.
    #[serde(default)]
    pub output: Vec<Item>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResponseUsage>,
    /// The request's settings, echoed.
    #[serde(flatten)]
    pub settings: ResponseSettings,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

fn response_object() -> String {
    "response".to_owned()
}

/// The state of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Finished normally.
    Completed,
    /// Stopped early (the token limit, a content filter).
    Incomplete,
    /// Failed; `error` says why.
    Failed,
    /// Still being generated.
    InProgress,
    /// Waiting to start (background mode).
    Queued,
    /// Cancelled by the client.
    Cancelled,
}

/// `incomplete_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `error` of a failed response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    /// `server_error`, `rate_limit_exceeded`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// The input tokens' breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<InputTokensDetails>,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// The output tokens' breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Input plus output.
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Output tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The request settings a response echoes. The SDKs require `tools`, `tool_choice` and
/// `parallel_tool_calls` in every response object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseSettings {
    /// The request's `instructions` (a string, or items for prompt templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    /// The tools offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// The tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether parallel tool calls were allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The output format and verbosity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Reasoning effort and summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// The output-token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The truncation strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    /// Whether the response is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// The request's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The end-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The response this one continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// The processing tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The prompt cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
}

impl ResponseSettings {
    /// What a response to `request` echoes, with the API's defaults for the fields the SDKs
    /// require (`tools: []`, `tool_choice: "auto"`, `parallel_tool_calls: true`).
    pub fn echo(request: &ResponsesRequest) -> Self {
        Self {
            instructions: request.instructions.clone().map(Value::String),
            tools: Some(request.tools.clone().unwrap_or_default()),
            tool_choice: Some(
                request
                    .tool_choice
                    .clone()
                    .unwrap_or(ToolChoice::Mode(ToolChoiceMode::Auto)),
            ),
            parallel_tool_calls: Some(request.parallel_tool_calls.unwrap_or(true)),
            text: request.text.clone(),
            reasoning: request.reasoning.clone(),
            max_output_tokens: request.max_output_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            truncation: request.truncation.clone(),
            store: request.store,
            metadata: request.metadata.clone(),
            user: request.user.clone(),
            previous_response_id: request.previous_response_id.clone(),
            service_tier: request.service_tier.clone(),
            prompt_cache_key: request.prompt_cache_key.clone(),
        }
    }

    /// The settings of a response whose request is unknown: only the required defaults.
    pub fn required() -> Self {
        Self {
            tools: Some(Vec::new()),
            tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
            parallel_tool_calls: Some(true),
            ..Self::default()
        }
    }
}
