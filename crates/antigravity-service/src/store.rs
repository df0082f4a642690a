//! The account store: one JSON file per account in a directory.
//!
//! A file holds the account as the existing tools export it, plus the gateway's state for it
//! under the `"gateway"` key (disabled reason, cooldowns per model, counters, last error, last
//! success), so everything survives a restart. Writes are atomic: a temporary file in the same
//! directory, written with owner-only permissions, synced, renamed over the old file, and the
//! directory synced. A crash leaves the old file or the new one, never a truncated one.
//!
//! Two kinds of writer share the directory: the operator (`gateway accounts ...`, `gateway
//! login`, the admin API) and a running gateway, which keeps the accounts in memory. So that
//! neither undoes the other:
//! - Every read-modify-write holds an advisory lock on `.lock` in the directory, across
//!   processes, from reading the file to the rename.
//! - The gateway never writes its memory over the file. It writes a three-way merge of the copy
//!   it last read or wrote (the base), its memory (ours) and the file now (theirs): each of the
//!   operator's fields (the credentials, project, email, other keys, the disabled reason) that
//!   changed on disk since the base is taken from the file; the rest from memory. The learned
//!   state is the gateway's (cooldowns, strikes, last error from memory); counters take the
//!   larger value, so they never go backwards. A file that disappeared is not written again.
//! - The gateway notices changes by a cheap scan ([`AccountStore::scan`]): a file whose size,
//!   modification time or inode differs from what the gateway last saw is read again.
//!
//! Ids are file names: the email when there is one, else `account-` and a hash of the refresh
//! token. The hash is [`crate::hash`]'s (stable across Rust releases); files named by the former
//! `DefaultHasher` value still load under that name, and are renamed only when imported again.

pub(crate) mod formats;

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File, Metadata, OpenOptions},
    io::{ErrorKind as IoErrorKind, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use gateway_core::{ErrorKind, GatewayError, Secret};

use crate::{credentials::AccountFile, hash::StableHasher};

const STATE_KEY: &str = "gateway";
const LOCK_FILE: &str = ".lock";

/// The disabled reason the operator's `disable` records. A re-import with a new refresh token
/// clears any other reason (a rejected refresh token, a 403), never this one.
pub(crate) const OPERATOR_DISABLED: &str = "disabled by the operator";

/// The gateway's own state for one account, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Why the account is disabled; `None` when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Upstream model id → unix milliseconds until which the account must not be used for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cooldowns: BTreeMap<String, u64>,
    /// Upstream model id → consecutive quota lockouts (for the tiered lockout).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strikes: BTreeMap<String, u32>,
    /// Calls made with the account.
    #[serde(default)]
    pub requests: u64,
    /// Calls that succeeded.
    #[serde(default)]
    pub successes: u64,
    /// Calls that failed.
    #[serde(default)]
    pub failures: u64,
    /// The last error, without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix milliseconds of the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
}

/// An account with its id and state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAccount {
    /// The file name without `.json`.
    pub id: String,
    /// The credentials.
    pub file: AccountFile,
    /// The gateway's state.
    pub state: AccountState,
}

/// What importing one account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The account's id (its file name without `.json`).
    pub id: String,
    /// Whether it was new, updated, or already held newer credentials.
    pub outcome: ImportOutcome,
}

/// How an imported account met the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new account.
    Added,
    /// An account already stored (same email or refresh token): the imported credentials
    /// replaced the stored ones, and what the gateway learned about it was kept.
    Updated,
    /// An account already stored whose credentials are newer (a later expiry) than the
    /// imported ones: they were kept, and only fields the store lacked were taken.
    KeptNewer,
}

/// A directory of account files.
#[derive(Debug, Clone)]
pub struct AccountStore {
    dir: PathBuf,
}

/// What identifies one version of a file without reading it: a write by anyone (always a
/// rename of a new file) changes the inode, and almost always the size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// The outcome of [`AccountStore::sync`].
#[derive(Debug)]
pub(crate) enum Synced {
    /// The merge is what the file holds now.
    Written {
        /// The merged account.
        merged: Box<StoredAccount>,
        /// The file's stamp after the write.
        stamp: Option<Stamp>,
    },
    /// The file was removed by someone else; nothing was written.
    Removed,
}

