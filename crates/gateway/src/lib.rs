//! The gateway: configuration, backend registry, routing chains, the choice between the
//! in-process service and the proxy, and the HTTP server.
//!
//! Invariants:
//! - This is the only crate that reads files or the environment, owns the runtime and installs
//!   the tracing subscriber.
//! - Routing decisions (which backend, which model, local or proxy, retry, fail over or stop)
//!   are pure functions over data.
//! - Nothing reaches the client before the commit point; after it, errors travel in-band.
//!
//! Status: the crate is a placeholder until the gateway issue lands; it exposes nothing yet.
