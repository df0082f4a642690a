//! `POST /v1/messages` and `/v1/messages/count_tokens` request bodies.
//!
//! Tagged unions whose tag Anthropic keeps extending (content blocks, sources, tools) parse a
//! known tag strictly, so a malformed `tool_use` is a 400 naming the field, and keep any other
//! tag verbatim in an `Other` variant, so a beta block never makes a request fail.

use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::{Map, Value};

use crate::wire::string_or_list;

/// Fields this crate does not model, kept so they reach the upstream unchanged.
pub type Extra = Map<String, Value>;

/// A Messages request as clients send it (Claude Code, the SDKs).
///
/// A field sent as `null` is treated as absent. `max_tokens` is required by Anthropic but
/// optional here: the same type parses `count_tokens` bodies, and a backend that needs a limit
/// sets one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model the client asked for.
    pub model: String,
    /// The output-token limit, thinking included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The conversation so far: alternating user and assistant turns.
    pub messages: Vec<InputMessage>,
    /// The system prompt: a string or text blocks (with `cache_control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Tools the model may call: custom tools and server tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking: `enabled` with a budget, `adaptive` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingConfig>,
    /// Output settings: `effort` and a structured output `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Context editing rules (`clear_tool_uses`, `clear_thinking`, ...), passed on as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_management: Option<Value>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Request metadata (`user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Whether to answer with server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `auto` or `standard_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Everything else (`container`, `mcp_servers`, top-level `cache_control`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// A `count_tokens` request: the fields of a Messages request that shape the input
/// (`max_tokens` and `stream` are absent).
pub type CountTokensRequest = MessagesRequest;

/// Who wrote an input message. Anthropic has no system role: the system prompt is top-level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One input message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// Who wrote it.
    pub role: Role,
    /// A string (one text block) or blocks.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Content: a string, shorthand for one text block, or blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed blocks, in order.
    Blocks(Vec<ContentBlock>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of content blocks",
            Self::Text,
            Self::Blocks,
        )
    }
}

/// An internally tagged union (`"type": "..."`) whose unknown tags are kept verbatim in
/// `Other`, while a known tag with a malformed body is an error.
macro_rules! tagged_union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) = $tag:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
            /// A type this crate does not model, kept verbatim (its `type` included).
            Other($crate::anthropic::Extra),
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[derive(::serde::Serialize)]
                #[serde(tag = "type")]
                enum Tagged<'a> {
                    $( #[serde(rename = $tag)] $variant(&'a $ty), )*
                }
                match self {
                    $( Self::$variant(inner) => ::serde::Serialize::serialize(&Tagged::$variant(inner), serializer), )*
                    Self::Other(map) => ::serde::Serialize::serialize(map, serializer),
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let mut map = <$crate::anthropic::Extra as ::serde::Deserialize>::deserialize(deserializer)?;
                let tag = match map.get("type") {
                    Some(::serde_json::Value::String(tag)) => tag.clone(),
                    _ => return Ok(Self::Other(map)),
                };
                match tag.as_str() {
                    $(
                        $tag => {
                            map.remove("type");
                            <$ty as ::serde::Deserialize>::deserialize(::serde_json::Value::Object(map))
                                .map(Self::$variant)
                                .map_err(|e| <D::Error as ::serde::de::Error>::custom(format!("type {}: {e}", $tag)))
                        }
                    )*
                    _ => Ok(Self::Other(map)),
                }
            }
        }
    };
}
pub(crate) use tagged_union;

tagged_union! {
    /// One block of a message's content (and of a response's content).
    pub enum ContentBlock {
        /// Text.
        Text(TextBlock) = "text",
        /// An image.
        Image(ImageBlock) = "image",
        /// A document (PDF, plain text, URL).
        Document(DocumentBlock) = "document",
        /// The model's visible reasoning, with its signature.
        Thinking(ThinkingBlock) = "thinking",
        /// Reasoning the provider encrypted.
        RedactedThinking(RedactedThinkingBlock) = "redacted_thinking",
        /// A tool call the model made.
        ToolUse(ToolUseBlock) = "tool_use",
        /// The result of a tool call.
        ToolResult(ToolResultBlock) = "tool_result",
    }
}

