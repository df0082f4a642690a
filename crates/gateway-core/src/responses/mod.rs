//! OpenAI Responses (`/v1/responses`) wire types, as Codex CLI and the OpenAI SDKs really send
//! them, and their translation to and from the neutral [`conversation`](crate::conversation).
//!
//! Why a dialect of its own: Codex speaks only Responses. Its requests are flat lists of items
//! (messages, function calls and their outputs, reasoning with `encrypted_content`), it sends
//! `store: false` and the whole history every turn, and it rebuilds each answer from the
//! stream's `output_item.done` events. Serving it from Chat, Anthropic and Gemini backends means
//! reading those items into the conversation ([`request_to_conversation`]), writing the
//! backend's events back as the full Responses event sequence ([`StreamEncoder`]) or one
//! [`ResponseObject`] ([`response_from_conversation`]), and the other way round for Responses
//! upstreams ([`request_from_conversation`], [`response_to_conversation`], [`StreamDecoder`]).
//!
//! Statelessness: the thinking signatures of Claude and Gemini must come back with the history,
//! yet Codex keeps nothing of ours but the items. A [`ReasoningSeal`] packs them into the
//! reasoning item's `encrypted_content` as an integrity-checked blob; the next turn's decoder
//! opens it and restores signed thinking and tool-call signatures. Blobs it did not make
//! (OpenAI's own encrypted reasoning) are carried along untouched, never an error.
//!
//! Like [`openai`](crate::openai), every struct keeps the fields it does not model in a
//! flattened `extra` map, a field sent as `null` is treated as absent, and a request or response
//! decoded into the conversation and encoded back is the same JSON value. Parse bodies with
//! [`parse_json`](crate::openai::parse_json).
//!
//! A Codex turn through the conversation and back as a stream:
//!
//! ```
//! use gateway_core::{
//!     conversation::{Event, FinishReason, Part, Role},
//!     openai::parse_json,
//!     responses::{self, ReasoningSeal, ResponsesRequest, StreamEncoder},
//! };
//!
//! let body = br#"{
//!     "model": "gpt-5-codex",
//!     "instructions": "You are Codex.",
//!     "input": [
//!         {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List files."}]},
//!         {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
//!         {"type": "function_call_output", "call_id": "call_1", "output": "README.md"}
//!     ],
//!     "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": false}],
//!     "tool_choice": "auto",
//!     "reasoning": {"effort": "medium", "summary": "auto"},
//!     "store": false,
//!     "stream": true
//! }"#;
//! let request: ResponsesRequest = parse_json(body)?;
//! let seal = ReasoningSeal::new(b"an operator secret of 32 bytes or more");
//! let conversation = responses::request_to_conversation(request.clone(), Some(&seal))?;
//! assert_eq!(conversation.system_text(), "You are Codex.");
//! assert_eq!(conversation.messages[1].role, Role::Assistant);
//! assert!(matches!(&conversation.messages[2].parts[0], Part::ToolResult { name: Some(n), .. } if n == "shell"));
//! // Back to Responses: the same request.
//! assert_eq!(responses::request_from_conversation(&conversation), request);
//!
//! // A backend's answer, streamed to Codex.
//! let mut encoder = StreamEncoder::new("resp_1", "gpt-5-codex", 1_760_000_000, Some(seal)).echo(&request);
//! let mut events = Vec::new();
//! for event in [
//!     Event::ThinkingDelta { index: 0, text: "The listing is short.".into() },
//!     Event::Signature { index: 0, signature: "claude-signature".into() },
//!     Event::BlockEnd { index: 0 },
//!     Event::TextDelta { index: 1, text: "Only README.md.".into() },
//!     Event::Finish { reason: FinishReason::Stop },
//! ] {
//!     events.extend(encoder.push(event)?);
//! }
//! events.extend(encoder.finish()?);
//! let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
//! assert_eq!(names.first(), Some(&"response.created"));
//! assert_eq!(names.last(), Some(&"response.completed"));
//! assert!(names.contains(&"response.reasoning_summary_text.delta"));
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

mod convert;
mod request;
mod response;
mod seal;
mod stream;

pub use convert::{
    CUSTOM_INPUT, custom_calls_from_functions, custom_input_from_arguments,
    custom_tool_as_function, custom_tools_as_functions, request_from_conversation,
    request_to_conversation, response_from_conversation, response_to_conversation,
};
pub use request::{
    Content, ContentPart, CustomTool, CustomToolCallItem, CustomToolCallOutputItem, Extra,
    FunctionCallItem, FunctionCallOutputItem, FunctionTool, Input, Item, MessageItem, MessageRole,
    NamedToolChoice, ReasoningConfig, ReasoningEffort, ReasoningItem, ReasoningText,
    ResponsesRequest, TextConfig, TextFormat, Tool, ToolChoice, ToolChoiceMode,
};
pub use response::{
    IncompleteDetails, InputTokensDetails, OutputTokensDetails, ResponseError, ResponseObject,
    ResponseSettings, ResponseStatus, ResponseUsage,
};
pub use seal::{ReasoningSeal, SEAL_PREFIX};
pub use stream::{StreamDecoder, StreamEncoder};

#[cfg(test)]
mod tests;
