//! `cargo xtask bench [--quick] [--check]`: the benchmark harness (method and results in
//! `docs/benchmarks.md`).
//!
//! Builds release binaries, starts the mock upstream and each target pinned as the method says
//! (load client and mock on core 0, the target on core 1), runs the scenarios interleaved over
//! rounds, reports medians of round medians as differences and ratios against the floor (T0,
//! the mock itself) measured in the same run, writes `docs/benchmarks.md` and raw JSON under
//! `target/bench/`. `--check` runs only B8 (instructions per request under callgrind) and
//! compares it with `xtask/bench-baseline.json` (`--check --record-baseline` writes it).
//!
//! Besides B1-B9: B10, the translated paths with realistic requests (`bench/translated.rs`,
//! `bench/requests.rs`); B11, pass-through against a fast upstream with CPU per request and core
//! shares (`bench/fast.rs`); and the pass-through figures side by side with a reference run
//! (`bench/reference.rs`, `xtask/bench/reference.json`; `--record-reference` replaces it).
//! `--no-build` uses the binaries already in `target/release`; `--only B1,B9,B10,B11` runs some
//! scenarios (B1 stands for B1, B2 and B4) and leaves `docs/benchmarks.md` alone.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::process::{Running, first_line, listening_address, mock_gateway_setup};
use serde_json::{Value, json};

mod fast;
mod plot;
mod reference;
mod requests;
mod translated;

const CLIENT_CORE: &str = "0";
const TARGET_CORE: &str = "1";
/// B8 may grow this much over the stored baseline before `--check` fails.
const B8_TOLERANCE: f64 = 0.10;

/// Start `program` pinned to `core`; return it and its address: the first line it prints on
/// stdout, or, for a gateway (`logs_address`), the address of its `listening on` log line.
fn start(
    core: &str,
    program: &Path,
    args: &[&str],
    logs_address: bool,
) -> Result<(Running, String)> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", core])
        .arg(program)
        .args(args)
        .env_remove("RUST_LOG");
    if logs_address {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let line = if logs_address {
        listening_address(child.stderr.take().context("stderr")?, None)?
    } else {
        first_line(&mut child)?
    };
    Ok((Running(child), line))
}

/// CPU time of a process and its children (nginx serves from a worker child), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    own_cpu_ticks(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .map(own_cpu_ticks)
            .sum::<u64>()
}

fn own_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let take = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    take(11) + take(12)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

struct Target {
    id: &'static str,
    name: String,
    base: String,
    model: &'static str,
    pid: Option<u32>,
    streams: bool,
    /// A client key sent as `?key=` (the gateway never forwards it).
    key: Option<&'static str>,
}

impl Target {
    fn url(&self) -> String {
        match self.key {
            Some(key) => format!("{}/v1/chat/completions?key={key}", self.base),
            None => format!("{}/v1/chat/completions", self.base),
        }
    }
}

/// A `redis-server` on a free loopback port of the client core (Debian's, installed when
/// missing), stopped when dropped.
struct Redis {
    port: u16,
    _process: Running,
}

