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
use serde::Serialize;
use serde_json::Value;

use gateway_core::{
    Body, Dialect, ErrorKind, GatewayError, anthropic,
    conversation::{self, Event},
    dialect::{Tracker, error_in_body},
    gemini,
    openai::{self, ChatCompletionChunk, ChunkDecoder, ChunkEncoder, parse_json},
    responses::{self, ReasoningSeal},
    sse,
};

/// Whether requests of `dialect` can be decoded into the conversation (and answers encoded back),
/// and whether an upstream of `dialect` can be asked in it.
pub(crate) fn supports(dialect: Dialect) -> bool {
    !matches!(dialect, Dialect::Passthrough)
}

fn unsupported(dialect: Dialect) -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        format!("{dialect:?} requests are passed through, not converted"),
    )
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(format!("cannot encode json: {e}")))
}

/// What the gateway knows of a client beyond its dialect.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The protocol it speaks.
    pub(crate) dialect: Dialect,
    /// Gemini streams: server-sent events (`alt=sse`) rather than one streamed JSON array.
    pub(crate) sse: bool,
    /// Responses clients: custom tools offered to the backend as functions, by name, so their
    /// calls come back as custom tool calls.
    pub(crate) custom_tools: Vec<String>,
}

impl Client {
    /// A client of `dialect` that asked with `query`.
    pub(crate) fn new(dialect: Dialect, query: Option<&str>) -> Self {
        let sse = query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
        Self {
            dialect,
            sse,
            custom_tools: Vec::new(),
        }
    }

    /// Prepare `request` for a backend: Responses custom tools become functions (remembered,
    /// to turn the calls back).
    pub(crate) fn prepare(&mut self, request: &mut conversation::Request) {
        if self.dialect == Dialect::Responses {
            self.custom_tools = responses::custom_tools_as_functions(request);
        }
    }
}

/// A client's request body of `dialect` as a conversation. Gemini clients name the model and
/// whether to stream in the path (`model`, `stream`).
pub(crate) fn decode_request(
    dialect: Dialect,
    body: &[u8],
    path: Option<(&str, bool)>,
    seal: &ReasoningSeal,
) -> Result<conversation::Request, GatewayError> {
    match dialect {
        Dialect::OpenAiChat => openai::request_to_conversation(parse_json(body)?),
        Dialect::Anthropic => anthropic::request_to_conversation(parse_json(body)?),
        Dialect::Responses => responses::request_to_conversation(parse_json(body)?, Some(seal)),
        Dialect::Gemini => {
            let (model, stream) = path.unwrap_or_default();
            gemini::request_to_conversation(parse_json(body)?, model, stream)
        }
        Dialect::Passthrough => Err(unsupported(dialect)),
    }
}

/// A Gemini `countTokens` body (`{contents}` or `{generateContentRequest}`) as a conversation.
pub(crate) fn decode_gemini_count(
    body: &[u8],
    model: &str,
) -> Result<conversation::Request, GatewayError> {
    let count: gemini::CountTokensRequest = parse_json(body)?;
    gemini::request_to_conversation(count.into_generate_content_request(), model, false)
}

/// Anthropic requires an output limit; a conversation from a protocol where it is optional gets
/// this one (every current Claude model accepts it).
const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 8192;

