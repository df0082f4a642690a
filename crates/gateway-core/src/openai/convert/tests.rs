//! Round trips of every OpenAI fixture through the conversation (with a snapshot of the neutral
//! form), encoding from conversations no Chat client wrote, the chunk encoder against the chunks
//! `antigravity-service` emits today, and the chunk decoder.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::{
    ErrorKind,
    conversation::{self as conv, Event, Part},
    openai::parse_json,
    test_support::{
        args, call, collect, finish, fixture_path, run_ok, same_json, sse_events, survives_serde,
        text, thinking, usage,
    },
};

#[test]
fn requests_round_trip() {
    insta::glob!(
        "../../../test_data/openai",
        "{requests,convert/requests}/*.json",
        |path| {
            let bytes = std::fs::read(path).unwrap();
            let request: ChatRequest = parse_json(&bytes).unwrap();
            let conversation = request_to_conversation(request.clone()).unwrap();
            insta::assert_json_snapshot!(conversation);
            // The neutral form survives its own serde round trip.
            survives_serde(&conversation);
            let again = request_from_conversation(&conversation);
            same_json(&again, &bytes);
            assert_eq!(again, request);
        }
    );
}

#[test]
fn responses_round_trip() {
    insta::glob!(
        "../../../test_data/openai",
        "{responses,convert/responses}/*.json",
        |path| {
            let bytes = std::fs::read(path).unwrap();
            let completion: ChatCompletion = parse_json(&bytes).unwrap();
            let response = response_to_conversation(completion.clone());
            insta::assert_json_snapshot!(response);
            survives_serde(&response);
            let again = response_from_conversation(&response, &completion.model);
            same_json(&again, &bytes);
            assert_eq!(again, completion);
        }
    );
}

#[test]
fn decoding_finds_what_other_protocols_need() {
    let bytes =
        include_bytes!("../../../test_data/openai/convert/requests/signatures_and_shapes.json");
    let request = request_to_conversation(parse_json(bytes).unwrap()).unwrap();
    let assistant = &request.messages[2];
    assert_eq!(
        assistant.parts[0],
        Part::thinking("Plan the read.", Some("sig-anthropic-1".to_owned()))
    );
    assert!(
        matches!(&assistant.parts[1], Part::RedactedThinking { data, .. } if data == "opaque-bytes")
    );
    let Part::ToolCall { id, signature, .. } = &assistant.parts[3] else {
        panic!("tool call expected: {:?}", assistant.parts[3]);
    };
    assert_eq!(
        (id.as_str(), signature.as_deref()),
        ("call_g", Some("gemini-sig"))
    );
    // The result learns its tool's name from the call.
    let Part::ToolResult { name, .. } = &request.messages[4].parts[0] else {
        panic!("tool result expected");
    };
    assert_eq!(name.as_deref(), Some("read"));
    let Part::Text { cache, .. } = &request.messages[0].parts[0] else {
        panic!("text expected");
    };
    assert_eq!(cache.as_ref().and_then(|c| c.ttl.as_deref()), Some("1h"));
    assert_eq!(request.generation.max_tokens, Some(2000));
    assert_eq!(
        request.reasoning.as_ref().and_then(|r| r.effort),
        Some(conv::Effort::Xhigh)
    );
    assert_eq!(
        request.tool_choice,
        Some(conv::ToolChoice::Tool("apply_patch".to_owned()))
    );
    assert!(request.stream && !request.stream_usage);
}

