//! Conversations served through Google's Antigravity (Cloud Code) API, in process.
//!
//! The composition crate calls [`Service::generate`] directly (no loopback HTTP) with a
//! `gateway_core::conversation::Request` decoded from whichever protocol its client spoke, and
//! encodes the neutral events it returns for that client; [`Service::models`] serves `/models`,
//! and [`Service::chat`] is the OpenAI Chat dialect over `generate` for embedders. The service
//! translates the conversation to the Antigravity protocol, calls the upstream through
//! `gateway_core::Transport` with credentials from a [`Credentials`] implementation, and
//! translates the upstream's event stream back into conversation events, incrementally.
//! [`Translator`] offers the translation alone, without the pool or the network.
//!
//! The same service stands for the Gemini CLI's pool (Code Assist for individuals) when its
//! [`ServiceConfig`], [`PoolConfig`] and [`OAuthConfig`] name [`Profile::GeminiCli`]: another
//! OAuth client, base URL, envelope and model names over the same code.
//!
//! Reading order: `models` (the canonical model table), `schema` (JSON-schema cleaning), `names`
//! (reversible tool-name rewriting), `request` (conversation → Antigravity), `signatures`
//! (thought signatures across turns), `response` (Antigravity → conversation events),
//! `translation` (the public face of the two), `credentials` (the contract), `store` (account
//! files), `pool` (selection, tokens, cooldowns), `login` (OAuth), `profile` (Antigravity or
//! the Gemini CLI), `service`.
//!
//! Invariants:
//! - The network is reached only through `Transport`, so everything here is testable without
//!   sockets.
//! - Unsupported input is a 400 naming the field; nothing is dropped silently.
//! - Exactly one finish per response; a stream without a finish reason is an error; no text
//!   is ever injected into the model's output.
//! - The project id sent upstream is always the one of the account whose token is used.
//! - Upstream wire types stay private to this crate.

mod credentials;
mod hash;
mod login;
mod models;
mod names;
mod pool;
mod profile;
mod request;
mod response;
mod schema;
mod service;
mod signatures;
mod store;
mod translation;
mod wire;

pub use credentials::{AccountFile, Acquire, Credentials, Lease};
pub use login::{CALLBACK_PATH, LoginFlow, OAuthConfig};
pub use pool::{
    AccountPool, AccountView, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TOKEN_URL,
    PoolConfig, Selection,
};
pub use profile::Profile;
pub use service::{DEFAULT_BASE_URLS, DEFAULT_USER_AGENT, Generation, Service, ServiceConfig};
pub use store::{AccountState, AccountStore, ImportOutcome, Imported, StoredAccount};
pub use translation::{Events, Translated, Translator};

#[cfg(test)]
mod tests;
