//! [`Service`]: chat completions and the model list, served through Antigravity.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_core::Stream;
use http::{Request, Response, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde_json::Value;

use gateway_core::{
    Body, CallOptions, ChatBackend, ChatContext, ChatOutput, ErrorKind, Expect, GatewayError,
    Timeouts, Transport, body,
    conversation::{self, Collector, Event, EventStream},
    openai::{self, ChatCompletionChunk, ChatRequest, ChunkEncoder, Model, ModelList},
    retry::{RetryAllowance, Unlimited},
    sse,
};

use crate::{
    Profile,
    credentials::{Acquire, Credentials, Lease},
    request::translate,
    response::StreamTranslator,
    signatures::SignatureCache,
    wire::{AvailableModels, CodeAssistEnvelope, Envelope},
};

/// The default upstream base URLs, tried in order.
pub const DEFAULT_BASE_URLS: [&str; 2] = [
    "https://daily-cloudcode-pa.sandbox.googleapis.com",
    "https://daily-cloudcode-pa.googleapis.com",
];

/// The default `User-Agent` sent upstream.
pub const DEFAULT_USER_AGENT: &str = "antigravity/1.11.3 windows/amd64";

/// How the service talks to Antigravity.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The pool this service stands for: the request envelope and the model names.
    pub profile: Profile,
    /// Base URLs in order; 429, 5xx and connection failures move to the next one.
    pub base_urls: Vec<String>,
    /// `User-Agent` for upstream requests.
    pub user_agent: String,
    /// Time budgets for generate calls.
    pub timeouts: Timeouts,
    /// How many thought signatures to remember.
    pub signature_capacity: usize,
    /// A rate-limit hint up to this long is waited out on the same account (once); a longer one
    /// moves the call to the next account.
    pub short_retry_wait: Duration,
    /// Every upstream call after the first of a request (another base URL, a renewed token, a
    /// waited-out hint, another account) takes one retry from here; when it is spent the
    /// request ends with the error it has.
    pub retries: Arc<dyn RetryAllowance>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            profile: Profile::Antigravity,
            base_urls: DEFAULT_BASE_URLS.iter().map(|s| (*s).to_owned()).collect(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            timeouts: Timeouts::default(),
            signature_capacity: 10_000,
            short_retry_wait: Duration::from_secs(3),
            retries: Arc::new(Unlimited),
        }
    }
}

/// The in-process chat-completions service.
#[derive(Debug)]
pub struct Service<T, C> {
    transport: T,
    /// Shared with the streams, which report what the upstream said mid-stream.
    credentials: Arc<C>,
    config: ServiceConfig,
    cache: Arc<SignatureCache>,
}

impl<T: Transport, C: Credentials> Service<T, C> {
    /// A service sending through `transport` with accounts from `credentials`.
    pub fn new(transport: T, credentials: C, config: ServiceConfig) -> Self {
        Self {
            cache: Arc::new(SignatureCache::new(config.signature_capacity)),
            transport,
            credentials: Arc::new(credentials),
            config,
        }
    }

    /// The pool this service stands for.
    pub fn profile(&self) -> Profile {
        self.config.profile
    }

    /// The credentials in use (for admin views).
    pub fn credentials(&self) -> &C {
        &self.credentials
    }

    /// Serve one conversation: the upstream's answer as a stream of neutral events, for the
    /// caller to encode in its client's protocol (or collect, for a non-streaming request).
    ///
    /// Errors before the upstream stream starts are returned as `Err`; errors after it started
    /// end the event stream with an `Err` item. Dropping the stream aborts the upstream request
    /// and frees the account's slot.
    pub async fn generate(
        &self,
        request: &conversation::Request,
        context: &ChatContext,
    ) -> Result<Generation, GatewayError> {
        let translated = translate(
            request,
            &self.cache,
            context.conversation_id.as_deref(),
            self.config.profile,
        )?;
        let spec = &translated.spec;
        let request_type = if spec.image { "image_gen" } else { "agent" };
        let (response, lease) = self
            .open(
                &spec.upstream,
                context.conversation_id.as_deref(),
                request_type,
                &translated.request,
            )
            .await?;
        let translator = StreamTranslator::new(
            format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            request.model.clone(),
            translated.names,
            spec.family,
            self.cache.clone(),
        );
        // The stream holds the account's slot until it ends, and tells the pool about an error
        // the upstream sends inside its 200 stream (a quota event cools that account too).
        let credentials = self.credentials.clone();
        let model = spec.upstream.clone();
        let account = lease.account.clone();
        let reporter: Reporter = Box::new(move |err| credentials.report(&lease, &model, Err(err)));
        Ok(Generation {
            events: Box::pin(
                UpstreamEvents::new(response.into_body(), translator).reporting(reporter),
            ),
            account,
        })
    }

