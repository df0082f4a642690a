//! The account pool: which account serves each call, fresh tokens, and cooldowns.
//!
//! Rules (`shared/docs/antigravity.md`, Credentials):
//! - Selection among accounts that are enabled and not cooling down for the model: round-robin,
//!   fill-first, or sticky per conversation. Each account has a concurrency limit; a call waits
//!   (bounded) for a free slot, and fails fast with a retry hint when every usable account is
//!   cooling down, instead of sleeping inside the request.
//! - Tokens refresh ahead of expiry, one refresh per account at a time, transport failures are
//!   retried with backoff, and a refresh token the issuer rejects disables only that account.
//! - A missing project id is discovered (`loadCodeAssist`, then `onboardUser`), never faked.
//! - Cooldowns are per (account, model): the upstream's hint when it gives one, else a tiered
//!   lockout. One account's burst of 429s never touches the others.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use gateway_core::{
    CallOptions, ErrorKind, Expect, GatewayError, RetryHint, Secret, Timeouts, Transport, body,
};

use crate::{
    credentials::{AccountFile, Acquire, Credentials, Lease},
    store::{AccountState, AccountStore, StoredAccount},
};

/// The public installed-app OAuth client of the Antigravity IDE. Installed-app clients cannot
/// keep a secret, so Google does not treat this one as confidential; it is the default for
/// accounts whose files do not name their own client, and can be configured.
pub const DEFAULT_CLIENT_ID: &str =
    "1071006060591-tmhssin2h21lcre235vtolojh4g403ep.apps.googleusercontent.com";
/// The secret of [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_CLIENT_SECRET: &str = "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";

/// The default OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Refresh this long before the token expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// How the pool picks an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Take turns (the default): spreads load and quota.
    #[default]
    RoundRobin,
    /// Use the first usable account until it cools down.
    FillFirst,
    /// Keep a conversation on one account (upstream caches stay warm), round-robin otherwise.
    Sticky,
}

/// The pool's settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// How an account is picked.
    pub selection: Selection,
    /// Calls in flight per account.
    pub max_concurrency_per_account: usize,
    /// How long a call may wait for a free slot before a 503.
    pub acquire_timeout: Duration,
    /// Lockouts for repeated 429s without a retry hint, per (account, model).
    pub lockout_tiers: Vec<Duration>,
    /// Whether a 403 disables the account.
    pub disable_on_forbidden: bool,
    /// The OAuth token endpoint.
    pub token_url: String,
    /// The client for accounts whose files name none.
    pub client_id: String,
    /// The secret of `client_id`.
    pub client_secret: Secret,
    /// Where project discovery and quota look-ups go.
    pub base_url: String,
    /// How long a fetched quota view is reused.
    pub quota_ttl: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            selection: Selection::RoundRobin,
            max_concurrency_per_account: 4,
            acquire_timeout: Duration::from_secs(30),
            lockout_tiers: [60, 300, 1800, 7200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            disable_on_forbidden: true,
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: Secret::new(DEFAULT_CLIENT_SECRET),
            base_url: crate::service::DEFAULT_BASE_URLS[0].to_owned(),
            quota_ttl: Duration::from_secs(300),
        }
    }
}

/// A pool of Google accounts, optionally persisted in an [`AccountStore`].
#[derive(Debug)]
pub struct AccountPool<T> {
    transport: T,
    config: PoolConfig,
    store: Option<AccountStore>,
    accounts: Vec<Arc<Account>>,
    cursor: AtomicUsize,
    sticky: Mutex<HashMap<String, String>>,
    released: Arc<Notify>,
}

#[derive(Debug)]
struct Account {
    id: String,
    slots: Arc<Semaphore>,
    refreshing: tokio::sync::Mutex<()>,
    writing: tokio::sync::Mutex<()>,
    live: Mutex<Live>,
}

/// In-memory state. Deadlines are tokio instants (so paused-time tests see them pass); they are
/// converted to wall-clock time only when persisted.
#[derive(Debug)]
struct Live {
    file: AccountFile,
    token_expires: Option<SystemTime>,
    disabled: Option<String>,
    cooldowns: HashMap<String, Instant>,
    strikes: BTreeMap<String, u32>,
    requests: u64,
    successes: u64,
    failures: u64,
    last_error: Option<String>,
    last_success: Option<u64>,
    dirty: bool,
    quota: Option<(Instant, Value)>,
}

