//! Every Anthropic fixture through the wire types and the conversation and back (with a
//! snapshot of the neutral form), streams decoded whole and split at every byte, the stream
//! encoder against the decoder, and conversations no Anthropic client wrote.

use serde_json::{Value, json};

use super::*;
use crate::{
    ErrorKind, GatewayError,
    conversation::{self as conv, Event, Part},
    sse,
    test_support::{
        args, call, collect, error_json, run, run_ok, same_at_every_split, same_json_as,
        sse_events, strip_nulls_and_whole_floats, survives_serde, text,
    },
};

/// The JSON of `original` again, where `1` and `1.0` mean the same (Anthropic's SDKs send
/// whole floats as integers).
fn same_json(again: &impl serde::Serialize, original: &[u8]) {
    same_json_as(again, original, strip_nulls_and_whole_floats);
}

fn fixture(name: &str) -> Vec<u8> {
    crate::test_support::fixture("anthropic", name)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn requests_round_trip() {
    insta::glob!(
        "../../test_data/anthropic",
        "{requests/*,count_tokens/request}.json",
        |path| {
            let bytes = std::fs::read(path).unwrap();
            let request: MessagesRequest = parse_json(&bytes).unwrap();
            // The wire types alone keep everything.
            same_json(&request, &bytes);
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
fn claude_code_request_maps_to_the_model() {
    let bytes = fixture("requests/claude_code_first_turn.json");
    let request = request_to_conversation(parse_json(&bytes).unwrap()).unwrap();
    assert_eq!(request.generation.max_tokens, Some(64000));
    assert!(request.stream && request.stream_usage);
    assert_eq!(request.system.len(), 3);
    let Part::Text { cache, .. } = &request.system[2] else {
        panic!("text expected");
    };
    assert_eq!(cache.as_ref().and_then(|c| c.ttl.as_deref()), Some("1h"));
    let reasoning = request.reasoning.clone().unwrap();
    assert_eq!(reasoning.mode, Some(conv::ReasoningMode::Adaptive));
    assert_eq!(reasoning.effort, Some(conv::Effort::High));
    assert_eq!(request.tools.len(), 4);
    assert_eq!(request.tools[1].name, "Read");
    assert_eq!(
        request.tools[1].parameters["required"],
        json!(["file_path"])
    );
    assert!(request.user.as_deref().unwrap().starts_with("user_3f1c"));
    let fields = request.extra.fields_for(conv::Protocol::Anthropic).unwrap();
    assert_eq!(
        fields["context_management"]["edits"][0]["type"],
        "clear_thinking_20251015"
    );
    // Another protocol sees the system prompt, the tools and the cache breakpoints.
    let chat = crate::openai::request_from_conversation(&request);
    let chat = serde_json::to_value(chat).unwrap();
    assert_eq!(chat["messages"][0]["role"], "system");
    assert_eq!(chat["tools"][3]["function"]["name"], "TodoWrite");
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["max_completion_tokens"], 64000);
    assert!(chat.get("context_management").is_none());
}

#[test]
fn tool_turns_map_to_the_model() {
    let bytes = fixture("requests/tool_turns_thinking_image.json");
    let request = request_to_conversation(parse_json(&bytes).unwrap()).unwrap();
    assert_eq!(request.parallel_tool_calls, Some(false));
    assert_eq!(request.tool_choice, Some(conv::ToolChoice::Auto));
    let reasoning = request.reasoning.clone().unwrap();
    assert_eq!(
        (reasoning.mode, reasoning.budget_tokens),
        (Some(conv::ReasoningMode::Enabled), Some(10000))
    );
    assert_eq!(request.generation.stop, vec!["\n\nHuman:".to_owned()]);
    assert_eq!(request.generation.top_k, Some(40));
    assert!(matches!(
        &request.messages[0].parts[0],
        Part::Image { source: conv::Media::Base64 { mime, .. }, .. } if mime == "image/png"
    ));

    let assistant = &request.messages[1];
    assert!(matches!(
        &assistant.parts[0],
        Part::Thinking { signature: Some(s), .. } if s.starts_with("EqQB")
    ));
    assert!(matches!(&assistant.parts[1], Part::RedactedThinking { .. }));
    let Part::ToolCall {
        id,
        name,
        arguments,
        ..
    } = &assistant.parts[3]
    else {
        panic!("tool call expected");
    };
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01A09q90qw90lq917835lq9", "get_weather")
    );
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "c"}));

    // Tool results stay in the user message, in order with its text, and learn their names.
    let results = &request.messages[2].parts;
    assert_eq!(results.len(), 3);
    let Part::ToolResult {
        name,
        parts,
        is_error,
        ..
    } = &results[1]
    else {
        panic!("tool result expected");
    };
    assert_eq!(name.as_deref(), Some("take_screenshot"));
    assert!(!is_error);
    assert!(matches!(
        &parts[1],
        Part::Image {
            source: conv::Media::Url { .. },
            ..
        }
    ));
    assert_eq!(results[2], Part::text("Also read the notes file."));
    let Part::ToolResult { is_error, .. } = &request.messages[4].parts[0] else {
        panic!("tool result expected");
    };
    assert!(is_error);

    // Chat gets one tool message per result, then the text.
    let chat = serde_json::to_value(crate::openai::request_from_conversation(&request)).unwrap();
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "user",
            "assistant",
            "tool"
        ]
    );
}

