//! Routed requests: walk the chain of hops until one answers.
//!
//! Before anything reaches the client, a failed hop is recorded and, when the route's
//! `fallback_on` allows, the next hop is tried. A stream is committed once its first content
//! arrived, by the dialect's own definition of content (the first byte for pass-through
//! endpoints). Every response names what served it in `x-gateway-backend`, `x-gateway-model`
//! and `x-gateway-attempts`.
//!
//! The phases, one file each: `peek` (what routing needs from the body), `walk` (the chain and
//! its failure policy), `attempt` (one hop, local or proxied, up to the commit point); the relay
//! after the commit is `crate::commit`.

mod attempt;
pub(crate) use attempt::context;
mod count;
mod peek;
mod walk;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response};

use gateway_core::{
    Body, Dialect,
    openai::{self, ChatRequest, parse_json},
};

use crate::{
    app::App,
    convert::Client,
    dispatch::{self, Endpoint},
    http::{error, error_in},
    routing::plan,
};

/// Serve a routed request for `endpoint` (a path relative to the API root) with the client's
/// `query` string, if any.
pub(crate) async fn routed(
    app: &Arc<App>,
    method: Method,
    endpoint: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    if let Some(dialect) = count::endpoint(endpoint) {
        return count::count(app, dialect, endpoint, query, headers, body).await;
    }
    let kind = Endpoint::of(endpoint);
    let dialect = Dialect::of_endpoint(endpoint);
    let mut client = Client::new(dialect, query);
    let gemini = gemini_path(endpoint);
    let peeked = match gemini {
        Some((model, method)) => Ok(peek::Routed::in_path(
            model,
            method == "streamGenerateContent",
        )),
        None => peek::Routed::peek(&body, kind == Endpoint::ChatCompletions),
    };
    let request = match peeked {
        Ok(request) => request,
        Err(err) => return error_in(dialect, &err),
    };
    let plan = match plan(&app.config, &app.patterns, request.model()) {
        Ok(plan) => plan,
        Err(err) => return error_in(dialect, &err),
    };
    // Hops that translate (the in-process service, an upstream of another dialect) need the
    // decoded request; a chain that only passes bytes through does not.
    let translates = plan.hops.iter().any(|hop| {
        let facts = app.backends[hop.backend].reach.facts(true);
        matches!(
            dispatch::way(facts, dialect, kind),
            Some(dispatch::Way::Local | dispatch::Way::Convert(_))
        )
    });
    let request = if translates {
        let path = gemini.map(|(model, method)| (model, method == "streamGenerateContent"));
        match peek::Routed::decode(dialect, &body, path, &app.seal) {
            Ok(mut full) => {
                if let peek::Routed::Conversation(conversation) = &mut full {
                    client.prepare(conversation);
                    if let Err(err) = continue_previous(app, conversation) {
                        return error_in(dialect, &err);
                    }
                }
                full
            }
            Err(err) => return error_in(dialect, &err),
        }
    } else {
        request
    };
    tracing::Span::current().record("model", plan.model.as_str());
    let path_and_query = with_query(endpoint, query);
    let client = walk::Request {
        method,
        path_and_query: &path_and_query,
        kind,
        client: &client,
        headers,
        routed: &request,
        original: &body,
    };
    let mut response = walk::walk(app, &plan, client).await;
    if dialect == Dialect::Anthropic {
        // Anthropic's clients log it and show it in their errors.
        let id = format!("req_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..));
        if let Ok(value) = http::HeaderValue::try_from(id) {
            response.headers_mut().insert("request-id", value);
        }
    }
    response
}

/// A Responses request that continues an earlier response (`previous_response_id`) gets that
/// response's conversation before its own input; an id the gateway does not keep is a 400.
fn continue_previous(
    app: &App,
    conversation: &mut gateway_core::conversation::Request,
) -> Result<(), gateway_core::GatewayError> {
    use gateway_core::conversation::Protocol;
    let Some(previous) = conversation
        .extra
        .hint(Protocol::Responses, "previous_response_id")
        .and_then(serde_json::Value::as_str)
    else {
        return Ok(());
    };
    let Some(stored) = app.responses.get(previous) else {
        return Err(gateway_core::GatewayError::invalid_request(format!(
            "previous response {previous:?} is not kept here (the gateway keeps responses made with store for an hour, in memory)"
        ))
        .with_param("previous_response_id"));
    };
    let mut messages = stored.messages;
    messages.append(&mut conversation.messages);
    conversation.messages = messages;
    Ok(())
}

/// The model and method of a Gemini endpoint: `/models/gemini-2.5-pro:streamGenerateContent`.
fn gemini_path(endpoint: &str) -> Option<(&str, &str)> {
    let rest = endpoint.strip_prefix("/models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// The upstream path: the endpoint and the client's query string, less the client's own key
/// (`?key=`, how Gemini clients authenticate), which is a credential and never forwarded.
fn with_query(endpoint: &str, query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && *pair != "key" && !pair.starts_with("key="))
        .collect();
    if kept.is_empty() {
        endpoint.to_owned()
    } else {
        format!("{endpoint}?{}", kept.join("&"))
    }
}

/// Serve `/antigravity/v1/chat/completions`: the in-process service itself, no routing.
pub(crate) async fn antigravity_direct(
    app: &Arc<App>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let request = match parse_json::<ChatRequest>(&body).and_then(openai::request_to_conversation) {
        Ok(request) => request,
        Err(err) => return error(&err),
    };
    let model = request.model.clone();
    let client = Client::new(Dialect::OpenAiChat, None);
    match attempt::local(app, &request, &model, headers, &client).await {
        Ok(response) => response,
        Err(err) => error(&err),
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::ErrorKind;
    use http::StatusCode;

    use super::*;
    use crate::classify::{attempt_label, falls_back};
    use crate::config::{Condition, default_fallback_on};
    use gateway_core::GatewayError;

    #[test]
    fn query_strings_are_kept_without_the_clients_key() {
        assert_eq!(
            with_query("/messages", Some("beta=true")),
            "/messages?beta=true"
        );
        assert_eq!(with_query("/messages", None), "/messages");
        assert_eq!(
            with_query(
                "/chat/completions",
                Some("api-version=2024-10-21&key=secret&x=1")
            ),
            "/chat/completions?api-version=2024-10-21&x=1"
        );
        assert_eq!(with_query("/models", Some("key=secret")), "/models");
    }

    #[test]
    fn default_fallback_conditions() {
        let upstream = |code| GatewayError::upstream(StatusCode::from_u16(code).unwrap(), "x");
        let on = default_fallback_on();
        let cases = [
            (upstream(429), true),
            (upstream(500), true),
            (upstream(503), true),
            (upstream(400), false),
            (upstream(401), false),
            (upstream(404), false),
            (GatewayError::new(ErrorKind::Connect, "x"), true),
            (GatewayError::new(ErrorKind::FirstByteTimeout, "x"), true),
            (GatewayError::new(ErrorKind::Unavailable, "x"), true),
            (GatewayError::new(ErrorKind::RateLimited, "x"), true),
            (GatewayError::invalid_request("x"), false),
        ];
        for (err, expected) in cases {
            assert_eq!(falls_back(&err, &on), expected, "{err:?}");
        }
        // A route may narrow it.
        let narrow = [Condition::Status(429)];
        assert!(falls_back(&upstream(429), &narrow));
        assert!(!falls_back(&upstream(503), &narrow));
        assert!(!falls_back(
            &GatewayError::new(ErrorKind::IdleTimeout, "x"),
            &narrow
        ));
        assert_eq!(attempt_label(&upstream(429)), "429");
        assert_eq!(
            attempt_label(&GatewayError::new(ErrorKind::HeadersTimeout, "x")),
            "timeout"
        );
    }
}
