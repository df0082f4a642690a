//! The upstream leg of the gateway: how every byte reaches a provider.
//!
//! - [`Client`] ([`ClientConfig`]): a pooled hyper 1.x client, HTTP/1.1 and HTTP/2 (ALPN) over
//!   rustls with webpki roots, `TCP_NODELAY`, idle connections closed by a timer, optional HTTP
//!   CONNECT or SOCKS5 outbound proxy. It implements `gateway_core::Transport`.
//! - [`HeaderPolicy`]: the one place that decides which headers go upstream, and
//!   [`strip_hop_by_hop`] for the way back.
//! - [`Forwarder`]: pass-through of a client request to one OpenAI-compatible upstream.
//!
//! Invariants:
//! - Bodies are never collected: they flow frame by frame in both directions, so memory per
//!   stream is bounded by hyper's buffers and a slow reader slows the upstream.
//! - Each time budget is its own error kind: connect, response headers, first body byte, idle gap
//!   between chunks, whole attempt.
//! - Error statuses become `GatewayError`s with the upstream's body and retry hint; a 2xx of the
//!   wrong content type is an error, never content.
//! - Dropping a response body aborts the upstream request and frees its connection.
//! - This crate never parses chat JSON and never logs secrets; messages name only
//!   `scheme://host:port`, never paths or queries.
//!
//! What reaches an upstream is decided by one policy:
//!
//! ```
//! use gateway_core::Secret;
//! use gateway_proxy::{HeaderPolicy, KeyHeader};
//! use http::{HeaderMap, HeaderValue};
//!
//! let mut incoming = HeaderMap::new();
//! incoming.insert("authorization", HeaderValue::from_static("Bearer client-key"));
//! incoming.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
//! incoming.insert("connection", HeaderValue::from_static("keep-alive"));
//! let policy = HeaderPolicy::new()
//!     .api_key(Secret::new("sk-upstream"))
//!     .key_header(KeyHeader::XApiKey);
//! let outgoing = policy.outgoing(&incoming)?;
//! assert_eq!(outgoing["x-api-key"], "sk-upstream");
//! assert!(outgoing.get("authorization").is_none(), "the client's key never goes upstream");
//! assert_eq!(outgoing["anthropic-version"], "2023-06-01");
//! assert!(outgoing.get("connection").is_none(), "hop-by-hop headers stay here");
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

mod client;
mod forward;
mod headers;
mod timeout;

pub use client::{Client, ClientConfig};
pub use forward::Forwarder;
pub use headers::{HOPS_HEADER, HeaderPolicy, KeyHeader, MAX_HOPS, hops, strip_hop_by_hop};
