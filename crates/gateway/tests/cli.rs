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
    command.env_remove("RUST_LOG");
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

#[test]
fn serve_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = gateway()
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
            addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("the gateway logs its address");
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
    let status = status.expect("the gateway stops after SIGTERM");
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