#[test]
fn betas_and_unknown_blocks_ride_along() {
    let bytes = fixture("requests/betas_documents_server_tools.json");
    let request: MessagesRequest = parse_json(&bytes).unwrap();
    let Content::Blocks(blocks) = &request.messages[1].content else {
        panic!("blocks expected");
    };
    assert!(matches!(&blocks[5], ContentBlock::Other(map) if map["type"] == "search_result"));
    assert!(
        matches!(&request.tools.as_ref().unwrap()[0], Tool::Server(map) if map["name"] == "web_search")
    );
    let conversation = request_to_conversation(request).unwrap();
    // Blocks without a neutral form are invisible to other protocols.
    let documents = &conversation.messages[1].parts;
    assert_eq!(documents.len(), 5);
    let Part::Document { source, name, .. } = &documents[1] else {
        panic!("document expected");
    };
    assert_eq!(name.as_deref(), Some("notes.txt"));
    assert_eq!(
        source,
        &conv::Media::Base64 {
            mime: "text/plain".to_owned(),
            data: "UGxhaW4gbm90ZXM6IGNhZsOpIOKAlCBvay4=".to_owned(),
        }
    );
    assert!(matches!(
        &documents[3],
        Part::Image {
            source: conv::Media::FileId { .. },
            ..
        }
    ));
    assert_eq!(conversation.messages[2].parts.len(), 3);
    assert_eq!(conversation.tools.len(), 2);
    assert_eq!(
        conversation.tool_choice,
        Some(conv::ToolChoice::Tool("calc".to_owned()))
    );
    let reasoning = conversation.reasoning.clone().unwrap();
    assert_eq!(reasoning.effort, Some(conv::Effort::Xhigh));
    assert!(matches!(
        &conversation.response_format,
        Some(conv::ResponseFormat::JsonSchema { schema, .. }) if schema["required"] == json!(["summary"])
    ));
}

