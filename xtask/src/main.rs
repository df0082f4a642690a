//! Project automation, run as `cargo xtask <command>`.
//!
//! - `test`: format check, clippy with warnings denied, the whole test suite, the official
//!   OpenAI Python SDK against the gateway binary, the release checks, then tidy.
//! - `release-check`: the release artefacts alone (see [`release`]).
//! - `tidy`: the repository's structural checks alone (see [`tidy`]).
//! - `bench [--quick] [--check]`: the benchmarks (see [`bench`]).
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
        _ => {
            bail!(
                "usage: cargo xtask <test|tidy|release-check|bench>\n  test    fmt, clippy, tests, the OpenAI SDK, release checks, tidy\n  tidy    structural checks\n  release-check   the systemd unit, the Containerfile, cargo install, completions, man page\n  bench   [--quick] [--check [--record-baseline]] benchmarks (docs/benchmarks.md)"
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
    step(root, "tests", "cargo", &args)?;
    eprintln!("==> sdk: the official OpenAI Python SDK against the gateway binary");
    sdk::run(root).context("step `sdk` failed")?;
    clients::run(root, clients::IN_TEST).context("step `clients` failed")?;
    eprintln!("==> release: the systemd unit, the Containerfile, cargo install, completions, man");
    release::run(root).context("step `release` failed")?;
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
