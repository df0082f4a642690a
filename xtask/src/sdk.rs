//! The official OpenAI Python SDK against the gateway binary.
//!
//! Installs the SDK (pinned) into a virtual environment under `target/sdk-venv` when it is not
//! there yet, builds the gateway and the mock upstream, starts both on ephemeral loopback ports,
//! and runs `xtask/sdk/openai_sdk.py`. Both processes are stopped whatever happens.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// The SDK version the checks are written against.
const OPENAI_SDK: &str = "3.51.0";

/// Kills its process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(root: &Path) -> Result<()> {
    let target = root.join("target");
    let python = ensure_sdk(&target)?;
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
    let bin = target.join("debug");

    let mut mock = Running(
        Command::new(bin.join("mock-upstream"))
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the mock upstream")?,
    );
    let mut mock_url = String::new();
    BufReader::new(mock.0.stdout.take().context("mock stdout")?)
        .read_line(&mut mock_url)
        .context("the mock upstream did not print its url")?;
    let mock_url = mock_url.trim().to_owned();

    let work = target.join("sdk");
    let accounts = work.join("accounts");
    std::fs::create_dir_all(&accounts)?;
    std::fs::write(
        accounts.join("sdk@example.com.json"),
        r#"{"client_id":"cid","client_secret":"cs","refresh_token":"1//sdk","access_token":"ya29.sdk",
            "expiry":"2999-01-01T00:00:00Z","project_id":"sdk-project","email":"sdk@example.com"}"#,
    )?;
    let config = work.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"[antigravity]
credentials_dir = "{accounts}"
base_urls = ["{mock_url}"]

[backends.antigravity]
kind = "antigravity"
priority = 1
models = ["gemini-*"]

[backends.mock]
kind = "openai"
base_url = "{mock_url}/v1"
priority = 2
models = ["gpt-*"]
forward_headers = ["x-mock-*"]

[[routes]]
models = ["gpt-failover"]
chain = [{{ backend = "mock", model = "mock-error-before-content" }}, {{ backend = "mock", model = "gpt-4o" }}]

[logging]
level = "warn,gateway=info"
"#,
            accounts = accounts.display()
        ),
    )?;

    let mut gateway = Running(
        Command::new(bin.join("gateway"))
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the gateway")?,
    );
    let address = listening_address(
        gateway.0.stderr.take().context("gateway stderr")?,
        &work.join("gateway.log"),
    )?;
    eprintln!("==> sdk: gateway on {address}, mock upstream on {mock_url}");
    let script = root.join("xtask/sdk/openai_sdk.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(format!("http://{address}/v1"))
        .status()
        .context("cannot run the sdk checks")?;
    drop(gateway);
    drop(mock);
    if !status.success() {
        bail!(
            "the openai sdk checks failed (gateway log: {})",
            work.join("gateway.log").display()
        );
    }
    Ok(())
}

/// A virtual environment with the pinned SDK; created or updated only when needed.
fn ensure_sdk(target: &Path) -> Result<PathBuf> {
    let venv = target.join("sdk-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        crate::step(
            target,
            "sdk venv",
            "python3",
            &["-m", "venv", &venv.display().to_string()],
        )?;
    }
    let check =
        format!("import openai, sys; sys.exit(0 if openai.__version__ == '{OPENAI_SDK}' else 1)");
    let installed = Command::new(&python)
        .args(["-c", &check])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let pip = venv.join("bin").join("pip");
        crate::step(
            target,
            "sdk install",
            &pip.display().to_string(),
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("openai=={OPENAI_SDK}"),
            ],
        )?;
    }
    Ok(python)
}

/// Read the gateway's log until it says where it listens (bounded), then keep copying the log
/// to `log` so the pipe never fills.
fn listening_address(stderr: impl Read + Send + 'static, log: &Path) -> Result<String> {
    let (found, address) = mpsc::channel();
    let mut file = std::fs::File::create(log)?;
    std::thread::spawn(move || {
        use std::io::Write;
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if !sent && let Some(rest) = line.split("listening on ").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                sent = true;
            }
        }
    });
    address
        .recv_timeout(Duration::from_secs(30))
        .context("the gateway did not report its address within 30 s")
}
