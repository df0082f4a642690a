//! Usage accounting: the tokens of every routed request, by key name, model, backend, account
//! and day, persisted in SQLite and counted in the metrics.
//!
//! Where the figures come from: every answer leaves the gateway in the client's protocol, and
//! every protocol reports usage in its answer (chat `usage`, Anthropic `message_start` and
//! `message_delta` `usage`, Responses `response.usage`, Gemini `usageMetadata`), whether the
//! answer was passed through, converted, or made in process. So one [`Scanner`] over the bytes
//! the client receives sees the usage of the backend that served, without a hook in the relay.
//! It looks only for the `"usage` key (a substring search per frame) and decodes just that
//! value. One gap remains: a chat stream whose client did not ask for
//! `stream_options.include_usage` carries no usage; for converted and in-process answers the
//! relay's `EventSource` can report the conversation's `Usage` event to the request's [`Meter`]
//! ([`Meter::current`] and [`Meter::observe`]), which needs two lines in `commit.rs`.
//!
//! Writing never waits on the request path: a finished request sends one [`Record`] into a
//! bounded channel (a full channel drops it and counts `gateway_usage_dropped_total`); one
//! writer thread owns the database and writes in batches (at most one transaction a second under
//! load), summing rows per (day, key, model, backend, account). The database is opened when the first batch comes, so a
//! gateway that serves nothing creates no file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use memchr::memmem;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use gateway_core::{ErrorKind, GatewayError, conversation};

use crate::state::redis::UsageLink;

/// Records waiting for the writer; beyond this a record is dropped, never waited for.
const QUEUE: usize = 4096;

/// Records summed into one transaction at most (rows are summed per day, key, model and
/// backend, so a batch is a handful of rows).
const BATCH: usize = 100_000;

/// How long the writer sums records before it writes them: what a crash can lose, and what
/// keeps a busy gateway at one transaction per interval.
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest line (SSE event) or JSON answer the scanner keeps to read usage from.
const MAX_KEPT: usize = 16 << 20;

/// How long a flush (before `/admin/usage` answers, and at shutdown) may wait for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The token counts of one answer. `input` counts cached tokens too; `output` counts
/// reasoning too (as `gateway_core::conversation::Usage` does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) reasoning: u64,
    pub(crate) cached: u64,
}

impl Tokens {
    /// Input plus output: what a token rate limit counts.
    pub(crate) fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// The counts with their metric `kind` labels.
    pub(crate) fn kinds(&self) -> [(&'static str, u64); 4] {
        [
            ("input", self.input),
            ("output", self.output),
            ("reasoning", self.reasoning),
            ("cached", self.cached),
        ]
    }
}

impl From<&conversation::Usage> for Tokens {
    fn from(usage: &conversation::Usage) -> Self {
        Self {
            input: usage.input_tokens,
            output: usage.output_tokens,
            reasoning: usage.reasoning_tokens,
            cached: usage.cache_read_tokens,
        }
    }
}

/// What one request used so far. Every report is merged field by field with the largest
/// value, because protocols report running totals (Gemini on every chunk, Anthropic input at
/// the start and output at the end) and the same answer may be seen twice (its events and its
/// encoded bytes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Arc<MeterInner>);

#[derive(Debug, Default)]
struct MeterInner {
    seen: AtomicBool,
    input: AtomicU64,
    output: AtomicU64,
    reasoning: AtomicU64,
    cached: AtomicU64,
}

tokio::task_local! {
    /// The meter of the request the current task serves.
    static METER: Meter;
}

impl Meter {
    /// Run `future` (a request's handling) with this meter as [`Meter::current`].
    pub(crate) async fn scope<F: Future>(self, future: F) -> F::Output {
        METER.scope(self, future).await
    }

    /// The meter of the request being served, for a source built while handling it.
    pub(crate) fn current() -> Option<Self> {
        METER.try_with(Self::clone).ok()
    }

