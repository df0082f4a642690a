//! The Redis engine of the shared state.
//!
//! Facts are written under `{prefix}:fact:*` (with the time they stay true) and published on
//! `{prefix}:facts`; every replica applies what the others publish to its local state, and on
//! each (re)connection writes again what it learned (its journal) and reads what Redis holds,
//! so a Redis that restarted empty converges. A token refresh is claimed with `SET NX` on
//! `{prefix}:lock:refresh:{account}`; rate windows are hashes of one-second buckets under
//! `{prefix}:rate:*`, checked and counted by one script; usage sums are a hash,
//! `{prefix}:usage`.
//!
//! Every call on the request path waits at most [`BOUND`]; writes go through a bounded queue
//! and never wait. A supervisor task keeps one multiplexed connection and one subscription,
//! reconnecting every second while Redis is unreachable.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures_util::StreamExt;
use gateway_core::{
    ErrorKind, GatewayError, Secret,
    state::{AccountFact, FactSink, SharedAccounts},
};
use redis::{AsyncCommands, aio::MultiplexedConnection};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::activity::unix_ms;

/// The longest a request waits on Redis.
pub(crate) const BOUND: Duration = Duration::from_millis(250);
/// The pause between connection attempts.
const RECONNECT: Duration = Duration::from_secs(1);
/// How often an unreachable Redis is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// How long a claimed token refresh is held at most.
const REFRESH_LOCK: Duration = Duration::from_secs(15);
/// Writes waiting for Redis; beyond this they are dropped (the journal keeps the facts).
const OUTBOX: usize = 4096;
/// Pools listening at once, at most (those whose pool is gone are forgotten as facts come).
const MAX_SINKS: usize = 64;
/// How long this replica remembers a fact that undid another (an account enabled, a cooldown
/// ended), to write it again after Redis was away.
const TOMBSTONE: Duration = Duration::from_secs(24 * 3600);
/// The rate window.
const WINDOW_MS: u64 = 60_000;
/// How long requests granted ahead stay usable by this replica.
const CREDIT_LIFE: Duration = Duration::from_secs(1);

/// How many requests one admission asks Redis for: one at a time under 1,000 per minute (the
/// limit is then exact across replicas), else a thousandth of the limit, at most 1,000, used by
/// this replica within [`CREDIT_LIFE`] (a grant counts in the window whether used or not, so
/// the limit is never exceeded; a key with only `tpm` checks its token sum once per grant of
/// 100).
fn batch(rpm: Option<u32>) -> u32 {
    match rpm {
        Some(rpm) if rpm < 1000 => 1,
        Some(rpm) => (rpm / 1000).min(1000),
        None => 100,
    }
}

/// Requests granted ahead by Redis, for one key.
#[derive(Debug)]
struct Credit {
    left: u32,
    until: Instant,
    /// More are being asked for.
    refilling: bool,
}

