//! The real clients as acceptance: the official Anthropic, OpenAI (Responses API) and
//! google-genai Python SDKs, Claude Code, Codex CLI and Gemini CLI, each run against the gateway
//! binary in front of the `mock-upstream` binary, on 127.0.0.1 only.
//!
//! `cargo xtask clients [NAME...]` runs the named checks (every check without a name);
//! `cargo xtask test` runs [`IN_TEST`]: every check, each client on every kind of backend.
//! Each check is one scenario: a fresh mock upstream, a gateway
//! configuration generated for one backend kind under `target/clients-work/NAME`, the client run
//! with a throwaway HOME, loopback URLs only and a timeout, then assertions on what the client
//! printed and on what the mock received (`GET /_mock/requests`). One line per check, a closing
//! `N passed, N failed` line, and an error when any failed. Every process a check starts is
//! killed when the check ends, whatever happens.
//!
//! The CLIs are pinned in `xtask/clients/package.json` and its `package-lock.json`, installed
//! with `npm ci --ignore-scripts` into `target/clients` when the pinned versions are not already
//! there (Claude Code's postinstall, which only links its platform binary, is then run by hand).
//! The SDKs come from [`crate::sdk::ensure_sdk`].
//!
//! How each CLI is pointed at the gateway:
//! - Claude Code: `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`,
//!   `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`, `DISABLE_AUTOUPDATER`, `DISABLE_TELEMETRY`,
//!   `DISABLE_ERROR_REPORTING`, `CLAUDE_CODE_MAX_RETRIES=0`, and
//!   `claude -p --bare --output-format json --tools ...`; headless as root it is refused
//!   `--dangerously-skip-permissions`, so `--allowedTools Read --permission-mode dontAsk`.
//! - Codex: `CODEX_HOME/config.toml` declaring a `gateway` model provider (`base_url`,
//!   `env_key`, `wire_api = "responses"`, no retries), then
//!   `codex exec --skip-git-repo-check --ephemeral -o FILE`.
//! - Gemini CLI: `GOOGLE_GEMINI_BASE_URL`, `GEMINI_API_KEY`, `GEMINI_CLI_TRUST_WORKSPACE`, and
//!   `~/.gemini/settings.json` selecting API-key auth with telemetry, statistics and updates off.
//!
//! The mock answers a declared tool with a call unless the prompt says `mock-call: none`, and a
//! `mock-call: NAME {json}` line picks the tool and its arguments (see `test_support::mock`).

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::process::{Running, first_line, listening_address};

/// The checks `cargo xtask test` runs: those that pass against today's gateway.
pub(crate) const IN_TEST: &[&str] = &[
    "anthropic-sdk-anthropic",
    "anthropic-sdk-openai",
    "anthropic-sdk-antigravity",
    "anthropic-sdk-gemini",
    "responses-sdk-native",
    "responses-sdk-openai",
    "responses-sdk-antigravity",
    "responses-sdk-anthropic",
    "responses-sdk-gemini",
    "genai-sdk-antigravity",
    "genai-sdk-gemini",
    "genai-sdk-openai",
    "genai-sdk-geminicli",
    "claude-code-anthropic",
    "claude-code-openai",
    "claude-code-antigravity",
    "claude-code-read-anthropic",
    "claude-code-read-openai",
    "claude-code-read-antigravity",
    "codex-native",
    "codex-openai",
    "codex-antigravity",
    "codex-shell-native",
    "codex-shell-openai",
    "codex-shell-antigravity",
    "gemini-cli-antigravity",
    "gemini-cli-geminicli",
    "dashboard",
];

/// The key the dashboard check signs in with.
const ADMIN_KEY: &str = "admin-key";

/// The key clients present to the gateway; it must never reach an upstream.
const CLIENT_KEY: &str = "client-key";

/// What a file the tool checks read holds; the second turn must carry it upstream.
const SECRET: &str = "pineapple-42";

/// Text every streamed mock answer contains, whichever protocol carried it.
const STREAMED: &str = "tok1 世界🌏";