    /// Merge one report.
    pub(crate) fn record(&self, tokens: &Tokens) {
        let inner = &self.0;
        inner.seen.store(true, Ordering::Relaxed);
        inner.input.fetch_max(tokens.input, Ordering::Relaxed);
        inner.output.fetch_max(tokens.output, Ordering::Relaxed);
        inner
            .reasoning
            .fetch_max(tokens.reasoning, Ordering::Relaxed);
        inner.cached.fetch_max(tokens.cached, Ordering::Relaxed);
    }

    /// Merge a conversation `Usage` event.
    pub(crate) fn observe(&self, usage: &conversation::Usage) {
        self.record(&Tokens::from(usage));
    }

    /// What was reported, if anything.
    pub(crate) fn tokens(&self) -> Option<Tokens> {
        let inner = &self.0;
        inner.seen.load(Ordering::Relaxed).then(|| Tokens {
            input: inner.input.load(Ordering::Relaxed),
            output: inner.output.load(Ordering::Relaxed),
            reasoning: inner.reasoning.load(Ordering::Relaxed),
            cached: inner.cached.load(Ordering::Relaxed),
        })
    }
}

/// Reads usage from the bytes of an answer as the client receives them.
#[derive(Debug)]
pub(crate) struct Scanner {
    meter: Meter,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// An event stream: complete lines are searched; a line split across frames is carried.
    Lines { carry: Vec<u8>, overflow: bool },
    /// A JSON answer (or Gemini's streamed JSON array): read once it is complete.
    Whole { frames: Vec<Bytes>, size: usize },
    /// Anything else.
    Off,
}

impl Scanner {
    /// A scanner for an answer of `content_type`, reporting to `meter`.
    pub(crate) fn new(content_type: Option<&str>, meter: Meter) -> Self {
        let essence = content_type
            .and_then(|t| t.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        let mode = if essence.eq_ignore_ascii_case("text/event-stream") {
            Mode::Lines {
                carry: Vec::new(),
                overflow: false,
            }
        } else if essence.eq_ignore_ascii_case("application/json") {
            Mode::Whole {
                frames: Vec::new(),
                size: 0,
            }
        } else {
            Mode::Off
        };
        Self { meter, mode }
    }

    /// Look at one frame of the answer.
    pub(crate) fn feed(&mut self, frame: &Bytes) {
        match &mut self.mode {
            Mode::Off => {}
            Mode::Whole { frames, size } => {
                *size += frame.len();
                if *size > MAX_KEPT {
                    self.mode = Mode::Off;
                } else {
                    frames.push(frame.clone());
                }
            }
            Mode::Lines { carry, overflow } => {
                let mut data = &frame[..];
                if !carry.is_empty() || *overflow {
                    let Some(end) = memchr::memchr(b'\n', data) else {
                        keep(carry, overflow, data);
                        return;
                    };
                    keep(carry, overflow, &data[..end]);
                    if !*overflow {
                        line(carry, &self.meter);
                    }
                    carry.clear();
                    *overflow = false;
                    data = &data[end + 1..];
                }
                let complete = memchr::memrchr(b'\n', data).map_or(0, |end| end + 1);
                let (lines, tail) = data.split_at(complete);
                if memmem::find(lines, b"\"usage").is_some() {
                    for one in lines.split(|b| *b == b'\n') {
                        line(one, &self.meter);
                    }
                }
                keep(carry, overflow, tail);
            }
        }
    }

    /// The answer ended: read what was kept.
    pub(crate) fn finish(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Off) {
            Mode::Off => {}
            Mode::Lines { carry, overflow } => {
                if !overflow {
                    line(&carry, &self.meter);
                }
            }
            Mode::Whole { frames, .. } => {
                let whole = match frames.as_slice() {
                    [one] => one.clone(),
                    many => Bytes::from(many.concat()),
                };
                if let Some(tokens) = usage_in(&whole) {
                    self.meter.record(&tokens);
                }
            }
        }
    }
}

fn keep(carry: &mut Vec<u8>, overflow: &mut bool, bytes: &[u8]) {
    if *overflow || carry.len() + bytes.len() > MAX_KEPT {
        *overflow = true;
        carry.clear();
    } else {
        carry.extend_from_slice(bytes);
    }
}

fn line(line: &[u8], meter: &Meter) {
    if memmem::find(line, b"\"usage").is_some()
        && let Some(tokens) = usage_in(line)
    {
        meter.record(&tokens);
    }
}

/// Usage as every protocol writes it; each names its counts differently, so one shape reads
/// them all.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Wire {
    // OpenAI chat (and pass-through endpoints such as embeddings).
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    // Anthropic and OpenAI Responses.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    output_tokens_details: Option<Details>,
    // Gemini.
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    cached_content_token_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Details {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

impl Wire {
    fn tokens(&self) -> Tokens {
        let detail = |details: &Option<Details>, pick: fn(&Details) -> Option<u64>| {
            details.as_ref().and_then(pick).unwrap_or(0)
        };
        if self.prompt_token_count.is_some() || self.candidates_token_count.is_some() {
            let thoughts = self.thoughts_token_count.unwrap_or(0);
            return Tokens {
                input: self.prompt_token_count.unwrap_or(0),
                output: self.candidates_token_count.unwrap_or(0) + thoughts,
                reasoning: thoughts,
                cached: self.cached_content_token_count.unwrap_or(0),
            };
        }
        if self.prompt_tokens.is_some() || self.completion_tokens.is_some() {
            return Tokens {
                input: self.prompt_tokens.unwrap_or(0),
                output: self.completion_tokens.unwrap_or(0),
                reasoning: detail(&self.completion_tokens_details, |d| d.reasoning_tokens),
                cached: detail(&self.prompt_tokens_details, |d| d.cached_tokens),
            };
        }
        // Anthropic counts cached input apart from `input_tokens`; Responses within it.
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        Tokens {
            input: self.input_tokens.unwrap_or(0) + read + written,
            output: self.output_tokens.unwrap_or(0),
            reasoning: detail(&self.output_tokens_details, |d| d.reasoning_tokens),
            cached: read + detail(&self.input_tokens_details, |d| d.cached_tokens),
        }
    }
}

/// The usage in one JSON text (an answer, or one event's line): the value of the last
/// `"usage"` or `"usageMetadata"` key, decoded alone. A key inside a string is escaped
/// (`\"usage\"`) and never matches.
pub(crate) fn usage_in(text: &[u8]) -> Option<Tokens> {
    for at in memmem::rfind_iter(text, b"\"usage") {
        if at > 0 && text[at - 1] == b'\\' {
            continue;
        }
        let rest = &text[at + b"\"usage".len()..];
        let rest = rest
            .strip_prefix(b"\"")
            .or_else(|| rest.strip_prefix(b"Metadata\""));
        let Some(rest) = rest else { continue };
        let rest = rest.trim_ascii_start();
        let Some(value) = rest.strip_prefix(b":") else {
            continue;
        };
        let mut decoder = serde_json::Deserializer::from_slice(value);
        return match Option::<Wire>::deserialize(&mut decoder) {
            Ok(Some(wire)) => Some(wire.tokens()),
            Ok(None) | Err(_) => None,
        };
    }
    None
}

/// The account of a backend that served an answer, carried in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Account(pub(crate) String);

/// One finished request, for the database.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) key: Arc<str>,
    pub(crate) model: String,
    pub(crate) backend: String,
    /// The account that served, when known (empty: not known here).
    pub(crate) account: String,
    pub(crate) tokens: Tokens,
    pub(crate) at: SystemTime,
}

enum Message {
    Record(Record),
    Flush(oneshot::Sender<()>),
}

/// The writer's side of the database: a bounded queue to a thread of its own.
#[derive(Debug)]
pub(crate) struct Recorder {
    queue: Option<mpsc::Sender<Message>>,
    path: Option<PathBuf>,
    redis: Option<UsageLink>,
    dropped: Counter,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Record(record) => record.fmt(f),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Recorder {
    /// A recorder writing to `path` and to the shared state's Redis (neither: records are not
    /// kept); `dropped` counts records lost to a full queue.
    pub(crate) fn start(path: Option<PathBuf>, redis: Option<UsageLink>, dropped: Counter) -> Self {
        let stores = (path.is_some() || redis.is_some()).then(|| (path.clone(), redis.clone()));
        let queue = stores.and_then(|(path, redis)| {
            let (queue, receiver) = mpsc::channel(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("usage-writer".to_owned())
                .spawn(move || writer(path.as_deref(), redis.as_ref(), receiver));
            match spawned {
                Ok(_) => Some(queue),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot start the usage writer; usage is not kept");
                    None
                }
            }
        });
        Self {
            queue,
            path,
            redis,
            dropped,
        }
    }

    /// Hand `record` to the writer without waiting; a full queue drops it.
    pub(crate) fn record(&self, record: Record) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(Message::Record(record)).is_err() {
            self.dropped.inc();
        }
    }

