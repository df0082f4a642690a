//! The account pool: which account serves each call, fresh tokens, and cooldowns.
//!
//! Rules:
//! - Selection among accounts that are enabled and not cooling down for the model: round-robin,
//!   fill-first, or sticky per conversation. Each account has a concurrency limit; a call waits
//!   (bounded) for a free slot, and fails fast with a retry hint when every usable account is
//!   cooling down, instead of sleeping inside the request.
//! - Tokens refresh ahead of expiry, one refresh per account at a time, transport failures are
//!   retried with backoff, and a refresh token the issuer rejects disables only that account.
//! - A missing project id is discovered (`loadCodeAssist`, then `onboardUser`), never faked.
//! - Cooldowns are per (account, model): the upstream's hint when it gives one, else a tiered
//!   lockout. One account's burst of 429s never touches the others.
//! - The operator changes a running pool through the store's directory: accounts added,
//!   removed, enabled, disabled or imported again are picked up within
//!   [`PoolConfig::watch_interval`], and the pool's writes never undo such a change.
//!
//! One submodule per seam, so shared state has one place to go: `selection` (which account,
//! concurrency slots), `cooldown` (what an outcome teaches: lockouts, disabling), `oauth`
//! (token refresh and the OAuth form call), `cloudcode` (project discovery and quota), and
//! `roster` (the account list, its files, and the directory watch).

mod cloudcode;
mod cooldown;
mod oauth;
mod roster;
mod selection;
mod shared;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize},
    },
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinHandle,
    time::Instant,
};

use gateway_core::{
    ErrorKind, GatewayError, Secret, Transport,
    state::{AccountFact, Alone, SharedAccounts},
};

use crate::{
    credentials::{AccountFile, Acquire, Credentials, Lease, unix_ms},
    store::{AccountState, AccountStore, Changed, OPERATOR_DISABLED, Stamp, StoredAccount},
};

pub(crate) use cloudcode::discover_project;
pub(crate) use cooldown::is_capacity_error;
pub(crate) use oauth::{post_form, send_with_backoff};

use roster::Roster;

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
    /// The pool this is: where discovery and quota look-ups go, and how.
    pub profile: crate::Profile,
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
    /// How often a pool with a store looks at its directory for the operator's changes
    /// (`None`: never; [`AccountPool::refresh`] still does on demand).
    pub watch_interval: Option<Duration>,
    /// What the pool shares with the other replicas of its gateway (nothing, by default).
    pub shared: Arc<dyn SharedAccounts>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            profile: crate::Profile::Antigravity,
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
            watch_interval: Some(Duration::from_secs(2)),
            shared: Arc::new(Alone),
        }
    }
}

