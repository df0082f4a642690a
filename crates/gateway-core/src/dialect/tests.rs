use super::*;

fn ev(name: Option<&str>, data: &str) -> sse::Event {
    sse::Event {
        event: name.map(str::to_owned),
        data: data.to_owned(),
        ..sse::Event::default()
    }
}

/// Feed events; report after which event (1-based) content was first seen, and the tracker.
fn run(dialect: Dialect, events: &[(Option<&str>, &str)]) -> (Option<usize>, Tracker) {
    let mut tracker = Tracker::new(dialect);
    let mut first = None;
    for (i, (name, data)) in events.iter().enumerate() {
        tracker.observe(&ev(*name, data)).unwrap();
        if first.is_none() && tracker.has_content() {
            first = Some(i + 1);
        }
    }
    (first, tracker)
}

#[test]
fn endpoints_map_to_dialects() {
    for (path, dialect) in [
        ("/chat/completions", Dialect::OpenAiChat),
        ("/completions", Dialect::OpenAiChat),
        ("/messages", Dialect::Anthropic),
        ("/messages/count_tokens", Dialect::Passthrough),
        ("/responses", Dialect::Responses),
        (
            "/models/gemini-2.5-pro:streamGenerateContent",
            Dialect::Gemini,
        ),
        ("/models/gemini-2.5-pro:generateContent", Dialect::Gemini),
        ("/audio/speech", Dialect::Passthrough),
        ("/embeddings", Dialect::Passthrough),
    ] {
        assert_eq!(Dialect::of_endpoint(path), dialect, "{path}");
    }
}

#[test]
fn openai_content_finish_and_done() {
    let (first, mut t) = run(
        Dialect::OpenAiChat,
        &[
            (
                None,
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            ),
            (
                None,
                r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
            ),
            (
                None,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            ),
        ],
    );
    assert_eq!(first, Some(2));
    // Finished without [DONE]: finalised.
    assert_eq!(t.at_end().unwrap(), Some(sse::DONE));
    // Legacy completions chunks carry `text`.
    let (first, _) = run(
        Dialect::OpenAiChat,
        &[
            (None, r#"{"choices":[{"text":"","index":0}]}"#),
            (None, r#"{"choices":[{"text":"x","index":0}]}"#),
        ],
    );
    assert_eq!(first, Some(2));
    let (_, mut t) = run(
        Dialect::OpenAiChat,
        &[(None, r#"{"choices":[{"delta":{"content":"a"}}]}"#)],
    );
    assert_eq!(t.at_end().unwrap_err().kind(), ErrorKind::Truncated);
    let (_, mut t) = run(Dialect::OpenAiChat, &[(None, "[DONE]")]);
    assert!(t.is_done());
    assert_eq!(t.at_end().unwrap(), None);
}

#[test]
fn anthropic_events() {
    let stream = [
        (
            Some("message_start"),
            r#"{"type":"message_start","message":{"id":"msg_1","content":[]}}"#,
        ),
        (Some("ping"), r#"{"type": "ping"}"#),
        (
            Some("content_block_start"),
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
        ),
        (
            Some("content_block_stop"),
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
        ),
        (Some("message_stop"), r#"{"type":"message_stop"}"#),
    ];
    let (first, mut t) = run(Dialect::Anthropic, &stream);
    assert_eq!(first, Some(4));
    assert!(t.is_done());
    assert_eq!(t.at_end().unwrap(), None);
    // Finished but cut before message_stop: finalised.
    let (_, mut t) = run(Dialect::Anthropic, &stream[..6]);
    assert_eq!(t.at_end().unwrap(), Some(ANTHROPIC_STOP));
    // A tool call is content from its start.
    let (first, _) = run(
        Dialect::Anthropic,
        &[(
            Some("content_block_start"),
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"Read","input":{}}}"#,
        )],
    );
    assert_eq!(first, Some(1));
    // An error event is the error it names.
    let mut t = Tracker::new(Dialect::Anthropic);
    let err = t
        .observe(&ev(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ))
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 529);
    assert_eq!(err.message(), "Overloaded");
}

#[test]
fn responses_events() {
    let (first, mut t) = run(
        Dialect::Responses,
        &[
            (
                Some("response.created"),
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress"}}"#,
            ),
            (
                Some("response.output_item.added"),
                r#"{"type":"response.output_item.added","sequence_number":1,"item":{"type":"message"}}"#,
            ),
            (
                Some("response.output_text.delta"),
                r#"{"type":"response.output_text.delta","sequence_number":2,"delta":"Hi"}"#,
            ),
        ],
    );
    assert_eq!(first, Some(3));
    assert_eq!(t.at_end().unwrap_err().kind(), ErrorKind::Truncated);
    let out = t
        .error_event(&GatewayError::new(ErrorKind::IdleTimeout, "stalled"))
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("event: response.failed\ndata: "), "{text}");
    let data: Value =
        serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(data["sequence_number"], 3);
    assert_eq!(data["response"]["id"], "resp_1");
    assert_eq!(data["response"]["status"], "failed");
    let (_, t) = run(
        Dialect::Responses,
        &[(
            Some("response.completed"),
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1"}}"#,
        )],
    );
    assert!(t.is_done());
    let mut t = Tracker::new(Dialect::Responses);
    let err = t
        .observe(&ev(Some("response.failed"), r#"{"type":"response.failed","response":{"error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#))
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 429);
}

#[test]
fn gemini_chunks() {
    let (first, mut t) = run(
        Dialect::Gemini,
        &[
            (
                None,
                r#"{"candidates":[{"content":{"role":"model","parts":[{"text":""}]}}]}"#,
            ),
            (
                None,
                r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]}}]}"#,
            ),
            (
                None,
                r#"{"candidates":[{"content":{"parts":[]},"finishReason":"STOP"}]}"#,
            ),
        ],
    );
    assert_eq!(first, Some(2));
    assert_eq!(t.at_end().unwrap(), None);
    let mut t = Tracker::new(Dialect::Gemini);
    let err = t
        .observe(&ev(
            None,
            r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 429);
}

