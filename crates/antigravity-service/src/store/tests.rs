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

/// The exports of the tools people migrate from, one fixture each (fake tokens).
mod fixtures {
    pub(super) const GCLI2API: &[u8] = include_bytes!("../../test_data/accounts/gcli2api.json");
    pub(super) const CLIPROXYAPI: &[u8] =
        include_bytes!("../../test_data/accounts/cliproxyapi-antigravity.json");
    pub(super) const MANAGER: &[u8] =
        include_bytes!("../../test_data/accounts/antigravity-manager.json");
    pub(super) const OPENCODE: &[u8] =
        include_bytes!("../../test_data/accounts/antigravity-accounts.json");
    pub(super) const GEMINI_CLI: &[u8] =
        include_bytes!("../../test_data/accounts/oauth_creds.json");
}

/// Every fixture's token expires at this instant, spelled differently by each tool.
const FIXTURE_EXPIRY: &str = "2026-03-01T12:00:00Z";

fn import_one(bytes: &[u8]) -> (tempfile::TempDir, StoredAccount, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let imported = store.import_all(bytes).unwrap();
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0].outcome, ImportOutcome::Added);
    let (mut accounts, problems) = store.load();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(accounts.len(), 1);
    let account = accounts.remove(0);
    assert_eq!(account.id, imported[0].id);
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("{}.json", account.id))).unwrap(),
    )
    .unwrap();
    (dir, account, on_disk)
}

fn token_of(account: &StoredAccount) -> &str {
    account
        .file
        .access_token
        .as_ref()
        .map_or("", |t| t.expose())
}

#[test]
fn gcli2api_files_with_token_and_access_token_import() {
    let (_dir, account, on_disk) = import_one(fixtures::GCLI2API);
    // No email: named by the stable hash of the refresh token.
    let mut hasher = crate::hash::StableHasher::new();
    hasher.write_str("1//fake-gcli2api-refresh-token");
    assert_eq!(account.id, format!("account-{:016x}", hasher.finish()));
    assert_eq!(token_of(&account), "ya29.fake-gcli2api-access-token");
    assert_eq!(account.file.expiry.as_deref(), Some(FIXTURE_EXPIRY));
    assert_eq!(account.file.project_id.as_deref(), Some("gcli-project-123"));
    assert!(
        account
            .file
            .client_id
            .as_deref()
            .unwrap()
            .starts_with("1071006060591-")
    );
    assert!(on_disk.get("token").is_none(), "one spelling on disk");
    assert_eq!(on_disk["token_uri"], "https://oauth2.googleapis.com/token");
    assert_eq!(on_disk["scopes"].as_array().unwrap().len(), 5);
}

#[test]
fn cliproxyapi_antigravity_files_import() {
    let (_dir, account, on_disk) = import_one(fixtures::CLIPROXYAPI);
    assert_eq!(account.id, "cliproxy.user@example.com");
    assert_eq!(token_of(&account), "ya29.fake-cliproxyapi-access-token");
    assert_eq!(
        account.file.refresh_token.expose(),
        "1//fake-cliproxyapi-refresh-token"
    );
    // `expired` is 20:00 at +08:00.
    assert_eq!(account.file.expiry.as_deref(), Some(FIXTURE_EXPIRY));
    assert_eq!(
        account.file.project_id.as_deref(),
        Some("cliproxy-project-456")
    );
    assert_eq!(
        account.file.client_id, None,
        "the configured client is used"
    );
    assert!(on_disk.get("expired").is_none(), "no stale second expiry");
    assert_eq!(on_disk["type"], "antigravity");
}

#[test]
fn antigravity_manager_files_with_a_nested_token_import() {
    let (_dir, account, on_disk) = import_one(fixtures::MANAGER);
    assert_eq!(account.id, "manager.user@example.com");
    assert_eq!(token_of(&account), "ya29.fake-manager-access-token");
    assert_eq!(
        account.file.refresh_token.expose(),
        "1//fake-manager-refresh-token"
    );
    assert_eq!(account.file.expiry.as_deref(), Some(FIXTURE_EXPIRY));
    assert_eq!(
        account.file.project_id.as_deref(),
        Some("manager-project-789")
    );
    assert!(on_disk.get("token").is_none());
    assert!(on_disk.get("expiry_timestamp").is_none());
    assert_eq!(on_disk["name"], "Manager User");
}

