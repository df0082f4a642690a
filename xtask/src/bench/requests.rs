//! The request bodies of the translated-path scenario (B10), generated deterministically: an
//! ~80 KB Claude Code-shaped Anthropic Messages request and a ~4 KB Chat Completions request with
//! tools.
//!
//! The Claude Code shape follows what Claude Code 2.x sends (issue 12): `max_tokens: 64000`,
//! `stream: true`, `thinking: {type: "adaptive"}`, `output_config.effort`,
//! `context_management`, `metadata.user_id`, the system as text blocks with `cache_control`,
//! 20 tools with draft-07 JSON schemas (enums, nested objects and arrays, `format`,
//! `additionalProperties: false`), and a long conversation of user prompts with
//! `<system-reminder>`s, signed thinking, text, `tool_use` and `tool_result` turns. The last
//! user turn is text whose `mock-call: none` line asks the mock upstream for text rather than a
//! tool call, so every backend kind answers the same three text chunks.

use serde_json::{Value, json};

/// Words for filler text; a fixed generator picks from them so every run sends the same bytes.
const WORDS: &[&str] = &[
    "the",
    "file",
    "function",
    "returns",
    "a",
    "value",
    "when",
    "request",
    "is",
    "handled",
    "by",
    "gateway",
    "and",
    "test",
    "should",
    "check",
    "that",
    "each",
    "error",
    "path",
    "uses",
    "config",
    "stream",
    "backend",
    "token",
    "model",
    "client",
    "server",
    "response",
    "module",
    "crate",
    "build",
    "run",
    "command",
    "output",
    "line",
    "before",
    "after",
    "with",
    "without",
    "read",
    "write",
    "update",
    "change",
    "keep",
    "never",
    "always",
    "only",
    "tool",
    "result",
    "user",
    "answer",
    "code",
    "search",
    "pattern",
    "directory",
    "project",
    "commit",
    "branch",
    "review",
];

/// A small linear congruential generator: deterministic and dependency-free.
struct Filler(u64);

impl Filler {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    /// About `bytes` bytes of sentences.
    fn text(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 16);
        let mut in_sentence = 0;
        while out.len() < bytes {
            let word = WORDS[self.next() % WORDS.len()];
            if in_sentence == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(word);
            }
            in_sentence += 1;
            if in_sentence > 8 + self.next() % 10 {
                out.push_str(". ");
                in_sentence = 0;
            }
        }
        out
    }

    /// Something that looks like a source file excerpt, `lines` lines long.
    fn code(&mut self, lines: usize) -> String {
        (0..lines)
            .map(|i| {
                let a = WORDS[self.next() % WORDS.len()];
                let b = WORDS[self.next() % WORDS.len()];
                format!("{:>5}\u{2192}    let {a}_{b} = {a}.{b}({i})?;\n", i + 1)
            })
            .collect()
    }
}

