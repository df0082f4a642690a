//! Project automation, run as `cargo xtask <command>`.
//!
//! - `test`: format check, clippy with warnings denied, the whole test suite, the doc tests,
//!   `cargo doc` with warnings denied, the official SDKs and CLIs against the gateway binary, the
//!   release checks, the instruction-count guard (`bench --check`, on a release build), then tidy
//!   (which also runs as a test).
//! - `release-check`: the release artefacts alone (see [`release`]).
//! - `tidy`: the repository's structural checks alone (see [`tidy`]).
//! - `bench [--quick] [--check]`: the benchmarks (see [`mod@bench`]).
//!
//! Every step runs in the workspace root; the first failure stops the run and is named.

#![expect(clippy::print_stderr, reason = "xtask reports progress on stderr")]

mod bench;
mod clients;
mod process;
mod release;
mod sdk;
mod tidy;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("tidy") => tidy::run(&root),
        Some("release-check") => release::run(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("clients") => clients::run(&root, &args[1..]),
        Some("sdk") => sdk::run(&root),
        _ => {
            bail!(
                "usage: cargo xtask <test|tidy|release-check|bench|clients|sdk>\n  test    fmt, clippy, tests, the OpenAI SDK, release checks, tidy\n  clients [NAME...]   the real SDKs, CLIs and the dashboard in a browser\n  sdk     the OpenAI SDK and the metrics parsers\n  tidy    structural checks\n  release-check   the systemd unit, the Containerfile, cargo install, completions, man page\n  bench   [--quick] [--check [--record-baseline]] benchmarks (docs/benchmarks.md)"
            )
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask lives one level below the workspace root")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the root, or anywhere),
/// else `target/` in the workspace. Everything xtask builds or installs goes below it.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    step(root, "format", "cargo", &["fmt", "--all", "--check"])?;
    step(
        root,
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut args: Vec<&str> = if has_nextest(root) {
        vec!["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        vec!["test", "--workspace", "--no-fail-fast"]
    };
    args.extend(extra.iter().map(String::as_str));
    // The scale-out tests run two replicas against a real Redis.
    process::debian("/usr/bin/redis-server", "redis-server").context("step `tests`")?;
    step(root, "tests", "cargo", &args)?;
    if args.first() == Some(&"nextest") {
        // nextest does not run doc tests: every crate's examples run here.
        step(
            root,
            "doc tests",
            "cargo",
            &["test", "--doc", "--workspace", "--quiet"],
        )?;
    }
    eprintln!("==> docs: cargo doc --no-deps --workspace (warnings denied)");
    let status = Command::new("cargo")
        .args(["doc", "--no-deps", "--workspace", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(root)
        .status()
        .context("step `docs`: cannot run cargo")?;
    if !status.success() {
        bail!("step `docs` failed ({status})");
    }
    eprintln!("==> sdk: the official OpenAI Python SDK against the gateway binary");
    sdk::run(root).context("step `sdk` failed")?;
    clients::run(root, clients::IN_TEST).context("step `clients` failed")?;
    eprintln!("==> release: the systemd unit, the Containerfile, cargo install, completions, man");
    release::run(root).context("step `release` failed")?;
    eprintln!(
        "==> bench check: instructions per request under callgrind against xtask/bench-baseline.json"
    );
    bench::run(root, &["--check".to_owned()]).context("step `bench check` failed")?;
    eprintln!("==> tidy");
    tidy::run(root).context("step `tidy` failed")?;
    eprintln!("==> all steps passed");
    Ok(())
}

fn has_nextest(root: &Path) -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .current_dir(root)
        .output()
        .is_ok_and(|out| out.status.success())
}

pub(crate) fn step(root: &Path, name: &str, program: &str, args: &[&str]) -> Result<()> {
    eprintln!("==> {name}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("step `{name}`: cannot run {program}"))?;
    if !status.success() {
        bail!("step `{name}` failed ({status})");
    }
    Ok(())
}
