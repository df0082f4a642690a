//! `cargo xtask release-check` (also a step of `cargo xtask test`): what an operator installs.
//!
//! - The systemd unit: a small parser (sections, known keys, the required user, state directory
//!   and hardening, absolute `Exec*` paths); where `systemd-analyze` is on `PATH`, also
//!   `systemd-analyze verify` (any message fails) on a copy whose binary path points at the
//!   installed binary and whose `man:gateway(1)` is the generated page, and
//!   `systemd-analyze security --offline` under an exposure threshold.
//! - The container recipe: checked statically (no container engine is assumed); its
//!   `HEALTHCHECK` probe is run against the installed binary.
//! - `cargo install --path crates/gateway --locked --debug` into `target/release-check/root`,
//!   reusing the workspace's dev build; the installed binary is started in an empty directory
//!   on 127.0.0.1:0, must answer `GET /health` within 20 s, and must exit 0 on SIGTERM.
//! - `gateway completions bash|zsh|fish` and `gateway man` must print scripts and a page that
//!   name the binary and its subcommands; the bash script must pass `bash -n`, and the page
//!   `groff -ww` where groff is installed.

use std::{
    collections::BTreeSet,
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::process::{Running, listening_address};

const UNIT: &str = "contrib/systemd/gateway.service";
const CONTAINERFILE: &str = "contrib/Containerfile";
/// Where the unit expects the binary; the checks substitute the installed one.
const INSTALLED_BINARY: &str = "/usr/local/bin/gateway";
/// The port the container listens on, exposes and probes.
const CONTAINER_PORT: &str = "7861";
/// `systemd-analyze security` exposure, in tenths, above which the unit fails (it scores 1.4).
const EXPOSURE_THRESHOLD: &str = "20";
const HEALTH_DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn run(root: &Path) -> Result<()> {
    let unit =
        fs::read_to_string(root.join(UNIT)).with_context(|| format!("cannot read {UNIT}"))?;
    let containerfile = fs::read_to_string(root.join(CONTAINERFILE))
        .with_context(|| format!("cannot read {CONTAINERFILE}"))?;
    let toolchain = fs::read_to_string(root.join("rust-toolchain.toml"))?;
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .context("rust-toolchain.toml names no channel")?;
    let mut problems: Vec<String> = check_unit(&unit)
        .into_iter()
        .map(|p| format!("{UNIT}: {p}"))
        .collect();
    let recipe = check_containerfile(&containerfile, channel);
    if let Err(found) = &recipe {
        problems.extend(found.iter().map(|p| format!("{CONTAINERFILE}: {p}")));
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("release: {problem}");
        }
        bail!("{} problem(s) in the release files", problems.len());
    }
    let probe = recipe.unwrap_or_default();

    let work = crate::target_dir(root).join("release-check");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let binary = install(root, &work)?;
    let manpath = check_generated(&binary, &work)?;
    check_serving(&binary, &work, &probe)?;
    check_systemd_analyze(&unit, &binary, &manpath, &work)?;
    eprintln!("==> release: all release checks passed");
    Ok(())
}

/// `cargo install` into a temporary root with the workspace's target directory.
fn install(root: &Path, work: &Path) -> Result<PathBuf> {
    let install_root = work.join("root");
    eprintln!(
        "==> release: cargo install --path crates/gateway --locked --debug --root {}",
        install_root.display()
    );
    let status = Command::new("cargo")
        .args([
            "install",
            "--quiet",
            "--path",
            "crates/gateway",
            "--locked",
            "--debug",
        ])
        .arg("--root")
        .arg(&install_root)
        .env("CARGO_TARGET_DIR", crate::target_dir(root))
        .current_dir(root)
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install failed ({status})");
    }
    let binary = install_root.join("bin").join("gateway");
    if !binary.is_file() {
        bail!("cargo install did not produce {}", binary.display());
    }
    Ok(binary)
}