/// What `/admin/accounts` shows for one account. Secrets are never part of it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// The account id.
    pub id: String,
    /// Its email.
    pub email: Option<String>,
    /// Its project.
    pub project_id: Option<String>,
    /// Why it is disabled, if it is.
    pub disabled_reason: Option<String>,
    /// Model → seconds until the account may serve it again.
    pub cooldowns: BTreeMap<String, u64>,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls made.
    pub requests: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Unix milliseconds of the last success.
    pub last_success: Option<u64>,
    /// Per-model quota from `fetchAvailableModels`, when fetched.
    pub quota: Option<Value>,
}

struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    released: Arc<Notify>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.released.notify_waiters();
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Live {
    fn from_stored(stored: StoredAccount) -> Self {
        let now_wall = SystemTime::now();
        let now = Instant::now();
        let cooldowns = stored
            .state
            .cooldowns
            .iter()
            .filter_map(|(model, until)| {
                let until = UNIX_EPOCH + Duration::from_millis(*until);
                until
                    .duration_since(now_wall)
                    .ok()
                    .map(|left| (model.clone(), now + left))
            })
            .collect();
        let token_expires = stored
            .file
            .expiry
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok());
        Self {
            token_expires,
            disabled: stored.state.disabled_reason,
            cooldowns,
            strikes: stored.state.strikes,
            requests: stored.state.requests,
            successes: stored.state.successes,
            failures: stored.state.failures,
            last_error: stored.state.last_error,
            last_success: stored.state.last_success,
            file: stored.file,
            dirty: false,
            quota: None,
        }
    }

    fn persisted(&self) -> AccountState {
        let now_wall = SystemTime::now();
        let now = Instant::now();
        AccountState {
            disabled_reason: self.disabled.clone(),
            cooldowns: self
                .cooldowns
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(model, until)| (model.clone(), unix_ms(now_wall + (*until - now))))
                .collect(),
            strikes: self.strikes.clone(),
            requests: self.requests,
            successes: self.successes,
            failures: self.failures,
            last_error: self.last_error.clone(),
            last_success: self.last_success,
        }
    }

    fn cooling(&self, model: &str, now: Instant) -> Option<Instant> {
        self.cooldowns
            .get(model)
            .copied()
            .filter(|until| *until > now)
    }

    fn token_fresh(&self) -> bool {
        self.file
            .access_token
            .as_ref()
            .is_some_and(|t| !t.is_empty())
            && self
                .token_expires
                .is_some_and(|at| at > SystemTime::now() + REFRESH_AHEAD)
    }
}

impl Account {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn project(&self) -> Option<String> {
        self.live()
            .file
            .project_id
            .clone()
            .filter(|p| !p.is_empty())
    }
}

impl<T: Transport> AccountPool<T> {
    /// A pool over `accounts`; with a store, state changes are written back to it.
    pub fn new(
        transport: T,
        config: PoolConfig,
        accounts: Vec<StoredAccount>,
        store: Option<AccountStore>,
    ) -> Self {
        let slots = config.max_concurrency_per_account.max(1);
        let accounts = accounts
            .into_iter()
            .map(|stored| {
                Arc::new(Account {
                    id: stored.id.clone(),
                    slots: Arc::new(Semaphore::new(slots)),
                    refreshing: tokio::sync::Mutex::new(()),
                    writing: tokio::sync::Mutex::new(()),
                    live: Mutex::new(Live::from_stored(stored)),
                })
            })
            .collect();
        Self {
            transport,
            config,
            store,
            accounts,
            cursor: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
            released: Arc::new(Notify::new()),
        }
    }

    /// A pool over every account in `store`, and the problems met while reading it.
    pub fn open(transport: T, config: PoolConfig, store: AccountStore) -> (Self, Vec<String>) {
        let (accounts, problems) = store.load();
        (
            Self::new(transport, config, accounts, Some(store)),
            problems,
        )
    }

