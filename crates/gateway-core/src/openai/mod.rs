//! OpenAI Chat Completions wire types, as clients and providers really send them.
//!
//! Every struct keeps the fields it does not model in a flattened `extra` map, so a request that
//! passes through the gateway keeps its unknown fields. A field sent as `null` is treated as
//! absent. Parse with [`parse_json`], which turns serde's errors into a 400 [`GatewayError`]
//! whose `param` names the offending field.
//!
//! [`request_to_conversation`], [`response_from_conversation`], [`ChunkEncoder`] and their
//! kin translate between these wire types and the neutral
//! [`conversation`](crate::conversation); [`chunk_is_content`] tells the commit point which
//! chunks are content.

mod convert;
mod request;
mod response;

pub use convert::{
    ChunkDecoder, ChunkEncoder, chunk_is_content, request_from_conversation,
    request_to_conversation, response_from_conversation, response_to_conversation,
};
pub(crate) use convert::{effort_from_conversation, effort_to_conversation};

pub use request::{
    ChatRequest, Content, ContentPart, CustomTool, Extra, FileRef, FunctionCall,
    FunctionDefinition, ImageUrl, InputAudio, JsonSchemaFormat, Message, NamedToolChoice,
    ReasoningEffort, ResponseFormat, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
    ToolChoiceMode, ToolName,
};
pub use response::{
    ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, CompletionTokensDetails, Delta,
    ErrorBody, ErrorEnvelope, FinishReason, FunctionCallDelta, Model, ModelList,
    PromptTokensDetails, ResponseMessage, ToolCallDelta, Usage,
};

use serde::de::DeserializeOwned;

use crate::GatewayError;

/// Parse a JSON body into `T`; a failure is an `InvalidRequest` error naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GatewayError> {
    // Valid input takes the fast path; only a failure pays for tracking the field path.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed json"
            }
            serde_json::error::Category::Io => "unreadable body",
            serde_json::error::Category::Data => "invalid request",
        };
        let mut error = GatewayError::invalid_request(if path == "." {
            format!("{what}: {inner}")
        } else {
            format!("{what}: {path}: {inner}")
        });
        if path != "." && inner.is_data() {
            error = error.with_param(path);
        }
        error
    })?;
    de.end()
        .map_err(|e| GatewayError::invalid_request(format!("malformed json: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests;
