//! One canonical table from the names clients send to Antigravity's upstream model ids.
//!
//! Spellings are normalised first (case, a bracketed variant such as Claude Code's `[1m]`, `4.5`
//! → `4-5`, a trailing `-YYYYMMDD` date), then looked up. A `-thinking` suffix on a model that
//! has no thinking id of its own turns thinking on for the base id. Unknown names pass through
//! unchanged; nothing is ever swapped for another family.
//!
//! Claude's thinking lives in separate upstream ids (`claude-sonnet-4-5-thinking`); the plain id
//! takes no `thinkingConfig`. [`thinking_id`] names the twin, which the request translation uses
//! when a client asks a plain id for reasoning.

/// The model families, which differ in how thinking and signatures work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Claude,
    Gemini3,
    Gemini,
    Other,
}

/// What the table decided for one requested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelSpec {
    /// The id sent upstream.
    pub(crate) upstream: String,
    pub(crate) family: Family,
    /// The name asked for thinking (a `-thinking` variant or a thinking-only upstream id).
    pub(crate) thinking: bool,
    /// Image generation models are sent with `requestType: image_gen`.
    pub(crate) image: bool,
    /// The most output tokens the upstream model accepts, when known: a larger request is
    /// clamped rather than refused (Claude Code asks 64000 of every model).
    pub(crate) max_output: Option<u32>,
}

/// Exact aliases after normalisation: (client spelling, upstream id).
const ALIASES: &[(&str, &str)] = &[
    ("claude-4-5-sonnet", "claude-sonnet-4-5"),
    ("claude-4-5-sonnet-thinking", "claude-sonnet-4-5-thinking"),
    ("claude-opus-4-5", "claude-opus-4-5-thinking"),
    ("claude-4-5-opus", "claude-opus-4-5-thinking"),
    ("claude-4-5-opus-thinking", "claude-opus-4-5-thinking"),
    ("claude-opus-4-1", "claude-opus-4-1-thinking"),
    ("claude-4-1-opus", "claude-opus-4-1-thinking"),
    ("claude-4-1-opus-thinking", "claude-opus-4-1-thinking"),
    ("gemini-3-pro", "gemini-3-pro-high"),
    ("gemini-3-pro-preview", "gemini-3-pro-high"),
    ("gemini-3-pro-image-preview", "gemini-3-pro-image"),
    ("gemini-3-flash-preview", "gemini-3-flash"),
    ("gpt-oss-120b", "gpt-oss-120b-medium"),
];

/// Upstream ids that exist as `-thinking` ids of their own (the suffix is part of the id).
const THINKING_IDS: &[&str] = &[
    "claude-sonnet-4-5-thinking",
    "claude-opus-4-5-thinking",
    "claude-opus-4-1-thinking",
];

/// The thinking id of an upstream id that has one (`claude-sonnet-4-5` →
/// `claude-sonnet-4-5-thinking`).
pub(crate) fn thinking_id(upstream: &str) -> Option<&'static str> {
    THINKING_IDS
        .iter()
        .copied()
        .find(|id| id.strip_suffix("-thinking") == Some(upstream))
}

/// Resolve a requested model name for a pool of `profile` (only Antigravity's has aliases).
pub(crate) fn resolve(requested: &str, profile: crate::Profile) -> ModelSpec {
    let alias = |name: &str| profile.aliases_models().then(|| alias(name)).flatten();
    let original = without_variant(requested.trim());
    let lower = original.to_ascii_lowercase();
    let (stem, suffix) = match lower.strip_suffix("-thinking") {
        Some(stem) => (stem, true),
        None => (lower.as_str(), false),
    };
    let stem = strip_date(stem);
    let stem = if stem.starts_with("claude") {
        dashed_versions(stem)
    } else {
        stem.to_owned()
    };
    let candidate = if suffix {
        format!("{stem}-thinking")
    } else {
        stem.clone()
    };
    let (upstream, thinking) = if let Some(to) = alias(&candidate) {
        (to.to_owned(), suffix || THINKING_IDS.contains(&to))
    } else if THINKING_IDS.contains(&candidate.as_str()) {
        (candidate, true)
    } else if suffix {
        (alias(&stem).unwrap_or(&stem).to_owned(), true)
    } else if candidate == lower {
        // Nothing to canonicalise: keep the client's own spelling.
        (original.to_owned(), false)
    } else {
        (candidate, false)
    };
    let family = if upstream.starts_with("claude-") {
        Family::Claude
    } else if upstream.starts_with("gemini-3") {
        Family::Gemini3
    } else if upstream.starts_with("gemini-") {
        Family::Gemini
    } else {
        Family::Other
    };
    ModelSpec {
        image: upstream.contains("image"),
        max_output: max_output(&upstream),
        family,
        thinking,
        upstream,
    }
}

/// A name without a bracketed variant: Claude Code appends `[1m]` to ask for the 1M context.
fn without_variant(name: &str) -> &str {
    match name.split_once('[') {
        Some((head, tail)) if tail.ends_with(']') && !head.is_empty() => head,
        _ => name,
    }
}

/// The output limits of the upstream models, by id prefix (the provider's published limits).
fn max_output(upstream: &str) -> Option<u32> {
    const LIMITS: &[(&str, u32)] = &[
        ("claude-opus-4-1", 32_000),
        ("claude-", 64_000),
        ("gemini-", 65_536),
    ];
    LIMITS
        .iter()
        .find(|(prefix, _)| upstream.starts_with(prefix))
        .map(|(_, limit)| *limit)
}

