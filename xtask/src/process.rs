//! Child processes for the checks that drive binaries (stopped when dropped, asked where they
//! listen), and the gateway setup in front of the mock upstream that those checks share.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::Child,
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result};

/// `binary`, installing Debian's `package` with apt-get when it is missing (the package lists
/// are refreshed once if the first try fails).
pub(crate) fn debian(binary: &'static str, package: &str) -> Result<&'static Path> {
    let path = Path::new(binary);
    if path.exists() {
        return Ok(path);
    }
    eprintln!("==> installing Debian's {package}");
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = std::process::Command::new("apt-get")
            .args(["update", "-qq"])
            .status();
        install();
    }
    anyhow::ensure!(
        path.exists(),
        "apt-get install {package} did not provide {binary}"
    );
    Ok(path)
}

/// A child process that is killed and reaped when dropped, whatever happens.
pub(crate) struct Running(pub(crate) Child);

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line a child prints on stdout (the mock and the bare proxy print their address).
pub(crate) fn first_line(child: &mut Child) -> Result<String> {
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .context("the child's stdout is not piped")?,
    )
    .read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// Read a gateway's log until it says `listening on ADDR` (bounded), keep draining it so the
/// pipe never fills, and copy it to `log` when given.
pub(crate) fn listening_address(
    stderr: impl Read + Send + 'static,
    log: Option<&Path>,
) -> Result<String> {
    let (found, address) = mpsc::channel();
    let mut file = log.map(std::fs::File::create).transpose()?;
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if !sent && let Some(rest) = line.split("listening on ").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                sent = true;
            }
        }
    });
    address
        .recv_timeout(Duration::from_secs(30))
        .context("no `listening on` line within 30 s")
}

/// Write, under `dir`, one usable Antigravity account and a gateway configuration in front of
/// the mock at `mock_url`: `gemini-*` through the in-process Antigravity backend, `gpt-*`
/// through an OpenAI-compatible backend that forwards the mock's `x-mock-*` test headers.
/// `extra` is appended (routes, limits, logging). Returns the configuration's path.
pub(crate) fn mock_gateway_setup(
    dir: &Path,
    mock_url: &str,
    extra: &str,
) -> Result<std::path::PathBuf> {
    let accounts = dir.join("accounts");
    std::fs::create_dir_all(&accounts)?;
    std::fs::write(
        accounts.join("check@example.com.json"),
        r#"{"client_id":"cid","client_secret":"cs","refresh_token":"1//check","access_token":"ya29.check",
            "expiry":"2999-01-01T00:00:00Z","project_id":"check-project","email":"check@example.com"}"#,
    )?;
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"[antigravity]
credentials_dir = "{accounts}"
base_urls = ["{mock_url}"]
max_concurrency_per_account = 100000

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

{extra}"#,
            accounts = accounts.display()
        ),
    )?;
    Ok(config)
}
