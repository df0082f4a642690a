//! The shared vocabulary of the gateway: every other crate speaks these types.
//!
//! Reading order:
//! - [`conversation`]: the protocol-neutral conversation (requests of typed parts, response
//!   events, usage, finish reasons) that every protocol translates to and from.
//! - [`openai`]: Chat Completions wire types (requests, responses, chunks, models, the error
//!   envelope), with unknown fields kept, and their translation to and from the conversation.
//! - [`anthropic`]: Anthropic Messages wire types (requests, responses, stream events,
//!   `count_tokens`), with unknown fields and beta blocks kept, their translation to and from
//!   the conversation, and the stream encoder and decoder.
//! - [`responses`]: OpenAI Responses wire types, their translation to and from the
//!   conversation, its stream events, and the seal that carries thinking signatures through
//!   stateless turns.
//! - [`gemini`]: Gemini API (`generateContent`) wire types, their translation to and from the
//!   conversation, and its streams (SSE or a streamed JSON array).
//! - [`GatewayError`]: the one opaque error, its kinds ([`ErrorKind`], [`Side`]), HTTP status
//!   mapping and the OpenAI envelope.
//! - [`Dialect`] ([`dialect`]): per client protocol, what counts as content in its stream, how
//!   it ends, its error envelope and its terminal error event.
//! - [`RetryHint`] ([`retry`]): when an upstream says to come back, from headers and error bodies.
//! - [`Secret`]: a credential that prints as `[redacted]`.
//! - [`sse`]: an incremental server-sent-events decoder and an encoder.
//! - [`body`]: the streaming body type passed between crates.
//! - [`Transport`] (with [`CallOptions`], [`Expect`], [`Timeouts`]): how a service reaches the
//!   network, implemented by `gateway-proxy`.
//! - [`ChatBackend`] (with [`ChatContext`], [`ChatOutput`], [`ChunkStream`]): what an in-process
//!   chat backend offers the composition crate.
//!
//! Invariants:
//! - No IO, no runtime, no logging: this crate is a leaf that anything can depend on.
//! - No panics on any input: malformed JSON and streams become typed errors.
//! - Error messages are lowercase, have no trailing period and never contain secrets.

pub mod anthropic;
mod backend;
pub mod body;
pub mod conversation;
pub mod dialect;
mod error;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod retry;
mod secret;
pub mod sse;
pub mod state;
#[cfg(test)]
mod test_support;
mod transport;
mod wire;

pub use backend::{ChatBackend, ChatContext, ChatOutput, ChunkStream};
pub use body::Body;
pub use dialect::Dialect;
pub use error::{ErrorKind, GatewayError, Side};
pub use retry::RetryHint;
pub use secret::Secret;
pub use transport::{CallOptions, Expect, Timeouts, Transport};
