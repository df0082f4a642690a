//! The protocol-neutral conversation: one request model and one stream of response events that
//! every client protocol decodes into and every backend encodes from.
//!
//! Why: translating each client protocol straight into each backend protocol multiplies code and
//! bugs, and routing everything through OpenAI Chat loses what Chat cannot say (signed and
//! redacted thinking, cache hints, tool results with images). The model follows TensorZero's
//! content blocks and the Vercel AI SDK's prompt and stream parts: typed [`Part`]s in order, with
//! provider data (signatures, cache hints) carried beside the content, never inside strings.
//!
//! What a protocol says that the model does not represent rides in [`Extras`], tagged with the
//! [`Protocol`] it came from: an encoder of the same protocol re-emits it, the others ignore it.
//! That is how unknown fields survive a round trip through the model.
//!
//! Responses are a stream of [`Event`]s ([`EventStream`]); errors travel as `Err` items of the
//! stream, never as events. Non-streaming requests are served by folding the stream with a
//! [`Collector`] into a [`Response`].
//!
//! A request round trip through the model (here from and back to OpenAI Chat):
//!
//! ```
//! use gateway_core::{
//!     conversation::{Part, Role},
//!     openai,
//! };
//!
//! let body = br#"{
//!     "model": "gpt-4o",
//!     "messages": [
//!         {"role": "system", "content": "Be brief."},
//!         {"role": "user", "content": "Hi!"}
//!     ],
//!     "max_tokens": 64,
//!     "stop": "END",
//!     "vendor_option": {"keep": true}
//! }"#;
//! let request: openai::ChatRequest = openai::parse_json(body)?;
//! let conversation = openai::request_to_conversation(request.clone())?;
//! assert_eq!(conversation.messages[1].role, Role::User);
//! assert_eq!(conversation.messages[1].parts, vec![Part::text("Hi!")]);
//! assert_eq!(conversation.generation.max_tokens, Some(64));
//! assert_eq!(conversation.generation.stop, vec!["END".to_owned()]);
//! assert_eq!(conversation.system_text(), "Be brief.");
//! // Back to Chat: the legacy `max_tokens` spelling, the string `stop` and the unknown field
//! // come back exactly as the client sent them.
//! assert_eq!(openai::request_from_conversation(&conversation), request);
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

use std::{collections::HashMap, pin::Pin};

use futures_core::Stream;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::{ErrorKind, GatewayError};

/// A wire protocol the gateway speaks, on the client side or the backend side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    #[serde(rename = "openai_chat")]
    OpenAiChat,
    /// Anthropic Messages (`/v1/messages`).
    #[serde(rename = "anthropic")]
    Anthropic,
    /// OpenAI Responses (`/v1/responses`).
    #[serde(rename = "responses")]
    Responses,
    /// Gemini `generateContent`.
    #[serde(rename = "gemini")]
    Gemini,
}

/// What the source protocol said that the model does not represent, kept for an encoder of the
/// same protocol.
///
/// `fields` are unknown fields at this level, re-emitted verbatim. `hints` record how the source
/// spelled what the model does represent (a string instead of a one-element array, a legacy
/// field name, an object richer than the model), so the same protocol can re-emit it exactly;
/// their keys belong to that protocol's module. Encoders of other protocols ignore both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extras {
    /// The protocol `fields` and `hints` belong to; `None` when both are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Unknown fields of the source, re-emitted verbatim by the same protocol.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    /// How the source spelled what the model represents; read by the same protocol's encoder.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub hints: Map<String, Value>,
}

