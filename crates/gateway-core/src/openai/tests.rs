use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::*;
use crate::{
    ErrorKind,
    test_support::{fixture, sse_events, strip_nulls},
};

/// Parse `bytes` as `T`, check that serializing gives the same JSON value back, return it.
fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Value {
    let typed: T = parse_json(bytes).unwrap();
    let original: Value = serde_json::from_slice(bytes).unwrap();
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(strip_nulls(again.clone()), strip_nulls(original));
    again
}

#[test]
fn requests_round_trip() {
    insta::glob!("../../test_data/openai", "requests/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        insta::assert_json_snapshot!(round_trip::<ChatRequest>(&bytes));
    });
}

#[test]
fn responses_round_trip() {
    insta::glob!("../../test_data/openai", "responses/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        insta::assert_json_snapshot!(round_trip::<ChatCompletion>(&bytes));
    });
}

#[test]
fn models_round_trip() {
    insta::glob!("../../test_data/openai", "models/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        insta::assert_json_snapshot!(round_trip::<ModelList>(&bytes));
    });
}

#[test]
fn error_envelopes_parse() {
    insta::glob!("../../test_data/openai", "errors/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        let envelope: ErrorEnvelope = parse_json(&bytes).unwrap();
        insta::assert_json_snapshot!(envelope);
    });
}

#[test]
fn chunk_streams_decode() {
    insta::glob!("../../test_data/openai", "streams/*.sse", |path| {
        let bytes = std::fs::read(path).unwrap();
        let mut chunks = Vec::new();
        let mut done = false;
        for event in sse_events(&[&bytes]) {
            if event.is_done() {
                done = true;
                continue;
            }
            let chunk = round_trip::<ChatCompletionChunk>(event.data.as_bytes());
            chunks.push(chunk);
        }
        assert!(done, "stream fixture must end with [DONE]");
        insta::assert_json_snapshot!(chunks);
    });
}

#[test]
fn unknown_fields_are_kept_where_they_were() {
    let bytes = include_bytes!("../../test_data/openai/requests/unknown_fields.json");
    let request: ChatRequest = parse_json(bytes).unwrap();
    assert_eq!(request.extra["service_tier"], "flex");
    assert_eq!(request.extra["vendor_extension"]["nested"]["deep"][1], 2.5);
    assert_eq!(request.messages[0].extra["x_client_note"], 7);
    let Some(Content::Parts(parts)) = &request.messages[0].content else {
        panic!("parts expected");
    };
    let ContentPart::Text { extra, .. } = &parts[0] else {
        panic!("text part expected");
    };
    assert_eq!(extra["cache_control"]["type"], "ephemeral");
    assert_eq!(request.stream_options.unwrap().extra["future_option"], 1);
}

#[test]
fn accessors() {
    let bytes = include_bytes!("../../test_data/openai/requests/tools_two_turns.json");
    let request: ChatRequest = parse_json(bytes).unwrap();
    assert!(request.is_stream());
    assert!(request.include_usage());
    assert_eq!(request.max_output_tokens(), Some(4096));
    assert_eq!(Stop::One("x".into()).to_vec(), vec!["x".to_owned()]);
}

#[test]
fn malformed_requests_are_typed_400s() {
    // (fixture, expected param, a word the message must contain)
    let cases = [
        ("truncated", None, "malformed json"),
        ("missing_model", None, "missing field `model`"),
        ("model_not_string", Some("model"), "invalid type"),
        (
            "unknown_role",
            Some("messages[0].role"),
            "unknown variant `wizard`",
        ),
        (
            "content_number",
            Some("messages[0].content"),
            "a string or an array of content parts",
        ),
        ("huge_number", Some("max_tokens"), "max_tokens"),
        (
            "bad_tool_choice",
            Some("tool_choice"),
            "unknown variant `sometimes`",
        ),
        (
            "unknown_part",
            Some("messages[0].content[0].type"),
            "hologram",
        ),
        ("trailing_garbage", None, "trailing characters"),
        ("invalid_utf8", None, "invalid unicode"),
        ("deep_nesting", None, "recursion limit"),
    ];
    for (name, param, needle) in cases {
        let bytes = fixture("openai", &format!("malformed/{name}.json"));
        let error = parse_json::<ChatRequest>(&bytes).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{name}");
        assert_eq!(error.status().as_u16(), 400, "{name}");
        assert_eq!(error.param(), param, "{name}: {error}");
        assert!(
            error
                .message()
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{name}: {}",
            error.message()
        );
    }
}

#[test]
fn error_envelope_serializes_param_and_code_as_null() {
    let envelope = ErrorEnvelope::new("boom", "server_error", None, None);
    assert_eq!(
        serde_json::to_value(envelope).unwrap(),
        serde_json::json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}})
    );
}