/// A conversation from another protocol: no hints, so Chat's plain spellings.
fn foreign() -> conv::Request {
    let mut cached = Part::text("Cached instructions.");
    if let Part::Text { cache, .. } = &mut cached {
        *cache = Some(conv::CacheHint::default());
    }
    conv::Request {
        model: "gpt-4o".to_owned(),
        system: vec![cached, Part::text("Second block.")],
        messages: vec![
            conv::Message::new(conv::Role::User, vec![Part::text("Weather?")]),
            conv::Message::new(
                conv::Role::Assistant,
                vec![
                    Part::thinking("Two calls.", Some("sig".to_owned())),
                    Part::RedactedThinking {
                        data: "x".to_owned(),
                        extra: conv::Extras::default(),
                    },
                    Part::tool_call("call_1", "weather", r#"{"city":"Paris"}"#),
                    Part::ToolCall {
                        id: "call_2".to_owned(),
                        name: "time".to_owned(),
                        arguments: "{}".to_owned(),
                        signature: Some("gemini".to_owned()),
                        extra: conv::Extras::default(),
                    },
                ],
            ),
            conv::Message::new(
                conv::Role::User,
                vec![
                    Part::tool_result("call_1", vec![Part::text("12C")]),
                    Part::ToolResult {
                        id: "call_2".to_owned(),
                        name: Some("time".to_owned()),
                        parts: vec![Part::text("boom")],
                        is_error: true,
                        extra: conv::Extras::default(),
                    },
                    Part::text("Thanks."),
                    Part::Image {
                        source: conv::Media::Base64 {
                            mime: "image/png".to_owned(),
                            data: "AAAA".to_owned(),
                        },
                        detail: None,
                        extra: conv::Extras::default(),
                    },
                ],
            ),
        ],
        tools: vec![conv::Tool {
            name: "weather".to_owned(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
            kind: conv::ToolKind::Function,
            extra: conv::Extras::new(
                conv::Protocol::Anthropic,
                serde_json::Map::from_iter([(
                    "cache_control".to_owned(),
                    json!({"type": "ephemeral"}),
                )]),
                serde_json::Map::new(),
            ),
        }],
        tool_choice: Some(conv::ToolChoice::Tool("weather".to_owned())),
        generation: conv::Generation {
            max_tokens: Some(1024),
            stop: vec!["END".to_owned()],
            ..conv::Generation::default()
        },
        reasoning: Some(conv::Reasoning {
            budget_tokens: Some(2048),
            mode: Some(conv::ReasoningMode::Enabled),
            ..conv::Reasoning::default()
        }),
        stream: true,
        stream_usage: true,
        ..conv::Request::default()
    }
}

#[test]
fn encoding_a_foreign_conversation_uses_plain_chat() {
    let request = request_from_conversation(&foreign());
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": [
                    {"type": "text", "text": "Cached instructions."},
                    {"type": "text", "text": "Second block."}
                ]},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "reasoning_content": "Two calls.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "boom"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Thanks."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "stop": ["END"],
            "max_completion_tokens": 1024
        })
    );
}

#[test]
fn changed_values_are_encoded_fresh_not_from_hints() {
    let bytes = include_bytes!("../../../test_data/openai/requests/reasoning_history.json");
    let mut request = request_to_conversation(parse_json(bytes).unwrap()).unwrap();
    request.generation.stop = vec!["a".to_owned(), "b".to_owned()];
    request.tool_choice = Some(conv::ToolChoice::Required);
    request.response_format = Some(conv::ResponseFormat::Text);
    let again = serde_json::to_value(request_from_conversation(&request)).unwrap();
    assert_eq!(again["stop"], json!(["a", "b"]));
    assert_eq!(again["tool_choice"], json!("required"));
    assert_eq!(again["response_format"], json!({"type": "text"}));

    // The legacy spelling of the limit stays even when the limit changes.
    let bytes = include_bytes!("../../../test_data/openai/requests/images_and_parts.json");
    let mut request = request_to_conversation(parse_json(bytes).unwrap()).unwrap();
    request.generation.max_tokens = Some(7);
    let again = request_from_conversation(&request);
    assert_eq!(
        (again.max_tokens, again.max_completion_tokens),
        (Some(7), None)
    );
}

