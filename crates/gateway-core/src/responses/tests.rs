//! Round trips of every Responses fixture through the conversation (with a snapshot of the
//! neutral form), the seal, the stream decoder on every fixture split at every byte offset, and
//! the stream encoder against the decoder and against what the OpenAI SDK rebuilds.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::{
    ErrorKind, GatewayError,
    conversation::{self as conv, Event, FinishReason, Part},
    openai::parse_json,
    sse,
    test_support::{
        args, call, collect, end, error_json, finish, fixture, run, run_ok, same_at_every_split,
        same_json, signature, sse_events, survives_serde, text, thinking, usage,
    },
};

const KEY: &[u8] = b"test-seal-key-0123456789abcdef0123";

fn seal() -> ReasoningSeal {
    ReasoningSeal::new(KEY)
}

// ---------------------------------------------------------------------------------------------
// Wire types and conversion
// ---------------------------------------------------------------------------------------------

#[test]
fn requests_round_trip() {
    insta::glob!("../../test_data/responses", "requests/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        let request: ResponsesRequest = parse_json(&bytes).unwrap();
        // The wire types alone keep every field.
        same_json(&request, &bytes);
        let conversation = request_to_conversation(request.clone(), Some(&seal())).unwrap();
        insta::assert_json_snapshot!(conversation);
        // The neutral form survives its own serde round trip.
        survives_serde(&conversation);
        let again = request_from_conversation(&conversation);
        same_json(&again, &bytes);
        assert_eq!(again, request);
        // Without a seal the same request comes back too.
        let unsealed = request_to_conversation(request.clone(), None).unwrap();
        assert_eq!(request_from_conversation(&unsealed), request);
    });
}

#[test]
fn responses_round_trip() {
    insta::glob!("../../test_data/responses", "responses/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        let object: ResponseObject = parse_json(&bytes).unwrap();
        same_json(&object, &bytes);
        let response = response_to_conversation(object.clone());
        insta::assert_json_snapshot!(response);
        survives_serde(&response);
        let again = response_from_conversation(&response, &object.model, Some(&seal()));
        same_json(&again, &bytes);
        assert_eq!(again, object);
    });
}

fn fixture_request(name: &str) -> conv::Request {
    let request: ResponsesRequest =
        parse_json(&fixture("responses", &format!("requests/{name}"))).unwrap();
    request_to_conversation(request, Some(&seal())).unwrap()
}

#[test]
fn codex_turn_maps_to_the_model() {
    let request = fixture_request("codex_turn.json");
    assert!(request.system_text().starts_with("You are Codex"));
    let roles: Vec<conv::Role> = request.messages.iter().map(|m| m.role).collect();
    use conv::Role::*;
    assert_eq!(
        roles,
        [
            Developer, User, User, Assistant, Tool, Assistant, Tool, User
        ]
    );
    // Reasoning and the call of one turn share the assistant message; OpenAI's blob is kept
    // for Responses and gives unsigned thinking.
    let first = &request.messages[3].parts;
    assert!(
        matches!(&first[0], Part::Thinking { text, signature: None, .. } if text.starts_with("**Running"))
    );
    assert!(
        matches!(&first[1], Part::ToolCall { id, name, .. } if id == "call_Rk3fQ0x8sBq2" && name == "shell")
    );
    // An empty summary still carries its item, as empty thinking.
    let second = &request.messages[5].parts;
    assert_eq!(second.len(), 3);
    assert!(matches!(&second[0], Part::Thinking { text, .. } if text.is_empty()));
    assert!(
        matches!(&second[2], Part::ToolCall { name, arguments, .. } if name == "apply_patch" && arguments.starts_with("*** Begin Patch"))
    );
    let Part::ToolResult { name, parts, .. } = &request.messages[6].parts[0] else {
        panic!("tool result expected");
    };
    assert_eq!(name.as_deref(), Some("apply_patch"));
    assert_eq!(
        parts[0].as_text(),
        Some("Success. Updated the following files:\nM src/lib.rs\n")
    );
    let kinds: Vec<bool> = request
        .tools
        .iter()
        .map(|t| matches!(t.kind, conv::ToolKind::Custom { .. }))
        .collect();
    assert_eq!(kinds, [false, false, true]);
    assert_eq!(request.tool_choice, Some(conv::ToolChoice::Auto));
    assert_eq!(request.parallel_tool_calls, Some(true));
    let reasoning = request.reasoning.unwrap();
    assert_eq!(reasoning.effort, Some(conv::Effort::Medium));
    assert_eq!(reasoning.summary.as_deref(), Some("auto"));
    assert!(request.stream && request.stream_usage);
}