/// Bound on one client run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Bound on one SDK script (it makes a dozen calls, each bounded by the SDK's own timeout).
const SDK_TIMEOUT: Duration = Duration::from_secs(240);

/// The kind of backend a scenario puts behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// `kind = "anthropic"`: Anthropic clients pass through.
    Anthropic,
    /// `kind = "openai"` with `native_messages` and `native_responses`: those pass through.
    Native,
    /// `kind = "openai"` serving Chat Completions only: other protocols are converted.
    Chat,
    /// The in-process Antigravity service, against the mock's `v1internal` endpoints.
    Antigravity,
    /// The in-process Gemini CLI pool (`kind = "geminicli"`), against the same endpoints.
    GeminiCli,
    /// `kind = "gemini"`: Gemini clients pass through.
    Gemini,
    /// Antigravity for `gemini-3*`, the Gemini CLI pool for `gemini-2.5-*` and an
    /// OpenAI-compatible backend for `gpt-*`.
    Both,
}

impl Backend {
    /// The name the SDK scripts take.
    fn name(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Native => "native",
            Self::Chat => "openai",
            Self::Antigravity => "antigravity",
            Self::GeminiCli => "geminicli",
            Self::Gemini => "gemini",
            Self::Both => "both",
        }
    }

    /// The `[backends.*]` table in front of the mock at `mock`.
    fn table(self, mock: &str) -> String {
        let models = r#"models = ["claude-*", "gpt-*", "gemini-*"]"#;
        match self {
            Self::Anthropic => format!(
                "[backends.anthropic]\nkind = \"anthropic\"\nbase_url = \"{mock}/v1\"\napi_key = \"sk-upstream\"\n{models}\n"
            ),
            Self::Native => format!(
                "[backends.openai]\nkind = \"openai\"\nbase_url = \"{mock}/v1\"\napi_key = \"sk-upstream\"\nnative_messages = true\nnative_responses = true\n{models}\n"
            ),
            Self::Chat => format!(
                "[backends.openai]\nkind = \"openai\"\nbase_url = \"{mock}/v1\"\napi_key = \"sk-upstream\"\n{models}\n"
            ),
            Self::Antigravity => {
                format!("[backends.antigravity]\nkind = \"antigravity\"\n{models}\n")
            }
            Self::GeminiCli => format!("[backends.geminicli]\nkind = \"geminicli\"\n{models}\n"),
            Self::Gemini => format!(
                "[backends.gemini]\nkind = \"gemini\"\nbase_url = \"{mock}/v1beta\"\napi_key = \"upstream-key\"\n{models}\n"
            ),
            Self::Both => format!(
                "[backends.antigravity]\nkind = \"antigravity\"\nmodels = [\"gemini-3*\"]\n\n[backends.geminicli]\nkind = \"geminicli\"\nmodels = [\"gemini-2.5-*\"]\n\n[backends.openai]\nkind = \"openai\"\nbase_url = \"{mock}/v1\"\napi_key = \"sk-upstream\"\nmodels = [\"gpt-*\"]\n"
            ),
        }
    }

    /// Part of the path every upstream request of a client speaking `client` must have.
    fn upstream_path(self, client: Protocol) -> &'static str {
        match (self, client) {
            (Self::Antigravity | Self::GeminiCli | Self::Both, _) => {
                "v1internal:streamGenerateContent"
            }
            (Self::Chat, _) => "/chat/completions",
            (_, Protocol::Anthropic) => "/messages",
            (_, Protocol::Responses) => "/responses",
            (_, Protocol::Gemini) => "GenerateContent",
        }
    }
}

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Anthropic,
    Responses,
    Gemini,
}

/// Who talks to the gateway in a check.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// A Python script under `xtask/sdk`, run as `SCRIPT BASE_URL MOCK_URL BACKEND`.
    Sdk(&'static str),
    /// `claude -p`; with `read`, the mock asks for `Read` of a file in the project.
    ClaudeCode { read: bool },
    /// `codex exec`; with `shell`, the mock asks for a shell command.
    Codex { shell: bool },
    /// `gemini -p`.
    GeminiCli,
    /// The dashboard in Debian's Chromium, driven by puppeteer-core (`dashboard.mjs`).
    Browser,
}

