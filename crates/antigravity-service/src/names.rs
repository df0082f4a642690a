//! Reversible tool-name rewriting.
//!
//! Gemini accepts function names matching `[A-Za-z_][A-Za-z0-9_.-]*`, at most 64 characters.
//! Other names are rewritten (invalid characters become `_`, a leading `_` is added when needed,
//! long names are cut and given a hash suffix so two names never collide), and the response maps
//! the upstream's name back, so `mcp.server/tool` returns to the client as `mcp.server/tool`.
//! The suffix comes from [`crate::hash`], so a name is the same on every toolchain.

use std::collections::HashMap;

use crate::hash::stable_hash;

const MAX_LEN: usize = 64;

/// The names of one request, both ways.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolNames {
    to_upstream: HashMap<String, String>,
    to_client: HashMap<String, String>,
}

impl ToolNames {
    /// The upstream name for a client's tool name (registering it if new).
    pub(crate) fn upstream(&mut self, client: &str) -> String {
        if let Some(known) = self.to_upstream.get(client) {
            return known.clone();
        }
        let mut name = sanitize(client);
        if self
            .to_client
            .get(&name)
            .is_some_and(|other| other != client)
        {
            name = with_hash(&name, client);
        }
        self.to_upstream.insert(client.to_owned(), name.clone());
        self.to_client.insert(name.clone(), client.to_owned());
        name
    }

    /// The client's name for an upstream name; unknown names come back unchanged.
    pub(crate) fn client<'a>(&'a self, upstream: &'a str) -> &'a str {
        self.to_client
            .get(upstream)
            .map_or(upstream, String::as_str)
    }
}

/// Whether Gemini accepts `name` as it is.
pub(crate) fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= MAX_LEN
}

fn sanitize(name: &str) -> String {
    if is_valid(name) {
        return name.to_owned();
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    if out.len() > MAX_LEN || out != name {
        // A changed name carries a hash of the original, so distinct names stay distinct.
        out = with_hash(&out, name);
    }
    out
}

fn with_hash(base: &str, original: &str) -> String {
    // Stable across Rust releases: the upstream sees the same name for the same tool every time.
    let suffix = format!("_{:08x}", stable_hash(original.as_bytes()) as u32);
    let keep = MAX_LEN - suffix.len();
    let cut = base.char_indices().nth(keep).map_or(base.len(), |(i, _)| i);
    format!("{}{suffix}", &base[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_untouched() {
        let mut names = ToolNames::default();
        for name in [
            "get_weather",
            "_private",
            "mcp.server.tool",
            "a-b",
            &"x".repeat(64),
        ] {
            assert_eq!(names.upstream(name), name);
            assert_eq!(names.client(name), name);
        }
    }

    #[test]
    fn invalid_names_round_trip() {
        let mut names = ToolNames::default();
        let long = format!("tool_{}", "y".repeat(80));
        for name in [
            "mcp.server/tool",
            "9lives",
            "héllo wörld",
            "a b",
            "",
            long.as_str(),
        ] {
            let upstream = names.upstream(name);
            assert!(is_valid(&upstream), "{name:?} became invalid {upstream:?}");
            assert_eq!(names.client(&upstream), name);
            // Stable within a request.
            assert_eq!(names.upstream(name), upstream);
        }
    }

    #[test]
    fn names_that_sanitize_alike_stay_distinct() {
        let mut names = ToolNames::default();
        let a = names.upstream("a/b");
        let b = names.upstream("a:b");
        let c = names.upstream("a_b");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        assert_eq!(names.client(&a), "a/b");
        assert_eq!(names.client(&b), "a:b");
        assert_eq!(names.client(&c), "a_b");
        assert_eq!(names.client("never_declared"), "never_declared");
    }

    #[test]
    fn the_hash_suffix_is_pinned() {
        // The upstream sees these names; they must not change with the toolchain.
        let mut names = ToolNames::default();
        assert_eq!(
            names.upstream("mcp.server/tool"),
            "mcp.server_tool_cc35eccb"
        );
    }
}
