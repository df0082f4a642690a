//! Token counts: Anthropic's `/messages/count_tokens`, Responses' `/responses/input_tokens` and
//! Gemini's `:countTokens`.
//!
//! The first hop of the model's chain answers where it can count: an HTTP upstream of the
//! client's own protocol is asked with the client's bytes, the in-process backend asks Cloud
//! Code's `countTokens`. Otherwise (an upstream that cannot count, or a failed count) the
//! gateway estimates with a real tokenizer (`crate::tokens`); never a constant.

use std::sync::Arc;

use antigravity_service::Credentials;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};

use gateway_core::{Body, CallOptions, Dialect, Expect, GatewayError, body};

use super::{attempt, gemini_path, with_query};
use crate::{
    app::{App, Reach},
    classify,
    commit::checked_json,
    convert,
    http::{error_in, json, json_bytes},
    routing::plan,
    tokens,
};

/// Which count endpoint `endpoint` is, by the dialect of its clients.
pub(crate) fn endpoint(endpoint: &str) -> Option<Dialect> {
    match endpoint {
        "/messages/count_tokens" => Some(Dialect::Anthropic),
        "/responses/input_tokens" => Some(Dialect::Responses),
        e if e.starts_with("/models/") && e.ends_with(":countTokens") => Some(Dialect::Gemini),
        _ => None,
    }
}

/// Serve a count request of `dialect` for `endpoint`.
pub(crate) async fn count(
    app: &Arc<App>,
    dialect: Dialect,
    endpoint: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let decoded = match gemini_path(endpoint) {
        Some((model, _)) => convert::decode_gemini_count(&body, model),
        None => convert::decode_request(dialect, &body, None, &app.seal),
    };
    let mut request = match decoded {
        Ok(request) => request,
        Err(err) => return error_in(dialect, &err),
    };
    let plan = match plan(&app.config, &app.patterns, &request.model) {
        Ok(plan) => plan,
        Err(err) => return error_in(dialect, &err),
    };
    let Some(hop) = plan.hops.first() else {
        return error_in(dialect, &GatewayError::internal("an empty chain"));
    };
    let backend = &app.backends[hop.backend];
    request.model.clone_from(&hop.model);
    let name = backend.config.name.as_str();
    let local = app
        .local_of(backend)
        .filter(|s| s.credentials().is_available());
    let asked = match (&backend.reach, local) {
        (Reach::InProcess { .. }, Some(service)) => service
            .count_tokens(&request, &attempt::context(headers))
            .await
            .map(|tokens| Counted::Tokens(tokens, "upstream")),
        (
            Reach::Http {
                upstream,
                dialect: speaks,
                native,
            },
            _,
        ) if *speaks == dialect || native.contains(&dialect) => {
            let path = with_query(endpoint, query);
            let payload = if dialect == Dialect::Gemini || plan.model == hop.model {
                Ok(body.clone())
            } else {
                super::peek::Routed::peek(&body, false)
                    .and_then(|peeked| peeked.body_for(&hop.model, &body, dialect))
            };
            let options = CallOptions {
                timeouts: backend.config.timeouts,
                expect: Expect::Json,
            };
            match payload {
                Ok(payload) => match upstream.pick() {
                    Ok((key, forwarder)) => {
                        let sent = forwarder
                            .forward(Method::POST, &path, headers, body::full(payload), options)
                            .await;
                        upstream.report(key, sent.as_ref().map(|_| ()));
                        match sent {
                            Ok(response) => {
                                checked_json(response.into_body(), Dialect::Passthrough)
                                    .await
                                    .map(Counted::Answer)
                            }
                            Err(err) => Err(err),
                        }
                    }
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            }
        }
        _ => Err(GatewayError::new(
            gateway_core::ErrorKind::Unavailable,
            "the backend cannot count",
        )),
    };
    let counted = match asked {
        Ok(counted) => counted,
        Err(err) => {
            if err.side() == gateway_core::Side::Upstream {
                tracing::info!(backend = name, error = %err, label = %classify::attempt_label(&err), "the upstream could not count; estimating");
            }
            Counted::Tokens(tokens::estimate(&request), "estimate")
        }
    };
    let mut response = match counted {
        Counted::Answer(bytes) => json_bytes(bytes),
        Counted::Tokens(tokens, how) => {
            let mut response = json(StatusCode::OK, &convert::encode_count(dialect, tokens));
            response
                .headers_mut()
                .insert("x-gateway-token-count", http::HeaderValue::from_static(how));
            response
        }
    };
    super::walk::name_the_server(
        response.headers_mut(),
        name,
        &hop.model,
        &[format!("{name}:200")],
    );
    response
}

/// What counted: the upstream's own answer, or a number.
enum Counted {
    Answer(Bytes),
    Tokens(u64, &'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_endpoints() {
        assert_eq!(endpoint("/messages/count_tokens"), Some(Dialect::Anthropic));
        assert_eq!(
            endpoint("/responses/input_tokens"),
            Some(Dialect::Responses)
        );
        assert_eq!(
            endpoint("/models/gemini-2.5-pro:countTokens"),
            Some(Dialect::Gemini)
        );
        assert_eq!(endpoint("/messages"), None);
        assert_eq!(endpoint("/models/x:generateContent"), None);
    }
}