/// One named scenario.
#[derive(Debug)]
struct Check {
    name: &'static str,
    client: Client,
    backend: Backend,
}

const fn check(name: &'static str, client: Client, backend: Backend) -> Check {
    Check {
        name,
        client,
        backend,
    }
}

/// Every check, in the order they run.
const CHECKS: &[Check] = &[
    check(
        "anthropic-sdk-anthropic",
        Client::Sdk("anthropic_sdk.py"),
        Backend::Anthropic,
    ),
    check(
        "anthropic-sdk-openai",
        Client::Sdk("anthropic_sdk.py"),
        Backend::Chat,
    ),
    check(
        "anthropic-sdk-antigravity",
        Client::Sdk("anthropic_sdk.py"),
        Backend::Antigravity,
    ),
    check(
        "anthropic-sdk-gemini",
        Client::Sdk("anthropic_sdk.py"),
        Backend::Gemini,
    ),
    check(
        "responses-sdk-native",
        Client::Sdk("responses_sdk.py"),
        Backend::Native,
    ),
    check(
        "responses-sdk-openai",
        Client::Sdk("responses_sdk.py"),
        Backend::Chat,
    ),
    check(
        "responses-sdk-antigravity",
        Client::Sdk("responses_sdk.py"),
        Backend::Antigravity,
    ),
    check(
        "responses-sdk-anthropic",
        Client::Sdk("responses_sdk.py"),
        Backend::Anthropic,
    ),
    check(
        "responses-sdk-gemini",
        Client::Sdk("responses_sdk.py"),
        Backend::Gemini,
    ),
    check(
        "genai-sdk-antigravity",
        Client::Sdk("genai_sdk.py"),
        Backend::Antigravity,
    ),
    check(
        "genai-sdk-gemini",
        Client::Sdk("genai_sdk.py"),
        Backend::Gemini,
    ),
    check(
        "genai-sdk-openai",
        Client::Sdk("genai_sdk.py"),
        Backend::Chat,
    ),
    check(
        "genai-sdk-geminicli",
        Client::Sdk("genai_sdk.py"),
        Backend::GeminiCli,
    ),
    check(
        "claude-code-anthropic",
        Client::ClaudeCode { read: false },
        Backend::Anthropic,
    ),
    check(
        "claude-code-openai",
        Client::ClaudeCode { read: false },
        Backend::Chat,
    ),
    check(
        "claude-code-antigravity",
        Client::ClaudeCode { read: false },
        Backend::Antigravity,
    ),
    check(
        "claude-code-read-anthropic",
        Client::ClaudeCode { read: true },
        Backend::Anthropic,
    ),
    check(
        "claude-code-read-openai",
        Client::ClaudeCode { read: true },
        Backend::Chat,
    ),
    check(
        "claude-code-read-antigravity",
        Client::ClaudeCode { read: true },
        Backend::Antigravity,
    ),
    check(
        "codex-native",
        Client::Codex { shell: false },
        Backend::Native,
    ),
    check(
        "codex-openai",
        Client::Codex { shell: false },
        Backend::Chat,
    ),
    check(
        "codex-antigravity",
        Client::Codex { shell: false },
        Backend::Antigravity,
    ),
    check(
        "codex-shell-native",
        Client::Codex { shell: true },
        Backend::Native,
    ),
    check(
        "codex-shell-openai",
        Client::Codex { shell: true },
        Backend::Chat,
    ),
    check(
        "codex-shell-antigravity",
        Client::Codex { shell: true },
        Backend::Antigravity,
    ),
    check(
        "gemini-cli-antigravity",
        Client::GeminiCli,
        Backend::Antigravity,
    ),
    check(
        "gemini-cli-geminicli",
        Client::GeminiCli,
        Backend::GeminiCli,
    ),
    check("dashboard", Client::Browser, Backend::Both),
];