fn alias(name: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(from, _)| *from == name)
        .map(|(_, to)| *to)
}

/// Drop a trailing `-YYYYMMDD`.
fn strip_date(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// `4.5` → `4-5` between digits (Claude ids are dashed).
fn dashed_versions(name: &str) -> String {
    let bytes = name.as_bytes();
    name.char_indices()
        .map(|(i, c)| {
            let between_digits = c == '.'
                && i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if between_digits { '-' } else { c }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(requested: &str, upstream: &str, thinking: bool, family: Family) {
        let spec = resolve(requested, crate::Profile::Antigravity);
        assert_eq!(spec.upstream, upstream, "{requested}");
        assert_eq!(spec.thinking, thinking, "{requested}");
        assert_eq!(spec.family, family, "{requested}");
    }

    #[test]
    fn table() {
        use Family::*;
        check("claude-sonnet-4.5", "claude-sonnet-4-5", false, Claude);
        check("claude-sonnet-4-5", "claude-sonnet-4-5", false, Claude);
        check(
            "Claude-Sonnet-4-5-20250929",
            "claude-sonnet-4-5",
            false,
            Claude,
        );
        check(
            "claude-sonnet-4.5-thinking",
            "claude-sonnet-4-5-thinking",
            true,
            Claude,
        );
        check(
            "claude-sonnet-4-5-20250929-thinking",
            "claude-sonnet-4-5-thinking",
            true,
            Claude,
        );
        check("claude-4.5-sonnet", "claude-sonnet-4-5", false, Claude);
        check("claude-opus-4.5", "claude-opus-4-5-thinking", true, Claude);
        check(
            "claude-opus-4-5-thinking",
            "claude-opus-4-5-thinking",
            true,
            Claude,
        );
        check("gemini-3-pro", "gemini-3-pro-high", false, Gemini3);
        check("gemini-3-pro-preview", "gemini-3-pro-high", false, Gemini3);
        check("gemini-3-pro-low", "gemini-3-pro-low", false, Gemini3);
        check("gemini-3-flash-preview", "gemini-3-flash", false, Gemini3);
        check(
            "gemini-2.5-flash-thinking",
            "gemini-2.5-flash",
            true,
            Gemini,
        );
        check("gemini-3-pro-thinking", "gemini-3-pro-high", true, Gemini3);
        check("gemini-2.5-pro", "gemini-2.5-pro", false, Gemini);
        check("gpt-oss-120b", "gpt-oss-120b-medium", false, Other);
        check("gpt-oss-120b-medium", "gpt-oss-120b-medium", false, Other);
        // Claude Code's spellings: dated ids and the `[1m]` context variant.
        check(
            "claude-sonnet-4-5-20250929[1m]",
            "claude-sonnet-4-5",
            false,
            Claude,
        );
        check(
            "claude-opus-4-5-20251101",
            "claude-opus-4-5-thinking",
            true,
            Claude,
        );
        check(
            "claude-opus-4-1-20250805",
            "claude-opus-4-1-thinking",
            true,
            Claude,
        );
        check(
            "claude-haiku-4-5-20251001",
            "claude-haiku-4-5",
            false,
            Claude,
        );
        assert_eq!(
            resolve("claude-sonnet-4-5[1m]", crate::Profile::Antigravity).max_output,
            Some(64_000)
        );
        assert_eq!(
            resolve("claude-opus-4-1", crate::Profile::Antigravity).max_output,
            Some(32_000)
        );
        assert_eq!(
            resolve("gemini-2.5-pro", crate::Profile::Antigravity).max_output,
            Some(65_536)
        );
        assert_eq!(
            resolve("gpt-oss-120b", crate::Profile::Antigravity).max_output,
            None
        );
        // Unknown names pass through untouched: never another family.
        check("gpt-4o", "gpt-4o", false, Other);
        check("My-Custom.Model", "My-Custom.Model", false, Other);
        assert!(resolve("gemini-3-pro-image", crate::Profile::Antigravity).image);
    }

    #[test]
    fn thinking_twins() {
        assert_eq!(
            thinking_id("claude-sonnet-4-5"),
            Some("claude-sonnet-4-5-thinking")
        );
        assert_eq!(thinking_id("claude-sonnet-4-5-thinking"), None);
        assert_eq!(thinking_id("claude-haiku-4-5"), None);
        assert_eq!(thinking_id("gemini-2.5-flash"), None);
    }

    #[test]
    fn the_gemini_cli_pool_takes_public_names_as_they_are() {
        for name in [
            "gemini-3-pro-preview",
            "gemini-2.5-pro",
            "gemini-3-flash-preview",
        ] {
            let spec = resolve(name, crate::Profile::GeminiCli);
            assert_eq!(spec.upstream, name);
        }
        let spec = resolve("gemini-3-pro-preview", crate::Profile::GeminiCli);
        assert_eq!(
            spec.family,
            Family::Gemini3,
            "signatures work as for Gemini 3"
        );
        assert_eq!(
            resolve("gemini-3-pro-preview", crate::Profile::Antigravity).upstream,
            "gemini-3-pro-high"
        );
    }
}