/// One account file met by [`AccountStore::scan`].
#[derive(Debug)]
pub(crate) struct Scanned {
    /// The id.
    pub(crate) id: String,
    /// Its stamp now.
    pub(crate) stamp: Stamp,
    /// What the scan learned.
    pub(crate) seen: Seen,
}

/// What a scan learned about one file.
#[derive(Debug)]
pub(crate) enum Seen {
    /// The stamp is the one the caller knew: not read.
    Unchanged,
    /// The file changed (or is new): its content.
    Changed(Box<StoredAccount>),
    /// The file changed but cannot be read now (perhaps mid-edit): try again later.
    Unreadable,
}

/// Which of the operator's fields differ between two copies of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    tokens: bool,
    project: bool,
    email: bool,
    extra: bool,
    disabled: bool,
}

impl Changed {
    /// The operator's fields that differ between `a` and `b`.
    pub(crate) fn between(a: &StoredAccount, b: &StoredAccount) -> Self {
        Self {
            tokens: tokens(&a.file) != tokens(&b.file),
            project: a.file.project_id != b.file.project_id,
            email: a.file.email != b.file.email,
            extra: a.file.extra != b.file.extra,
            disabled: a.state.disabled_reason != b.state.disabled_reason,
        }
    }

    /// Whether anything differs.
    pub(crate) fn any(self) -> bool {
        self != Self::default()
    }

    /// Whether the credentials differ.
    pub(crate) fn tokens(self) -> bool {
        self.tokens
    }

    /// Copy the fields that differ from `from` into `file` and `disabled`.
    pub(crate) fn apply(
        self,
        from: &StoredAccount,
        file: &mut AccountFile,
        disabled: &mut Option<String>,
    ) {
        if self.tokens {
            file.client_id.clone_from(&from.file.client_id);
            file.client_secret.clone_from(&from.file.client_secret);
            file.refresh_token.clone_from(&from.file.refresh_token);
            file.access_token.clone_from(&from.file.access_token);
            file.expiry.clone_from(&from.file.expiry);
        }
        if self.project {
            file.project_id.clone_from(&from.file.project_id);
        }
        if self.email {
            file.email.clone_from(&from.file.email);
        }
        if self.extra {
            file.extra.clone_from(&from.file.extra);
        }
        if self.disabled {
            disabled.clone_from(&from.state.disabled_reason);
        }
    }
}

type Tokens<'a> = (
    &'a Option<String>,
    &'a Option<Secret>,
    &'a Secret,
    &'a Option<Secret>,
    &'a Option<String>,
);

/// The credentials move together: an access token belongs to its refresh token and client.
fn tokens(file: &AccountFile) -> Tokens<'_> {
    (
        &file.client_id,
        &file.client_secret,
        &file.refresh_token,
        &file.access_token,
        &file.expiry,
    )
}

/// The three-way merge the gateway writes: the operator's fields changed in `theirs` since
/// `base` come from `theirs`, the rest from `ours`; counters never go backwards.
pub(crate) fn merge(
    base: &StoredAccount,
    ours: &StoredAccount,
    theirs: &StoredAccount,
) -> StoredAccount {
    let mut merged = ours.clone();
    Changed::between(base, theirs).apply(
        theirs,
        &mut merged.file,
        &mut merged.state.disabled_reason,
    );
    let (state, other) = (&mut merged.state, &theirs.state);
    state.requests = state.requests.max(other.requests);
    state.successes = state.successes.max(other.successes);
    state.failures = state.failures.max(other.failures);
    state.last_success = state.last_success.max(other.last_success);
    if state.last_error.is_none() {
        state.last_error.clone_from(&other.last_error);
    }
    merged
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(what: &str, path: &Path, err: std::io::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        format!("cannot {what} {}: {err}", path.display()),
    )
}

