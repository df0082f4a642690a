//! Walk the chain: order the hops (open breakers last), attempt each, and after a failure ask
//! `classify` whether to retry the same hop, fail over, cool the hop down, or stop.
//!
//! Why the details: a breaker's probe is claimed only when a hop is really tried (a request
//! served by an earlier hop must not hold it); a retry the chain cannot afford (the retry
//! budget is spent, the deadline is near, the hop's breaker opened during this request) is
//! decided again as if the hop had no retries left, so the decision logged is the one taken; a
//! context-length refusal skips every later hop that sends the same model. With `hedge_after`,
//! a first content that is late starts the next hop in parallel: the first to produce content
//! serves, the other is cancelled and not counted as a failure.

use std::{collections::VecDeque, pin::pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response};
use tokio::time::Instant;
use wildmatch::WildMatch;

use gateway_core::{Body, Dialect, ErrorKind, GatewayError};

use super::{
    attempt::{Call, attempt},
    peek::Routed,
};
use crate::{
    app::App,
    breaker::{Settings, Ticket},
    classify::{Decision, Policy, attempt_label, blames_the_backend, classify},
    commit::rescue::{self, Counters, counters},
    config::{Config, Rescue, RouteConfig},
    convert::Client,
    dispatch::Endpoint,
    http::error_in,
    metrics::{AttemptLabels, FailoverLabels, HopLabels},
    routing::{Hop, Plan},
};

/// The client's request as every hop sees it.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) path_and_query: &'a str,
    pub(crate) kind: Endpoint,
    pub(crate) client: &'a Client,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) routed: &'a Routed,
    pub(crate) original: &'a Bytes,
}

/// The route `routing::plan` chose for `model` (the first whose patterns match), if any.
fn route_of<'c>(config: &'c Config, model: &str) -> Option<&'c RouteConfig> {
    config.routes.iter().find(|route| {
        route
            .models
            .iter()
            .any(|pattern| WildMatch::new_case_insensitive(pattern).matches(model))
    })
}

/// What stays the same for every attempt of one request.
struct Ctx<'a> {
    app: &'a Arc<App>,
    plan: &'a Plan,
    client: &'a Request<'a>,
    /// The conversation and headers a rescue needs, when the route rescues streams.
    rescue: Option<(rescue::Conversation, Arc<HeaderMap>)>,
    deadline: Instant,
}

/// What one walk has done so far.
struct Walk {
    started: Instant,
    /// Time spent in attempts, for the overhead metric.
    upstream: Duration,
    attempts: Vec<String>,
    last: Option<GatewayError>,
    /// After a context-length refusal: hops that send this model are skipped.
    not_model: Option<String>,
}

/// How one attempt (or hedged pair) ended.
enum Outcome {
    /// A hop answered: the response to send.
    Served(Response<Body>),
    /// The attempt failed; what to do next.
    Failed(Decision),
}