impl Redis {
    fn start() -> Result<Self> {
        let server = crate::process::debian("/usr/bin/redis-server", "redis-server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let process = Running(
            Command::new("taskset")
                .args(["-c", CLIENT_CORE])
                .arg(server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start redis-server")?,
        );
        wait_for_port(port)?;
        Ok(Self {
            port,
            _process: process,
        })
    }
}

/// A key with a request limit no run reaches: its admission is checked on every request.
const LIMITED_KEY: &str = "[[keys]]\nname = \"bench\"\nkey = \"bench-key\"\nrpm = 1000000000\n";

fn load(bin: &Path, args: &[String]) -> Result<Value> {
    let out = Command::new("taskset")
        .args(["-c", CLIENT_CORE])
        .arg(bin.join("load"))
        .args(args)
        .output()
        .context("cannot run the load client")?;
    if !out.status.success() {
        bail!(
            "load client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`): the status line's code
/// and the body. For the mock's control endpoint and fixed answers, which are never chunked.
fn http_once(base: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream =
        std::net::TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("no end of the response head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_owned()))
}

/// Make the mock forget the requests it recorded (it keeps every one, bodies included).
fn mock_clear(mock_url: &str) -> Result<()> {
    http_once(mock_url, "DELETE", "/_mock/requests", "")?;
    Ok(())
}

/// The requests the mock recorded, as JSON.
fn mock_recorded(mock_url: &str) -> Result<Value> {
    let (_, body) = http_once(mock_url, "GET", "/_mock/requests", "")?;
    Ok(serde_json::from_str(&body)?)
}

fn chat_body(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
        .to_string()
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--plots") {
        // Draw the pictures again from the last run's summary.
        let path = crate::target_dir(root).join("bench/summary.json");
        let summary: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("no {}", path.display()))?,
        )?;
        plot::write(root, &summary)?;
        eprintln!("==> drew docs/bench/*.svg from {}", path.display());
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let check = args.iter().any(|a| a == "--check");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| {
            args.get(i + 1)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_uppercase())
                        .collect()
                })
                .context("--only needs a list such as B10,B11")
        })
        .transpose()?;
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|s| !["B1", "B9", "B10", "B11"].contains(&s.as_str()))
    {
        bail!("--only takes B1 (with B2, B4), B9, B10, B11; not {unknown}");
    }
    let runs = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == id));
    let classic = runs("B1");
    if !args.iter().any(|a| a == "--no-build") {
        crate::step(
            root,
            "build release",
            "cargo",
            &[
                "build",
                "--release",
                "--quiet",
                "-p",
                "gateway",
                "-p",
                "test-support",
                "-p",
                "bench",
                "--bins",
            ],
        )?;
    }
    let reference = reference::stored(root);
    let bin = crate::target_dir(root).join("release");
    let out_dir = crate::target_dir(root).join("bench");
    std::fs::create_dir_all(&out_dir)?;
    if check {
        let record = args.iter().any(|a| a == "--record-baseline");
        return b8_check(root, &bin, &out_dir, record);
    }
    let rounds = if quick { 3 } else { 5 };
    let (mock, mock_url) = start(CLIENT_CORE, &bin.join("mock-upstream"), &[], false)?;
    let config = mock_gateway_setup(&out_dir, &mock_url, BENCH_EXTRA)?;
    let config_arg = config.display().to_string();
    let (gateway, gateway_addr) = start(
        TARGET_CORE,
        &bin.join("gateway"),
        &["--config", &config_arg, "serve", "--listen", "127.0.0.1:0"],
        true,
    )?;
    // The same gateway without its usage database: the price of usage accounting (tokens
    // still reach the metrics in both).
    let plain_config = mock_gateway_setup(
        &out_dir.join("no-usage"),
        &mock_url,
        &format!("{BENCH_EXTRA}\n[state]\nusage_db = \"\"\n"),
    )?;
    let plain_arg = plain_config.display().to_string();
    let (plain, plain_addr) = start(
        TARGET_CORE,
        &bin.join("gateway"),
        &["--config", &plain_arg, "serve", "--listen", "127.0.0.1:0"],
        true,
    )?;
    // The price of Redis as the shared state: the same gateway with a key whose rate window is
    // checked on every request, once on local state (T8), once through Redis (T7).
    let redis = Redis::start()?;
    let keyed = |dir: &str, state: String| -> Result<(Running, String)> {
        let config = mock_gateway_setup(
            &out_dir.join(dir),
            &mock_url,
            &format!("{BENCH_EXTRA}\n{LIMITED_KEY}\n{state}"),
        )?;
        let arg = config.display().to_string();
        start(
            TARGET_CORE,
            &bin.join("gateway"),
            &["--config", &arg, "serve", "--listen", "127.0.0.1:0"],
            true,
        )
    };
    let (shared, shared_addr) = keyed(
        "redis",
        format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\nprefix = \"bench\"\nusage_db = \"\"\n",
            redis.port
        ),
    )?;
    let (alone, alone_addr) = keyed("keyed", "[state]\nusage_db = \"\"\n".to_owned())?;
    let (bare, bare_addr) = start(
        TARGET_CORE,
        &bin.join("bare-proxy"),
        &["--upstream", &mock_url],
        false,
    )?;
    let mut targets = vec![
        Target {
            id: "T0",
            name: "mock upstream (floor)".into(),
            base: mock_url.clone(),
            model: "gpt-4o",
            pid: Some(mock.pid()),
            streams: true,
            key: None,
        },
        Target {
            id: "T1",
            name: "gateway, pass-through".into(),
            base: format!("http://{gateway_addr}"),
            model: "gpt-4o",
            pid: Some(gateway.pid()),
            streams: true,
            key: None,
        },
        Target {
            id: "T2",
            name: "gateway, in-process Antigravity".into(),
            base: format!("http://{gateway_addr}"),
            model: "gemini-3-pro",
            pid: Some(gateway.pid()),
            streams: false,
            key: None,
        },
        Target {
            id: "T3",
            name: "bare hyper proxy".into(),
            base: format!("http://{bare_addr}"),
            model: "gpt-4o",
            pid: Some(bare.pid()),
            streams: true,
            key: None,
        },
        Target {
            id: "T6",
            name: "gateway, pass-through, no usage database".into(),
            base: format!("http://{plain_addr}"),
            model: "gpt-4o",
            pid: Some(plain.pid()),
            streams: false,
            key: None,
        },
        Target {
            id: "T7",
            name: "gateway, pass-through, rate-limited key, Redis state".into(),
            base: format!("http://{shared_addr}"),
            model: "gpt-4o",
            pid: Some(shared.pid()),
            streams: false,
            key: Some("bench-key"),
        },
        Target {
            id: "T8",
            name: "gateway, pass-through, rate-limited key, local state".into(),
            base: format!("http://{alone_addr}"),
            model: "gpt-4o",
            pid: Some(alone.pid()),
            streams: false,
            key: Some("bench-key"),
        },
    ];
    let mut peers_status = BTreeMap::new();
    let mut _peers: Vec<Running> = Vec::new();
    if quick || !classic {
        peers_status.insert("T4 nginx", "not run (--quick)".to_owned());
        peers_status.insert("T5 LiteLLM", "not run (--quick)".to_owned());
    } else {
        match start_nginx(&out_dir, &mock_url) {
            Ok((process, base)) => {
                targets.push(Target {
                    id: "T4",
                    name: "nginx".into(),
                    base,
                    model: "gpt-4o",
                    pid: Some(process.pid()),
                    streams: true,
                    key: None,
                });
                _peers.push(process);
                peers_status.insert("T4 nginx", "measured".to_owned());
            }
            Err(err) => {
                peers_status.insert("T4 nginx", format!("not installed: {err:#}"));
            }
        }
        match start_litellm(root, &out_dir, &mock_url) {
            Ok((process, base)) => {
                targets.push(Target {
                    id: "T5",
                    name: "LiteLLM proxy".into(),
                    base,
                    model: "gpt-4o",
                    pid: Some(process.pid()),
                    streams: false,
                    key: None,
                });
                _peers.push(process);
                peers_status.insert("T5 LiteLLM", "measured".to_owned());
            }
            Err(err) => {
                peers_status.insert("T5 LiteLLM", format!("not installed: {err:#}"));
            }
        }
    }
    let tck = ticks_per_second();
    let mut raw = Vec::new();
    let mut b1: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut b2: B2 = BTreeMap::new();
    let mut b4: BTreeMap<&str, B4> = BTreeMap::new();
    let sequential = if quick { 1000 } else { 2000 };
    let window = if quick { 2000 } else { 5000 };
    let mut translated = if runs("B10") {
        Some(translated::Translated::start(
            &bin, &out_dir, &mock_url, quick,
        )?)
    } else {
        None
    };
    let mut fast = if runs("B11") {
        match fast::Fast::start(&bin, &out_dir, &mock_url, quick) {
            Ok(fast) => {
                peers_status.insert(
                    "B11 nginx static upstream and proxy",
                    format!(
                        "measured{}",
                        if fast.has_wrk() {
                            ", with wrk"
                        } else {
                            "; wrk not installed"
                        }
                    ),
                );
                Some(fast)
            }
            Err(err) => {
                peers_status.insert(
                    "B11 nginx static upstream and proxy",
                    format!("not run: {err:#}"),
                );
                None
            }
        }
    } else {
        None
    };
    // Warm every target up once.
    for target in targets.iter().filter(|_| classic) {
        load(
            &bin,
            &[
                "--url".into(),
                target.url(),
                "--mode".into(),
                "seq".into(),
                "--requests".into(),
                "200".into(),
                "--body".into(),
                chat_body(target.model, false),
            ],
        )?;
    }
    for round in 0..rounds {
        eprintln!("==> bench round {}/{rounds}", round + 1);
        for target in targets.iter().filter(|_| classic) {
            let url = target.url();
            let r = load(
                &bin,
                &[
                    "--url".into(),
                    url.clone(),
                    "--mode".into(),
                    "seq".into(),
                    "--requests".into(),
                    sequential.to_string(),
                    "--body".into(),
                    chat_body(target.model, false),
                ],
            )?;
            mock_clear(&mock_url)?;
            raw.push(json!({"scenario": "B1", "target": target.id, "round": round, "result": r}));
            let entry = b1.entry(target.id).or_default();
            entry
                .0
                .push(r["latency_us"]["p50"].as_f64().unwrap_or(f64::NAN));
            entry
                .1
                .push(r["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN));
            for connections in [16usize, 64] {
                let before = target.pid.map(cpu_ticks).unwrap_or(0);
                let r = load(
                    &bin,
                    &[
                        "--url".into(),
                        url.clone(),
                        "--mode".into(),
                        "closed".into(),
                        "--connections".into(),
                        connections.to_string(),
                        "--duration-ms".into(),
                        window.to_string(),
                        "--body".into(),
                        chat_body(target.model, false),
                    ],
                )?;
                let ticks = target
                    .pid
                    .map(cpu_ticks)
                    .unwrap_or(0)
                    .saturating_sub(before);
                mock_clear(&mock_url)?;
                let requests = r["requests"].as_f64().unwrap_or(0.0).max(1.0);
                let cpu_us = ticks as f64 / tck * 1e6 / requests;
                raw.push(json!({"scenario": "B2", "target": target.id, "connections": connections, "round": round, "cpu_us_per_request": cpu_us, "result": r}));
                let entry = b2.entry((target.id, connections)).or_default();
                entry.0.push(r["rps"].as_f64().unwrap_or(0.0));
                entry.1.push(cpu_us);
            }
            if target.streams {
                let r = load(
                    &bin,
                    &[
                        "--url".into(),
                        url.clone(),
                        "--mode".into(),
                        "closed".into(),
                        "--connections".into(),
                        "32".into(),
                        "--duration-ms".into(),
                        window.to_string(),
                        "--body".into(),
                        chat_body(target.model, true),
                        "--header".into(),
                        "x-mock-chunks: 20".into(),
                        "--header".into(),
                        "x-mock-interval-ms: 10".into(),
                    ],
                )?;
                mock_clear(&mock_url)?;
                raw.push(
                    json!({"scenario": "B4", "target": target.id, "round": round, "result": r}),
                );
                let entry = b4.entry(target.id).or_insert_with(|| B4 {
                    identical: true,
                    ..B4::default()
                });
                let get = |k: &str, q: &str| r[k][q].as_f64().unwrap_or(f64::NAN);
                entry.ttfb50.push(get("ttfb_us", "p50"));
                entry.ttfb99.push(get("ttfb_us", "p99"));
                entry.ttfc50.push(get("ttfc_us", "p50"));
                entry.ttfc99.push(get("ttfc_us", "p99"));
                entry.gap99.push(get("gap_us", "p99"));
                entry.identical &=
                    r["identical"].as_bool().unwrap_or(false) && r["errors"].as_u64() == Some(0);
            }
        }
        if let Some(translated) = translated.as_mut() {
            translated.round(&bin, round, &mut raw)?;
        }
        if let Some(fast) = fast.as_mut() {
            fast.round(&bin, round, &mut raw)?;
        }
    }
    let b10 = translated
        .as_ref()
        .map_or(Value::Null, translated::Translated::summary);
    let b11 = fast.as_ref().map_or(Value::Null, fast::Fast::summary);
    drop(translated);
    drop(fast);
    let b9 = if runs("B9") {
        b9(&bin, &config_arg, &out_dir)?
    } else {
        Value::Null
    };
    let full = if quick || !classic {
        Value::Null
    } else {
        full_scenarios(&bin, &targets, &mut raw)?
    };
    let b8 = if quick || only.is_some() {
        Value::Null
    } else {
        b8(&bin, &out_dir, &mock_url).unwrap_or_else(|e| json!({"error": format!("{e:#}")}))
    };
    drop(bare);
    drop(gateway);
    drop(mock);

    let report = Report {
        targets: &targets,
        b1: &b1,
        b2: &b2,
        b4: &b4,
        b9: &b9,
        b10: &b10,
        b11: &b11,
        full: &full,
        b8: &b8,
        reference: &reference,
        peers: &peers_status,
        rounds,
        quick,
    };
    let summary = report.summary();
    std::fs::write(out_dir.join("raw.json"), serde_json::to_vec_pretty(&raw)?)?;
    std::fs::write(
        out_dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    eprintln!("{}", report.headline());
    if only.is_some() {
        eprintln!(
            "==> a partial run (--only): wrote target/bench/raw.json and target/bench/summary.json, left docs/benchmarks.md alone"
        );
        return Ok(());
    }
    std::fs::write(root.join("docs/benchmarks.md"), report.markdown(root))?;
    plot::write(root, &summary)?;
    if args.iter().any(|a| a == "--record-reference") {
        let (commit, date, cpu) = machine(root);
        reference::record(
            root,
            &report.figures(),
            &commit,
            &format!(
                "cargo xtask bench{} ({rounds} rounds) on {date}, {cpu} (2 cores)",
                if quick { " --quick" } else { "" }
            ),
        )?;
        eprintln!("==> recorded this run's pass-through figures in xtask/bench/reference.json");
    }
    eprintln!("==> wrote docs/benchmarks.md, target/bench/raw.json and target/bench/summary.json");
    Ok(())
}

/// What the benchmarks add to the shared setup: no in-flight cap in the way, quiet logs.
const BENCH_EXTRA: &str =
    "[server]\nmax_in_flight = 100000\n\n[logging]\nlevel = \"warn,gateway::startup=info\"\n";

/// B9: start-up to the first 200, idle RSS, stripped binary size.
fn b9(bin: &Path, config: &str, out_dir: &Path) -> Result<Value> {
    let mut starts = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (process, addr) = start(
            TARGET_CORE,
            &bin.join("gateway"),
            &["--config", config, "serve", "--listen", "127.0.0.1:0"],
            true,
        )?;
        let mut ok = false;
        for _ in 0..2000 {
            if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = write!(
                    stream,
                    "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    ok = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !ok {
            bail!("the gateway did not answer /health");
        }
        starts.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        idle.push(rss_kib(process.pid()) as f64);
    }
    let stripped = out_dir.join("gateway-stripped");
    std::fs::copy(bin.join("gateway"), &stripped)?;
    let _ = Command::new("strip").arg(&stripped).status();
    let size = std::fs::metadata(&stripped)?.len();
    Ok(json!({"startup_ms": median(starts), "idle_rss_kib": median(idle), "stripped_bytes": size}))
}

/// RSS of a process and its children (nginx serves from a worker child), in KiB.
fn rss_tree_kib(pid: u32) -> u64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    rss_kib(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .map(rss_kib)
            .sum::<u64>()
}

/// B3, B5, B6, B7 (the full run only). B3 for T0-T4; B5-B7 for every target that relays the
/// mock's test headers (T0, T1, T3, T4), each measured on its own process tree.
fn full_scenarios(bin: &Path, targets: &[Target], raw: &mut Vec<Value>) -> Result<Value> {
    // B3: open loop at rising rates; the knee is the first rate whose p99 is twice the p99 at
    // the lowest rate.
    let rates = [500u64, 1000, 2000, 4000, 8000];
    let mut knees = BTreeMap::new();
    for target in targets
        .iter()
        .filter(|t| matches!(t.id, "T0" | "T1" | "T2" | "T3" | "T4"))
    {
        let url = target.url();
        let mut base = None;
        let mut knee = Value::Null;
        for rate in rates {
            let r = load(
                bin,
                &[
                    "--url".into(),
                    url.clone(),
                    "--mode".into(),
                    "open".into(),
                    "--rate".into(),
                    rate.to_string(),
                    "--duration-ms".into(),
                    "3000".into(),
                    "--body".into(),
                    chat_body(target.model, false),
                ],
            )?;
            let p99 = r["latency_us"]["p99"].as_f64().unwrap_or(f64::INFINITY);
            raw.push(json!({"scenario": "B3", "target": target.id, "rate": rate, "result": r}));
            let base_p99 = *base.get_or_insert(p99);
            if p99 > 2.0 * base_p99 || r["errors"].as_u64().unwrap_or(0) > 0 {
                knee = json!(rate);
                break;
            }
        }
        if knee.is_null() {
            knee = json!(format!("> {}", rates[rates.len() - 1]));
        }
        knees.insert(target.id, knee);
    }
    let mut b5 = BTreeMap::new();
    let mut b6 = BTreeMap::new();
    let mut b7 = BTreeMap::new();
    for target in targets.iter().filter(|t| t.streams) {
        let Some(pid) = target.pid else { continue };
        let url = target.url();
        // B5: 1000 concurrent slow streams: memory per stream.
        let idle = rss_tree_kib(pid);
        let streams = std::thread::spawn({
            let (bin, url, model) = (bin.to_path_buf(), url.clone(), target.model);
            move || {
                load(
                    &bin,
                    &[
                        "--url".into(),
                        url,
                        "--mode".into(),
                        "closed".into(),
                        "--connections".into(),
                        "1000".into(),
                        "--duration-ms".into(),
                        "4000".into(),
                        "--body".into(),
                        chat_body(model, true),
                        "--header".into(),
                        "x-mock-chunks: 40".into(),
                        "--header".into(),
                        "x-mock-interval-ms: 100".into(),
                    ],
                )
            }
        });
        std::thread::sleep(Duration::from_millis(2500));
        let busy = rss_tree_kib(pid);
        let result = streams
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))??;
        raw.push(json!({"scenario": "B5", "target": target.id, "result": result}));
        b5.insert(target.id, json!({"idle_rss_kib": idle, "rss_with_1000_streams_kib": busy, "kib_per_stream": busy.saturating_sub(idle) as f64 / 1000.0}));
        // B6: 2000 idle keep-alive connections.
        let before = rss_tree_kib(pid);
        let addr = target.base.trim_start_matches("http://").to_owned();
        let mut held = Vec::new();
        for _ in 0..2000 {
            use std::io::{Read, Write};
            if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
                let _ = write!(stream, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut buf = [0u8; 512];
                let _ = stream.read(&mut buf);
                held.push(stream);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let with_idle = rss_tree_kib(pid);
        b6.insert(target.id, json!({"connections": held.len(), "kib_per_idle_connection": with_idle.saturating_sub(before) as f64 / held.len().max(1) as f64}));
        drop(held);
        // B7: 64 streams read with a 50 ms pause per frame; memory must stay flat.
        let before = rss_tree_kib(pid);
        let slow = std::thread::spawn({
            let (bin, url, model) = (bin.to_path_buf(), url.clone(), target.model);
            move || {
                load(
                    &bin,
                    &[
                        "--url".into(),
                        url,
                        "--mode".into(),
                        "closed".into(),
                        "--connections".into(),
                        "64".into(),
                        "--duration-ms".into(),
                        "4000".into(),
                        "--body".into(),
                        chat_body(model, true),
                        "--header".into(),
                        "x-mock-chunks: 400".into(),
                        "--header".into(),
                        "x-mock-giant-line: 16384".into(),
                        "--read-delay-ms".into(),
                        "50".into(),
                    ],
                )
            }
        });
        let mut peak = before;
        for _ in 0..16 {
            std::thread::sleep(Duration::from_millis(250));
            peak = peak.max(rss_tree_kib(pid));
        }
        let _ = slow.join();
        b7.insert(target.id, json!({"rss_before_kib": before, "peak_rss_kib": peak, "growth_kib": peak.saturating_sub(before)}));
    }
    Ok(json!({"b3_knee_rps": knees, "b5": b5, "b6": b6, "b7": b7}))
}

/// B8: instructions per request of the gateway under callgrind (pass-through, 2000 requests).
fn b8(bin: &Path, out_dir: &Path, mock_url: &str) -> Result<Value> {
    let valgrind = crate::process::debian("/usr/bin/valgrind", "valgrind")?;
    let config = mock_gateway_setup(&out_dir.join("b8"), mock_url, BENCH_EXTRA)?;
    let callgrind_out = out_dir.join("callgrind.out");
    let config_arg = config.display().to_string();
    let out_arg = format!("--callgrind-out-file={}", callgrind_out.display());
    let gateway_path = bin.join("gateway").display().to_string();
    let measure = |requests: u64| -> Result<f64> {
        let _ = std::fs::remove_file(&callgrind_out);
        let (process, addr) = start(
            TARGET_CORE,
            valgrind,
            &[
                "--tool=callgrind",
                &out_arg,
                &gateway_path,
                "--config",
                &config_arg,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ],
            true,
        )?;
        let r = load(
            bin,
            &[
                "--url".into(),
                format!("http://{addr}/v1/chat/completions"),
                "--mode".into(),
                "seq".into(),
                "--requests".into(),
                requests.to_string(),
                "--body".into(),
                chat_body("gpt-4o", false),
            ],
        )?;
        if r["errors"].as_u64() != Some(0) {
            bail!("errors under callgrind: {r}");
        }
        // SIGINT lets callgrind write its totals.
        let _ = Command::new("kill")
            .args(["-INT", &process.pid().to_string()])
            .status();
        let mut child = process;
        for _ in 0..200 {
            if child.0.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&callgrind_out).context("no callgrind output")?;
        let total = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary: ")
                    .or_else(|| l.strip_prefix("totals: "))
            })
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("no totals in the callgrind output")?;
        Ok(total)
    };
    // The difference of two runs cancels start-up and shutdown.
    let small = measure(200)?;
    let large = measure(1200)?;
    Ok(json!({"instructions_per_request": (large - small) / 1000.0}))
}

