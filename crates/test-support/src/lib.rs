//! Dev-only helpers for the gateway's tests. Never a normal dependency of a product crate.
//!
//! - [`MockUpstream`]: a scriptable upstream speaking OpenAI Chat Completions, Antigravity,
//!   Anthropic Messages, OpenAI Responses and the Gemini API, with fault injection, request and
//!   connection counters, abort detection and request recording.
//! - [`ConnectProxy`]: a minimal HTTP CONNECT proxy for outbound-proxy tests.
//!
//! Invariants: everything listens on 127.0.0.1 with an ephemeral port and stops when dropped;
//! every wait is bounded.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use test_support::{Behaviour, MockUpstream};
//!
//! let upstream = MockUpstream::start().await?;
//! // The next request gets a 503; later ones the default answers of their protocol.
//! upstream.push(Behaviour { status: 503, ..Behaviour::default() });
//! assert!(upstream.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(upstream.requests(), 0);
//! # Ok(())
//! # }
//! ```

mod connect_proxy;
pub mod mock;

pub use connect_proxy::ConnectProxy;
pub use mock::{Behaviour, MockUpstream, Recorded};