impl AccountStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every account in the directory, sorted by id, and a problem line for each file that could
    /// not be read. A missing directory holds no accounts. Leftover temporary files from an
    /// interrupted write are removed (only while no writer holds the lock, so a write in
    /// progress in another process is never disturbed).
    pub fn load(&self) -> (Vec<StoredAccount>, Vec<String>) {
        let lock = self.try_lock();
        self.read_all(lock.is_some())
    }

    fn read_all(&self, clean: bool) -> (Vec<StoredAccount>, Vec<String>) {
        let mut accounts = Vec::new();
        let mut problems = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return (accounts, problems);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temporary(&name) {
                if clean {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| parse(id, &bytes))
            {
                Ok(account) => accounts.push(account),
                Err(err) => problems.push(format!("{}: {err}", path.display())),
            }
        }
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        (accounts, problems)
    }

    /// Write one account atomically with owner-only permissions, replacing its file.
    pub fn save(&self, account: &StoredAccount) -> Result<(), GatewayError> {
        let _lock = self.lock()?;
        self.write(account).map(|_| ())
    }

    /// Import an exported file (any format [`AccountStore::import_all`] reads) and return the
    /// account's id; for a file of many accounts, their ids joined by `, `.
    pub fn import(&self, bytes: &[u8]) -> Result<String, GatewayError> {
        let imported = self.import_all(bytes)?;
        Ok(imported
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
            .join(", "))
    }

    /// Import every account of an exported file: gcli2api, CLIProxyAPI, Antigravity-Manager,
    /// opencode-antigravity-auth (`antigravity-accounts.json`, many accounts), the Gemini CLI
    /// (`oauth_creds.json`), or this store's own files. Every account is validated before any
    /// is written. An account already stored (same email, or same refresh token) is merged:
    /// the newer credentials win (by expiry; the imported ones when either lacks one), and
    /// what the gateway learned about the account is kept.
    pub fn import_all(&self, bytes: &[u8]) -> Result<Vec<Imported>, GatewayError> {
        let files = formats::accounts_in(bytes)?;
        for (index, file) in files.iter().enumerate() {
            if file.refresh_token.is_empty() {
                let which = if files.len() > 1 {
                    format!("account {} of the file", index + 1)
                } else {
                    "the account file".to_owned()
                };
                return Err(GatewayError::invalid_request(format!(
                    "{which} has an empty refresh_token"
                )));
            }
        }
        files.into_iter().map(|file| self.add_one(file)).collect()
    }

    /// Add (or merge) an account, as [`AccountStore::import_all`] does for a parsed file.
    pub fn add(&self, file: AccountFile) -> Result<String, GatewayError> {
        self.add_one(file).map(|imported| imported.id)
    }

    fn add_one(&self, mut file: AccountFile) -> Result<Imported, GatewayError> {
        if file.refresh_token.is_empty() {
            return Err(GatewayError::invalid_request(
                "the account file has an empty refresh_token",
            ));
        }
        file.extra.remove(STATE_KEY);
        let _lock = self.lock()?;
        let (mut existing, _) = self.read_all(false);
        let new_id = account_id(&file);
        let email = file
            .email
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(str::to_lowercase);
        let found = existing
            .iter()
            .position(|a| a.id == new_id)
            .or_else(|| {
                existing.iter().position(|a| {
                    email.is_some() && a.file.email.as_deref().map(str::to_lowercase) == email
                })
            })
            .or_else(|| {
                existing
                    .iter()
                    .position(|a| a.file.refresh_token == file.refresh_token)
            });
        let Some(index) = found else {
            self.write(&StoredAccount {
                id: new_id.clone(),
                file,
                state: AccountState::default(),
            })?;
            return Ok(Imported {
                id: new_id,
                outcome: ImportOutcome::Added,
            });
        };
        let old = existing.swap_remove(index);
        let (merged, kept) = merge_import(&old.file, file);
        let mut state = old.state;
        let new_grant = merged.refresh_token != old.file.refresh_token;
        if new_grant && state.disabled_reason.as_deref() != Some(OPERATOR_DISABLED) {
            // A new grant answers a rejected refresh token or a 403; the operator's own
            // decision stands.
            state.disabled_reason = None;
        }
        let id = account_id(&merged);
        self.write(&StoredAccount {
            id: id.clone(),
            file: merged,
            state,
        })?;
        if old.id != id {
            // Renamed (a former hash, or an email learned now): one file per account.
            self.delete(&old.id)?;
        }
        Ok(Imported {
            id,
            outcome: if kept {
                ImportOutcome::KeptNewer
            } else {
                ImportOutcome::Updated
            },
        })
    }

    /// Enable or disable an account as the operator; returns whether it exists. A running
    /// gateway picks the change up within seconds and never writes over it.
    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<bool, GatewayError> {
        let path = self.path_of(id)?;
        let _lock = self.lock()?;
        let Some(mut account) = read_one(&path, id)? else {
            return Ok(false);
        };
        account.state.disabled_reason = (!enabled).then(|| OPERATOR_DISABLED.to_owned());
        self.write(&account)?;
        Ok(true)
    }

    /// Remove an account's file; returns whether it existed. A running gateway stops using the
    /// account within seconds and does not write it again.
    pub fn remove(&self, id: &str) -> Result<bool, GatewayError> {
        self.path_of(id)?;
        let _lock = self.lock()?;
        self.delete(id)
    }

    /// Write the gateway's copy of an account without losing a newer change on disk: the
    /// three-way merge of `base` (what the gateway last read or wrote), `ours` (its memory) and
    /// the file now. `on_disk` says whether the gateway has seen the file; a file it has seen
    /// that is gone now was removed, and is not written again.
    pub(crate) fn sync(
        &self,
        base: &StoredAccount,
        ours: &StoredAccount,
        on_disk: bool,
    ) -> Result<Synced, GatewayError> {
        let path = self.path_of(&ours.id)?;
        let _lock = self.lock()?;
        let theirs = read_one(&path, &ours.id)?;
        let merged = match &theirs {
            None if on_disk => return Ok(Synced::Removed),
            None => ours.clone(),
            Some(theirs) => merge(base, ours, theirs),
        };
        if theirs.as_ref() == Some(&merged) {
            let stamp = fs::metadata(&path).ok().map(|m| Stamp::of(&m));
            return Ok(Synced::Written {
                merged: Box::new(merged),
                stamp,
            });
        }
        let stamp = self.write(&merged)?;
        Ok(Synced::Written {
            merged: Box::new(merged),
            stamp,
        })
    }

    /// Every account file now, reading only those whose stamp differs from `known`. `None`
    /// when the directory cannot be read (so a passing error never looks like removals); a
    /// missing directory holds no accounts.
    pub(crate) fn scan(&self, known: &HashMap<String, Stamp>) -> Option<Vec<Scanned>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == IoErrorKind::NotFound => return Some(Vec::new()),
            Err(_) => return None,
        };
        let mut scanned = Vec::new();
        for entry in entries {
            let entry = entry.ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if is_temporary(&name) {
                continue;
            }
            let path = entry.path();
            // The stamp first, then the content: a write in between is read now and seen
            // again (as a new stamp) by the next scan, never missed.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let stamp = Stamp::of(&meta);
            let seen = if known.get(id) == Some(&stamp) {
                Seen::Unchanged
            } else {
                match fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| parse(id, &bytes))
                {
                    Ok(account) => Seen::Changed(Box::new(account)),
                    Err(_) => Seen::Unreadable,
                }
            };
            scanned.push(Scanned {
                id: id.to_owned(),
                stamp,
                seen,
            });
        }
        Some(scanned)
    }

    /// The file of `id`, refusing ids that would leave the directory.
    fn path_of(&self, id: &str) -> Result<PathBuf, GatewayError> {
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
            return Err(GatewayError::invalid_request(format!(
                "invalid account id {id:?}"
            )));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Take the directory's lock (blocking), creating the directory if needed. Dropping the
    /// file releases it.
    fn lock(&self) -> Result<File, GatewayError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        let path = self.dir.join(LOCK_FILE);
        let file = open_lock_file(&path).map_err(|e| io_error("open", &path, e))?;
        file.lock().map_err(|e| io_error("lock", &path, e))?;
        Ok(file)
    }

    /// The lock if nobody holds it now; `None` also when the directory does not exist.
    fn try_lock(&self) -> Option<File> {
        if !self.dir.is_dir() {
            return None;
        }
        let file = open_lock_file(&self.dir.join(LOCK_FILE)).ok()?;
        file.try_lock().ok()?;
        Some(file)
    }

    /// Write one account atomically; the caller holds the lock. Returns the new file's stamp.
    fn write(&self, account: &StoredAccount) -> Result<Option<Stamp>, GatewayError> {
        let target = self.path_of(&account.id)?;
        fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        let bytes = encode(account)?;
        let temp = self.dir.join(format!(
            ".{}.json.tmp-{}-{}",
            account.id,
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(&temp, &bytes).and_then(|()| fs::rename(&temp, &target));
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &target, err));
        }
        self.sync_dir();
        Ok(fs::metadata(&target).ok().map(|m| Stamp::of(&m)))
    }

    /// Remove `id`'s file; the caller holds the lock.
    fn delete(&self, id: &str) -> Result<bool, GatewayError> {
        let path = self.path_of(id)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                self.sync_dir();
                Ok(true)
            }
            Err(err) if err.kind() == IoErrorKind::NotFound => Ok(false),
            Err(err) => Err(io_error("remove", &path, err)),
        }
    }

    /// Make a rename or a removal durable.
    fn sync_dir(&self) {
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
    }
}

fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn encode(account: &StoredAccount) -> Result<Vec<u8>, GatewayError> {
    let mut json = account.file.to_json();
    if let Value::Object(map) = &mut json {
        let state = serde_json::to_value(&account.state)
            .map_err(|e| GatewayError::internal(format!("cannot encode account state: {e}")))?;
        map.insert(STATE_KEY.to_owned(), state);
    }
    serde_json::to_vec_pretty(&json)
        .map_err(|e| GatewayError::internal(format!("cannot encode account: {e}")))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// One account file, `None` when it does not exist.
fn read_one(path: &Path, id: &str) -> Result<Option<StoredAccount>, GatewayError> {
    match fs::read(path) {
        Ok(bytes) => parse(id, &bytes).map(Some).map_err(|err| {
            GatewayError::new(
                ErrorKind::Internal,
                format!("cannot read {}: {err}", path.display()),
            )
        }),
        Err(err) if err.kind() == IoErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("read", path, err)),
    }
}

fn parse(id: &str, bytes: &[u8]) -> Result<StoredAccount, String> {
    let mut file = AccountFile::from_json(bytes).map_err(|e| e.message().to_owned())?;
    let state = match file.extra.remove(STATE_KEY) {
        Some(value) => {
            serde_json::from_value(value).map_err(|e| format!("invalid gateway state: {e}"))?
        }
        None => AccountState::default(),
    };
    Ok(StoredAccount {
        id: id.to_owned(),
        file,
        state,
    })
}

