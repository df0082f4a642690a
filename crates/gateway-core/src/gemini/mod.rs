//! The Gemini API (`generateContent`) dialect: wire types as Gemini CLI, google-genai and the
//! API itself write them, and their translation to and from the neutral
//! [`conversation`](crate::conversation).
//!
//! Why: Gemini-native clients are served from any backend (Antigravity, Gemini API keys,
//! OpenAI, Anthropic) through the conversation, and a Gemini client's own `thoughtSignature`s
//! must come back to Gemini exactly as sent. Every struct keeps the fields it does not model in
//! a flattened `extra` map; a field sent as `null` is treated as absent; snake_case spellings
//! are accepted and written back camelCase. Parse with [`parse_json`], which turns serde's
//! errors into a 400 naming the field.
//!
//! - Requests and responses: [`request_to_conversation`], [`request_from_conversation`],
//!   [`response_to_conversation`], [`response_from_conversation`] (the model and the stream
//!   flag come from the URL path).
//! - Streams: [`StreamEncoder`] and [`StreamDecoder`] between events and chunks, framed as SSE
//!   (`alt=sse`, [`StreamEncoder::to_sse`]) or as a streamed JSON array ([`JsonArrayEncoder`],
//!   [`JsonArrayDecoder`]).
//! - Also: `countTokens` ([`CountTokensRequest`], [`CountTokensResponse`]) and the model list
//!   ([`ModelList`], [`Model`]). Error envelopes and the stream's commit point live in
//!   [`Dialect::Gemini`](crate::Dialect::Gemini) and [`dialect::Tracker`](crate::dialect::Tracker).
//!
//! A two-turn function call, decoded and written back unchanged:
//!
//! ```
//! use gateway_core::{
//!     conversation::{Part, Role},
//!     gemini,
//! };
//!
//! let body = br#"{
//!     "contents": [
//!         {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
//!         {"role": "model", "parts": [{
//!             "functionCall": {"name": "weather", "args": {"city": "Paris"}},
//!             "thoughtSignature": "c2ln"
//!         }]},
//!         {"role": "user", "parts": [{
//!             "functionResponse": {"name": "weather", "response": {"output": "18C"}}
//!         }]}
//!     ],
//!     "systemInstruction": {"parts": [{"text": "Be brief."}]},
//!     "generationConfig": {"maxOutputTokens": 256, "thinkingConfig": {"thinkingBudget": 1024}}
//! }"#;
//! let request: gemini::GenerateContentRequest = gemini::parse_json(body)?;
//! let conversation = gemini::request_to_conversation(request.clone(), "gemini-2.5-pro", true)?;
//! assert_eq!(conversation.system_text(), "Be brief.");
//! assert_eq!(conversation.generation.max_tokens, Some(256));
//! // The call gets an id its result is paired with; the signature rides on the call.
//! let Part::ToolCall { id, arguments, signature, .. } = &conversation.messages[1].parts[0] else {
//!     unreachable!()
//! };
//! assert_eq!((arguments.as_str(), signature.as_deref()), (r#"{"city":"Paris"}"#, Some("c2ln")));
//! let Part::ToolResult { id: answered, parts, .. } = &conversation.messages[2].parts[0] else {
//!     unreachable!()
//! };
//! assert_eq!((answered, parts), (id, &vec![Part::text("18C")]));
//! assert_eq!(conversation.messages[2].role, Role::Tool);
//! // Back to Gemini: exactly what the client sent.
//! assert_eq!(gemini::request_from_conversation(&conversation), request);
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

mod convert;
mod request;
mod response;
mod stream;

pub use convert::{
    request_from_conversation, request_to_conversation, response_from_conversation,
    response_to_conversation,
};
pub use request::{
    Blob, Content, CountTokensRequest, CountTokensResponse, Extra, FileData, FunctionCall,
    FunctionCallingConfig, FunctionDeclaration, FunctionResponse, GenerateContentRequest,
    GenerationConfig, Part, SafetySetting, ThinkingConfig, Tool, ToolConfig,
};
pub use response::{
    Candidate, GenerateContentResponse, Model, ModelList, PromptFeedback, UsageMetadata,
};
pub use stream::{
    DEFAULT_MAX_ELEMENT_BYTES, JsonArrayDecoder, JsonArrayEncoder, StreamDecoder, StreamEncoder,
};

/// Parse a JSON body into `T`; a failure is an `InvalidRequest` error naming the field.
pub use crate::openai::parse_json;

#[cfg(test)]
mod tests;
