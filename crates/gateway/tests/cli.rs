//! The `gateway` binary as users run it.

#![expect(clippy::unwrap_used, reason = "test setup fails loudly")]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .env_remove("RUST_LOG")
        .env_remove("TOKIO_WORKER_THREADS");
    command
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(
        dir.path(),
        "unknown.toml",
        "[server]\nlisten = \"127.0.0.1:1\"\nlsiten = \"x\"\n",
    );
    let out = gateway()
        .arg("check")
        .arg("--config")
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown.toml:3: server.lsiten: unknown key `lsiten`"),
        "{stderr}"
    );

    let unset = write(
        dir.path(),
        "unset.toml",
        "[server]\napi_keys = [\"${GATEWAY_TEST_UNSET_KEY}\"]\n",
    );
    let out = gateway()
        .arg("check")
        .arg("--config")
        .arg(&unset)
        .env_remove("GATEWAY_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unset.toml:2: server.api_keys[0]: environment variable GATEWAY_TEST_UNSET_KEY is not set"), "{stderr}");

    let good = write(
        dir.path(),
        "good.toml",
        "[server]\napi_keys = [\"${GATEWAY_TEST_KEY}\"]\n",
    );
    let out = gateway()
        .arg("check")
        .arg("--config")
        .arg(&good)
        .env("GATEWAY_TEST_KEY", "sk-live-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("api_keys = [\"[redacted]\"]"), "{stdout}");
    assert!(!stdout.contains("sk-live-secret"));
}

#[test]
fn check_without_a_file_prints_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("<embedded default>") && stdout.contains("127.0.0.1:7861"),
        "{stdout}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// On one core (here asked with `TOKIO_WORKER_THREADS=1`) the gateway runs the single-threaded
/// scheduler; both serve and stop the same way.
#[test]
fn serve_answers_health_and_stops_on_sigterm() {
    serve_health_and_stop(None, None);
    serve_health_and_stop(Some("1"), Some(1));
    serve_health_and_stop(Some("3"), Some(3));
    // Not a number: one worker per core, and no panic.
    serve_health_and_stop(Some("many"), None);
}

fn serve_health_and_stop(asked: Option<&str>, workers: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = gateway();
    if let Some(asked) = asked {
        command.env("TOKIO_WORKER_THREADS", asked);
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for _ in 0..50 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            if let Some(workers) = workers {
                assert!(line.contains(&format!("workers={workers}")), "{line}");
            }
            addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    assert!(addr.is_some(), "the gateway logs its address");
    let addr = addr.unwrap();
    let health = http_get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("{\"status\":\"ok\"}"), "{health}");
    let chat_without_accounts = http_get(&addr, "/v1/models");
    assert!(
        chat_without_accounts.starts_with("HTTP/1.1 200"),
        "{chat_without_accounts}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..200 {
        if let Some(done) = child.try_wait().unwrap() {
            status = Some(done);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(status.is_some(), "the gateway stops after SIGTERM");
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn accounts_import_list_disable() {
    let dir = tempfile::tempdir().unwrap();
    let export = write(
        dir.path(),
        "export.json",
        r#"{"client_id":"c","client_secret":"s","refresh_token":"1//r","token":"ya29.x","expiry":"2999-01-01T00:00:00Z","project_id":"p-1","email":"me@example.com"}"#,
    );
    let config = write(
        dir.path(),
        "gateway.toml",
        "[antigravity]\ncredentials_dir = \"accounts\"\n",
    );
    let run = |args: &[&str]| {
        let out = gateway()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["accounts", "import", export.to_str().unwrap()]).contains("as me@example.com"));
    let listed = run(&["accounts", "list"]);
    assert!(
        listed.contains("me@example.com\tproject=p-1\tenabled"),
        "{listed}"
    );
    assert!(!listed.contains("ya29"));
    run(&["accounts", "disable", "me@example.com"]);
    assert!(run(&["accounts", "list"]).contains("disabled: disabled by the operator"));
    run(&["accounts", "enable", "me@example.com"]);
    assert!(run(&["accounts", "list"]).contains("\tenabled"));
    let _ = config;
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.path().join("accounts/me@example.com.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode, 0o600);
    let out = gateway()
        .args(["accounts", "disable", "ghost"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn accounts_import_many_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gateway.toml",
        "[antigravity]\ncredentials_dir = \"accounts\"\n",
    );
    let opencode = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../antigravity-service/test_data/accounts/antigravity-accounts.json"
    );
    let run = |args: &[&str]| {
        gateway()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let imported = run(&["accounts", "import", opencode]);
    assert!(imported.status.success(), "{imported:?}");
    let imported = String::from_utf8_lossy(&imported.stdout).into_owned();
    assert!(imported.contains("as first.user@example.com"), "{imported}");
    assert!(
        imported.contains("as second.user@example.com"),
        "{imported}"
    );
    assert!(imported.contains("within seconds"), "{imported}");

    let removed = run(&["accounts", "remove", "first.user@example.com"]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed first.user@example.com"));
    assert!(
        !dir.path()
            .join("accounts/first.user@example.com.json")
            .exists()
    );
    let listed = String::from_utf8_lossy(&run(&["accounts", "list"]).stdout).into_owned();
    assert!(listed.starts_with("1 account(s)"), "{listed}");
    assert!(listed.contains("second.user@example.com"), "{listed}");

    let again = run(&["accounts", "remove", "first.user@example.com"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no account first.user@example.com"),
        "{again:?}"
    );
    let escape = run(&["accounts", "remove", "../gateway"]);
    assert!(!escape.status.success());
    assert!(dir.path().join("gateway.toml").exists());
}

/// A stand-in for Google's OAuth and Cloud Code endpoints on 127.0.0.1: one canned JSON answer
/// per path, one request per connection.
fn mock_google() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = answer_like_google(stream);
            });
        }
    });
    format!("http://{addr}")
}