#[test]
fn string_input_and_settings() {
    let request = fixture_request("string_input.json");
    assert_eq!(request.messages.len(), 1);
    assert_eq!(request.messages[0].role, conv::Role::User);
    assert_eq!(request.generation.max_tokens, Some(200));
    assert_eq!(request.generation.temperature, Some(0.7));
    assert!(
        matches!(&request.response_format, Some(conv::ResponseFormat::JsonSchema { name, strict: Some(true), .. }) if name == "haiku")
    );
    assert!(!request.stream);
}

#[test]
fn sdk_items_map_parts_and_choices() {
    let request = fixture_request("sdk_items.json");
    let user = &request.messages[2].parts;
    assert!(
        matches!(&user[2], Part::Image { source: conv::Media::Base64 { mime, .. }, .. } if mime == "image/png")
    );
    assert!(
        matches!(&user[3], Part::Image { source: conv::Media::FileId { id }, .. } if id == "file-img1")
    );
    assert!(
        matches!(&user[5], Part::Document { source: conv::Media::Base64 { mime, data }, .. } if mime == "text/plain" && data == "SGVsbG8=")
    );
    assert!(matches!(
        &user[7],
        Part::Document {
            source: conv::Media::Url { .. },
            ..
        }
    ));
    // Two assistant message items, the unknown item between them and the call: one message.
    let assistant = &request.messages[3].parts;
    assert_eq!(assistant.len(), 4);
    assert!(matches!(&assistant[1], Part::Refusal { .. }));
    assert!(matches!(&assistant[3], Part::ToolCall { id, .. } if id == "call_w1"));
    let Part::ToolResult { parts, .. } = &request.messages[4].parts[0] else {
        panic!("tool result expected");
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(
        request.tool_choice,
        Some(conv::ToolChoice::Allowed {
            tools: vec!["get_weather".to_owned()],
            required: true
        })
    );
}

#[test]
fn sealed_reasoning_restores_signatures() {
    let request = fixture_request("stateless_turn.json");
    let assistant = &request.messages[1];
    assert_eq!(assistant.role, conv::Role::Assistant);
    assert_eq!(assistant.parts[0], {
        let mut part = Part::thinking(
            "The user wants the file list; call shell.",
            Some("EqMBCkYIBxgCKkBclaudeThinkingSignature==".to_owned()),
        );
        // Compare without the Responses hints the first part carries.
        if let (Part::Thinking { extra, .. }, Part::Thinking { extra: e, .. }) =
            (&mut part, &assistant.parts[0])
        {
            *extra = e.clone();
        }
        part
    });
    assert!(
        matches!(&assistant.parts[1], Part::RedactedThinking { data, .. } if data == "RedactedOpaqueThinkingData==")
    );
    assert!(
        matches!(&assistant.parts[2], Part::ToolCall { id, signature: Some(s), .. } if id == "call_g1" && s == "CiQBjz1rX2geminiThoughtSignature")
    );
    // The signature-only item gives no part.
    assert_eq!(assistant.parts.len(), 3);

    // Under another key nothing opens: unsigned thinking, no call signature, same request back.
    let raw: ResponsesRequest =
        parse_json(&fixture("responses", "requests/stateless_turn.json")).unwrap();
    let other = ReasoningSeal::new(b"another key");
    let request = request_to_conversation(raw.clone(), Some(&other)).unwrap();
    let parts = &request.messages[1].parts;
    assert!(matches!(
        &parts[0],
        Part::Thinking {
            signature: None,
            ..
        }
    ));
    assert!(matches!(
        &parts[1],
        Part::ToolCall {
            signature: None,
            ..
        }
    ));
    assert!(matches!(&parts[2], Part::Thinking { text, .. } if text.is_empty()));
    assert_eq!(request_from_conversation(&request), raw);
}

#[test]
fn seal_round_trip_tamper_and_foreign() {
    let seal = seal();
    let mut call = Part::tool_call("call_9", "shell", "{}");
    if let Part::ToolCall { signature, .. } = &mut call {
        *signature = Some("gem-sig".to_owned());
    }
    let parts = vec![
        Part::thinking("Plan ünïcode.", Some("sig-1".to_owned())),
        Part::RedactedThinking {
            data: "opaque".to_owned(),
            extra: conv::Extras::default(),
        },
        Part::thinking("", None),
        Part::text("not sealed"),
        call,
    ];
    let blob = seal.seal(&parts);
    assert!(blob.starts_with(SEAL_PREFIX));
    let opened = seal.open(&blob).unwrap();
    assert_eq!(opened[..3], parts[..3]);
    assert_eq!(
        opened[3],
        Part::ToolCall {
            id: "call_9".to_owned(),
            name: String::new(),
            arguments: String::new(),
            signature: Some("gem-sig".to_owned()),
            extra: conv::Extras::default(),
        }
    );
    assert_eq!(opened.len(), 4);
    assert!(ReasoningSeal::is_worth_sealing(&parts));
    assert!(!ReasoningSeal::is_worth_sealing(&[Part::thinking(
        "x", None
    )]));

    // Every changed character of the blob makes it foreign.
    for at in 0..blob.len() {
        let mut bytes = blob.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        if tampered != blob {
            assert_eq!(seal.open(&tampered), None, "changed at {at}");
        }
    }
    // Truncated, extended, foreign, empty, garbage, another key, another version.
    for foreign in [
        &blob[..blob.len() - 1],
        &format!("{blob}A"),
        "gAAAAABo9Kx1cW9hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
        "",
        "gw1.",
        "gw1..",
        "gw1.!!!.???",
        &blob.replacen("gw1.", "gw2.", 1),
    ] {
        assert_eq!(seal.open(foreign), None, "{foreign}");
    }
    assert_eq!(ReasoningSeal::new(b"another key").open(&blob), None);
    assert_eq!(format!("{seal:?}"), "ReasoningSeal([redacted])");
}

#[test]
fn foreign_conversations_use_plain_responses() {
    let mut signed_call = Part::tool_call("call_1", "shell", r#"{"command":["ls"]}"#);
    if let Part::ToolCall { signature, .. } = &mut signed_call {
        *signature = Some("gemini-sig".to_owned());
    }
    let request = conv::Request {
        model: "m".to_owned(),
        system: vec![Part::text("One."), Part::text("Two.")],
        messages: vec![
            conv::Message::new(conv::Role::User, vec![Part::text("Hi")]),
            conv::Message::new(
                conv::Role::Assistant,
                vec![
                    Part::thinking("Claude's thinking.", Some("sig".to_owned())),
                    Part::text("Calling."),
                    signed_call,
                    Part::tool_call("call_2", "apply_patch", "*** Begin Patch"),
                ],
            ),
            conv::Message::new(
                conv::Role::User,
                vec![
                    Part::tool_result("call_1", vec![Part::text("a.txt")]),
                    Part::ToolResult {
                        id: "call_2".to_owned(),
                        name: Some("apply_patch".to_owned()),
                        parts: vec![Part::text("Done")],
                        is_error: false,
                        extra: conv::Extras::default(),
                    },
                    Part::text("Thanks."),
                ],
            ),
        ],
        tools: vec![conv::Tool {
            name: "apply_patch".to_owned(),
            description: None,
            parameters: Value::Null,
            strict: None,
            kind: conv::ToolKind::Custom { format: None },
            extra: conv::Extras::default(),
        }],
        tool_choice: Some(conv::ToolChoice::Tool("apply_patch".to_owned())),
        generation: conv::Generation {
            max_tokens: Some(99),
            stop: vec!["END".to_owned()],
            ..conv::Generation::default()
        },
        response_format: Some(conv::ResponseFormat::JsonObject),
        stream: true,
        ..conv::Request::default()
    };
    assert_eq!(
        serde_json::to_value(request_from_conversation(&request)).unwrap(),
        json!({
            "model": "m",
            "instructions": "One.\n\nTwo.",
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks."}]}
            ],
            "tools": [{"type": "custom", "name": "apply_patch"}],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
            "text": {"format": {"type": "json_object"}},
            "max_output_tokens": 99,
            "stream": true
        })
    );
}

#[test]
fn foreign_response_gets_ids_statuses_and_seals() {
    let mut call = Part::tool_call("", "shell", "{}");
    if let Part::ToolCall { signature, .. } = &mut call {
        *signature = Some("gemini-sig".to_owned());
    }
    let response = conv::Response {
        id: "resp_abc".to_owned(),
        model: "upstream".to_owned(),
        created: 1_700_000_000,
        parts: vec![
            Part::thinking("Think.", Some("claude-sig".to_owned())),
            Part::RedactedThinking {
                data: "opaque".to_owned(),
                extra: conv::Extras::default(),
            },
            Part::text("Answer."),
            call,
        ],
        finish: Some(FinishReason::ToolUse),
        usage: Some(conv::Usage {
            input_tokens: 10,
            output_tokens: 5,
            reasoning_tokens: 2,
            cache_read_tokens: 4,
            ..conv::Usage::default()
        }),
        extra: conv::Extras::default(),
    };
    let object = response_from_conversation(&response, "client-model", Some(&seal()));
    let value = serde_json::to_value(&object).unwrap();
    let blob = value["output"][0]["encrypted_content"].as_str().unwrap();
    let trailing = value["output"][3]["encrypted_content"].as_str().unwrap();
    assert_eq!(
        value,
        json!({
            "id": "resp_abc", "object": "response", "created_at": 1_700_000_000,
            "status": "completed", "model": "client-model",
            "output": [
                {"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "Think."}],
                 "encrypted_content": blob},
                {"type": "message", "id": "msg_abc_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Answer.", "annotations": [], "logprobs": []}]},
                {"type": "function_call", "id": "fc_abc_2", "status": "completed", "call_id": "call_abc_2",
                 "name": "shell", "arguments": "{}"},
                {"type": "reasoning", "id": "rs_abc_3", "summary": [], "encrypted_content": trailing}
            ],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                      "total_tokens": 15},
            "tools": [], "tool_choice": "auto", "parallel_tool_calls": true
        })
    );
    assert_eq!(seal().open(blob).unwrap(), response.parts[..2]);
    // Without a seal: no blobs, and no trailing item.
    let plain = serde_json::to_value(response_from_conversation(&response, "m", None)).unwrap();
    assert!(plain["output"][0].get("encrypted_content").is_none());
    assert_eq!(plain["output"].as_array().unwrap().len(), 3);
}