/// Rate admission in one step, over one-second buckets of the last minute (a hash per key and
/// kind): drop the buckets that left the window, refuse over `tpm` (the token sum) or `rpm`
/// (the request count) with how long to wait, else count up to ARGV[4] requests (as many as
/// the window has room for) in this second's bucket and answer how many were granted.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local sec = math.floor(now / 1000)
local first = sec - 59
local function window(key)
  local all = redis.call('HGETALL', key)
  local sum = 0
  local buckets = {}
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    local n = tonumber(all[i + 1])
    if s < first then
      redis.call('HDEL', key, all[i])
    else
      sum = sum + n
      buckets[#buckets + 1] = {s, n}
    end
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return sum, buckets
end
local function wait(sum, buckets, limit)
  local left = sum
  for _, bucket in ipairs(buckets) do
    left = left - bucket[2]
    if left < limit then return (bucket[1] + 60) * 1000 - now end
  end
  return 60000
end
local tpm = tonumber(ARGV[3])
if tpm > 0 then
  local sum, buckets = window(KEYS[2])
  if sum >= tpm then return {2, wait(sum, buckets, tpm)} end
end
local rpm = tonumber(ARGV[2])
local want = tonumber(ARGV[4])
if rpm > 0 then
  local sum, buckets = window(KEYS[1])
  if sum >= rpm then return {1, wait(sum, buckets, rpm)} end
  local grant = math.min(want, rpm - sum)
  redis.call('HINCRBY', KEYS[1], sec, grant)
  redis.call('PEXPIRE', KEYS[1], 61000)
  return {0, grant}
end
return {0, want}
";

/// A fact as it travels through Redis (the token in clear: Redis is the shared store; no
/// `Debug`, so that it cannot reach a log).
#[derive(Clone, Serialize, Deserialize)]
struct Wire {
    /// The replica that learned it.
    from: String,
    #[serde(flatten)]
    fact: WireFact,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
enum WireFact {
    Cooldown {
        account: String,
        model: String,
        until_ms: u64,
    },
    Cleared {
        account: String,
        model: String,
    },
    Disabled {
        account: String,
        reason: String,
    },
    Enabled {
        account: String,
    },
    Token {
        account: String,
        access_token: String,
        expires_ms: u64,
    },
}

impl From<AccountFact> for WireFact {
    fn from(fact: AccountFact) -> Self {
        match fact {
            AccountFact::Cooldown {
                account,
                model,
                until_ms,
            } => Self::Cooldown {
                account,
                model,
                until_ms,
            },
            AccountFact::Cleared { account, model } => Self::Cleared { account, model },
            AccountFact::Disabled { account, reason } => Self::Disabled { account, reason },
            AccountFact::Enabled { account } => Self::Enabled { account },
            AccountFact::Token {
                account,
                access_token,
                expires_ms,
            } => Self::Token {
                account,
                access_token: access_token.expose().to_owned(),
                expires_ms,
            },
        }
    }
}

impl From<WireFact> for AccountFact {
    fn from(fact: WireFact) -> Self {
        match fact {
            WireFact::Cooldown {
                account,
                model,
                until_ms,
            } => Self::Cooldown {
                account,
                model,
                until_ms,
            },
            WireFact::Cleared { account, model } => Self::Cleared { account, model },
            WireFact::Disabled { account, reason } => Self::Disabled { account, reason },
            WireFact::Enabled { account } => Self::Enabled { account },
            WireFact::Token {
                account,
                access_token,
                expires_ms,
            } => Self::Token {
                account,
                access_token: Secret::new(access_token),
                expires_ms,
            },
        }
    }
}

impl WireFact {
    /// The key that holds the fact, and until when it is true (`None`: until it is undone).
    /// Undoing facts (`Cleared`, `Enabled`) name the key they delete, with no deadline.
    fn key(&self, prefix: &str) -> String {
        match self {
            Self::Cooldown { account, model, .. } | Self::Cleared { account, model } => {
                format!("{prefix}:fact:cooldown:{account}:{model}")
            }
            Self::Disabled { account, .. } | Self::Enabled { account } => {
                format!("{prefix}:fact:disabled:{account}")
            }
            Self::Token { account, .. } => format!("{prefix}:fact:token:{account}"),
        }
    }

    /// `Some(until)` for a fact that is kept (until that Unix ms; `u64::MAX`: no deadline),
    /// `None` for one that undoes another.
    fn kept_until(&self) -> Option<u64> {
        match self {
            Self::Cooldown { until_ms, .. } => Some(*until_ms),
            Self::Token { expires_ms, .. } => Some(*expires_ms),
            Self::Disabled { .. } => Some(u64::MAX),
            Self::Cleared { .. } | Self::Enabled { .. } => None,
        }
    }
}

/// A write for the writer task.
enum Write {
    Fact(Wire),
    Spend { name: String, tokens: u64 },
}

/// Whether Redis is reachable, and since when.
#[derive(Debug)]
struct Status {
    since: SystemTime,
    last_error: Option<String>,
    last_warn: Option<Instant>,
}

/// The Redis engine; see the module documentation.
pub(crate) struct RedisState {
    client: redis::Client,
    prefix: String,
    replica: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    status: Mutex<Status>,
    sinks: Mutex<VecDeque<FactSink>>,
    /// The latest fact this replica wrote per key, and until when it holds.
    journal: Mutex<HashMap<String, (String, u64)>>,
    credits: Mutex<HashMap<String, Credit>>,
    /// Tells the supervisor that a command failed: the connection is made anew.
    reconnect: Arc<tokio::sync::Notify>,
    outbox: mpsc::Sender<Write>,
    admit: redis::Script,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// What the usage writer and `/admin/usage` need of Redis.
#[derive(Debug, Clone)]
pub(crate) struct UsageLink {
    pub(crate) client: redis::Client,
    /// The hash of usage sums.
    pub(crate) key: String,
}

/// A Redis error without the URL (which may hold a password).
fn describe(err: &redis::RedisError) -> String {
    format!("{:?}: {}", err.kind(), err.detail().unwrap_or("no detail"))
}

impl RedisState {
    /// The engine for `url` (`redis://`, or `rediss://` for TLS; a password in the URL) with
    /// keys under `prefix`; it connects in the background.
    pub(crate) fn start(url: &str, prefix: &str) -> Result<Arc<Self>, GatewayError> {
        let client = redis::Client::open(url).map_err(|e| {
            GatewayError::invalid_request(format!("state.url is not a Redis URL: {}", describe(&e)))
        })?;
        let (outbox, writes) = mpsc::channel(OUTBOX);
        let state = Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            replica: uuid::Uuid::new_v4().simple().to_string(),
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            status: Mutex::new(Status {
                since: SystemTime::now(),
                last_error: Some("not connected yet".to_owned()),
                last_warn: None,
            }),
            sinks: Mutex::new(VecDeque::new()),
            journal: Mutex::new(HashMap::new()),
            credits: Mutex::new(HashMap::new()),
            reconnect: Arc::new(tokio::sync::Notify::new()),
            outbox,
            admit: redis::Script::new(ADMIT),
        });
        tokio::spawn(supervise(Arc::downgrade(&state)));
        tokio::spawn(write_all(Arc::downgrade(&state), writes));
        Ok(state)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            let mut status = self.status();
            status.since = SystemTime::now();
            status.last_error = None;
            tracing::info!(prefix = %self.prefix, "shared state: redis is reachable");
        }
    }

    /// A command failed: serve on local state, and have the supervisor connect anew.
    fn failed(&self, why: String) {
        self.mark_down(why);
        self.reconnect.notify_one();
    }

    /// Redis failed: serve on local state (a later answer, or the next connection, brings it
    /// back); say so once a minute.
    fn mark_down(&self, why: String) {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        let mut status = self.status();
        if was_up {
            status.since = SystemTime::now();
        }
        let warn = status.last_warn.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if warn {
            status.last_warn = Some(Instant::now());
            tracing::warn!(error = %why, "shared state: redis is unreachable; serving on this replica's state");
        }
        status.last_error = Some(why);
    }

    /// What `/admin/backends` shows.
    pub(crate) fn view(&self) -> Value {
        let status = self.status();
        let since = humantime::format_rfc3339_seconds(status.since).to_string();
        json!({
            "backend": "redis",
            "prefix": self.prefix,
            "up": self.is_up(),
            "since": since,
            "last_error": status.last_error,
        })
    }

    pub(crate) fn usage_link(&self) -> UsageLink {
        UsageLink {
            client: self.client.clone(),
            key: format!("{}:usage", self.prefix),
        }
    }

    fn rate_keys(&self, name: &str) -> (String, String) {
        (
            format!("{}:rate:req:{name}", self.prefix),
            format!("{}:rate:tok:{name}", self.prefix),
        )
    }

    /// Admit one request across replicas; `None` when Redis cannot answer within [`BOUND`].
    /// A key with a high limit spends requests granted ahead, and asks for more in the
    /// background when half of them are gone.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        name: &str,
        rpm: Option<u32>,
        tpm: Option<u64>,
    ) -> Option<Result<(), GatewayError>> {
        let want = batch(rpm);
        if want > 1 {
            let mut credits = self.credits.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(credit) = credits.get_mut(name)
                && credit.left > 0
                && credit.until > Instant::now()
            {
                credit.left -= 1;
                if credit.left < want / 2 && !credit.refilling {
                    credit.refilling = true;
                    let engine = self.clone();
                    let name = name.to_owned();
                    tokio::spawn(async move { engine.refill(&name, rpm, tpm, want).await });
                }
                return Some(Ok(()));
            }
        }
        match self.ask(name, rpm, tpm, want).await? {
            Ok(granted) => {
                if granted > 1 {
                    // Requests that missed at once each got a grant: they add up.
                    let mut credits = self.credits.lock().unwrap_or_else(|p| p.into_inner());
                    let credit = credits.entry(name.to_owned()).or_insert(Credit {
                        left: 0,
                        until: Instant::now(),
                        refilling: false,
                    });
                    if credit.until <= Instant::now() {
                        credit.left = 0;
                    }
                    credit.left += granted - 1;
                    credit.until = Instant::now() + CREDIT_LIFE;
                }
                Some(Ok(()))
            }
            Err(err) => Some(Err(err)),
        }
    }

    /// More requests granted ahead for `name`, added to what is left.
    async fn refill(&self, name: &str, rpm: Option<u32>, tpm: Option<u64>, want: u32) {
        let granted = match self.ask(name, rpm, tpm, want).await {
            Some(Ok(granted)) => granted,
            // Refused or unanswered: the next request asks for itself once these are spent.
            _ => 0,
        };
        let mut credits = self.credits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(credit) = credits.get_mut(name) {
            credit.refilling = false;
            if granted > 0 {
                credit.left += granted;
                credit.until = Instant::now() + CREDIT_LIFE;
            }
        }
    }

    /// Ask Redis to admit up to `want` requests of `name`: how many it granted, or the 429.
    async fn ask(
        &self,
        name: &str,
        rpm: Option<u32>,
        tpm: Option<u64>,
        want: u32,
    ) -> Option<Result<u32, GatewayError>> {
        let mut conn = self.connection()?;
        let (requests, tokens) = self.rate_keys(name);
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(&requests)
            .key(&tokens)
            .arg(unix_ms())
            .arg(rpm.unwrap_or(0))
            .arg(tpm.unwrap_or(0))
            .arg(want);
        let answer: Result<Result<(u8, i64), _>, _> =
            tokio::time::timeout(BOUND, invocation.invoke_async(&mut conn)).await;
        if matches!(answer, Ok(Ok(_))) {
            self.mark_up();
        }
        match answer {
            Ok(Ok((0, granted))) => Some(Ok(u32::try_from(granted.max(1)).unwrap_or(1))),
            Ok(Ok((code, wait_ms))) => {
                let wait = Duration::from_millis(u64::try_from(wait_ms.max(0)).unwrap_or(0));
                let message = if code == 1 {
                    format!(
                        "the key {name:?} made its {} requests per minute",
                        rpm.unwrap_or(0)
                    )
                } else {
                    format!(
                        "the key {name:?} used its {} tokens per minute",
                        tpm.unwrap_or(0)
                    )
                };
                Some(Err(crate::auth::limited(message, wait)))
            }
            Ok(Err(err)) => {
                self.failed(describe(&err));
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {} ms", BOUND.as_millis()));
                None
            }
        }
    }

    /// Count `tokens` of a request of `name` in the shared token window.
    pub(crate) fn spend(&self, name: &str, tokens: u64) {
        if tokens > 0 {
            let _ = self.outbox.try_send(Write::Spend {
                name: name.to_owned(),
                tokens,
            });
        }
    }

    fn dispatch(&self, fact: AccountFact) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        // A sink whose pool is gone (replaced by a reload) says so, and is forgotten.
        sinks.retain(|sink| sink(fact.clone()));
    }

    /// Apply a message from Redis, unless this replica wrote it.
    fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<Wire>(payload) {
            Ok(wire) if wire.from != self.replica => {
                // Another replica learned later what this one holds for the key: its fact
                // stands, and this replica's must not be written back over it.
                let key = wire.fact.key(&self.prefix);
                self.journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                self.dispatch(wire.fact.into());
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(error = %err, "shared state: an unreadable fact was skipped")
            }
        }
    }

    /// Write one fact: kept under its key for as long as it holds, and published.
    async fn write_fact(
        &self,
        conn: &mut MultiplexedConnection,
        wire: &Wire,
    ) -> redis::RedisResult<()> {
        let key = wire.fact.key(&self.prefix);
        let text = serde_json::to_string(wire).unwrap_or_default();
        let mut pipe = redis::pipe();
        match wire.fact.kept_until() {
            Some(u64::MAX) => {
                pipe.set(&key, &text).ignore();
            }
            Some(until) => {
                let left = until.saturating_sub(unix_ms());
                if left == 0 {
                    return Ok(());
                }
                pipe.pset_ex(&key, &text, left).ignore();
            }
            None => {
                pipe.del(&key).ignore();
            }
        }
        pipe.publish(format!("{}:facts", self.prefix), &text)
            .ignore();
        pipe.query_async(conn).await
    }

    /// After a (re)connection: write this replica's journal again, then read every fact
    /// Redis holds.
    async fn resync(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let now = unix_ms();
        let journal: Vec<String> = {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            journal.retain(|_, (_, until)| *until > now);
            journal.values().map(|(text, _)| text.clone()).collect()
        };
        for text in journal {
            if let Ok(wire) = serde_json::from_str::<Wire>(&text) {
                self.write_fact(conn, &wire).await?;
            }
        }
        let pattern = format!("{}:fact:*", self.prefix);
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        for chunk in keys.chunks(100) {
            let values: Vec<Option<String>> = conn.mget(chunk).await?;
            for value in values.into_iter().flatten() {
                self.receive(value.as_bytes());
            }
        }
        Ok(())
    }
}

