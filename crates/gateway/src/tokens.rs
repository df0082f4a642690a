//! Token counts the gateway estimates itself, for hops whose upstream cannot count: a real
//! tokenizer (OpenAI's `o200k_base`, through `tiktoken-rs`) over everything the model reads.
//!
//! Other providers tokenize differently, so this is an estimate for them (typically within a
//! few percent for English and code); an upstream that can count (Anthropic's
//! `count_tokens`, Cloud Code's `countTokens`) is asked instead wherever there is one.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use gateway_core::conversation::{Part, Request};

/// Tokens a message costs beyond its content (role and separators), as OpenAI counts them.
const PER_MESSAGE: u64 = 4;

/// An image whose size is unknown here: about what providers charge a 1024x1024 image.
const PER_IMAGE: u64 = 1_100;

fn tokenizer() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn count(text: &str) -> u64 {
    match tokenizer() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        // The tables are compiled in, so this cannot happen; a rough count beats a failure.
        None => text.len().div_ceil(4) as u64,
    }
}

fn tokens_of(part: &Part) -> u64 {
    match part {
        Part::Text { text, .. } | Part::Thinking { text, .. } | Part::Refusal { text, .. } => {
            count(text)
        }
        Part::RedactedThinking { data, .. } => count(data),
        Part::Image { .. } | Part::Document { .. } => PER_IMAGE,
        Part::Audio { data, .. } => data.len().div_ceil(1_000) as u64,
        Part::ToolCall {
            name, arguments, ..
        } => count(name) + count(arguments),
        Part::ToolResult { parts, .. } => parts.iter().map(tokens_of).sum::<u64>() + PER_MESSAGE,
    }
}

/// The input tokens of `request`: instructions, messages, and the tools it declares.
pub(crate) fn estimate(request: &Request) -> u64 {
    let system: u64 = request.system.iter().map(tokens_of).sum();
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| PER_MESSAGE + m.parts.iter().map(tokens_of).sum::<u64>())
        .sum();
    let tools: u64 = request
        .tools
        .iter()
        .map(|t| {
            count(&t.name)
                + t.description.as_deref().map_or(0, count)
                + count(&t.parameters.to_string())
        })
        .sum();
    system + messages + tools
}

#[cfg(test)]
mod tests {
    use gateway_core::conversation::{Message, Role, Tool, ToolKind};

    use super::*;

    fn request(text: &str) -> Request {
        Request {
            messages: vec![Message::new(Role::User, vec![Part::text(text)])],
            ..Request::default()
        }
    }

    #[test]
    fn counts_are_the_tokenizers_not_a_constant() {
        // "hello world" is two tokens in o200k_base, plus the message overhead.
        assert_eq!(estimate(&request("hello world")), 2 + PER_MESSAGE);
        let short = estimate(&request("hi"));
        let long = estimate(&request(
            &"the quick brown fox jumps over the lazy dog. ".repeat(50),
        ));
        assert!(long > 400 && long < 600, "{long}");
        assert!(short < long);
        // Tools and the system prompt count too.
        let mut with_tools = request("hi");
        with_tools.system = vec![Part::text("You are a careful assistant.")];
        with_tools.tools = vec![Tool {
            name: "read_file".into(),
            description: Some("Read a file from disk".into()),
            parameters: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            strict: None,
            kind: ToolKind::Function,
            extra: Default::default(),
        }];
        assert!(
            estimate(&with_tools) > short + 15,
            "{}",
            estimate(&with_tools)
        );
    }
}