pub(crate) async fn walk(app: &Arc<App>, plan: &Plan, client: Request<'_>) -> Response<Body> {
    let request = client.routed;
    let started = Instant::now();
    app.budget.request();
    let route = route_of(&app.config, &plan.model);
    let hedge_after = route
        .and_then(|r| r.hedge_after)
        .filter(|_| request.stream());
    let rescues = route.map_or(Rescue::Continue, |r| r.rescue) == Rescue::Continue;
    // A stream can be continued on another hop when it is translated (the conversation is
    // there) or passed through in Chat, Anthropic or Gemini (its request is decoded if a
    // rescue needs it); the headers are kept for that once per request.
    let conversation = match request {
        _ if !rescues || !request.stream() || plan.hops.len() < 2 => None,
        Routed::Conversation(conversation) => Some(rescue::Conversation::Decoded(Arc::new(
            conversation.as_ref().clone(),
        ))),
        Routed::Peeked(_) => {
            let dialect = client.client.dialect;
            let generates = match dialect {
                Dialect::OpenAiChat => client.kind == Endpoint::ChatCompletions,
                Dialect::Anthropic => true,
                Dialect::Gemini => client.client.sse,
                // A request that names an earlier response or custom tools needs the regular
                // path's preparation to be decoded faithfully: not continued.
                Dialect::Responses => {
                    client.kind == Endpoint::Other
                        && !mentions(client.original, b"previous_response_id")
                        && !mentions(client.original, b"\"custom\"")
                }
                Dialect::Passthrough => false,
            };
            generates.then(|| {
                rescue::Conversation::Raw(Arc::new(rescue::RawRequest {
                    dialect,
                    body: client.original.clone(),
                    path: (dialect == Dialect::Gemini).then(|| (request.model().to_owned(), true)),
                }))
            })
        }
    };
    let ctx = Ctx {
        app,
        plan,
        client: &client,
        rescue: conversation.map(|c| (c, Arc::new(client.headers.clone()))),
        deadline: started + app.config.server.request_timeout,
    };
    // Hops whose breaker is open are left out; if that leaves nothing, they are all tried.
    let (usable, open): (Vec<&Hop>, Vec<&Hop>) = plan
        .hops
        .iter()
        .partition(|hop| app.breakers.usable(ctx.name(hop), &hop.model));
    let forced = usable.is_empty();
    let mut queue: VecDeque<&Hop> = if forced { open } else { usable }.into();
    let mut walk = Walk {
        started,
        upstream: Duration::ZERO,
        attempts: Vec::new(),
        last: None,
        not_model: None,
    };
    let mut previous: Option<&str> = None;
    'hops: while let Some(hop) = queue.pop_front() {
        if walk.not_model.as_deref() == Some(hop.model.as_str()) {
            continue;
        }
        let name = ctx.name(hop);
        let settings = Settings::of(&app.backends[hop.backend].config);
        // Decided now, not when the chain was planned: a probe is claimed only when used.
        let Some(mut ticket) = app.breakers.admit(name, &hop.model, settings, forced) else {
            continue;
        };
        if let Some(from) = previous {
            app.metrics
                .failovers
                .get_or_create(&FailoverLabels {
                    from: from.to_owned(),
                    to: name.to_owned(),
                })
                .inc();
        }
        previous = Some(name);
        let mut retries = 0;
        loop {
            if walk.attempts.len() >= app.config.server.max_attempts
                || Instant::now() >= ctx.deadline
            {
                break 'hops;
            }
            let outcome = match hedge_after {
                Some(after) if retries == 0 && !queue.is_empty() => {
                    ctx.hedged(&mut walk, &mut queue, (hop, ticket), after, forced)
                        .await
                }
                _ => {
                    let began = Instant::now();
                    let result =
                        attempt(app, &app.backends[hop.backend], ctx.call(hop, &queue)).await;
                    ctx.settle(
                        &mut walk,
                        hop,
                        ticket,
                        result,
                        began.elapsed(),
                        Some(retries),
                    )
                }
            };
            match outcome {
                Outcome::Served(response) => return response,
                Outcome::Failed(Decision::RetrySame(delay)) => {
                    tokio::time::sleep(delay).await;
                    retries += 1;
                    // A retry is an attempt like another: the breaker decides again.
                    match app.breakers.admit(name, &hop.model, settings, forced) {
                        Some(again) => ticket = again,
                        None => continue 'hops,
                    }
                }
                Outcome::Failed(Decision::FailOver | Decision::CoolDownAndFailOver(_)) => {
                    continue 'hops;
                }
                Outcome::Failed(Decision::FailOverToOtherModel) => {
                    walk.not_model = Some(hop.model.clone());
                    continue 'hops;
                }
                Outcome::Failed(Decision::Stop) => break 'hops,
            }
        }
    }
    let err = walk.last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "no hop of the chain could be tried (their circuit breakers opened, or the deadline passed)",
        )
    });
    let mut response = error_in(client.client.dialect, &err);
    let served = walk
        .attempts
        .last()
        .and_then(|a| a.split(':').next())
        .unwrap_or("");
    name_the_server(response.headers_mut(), served, "", &walk.attempts);
    tracing::Span::current().record("attempts", walk.attempts.join(",").as_str());
    response
}

