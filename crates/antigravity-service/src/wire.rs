//! The Antigravity (Cloud Code `v1internal`) wire types. Private to this crate.
//!
//! Field names follow the upstream's camelCase JSON. Every optional field is skipped when absent,
//! so the request we send contains exactly what the translation decided.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The envelope around a generate request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope<'a> {
    /// The project of the account whose token is sent.
    pub(crate) project: &'a str,
    /// The upstream model id.
    pub(crate) model: &'a str,
    /// `agent/<uuid>`.
    pub(crate) request_id: String,
    /// Always `antigravity`.
    pub(crate) user_agent: &'static str,
    /// `agent`, or `image_gen` for image models.
    pub(crate) request_type: &'static str,
    /// The request itself.
    pub(crate) request: &'a GenerateRequest,
}

/// The envelope around a generate request of the Gemini CLI's Code Assist (its
/// `converter.ts`, `toGenerateContentRequest`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CodeAssistEnvelope<'a> {
    /// The model id as the client named it.
    pub(crate) model: &'a str,
    /// The project of the account whose token is sent.
    pub(crate) project: &'a str,
    /// A fresh id per prompt.
    pub(crate) user_prompt_id: String,
    /// The request itself.
    pub(crate) request: &'a GenerateRequest,
}

/// A Gemini `GenerateContentRequest` as Antigravity takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateRequest {
    pub(crate) contents: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) system_instruction: Option<SystemInstruction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tools: Option<Vec<ToolDeclarations>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) generation_config: Option<GenerationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<String>,
}

/// `systemInstruction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SystemInstruction {
    pub(crate) parts: Vec<Part>,
}

/// One turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Content {
    /// `user` or `model`.
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

/// One part of a turn. Exactly one payload field is set; `thought` and `thoughtSignature` may
/// accompany it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought_signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inline_data: Option<InlineData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_call: Option<FunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_response: Option<FunctionResponse>,
}

impl Part {
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    pub(crate) fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

/// Inline bytes (images).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InlineData {
    pub(crate) mime_type: String,
    pub(crate) data: String,
}

/// A function call by the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Value,
}

/// A function result for the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) response: Value,
}

/// `tools[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolDeclarations {
    pub(crate) function_declarations: Vec<FunctionDeclaration>,
}

/// One declared function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FunctionDeclaration {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parameters: Option<Value>,
}

/// `toolConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig {
    pub(crate) function_calling_config: FunctionCallingConfig,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfig {
    /// `AUTO`, `ANY`, `NONE` or `VALIDATED`.
    pub(crate) mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_function_names: Option<Vec<String>>,
}

/// `generationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) candidate_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response_mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfig {
    pub(crate) include_thoughts: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_budget: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_level: Option<String>,
}

/// One event of the upstream stream, wrapped (`{"response": {...}}`) or not.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StreamEvent {
    Wrapped { response: GenerateResponse },
    Error { error: Map<String, Value> },
    Bare(GenerateResponse),
}

/// A `GenerateContentResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    /// Present when the prompt itself was judged; with a `blockReason`, no candidate follows.
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
}

/// `promptFeedback`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    /// Why the prompt was refused (`SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `OTHER`, ...).
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

/// One candidate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub(crate) prompt_token_count: u64,
    /// The prompt of the tools the upstream ran itself (search grounding, code execution):
    /// input, counted in `totalTokenCount` but not in `promptTokenCount`.
    #[serde(default)]
    pub(crate) tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub(crate) candidates_token_count: u64,
    #[serde(default)]
    pub(crate) thoughts_token_count: u64,
    #[serde(default)]
    pub(crate) cached_content_token_count: u64,
}

/// `fetchAvailableModels` response: models keyed by id.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AvailableModels {
    #[serde(default)]
    pub(crate) models: Map<String, Value>,
}