/// What every check needs: where the binaries, the SDKs and the CLIs are.
struct Setup {
    root: PathBuf,
    bin: PathBuf,
    python: Option<PathBuf>,
    clients: Option<PathBuf>,
}

/// Run the checks named in `names` (every check when empty); fail when any fails.
pub(crate) fn run(root: &Path, names: &[impl AsRef<str>]) -> Result<()> {
    eprintln!("==> clients: the real SDKs and CLIs against the gateway binary");
    let selected: Vec<&Check> = if names.is_empty() {
        CHECKS.iter().collect()
    } else {
        names
            .iter()
            .map(AsRef::as_ref)
            .map(|name| {
                CHECKS.iter().find(|c| c.name == name).with_context(|| {
                    let all: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
                    format!("no check named `{name}`; the checks are: {}", all.join(" "))
                })
            })
            .collect::<Result<_>>()?
    };
    let target = crate::target_dir(root);
    let needs_sdk = selected.iter().any(|c| matches!(c.client, Client::Sdk(_)));
    let needs_cli = selected.iter().any(|c| !matches!(c.client, Client::Sdk(_)));
    let python = needs_sdk
        .then(|| crate::sdk::ensure_sdk(&target))
        .transpose()?;
    let clients = needs_cli.then(|| ensure_clients(root)).transpose()?;
    crate::step(
        root,
        "build binaries",
        "cargo",
        &[
            "build",
            "--quiet",
            "-p",
            "gateway",
            "-p",
            "test-support",
            "--bins",
        ],
    )?;
    let setup = Setup {
        root: root.to_path_buf(),
        bin: target.join("debug"),
        python,
        clients,
    };
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for check in selected {
        let began = Instant::now();
        match run_check(&setup, check) {
            Ok(()) => {
                passed += 1;
                eprintln!(
                    "PASS {} ({:.1} s)",
                    check.name,
                    began.elapsed().as_secs_f64()
                );
            }
            Err(err) => {
                failed += 1;
                eprintln!(
                    "FAIL {} ({:.1} s): {err:#}",
                    check.name,
                    began.elapsed().as_secs_f64()
                );
            }
        }
    }
    eprintln!(
        "clients: {passed} passed, {failed} failed ({:.0} s; logs under target/clients-work)",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} client check(s) failed");
    }
    Ok(())
}

