//! `/admin/*`: state for operators (secrets never included), and the account operations of a
//! running gateway (import, enable, disable, remove), which go through the same store as the
//! `gateway accounts` commands and reach the running pool at once.

use antigravity_service::{AccountStore, Credentials, ImportOutcome, Imported, Profile};
use std::sync::{Arc, atomic::Ordering};

use bytes::Bytes;
use serde_json::{Value, json};

use gateway_core::{ErrorKind, GatewayError};

use crate::app::App;

/// `GET /admin/backends`.
pub(crate) fn backends(app: &Arc<App>) -> Value {
    let list: Vec<Value> = app
        .backends
        .iter()
        .map(|backend| {
            let local_available = app
                .local_of(backend)
                .is_some_and(|s| s.credentials().is_available());
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
                "health": app.breakers.health(&config.name),
            })
        })
        .collect();
    json!({
        "object": "list",
        "data": list,
        "circuits": app.breakers.views(),
        "state": app.shared.view(),
        "in_flight": app.in_flight.load(Ordering::Relaxed),
    })
}

/// The pool an account operation is about: `?pool=antigravity` (the default) or
/// `?pool=geminicli`.
pub(crate) fn pool(query: Option<&str>) -> Result<Profile, GatewayError> {
    let named = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(name, _)| name == "pool")
        .map(|(_, value)| value.into_owned());
    match named.as_deref() {
        None | Some("antigravity") => Ok(Profile::Antigravity),
        Some("geminicli") => Ok(Profile::GeminiCli),
        Some(other) => Err(GatewayError::invalid_request(format!(
            "pool is antigravity or geminicli, not {other:?}"
        ))
        .with_param("pool")),
    }
}

/// `GET /admin/accounts`: the accounts of every running pool, each naming its `pool`.
pub(crate) async fn accounts(app: &Arc<App>) -> Value {
    let mut data = Vec::new();
    for (profile, service) in app.locals() {
        for view in service.credentials().views(true).await {
            let mut value = serde_json::to_value(view).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("pool".to_owned(), json!(profile.name()));
            }
            data.push(value);
        }
    }
    json!({ "object": "list", "data": data })
}

/// Take what changed on disk into the running pool of `profile`, if it runs.
pub(crate) async fn refresh(app: &App, profile: Profile) {
    if let Some(service) = app.local(profile) {
        service.credentials().refresh().await;
    }
}

/// `POST /admin/accounts`: import an export file (any format `gateway accounts import` reads)
/// into the pool's credentials directory, and take it into the running pool at once.
pub(crate) async fn import(
    app: &Arc<App>,
    profile: Profile,
    body: Bytes,
) -> Result<Value, GatewayError> {
    let store = AccountStore::new(&app.config.pool(profile).credentials_dir);
    let imported = tokio::task::spawn_blocking(move || store.import_all(&body))
        .await
        .map_err(|e| GatewayError::internal(format!("the import failed: {e}")))??;
    refresh(app, profile).await;
    let data: Vec<Value> = imported
        .into_iter()
        .map(|Imported { id, outcome }| {
            let outcome = match outcome {
                ImportOutcome::Added => "added",
                ImportOutcome::Updated => "updated",
                ImportOutcome::KeptNewer => "kept_newer",
            };
            json!({ "id": id, "outcome": outcome })
        })
        .collect();
    tracing::info!(
        accounts = data.len(),
        pool = profile.name(),
        "accounts imported through the admin api"
    );
    Ok(json!({ "object": "list", "data": data }))
}

/// `POST /admin/accounts/{id}/enable` and `.../disable`: the operator's decision, written to
/// the account's file and applied to the running pool.
pub(crate) async fn set_enabled(
    app: &Arc<App>,
    profile: Profile,
    id: &str,
    enabled: bool,
) -> Result<Value, GatewayError> {
    let running = match app.local(profile) {
        Some(service) => service.credentials().set_enabled(id, enabled).await,
        None => false,
    };
    if !running {
        // A file the pool has not taken in yet (its directory is looked at every 2 s).
        let store = AccountStore::new(&app.config.pool(profile).credentials_dir);
        let owned = id.to_owned();
        let found = tokio::task::spawn_blocking(move || store.set_enabled(&owned, enabled))
            .await
            .map_err(|e| GatewayError::internal(format!("the change failed: {e}")))??;
        if !found {
            return Err(no_account(id));
        }
        refresh(app, profile).await;
    }
    tracing::info!(
        account = id,
        pool = profile.name(),
        enabled,
        "account changed through the admin api"
    );
    Ok(json!({ "id": id, "enabled": enabled }))
}

/// `DELETE /admin/accounts/{id}`: remove the account's file; calls in flight finish, no new
/// call uses it.
pub(crate) async fn remove(
    app: &Arc<App>,
    profile: Profile,
    id: &str,
) -> Result<Value, GatewayError> {
    let running = match app.local(profile) {
        Some(service) => service.credentials().remove(id).await?,
        None => false,
    };
    if !running {
        let store = AccountStore::new(&app.config.pool(profile).credentials_dir);
        let owned = id.to_owned();
        let found = tokio::task::spawn_blocking(move || store.remove(&owned))
            .await
            .map_err(|e| GatewayError::internal(format!("the removal failed: {e}")))??;
        if !found {
            return Err(no_account(id));
        }
        refresh(app, profile).await;
    }
    tracing::info!(
        account = id,
        pool = profile.name(),
        "account removed through the admin api"
    );
    Ok(json!({ "id": id, "deleted": true }))
}

fn no_account(id: &str) -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, format!("no account {id:?}"))
}
