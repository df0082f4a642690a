use futures_util::{StreamExt, stream};

use super::*;

fn chunk(delta: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn role() -> String {
    chunk(r#"{"role":"assistant","content":""}"#, None)
}

fn text(t: &str) -> String {
    chunk(&format!(r#"{{"content":"{t}"}}"#), None)
}

fn finish() -> String {
    chunk("{}", Some("stop"))
}

const DONE: &str = "data: [DONE]\n\n";

fn body_of(pieces: Vec<Result<&str, GatewayError>>, then_stall: bool) -> Body {
    let items: Vec<Result<Bytes, GatewayError>> = pieces
        .into_iter()
        .map(|p| p.map(|s| Bytes::copy_from_slice(s.as_bytes())))
        .collect();
    if then_stall {
        body::from_stream(stream::iter(items).chain(stream::pending()))
    } else {
        body::from_stream(stream::iter(items))
    }
}

async fn relay(pieces: Vec<Result<&str, GatewayError>>) -> Result<String, GatewayError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let relay = Relay::until_content(
        SseSource::new(body_of(pieces, false), Dialect::OpenAiChat),
        deadline,
        Duration::from_secs(5),
    )
    .await?;
    let bytes = relay
        .into_body(&tokio_util::sync::CancellationToken::new())
        .collect()
        .await?
        .to_bytes();
    Ok(String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn a_healthy_stream_passes_byte_for_byte() {
    let whole = format!(
        "{}{}{}{}{DONE}",
        role(),
        text("Hel"),
        text("lo 世界"),
        finish()
    );
    // Split inside a multi-byte character and inside an event.
    let cut = whole.find('世').unwrap() + 1;
    let (a, b) = whole.as_bytes().split_at(cut);
    let items = vec![
        Ok::<_, GatewayError>(Bytes::copy_from_slice(a)),
        Ok(Bytes::copy_from_slice(b)),
    ];
    let relay = Relay::until_content(
        SseSource::new(body::from_stream(stream::iter(items)), Dialect::OpenAiChat),
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let bytes = relay
        .into_body(&tokio_util::sync::CancellationToken::new())
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(bytes, whole.as_bytes());
}

#[tokio::test]
async fn failures_before_content_go_back_to_the_chain() {
    let role = role();
    let error_event = r#"data: {"error":{"message":"overloaded","type":"server_error","code":503}}

"#;
    let cases: Vec<(Vec<Result<&str, GatewayError>>, ErrorKind)> = vec![
        (vec![Ok(&role), Ok(error_event)], ErrorKind::Upstream),
        (vec![Ok(&role), Ok(DONE)], ErrorKind::Truncated),
        (vec![Ok(&role)], ErrorKind::Truncated),
        (vec![], ErrorKind::Truncated),
        // A malformed event is skipped; when it is all there is, nothing came.
        (vec![Ok("data: {not json\n\n")], ErrorKind::Truncated),
        (
            vec![
                Ok(&role),
                Err(GatewayError::new(ErrorKind::Transport, "reset")),
            ],
            ErrorKind::Transport,
        ),
    ];
    for (pieces, kind) in cases {
        let err = relay(pieces).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err:?}");
    }
    let err = relay(vec![Ok(&role), Ok(error_event)]).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 503);
    assert_eq!(err.message(), "overloaded");
}

#[tokio::test]
async fn after_content_failures_become_the_terminal_error_event() {
    let (role, hello) = (role(), text("Hello"));
    let cut = relay(vec![
        Ok(&role),
        Ok(&hello),
        Err(GatewayError::new(ErrorKind::Transport, "connection reset")),
    ])
    .await
    .unwrap();
    assert!(cut.starts_with(&format!("{role}{hello}")));
    assert!(
        cut.ends_with("\n\n") && cut.contains(r#"data: {"error":{"message":"connection reset""#),
        "{cut}"
    );
    assert!(!cut.contains("[DONE]"));

    let truncated = relay(vec![Ok(&role), Ok(&hello)]).await.unwrap();
    assert!(
        truncated.contains("ended without a finish reason") && !truncated.contains("[DONE]"),
        "{truncated}"
    );

    let (finish, call) = (
        finish(),
        chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}"#,
            None,
        ),
    );
    let skipped = relay(vec![
        Ok(&role),
        Ok(&hello),
        Ok("data: {broken\n\n"),
        Ok(&hello),
        Ok(&finish),
    ])
    .await
    .unwrap();
    assert_eq!(
        skipped,
        format!("{role}{hello}{hello}{finish}{DONE}"),
        "a malformed event is skipped and the stream goes on"
    );
    let in_call = relay(vec![
        Ok(&role),
        Ok(&call),
        Ok("data: {broken\n\n"),
        Ok(&finish),
    ])
    .await
    .unwrap();
    assert!(
        in_call.contains("malformed event")
            && in_call.contains("tool call")
            && !in_call.contains("broken")
            && !in_call.contains("[DONE]"),
        "{in_call}"
    );
}

#[tokio::test]
async fn a_finished_stream_without_done_is_finalised() {
    let (role, hello, finish) = (role(), text("Hello"), finish());
    let finalised = relay(vec![Ok(&role), Ok(&hello), Ok(&finish)])
        .await
        .unwrap();
    assert_eq!(finalised, format!("{role}{hello}{finish}{DONE}"));
}

#[tokio::test(start_paused = true)]
async fn no_content_in_time_is_a_first_byte_timeout() {
    let role = role();
    let started = Instant::now();
    let budget = Duration::from_secs(7);
    let result = Relay::until_content(
        SseSource::new(body_of(vec![Ok(&role)], true), Dialect::OpenAiChat),
        started + budget,
        budget,
    )
    .await;
    let err = result.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::FirstByteTimeout);
    assert_eq!(started.elapsed(), budget);
}

#[tokio::test]
async fn non_streaming_answers_are_checked() {
    let ok = r#"{"id":"c","object":"chat.completion","choices":[]}"#;
    assert!(
        checked_json(body::full(ok), Dialect::OpenAiChat)
            .await
            .is_ok()
    );
    let error = r#"{"error":{"message":"quota exceeded","code":429}}"#;
    let err = checked_json(body::full(error), Dialect::OpenAiChat)
        .await
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 429);
    assert_eq!(
        checked_json(body::full("<html>"), Dialect::OpenAiChat)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamProtocol
    );
    assert_eq!(
        checked_json(body::full("{}"), Dialect::OpenAiChat)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamProtocol
    );
    assert!(
        checked_json(body::full(r#"{"data":[]}"#), Dialect::Passthrough)
            .await
            .is_ok()
    );
}

/// Relay `whole` split into two reads at `cut`, as `dialect`.
async fn relay_split(whole: &[u8], cut: usize, dialect: Dialect) -> Result<Bytes, GatewayError> {
    let (a, b) = whole.split_at(cut);
    let items = vec![
        Ok::<_, GatewayError>(Bytes::copy_from_slice(a)),
        Ok(Bytes::copy_from_slice(b)),
    ];
    let source = SseSource::new(body::from_stream(stream::iter(items)), dialect);
    let relay = Relay::until_content(
        source,
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await?;
    relay
        .into_body(&tokio_util::sync::CancellationToken::new())
        .collect()
        .await
        .map(|c| c.to_bytes())
}

const ANTHROPIC: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[]}}\r\n\r\n\
: keep-alive\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"你好 🌏\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[tokio::test]
async fn named_event_streams_pass_byte_for_byte_at_every_split() {
    let whole = ANTHROPIC.as_bytes();
    for cut in 0..=whole.len() {
        let out = relay_split(whole, cut, Dialect::Anthropic).await.unwrap();
        assert_eq!(out, whole, "split at {cut}");
    }
    // Cut before message_stop after the finish: finalised with it.
    let finished = &ANTHROPIC[..ANTHROPIC.find("event: message_stop").unwrap()];
    let out = relay_split(finished.as_bytes(), 10, Dialect::Anthropic)
        .await
        .unwrap();
    assert_eq!(out, ANTHROPIC.as_bytes());
    // Cut mid-answer: the content so far, then Anthropic's error event.
    let cut = &ANTHROPIC[..ANTHROPIC.find("event: content_block_stop").unwrap()];
    let out = relay_split(cut.as_bytes(), 0, Dialect::Anthropic)
        .await
        .unwrap();
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.starts_with(cut), "{text}");
    assert!(text[cut.len()..].starts_with("event: error\ndata: {\"error\":{\"message\":\"the upstream stream ended without a finish reason\""), "{text}");
    // An error event before content goes back to the chain, with the status it names.
    let overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let err = relay_split(overloaded.as_bytes(), 5, Dialect::Anthropic)
        .await
        .unwrap_err();
    assert_eq!(err.status().as_u16(), 529);
}

#[tokio::test]
async fn raw_bytes_pass_and_commit_on_the_first_byte() {
    let audio: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
    let items: Vec<Result<Bytes, GatewayError>> = audio
        .chunks(700)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let relay = Relay::until_content(
        RawSource::new(body::from_stream(stream::iter(items))),
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let out = relay
        .into_body(&tokio_util::sync::CancellationToken::new())
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(out, audio);
    // A failure before the first byte goes back to the chain.
    let items = vec![Err::<Bytes, _>(GatewayError::new(
        ErrorKind::Transport,
        "reset",
    ))];
    let err = Relay::until_content(
        RawSource::new(body::from_stream(stream::iter(items))),
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Transport);
}

#[tokio::test]
async fn local_events_use_the_same_relay() {
    use gateway_core::conversation::{Event, EventStream, FinishReason, Usage};
    let source = |events: Vec<Event>| {
        let stream: EventStream = Box::pin(stream::iter(events.into_iter().map(Ok)));
        EventSource::new(
            stream,
            Encoder::OpenAi(gateway_core::openai::ChunkEncoder::new(
                "chatcmpl-1",
                1,
                "m",
                true,
            )),
        )
    };
    let events = vec![
        Event::Start {
            id: "r".into(),
            model: "m".into(),
        },
        Event::TextDelta {
            index: 0,
            text: "hi".into(),
        },
        Event::BlockEnd { index: 0 },
        Event::Finish {
            reason: FinishReason::Stop,
        },
        Event::Usage(Usage {
            input_tokens: 3,
            output_tokens: 1,
            ..Usage::default()
        }),
    ];
    let relay = Relay::until_content(
        source(events),
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let out = relay
        .into_body(&tokio_util::sync::CancellationToken::new())
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(out.to_vec()).unwrap();
    // Role, text, finish, usage, [DONE].
    assert_eq!(text.matches("data: ").count(), 5, "{text}");
    assert!(text.contains(r#""content":"hi""#), "{text}");
    assert!(text.contains(r#""prompt_tokens":3"#), "{text}");
    assert!(text.ends_with(DONE), "{text}");
    // Ended before content: back to the chain.
    let only_start = vec![Event::Start {
        id: "r".into(),
        model: "m".into(),
    }];
    let err = Relay::until_content(
        source(only_start),
        Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Truncated);
}