/// The pinned CLIs under `target/clients`, installed only when the pinned versions are missing.
fn ensure_clients(root: &Path) -> Result<PathBuf> {
    let source = root.join("xtask/clients");
    let dir = crate::target_dir(root).join("clients");
    let manifest = std::fs::read_to_string(source.join("package.json"))?;
    let lock = std::fs::read_to_string(source.join("package-lock.json"))?;
    let pins: Value = serde_json::from_str(&manifest).context("xtask/clients/package.json")?;
    let pins = pins["dependencies"]
        .as_object()
        .context("package.json has no dependencies")?;
    let installed = |package: &str| -> Option<String> {
        let text =
            std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
                .ok()?;
        let json: Value = serde_json::from_str(&text).ok()?;
        json["version"].as_str().map(str::to_owned)
    };
    let current = pins
        .iter()
        .all(|(package, version)| installed(package).as_deref() == version.as_str())
        && std::fs::read_to_string(dir.join("package-lock.json"))
            .ok()
            .as_deref()
            == Some(&lock)
        && dir
            .join("node_modules/@anthropic-ai/claude-code/bin/claude.exe")
            .metadata()
            .is_ok_and(|m| m.len() > 1_000_000);
    if current {
        return Ok(dir);
    }
    eprintln!("==> clients install: npm ci into {}", dir.display());
    let began = Instant::now();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("package.json"), &manifest)?;
    std::fs::write(dir.join("package-lock.json"), &lock)?;
    let status = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .env("npm_config_cache", dir.join(".npm-cache"))
        .env("npm_config_update_notifier", "false")
        .current_dir(&dir)
        .status()
        .context("cannot run npm (node and npm must be installed)")?;
    ensure!(status.success(), "npm ci failed ({status})");
    // Claude Code's postinstall links its platform binary over a placeholder; nothing else.
    let claude = dir.join("node_modules/@anthropic-ai/claude-code");
    let status = Command::new("node")
        .arg("install.cjs")
        .current_dir(&claude)
        .status()
        .context("cannot run Claude Code's install.cjs")?;
    ensure!(
        status.success(),
        "Claude Code's install.cjs failed ({status})"
    );
    // The downloaded tarballs are as large as the install; a reinstall fetches them again.
    let _ = std::fs::remove_dir_all(dir.join(".npm-cache"));
    eprintln!(
        "==> clients install: done in {:.0} s",
        began.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// One scenario: mock, gateway, client, assertions.
fn run_check(setup: &Setup, check: &Check) -> Result<()> {
    let work = crate::target_dir(&setup.root)
        .join("clients-work")
        .join(check.name);
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let mut mock = Running(
        Command::new(setup.bin.join("mock-upstream"))
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the mock upstream")?,
    );
    let mock_url = first_line(&mut mock.0).context("the mock upstream did not print its url")?;
    let config = gateway_config(&work, &mock_url, check.backend)?;
    let mut gateway = Running(
        Command::new(setup.bin.join("gateway"))
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the gateway")?,
    );
    let log = work.join("gateway.log");
    let address = listening_address(
        gateway.0.stderr.take().context("gateway stderr")?,
        Some(&log),
    )
    .map_err(|_| {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let said: Vec<&str> = said.lines().rev().take(2).collect();
        anyhow::anyhow!("the gateway did not start: {}", said.join(" | "))
    })?;
    let scenario = Scenario {
        work: &work,
        gateway: format!("http://{address}"),
        mock: mock_url,
        backend: check.backend,
    };
    let outcome = match check.client {
        Client::Sdk(script) => sdk_script(setup, &scenario, script),
        Client::ClaudeCode { read } => claude_code(setup, &scenario, read),
        Client::Codex { shell } => codex(setup, &scenario, shell),
        Client::GeminiCli => gemini_cli(setup, &scenario),
        Client::Browser => dashboard(setup, &scenario),
    };
    drop(gateway);
    drop(mock);
    outcome.map_err(|err| anyhow::anyhow!("{err:#} (logs: {})", work.display()))
}

/// A running scenario.
struct Scenario<'a> {
    work: &'a Path,
    gateway: String,
    mock: String,
    backend: Backend,
}

impl Scenario<'_> {
    /// Every request the mock received.
    fn upstream_requests(&self) -> Result<Vec<Value>> {
        let host = self
            .mock
            .strip_prefix("http://")
            .context("the mock url is not http")?;
        let mut stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /_mock/requests HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        let (_, body) = answer
            .split_once("\r\n\r\n")
            .context("the mock's record is not an http answer")?;
        let list: Value = serde_json::from_str(body).context("the mock's record is not json")?;
        let list = list.as_array().cloned().unwrap_or_default();
        let leaked = list.iter().any(|r| {
            r["headers"].as_object().is_some_and(|h| {
                h.values()
                    .any(|v| v.as_str().is_some_and(|v| v.contains(CLIENT_KEY)))
            })
        });
        ensure!(!leaked, "the client's key reached the upstream");
        Ok(list)
    }

    /// The upstream requests of the conversation (token counts and account calls left out),
    /// checked to have gone where `client` over this backend must go; at least one.
    fn conversation(&self, client: Protocol) -> Result<Vec<Value>> {
        const ASIDE: &[&str] = &[
            "count_tokens",
            "countTokens",
            "fetchAvailableModels",
            "loadCodeAssist",
            "onboardUser",
            "/token",
            "/userinfo",
        ];
        let path = self.backend.upstream_path(client);
        let requests: Vec<Value> = self
            .upstream_requests()?
            .into_iter()
            .filter(|r| r["method"] == "POST")
            .filter(|r| {
                let uri = r["uri"].as_str().unwrap_or("");
                !ASIDE.iter().any(|aside| uri.contains(aside))
            })
            .collect();
        ensure!(!requests.is_empty(), "no request reached the upstream");
        let uris: Vec<&str> = requests.iter().filter_map(|r| r["uri"].as_str()).collect();
        ensure!(
            uris.iter().all(|u| u.contains(path)),
            "the upstream was asked {uris:?}, expected every path to contain `{path}`"
        );
        Ok(requests)
    }

    fn home(&self) -> Result<PathBuf> {
        let home = self.work.join("home");
        std::fs::create_dir_all(&home)?;
        Ok(home)
    }

    fn project(&self) -> Result<PathBuf> {
        let project = self.work.join("project");
        std::fs::create_dir_all(&project)?;
        std::fs::write(
            project.join("notes.txt"),
            format!("the secret word is {SECRET}\n"),
        )?;
        Ok(project)
    }
}