/// A string property of a tool schema.
fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// The 20 tools, each with a description of about `description_bytes` and a draft-07 schema.
fn claude_code_tools(f: &mut Filler, description_bytes: usize) -> Vec<Value> {
    let mut schemas: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "Task",
            json!({"description": string("A short (3-5 word) description of the task"),
                "prompt": string("The task for the agent to perform"),
                "subagent_type": string("The type of specialized agent to use for this task"),
                "model": {"type": "string", "enum": ["sonnet", "opus", "haiku"], "description": "Optional model"}}),
            vec!["description", "prompt", "subagent_type"],
        ),
        (
            "Bash",
            json!({"command": string("The command to execute"),
                "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
                "description": string("Clear, concise description of what this command does in 5-10 words"),
                "run_in_background": {"type": "boolean", "description": "Set to true to run this command in the background"},
                "dangerouslyDisableSandbox": {"type": "boolean", "description": "Run without the sandbox"}}),
            vec!["command"],
        ),
        (
            "Glob",
            json!({"pattern": string("The glob pattern to match files against"),
                "path": string("The directory to search in")}),
            vec!["pattern"],
        ),
        (
            "Grep",
            json!({"pattern": string("The regular expression pattern to search for in file contents"),
                "path": string("File or directory to search in"),
                "glob": string("Glob pattern to filter files"),
                "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"], "description": "Output mode"},
                "-B": {"type": "number", "description": "Lines to show before each match"},
                "-A": {"type": "number", "description": "Lines to show after each match"},
                "-C": {"type": "number", "description": "Lines to show before and after each match"},
                "-n": {"type": "boolean", "description": "Show line numbers in output"},
                "-i": {"type": "boolean", "description": "Case insensitive search"},
                "type": string("File type to search"),
                "head_limit": {"type": "number", "description": "Limit output to first N lines/entries"},
                "multiline": {"type": "boolean", "description": "Enable multiline mode"}}),
            vec!["pattern"],
        ),
        (
            "ExitPlanMode",
            json!({"plan": string("The plan you came up with, that you want to run by the user for approval")}),
            vec!["plan"],
        ),
        (
            "Read",
            json!({"file_path": string("The absolute path to the file to read"),
                "offset": {"type": "number", "description": "The line number to start reading from"},
                "limit": {"type": "number", "description": "The number of lines to read"}}),
            vec!["file_path"],
        ),
        (
            "Edit",
            json!({"file_path": string("The absolute path to the file to modify"),
                "old_string": string("The text to replace"),
                "new_string": string("The text to replace it with (must be different from old_string)"),
                "replace_all": {"type": "boolean", "default": false, "description": "Replace all occurences of old_string"}}),
            vec!["file_path", "old_string", "new_string"],
        ),
        (
            "Write",
            json!({"file_path": string("The absolute path to the file to write"),
                "content": string("The content to write to the file")}),
            vec!["file_path", "content"],
        ),
        (
            "NotebookEdit",
            json!({"notebook_path": string("The absolute path to the Jupyter notebook file to edit"),
                "cell_id": string("The ID of the cell to edit"),
                "new_source": string("The new source for the cell"),
                "cell_type": {"type": "string", "enum": ["code", "markdown"], "description": "The type of the cell"},
                "edit_mode": {"type": "string", "enum": ["replace", "insert", "delete"], "description": "The type of edit to make"}}),
            vec!["notebook_path", "new_source"],
        ),
        (
            "WebFetch",
            json!({"url": {"type": "string", "format": "uri", "description": "The URL to fetch content from"},
                "prompt": string("The prompt to run on the fetched content")}),
            vec!["url", "prompt"],
        ),
        (
            "TodoWrite",
            json!({"todos": {"type": "array", "description": "The updated todo list", "items": {
                "type": "object", "additionalProperties": false, "required": ["content", "status", "activeForm"],
                "properties": {"content": {"type": "string", "minLength": 1},
                    "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                    "activeForm": {"type": "string", "minLength": 1}}}}}),
            vec!["todos"],
        ),
        (
            "WebSearch",
            json!({"query": {"type": "string", "minLength": 2, "description": "The search query to use"},
                "allowed_domains": {"type": "array", "items": {"type": "string"}, "description": "Only include results from these domains"},
                "blocked_domains": {"type": "array", "items": {"type": "string"}, "description": "Never include results from these domains"}}),
            vec!["query"],
        ),
        (
            "BashOutput",
            json!({"bash_id": string("The ID of the background shell to retrieve output from"),
                "filter": string("Optional regular expression to filter the output lines")}),
            vec!["bash_id"],
        ),
        (
            "KillShell",
            json!({"shell_id": string("The ID of the background shell to kill")}),
            vec!["shell_id"],
        ),
        (
            "SlashCommand",
            json!({"command": string("The slash command to execute with its arguments")}),
            vec!["command"],
        ),
        (
            "Skill",
            json!({"skill": string("The skill name (no arguments)")}),
            vec!["skill"],
        ),
        (
            "AskUserQuestion",
            json!({"questions": {"type": "array", "minItems": 1, "maxItems": 4, "description": "Questions to ask the user", "items": {
                "type": "object", "additionalProperties": false, "required": ["question", "header", "options", "multiSelect"],
                "properties": {"question": {"type": "string"}, "header": {"type": "string"},
                    "multiSelect": {"type": "boolean"},
                    "options": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"type": "object", "additionalProperties": false,
                        "required": ["label", "description"],
                        "properties": {"label": {"type": "string"}, "description": {"type": "string"}}}}}}}}),
            vec!["questions"],
        ),
        (
            "ListMcpResourcesTool",
            json!({"server": string("Optional server name to filter resources by")}),
            vec![],
        ),
        (
            "ReadMcpResourceTool",
            json!({"server": string("The MCP server name"), "uri": string("The resource URI to read")}),
            vec!["server", "uri"],
        ),
        (
            "mcp__ide__getDiagnostics",
            json!({"uri": {"type": "string", "format": "uri", "description": "Optional file URI to get diagnostics for"}}),
            vec![],
        ),
    ];
    schemas
        .drain(..)
        .map(|(name, properties, required)| {
            json!({"name": name, "description": f.text(description_bytes),
                "input_schema": {"type": "object", "properties": properties, "required": required,
                    "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}})
        })
        .collect()
}

/// A base64-looking thinking signature, as long as real ones.
fn signature(f: &mut Filler) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..480).map(|_| B64[f.next() % 64] as char).collect()
}

/// The ~80 KB Claude Code-shaped Anthropic Messages request for `model`.
pub(crate) fn claude_code(model: &str) -> String {
    let mut f = Filler(0x5eed_c0de);
    let tools = claude_code_tools(&mut f, 1500);
    let system = json!([
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
            "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": f.text(14_000), "cache_control": {"type": "ephemeral"}}
    ]);
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": format!("<system-reminder>\n{}\n</system-reminder>", f.text(2500))},
        {"type": "text", "text": "Find where the retry budget is computed and make the tests cover the edge cases."}
    ]})];
    let calls = [
        (
            "Grep",
            json!({"pattern": "retry_budget", "output_mode": "files_with_matches"}),
        ),
        ("Read", json!({"file_path": "/work/project/src/budget.rs"})),
        (
            "Read",
            json!({"file_path": "/work/project/src/classify.rs", "offset": 1, "limit": 120}),
        ),
        (
            "Bash",
            json!({"command": "cargo test -p gateway budget", "description": "Run the budget tests"}),
        ),
        (
            "Edit",
            json!({"file_path": "/work/project/src/budget.rs", "old_string": "let floor = 3;", "new_string": "let floor = MIN_RETRIES;"}),
        ),
        (
            "TodoWrite",
            json!({"todos": [{"content": "Cover the budget floor", "status": "completed", "activeForm": "Covering the budget floor"}, {"content": "Run the whole suite", "status": "in_progress", "activeForm": "Running the whole suite"}]}),
        ),
        (
            "Bash",
            json!({"command": "cargo test --workspace", "description": "Run every test"}),
        ),
        ("Glob", json!({"pattern": "crates/**/tests/*.rs"})),
    ];
    for (turn, (tool, input)) in calls.into_iter().enumerate() {
        let id = format!("toolu_01{:022}", turn * 7919 + 13);
        let mut content = Vec::new();
        if turn % 2 == 0 {
            content.push(json!({"type": "thinking", "thinking": f.text(600), "signature": signature(&mut f)}));
        }
        content.push(json!({"type": "text", "text": f.text(300)}));
        content.push(json!({"type": "tool_use", "id": id, "name": tool, "input": input}));
        messages.push(json!({"role": "assistant", "content": content}));
        let result = if tool == "Read" {
            json!([{"type": "text", "text": f.code(60)}])
        } else {
            json!(f.text(1500))
        };
        let mut block = json!({"type": "tool_result", "tool_use_id": id, "content": result});
        if turn == 3 {
            block["is_error"] = json!(true);
        }
        messages.push(json!({"role": "user", "content": [block]}));
    }
    messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": f.text(800)}]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "text", "text": format!("<system-reminder>\n{}\n</system-reminder>", f.text(600))},
        {"type": "text", "text": "Now summarise what changed.\nmock-call: none", "cache_control": {"type": "ephemeral"}}
    ]}));
    json!({
        "model": model,
        "max_tokens": 64000,
        "stream": true,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_6f1c0de5a0b24c8e9d3f7a1b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d_account__session_3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"},
        "system": system,
        "tools": tools,
        "messages": messages,
    })
    .to_string()
}