    /// Serve one OpenAI chat completion: a whole completion, or a chunk stream without
    /// `[DONE]`. The OpenAI dialect over [`generate`](Self::generate).
    pub async fn chat(
        &self,
        request: ChatRequest,
        context: ChatContext,
    ) -> Result<ChatOutput, GatewayError> {
        let stream = request.is_stream();
        let include_usage = request.include_usage();
        let conversation = openai::request_to_conversation(request)?;
        let events = self.generate(&conversation, &context).await?.events;
        let created = unix_now();
        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        if stream {
            let encoder = ChunkEncoder::new(id, created, conversation.model, include_usage);
            return Ok(ChatOutput::Stream(Box::pin(Chunks::new(events, encoder))));
        }
        let response = Collector::collect(events, created).await?;
        Ok(ChatOutput::Complete(Box::new(
            openai::response_from_conversation(&response, &conversation.model),
        )))
    }

    /// Open the upstream stream, moving between accounts as their answers require: a rejected
    /// token is renewed once; a short rate-limit hint is waited out once on the same account; a
    /// longer one, or a 403, moves to the next account. Each account is tried once per request,
    /// so the loop is bounded by the pool's size.
    async fn open(
        &self,
        model: &str,
        conversation: Option<&str>,
        request_type: &'static str,
        body: &crate::wire::GenerateRequest,
    ) -> Result<(Response<Body>, Lease), GatewayError> {
        let mut tried: Vec<String> = Vec::new();
        let mut lease = self
            .credentials
            .acquire(Acquire {
                model,
                conversation,
                exclude: &tried,
            })
            .await?;
        let mut renewed = false;
        let mut waited = false;
        loop {
            let encoded = match self.config.profile {
                Profile::Antigravity => serde_json::to_vec(&Envelope {
                    project: &lease.project_id,
                    model,
                    request_id: format!("agent/{}", uuid::Uuid::new_v4()),
                    user_agent: "antigravity",
                    request_type,
                    request: body,
                }),
                Profile::GeminiCli => serde_json::to_vec(&CodeAssistEnvelope {
                    model,
                    project: &lease.project_id,
                    user_prompt_id: uuid::Uuid::new_v4().simple().to_string(),
                    request: body,
                }),
            };
            let payload = Bytes::from(encoded.map_err(|e| {
                GatewayError::internal(format!("cannot encode the upstream request: {e}"))
            })?);
            let result = self
                .post(
                    "v1internal:streamGenerateContent?alt=sse",
                    &lease,
                    request_type,
                    payload,
                    Expect::EventStream,
                )
                .await;
            let err = match result {
                Ok(response) => {
                    self.credentials.report(&lease, model, Ok(()));
                    return Ok((response, lease));
                }
                Err(err) => err,
            };
            let status = err.upstream_status().map(|s| s.as_u16());
            // Whatever comes next is another upstream call: it needs the shared budget.
            let may_retry = || self.config.retries.try_retry();
            if status == Some(401) && !renewed && may_retry() {
                renewed = true;
                lease = self.credentials.renew(lease).await?;
                continue;
            }
            let short_hint = err
                .retry_after()
                .filter(|d| *d <= self.config.short_retry_wait);
            if status == Some(429)
                && !waited
                && !crate::pool::is_capacity_error(&err)
                && let Some(delay) = short_hint
                && may_retry()
            {
                waited = true;
                tokio::time::sleep(delay).await;
                continue;
            }
            self.credentials.report(&lease, model, Err(&err));
            let next_account_may_help = (status == Some(429)
                && !crate::pool::is_capacity_error(&err))
                || status == Some(403);
            if !next_account_may_help || !may_retry() {
                return Err(err);
            }
            tried.push(std::mem::take(&mut lease.account));
            drop(lease);
            lease = match self
                .credentials
                .acquire(Acquire {
                    model,
                    conversation,
                    exclude: &tried,
                })
                .await
            {
                Ok(next) => next,
                // Every account is cooling down: the pool's error says when the first frees up.
                Err(pool) if pool.kind() == ErrorKind::RateLimited => return Err(pool),
                Err(_) => return Err(err),
            };
            renewed = false;
            waited = false;
        }
    }

