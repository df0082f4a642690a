use std::os::unix::fs::PermissionsExt;

use super::*;

const EXPORTED: &str = r#"{
  "client_id": "cid.apps.googleusercontent.com",
  "client_secret": "csecret",
  "token": "ya29.old",
  "refresh_token": "1//rtoken",
  "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
  "token_uri": "https://oauth2.googleapis.com/token",
  "expiry": "2026-01-01T00:00:00Z",
  "project_id": "proj-1",
  "email": "Dev.User+ag@Example.com"
}"#;

#[test]
fn import_names_the_file_after_the_email_and_keeps_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path().join("accounts"));
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    assert_eq!(id, "dev.user_ag@example.com");
    let path = dir.path().join("accounts").join(format!("{id}.json"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "account files are owner-only");

    let (accounts, problems) = store.load();
    assert!(problems.is_empty(), "{problems:?}");
    let account = &accounts[0];
    assert_eq!(
        account.file.access_token.as_ref().unwrap().expose(),
        "ya29.old"
    );
    assert_eq!(
        account.file.extra["token_uri"],
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(account.state, AccountState::default());
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk["access_token"], "ya29.old");
    assert!(
        on_disk.get("token").is_none(),
        "the old spelling is rewritten once"
    );
}

#[test]
fn state_survives_a_reload_and_a_reimport() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    let (mut accounts, _) = store.load();
    let mut account = accounts.remove(0);
    account.state.disabled_reason = Some("token refresh rejected: invalid_grant".into());
    account
        .state
        .cooldowns
        .insert("claude-sonnet-4-5".into(), 4_102_444_800_000);
    account.state.requests = 12;
    store.save(&account).unwrap();

    let (accounts, _) = store.load();
    assert_eq!(accounts[0].state, account.state);
    // Importing fresh credentials for the same account keeps what the gateway learned.
    store.import(EXPORTED.as_bytes()).unwrap();
    let (accounts, _) = store.load();
    assert_eq!(accounts[0].id, id);
    assert_eq!(accounts[0].state.requests, 12);
}

#[test]
fn an_interrupted_write_never_leaves_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    let before = std::fs::read(dir.path().join(format!("{id}.json"))).unwrap();
    // A crash in the middle of a write leaves a partial temporary file beside the account.
    let partial = dir.path().join(format!(".{id}.json.tmp-999-0"));
    std::fs::write(&partial, &before[..before.len() / 2]).unwrap();

    let (accounts, problems) = store.load();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].file.refresh_token.expose(), "1//rtoken");
    assert!(
        !partial.exists(),
        "leftovers of an interrupted write are removed"
    );
    assert_eq!(
        std::fs::read(dir.path().join(format!("{id}.json"))).unwrap(),
        before
    );
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    store.import(EXPORTED.as_bytes()).unwrap();
    std::fs::write(dir.path().join("broken.json"), b"{not json").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let (accounts, problems) = store.load();
    assert_eq!(accounts.len(), 1);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("broken.json"), "{problems:?}");
    assert!(
        AccountStore::new(dir.path().join("missing"))
            .load()
            .0
            .is_empty()
    );
}

#[test]
fn import_rejects_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    assert!(store.import(b"{}").is_err());
    assert!(store.import(br#"{"refresh_token": ""}"#).is_err());
    let id = store.import(br#"{"refresh_token": "r"}"#).unwrap();
    assert!(id.starts_with("account-"), "{id}");
}