#[test]
fn finish_reasons_map_to_statuses() {
    use FinishReason as R;
    let cases = [
        (R::Stop, json!("completed"), Value::Null),
        (R::ToolUse, json!("completed"), Value::Null),
        (R::StopSequence(None), json!("completed"), Value::Null),
        (
            R::Length,
            json!("incomplete"),
            json!({"reason": "max_output_tokens"}),
        ),
        (
            R::ContentFilter,
            json!("incomplete"),
            json!({"reason": "content_filter"}),
        ),
        (R::Other("failed".to_owned()), json!("failed"), Value::Null),
        (
            R::Other("SAFETY_OTHER".to_owned()),
            json!("completed"),
            Value::Null,
        ),
    ];
    for (reason, status, details) in cases {
        let response = conv::Response {
            id: "resp_1".to_owned(),
            finish: Some(reason.clone()),
            ..conv::Response::default()
        };
        let value = serde_json::to_value(response_from_conversation(&response, "m", None)).unwrap();
        assert_eq!(value["status"], status, "{reason:?}");
        assert_eq!(value["incomplete_details"], details, "{reason:?}");
    }
}

#[test]
fn invalid_requests_are_400s_naming_the_field() {
    let cases = [
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]}),
            "input[0].content[0]",
            "input_image",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file"}]}]}),
            "input[0].output[0]",
            "input_file",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "function"}}),
            "tool_choice.name",
            "without name",
        ),
    ];
    for (body, param, needle) in cases {
        let request: ResponsesRequest = serde_json::from_value(body.clone()).unwrap();
        let error = request_to_conversation(request, None).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{body}");
        assert_eq!(error.param(), Some(param), "{body}");
        assert!(error.message().contains(needle), "{}", error.message());
    }
    // Shapes serde rejects name the field too.
    for (body, needle) in [
        (
            r#"{"model": "m", "input": [{"role": "robot", "content": "x"}]}"#,
            "input[0]",
        ),
        (
            r#"{"model": "m", "input": [{"type": "function_call", "name": "f"}]}"#,
            "call_id",
        ),
        (r#"{"model": "m", "input": 7}"#, "input"),
        (
            r#"{"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}"#,
            "input_audio",
        ),
        (
            r#"{"model": "m", "reasoning": {"effort": "max"}}"#,
            "reasoning.effort",
        ),
    ] {
        let error = parse_json::<ResponsesRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{body}");
        assert!(
            error.message().contains(needle),
            "{body}: {}",
            error.message()
        );
    }
}