impl Extras {
    /// Extras of `protocol`; empty (and untagged) when there are no fields and no hints.
    pub fn new(protocol: Protocol, fields: Map<String, Value>, hints: Map<String, Value>) -> Self {
        let protocol = (!fields.is_empty() || !hints.is_empty()).then_some(protocol);
        Self {
            protocol,
            fields,
            hints,
        }
    }

    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.hints.is_empty()
    }

    /// The unknown fields, when they came from `protocol`.
    pub fn fields_for(&self, protocol: Protocol) -> Option<&Map<String, Value>> {
        (self.protocol == Some(protocol)).then_some(&self.fields)
    }

    /// The hints, when they came from `protocol`.
    pub fn hints_for(&self, protocol: Protocol) -> Option<&Map<String, Value>> {
        (self.protocol == Some(protocol)).then_some(&self.hints)
    }

    /// One hint, when the hints came from `protocol`.
    pub fn hint(&self, protocol: Protocol, key: &str) -> Option<&Value> {
        self.hints_for(protocol)?.get(key)
    }

    /// A copy of the unknown fields to re-emit, when they came from `protocol`; empty when
    /// they came from another protocol.
    pub fn fields_of(&self, protocol: Protocol) -> Map<String, Value> {
        self.fields_for(protocol).cloned().unwrap_or_default()
    }

    /// One string hint, when the hints came from `protocol`.
    pub fn hint_str(&self, protocol: Protocol, key: &str) -> Option<&str> {
        self.hint(protocol, key).and_then(Value::as_str)
    }

    /// Whether hint `key` of `protocol` is `true`.
    pub fn flag(&self, protocol: Protocol, key: &str) -> bool {
        self.hint(protocol, key) == Some(&Value::Bool(true))
    }

    /// A copy of object hint `key` of `protocol` (written by [`Extras::insert_object_hint`]);
    /// empty when there is none.
    pub fn hint_object(&self, protocol: Protocol, key: &str) -> Map<String, Value> {
        match self.hint(protocol, key) {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        }
    }

    /// Record `map` (the unknown fields of a nested object, say) as hint `key` in `hints`,
    /// unless it is empty.
    pub fn insert_object_hint(hints: &mut Map<String, Value>, key: &str, map: Map<String, Value>) {
        if !map.is_empty() {
            hints.insert(key.to_owned(), Value::Object(map));
        }
    }

    /// Record `original` as hint `key` in `hints` when encoding its decoded form (`again`)
    /// would not give it back; [`Extras::kept`] reads it.
    pub fn keep_if_lossy<T: Serialize + PartialEq>(
        hints: &mut Map<String, Value>,
        key: &str,
        original: &T,
        again: &T,
    ) {
        if original != again
            && let Ok(value) = serde_json::to_value(original)
        {
            hints.insert(key.to_owned(), value);
        }
    }

    /// The original kept as hint `key` of `protocol` (by [`Extras::keep_if_lossy`]), while
    /// `decode` still gives `current` from it: an original the conversation has changed since is
    /// not re-emitted.
    pub fn kept<T: DeserializeOwned, N: PartialEq>(
        &self,
        protocol: Protocol,
        key: &str,
        current: &N,
        decode: impl FnOnce(&T) -> Option<N>,
    ) -> Option<T> {
        let original: T = serde_json::from_value(self.hint(protocol, key)?.clone()).ok()?;
        (decode(&original).as_ref() == Some(current)).then_some(original)
    }
}

/// A neutral request: what to ask which model, with which tools and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The model the client asked for.
    pub model: String,
    /// A top-level instruction (Anthropic `system`, Gemini `systemInstruction`, Responses
    /// `instructions`). OpenAI system and developer messages stay in `messages`, in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Part>,
    /// The conversation so far, in order.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool the model must call; `None` leaves it to the backend's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Sampling and length settings.
    #[serde(default)]
    pub generation: Generation,
    /// Thinking settings; `None` leaves them to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Text, JSON object or JSON schema output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Whether the client wants a stream.
    #[serde(default)]
    pub stream: bool,
    /// Whether the client wants token counts at the end of a stream.
    #[serde(default)]
    pub stream_usage: bool,
    /// An end-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free-form key-value metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// What the source protocol said that the model does not represent.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extra: Extras,
}

impl Request {
    /// Every system part in order: the top-level [`Request::system`] first, then the parts of
    /// system and developer messages where they stand.
    pub fn system_parts(&self) -> impl Iterator<Item = &Part> {
        self.system.iter().chain(
            self.messages
                .iter()
                .filter(|m| matches!(m.role, Role::System | Role::Developer))
                .flat_map(|m| m.parts.iter()),
        )
    }

