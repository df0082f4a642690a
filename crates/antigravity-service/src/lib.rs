//! In-process OpenAI chat completions served through Google's Antigravity (Cloud Code) API.
//!
//! Purpose: the composition crate calls this service directly (no loopback HTTP) for
//! `/chat/completions` and `/models` on the `antigravity` backend. It translates OpenAI requests
//! to the Antigravity protocol and the upstream's event stream back to OpenAI chunks, keeps
//! thought signatures across turns, and manages the Google account pool.
//!
//! Invariants (the specification is `shared/docs/antigravity.md`):
//! - The network is reached only through `gateway_core::Transport`, so everything here is
//!   testable without sockets.
//! - Unsupported input is a 400 naming the field; nothing is dropped silently.
//! - Exactly one finish chunk per response; a stream without a finish reason is an error.
//! - The project id sent upstream is always the one of the account whose token is used.
//!
//! Status: the crate is a placeholder until the translation issue lands; it exposes nothing yet.
