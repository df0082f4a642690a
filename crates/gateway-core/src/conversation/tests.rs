use serde_json::{Map, json};

use super::*;
use crate::test_support::collect;

const CREATED: u64 = 1_700_000_000;

#[test]
fn collector_keeps_part_order_and_signatures() {
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 7,
        reasoning_tokens: 3,
        ..Usage::default()
    };
    let response = collect(
        CREATED,
        vec![
            Event::Start {
                id: "msg_1".to_owned(),
                model: "claude".to_owned(),
            },
            Event::ThinkingDelta {
                index: 0,
                text: "Let me ".to_owned(),
            },
            Event::ThinkingDelta {
                index: 0,
                text: "think.".to_owned(),
            },
            Event::Signature {
                index: 0,
                signature: "sig-0".to_owned(),
            },
            Event::BlockEnd { index: 0 },
            Event::RedactedThinking {
                index: 1,
                data: "opaque".to_owned(),
            },
            Event::TextDelta {
                index: 2,
                text: String::new(),
            },
            Event::TextDelta {
                index: 2,
                text: "Calling.".to_owned(),
            },
            Event::Signature {
                index: 2,
                signature: "text-sig".to_owned(),
            },
            Event::ToolCallStart {
                index: 3,
                id: "call_1".to_owned(),
                name: "weather".to_owned(),
            },
            Event::ToolCallDelta {
                index: 3,
                arguments: r#"{"city":"#.to_owned(),
            },
            Event::ToolCallStart {
                index: 4,
                id: "call_2".to_owned(),
                name: "time".to_owned(),
            },
            // Late arguments still reach their own call.
            Event::ToolCallDelta {
                index: 3,
                arguments: r#""Paris"}"#.to_owned(),
            },
            Event::Signature {
                index: 4,
                signature: "call-sig".to_owned(),
            },
            Event::Usage(usage.clone()),
            Event::Finish {
                reason: FinishReason::ToolUse,
            },
            Event::Finish {
                reason: FinishReason::Stop,
            },
        ],
    )
    .unwrap();
    let mut text = Part::text("Calling.");
    if let Part::Text { signature, .. } = &mut text {
        *signature = Some("text-sig".to_owned());
    }
    let mut second = Part::tool_call("call_2", "time", "");
    if let Part::ToolCall { signature, .. } = &mut second {
        *signature = Some("call-sig".to_owned());
    }
    assert_eq!(
        response,
        Response {
            id: "msg_1".to_owned(),
            model: "claude".to_owned(),
            created: CREATED,
            parts: vec![
                Part::thinking("Let me think.", Some("sig-0".to_owned())),
                Part::RedactedThinking {
                    data: "opaque".to_owned(),
                    extra: Extras::default(),
                },
                text,
                Part::tool_call("call_1", "weather", r#"{"city":"Paris"}"#),
                second,
            ],
            finish: Some(FinishReason::ToolUse),
            usage: Some(usage),
            extra: Extras::default(),
        }
    );
}

#[test]
fn collector_signature_alone_makes_an_empty_thinking_part() {
    let response = collect(
        CREATED,
        vec![
            Event::ThinkingDelta {
                index: 0,
                text: String::new(),
            },
            Event::Signature {
                index: 0,
                signature: "sig".to_owned(),
            },
            Event::Finish {
                reason: FinishReason::Stop,
            },
        ],
    )
    .unwrap();
    assert_eq!(
        response.parts,
        vec![Part::thinking("", Some("sig".to_owned()))]
    );
}

#[test]
fn collector_rejects_events_that_do_not_fit_their_block() {
    let text = || Event::TextDelta {
        index: 0,
        text: "x".to_owned(),
    };
    let cases = [
        vec![Event::ToolCallDelta {
            index: 0,
            arguments: "{}".to_owned(),
        }],
        vec![
            text(),
            Event::ToolCallDelta {
                index: 0,
                arguments: "{}".to_owned(),
            },
        ],
        vec![
            text(),
            Event::ThinkingDelta {
                index: 0,
                text: "y".to_owned(),
            },
        ],
        vec![
            text(),
            Event::ToolCallStart {
                index: 0,
                id: "c".to_owned(),
                name: "f".to_owned(),
            },
        ],
        vec![
            Event::RedactedThinking {
                index: 0,
                data: "d".to_owned(),
            },
            Event::Signature {
                index: 0,
                signature: "s".to_owned(),
            },
        ],
    ];
    for events in cases {
        let error = collect(CREATED, events.clone()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UpstreamProtocol, "{events:?}");
    }
}

