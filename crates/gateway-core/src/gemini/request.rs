//! `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`, `:countTokens`)
//! request bodies.
//!
//! Field names are the API's camelCase; the snake_case spellings are accepted too, because the
//! API accepts them and clients send them: `curl` examples in Google's documentation use
//! `system_instruction` and `inline_data`, and google-genai serializes nested objects it passes
//! through (`thinking_config`, `function_calling_config`, safety settings) with their Python
//! names. Encoding always writes camelCase.
//!
//! Floating-point settings are kept as [`Number`] so that `1` and `1.0` come back as sent.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

/// Fields this crate does not model, kept so they reach the upstream unchanged.
pub type Extra = Map<String, Value>;

/// `null` means the same as absent: the type's default.
pub(super) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A `generateContent` request as clients send it. The model and whether to stream come from
/// the URL, not the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation so far, oldest first.
    #[serde(default, deserialize_with = "nullable")]
    pub contents: Vec<Content>,
    /// Instructions for the whole conversation (parts only; the role is ignored by the API).
    #[serde(
        default,
        alias = "system_instruction",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_instruction: Option<Content>,
    /// Functions the model may call, and built-in tools (Google Search, code execution, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which functions the model must call.
    #[serde(
        default,
        alias = "tool_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_config: Option<ToolConfig>,
    /// Sampling, length, output format and thinking settings.
    #[serde(
        default,
        alias = "generation_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub generation_config: Option<GenerationConfig>,
    /// Safety filter thresholds per harm category.
    #[serde(
        default,
        alias = "safety_settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub safety_settings: Option<Vec<SafetySetting>>,
    /// A context cache on Google's side (`cachedContents/...`); the gateway refuses it.
    #[serde(
        default,
        alias = "cached_content",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_content: Option<String>,
    /// Billing labels (string keys and values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Map<String, Value>>,
    /// Everything else, passed on unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One turn: a role and its parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// `user` or `model`; optional for a single-turn request and in `systemInstruction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What the turn says, in order (absent in some responses cut before any output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Content {
    /// A turn of `role` with `parts`.
    pub fn new(role: impl Into<String>, parts: Vec<Part>) -> Self {
        Self {
            role: Some(role.into()),
            parts: Some(parts),
            extra: Extra::new(),
        }
    }

    /// The parts, none when absent.
    pub fn parts(&self) -> &[Part] {
        self.parts.as_deref().unwrap_or_default()
    }
}

/// One part of a turn: exactly one data field (`text`, `inlineData`, `fileData`,
/// `functionCall`, `functionResponse`, `executableCode`, `codeExecutionResult`), and metadata
/// that may accompany it (`thought`, `thoughtSignature`, and unknown fields such as
/// `videoMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text (the model's reasoning summary when `thought` is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether this part is the model's thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// An opaque signature of the model's reasoning, to be sent back exactly as received.
    #[serde(
        default,
        alias = "thought_signature",
        skip_serializing_if = "Option::is_none"
    )]
    pub thought_signature: Option<String>,
    /// Inline bytes (images, audio, PDFs, ...).
    #[serde(
        default,
        alias = "inline_data",
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_data: Option<Blob>,
    /// A reference to uploaded or remote data.
    #[serde(default, alias = "file_data", skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A function call by the model.
    #[serde(
        default,
        alias = "function_call",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_call: Option<FunctionCall>,
    /// The result of a function call, from the client.
    #[serde(
        default,
        alias = "function_response",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_response: Option<FunctionResponse>,
    /// Code the model wrote for the code-execution tool (kept as sent).
    #[serde(
        default,
        alias = "executable_code",
        skip_serializing_if = "Option::is_none"
    )]
    pub executable_code: Option<Value>,
    /// The outcome of running [`Part::executable_code`] (kept as sent).
    #[serde(
        default,
        alias = "code_execution_result",
        skip_serializing_if = "Option::is_none"
    )]
    pub code_execution_result: Option<Value>,
    /// Everything else (`videoMetadata`, `partMetadata`, `mediaResolution`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Part {
    /// A plain text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Whether the part is thinking (`thought: true`).
    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

