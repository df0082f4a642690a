//! Anthropic Messages wire types (`/v1/messages`, `/v1/messages/count_tokens`, the stream
//! events), as Claude Code, the SDKs and Anthropic-compatible providers really send them, and
//! their translation to and from the neutral [`conversation`](crate::conversation).
//!
//! Why: Claude Code is the main client of the gateway, and it sends what Anthropic ships next
//! (beta blocks, server tools, new configuration objects) before this crate knows of it. So
//! every struct keeps the fields it does not model in a flattened `extra` map, every tagged
//! union keeps unknown types verbatim, and a field sent as `null` is treated as absent: unknown
//! fields and beta features never make a request fail to parse, and a request that passes
//! through the gateway keeps them. Parse with [`parse_json`], which turns serde's errors into a
//! 400 [`GatewayError`](crate::GatewayError) whose `param` names the offending field.
//!
//! [`request_to_conversation`], [`response_from_conversation`], [`StreamEncoder`],
//! [`StreamDecoder`] and their kin translate; [`convert`]'s docs list the mapping rules. The
//! error envelope and the stream's commit point live in [`Dialect`](crate::Dialect).
//!
//! A Claude Code request through the conversation and back:
//!
//! ```
//! use gateway_core::{
//!     anthropic,
//!     conversation::{Part, ReasoningMode, Role},
//! };
//!
//! let body = br#"{
//!     "model": "claude-sonnet-4-5",
//!     "max_tokens": 64000,
//!     "stream": true,
//!     "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
//!     "messages": [{"role": "user", "content": "List the files."}],
//!     "thinking": {"type": "adaptive"},
//!     "output_config": {"effort": "high"},
//!     "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
//!     "metadata": {"user_id": "user_abc"}
//! }"#;
//! let request: anthropic::MessagesRequest = anthropic::parse_json(body)?;
//! let conversation = anthropic::request_to_conversation(request.clone())?;
//! assert_eq!(conversation.system_text(), "You are Claude Code.");
//! assert_eq!(conversation.messages[0].role, Role::User);
//! assert_eq!(conversation.messages[0].parts, vec![Part::text("List the files.")]);
//! let reasoning = conversation.reasoning.as_ref().and_then(|r| r.mode);
//! assert_eq!(reasoning, Some(ReasoningMode::Adaptive));
//! assert_eq!(conversation.user.as_deref(), Some("user_abc"));
//! // Back to Anthropic: the cache breakpoint, the string content and `context_management`
//! // come back exactly as the client sent them.
//! assert_eq!(anthropic::request_from_conversation(&conversation), request);
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

pub mod convert;
mod request;
mod response;

pub use convert::{
    StreamDecoder, StreamEncoder, request_from_conversation, request_to_conversation,
    response_from_conversation, response_to_conversation,
};
pub use request::{
    CacheControl, Content, ContentBlock, ContentSource, CountTokensRequest, CustomTool,
    DocumentBlock, Extra, FileSource, ImageBlock, InputMessage, MediaSource, MessagesRequest,
    Metadata, OutputConfig, RedactedThinkingBlock, Role, Source, TextBlock, ThinkingBlock,
    ThinkingConfig, Tool, ToolChoice, ToolResultBlock, ToolUseBlock, UrlSource,
};
pub use response::{
    BlockDelta, CitationsDelta, ContentBlockDelta, ContentBlockStart, ContentBlockStop,
    CountTokensResponse, DeltaUsage, ErrorEvent, InputJsonDelta, Marker, MessageDelta,
    MessageDeltaEvent, MessageStart, MessagesResponse, OutputTokensDetails, SignatureDelta,
    StopReason, StreamEvent, TextDelta, ThinkingDelta, Usage,
};

/// Parse a JSON body into `T`; a failure is an `InvalidRequest` error naming the field (the
/// same parser as [`openai::parse_json`](crate::openai::parse_json)).
pub use crate::openai::parse_json;

#[cfg(test)]
mod tests;
