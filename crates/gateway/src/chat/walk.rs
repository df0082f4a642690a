//! Walk the chain: order the hops (open breakers last), attempt each, and after a failure ask
//! `classify` whether to retry the same hop, fail over, cool the hop down, or stop.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response};
use tokio::time::Instant;

use gateway_core::{Body, ErrorKind, GatewayError};

use super::{
    attempt::{Call, attempt},
    peek::Routed,
};
use crate::{
    app::App,
    classify::{Decision, Policy, attempt_label, blames_the_backend, classify, falls_back},
    convert::Client,
    dispatch::Endpoint,
    http::error_in,
    metrics::{AttemptLabels, FailoverLabels, HopLabels},
    routing::Plan,
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

/// Time since the request arrived, for the metrics.
struct Clock {
    started: Instant,
    upstream: Duration,
}

pub(crate) async fn walk(app: &Arc<App>, plan: &Plan, client: Request<'_>) -> Response<Body> {
    let request = client.routed;
    let mut clock = Clock {
        started: Instant::now(),
        upstream: Duration::ZERO,
    };
    let deadline = clock.started + app.config.server.request_timeout;
    app.budget.request();
    // Hops whose breaker is open are skipped; if that leaves nothing, they are all tried anyway.
    let mut skipped = Vec::new();
    let mut order = Vec::with_capacity(plan.hops.len());
    for hop in &plan.hops {
        if app
            .breakers
            .allow(&app.backends[hop.backend].config.name, &hop.model)
        {
            order.push(hop);
        } else {
            skipped.push(hop);
        }
    }
    if order.is_empty() {
        order = skipped;
    }
    let mut attempts: Vec<String> = Vec::new();
    let mut last: Option<GatewayError> = None;
    let mut previous: Option<&str> = None;
    'hops: for hop in order {
        let backend = &app.backends[hop.backend];
        let name = backend.config.name.as_str();
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
            if attempts.len() >= app.config.server.max_attempts || Instant::now() >= deadline {
                break 'hops;
            }
            let began = Instant::now();
            let call = Call {
                method: client.method.clone(),
                path_and_query: client.path_and_query,
                kind: client.kind,
                client: client.client,
                headers: client.headers,
                request,
                original: client.original,
                model: &hop.model,
            };
            let result = attempt(app, backend, call).await;
            let took = began.elapsed();
            clock.upstream += took;
            let labels = HopLabels {
                backend: name.to_owned(),
                model: hop.model.clone(),
            };
            app.metrics
                .upstream_duration
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
            backend.stats.record(result.as_ref().map(|_| ()));
            let err = match result {
                Ok(mut response) => {
                    app.breakers.record(name, &hop.model, true);
                    app.metrics
                        .attempts
                        .get_or_create(&AttemptLabels {
                            backend: name.to_owned(),
                            model: hop.model.clone(),
                            outcome: "ok".to_owned(),
                        })
                        .inc();
                    if request.stream() {
                        app.metrics
                            .time_to_first_token
                            .get_or_create(&labels)
                            .observe(clock.started.elapsed().as_secs_f64());
                    }
                    let overhead = clock.started.elapsed().saturating_sub(clock.upstream);
                    app.metrics.gateway_overhead.observe(overhead.as_secs_f64());
                    attempts.push(format!("{name}:{}", response.status().as_u16()));
                    name_the_server(response.headers_mut(), name, &hop.model, &attempts);
                    let span = tracing::Span::current();
                    span.record("backend", name);
                    span.record("attempts", attempts.join(",").as_str());
                    return response;
                }
                Err(err) => err,
            };
            let label = attempt_label(&err);
            app.metrics
                .attempts
                .get_or_create(&AttemptLabels {
                    backend: name.to_owned(),
                    model: hop.model.clone(),
                    outcome: label.clone(),
                })
                .inc();
            attempts.push(format!("{name}:{label}"));
            if blames_the_backend(&err) {
                app.breakers.record(name, &hop.model, false);
            }
            let policy = Policy {
                fallback_on: &plan.fallback_on,
                rules: &backend.config.rules,
                retries,
                max_retries: backend.config.max_retries,
                short_hint: SHORT_HINT,
                backoff: backoff(retries),
            };
            let decision = classify(&err, &policy);
            tracing::info!(backend = name, model = %hop.model, error = %err, kind = ?err.kind(), ?decision, "attempt failed");
            let fall_back = falls_back(&err, &plan.fallback_on);
            last = Some(err);
            match decision {
                Decision::RetrySame(delay)
                    if Instant::now() + delay < deadline && app.budget.try_retry() =>
                {
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
                Decision::RetrySame(_) if fall_back => continue 'hops,
                Decision::FailOver => continue 'hops,
                Decision::CoolDownAndFailOver(delay) => {
                    app.breakers.cool_down(name, &hop.model, delay);
                    continue 'hops;
                }
                Decision::RetrySame(_) | Decision::Stop => break 'hops,
            }
        }
    }
    let err = last.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::Unavailable,
            "no hop could be tried before the deadline",
        )
    });
    let mut response = error_in(client.client.dialect, &err);
    let served = attempts
        .last()
        .and_then(|a| a.split(':').next())
        .unwrap_or("");
    name_the_server(response.headers_mut(), served, "", &attempts);
    tracing::Span::current().record("attempts", attempts.join(",").as_str());
    response
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
