//! Fixtures as Gemini CLI, google-genai and the Gemini API write them: every request and
//! response round-trips through the conversation (with a snapshot of the neutral form), streams
//! decode the same at every split point in both framings, and the stream encoder's chunks decode
//! back to the events it was given.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::*;
use crate::{
    ErrorKind, GatewayError,
    conversation::{self as conv, Event, Part as Neutral, Role},
    sse,
    test_support::{
        args, collect, end, error_json, finish, run, run_ok, same_at_every_split, signature,
        sse_events, survives_serde, text, thinking, usage,
    },
};

fn fixture(relative: &str) -> Vec<u8> {
    crate::test_support::fixture("gemini", relative)
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Parse `bytes` as `T`; serializing it must give the same JSON value back.
fn wire_round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> T {
    let typed: T = parse_json(bytes).unwrap();
    let original: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), original);
    typed
}

fn request(relative: &str) -> conv::Request {
    let bytes = fixture(relative);
    request_to_conversation(parse_json(&bytes).unwrap(), "gemini-2.5-pro", true).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn requests_round_trip() {
    insta::glob!("../../test_data/gemini", "requests/*.json", |path| {
        let bytes = read(path);
        let request: GenerateContentRequest = wire_round_trip(&bytes);
        let conversation =
            request_to_conversation(request.clone(), "models/gemini-2.5-pro", true).unwrap();
        insta::assert_json_snapshot!(conversation);
        // The neutral form survives its own serde round trip.
        survives_serde(&conversation);
        let again = request_from_conversation(&conversation);
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::from_slice::<Value>(&bytes).unwrap()
        );
        assert_eq!(again, request);
    });
}

#[test]
fn snake_case_spellings_are_accepted() {
    let snake: GenerateContentRequest =
        parse_json(&fixture("aliases/genai_python_two_turns_snake.json")).unwrap();
    let camel: GenerateContentRequest =
        parse_json(&fixture("requests/genai_python_two_turns.json")).unwrap();
    assert_eq!(snake, camel);
}

#[test]
fn null_is_absent() {
    let request: GenerateContentRequest = parse_json(
        br#"{"contents": null, "systemInstruction": null, "tools": null,
             "generationConfig": {"temperature": null, "thinkingConfig": null}}"#,
    )
    .unwrap();
    assert_eq!(
        request,
        GenerateContentRequest {
            generation_config: Some(GenerationConfig::default()),
            ..GenerateContentRequest::default()
        }
    );
}

#[test]
fn refused_requests_are_400s_naming_the_field() {
    // (fixture, param, a phrase the message must contain)
    let cases = [
        (
            "cached_content",
            "cachedContent",
            "cachedContent is not supported",
        ),
        (
            "candidate_count",
            "generationConfig.candidateCount",
            "candidateCount above 1",
        ),
        (
            "unknown_role",
            "contents[0].role",
            "unknown role \"system\"",
        ),
        (
            "two_data_fields",
            "contents[0].parts[1]",
            "more than one of",
        ),
        (
            "call_without_name",
            "contents[1].parts[0].functionCall.name",
            "functionCall without name",
        ),
        ("top_k_fraction", "generationConfig.topK", "whole number"),
        (
            "negative_budget",
            "generationConfig.thinkingConfig.thinkingBudget",
            "thinkingBudget must be",
        ),
        ("contents_not_array", "contents", "invalid type"),
    ];
    for (name, param, needle) in cases {
        let bytes = fixture(&format!("rejected/{name}.json"));
        let error = parse_json::<GenerateContentRequest>(&bytes)
            .and_then(|r| request_to_conversation(r, "gemini-2.5-pro", false))
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{name}");
        assert_eq!(error.status().as_u16(), 400, "{name}");
        assert_eq!(error.param(), Some(param), "{name}: {error}");
        assert!(
            error.message().contains(needle),
            "{name}: {}",
            error.message()
        );
        assert!(!error.message().ends_with('.'), "{name}");
    }
}

#[test]
fn decoding_pairs_gemini_cli_calls_with_their_responses() {
    let request = request("requests/gemini_cli_function_calling.json");
    assert_eq!(request.model, "gemini-2.5-pro");
    assert!(request.stream && request.stream_usage);
    assert_eq!(request.system_text(), "You are an interactive CLI agent.");
    // Gemini CLI sends ids on its responses only: the calls take them, in order.
    let calls: Vec<(&str, Option<&str>)> = request.messages[1]
        .parts
        .iter()
        .map(|p| match p {
            Neutral::ToolCall { id, signature, .. } => (id.as_str(), signature.as_deref()),
            other => panic!("tool call expected: {other:?}"),
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "read_file-1764464000000-a1b2c3d4e5f6a",
                Some("CiQB0e2Kb7Rz3xVqYk2sJ1mN8pQwErTyUiOpAsDfGhJkLzXcVbNm")
            ),
            ("read_file-1764464000001-0f9e8d7c6b5a4", None),
        ]
    );
    assert_eq!(request.messages[2].role, Role::Tool);
    let Neutral::ToolResult {
        id, name, parts, ..
    } = &request.messages[2].parts[0]
    else {
        panic!("tool result expected");
    };
    assert_eq!(id, "read_file-1764464000000-a1b2c3d4e5f6a");
    assert_eq!(name.as_deref(), Some("read_file"));
    assert_eq!(parts, &vec![Neutral::text("# Project\n\nA small demo.\n")]);
    // A signature on text rides on the text.
    let Neutral::Text { signature, .. } = &request.messages[3].parts[0] else {
        panic!("text expected");
    };
    assert_eq!(
        signature.as_deref(),
        Some("EhQKEgoQdGV4dC1zaWduYXR1cmUtMQ==")
    );
    let reasoning = request.reasoning.as_ref().unwrap();
    assert_eq!(reasoning.effort, Some(conv::Effort::High));
    assert_eq!(reasoning.summary.as_deref(), Some("auto"));
    assert_eq!(request.generation.temperature, Some(1.0));
    assert_eq!(request.generation.top_k, Some(64));
    assert_eq!(request.tools.len(), 2);
    assert_eq!(request.tools[0].parameters["required"][0], "absolute_path");
}

