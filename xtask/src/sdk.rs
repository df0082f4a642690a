//! The official OpenAI Python SDK against the gateway binary.
//!
//! Installs the SDKs (pinned: OpenAI, and the Anthropic and google-genai SDKs that the client
//! checks of [`crate::clients`] drive) into a virtual environment under `target/sdk-venv` when
//! they are not there yet, builds the gateway and the mock upstream, starts both on ephemeral
//! loopback ports, and runs `xtask/sdk/openai_sdk.py` (which also reads `/metrics` with Prometheus'
//! own Python parsers, 0.0.4 and OpenMetrics). Both processes are stopped whatever
//! happens.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::process::{Running, first_line, listening_address, mock_gateway_setup};

/// The SDK versions the checks are written against (pip name, version), and Prometheus'
/// Python client, whose parsers read `/metrics`.
const SDKS: &[(&str, &str)] = &[
    ("openai", "3.51.0"),
    ("anthropic", "2.14.0"),
    ("google-genai", "3.6.1"),
    ("prometheus-client", "0.26.0"),
];

pub(crate) fn run(root: &Path) -> Result<()> {
    let target = crate::target_dir(root);
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
    let mock_url = first_line(&mut mock.0).context("the mock upstream did not print its url")?;

    let work = target.join("sdk");
    let config = mock_gateway_setup(
        &work,
        &mock_url,
        r#"[[routes]]
models = ["gpt-failover"]
chain = [{ backend = "mock", model = "mock-error-before-content" }, { backend = "mock", model = "gpt-4o" }]

[[routes]]
models = ["gpt-rescue"]
chain = [{ backend = "mock", model = "mock-cut-after-content" }, { backend = "mock", model = "gpt-4o" }]

[logging]
level = "warn,gateway=info"
"#,
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
        Some(&work.join("gateway.log")),
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

/// A virtual environment with the pinned SDKs; created or updated only when needed.
pub(crate) fn ensure_sdk(target: &Path) -> Result<PathBuf> {
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
    let versions: Vec<String> = SDKS
        .iter()
        .map(|(name, version)| format!("version('{name}') == '{version}'"))
        .collect();
    let check = format!(
        "import sys; from importlib.metadata import version; sys.exit(0 if {} else 1)",
        versions.join(" and ")
    );
    let installed = Command::new(&python)
        .args(["-c", &check])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let pip = venv.join("bin").join("pip");
        let pins: Vec<String> = SDKS
            .iter()
            .map(|(name, version)| format!("{name}=={version}"))
            .collect();
        let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
        args.extend(pins.iter().map(String::as_str));
        crate::step(target, "sdk install", &pip.display().to_string(), &args)?;
    }
    Ok(python)
}
