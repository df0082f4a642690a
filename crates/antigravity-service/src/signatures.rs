//! Thought-signature bookkeeping across turns.
//!
//! The upstream signs its reasoning; the next turn must send the signature back with the same
//! reasoning or tool call, or the upstream rejects the history (Gemini 3 and Claude) or thinks
//! without its earlier thoughts (Gemini 2.5). Clients do not keep signatures, so the service
//! remembers them: per tool call id, per thinking text, and per turn of several thinking blocks.
//! The memory is bounded (oldest entries leave first) and each entry records the model family it
//! came from, because a signature is only valid for the family that made it.
//!
//! A turn of interleaved thinking (Claude thinks, calls a tool, thinks again) has one signature
//! per block, but a client that speaks OpenAI sees one `reasoning_content` string, the blocks
//! concatenated, and sends that back. So the turn is also remembered under the concatenation,
//! with where each signed block lies in it: the next turn splits the client's string at those
//! places and restores every block with its own signature. Only offsets are kept, not the text.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    ops::Range,
    sync::Mutex,
};

use crate::models::Family;

/// The sentinel Gemini accepts in place of an unknown function-call signature.
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// What the cache is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    ToolCall(String),
    Thinking(u64),
    /// A turn's whole reasoning, as a client concatenates its blocks.
    Turn(u64),
}

/// What the cache remembers under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Remembered {
    Signature(String),
    Turn(TurnBlocks),
}

/// The signed blocks of one turn's reasoning, located in its concatenation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TurnBlocks {
    /// Whitespace around the concatenation, which a client may trim.
    leading: String,
    trailing: String,
    /// The concatenation's length in bytes.
    len: usize,
    /// Each signed block: its byte range in the concatenation and its signature.
    blocks: Vec<(Range<usize>, String)>,
}

/// One restored thinking block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThinkingBlock {
    pub(crate) text: String,
    pub(crate) signature: String,
}

/// A bounded signature memory shared by all requests of a service.
#[derive(Debug)]
pub(crate) struct SignatureCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, (Remembered, Family)>,
    order: VecDeque<Key>,
}