#[test]
fn content_for_the_commit_point() {
    let cases = [
        (
            Event::Start {
                id: "a".to_owned(),
                model: "m".to_owned(),
            },
            false,
        ),
        (
            Event::TextDelta {
                index: 0,
                text: String::new(),
            },
            false,
        ),
        (
            Event::TextDelta {
                index: 0,
                text: "x".to_owned(),
            },
            true,
        ),
        (
            Event::ThinkingDelta {
                index: 0,
                text: String::new(),
            },
            false,
        ),
        (
            Event::ThinkingDelta {
                index: 0,
                text: "x".to_owned(),
            },
            true,
        ),
        (
            Event::RefusalDelta {
                index: 0,
                text: "x".to_owned(),
            },
            true,
        ),
        (
            Event::Signature {
                index: 0,
                signature: "s".to_owned(),
            },
            false,
        ),
        (
            Event::RedactedThinking {
                index: 0,
                data: "d".to_owned(),
            },
            true,
        ),
        (
            Event::ToolCallStart {
                index: 0,
                id: "c".to_owned(),
                name: "f".to_owned(),
            },
            true,
        ),
        (
            Event::ToolCallDelta {
                index: 0,
                arguments: "{}".to_owned(),
            },
            false,
        ),
        (Event::BlockEnd { index: 0 }, false),
        (Event::Usage(Usage::default()), false),
        (
            Event::Finish {
                reason: FinishReason::Length,
            },
            true,
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(is_content(&event), expected, "{event:?}");
    }
}

#[test]
fn media_from_url() {
    let base64 = |mime: &str, data: &str| Media::Base64 {
        mime: mime.to_owned(),
        data: data.to_owned(),
    };
    let url = |url: &str| Media::Url {
        url: url.to_owned(),
    };
    let cases = [
        (
            "data:image/png;base64,iVBORw0K",
            base64("image/png", "iVBORw0K"),
        ),
        (
            "data:application/pdf;base64,",
            base64("application/pdf", ""),
        ),
        (
            "https://example.com/a.png",
            url("https://example.com/a.png"),
        ),
        // Not exactly `data:<mime>;base64,`: kept whole so it comes back unchanged.
        (
            "data:image/png;charset=x;base64,AAAA",
            url("data:image/png;charset=x;base64,AAAA"),
        ),
        ("data:text/plain,hello", url("data:text/plain,hello")),
        ("data:;base64,AAAA", url("data:;base64,AAAA")),
        ("data:image/png;base64", url("data:image/png;base64")),
    ];
    for (input, expected) in cases {
        let media = Media::from_url(input);
        assert_eq!(media, expected, "{input}");
        assert_eq!(media.to_url().as_deref(), Some(input), "{input}");
    }
    assert_eq!(
        Media::FileId {
            id: "file-1".to_owned()
        }
        .to_url(),
        None
    );
}

#[test]
fn system_text_in_order() {
    let request = Request {
        system: vec![Part::text("Top level."), Part::text("")],
        messages: vec![
            Message::new(Role::System, vec![Part::text("In place.")]),
            Message::new(Role::User, vec![Part::text("Not system.")]),
            Message::new(
                Role::Developer,
                vec![
                    Part::text("Developer."),
                    Part::Image {
                        source: Media::from_url("https://example.com/a.png"),
                        detail: None,
                        extra: Extras::default(),
                    },
                ],
            ),
        ],
        ..Request::default()
    };
    assert_eq!(request.system_parts().count(), 5);
    assert_eq!(
        request.system_text(),
        "Top level.\n\nIn place.\n\nDeveloper."
    );
    assert_eq!(Request::default().system_text(), "");
}

#[test]
fn extras_belong_to_their_protocol() {
    let fields = Map::from_iter([("service_tier".to_owned(), json!("flex"))]);
    let hints = Map::from_iter([("stop".to_owned(), json!("string"))]);
    let extras = Extras::new(Protocol::OpenAiChat, fields.clone(), hints);
    assert_eq!(extras.fields_for(Protocol::OpenAiChat), Some(&fields));
    assert_eq!(extras.fields_for(Protocol::Anthropic), None);
    assert_eq!(
        extras.hint(Protocol::OpenAiChat, "stop"),
        Some(&json!("string"))
    );
    assert_eq!(extras.hint(Protocol::Gemini, "stop"), None);
    assert!(!extras.is_empty());

    let empty = Extras::new(Protocol::Anthropic, Map::new(), Map::new());
    assert_eq!(empty, Extras::default());
    assert!(empty.is_empty());
}

#[test]
fn reasoning_off() {
    let cases = [
        (Reasoning::default(), false),
        (
            Reasoning {
                effort: Some(Effort::None),
                ..Reasoning::default()
            },
            true,
        ),
        (
            Reasoning {
                mode: Some(ReasoningMode::Disabled),
                ..Reasoning::default()
            },
            true,
        ),
        (
            Reasoning {
                effort: Some(Effort::Low),
                mode: Some(ReasoningMode::Enabled),
                ..Reasoning::default()
            },
            false,
        ),
    ];
    for (reasoning, expected) in cases {
        assert_eq!(reasoning.is_off(), expected, "{reasoning:?}");
    }
}

#[test]
fn events_serialize_with_a_type_tag() {
    let events = vec![
        Event::ToolCallStart {
            index: 1,
            id: "c".to_owned(),
            name: "f".to_owned(),
        },
        Event::Usage(Usage {
            input_tokens: 1,
            ..Usage::default()
        }),
        Event::Finish {
            reason: FinishReason::StopSequence(Some("END".to_owned())),
        },
    ];
    let value = serde_json::to_value(&events).unwrap();
    assert_eq!(
        value,
        json!([
            {"type": "tool_call_start", "index": 1, "id": "c", "name": "f"},
            {"type": "usage", "input_tokens": 1, "output_tokens": 0, "reasoning_tokens": 0,
             "cache_read_tokens": 0, "cache_write_tokens": 0},
            {"type": "finish", "reason": {"stop_sequence": "END"}}
        ])
    );
    assert_eq!(serde_json::from_value::<Vec<Event>>(value).unwrap(), events);
}
