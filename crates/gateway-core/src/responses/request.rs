//! `POST /v1/responses` request body, and the items and tools it shares with the response.

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeOwned},
};
use serde_json::{Map, Value};

/// Responses writes a function tool's fields flat beside `"type": "function"`, without Chat's
/// `function` wrapper: the same fields as Chat's function declaration.
pub use crate::openai::FunctionDefinition as FunctionTool;
pub use crate::openai::{CustomTool, ReasoningEffort, ToolChoiceMode};
use crate::wire::{mode_or_named, string_or_list};

/// Fields this crate does not model, kept so they reach the upstream unchanged.
pub type Extra = Map<String, Value>;

/// A Responses request as clients (Codex, the OpenAI SDKs) send it.
///
/// A field sent as `null` is treated as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    /// The model the client asked for.
    pub model: String,
    /// The conversation: one user text, or items in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// A system (developer) instruction placed before the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The output format and verbosity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Output-token limit, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Reasoning effort and summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Extra output to include, such as `reasoning.encrypted_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Whether the provider may store the response (Codex sends `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Whether to answer with server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// A stored response this one continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// A key grouping requests that share a prompt prefix, for caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// Free-form key-value metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The processing tier (`auto`, `default`, `flex`, `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// What to do when the context overflows (`auto`, `disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    /// Everything else, passed on unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponsesRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for `reasoning.encrypted_content` in reasoning items.
    pub fn includes_encrypted_reasoning(&self) -> bool {
        self.include
            .iter()
            .flatten()
            .any(|i| i == "reasoning.encrypted_content")
    }
}

/// `input`: one user text or a list of items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Items in order.
    Items(Vec<Item>),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of input items",
            Self::Text,
            Self::Items,
        )
    }
}

/// One item of `input` or `output`, by its `type`.
///
/// A message may come without `type` (the "easy" input form). Items of other types (web
/// search calls, item references, compaction, ...) are kept verbatim in [`Item::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A message.
    Message(MessageItem),
    /// A function call the model made.
    FunctionCall(FunctionCallItem),
    /// The result of a function call.
    FunctionCallOutput(FunctionCallOutputItem),
    /// The model's reasoning: a summary and, opaque, the reasoning itself.
    Reasoning(ReasoningItem),
    /// A call of a custom (free-form input) tool.
    CustomToolCall(CustomToolCallItem),
    /// The result of a custom tool call.
    CustomToolCallOutput(CustomToolCallOutputItem),
    /// Any other item, `type` included, as sent.
    Other(Extra),
}

/// The item kinds with a `type` tag, for serialization.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Tagged<'a> {
    Message(&'a MessageItem),
    FunctionCall(&'a FunctionCallItem),
    FunctionCallOutput(&'a FunctionCallOutputItem),
    Reasoning(&'a ReasoningItem),
    CustomToolCall(&'a CustomToolCallItem),
    CustomToolCallOutput(&'a CustomToolCallOutputItem),
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Message(item) if item.bare => item.serialize(serializer),
            Self::Message(item) => Tagged::Message(item).serialize(serializer),
            Self::FunctionCall(item) => Tagged::FunctionCall(item).serialize(serializer),
            Self::FunctionCallOutput(item) => {
                Tagged::FunctionCallOutput(item).serialize(serializer)
            }
            Self::Reasoning(item) => Tagged::Reasoning(item).serialize(serializer),
            Self::CustomToolCall(item) => Tagged::CustomToolCall(item).serialize(serializer),
            Self::CustomToolCallOutput(item) => {
                Tagged::CustomToolCallOutput(item).serialize(serializer)
            }
            Self::Other(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = Extra::deserialize(deserializer)?;
        let kind = match map.remove("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(kind)) => Some(kind),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "item type must be a string, not {other}"
                )));
            }
        };
        Ok(match kind.as_deref() {
            None => Self::Message(MessageItem {
                bare: true,
                ..typed(map, "message")?
            }),
            Some("message") => Self::Message(typed(map, "message")?),
            Some("function_call") => Self::FunctionCall(typed(map, "function_call")?),
            Some("function_call_output") => {
                Self::FunctionCallOutput(typed(map, "function_call_output")?)
            }
            Some("reasoning") => Self::Reasoning(typed(map, "reasoning")?),
            Some("custom_tool_call") => Self::CustomToolCall(typed(map, "custom_tool_call")?),
            Some("custom_tool_call_output") => {
                Self::CustomToolCallOutput(typed(map, "custom_tool_call_output")?)
            }
            Some(other) => {
                map.insert("type".into(), other.into());
                Self::Other(map)
            }
        })
    }
}

/// `map` (its `type` removed) as the struct of a known item or tool type.
fn typed<T: DeserializeOwned, E: de::Error>(map: Extra, what: &str) -> Result<T, E> {
    serde_json::from_value(Value::Object(map)).map_err(|e| E::custom(format!("{what}: {e}")))
}

/// Who wrote a message item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// Instructions from the application.
    System,
    /// Instructions from the developer.
    Developer,
}