    /// The input tokens of `request` as the upstream counts them (`v1internal:countTokens`).
    pub async fn count_tokens(
        &self,
        request: &conversation::Request,
        context: &ChatContext,
    ) -> Result<u64, GatewayError> {
        let translated = translate(
            request,
            &self.cache,
            context.conversation_id.as_deref(),
            self.config.profile,
        )?;
        let model = translated.spec.upstream;
        let lease = self
            .credentials
            .acquire(Acquire {
                model: &model,
                conversation: context.conversation_id.as_deref(),
                exclude: &[],
            })
            .await?;
        let body = serde_json::json!({
            "request": {
                "model": format!("models/{model}"),
                "contents": translated.request.contents,
            }
        });
        let result = self
            .post(
                "v1internal:countTokens",
                &lease,
                "agent",
                Bytes::from(body.to_string()),
                Expect::Json,
            )
            .await;
        self.credentials
            .report(&lease, &model, result.as_ref().map(|_| ()));
        let bytes = result?.into_body().collect().await.map(|c| c.to_bytes())?;
        let counted: Value = serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("invalid token count from antigravity: {e}"),
            )
        })?;
        counted["totalTokens"].as_u64().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                "the token count from antigravity has no totalTokens",
            )
        })
    }

    /// The models the upstream offers to the first account, from `fetchAvailableModels` (a
    /// pool without that call, the Gemini CLI's, has a fixed list).
    pub async fn models(&self) -> Result<ModelList, GatewayError> {
        let owner = self.config.profile.name();
        if let Some(fixed) = self.config.profile.fixed_models() {
            return Ok(ModelList::new(
                fixed.iter().map(|id| Model::new(*id, owner)).collect(),
            ));
        }
        let lease = self
            .credentials
            .acquire(Acquire {
                model: "",
                conversation: None,
                exclude: &[],
            })
            .await?;
        let result = self
            .post(
                "v1internal:fetchAvailableModels",
                &lease,
                "agent",
                Bytes::from_static(b"{}"),
                Expect::Json,
            )
            .await;
        self.credentials
            .report(&lease, "", result.as_ref().map(|_| ()));
        let bytes = result?.into_body().collect().await.map(|c| c.to_bytes())?;
        let available: AvailableModels = serde_json::from_slice(&bytes).map_err(|e| {
            GatewayError::new(
                ErrorKind::UpstreamProtocol,
                format!("invalid model list from antigravity: {e}"),
            )
        })?;
        let mut ids: Vec<&String> = available.models.keys().collect();
        ids.sort();
        Ok(ModelList::new(
            ids.into_iter()
                .map(|id| Model::new(id.clone(), owner))
                .collect(),
        ))
    }

    /// POST `payload` to `{base}/{method}`, moving to the next base URL on 429, 5xx and
    /// connection failures.
    async fn post(
        &self,
        method: &str,
        lease: &Lease,
        request_type: &'static str,
        payload: Bytes,
        expect: Expect,
    ) -> Result<Response<Body>, GatewayError> {
        let mut last = None;
        for base in &self.config.base_urls {
            if last.is_some() && !self.config.retries.try_retry() {
                break;
            }
            let url = format!("{}/{method}", base.trim_end_matches('/'));
            let request = self.request(&url, lease, request_type, payload.clone(), expect)?;
            match self.transport.send(request).await {
                Ok(response) => return Ok(response),
                Err(err) if next_base_may_help(&err) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            GatewayError::new(
                ErrorKind::Unavailable,
                "no antigravity base url is configured",
            )
        }))
    }

    fn request(
        &self,
        url: &str,
        lease: &Lease,
        request_type: &'static str,
        payload: Bytes,
        expect: Expect,
    ) -> Result<Request<Body>, GatewayError> {
        let authorization = crate::credentials::bearer(&lease.access_token)?;
        let mut request = Request::post(url)
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, self.config.user_agent.as_str())
            .header(header::ACCEPT_ENCODING, "identity")
            .header("requestId", format!("req-{}", uuid::Uuid::new_v4()))
            .header("requestType", request_type)
            .body(body::full(payload))
            .map_err(|e| {
                GatewayError::invalid_request(format!("invalid antigravity url {url:?}: {e}"))
            })?;
        request.extensions_mut().insert(CallOptions {
            timeouts: self.config.timeouts,
            expect,
        });
        Ok(request)
    }
}

