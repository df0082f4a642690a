//! The pool and the operator sharing one directory, without a network.

use gateway_core::{Body, GatewayError, Secret};
use http::{Request, Response};

use super::*;

/// A transport that must never be called: every account here has a fresh token and a project.
struct Offline;

impl Transport for Offline {
    async fn send(&self, _request: Request<Body>) -> Result<Response<Body>, GatewayError> {
        Err(GatewayError::internal("offline"))
    }
}

fn export(email: &str) -> Vec<u8> {
    format!(
        r#"{{"refresh_token":"1//{email}","access_token":"ya29.{email}","expiry":"2999-01-01T00:00:00Z",
            "project_id":"p-{email}","email":"{email}"}}"#
    )
    .into_bytes()
}

fn open(store: &AccountStore) -> AccountPool<Offline> {
    let config = PoolConfig {
        // The tests call `refresh` themselves.
        watch_interval: None,
        ..PoolConfig::default()
    };
    let (pool, problems) = AccountPool::open(Offline, config, store.clone());
    assert!(problems.is_empty(), "{problems:?}");
    pool
}

fn ids(pool: &AccountPool<Offline>) -> Vec<String> {
    pool.roster
        .accounts()
        .iter()
        .map(|a| a.id.clone())
        .collect()
}

async fn served_by(pool: &AccountPool<Offline>) -> String {
    let lease = pool
        .acquire(Acquire {
            model: "gemini-3-pro-high",
            conversation: None,
            exclude: &[],
        })
        .await
        .unwrap();
    pool.report(&lease, "gemini-3-pro-high", Ok(()));
    lease.account.clone()
}

#[tokio::test]
async fn the_pool_takes_in_accounts_added_disabled_and_removed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.import(&export("a@x")).unwrap();
    store.import(&export("b@x")).unwrap();
    let pool = open(&store);
    assert_eq!(ids(&pool), ["a@x", "b@x"]);

    assert!(store.set_enabled("a@x", false).unwrap());
    store.import(&export("c@x")).unwrap();
    pool.refresh().await;
    assert_eq!(ids(&pool), ["a@x", "b@x", "c@x"]);
    for _ in 0..4 {
        assert_ne!(
            served_by(&pool).await,
            "a@x",
            "a disabled account is skipped"
        );
    }

    assert!(store.remove("b@x").unwrap());
    pool.refresh().await;
    assert_eq!(ids(&pool), ["a@x", "c@x"]);
    for _ in 0..3 {
        assert_eq!(served_by(&pool).await, "c@x");
    }
    assert!(store.set_enabled("a@x", true).unwrap());
    pool.refresh().await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(served_by(&pool).await);
    }
    assert!(seen.iter().any(|id| id == "a@x"), "{seen:?}");
}

#[tokio::test]
async fn a_flush_never_reverts_a_change_it_has_not_seen() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.import(&export("a@x")).unwrap();
    store.import(&export("b@x")).unwrap();
    let pool = open(&store);
    // Both accounts serve, so both have counters to flush.
    for _ in 0..4 {
        served_by(&pool).await;
    }
    // The operator acts; the pool has not scanned since.
    assert!(store.set_enabled("a@x", false).unwrap());
    assert!(store.remove("b@x").unwrap());
    let newer = String::from_utf8(export("a@x"))
        .unwrap()
        .replace("ya29.a@x", "ya29.imported");
    store.import(newer.as_bytes()).unwrap();

    pool.flush().await;
    let (accounts, _) = store.load();
    assert_eq!(accounts.len(), 1, "a removed account is not written again");
    let a = &accounts[0];
    assert_eq!(a.state.disabled_reason.as_deref(), Some(OPERATOR_DISABLED));
    assert_eq!(a.state.requests, 2, "the gateway's counters are merged in");
    assert_eq!(
        a.file.access_token.as_ref().map(Secret::expose),
        Some("ya29.imported")
    );
    // The write taught the pool what it had not seen yet.
    assert_eq!(ids(&pool), ["a@x"]);
    let views = pool.views(false).await;
    assert_eq!(views[0].disabled_reason.as_deref(), Some(OPERATOR_DISABLED));
}

#[tokio::test]
async fn the_pool_writes_its_own_changes_and_removes_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.import(&export("a@x")).unwrap();
    store.import(&export("b@x")).unwrap();
    let pool = open(&store);
    assert!(pool.set_enabled("a@x", false).await);
    assert_eq!(
        store.load().0[0].state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
    // Its own write is not mistaken for the operator's on the next scan.
    pool.refresh().await;
    assert!(pool.set_enabled("a@x", true).await);
    pool.refresh().await;
    assert_eq!(pool.views(false).await[0].disabled_reason, None);
    assert_eq!(store.load().0[0].state.disabled_reason, None);

    assert!(pool.remove("b@x").await.unwrap());
    assert!(!pool.remove("b@x").await.unwrap());
    assert_eq!(ids(&pool), ["a@x"]);
    assert_eq!(store.load().0.len(), 1);
}

#[tokio::test]
async fn the_background_watch_runs_and_stops_with_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let config = PoolConfig {
        watch_interval: Some(Duration::from_millis(20)),
        ..PoolConfig::default()
    };
    let (pool, _) = AccountPool::open(Offline, config, store.clone());
    assert!(pool.is_empty());
    store.import(&export("a@x")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the watch never saw the new file"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let watcher = pool.watcher.as_ref().map(JoinHandle::abort_handle);
    drop(pool);
    let watcher = watcher.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline, "the watch outlived its pool");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