#[test]
fn custom_tools_become_single_string_functions() {
    let mut request = fixture_request("codex_turn.json");
    let names = custom_tools_as_functions(&mut request);
    assert_eq!(names, ["apply_patch"]);
    let tool = &request.tools[2];
    assert_eq!(tool.kind, conv::ToolKind::Function);
    assert_eq!(
        tool.parameters,
        json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The raw input, passed to the tool verbatim."}},
            "required": ["input"],
            "additionalProperties": false
        })
    );
    let description = tool.description.as_deref().unwrap();
    assert!(
        description.contains("FREEFORM tool")
            && description.contains("lark grammar:\nstart: begin_patch")
    );
    let Part::ToolCall { arguments, .. } = &request.messages[5].parts[2] else {
        panic!("call expected");
    };
    let input =
        "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n-    a - b\n+    a + b\n*** End Patch\n";
    assert_eq!(arguments, &json!({"input": input}).to_string());
    assert_eq!(custom_input_from_arguments(arguments), input);
    assert_eq!(custom_input_from_arguments("raw text"), "raw text");
    assert_eq!(
        custom_input_from_arguments(r#"{"input": 1}"#),
        r#"{"input": 1}"#
    );

    // The backend's call comes back as a custom tool call.
    let mut response = conv::Response {
        id: "resp_c".to_owned(),
        parts: vec![Part::tool_call(
            "call_p",
            "apply_patch",
            json!({"input": input}).to_string(),
        )],
        finish: Some(FinishReason::ToolUse),
        ..conv::Response::default()
    };
    custom_calls_from_functions(&mut response, &names);
    let value = serde_json::to_value(response_from_conversation(&response, "m", None)).unwrap();
    assert_eq!(
        value["output"][0],
        json!({"type": "custom_tool_call", "id": "ctc_c_0", "status": "completed",
               "call_id": "call_p", "name": "apply_patch", "input": input})
    );
}