#[test]
fn gemini_cli_oauth_creds_import() {
    let (_dir, account, on_disk) = import_one(fixtures::GEMINI_CLI);
    assert!(account.id.starts_with("account-"), "{}", account.id);
    assert_eq!(token_of(&account), "ya29.fake-gemini-cli-access-token");
    assert_eq!(
        account.file.refresh_token.expose(),
        "1//fake-gemini-cli-refresh-token"
    );
    // `expiry_date` is in milliseconds.
    assert_eq!(account.file.expiry.as_deref(), Some(FIXTURE_EXPIRY));
    assert_eq!(
        account.file.client_id, None,
        "the configured client is used"
    );
    assert_eq!(account.file.project_id, None, "discovered on first use");
    assert!(on_disk.get("expiry_date").is_none());
    assert_eq!(on_disk["token_type"], "Bearer");
}

#[test]
fn opencode_antigravity_accounts_import_every_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let imported = store.import_all(fixtures::OPENCODE).unwrap();
    let ids: Vec<&str> = imported.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["first.user@example.com", "second.user@example.com"]);
    let (accounts, problems) = store.load();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(accounts.len(), 2);
    let first = &accounts[0];
    assert_eq!(
        first.file.refresh_token.expose(),
        "1//fake-opencode-first-refresh-token"
    );
    assert_eq!(
        first.file.project_id.as_deref(),
        Some("first-managed-project"),
        "the managed project is the one requests carry"
    );
    assert_eq!(first.file.access_token, None, "refreshed on first use");
    let second = &accounts[1];
    assert_eq!(
        second.file.refresh_token.expose(),
        "1//fake-opencode-second-refresh-token",
        "the packed `token|project` form is split"
    );
    assert_eq!(
        second.file.project_id.as_deref(),
        Some("second-user-project")
    );
    // `import` names them all; a single-account parse refuses the file.
    assert_eq!(
        store.import(fixtures::OPENCODE).unwrap(),
        "first.user@example.com, second.user@example.com"
    );
    assert!(AccountFile::from_json(fixtures::OPENCODE).is_err());
}

#[test]
fn a_file_of_many_accounts_is_validated_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let broken = br#"{"accounts":[{"email":"ok@example.com","refreshToken":"1//ok"},
                                  {"email":"bad@example.com","refreshToken":""}]}"#;
    let err = store.import_all(broken).unwrap_err();
    assert!(err.message().contains("account 2"), "{}", err.message());
    assert!(store.load().0.is_empty());
}

fn with_expiry(email: &str, refresh: &str, token: &str, expiry: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"antigravity","email":"{email}","refresh_token":"{refresh}",
            "access_token":"{token}","expired":"{expiry}"}}"#
    )
    .into_bytes()
}