    /// How many accounts the pool has.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether the pool has no accounts.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Enable or disable an account by id; returns whether it exists.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> bool {
        let Some(account) = self.accounts.iter().find(|a| a.id == id) else {
            return false;
        };
        {
            let mut live = account.live();
            live.disabled = (!enabled).then(|| "disabled by the operator".to_owned());
        }
        self.persist(account).await;
        true
    }

    /// Write every account whose counters changed since the last write (call it periodically
    /// and at shutdown; important changes are written at once).
    pub async fn flush(&self) {
        for account in &self.accounts {
            let dirty = std::mem::take(&mut account.live().dirty);
            if dirty {
                self.persist(account).await;
            }
        }
    }

    /// The admin view of every account; with `quota`, each enabled account's quota is fetched
    /// (cached for `quota_ttl`).
    pub async fn views(&self, quota: bool) -> Vec<AccountView> {
        let mut views = Vec::with_capacity(self.accounts.len());
        for account in &self.accounts {
            if quota {
                // A failed quota look-up leaves the quota out of the view; the account still shows.
                let _ = self.quota(account).await;
            }
            let now = Instant::now();
            let live = account.live();
            views.push(AccountView {
                id: account.id.clone(),
                email: live.file.email.clone(),
                project_id: live.file.project_id.clone(),
                disabled_reason: live.disabled.clone(),
                cooldowns: live
                    .cooldowns
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(model, until)| (model.clone(), (*until - now).as_secs().max(1)))
                    .collect(),
                in_flight: self.config.max_concurrency_per_account.max(1)
                    - account.slots.available_permits(),
                requests: live.requests,
                successes: live.successes,
                failures: live.failures,
                last_error: live.last_error.clone(),
                last_success: live.last_success,
                quota: live.quota.as_ref().map(|(_, q)| q.clone()),
            });
        }
        views
    }

    async fn quota(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
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
        let url = format!(
            "{}/v1internal:fetchAvailableModels",
            self.config.base_url.trim_end_matches('/')
        );
        let response = post_json(&self.transport, &url, Some(&token), json!({})).await?;
        let models = response.get("models").cloned().unwrap_or(Value::Null);
        let quota: BTreeMap<String, Value> = models
            .as_object()
            .into_iter()
            .flatten()
            .map(|(model, info)| {
                (
                    model.clone(),
                    info.get("quotaInfo").cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        account.live().quota = Some((Instant::now(), json!(quota)));
        Ok(())
    }

    /// Write one account now, in order with other writes of the same account.
    async fn persist(&self, account: &Arc<Account>) {
        persist(self.store.clone(), account.clone()).await;
    }

    /// Make sure the account has a fresh token, refreshing at most once at a time.
    async fn ensure_token(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
        if account.live().token_fresh() {
            return Ok(());
        }
        let _refreshing = account.refreshing.lock().await;
        // Another call may have refreshed while this one waited.
        if account.live().token_fresh() {
            return Ok(());
        }
        let result = self.refresh(account).await;
        match &result {
            Ok(()) => {}
            Err(err) if is_permanent_refresh_failure(err) => {
                account.live().disabled =
                    Some(format!("token refresh rejected: {}", err.message()));
            }
            Err(err) => {
                account.live().last_error = Some(format!("token refresh failed: {}", err.message()))
            }
        }
        self.persist(account).await;
        result
    }

    async fn refresh(&self, account: &Arc<Account>) -> Result<(), GatewayError> {
        let (client_id, client_secret, refresh_token) = {
            let live = account.live();
            (
                live.file
                    .client_id
                    .clone()
                    .unwrap_or_else(|| self.config.client_id.clone()),
                live.file
                    .client_secret
                    .clone()
                    .unwrap_or_else(|| self.config.client_secret.clone()),
                live.file.refresh_token.clone(),
            )
        };
        let token: TokenResponse = post_form(
            &self.transport,
            &self.config.token_url,
            &[
                ("client_id", &client_id),
                ("client_secret", client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
                ("grant_type", "refresh_token"),
            ],
        )
        .await?;
        let mut live = account.live();
        live.file.access_token = Some(token.access_token);
        let expires = SystemTime::now() + Duration::from_secs(token.expires_in.unwrap_or(3600));
        live.token_expires = Some(expires);
        live.file.expiry = Some(humantime::format_rfc3339_seconds(expires).to_string());
        if let Some(rotated) = token.refresh_token.filter(|t| !t.is_empty()) {
            live.file.refresh_token = rotated;
        }
        Ok(())
    }

    /// Make sure the account knows its project, discovering it once if needed.
    async fn ensure_project(&self, account: &Arc<Account>) -> Result<String, GatewayError> {
        if let Some(project) = account.project() {
            return Ok(project);
        }
        let _refreshing = account.refreshing.lock().await;
        if let Some(project) = account.project() {
            return Ok(project);
        }
        let token = account.live().file.access_token.clone().unwrap_or_default();
        let project = discover_project(&self.transport, &self.config.base_url, &token).await?;
        account.live().file.project_id = Some(project.clone());
        self.persist(account).await;
        Ok(project)
    }

    /// Candidates for `request` in selection order, or why there are none.
    fn candidates(&self, request: &Acquire<'_>) -> Result<Vec<Arc<Account>>, GatewayError> {
        let now = Instant::now();
        let mut usable = Vec::new();
        let mut earliest: Option<Instant> = None;
        let mut reasons = Vec::new();
        for account in &self.accounts {
            let live = account.live();
            if let Some(reason) = &live.disabled {
                reasons.push(format!("{}: {reason}", account.id));
                continue;
            }
            // Accounts this request already tried still count for "when does one free up".
            if let Some(until) = live.cooling(request.model, now) {
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
                continue;
            }
            if !request.exclude.contains(&account.id) {
                usable.push(account.clone());
            }
        }
        if usable.is_empty() {
            if let Some(until) = earliest {
                let wait = until - now;
                return Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "every antigravity account is cooling down for {}; the first frees up in {}s",
                        request.model,
                        wait.as_secs().max(1)
                    ),
                )
                .with_retry(RetryHint {
                    delay: Some(wait),
                    reason: Some("ACCOUNTS_COOLING_DOWN".to_owned()),
                }));
            }
            let message = if self.accounts.is_empty() {
                "no antigravity account is configured; add one with `gateway login antigravity` or `gateway accounts import FILE`".to_owned()
            } else if reasons.is_empty() {
                "every antigravity account was already tried for this request".to_owned()
            } else {
                format!("no usable antigravity account ({})", reasons.join("; "))
            };
            return Err(GatewayError::new(ErrorKind::Unavailable, message));
        }
        let n = usable.len();
        let start = match self.config.selection {
            Selection::FillFirst => 0,
            Selection::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) % n,
            Selection::Sticky => {
                let remembered = request.conversation.and_then(|c| {
                    let sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
                    sticky
                        .get(c)
                        .and_then(|id| usable.iter().position(|a| &a.id == id))
                });
                remembered.unwrap_or_else(|| self.cursor.fetch_add(1, Ordering::Relaxed) % n)
            }
        };
        usable.rotate_left(start);
        Ok(usable)
    }

    fn remember_conversation(&self, conversation: Option<&str>, account: &str) {
        if self.config.selection != Selection::Sticky {
            return;
        }
        let Some(conversation) = conversation else {
            return;
        };
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if sticky.len() >= 10_000 {
            // Bounded: forget everything rather than grow without end.
            sticky.clear();
        }
        sticky.insert(conversation.to_owned(), account.to_owned());
    }

    async fn lease(
        &self,
        account: &Arc<Account>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Lease, GatewayError> {
        self.ensure_token(account).await?;
        let project_id = self.ensure_project(account).await?;
        let access_token = account.live().file.access_token.clone().unwrap_or_default();
        Ok(Lease {
            account: account.id.clone(),
            access_token,
            project_id,
            _guard: Some(Box::new(SlotGuard {
                _permit: permit,
                released: self.released.clone(),
            })),
        })
    }

    fn account(&self, id: &str) -> Option<&Arc<Account>> {
        self.accounts.iter().find(|a| a.id == id)
    }

    fn cool_down(&self, account: &Arc<Account>, model: &str, err: &GatewayError) {
        let mut live = account.live();
        let delay = match err.retry_after() {
            Some(delay) => delay,
            None => {
                let strikes = live.strikes.entry(model.to_owned()).or_insert(0);
                *strikes += 1;
                let tier = (*strikes as usize)
                    .saturating_sub(1)
                    .min(self.config.lockout_tiers.len().saturating_sub(1));
                self.config
                    .lockout_tiers
                    .get(tier)
                    .copied()
                    .unwrap_or(Duration::from_secs(60))
            }
        };
        live.cooldowns
            .insert(model.to_owned(), Instant::now() + delay);
    }
}

