//! Peek and route: read what routing needs from the client's body, and rebuild the body for a
//! hop that sends another model.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use gateway_core::{
    Dialect, GatewayError, conversation, openai::parse_json, responses::ReasoningSeal,
};

/// What the client asked for.
pub(crate) enum Routed {
    /// Parsed and validated in full into the conversation (a chain with an in-process hop).
    Conversation(Box<conversation::Request>),
    /// Any endpoint for a chain of HTTP upstreams: checked for what routing needs (valid JSON,
    /// a `model` string, a `stream` flag; for chat also a `messages` array) and otherwise left
    /// for the upstream to judge, without building a typed request.
    Peeked(Peek),
}

/// The part of a request routing needs.
#[derive(Debug, Deserialize)]
pub(crate) struct Peek {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    /// The model is named in the path (Gemini), not in the body.
    #[serde(skip)]
    in_path: bool,
}

/// The part of a chat request routing needs.
#[derive(Debug, Deserialize)]
struct ChatPeek {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[expect(
        dead_code,
        reason = "deserialised only to check that `messages` is an array"
    )]
    messages: Vec<serde::de::IgnoredAny>,
}

impl Routed {
    /// Peek at a body for `chat` (chat completions) or any other endpoint.
    pub(crate) fn peek(body: &[u8], chat: bool) -> Result<Self, GatewayError> {
        let peek = if chat {
            parse_json::<ChatPeek>(body).map(|p| Peek {
                model: p.model,
                stream: p.stream,
                in_path: false,
            })?
        } else {
            parse_json::<Peek>(body)?
        };
        if peek.model.trim().is_empty() {
            return Err(
                GatewayError::invalid_request("the request needs a model").with_param("model")
            );
        }
        Ok(Self::Peeked(peek))
    }

    /// A Gemini request: the model and whether to stream are in the path.
    pub(crate) fn in_path(model: &str, stream: bool) -> Self {
        Self::Peeked(Peek {
            model: model.to_owned(),
            stream: Some(stream),
            in_path: true,
        })
    }

    /// The request of `dialect` decoded into the conversation, for a chain with a hop that
    /// translates (the in-process service, or an upstream of another dialect).
    pub(crate) fn decode(
        dialect: Dialect,
        body: &[u8],
        path: Option<(&str, bool)>,
        seal: &ReasoningSeal,
    ) -> Result<Self, GatewayError> {
        let conversation = crate::convert::decode_request(dialect, body, path, seal)?;
        if conversation.model.trim().is_empty() {
            return Err(
                GatewayError::invalid_request("the request needs a model").with_param("model")
            );
        }
        Ok(Self::Conversation(Box::new(conversation)))
    }

    pub(crate) fn model(&self) -> &str {
        match self {
            Self::Conversation(request) => &request.model,
            Self::Peeked(peek) => &peek.model,
        }
    }

    pub(crate) fn stream(&self) -> bool {
        match self {
            Self::Conversation(request) => request.stream,
            Self::Peeked(peek) => peek.stream.unwrap_or(false),
        }
    }

    /// The body for a hop that sends `model`: the client's own bytes when the model is the one
    /// it asked for (no re-serialisation on the pass-through path), else re-encoded.
    pub(crate) fn body_for(
        &self,
        model: &str,
        original: &Bytes,
        dialect: Dialect,
    ) -> Result<Bytes, GatewayError> {
        // Gemini names the model in the path: the body stays as it is.
        let in_path =
            matches!(self, Self::Peeked(peek) if peek.in_path) || dialect == Dialect::Gemini;
        if self.model() == model || in_path {
            return Ok(original.clone());
        }
        // Only the model changes: every other byte of the client's request stays as it was.
        let mut value: serde_json::Map<String, Value> = serde_json::from_slice(original)
            .map_err(|e| GatewayError::internal(format!("cannot re-read the request: {e}")))?;
        value.insert("model".to_owned(), Value::String(model.to_owned()));
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("cannot encode the request: {e}")))
    }
}
