//! Between protocols: a client's request into the conversation, the conversation into an
//! upstream's dialect, the upstream's answer back into conversation events, and the events into
//! the client's dialect.
//!
//! Each dialect is one arm per function here; the chain walk and the relay never know which
//! pair they are serving. The translations themselves live in `gateway-core`, one module per
//! protocol.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures_core::Stream;
use http_body::Body as _;
use serde_json::Value;

use gateway_core::{
    Body, Dialect, ErrorKind, GatewayError,
    conversation::{self, Event},
    dialect::error_in_body,
    openai::{self, ChatCompletionChunk, ChatRequest, ChunkDecoder, ChunkEncoder, parse_json},
    sse,
};

/// Whether requests of `dialect` can be decoded into the conversation (and answers encoded back),
/// and whether an upstream of `dialect` can be asked in it.
pub(crate) fn supports(dialect: Dialect) -> bool {
    matches!(dialect, Dialect::OpenAiChat)
}

fn unsupported(dialect: Dialect) -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        format!("{dialect:?} requests cannot be converted yet"),
    )
}

/// A client's request body of `dialect` as a conversation.
pub(crate) fn decode_request(
    dialect: Dialect,
    body: &[u8],
) -> Result<conversation::Request, GatewayError> {
    match dialect {
        Dialect::OpenAiChat => openai::request_to_conversation(parse_json::<ChatRequest>(body)?),
        other => Err(unsupported(other)),
    }
}

/// The request to send an upstream of `dialect`: the path below its base URL and the body. A
/// streamed request asks for usage, so the answer can report it.
pub(crate) fn encode_request(
    dialect: Dialect,
    request: &conversation::Request,
) -> Result<(String, Bytes), GatewayError> {
    let encode = |value: Result<Vec<u8>, serde_json::Error>| {
        value
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("cannot encode the request: {e}")))
    };
    match dialect {
        Dialect::OpenAiChat => {
            let mut request = request.clone();
            request.stream_usage |= request.stream;
            let body = encode(serde_json::to_vec(&openai::request_from_conversation(
                &request,
            )))?;
            Ok(("/chat/completions".to_owned(), body))
        }
        other => Err(unsupported(other)),
    }
}

/// A non-streaming upstream answer of `dialect` as a conversation response.
pub(crate) fn decode_response(
    dialect: Dialect,
    body: &[u8],
) -> Result<conversation::Response, GatewayError> {
    let protocol = |e: GatewayError| {
        GatewayError::new(
            ErrorKind::UpstreamProtocol,
            format!(
                "the upstream answer is not a valid {dialect:?} response: {}",
                e.message()
            ),
        )
    };
    match dialect {
        Dialect::OpenAiChat => Ok(openai::response_to_conversation(
            parse_json(body).map_err(protocol)?,
        )),
        other => Err(unsupported(other)),
    }
}

/// A conversation response as the client of `dialect` expects it, for `model`.
pub(crate) fn encode_response(
    dialect: Dialect,
    response: &conversation::Response,
    model: &str,
) -> Result<Value, GatewayError> {
    let value = match dialect {
        Dialect::OpenAiChat => {
            serde_json::to_value(openai::response_from_conversation(response, model))
        }
        other => return Err(unsupported(other)),
    };
    value.map_err(|e| GatewayError::internal(format!("cannot encode the response: {e}")))
}

/// Conversation events in the encoding of one client dialect.
#[derive(Debug)]
pub(crate) enum Encoder {
    /// OpenAI Chat chunks, `[DONE]` after a clean end.
    OpenAi(ChunkEncoder),
}

impl Encoder {
    /// The encoder for a client of `dialect` that asked `request`, answering as `model`.
    pub(crate) fn for_client(
        dialect: Dialect,
        request: &conversation::Request,
        model: &str,
        id: String,
        created: u64,
    ) -> Result<Self, GatewayError> {
        match dialect {
            Dialect::OpenAiChat => Ok(Self::OpenAi(ChunkEncoder::new(
                id,
                created,
                model,
                request.stream_usage,
            ))),
            other => Err(unsupported(other)),
        }
    }