#[test]
fn duplicates_by_email_merge_newer_token_wins_and_learned_state_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(fixtures::CLIPROXYAPI).unwrap();
    // What the gateway learned about the account.
    let (mut accounts, _) = store.load();
    let mut account = accounts.remove(0);
    account.state.requests = 7;
    account
        .state
        .cooldowns
        .insert("claude-sonnet-4-5".into(), 4_102_444_800_000);
    store.save(&account).unwrap();

    // A newer export of the same account (the email in another case) from another tool.
    let newer = with_expiry(
        "CLIProxy.User@example.com",
        "1//newer-refresh",
        "ya29.newer",
        "2026-03-02T12:00:00Z",
    );
    let imported = store.import_all(&newer).unwrap();
    assert_eq!(
        imported,
        [Imported {
            id: id.clone(),
            outcome: ImportOutcome::Updated
        }]
    );
    // An older one does not replace it.
    let older = with_expiry(
        "cliproxy.user@example.com",
        "1//older-refresh",
        "ya29.older",
        "2026-02-01T12:00:00Z",
    );
    assert_eq!(
        store.import_all(&older).unwrap()[0].outcome,
        ImportOutcome::KeptNewer
    );

    let (accounts, _) = store.load();
    assert_eq!(accounts.len(), 1, "one file per account");
    let account = &accounts[0];
    assert_eq!(token_of(account), "ya29.newer");
    assert_eq!(account.file.refresh_token.expose(), "1//newer-refresh");
    assert_eq!(
        account.file.project_id.as_deref(),
        Some("cliproxy-project-456"),
        "what the newer export lacks is kept"
    );
    assert_eq!(account.state.requests, 7);
    assert!(account.state.cooldowns.contains_key("claude-sonnet-4-5"));

    // Duplicates inside one file merge the same way.
    let twice = br#"{"accounts":[
        {"email":"twice@example.com","refreshToken":"1//a","accessToken":"ya29.a","expired":"2026-01-01T00:00:00Z"},
        {"email":"twice@example.com","refreshToken":"1//b","accessToken":"ya29.b","expired":"2026-06-01T00:00:00Z"}]}"#;
    store.import_all(twice).unwrap();
    let (accounts, _) = store.load();
    let twice = accounts
        .iter()
        .find(|a| a.id == "twice@example.com")
        .unwrap();
    assert_eq!(token_of(twice), "ya29.b");
    assert_eq!(accounts.len(), 2);
}

#[test]
fn a_new_grant_clears_a_rejected_token_but_not_the_operators_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    let (mut accounts, _) = store.load();
    accounts[0].state.disabled_reason = Some("token refresh rejected: invalid_grant".into());
    store.save(&accounts[0]).unwrap();
    let relogin = EXPORTED.replace("1//rtoken", "1//fresh");
    store.import(relogin.as_bytes()).unwrap();
    assert_eq!(store.load().0[0].state.disabled_reason, None);

    assert!(store.set_enabled(&id, false).unwrap());
    store
        .import(EXPORTED.replace("1//rtoken", "1//fresher").as_bytes())
        .unwrap();
    assert_eq!(
        store.load().0[0].state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
}

#[test]
fn files_named_by_the_former_hash_load_and_are_renamed_once_imported_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    // A file written by an earlier build, named by `DefaultHasher`.
    let legacy = dir.path().join("account-5f0e7d1c2b3a4968.json");
    std::fs::write(
        &legacy,
        br#"{"refresh_token":"1//legacy","access_token":"ya29.l","gateway":{"requests":3}}"#,
    )
    .unwrap();
    let (accounts, problems) = store.load();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(accounts[0].id, "account-5f0e7d1c2b3a4968");

    let id = store.import(br#"{"refresh_token":"1//legacy"}"#).unwrap();
    assert_ne!(id, "account-5f0e7d1c2b3a4968");
    let (accounts, _) = store.load();
    assert_eq!(accounts.len(), 1, "renamed, not duplicated");
    assert_eq!(accounts[0].id, id);
    assert_eq!(accounts[0].state.requests, 3);
    assert_eq!(
        token_of(&accounts[0]),
        "ya29.l",
        "the same grant keeps its token"
    );
    assert!(!legacy.exists());
}

#[test]
fn the_account_id_hash_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(br#"{"refresh_token": "1//rtoken"}"#).unwrap();
    assert_eq!(id, "account-82bde4d02003455e");
}

#[test]
fn enable_disable_and_remove_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    assert!(store.set_enabled(&id, false).unwrap());
    assert_eq!(
        store.load().0[0].state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
    assert!(store.set_enabled(&id, true).unwrap());
    assert_eq!(store.load().0[0].state.disabled_reason, None);
    assert!(!store.set_enabled("ghost", false).unwrap());
    assert!(store.remove(&id).unwrap());
    assert!(!store.remove(&id).unwrap());
    assert!(store.load().0.is_empty());
    assert!(
        store.remove("../escape").is_err(),
        "ids never leave the directory"
    );
}