/// Completions and the man page; returns a `MANPATH` holding the generated page.
fn check_generated(binary: &Path, work: &Path) -> Result<PathBuf> {
    for shell in ["bash", "zsh", "fish"] {
        let script = generated(binary, &["completions", shell])?;
        for word in ["gateway", "serve", "completions", "accounts"] {
            if !script.contains(word) {
                bail!("`gateway completions {shell}` does not mention `{word}`");
            }
        }
        if shell == "bash" && on_path("bash") {
            let file = work.join("gateway.bash");
            fs::write(&file, &script)?;
            quiet_success(Command::new("bash").arg("-n").arg(&file), "bash -n")?;
        }
        eprintln!(
            "==> release: completions for {shell} ({} bytes)",
            script.len()
        );
    }
    let page = generated(binary, &["man"])?;
    for needle in [".TH gateway 1", ".SH SYNOPSIS", "completions", "serve"] {
        if !page.contains(needle) {
            bail!("`gateway man` does not contain `{needle}`");
        }
    }
    let manpath = work.join("man");
    let file = manpath.join("man1").join("gateway.1");
    fs::create_dir_all(manpath.join("man1"))?;
    fs::write(&file, &page)?;
    if on_path("groff") {
        quiet_success(
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&file),
            "groff -man -ww",
        )?;
    }
    eprintln!("==> release: man page ({} bytes)", page.len());
    Ok(manpath)
}