/// The gateway configuration of one scenario, with one Antigravity account for the mock.
fn gateway_config(dir: &Path, mock: &str, backend: Backend) -> Result<PathBuf> {
    // One account per pool: Antigravity's, and the Gemini CLI's (used by `Both`).
    let mut pools = String::new();
    for (section, email) in [
        ("antigravity", "check@example.com"),
        ("geminicli", "cli.check@example.com"),
    ] {
        let accounts = dir.join(section);
        std::fs::create_dir_all(&accounts)?;
        std::fs::write(
            accounts.join(format!("{email}.json")),
            format!(
                r#"{{"client_id":"cid","client_secret":"cs","refresh_token":"1//check","access_token":"ya29.check",
                    "expiry":"2999-01-01T00:00:00Z","project_id":"check-project","email":"{email}"}}"#
            ),
        )?;
        pools += &format!(
            "[{section}]\ncredentials_dir = \"{}\"\nbase_urls = [\"{mock}\"]\nauth_url = \"{mock}/auth\"\ntoken_url = \"{mock}/token\"\nuserinfo_url = \"{mock}/userinfo\"\nmax_concurrency_per_account = 1000\n\n",
            accounts.display()
        );
    }
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\napi_keys = [\"{CLIENT_KEY}\"]\nadmin_keys = [\"{ADMIN_KEY}\"]\n\n{pools}{table}\n[logging]\nlevel = \"warn,gateway=info\"\n",
            table = backend.table(mock),
        ),
    )?;
    Ok(config)
}

/// What a bounded run printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    /// What explains a failure, on one line: the error lines printed, else the last lines.
    fn tail(&self) -> String {
        let both = format!("{}\n{}", self.stdout, self.stderr);
        let lines: Vec<&str> = both
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let errors: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.to_lowercase().contains("error"))
            .collect();
        let chosen = if errors.is_empty() { &lines } else { &errors };
        let mut chosen: Vec<&str> = chosen[chosen.len().saturating_sub(3)..].to_vec();
        chosen.dedup();
        chosen.join(" | ")
    }
}