/// The request to send an upstream of `dialect`: the path below its base URL and the body. A
/// streamed request asks for usage, so the answer can report it.
pub(crate) fn encode_request(
    dialect: Dialect,
    request: &conversation::Request,
) -> Result<(String, Bytes), GatewayError> {
    let mut request = request.clone();
    request.stream_usage |= request.stream;
    match dialect {
        Dialect::OpenAiChat => Ok((
            "/chat/completions".to_owned(),
            to_json(&openai::request_from_conversation(&request))?,
        )),
        Dialect::Anthropic => {
            let mut wire = anthropic::request_from_conversation(&request);
            wire.max_tokens.get_or_insert(ANTHROPIC_DEFAULT_MAX_TOKENS);
            Ok(("/messages".to_owned(), to_json(&wire)?))
        }
        Dialect::Responses => Ok((
            "/responses".to_owned(),
            to_json(&responses::request_from_conversation(&request))?,
        )),
        Dialect::Gemini => {
            let method = if request.stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            Ok((
                format!("/models/{}:{method}", request.model),
                to_json(&gemini::request_from_conversation(&request))?,
            ))
        }
        Dialect::Passthrough => Err(unsupported(dialect)),
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
    Ok(match dialect {
        Dialect::OpenAiChat => {
            openai::response_to_conversation(parse_json(body).map_err(protocol)?)
        }
        Dialect::Anthropic => {
            anthropic::response_to_conversation(parse_json(body).map_err(protocol)?)
        }
        Dialect::Responses => {
            responses::response_to_conversation(parse_json(body).map_err(protocol)?)
        }
        Dialect::Gemini => gemini::response_to_conversation(parse_json(body).map_err(protocol)?),
        Dialect::Passthrough => return Err(unsupported(dialect)),
    })
}

/// A conversation response as `client` expects it, for `model`.
pub(crate) fn encode_response(
    client: &Client,
    response: &conversation::Response,
    model: &str,
    seal: &ReasoningSeal,
) -> Result<Bytes, GatewayError> {
    match client.dialect {
        Dialect::OpenAiChat => to_json(&openai::response_from_conversation(response, model)),
        Dialect::Anthropic => to_json(&anthropic::response_from_conversation(response, model)),
        Dialect::Responses => {
            let mut response = response.clone();
            responses::custom_calls_from_functions(&mut response, &client.custom_tools);
            to_json(&responses::response_from_conversation(
                &response,
                model,
                Some(seal),
            ))
        }
        Dialect::Gemini => to_json(&gemini::response_from_conversation(response, model)),
        Dialect::Passthrough => Err(unsupported(client.dialect)),
    }
}

/// A token count as the client of `dialect` expects it.
pub(crate) fn encode_count(dialect: Dialect, tokens: u64) -> Value {
    match dialect {
        Dialect::Gemini => serde_json::json!({ "totalTokens": tokens }),
        Dialect::Responses => {
            serde_json::json!({ "object": "response.input_tokens", "input_tokens": tokens })
        }
        _ => serde_json::json!({ "input_tokens": tokens }),
    }
}

/// Conversation events in the encoding of one client dialect.
#[derive(Debug)]
pub(crate) enum Encoder {
    /// OpenAI Chat chunks, `[DONE]` after a clean end.
    OpenAi(ChunkEncoder),
    /// Anthropic's named events.
    Anthropic(anthropic::StreamEncoder),
    /// Responses' named events with sequence numbers.
    Responses(Box<responses::StreamEncoder>),
    /// Gemini chunks, as server-sent events or one streamed JSON array.
    Gemini {
        encoder: gemini::StreamEncoder,
        array: Option<gemini::JsonArrayEncoder>,
    },
}

impl Encoder {
    /// The encoder for `client`, answering as `model` with response `id`.
    pub(crate) fn for_client(
        client: &Client,
        request: &conversation::Request,
        model: &str,
        id: String,
        created: u64,
        seal: &ReasoningSeal,
    ) -> Result<Self, GatewayError> {
        Ok(match client.dialect {
            Dialect::OpenAiChat => {
                Self::OpenAi(ChunkEncoder::new(id, created, model, request.stream_usage))
            }
            Dialect::Anthropic => Self::Anthropic(anthropic::StreamEncoder::new(id, model)),
            Dialect::Responses => Self::Responses(Box::new(
                responses::StreamEncoder::new(id, model, created, Some(seal.clone()))
                    .custom_tools(client.custom_tools.clone()),
            )),
            Dialect::Gemini => Self::Gemini {
                encoder: gemini::StreamEncoder::new(model, id),
                array: (!client.sse).then(gemini::JsonArrayEncoder::new),
            },
            Dialect::Passthrough => return Err(unsupported(client.dialect)),
        })
    }

    /// An encoder of the server-sent events of `dialect` (Anthropic, Responses or Gemini) for
    /// answer `id` of `model` that a rescue continues: fed the events the client already has,
    /// with the output dropped, it stands where the client's stream stands.
    pub(crate) fn resumed(
        dialect: Dialect,
        id: &str,
        model: &str,
        seal: &ReasoningSeal,
    ) -> Option<Self> {
        match dialect {
            Dialect::Anthropic => Some(Self::Anthropic(anthropic::StreamEncoder::new(id, model))),
            Dialect::Responses => Some(Self::Responses(Box::new(responses::StreamEncoder::new(
                id,
                model,
                0,
                Some(seal.clone()),
            )))),
            Dialect::Gemini => Some(Self::Gemini {
                encoder: gemini::StreamEncoder::new(model, id),
                array: None,
            }),
            Dialect::OpenAiChat | Dialect::Passthrough => None,
        }
    }

    /// The content type of the encoded stream.
    pub(crate) fn content_type(&self) -> &'static str {
        match self {
            Self::Gemini { array: Some(_), .. } => "application/json",
            _ => "text/event-stream",
        }
    }

    /// Append the wire form of `event`.
    pub(crate) fn push(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        match self {
            Self::OpenAi(encoder) => chunks(encoder.push(event)?, out),
            Self::Anthropic(encoder) => named(encoder.push(event)?, out),
            Self::Responses(encoder) => named(encoder.push(event)?, out),
            Self::Gemini { encoder, array } => gemini_chunks(encoder.push(event)?, array, out),
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
            Self::Anthropic(encoder) => named(encoder.finish()?, out),
            Self::Responses(encoder) => named(encoder.finish()?, out),
            Self::Gemini { encoder, array } => {
                gemini_chunks(encoder.finish()?, array, out)?;
                if let Some(array) = array {
                    array.finish(out);
                }
                Ok(())
            }
        }
    }

    /// The terminal error event for `err`.
    pub(crate) fn error_event(&self, err: &GatewayError) -> Vec<u8> {
        match self {
            Self::OpenAi(_) => tracker_event(Dialect::OpenAiChat, err),
            Self::Anthropic(_) => tracker_event(Dialect::Anthropic, err),
            Self::Responses(encoder) => {
                let mut out = Vec::new();
                let event = serde_json::json!({
                    "type": "response.failed",
                    "sequence_number": encoder.next_sequence_number(),
                    "response": {
                        "object": "response",
                        "status": "failed",
                        "error": {
                            "code": if err.status().as_u16() == 429 { "rate_limit_exceeded" } else { "server_error" },
                            "message": err.message(),
                        },
                        "output": [],
                    },
                });
                out.extend_from_slice(b"event: response.failed\n");
                sse::encode_data_line(event.to_string().as_bytes(), &mut out);
                out
            }
            Self::Gemini { array: None, .. } => tracker_event(Dialect::Gemini, err),
            Self::Gemini { array: Some(_), .. } => {
                // Inside the streamed array: one more element carrying the error, then its end.
                let mut out = b",\r\n".to_vec();
                out.extend_from_slice(Dialect::Gemini.envelope(err).to_string().as_bytes());
                out.push(b']');
                out
            }
        }
    }
}

