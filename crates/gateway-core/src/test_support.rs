//! What the tests of the protocol modules share: JSON compared as clients read it, fixtures,
//! stream bytes read whole and split at every offset, decoders and encoders run over a whole
//! stream, and neutral events written briefly.

use std::{
    fmt::Debug,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    GatewayError,
    conversation::{Collector, Event, FinishReason, Response, Usage},
    sse,
};

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// `value` without `null` members: `null` and absent mean the same on these APIs.
pub(crate) fn strip_nulls(value: Value) -> Value {
    normalize(value, false)
}

/// [`strip_nulls`], and whole floats as integers: `1` and `1.0` mean the same too (a float field
/// sent as an integer).
pub(crate) fn strip_nulls_and_whole_floats(value: Value) -> Value {
    normalize(value, true)
}

fn normalize(value: Value, whole_floats: bool) -> Value {
    match value {
        Value::Number(n) if whole_floats && n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, normalize(v, whole_floats)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| normalize(v, whole_floats))
                .collect(),
        ),
        other => other,
    }
}

/// `again` serializes to the JSON of `original`, nulls aside.
pub(crate) fn same_json(again: &impl Serialize, original: &[u8]) {
    same_json_as(again, original, strip_nulls);
}

/// `again` serializes to the JSON of `original`, both read through `normalize`.
pub(crate) fn same_json_as(
    again: &impl Serialize,
    original: &[u8],
    normalize: impl Fn(Value) -> Value,
) {
    let original: Value = serde_json::from_slice(original).unwrap();
    assert_eq!(
        normalize(serde_json::to_value(again).unwrap()),
        normalize(original)
    );
}

/// `value` deserializes from its own JSON (the neutral form is stored and sent as JSON).
pub(crate) fn survives_serde<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(&serde_json::from_value::<T>(json).unwrap(), value);
}

/// An error as the stream snapshots record it; `null` for none.
pub(crate) fn error_json(error: Option<&GatewayError>) -> Value {
    error.map_or(Value::Null, |e| {
        json!({"kind": format!("{:?}", e.kind()), "status": e.status().as_u16(), "message": e.message()})
    })
}

// ---------------------------------------------------------------------------------------------
// Fixtures and streams
// ---------------------------------------------------------------------------------------------

/// The path of fixture `name` of a protocol's `test_data` folder (`openai`, `anthropic`, ...).
pub(crate) fn fixture_path(protocol: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(protocol)
        .join(name)
}

/// The bytes of fixture `name` of a protocol's `test_data` folder.
pub(crate) fn fixture(protocol: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(protocol, name)).unwrap()
}

/// The SSE events of a stream fed in `pieces`, the event left at its end included.
pub(crate) fn sse_events(pieces: &[&[u8]]) -> Vec<sse::Event> {
    let mut decoder = sse::Decoder::default();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(event) = decoder.next_event().unwrap() {
            events.push(event);
        }
    }
    events.extend(decoder.finish().unwrap());
    events
}

/// What `read` makes of `bytes` fed whole; fed in two pieces split at any byte offset, it must
/// make the same.
pub(crate) fn same_at_every_split<T: PartialEq + Debug>(
    bytes: &[u8],
    read: impl Fn(&[&[u8]]) -> T,
) -> T {
    let whole = read(&[bytes]);
    for at in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(at);
        assert_eq!(read(&[head, tail]), whole, "split at {at}");
    }
    whole
}

/// Run a stream decoder or encoder `state` over `items`: what it made, and the error that
/// ended the stream, if any (what it made before the error is kept).
pub(crate) fn run<S, T, O>(
    state: &mut S,
    items: impl IntoIterator<Item = T>,
    mut push: impl FnMut(&mut S, T) -> Result<Vec<O>, GatewayError>,
    finish: impl FnOnce(&mut S) -> Result<Vec<O>, GatewayError>,
) -> (Vec<O>, Option<GatewayError>) {
    let mut out = Vec::new();
    for item in items {
        match push(state, item) {
            Ok(more) => out.extend(more),
            Err(error) => return (out, Some(error)),
        }
    }
    match finish(state) {
        Ok(more) => {
            out.extend(more);
            (out, None)
        }
        Err(error) => (out, Some(error)),
    }
}

/// [`run`] for a stream that must not fail.
pub(crate) fn run_ok<S, T, O>(
    state: &mut S,
    items: impl IntoIterator<Item = T>,
    push: impl FnMut(&mut S, T) -> Result<Vec<O>, GatewayError>,
    finish: impl FnOnce(&mut S) -> Result<Vec<O>, GatewayError>,
) -> Result<Vec<O>, GatewayError> {
    match run(state, items, push, finish) {
        (out, None) => Ok(out),
        (_, Some(error)) => Err(error),
    }
}

/// Events folded into the response they make, created at `created`.
pub(crate) fn collect(
    created: u64,
    events: impl IntoIterator<Item = Event>,
) -> Result<Response, GatewayError> {
    let mut collector = Collector::new(created);
    for event in events {
        collector.push(event)?;
    }
    Ok(collector.finish())
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// [`Event::Start`].
pub(crate) fn start(id: &str, model: &str) -> Event {
    Event::Start {
        id: id.to_owned(),
        model: model.to_owned(),
    }
}

/// [`Event::TextDelta`].
pub(crate) fn text(index: u32, text: &str) -> Event {
    Event::TextDelta {
        index,
        text: text.to_owned(),
    }
}

/// [`Event::ThinkingDelta`].
pub(crate) fn thinking(index: u32, text: &str) -> Event {
    Event::ThinkingDelta {
        index,
        text: text.to_owned(),
    }
}

/// [`Event::Signature`].
pub(crate) fn signature(index: u32, signature: &str) -> Event {
    Event::Signature {
        index,
        signature: signature.to_owned(),
    }
}

/// [`Event::ToolCallStart`].
pub(crate) fn call(index: u32, id: &str, name: &str) -> Event {
    Event::ToolCallStart {
        index,
        id: id.to_owned(),
        name: name.to_owned(),
    }
}

/// [`Event::ToolCallDelta`].
pub(crate) fn args(index: u32, arguments: &str) -> Event {
    Event::ToolCallDelta {
        index,
        arguments: arguments.to_owned(),
    }
}

/// [`Event::BlockEnd`].
pub(crate) fn end(index: u32) -> Event {
    Event::BlockEnd { index }
}

/// [`Event::Usage`] with these counts.
pub(crate) fn usage(input: u64, output: u64, reasoning: u64, cached: u64) -> Event {
    Event::Usage(Usage {
        input_tokens: input,
        output_tokens: output,
        reasoning_tokens: reasoning,
        cache_read_tokens: cached,
        ..Usage::default()
    })
}

/// [`Event::Finish`].
pub(crate) fn finish(reason: FinishReason) -> Event {
    Event::Finish { reason }
}