/// Run `command` in its own process group with its output in `work/NAME.out|.err`, killing the
/// whole group when it outlives `limit`.
fn bounded(mut command: Command, work: &Path, name: &str, limit: Duration) -> Result<Output> {
    let out = work.join(format!("{name}.out"));
    let err = work.join(format!("{name}.err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The group's leader is our child; whatever it started in its group goes with it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let waited = child.wait()?;
    let output = Output {
        status: status.unwrap_or(waited),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    };
    if status.is_none() {
        bail!(
            "{name} did not finish within {} s: {}",
            limit.as_secs(),
            output.tail()
        );
    }
    Ok(output)
}

/// A clean environment for a client: PATH, a throwaway HOME, no proxy, no colour.
fn client_command(program: &Path, home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("TMPDIR", home);
    command
}

fn cli(setup: &Setup, name: &str) -> Result<PathBuf> {
    let dir = setup
        .clients
        .as_ref()
        .context("the clients are not installed")?;
    Ok(dir.join("node_modules/.bin").join(name))
}

fn sdk_script(setup: &Setup, scenario: &Scenario<'_>, script: &str) -> Result<()> {
    let python = setup.python.as_ref().context("the sdk venv is missing")?;
    let home = scenario.home()?;
    let mut command = client_command(python, &home);
    command
        .arg(setup.root.join("xtask/sdk").join(script))
        .arg(&scenario.gateway)
        .arg(&scenario.mock)
        .arg(scenario.backend.name())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8");
    let output = bounded(command, scenario.work, "sdk", SDK_TIMEOUT)?;
    if !output.status.success() {
        let failures: Vec<&str> = output
            .stdout
            .lines()
            .filter(|l| l.starts_with("FAIL") || l.contains(" passed, "))
            .collect();
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

fn claude_code(setup: &Setup, scenario: &Scenario<'_>, read: bool) -> Result<()> {
    let home = scenario.home()?;
    let project = scenario.project()?;
    let notes = project.join("notes.txt");
    let prompt = if read {
        format!(
            "Read notes.txt and tell me the secret word.\nmock-call: Read {{\"file_path\": \"{}\"}}",
            notes.display()
        )
    } else {
        "Say hello to the gateway.".to_owned()
    };
    let mut command = client_command(&cli(setup, "claude")?, &home);
    command
        .current_dir(&project)
        .args(["-p", &prompt, "--bare", "--output-format", "json"])
        .args([
            "--model",
            "claude-sonnet-4-5",
            "--no-session-persistence",
            "--strict-mcp-config",
        ])
        .args(["--tools", if read { "Read" } else { "" }])
        .args(["--allowedTools", "Read", "--permission-mode", "dontAsk"])
        .env("ANTHROPIC_BASE_URL", &scenario.gateway)
        .env("ANTHROPIC_API_KEY", CLIENT_KEY)
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "claude-haiku-4-5")
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("API_TIMEOUT_MS", "60000");
    let output = bounded(command, scenario.work, "claude", CLIENT_TIMEOUT)?;
    let result: Value = output
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| {
            format!(
                "claude printed no json result ({}): {}",
                output.status,
                output.tail()
            )
        })?;
    ensure!(
        output.status.success() && result["is_error"] == false,
        "claude failed ({}): {}",
        output.status,
        result["result"]
    );
    let text = result["result"].as_str().unwrap_or_default();
    let requests = scenario.conversation(Protocol::Anthropic)?;
    if read {
        let first = requests.first().map(Value::to_string).unwrap_or_default();
        ensure!(
            first.contains("\"Read\""),
            "the first request declared no Read tool"
        );
        let last = requests.last().map(Value::to_string).unwrap_or_default();
        ensure!(
            requests.len() >= 2 && last.contains(SECRET),
            "the second turn did not carry the file's content upstream ({} requests; claude said {text:?})",
            requests.len()
        );
    } else {
        ensure!(
            text.contains(STREAMED),
            "claude printed {text:?}, not the mock's answer"
        );
    }
    Ok(())
}

fn codex(setup: &Setup, scenario: &Scenario<'_>, shell: bool) -> Result<()> {
    let home = scenario.home()?;
    let project = scenario.project()?;
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home)?;
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            r#"model_provider = "gateway"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.gateway]
name = "gateway"
base_url = "{}/v1"
env_key = "GATEWAY_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 60000
"#,
            scenario.gateway
        ),
    )?;
    let model = if scenario.backend == Backend::Antigravity {
        "gemini-3-pro"
    } else {
        "gpt-5-codex"
    };
    let prompt = if shell {
        "Show me notes.txt.\nmock-call: exec_command {\"cmd\": \"cat notes.txt\"}"
    } else {
        "Say hello to the gateway.\nmock-call: none"
    };
    let last = scenario.work.join("last-message.txt");
    let mut command = client_command(&cli(setup, "codex")?, &home);
    command
        .current_dir(&project)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--color",
            "never",
            "-m",
            model,
        ])
        .arg("-o")
        .arg(&last)
        .arg(prompt)
        .env("CODEX_HOME", &codex_home)
        .env("GATEWAY_API_KEY", CLIENT_KEY);
    let output = bounded(command, scenario.work, "codex", CLIENT_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "codex failed ({}): {}",
        output.status,
        output.tail()
    );
    let said = std::fs::read_to_string(&last).unwrap_or_default();
    let requests = scenario.conversation(Protocol::Responses)?;
    if shell {
        let first = requests.first().map(Value::to_string).unwrap_or_default();
        ensure!(
            first.contains("exec_command"),
            "the first request declared no exec_command tool"
        );
        let last = requests.last().map(Value::to_string).unwrap_or_default();
        ensure!(
            requests.len() >= 2 && last.contains(SECRET),
            "the second turn did not carry the command's output upstream ({} requests; codex said {said:?})",
            requests.len()
        );
    } else {
        ensure!(
            said.contains(STREAMED),
            "codex printed {said:?}, not the mock's answer: {}",
            output.tail()
        );
    }
    Ok(())
}