impl SharedAccounts for RedisState {
    fn publish(&self, fact: AccountFact) {
        let wire = Wire {
            from: self.replica.clone(),
            fact: fact.into(),
        };
        let key = wire.fact.key(&self.prefix);
        {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            let until = wire.fact.kept_until().unwrap_or_else(|| {
                unix_ms().saturating_add(u64::try_from(TOMBSTONE.as_millis()).unwrap_or(0))
            });
            journal.insert(
                key,
                (serde_json::to_string(&wire).unwrap_or_default(), until),
            );
        }
        let _ = self.outbox.try_send(Write::Fact(wire));
    }

    fn listen(&self, sink: FactSink) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        if sinks.len() == MAX_SINKS {
            sinks.pop_front();
        }
        sinks.push_back(sink);
    }

    fn claim_refresh<'a>(
        &'a self,
        account: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let Some(mut conn) = self.connection() else {
                return true;
            };
            let key = format!("{}:lock:refresh:{account}", self.prefix);
            let options = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::PX(
                    u64::try_from(REFRESH_LOCK.as_millis()).unwrap_or(15_000),
                ));
            let claimed: Result<redis::RedisResult<Option<String>>, _> =
                tokio::time::timeout(BOUND, conn.set_options(&key, &self.replica, options)).await;
            match claimed {
                Ok(Ok(Some(_))) => {
                    self.mark_up();
                    true
                }
                Ok(Ok(None)) => {
                    self.mark_up();
                    // The lock may be this replica's own, from its last refresh of the account.
                    let holder: Result<redis::RedisResult<Option<String>>, _> =
                        tokio::time::timeout(BOUND, conn.get(&key)).await;
                    matches!(holder, Ok(Ok(Some(holder))) if holder == self.replica)
                }
                Ok(Err(err)) => {
                    self.failed(describe(&err));
                    true
                }
                Err(_) => true,
            }
        })
    }
}

