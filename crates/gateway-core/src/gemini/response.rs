//! `generateContent` responses (also each chunk of `streamGenerateContent`) and the model list.
//!
//! The error envelope (`{"error": {"code", "message", "status"}}`) is written by
//! [`Dialect::Gemini`](crate::Dialect::Gemini) and read by
//! [`dialect::error_in_body`](crate::dialect::error_in_body); it has no type here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::{Content, Extra};

/// A whole response, or one chunk of a stream (a partial candidate; the last chunk carries the
/// `finishReason` and the final `usageMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The answers (one: the gateway refuses `candidateCount` > 1). Absent when the prompt was
    /// blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
    /// Why the prompt was blocked, and its safety ratings.
    #[serde(
        default,
        alias = "prompt_feedback",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts (in a stream: counts so far, final on the last chunk).
    #[serde(
        default,
        alias = "usage_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model version that answered.
    #[serde(
        default,
        alias = "model_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_version: Option<String>,
    /// The response id (the same on every chunk of a stream).
    #[serde(
        default,
        alias = "response_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_id: Option<String>,
    /// Everything else; an in-stream error arrives here as `error`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// What the model produced (role `model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Why it stopped: `STOP`, `MAX_TOKENS`, `SAFETY`, `RECITATION`, `MALFORMED_FUNCTION_CALL`,
    /// ... (kept as a string: Google adds values).
    #[serde(
        default,
        alias = "finish_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub finish_reason: Option<String>,
    /// Safety ratings of the answer.
    #[serde(
        default,
        alias = "safety_ratings",
        skip_serializing_if = "Option::is_none"
    )]
    pub safety_ratings: Option<Vec<Value>>,
    /// Position of the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Sources the answer recites.
    #[serde(
        default,
        alias = "citation_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub citation_metadata: Option<Value>,
    /// Everything else (`groundingMetadata`, `avgLogprobs`, `finishMessage`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `promptFeedback`: present when the prompt itself was judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// Why the prompt was blocked (`SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `OTHER`, ...).
    #[serde(
        default,
        alias = "block_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub block_reason: Option<String>,
    /// Safety ratings of the prompt.
    #[serde(
        default,
        alias = "safety_ratings",
        skip_serializing_if = "Option::is_none"
    )]
    pub safety_ratings: Option<Vec<Value>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usageMetadata`. `promptTokenCount` includes the cached tokens; the total is prompt +
/// tool-use prompt + candidates + thoughts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Tokens of the prompt, cached ones included.
    #[serde(
        default,
        alias = "prompt_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_token_count: Option<u64>,
    /// Tokens of the answer, thinking excluded.
    #[serde(
        default,
        alias = "candidates_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub candidates_token_count: Option<u64>,
    /// Thinking tokens.
    #[serde(
        default,
        alias = "thoughts_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub thoughts_token_count: Option<u64>,
    /// Prompt tokens read from a cache.
    #[serde(
        default,
        alias = "cached_content_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_content_token_count: Option<u64>,
    /// Prompt tokens of tool results the model fetched itself (search, code execution).
    #[serde(
        default,
        alias = "tool_use_prompt_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_use_prompt_token_count: Option<u64>,
    /// Everything counted.
    #[serde(
        default,
        alias = "total_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_token_count: Option<u64>,
    /// Everything else (`promptTokensDetails`, `candidatesTokensDetails`, `trafficType`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /v1beta/models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelList {
    /// The models.
    #[serde(default, deserialize_with = "super::request::nullable")]
    pub models: Vec<Model>,
    /// The token of the next page, when there is one.
    #[serde(
        default,
        alias = "next_page_token",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_page_token: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One model, as `GET /v1beta/models/{model}` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// `models/{id}`.
    pub name: String,
    /// The base model id.
    #[serde(
        default,
        alias = "base_model_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_model_id: Option<String>,
    /// The version, e.g. `001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A human-readable name.
    #[serde(
        default,
        alias = "display_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The context window.
    #[serde(
        default,
        alias = "input_token_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_token_limit: Option<u64>,
    /// The output limit.
    #[serde(
        default,
        alias = "output_token_limit",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_token_limit: Option<u64>,
    /// The methods it serves: `generateContent`, `countTokens`, ...
    #[serde(
        default,
        alias = "supported_generation_methods",
        skip_serializing_if = "Option::is_none"
    )]
    pub supported_generation_methods: Option<Vec<String>>,
    /// Whether it thinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
    /// Everything else (`temperature`, `topP`, `topK`, `maxTemperature`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Model {
    /// An entry for the model clients call `id`: name `models/{id}`, displayed as `id`,
    /// serving `generateContent`, `streamGenerateContent` and `countTokens`.
    pub fn new(id: &str) -> Self {
        let id = id.strip_prefix("models/").unwrap_or(id);
        Self {
            name: format!("models/{id}"),
            base_model_id: None,
            version: None,
            display_name: Some(id.to_owned()),
            description: None,
            input_token_limit: None,
            output_token_limit: None,
            supported_generation_methods: Some(
                ["generateContent", "streamGenerateContent", "countTokens"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            thinking: None,
            extra: Extra::new(),
        }
    }

    /// The id clients put in the URL: the name without `models/`.
    pub fn id(&self) -> &str {
        self.name.strip_prefix("models/").unwrap_or(&self.name)
    }
}
