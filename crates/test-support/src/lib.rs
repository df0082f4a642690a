//! Dev-only helpers for the gateway's tests. Never a normal dependency of a product crate.
//!
//! Status: the scriptable mock upstream lands with the proxy issue.
