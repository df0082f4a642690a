//! The pool's accounts, their files, and the watch on the store's directory.
//!
//! The account list is swapped whole (a new `Arc<Vec<_>>`), so selection reads a consistent
//! snapshot without holding a lock across a call. The operator changes accounts by writing the
//! directory (the CLI, `login`, the admin API through [`AccountStore`]); a scan every
//! [`super::PoolConfig::watch_interval`] compares each file's stamp with the one the pool last
//! saw and reads only the files that changed:
//! - a new file adds an account; a file gone removes its account (calls in flight finish);
//! - a changed file's operator fields (credentials, project, email, disabled reason) that
//!   differ from the pool's base copy replace the pool's.
//!
//! The pool's own writes go through [`AccountStore::sync`], a three-way merge under the
//! directory lock, so a change the scan has not seen yet is kept, never overwritten. Writes of
//! one account and the adoption of its changes are serialised by the account's `writing` lock;
//! a scan result older than a write made meanwhile is dropped and looked at again next time.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock, Weak, atomic::Ordering},
    time::Duration,
};

use tokio::{task::JoinHandle, time::MissedTickBehavior};

use gateway_core::GatewayError;

use super::Account;
use crate::store::{AccountStore, Changed, Scanned, Seen, Stamp, StoredAccount, Synced};

/// The accounts of one pool and where they are kept.
#[derive(Debug)]
pub(super) struct Roster {
    store: Option<AccountStore>,
    slots: usize,
    accounts: RwLock<Arc<Vec<Arc<Account>>>>,
}

impl Roster {
    /// A roster over `accounts`; `on_disk` says whether they were just read from `store`.
    pub(super) fn new(
        store: Option<AccountStore>,
        slots: usize,
        accounts: Vec<StoredAccount>,
        on_disk: bool,
    ) -> Self {
        let on_disk = on_disk && store.is_some();
        let accounts = accounts
            .into_iter()
            .map(|stored| Arc::new(Account::new(stored, slots, None, on_disk)))
            .collect();
        Self {
            store,
            slots,
            accounts: RwLock::new(Arc::new(accounts)),
        }
    }