    /// Append the wire form of `event`.
    pub(crate) fn push(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match self {
            Self::OpenAi(encoder) => chunks(encoder.push(event)?, out),
        }
    }

    /// Append what ends a clean stream.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match self {
            Self::OpenAi(encoder) => {
                chunks(encoder.finish()?, out)?;
                out.extend_from_slice(sse::DONE);
                Ok(())
            }
        }
    }

    /// The terminal error event for `err`.
    pub(crate) fn error_event(&self, err: &GatewayError) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::OpenAi(_) => sse::encode_error(err, &mut out),
        }
        out
    }
}

fn chunks(chunks: Vec<ChatCompletionChunk>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
    for chunk in chunks {
        let json = serde_json::to_vec(&chunk)
            .map_err(|e| GatewayError::internal(format!("cannot encode a chunk: {e}")))?;
        sse::encode_data_line(&json, out);
    }
    Ok(())
}

/// Decodes one upstream event of a dialect into conversation events.
#[derive(Debug)]
enum Decoder {
    OpenAi(ChunkDecoder),
}

impl Decoder {
    fn event(&mut self, event: &sse::Event) -> Result<Vec<Event>, GatewayError> {
        match self {
            Self::OpenAi(decoder) => {
                if event.is_done() {
                    return Ok(Vec::new());
                }
                let value: Value = serde_json::from_str(&event.data).map_err(malformed)?;
                if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
                    return Err(error_in_body(error, &value));
                }
                let chunk: ChatCompletionChunk =
                    serde_json::from_value(value).map_err(malformed)?;
                Ok(decoder.push(chunk))
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<Event>, GatewayError> {
        match self {
            Self::OpenAi(decoder) => decoder.finish(),
        }
    }
}

fn malformed(e: serde_json::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        format!("malformed event from the upstream: {e}"),
    )
}

/// An upstream event stream of one dialect, decoded into conversation events. Dropping it
/// drops the body, which aborts the upstream request.
pub(crate) struct Decoded {
    body: Body,
    sse: sse::Decoder,
    decoder: Decoder,
    queue: VecDeque<Event>,
    upstream_ended: bool,
    finished: bool,
}

impl Decoded {
    /// Decode `body`, an event stream of `dialect`.
    pub(crate) fn new(body: Body, dialect: Dialect) -> Result<Self, GatewayError> {
        let decoder = match dialect {
            Dialect::OpenAiChat => Decoder::OpenAi(ChunkDecoder::new()),
            other => return Err(unsupported(other)),
        };
        Ok(Self {
            body,
            sse: sse::Decoder::default(),
            decoder,
            queue: VecDeque::new(),
            upstream_ended: false,
            finished: false,
        })
    }

    fn fail(&mut self, err: GatewayError) -> Poll<Option<Result<Event, GatewayError>>> {
        self.finished = true;
        self.queue.clear();
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Decoded {
    type Item = Result<Event, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            let next = if this.upstream_ended {
                this.sse.finish()
            } else {
                this.sse.next_event()
            };
            match next {
                Ok(Some(event)) => match this.decoder.event(&event) {
                    Ok(events) => this.queue.extend(events),
                    Err(err) => return this.fail(err),
                },
                Ok(None) if this.upstream_ended => {
                    this.finished = true;
                    match this.decoder.finish() {
                        Ok(events) => this.queue.extend(events),
                        Err(err) => return this.fail(err),
                    }
                }
                Ok(None) => match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            this.sse.feed(&data);
                        }
                    }
                    Some(Err(err)) => return this.fail(err),
                    None => this.upstream_ended = true,
                },
                Err(err) => {
                    return this.fail(GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("upstream stream: {err}"),
                    ));
                }
            }
        }
    }
}