impl SignatureCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn remember_tool_call(&self, id: &str, signature: &str, family: Family) {
        if usable(signature) {
            self.insert(
                Key::ToolCall(id.to_owned()),
                Remembered::Signature(signature.to_owned()),
                family,
            );
        }
    }

    pub(crate) fn remember_thinking(&self, text: &str, signature: &str, family: Family) {
        if usable(signature) {
            self.insert(
                Key::Thinking(text_key(text)),
                Remembered::Signature(signature.to_owned()),
                family,
            );
        }
    }

    /// Remember a turn's reasoning as the client will send it back (`reasoning`, every
    /// thinking block concatenated) with the byte range and signature of each signed block.
    pub(crate) fn remember_turn(
        &self,
        reasoning: &str,
        blocks: &[(Range<usize>, String)],
        family: Family,
    ) {
        let blocks: Vec<(Range<usize>, String)> = blocks
            .iter()
            .filter(|(range, signature)| {
                usable(signature) && reasoning.get(range.clone()).is_some()
            })
            .cloned()
            .collect();
        if blocks.is_empty() {
            return;
        }
        let trimmed_start = reasoning.trim_start();
        let leading = &reasoning[..reasoning.len() - trimmed_start.len()];
        let trailing = &trimmed_start[trimmed_start.trim_end().len()..];
        self.insert(
            Key::Turn(text_key(reasoning)),
            Remembered::Turn(TurnBlocks {
                leading: leading.to_owned(),
                trailing: trailing.to_owned(),
                len: reasoning.len(),
                blocks,
            }),
            family,
        );
    }

    pub(crate) fn tool_call(&self, id: &str, family: Family) -> Option<String> {
        match self.get(&Key::ToolCall(id.to_owned()), family)? {
            Remembered::Signature(signature) => Some(signature),
            Remembered::Turn(_) => None,
        }
    }

    pub(crate) fn thinking(&self, text: &str, family: Family) -> Option<String> {
        match self.get(&Key::Thinking(text_key(text)), family)? {
            Remembered::Signature(signature) => Some(signature),
            Remembered::Turn(_) => None,
        }
    }

    /// The signed blocks of a remembered turn whose concatenated reasoning is `reasoning`, each
    /// with its own text and signature, in order.
    pub(crate) fn turn(&self, reasoning: &str, family: Family) -> Option<Vec<ThinkingBlock>> {
        let Remembered::Turn(turn) = self.get(&Key::Turn(text_key(reasoning)), family)? else {
            return None;
        };
        // The client may have trimmed the ends; the blocks are located in the original.
        let original = format!("{}{}{}", turn.leading, reasoning.trim(), turn.trailing);
        if original.len() != turn.len {
            return None;
        }
        turn.blocks
            .into_iter()
            .map(|(range, signature)| {
                original.get(range).map(|text| ThinkingBlock {
                    text: text.to_owned(),
                    signature,
                })
            })
            .collect()
    }

    fn insert(&self, key: Key, value: Remembered, family: Family) {
        let mut inner = self.lock();
        if inner.map.insert(key.clone(), (value, family)).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    fn get(&self, key: &Key, family: Family) -> Option<Remembered> {
        self.lock()
            .map
            .get(key)
            .filter(|(_, made_by)| *made_by == family)
            .map(|(remembered, _)| remembered.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A signature worth remembering: not empty, not the sentinel.
fn usable(signature: &str) -> bool {
    !signature.is_empty() && signature != SKIP_SIGNATURE
}

/// Thinking text is keyed by a hash of its trimmed form, so whitespace a client adds or drops
/// at the ends does not lose the signature.
fn text_key(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.trim().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_id_and_text_per_family() {
        let cache = SignatureCache::new(10);
        cache.remember_tool_call("call_1", "sig-a", Family::Gemini3);
        cache.remember_thinking("  I should call the tool.\n", "sig-b", Family::Claude);
        assert_eq!(
            cache.tool_call("call_1", Family::Gemini3).as_deref(),
            Some("sig-a")
        );
        assert_eq!(cache.tool_call("call_1", Family::Claude), None);
        assert_eq!(
            cache
                .thinking("I should call the tool.", Family::Claude)
                .as_deref(),
            Some("sig-b")
        );
        assert_eq!(cache.thinking("something else", Family::Claude), None);
    }

    #[test]
    fn is_bounded_and_ignores_the_sentinel() {
        let cache = SignatureCache::new(3);
        for i in 0..5 {
            cache.remember_tool_call(&format!("c{i}"), "sig", Family::Gemini3);
        }
        assert_eq!(cache.tool_call("c0", Family::Gemini3), None);
        assert_eq!(cache.tool_call("c1", Family::Gemini3), None);
        assert!(cache.tool_call("c4", Family::Gemini3).is_some());
        cache.remember_tool_call("s", SKIP_SIGNATURE, Family::Gemini3);
        assert_eq!(cache.tool_call("s", Family::Gemini3), None);
        assert_eq!(cache.lock().order.len(), 3);
    }

    #[test]
    fn a_turn_of_several_blocks_is_restored_from_its_concatenation() {
        let cache = SignatureCache::new(10);
        // Three blocks as a client concatenates them; the middle one came unsigned.
        let reasoning = "\nFirst /src. Then /docs.Unsigned. ";
        let first = 0.."\nFirst /src.".len();
        let second = first.end..first.end + " Then /docs.".len();
        cache.remember_turn(
            reasoning,
            &[
                (first, "sig-a".to_owned()),
                (second, "sig-b".to_owned()),
                (0..999, "out-of-range".to_owned()),
            ],
            Family::Claude,
        );
        let expected = vec![
            ThinkingBlock {
                text: "\nFirst /src.".to_owned(),
                signature: "sig-a".to_owned(),
            },
            ThinkingBlock {
                text: " Then /docs.".to_owned(),
                signature: "sig-b".to_owned(),
            },
        ];
        assert_eq!(
            cache.turn(reasoning, Family::Claude),
            Some(expected.clone())
        );
        // A client that trims the ends still gets the blocks as the model wrote them.
        assert_eq!(
            cache.turn("First /src. Then /docs.Unsigned.", Family::Claude),
            Some(expected)
        );
        assert_eq!(cache.turn(reasoning, Family::Gemini3), None);
        assert_eq!(cache.turn("First /src.", Family::Claude), None);
        assert_eq!(cache.thinking(reasoning, Family::Claude), None);
        // Nothing signed, nothing remembered.
        cache.remember_turn("x y", &[(0..1, SKIP_SIGNATURE.to_owned())], Family::Claude);
        assert_eq!(cache.turn("x y", Family::Claude), None);
    }
}
