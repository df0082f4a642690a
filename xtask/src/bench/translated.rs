//! B10: the translated paths (issues 12 and 20). Two realistic requests, each sent through the
//! three backend kinds the gateway reaches the mock upstream with:
//!
//! - an ~80 KB Claude Code-shaped Anthropic Messages request (`stream: true`) on
//!   `/v1/messages?beta=true`: passed through an `anthropic` backend, translated in process to
//!   Antigravity (Anthropic -> conversation -> `v1internal:streamGenerateContent` and back), and
//!   converted for an `openai` backend (Anthropic -> Chat and back);
//! - a ~4 KB Chat Completions request with tools (not streamed) on `/v1/chat/completions`:
//!   passed through the `openai` backend, translated to Antigravity, converted for the
//!   `anthropic` backend.
//!
//! One gateway process of its own (pinned like every target) serves all six cells; the model
//! spelling picks the backend (`claude-sonnet-4-5`, `claude-4-5-sonnet`, `claude-sonnet-4.5`:
//! the same length, so every body has the same size). Every cell also has a floor: the mock
//! asked directly with the very request the gateway sent it, so the gateway's own time is the
//! cell minus its floor whatever the upstream protocol costs the mock to parse.
//!
//! Per round and cell: sequential requests (latency p50/p99), then a closed loop at
//! [`CONNECTIONS`] connections (throughput, and CPU per request of the gateway from
//! `/proc/PID/stat`). The mock forgets what it recorded after every run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    BENCH_EXTRA, Running, TARGET_CORE, cpu_ticks, load, median, mock_clear, mock_recorded,
    requests, start, ticks_per_second,
};
use crate::process::mock_gateway_setup;

/// The fixed concurrency of the throughput runs.
pub(super) const CONNECTIONS: usize = 8;

/// A backend kind, the model spelling that routes to it, and its upstream protocol.
struct Hop {
    kind: &'static str,
    model: &'static str,
}

const HOPS: [Hop; 3] = [
    Hop {
        kind: "anthropic",
        model: "claude-sonnet-4-5",
    },
    Hop {
        kind: "antigravity",
        model: "claude-4-5-sonnet",
    },
    Hop {
        kind: "openai",
        model: "claude-sonnet-4.5",
    },
];

/// The two client requests: id, what it is, endpoint, the backend kind it passes through.
struct Kind {
    id: &'static str,
    name: &'static str,
    endpoint: &'static str,
    native: &'static str,
    headers: &'static [&'static str],
}

const KINDS: [Kind; 2] = [
    Kind {
        id: "messages-80k",
        name: "80 KB Claude Code Anthropic request (stream)",
        endpoint: "/v1/messages?beta=true",
        native: "anthropic",
        headers: &[
            "anthropic-version: 2023-06-01",
            "anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
            "x-claude-code-session-id: 3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c",
        ],
    },
    Kind {
        id: "chat-4k",
        name: "4 KB Chat request with tools",
        endpoint: "/v1/chat/completions",
        native: "openai",
        headers: &[],
    },
];

/// One (request, backend) cell and its floor, one value per round.
#[derive(Default)]
struct Cell {
    kind: usize,
    hop: usize,
    body: PathBuf,
    request_bytes: usize,
    upstream_uri: String,
    upstream_body: PathBuf,
    upstream_bytes: usize,
    answer_bytes: f64,
    floor_answer_bytes: f64,
    p50: Vec<f64>,
    p99: Vec<f64>,
    floor50: Vec<f64>,
    floor99: Vec<f64>,
    rps: Vec<f64>,
    cpu: Vec<f64>,
    errors: u64,
}

pub(super) struct Translated {
    _gateway: Running,
    pid: u32,
    base: String,
    mock_url: String,
    cells: Vec<Cell>,
    sequential: usize,
    window: usize,
}

