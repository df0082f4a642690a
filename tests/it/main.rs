//! End-to-end tests: one integration binary, one module per area.
//!
//! Every test talks only to 127.0.0.1 on ephemeral ports; every loop is bounded.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly on broken setup"
)]

mod accounts;
mod antigravity;
mod conformance;
mod contracts;
mod dashboard;
mod dialects;
mod gateway;
mod geminicli;
mod harness;
mod operations;
mod protocols;
mod scaleout;