/// The ~4 KB Chat Completions request with tools for `model` (not streamed).
pub(crate) fn chat_with_tools(model: &str) -> String {
    let mut f = Filler(0xc4a7);
    let tool = |name: &str, description: String, properties: Value, required: &[&str]| {
        json!({"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required}}})
    };
    let tools = vec![
        tool(
            "get_weather",
            f.text(160),
            json!({"city": string("The city"), "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}),
            &["city"],
        ),
        tool(
            "search_docs",
            f.text(160),
            json!({"query": string("What to look for"), "limit": {"type": "integer", "minimum": 1, "maximum": 50}}),
            &["query"],
        ),
        tool(
            "create_ticket",
            f.text(160),
            json!({"title": string("Short title"), "body": string("Details"),
                "labels": {"type": "array", "items": {"type": "string"}},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]}}),
            &["title", "body"],
        ),
        tool(
            "run_query",
            f.text(160),
            json!({"sql": string("A read-only SQL query"), "params": {"type": "object", "additionalProperties": {"type": "string"}}}),
            &["sql"],
        ),
    ];
    let messages = json!([
        {"role": "system", "content": f.text(700)},
        {"role": "user", "content": f.text(400)},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_bench_1", "type": "function",
            "function": {"name": "search_docs", "arguments": "{\"query\":\"retry budget\",\"limit\":5}"}}]},
        {"role": "tool", "tool_call_id": "call_bench_1", "content": f.text(620)},
        {"role": "assistant", "content": f.text(300)},
        {"role": "user", "content": "Thanks. Summarise it in two lines.\nmock-call: none"}
    ]);
    json!({"model": model, "stream": false, "max_tokens": 1024, "temperature": 0.2,
        "messages": messages, "tools": tools, "tool_choice": "auto"})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claude_code_request_is_about_80_kb_deterministic_and_well_formed() {
        let body = claude_code("claude-sonnet-4-5");
        assert!((78_000..=86_000).contains(&body.len()), "{}", body.len());
        assert_eq!(body, claude_code("claude-sonnet-4-5"));
        let json: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(json["tools"].as_array().map(Vec::len), Some(20));
        assert_eq!(json["thinking"]["type"], "adaptive");
        assert_eq!(json["messages"].as_array().map(Vec::len), Some(19));
        assert_eq!(json["messages"][18]["role"], "user");
    }

    #[test]
    fn the_chat_request_is_about_4_kb_with_tools() {
        let body = chat_with_tools("gpt-4o");
        assert!((3_700..=4_500).contains(&body.len()), "{}", body.len());
        let json: Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(json["tools"].as_array().map(Vec::len), Some(4));
    }
}