#[test]
fn decoding_pairs_calls_without_ids_by_name_and_order() {
    let request = request("requests/genai_python_two_turns.json");
    let ids = |message: &conv::Message| -> Vec<String> {
        message
            .parts
            .iter()
            .filter_map(|p| match p {
                Neutral::ToolCall { id, .. } | Neutral::ToolResult { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        ids(&request.messages[1]),
        ["call_gemini_0", "call_gemini_1"]
    );
    assert_eq!(
        ids(&request.messages[2]),
        ["call_gemini_0", "call_gemini_1"]
    );
    assert_eq!(
        request.messages[1].parts[0],
        Neutral::thinking(
            "I should check both cities.",
            Some("dGhvdWdodC1zaWctMQ==".to_owned())
        )
    );
    // A response that is not `{"output": text}` reaches other protocols as its JSON.
    let Neutral::ToolResult { parts, .. } = &request.messages[2].parts[1] else {
        panic!("tool result expected");
    };
    assert_eq!(
        parts,
        &vec![Neutral::text(r#"{"temperature":18,"unit":"C"}"#)]
    );
    assert_eq!(request.tool_choice, Some(conv::ToolChoice::Auto));
    assert_eq!(request.tools[0].parameters["type"], "OBJECT");
    assert_eq!(
        request.extra.fields["safetySettings"][1]["threshold"],
        "BLOCK_NONE"
    );
    assert_eq!(request.system_text(), "Answer in one sentence.");
}

#[test]
fn decoding_media_tools_and_output_format() {
    let request = request("requests/media_tools_and_format.json");
    let parts = &request.messages[0].parts;
    assert!(matches!(
        &parts[1],
        Neutral::Image { source: conv::Media::Base64 { mime, .. }, .. } if mime == "image/png"
    ));
    assert!(matches!(
        &parts[2],
        Neutral::Document { source: conv::Media::Url { url }, .. }
            if url == "https://generativelanguage.googleapis.com/v1beta/files/abc123xyz"
    ));
    assert!(matches!(&parts[3], Neutral::Audio { format, .. } if format == "wav"));
    assert!(matches!(
        &parts[4],
        Neutral::Document { source: conv::Media::Url { url }, .. } if url == "gs://bucket/clip.mp4"
    ));
    assert_eq!(
        request.tool_choice,
        Some(conv::ToolChoice::Allowed {
            tools: vec!["lookup_ticker".to_owned(), "now".to_owned()],
            required: true,
        })
    );
    let Some(conv::ResponseFormat::JsonSchema { schema, .. }) = &request.response_format else {
        panic!("json schema expected: {:?}", request.response_format);
    };
    assert_eq!(schema["required"][0], "summary");
    let generation = &request.generation;
    assert_eq!(generation.top_k, Some(40));
    assert_eq!(generation.stop, ["END"]);
    assert_eq!(generation.seed, Some(42));
    assert_eq!(generation.candidates, Some(1));
    assert_eq!(generation.max_tokens, Some(2048));
    assert_eq!(generation.frequency_penalty, Some(0.0));
    assert_eq!(request.metadata.as_ref().unwrap()["team"], "research");
    assert_eq!(request.tools.len(), 2);
    assert_eq!(request.tools[1].parameters, Value::Null);
}

#[test]
fn decoding_history_with_thoughts_errors_and_media_results() {
    let request = request("requests/history_opaque_parts.json");
    assert_eq!(request.messages[0].role, Role::User);
    let model = &request.messages[1].parts;
    assert!(matches!(
        &model[0],
        Neutral::Thinking {
            signature: None,
            ..
        }
    ));
    assert_eq!(
        model[1],
        Neutral::Thinking {
            text: String::new(),
            signature: Some("c2lnbmF0dXJlLW9ubHk=".to_owned()),
            extra: model[1].extra().clone(),
        }
    );
    assert_eq!(model[2].as_text(), Some("Let me compute it."));
    // The code parts have no neutral form; the text after them is the next part.
    assert_eq!(
        model[3].as_text(),
        Some("The 20th Fibonacci number is 6765.")
    );
    let Neutral::ToolCall { id, arguments, .. } = &request.messages[3].parts[0] else {
        panic!("tool call expected");
    };
    assert_eq!((id.as_str(), arguments.as_str()), ("fc_1", "{}"));
    let results = &request.messages[4];
    assert_eq!(results.role, Role::User);
    let Neutral::ToolResult {
        parts, is_error, ..
    } = &results.parts[0]
    else {
        panic!("tool result expected");
    };
    assert!(*is_error);
    assert_eq!(parts, &vec![Neutral::text("service unavailable")]);
    let Neutral::ToolResult { parts, .. } = &results.parts[1] else {
        panic!("tool result expected");
    };
    assert_eq!(parts[0], Neutral::text("file body"));
    assert!(matches!(&parts[1], Neutral::Image { .. }));
    assert_eq!(request.system_text(), "Be terse.\n\nUse tools.");
    let reasoning = request.reasoning.as_ref().unwrap();
    assert_eq!(reasoning.effort, Some(conv::Effort::Low));
    assert_eq!(reasoning.summary, None);
    assert_eq!(request.tool_choice, Some(conv::ToolChoice::Auto));
    assert_eq!(request.response_format, None);
    assert_eq!(request.generation.logprobs, Some(true));
    assert_eq!(request.generation.top_logprobs, Some(3));
}

#[test]
fn thinking_budgets_and_levels() {
    let decode = |config: Value| {
        let body = json!({"contents": [], "generationConfig": {"thinkingConfig": config}});
        let request: GenerateContentRequest = serde_json::from_value(body).unwrap();
        request_to_conversation(request, "m", false)
            .unwrap()
            .reasoning
            .unwrap()
    };
    let off = decode(json!({"thinkingBudget": 0}));
    assert!(off.is_off());
    let dynamic = decode(json!({"thinkingBudget": -1, "includeThoughts": true}));
    assert_eq!(dynamic.mode, Some(conv::ReasoningMode::Adaptive));
    assert_eq!(dynamic.effort, None);
    for (budget, effort) in [
        (512, conv::Effort::Low),
        (8192, conv::Effort::Medium),
        (24576, conv::Effort::High),
    ] {
        let reasoning = decode(json!({ "thinkingBudget": budget }));
        assert_eq!(reasoning.budget_tokens, Some(budget), "{budget}");
        assert_eq!(reasoning.effort, Some(effort), "{budget}");
        assert_eq!(reasoning.mode, Some(conv::ReasoningMode::Enabled));
    }
    assert_eq!(
        decode(json!({"thinkingLevel": "minimal"})).effort,
        Some(conv::Effort::Minimal)
    );
    assert_eq!(
        decode(json!({"thinkingLevel": "MEDIUM"})).effort,
        Some(conv::Effort::Medium)
    );
    assert!(
        request("requests/thinking_off_json_object.json")
            .reasoning
            .unwrap()
            .is_off()
    );
    assert_eq!(
        request("requests/thinking_off_json_object.json").response_format,
        Some(conv::ResponseFormat::JsonObject)
    );
}

/// A conversation from another protocol: no hints, so Gemini's plain spellings.
fn foreign() -> conv::Request {
    conv::Request {
        model: "gpt-4o".to_owned(),
        system: vec![Neutral::text("System block.")],
        messages: vec![
            conv::Message::new(Role::Developer, vec![Neutral::text("Developer note.")]),
            conv::Message::new(
                Role::User,
                vec![
                    Neutral::text("Weather? Here is a map."),
                    Neutral::Image {
                        source: conv::Media::Url {
                            url: "https://example.com/map.png".to_owned(),
                        },
                        detail: Some("high".to_owned()),
                        extra: conv::Extras::default(),
                    },
                    Neutral::Document {
                        source: conv::Media::Base64 {
                            mime: "application/pdf".to_owned(),
                            data: "JVBERi0=".to_owned(),
                        },
                        name: Some("report.pdf".to_owned()),
                        extra: conv::Extras::default(),
                    },
                ],
            ),
            conv::Message::new(
                Role::Assistant,
                vec![
                    Neutral::thinking("Two calls.", Some("sig-1".to_owned())),
                    Neutral::RedactedThinking {
                        data: "opaque".to_owned(),
                        extra: conv::Extras::default(),
                    },
                    Neutral::text("Checking."),
                    Neutral::tool_call("call_1", "weather", r#"{"city":"Paris"}"#),
                    Neutral::ToolCall {
                        id: "call_2".to_owned(),
                        name: "time".to_owned(),
                        arguments: String::new(),
                        signature: Some("gemini-sig".to_owned()),
                        extra: conv::Extras::default(),
                    },
                ],
            ),
            conv::Message::new(
                Role::Tool,
                vec![Neutral::tool_result("call_1", vec![Neutral::text("18C")])],
            ),
            conv::Message::new(
                Role::Tool,
                vec![Neutral::ToolResult {
                    id: "call_2".to_owned(),
                    name: Some("time".to_owned()),
                    parts: vec![Neutral::text("clock broken")],
                    is_error: true,
                    extra: conv::Extras::default(),
                }],
            ),
            conv::Message::new(Role::User, vec![Neutral::text("Thanks!")]),
        ],
        tools: vec![
            conv::Tool {
                name: "weather".to_owned(),
                description: Some("Weather of a city.".to_owned()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}),
                strict: Some(true),
                kind: conv::ToolKind::Function,
                extra: conv::Extras::default(),
            },
            conv::Tool {
                name: "time".to_owned(),
                description: None,
                parameters: Value::Null,
                strict: None,
                kind: conv::ToolKind::Function,
                extra: conv::Extras::default(),
            },
        ],
        tool_choice: Some(conv::ToolChoice::Tool("weather".to_owned())),
        parallel_tool_calls: Some(true),
        generation: conv::Generation {
            max_tokens: Some(500),
            temperature: Some(0.2),
            top_k: Some(20),
            stop: vec!["STOP!".to_owned()],
            ..conv::Generation::default()
        },
        reasoning: Some(conv::Reasoning {
            effort: Some(conv::Effort::High),
            ..conv::Reasoning::default()
        }),
        response_format: Some(conv::ResponseFormat::JsonSchema {
            name: "answer".to_owned(),
            description: None,
            schema: json!({"type": "object"}),
            strict: Some(true),
        }),
        stream: true,
        stream_usage: true,
        user: Some("user-1".to_owned()),
        metadata: Some(Map::from_iter([("k".to_owned(), json!("v"))])),
        extra: conv::Extras::default(),
    }
}

#[test]
fn encoding_a_foreign_conversation_uses_plain_gemini() {
    let request = request_from_conversation(&foreign());
    let value = serde_json::to_value(&request).unwrap();
    assert_eq!(
        value,
        json!({
            "contents": [
                {"role": "user", "parts": [
                    {"text": "Weather? Here is a map."},
                    {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/map.png"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
                ]},
                {"role": "model", "parts": [
                    {"text": "Two calls.", "thought": true, "thoughtSignature": "sig-1"},
                    {"text": "Checking."},
                    {"functionCall": {"id": "call_1", "name": "weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"id": "call_2", "name": "time", "args": {}}, "thoughtSignature": "gemini-sig"}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "call_1", "name": "weather", "response": {"output": "18C"}}},
                    {"functionResponse": {"id": "call_2", "name": "time", "response": {"error": "clock broken"}}}
                ]},
                {"role": "user", "parts": [{"text": "Thanks!"}]}
            ],
            "systemInstruction": {"parts": [{"text": "System block."}, {"text": "Developer note."}]},
            "tools": [{"functionDeclarations": [
                {"name": "weather", "description": "Weather of a city.", "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}},
                {"name": "time"}
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
            "generationConfig": {
                "temperature": 0.2,
                "topK": 20,
                "maxOutputTokens": 500,
                "stopSequences": ["STOP!"],
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"},
                "thinkingConfig": {"thinkingLevel": "HIGH"}
            },
            "labels": {"k": "v"}
        })
    );
    // And it decodes back to the same conversation, but for what Gemini cannot say.
    let again = request_to_conversation(request, "gpt-4o", true).unwrap();
    assert_eq!(again.system_text(), foreign().system_text());
    assert_eq!(again.tool_choice, foreign().tool_choice);
    assert_eq!(again.generation, foreign().generation);
    assert_eq!(again.messages.len(), 4);
    assert_eq!(again.messages[2].role, Role::Tool);
}

#[test]
fn foreign_reasoning_settings() {
    let encode = |reasoning: conv::Reasoning| {
        let request = conv::Request {
            reasoning: Some(reasoning),
            ..conv::Request::default()
        };
        serde_json::to_value(request_from_conversation(&request)).unwrap()["generationConfig"]
            ["thinkingConfig"]
            .clone()
    };
    assert_eq!(
        encode(conv::Reasoning {
            budget_tokens: Some(2048),
            mode: Some(conv::ReasoningMode::Enabled),
            ..conv::Reasoning::default()
        }),
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    assert_eq!(
        encode(conv::Reasoning {
            mode: Some(conv::ReasoningMode::Disabled),
            ..conv::Reasoning::default()
        }),
        json!({"thinkingBudget": 0})
    );
    assert_eq!(
        encode(conv::Reasoning {
            effort: Some(conv::Effort::None),
            ..conv::Reasoning::default()
        }),
        json!({"thinkingBudget": 0})
    );
    assert_eq!(
        encode(conv::Reasoning {
            mode: Some(conv::ReasoningMode::Adaptive),
            ..conv::Reasoning::default()
        }),
        json!({"thinkingBudget": -1, "includeThoughts": true})
    );
    assert_eq!(
        encode(conv::Reasoning {
            effort: Some(conv::Effort::Low),
            summary: Some("detailed".to_owned()),
            ..conv::Reasoning::default()
        }),
        json!({"thinkingLevel": "LOW", "includeThoughts": true})
    );
}

#[test]
fn changed_values_are_encoded_fresh_not_from_hints() {
    let mut request = request("requests/history_opaque_parts.json");
    // The kept toolConfig said AUTO (spelled `auto`); the choice is now NONE.
    request.tool_choice = Some(conv::ToolChoice::None);
    // The kept thinkingConfig said `low`; the effort is now high.
    if let Some(reasoning) = &mut request.reasoning {
        reasoning.effort = Some(conv::Effort::High);
    }
    // A new tool: the kept layout no longer fits, built-in tools follow the declarations.
    request.tools.push(conv::Tool {
        name: "extra".to_owned(),
        description: None,
        parameters: Value::Null,
        strict: None,
        kind: conv::ToolKind::Function,
        extra: conv::Extras::default(),
    });
    let value = serde_json::to_value(request_from_conversation(&request)).unwrap();
    assert_eq!(
        value["toolConfig"],
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        value["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "HIGH"})
    );
    assert_eq!(
        value["tools"],
        json!([
            {"functionDeclarations": [
                {"name": "weather", "description": "Weather now.", "parametersJsonSchema": {"type": "object"}},
                {"name": "read", "parametersJsonSchema": {"type": "object", "properties": {"path": {"type": "string"}}}},
                {"name": "extra"}
            ]},
            {"urlContext": {}}
        ])
    );
    // The opaque code parts are back where they stood.
    assert_eq!(
        value["contents"][1]["parts"][3]["executableCode"]["language"],
        "PYTHON"
    );
}

// ---------------------------------------------------------------------------------------------
// Responses, models, countTokens
// ---------------------------------------------------------------------------------------------

#[test]
fn responses_round_trip() {
    insta::glob!("../../test_data/gemini", "responses/*.json", |path| {
        let bytes = read(path);
        let response: GenerateContentResponse = wire_round_trip(&bytes);
        let neutral = response_to_conversation(response.clone());
        insta::assert_json_snapshot!(neutral);
        survives_serde(&neutral);
        let model = response.model_version.as_deref().unwrap_or("gemini-test");
        let again = response_from_conversation(&neutral, model);
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::from_slice::<Value>(&bytes).unwrap()
        );
        assert_eq!(again, response);
    });
}

fn response(relative: &str) -> conv::Response {
    response_to_conversation(parse_json(&fixture(relative)).unwrap())
}

#[test]
fn response_finish_reasons_and_usage() {
    let text = response("responses/text_with_usage.json");
    assert_eq!(text.finish, Some(conv::FinishReason::Stop));
    assert_eq!(
        (text.id.as_str(), text.model.as_str()),
        ("mC0raeLQFuG-2roPp8XQ8Ak", "gemini-2.5-flash")
    );
    let usage = text.usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usage.cache_read_tokens
        ),
        (12, 45, 30, 4)
    );
    assert_eq!(usage.total_tokens(), 57);
    assert!(matches!(&text.parts[0], Neutral::Thinking { .. }));
    let Neutral::Text { signature, .. } = &text.parts[1] else {
        panic!("text expected");
    };
    assert_eq!(signature.as_deref(), Some("Q2lRQjBlMkti"));

    let calls = response("responses/function_call.json");
    assert_eq!(calls.finish, Some(conv::FinishReason::ToolUse));
    let Neutral::ToolCall {
        id,
        arguments,
        signature,
        ..
    } = &calls.parts[0]
    else {
        panic!("tool call expected");
    };
    // A response keeps an absent id empty, as events do.
    assert_eq!(
        (id.as_str(), arguments.as_str(), signature.as_deref()),
        (
            "",
            r#"{"location":"Boston","unit":"celsius"}"#,
            Some("Y2FsbC1zaWctMg==")
        )
    );
    let Neutral::ToolCall { id, .. } = &calls.parts[1] else {
        panic!("tool call expected");
    };
    assert_eq!(id, "call_abc");

    let blocked = response("responses/blocked_prompt.json");
    assert_eq!(blocked.finish, Some(conv::FinishReason::ContentFilter));
    assert!(blocked.parts.is_empty());

    let cut = response("responses/max_tokens_no_parts.json");
    assert_eq!(cut.finish, Some(conv::FinishReason::Length));
    assert_eq!(cut.usage.unwrap().output_tokens, 64);

    let recitation = response("responses/recitation_and_grounding.json");
    assert_eq!(recitation.finish, Some(conv::FinishReason::ContentFilter));

    let malformed = response("responses/malformed_call_and_code.json");
    assert_eq!(
        malformed.finish,
        Some(conv::FinishReason::Other(
            "MALFORMED_FUNCTION_CALL".to_owned()
        ))
    );
    assert!(malformed.parts.is_empty());
}

#[test]
fn finish_reason_mapping() {
    let cases = [
        ("STOP", false, conv::FinishReason::Stop),
        ("STOP", true, conv::FinishReason::ToolUse),
        ("MAX_TOKENS", false, conv::FinishReason::Length),
        ("SAFETY", false, conv::FinishReason::ContentFilter),
        ("RECITATION", false, conv::FinishReason::ContentFilter),
        ("BLOCKLIST", false, conv::FinishReason::ContentFilter),
        (
            "PROHIBITED_CONTENT",
            false,
            conv::FinishReason::ContentFilter,
        ),
        ("SPII", false, conv::FinishReason::ContentFilter),
        ("IMAGE_SAFETY", false, conv::FinishReason::ContentFilter),
        (
            "IMAGE_PROHIBITED_CONTENT",
            false,
            conv::FinishReason::ContentFilter,
        ),
        ("IMAGE_RECITATION", false, conv::FinishReason::ContentFilter),
        (
            "MALFORMED_FUNCTION_CALL",
            true,
            conv::FinishReason::Other("MALFORMED_FUNCTION_CALL".to_owned()),
        ),
        (
            "OTHER",
            false,
            conv::FinishReason::Other("OTHER".to_owned()),
        ),
    ];
    for (gemini, calls, neutral) in cases {
        assert_eq!(
            convert::finish_to_conversation(gemini, calls),
            neutral,
            "{gemini}"
        );
    }
    let back = [
        (
            conv::FinishReason::StopSequence(Some("x".to_owned())),
            "STOP",
        ),
        (conv::FinishReason::ToolUse, "STOP"),
        (conv::FinishReason::Length, "MAX_TOKENS"),
        (conv::FinishReason::ContentFilter, "SAFETY"),
        (
            conv::FinishReason::Other("function_call".to_owned()),
            "OTHER",
        ),
        (conv::FinishReason::Other("LANGUAGE".to_owned()), "LANGUAGE"),
    ];
    for (neutral, gemini) in back {
        assert_eq!(convert::finish_from_conversation(&neutral), gemini);
    }
}

#[test]
fn foreign_response_is_one_model_candidate() {
    let neutral = conv::Response {
        id: "chatcmpl-1".to_owned(),
        model: "gpt-4o".to_owned(),
        created: 1,
        parts: vec![
            Neutral::thinking("Hmm.", None),
            Neutral::text("Hello"),
            Neutral::tool_call("call_9", "f", ""),
        ],
        finish: Some(conv::FinishReason::ToolUse),
        usage: Some(conv::Usage {
            input_tokens: 10,
            output_tokens: 7,
            reasoning_tokens: 2,
            cache_read_tokens: 3,
            cache_write_tokens: 1,
            extra: conv::Extras::default(),
        }),
        extra: conv::Extras::default(),
    };
    let value =
        serde_json::to_value(response_from_conversation(&neutral, "gemini-2.5-pro")).unwrap();
    assert_eq!(
        value,
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Hmm.", "thought": true},
                    {"text": "Hello"},
                    {"functionCall": {"id": "call_9", "name": "f", "args": {}}}
                ]},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 2,
                "cachedContentTokenCount": 3,
                "totalTokenCount": 17
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "chatcmpl-1"
        })
    );
}

#[test]
fn models_and_count_tokens_round_trip() {
    let list: ModelList = wire_round_trip(&fixture("models/list.json"));
    assert_eq!(list.models[0].id(), "gemini-2.5-pro");
    assert_eq!(list.models[0].extra["maxTemperature"], 2);
    let own = Model::new("models/gemini-gateway");
    assert_eq!(
        serde_json::to_value(&own).unwrap(),
        json!({
            "name": "models/gemini-gateway",
            "displayName": "gemini-gateway",
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]
        })
    );

    let bare: CountTokensRequest = wire_round_trip(&fixture("count_tokens/contents.json"));
    let bare = bare.into_generate_content_request();
    assert_eq!(bare.contents.len(), 1);
    let whole: CountTokensRequest =
        wire_round_trip(&fixture("count_tokens/generate_content_request.json"));
    let whole = whole.into_generate_content_request();
    assert!(
        whole.extra.is_empty(),
        "the embedded model field is dropped"
    );
    let conversation = request_to_conversation(whole, "gemini-2.5-flash", false).unwrap();
    assert_eq!(conversation.system_text(), "Be brief.");
    assert_eq!(conversation.tools[0].name, "noop");
    let counted: CountTokensResponse = wire_round_trip(&fixture("count_tokens/response.json"));
    assert_eq!(counted.total_tokens, 31);
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// The chunks of an SSE stream fed in `pieces`.
fn sse_chunks(pieces: &[&[u8]]) -> Vec<Value> {
    sse_events(pieces)
        .iter()
        .map(|event| serde_json::from_str(&event.data).unwrap())
        .collect()
}

/// The elements of a streamed JSON array fed in `pieces`.
fn array_chunks(pieces: &[&[u8]]) -> Result<Vec<Value>, GatewayError> {
    let mut decoder = JsonArrayDecoder::default();
    let mut chunks = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(value) = decoder.next()? {
            chunks.push(value);
        }
    }
    decoder.finish()?;
    Ok(chunks)
}

/// Decode chunks into events; an error stops the stream.
fn decode(chunks: &[Value]) -> (Vec<Event>, Option<GatewayError>) {
    let typed = chunks.iter().map(|chunk| {
        let typed: GenerateContentResponse = serde_json::from_value(chunk.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&typed).unwrap(), chunk);
        typed
    });
    let push = |decoder: &mut StreamDecoder, chunk| decoder.push(&chunk);
    run(
        &mut StreamDecoder::new(),
        typed,
        push,
        StreamDecoder::finish,
    )
}

/// The chunks the stream encoder writes for `events`, answering `model` as `id`.
fn encode(
    events: impl IntoIterator<Item = Event>,
    model: &str,
    id: &str,
) -> Vec<GenerateContentResponse> {
    let mut encoder = StreamEncoder::new(model, id);
    run_ok(
        &mut encoder,
        events,
        StreamEncoder::push,
        StreamEncoder::finish,
    )
    .unwrap()
}

/// Encode events as a client would receive them over SSE, then decode them again.
fn re_encode(events: &[Event], model: &str, id: &str) -> Vec<Event> {
    let mut wire = Vec::new();
    for chunk in encode(events.iter().cloned(), model, id) {
        sse::encode(&StreamEncoder::to_sse(&chunk).unwrap(), &mut wire);
    }
    let (events, error) = decode(&sse_chunks(&[&wire]));
    assert!(error.is_none(), "{error:?}");
    events
}

#[test]
fn sse_streams_decode_at_every_split() {
    insta::glob!("../../test_data/gemini", "streams/*.sse", |path| {
        let chunks = same_at_every_split(&read(path), sse_chunks);
        let (events, error) = decode(&chunks);
        insta::assert_json_snapshot!(json!({
            "events": events,
            "error": error_json(error.as_ref()),
        }));
        if error.is_none() {
            // Served again to a Gemini client, the stream says the same.
            let Some(Event::Start { id, model }) = events.first() else {
                panic!("a stream starts with Start");
            };
            let again = re_encode(&events, model, id);
            assert_eq!(
                collect(0, again).unwrap(),
                collect(0, events.clone()).unwrap()
            );
        }
    });
}

#[test]
fn json_array_streams_decode_at_every_split() {
    insta::glob!("../../test_data/gemini", "streams/*.json", |path| {
        let bytes = read(path);
        let chunks = same_at_every_split(&bytes, |pieces| array_chunks(pieces).unwrap());
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(array_chunks(&singles).unwrap(), chunks);
        // The same chunks as the SSE form of the fixture.
        let sse = read(&path.with_extension("sse"));
        assert_eq!(sse_chunks(&[&sse]), chunks);
        let (events, error) = decode(&chunks);
        insta::assert_json_snapshot!(json!({
            "events": events,
            "error": error_json(error.as_ref()),
        }));
    });
}

fn start() -> Event {
    crate::test_support::start("resp-1", "gemini-test")
}

/// A whole tool call: its start and its arguments.
fn call(index: u32, id: &str, name: &str, arguments: &str) -> [Event; 2] {
    [
        crate::test_support::call(index, id, name),
        args(index, arguments),
    ]
}

/// Event sequences in the decoder's own shape: each must come back exactly.
fn canonical_streams() -> Vec<Vec<Event>> {
    let [weather, weather_args] = call(2, "call_1", "weather", r#"{"city":"Paris"}"#);
    let [time, time_args] = call(3, "", "time", "{}");
    vec![
        vec![
            start(),
            thinking(0, "Plan."),
            thinking(0, " Then act."),
            signature(0, "sig-think"),
            end(0),
            text(1, "Hello"),
            text(1, " world"),
            end(1),
            weather,
            weather_args,
            signature(2, "sig-call"),
            end(2),
            time,
            time_args,
            end(3),
            usage(10, 20, 5, 2),
            finish(conv::FinishReason::ToolUse),
        ],
        vec![
            start(),
            text(0, "Once"),
            signature(0, "sig-text"),
            end(0),
            text(1, " upon"),
            end(1),
            finish(conv::FinishReason::Length),
        ],
        vec![start(), finish(conv::FinishReason::ContentFilter)],
        vec![
            start(),
            usage(3, 0, 0, 0),
            finish(conv::FinishReason::Other(
                "MALFORMED_FUNCTION_CALL".to_owned(),
            )),
        ],
    ]
}

#[test]
fn encoder_chunks_decode_to_the_same_events() {
    for events in canonical_streams() {
        assert_eq!(re_encode(&events, "gemini-test", "resp-1"), events);
    }
}

#[test]
fn encoder_chunks() {
    let chunks = encode(canonical_streams().swap_remove(0), "gemini-test", "resp-1");
    insta::assert_json_snapshot!(chunks);
}

#[test]
fn encoder_joins_argument_deltas_and_writes_refusals_as_text() {
    let mut encoder = StreamEncoder::new("m", "");
    let [start_call, first] = call(0, "c", "f", r#"{"a":"#);
    let mut chunks = Vec::new();
    for event in [
        start_call,
        first,
        Event::ToolCallDelta {
            index: 0,
            arguments: " 1}".to_owned(),
        },
        Event::RefusalDelta {
            index: 1,
            text: "No.".to_owned(),
        },
        Event::RedactedThinking {
            index: 2,
            data: "x".to_owned(),
        },
        finish(conv::FinishReason::Stop),
    ] {
        chunks.extend(encoder.push(event).unwrap());
    }
    chunks.extend(encoder.finish().unwrap());
    let parts: Vec<Value> = chunks
        .iter()
        .map(|c| {
            serde_json::to_value(
                &c.candidates.as_ref().unwrap()[0]
                    .content
                    .as_ref()
                    .unwrap()
                    .parts,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        parts,
        [
            json!([{"text": "No."}]),
            json!([{"functionCall": {"id": "c", "name": "f", "args": {"a": 1}}}]),
            json!([{"text": ""}]),
        ]
    );
    assert!(chunks.iter().all(|c| c.response_id.is_none()));
    assert_eq!(
        chunks[2].candidates.as_ref().unwrap()[0]
            .finish_reason
            .as_deref(),
        Some("STOP")
    );
}

#[test]
fn encoder_refuses_truncation_orphan_arguments_and_bad_json() {
    let mut encoder = StreamEncoder::new("m", "r");
    encoder.push(text(0, "hi")).unwrap();
    assert_eq!(encoder.finish().unwrap_err().kind(), ErrorKind::Truncated);

    let mut encoder = StreamEncoder::new("m", "r");
    let orphan = encoder
        .push(Event::ToolCallDelta {
            index: 4,
            arguments: "{}".to_owned(),
        })
        .unwrap_err();
    assert_eq!(orphan.kind(), ErrorKind::UpstreamProtocol);

    let mut encoder = StreamEncoder::new("m", "r");
    let [start_call, args] = call(0, "c", "f", "{not json");
    encoder.push(start_call).unwrap();
    encoder.push(args).unwrap();
    let bad = encoder.push(end(0)).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::UpstreamProtocol);
    assert!(
        bad.message().contains("not valid json"),
        "{}",
        bad.message()
    );
}

#[test]
fn decoder_reports_truncation_and_error_chunks() {
    let chunk: GenerateContentResponse = serde_json::from_value(
        json!({"candidates": [{"content": {"parts": [{"text": "a"}], "role": "model"}}]}),
    )
    .unwrap();
    let mut decoder = StreamDecoder::new();
    decoder.push(&chunk).unwrap();
    assert_eq!(decoder.finish().unwrap_err().kind(), ErrorKind::Truncated);

    let error: GenerateContentResponse = serde_json::from_value(
        json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}),
    )
    .unwrap();
    let err = StreamDecoder::new().push(&error).unwrap_err();
    assert_eq!(err.status().as_u16(), 429);
    assert_eq!(err.message(), "Resource has been exhausted");
    assert!(err.upstream_body().is_some());
}

#[test]
fn json_array_decoder_edge_cases() {
    // Brackets, braces and escaped quotes inside strings do not count.
    let tricky = br#" [ {"text": "a]}\"[{"}, [1, {"b": "\\"}] , {"c": "\u005d"} ] "#;
    let values = array_chunks(&[tricky]).unwrap();
    assert_eq!(
        values,
        [
            json!({"text": "a]}\"[{"}),
            json!([1, {"b": "\\"}]),
            json!({"c": "]"})
        ]
    );
    same_at_every_split(tricky, |pieces| array_chunks(pieces).unwrap());
    // An empty array, a byte-order mark, and a bare error envelope.
    assert!(array_chunks(&[b"[]"]).unwrap().is_empty());
    assert_eq!(
        array_chunks(&[b"\xEF\xBB", b"\xBF[{\"a\":1}]"]).unwrap(),
        [json!({"a": 1})]
    );
    assert_eq!(
        array_chunks(&[br#"{"error": {"code": 400, "message": "bad"}}"#]).unwrap(),
        [json!({"error": {"code": 400, "message": "bad"}})]
    );
    // Malformed input is final.
    let mut decoder = JsonArrayDecoder::default();
    decoder.feed(b"[1, 2]");
    assert_eq!(
        decoder.next().unwrap_err().kind(),
        ErrorKind::UpstreamProtocol
    );
    assert_eq!(
        decoder.next().unwrap_err().kind(),
        ErrorKind::UpstreamProtocol
    );
    for garbage in [
        &b"<html>"[..],
        b"[{}{}]",
        b"[{},]",
        b"[{}] x",
        b"[{\"a\" 1}]",
    ] {
        let error = array_chunks(&[garbage]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UpstreamProtocol, "{garbage:?}");
    }
    // An array never closed is truncated.
    for cut in [&b""[..], b"[", b"[{\"a\": 1}", b"[{\"a\": 1},", b"[{\"a\""] {
        assert_eq!(
            array_chunks(&[cut]).unwrap_err().kind(),
            ErrorKind::Truncated,
            "{cut:?}"
        );
    }
    // One element is capped.
    let mut decoder = JsonArrayDecoder::new(16);
    decoder.feed(b"[{\"a\": \"0123456789abcdef\"");
    let error = decoder.next().unwrap_err();
    assert!(
        error.message().contains("larger than 16 bytes"),
        "{}",
        error.message()
    );
    let mut decoder = JsonArrayDecoder::new(16);
    decoder.feed(b"[{\"a\": 1}, {\"b\": 2}]");
    assert_eq!(decoder.next().unwrap(), Some(json!({"a": 1})));
    assert_eq!(decoder.next().unwrap(), Some(json!({"b": 2})));
    assert_eq!(decoder.next().unwrap(), None);
    decoder.finish().unwrap();
}

#[test]
fn json_array_encoder_writes_what_the_decoder_reads() {
    let mut array = JsonArrayEncoder::new();
    let mut wire = Vec::new();
    let chunks = encode(canonical_streams().swap_remove(1), "gemini-test", "resp-1");
    for chunk in &chunks {
        array.push(chunk, &mut wire).unwrap();
    }
    array.finish(&mut wire);
    assert!(wire.starts_with(b"[{") && wire.ends_with(b"}]"));
    let values: Vec<Value> = chunks
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(
        same_at_every_split(&wire, |pieces| array_chunks(pieces).unwrap()),
        values
    );
    let mut empty = Vec::new();
    JsonArrayEncoder::new().finish(&mut empty);
    assert_eq!(empty, b"[]");
}

#[test]
fn the_array_decoder_gives_each_element_as_the_upstream_wrote_it() {
    let mut decoder = JsonArrayDecoder::default();
    decoder.feed(b"[ {\"b\": 1,  \"a\": [2]} ,\r\n{\"c\"");
    assert!(decoder.next().unwrap().is_some());
    assert_eq!(decoder.last_element(), b"{\"b\": 1,  \"a\": [2]}");
    assert!(decoder.next().unwrap().is_none());
    decoder.feed(b":3}]");
    assert!(decoder.last_element().is_empty(), "stale after a feed");
    assert!(decoder.next().unwrap().is_some());
    assert_eq!(decoder.last_element(), b"{\"c\":3}");
    assert!(decoder.next().unwrap().is_none(), "the closing bracket");
    decoder.finish().unwrap();
}