#[test]
fn invalid_requests_are_400s_naming_the_field() {
    // (request, param, words the message must contain)
    let cases = [
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
            "tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "function", "content": "x"}]}),
            "messages[1].name",
            "without name",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "function_call": {"arguments": "{}"}}]}),
            "messages[0].function_call.name",
            "function_call",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "file", "file": {"filename": "a.pdf"}}]}]}),
            "messages[0].content[1].file",
            "file_data",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": {"type": "function"}}),
            "tool_choice.function",
            "function.name",
        ),
        (
            json!({"model": "m", "messages": [], "tool_choice": {"type": "hologram"}}),
            "tool_choice.type",
            "hologram",
        ),
    ];
    for (body, param, needle) in cases {
        let request: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        let error = request_to_conversation(request).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{body}");
        assert_eq!(error.status().as_u16(), 400, "{body}");
        assert_eq!(error.param(), Some(param), "{body}");
        assert!(
            error.message().contains(needle),
            "{body}: {}",
            error.message()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk encoder
// ---------------------------------------------------------------------------------------------

fn start() -> Event {
    crate::test_support::start("upstream-id", "upstream-model")
}

fn encode(
    id: &str,
    model: &str,
    include_usage: bool,
    events: Vec<Event>,
) -> Result<Vec<ChatCompletionChunk>, GatewayError> {
    let mut encoder = ChunkEncoder::new(id, 1_700_000_000, model, include_usage);
    run_ok(
        &mut encoder,
        events,
        ChunkEncoder::push,
        ChunkEncoder::finish,
    )
}

/// What a client reads from each chunk: its delta and finish reason, or its usage.
fn deltas(chunks: &[ChatCompletionChunk]) -> Value {
    Value::Array(
        chunks
            .iter()
            .map(|chunk| match chunk.choices.as_slice() {
                [] => json!({"usage": chunk.usage}),
                [choice] => {
                    let mut value = json!({"delta": choice.delta});
                    if let Some(reason) = choice.finish_reason {
                        value["finish"] = json!(reason);
                    }
                    value
                }
                _ => panic!("one choice per chunk"),
            })
            .collect(),
    )
}

fn check(events: Vec<Event>, include_usage: bool, expected: Value) {
    let chunks = encode("chatcmpl-x", "client-model", include_usage, events).unwrap();
    for chunk in &chunks {
        assert_eq!(
            (
                chunk.id.as_str(),
                chunk.created,
                chunk.model.as_str(),
                chunk.object.as_str()
            ),
            (
                "chatcmpl-x",
                1_700_000_000,
                "client-model",
                "chat.completion.chunk"
            )
        );
    }
    assert_eq!(deltas(&chunks), expected);
}

const ROLE: &str = r#"{"delta": {"role": "assistant", "content": ""}}"#;

fn role() -> Value {
    serde_json::from_str(ROLE).unwrap()
}

#[test]
fn encoder_text_stream() {
    check(
        vec![
            start(),
            text(0, "Hel"),
            text(0, ""),
            text(0, "lo"),
            Event::BlockEnd { index: 0 },
            finish(conv::FinishReason::Stop),
        ],
        false,
        json!([
            role(),
            {"delta": {"content": "Hel"}},
            {"delta": {"content": "lo"}},
            {"delta": {}, "finish": "stop"}
        ]),
    );
}

#[test]
fn encoder_thinking_then_text_drops_signatures_and_redactions() {
    check(
        vec![
            start(),
            thinking(0, "Let me "),
            thinking(0, "think."),
            Event::Signature {
                index: 0,
                signature: "sig".to_owned(),
            },
            Event::BlockEnd { index: 0 },
            Event::RedactedThinking {
                index: 1,
                data: "opaque".to_owned(),
            },
            text(2, "Answer."),
            finish(conv::FinishReason::Stop),
        ],
        false,
        json!([
            role(),
            {"delta": {"reasoning_content": "Let me "}},
            {"delta": {"reasoning_content": "think."}},
            {"delta": {"content": "Answer."}},
            {"delta": {}, "finish": "stop"}
        ]),
    );
}

#[test]
fn encoder_two_tool_calls_with_argument_deltas() {
    check(
        vec![
            start(),
            text(0, "Calling."),
            call(1, "call_a", "get_weather"),
            args(1, r#"{"city":"#),
            args(1, ""),
            args(1, r#""Paris"}"#),
            Event::Signature {
                index: 1,
                signature: "gemini".to_owned(),
            },
            Event::BlockEnd { index: 1 },
            call(2, "", "get_time"),
            Event::BlockEnd { index: 2 },
            finish(conv::FinishReason::Stop),
        ],
        false,
        json!([
            role(),
            {"delta": {"content": "Calling."}},
            {"delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}},
            {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}},
            {"delta": {"tool_calls": [{"index": 1, "id": "call_x_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}},
            {"delta": {}, "finish": "tool_calls"}
        ]),
    );
}

#[test]
fn encoder_usage_chunk_only_when_asked() {
    let events = || {
        vec![
            start(),
            usage(1, 0, 0, 0),
            text(0, "Hi"),
            finish(conv::FinishReason::Stop),
            usage(12, 5, 2, 3),
        ]
    };
    check(
        events(),
        true,
        json!([
            role(),
            {"delta": {"content": "Hi"}},
            {"delta": {}, "finish": "stop"},
            {"usage": {
                "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2}
            }}
        ]),
    );
    check(
        events(),
        false,
        json!([role(), {"delta": {"content": "Hi"}}, {"delta": {}, "finish": "stop"}]),
    );
    // Asked for but never reported: zero counts, as the gateway always sent.
    check(
        vec![text(0, "Hi"), finish(conv::FinishReason::Stop)],
        true,
        json!([
            role(),
            {"delta": {"content": "Hi"}},
            {"delta": {}, "finish": "stop"},
            {"usage": {
                "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}
            }}
        ]),
    );
}

#[test]
fn encoder_finish_mapping() {
    use conv::FinishReason as R;
    // (reason, a tool call was made, Chat's reason)
    let cases = [
        (R::Stop, false, "stop"),
        (R::StopSequence(Some("END".to_owned())), false, "stop"),
        (R::Length, false, "length"),
        (R::ContentFilter, false, "content_filter"),
        (R::ToolUse, false, "tool_calls"),
        (R::Other("OTHER".to_owned()), false, "stop"),
        (R::Other("function_call".to_owned()), false, "function_call"),
        (R::Stop, true, "tool_calls"),
        (R::Other("OTHER".to_owned()), true, "tool_calls"),
        (R::Length, true, "length"),
        (R::ContentFilter, true, "content_filter"),
    ];
    for (reason, with_call, expected) in cases {
        let mut events = vec![text(0, "x")];
        if with_call {
            events.push(call(1, "c", "f"));
        }
        events.push(finish(reason.clone()));
        let chunks = encode("chatcmpl-x", "m", false, events).unwrap();
        let finishes: Vec<Value> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.finish_reason)
            .map(|r| json!(r))
            .collect();
        assert_eq!(
            finishes,
            vec![json!(expected)],
            "{reason:?} with call: {with_call}"
        );
    }
}

#[test]
fn encoder_sends_exactly_one_finish() {
    check(
        vec![
            text(0, "x"),
            finish(conv::FinishReason::Length),
            finish(conv::FinishReason::Stop),
        ],
        false,
        json!([role(), {"delta": {"content": "x"}}, {"delta": {}, "finish": "length"}]),
    );
}

#[test]
fn encoder_refuses_truncation_and_orphan_arguments() {
    let error = encode("chatcmpl-x", "m", true, vec![start(), text(0, "partial")]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    let error = encode("chatcmpl-x", "m", true, vec![]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    let error = encode("chatcmpl-x", "m", false, vec![text(0, "x"), args(0, "{}")]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
}

/// The chunks `antigravity-service`'s `StreamTranslator` emits today for its golden streams,
/// read from its snapshots, against the encoder fed the same response as events.
#[test]
fn encoder_matches_the_antigravity_translator() {
    let cases = [
        (
            "thinking_then_text",
            vec![
                thinking(0, "The user greets me. "),
                thinking(0, "I should greet back."),
                Event::Signature {
                    index: 0,
                    signature: "sig-thinking-1".to_owned(),
                },
                Event::BlockEnd { index: 0 },
                text(1, "Hi there!"),
                usage(5, 12, 9, 0),
                finish(conv::FinishReason::Stop),
            ],
        ),
        (
            "parallel_function_calls",
            vec![
                text(0, "Checking both cities."),
                Event::BlockEnd { index: 0 },
                call(1, "", "get_weather"),
                args(1, r#"{"city":"Paris"}"#),
                Event::BlockEnd { index: 1 },
                call(2, "", "get_weather"),
                args(2, r#"{"city":"東京"}"#),
                Event::BlockEnd { index: 2 },
                usage(40, 20, 0, 0),
                finish(conv::FinishReason::Stop),
            ],
        ),
        (
            "claude_signature_on_its_own_part",
            vec![
                thinking(0, "Let me look at the directory."),
                Event::Signature {
                    index: 0,
                    signature: "EqQBCkYIBxgCKkDclaude".to_owned(),
                },
                Event::BlockEnd { index: 0 },
                call(1, "toolu_01", "get_weather"),
                args(1, r#"{"city":"Oslo"}"#),
                Event::BlockEnd { index: 1 },
                usage(50, 35, 15, 0),
                finish(conv::FinishReason::Stop),
            ],
        ),
        (
            "usage_with_thoughts_and_cache",
            vec![
                thinking(0, "Recall the cached context."),
                text(1, "Done."),
                usage(12000, 42, 40, 11000),
                finish(conv::FinishReason::Stop),
            ],
        ),
        (
            "plain_text",
            vec![
                text(0, "Hello"),
                text(0, ", world!"),
                usage(8, 3, 0, 0),
                finish(conv::FinishReason::Stop),
            ],
        ),
        (
            "max_tokens",
            vec![
                text(0, "This answer is cut"),
                text(0, " off here"),
                usage(10, 16, 0, 0),
                finish(conv::FinishReason::Length),
            ],
        ),
        (
            "safety",
            vec![
                text(0, "I"),
                usage(10, 1, 0, 0),
                finish(conv::FinishReason::ContentFilter),
            ],
        ),
        (
            "finish_other_reason",
            vec![
                text(0, "Stopped for another reason"),
                finish(conv::FinishReason::Other("OTHER".to_owned())),
            ],
        ),
    ];
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../antigravity-service/src/response/snapshots");
    for (name, events) in cases {
        let path = dir.join(format!(
            "antigravity_service__response__tests__golden_streams@{name}.snap"
        ));
        let snapshot = std::fs::read_to_string(&path).unwrap();
        // An insta file: a `---` header block, then the JSON.
        let body = snapshot.splitn(3, "---\n").nth(2).unwrap();
        let expected: Value = serde_json::from_str(body).unwrap();
        let chunks = encode("chatcmpl-test", "gemini-3-pro", true, events).unwrap();
        assert_eq!(serde_json::to_value(&chunks).unwrap(), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk decoder
// ---------------------------------------------------------------------------------------------

fn read_chunks(path: &Path) -> Vec<ChatCompletionChunk> {
    sse_events(&[&std::fs::read(path).unwrap()])
        .iter()
        .filter(|event| !event.is_done())
        .map(|event| parse_json(event.data.as_bytes()).unwrap())
        .collect()
}

fn decode(chunks: &[ChatCompletionChunk]) -> Vec<Event> {
    let push = |decoder: &mut ChunkDecoder, chunk| Ok(decoder.push(chunk));
    run_ok(
        &mut ChunkDecoder::new(),
        chunks.iter().cloned(),
        push,
        ChunkDecoder::finish,
    )
    .unwrap()
}

/// What a client would assemble from chunks: the text, reasoning, refusal, calls, finish
/// reasons and usage, however they were split.
fn content(chunks: &[ChatCompletionChunk]) -> Value {
    let (mut text, mut reasoning, mut refusal) = (String::new(), String::new(), String::new());
    let mut calls: Vec<Value> = Vec::new();
    let mut finishes = Vec::new();
    let mut usage = Value::Null;
    for chunk in chunks {
        if let Some(u) = &chunk.usage {
            usage = json!(u);
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            text.push_str(delta.content.as_deref().unwrap_or_default());
            reasoning.push_str(delta.reasoning_content.as_deref().unwrap_or_default());
            refusal.push_str(delta.refusal.as_deref().unwrap_or_default());
            for call in delta.tool_calls.iter().flatten() {
                let at = call.index as usize;
                if calls.len() <= at {
                    calls.resize(at + 1, json!({"id": "", "name": "", "arguments": ""}));
                }
                let slot = &mut calls[at];
                if let Some(id) = &call.id {
                    slot["id"] = json!(id);
                }
                if let Some(function) = &call.function {
                    if let Some(name) = &function.name {
                        slot["name"] = json!(name);
                    }
                    let so_far = slot["arguments"].as_str().unwrap().to_owned();
                    slot["arguments"] =
                        json!(so_far + function.arguments.as_deref().unwrap_or_default());
                }
            }
            finishes.extend(choice.finish_reason.map(|r| json!(r)));
        }
    }
    json!({"text": text, "reasoning": reasoning, "refusal": refusal, "calls": calls,
           "finishes": finishes, "usage": usage})
}

#[test]
fn chunk_streams_decode_and_encode_again() {
    insta::glob!(
        "../../../test_data/openai",
        "{streams,convert/streams}/*.sse",
        |path| {
            let chunks = read_chunks(path);
            let events = decode(&chunks);
            insta::assert_json_snapshot!(events);

            let first = &chunks[0];
            let include_usage = chunks.iter().any(|c| c.usage.is_some());
            let mut encoder = ChunkEncoder::new(
                first.id.clone(),
                first.created,
                first.model.clone(),
                include_usage,
            );
            let again = run_ok(
                &mut encoder,
                events.clone(),
                ChunkEncoder::push,
                ChunkEncoder::finish,
            )
            .unwrap();
            assert_eq!(content(&again), content(&chunks));
            assert_eq!(decode(&again), events);

            // Collected, the events are the whole response Chat would have sent.
            let response = collect(first.created, events).unwrap();
            assert_eq!(
                (response.id.as_str(), response.model.as_str()),
                (first.id.as_str(), first.model.as_str())
            );
            let whole = response_from_conversation(&response, &first.model);
            let message = &whole.choices[0].message;
            let streamed = content(&chunks);
            assert_eq!(
                message.content.as_deref().unwrap_or_default(),
                streamed["text"]
            );
            assert_eq!(
                message.reasoning_content.as_deref().unwrap_or_default(),
                streamed["reasoning"]
            );
            assert_eq!(json!(whole.usage), streamed["usage"]);
        }
    );
}

#[test]
fn decoder_reports_truncation() {
    let chunks = read_chunks(&fixture_path("openai", "streams/tool_call_stream.sse"));
    let mut decoder = ChunkDecoder::new();
    for chunk in chunks
        .into_iter()
        .filter(|c| !c.choices.iter().any(|c| c.finish_reason.is_some()))
    {
        decoder.push(chunk);
    }
    assert_eq!(decoder.finish().unwrap_err().kind(), ErrorKind::Truncated);
}

#[test]
fn chunk_content_for_the_commit_point() {
    let chunk = |delta: Value, finish: Value, usage: Value| -> ChatCompletionChunk {
        let choices = if delta.is_null() {
            json!([])
        } else {
            json!([{"index": 0, "delta": delta, "finish_reason": finish}])
        };
        serde_json::from_value(
            json!({"id": "c", "object": "chat.completion.chunk", "created": 0,
            "model": "m", "choices": choices, "usage": usage}),
        )
        .unwrap()
    };
    let usage = json!({"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1});
    let cases = [
        (
            chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
                Value::Null,
            ),
            false,
        ),
        (
            chunk(json!({"reasoning_content": ""}), Value::Null, Value::Null),
            false,
        ),
        (
            chunk(json!({"tool_calls": []}), Value::Null, Value::Null),
            false,
        ),
        (
            chunk(json!({"content": "x"}), Value::Null, Value::Null),
            true,
        ),
        (
            chunk(json!({"reasoning_content": "x"}), Value::Null, Value::Null),
            true,
        ),
        (
            chunk(json!({"refusal": "x"}), Value::Null, Value::Null),
            true,
        ),
        (
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "c"}]}),
                Value::Null,
                Value::Null,
            ),
            true,
        ),
        (chunk(json!({}), json!("stop"), Value::Null), true),
        (chunk(Value::Null, Value::Null, usage), true),
    ];
    for (chunk, expected) in cases {
        assert_eq!(chunk_is_content(&chunk), expected, "{chunk:?}");
    }
}
