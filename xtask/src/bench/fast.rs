//! B11: pass-through against an upstream that is not the bottleneck (issue 20).
//!
//! The upstream is Debian's nginx answering every request with the exact bytes of the mock's
//! chat completion (`return 200`), one worker pinned to the client core; the load client
//! shares that core, each target runs alone on the other. Targets, interleaved in every round:
//! the static upstream itself (the floor), the gateway on its pass-through path, the bare hyper
//! proxy, and nginx as a proxy. Each is driven by a closed loop at [`CONNECTIONS`] connections;
//! CPU is read from `/proc/PID/stat` (utime + stime of the process and its children, the same
//! method for every target) before and after, for the target, the upstream and the load client,
//! so the report shows CPU per request beside throughput and how busy each core was: a target
//! near 100% of its core while the upstream uses a small share of the other is what makes the
//! ratios mean something. `wrk` (Debian), when it installs, repeats each run as a cross-check
//! with a load client that is not ours.

use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    BENCH_EXTRA, CLIENT_CORE, Running, TARGET_CORE, chat_body, cpu_ticks, http_once, load, median,
    start, start_nginx_server, ticks_per_second,
};
use crate::process::mock_gateway_setup;

/// Connections of every run.
pub(super) const CONNECTIONS: usize = 64;

struct Target {
    id: &'static str,
    name: &'static str,
    base: String,
    pid: u32,
}

/// One value per round.
#[derive(Default)]
struct Figures {
    rps: Vec<f64>,
    cpu: Vec<f64>,
    upstream_cpu: Vec<f64>,
    target_busy: Vec<f64>,
    upstream_busy: Vec<f64>,
    client_busy: Vec<f64>,
    connections_per_1k: Vec<f64>,
    wrk_rps: Vec<f64>,
    errors: u64,
}

pub(super) struct Fast {
    targets: Vec<Target>,
    upstream_pid: u32,
    upstream_url: String,
    _processes: Vec<Running>,
    wrk_script: Option<String>,
    window_ms: u64,
    figures: BTreeMap<&'static str, Figures>,
    answer_bytes: usize,
}

/// Install Debian's `wrk` unless it is there; `None` when it cannot be.
fn wrk_installed() -> Option<&'static Path> {
    crate::process::debian("/usr/bin/wrk", "wrk").ok()
}

