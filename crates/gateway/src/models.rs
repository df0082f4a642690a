//! `GET /v1/models`: every enabled backend asked at once (short timeout), merged, de-duplicated,
//! aliases added, cached briefly. A backend that is down is left out; the list still answers.

use antigravity_service::Credentials;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use gateway_core::{
    CallOptions, Dialect, Expect, GatewayError, Timeouts, body,
    openai::{Model, ModelList, parse_json},
};

use crate::{
    app::{App, Backend},
    dispatch::{Endpoint, Way, way},
};

const PER_BACKEND: Duration = Duration::from_secs(5);

pub(crate) async fn merged(app: &Arc<App>, headers: &HeaderMap) -> ModelList {
    let ttl = app.config.server.models_cache_ttl;
    if let Some((at, list)) = app
        .models
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        && at.elapsed() < ttl
    {
        return list.clone();
    }
    let asks = app
        .backends
        .iter()
        .filter(|b| b.config.enabled)
        .map(|backend| async move {
            let answer = tokio::time::timeout(PER_BACKEND, of_backend(app, backend, headers)).await;
            let answer = answer.unwrap_or_else(|_| Err(GatewayError::new(gateway_core::ErrorKind::AttemptTimeout, "the model list timed out")));
            if let Err(err) = &answer {
                tracing::warn!(backend = %backend.config.name, error = %err, "model list unavailable");
            }
            (backend.config.priority, answer.ok())
        });
    let mut answers = futures_util::future::join_all(asks).await;
    answers.sort_by_key(|(priority, _)| *priority);
    let mut by_id: BTreeMap<String, Model> = BTreeMap::new();
    for list in answers.into_iter().filter_map(|(_, list)| list) {
        for model in list.data {
            by_id.entry(model.id.clone()).or_insert(model);
        }
    }
    for alias in app.config.aliases.keys() {
        by_id
            .entry(alias.clone())
            .or_insert_with(|| Model::new(alias.clone(), "gateway-alias"));
    }
    let list = ModelList::new(by_id.into_values().collect());
    *app.models.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((tokio::time::Instant::now(), list.clone()));
    list
}

async fn of_backend(
    app: &Arc<App>,
    backend: &Backend,
    headers: &HeaderMap,
) -> Result<ModelList, GatewayError> {
    let service = app.local_of(backend);
    let local = service.is_some_and(|s| s.credentials().is_available());
    match (
        way(
            backend.reach.facts(local),
            Dialect::Passthrough,
            Endpoint::Models,
        ),
        service,
    ) {
        (Some(Way::Local), Some(service)) => service.models().await,
        (Some(Way::Local), None) => Err(GatewayError::internal("no in-process service")),
        (Some(Way::Pass | Way::Convert(_)), _) => {
            let Some(forwarder) = backend.reach.forwarder() else {
                return Err(GatewayError::internal("no forwarder"));
            };
            let options = CallOptions {
                timeouts: Timeouts {
                    total: Some(PER_BACKEND),
                    ..backend.config.timeouts
                },
                expect: Expect::Json,
            };
            let response = forwarder
                .forward(Method::GET, "/models", headers, body::empty(), options)
                .await?;
            let bytes = response.into_body().collect().await?.to_bytes();
            upstream_list(&bytes)
        }
        (None, _) => Err(GatewayError::new(
            gateway_core::ErrorKind::Unavailable,
            "no usable account and no proxy_url",
        )),
    }
}

/// An upstream's own model list: OpenAI's and Anthropic's `{"data": [{"id"}]}`, or Gemini's
/// `{"models": [{"name": "models/<id>"}]}`. Only the ids matter here.
fn upstream_list(bytes: &[u8]) -> Result<ModelList, GatewayError> {
    let value: serde_json::Value = parse_json(bytes)?;
    let ids = value["data"]
        .as_array()
        .map(|data| {
            data.iter()
                .filter_map(|m| m["id"].as_str())
                .collect::<Vec<_>>()
        })
        .or_else(|| {
            value["models"].as_array().map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|name| name.strip_prefix("models/").unwrap_or(name))
                    .collect()
            })
        })
        .ok_or_else(|| {
            GatewayError::new(
                gateway_core::ErrorKind::UpstreamProtocol,
                "the upstream's model list has neither data nor models",
            )
        })?;
    if let Ok(list) = serde_json::from_value::<ModelList>(value.clone()) {
        // OpenAI's own form keeps every field the upstream gave.
        return Ok(list);
    }
    Ok(ModelList::new(
        ids.into_iter()
            .map(|id| Model::new(id.to_owned(), "upstream"))
            .collect(),
    ))
}

/// The list as the Gemini API names models: `models/<id>`, with the methods they serve.
pub(crate) fn gemini(list: &ModelList) -> serde_json::Value {
    let models: Vec<serde_json::Value> = list.data.iter().map(gemini_model).collect();
    serde_json::json!({ "models": models })
}

/// One model of the list, by id (with or without the `models/` prefix), in Gemini's form.
pub(crate) fn gemini_one(list: &ModelList, name: &str) -> Option<serde_json::Value> {
    let id = name.strip_prefix("models/").unwrap_or(name);
    list.data.iter().find(|m| m.id == id).map(gemini_model)
}

fn gemini_model(model: &Model) -> serde_json::Value {
    // `name` is what google-genai lists; `displayName` what people read.
    serde_json::json!({
        "name": format!("models/{}", model.id),
        "displayName": model.id,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_upstreams_list_form_is_read() {
        let ids = |bytes: &str| -> Vec<String> {
            upstream_list(bytes.as_bytes())
                .unwrap()
                .data
                .into_iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(
            ids(
                r#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":0,"owned_by":"x"}]}"#
            ),
            ["gpt-4o"]
        );
        assert_eq!(
            ids(
                r#"{"data":[{"id":"claude-sonnet-4-5","type":"model","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false}"#
            ),
            ["claude-sonnet-4-5"]
        );
        assert_eq!(
            ids(
                r#"{"models":[{"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash"}]}"#
            ),
            ["gemini-2.5-flash"]
        );
        assert!(upstream_list(b"{}").is_err());
    }
}
