//! `/admin/backends` and `/admin/accounts`: state for operators, secrets never included.

use antigravity_service::Credentials;
use std::sync::{Arc, atomic::Ordering};

use serde_json::{Value, json};

use crate::app::App;

pub(crate) fn backends(app: &Arc<App>) -> Value {
    let local_available = app.antigravity.credentials().is_available();
    let list: Vec<Value> = app
        .backends
        .iter()
        .map(|backend| {
            let config = &backend.config;
            let stats = &backend.stats;
            let last_error = stats
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            json!({
                "name": config.name,
                "kind": config.kind,
                "enabled": config.enabled,
                "priority": config.priority,
                "models": config.models,
                "upstream": config.base_url.as_ref().or(config.proxy_url.as_ref()),
                "local_available": backend.reach.is_in_process().then_some(local_available),
                "requests": stats.requests.load(Ordering::Relaxed),
                "failures": stats.failures.load(Ordering::Relaxed),
                "last_error": last_error,
            })
        })
        .collect();
    json!({
        "object": "list",
        "data": list,
        "circuits": app.breakers.views(),
        "in_flight": app.in_flight.load(Ordering::Relaxed),
    })
}

pub(crate) async fn accounts(app: &Arc<App>) -> Value {
    let views = app.antigravity.credentials().views(true).await;
    json!({ "object": "list", "data": views })
}