impl<T: Transport> Credentials for AccountPool<T> {
    async fn acquire(&self, request: Acquire<'_>) -> Result<Lease, GatewayError> {
        let deadline = Instant::now() + self.config.acquire_timeout;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let mut busy = false;
            for account in self.candidates(&request)? {
                let Ok(permit) = account.slots.clone().try_acquire_owned() else {
                    busy = true;
                    continue;
                };
                match self.lease(&account, permit).await {
                    Ok(lease) => {
                        self.remember_conversation(request.conversation, &account.id);
                        return Ok(lease);
                    }
                    // Its refresh token was just rejected: the next account may serve.
                    Err(_) if account.live().disabled.is_some() => {}
                    Err(err) => return Err(err),
                }
            }
            if !busy {
                // Every free account was disabled on the way; choose again among the rest.
                continue;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(GatewayError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "every antigravity account is at its limit of {} concurrent calls",
                        self.config.max_concurrency_per_account
                    ),
                ));
            }
        }
    }

    async fn renew(&self, lease: Lease) -> Result<Lease, GatewayError> {
        let Some(account) = self.account(&lease.account).cloned() else {
            return Ok(lease);
        };
        {
            let mut live = account.live();
            // Only invalidate the token that failed; another call may have refreshed already.
            if live.file.access_token.as_ref() == Some(&lease.access_token) {
                live.token_expires = None;
            }
        }
        self.ensure_token(&account).await?;
        let access_token = account.live().file.access_token.clone().unwrap_or_default();
        Ok(Lease {
            access_token,
            ..lease
        })
    }

    fn report(&self, lease: &Lease, model: &str, outcome: Result<(), &GatewayError>) {
        let Some(account) = self.account(&lease.account).cloned() else {
            return;
        };
        let mut urgent = false;
        {
            let mut live = account.live();
            live.requests += 1;
            match outcome {
                Ok(()) => {
                    live.successes += 1;
                    live.last_success = Some(unix_ms(SystemTime::now()));
                    urgent = live.strikes.remove(model).is_some()
                        | live.cooldowns.remove(model).is_some();
                }
                Err(err) => {
                    live.failures += 1;
                    live.last_error = Some(err.message().chars().take(300).collect());
                }
            }
        }
        if let Err(err) = outcome {
            match err.upstream_status().map(|s| s.as_u16()) {
                Some(429) if !is_capacity_error(err) => {
                    self.cool_down(&account, model, err);
                    urgent = true;
                }
                Some(403) if self.config.disable_on_forbidden => {
                    account.live().disabled =
                        Some(format!("forbidden by the upstream: {}", err.message()));
                    urgent = true;
                }
                _ => {}
            }
        }
        account.live().dirty = true;
        if urgent {
            // Written now, off the request path.
            tokio::spawn(persist(self.store.clone(), account));
        }
    }

    fn is_available(&self) -> bool {
        self.accounts.iter().any(|a| a.live().disabled.is_none())
    }
}

