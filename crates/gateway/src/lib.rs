//! The gateway: configuration, backend registry, routing chains, the choice between the
//! in-process service and the proxy, and the HTTP server.
//!
//! Entry point: [`serve`] (also what the binary runs and what the end-to-end tests call), with a
//! [`Config`] from [`Config::load`], [`Config::embedded`] or [`Config::parse`]:
//!
//! ```
//! let text = "[backends.copilot]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8141/v1\"\n";
//! let config = gateway::Config::parse(text, "gateway.toml", &|_| None)?;
//! assert_eq!(config.backends()[0].name, "copilot");
//! // A mistake names the file, the line and the key.
//! let wrong = gateway::Config::parse("[server]\nlisten = \"nowhere\"\n", "gateway.toml", &|_| None);
//! assert!(wrong.is_err_and(|e| e.to_string().starts_with("gateway.toml:2: server.listen")));
//! # Ok::<(), gateway::ConfigErrors>(())
//! ```
//!
//! `serve(listener, config, shutdown)` then runs until `shutdown` completes.
//!
//! Reading order: `config` (the file and its validation), `routing` (model → chain of hops, pure),
//! `dispatch` (local or proxy, pure), `classify` (retry, fail over or stop, pure), `breaker` and
//! `budget` (circuit breakers, the global retry budget), `app` (state built from the config),
//! `chat` (walking a chain), `commit` (the commit point for streams), `models`, `admin`,
//! `metrics`, `http` (bodies, auth, responses, event streams), `auth` (client and admin keys,
//! rate windows), `usage` (token accounting), `reload` (the configuration swapped while
//! serving), `effective` (the printed configuration), `server`.
//!
//! Invariants:
//! - This is the only crate that reads configuration files or the environment, owns the
//!   runtime and installs the tracing subscriber (the account store of `antigravity-service`
//!   keeps its own files).
//! - Routing and the local-or-proxy choice are pure functions over data.
//! - Nothing reaches the client before a hop answered; after that, a failure travels in-band as
//!   the terminal error event.
//! - Every error is the OpenAI envelope with the matching status.

mod activity;
mod admin;
mod app;
mod auth;
mod breaker;
mod budget;
mod chat;
mod classify;
mod commit;
pub mod config;
mod convert;
mod dispatch;
mod effective;
mod http;
mod keys;
mod metrics;
mod models;
mod reload;
mod responses_store;
mod routing;
mod server;
mod state;
pub mod telemetry;
mod tokens;
mod ui;
mod usage;

pub use config::{Config, ConfigError, ConfigErrors};
pub use effective::effective_toml;
pub use server::{serve, serve_with_reload};