/// Keep a connection and a subscription while the engine lives.
async fn supervise(state: std::sync::Weak<RedisState>) {
    loop {
        let Some(engine) = state.upgrade() else {
            return;
        };
        match connect(&engine).await {
            Ok((conn, mut pubsub)) => {
                *engine.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
                engine.mark_up();
                let mut messages = pubsub.on_message();
                let reconnect = engine.reconnect.clone();
                drop(engine);
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        // A command failed: this connection is suspect, make both anew.
                        () = reconnect.notified() => None,
                    };
                    let Some(message) = message else {
                        break;
                    };
                    let Some(engine) = state.upgrade() else {
                        return;
                    };
                    engine.receive(message.get_payload_bytes());
                }
                if let Some(engine) = state.upgrade() {
                    *engine.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    engine.mark_down("the connection to redis closed".to_owned());
                }
            }
            Err(why) => {
                *engine.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                engine.mark_down(why);
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One connection for commands and one subscription, with the state resynchronised.
async fn connect(
    engine: &RedisState,
) -> Result<(MultiplexedConnection, redis::aio::PubSub), String> {
    let attempt = async {
        let mut conn = engine.client.get_multiplexed_async_connection().await?;
        let mut pubsub = engine.client.get_async_pubsub().await?;
        pubsub.subscribe(format!("{}:facts", engine.prefix)).await?;
        engine.resync(&mut conn).await?;
        Ok::<_, redis::RedisError>((conn, pubsub))
    };
    match tokio::time::timeout(BOUND * 20, attempt).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(err)) => Err(describe(&err)),
        Err(_) => Err(format!(
            "no connection within {} ms",
            (BOUND * 20).as_millis()
        )),
    }
}

