//! The backend contract the composition crate dispatches on.
//!
//! An in-process service (such as `antigravity-service`) implements [`ChatBackend`]: it takes a
//! parsed [`ChatRequest`] and returns either a whole completion or a stream of chunks. Backends
//! reached over HTTP do not implement it; they are forwarded byte for byte by `gateway-proxy`.

use std::{future::Future, pin::Pin};

use futures_core::Stream;

use crate::{
    GatewayError,
    openai::{ChatCompletion, ChatCompletionChunk, ChatRequest, ModelList},
};

/// A stream of chunks; an `Err` item ends the stream and is reported in-band.
pub type ChunkStream =
    Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk, GatewayError>> + Send>>;

/// What a chat call produced.
pub enum ChatOutput {
    /// The whole completion (`stream: false`).
    Complete(Box<ChatCompletion>),
    /// Chunks in order, without the final `[DONE]`, which the server writes (`stream: true`).
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(c) => f.debug_tuple("Complete").field(c).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// What the caller knows about the request besides its body.
#[derive(Debug, Clone, Default)]
pub struct ChatContext {
    /// A conversation id from `x-ag-conversation-id` / `x-conversation-id`, when the client sent one.
    pub conversation_id: Option<String>,
}

/// An in-process chat-completions backend.
pub trait ChatBackend: Send + Sync + 'static {
    /// Serve one chat completion. Errors before the first chunk are returned as `Err` so the
    /// caller can fail over.
    fn chat(
        &self,
        request: ChatRequest,
        context: ChatContext,
    ) -> impl Future<Output = Result<ChatOutput, GatewayError>> + Send;

    /// The models this backend serves.
    fn models(&self) -> impl Future<Output = Result<ModelList, GatewayError>> + Send;

    /// Whether the backend can serve at all right now (for example: it has usable accounts).
    fn is_available(&self) -> bool;
}