fn tracker_event(dialect: Dialect, err: &GatewayError) -> Vec<u8> {
    Tracker::new(dialect).error_event(err).unwrap_or_default()
}

fn chunks(chunks: Vec<ChatCompletionChunk>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
    for chunk in chunks {
        let json = serde_json::to_vec(&chunk)
            .map_err(|e| GatewayError::internal(format!("cannot encode a chunk: {e}")))?;
        sse::encode_data_line(&json, out);
    }
    Ok(())
}

fn named(events: Vec<sse::Event>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
    for event in &events {
        sse::encode(event, out);
    }
    Ok(())
}

fn gemini_chunks(
    chunks: Vec<gemini::GenerateContentResponse>,
    array: &mut Option<gemini::JsonArrayEncoder>,
    out: &mut Vec<u8>,
) -> Result<(), GatewayError> {
    for chunk in &chunks {
        match array {
            Some(array) => array.push(chunk, out)?,
            None => sse::encode(&gemini::StreamEncoder::to_sse(chunk)?, out),
        }
    }
    Ok(())
}

/// Decodes one upstream event of a dialect into conversation events.
#[derive(Debug)]
pub(crate) enum Decoder {
    OpenAi(ChunkDecoder),
    Anthropic(anthropic::StreamDecoder),
    Responses(responses::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl Decoder {
    /// The decoder of `dialect`'s stream events.
    pub(crate) fn new(dialect: Dialect) -> Result<Self, GatewayError> {
        Ok(match dialect {
            Dialect::OpenAiChat => Self::OpenAi(ChunkDecoder::new()),
            Dialect::Anthropic => Self::Anthropic(anthropic::StreamDecoder::new()),
            Dialect::Responses => Self::Responses(responses::StreamDecoder::new()),
            Dialect::Gemini => Self::Gemini(gemini::StreamDecoder::new()),
            Dialect::Passthrough => return Err(unsupported(dialect)),
        })
    }

    /// The conversation events of one upstream event.
    pub(crate) fn event(&mut self, event: &sse::Event) -> Result<Vec<Event>, GatewayError> {
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
            Self::Anthropic(decoder) => decoder.push(event),
            Self::Responses(decoder) => decoder.push(event),
            Self::Gemini(decoder) => {
                let value: Value = serde_json::from_str(&event.data).map_err(malformed)?;
                if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
                    return Err(error_in_body(error, &value));
                }
                let chunk: gemini::GenerateContentResponse =
                    serde_json::from_value(value).map_err(malformed)?;
                decoder.push(&chunk)
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<Event>, GatewayError> {
        match self {
            Self::OpenAi(decoder) => decoder.finish(),
            Self::Anthropic(decoder) => decoder.finish(),
            Self::Responses(decoder) => decoder.finish(),
            Self::Gemini(decoder) => decoder.finish(),
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
        let decoder = Decoder::new(dialect)?;
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