    /// All system text as one instruction, for backends that take only one: the non-empty text
    /// of [`Request::system_parts`], joined by blank lines.
    pub fn system_text(&self) -> String {
        let texts: Vec<&str> = self
            .system_parts()
            .filter_map(Part::as_text)
            .filter(|t| !t.is_empty())
            .collect();
        texts.join("\n\n")
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (OpenAI's newer name for system).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// Tool results (one [`Part::ToolResult`] per message when decoded from OpenAI Chat).
    Tool,
}

/// One message: a role and its parts in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says, in order.
    pub parts: Vec<Part>,
    /// A participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the source protocol said that the model does not represent.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extra: Extras,
}

impl Message {
    /// A message of `role` with `parts`.
    pub fn new(role: Role, parts: Vec<Part>) -> Self {
        Self {
            role,
            parts,
            name: None,
            extra: Extras::default(),
        }
    }
}

/// A cache breakpoint on a part (Anthropic `cache_control`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHint {
    /// How long to keep it (`5m`, `1h`); `None` is the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Where a media part's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Media {
    /// Inline bytes.
    Base64 {
        /// The media type, e.g. `image/png`.
        mime: String,
        /// Base64 data.
        data: String,
    },
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A file uploaded to the provider before.
    FileId {
        /// The provider's file id.
        id: String,
    },
}

impl Media {
    /// A URL as clients send it: `data:<mime>;base64,<data>` becomes [`Media::Base64`]; any
    /// other URL (including data URIs with parameters, which would not come back unchanged)
    /// stays a [`Media::Url`].
    pub fn from_url(url: &str) -> Self {
        let parsed = url.strip_prefix("data:").and_then(|rest| {
            let (meta, data) = rest.split_once(',')?;
            let mime = meta.strip_suffix(";base64")?;
            (!mime.is_empty() && !mime.contains(';')).then(|| (mime.to_owned(), data.to_owned()))
        });
        match parsed {
            Some((mime, data)) => Self::Base64 { mime, data },
            None => Self::Url {
                url: url.to_owned(),
            },
        }
    }

    /// The URL form: a `data:` URI for inline bytes, the URL itself, or `None` for a file id.
    pub fn to_url(&self) -> Option<String> {
        match self {
            Self::Base64 { mime, data } => Some(format!("data:{mime};base64,{data}")),
            Self::Url { url } => Some(url.clone()),
            Self::FileId { .. } => None,
        }
    }
}