#[test]
fn malformed_events_are_protocol_errors() {
    for dialect in [
        Dialect::OpenAiChat,
        Dialect::Anthropic,
        Dialect::Responses,
        Dialect::Gemini,
    ] {
        let err = Tracker::new(dialect)
            .observe(&ev(None, "{not json"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol, "{dialect:?}");
    }
}

#[test]
fn envelopes_per_dialect() {
    let err = GatewayError::new(ErrorKind::ModelNotFound, "no such model");
    let anthropic = Dialect::Anthropic.envelope(&err);
    assert_eq!(anthropic["type"], "error");
    assert_eq!(anthropic["error"]["type"], "not_found_error");
    assert!(Dialect::Anthropic.is_envelope(anthropic.to_string().as_bytes()));
    assert!(!Dialect::Anthropic.is_envelope(br#"{"error":{"message":"x"}}"#));
    let google = Dialect::Gemini.envelope(&GatewayError::new(ErrorKind::RateLimited, "later"));
    assert_eq!(google["error"]["code"], 429);
    assert_eq!(google["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(Dialect::Gemini.is_envelope(google.to_string().as_bytes()));
    let openai = Dialect::OpenAiChat.envelope(&err);
    assert_eq!(openai["error"]["message"], "no such model");
    assert!(Dialect::OpenAiChat.is_envelope(openai.to_string().as_bytes()));
    let overloaded = Dialect::Anthropic.envelope(&GatewayError::new(ErrorKind::Overloaded, "busy"));
    assert_eq!(overloaded["error"]["type"], "overloaded_error");
}

#[test]
fn error_events_decode_in_their_dialect() {
    let err = GatewayError::new(ErrorKind::Truncated, "cut");
    let anthropic =
        String::from_utf8(Tracker::new(Dialect::Anthropic).error_event(&err).unwrap()).unwrap();
    let mut decoder = sse::Decoder::default();
    decoder.feed(anthropic.as_bytes());
    let event = decoder.next_event().unwrap().unwrap();
    assert_eq!(event.event.as_deref(), Some("error"));
    let back = Tracker::new(Dialect::Anthropic)
        .observe(&event)
        .unwrap_err();
    assert_eq!(back.message(), "cut");
    let openai = Tracker::new(Dialect::OpenAiChat).error_event(&err).unwrap();
    assert!(openai.starts_with(b"data: {\"error\""));
    assert!(
        Tracker::new(Dialect::Passthrough)
            .error_event(&err)
            .is_none()
    );
}

#[test]
fn answers_are_checked_by_shape() {
    let ok = [
        (Dialect::OpenAiChat, r#"{"choices":[]}"#),
        (Dialect::Anthropic, r#"{"type":"message","content":[]}"#),
        (
            Dialect::Responses,
            r#"{"object":"response","output":[],"error":null}"#,
        ),
        (Dialect::Gemini, r#"{"candidates":[]}"#),
        (Dialect::Passthrough, r#"{"data":[]}"#),
    ];
    for (dialect, body) in ok {
        assert!(dialect.check_answer(body.as_bytes()).is_ok(), "{dialect:?}");
    }
    let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"later"}}"#;
    assert_eq!(
        Dialect::Anthropic
            .check_answer(body.as_bytes())
            .unwrap_err()
            .status()
            .as_u16(),
        429
    );
    assert_eq!(
        Dialect::OpenAiChat
            .check_answer(br#"{"id":"x"}"#)
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamProtocol
    );
}

/// The check reads only the top-level keys; it decides as a check of the whole document would.
#[test]
fn the_answer_check_decides_as_the_whole_document_does() {
    let dialects = [
        Dialect::OpenAiChat,
        Dialect::Anthropic,
        Dialect::Responses,
        Dialect::Gemini,
        Dialect::Passthrough,
    ];
    let bodies = [
        r#"{"choices":[{"message":{"content":"hi \"x\" \u00e9"}}],"usage":{"total_tokens":3}}"#,
        r#"{"choices":{}}"#,
        r#"{"choices":[],"error":null}"#,
        r#"{"choices":[],"error":{"message":"quota","code":429}}"#,
        r#"{"choices":[],"choices":{}}"#,
        r#"{"content":[{"type":"text","text":"a"}],"stop_reason":"end_turn"}"#,
        r#"{"object":"response","status":"completed"}"#,
        r#"{"object":"chat.completion","output":"x"}"#,
        r#"{"candidates":[],"promptFeedback":{"blockReason":"SAFETY"}}"#,
        r#"{"promptFeedback":[]}"#,
        r#"{"error":{"code":503,"message":"later","status":"UNAVAILABLE"}}"#,
        r#"[{"choices":[]}]"#,
        r#""text""#,
        r#"{"choices":[1,2,}"#,
        r#"{"choices":[]} trailing"#,
        "",
    ];
    for dialect in dialects {
        for body in bodies {
            let whole = match serde_json::from_str::<Value>(body) {
                Ok(value) => dialect
                    .check_value(&value)
                    .map_err(|e| (e.kind(), e.status())),
                Err(_) => Err((ErrorKind::UpstreamProtocol, StatusCode::BAD_GATEWAY)),
            };
            let fast = dialect
                .check_answer(body.as_bytes())
                .map_err(|e| (e.kind(), e.status()));
            assert_eq!(fast, whole, "{dialect:?} {body}");
        }
    }
}