    /// The accounts now, in id order.
    pub(super) fn accounts(&self) -> Arc<Vec<Arc<Account>>> {
        self.accounts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The account `id`, unless it was removed.
    pub(super) fn find(&self, id: &str) -> Option<Arc<Account>> {
        self.accounts().iter().find(|a| a.id == id).cloned()
    }

    /// Replace the list with `edit` applied to it.
    fn edit(&self, edit: impl FnOnce(&mut Vec<Arc<Account>>)) {
        let mut guard = self
            .accounts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next: Vec<Arc<Account>> = guard.as_ref().clone();
        edit(&mut next);
        next.sort_by(|a, b| a.id.cmp(&b.id));
        *guard = Arc::new(next);
    }

    /// Take the accounts `ids` out of the pool.
    fn drop_accounts(&self, ids: &HashSet<String>) {
        self.edit(|accounts| {
            accounts.retain(|account| {
                let keep = !ids.contains(&account.id);
                if !keep {
                    account.removed.store(true, Ordering::Release);
                }
                keep
            });
        });
    }

    /// Remove `id` from the store and from the pool; returns whether it existed in either.
    pub(super) async fn remove(&self, id: &str) -> Result<bool, GatewayError> {
        let in_pool = self.find(id);
        // Hold the account's writes back so none recreates the file after it is gone.
        let _writing = match &in_pool {
            Some(account) => Some(account.writing.lock().await),
            None => None,
        };
        let on_disk = match self.store.clone() {
            Some(store) => {
                let id = id.to_owned();
                tokio::task::spawn_blocking(move || store.remove(&id))
                    .await
                    .map_err(|e| GatewayError::internal(format!("account removal failed: {e}")))??
            }
            None => false,
        };
        if in_pool.is_some() {
            self.drop_accounts(&HashSet::from([id.to_owned()]));
        }
        Ok(on_disk || in_pool.is_some())
    }

    /// Scan the directory once and take in what changed.
    pub(super) async fn refresh(&self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let current = self.accounts();
        let known: HashMap<String, Stamp> = current
            .iter()
            .filter_map(|a| a.disk().stamp.map(|stamp| (a.id.clone(), stamp)))
            .collect();
        let scanned = {
            let known = known.clone();
            tokio::task::spawn_blocking(move || store.scan(&known)).await
        };
        // An unreadable directory is not evidence that accounts were removed.
        let Ok(Some(scanned)) = scanned else {
            return;
        };
        let present: HashSet<String> = scanned.iter().map(|s| s.id.clone()).collect();
        let mut added = Vec::new();
        for Scanned { id, stamp, seen } in scanned {
            let Seen::Changed(theirs) = seen else {
                continue;
            };
            match current.iter().find(|a| a.id == id) {
                Some(account) => adopt(account, known.get(&id).copied(), stamp, *theirs).await,
                None => added.push(Arc::new(Account::new(
                    *theirs,
                    self.slots,
                    Some(stamp),
                    true,
                ))),
            }
        }
        let gone: HashSet<String> = current
            .iter()
            .filter(|a| !present.contains(&a.id) && a.disk().on_disk)
            .map(|a| a.id.clone())
            .collect();
        if !gone.is_empty() {
            self.drop_accounts(&gone);
        }
        if !added.is_empty() {
            self.edit(|accounts| {
                for account in added {
                    if !accounts.iter().any(|a| a.id == account.id) {
                        accounts.push(account);
                    }
                }
            });
        }
    }
}

/// Take the operator's changes in `theirs` into `account`, unless the pool wrote the file since
/// the scan saw `known` (then the next scan looks again).
async fn adopt(account: &Arc<Account>, known: Option<Stamp>, stamp: Stamp, theirs: StoredAccount) {
    let _writing = account.writing.lock().await;
    let mut disk = account.disk();
    if disk.stamp != known {
        return;
    }
    let changed = Changed::between(&disk.base, &theirs);
    if changed.any() {
        account.live().adopt(changed, &theirs);
    }
    disk.base = theirs;
    disk.stamp = Some(stamp);
    disk.on_disk = true;
}

/// Write `account` to the roster's store, merged with its file. Writes of one account are
/// serialised and each takes its snapshot after the previous write finished, so the newest
/// state is always the one left on disk.
pub(super) async fn persist(roster: Arc<Roster>, account: Arc<Account>) {
    let Some(store) = roster.store.clone() else {
        return;
    };
    let _writing = account.writing.lock().await;
    if account.removed.load(Ordering::Acquire) {
        return;
    }
    let ours = {
        let mut live = account.live();
        live.dirty = false;
        live.snapshot(&account.id)
    };
    let (base, on_disk) = {
        let disk = account.disk();
        (disk.base.clone(), disk.on_disk)
    };
    let synced = {
        let ours = ours.clone();
        tokio::task::spawn_blocking(move || store.sync(&base, &ours, on_disk)).await
    };
    let failure = match synced {
        Ok(Ok(Synced::Written { merged, stamp })) => {
            let changed = Changed::between(&ours, &merged);
            if changed.any() {
                account.live().adopt(changed, &merged);
            }
            let mut disk = account.disk();
            disk.base = *merged;
            disk.stamp = stamp;
            disk.on_disk = true;
            return;
        }
        Ok(Ok(Synced::Removed)) => {
            roster.drop_accounts(&HashSet::from([account.id.clone()]));
            return;
        }
        Ok(Err(err)) => err.message().to_owned(),
        Err(err) => err.to_string(),
    };
    account.live().last_error = Some(format!("could not save the account file: {failure}"));
}

/// Start the background watch of `roster`'s directory, every `every`; `None` without a store
/// or outside a tokio runtime. The task holds the roster weakly and ends with it; the pool
/// also aborts it when dropped.
pub(super) fn watch(roster: &Arc<Roster>, every: Duration) -> Option<JoinHandle<()>> {
    roster.store.as_ref()?;
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let roster: Weak<Roster> = Arc::downgrade(roster);
    Some(runtime.spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(roster) = roster.upgrade() else {
                return;
            };
            roster.refresh().await;
        }
    }))
}