/// One typed piece of a message or response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// A provider signature on the text (Gemini `thoughtSignature` on a text part).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// A cache breakpoint after this part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache: Option<CacheHint>,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// An image.
    Image {
        /// Where it is.
        source: Media,
        /// OpenAI's `detail` (`auto`, `low`, `high`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// A document (PDF, text file).
    Document {
        /// Where it is.
        source: Media,
        /// The file name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// Audio input.
    Audio {
        /// Base64 audio data.
        data: String,
        /// `wav`, `mp3`, ...
        format: String,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// The model's visible reasoning.
    Thinking {
        /// The reasoning text (may be empty when only the signature is known).
        text: String,
        /// The provider's signature, to be sent back unchanged with the text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// Reasoning the provider encrypted; sent back unchanged.
    RedactedThinking {
        /// The opaque data.
        data: String,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// A tool call the model made.
    ToolCall {
        /// The call id, echoed by its result (empty for OpenAI's legacy `function_call`).
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as raw JSON text, exactly as received.
        arguments: String,
        /// A provider signature on the call (Gemini `thoughtSignature`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// The result of a tool call.
    ToolResult {
        /// The id of the call it answers (empty for OpenAI's legacy `function` messages).
        id: String,
        /// The tool's name, when known (Gemini needs it; OpenAI Chat does not send it, so the
        /// decoder fills it from the call with the same id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The result's content.
        parts: Vec<Part>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
    /// The model declined to answer.
    Refusal {
        /// The refusal text.
        text: String,
        /// What the source protocol said that the model does not represent.
        #[serde(default, skip_serializing_if = "Extras::is_empty")]
        extra: Extras,
    },
}

impl Part {
    /// A plain text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            signature: None,
            cache: None,
            extra: Extras::default(),
        }
    }

    /// A thinking part.
    pub fn thinking(text: impl Into<String>, signature: Option<String>) -> Self {
        Self::Thinking {
            text: text.into(),
            signature,
            extra: Extras::default(),
        }
    }

    /// A tool call with raw JSON arguments.
    pub fn tool_call(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
            signature: None,
            extra: Extras::default(),
        }
    }

    /// A successful tool result.
    pub fn tool_result(id: impl Into<String>, parts: Vec<Part>) -> Self {
        Self::ToolResult {
            id: id.into(),
            name: None,
            parts,
            is_error: false,
            extra: Extras::default(),
        }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The part's extras.
    pub fn extra(&self) -> &Extras {
        match self {
            Self::Text { extra, .. }
            | Self::Image { extra, .. }
            | Self::Document { extra, .. }
            | Self::Audio { extra, .. }
            | Self::Thinking { extra, .. }
            | Self::RedactedThinking { extra, .. }
            | Self::ToolCall { extra, .. }
            | Self::ToolResult { extra, .. }
            | Self::Refusal { extra, .. } => extra,
        }
    }

    /// The part's extras, to change.
    pub fn extra_mut(&mut self) -> &mut Extras {
        match self {
            Self::Text { extra, .. }
            | Self::Image { extra, .. }
            | Self::Document { extra, .. }
            | Self::Audio { extra, .. }
            | Self::Thinking { extra, .. }
            | Self::RedactedThinking { extra, .. }
            | Self::ToolCall { extra, .. }
            | Self::ToolResult { extra, .. }
            | Self::Refusal { extra, .. } => extra,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments; `Null` when the tool declares none.
    #[serde(default)]
    pub parameters: Value,
    /// Whether the schema must be followed exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// A function with JSON arguments or a custom tool with free-form input.
    pub kind: ToolKind,
    /// What the source protocol said that the model does not represent.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extra: Extras,
}

/// What kind of input a tool takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// JSON arguments following [`Tool::parameters`].
    Function,
    /// Free-form input (OpenAI custom tools).
    Custom {
        /// The input format (text or a grammar), as the provider spells it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<Value>,
    },
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
    /// The model may call only these tools (OpenAI `allowed_tools`, Gemini
    /// `allowedFunctionNames`); `required` when it must call one of them.
    Allowed {
        /// The tools' names.
        tools: Vec<String>,
        /// Whether a call is required.
        required: bool,
    },
}

/// Sampling and length settings; `None` leaves a setting to the backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The output-token limit (reasoning included where the provider counts it so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// How many candidates to generate (OpenAI `n`, Gemini `candidateCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<u32>,
    /// Whether to return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many top log probabilities per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

/// How hard a reasoning model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// Reasoning off.
    None,
    /// The least reasoning.
    Minimal,
    /// Little reasoning.
    Low,
    /// Moderate reasoning.
    Medium,
    /// Much reasoning.
    High,
    /// The most reasoning.
    Xhigh,
}

/// Whether thinking is on (Anthropic `thinking.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningMode {
    /// Thinking on, with a budget.
    Enabled,
    /// The model decides how much to think.
    Adaptive,
    /// Thinking off.
    Disabled,
}

/// Thinking settings, as each protocol can say them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    /// An effort level (OpenAI `reasoning_effort`, Gemini `thinkingLevel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// A token budget (Anthropic `budget_tokens`, Gemini `thinkingBudget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
    /// A reasoning summary setting (Responses `reasoning.summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Whether thinking is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ReasoningMode>,
}

impl Reasoning {
    /// Whether the request turns thinking off (mode disabled or effort `none`).
    pub fn is_off(&self) -> bool {
        self.mode == Some(ReasoningMode::Disabled) || self.effort == Some(Effort::None)
    }
}

/// The output format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// What the output is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The JSON schema; `Null` when none was given.
        #[serde(default)]
        schema: Value,
        /// Whether the schema must be followed exactly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// One step of a streamed response.
///
/// `index` is a neutral content-block index (Anthropic style): 0, 1, 2, ... per response, one
/// per text, thinking, refusal or tool-call block, in the order the blocks start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The response begins.
    Start {
        /// The upstream's response id.
        id: String,
        /// The model that serves, as the upstream names it.
        model: String,
    },
    /// More answer text for the text block at `index`.
    TextDelta {
        /// The block.
        index: u32,
        /// The new text.
        text: String,
    },
    /// More reasoning text for the thinking block at `index`.
    ThinkingDelta {
        /// The block.
        index: u32,
        /// The new reasoning.
        text: String,
    },
    /// The signature of the block at `index` (thinking, text or tool call).
    Signature {
        /// The block.
        index: u32,
        /// The signature.
        signature: String,
    },
    /// A redacted thinking block at `index`.
    RedactedThinking {
        /// The block.
        index: u32,
        /// The opaque data.
        data: String,
    },
    /// More refusal text for the refusal block at `index`.
    RefusalDelta {
        /// The block.
        index: u32,
        /// The new text.
        text: String,
    },
    /// A tool call begins at `index`.
    ToolCallStart {
        /// The block.
        index: u32,
        /// The call id (empty when the upstream gave none).
        id: String,
        /// The tool's name.
        name: String,
    },
    /// More raw JSON arguments for the tool call at `index`.
    ToolCallDelta {
        /// The block.
        index: u32,
        /// The new piece of the arguments.
        arguments: String,
    },
    /// The block at `index` is complete.
    BlockEnd {
        /// The block.
        index: u32,
    },
    /// Token counts so far; a later `Usage` replaces an earlier one.
    Usage(Usage),
    /// Why the model stopped; the last content event of a response.
    Finish {
        /// The reason.
        reason: FinishReason,
    },
}

/// Whether `event` is content for the commit point: non-empty text, thinking or refusal, a tool
/// call start, redacted thinking, or the finish. Starts, signatures, block ends and usage are
/// not (Anthropic sends usage before any content).
pub fn is_content(event: &Event) -> bool {
    match event {
        Event::TextDelta { text, .. }
        | Event::ThinkingDelta { text, .. }
        | Event::RefusalDelta { text, .. } => !text.is_empty(),
        Event::ToolCallStart { .. } | Event::RedactedThinking { .. } | Event::Finish { .. } => true,
        Event::Start { .. }
        | Event::Signature { .. }
        | Event::ToolCallDelta { .. }
        | Event::BlockEnd { .. }
        | Event::Usage(_) => false,
    }
}

/// A stream of events; an `Err` item ends the stream and is reported in-band.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, GatewayError>> + Send>>;

/// Token counts of one response.
///
/// `input_tokens` counts every input token, cached ones included (OpenAI's `prompt_tokens`;
/// Anthropic's three input counts summed). `output_tokens` counts every output token, reasoning
/// included; `reasoning_tokens`, `cache_read_tokens` and `cache_write_tokens` break those down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Output tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// What the source protocol said that the model does not represent.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extra: Extras,
}