// ---------------------------------------------------------------------------------------------
// Stream decoder
// ---------------------------------------------------------------------------------------------

/// Decode `bytes` fed in `chunks`: the events, and the error that ended the stream.
fn decode_stream(chunks: &[&[u8]]) -> (Vec<Event>, Option<GatewayError>) {
    run(
        &mut StreamDecoder::new(),
        &sse_events(chunks),
        StreamDecoder::push,
        StreamDecoder::finish,
    )
}

#[test]
fn streams_decode_split_at_every_byte() {
    insta::glob!("../../test_data/responses", "streams/*.sse", |path| {
        let bytes = std::fs::read(path).unwrap();
        let (events, error) = same_at_every_split(&bytes, |pieces| {
            let (events, error) = decode_stream(pieces);
            (events, error_json(error.as_ref()))
        });
        insta::assert_json_snapshot!(json!({"events": events, "error": error}));
        // What the decoder read folds into the response the stream's final event carries.
        if error.is_null() {
            let collected = collect(0, events).unwrap();
            let last = bytes
                .split(|&b| b == b'\n')
                .rev()
                .find_map(|line| line.strip_prefix(b"data: "))
                .unwrap();
            let last: Value = serde_json::from_slice(last).unwrap();
            let object: ResponseObject = serde_json::from_value(last["response"].clone()).unwrap();
            let expected = response_to_conversation(object);
            let plain = |parts: &[Part]| -> Vec<Value> {
                parts
                    .iter()
                    .map(|p| {
                        let mut v = serde_json::to_value(p).unwrap();
                        v.as_object_mut().unwrap().remove("extra");
                        v
                    })
                    .filter(|v| v != &json!({"type": "thinking", "text": ""}))
                    .collect()
            };
            assert_eq!(plain(&collected.parts), plain(&expected.parts));
            assert_eq!(collected.finish, expected.finish);
            assert_eq!(
                collected.usage.map(|u| (u.input_tokens, u.output_tokens)),
                expected.usage.map(|u| (u.input_tokens, u.output_tokens))
            );
        }
    });
}