fn gemini_cli(setup: &Setup, scenario: &Scenario<'_>) -> Result<()> {
    let home = scenario.home()?;
    let project = scenario.project()?;
    let settings = home.join(".gemini");
    std::fs::create_dir_all(&settings)?;
    std::fs::write(
        settings.join("settings.json"),
        r#"{
  "security": {"auth": {"selectedType": "gemini-api-key"}},
  "telemetry": {"enabled": false},
  "privacy": {"usageStatisticsEnabled": false},
  "general": {"disableAutoUpdate": true, "disableUpdateNag": true}
}
"#,
    )?;
    let mut command = client_command(&cli(setup, "gemini")?, &home);
    command
        .current_dir(&project)
        .args([
            "-p",
            "Say hello to the gateway.\nmock-call: none",
            "-m",
            "gemini-2.5-flash",
        ])
        .env("GOOGLE_GEMINI_BASE_URL", &scenario.gateway)
        .env("GEMINI_API_KEY", CLIENT_KEY)
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("GEMINI_TELEMETRY_ENABLED", "false");
    let output = bounded(command, scenario.work, "gemini", CLIENT_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "gemini failed ({}): {}",
        output.status,
        output.tail()
    );
    scenario.conversation(Protocol::Gemini)?;
    ensure!(
        output.stdout.contains(STREAMED),
        "gemini printed {:?}, not the mock's answer",
        output.stdout.trim()
    );
    Ok(())
}

/// The dashboard in a real browser: sign-in (a wrong key, a client key, the admin key), both
/// backends, the account by email, usage rows and requests after traffic, the configuration
/// redacted, an account disabled from the page as `/admin/accounts` then shows; no JavaScript
/// error, no request outside the gateway, the page under 200 KB; a screenshot in `target/`.
fn dashboard(setup: &Setup, scenario: &Scenario<'_>) -> Result<()> {
    let clients = setup
        .clients
        .as_ref()
        .context("the clients are not installed")?;
    let chromium = crate::process::debian("/usr/bin/chromium", "chromium")?;
    let home = scenario.home()?;
    let screenshot = crate::target_dir(&setup.root).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut command = client_command(Path::new("node"), &home);
    command
        .arg(setup.root.join("xtask/clients/dashboard.mjs"))
        .arg(&scenario.gateway)
        .arg(ADMIN_KEY)
        .arg(CLIENT_KEY)
        .arg(&screenshot)
        .env("CLIENTS_DIR", clients)
        .env("CHROMIUM", chromium);
    let output = bounded(command, scenario.work, "dashboard", CLIENT_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "the dashboard check failed ({}): {}",
        output.status,
        output.tail()
    );
    ensure!(
        screenshot.metadata().is_ok_and(|m| m.len() > 10_000),
        "no screenshot at {}",
        screenshot.display()
    );
    eprintln!("     {}", output.stdout.trim());
    Ok(())
}
