//! What the protocol modules share where the logic does not depend on the protocol: the serde
//! shapes several dialects use (a string or a list, a mode or an object), the round trip of
//! usage objects through hints, the numbering of stream blocks, and the errors every decoder and
//! encoder reports alike. Crate-private: each protocol module exposes its own types.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::{ErrorKind, GatewayError, conversation as conv, openai::ToolChoiceMode};

// ---------------------------------------------------------------------------------------------
// Serde shapes
// ---------------------------------------------------------------------------------------------

/// A JSON string (`text`) or array (`list` of its items): message content, stop sequences,
/// Responses input. Anything else is an error that says it expected `expecting`.
pub(crate) fn string_or_list<'de, D, T, I>(
    deserializer: D,
    expecting: &'static str,
    text: fn(String) -> T,
    list: fn(Vec<I>) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    I: Deserialize<'de>,
{
    struct StringOrList<T, I> {
        expecting: &'static str,
        text: fn(String) -> T,
        list: fn(Vec<I>) -> T,
        item: PhantomData<I>,
    }
    impl<'de, T, I: Deserialize<'de>> Visitor<'de> for StringOrList<T, I> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.text)(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
            Ok((self.text)(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(self.list)
        }
    }
    deserializer.deserialize_any(StringOrList {
        expecting,
        text,
        list,
        item: PhantomData,
    })
}

/// A `tool_choice` of OpenAI Chat or Responses: a [`ToolChoiceMode`] string (`mode`) or an
/// object naming a tool (`named`).
pub(crate) fn mode_or_named<'de, D, T, N>(
    deserializer: D,
    mode: fn(ToolChoiceMode) -> T,
    named: fn(N) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    N: Deserialize<'de>,
{
    struct ModeOrNamed<T, N> {
        mode: fn(ToolChoiceMode) -> T,
        named: fn(N) -> T,
    }
    impl<'de, T, N: Deserialize<'de>> Visitor<'de> for ModeOrNamed<T, N> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"none\", \"auto\", \"required\" or a tool choice object")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            ToolChoiceMode::deserialize(de::value::StrDeserializer::new(v)).map(self.mode)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            N::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.named)
        }
    }
    deserializer.deserialize_any(ModeOrNamed { mode, named })
}

/// The JSON of a wire value (serializing these types cannot fail; `null` if it ever did).
pub(crate) fn json_of<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Field `key` taken out of `fields` when it parses as `T` (left in place otherwise).
pub(crate) fn take_typed<T: DeserializeOwned>(
    fields: &mut Map<String, Value>,
    key: &str,
) -> Option<T> {
    let typed = serde_json::from_value(fields.get(key)?.clone()).ok()?;
    fields.remove(key);
    Some(typed)
}

// ---------------------------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------------------------

/// A 400 for the request field `param`.
pub(crate) fn invalid(message: impl Into<String>, param: impl Into<String>) -> GatewayError {
    GatewayError::invalid_request(message).with_param(param)
}

/// Whether any of `parts` is a tool call (finish reasons depend on it).
pub(crate) fn has_calls(parts: &[conv::Part]) -> bool {
    parts
        .iter()
        .any(|p| matches!(p, conv::Part::ToolCall { .. }))
}

/// A media type for bare base64 file data, from the file name (OpenAI Chat and Responses).
pub(crate) fn guess_file_mime(filename: Option<&str>) -> &'static str {
    let extension = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("md") => "text/markdown",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        _ => "application/octet-stream",
    }
}

/// A protocol's usage object and its neutral counts. The conversion keeps the original object
/// as hint `usage` when the plain form of its counts would differ from it, and gives it back
/// while the counts are unchanged.
pub(crate) trait WireUsage: Serialize + DeserializeOwned + PartialEq {
    /// The protocol the `usage` hint belongs to.
    const PROTOCOL: conv::Protocol;

    /// The neutral counts, without extras.
    fn counts(&self) -> conv::Usage;

    /// The plain form of neutral counts.
    fn from_counts(usage: &conv::Usage) -> Self;

    /// Neutral usage; the original rides in a hint when its plain form differs.
    fn to_conversation(&self) -> conv::Usage {
        let mut neutral = self.counts();
        let mut hints = Map::new();
        conv::Extras::keep_if_lossy(&mut hints, "usage", self, &Self::from_counts(&neutral));
        neutral.extra = conv::Extras::new(Self::PROTOCOL, Map::new(), hints);
        neutral
    }

    /// The kept original while it still says `usage`'s counts, else the plain form.
    fn from_conversation(usage: &conv::Usage) -> Self {
        let counts = conv::Usage {
            extra: conv::Extras::default(),
            ..usage.clone()
        };
        usage
            .extra
            .kept(Self::PROTOCOL, "usage", &counts, |raw: &Self| {
                Some(raw.counts())
            })
            .unwrap_or_else(|| Self::from_counts(usage))
    }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

/// An encoder was told the stream ended before a finish reason came.
pub(crate) fn unfinished() -> GatewayError {
    GatewayError::new(
        ErrorKind::Truncated,
        "the stream ended without a finish reason",
    )
}

/// An upstream's stream ended before it gave a finish reason.
pub(crate) fn upstream_unfinished() -> GatewayError {
    GatewayError::new(
        ErrorKind::Truncated,
        "the upstream stream ended without a finish reason",
    )
}

/// The neutral blocks of a decoder whose upstream does not number them (OpenAI Chat, Gemini):
/// blocks of kind `K` numbered 0, 1, ... as they start, one open at a time.
#[derive(Debug)]
pub(crate) struct Blocks<K> {
    next: u32,
    /// The open block: its kind and index.
    pub(crate) open: Option<(K, u32)>,
}

impl<K> Default for Blocks<K> {
    fn default() -> Self {
        Self {
            next: 0,
            open: None,
        }
    }
}

impl<K: Copy + PartialEq> Blocks<K> {
    /// The open block of `kind`, or a new one.
    pub(crate) fn enter(&mut self, kind: K, events: &mut Vec<conv::Event>) -> u32 {
        match self.open {
            Some((open, index)) if open == kind => index,
            _ => self.start(kind, events),
        }
    }

    /// A new block of `kind`; the open one ends first.
    pub(crate) fn start(&mut self, kind: K, events: &mut Vec<conv::Event>) -> u32 {
        self.close(events);
        let index = self.next;
        self.next = self.next.saturating_add(1);
        self.open = Some((kind, index));
        index
    }

    /// The open block ends.
    pub(crate) fn close(&mut self, events: &mut Vec<conv::Event>) {
        if let Some((_, index)) = self.open.take() {
            events.push(conv::Event::BlockEnd { index });
        }
    }

    /// The upstream stream ended: the open block ends. A stream that never `finished` is a
    /// `Truncated` error.
    pub(crate) fn end_stream(&mut self, finished: bool) -> Result<Vec<conv::Event>, GatewayError> {
        let mut events = Vec::new();
        self.close(&mut events);
        if !finished {
            return Err(upstream_unfinished());
        }
        Ok(events)
    }
}