/// An imported account met a stored one: the newer credentials win (a later expiry; the
/// imported ones when either lacks an expiry), and each side fills what the other lacks.
/// Returns the merged file and whether the stored credentials were kept.
fn merge_import(stored: &AccountFile, imported: AccountFile) -> (AccountFile, bool) {
    let keep = matches!(
        (stored.expires_at(), imported.expires_at()),
        (Some(stored), Some(imported)) if stored > imported
    );
    let (mut winner, loser) = if keep {
        (stored.clone(), imported)
    } else {
        (imported, stored.clone())
    };
    let same_grant = winner.refresh_token == loser.refresh_token;
    if same_grant {
        // The same grant: its client, and a token the other side lacks, still apply.
        if winner.client_id.is_none() {
            winner.client_id.clone_from(&loser.client_id);
            winner.client_secret.clone_from(&loser.client_secret);
        }
        if winner.access_token.is_none() {
            winner.access_token.clone_from(&loser.access_token);
            winner.expiry.clone_from(&loser.expiry);
        }
    }
    if winner.project_id.as_deref().is_none_or(str::is_empty) {
        winner.project_id.clone_from(&loser.project_id);
    }
    if winner.email.as_deref().is_none_or(str::is_empty) {
        winner.email.clone_from(&loser.email);
    }
    for (key, value) in loser.extra {
        winner.extra.entry(key).or_insert(value);
    }
    (winner, keep)
}

/// A file-name-safe id: the email when there is one, else a stable hash of the refresh token.
pub(crate) fn account_id(file: &AccountFile) -> String {
    match file.email.as_deref().filter(|e| !e.is_empty()) {
        Some(email) => email
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect(),
        None => {
            let mut hasher = StableHasher::new();
            hasher.write_str(file.refresh_token.expose());
            format!("account-{:016x}", hasher.finish())
        }
    }
}

#[cfg(test)]
mod tests;