/// A message item: input messages of every role, and the model's output messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// Who wrote it.
    pub role: MessageRole,
    /// Text or parts.
    pub content: Content,
    /// The item id (output messages, and input messages sent back with theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Sent without `"type": "message"` (the easy input form); such a message is written
    /// back without it.
    #[serde(skip)]
    pub bare: bool,
    /// Everything else (for example `phase`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content, or a tool output: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts, in order.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string_or_list(
            deserializer,
            "a string or an array of content parts",
            Self::Text,
            Self::Parts,
        )
    }
}

/// One part of a message's content or of a tool output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text the user (or developer) wrote.
    InputText {
        /// The text.
        text: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// An image by URL, `data:` URI or file id.
    InputImage {
        /// `https://...` or `data:<mime>;base64,<data>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_url: Option<String>,
        /// An uploaded file's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        /// `auto`, `low` or `high`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// A file by inline data, URL or file id.
    InputFile {
        /// `data:<mime>;base64,<data>` (or bare base64).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_data: Option<String>,
        /// An uploaded file's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        /// A URL the provider fetches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_url: Option<String>,
        /// The file name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Text the model wrote.
    OutputText {
        /// The text.
        text: String,
        /// Citations in the text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Vec<Value>>,
        /// Token log probabilities, when asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<Value>>,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// The model declined.
    Refusal {
        /// The refusal text.
        refusal: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
}

/// A function call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// The call id, echoed by its output.
    pub call_id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON string.
    pub arguments: String,
    /// The item id (`fc_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The result of a function call (and, as [`CustomToolCallOutputItem`], of a custom tool
/// call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallOutputItem {
    /// The call it answers.
    pub call_id: String,
    /// Text, or parts (text, images, files).
    pub output: Content,
    /// The item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The model's reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningItem {
    /// The item id (`rs_...`); Codex sends reasoning back without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Summary parts (`summary_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Vec<ReasoningText>>,
    /// Raw reasoning parts (`reasoning_text`), from models that show them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ReasoningText>>,
    /// The reasoning, opaque to the client, sent back to continue it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A summary or reasoning text part: `{"type": "summary_text" | "reasoning_text", "text"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningText {
    /// `summary_text` or `reasoning_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ReasoningText {
    /// A `summary_text` part.
    pub fn summary(text: impl Into<String>) -> Self {
        Self {
            kind: "summary_text".to_owned(),
            text: text.into(),
            extra: Extra::new(),
        }
    }
}

/// A call of a custom tool: free-form text input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomToolCallItem {
    /// The call id, echoed by its output.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The free-form input.
    pub input: String,
    /// The item id (`ctc_...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The result of a custom tool call: the same fields as a function call's result.
pub type CustomToolCallOutputItem = FunctionCallOutputItem;

/// A tool the model may call: a function, a custom tool, or a hosted tool kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    /// A function with a JSON schema for its arguments.
    Function(FunctionTool),
    /// A tool with free-form text input (optionally constrained by a grammar).
    Custom(CustomTool),
    /// Any other tool (`web_search`, `local_shell`, `mcp`, ...), `type` included, as sent.
    Other(Extra),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TaggedTool<'a> {
    Function(&'a FunctionTool),
    Custom(&'a CustomTool),
}

impl Serialize for Tool {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Function(tool) => TaggedTool::Function(tool).serialize(serializer),
            Self::Custom(tool) => TaggedTool::Custom(tool).serialize(serializer),
            Self::Other(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Tool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = Extra::deserialize(deserializer)?;
        match map.get("type").and_then(Value::as_str) {
            Some("function") => {
                map.remove("type");
                typed(map, "function tool").map(Self::Function)
            }
            Some("custom") => {
                map.remove("type");
                typed(map, "custom tool").map(Self::Custom)
            }
            Some(_) => Ok(Self::Other(map)),
            None => Err(de::Error::custom("tool without a string type")),
        }
    }
}

/// `tool_choice`: a mode string or an object naming a tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(ToolChoiceMode),
    /// `{"type": "function" | "custom", "name"}`, `{"type": "allowed_tools", ...}` or a hosted
    /// tool type.
    Named(NamedToolChoice),
}

/// The object form of `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    /// `function`, `custom`, `allowed_tools`, `mcp` or a hosted tool type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool to call, for `function` and `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Everything else (`mode` and `tools` of `allowed_tools`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        mode_or_named(deserializer, Self::Mode, Self::Named)
    }
}

/// `text`: the output format and verbosity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Text, JSON object or JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    /// `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text.format`; Responses writes the schema's fields flat, without Chat's `json_schema`
/// wrapper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    /// Free text (the default).
    Text {
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Any JSON object.
    JsonObject {
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// JSON following a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON schema.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
        /// What the output is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Whether the schema must be followed exactly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
}

/// `reasoning`: how hard to think and what summary to return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// How hard a reasoning model thinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// `auto`, `concise` or `detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}
