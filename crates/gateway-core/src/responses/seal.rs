//! [`ReasoningSeal`]: thinking signatures carried through the client inside a reasoning item's
//! `encrypted_content`, so stateless turns (`store: false`) restore them without server state.
//!
//! Why: Claude's thinking blocks must come back with their signatures (and redacted blocks with
//! their data), and Gemini's function calls with their thought signatures, or the next turn
//! fails or loses the model's reasoning. Codex keeps no state of ours but sends every reasoning
//! item back verbatim, `encrypted_content` included. So the gateway packs what it must get back
//! into that field, tagged so it can tell its own blobs from anyone else's.
//!
//! Format: `gw1.` + base64url(JSON payload) + `.` + base64url(HMAC-SHA256 over everything
//! before the last dot), under a key the operator supplies. The version prefix lets a later
//! format coexist; the tag makes a blob the gateway did not write (another provider's
//! ciphertext, a tampered or truncated blob, garbage) open to `None`, never to an error.
//! The payload is signed, not encrypted: it holds what the model showed the client anyway
//! (the thinking text) and provider signatures, which are opaque but not secret.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::conversation::{Extras, Part};

/// The prefix of every sealed blob; the version is part of what the tag covers.
pub const SEAL_PREFIX: &str = "gw1.";

/// Seals and opens the signatures of one assistant turn's reasoning.
///
/// ```
/// use gateway_core::{conversation::Part, responses::ReasoningSeal};
///
/// let seal = ReasoningSeal::new(b"operator secret");
/// let mut call = Part::tool_call("call_1", "shell", "{}");
/// if let Part::ToolCall { signature, .. } = &mut call {
///     *signature = Some("gemini-thought-signature".to_owned());
/// }
/// let parts = vec![Part::thinking("Plan.", Some("claude-signature".to_owned())), call];
/// let blob = seal.seal(&parts);
/// assert!(blob.starts_with("gw1."));
///
/// let opened = seal.open(&blob).unwrap();
/// assert_eq!(opened[0], parts[0]);
/// // Tool-call signatures come back on bare calls: id and signature, no name or arguments.
/// assert!(matches!(
///     &opened[1],
///     Part::ToolCall { id, signature: Some(s), .. } if id == "call_1" && s == "gemini-thought-signature"
/// ));
/// // Someone else's blob is ignored, not an error.
/// assert_eq!(seal.open("gAAAAABo-openai-ciphertext"), None);
/// assert_eq!(ReasoningSeal::new(b"another key").open(&blob), None);
/// ```
#[derive(Clone)]
pub struct ReasoningSeal {
    key: hmac::Key,
}

impl fmt::Debug for ReasoningSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReasoningSeal([redacted])")
    }
}

/// What a blob holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    /// Thinking and redacted thinking blocks, in order.
    #[serde(default, rename = "b", skip_serializing_if = "Vec::is_empty")]
    blocks: Vec<Block>,
    /// Tool-call signatures: (call id, signature).
    #[serde(default, rename = "c", skip_serializing_if = "Vec::is_empty")]
    calls: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Block {
    /// A thinking block: its text (the signature covers it) and signature.
    #[serde(rename = "t")]
    Thinking {
        #[serde(rename = "t")]
        text: String,
        #[serde(default, rename = "s", skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A redacted thinking block's data.
    #[serde(rename = "r")]
    Redacted {
        #[serde(rename = "d")]
        data: String,
    },
}

impl ReasoningSeal {
    /// A seal under `key`; blobs open only under the key that sealed them. Use a secret of at
    /// least 32 random bytes and keep it across restarts, or earlier turns stop opening.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Whether `parts` hold anything worth sealing: a signature, or redacted thinking.
    pub fn is_worth_sealing(parts: &[Part]) -> bool {
        parts.iter().any(|part| match part {
            Part::Thinking { signature, .. } | Part::ToolCall { signature, .. } => {
                signature.is_some()
            }
            Part::RedactedThinking { .. } => true,
            _ => false,
        })
    }

    /// Seal the thinking and redacted thinking parts of `parts` (in order) and the signatures
    /// of its tool calls (by call id); other parts are left out.
    pub fn seal(&self, parts: &[Part]) -> String {
        let mut payload = Payload::default();
        for part in parts {
            match part {
                Part::Thinking {
                    text, signature, ..
                } => payload.blocks.push(Block::Thinking {
                    text: text.clone(),
                    signature: signature.clone(),
                }),
                Part::RedactedThinking { data, .. } => {
                    payload.blocks.push(Block::Redacted { data: data.clone() });
                }
                Part::ToolCall {
                    id,
                    signature: Some(signature),
                    ..
                } => payload.calls.push((id.clone(), signature.clone())),
                _ => {}
            }
        }
        // Serializing strings into JSON cannot fail; an empty payload would still open.
        let json = serde_json::to_vec(&payload).unwrap_or_else(|_| b"{}".to_vec());
        let mut blob = String::with_capacity(SEAL_PREFIX.len() + json.len() * 4 / 3 + 48);
        blob.push_str(SEAL_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&json, &mut blob);
        let tag = hmac::sign(&self.key, blob.as_bytes());
        blob.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut blob);
        blob
    }

    /// Open a blob this seal made: its thinking and redacted thinking parts in order, then
    /// one [`Part::ToolCall`] per signed call carrying only `id` and `signature` (empty name
    /// and arguments). `None` for anything else: another prefix, another key, a changed byte.
    pub fn open(&self, blob: &str) -> Option<Vec<Part>> {
        let rest = blob.strip_prefix(SEAL_PREFIX)?;
        let (payload, tag) = rest.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let signed = blob.get(..SEAL_PREFIX.len() + payload.len())?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).ok()?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let payload: Payload = serde_json::from_slice(&json).ok()?;
        let blocks = payload.blocks.into_iter().map(|block| match block {
            Block::Thinking { text, signature } => Part::thinking(text, signature),
            Block::Redacted { data } => Part::RedactedThinking {
                data,
                extra: Extras::default(),
            },
        });
        let calls = payload
            .calls
            .into_iter()
            .map(|(id, signature)| Part::ToolCall {
                id,
                name: String::new(),
                arguments: String::new(),
                signature: Some(signature),
                extra: Extras::default(),
            });
        Some(blocks.chain(calls).collect())
    }
}