impl<'a> Ctx<'a> {
    fn name(&self, hop: &Hop) -> &'a str {
        self.app.backends[hop.backend].config.name.as_str()
    }

    /// The call for `hop`, with `next` as the hops a rescue may continue on.
    fn call(&self, hop: &'a Hop, next: &VecDeque<&Hop>) -> Call<'a> {
        let client = self.client;
        Call {
            method: client.method.clone(),
            path_and_query: client.path_and_query,
            kind: client.kind,
            client: client.client,
            headers: client.headers,
            request: client.routed,
            original: client.original,
            model: &hop.model,
            rescue: self.rescue.as_ref().map(|(request, headers)| rescue::Plan {
                app: self.app.clone(),
                request: request.clone(),
                headers: headers.clone(),
                serving: hop.clone(),
                next: next.iter().map(|h| (*h).clone()).collect(),
            }),
        }
    }

    /// Record what one attempt of `hop` did and decide what follows. `retries` is how many
    /// retries the hop had so far, `None` when it cannot be retried (a hedged attempt).
    fn settle(
        &self,
        walk: &mut Walk,
        hop: &Hop,
        ticket: Ticket<'_>,
        result: Result<Response<Body>, GatewayError>,
        took: Duration,
        retries: Option<u32>,
    ) -> Outcome {
        let app = self.app;
        let backend = &app.backends[hop.backend];
        let name = backend.config.name.as_str();
        walk.upstream += took;
        let labels = HopLabels {
            backend: name.to_owned(),
            model: app.model_labels.label(&hop.model),
        };
        app.metrics
            .upstream_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        backend.stats.record(result.as_ref().map(|_| ()));
        let attempts = |outcome: String| AttemptLabels {
            backend: name.to_owned(),
            model: app.model_labels.label(&hop.model),
            outcome,
        };
        let probe = ticket.is_probe();
        let err = match result {
            Ok(mut response) => {
                ticket.record(true);
                if probe {
                    tracing::info!(backend = name, model = %hop.model, "the probe succeeded; the breaker is closed");
                }
                app.metrics
                    .attempts
                    .get_or_create(&attempts("ok".to_owned()))
                    .inc();
                if self.client.routed.stream() {
                    app.metrics
                        .time_to_first_token
                        .get_or_create(&labels)
                        .observe(walk.started.elapsed().as_secs_f64());
                }
                let overhead = walk.started.elapsed().saturating_sub(walk.upstream);
                app.metrics.gateway_overhead.observe(overhead.as_secs_f64());
                walk.attempts
                    .push(format!("{name}:{}", response.status().as_u16()));
                name_the_server(response.headers_mut(), name, &hop.model, &walk.attempts);
                let span = tracing::Span::current();
                span.record("backend", name);
                span.record("attempts", walk.attempts.join(",").as_str());
                return Outcome::Served(response);
            }
            Err(err) => err,
        };
        let label = attempt_label(&err);
        app.metrics
            .attempts
            .get_or_create(&attempts(label.clone()))
            .inc();
        walk.attempts.push(format!("{name}:{label}"));
        let opened = if blames_the_backend(&err) {
            if probe {
                tracing::info!(backend = name, model = %hop.model, "the probe failed; the breaker opens again");
            }
            ticket.record(false)
        } else {
            drop(ticket);
            false
        };
        let max_retries = backend.config.max_retries;
        let policy = Policy {
            fallback_on: &self.plan.fallback_on,
            rules: &backend.config.rules,
            retries: retries.unwrap_or(max_retries),
            max_retries,
            short_hint: SHORT_HINT,
            backoff: backoff(retries.unwrap_or(0)),
        };
        let mut decision = classify(&err, &policy);
        let mut instead = None;
        if let Decision::RetrySame(delay) = decision {
            instead = if opened {
                Some("the hop's breaker opened")
            } else if Instant::now() + delay >= self.deadline {
                Some("the request's deadline is near")
            } else if !app.budget.try_retry() {
                Some("the retry budget is spent")
            } else {
                None
            };
            if instead.is_some() {
                decision = classify(
                    &err,
                    &Policy {
                        retries: max_retries,
                        ..policy
                    },
                );
            }
        }
        if let Decision::CoolDownAndFailOver(delay) = decision {
            app.breakers.cool_down(name, &hop.model, delay);
        }
        match instead {
            Some(reason) => {
                tracing::info!(backend = name, model = %hop.model, error = %err, kind = ?err.kind(), ?decision, instead_of_a_retry_because = reason, "attempt failed");
            }
            None => {
                tracing::info!(backend = name, model = %hop.model, error = %err, kind = ?err.kind(), ?decision, "attempt failed");
            }
        }
        walk.last = Some(err);
        Outcome::Failed(decision)
    }

    /// Attempt `first`; when it has no content after `after`, start the next hop of `queue`
    /// in parallel and serve from whichever commits first. The slower one is dropped (which
    /// cancels its upstream request) without counting as a failure.
    async fn hedged(
        &self,
        walk: &mut Walk,
        queue: &mut VecDeque<&'a Hop>,
        (hop_a, ticket_a): (&'a Hop, Ticket<'a>),
        after: Duration,
        forced: bool,
    ) -> Outcome {
        let app = self.app;
        let began = Instant::now();
        let mut a = pin!(attempt(
            app,
            &app.backends[hop_a.backend],
            self.call(hop_a, queue)
        ));
        tokio::select! {
            result = &mut a => {
                return self.settle(walk, hop_a, ticket_a, result, began.elapsed(), Some(0));
            }
            () = tokio::time::sleep(after) => {}
        }
        let partner = loop {
            let Some(hop) = queue.pop_front() else {
                break None;
            };
            if walk.not_model.as_deref() == Some(hop.model.as_str()) {
                continue;
            }
            let settings = Settings::of(&app.backends[hop.backend].config);
            if let Some(ticket) = app
                .breakers
                .admit(self.name(hop), &hop.model, settings, forced)
            {
                break Some((hop, ticket));
            }
        };
        let Some((hop_b, ticket_b)) = partner else {
            let result = a.await;
            return self.settle(walk, hop_a, ticket_a, result, began.elapsed(), Some(0));
        };
        tracing::info!(late = ?hop_a.model, backend = self.name(hop_a), hedge = self.name(hop_b), "no content yet; starting the next hop in parallel");
        let began_b = Instant::now();
        let mut b = pin!(attempt(
            app,
            &app.backends[hop_b.backend],
            self.call(hop_b, queue)
        ));
        let mut tickets = (Some(ticket_a), Some(ticket_b));
        let (mut a_live, mut b_live) = (true, true);
        let mut decision = Decision::FailOver;
        while a_live || b_live {
            let (hop, ticket, result, took, other) = tokio::select! {
                result = &mut a, if a_live => {
                    a_live = false;
                    (hop_a, tickets.0.take(), result, began.elapsed(), b_live.then_some(hop_b))
                }
                result = &mut b, if b_live => {
                    b_live = false;
                    (hop_b, tickets.1.take(), result, began_b.elapsed(), a_live.then_some(hop_a))
                }
            };
            let Some(ticket) = ticket else {
                continue;
            };
            if result.is_ok() {
                if let Some(loser) = other {
                    // Cancelled when this function returns; neither failed nor retried.
                    walk.attempts.push(format!("{}:hedged", self.name(loser)));
                }
                let outcome = if std::ptr::eq(hop, hop_b) {
                    "won"
                } else {
                    "lost"
                };
                Counters::count(&counters().hedges, outcome);
            }
            match self.settle(walk, hop, ticket, result, took, None) {
                Outcome::Served(response) => return Outcome::Served(response),
                Outcome::Failed(next) => decision = next,
            }
        }
        // Both failed; the later failure decides (a retry is not possible here).
        Outcome::Failed(match decision {
            Decision::RetrySame(_) => Decision::FailOver,
            other => other,
        })
    }
}

/// Rate-limit hints up to this long are waited out on the same hop.
const SHORT_HINT: Duration = Duration::from_secs(3);

/// Exponential backoff with full jitter: uniform in [0, 100 ms × 2^retries], at most 2 s.
fn backoff(retries: u32) -> Duration {
    let cap = Duration::from_millis(100)
        .saturating_mul(1 << retries.min(5))
        .min(Duration::from_secs(2));
    cap.mul_f64(fastrand::f64())
}

pub(crate) fn name_the_server(
    headers: &mut HeaderMap,
    backend: &str,
    model: &str,
    attempts: &[String],
) {
    for (name, value) in [
        ("x-gateway-backend", backend.to_owned()),
        ("x-gateway-model", model.to_owned()),
        ("x-gateway-attempts", attempts.join(",")),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
}

/// Whether `body` holds `needle` anywhere (a cheap, conservative look at raw JSON).
fn mentions(body: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(body, needle).is_some()
}