fn learned(requests: u64, disabled: Option<&str>) -> StoredAccount {
    let mut account = parse("a", EXPORTED.as_bytes()).unwrap();
    account.state.requests = requests;
    account.state.disabled_reason = disabled.map(str::to_owned);
    account
}

#[test]
fn the_merge_keeps_the_operators_change_and_the_gateways_counters() {
    let base = learned(5, None);
    // The operator disabled the account; the gateway served two more calls meanwhile.
    let theirs = learned(5, Some(OPERATOR_DISABLED));
    let ours = learned(7, None);
    let merged = merge(&base, &ours, &theirs);
    assert_eq!(
        merged.state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
    assert_eq!(merged.state.requests, 7);

    // Nothing changed on disk: the gateway's own change (a 403) is written.
    let ours = learned(8, Some("forbidden by the upstream"));
    let merged = merge(&base, &ours, &base);
    assert_eq!(
        merged.state.disabled_reason.as_deref(),
        Some("forbidden by the upstream")
    );

    // New credentials on disk replace the gateway's refreshed ones, all together.
    let mut theirs = base.clone();
    theirs.file.refresh_token = gateway_core::Secret::new("1//imported");
    theirs.file.access_token = None;
    let mut ours = base.clone();
    ours.file.access_token = Some(gateway_core::Secret::new("ya29.refreshed"));
    let merged = merge(&base, &ours, &theirs);
    assert_eq!(merged.file.refresh_token.expose(), "1//imported");
    assert_eq!(merged.file.access_token, None);
}

#[test]
fn sync_never_writes_over_a_newer_file_nor_recreates_a_removed_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    let base = store.load().0.remove(0);
    assert!(store.set_enabled(&id, false).unwrap());

    let mut ours = base.clone();
    ours.state.requests = 40;
    let Synced::Written { merged, stamp } = store.sync(&base, &ours, true).unwrap() else {
        panic!("the file exists");
    };
    assert!(stamp.is_some());
    assert_eq!(
        merged.state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
    let on_disk = store.load().0.remove(0);
    assert_eq!(on_disk, *merged);
    assert_eq!(on_disk.state.requests, 40);

    assert!(store.remove(&id).unwrap());
    assert!(matches!(
        store.sync(&merged, &ours, true).unwrap(),
        Synced::Removed
    ));
    assert!(store.load().0.is_empty());
    // An account never seen on disk is written the first time.
    assert!(matches!(
        store.sync(&base, &ours, false).unwrap(),
        Synced::Written { .. }
    ));
    assert_eq!(store.load().0.len(), 1);
}

#[test]
fn a_scan_reads_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = AccountStore::new(dir.path());
    let id = store.import(EXPORTED.as_bytes()).unwrap();
    let first = store.scan(&std::collections::HashMap::new()).unwrap();
    assert_eq!(first.len(), 1);
    assert!(matches!(first[0].seen, Seen::Changed(_)));
    let known = std::collections::HashMap::from([(id.clone(), first[0].stamp)]);
    assert!(matches!(
        store.scan(&known).unwrap()[0].seen,
        Seen::Unchanged
    ));
    assert!(store.set_enabled(&id, false).unwrap());
    let Seen::Changed(changed) = &store.scan(&known).unwrap()[0].seen else {
        panic!("a write changes the stamp");
    };
    assert_eq!(
        changed.state.disabled_reason.as_deref(),
        Some(OPERATOR_DISABLED)
    );
    std::fs::write(dir.path().join(format!("{id}.json")), b"{half a fi").unwrap();
    assert!(matches!(
        store.scan(&known).unwrap()[0].seen,
        Seen::Unreadable
    ));
    assert!(
        AccountStore::new(dir.path().join("missing"))
            .scan(&known)
            .unwrap()
            .is_empty()
    );
}
