//! Cross-crate contracts that every later crate relies on.

use gateway_core::{ErrorKind, GatewayError, openai, sse};

/// An error that happens after the response has started travels as one SSE `data:` event whose
/// JSON is the OpenAI error envelope, with no `[DONE]` after it. The official SDKs raise on that.
#[test]
fn in_band_error_event_decodes_as_an_openai_error() {
    let error = GatewayError::new(
        ErrorKind::Truncated,
        "upstream stream ended without a finish reason",
    );
    let mut wire = Vec::new();
    sse::encode_error(&error, &mut wire);

    let mut decoder = sse::Decoder::default();
    decoder.feed(&wire);
    let event = decoder.next_event().unwrap().expect("one event");
    assert!(
        decoder.finish().unwrap().is_none(),
        "exactly one event, no [DONE]"
    );
    assert!(!event.is_done());
    let envelope: openai::ErrorEnvelope = openai::parse_json(event.data.as_bytes()).unwrap();
    assert_eq!(
        envelope.error.message,
        "upstream stream ended without a finish reason"
    );
    assert_eq!(envelope.error.kind, "server_error");
}