#[test]
fn changed_values_are_encoded_fresh_not_from_hints() {
    let bytes = fixture("requests/betas_documents_server_tools.json");
    let mut request = request_to_conversation(parse_json(&bytes).unwrap()).unwrap();
    request.reasoning = Some(conv::Reasoning {
        effort: Some(conv::Effort::Low),
        mode: Some(conv::ReasoningMode::Enabled),
        budget_tokens: Some(2048),
        ..conv::Reasoning::default()
    });
    request.tool_choice = Some(conv::ToolChoice::Required);
    request.generation.max_tokens = Some(100);
    let again = serde_json::to_value(request_from_conversation(&request)).unwrap();
    assert_eq!(
        again["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(again["tool_choice"], json!({"type": "any"}));
    assert_eq!(again["output_config"]["effort"], "low");
    assert_eq!(again["max_tokens"], 100);
    // What the model does not hold still comes back.
    assert_eq!(again["tools"][0]["type"], "web_search_20250305");
    assert_eq!(again["container"], "container_011CQ");
}

#[test]
fn malformed_known_blocks_are_400s_naming_the_field() {
    // (body, expected param, a word the message must contain)
    let cases = [
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "name": "x", "input": {}}]}]}),
            Some("messages[0].content[1]"),
            "missing field `id`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA"}}]}]}),
            Some("messages[0].content[0]"),
            "media_type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}),
            Some("messages[0].role"),
            "unknown variant `system`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            Some("messages[0].content"),
            "a string or an array of content blocks",
        ),
        (
            json!({"model": "m", "messages": [], "tools": [{"description": "no name"}]}),
            Some("tools[0]"),
            "missing field `name`",
        ),
    ];
    for (body, param, needle) in cases {
        let bytes = serde_json::to_vec(&body).unwrap();
        let error = parse_json::<MessagesRequest>(&bytes).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{body}");
        assert_eq!(error.status().as_u16(), 400, "{body}");
        assert_eq!(error.param(), param, "{body}: {error}");
        assert!(
            error.message().contains(needle),
            "{body}: {}",
            error.message()
        );
    }

    let request: MessagesRequest = serde_json::from_value(
        json!({"model": "m", "messages": [], "tool_choice": {"type": "tool"}}),
    )
    .unwrap();
    let error = request_to_conversation(request).unwrap_err();
    assert_eq!(error.status().as_u16(), 400);
    assert_eq!(error.param(), Some("tool_choice.name"));
}

#[test]
fn unknown_types_never_fail() {
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "hologram_2026", "payload": [1, 2]},
            {"type": "image", "source": {"type": "telepathy", "thought": "cat"}},
            {"no_type": true}
        ]}],
        "tools": [{"type": "memory_20250818", "name": "memory"}],
        "tool_choice": {"type": "sometimes"},
        "thinking": {"type": "deep", "budget_tokens": 5},
        "output_config": {"effort": "ludicrous", "format": {"type": "regex", "pattern": "a+"}},
        "brand_new_option": {"x": 1}
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let request: MessagesRequest = parse_json(&bytes).unwrap();
    let conversation = request_to_conversation(request.clone()).unwrap();
    assert!(conversation.messages[0].parts.is_empty());
    assert!(conversation.tools.is_empty());
    assert_eq!(conversation.tool_choice, None);
    assert_eq!(conversation.reasoning, None);
    assert_eq!(conversation.response_format, None);
    assert_eq!(request_from_conversation(&conversation), request);
    same_json(&request_from_conversation(&conversation), &bytes);
}

#[test]
fn count_tokens_parses_both_ways() {
    let bytes = fixture("count_tokens/response.json");
    let answer: CountTokensResponse = parse_json(&bytes).unwrap();
    assert_eq!(answer, CountTokensResponse::new(2095));
    same_json(&answer, &bytes);
    let request: CountTokensRequest = parse_json(&fixture("count_tokens/request.json")).unwrap();
    assert_eq!(request.max_tokens, None);
    let conversation = request_to_conversation(request).unwrap();
    assert_eq!(conversation.tool_choice, Some(conv::ToolChoice::None));
}

// ---------------------------------------------------------------------------------------------
// Conversations from other protocols
// ---------------------------------------------------------------------------------------------