/// Another base URL is another front end: worth trying after a rate limit, a server error or a
/// connection failure, not after a client error or a silent upstream.
fn next_base_may_help(err: &GatewayError) -> bool {
    match err.kind() {
        ErrorKind::Connect | ErrorKind::ConnectTimeout | ErrorKind::Transport => true,
        ErrorKind::Upstream => err
            .upstream_status()
            .is_some_and(|s| s.as_u16() == 429 || s.is_server_error()),
        _ => false,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

impl<T: Transport, C: Credentials> ChatBackend for Service<T, C> {
    async fn chat(
        &self,
        request: ChatRequest,
        context: ChatContext,
    ) -> Result<ChatOutput, GatewayError> {
        Service::chat(self, request, context).await
    }

    async fn models(&self) -> Result<ModelList, GatewayError> {
        Service::models(self).await
    }

    fn is_available(&self) -> bool {
        self.credentials.is_available()
    }
}

/// An answer being served: its events, and the account that serves it.
pub struct Generation {
    /// The upstream's answer as neutral events.
    pub events: EventStream,
    /// The id of the account that serves it (its file name without `.json`), for accounting.
    pub account: String,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Events encoded as OpenAI chunks.
struct Chunks {
    events: EventStream,
    encoder: ChunkEncoder,
    queue: VecDeque<ChatCompletionChunk>,
    finished: bool,
}

impl Chunks {
    fn new(events: EventStream, encoder: ChunkEncoder) -> Self {
        Self {
            events,
            encoder,
            queue: VecDeque::new(),
            finished: false,
        }
    }
}

impl Stream for Chunks {
    type Item = Result<ChatCompletionChunk, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            let encoded = match ready!(self.events.as_mut().poll_next(cx)) {
                Some(Ok(event)) => self.encoder.push(event),
                Some(Err(err)) => Err(err),
                None => {
                    self.finished = true;
                    self.encoder.finish()
                }
            };
            match encoded {
                Ok(chunks) => self.queue.extend(chunks),
                Err(err) => {
                    self.finished = true;
                    self.queue.clear();
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}

/// The upstream body, decoded and translated one event at a time. Dropping it drops the body,
/// which aborts the upstream request.
/// Tells the account pool about an error inside the stream; owns the lease, so the account's
/// slot is held until the stream ends or is dropped.
type Reporter = Box<dyn FnMut(&GatewayError) + Send>;

pub(crate) struct UpstreamEvents {
    body: Body,
    reporter: Option<Reporter>,
    decoder: sse::Decoder,
    translator: StreamTranslator,
    queue: VecDeque<Event>,
    finished: bool,
}

impl UpstreamEvents {
    pub(crate) fn new(body: Body, translator: StreamTranslator) -> Self {
        Self {
            body,
            reporter: None,
            decoder: sse::Decoder::default(),
            translator,
            queue: VecDeque::new(),
            finished: false,
        }
    }

    fn reporting(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    fn fail(&mut self, err: GatewayError) -> Poll<Option<Result<Event, GatewayError>>> {
        if err.kind() == ErrorKind::Upstream
            && let Some(report) = self.reporter.as_mut()
        {
            report(&err);
        }
        self.finished = true;
        self.queue.clear();
        Poll::Ready(Some(Err(err)))
    }

    fn translate(&mut self, data: &str) -> Result<(), GatewayError> {
        let events = self.translator.event(data)?;
        self.queue.extend(events);
        Ok(())
    }
}

fn sse_error(err: sse::SseError) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamProtocol,
        format!("antigravity stream: {err}"),
    )
}

impl Stream for UpstreamEvents {
    type Item = Result<Event, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match self.decoder.next_event() {
                Ok(Some(event)) => {
                    if let Err(err) = self.translate(&event.data) {
                        return self.fail(err);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(err) => return self.fail(sse_error(err)),
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
                Some(Err(err)) => return self.fail(err),
                None => {
                    loop {
                        match self.decoder.finish() {
                            Ok(Some(event)) => {
                                if let Err(err) = self.translate(&event.data) {
                                    return self.fail(err);
                                }
                            }
                            Ok(None) => break,
                            Err(err) => return self.fail(sse_error(err)),
                        }
                    }
                    match self.translator.finish() {
                        Ok(events) => {
                            self.queue.extend(events);
                            self.finished = true;
                        }
                        Err(err) => return self.fail(err),
                    }
                }
            }
        }
    }
}
