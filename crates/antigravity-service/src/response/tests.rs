//! Golden stream tests: one snapshot per fixture under `test_data/streams/`, and the same result
//! when the upstream bytes arrive split at every byte offset.
//!
//! In fixtures, `MCP_TOOL` stands for the upstream name of the client's `mcp.server/tool`.

use std::{pin::Pin, sync::Arc};

use bytes::Bytes;
use futures_core::Stream;
use serde_json::{Value, json};

use gateway_core::{GatewayError, body, openai::ChatCompletionChunk};

use super::*;
use crate::service::UpstreamEvents;
use gateway_core::openai::ChunkEncoder;

fn names() -> ToolNames {
    let mut names = ToolNames::default();
    names.upstream("get_weather");
    names.upstream("mcp.server/tool");
    names
}

/// The translator as an OpenAI client's request sees it: events encoded by the OpenAI dialect.
fn translator(cache: Arc<SignatureCache>) -> StreamTranslator {
    StreamTranslator::new(
        "chatcmpl-test".to_owned(),
        "gemini-3-pro".to_owned(),
        names(),
        Family::Gemini3,
        cache,
    )
}

fn encoder() -> ChunkEncoder {
    ChunkEncoder::new("chatcmpl-test", 1_700_000_000, "gemini-3-pro", true)
}

fn fixture(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap();
    let mcp = names().upstream("mcp.server/tool");
    String::from_utf8(text)
        .unwrap()
        .replace("MCP_TOOL", &mcp)
        .into_bytes()
}

/// Run `pieces` through the real chunk stream and collect what a client would see.
async fn run_pieces(
    pieces: Vec<Bytes>,
    cache: Arc<SignatureCache>,
) -> Vec<Result<ChatCompletionChunk, GatewayError>> {
    let frames = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, GatewayError>));
    let mut stream = UpstreamEvents::new(body::from_stream(frames), translator(cache));
    let mut encoder = encoder();
    let mut out = Vec::new();
    let mut ended = false;
    while let Some(item) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        match item.and_then(|event| encoder.push(event)) {
            Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
            Err(err) => {
                out.push(Err(err));
                ended = true;
                break;
            }
        }
        assert!(out.len() < 1000);
    }
    if !ended {
        match encoder.finish() {
            Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
            Err(err) => out.push(Err(err)),
        }
    }
    out
}

fn render(items: &[Result<ChatCompletionChunk, GatewayError>]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| match item {
                Ok(chunk) => serde_json::to_value(chunk).unwrap(),
                Err(err) => json!({"error": {
                    "kind": format!("{:?}", err.kind()),
                    "status": err.status().as_u16(),
                    "message": err.message(),
                    "retry_after_secs": err.retry_after().map(|d| d.as_secs()),
                }}),
            })
            .collect(),
    )
}

#[tokio::test]
async fn golden_streams() {
    let mut cases = Vec::new();
    insta::glob!("../../test_data", "streams/*.sse", |path| {
        cases.push(path.to_path_buf());
    });
    assert!(cases.len() >= 15, "{} stream fixtures", cases.len());
    for path in cases {
        let bytes = fixture(&path);
        let whole = render(
            &run_pieces(
                vec![Bytes::from(bytes.clone())],
                Arc::new(SignatureCache::new(10)),
            )
            .await,
        );
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_suffix => name.clone(), input_file => &path}, {
            insta::assert_json_snapshot!("golden_streams", whole);
        });
        for at in 0..=bytes.len() {
            let pieces = vec![
                Bytes::copy_from_slice(&bytes[..at]),
                Bytes::copy_from_slice(&bytes[at..]),
            ];
            let split = render(&run_pieces(pieces, Arc::new(SignatureCache::new(10))).await);
            assert_eq!(split, whole, "{name} split at byte {at}");
        }
    }
}

#[tokio::test]
async fn exactly_one_finish_chunk_and_usage_last() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/streams/thinking_then_text.sse");
    let items = run_pieces(
        vec![Bytes::from(fixture(&path))],
        Arc::new(SignatureCache::new(10)),
    )
    .await;
    let chunks: Vec<ChatCompletionChunk> = items.into_iter().map(Result::unwrap).collect();
    let finishes = chunks
        .iter()
        .filter(|c| c.choices.iter().any(|ch| ch.finish_reason.is_some()))
        .count();
    assert_eq!(finishes, 1);
    assert_eq!(
        chunks[0].choices[0].delta.role,
        Some(gateway_core::openai::Role::Assistant)
    );
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().completion_tokens, 12);
}

#[tokio::test]
async fn signatures_are_remembered_for_the_next_turn() {
    let cache = Arc::new(SignatureCache::new(10));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/streams/thinking_then_text.sse");
    run_pieces(vec![Bytes::from(fixture(&path))], cache.clone()).await;
    assert_eq!(
        cache
            .thinking("The user greets me. I should greet back.", Family::Gemini3)
            .as_deref(),
        Some("sig-thinking-1")
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/streams/function_call_with_signature.sse");
    run_pieces(vec![Bytes::from(fixture(&path))], cache.clone()).await;
    assert_eq!(
        cache.tool_call("toolu_vrtx_01", Family::Gemini3).as_deref(),
        Some("CiQBjz1rX-function-sig")
    );
}

#[tokio::test]
async fn the_collector_keeps_order_and_calls() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/streams/parallel_function_calls.sse");
    let items = run_pieces(
        vec![Bytes::from(fixture(&path))],
        Arc::new(SignatureCache::new(10)),
    )
    .await;
    let _ = items;
    let frames = futures_util::stream::iter([Ok::<_, GatewayError>(Bytes::from(fixture(&path)))]);
    let events: gateway_core::conversation::EventStream = Box::pin(UpstreamEvents::new(
        body::from_stream(frames),
        translator(Arc::new(SignatureCache::new(10))),
    ));
    let answer = gateway_core::conversation::Collector::collect(events, 1_700_000_000)
        .await
        .unwrap();
    let completion = gateway_core::openai::response_from_conversation(&answer, "gemini-3-pro");
    insta::assert_json_snapshot!(serde_json::to_value(completion).unwrap());
}
