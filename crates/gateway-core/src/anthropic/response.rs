//! Messages responses, stream events, usage and the `count_tokens` answer.
//!
//! The error envelope and the terminal `error` event are written by
//! [`Dialect::Anthropic`](crate::Dialect::Anthropic); they are not repeated here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::{ContentBlock, Extra, Role, tagged_union};

/// A whole (non-streamed) message, and the skeleton a stream's `message_start` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_...`, unique per response.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    /// Always `assistant`.
    #[serde(default = "assistant")]
    pub role: Role,
    /// What the model produced, in order.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// The model that served.
    pub model: String,
    /// Why the model stopped; `null` in `message_start`.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that was generated, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
    /// Everything else (`container`, `stop_details`, `context_management`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant() -> Role {
    Role::Assistant
}

/// Why the model stopped; reasons this crate does not know are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StopReason {
    /// `end_turn`: a natural end.
    EndTurn,
    /// `max_tokens`: the output-token limit.
    MaxTokens,
    /// `stop_sequence`: one of the stop sequences.
    StopSequence,
    /// `tool_use`: the model called tools.
    ToolUse,
    /// `pause_turn`: a long server-tool turn paused; send the response back to continue.
    PauseTurn,
    /// `refusal`: the safety classifiers stopped the answer.
    Refusal,
    /// `model_context_window_exceeded`: the context window filled up.
    ModelContextWindowExceeded,
    /// Anything else, as sent.
    Other(String),
}

impl StopReason {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::PauseTurn => "pause_turn",
            Self::Refusal => "refusal",
            Self::ModelContextWindowExceeded => "model_context_window_exceeded",
            Self::Other(name) => name,
        }
    }
}

impl From<String> for StopReason {
    fn from(name: String) -> Self {
        match name.as_str() {
            "end_turn" => Self::EndTurn,
            "max_tokens" => Self::MaxTokens,
            "stop_sequence" => Self::StopSequence,
            "tool_use" => Self::ToolUse,
            "pause_turn" => Self::PauseTurn,
            "refusal" => Self::Refusal,
            "model_context_window_exceeded" => Self::ModelContextWindowExceeded,
            _ => Self::Other(name),
        }
    }
}

impl From<StopReason> for String {
    fn from(reason: StopReason) -> Self {
        match reason {
            StopReason::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

/// Token counts of a response. Anthropic's `input_tokens` excludes cached tokens: the whole
/// input is `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens neither read from nor written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Breakdown of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Everything else (`cache_creation`, `server_tool_use`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Output tokens spent on thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The cumulative counts of a `message_delta`; absent counts keep their `message_start` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaUsage {
    /// Input tokens neither read from nor written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens, thinking included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Breakdown of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl DeltaUsage {
    /// `usage` with these counts applied over it.
    pub fn apply_to(&self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if self.cache_creation_input_tokens.is_some() {
            usage.cache_creation_input_tokens = self.cache_creation_input_tokens;
        }
        if self.cache_read_input_tokens.is_some() {
            usage.cache_read_input_tokens = self.cache_read_input_tokens;
        }
        if self.output_tokens_details.is_some() {
            usage.output_tokens_details = self.output_tokens_details.clone();
        }
        for (key, value) in &self.extra {
            usage.extra.insert(key.clone(), value.clone());
        }
    }
}

impl From<Usage> for DeltaUsage {
    fn from(usage: Usage) -> Self {
        Self {
            input_tokens: Some(usage.input_tokens),
            output_tokens: Some(usage.output_tokens),
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens_details: usage.output_tokens_details,
            extra: usage.extra,
        }
    }
}

/// The answer of `POST /v1/messages/count_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    /// Input tokens the request would use.
    pub input_tokens: u64,
    /// Everything else (`context_management`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl CountTokensResponse {
    /// `{"input_tokens": n}`.
    pub fn new(input_tokens: u64) -> Self {
        Self {
            input_tokens,
            extra: Extra::new(),
        }
    }
}

tagged_union! {
    /// One event of a Messages stream; its SSE `event:` name is its `type`.
    pub enum StreamEvent {
        /// The message skeleton, with input usage.
        MessageStart(MessageStart) = "message_start",
        /// A content block begins.
        ContentBlockStart(ContentBlockStart) = "content_block_start",
        /// More of a content block.
        ContentBlockDelta(ContentBlockDelta) = "content_block_delta",
        /// A content block is complete.
        ContentBlockStop(ContentBlockStop) = "content_block_stop",
        /// The stop reason and the final usage.
        MessageDelta(MessageDeltaEvent) = "message_delta",
        /// The end of the message.
        MessageStop(Marker) = "message_stop",
        /// A keep-alive.
        Ping(Marker) = "ping",
        /// An error after the stream started (in Anthropic's envelope).
        Error(ErrorEvent) = "error",
    }
}

impl StreamEvent {
    /// The SSE `event:` name (and JSON `type`) of a known event; `None` for `Other`.
    pub fn name(&self) -> Option<&'static str> {
        Some(match self {
            Self::MessageStart(_) => "message_start",
            Self::ContentBlockStart(_) => "content_block_start",
            Self::ContentBlockDelta(_) => "content_block_delta",
            Self::ContentBlockStop(_) => "content_block_stop",
            Self::MessageDelta(_) => "message_delta",
            Self::MessageStop(_) => "message_stop",
            Self::Ping(_) => "ping",
            Self::Error(_) => "error",
            Self::Other(_) => return None,
        })
    }
}

/// `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStart {
    /// The message so far: no content, no stop reason, input usage.
    pub message: MessagesResponse,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStart {
    /// The block's position in the message.
    pub index: u32,
    /// The block with empty content (`text: ""`, `input: {}`, ...).
    pub content_block: ContentBlock,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockDelta {
    /// The block's position in the message.
    pub index: u32,
    /// What to append.
    pub delta: BlockDelta,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStop {
    /// The block's position in the message.
    pub index: u32,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaEvent {
    /// The stop reason.
    pub delta: MessageDelta,
    /// Cumulative token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<DeltaUsage>,
    /// Everything else (`context_management`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_delta.delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Why the model stopped.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that was generated, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Everything else (`stop_details`, `container`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// An event with nothing but its type (`message_stop`, `ping`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `error`: `{"type": "error", "error": {"type": "overloaded_error", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The error object, as sent.
    #[serde(default)]
    pub error: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// What a `content_block_delta` appends.
    pub enum BlockDelta {
        /// Text for a `text` block.
        Text(TextDelta) = "text_delta",
        /// A piece of a `tool_use` block's JSON input.
        InputJson(InputJsonDelta) = "input_json_delta",
        /// Reasoning for a `thinking` block.
        Thinking(ThinkingDelta) = "thinking_delta",
        /// The signature of a `thinking` block, just before it stops.
        Signature(SignatureDelta) = "signature_delta",
        /// A citation for a `text` block.
        Citations(CitationsDelta) = "citations_delta",
    }
}

/// `text_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextDelta {
    /// The new text.
    pub text: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input_json_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputJsonDelta {
    /// The next piece of the JSON input (not valid JSON by itself).
    pub partial_json: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingDelta {
    /// The new reasoning.
    pub thinking: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `signature_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureDelta {
    /// The block's signature.
    pub signature: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `citations_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitationsDelta {
    /// The citation, as sent.
    pub citation: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}