fn b8_check(root: &Path, bin: &Path, out_dir: &Path, record: bool) -> Result<()> {
    let (mock, mock_url) = start(CLIENT_CORE, &bin.join("mock-upstream"), &[], false)?;
    let measured = b8(bin, out_dir, &mock_url)?;
    drop(mock);
    let now = measured["instructions_per_request"]
        .as_f64()
        .context("no measurement")?;
    let baseline_path = root.join("xtask/bench-baseline.json");
    if record {
        std::fs::write(
            &baseline_path,
            serde_json::to_vec_pretty(&json!({"b8_instructions_per_request": now.round()}))?,
        )?;
        eprintln!("==> B8 baseline recorded: {now:.0} instructions per request");
        return Ok(());
    }
    let baseline: Value = serde_json::from_slice(
        &std::fs::read(&baseline_path).context("no xtask/bench-baseline.json")?,
    )?;
    let base = baseline["b8_instructions_per_request"]
        .as_f64()
        .context("baseline has no b8")?;
    let change = now / base - 1.0;
    eprintln!(
        "==> B8: {now:.0} instructions per request (baseline {base:.0}, {:+.1}%)",
        change * 100.0
    );
    if change > B8_TOLERANCE {
        bail!(
            "B8 regressed by {:.1}% (tolerance {:.0}%)",
            change * 100.0,
            B8_TOLERANCE * 100.0
        );
    }
    Ok(())
}

