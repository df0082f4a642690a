use futures_util::stream;

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
    let relay =
        Relay::until_content(body_of(pieces, false), deadline, Duration::from_secs(5)).await?;
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
        body::from_stream(stream::iter(items)),
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
        (vec![Ok("data: {not json\n\n")], ErrorKind::UpstreamProtocol),
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

    let malformed = relay(vec![Ok(&role), Ok(&hello), Ok("data: {broken\n\n")])
        .await
        .unwrap();
    assert!(
        malformed.contains("malformed event") && !malformed.contains("broken"),
        "{malformed}"
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
    let result =
        Relay::until_content(body_of(vec![Ok(&role)], true), started + budget, budget).await;
    let err = result.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::FirstByteTimeout);
    assert_eq!(started.elapsed(), budget);
}

#[tokio::test]
async fn non_streaming_answers_are_checked() {
    let ok = r#"{"id":"c","object":"chat.completion","choices":[]}"#;
    assert!(checked_json(body::full(ok), true).await.is_ok());
    let error = r#"{"error":{"message":"quota exceeded","code":429}}"#;
    let err = checked_json(body::full(error), true).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 429);
    assert_eq!(
        checked_json(body::full("<html>"), true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamProtocol
    );
    assert_eq!(
        checked_json(body::full("{}"), true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::UpstreamProtocol
    );
    assert!(
        checked_json(body::full(r#"{"data":[]}"#), false)
            .await
            .is_ok()
    );
}
