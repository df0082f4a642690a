//! The account exports of the tools people migrate from, read into one [`AccountFile`] shape.
//!
//! Each tool spells the same few facts differently; rather than a serde type per tool (and the
//! "duplicate field" errors aliases produce when a file carries two spellings), a file is read
//! as JSON, its spellings are rewritten to the canonical keys, and only then typed:
//! - gcli2api: `token` and/or `access_token` (both may be present; `access_token` wins),
//!   `expiry` in RFC 3339 with an offset, `scopes`, `token_uri`.
//! - CLIProxyAPI: `type: "antigravity"`, `access_token`, `refresh_token`, `expired` (RFC 3339
//!   with an offset), `expires_in`, `timestamp`.
//! - Antigravity-Manager: the account with a nested `token` object (`access_token`,
//!   `refresh_token`, `expiry_timestamp` in unix seconds, `project_id`, `email`).
//! - opencode-antigravity-auth: `antigravity-accounts.json`, `{"version", "accounts": [...],
//!   "activeIndex"}` with camelCase accounts (`email`, `refreshToken`, `projectId`,
//!   `managedProjectId`); a `refreshToken` of the form `token|project|managed` is split.
//! - Gemini CLI: `oauth_creds.json`, `access_token`, `refresh_token`, `expiry_date` in unix
//!   milliseconds, `token_type`, `scope`, no client (the configured default client is used).
//!
//! A top-level `accounts` array, or a top-level array, holds many accounts. Keys that only
//! restate the expiry are dropped once the canonical `expiry` is written, so they never go
//! stale beside it; every other key is kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use gateway_core::GatewayError;

use crate::credentials::{AccountFile, format_rfc3339, parse_rfc3339};

/// Keys that restate when the access token expires, in the order they are trusted.
const EXPIRY_ALIASES: [&str; 3] = ["expired", "expiry_date", "expiry_timestamp"];

/// Every account in an exported file, in file order.
pub(crate) fn accounts_in(bytes: &[u8]) -> Result<Vec<AccountFile>, GatewayError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::invalid_request(format!("invalid account file: {e}")))?;
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Object(mut map) => match map.remove("accounts") {
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                map.insert("accounts".to_owned(), other);
                vec![Value::Object(map)]
            }
            None => vec![Value::Object(map)],
        },
        _ => {
            return Err(GatewayError::invalid_request(
                "invalid account file: expected a json object",
            ));
        }
    };
    let many = entries.len() > 1;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let Value::Object(map) = entry else {
                return Err(GatewayError::invalid_request(format!(
                    "invalid account file: account {} is not a json object",
                    index + 1
                )));
            };
            normalize(map).map_err(|err| {
                if many {
                    GatewayError::invalid_request(format!(
                        "account {}: {}",
                        index + 1,
                        err.message()
                    ))
                } else {
                    err
                }
            })
        })
        .collect()
}

/// One account object in any known spelling, as an [`AccountFile`].
fn normalize(mut map: Map<String, Value>) -> Result<AccountFile, GatewayError> {
    // Antigravity-Manager: the credentials live in a nested `token` object.
    if let Some(Value::Object(token)) = map.get("token").cloned() {
        map.remove("token");
        for (key, value) in token {
            map.entry(key).or_insert(value);
        }
    }
    // opencode-antigravity-auth and other camelCase exports.
    for (from, to) in [
        ("refreshToken", "refresh_token"),
        ("accessToken", "access_token"),
        ("clientId", "client_id"),
        ("clientSecret", "client_secret"),
    ] {
        rename(&mut map, from, to);
    }
    // The managed project is the one Cloud Code assigned; it is what requests must carry.
    rename(&mut map, "managedProjectId", "project_id");
    if !has_text(&map, "project_id")
        && let Some(project) = map.get("projectId").cloned()
    {
        map.insert("project_id".to_owned(), project);
    }
    split_packed_refresh_token(&mut map);
    // gcli2api writes `token`, sometimes beside `access_token`.
    if let Some(Value::String(token)) = map.remove("token")
        && !has_text(&map, "access_token")
    {
        map.insert("access_token".to_owned(), Value::String(token));
    }
    normalize_expiry(&mut map);
    serde_json::from_value(Value::Object(map))
        .map_err(|e| GatewayError::invalid_request(format!("invalid account file: {e}")))
}

fn has_text(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key)
        .and_then(Value::as_str)
        .is_some_and(|text| !text.is_empty())
}

/// Move `from` to `to` unless `to` already has a value.
fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    if has_text(map, to) {
        return;
    }
    if let Some(value) = map.remove(from) {
        if value.as_str().is_some_and(|text| !text.is_empty()) {
            map.insert(to.to_owned(), value);
        } else {
            map.insert(from.to_owned(), value);
        }
    }
}

/// opencode stores `refresh|project|managedProject` in one string.
fn split_packed_refresh_token(map: &mut Map<String, Value>) {
    let Some(packed) = map.get("refresh_token").and_then(Value::as_str) else {
        return;
    };
    if !packed.contains('|') {
        return;
    }
    let parts: Vec<String> = packed.split('|').map(str::to_owned).collect();
    let part = |i: usize| parts.get(i).cloned().unwrap_or_default();
    map.insert("refresh_token".to_owned(), Value::String(part(0)));
    let (project, managed) = (part(1), part(2));
    let project = if managed.is_empty() { project } else { managed };
    if !project.is_empty() && !has_text(map, "project_id") {
        map.insert("project_id".to_owned(), Value::String(project));
    }
}

/// Write the canonical `expiry` (RFC 3339, UTC) from whichever spelling the file uses.
fn normalize_expiry(map: &mut Map<String, Value>) {
    let mut at = map
        .get("expiry")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    if at.is_none() {
        at = map
            .get("expired")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .or_else(|| {
                map.get("expiry_date")
                    .and_then(Value::as_f64)
                    .and_then(|ms| after_epoch(ms / 1000.0))
            })
            .or_else(|| {
                map.get("expiry_timestamp")
                    .and_then(Value::as_f64)
                    .and_then(after_epoch)
            });
    }
    if let Some(at) = at {
        map.insert("expiry".to_owned(), Value::String(format_rfc3339(at)));
        for alias in EXPIRY_ALIASES {
            map.remove(alias);
        }
    }
}

fn after_epoch(seconds: f64) -> Option<SystemTime> {
    (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
        .and_then(|offset| UNIX_EPOCH.checked_add(offset))
}