fn load_args(url: String, body: &Path, headers: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--url".to_owned(),
        url,
        "--body-file".to_owned(),
        body.display().to_string(),
    ];
    for header in headers {
        args.push("--header".into());
        args.push((*header).to_owned());
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

impl Translated {
    /// Write the bodies and the configuration, start the gateway, check every cell answers,
    /// and record what the gateway sends upstream for each.
    pub(super) fn start(bin: &Path, out_dir: &Path, mock_url: &str, quick: bool) -> Result<Self> {
        let dir = out_dir.join("b10");
        std::fs::create_dir_all(&dir)?;
        let extra = format!(
            "{BENCH_EXTRA}\n[backends.anthropic]\nkind = \"anthropic\"\nbase_url = \"{mock_url}/v1\"\napi_key = \"sk-bench\"\npriority = 3\nmodels = [\"claude-sonnet-4-5\"]\n\n[[routes]]\nmodels = [\"claude-sonnet-4-5\"]\nchain = [\"anthropic\"]\n\n[[routes]]\nmodels = [\"claude-4-5-sonnet\"]\nchain = [\"antigravity\"]\n\n[[routes]]\nmodels = [\"claude-sonnet-4.5\"]\nchain = [\"mock\"]\n"
        );
        let config = mock_gateway_setup(&dir, mock_url, &extra)?;
        let config_arg = config.display().to_string();
        let (gateway, addr) = start(
            TARGET_CORE,
            &bin.join("gateway"),
            &["--config", &config_arg, "serve", "--listen", "127.0.0.1:0"],
            true,
        )?;
        let mut this = Self {
            pid: gateway.pid(),
            _gateway: gateway,
            base: format!("http://{addr}"),
            mock_url: mock_url.to_owned(),
            cells: Vec::new(),
            sequential: if quick { 300 } else { 1000 },
            window: if quick { 2000 } else { 4000 },
        };
        for (k, kind) in KINDS.iter().enumerate() {
            for (h, hop) in HOPS.iter().enumerate() {
                let body = match kind.id {
                    "messages-80k" => requests::claude_code(hop.model),
                    _ => requests::chat_with_tools(hop.model),
                };
                let path = dir.join(format!("{}-{}.json", kind.id, hop.kind));
                std::fs::write(&path, &body)?;
                let mut cell = Cell {
                    kind: k,
                    hop: h,
                    body: path,
                    request_bytes: body.len(),
                    ..Cell::default()
                };
                this.capture_upstream(bin, &mut cell, &dir)?;
                this.cells.push(cell);
            }
        }
        Ok(this)
    }

    /// Send one request of `cell` (after a warm-up), keep the request the mock received as the
    /// cell's floor body, and check the answers.
    fn capture_upstream(&self, bin: &Path, cell: &mut Cell, dir: &Path) -> Result<()> {
        let kind = &KINDS[cell.kind];
        let hop = &HOPS[cell.hop];
        let url = format!("{}{}", self.base, kind.endpoint);
        let warm = load(
            bin,
            &load_args(
                url,
                &cell.body,
                kind.headers,
                &["--mode", "seq", "--requests", "50"],
            ),
        )?;
        if warm["errors"].as_u64() != Some(0) {
            bail!(
                "B10 {} through {}: {} of 50 requests failed",
                kind.id,
                hop.kind,
                warm["errors"]
            );
        }
        mock_clear(&self.mock_url)?;
        let one = load(
            bin,
            &load_args(
                format!("{}{}", self.base, kind.endpoint),
                &cell.body,
                kind.headers,
                &["--mode", "seq", "--requests", "1"],
            ),
        )?;
        let recorded = mock_recorded(&self.mock_url)?;
        let last = recorded
            .as_array()
            .and_then(|r| r.last())
            .context("the mock recorded no request")?;
        cell.upstream_uri = last["uri"].as_str().unwrap_or("").to_owned();
        let upstream = last["body"].to_string();
        cell.upstream_bytes = upstream.len();
        cell.upstream_body = dir.join(format!("{}-{}-upstream.json", kind.id, hop.kind));
        std::fs::write(&cell.upstream_body, upstream)?;
        cell.answer_bytes = one["bytes"].as_f64().unwrap_or(f64::NAN);
        mock_clear(&self.mock_url)?;
        Ok(())
    }

    /// One round: every cell's floor, sequential run and closed loop, in a fixed order.
    pub(super) fn round(&mut self, bin: &Path, round: usize, raw: &mut Vec<Value>) -> Result<()> {
        let tck = ticks_per_second();
        let sequential = self.sequential.to_string();
        let window = self.window.to_string();
        let connections = CONNECTIONS.to_string();
        for cell in &mut self.cells {
            let kind = &KINDS[cell.kind];
            let hop = &HOPS[cell.hop];
            let url = format!("{}{}", self.base, kind.endpoint);
            let floor_url = format!("{}{}", self.mock_url, cell.upstream_uri);
            let floor = load(
                bin,
                &load_args(
                    floor_url,
                    &cell.upstream_body,
                    &[],
                    &["--mode", "seq", "--requests", &sequential],
                ),
            )?;
            mock_clear(&self.mock_url)?;
            let seq = load(
                bin,
                &load_args(
                    url.clone(),
                    &cell.body,
                    kind.headers,
                    &["--mode", "seq", "--requests", &sequential],
                ),
            )?;
            mock_clear(&self.mock_url)?;
            let before = cpu_ticks(self.pid);
            let closed = load(
                bin,
                &load_args(
                    url,
                    &cell.body,
                    kind.headers,
                    &[
                        "--mode",
                        "closed",
                        "--connections",
                        &connections,
                        "--duration-ms",
                        &window,
                    ],
                ),
            )?;
            let ticks = cpu_ticks(self.pid).saturating_sub(before);
            mock_clear(&self.mock_url)?;
            let requests = closed["requests"].as_f64().unwrap_or(0.0).max(1.0);
            let cpu_us = ticks as f64 / tck * 1e6 / requests;
            let get = |r: &Value, q: &str| r["latency_us"][q].as_f64().unwrap_or(f64::NAN);
            cell.floor50.push(get(&floor, "p50"));
            cell.floor99.push(get(&floor, "p99"));
            cell.p50.push(get(&seq, "p50"));
            cell.p99.push(get(&seq, "p99"));
            cell.rps.push(closed["rps"].as_f64().unwrap_or(0.0));
            cell.cpu.push(cpu_us);
            let seq_requests = seq["requests"].as_f64().unwrap_or(0.0).max(1.0);
            cell.answer_bytes = seq["bytes"].as_f64().unwrap_or(f64::NAN) / seq_requests;
            cell.floor_answer_bytes = floor["bytes"].as_f64().unwrap_or(f64::NAN)
                / floor["requests"].as_f64().unwrap_or(0.0).max(1.0);
            for r in [&floor, &seq, &closed] {
                cell.errors += r["errors"].as_u64().unwrap_or(0);
            }
            raw.push(
                json!({"scenario": "B10", "request": kind.id, "backend": hop.kind, "round": round,
                "floor": floor, "sequential": seq, "closed": closed, "cpu_us_per_request": cpu_us}),
            );
        }
        Ok(())
    }

    /// Medians of the rounds, per cell, with the differences over the pass-through cell.
    pub(super) fn summary(&self) -> Value {
        let mut out = Vec::new();
        for cell in &self.cells {
            let kind = &KINDS[cell.kind];
            let hop = &HOPS[cell.hop];
            let native = self
                .cells
                .iter()
                .find(|c| c.kind == cell.kind && HOPS[c.hop].kind == kind.native);
            let m = |v: &Vec<f64>| median(v.clone());
            let (p50, p99, f50, f99) = (
                m(&cell.p50),
                m(&cell.p99),
                m(&cell.floor50),
                m(&cell.floor99),
            );
            let (own50, own99) = (p50 - f50, p99 - f99);
            out.push(json!({
                "request": kind.id, "request_name": kind.name, "backend": hop.kind,
                "pass_through": hop.kind == kind.native,
                "request_bytes": cell.request_bytes, "upstream_uri": cell.upstream_uri,
                "upstream_bytes": cell.upstream_bytes, "answer_bytes": cell.answer_bytes,
                "upstream_answer_bytes": cell.floor_answer_bytes,
                "p50_us": p50, "p99_us": p99, "floor_p50_us": f50, "floor_p99_us": f99,
                "own_p50_us": own50, "own_p99_us": own99,
                "rps": m(&cell.rps), "connections": CONNECTIONS, "cpu_us_per_request": m(&cell.cpu),
                "errors": cell.errors,
                "native": native.map(|n| json!({"p50_us": m(&n.p50), "p99_us": m(&n.p99),
                    "own_p50_us": m(&n.p50) - m(&n.floor50), "own_p99_us": m(&n.p99) - m(&n.floor99),
                    "cpu_us_per_request": m(&n.cpu)})),
            }));
        }
        Value::Array(out)
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// A cell's differences over its request's pass-through cell: as the client sees it at p50, the
/// gateway's own (each minus its floor) at p50, and CPU per request.
fn added(cell: &Value) -> (f64, f64, f64) {
    let native = &cell["native"];
    (
        num(cell, "p50_us") - num(native, "p50_us"),
        num(cell, "own_p50_us") - num(native, "own_p50_us"),
        num(cell, "cpu_us_per_request") - num(native, "cpu_us_per_request"),
    )
}

fn find<'a>(summary: &'a Value, request: &str, backend: &str) -> Option<&'a Value> {
    summary
        .as_array()?
        .iter()
        .find(|c| c["request"] == request && c["backend"] == backend)
}

fn label(cell: &Value) -> String {
    let backend = cell["backend"].as_str().unwrap_or("");
    let client = if cell["request"] == "messages-80k" {
        "Anthropic"
    } else {
        "Chat"
    };
    let upstream = match backend {
        "anthropic" => "Anthropic",
        "antigravity" => "Antigravity",
        _ => "Chat",
    };
    if cell["pass_through"] == true {
        format!("`{backend}` backend, pass-through")
    } else {
        format!("`{backend}` backend, {client} → {upstream}")
    }
}

/// The goal rows: the Claude Code-sized Anthropic → Antigravity translation adds at most 1 ms
/// p50 over pass-through; the 4 KB Chat → Antigravity at most 150 µs.
pub(super) fn goals(summary: &Value) -> Vec<(String, String, Option<bool>)> {
    let mut rows = Vec::new();
    for (request, backend, limit, what) in [
        (
            "messages-80k",
            "antigravity",
            1000.0,
            "80 KB Claude Code Anthropic → Antigravity",
        ),
        (
            "chat-4k",
            "antigravity",
            150.0,
            "4 KB Chat with tools → Antigravity",
        ),
    ] {
        let Some(cell) = find(summary, request, backend) else {
            continue;
        };
        let (client, own, cpu) = added(cell);
        rows.push((
            format!("B10 {what} adds ≤ {limit:.0} µs p50 over pass-through"),
            format!("{client:.0} µs ({own:.0} µs less the upstream's difference; {cpu:.0} µs CPU)"),
            client.is_finite().then_some(client <= limit),
        ));
    }
    rows
}

pub(super) fn headline(summary: &Value) -> String {
    let mut out = String::new();
    for cell in summary.as_array().into_iter().flatten() {
        if cell["pass_through"] == true {
            continue;
        }
        let (client, own, cpu) = added(cell);
        out += &format!(
            "B10 {}, {}: adds p50 {client:.0} µs over pass-through ({own:.0} µs less the upstream's difference), CPU {cpu:+.0} µs per request\n",
            cell["request_name"].as_str().unwrap_or(""),
            label(cell),
        );
    }
    out
}

pub(super) fn markdown(summary: &Value) -> String {
    let mut md = format!(
        "\n## B10: translated paths, sequential and at {CONNECTIONS} connections\n\n| request | path | upstream request | answer bytes | p50 µs | p99 µs | upstream floor p50 µs | added p50 over pass-through µs | same, less the floor µs | rps @{CONNECTIONS} | CPU µs/request | added CPU µs |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for cell in summary.as_array().into_iter().flatten() {
        let (client, own, cpu) = added(cell);
        let (client, own, cpu) = if cell["pass_through"] == true {
            ("—".to_owned(), "—".to_owned(), "—".to_owned())
        } else {
            (
                format!("{client:.0}"),
                format!("{own:.0}"),
                format!("{cpu:+.0}"),
            )
        };
        md += &format!(
            "| {} | {} | {:.1} KB to `{}` | {:.0} | {:.0} | {:.0} | {:.0} | {client} | {own} | {:.0} | {:.0} | {cpu} |\n",
            cell["request_name"].as_str().unwrap_or(""),
            label(cell),
            num(cell, "upstream_bytes") / 1000.0,
            cell["upstream_uri"]
                .as_str()
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or(""),
            num(cell, "answer_bytes"),
            num(cell, "p50_us"),
            num(cell, "p99_us"),
            num(cell, "floor_p50_us"),
            num(cell, "rps"),
            num(cell, "cpu_us_per_request"),
        );
    }
    let errors: u64 = summary
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["errors"].as_u64())
        .sum();
    md += &format!(
        "\nOne gateway process of its own serves the six paths; the model spelling picks the backend. The Anthropic request is {} bytes, the Chat request {} bytes, the same for every path. The floor is the mock asked directly with the request the gateway sent it (the upstream protocol's body differs in size and parse cost); \"less the floor\" takes each path's floor out, leaving the gateway's own time. The mock answers every path with the same three text chunks (`mock-call: none`); it adds a signed thinking block for the Anthropic and Antigravity upstreams (the request asks for adaptive thinking), none for Chat, and its protocols frame them differently, so answer sizes differ as the table shows. Failed requests: {errors}.\n",
        find(summary, "messages-80k", "anthropic").map_or(f64::NAN, |c| num(c, "request_bytes")),
        find(summary, "chat-4k", "openai").map_or(f64::NAN, |c| num(c, "request_bytes")),
    );
    md
}