impl Usage {
    /// Input plus output.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end.
    Stop,
    /// A stop sequence, when the provider says which.
    StopSequence(Option<String>),
    /// The output-token limit.
    Length,
    /// The model called tools.
    ToolUse,
    /// Output was withheld by a safety filter.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// A whole response, as a non-streaming request returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The response id.
    pub id: String,
    /// The model that served.
    pub model: String,
    /// Unix seconds of the response.
    pub created: u64,
    /// What the model produced, in order.
    pub parts: Vec<Part>,
    /// Why it stopped; `None` when the stream never said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<FinishReason>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What the source protocol said that the model does not represent.
    #[serde(default, skip_serializing_if = "Extras::is_empty")]
    pub extra: Extras,
}

/// Folds a stream of events into one [`Response`], keeping the parts in the order their blocks
/// started and each signature on its part.
#[derive(Debug, Default)]
pub struct Collector {
    response: Response,
    /// Block index -> position in `response.parts`.
    blocks: HashMap<u32, usize>,
}

impl Collector {
    /// A collector for a response created at `created` (unix seconds); the id and model come
    /// from the [`Event::Start`].
    pub fn new(created: u64) -> Self {
        Self {
            response: Response {
                created,
                ..Response::default()
            },
            blocks: HashMap::new(),
        }
    }

