//! Thought-signature bookkeeping across turns.
//!
//! The upstream signs its reasoning; the next turn must send the signature back with the same
//! reasoning or tool call, or Gemini 3 and Claude reject the history. Clients do not keep
//! signatures, so the service remembers them: per tool call id, and per thinking text. The memory
//! is bounded (oldest entries leave first) and each entry records the model family it came from,
//! because a signature is only valid for the family that made it.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
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
}

/// A bounded signature memory shared by all requests of a service.
#[derive(Debug)]
pub(crate) struct SignatureCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, (String, Family)>,
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
        self.insert(Key::ToolCall(id.to_owned()), signature, family);
    }

    pub(crate) fn remember_thinking(&self, text: &str, signature: &str, family: Family) {
        self.insert(Key::Thinking(text_key(text)), signature, family);
    }

    pub(crate) fn tool_call(&self, id: &str, family: Family) -> Option<String> {
        self.get(&Key::ToolCall(id.to_owned()), family)
    }

    pub(crate) fn thinking(&self, text: &str, family: Family) -> Option<String> {
        self.get(&Key::Thinking(text_key(text)), family)
    }

    fn insert(&self, key: Key, signature: &str, family: Family) {
        if signature.is_empty() || signature == SKIP_SIGNATURE {
            return;
        }
        let mut inner = self.lock();
        if inner
            .map
            .insert(key.clone(), (signature.to_owned(), family))
            .is_none()
        {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    fn get(&self, key: &Key, family: Family) -> Option<String> {
        self.lock()
            .map
            .get(key)
            .filter(|(_, made_by)| *made_by == family)
            .map(|(signature, _)| signature.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
}
