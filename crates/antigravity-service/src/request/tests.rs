//! Golden translation tests: one snapshot per fixture under `test_data/requests/`.
//!
//! Each request goes through the OpenAI dialect into the conversation, then to Antigravity: the
//! path an OpenAI client's request takes. A fixture is an OpenAI request, or `{"signatures": {...}, "request": {...}}` when the test
//! needs signatures remembered from earlier turns (`tool_calls` by id, `thinking` by text; each
//! with the family that made them).

use serde_json::{Value, json};

use gateway_core::openai::{self, ChatRequest, parse_json};

use super::*;

fn family(name: &str) -> Family {
    match name {
        "claude" => Family::Claude,
        "gemini3" => Family::Gemini3,
        _ => Family::Gemini,
    }
}

fn run(fixture: &Value) -> Value {
    let cache = SignatureCache::new(100);
    let request_json = if fixture.get("request").is_some() && fixture.get("messages").is_none() {
        let signatures = &fixture["signatures"];
        for (id, entry) in signatures["tool_calls"].as_object().into_iter().flatten() {
            cache.remember_tool_call(
                id,
                entry["signature"].as_str().unwrap(),
                family(entry["family"].as_str().unwrap()),
            );
        }
        for entry in signatures["thinking"].as_array().into_iter().flatten() {
            cache.remember_thinking(
                entry["text"].as_str().unwrap(),
                entry["signature"].as_str().unwrap(),
                family(entry["family"].as_str().unwrap()),
            );
        }
        fixture["request"].clone()
    } else {
        fixture.clone()
    };
    let request: ChatRequest = match parse_json(request_json.to_string().as_bytes()) {
        Ok(request) => request,
        Err(err) => return json!({"parse_error": err.message()}),
    };
    match openai::request_to_conversation(request).and_then(|conversation| {
        translate(&conversation, &cache, None, crate::Profile::Antigravity)
    }) {
        Ok(translated) => {
            let mut body = serde_json::to_value(&translated.request).unwrap();
            // The session id is a hash; assert its presence and shape, not its value.
            let session = body["sessionId"].take();
            assert!(
                session.as_str().is_some_and(|s| s.starts_with('-')),
                "{session}"
            );
            body.as_object_mut().unwrap().remove("sessionId");
            json!({"upstream_model": translated.spec.upstream, "request": body})
        }
        Err(err) => json!({
            "status": err.status().as_u16(),
            "message": err.message(),
            "param": err.param(),
        }),
    }
}

#[test]
fn golden_requests() {
    insta::glob!("../../test_data", "requests/*.json", |path| {
        let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        insta::assert_json_snapshot!(run(&fixture));
    });
}

#[test]
fn session_id_is_stable_per_conversation() {
    let cache = SignatureCache::new(10);
    let first: ChatRequest =
        parse_json(br#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#).unwrap();
    let later: ChatRequest = parse_json(
        br#"{"model":"m","messages":[{"role":"user","content":"hello"},{"role":"assistant","content":"hi"},{"role":"user","content":"more"}]}"#,
    )
    .unwrap();
    let other: ChatRequest =
        parse_json(br#"{"model":"m","messages":[{"role":"user","content":"bye"}]}"#).unwrap();
    let session = |r: &ChatRequest, conversation| {
        let r = openai::request_to_conversation(r.clone()).unwrap();
        translate(&r, &cache, conversation, crate::Profile::Antigravity)
            .unwrap()
            .request
            .session_id
    };
    assert_eq!(session(&first, None), session(&later, None));
    assert_ne!(session(&first, None), session(&other, None));
    assert_eq!(
        session(&first, Some("conv-1")),
        session(&other, Some("conv-1"))
    );
}