/// Install Debian's `nginx-light` unless nginx is there; its path.
fn nginx_installed() -> Result<&'static Path> {
    crate::process::debian("/usr/sbin/nginx", "nginx-light")
}

/// The peer: nginx as a proxy in front of `mock_url`, one worker on the target core.
fn start_nginx(out_dir: &Path, mock_url: &str) -> Result<(Running, String)> {
    let upstream = mock_url.trim_start_matches("http://");
    start_nginx_server(
        &out_dir.join("nginx"),
        TARGET_CORE,
        &format!(
            "upstream mock {{ server {upstream}; keepalive 256; keepalive_requests 1000000; }}"
        ),
        "location / {\n      proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n      proxy_request_buffering off;\n    }",
    )
}

/// nginx as one process (no master: killing it leaves no orphaned worker behind) pinned to
/// `core`, prefix `prefix`, serving `location` (with `http` blocks such as an upstream before
/// the server) on a free loopback port; its URL.
fn start_nginx_server(
    prefix: &Path,
    core: &str,
    http: &str,
    location: &str,
) -> Result<(Running, String)> {
    let nginx = nginx_installed()?;
    let port = free_port()?;
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\npid {pid};\nerror_log {err} warn;\nevents {{ worker_connections 8192; }}\nhttp {{\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n  {http}\n  server {{\n    listen 127.0.0.1:{port};\n    {location}\n  }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            err = prefix.join("logs/error.log").display(),
        ),
    )?;
    let child = Command::new("taskset")
        .args(["-c", core])
        .arg(nginx)
        .args([
            "-p",
            &prefix.display().to_string(),
            "-c",
            &conf.display().to_string(),
            "-g",
            "daemon off; master_process off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let running = Running(child);
    wait_for_port(port)?;
    Ok((running, format!("http://127.0.0.1:{port}")))
}

fn start_litellm(root: &Path, out_dir: &Path, mock_url: &str) -> Result<(Running, String)> {
    let venv = crate::target_dir(root).join("bench-venv");
    let litellm = venv.join("bin/litellm");
    if !litellm.exists() {
        crate::step(
            root,
            "bench venv",
            "python3",
            &["-m", "venv", &venv.display().to_string()],
        )?;
        crate::step(
            root,
            "litellm install",
            &venv.join("bin/pip").display().to_string(),
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "litellm[proxy]",
            ],
        )?;
    }
    let port = free_port()?;
    let config = out_dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {mock_url}/v1\n      api_key: bench\nlitellm_settings:\n  num_retries: 0\n  callbacks: []\n"
        ),
    )?;
    let child = Command::new("taskset")
        .args(["-c", TARGET_CORE])
        .arg(&litellm)
        .args([
            "--config",
            &config.display().to_string(),
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        // Loopback only: no key check on the measured path.
        .env(
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
            "true",
        )
        .env("LITELLM_LOG", "ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let running = Running(child);
    wait_for_port(port)?;
    Ok((running, format!("http://127.0.0.1:{port}")))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(port: u16) -> Result<()> {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listened on port {port} within a minute")
}

/// B2 per (target, connections): throughput and CPU per request, one value per round.
type B2<'a> = BTreeMap<(&'a str, usize), (Vec<f64>, Vec<f64>)>;

/// B4 per target, one value per round.
#[derive(Default)]
struct B4 {
    ttfb50: Vec<f64>,
    ttfb99: Vec<f64>,
    ttfc50: Vec<f64>,
    ttfc99: Vec<f64>,
    gap99: Vec<f64>,
    identical: bool,
}

/// B4 medians: time to first byte and to first content (p50, p99), gap p99, bytes identical.
#[derive(Clone, Copy)]
struct B4Figures {
    ttfb: (f64, f64),
    ttfc: (f64, f64),
    gap99: f64,
    identical: bool,
}

/// The short commit, the date (UTC) and the CPU model of this run.
fn machine(root: &Path) -> (String, String, String) {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    (commit, date, cpu)
}

struct Report<'a> {
    targets: &'a [Target],
    b1: &'a BTreeMap<&'a str, (Vec<f64>, Vec<f64>)>,
    b2: &'a B2<'a>,
    b4: &'a BTreeMap<&'a str, B4>,
    b9: &'a Value,
    b10: &'a Value,
    b11: &'a Value,
    full: &'a Value,
    b8: &'a Value,
    reference: &'a Value,
    peers: &'a BTreeMap<&'a str, String>,
    rounds: usize,
    quick: bool,
}

impl Report<'_> {
    fn b1_of(&self, id: &str) -> (f64, f64) {
        self.b1.get(id).map_or((f64::NAN, f64::NAN), |(p50, p99)| {
            (median(p50.clone()), median(p99.clone()))
        })
    }

    fn b1_added(&self, id: &str) -> (f64, f64) {
        let (p50, p99) = self.b1_of(id);
        let (f50, f99) = self.b1_of("T0");
        (p50 - f50, p99 - f99)
    }

    fn b2_rps(&self, id: &str, connections: usize) -> f64 {
        self.b2
            .get(&(id, connections))
            .map_or(f64::NAN, |(rps, _)| median(rps.clone()))
    }

    fn b2_cpu(&self, id: &str, connections: usize) -> f64 {
        self.b2
            .get(&(id, connections))
            .map_or(f64::NAN, |(_, cpu)| median(cpu.clone()))
    }

    fn b4_of(&self, id: &str) -> Option<B4Figures> {
        self.b4.get(id).map(|b| B4Figures {
            ttfb: (median(b.ttfb50.clone()), median(b.ttfb99.clone())),
            ttfc: (median(b.ttfc50.clone()), median(b.ttfc99.clone())),
            gap99: median(b.gap99.clone()),
            identical: b.identical,
        })
    }

    /// B3 and B5-B7 as tables, one row per measured target.
    fn full_tables(&self) -> String {
        let f = |v: &Value| {
            v.as_f64().map_or_else(
                || v.to_string().trim_matches('"').to_owned(),
                |x| format!("{x:.1}"),
            )
        };
        let mut md = String::from(
            "\n## B3: open loop at rising rates (500 to 8000 rps)\n\n| target | knee (p99 doubles) rps |\n|---|---|\n",
        );
        for t in self.targets {
            if let Some(knee) = self.full["b3_knee_rps"].get(t.id) {
                md += &format!("| {} {} | {} |\n", t.id, t.name, f(knee));
            }
        }
        md += "\n## B5, B6, B7: memory\n\n| target | B5 KiB per stream (1000 slow streams) | B6 KiB per idle connection (2000) | B7 growth with 64 slow readers, KiB |\n|---|---|---|---|\n";
        for t in self.targets {
            if let Some(b5) = self.full["b5"].get(t.id) {
                md += &format!(
                    "| {} {} | {} | {} | {} |\n",
                    t.id,
                    t.name,
                    f(&b5["kib_per_stream"]),
                    f(&self.full["b6"][t.id]["kib_per_idle_connection"]),
                    f(&self.full["b7"][t.id]["growth_kib"])
                );
            }
        }
        md += "\nMemory is the resident set of the target's process tree (nginx's worker included); T0 is the mock itself. A proxied stream holds two connections (client and upstream), so it costs a proxy more than the mock.\n";
        md
    }

    /// The goals of the method, each met or not, with the measured figure.
    fn goals(&self) -> String {
        let verdict = |ok: Option<bool>| match ok {
            Some(true) => "met",
            Some(false) => "not met",
            None => "not measured",
        };
        let finite = |x: f64| x.is_finite().then_some(x);
        let (a50, a99) = self.b1_added("T1");
        let (t50, _) = self.b1_added("T3");
        let (g50, _) = self.b1_added("T2");
        let (l50, _) = self.b1_added("T5");
        let mut rows: Vec<(String, String, &str)> = vec![
            (
                "B1 added p50 ≤ 60 µs".into(),
                format!("{a50:.0} µs"),
                verdict(finite(a50).map(|x| x <= 60.0)),
            ),
            (
                "B1 added p99 ≤ 200 µs".into(),
                format!("{a99:.0} µs"),
                verdict(finite(a99).map(|x| x <= 200.0)),
            ),
            (
                "B1 within 1.2x of T3's added latency".into(),
                format!("{:.2}x ({a50:.0} vs {t50:.0} µs)", a50 / t50),
                verdict(finite(a50 / t50).map(|x| x <= 1.2)),
            ),
            (
                "B1 at most 1/20 of LiteLLM's added latency".into(),
                if l50.is_finite() {
                    format!("1/{:.0} ({a50:.0} vs {l50:.0} µs)", l50 / a50)
                } else {
                    "LiteLLM not measured".into()
                },
                verdict(finite(l50).map(|l| a50 * 20.0 <= l)),
            ),
        ];
        let (u50, _) = self.b1_added("T6");
        rows.push((
            "usage accounting ≤ 5 µs p50 (B1 T1 − T6)".into(),
            format!(
                "{:.1} µs p50; {:.1} µs CPU per request at 64 connections",
                a50 - u50,
                self.b2_cpu("T1", 64) - self.b2_cpu("T6", 64)
            ),
            verdict(finite(a50 - u50).map(|x| x <= 5.0)),
        ));
        let (r50, _) = self.b1_added("T7");
        let (k50, _) = self.b1_added("T8");
        rows.push((
            "Redis state within 10% of local (B1 p50 and B2 rps @64, T7 vs T8)".into(),
            format!(
                "B1 added p50 {r50:.0} vs {k50:.0} µs; B2 {:.0} vs {:.0} rps ({:.2}x); {:.1} vs {:.1} µs CPU per request",
                self.b2_rps("T7", 64),
                self.b2_rps("T8", 64),
                self.b2_rps("T7", 64) / self.b2_rps("T8", 64),
                self.b2_cpu("T7", 64),
                self.b2_cpu("T8", 64)
            ),
            verdict(
                finite(self.b2_rps("T7", 64) / self.b2_rps("T8", 64))
                    .zip(finite(self.b1_of("T7").0 / self.b1_of("T8").0))
                    .map(|(rps, latency)| rps >= 0.9 && latency <= 1.1),
            ),
        ));
        let r64 = self.b2_rps("T1", 64);
        rows.push((
            "B2 ≥ 0.9x T3 at 64 connections".into(),
            format!("{:.2}x", r64 / self.b2_rps("T3", 64)),
            verdict(finite(r64 / self.b2_rps("T3", 64)).map(|x| x >= 0.9)),
        ));
        let nginx = self.b2_rps("T4", 64);
        rows.push((
            "B2 ≥ nginx at 64 connections".into(),
            if nginx.is_finite() {
                format!("{r64:.0} vs {nginx:.0} rps")
            } else {
                "nginx not measured".into()
            },
            verdict(finite(nginx).map(|n| r64 >= n)),
        ));
        rows.push((
            "T2 translation adds ≤ 150 µs p50 over T1".into(),
            format!("{:.0} µs (B1 body: one short message, no tools)", g50 - a50),
            verdict(finite(g50 - a50).map(|x| x <= 150.0)),
        ));
        if let (Some(g), Some(f)) = (self.b4_of("T1"), self.b4_of("T0")) {
            let ttfc99 = g.ttfc.1 - f.ttfc.1;
            let gap = g.gap99 - f.gap99;
            rows.push((
                "B4 added time to first content p99 ≤ 1 ms".into(),
                format!(
                    "{ttfc99:.0} µs (first byte: {:.0} µs, held until content by design)",
                    g.ttfb.1 - f.ttfb.1
                ),
                verdict(finite(ttfc99).map(|x| x <= 1000.0)),
            ));
            rows.push((
                "B4 added inter-chunk gap p99 ≤ 0.5 ms".into(),
                format!("{gap:.0} µs"),
                verdict(finite(gap).map(|x| x <= 500.0)),
            ));
            rows.push((
                "B4 bytes identical".into(),
                g.identical.to_string(),
                verdict(Some(g.identical)),
            ));
        }
        let per_stream = self.full["b5"]["T1"]["kib_per_stream"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let per_connection = self.full["b6"]["T1"]["kib_per_idle_connection"]
            .as_f64()
            .unwrap_or(f64::NAN);
        rows.push((
            "B5 ≤ 32 KiB per stream".into(),
            format!("{per_stream:.1} KiB"),
            verdict(finite(per_stream).map(|x| x <= 32.0)),
        ));
        rows.push((
            "B6 ≤ 8 KiB per idle connection".into(),
            format!("{per_connection:.1} KiB"),
            verdict(finite(per_connection).map(|x| x <= 8.0)),
        ));
        let idle = self.b9["idle_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0;
        rows.push((
            "B9 idle RSS ≤ 20 MB".into(),
            format!("{idle:.1} MiB"),
            verdict(finite(idle).map(|x| x <= 20.0)),
        ));
        for (goal, measured, ok) in translated::goals(self.b10)
            .into_iter()
            .chain(fast::goals(self.b11))
        {
            rows.push((goal, measured, verdict(ok)));
        }
        let mut md = String::from("## Goals\n\n| goal | measured | verdict |\n|---|---|---|\n");
        for (goal, measured, verdict) in rows {
            md += &format!("| {goal} | {measured} | {verdict} |\n");
        }
        md += "\n";
        md
    }

    fn headline(&self) -> String {
        let mut out = self.classic_headline();
        out += &translated::headline(self.b10);
        out += &fast::headline(self.b11);
        out += &reference::headline(self.reference, &self.figures());
        out.trim_end().to_owned()
    }

    /// B1, B2, B4 and B9, when they ran.
    fn classic_headline(&self) -> String {
        let mut b9 = String::new();
        if !self.b9.is_null() {
            b9 = format!(
                "B9: first 200 after {:.0} ms; idle RSS {:.1} MiB; stripped binary {:.1} MiB\n",
                self.b9["startup_ms"].as_f64().unwrap_or(f64::NAN),
                self.b9["idle_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
                self.b9["stripped_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0
            );
        }
        if self.b1.is_empty() {
            return b9;
        }
        let (a50, a99) = self.b1_added("T1");
        let (t50, t99) = self.b1_added("T3");
        let (g50, g99) = self.b1_added("T2");
        let mut out = format!(
            "B1 added latency vs T0: gateway pass-through p50 {a50:.0} µs / p99 {a99:.0} µs; in-process Antigravity p50 {g50:.0} µs / p99 {g99:.0} µs; bare proxy p50 {t50:.0} µs / p99 {t99:.0} µs\n"
        );
        for c in [16, 64] {
            out += &format!(
                "B2 {c} connections: gateway {:.0} rps ({:.2}x T0, {:.2}x T3), {:.0} µs CPU per request; bare proxy {:.0} rps\n",
                self.b2_rps("T1", c),
                self.b2_rps("T1", c) / self.b2_rps("T0", c),
                self.b2_rps("T1", c) / self.b2_rps("T3", c),
                self.b2_cpu("T1", c),
                self.b2_rps("T3", c)
            );
        }
        if let (Some(g), Some(f)) = (self.b4_of("T1"), self.b4_of("T0")) {
            out += &format!(
                "B4 streaming: added time to first content p50 {:.0} µs / p99 {:.0} µs (first byte: {:.0} / {:.0} µs, held until content by design); inter-chunk gap p99 {:.0} µs vs floor {:.0} µs; bytes identical: {}\n",
                g.ttfc.0 - f.ttfc.0,
                g.ttfc.1 - f.ttfc.1,
                g.ttfb.0 - f.ttfb.0,
                g.ttfb.1 - f.ttfb.1,
                g.gap99,
                f.gap99,
                g.identical
            );
        }
        out + &b9
    }

    fn summary(&self) -> Value {
        let mut targets = serde_json::Map::new();
        for t in self.targets {
            let (p50, p99) = self.b1_of(t.id);
            targets.insert(
                t.id.to_owned(),
                json!({
                    "name": t.name,
                    "b1_p50_us": p50, "b1_p99_us": p99,
                    "b2_16_rps": self.b2_rps(t.id, 16), "b2_64_rps": self.b2_rps(t.id, 64),
                    "b2_64_cpu_us_per_request": self.b2_cpu(t.id, 64),
                    "b4": self.b4_of(t.id).map(|b| json!({"ttfb_p50_us": b.ttfb.0, "ttfb_p99_us": b.ttfb.1, "ttfc_p50_us": b.ttfc.0, "ttfc_p99_us": b.ttfc.1, "gap_p99_us": b.gap99, "identical": b.identical})),
                }),
            );
        }
        json!({"targets": targets, "b9": self.b9, "b10": self.b10, "b11": self.b11,
            "pass_through": {"now": self.figures(), "reference": self.reference},
            "full": self.full, "b8": self.b8, "peers": self.peers, "rounds": self.rounds, "quick": self.quick})
    }

    /// The pass-through figures compared with the reference run (keys of `reference`).
    fn figures(&self) -> Value {
        let (p50, p99) = self.b1_of("T1");
        let (a50, a99) = self.b1_added("T1");
        let (t50, _) = self.b1_added("T3");
        let b4 = match (self.b4_of("T1"), self.b4_of("T0")) {
            (Some(g), Some(f)) => (g.ttfc.0 - f.ttfc.0, g.ttfc.1 - f.ttfc.1),
            _ => (f64::NAN, f64::NAN),
        };
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        json!({
            "b1_p50_us": p50, "b1_p99_us": p99, "b1_added_p50_us": a50, "b1_added_p99_us": a99,
            "b1_added_p50_vs_bare": a50 / t50,
            "b2_16_rps": self.b2_rps("T1", 16), "b2_64_rps": self.b2_rps("T1", 64),
            "b2_64_vs_bare": self.b2_rps("T1", 64) / self.b2_rps("T3", 64),
            "b2_64_cpu_us_per_request": self.b2_cpu("T1", 64),
            "b4_added_ttfc_p50_us": b4.0, "b4_added_ttfc_p99_us": b4.1,
            "b9_startup_ms": f(&self.b9["startup_ms"]),
            "b9_idle_rss_mib": f(&self.b9["idle_rss_kib"]) / 1024.0,
            "b9_stripped_mib": f(&self.b9["stripped_bytes"]) / 1048576.0,
            "b5_kib_per_stream": f(&self.full["b5"]["T1"]["kib_per_stream"]),
            "b6_kib_per_idle_connection": f(&self.full["b6"]["T1"]["kib_per_idle_connection"]),
        })
    }

    fn markdown(&self, root: &Path) -> String {
        let (commit, date, cpu) = machine(root);
        let mut md = String::new();
        md += "# Benchmarks\n\n";
        md += "Generated by `cargo xtask bench";
        md += if self.quick { " --quick`" } else { "`" };
        md += &format!(
            " on {date}, commit `{commit}`, {cpu} (2 cores), {} rounds.\n",
            self.rounds
        );
        md += "Every figure is a median of round medians, as a difference or ratio against the floor measured in the same run.\n";
        md += "Raw results: `target/bench/raw.json`; summary: `target/bench/summary.json`.\n\n";
        md += "## Method\n\n";
        md += "- The load client (`crates/bench`, `load`) and the mock upstream run on core 0; the target runs on core 1 (`taskset`), one process each.\n";
        md += "- Targets are interleaved in every round (T0, T1, T2, T3, peers), so drift on this shared machine affects them alike.\n";
        md += "- T0 is the mock itself (the floor); T1 the gateway on its pass-through path (an `openai` backend); T2 the gateway's in-process Antigravity translation (the mock speaks the Antigravity protocol); T3 a bare hyper pass-through proxy (`crates/bench`, `bare-proxy`), the physical limit of one hop in Rust; T4 nginx from Debian (`nginx-light`, one worker, `proxy_buffering off`, upstream keepalive); T5 LiteLLM proxy from PyPI (one worker, no retries, no callbacks, no database, local cost map, no master key on loopback); T6 the gateway of T1 with `usage_db = \"\"` (no usage database; token counters in the metrics still run), for the price of usage accounting; T7 and T8 the gateway with a named key whose `rpm` is checked on every request (sent as `?key=`), T7 with `[state] backend = \"redis\"` (a local `redis-server` on the client core), T8 on local state, for the price of Redis.\n";
        md += "- The gateway logs at `warn` during the runs (one info line per request is a real cost in production; it is the same for every request).\n";
        md += "- B1: sequential non-streaming requests; B2: closed loop at 16 and 64 connections, CPU from `/proc/PID/stat`; B4: 32 concurrent streams of 20 chunks 10 ms apart, bytes checked identical across all responses; B9: first 200 on `/health` after spawn, RSS when idle, stripped binary size.\n";
        md += "- B10 (issues 12 and 20): an 80 KB Claude Code-shaped Anthropic request and a 4 KB Chat request with tools, each through an `anthropic`, the in-process `antigravity` and an `openai` backend of one more gateway process; sequential latency against a per-path floor (the mock asked directly with what the gateway sent it), throughput and CPU per request at a fixed concurrency.\n";
        md += "- B11 (issue 20): pass-through against a fast upstream (nginx returning the mock's answer, on core 0): throughput, CPU per request of each target, and how busy the target's core, the upstream and the load client were; `wrk` as a second load client.\n";
        md += "- The mock records every request it serves; the harness clears the record after every run so its memory stays flat.\n";
        md += "- Full runs add B3 (open loop at rising rates, latency from the intended start), B5 (1000 concurrent slow streams), B6 (2000 idle keep-alive connections), B7 (slow readers), B8 (instructions per request under callgrind, the regression guard: `cargo xtask bench --check`).\n\n";
        md += &self.goals();
        md += "## At a glance\n\n![B1 latency](bench/latency.svg)\n\n![B2 throughput](bench/throughput.svg)\n\n";
        if self.b11["targets"].is_object() {
            md += "![B11 CPU per request](bench/fast-cpu.svg)\n\n![B11 throughput](bench/fast-throughput.svg)\n\n";
        }
        md += "## Peers\n\n| peer | status |\n|---|---|\n";
        for (peer, status) in self.peers {
            md += &format!("| {peer} | {status} |\n");
        }
        md += "\n## B1: non-streaming, sequential\n\n| target | p50 µs | p99 µs | added p50 µs | added p99 µs |\n|---|---|---|---|---|\n";
        for t in self.targets {
            let (p50, p99) = self.b1_of(t.id);
            let (a50, a99) = self.b1_added(t.id);
            md += &format!(
                "| {} {} | {p50:.0} | {p99:.0} | {a50:.0} | {a99:.0} |\n",
                t.id, t.name
            );
        }
        md += "\n## B2: non-streaming, closed loop\n\n| target | rps @16 | rps @64 | vs T0 @64 | vs T3 @64 | CPU µs/request @64 |\n|---|---|---|---|---|---|\n";
        for t in self.targets {
            md += &format!(
                "| {} {} | {:.0} | {:.0} | {:.2}x | {:.2}x | {:.1} |\n",
                t.id,
                t.name,
                self.b2_rps(t.id, 16),
                self.b2_rps(t.id, 64),
                self.b2_rps(t.id, 64) / self.b2_rps("T0", 64),
                self.b2_rps(t.id, 64) / self.b2_rps("T3", 64),
                self.b2_cpu(t.id, 64)
            );
        }
        md += "\n## B4: streaming, 32 concurrent, 20 chunks 10 ms apart\n\n| target | first content p50 µs | first content p99 µs | added p50 µs | added p99 µs | added first byte p50 / p99 µs | gap p99 µs | bytes identical |\n|---|---|---|---|---|---|---|---|\n";
        let floor = self.b4_of("T0");
        for t in self.targets {
            if let Some(b) = self.b4_of(t.id) {
                let (c50, c99, b50, b99) = floor
                    .map_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN), |f| {
                        (f.ttfc.0, f.ttfc.1, f.ttfb.0, f.ttfb.1)
                    });
                md += &format!(
                    "| {} {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {} |\n",
                    t.id,
                    t.name,
                    b.ttfc.0,
                    b.ttfc.1,
                    b.ttfc.0 - c50,
                    b.ttfc.1 - c99,
                    b.ttfb.0 - b50,
                    b.ttfb.1 - b99,
                    b.gap99,
                    b.identical
                );
            }
        }
        md += "\nThe mock sends the role chunk at once and the first text 10 ms later. The gateway holds a stream until its first real content (its commit point, so that failures before it can fail over invisibly): its first byte is the first content, so its added time to first *byte* includes one upstream inter-token gap by design. Time to first content is the comparable figure.\n";
        md += "\nT2 and T5 are not in B4: the in-process path and LiteLLM do not forward the mock's test headers, so their streams have another shape; T6, T7 and T8 are not in B4 either (their streams are T1's).\n";
        md += &format!(
            "\n## B9: start-up and idle\n\n| first 200 after start | idle RSS | stripped binary |\n|---|---|---|\n| {:.0} ms | {:.1} MiB | {:.1} MiB |\n",
            self.b9["startup_ms"].as_f64().unwrap_or(f64::NAN),
            self.b9["idle_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            self.b9["stripped_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0
        );
        if !self.b10.is_null() {
            md += &translated::markdown(self.b10);
        }
        if !self.b11.is_null() {
            md += &fast::markdown(self.b11);
        }
        md += &reference::markdown(self.reference, &self.figures());
        if !self.full.is_null() {
            md += &self.full_tables();
        }
        if !self.b8.is_null() {
            md += &format!(
                "\n## B8: instructions per request (callgrind, pass-through)\n\n```json\n{}\n```\n",
                serde_json::to_string_pretty(self.b8).unwrap_or_default()
            );
        }
        md += "\n## Reproduce\n\n```sh\ncargo xtask bench --quick   # B1, B2, B4, B9, B10, B11 in a few minutes\ncargo xtask bench           # everything, with nginx and LiteLLM installed by the harness\ncargo xtask bench --check   # B8 against xtask/bench-baseline.json\ncargo xtask bench --plots   # draw docs/bench/*.svg again from the last run's summary\ncargo xtask bench --quick --only B10,B11 --no-build   # some scenarios, prebuilt binaries; docs untouched\ncargo xtask bench --quick --record-reference   # make this run the pass-through reference\n```\n";
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