/// Send the queued writes; a write that fails is dropped (facts stay in the journal).
async fn write_all(state: std::sync::Weak<RedisState>, mut writes: mpsc::Receiver<Write>) {
    while let Some(write) = writes.recv().await {
        let Some(engine) = state.upgrade() else {
            return;
        };
        let Some(mut conn) = engine.connection() else {
            continue;
        };
        let sent = match &write {
            Write::Fact(wire) => {
                tokio::time::timeout(BOUND, engine.write_fact(&mut conn, wire)).await
            }
            Write::Spend { name, tokens } => {
                let (_, key) = engine.rate_keys(name);
                let mut pipe = redis::pipe();
                pipe.hincr(&key, unix_ms() / 1000, *tokens)
                    .ignore()
                    .pexpire(&key, i64::try_from(WINDOW_MS + 1000).unwrap_or(61_000))
                    .ignore();
                tokio::time::timeout(BOUND, pipe.query_async::<()>(&mut conn)).await
            }
        };
        match sent {
            Ok(Ok(())) => engine.mark_up(),
            Ok(Err(err)) => engine.failed(describe(&err)),
            Err(_) => engine.failed(format!("no answer within {} ms", BOUND.as_millis())),
        }
    }
}

/// Reading errors of Redis as gateway errors (the usage query).
pub(crate) fn unavailable(err: &redis::RedisError) -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        format!("the shared state (redis) did not answer: {}", describe(err)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_limits_are_asked_one_request_at_a_time() {
        assert_eq!(batch(Some(3)), 1);
        assert_eq!(batch(Some(999)), 1);
        assert_eq!(batch(Some(1000)), 1);
        assert_eq!(batch(Some(50_000)), 50);
        assert_eq!(batch(Some(1_000_000_000)), 1000);
        assert_eq!(batch(None), 100);
    }

    #[test]
    fn facts_travel_with_their_token_and_keys_name_what_they_hold() {
        let fact = AccountFact::Token {
            account: "a@example.com".into(),
            access_token: Secret::new("ya29.x"),
            expires_ms: 5,
        };
        let wire = Wire {
            from: "r1".into(),
            fact: fact.clone().into(),
        };
        let text = serde_json::to_string(&wire).unwrap();
        assert!(text.contains("\"access_token\":\"ya29.x\""), "{text}");
        let back: Wire = serde_json::from_str(&text).unwrap();
        assert_eq!(AccountFact::from(back.fact), fact);
        let cooldown = WireFact::Cooldown {
            account: "a".into(),
            model: "m".into(),
            until_ms: 9,
        };
        let cleared = WireFact::Cleared {
            account: "a".into(),
            model: "m".into(),
        };
        assert_eq!(cooldown.key("p"), cleared.key("p"));
        assert_eq!(cooldown.kept_until(), Some(9));
        assert_eq!(cleared.kept_until(), None);
    }
}