/// Connections the static upstream has accepted so far (`stub_status`).
fn accepts(upstream_url: &str) -> f64 {
    http_once(upstream_url, "GET", "/_status", "")
        .ok()
        .and_then(|(_, body)| {
            let counters = body.lines().nth(2)?;
            counters.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(f64::NAN)
}

impl Fast {
    /// Start the static upstream (with the mock's own answer), a gateway, a bare proxy and an
    /// nginx proxy in front of it.
    pub(super) fn start(bin: &Path, out_dir: &Path, mock_url: &str, quick: bool) -> Result<Self> {
        let dir = out_dir.join("b11");
        std::fs::create_dir_all(&dir)?;
        let request = chat_body("gpt-4o", false);
        let (status, answer) = http_once(mock_url, "POST", "/v1/chat/completions", &request)?;
        if status != 200 || answer.contains(['$', '\'', '\\']) {
            bail!("the mock's answer cannot be served by nginx as is ({status}): {answer}");
        }
        let (upstream, upstream_url) = start_nginx_server(
            &dir.join("static"),
            CLIENT_CORE,
            "",
            &format!(
                "location / {{\n      default_type application/json;\n      return 200 '{answer}';\n    }}\n    location = /_status {{ stub_status; }}"
            ),
        )?;
        let config = mock_gateway_setup(&dir, &upstream_url, BENCH_EXTRA)?;
        let config_arg = config.display().to_string();
        let (gateway, gateway_addr) = start(
            TARGET_CORE,
            &bin.join("gateway"),
            &["--config", &config_arg, "serve", "--listen", "127.0.0.1:0"],
            true,
        )?;
        let (bare, bare_addr) = start(
            TARGET_CORE,
            &bin.join("bare-proxy"),
            &["--upstream", &upstream_url],
            false,
        )?;
        let upstream_host = upstream_url.trim_start_matches("http://");
        let (nginx, nginx_url) = start_nginx_server(
            &dir.join("proxy"),
            TARGET_CORE,
            &format!(
                "upstream fast {{ server {upstream_host}; keepalive 256; keepalive_requests 1000000; }}"
            ),
            "location / {\n      proxy_pass http://fast;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n      proxy_request_buffering off;\n    }",
        )?;
        let targets = vec![
            Target {
                id: "U0",
                name: "nginx static upstream (floor)",
                base: upstream_url,
                pid: upstream.pid(),
            },
            Target {
                id: "U1",
                name: "gateway, pass-through",
                base: format!("http://{gateway_addr}"),
                pid: gateway.pid(),
            },
            Target {
                id: "U3",
                name: "bare hyper proxy",
                base: format!("http://{bare_addr}"),
                pid: bare.pid(),
            },
            Target {
                id: "U4",
                name: "nginx proxy",
                base: nginx_url,
                pid: nginx.pid(),
            },
        ];
        let wrk_script = wrk_installed().map(|_| {
            let escaped = request.replace('\\', "\\\\").replace('"', "\\\"");
            format!(
                "wrk.method = \"POST\"\nwrk.body = \"{escaped}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            )
        });
        let wrk_script = match wrk_script {
            Some(script) => {
                let path = dir.join("post.lua");
                std::fs::write(&path, script)?;
                Some(path.display().to_string())
            }
            None => None,
        };
        let this = Self {
            upstream_pid: upstream.pid(),
            upstream_url: targets[0].base.clone(),
            targets,
            _processes: vec![upstream, gateway, bare, nginx],
            wrk_script,
            window_ms: if quick { 2500 } else { 5000 },
            figures: BTreeMap::new(),
            answer_bytes: answer.len(),
        };
        // Warm every target up, and check it answers.
        for target in &this.targets {
            let r = load(
                bin,
                &[
                    "--url".into(),
                    format!("{}/v1/chat/completions", target.base),
                    "--mode".into(),
                    "seq".into(),
                    "--requests".into(),
                    "200".into(),
                    "--body".into(),
                    request.clone(),
                ],
            )?;
            if r["errors"].as_u64() != Some(0) {
                bail!("B11 {} failed {} of 200 requests", target.id, r["errors"]);
            }
        }
        Ok(this)
    }

    /// Whether `wrk` is there to cross-check.
    pub(super) fn has_wrk(&self) -> bool {
        self.wrk_script.is_some()
    }

    /// One round: every target in turn, closed loop, then `wrk`.
    pub(super) fn round(&mut self, bin: &Path, round: usize, raw: &mut Vec<Value>) -> Result<()> {
        let tck = ticks_per_second();
        for target in &self.targets {
            let url = format!("{}/v1/chat/completions", target.base);
            let accepted = accepts(&self.upstream_url);
            let (before, upstream_before) = (cpu_ticks(target.pid), cpu_ticks(self.upstream_pid));
            let r = load(
                bin,
                &[
                    "--url".into(),
                    url.clone(),
                    "--mode".into(),
                    "closed".into(),
                    "--connections".into(),
                    CONNECTIONS.to_string(),
                    "--duration-ms".into(),
                    self.window_ms.to_string(),
                    "--body".into(),
                    chat_body("gpt-4o", false),
                ],
            )?;
            let ticks = cpu_ticks(target.pid).saturating_sub(before) as f64;
            let upstream_ticks =
                cpu_ticks(self.upstream_pid).saturating_sub(upstream_before) as f64;
            let requests = r["requests"].as_f64().unwrap_or(0.0).max(1.0);
            // Less the status request itself.
            let opened = accepts(&self.upstream_url) - accepted - 1.0;
            let elapsed = r["elapsed_s"].as_f64().unwrap_or(f64::NAN);
            let client_ticks = r["cpu_ticks"].as_f64().unwrap_or(f64::NAN);
            let busy = |t: f64| t / tck / elapsed * 100.0;
            let f = self.figures.entry(target.id).or_default();
            f.rps.push(r["rps"].as_f64().unwrap_or(0.0));
            f.cpu.push(ticks / tck * 1e6 / requests);
            f.upstream_cpu.push(upstream_ticks / tck * 1e6 / requests);
            f.target_busy.push(busy(ticks));
            f.upstream_busy.push(busy(upstream_ticks));
            f.client_busy.push(busy(client_ticks));
            f.connections_per_1k.push(opened / requests * 1000.0);
            f.errors += r["errors"].as_u64().unwrap_or(0);
            let mut wrk_result = Value::Null;
            if let Some(script) = &self.wrk_script {
                let seconds = (self.window_ms / 1000).max(1);
                let out = Command::new("taskset")
                    .args(["-c", CLIENT_CORE, "wrk", "-t1"])
                    .arg(format!("-c{CONNECTIONS}"))
                    .arg(format!("-d{seconds}s"))
                    .args(["-s", script, &url])
                    .output()
                    .context("cannot run wrk")?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let rps = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Requests/sec:"))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                if text.contains("Non-2xx") || text.contains("Socket errors") {
                    f.errors += 1;
                }
                f.wrk_rps.push(rps);
                wrk_result = json!({"rps": rps, "output": text});
            }
            raw.push(
                json!({"scenario": "B11", "target": target.id, "round": round, "result": r,
                "cpu_ticks": ticks, "upstream_cpu_ticks": upstream_ticks, "wrk": wrk_result}),
            );
        }
        Ok(())
    }

    /// Medians per target.
    pub(super) fn summary(&self) -> Value {
        let mut out = serde_json::Map::new();
        for target in &self.targets {
            let Some(f) = self.figures.get(target.id) else {
                continue;
            };
            let m = |v: &Vec<f64>| median(v.clone());
            out.insert(
                target.id.to_owned(),
                json!({"name": target.name, "rps": m(&f.rps), "cpu_us_per_request": m(&f.cpu),
                    "upstream_cpu_us_per_request": m(&f.upstream_cpu),
                    "target_busy_pct": m(&f.target_busy), "upstream_busy_pct": m(&f.upstream_busy),
                    "client_busy_pct": m(&f.client_busy),
                    "upstream_connections_per_1k_requests": m(&f.connections_per_1k),
                    "wrk_rps": m(&f.wrk_rps), "errors": f.errors}),
            );
        }
        json!({"targets": out, "connections": CONNECTIONS, "answer_bytes": self.answer_bytes,
            "wrk": self.has_wrk()})
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The goal rows of issue 20: CPU per request at most 1.2x the bare proxy's, throughput at
/// least 0.8x nginx's, with the upstream shown not to be the bottleneck.
pub(super) fn goals(summary: &Value) -> Vec<(String, String, Option<bool>)> {
    let t = &summary["targets"];
    let (g, b, n) = (&t["U1"], &t["U3"], &t["U4"]);
    if g.is_null() {
        return Vec::new();
    }
    let cpu = num(g, "cpu_us_per_request") / num(b, "cpu_us_per_request");
    let rps = num(g, "rps") / num(n, "rps");
    // The largest ratio, over the proxies, of the upstream's share of core 0 to the target's
    // share of core 1.
    let upstream = ["U1", "U3", "U4"]
        .iter()
        .map(|id| num(&t[id], "upstream_busy_pct") / num(&t[id], "target_busy_pct"))
        .fold(f64::NAN, f64::max);
    let finite = |x: f64| x.is_finite().then_some(x);
    vec![
        (
            "B11 pass-through CPU per request ≤ 1.2x the bare proxy's (fast upstream)".into(),
            format!(
                "{cpu:.2}x ({:.1} vs {:.1} µs)",
                num(g, "cpu_us_per_request"),
                num(b, "cpu_us_per_request")
            ),
            finite(cpu).map(|x| x <= 1.2),
        ),
        (
            format!("B11 throughput ≥ 0.8x nginx's at {CONNECTIONS} connections (fast upstream)"),
            format!(
                "{rps:.2}x ({:.0} vs {:.0} rps)",
                num(g, "rps"),
                num(n, "rps")
            ),
            finite(rps).map(|x| x >= 0.8),
        ),
        (
            "B11 the upstream is not what limits: its share of core 0 ≤ half the target's share of core 1".into(),
            format!(
                "at most {:.2}x (gateway: upstream {:.0}%, target {:.0}%)",
                upstream,
                num(g, "upstream_busy_pct"),
                num(g, "target_busy_pct")
            ),
            finite(upstream).map(|x| x <= 0.5),
        ),
    ]
}

pub(super) fn headline(summary: &Value) -> String {
    let t = &summary["targets"];
    let mut out = String::new();
    for id in ["U0", "U1", "U3", "U4"] {
        let f = &t[id];
        if f.is_null() {
            continue;
        }
        out += &format!(
            "B11 fast upstream, {CONNECTIONS} connections, {}: {:.0} rps (wrk {:.0}), {:.1} µs CPU per request, its core {:.0}% busy; upstream {:.1} µs per request, {:.0}% of core 0, {:.1} connections opened per 1000 requests; load client {:.0}%\n",
            f["name"].as_str().unwrap_or(id),
            num(f, "rps"),
            num(f, "wrk_rps"),
            num(f, "cpu_us_per_request"),
            num(f, "target_busy_pct"),
            num(f, "upstream_cpu_us_per_request"),
            num(f, "upstream_busy_pct"),
            num(f, "upstream_connections_per_1k_requests"),
            num(f, "client_busy_pct"),
        );
    }
    out
}

pub(super) fn markdown(summary: &Value) -> String {
    let t = &summary["targets"];
    let mut md = format!(
        "\n## B11: pass-through with a fast upstream, closed loop at {CONNECTIONS} connections\n\n| target | rps | rps (`wrk`) | vs U3 | vs U4 | CPU µs/request | target core busy | upstream µs/request | upstream share of core 0 | load client share of core 0 | upstream connections opened per 1000 requests | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for id in ["U0", "U1", "U3", "U4"] {
        let f = &t[id];
        if f.is_null() {
            continue;
        }
        md += &format!(
            "| {id} {} | {:.0} | {:.0} | {:.2}x | {:.2}x | {:.1} | {:.0}% | {:.1} | {:.0}% | {:.0}% | {:.1} | {} |\n",
            f["name"].as_str().unwrap_or(""),
            num(f, "rps"),
            num(f, "wrk_rps"),
            num(f, "rps") / num(&t["U3"], "rps"),
            num(f, "rps") / num(&t["U4"], "rps"),
            num(f, "cpu_us_per_request"),
            num(f, "target_busy_pct"),
            num(f, "upstream_cpu_us_per_request"),
            num(f, "upstream_busy_pct"),
            num(f, "client_busy_pct"),
            num(f, "upstream_connections_per_1k_requests"),
            f["errors"],
        );
    }
    md += &format!(
        "\nThe upstream is nginx (`return 200` with the mock's own {}-byte chat completion, one worker) on core 0 with the load client; each target alone on core 1, pinned from its start. CPU is utime + stime from `/proc/PID/stat` of the process and its children before and after each run, the same for every target; U0's CPU is the upstream's own. Connections opened are the upstream's accept count (`stub_status`) over the run: a proxy that keeps its upstream connections alive opens none after the warm-up (U0's are the load client's own). A target is the bottleneck when its core is near 100% busy while core 0 (upstream + load client) has room; `wrk` (Debian, one thread{}) repeats each run as a cross-check.\n",
        summary["answer_bytes"],
        if summary["wrk"] == true {
            ""
        } else {
            "; not installed in this run"
        },
    );
    md
}