fn answer_like_google(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let json = if path.starts_with("/token") {
        r#"{"access_token":"ya29.login","refresh_token":"1//login","expires_in":3599}"#
    } else if path.starts_with("/userinfo") {
        r#"{"email":"login.user@example.com"}"#
    } else if path.contains("loadCodeAssist") {
        r#"{"currentTier":{"id":"free-tier"},"cloudaicompanionProject":"login-project"}"#
    } else {
        "{}"
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
        json.len()
    )
}

/// The browser's callback arriving must end `gateway login` even though nothing is ever typed:
/// the prompt for a pasted answer must not hold the process open.
#[test]
fn login_completes_on_the_browser_callback_without_enter() {
    let dir = tempfile::tempdir().unwrap();
    let google = mock_google();
    write(
        dir.path(),
        "gateway.toml",
        &format!(
            "[antigravity]\ncredentials_dir = \"accounts\"\nauth_url = \"{google}/auth\"\n\
             token_url = \"{google}/token\"\nuserinfo_url = \"{google}/userinfo\"\n\
             base_urls = [\"{google}\"]\n"
        ),
    );
    let mut child = gateway()
        .args(["login", "antigravity"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Standard input stays open and silent for the whole test, as in a terminal.
    let _stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find_map(|line| {
            line.trim()
                .starts_with(&google)
                .then(|| line.trim().to_owned())
        })
        .expect("the login prints the authorization url");
    let query = url.split_once('?').unwrap().1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap()
            .replace("%3A", ":")
            .replace("%2F", "/")
    };
    let redirect = param("redirect_uri");
    let callback = redirect.strip_prefix("http://").unwrap();
    let (addr, path) = callback.split_once('/').unwrap();
    let answer = http_get(
        addr,
        &format!("/{path}?state={}&code=4%2F0-test-code", param("state")),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`gateway login` still waits for Enter after the browser came back");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    let saved: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        saved
            .iter()
            .any(|l| l.contains("Saved account login.user@example.com")),
        "{saved:?}"
    );
    let file =
        std::fs::read_to_string(dir.path().join("accounts/login.user@example.com.json")).unwrap();
    assert!(file.contains("login-project"), "{file}");
}

#[test]
fn json_logs_name_the_request_and_never_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "gateway.toml",
        "[server]\napi_keys = [\"gw-secret-key-123\"]\n[backends.x]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"sk-upstream-secret-456\"\n",
    );
    let mut child = gateway()
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    while addr.is_none() {
        let line = lines_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(|c: char| c == '"' || c.is_whitespace()).next())
            .map(str::to_owned);
    }
    let addr = addr.unwrap();
    let mut stream = TcpStream::connect(&addr).unwrap();
    let body =
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"my private prompt text"}]}"#;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gw-secret-key-123\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let mut logged = String::new();
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(5)) {
        logged.push_str(&line);
        logged.push('\n');
        if line.contains("request answered") {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let answered = logged
        .lines()
        .find(|l| l.contains("request answered"))
        .unwrap_or_else(|| panic!("{logged}"));
    let record: serde_json::Value = serde_json::from_str(answered).unwrap();
    let span = &record["span"];
    assert_eq!(span["status"], 502, "{record}");
    assert_eq!(span["model"], "gpt-4o");
    assert!(
        span["attempts"].as_str().unwrap().starts_with("x:"),
        "{record}"
    );
    assert!(span["duration_ms"].is_number());
    for secret in [
        "gw-secret-key-123",
        "sk-upstream-secret-456",
        "my private prompt text",
    ] {
        assert!(!logged.contains(secret), "{secret} was logged:\n{logged}");
    }
}

#[test]
fn check_output_is_accepted_by_check_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "gateway.toml",
        r#"[server]
api_keys = ["client-secret-1"]
admin_keys = ["admin-secret-2"]
shutdown_grace = "1m30s"

[[keys]]
name = "alice"
key = "alice-secret-3"
models = ["gpt-*"]
tpm = 1000

[state]
usage_db = "somewhere/usage.sqlite"

[backends.kiro]
kind = "anthropic"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-kiro-secret-4"
first_byte_timeout = "45s"

[[backends.kiro.rules]]
status = 400
action = "failover"

[backends.antigravity]
kind = "antigravity"

[[routes]]
models = ["claude-*"]
chain = ["kiro", { backend = "antigravity", model = "claude-sonnet-4-5" }]

[aliases]
sonnet = "claude-sonnet-4-5"
"#,
    );
    let check = |path: &std::path::Path| {
        let out = gateway()
            .arg("check")
            .arg("--config")
            .arg(path)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
        // The first line names the source; the rest is the configuration.
        stdout.split_once('\n').unwrap().1.to_owned()
    };
    let printed = check(&config);
    for secret in [
        "client-secret-1",
        "admin-secret-2",
        "alice-secret-3",
        "sk-kiro-secret-4",
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("[backends.kiro]"), "{printed}");
    let again = write(dir.path(), "printed.toml", &printed);
    assert_eq!(check(&again), printed, "the printed file prints the same");
}

