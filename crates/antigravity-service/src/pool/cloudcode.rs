//! The Cloud Code calls the pool makes for itself: project discovery and quota.
//!
//! An account without a project learns it once from `loadCodeAssist`, or is onboarded with its
//! default tier (`onboardUser`, polled until done); a project is never invented. The quota view
//! of `/admin/accounts` comes from `fetchAvailableModels` (Antigravity) or `retrieveUserQuota`
//! (the Gemini CLI), cached per account. Discovery is shared with the login flow.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use http::{Request, header};
use serde_json::{Value, json};
use tokio::time::Instant;

use gateway_core::{ErrorKind, GatewayError, Secret, Transport, body};

use super::{Account, AccountPool, oauth::small_call_options, roster, send_with_backoff};
use crate::Profile;

/// Tries of `onboardUser` before giving up, and the pause between them.
const ONBOARD_TRIES: usize = 5;
const ONBOARD_PAUSE: Duration = Duration::from_secs(2);

impl<T: Transport> AccountPool<T> {
    /// Make sure the account knows its project, discovering it once if needed.
    pub(super) async fn ensure_project(
        &self,
        account: &Arc<Account>,
    ) -> Result<String, GatewayError> {
        if let Some(project) = account.project() {
            return Ok(project);
        }
        let _refreshing = account.refreshing.lock().await;
        if let Some(project) = account.project() {
            return Ok(project);
        }
        let token = account.live().file.access_token.clone().unwrap_or_default();
        let project = discover_project(
            &self.transport,
            &self.config.base_url,
            &token,
            self.config.profile,
        )
        .await?;
        account.live().file.project_id = Some(project.clone());
        roster::persist(self.roster.clone(), account.clone()).await;
        Ok(project)
    }

    /// Fetch the account's per-model quota into its view, unless a recent one is cached or the
    /// account is disabled.
    pub(super) async fn quota(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
        let fresh = account
            .live()
            .quota
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < self.config.quota_ttl);
        if fresh || account.live().disabled.is_some() {
            return Ok(());
        }
        self.ensure_token(account).await?;
        let token = account.live().file.access_token.clone().unwrap_or_default();
        let base = self.config.base_url.trim_end_matches('/');
        let profile = self.config.profile;
        let quota: BTreeMap<String, Value> = match profile {
            Profile::Antigravity => {
                let url = format!("{base}/v1internal:fetchAvailableModels");
                let response =
                    post_json(&self.transport, &url, Some(&token), json!({}), profile).await?;
                let models = response.get("models").cloned().unwrap_or(Value::Null);
                models
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(model, info)| {
                        (
                            model.clone(),
                            info.get("quotaInfo").cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect()
            }
            Profile::GeminiCli => {
                let project = self.ensure_project(account).await?;
                let url = format!("{base}/v1internal:retrieveUserQuota");
                let response = post_json(
                    &self.transport,
                    &url,
                    Some(&token),
                    json!({"project": project}),
                    profile,
                )
                .await?;
                response["buckets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|bucket| {
                        let model = bucket["modelId"].as_str()?;
                        Some((
                            model.to_owned(),
                            json!({"remainingFraction": bucket["remainingFraction"], "resetTime": bucket["resetTime"]}),
                        ))
                    })
                    .collect()
            }
        };
        account.live().quota = Some((Instant::now(), json!(quota)));
        Ok(())
    }
}

/// POST a JSON body to a Cloud Code method and decode the JSON answer.
pub(crate) async fn post_json<T: Transport>(
    transport: &T,
    url: &str,
    token: Option<&Secret>,
    payload: Value,
    profile: Profile,
) -> Result<Value, GatewayError> {
    let build = || {
        let mut builder = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, profile.user_agent());
        if let Some(token) = token {
            let value = crate::credentials::bearer(token)?;
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let mut request = builder
            .body(body::full(payload.to_string()))
            .map_err(|e| GatewayError::invalid_request(format!("invalid url {url:?}: {e}")))?;
        request.extensions_mut().insert(small_call_options());
        Ok(request)
    };
    send_with_backoff(build, transport).await
}

/// Find the account's Cloud project: `loadCodeAssist`, and when the account has no tier yet,
/// `onboardUser` with its default tier, polled until done (five tries, two seconds apart).
pub(crate) async fn discover_project<T: Transport>(
    transport: &T,
    base_url: &str,
    token: &Secret,
    profile: Profile,
) -> Result<String, GatewayError> {
    let base = base_url.trim_end_matches('/');
    let metadata = profile.metadata();
    let loaded = post_json(
        transport,
        &format!("{base}/v1internal:loadCodeAssist"),
        Some(token),
        json!({"metadata": metadata}),
        profile,
    )
    .await?;
    if loaded.get("currentTier").is_some()
        && let Some(project) = project_of(&loaded["cloudaicompanionProject"])
    {
        return Ok(project);
    }
    let tier = loaded["allowedTiers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["isDefault"] == Value::Bool(true))
        .and_then(|t| t["id"].as_str())
        .unwrap_or("LEGACY")
        .to_owned();
    for attempt in 0..ONBOARD_TRIES {
        let answer = post_json(
            transport,
            &format!("{base}/v1internal:onboardUser"),
            Some(token),
            json!({"tierId": tier, "metadata": metadata}),
            profile,
        )
        .await?;
        if answer["done"] == Value::Bool(true) {
            if let Some(project) = project_of(&answer["response"]["cloudaicompanionProject"]) {
                return Ok(project);
            }
            break;
        }
        if attempt + 1 < ONBOARD_TRIES {
            tokio::time::sleep(ONBOARD_PAUSE).await;
        }
    }
    Err(GatewayError::new(
        ErrorKind::Unavailable,
        format!(
            "{} did not assign a project to this account; open {} once with it, then log in again",
            profile.name(),
            match profile {
                Profile::Antigravity => "Antigravity",
                Profile::GeminiCli => "the Gemini CLI",
            }
        ),
    ))
}

fn project_of(value: &Value) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Object(map) => map
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}