fn cached_text(text: &str, ttl: Option<&str>) -> Part {
    Part::Text {
        text: text.to_owned(),
        signature: Some("gemini-text-sig".to_owned()),
        cache: Some(conv::CacheHint {
            ttl: ttl.map(str::to_owned),
        }),
        extra: conv::Extras::default(),
    }
}

/// A conversation as an OpenAI Chat client would leave it: system and tool messages, unsigned
/// reasoning, a call without arguments, arguments that are not JSON.
fn foreign() -> conv::Request {
    conv::Request {
        model: "claude-sonnet-4-5".to_owned(),
        system: vec![cached_text("Top-level.", Some("1h"))],
        messages: vec![
            conv::Message::new(conv::Role::System, vec![Part::text("Be brief.")]),
            conv::Message::new(
                conv::Role::User,
                vec![
                    Part::text("Weather?"),
                    Part::Audio {
                        data: "AAAA".to_owned(),
                        format: "wav".to_owned(),
                        extra: conv::Extras::default(),
                    },
                    Part::Document {
                        source: conv::Media::Base64 {
                            mime: "text/markdown".to_owned(),
                            data: "IyBUaXRsZQ==".to_owned(),
                        },
                        name: Some("a.md".to_owned()),
                        extra: conv::Extras::default(),
                    },
                ],
            ),
            conv::Message::new(
                conv::Role::Assistant,
                vec![
                    Part::thinking("Unsigned reasoning.", None),
                    Part::text(""),
                    Part::tool_call("call_1", "weather", r#"{"city":"Paris"}"#),
                    Part::tool_call("call_2", "time", ""),
                    Part::tool_call("call_3", "broken", r#"{"city": "Pa"#),
                ],
            ),
            conv::Message::new(
                conv::Role::Tool,
                vec![Part::tool_result("call_1", vec![Part::text("12C")])],
            ),
            conv::Message::new(
                conv::Role::Tool,
                vec![Part::ToolResult {
                    id: "call_2".to_owned(),
                    name: Some("time".to_owned()),
                    parts: vec![Part::text("boom")],
                    is_error: true,
                    extra: conv::Extras::default(),
                }],
            ),
            conv::Message::new(
                conv::Role::Tool,
                vec![Part::tool_result("call_3", Vec::new())],
            ),
            conv::Message::new(conv::Role::User, vec![Part::text("Thanks.")]),
            conv::Message::new(
                conv::Role::Assistant,
                vec![Part::thinking("Only unsigned thinking.", None)],
            ),
        ],
        tools: vec![
            conv::Tool {
                name: "weather".to_owned(),
                description: Some("Weather.".to_owned()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
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
        tool_choice: Some(conv::ToolChoice::Required),
        parallel_tool_calls: Some(false),
        generation: conv::Generation {
            max_tokens: Some(1024),
            temperature: Some(0.2),
            stop: vec!["END".to_owned()],
            seed: Some(7),
            ..conv::Generation::default()
        },
        reasoning: Some(conv::Reasoning {
            effort: Some(conv::Effort::Minimal),
            ..conv::Reasoning::default()
        }),
        response_format: Some(conv::ResponseFormat::JsonObject),
        stream: true,
        stream_usage: true,
        user: Some("end-user-1".to_owned()),
        metadata: Some(serde_json::Map::from_iter([(
            "openai_key".to_owned(),
            json!("v"),
        )])),
        extra: conv::Extras::default(),
    }
}

#[test]
fn encoding_a_foreign_conversation_uses_plain_anthropic() {
    let request = request_from_conversation(&foreign());
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [
                {"type": "text", "text": "Top-level.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "text", "text": "Be brief."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "document", "title": "a.md",
                     "source": {"type": "text", "media_type": "text/plain", "data": "# Title"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
                    {"type": "tool_use", "id": "call_3", "name": "broken",
                     "input": {"raw_arguments": "{\"city\": \"Pa"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "12C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "boom", "is_error": true},
                    {"type": "tool_result", "tool_use_id": "call_3"},
                    {"type": "text", "text": "Thanks."}
                ]}
            ],
            "tools": [
                {"name": "weather", "description": "Weather.",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                 "strict": true},
                {"name": "time", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "output_config": {"effort": "low"},
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "metadata": {"user_id": "end-user-1"},
            "stream": true
        })
    );
}

#[test]
fn reasoning_settings_from_other_protocols() {
    let with = |reasoning: conv::Reasoning| {
        let request = conv::Request {
            reasoning: Some(reasoning),
            ..conv::Request::default()
        };
        let encoded = serde_json::to_value(request_from_conversation(&request)).unwrap();
        (
            encoded["thinking"].clone(),
            encoded["output_config"].clone(),
        )
    };
    assert_eq!(
        with(conv::Reasoning {
            budget_tokens: Some(4096),
            ..conv::Reasoning::default()
        }),
        (
            json!({"type": "enabled", "budget_tokens": 4096}),
            Value::Null
        )
    );
    assert_eq!(
        with(conv::Reasoning {
            budget_tokens: Some(0),
            ..conv::Reasoning::default()
        }),
        (json!({"type": "disabled"}), Value::Null)
    );
    assert_eq!(
        with(conv::Reasoning {
            effort: Some(conv::Effort::None),
            ..conv::Reasoning::default()
        }),
        (json!({"type": "disabled"}), Value::Null)
    );
    assert_eq!(
        with(conv::Reasoning {
            effort: Some(conv::Effort::Xhigh),
            mode: Some(conv::ReasoningMode::Adaptive),
            ..conv::Reasoning::default()
        }),
        (json!({"type": "adaptive"}), json!({"effort": "xhigh"}))
    );
}

// ---------------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------------

#[test]
fn responses_round_trip() {
    insta::glob!("../../test_data/anthropic", "responses/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        let message: MessagesResponse = parse_json(&bytes).unwrap();
        same_json(&message, &bytes);
        let response = response_to_conversation(message.clone());
        insta::assert_json_snapshot!(response);
        survives_serde(&response);
        let again = response_from_conversation(&response, &message.model);
        same_json(&again, &bytes);
        assert_eq!(again, message);
    });
}

#[test]
fn response_usage_counts_the_whole_input() {
    let message: MessagesResponse = parse_json(&fixture("responses/text_cached.json")).unwrap();
    let usage = response_to_conversation(message).usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.output_tokens
        ),
        (12 + 1500 + 18000, 18000, 1500, 25)
    );
    let message: MessagesResponse =
        parse_json(&fixture("responses/thinking_tool_use.json")).unwrap();
    let response = response_to_conversation(message);
    assert_eq!(response.usage.as_ref().unwrap().reasoning_tokens, 40);
    assert_eq!(response.finish, Some(conv::FinishReason::ToolUse));
    assert!(matches!(
        &response.parts[3],
        Part::ToolCall { arguments, .. } if arguments == r#"{"city":"Paris","unit":"c"}"#
    ));
}

#[test]
fn encoding_a_foreign_response() {
    let response = conv::Response {
        id: "msg_gw1".to_owned(),
        model: "gemini-3-pro".to_owned(),
        created: 1_700_000_000,
        parts: vec![
            Part::thinking("Reasoning from a Chat upstream.", None),
            Part::Refusal {
                text: "Partly refused.".to_owned(),
                extra: conv::Extras::default(),
            },
            Part::tool_call("", "lookup", r#"{"q":1}"#),
            Part::tool_call("", "other", ""),
        ],
        finish: Some(conv::FinishReason::Stop),
        usage: Some(conv::Usage {
            input_tokens: 100,
            output_tokens: 20,
            reasoning_tokens: 5,
            cache_read_tokens: 60,
            cache_write_tokens: 0,
            extra: conv::Extras::default(),
        }),
        extra: conv::Extras::default(),
    };
    let message = response_from_conversation(&response, "claude-sonnet-4-5");
    assert_eq!(
        serde_json::to_value(&message).unwrap(),
        json!({
            "id": "msg_gw1",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Reasoning from a Chat upstream.", "signature": ""},
                {"type": "text", "text": "Partly refused."},
                {"type": "tool_use", "id": "toolu_gw1_0", "name": "lookup", "input": {"q": 1}},
                {"type": "tool_use", "id": "toolu_gw1_1", "name": "other", "input": {}}
            ],
            "model": "claude-sonnet-4-5",
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 40,
                "output_tokens": 20,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 60,
                "output_tokens_details": {"thinking_tokens": 5}
            }
        })
    );
    let stops = [
        (conv::FinishReason::Length, "max_tokens"),
        (conv::FinishReason::ContentFilter, "refusal"),
        (
            conv::FinishReason::Other("pause_turn".to_owned()),
            "pause_turn",
        ),
        (
            conv::FinishReason::Other("SAFETY_OTHER".to_owned()),
            "tool_use",
        ),
    ];
    for (finish, expected) in stops {
        let response = conv::Response {
            finish: Some(finish),
            ..response.clone()
        };
        let message = response_from_conversation(&response, "m");
        assert_eq!(message.stop_reason.unwrap().as_str(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// Decode SSE events: the conversation events, and the error that ended the stream, if any.
fn decode(events: &[sse::Event]) -> (Vec<Event>, Option<GatewayError>) {
    run(
        &mut StreamDecoder::new(),
        events,
        StreamDecoder::push,
        StreamDecoder::finish,
    )
}

fn encode_events(
    id: &str,
    model: &str,
    events: Vec<Event>,
) -> Result<Vec<sse::Event>, GatewayError> {
    let mut encoder = StreamEncoder::new(id, model);
    run_ok(
        &mut encoder,
        events,
        StreamEncoder::push,
        StreamEncoder::finish,
    )
}

fn wire(events: &[sse::Event]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for event in events {
        sse::encode(event, &mut bytes);
    }
    bytes
}

#[test]
fn streams_decode_split_anywhere_and_encode_again() {
    insta::glob!("../../test_data/anthropic", "streams/*.sse", |path| {
        let bytes = std::fs::read(path).unwrap();
        // Split at every byte: the same SSE events, so the same conversation events.
        let (whole, events, error) = same_at_every_split(&bytes, |pieces| {
            let sse = sse_events(pieces);
            let (events, error) = decode(&sse);
            (sse, events, error_json(error.as_ref()))
        });
        insta::assert_json_snapshot!(json!({"events": events, "error": error}));

        // The typed events serialize back to what was sent.
        for event in whole.iter().filter(|e| e.event.as_deref() != Some("ping")) {
            let typed: StreamEvent = serde_json::from_str(&event.data).unwrap();
            assert!(!matches!(typed, StreamEvent::Other(_)), "{}", event.data);
            assert_eq!(typed.name(), event.event.as_deref());
            same_json(&typed, event.data.as_bytes());
        }

        if !error.is_null() {
            return;
        }
        // Events -> SSE -> decoder -> the same events.
        let Some(Event::Start { id, model }) = events.first().cloned() else {
            panic!("a stream starts with Start");
        };
        let encoded = encode_events(&id, &model, events.clone()).unwrap();
        let bytes = wire(&encoded);
        let reread = sse_events(&[&bytes]);
        assert_eq!(reread, encoded);
        assert_eq!(decode(&reread).0, events);
        let names: Vec<&str> = encoded.iter().filter_map(|e| e.event.as_deref()).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names.last(), Some(&"message_stop"));
    });
}

#[test]
fn collected_stream_is_the_whole_message() {
    let bytes = fixture("streams/redacted_tool_use_crlf.sse");
    let (events, error) = decode(&sse_events(&[&bytes]));
    assert!(error.is_none());
    let response = collect(0, events).unwrap();
    let message = response_from_conversation(&response, "claude-opus-4-1-20250805");
    assert_eq!(
        serde_json::to_value(&message).unwrap(),
        json!({
            "id": "msg_01ToolUse",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw"},
                {"type": "text", "text": "Checking the weather and taking a screenshot."},
                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
                 "input": {"city": "Paris", "unit": "c"}},
                {"type": "tool_use", "id": "toolu_01NoArgs0000000000000000", "name": "take_screenshot", "input": {}}
            ],
            "model": "claude-opus-4-1-20250805",
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 89,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        })
    );
}

#[test]
fn stream_usage_merges_start_and_delta() {
    let bytes = fixture("streams/thinking_text.sse");
    let (events, _) = decode(&sse_events(&[&bytes]));
    let usages: Vec<&conv::Usage> = events
        .iter()
        .filter_map(|e| match e {
            Event::Usage(usage) => Some(usage),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 1);
    let usage = usages[0];
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens
        ),
        (8 + 1200 + 20480, 57, 20480, 1200)
    );
    assert!(matches!(
        events.last(),
        Some(Event::Finish {
            reason: conv::FinishReason::Stop
        })
    ));
    assert!(matches!(&events[events.len() - 2], Event::Usage(_)));
}

#[test]
fn stream_errors() {
    let bytes = fixture("streams/error_overloaded.sse");
    let (events, error) = decode(&sse_events(&[&bytes]));
    let error = error.unwrap();
    assert_eq!(error.status().as_u16(), 529);
    assert_eq!(error.message(), "Overloaded");
    assert!(error.upstream_body().is_some());
    assert!(matches!(&events[1], Event::TextDelta { text, .. } if text == "Partial answ"));

    // No stop reason: truncated.
    let bytes = fixture("streams/stop_sequence.sse");
    let cut: Vec<sse::Event> = sse_events(&[&bytes])
        .into_iter()
        .filter(|e| e.event.as_deref() != Some("message_delta"))
        .collect();
    let (_, error) = decode(&cut);
    assert_eq!(error.unwrap().kind(), ErrorKind::Truncated);

    // Not JSON, or a delta for a block that never started.
    let mut decoder = StreamDecoder::new();
    let error = decoder.push(&sse::Event::data("{oops")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
    let orphan = sse::Event::data(
        r#"{"type":"content_block_delta","index":4,"delta":{"type":"text_delta","text":"x"}}"#,
    );
    assert_eq!(
        decoder.push(&orphan).unwrap_err().kind(),
        ErrorKind::UpstreamProtocol
    );
    // An error event named only by its SSE name.
    let named = sse::Event {
        event: Some("error".to_owned()),
        ..sse::Event::data(r#"{"error": {"type": "rate_limit_error", "message": "slow down"}}"#)
    };
    assert_eq!(decoder.push(&named).unwrap_err().status().as_u16(), 429);
}

/// What a client reads: one line per SSE event, `name data`.
fn transcript(events: &[sse::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {}", e.event.as_deref().unwrap_or("-"), e.data))
        .collect()
}

#[test]
fn encoder_serves_a_chat_upstream() {
    // As the Chat chunk decoder emits them: no block ends before the next block, usage after
    // the finish, a call without id, a signature on a tool call, a refusal.
    let events = vec![
        Event::Start {
            id: "chatcmpl-1".to_owned(),
            model: "gpt-4o".to_owned(),
        },
        Event::ThinkingDelta {
            index: 0,
            text: "Hmm.".to_owned(),
        },
        text(1, ""),
        text(1, "Hello"),
        Event::RefusalDelta {
            index: 2,
            text: "No.".to_owned(),
        },
        call(3, "", "lookup"),
        args(3, r#"{"q":"#),
        Event::Signature {
            index: 3,
            signature: "gemini-call-sig".to_owned(),
        },
        Event::Signature {
            index: 0,
            signature: "late, after its block ended".to_owned(),
        },
        args(3, "1}"),
        Event::BlockEnd { index: 3 },
        Event::Finish {
            reason: conv::FinishReason::Stop,
        },
        Event::Usage(conv::Usage {
            input_tokens: 30,
            output_tokens: 9,
            cache_read_tokens: 10,
            ..conv::Usage::default()
        }),
    ];
    let encoded = encode_events("msg_gw", "claude-sonnet-4-5", events).unwrap();
    insta::assert_json_snapshot!(transcript(&encoded));
    // The Tracker of the dialect sees a finished stream.
    let mut tracker = crate::dialect::Tracker::new(crate::Dialect::Anthropic);
    for event in &encoded {
        tracker.observe(event).unwrap();
    }
    assert!(tracker.has_content() && tracker.is_done());
}

#[test]
fn encoder_signature_opens_an_omitted_thinking_block_and_usage_can_come_first() {
    let events = vec![
        Event::Usage(conv::Usage {
            input_tokens: 500,
            cache_write_tokens: 400,
            ..conv::Usage::default()
        }),
        Event::Signature {
            index: 0,
            signature: "sig".to_owned(),
        },
        Event::RedactedThinking {
            index: 1,
            data: "opaque".to_owned(),
        },
        text(2, "ok"),
        Event::Finish {
            reason: conv::FinishReason::StopSequence(Some("END".to_owned())),
        },
    ];
    let encoded = encode_events("msg_x", "m", events).unwrap();
    let data: Vec<Value> = encoded
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(
        data[0]["message"]["usage"],
        json!({"input_tokens": 100, "output_tokens": 0,
               "cache_creation_input_tokens": 400, "cache_read_input_tokens": 0})
    );
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        data[2]["delta"],
        json!({"type": "signature_delta", "signature": "sig"})
    );
    assert_eq!(
        data[4]["content_block"],
        json!({"type": "redacted_thinking", "data": "opaque"})
    );
    let delta = &data[data.len() - 2];
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
    );
}

#[test]
fn encoder_errors() {
    let finish = Event::Finish {
        reason: conv::FinishReason::Stop,
    };
    // No finish: truncated.
    let error = encode_events("msg", "m", vec![text(0, "x")]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    // Arguments for a block that is no tool call.
    let error = encode_events(
        "msg",
        "m",
        vec![text(0, "x"), args(0, "{}"), finish.clone()],
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
    // Arguments for a call whose block already ended (interleaved calls).
    let error = encode_events(
        "msg",
        "m",
        vec![
            call(0, "a", "x"),
            call(1, "b", "y"),
            args(0, "{}"),
            finish.clone(),
        ],
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
    // Text for a thinking block.
    let error = encode_events(
        "msg",
        "m",
        vec![
            Event::ThinkingDelta {
                index: 0,
                text: "t".to_owned(),
            },
            text(0, "x"),
            finish.clone(),
        ],
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamProtocol);
    // An empty response is still a whole message.
    let encoded = encode_events("msg", "m", vec![finish]).unwrap();
    let names: Vec<&str> = encoded.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert_eq!(StreamEncoder::ping().event.as_deref(), Some("ping"));
}

#[test]
fn base64_round_trips() {
    for text in [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "caf\u{e9} \u{2014} ok.",
        "# Title",
    ] {
        let encoded = convert::base64_encode(text.as_bytes());
        assert_eq!(
            convert::base64_decode(&encoded).as_deref(),
            Some(text.as_bytes())
        );
    }
    assert_eq!(convert::base64_encode(b"# Title"), "IyBUaXRsZQ==");
    for bad in ["a", "ab=c", "====", "a===", "QQ==QQ==", "Q!=="] {
        assert_eq!(convert::base64_decode(bad), None, "{bad}");
    }
}