/// Run the binary with `args`; it must succeed and print something.
fn generated(binary: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run gateway {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`gateway {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)
        .with_context(|| format!("`gateway {}` printed invalid UTF-8", args.join(" ")))?;
    if text.trim().is_empty() {
        bail!("`gateway {}` printed nothing", args.join(" "));
    }
    Ok(text)
}

/// Start the installed binary in an empty directory, ask `/health` directly and through the
/// container's probe, then stop it with SIGTERM as systemd and container engines do.
fn check_serving(binary: &Path, work: &Path, probe: &[String]) -> Result<()> {
    let dir = work.join("run");
    fs::create_dir_all(&dir)?;
    let log = work.join("gateway.log");
    let mut gateway = Running(
        Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the installed gateway")?,
    );
    let address: SocketAddr = listening_address(
        gateway.0.stderr.take().context("gateway stderr")?,
        Some(&log),
    )?
    .parse()
    .context("the gateway logged an unparsable address")?;
    if !address.ip().is_loopback() {
        bail!("the gateway listens on {address}, not on loopback");
    }
    let started = Instant::now();
    let mut last_error = None;
    while started.elapsed() < HEALTH_DEADLINE {
        match get_health(address) {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(err) => last_error = Some(err),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(err) = last_error {
        bail!(
            "no healthy answer from GET /health on {address} within {HEALTH_DEADLINE:?}: {err:#} (log: {})",
            log.display()
        );
    }
    eprintln!("==> release: the installed binary answers /health on {address}");

    let port = address.port().to_string();
    let argv: Vec<String> = probe
        .iter()
        .map(|arg| arg.replace(CONTAINER_PORT, &port))
        .collect();
    let (program, args) = argv
        .split_first()
        .context("the HEALTHCHECK has no command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run the HEALTHCHECK probe `{program}`"))?;
    let status = wait_bounded(&mut child, Duration::from_secs(10), "the HEALTHCHECK probe")?;
    if !status.success() {
        bail!("the Containerfile's HEALTHCHECK probe fails against a healthy gateway ({status})");
    }
    eprintln!("==> release: the Containerfile's HEALTHCHECK probe passes");

    let sent = Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .context("cannot run kill")?;
    if !sent.success() {
        bail!("kill -TERM failed ({sent})");
    }
    let status = wait_bounded(&mut gateway.0, Duration::from_secs(20), "the gateway")?;
    if !status.success() {
        bail!("the gateway did not exit cleanly on SIGTERM ({status})");
    }
    Ok(())
}

fn get_health(address: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the response has no header end")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("status line `{status}`");
    }
    let body: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("body `{body}` is not JSON"))?;
    if body["status"] != "ok" {
        bail!("body {body}");
    }
    Ok(())
}

/// Wait for a child at most `limit`; kill it when it overstays.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> Result<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("{what} did not exit within {limit:?}")
}

/// `systemd-analyze verify` and `security` where systemd-analyze is installed.
fn check_systemd_analyze(unit: &str, binary: &Path, manpath: &Path, work: &Path) -> Result<()> {
    if !on_path("systemd-analyze") {
        eprintln!(
            "==> release: systemd-analyze is not on PATH; the unit was checked by the parser only"
        );
        return Ok(());
    }
    let binary = binary.display().to_string();
    if binary.contains(char::is_whitespace) {
        bail!("the install path {binary} contains whitespace, which the unit cannot quote here");
    }
    let dir = work.join("systemd");
    fs::create_dir_all(&dir)?;
    let file = dir.join("gateway.service");
    fs::write(&file, unit.replace(INSTALLED_BINARY, &binary))?;
    quiet_success(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&file)
            .env("MANPATH", manpath),
        "systemd-analyze verify",
    )?;
    eprintln!("==> release: systemd-analyze verify {UNIT}: no messages");
    let output = Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=true",
            &format!("--threshold={EXPOSURE_THRESHOLD}"),
        ])
        .arg(&file)
        .output()
        .context("cannot run systemd-analyze security")?;
    let report = String::from_utf8_lossy(&output.stdout);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("(no overall exposure line)")
        .trim();
    if !output.status.success() {
        bail!(
            "systemd-analyze security: exposure above {EXPOSURE_THRESHOLD} tenths: {overall}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!("==> release: systemd-analyze security: {overall}");
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Run a checker that must succeed and print nothing.
fn quiet_success(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || !said.trim().is_empty() {
        bail!("{what} ({}): {}", output.status, said.trim());
    }
    Ok(())
}

/// Keys the unit may use, per section; anything else is a typo or needs adding here.
const UNIT_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &[
            "Description",
            "Documentation",
            "After",
            "Wants",
            "Requires",
            "Before",
        ],
    ),
    (
        "Service",
        &[
            "Type",
            "User",
            "Group",
            "DynamicUser",
            "StateDirectory",
            "StateDirectoryMode",
            "WorkingDirectory",
            "Environment",
            "EnvironmentFile",
            "ExecStart",
            "ExecReload",
            "KillSignal",
            "TimeoutStopSec",
            "Restart",
            "RestartSec",
            "RestartForceExitStatus",
            "LimitNOFILE",
            "NoNewPrivileges",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "PrivateUsers",
            "PrivateMounts",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "RestrictAddressFamilies",
            "RestrictNamespaces",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "SystemCallErrorNumber",
            "UMask",
        ],
    ),
    ("Install", &["WantedBy", "RequiredBy", "Alias"]),
];

/// Keys that may appear more than once (their values accumulate).
const REPEATABLE: &[&str] = &[
    "After",
    "Wants",
    "Documentation",
    "Environment",
    "SystemCallFilter",
];

/// Settings the unit must have: (key, required value, or `None` for any non-empty value).
const REQUIRED: &[(&str, Option<&str>)] = &[
    ("ExecStart", None),
    ("ExecReload", Some("/bin/kill -HUP $MAINPID")),
    ("StateDirectory", Some("gateway")),
    ("WorkingDirectory", Some("/var/lib/gateway")),
    ("Restart", Some("on-failure")),
    ("NoNewPrivileges", Some("yes")),
    ("ProtectSystem", Some("strict")),
    ("ProtectHome", Some("yes")),
    ("PrivateTmp", Some("yes")),
    ("ProtectKernelTunables", Some("yes")),
    ("RestrictAddressFamilies", Some("AF_INET AF_INET6 AF_UNIX")),
    ("LockPersonality", Some("yes")),
    ("MemoryDenyWriteExecute", Some("yes")),
    ("CapabilityBoundingSet", Some("")),
    ("SystemCallFilter", Some("@system-service")),
    ("WantedBy", None),
];

/// Problems in a systemd unit: its shape, its keys, and what this project requires of it.
fn check_unit(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut section: Option<&str> = None;
    let mut seen_sections = Vec::new();
    // (key, value) in order, for the key checks below.
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut seen_keys = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.ends_with('\\') {
            problems.push(format!(
                "line {number}: continuation lines are not supported by this check"
            ));
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            match UNIT_KEYS.iter().find(|(s, _)| *s == name) {
                Some((s, _)) if !seen_sections.contains(s) => {
                    seen_sections.push(*s);
                    section = Some(*s);
                }
                Some(_) => problems.push(format!("line {number}: section [{name}] repeated")),
                None => problems.push(format!("line {number}: unknown section [{name}]")),
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            problems.push(format!("line {number}: not `Key=Value`: {line}"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(current) = section else {
            problems.push(format!("line {number}: `{key}` before any section"));
            continue;
        };
        let known = UNIT_KEYS
            .iter()
            .find(|(s, _)| *s == current)
            .is_some_and(|(_, keys)| keys.contains(&key));
        if !known {
            problems.push(format!("line {number}: unknown key `{key}` in [{current}]"));
        }
        if !seen_keys.insert(key.to_owned()) && !REPEATABLE.contains(&key) {
            problems.push(format!("line {number}: `{key}` set twice"));
        }
        if key.starts_with("Exec") {
            let program = value.trim_start_matches(['-', '@', ':', '+', '!']);
            if !program.starts_with('/') {
                problems.push(format!(
                    "line {number}: `{key}` must start with an absolute path"
                ));
            }
        }
        settings.push((key.to_owned(), value.to_owned()));
    }
    for name in ["Unit", "Service", "Install"] {
        if !seen_sections.contains(&name) {
            problems.push(format!("no [{name}] section"));
        }
    }
    let value_of = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    for (key, wanted) in REQUIRED {
        match (value_of(key), wanted) {
            (None, _) => problems.push(format!("`{key}` is missing")),
            (Some(""), None) => problems.push(format!("`{key}` is empty")),
            (Some(value), Some(wanted)) if value != *wanted => {
                problems.push(format!("`{key}={value}`, expected `{key}={wanted}`"));
            }
            _ => {}
        }
    }
    let dedicated = value_of("DynamicUser") == Some("yes")
        || value_of("User").is_some_and(|user| !user.is_empty() && user != "root" && user != "0");
    if !dedicated {
        problems.push("no dedicated user: set `DynamicUser=yes` or a non-root `User=`".to_owned());
    }
    if let Some(exec) = value_of("ExecStart") {
        let mut words = exec.split_whitespace();
        if words.next() != Some(INSTALLED_BINARY) {
            problems.push(format!("`ExecStart` must run {INSTALLED_BINARY}"));
        }
        if words.next() != Some("serve") {
            problems.push("`ExecStart` must run `gateway serve`".to_owned());
        }
        if !exec.contains("--config /etc/gateway/gateway.toml") {
            problems.push("`ExecStart` must pass --config /etc/gateway/gateway.toml".to_owned());
        }
    }
    problems
}

/// One stage of a Containerfile: its base image, its name, its instructions (keyword in upper
/// case, arguments) with continuation lines joined and comments dropped.
#[derive(Debug, Default)]
struct Stage {
    image: String,
    name: Option<String>,
    instructions: Vec<(String, String)>,
}

fn parse_containerfile(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Comment and blank lines are dropped, also inside a continued instruction.
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            pending.push_str(start);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                image: words.first().copied().unwrap_or_default().to_owned(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, args));
        }
    }
    stages
}

/// Check the container recipe; on success return the `HEALTHCHECK` command's argv.
fn check_containerfile(text: &str, channel: &str) -> Result<Vec<String>, Vec<String>> {
    let stages = parse_containerfile(text);
    let mut problems = Vec::new();
    let [builder, .., runtime] = stages.as_slice() else {
        return Err(vec![format!(
            "needs a builder and a runtime stage, found {} FROM",
            stages.len()
        )]);
    };
    let args_of = |stage: &Stage, keyword: &str| -> Vec<String> {
        stage
            .instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .collect()
    };
    let builder_tag = builder.image.strip_prefix("rust:").unwrap_or_default();
    if !builder_tag.starts_with(channel) {
        problems.push(format!(
            "the builder is `{}`, not the pinned toolchain rust:{channel}",
            builder.image
        ));
    }
    let Some(builder_name) = &builder.name else {
        return Err(vec!["the builder stage has no `AS name`".to_owned()]);
    };
    if !args_of(builder, "RUN")
        .iter()
        .any(|run| run.contains("cargo build --release --locked -p gateway"))
    {
        problems
            .push("the builder does not run `cargo build --release --locked -p gateway`".into());
    }
    if runtime.image != "debian:bookworm-slim" {
        problems.push(format!(
            "the runtime image is `{}`, not debian:bookworm-slim",
            runtime.image
        ));
    }
    if !builder_tag.ends_with("-bookworm") {
        problems.push("the builder is not on bookworm, the runtime's glibc".into());
    }
    if !args_of(runtime, "COPY").iter().any(|copy| {
        copy.starts_with(&format!("--from={builder_name} "))
            && copy.contains("/target/release/gateway")
            && copy.ends_with(INSTALLED_BINARY)
    }) {
        problems.push(format!(
            "the runtime stage does not copy the release binary from `{builder_name}` to {INSTALLED_BINARY}"
        ));
    }
    match args_of(runtime, "USER").last() {
        None => problems.push("the runtime stage has no USER (it would run as root)".into()),
        Some(user) => {
            let name = user.split(':').next().unwrap_or_default();
            if name == "root" || name == "0" || name.is_empty() {
                problems.push(format!("the runtime stage runs as `{user}`"));
            }
        }
    }
    if args_of(runtime, "WORKDIR").last().map(String::as_str) != Some("/data") {
        problems.push("the runtime stage's WORKDIR is not /data".into());
    }
    if !args_of(runtime, "VOLUME")
        .iter()
        .any(|v| v == "/data" || v.contains("\"/data\""))
    {
        problems.push("no `VOLUME /data`".into());
    }
    if !args_of(runtime, "EXPOSE")
        .iter()
        .any(|e| e == CONTAINER_PORT)
    {
        problems.push(format!("no `EXPOSE {CONTAINER_PORT}`"));
    }
    let launch = [args_of(runtime, "ENTRYPOINT"), args_of(runtime, "CMD")].concat();
    let launch = launch.join(" ");
    if !launch.contains("/usr/local/bin/gateway") || !launch.contains("\"serve\"") {
        problems.push("ENTRYPOINT and CMD do not run `gateway serve`".into());
    }
    if !launch.contains(&format!("\"--listen\", \"0.0.0.0:{CONTAINER_PORT}\"")) {
        problems.push(format!(
            "CMD does not pass `--listen 0.0.0.0:{CONTAINER_PORT}`"
        ));
    }
    let probe = match args_of(runtime, "HEALTHCHECK").last() {
        None => {
            problems.push("no HEALTHCHECK in the runtime stage".into());
            Vec::new()
        }
        Some(check) => match check.split_once("CMD ") {
            None => {
                problems.push("the HEALTHCHECK has no `CMD`".into());
                Vec::new()
            }
            Some((_, command)) => match serde_json::from_str::<Vec<String>>(command.trim()) {
                Ok(argv) => {
                    let joined = argv.join(" ");
                    if !joined.contains("GET /health HTTP/") || !joined.contains(CONTAINER_PORT) {
                        problems.push(format!(
                            "the HEALTHCHECK does not ask /health on port {CONTAINER_PORT}"
                        ));
                    }
                    argv
                }
                Err(err) => {
                    problems.push(format!(
                        "the HEALTHCHECK CMD is not an exec-form array: {err}"
                    ));
                    Vec::new()
                }
            },
        },
    };
    if problems.is_empty() {
        Ok(probe)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED_UNIT: &str = include_str!("../../contrib/systemd/gateway.service");
    const SHIPPED_CONTAINERFILE: &str = include_str!("../../contrib/Containerfile");

    #[test]
    fn the_shipped_unit_passes() {
        assert_eq!(check_unit(SHIPPED_UNIT), Vec::<String>::new());
    }

    #[test]
    fn broken_units_are_rejected() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "ProtectSystem=strict",
                "ProtectSystem=full",
                "expected `ProtectSystem=strict`",
            ),
            ("NoNewPrivileges=yes\n", "", "`NoNewPrivileges` is missing"),
            ("User=gateway", "User=root", "no dedicated user"),
            (
                "ExecStart=/usr/local/bin/gateway",
                "ExecStart=gateway",
                "must start with an absolute path",
            ),
            (
                "LockPersonality=yes",
                "LockPersonalty=yes",
                "unknown key `LockPersonalty`",
            ),
            ("[Install]", "[Instal]", "unknown section [Instal]"),
            (
                "Restart=on-failure",
                "Restart=on-failure\nRestart=always",
                "`Restart` set twice",
            ),
            ("UMask=0077", "UMask 0077", "not `Key=Value`"),
        ];
        for (from, to, expected) in cases {
            assert!(
                SHIPPED_UNIT.contains(from),
                "the unit no longer has `{from}`"
            );
            let broken = SHIPPED_UNIT.replacen(from, to, 1);
            let problems = check_unit(&broken);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{from} -> {to}: expected `{expected}` in {problems:?}"
            );
        }
    }

    #[test]
    fn the_shipped_containerfile_passes() {
        let probe = check_containerfile(SHIPPED_CONTAINERFILE, "1.95.0").unwrap();
        assert_eq!(probe.first().map(String::as_str), Some("bash"));
    }

    #[test]
    fn broken_containerfiles_are_rejected() {
        let cases: &[(&str, &str, &str)] = &[
            ("USER 10001:10001", "USER root", "runs as `root`"),
            ("USER 10001:10001\n", "", "has no USER"),
            ("EXPOSE 7861", "EXPOSE 8080", "no `EXPOSE 7861`"),
            ("VOLUME /data", "VOLUME /srv", "no `VOLUME /data`"),
            ("GET /health ", "GET /healthz ", "does not ask /health"),
            (
                "\"0.0.0.0:7861\"",
                "\"127.0.0.1:7861\"",
                "--listen 0.0.0.0:7861",
            ),
            (
                "--locked -p gateway",
                "-p gateway",
                "cargo build --release --locked",
            ),
            (
                "rust:1.95.0-bookworm",
                "rust:1.94.0-bookworm",
                "not the pinned toolchain",
            ),
            (
                "rust:1.95.0-bookworm",
                "rust:1.95.0-trixie",
                "not on bookworm",
            ),
            (
                "FROM debian:bookworm-slim",
                "FROM alpine:3",
                "not debian:bookworm-slim",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(
                SHIPPED_CONTAINERFILE.contains(from),
                "the recipe no longer has `{from}`"
            );
            let broken = SHIPPED_CONTAINERFILE.replacen(from, to, 1);
            let problems = check_containerfile(&broken, "1.95.0").unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{from} -> {to}: expected `{expected}` in {problems:?}"
            );
        }
        let single = "FROM debian:bookworm-slim\nUSER 1\n";
        assert!(check_containerfile(single, "1.95.0").is_err());
    }
}