/// `MODEL_CAPACITY_EXHAUSTED` is the model being busy everywhere, not this account's quota.
pub(crate) fn is_capacity_error(err: &GatewayError) -> bool {
    err.retry_hint()
        .and_then(|h| h.reason.as_deref())
        .is_some_and(|r| r == "MODEL_CAPACITY_EXHAUSTED")
}

/// `invalid_grant` and its kin mean the refresh token will never work again.
fn is_permanent_refresh_failure(err: &GatewayError) -> bool {
    let body = err
        .upstream_body()
        .map(|b| String::from_utf8_lossy(b).to_lowercase())
        .unwrap_or_default();
    err.kind() == ErrorKind::Upstream
        && [
            "invalid_grant",
            "unauthorized_client",
            "invalid_client",
            "access_denied",
        ]
        .iter()
        .any(|marker| body.contains(marker) || err.message().contains(marker))
}

/// Write `account` to `store`. Writes of one account are serialised and each takes its snapshot
/// after the previous write finished, so the newest state is always the one left on disk.
async fn persist(store: Option<AccountStore>, account: Arc<Account>) {
    let Some(store) = store else { return };
    let _writing = account.writing.lock().await;
    let snapshot = {
        let mut live = account.live();
        live.dirty = false;
        StoredAccount {
            id: account.id.clone(),
            file: live.file.clone(),
            state: live.persisted(),
        }
    };
    let saved = tokio::task::spawn_blocking(move || store.save(&snapshot)).await;
    let failure = match saved {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.message().to_owned(),
        Err(err) => err.to_string(),
    };
    account.live().last_error = Some(format!("could not save the account file: {failure}"));
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Secret>,
}