    /// Wait (a bounded time) until every record handed on so far is written.
    pub(crate) async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, written) = oneshot::channel();
        let sent = tokio::time::timeout(FLUSH_WAIT, queue.send(Message::Flush(done))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(FLUSH_WAIT, written).await;
        }
    }

    /// Rows matching `query`, summed over what `query` does not group by: from the shared
    /// state's Redis (every replica's usage) when there is one and it answers, else from this
    /// replica's database.
    pub(crate) async fn query(&self, query: Query) -> Result<Value, GatewayError> {
        if self.path.is_none() && self.redis.is_none() {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                "usage is not kept: state.usage_db is empty",
            ));
        }
        self.flush().await;
        let path = self.path.clone();
        let redis = self.redis.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(redis) = &redis {
                match read_redis(redis, &query) {
                    Ok(answer) => return Ok(answer),
                    Err(err) if path.is_none() => return Err(err),
                    Err(err) => {
                        tracing::warn!(error = %err, "usage from this replica only");
                    }
                }
            }
            match &path {
                Some(path) => read(path, &query),
                None => Err(GatewayError::internal("no usage store")),
            }
        })
        .await
        .map_err(|e| GatewayError::internal(format!("the usage query failed: {e}")))?
    }
}

/// The writer thread: batches of records summed per row, one transaction per batch (and one
/// pipeline to Redis; what Redis did not take is added to the next batch's).
fn writer(path: Option<&Path>, redis: Option<&UsageLink>, mut receiver: mpsc::Receiver<Message>) {
    let mut database: Option<rusqlite::Connection> = None;
    let mut shared = SharedUsage::default();
    while let Some(first) = receiver.blocking_recv() {
        let mut sums: HashMap<RowKey, Sums> = HashMap::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        // Sum for up to one interval after the first record (or until a flush asks), so a
        // busy gateway writes once per interval instead of once per request.
        let deadline = std::time::Instant::now() + WRITE_INTERVAL;
        while let Some(message) = next.take() {
            match message {
                Message::Record(record) => {
                    let sum = sums.entry(RowKey::of(&record)).or_default();
                    sum.add(&record.tokens);
                }
                Message::Flush(done) => waiting.push(done),
            }
            taken += 1;
            while next.is_none() && taken < BATCH && waiting.is_empty() {
                match receiver.try_recv() {
                    Ok(message) => next = Some(message),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        std::thread::sleep(left.min(std::time::Duration::from_millis(20)));
                    }
                }
            }
        }
        if !sums.is_empty()
            && let Some(path) = path
        {
            if database.is_none() {
                database = open(path)
                    .map_err(|err| tracing::warn!(error = %err, path = %path.display(), "cannot open the usage database"))
                    .ok();
            }
            if let Some(connection) = database.as_mut()
                && let Err(err) = write(connection, &sums)
            {
                tracing::warn!(error = %err, rows = sums.len(), "cannot write usage; this batch is lost");
                database = None;
            }
        }
        if let Some(redis) = redis {
            shared.write(redis, sums);
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RowKey {
    day: String,
    key: Arc<str>,
    model: String,
    backend: String,
    account: String,
}

impl RowKey {
    fn of(record: &Record) -> Self {
        Self {
            day: day_of(record.at),
            key: record.key.clone(),
            model: record.model.clone(),
            backend: record.backend.clone(),
            account: record.account.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Sums {
    requests: u64,
    tokens: Tokens,
}

impl Sums {
    fn add(&mut self, tokens: &Tokens) {
        self.requests += 1;
        self.tokens.input += tokens.input;
        self.tokens.output += tokens.output;
        self.tokens.reasoning += tokens.reasoning;
        self.tokens.cached += tokens.cached;
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    account TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key, model, backend, account)
) WITHOUT ROWID;
";

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // A failure shows in the open below.
        let _ = std::fs::create_dir_all(parent);
    }
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

fn write(
    connection: &mut rusqlite::Connection,
    sums: &HashMap<RowKey, Sums>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO usage (day, key, model, backend, account, requests, input_tokens, output_tokens, reasoning_tokens, cached_tokens)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (day, key, model, backend, account) DO UPDATE SET
                requests = requests + excluded.requests,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
                cached_tokens = cached_tokens + excluded.cached_tokens",
        )?;
        for (row, sum) in sums {
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            upsert.execute(rusqlite::params![
                row.day,
                &*row.key,
                row.model,
                row.backend,
                row.account,
                count(sum.requests),
                count(sum.tokens.input),
                count(sum.tokens.output),
                count(sum.tokens.reasoning),
                count(sum.tokens.cached),
            ])?;
        }
    }
    transaction.commit()
}

/// The columns a query may group by, in their output order.
const DIMENSIONS: [&str; 5] = ["day", "key", "model", "backend", "account"];

/// What `GET /admin/usage` asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query {
    /// First day, `YYYY-MM-DD` (UTC), inclusive.
    from: Option<String>,
    /// Last day, inclusive.
    to: Option<String>,
    key: Option<String>,
    model: Option<String>,
    backend: Option<String>,
    account: Option<String>,
    /// Columns kept apart; the others are summed over.
    group_by: Vec<&'static str>,
    /// `format=csv`: the rows as CSV rather than JSON.
    pub(crate) csv: bool,
}

impl Query {
    /// Read the query string: `from`, `to`, `key`, `model`, `backend`, `account`,
    /// `group_by` (a comma-separated subset of day, key, model, backend, account; default all)
    /// and `format` (`json`, the default, or `csv`).
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, GatewayError> {
        let mut parsed = Self {
            group_by: DIMENSIONS.to_vec(),
            ..Self::default()
        };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "from" | "to" => {
                    if !is_day(&value) {
                        return Err(GatewayError::invalid_request(format!(
                            "{name} must be a day like 2025-01-31, not {value:?}"
                        ))
                        .with_param(name));
                    }
                    if name == "from" {
                        parsed.from = Some(value);
                    } else {
                        parsed.to = Some(value);
                    }
                }
                "key" => parsed.key = Some(value),
                "model" => parsed.model = Some(value),
                "backend" => parsed.backend = Some(value),
                "account" => parsed.account = Some(value),
                "format" => {
                    parsed.csv = match value.as_str() {
                        "json" => false,
                        "csv" => true,
                        other => {
                            return Err(GatewayError::invalid_request(format!(
                                "format is json or csv, not {other:?}"
                            ))
                            .with_param("format"));
                        }
                    }
                }
                "group_by" => {
                    let mut columns = Vec::new();
                    for column in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                        let Some(known) = DIMENSIONS.iter().find(|d| **d == column) else {
                            return Err(GatewayError::invalid_request(format!(
                                "cannot group by {column:?} (day, key, model, backend, account)"
                            ))
                            .with_param("group_by"));
                        };
                        columns.push(*known);
                    }
                    parsed.group_by = DIMENSIONS
                        .iter()
                        .filter(|d| columns.contains(d))
                        .copied()
                        .collect();
                }
                other => {
                    return Err(GatewayError::invalid_request(format!(
                        "unknown parameter {other:?} (from, to, key, model, backend, account, group_by, format)"
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

fn is_day(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Usage on its way to Redis: the sums Redis has not taken yet (kept while it is away, up to
/// a bound), and the connection.
#[derive(Default)]
struct SharedUsage {
    unsent: HashMap<RowKey, Sums>,
    connection: Option<redis::Connection>,
}

/// Rows kept for Redis while it is away; beyond this the oldest knowledge is the one lost.
const UNSENT_ROWS: usize = 100_000;

/// The field of one sum in the usage hash: the row's dimensions and the column, separated by
/// the unit separator (which no name contains).
fn field(row: &RowKey, column: &str) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{column}",
        row.day, row.key, row.model, row.backend, row.account
    )
}

impl SharedUsage {
    fn write(&mut self, link: &UsageLink, sums: HashMap<RowKey, Sums>) {
        for (row, sum) in sums {
            let kept = self.unsent.entry(row).or_default();
            kept.requests += sum.requests;
            kept.tokens.input += sum.tokens.input;
            kept.tokens.output += sum.tokens.output;
            kept.tokens.reasoning += sum.tokens.reasoning;
            kept.tokens.cached += sum.tokens.cached;
        }
        if self.unsent.is_empty() {
            return;
        }
        if self.connection.is_none() {
            self.connection = link
                .client
                .get_connection_with_timeout(crate::state::redis::BOUND * 4)
                .ok();
            if let Some(connection) = &self.connection {
                let _ = connection.set_read_timeout(Some(crate::state::redis::BOUND * 4));
                let _ = connection.set_write_timeout(Some(crate::state::redis::BOUND * 4));
            }
        }
        let Some(connection) = self.connection.as_mut() else {
            self.bound();
            return;
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (row, sum) in &self.unsent {
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            for (column, n) in [
                ("requests", sum.requests),
                ("input_tokens", sum.tokens.input),
                ("output_tokens", sum.tokens.output),
                ("reasoning_tokens", sum.tokens.reasoning),
                ("cached_tokens", sum.tokens.cached),
            ] {
                pipe.hincr(&link.key, field(row, column), count(n)).ignore();
            }
        }
        match pipe.exec(connection) {
            Ok(()) => self.unsent.clear(),
            Err(_) => {
                self.connection = None;
                self.bound();
            }
        }
    }

    fn bound(&mut self) {
        if self.unsent.len() > UNSENT_ROWS {
            tracing::warn!(
                rows = self.unsent.len(),
                "usage for redis over its bound; dropped"
            );
            self.unsent.clear();
        }
    }
}

/// Every replica's usage from Redis, queried like the database (loaded into one in memory).
fn read_redis(link: &UsageLink, query: &Query) -> Result<Value, GatewayError> {
    let failed = |err: rusqlite::Error| GatewayError::internal(format!("usage: {err}"));
    let mut connection = link
        .client
        .get_connection_with_timeout(crate::state::redis::BOUND * 4)
        .map_err(|e| crate::state::redis::unavailable(&e))?;
    let _ = connection.set_read_timeout(Some(crate::state::redis::BOUND * 8));
    let all: HashMap<String, i64> = redis::Commands::hgetall(&mut connection, &link.key)
        .map_err(|e| crate::state::redis::unavailable(&e))?;
    let mut rows: HashMap<[String; 5], [i64; 5]> = HashMap::new();
    for (name, value) in all {
        let parts: Vec<&str> = name.split('\u{1f}').collect();
        let [day, key, model, backend, account, column] = parts[..] else {
            continue;
        };
        let Some(index) = SUMS.iter().position(|c| *c == column) else {
            continue;
        };
        let row = rows
            .entry([day, key, model, backend, account].map(str::to_owned))
            .or_default();
        row[index] += value;
    }
    let mut memory = rusqlite::Connection::open_in_memory().map_err(failed)?;
    memory.execute_batch(SCHEMA).map_err(failed)?;
    {
        let transaction = memory.transaction().map_err(failed)?;
        {
            let mut insert = transaction
                .prepare("INSERT INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
                .map_err(failed)?;
            for (row, sums) in &rows {
                insert
                    .execute(rusqlite::params![
                        row[0], row[1], row[2], row[3], row[4], sums[0], sums[1], sums[2], sums[3],
                        sums[4]
                    ])
                    .map_err(failed)?;
            }
        }
        transaction.commit().map_err(failed)?;
    }
    select(&memory, query)
}

fn read(path: &Path, query: &Query) -> Result<Value, GatewayError> {
    let failed = |err: rusqlite::Error| {
        GatewayError::internal(format!("cannot read the usage database: {err}"))
    };
    if !path.exists() {
        return Ok(answer(query, Vec::new()));
    }
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(failed)?;
    select(&connection, query)
}

/// Run `query` on a connection holding the usage table.
fn select(connection: &rusqlite::Connection, query: &Query) -> Result<Value, GatewayError> {
    let failed = |err: rusqlite::Error| {
        GatewayError::internal(format!("cannot read the usage database: {err}"))
    };
    let mut conditions = Vec::new();
    let mut values: Vec<String> = Vec::new();
    for (column, op, value) in [
        ("day", ">=", &query.from),
        ("day", "<=", &query.to),
        ("key", "=", &query.key),
        ("model", "=", &query.model),
        ("backend", "=", &query.backend),
        ("account", "=", &query.account),
    ] {
        if let Some(value) = value {
            values.push(value.clone());
            conditions.push(format!("{column} {op} ?{}", values.len()));
        }
    }
    let columns = query.group_by.join(", ");
    let selected = if columns.is_empty() {
        String::new()
    } else {
        format!("{columns}, ")
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let grouping = if columns.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {columns} ORDER BY {columns}")
    };
    // Column names come from `DIMENSIONS` only; values are bound parameters.
    let sql = format!(
        "SELECT {selected}SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(cached_tokens) FROM usage{filter}{grouping}"
    );
    let mut statement = match connection.prepare(&sql) {
        Ok(statement) => statement,
        // A database written by no batch yet has no table.
        Err(rusqlite::Error::SqliteFailure(_, Some(message)))
            if message.contains("no such table") =>
        {
            return Ok(answer(query, Vec::new()));
        }
        Err(err) => return Err(failed(err)),
    };
    let dimensions = query.group_by.len();
    let rows = statement
        .query_map(rusqlite::params_from_iter(values.iter()), |row| {
            let mut object = serde_json::Map::new();
            for (i, name) in query.group_by.iter().enumerate() {
                object.insert((*name).to_owned(), Value::String(row.get(i)?));
            }
            for (i, name) in SUMS.into_iter().enumerate() {
                let sum: Option<i64> = row.get(dimensions + i)?;
                object.insert(name.to_owned(), json!(sum.unwrap_or(0)));
            }
            Ok(Value::Object(object))
        })
        .map_err(failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    // Without grouping, SQLite answers one row of nulls for an empty table: no usage.
    let rows = rows
        .into_iter()
        .filter(|row| row["requests"].as_i64().is_some_and(|n| n > 0))
        .collect();
    Ok(answer(query, rows))
}

/// The rows of a usage answer as CSV: the grouped columns, then the sums.
pub(crate) fn csv(answer: &Value) -> Result<String, GatewayError> {
    let failed = |err: csv::Error| GatewayError::internal(format!("cannot write CSV: {err}"));
    let mut columns: Vec<&str> = answer["group_by"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    columns.extend(SUMS);
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&columns).map_err(failed)?;
    for row in answer["data"].as_array().into_iter().flatten() {
        let record = columns.iter().map(|column| match &row[*column] {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        });
        writer.write_record(record).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| GatewayError::internal(format!("cannot write CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| GatewayError::internal(format!("CSV: {e}")))
}

/// The summed columns of a usage row.
const SUMS: [&str; 5] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_tokens",
];

fn answer(query: &Query, rows: Vec<Value>) -> Value {
    json!({
        "object": "list",
        "group_by": query.group_by,
        "data": rows,
    })
}

/// The UTC day of `at`, `YYYY-MM-DD`.
pub(crate) fn day_of(at: SystemTime) -> String {
    let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(content_type: &str, frames: &[&str]) -> Option<Tokens> {
        let meter = Meter::default();
        let mut scanner = Scanner::new(Some(content_type), meter.clone());
        for frame in frames {
            scanner.feed(&Bytes::copy_from_slice(frame.as_bytes()));
        }
        scanner.finish();
        meter.tokens()
    }

    #[test]
    fn every_protocol_reports_its_usage() {
        let chat = r#"{"id":"x","choices":[{"message":{"content":"the \"usage\": 99"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":3},"prompt_tokens_details":{"cached_tokens":2}}}"#;
        assert_eq!(
            scan("application/json", &[chat]),
            Some(Tokens {
                input: 11,
                output: 7,
                reasoning: 3,
                cached: 2
            })
        );
        let anthropic = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"us",
            "age\":{\"output_tokens\":12}}\n\n",
        ];
        assert_eq!(
            scan("text/event-stream", &anthropic),
            Some(Tokens {
                input: 9,
                output: 12,
                reasoning: 0,
                cached: 4
            })
        );
        let responses = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[],\"usage\":{\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":8},\"output_tokens\":6,\"output_tokens_details\":{\"reasoning_tokens\":2}}}}\n\n";
        assert_eq!(
            scan("text/event-stream", &[responses]),
            Some(Tokens {
                input: 20,
                output: 6,
                reasoning: 2,
                cached: 8
            })
        );
        let gemini = [
            "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\r\n\r\n",
            "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2}}\r\n\r\n",
        ];
        assert_eq!(
            scan("text/event-stream", &gemini),
            Some(Tokens {
                input: 3,
                output: 6,
                reasoning: 2,
                cached: 0
            })
        );
        let without = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";
        assert_eq!(scan("text/event-stream", &[without]), None);
        assert_eq!(scan("audio/mpeg", &[chat]), None);
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(UNIX_EPOCH), "1970-01-01");
        assert_eq!(
            day_of(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29"
        );
        assert_eq!(
            day_of(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29"
        );
    }

    #[test]
    fn queries_are_checked() {
        let query = Query::parse(Some("from=2025-01-01&key=alice%20b&group_by=day,model")).unwrap();
        assert_eq!(query.from.as_deref(), Some("2025-01-01"));
        assert_eq!(query.key.as_deref(), Some("alice b"));
        assert_eq!(query.group_by, vec!["day", "model"]);
        assert!(Query::parse(Some("from=yesterday")).is_err());
        assert!(Query::parse(Some("group_by=prompt")).is_err());
        assert!(Query::parse(Some("limit=3")).is_err());
    }

    #[tokio::test]
    async fn rows_are_summed_per_day_and_survive_a_new_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/usage.sqlite");
        let at = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        let record = |key: &str, model: &str, input| Record {
            key: Arc::from(key),
            model: model.to_owned(),
            backend: "b".to_owned(),
            account: String::new(),
            tokens: Tokens {
                input,
                output: 1,
                reasoning: 0,
                cached: 0,
            },
            at,
        };
        let recorder = Recorder::start(Some(path.clone()), None, Counter::default());
        recorder.record(record("alice", "m1", 10));
        recorder.record(record("alice", "m1", 5));
        recorder.record(record("bob", "m2", 1));
        let all = recorder.query(Query::parse(None).unwrap()).await.unwrap();
        assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
        drop(recorder);
        let again = Recorder::start(Some(path), None, Counter::default());
        again.record(record("alice", "m1", 1));
        let alice = again
            .query(Query::parse(Some("key=alice&group_by=day")).unwrap())
            .await
            .unwrap();
        assert_eq!(
            alice["data"],
            json!([{"day": "2024-02-29", "requests": 3, "input_tokens": 16, "output_tokens": 3, "reasoning_tokens": 0, "cached_tokens": 0}])
        );
    }
}
