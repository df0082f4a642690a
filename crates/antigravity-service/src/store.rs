//! The account store: one JSON file per account in a directory.
//!
//! A file holds the account as the existing tools export it, plus the gateway's state for it
//! under the `"gateway"` key (disabled reason, cooldowns per model, counters, last error, last
//! success), so everything survives a restart. Writes are atomic: a temporary file in the same
//! directory, written with owner-only permissions, synced, renamed over the old file, and the
//! directory synced. A crash leaves the old file or the new one, never a truncated one.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use gateway_core::{ErrorKind, GatewayError};

use crate::credentials::AccountFile;

const STATE_KEY: &str = "gateway";

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
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The file name without `.json`.
    pub id: String,
    /// The credentials.
    pub file: AccountFile,
    /// The gateway's state.
    pub state: AccountState,
}

/// A directory of account files.
#[derive(Debug, Clone)]
pub struct AccountStore {
    dir: PathBuf,
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
    /// interrupted write are removed.
    pub fn load(&self) -> (Vec<StoredAccount>, Vec<String>) {
        let mut accounts = Vec::new();
        let mut problems = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return (accounts, problems);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = fs::remove_file(&path);
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

    /// Write one account atomically with owner-only permissions.
    pub fn save(&self, account: &StoredAccount) -> Result<(), GatewayError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        let mut json = account.file.to_json();
        if let Value::Object(map) = &mut json {
            let state = serde_json::to_value(&account.state)
                .map_err(|e| GatewayError::internal(format!("cannot encode account state: {e}")))?;
            map.insert(STATE_KEY.to_owned(), state);
        }
        let bytes = serde_json::to_vec_pretty(&json)
            .map_err(|e| GatewayError::internal(format!("cannot encode account: {e}")))?;
        let target = self.dir.join(format!("{}.json", account.id));
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
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Import an exported account file: validated, named after its email, written atomically.
    /// Importing the same account again replaces its credentials and keeps its state.
    pub fn import(&self, bytes: &[u8]) -> Result<String, GatewayError> {
        self.add(AccountFile::from_json(bytes)?)
    }

    /// Add (or update) an account, as [`AccountStore::import`] does for a parsed file.
    pub fn add(&self, mut file: AccountFile) -> Result<String, GatewayError> {
        if file.refresh_token.is_empty() {
            return Err(GatewayError::invalid_request(
                "the account file has an empty refresh_token",
            ));
        }
        let id = account_id(&file);
        let (existing, _) = self.load();
        let state = existing
            .into_iter()
            .find(|a| a.id == id)
            .map(|a| a.state)
            .unwrap_or_default();
        file.extra.remove(STATE_KEY);
        self.save(&StoredAccount {
            id: id.clone(),
            file,
            state,
        })?;
        Ok(id)
    }
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

/// A file-name-safe id: the email when there is one, else a hash of the refresh token.
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
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut hasher = DefaultHasher::new();
            file.refresh_token.expose().hash(&mut hasher);
            format!("account-{:016x}", hasher.finish())
        }
    }
}

#[cfg(test)]
mod tests;