    /// Take one event. An event that does not fit its block (text for a tool call, arguments
    /// for a block that is no tool call) is an `UpstreamProtocol` error.
    pub fn push(&mut self, event: Event) -> Result<(), GatewayError> {
        if let Event::TextDelta { index, text }
        | Event::ThinkingDelta { index, text }
        | Event::RefusalDelta { index, text } = &event
            && text.is_empty()
            && !self.blocks.contains_key(index)
        {
            // An empty delta does not open a block: no empty parts.
            return Ok(());
        }
        match event {
            Event::Start { id, model } => {
                self.response.id = id;
                self.response.model = model;
            }
            Event::TextDelta { index, text } => {
                if let Part::Text { text: t, .. } = self.block(index, || Part::text(""))? {
                    t.push_str(&text);
                    return Ok(());
                }
                return Err(mismatch(index));
            }
            Event::ThinkingDelta { index, text } => {
                if let Part::Thinking { text: t, .. } =
                    self.block(index, || Part::thinking("", None))?
                {
                    t.push_str(&text);
                    return Ok(());
                }
                return Err(mismatch(index));
            }
            Event::RefusalDelta { index, text } => {
                let refusal = || Part::Refusal {
                    text: String::new(),
                    extra: Extras::default(),
                };
                if let Part::Refusal { text: t, .. } = self.block(index, refusal)? {
                    t.push_str(&text);
                    return Ok(());
                }
                return Err(mismatch(index));
            }
            Event::Signature { index, signature } => {
                match self.block(index, || Part::thinking("", None))? {
                    Part::Thinking { signature: s, .. }
                    | Part::Text { signature: s, .. }
                    | Part::ToolCall { signature: s, .. } => *s = Some(signature),
                    _ => return Err(mismatch(index)),
                }
            }
            Event::RedactedThinking { index, data } => {
                let part = Part::RedactedThinking {
                    data,
                    extra: Extras::default(),
                };
                if self.blocks.contains_key(&index) {
                    return Err(mismatch(index));
                }
                self.blocks.insert(index, self.response.parts.len());
                self.response.parts.push(part);
            }
            Event::ToolCallStart { index, id, name } => {
                if self.blocks.contains_key(&index) {
                    return Err(mismatch(index));
                }
                self.blocks.insert(index, self.response.parts.len());
                self.response.parts.push(Part::tool_call(id, name, ""));
            }
            Event::ToolCallDelta { index, arguments } => {
                let Some(Part::ToolCall { arguments: a, .. }) = self
                    .blocks
                    .get(&index)
                    .and_then(|&at| self.response.parts.get_mut(at))
                else {
                    return Err(mismatch(index));
                };
                a.push_str(&arguments);
            }
            Event::BlockEnd { .. } => {}
            Event::Usage(usage) => self.response.usage = Some(usage),
            Event::Finish { reason } => {
                if self.response.finish.is_none() {
                    self.response.finish = Some(reason);
                }
            }
        }
        Ok(())
    }

    /// The part of block `index`, created by `new` when the block is new.
    fn block(&mut self, index: u32, new: impl FnOnce() -> Part) -> Result<&mut Part, GatewayError> {
        let at = *self.blocks.entry(index).or_insert_with(|| {
            self.response.parts.push(new());
            self.response.parts.len() - 1
        });
        self.response
            .parts
            .get_mut(at)
            .ok_or_else(|| mismatch(index))
    }

    /// The response so far.
    pub fn finish(self) -> Response {
        self.response
    }

    /// Collect a whole response from `events`, stopping at the first error.
    pub async fn collect(mut events: EventStream, created: u64) -> Result<Response, GatewayError> {
        let mut collector = Self::new(created);
        while let Some(event) = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
            collector.push(event?)?;
        }
        Ok(collector.finish())
    }
}

/// An `UpstreamProtocol` error: a stream event that does not fit content block `index`.
pub(crate) fn mismatch(index: u32) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        format!("stream event does not fit content block {index}"),
    )
}

#[cfg(test)]
mod tests;