/// `inlineData`: base64 bytes and their media type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// The media type, e.g. `image/png`.
    #[serde(default, alias = "mime_type")]
    pub mime_type: String,
    /// Base64 data.
    #[serde(default)]
    pub data: String,
    /// Everything else (`displayName` on Vertex).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `fileData`: a file uploaded with the Files API, a Cloud Storage object or a web URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// The media type, when given.
    #[serde(default, alias = "mime_type", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Where the file is.
    #[serde(default, alias = "file_uri")]
    pub file_uri: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `functionCall`: the model asks for a function to be run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The call id, echoed by its response (often absent on the Gemini API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `functionResponse`: the client's result of a function call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionResponse {
    /// The id of the call it answers, when the call had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The result as a JSON object; by convention `{"output": ...}` or `{"error": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Media results (`inlineData` / `fileData` parts), on models that take them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
    /// Everything else (`willContinue`, `scheduling`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `tools` entry: function declarations, or a built-in tool kept as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Functions the model may call.
    #[serde(
        default,
        alias = "function_declarations",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    /// Everything else: `googleSearch`, `codeExecution`, `urlContext`, `retrieval`, ...
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function the model may call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// The name the model calls it by.
    #[serde(default)]
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The arguments in Google's OpenAPI-subset schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// The arguments as a JSON schema (exclusive with `parameters`).
    #[serde(
        default,
        alias = "parameters_json_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub parameters_json_schema: Option<Value>,
    /// Everything else (`response`, `responseJsonSchema`, `behavior`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `toolConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// How the model may call functions.
    #[serde(
        default,
        alias = "function_calling_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_calling_config: Option<FunctionCallingConfig>,
    /// Everything else (`retrievalConfig`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY`, `NONE` or `VALIDATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// With `ANY` (or `VALIDATED`): the functions the model may choose from.
    #[serde(
        default,
        alias = "allowed_function_names",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_function_names: Option<Vec<String>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `generationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    /// Nucleus sampling.
    #[serde(default, alias = "top_p", skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Number>,
    /// Top-k sampling (google-genai sends it as a float).
    #[serde(default, alias = "top_k", skip_serializing_if = "Option::is_none")]
    pub top_k: Option<Number>,
    /// How many candidates to generate; the gateway serves one.
    #[serde(
        default,
        alias = "candidate_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub candidate_count: Option<u32>,
    /// The output-token limit (thinking included).
    #[serde(
        default,
        alias = "max_output_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_output_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(
        default,
        alias = "stop_sequences",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_sequences: Option<Vec<String>>,
    /// Seed for deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(
        default,
        alias = "presence_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    pub presence_penalty: Option<Number>,
    /// Frequency penalty.
    #[serde(
        default,
        alias = "frequency_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    pub frequency_penalty: Option<Number>,
    /// Whether to return log probabilities.
    #[serde(
        default,
        alias = "response_logprobs",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_logprobs: Option<bool>,
    /// How many top log probabilities per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// The output media type: `text/plain`, `application/json`, `text/x.enum`.
    #[serde(
        default,
        alias = "response_mime_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_mime_type: Option<String>,
    /// The output schema in Google's OpenAPI subset.
    #[serde(
        default,
        alias = "response_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_schema: Option<Value>,
    /// The output schema as a JSON schema (exclusive with `responseSchema`).
    #[serde(
        default,
        alias = "response_json_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_json_schema: Option<Value>,
    /// Thinking settings.
    #[serde(
        default,
        alias = "thinking_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub thinking_config: Option<ThinkingConfig>,
    /// Everything else (`responseModalities`, `speechConfig`, `imageConfig`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Whether to return thought summaries (`thought: true` parts).
    #[serde(
        default,
        alias = "include_thoughts",
        skip_serializing_if = "Option::is_none"
    )]
    pub include_thoughts: Option<bool>,
    /// Thinking tokens: 0 turns thinking off, -1 lets the model decide (Gemini 2.5).
    #[serde(
        default,
        alias = "thinking_budget",
        skip_serializing_if = "Option::is_none"
    )]
    pub thinking_budget: Option<i32>,
    /// `MINIMAL`, `LOW`, `MEDIUM` or `HIGH` (Gemini 3; any case is accepted).
    #[serde(
        default,
        alias = "thinking_level",
        skip_serializing_if = "Option::is_none"
    )]
    pub thinking_level: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `safetySettings` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SafetySetting {
    /// The harm category, e.g. `HARM_CATEGORY_HARASSMENT`.
    #[serde(default)]
    pub category: String,
    /// The blocking threshold, e.g. `BLOCK_NONE`.
    #[serde(default)]
    pub threshold: String,
    /// Everything else (`method` on Vertex).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `POST /v1beta/models/{model}:countTokens`: either bare `contents` or a whole
/// `generateContentRequest` (whose tools and system instruction count too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest {
    /// The contents to count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Vec<Content>>,
    /// A whole request to count (it carries its own `model` field, kept in its `extra`).
    #[serde(
        default,
        alias = "generate_content_request",
        skip_serializing_if = "Option::is_none"
    )]
    pub generate_content_request: Option<GenerateContentRequest>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CountTokensRequest {
    /// The request whose tokens are counted: the embedded `generateContentRequest`, or one
    /// made of the bare `contents`.
    pub fn into_generate_content_request(self) -> GenerateContentRequest {
        match self.generate_content_request {
            Some(mut request) => {
                request.extra.remove("model");
                request
            }
            None => GenerateContentRequest {
                contents: self.contents.unwrap_or_default(),
                ..GenerateContentRequest::default()
            },
        }
    }
}

/// The `countTokens` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    /// Tokens of the prompt.
    #[serde(default)]
    pub total_tokens: u64,
    /// Of those, tokens in the cached content.
    #[serde(
        default,
        alias = "cached_content_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_content_token_count: Option<u64>,
    /// Everything else (`promptTokensDetails`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}