fn small_call_options() -> CallOptions {
    CallOptions {
        timeouts: Timeouts {
            headers: Some(Duration::from_secs(30)),
            first_byte: Some(Duration::from_secs(30)),
            idle: Some(Duration::from_secs(30)),
            total: Some(Duration::from_secs(60)),
        },
        expect: Expect::Json,
    }
}

/// POST an OAuth form (the token endpoint) and decode the JSON answer, with backoff.
pub(crate) async fn post_form<T, R>(
    transport: &T,
    url: &str,
    pairs: &[(&str, &str)],
) -> Result<R, GatewayError>
where
    T: Transport,
    R: serde::de::DeserializeOwned,
{
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let build = || {
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body::full(form.clone()))
            .map_err(|e| {
                GatewayError::invalid_request(format!("invalid oauth url {url:?}: {e}"))
            })?;
        request.extensions_mut().insert(small_call_options());
        Ok(request)
    };
    send_with_backoff(build, transport).await
}

/// Send a request built by `build`, retrying connection failures and 5xx answers with backoff
/// (three tries: now, after 250 ms, after 1 s), and decode the JSON answer.
pub(crate) async fn send_with_backoff<T, R>(
    build: impl Fn() -> Result<Request<gateway_core::Body>, GatewayError>,
    transport: &T,
) -> Result<R, GatewayError>
where
    T: Transport,
    R: serde::de::DeserializeOwned,
{
    let delays = [Duration::from_millis(250), Duration::from_secs(1)];
    let mut attempt = 0;
    loop {
        match transport.send(build()?).await {
            Ok(response) => {
                let bytes: Bytes = response.into_body().collect().await.map(|c| c.to_bytes())?;
                return serde_json::from_slice(&bytes).map_err(|e| {
                    GatewayError::new(
                        ErrorKind::UpstreamProtocol,
                        format!("invalid oauth answer: {e}"),
                    )
                });
            }
            Err(err) if err.is_retryable() && attempt < delays.len() => {
                tokio::time::sleep(delays[attempt]).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// POST a JSON body to a Cloud Code method and decode the JSON answer.
pub(crate) async fn post_json<T: Transport>(
    transport: &T,
    url: &str,
    token: Option<&Secret>,
    payload: Value,
) -> Result<Value, GatewayError> {
    let build = || {
        let mut builder = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, crate::service::DEFAULT_USER_AGENT);
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

const CLIENT_METADATA: &str =
    r#"{"ideType":"ANTIGRAVITY","platform":"PLATFORM_UNSPECIFIED","pluginType":"GEMINI"}"#;

/// Find the account's Cloud project: `loadCodeAssist`, and when the account has no tier yet,
/// `onboardUser` with its default tier, polled until done (five tries, two seconds apart).
pub(crate) async fn discover_project<T: Transport>(
    transport: &T,
    base_url: &str,
    token: &Secret,
) -> Result<String, GatewayError> {
    let base = base_url.trim_end_matches('/');
    let metadata: Value = serde_json::from_str(CLIENT_METADATA).unwrap_or(Value::Null);
    let loaded = post_json(
        transport,
        &format!("{base}/v1internal:loadCodeAssist"),
        Some(token),
        json!({"metadata": metadata}),
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
    for attempt in 0..5 {
        let answer = post_json(
            transport,
            &format!("{base}/v1internal:onboardUser"),
            Some(token),
            json!({"tierId": tier, "metadata": metadata}),
        )
        .await?;
        if answer["done"] == Value::Bool(true) {
            if let Some(project) = project_of(&answer["response"]["cloudaicompanionProject"]) {
                return Ok(project);
            }
            break;
        }
        if attempt < 4 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Err(GatewayError::new(
        ErrorKind::Unavailable,
        "antigravity did not assign a project to this account; open Antigravity once with it, then log in again",
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