#[test]
fn decoder_errors() {
    let mut decoder = StreamDecoder::new();
    let error = decoder.push(&sse::Event::data("{not json")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
    let mut decoder = StreamDecoder::new();
    assert_eq!(decoder.finish().unwrap_err().kind(), ErrorKind::Truncated);
    // A rate limit in an error event is a 429.
    let bytes = fixture("responses", "streams/error.sse");
    let (_, error) = decode_stream(&[&bytes]);
    assert_eq!(error.unwrap().status().as_u16(), 429);
}

// ---------------------------------------------------------------------------------------------
// Stream encoder
// ---------------------------------------------------------------------------------------------

fn encode(
    seal: Option<ReasoningSeal>,
    custom: &[&str],
    events: Vec<Event>,
) -> Result<Vec<sse::Event>, GatewayError> {
    let mut encoder = StreamEncoder::new("resp_enc", "client-model", 1_700_000_000, seal)
        .custom_tools(custom.iter().map(|s| (*s).to_owned()).collect());
    run_ok(
        &mut encoder,
        events,
        StreamEncoder::push,
        StreamEncoder::finish,
    )
}

fn start() -> Event {
    crate::test_support::start("resp_enc", "client-model")
}

/// Canonical sequences: every block ended before the next starts, usage before the finish.
fn scenarios() -> Vec<(&'static str, Vec<Event>)> {
    vec![
        (
            "text",
            vec![
                start(),
                text(0, "Hel"),
                text(0, "lo"),
                end(0),
                usage(5, 2, 3, 2),
                finish(FinishReason::Stop),
            ],
        ),
        (
            "thinking_text_and_calls",
            vec![
                start(),
                thinking(0, "First, "),
                thinking(0, "look."),
                signature(0, "claude-sig"),
                end(0),
                thinking(1, "Then call."),
                end(1),
                text(2, "Calling two tools."),
                end(2),
                call(3, "call_a", "get_weather"),
                args(3, r#"{"city":"#),
                args(3, r#""Paris"}"#),
                signature(3, "gemini-sig"),
                end(3),
                call(4, "call_b", "apply_patch"),
                args(4, r#"{"input":"*** Begin Patch\n*** End Patch\n"}"#),
                end(4),
                usage(40, 30, 3, 2),
                finish(FinishReason::ToolUse),
            ],
        ),
        (
            "refusal_and_text",
            vec![
                start(),
                Event::RefusalDelta {
                    index: 0,
                    text: "I can't help with that.".to_owned(),
                },
                end(0),
                text(1, "But here is something else."),
                end(1),
                usage(3, 9, 3, 2),
                finish(FinishReason::Stop),
            ],
        ),
        (
            "length",
            vec![
                start(),
                text(0, "Cut o"),
                end(0),
                usage(4, 16, 3, 2),
                finish(FinishReason::Length),
            ],
        ),
    ]
}

/// What survives the trip through Responses: no signatures or redactions in the events (they
/// travel sealed), and custom tool input unwrapped.
fn streamable(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| !matches!(e, Event::Signature { .. } | Event::RedactedThinking { .. }))
        .cloned()
        .map(|e| match e {
            Event::ToolCallDelta {
                index: 4,
                arguments,
            } => Event::ToolCallDelta {
                index: 4,
                arguments: custom_input_from_arguments(&arguments),
            },
            other => other,
        })
        .collect()
}

#[test]
fn encoder_streams_decode_to_the_same_events() {
    for (name, events) in scenarios() {
        let out = encode(Some(seal()), &["apply_patch"], events.clone()).unwrap();
        insta::assert_json_snapshot!(
            format!("encoder_{name}"),
            out.iter()
                .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
                .collect::<Vec<_>>()
        );
        // Sequence numbers count up from 0; every event is named by its type.
        for (n, event) in out.iter().enumerate() {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(data["sequence_number"], json!(n), "{name}");
            assert_eq!(data["type"].as_str(), event.event.as_deref(), "{name}");
        }
        // The relay's tracker sees content and a proper end.
        let mut tracker = crate::dialect::Tracker::new(crate::Dialect::Responses);
        for event in &out {
            tracker.observe(event).unwrap();
        }
        assert!(tracker.has_content() && tracker.is_done(), "{name}");
        assert_eq!(tracker.at_end().unwrap(), None, "{name}");
        let mut bytes = Vec::new();
        for event in &out {
            sse::encode(event, &mut bytes);
        }
        let (decoded, error) = decode_stream(&[&bytes]);
        assert!(error.is_none(), "{name}: {error:?}");
        assert_eq!(decoded, streamable(&events), "{name}");
        sdk_rebuilds_the_final_response(&out);
    }
}

/// What the OpenAI Python SDK's `ResponseStreamState` does, checked step by step: content
/// events only after their item and part were added, text accumulated per part, and the
/// `output_item.done` items equal to the final response's output.
fn sdk_rebuilds_the_final_response(events: &[sse::Event]) {
    let mut added: BTreeMap<u64, Value> = BTreeMap::new();
    let mut done: BTreeMap<u64, Value> = BTreeMap::new();
    let mut completed = None;
    for event in events {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        let at = data["output_index"].as_u64().unwrap_or(u64::MAX);
        match data["type"].as_str().unwrap() {
            "response.output_item.added" => {
                assert!(added.insert(at, data["item"].clone()).is_none());
            }
            "response.content_part.added" => {
                let item = added.get_mut(&at).expect("part of an added item");
                let content = item["content"].as_array_mut().unwrap();
                assert_eq!(data["content_index"], json!(content.len()));
                content.push(data["part"].clone());
            }
            "response.output_text.delta" => {
                let item = added.get_mut(&at).expect("text of an added item");
                let index = data["content_index"].as_u64().unwrap() as usize;
                let part = &mut item["content"][index];
                assert_eq!(part["type"], "output_text");
                assert!(data["logprobs"].is_array());
                let text = format!(
                    "{}{}",
                    part["text"].as_str().unwrap(),
                    data["delta"].as_str().unwrap()
                );
                part["text"] = json!(text);
            }
            "response.output_text.done" => {
                let item = &added[&at];
                let index = data["content_index"].as_u64().unwrap() as usize;
                assert_eq!(item["content"][index]["text"], data["text"]);
            }
            "response.function_call_arguments.delta" => {
                let item = added.get_mut(&at).expect("arguments of an added item");
                assert_eq!(item["type"], "function_call");
                let arguments = format!(
                    "{}{}",
                    item["arguments"].as_str().unwrap(),
                    data["delta"].as_str().unwrap()
                );
                item["arguments"] = json!(arguments);
            }
            "response.function_call_arguments.done" => {
                assert_eq!(added[&at]["arguments"], data["arguments"]);
            }
            "response.reasoning_summary_text.delta" | "response.custom_tool_call_input.delta" => {
                assert!(added.contains_key(&at));
            }
            "response.output_item.done" => {
                let item = &data["item"];
                let seen = &added[&at];
                assert_eq!(seen["id"], item["id"]);
                if item["type"] == "message" {
                    let texts = |v: &Value| -> Vec<Value> {
                        v["content"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p["text"].clone())
                            .collect()
                    };
                    assert_eq!(texts(seen), texts(item));
                }
                if item["type"] == "function_call" {
                    assert_eq!(seen["arguments"], item["arguments"]);
                }
                done.insert(at, item.clone());
            }
            "response.completed" | "response.incomplete" => {
                completed = Some(data["response"].clone());
            }
            _ => {}
        }
    }
    let completed = completed.expect("a final response");
    let output: Vec<Value> = done.into_values().collect();
    assert_eq!(completed["output"], Value::Array(output));
    assert!(completed["usage"]["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(completed["usage"]["output_tokens_details"]["reasoning_tokens"].is_u64());
    for key in ["tools", "tool_choice", "parallel_tool_calls"] {
        assert!(!completed[key].is_null(), "{key}");
    }
    // And the typed response parses.
    let _: ResponseObject = serde_json::from_value(completed).unwrap();
}

#[test]
fn stateless_two_turns_restore_signatures() {
    // Turn 1: a backend with signed thinking, redacted thinking and a signed call.
    let events = vec![
        start(),
        thinking(0, "Need the listing."),
        signature(0, "claude-sig"),
        end(0),
        Event::RedactedThinking {
            index: 1,
            data: "redacted-bytes".to_owned(),
        },
        call(2, "call_1", "shell"),
        args(2, r#"{"command":["ls"]}"#),
        signature(2, "gemini-sig"),
        end(2),
        finish(FinishReason::ToolUse),
    ];
    let out = encode(Some(seal()), &[], events).unwrap();
    // Codex keeps the done items and sends them back with the tool output.
    let mut input: Vec<Value> = out
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.output_item.done"))
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["item"].clone())
        .collect();
    assert_eq!(input.len(), 3, "reasoning, call, trailing signatures");
    input.insert(0, json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]}));
    input.push(json!({"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}));
    let body = json!({"model": "m", "input": input, "store": false});
    let request: ResponsesRequest = serde_json::from_value(body).unwrap();
    let conversation = request_to_conversation(request.clone(), Some(&seal())).unwrap();
    let parts = &conversation.messages[1].parts;
    assert!(
        matches!(&parts[0], Part::Thinking { text, signature: Some(s), .. } if text == "Need the listing." && s == "claude-sig")
    );
    assert!(matches!(&parts[1], Part::RedactedThinking { data, .. } if data == "redacted-bytes"));
    assert!(
        matches!(&parts[2], Part::ToolCall { id, signature: Some(s), .. } if id == "call_1" && s == "gemini-sig")
    );
    assert_eq!(parts.len(), 3);
    // And the turn goes back to Responses as it came.
    assert_eq!(request_from_conversation(&conversation), request);
}

#[test]
fn encoder_handles_loose_upstreams() {
    // No block ends, no start, signature before any thinking text, empty deltas, usage after
    // the finish, a call without an id.
    let out = encode(
        Some(seal()),
        &[],
        vec![
            signature(0, "gemini-thought"),
            thinking(1, "Hmm."),
            text(2, ""),
            text(2, "Yes."),
            call(3, "", "f"),
            args(3, ""),
            finish(FinishReason::Stop),
            text(4, "ignored"),
            usage(1, 1, 3, 2),
        ],
    )
    .unwrap();
    sdk_rebuilds_the_final_response(&out);
    let last: Value = serde_json::from_str(&out.last().unwrap().data).unwrap();
    let output = &last["response"]["output"];
    assert_eq!(
        output[0]["summary"],
        json!([{"type": "summary_text", "text": "Hmm."}])
    );
    let opened = seal()
        .open(output[0]["encrypted_content"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        opened[0],
        Part::thinking("", Some("gemini-thought".to_owned()))
    );
    assert_eq!(output[2]["call_id"], "call_enc_2");
    assert_eq!(last["response"]["usage"]["input_tokens"], 1);
}

#[test]
fn encoder_keeps_interleaved_calls_apart() {
    let out = encode(
        None,
        &[],
        vec![
            call(0, "call_a", "f"),
            call(1, "call_b", "g"),
            args(0, r#"{"a":"#),
            args(1, r#"{"b":2}"#),
            args(0, "1}"),
            end(1),
            end(0),
            finish(FinishReason::ToolUse),
        ],
    )
    .unwrap();
    sdk_rebuilds_the_final_response(&out);
    let last: Value = serde_json::from_str(&out.last().unwrap().data).unwrap();
    let output = &last["response"]["output"];
    assert_eq!(output[0]["arguments"], r#"{"a":1}"#);
    assert_eq!(output[1]["arguments"], r#"{"b":2}"#);
}

#[test]
fn encoder_refuses_truncation_and_misfits() {
    let error = encode(None, &[], vec![start(), text(0, "partial")]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    let error = encode(None, &[], vec![]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    for events in [
        vec![text(0, "x"), args(0, "{}")],
        vec![text(0, "x"), thinking(0, "y")],
        vec![call(0, "c", "f"), call(0, "c", "f")],
        vec![args(5, "{}")],
    ] {
        let error = encode(None, &[], events.clone()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UpstreamProtocol, "{events:?}");
    }
}

#[test]
fn encoder_echoes_the_request() {
    let request: ResponsesRequest =
        parse_json(&fixture("responses", "requests/codex_turn.json")).unwrap();
    let mut encoder = StreamEncoder::new("resp_e", "gpt-5-codex", 1, None).echo(&request);
    let mut out = encoder.push(finish(FinishReason::Stop)).unwrap();
    out.extend(encoder.finish().unwrap());
    assert_eq!(encoder.next_sequence_number(), 3);
    let last: Value = serde_json::from_str(&out[2].data).unwrap();
    let response = &last["response"];
    assert_eq!(response["tools"].as_array().unwrap().len(), 4);
    assert_eq!(
        response["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(response["store"], false);
    assert_eq!(
        response["prompt_cache_key"],
        request.prompt_cache_key.unwrap()
    );
    assert!(encoder.finish().unwrap().is_empty());
}

#[test]
fn a_resumed_encoder_goes_on_with_the_clients_numbers_and_item_ids() {
    let mut encoder = StreamEncoder::new("resp_1", "m", 0, None);
    for event in [start(), text(0, "Hello ")] {
        encoder.push(event).unwrap();
    }
    let ids = std::collections::HashMap::from([(0, "msg_from_upstream".to_owned())]);
    encoder.resume(100, &ids);
    let out = encoder.push(text(0, "world")).unwrap();
    let delta: Value = serde_json::from_str(&out[0].data).unwrap();
    assert_eq!(delta["sequence_number"], 100, "{delta}");
    assert_eq!(delta["item_id"], "msg_from_upstream", "{delta}");
    assert_eq!(encoder.next_sequence_number(), 101);
}