/// A pool of Google accounts, optionally persisted in an [`AccountStore`] whose directory it
/// follows while it lives (a background task, stopped when the pool is dropped).
#[derive(Debug)]
pub struct AccountPool<T> {
    transport: T,
    config: PoolConfig,
    roster: Arc<Roster>,
    cursor: AtomicUsize,
    sticky: Mutex<HashMap<String, String>>,
    released: Arc<Notify>,
    watcher: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Account {
    id: String,
    slots: Arc<Semaphore>,
    refreshing: tokio::sync::Mutex<()>,
    /// Serialises the account's writes and the adoption of changes found on disk.
    writing: tokio::sync::Mutex<()>,
    live: Mutex<Live>,
    disk: Mutex<Disk>,
    /// Set when the account's file was removed: it serves no new call.
    removed: AtomicBool,
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

/// What the pool knows of the account's file: the copy it last read or wrote (the base of the
/// three-way merge), that file's stamp, and whether the file has existed.
#[derive(Debug)]
struct Disk {
    base: StoredAccount,
    stamp: Option<Stamp>,
    on_disk: bool,
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

impl Live {
    fn from_stored(stored: StoredAccount) -> Self {
        let now_wall = SystemTime::now();
        let now = Instant::now();
        let cooldowns = stored
            .state
            .cooldowns
            .iter()
            .filter_map(|(model, until)| {
                let until = SystemTime::UNIX_EPOCH + Duration::from_millis(*until);
                until
                    .duration_since(now_wall)
                    .ok()
                    .map(|left| (model.clone(), now + left))
            })
            .collect();
        Self {
            token_expires: stored.file.expires_at(),
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

    /// The account as it would be written now.
    fn snapshot(&self, id: &str) -> StoredAccount {
        StoredAccount {
            id: id.to_owned(),
            file: self.file.clone(),
            state: self.persisted(),
        }
    }

    /// Take the operator's fields `changed` names from `from`.
    fn adopt(&mut self, changed: Changed, from: &StoredAccount) {
        changed.apply(from, &mut self.file, &mut self.disabled);
        if changed.tokens() {
            self.token_expires = self.file.expires_at();
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
    fn new(stored: StoredAccount, slots: usize, stamp: Option<Stamp>, on_disk: bool) -> Self {
        Self {
            id: stored.id.clone(),
            slots: Arc::new(Semaphore::new(slots)),
            refreshing: tokio::sync::Mutex::new(()),
            writing: tokio::sync::Mutex::new(()),
            disk: Mutex::new(Disk {
                base: stored.clone(),
                stamp,
                on_disk,
            }),
            live: Mutex::new(Live::from_stored(stored)),
            removed: AtomicBool::new(false),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk
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
    /// A pool over `accounts`; with a store, state changes are written back to it, and the
    /// store's directory is followed (when called inside a tokio runtime).
    pub fn new(
        transport: T,
        config: PoolConfig,
        accounts: Vec<StoredAccount>,
        store: Option<AccountStore>,
    ) -> Self {
        Self::build(transport, config, accounts, store, false)
    }

    /// A pool over every account in `store`, and the problems met while reading it.
    pub fn open(transport: T, config: PoolConfig, store: AccountStore) -> (Self, Vec<String>) {
        let (accounts, problems) = store.load();
        (
            Self::build(transport, config, accounts, Some(store), true),
            problems,
        )
    }

    fn build(
        transport: T,
        config: PoolConfig,
        accounts: Vec<StoredAccount>,
        store: Option<AccountStore>,
        on_disk: bool,
    ) -> Self {
        let slots = config.max_concurrency_per_account.max(1);
        let roster = Arc::new(Roster::new(store, slots, accounts, on_disk));
        let watcher = config
            .watch_interval
            .and_then(|every| roster::watch(&roster, every));
        let released = Arc::new(Notify::new());
        config.shared.listen(shared::sink(
            Arc::downgrade(&roster),
            released.clone(),
            config.profile,
        ));
        Self {
            transport,
            config,
            roster,
            cursor: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
            released,
            watcher,
        }
    }

    /// How many accounts the pool has.
    pub fn len(&self) -> usize {
        self.roster.accounts().len()
    }

    /// Whether the pool has no accounts.
    pub fn is_empty(&self) -> bool {
        self.roster.accounts().is_empty()
    }

    /// Enable or disable an account by id as the operator; returns whether it exists.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> bool {
        let Some(account) = self.roster.find(id) else {
            return false;
        };
        {
            let mut live = account.live();
            live.disabled = (!enabled).then(|| OPERATOR_DISABLED.to_owned());
        }
        let shared = shared::shared_id(self.config.profile, id);
        self.config.shared.publish(if enabled {
            AccountFact::Enabled { account: shared }
        } else {
            AccountFact::Disabled {
                account: shared,
                reason: OPERATOR_DISABLED.to_owned(),
            }
        });
        roster::persist(self.roster.clone(), account).await;
        true
    }

    /// Remove an account: its file (when the pool has a store) and its place in the pool.
    /// Calls in flight finish; no new call uses it. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, GatewayError> {
        let existed = self.roster.remove(id).await?;
        Ok(existed)
    }

    /// Look at the store's directory now and take in the operator's changes: new accounts,
    /// removed ones, and changed files (the background watch does this every
    /// [`PoolConfig::watch_interval`]).
    pub async fn refresh(&self) {
        self.roster.refresh().await;
    }

    /// Write every account whose counters changed since the last write (call it periodically
    /// and at shutdown; important changes are written at once). Writes merge with the files,
    /// so a change the operator made meanwhile is kept.
    pub async fn flush(&self) {
        for account in self.roster.accounts().iter() {
            let dirty = std::mem::take(&mut account.live().dirty);
            if dirty {
                roster::persist(self.roster.clone(), account.clone()).await;
            }
        }
    }

    /// The admin view of every account; with `quota`, each enabled account's quota is fetched
    /// (cached for `quota_ttl`).
    pub async fn views(&self, quota: bool) -> Vec<AccountView> {
        let accounts = self.roster.accounts();
        let mut views = Vec::with_capacity(accounts.len());
        for account in accounts.iter() {
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

    fn account(&self, id: &str) -> Option<Arc<Account>> {
        self.roster.find(id)
    }
}

impl<T> Drop for AccountPool<T> {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
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
        let Some(account) = self.account(&lease.account) else {
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
        let Some(account) = self.account(&lease.account) else {
            return;
        };
        if self.learn(&account, model, outcome) {
            // Written now, off the request path.
            tokio::spawn(roster::persist(self.roster.clone(), account));
        }
    }

    fn is_available(&self) -> bool {
        self.roster
            .accounts()
            .iter()
            .any(|a| a.live().disabled.is_none())
    }
}

#[cfg(test)]
mod tests;