/// `cache_control`: a cache breakpoint after the block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `ephemeral` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// `5m` or `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CacheControl {
    /// `{"type": "ephemeral"}` with an optional `ttl`.
    pub fn ephemeral(ttl: Option<String>) -> Self {
        Self {
            kind: "ephemeral".to_owned(),
            ttl,
            extra: Extra::new(),
        }
    }
}

/// A `text` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Citations backing the text (request and response), as Anthropic spells them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<Value>>,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl TextBlock {
    /// A plain text block.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            citations: None,
            cache_control: None,
            extra: Extra::new(),
        }
    }
}

/// An `image` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// Where the image is.
    pub source: Source,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `document` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentBlock {
    /// Where the document is.
    pub source: Source,
    /// The document's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Context about the document for the model (not cited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `{"enabled": true}` to let the model cite it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Value>,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

tagged_union! {
    /// Where an image's or document's bytes are.
    pub enum Source {
        /// Inline base64 (`media_type` `image/png`, `application/pdf`, ...).
        Base64(MediaSource) = "base64",
        /// Inline plain text (documents; `media_type` `text/plain`, `data` is the text itself).
        Text(MediaSource) = "text",
        /// A URL the provider fetches.
        Url(UrlSource) = "url",
        /// A file uploaded with the Files API.
        File(FileSource) = "file",
        /// A document made of content blocks.
        Content(ContentSource) = "content",
    }
}

/// A `base64` or `text` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaSource {
    /// The media type.
    pub media_type: String,
    /// Base64 data (`base64`) or the text itself (`text`).
    pub data: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `url` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UrlSource {
    /// The URL.
    pub url: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `file` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSource {
    /// The Files API id.
    pub file_id: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `content` source: a document made of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentSource {
    /// The document's content.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `thinking` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// The reasoning text (empty when the display is `omitted`).
    pub thinking: String,
    /// The signature that lets the text be sent back; required by Anthropic on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `redacted_thinking` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactedThinkingBlock {
    /// The encrypted reasoning, sent back unchanged.
    pub data: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool_use` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlock {
    /// The call id (`toolu_...`), echoed by its result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object.
    #[serde(default)]
    pub input: Value,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool_result` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultBlock {
    /// The id of the `tool_use` it answers.
    pub tool_use_id: String,
    /// The result: a string or blocks (text, image, document, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool: a custom tool with a JSON schema, or a server tool Anthropic runs itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Tool {
    /// A tool the client runs (`type` absent or `custom`).
    Custom(CustomTool),
    /// A server or built-in tool (`web_search_20250305`, `bash_20250124`, ...), kept verbatim.
    Server(Extra),
}

impl<'de> Deserialize<'de> for Tool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Extra::deserialize(deserializer)?;
        match map.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind == "custom" => {}
            Some(_) => return Ok(Self::Server(map)),
        }
        CustomTool::deserialize(Value::Object(map))
            .map(Self::Custom)
            .map_err(|e| de::Error::custom(format!("custom tool: {e}")))
    }
}

/// A custom tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomTool {
    /// `custom`, when the client spelled it.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the input; required by Anthropic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Whether the input must follow the schema exactly (structured outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// A cache breakpoint after this tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Everything else (`input_examples`, `defer_loading`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`: `auto`, `any`, `tool` (with `name`) or `none`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool to call, for `type: tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the model must call at most one tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking`: `enabled` (with `budget_tokens`), `adaptive` or `disabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingConfig {
    /// `enabled`, `adaptive` or `disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The thinking budget, for `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
    /// `summarized` or `omitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `output_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// Structured output: `{"type": "json_schema", "schema": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque identifier of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}