#[test]
fn a_type_error_names_the_key_not_serde_internals() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", "[server]\nlisten = 5\n");
    let out = gateway()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2: server.listen: "), "{stderr}");
    assert!(!stderr.contains("serde"), "{stderr}");
}

#[test]
fn sighup_reloads_the_file_and_never_ends_serve() {
    let dir = tempfile::tempdir().unwrap();
    let backend = |name: &str| {
        format!("[backends.{name}]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n")
    };
    let config = write(dir.path(), "gateway.toml", &backend("first"));
    let mut child = gateway()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    while addr.is_none() {
        let line = lines_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned);
    }
    let addr = addr.unwrap();
    let hangup = |child: &std::process::Child| {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let serves =
        |name: &str| http_get(&addr, "/admin/backends").contains(&format!("\"name\":\"{name}\""));
    assert!(serves("first"));

    write(dir.path(), "gateway.toml", &backend("second"));
    hangup(&child);
    let mut reloaded = false;
    for _ in 0..200 {
        if serves("second") {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(reloaded, "SIGHUP reloads the file");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not end the process"
    );

    // A broken file is refused; the process and the old configuration stay.
    write(dir.path(), "gateway.toml", "[server]\nlisten = 5\n");
    hangup(&child);
    let mut refused = String::new();
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(10)) {
        if line.contains("not reloaded") {
            refused = line;
            break;
        }
    }
    assert!(
        refused.contains("server.listen"),
        "the reason is logged: {refused}"
    );
    assert!(child.try_wait().unwrap().is_none());
    assert!(serves("second"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..200 {
        if let Some(done) = child.try_wait().unwrap() {
            status = Some(done);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(status.expect("the gateway stops after SIGTERM").success());
}
