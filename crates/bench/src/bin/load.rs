//! The load client; see the crate documentation. Prints one JSON line with the results.

#![expect(clippy::print_stdout, reason = "the result is printed for the harness")]

use std::{cell::RefCell, rc::Rc, time::Duration};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy, rt::TokioExecutor};
use serde_json::json;
use tokio::time::Instant;

use bench::{histogram, summary};

#[derive(Debug)]
struct Args {
    url: String,
    mode: String,
    requests: u64,
    connections: usize,
    duration: Duration,
    rate: u64,
    body: Option<Bytes>,
    headers: Vec<(String, String)>,
    read_delay: Duration,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        url: String::new(),
        mode: "seq".into(),
        requests: 1000,
        connections: 1,
        duration: Duration::from_secs(5),
        rate: 100,
        body: None,
        headers: Vec::new(),
        read_delay: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--mode" => args.mode = value()?,
            "--requests" => args.requests = value()?.parse()?,
            "--connections" => args.connections = value()?.parse()?,
            "--duration-ms" => args.duration = Duration::from_millis(value()?.parse()?),
            "--rate" => args.rate = value()?.parse()?,
            "--body" => args.body = Some(Bytes::from(value()?)),
            "--body-file" => {
                let path = value()?;
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
                args.body = Some(Bytes::from(bytes));
            }
            "--header" => {
                let header = value()?;
                let (name, value) = header.split_once(':').context("--header name:value")?;
                args.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "--read-delay-ms" => args.read_delay = Duration::from_millis(value()?.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if args.url.is_empty() {
        bail!("--url is required");
    }
    Ok(args)
}

type Client = legacy::Client<legacy::connect::HttpConnector, Full<Bytes>>;

/// What one run measured.
struct Stats {
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    ttfc: Histogram<u64>,
    gaps: Histogram<u64>,
    errors: u64,
    bytes: u64,
    first_body: Option<Bytes>,
    identical: bool,
}

impl Stats {
    fn new() -> Result<Self> {
        Ok(Self {
            latency: histogram()?,
            ttfb: histogram()?,
            ttfc: histogram()?,
            gaps: histogram()?,
            errors: 0,
            bytes: 0,
            first_body: None,
            identical: true,
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One request; `intended` is when it should have started (open loop), else its real start.
async fn one(client: &Client, args: &Args, intended: Instant, stats: &RefCell<Stats>) {
    let mut builder = Request::builder()
        .method(if args.body.is_some() {
            Method::POST
        } else {
            Method::GET
        })
        .uri(&args.url);
    for (name, value) in &args.headers {
        builder = builder.header(name, value);
    }
    if args.body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = Full::new(args.body.clone().unwrap_or_default());
    let Ok(request) = builder.body(body) else {
        stats.borrow_mut().errors += 1;
        return;
    };
    let response = match client.request(request).await {
        Ok(response) if response.status().is_success() => response,
        _ => {
            stats.borrow_mut().errors += 1;
            return;
        }
    };
    let mut body = response.into_body();
    let mut collected = Vec::new();
    let mut last: Option<Instant> = None;
    let mut gaps = Vec::new();
    let mut first = None;
    let mut first_content = None;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            stats.borrow_mut().errors += 1;
            return;
        };
        if let Ok(data) = frame.into_data() {
            let now = Instant::now();
            if first.is_none() {
                first = Some(now);
            }
            if first_content.is_none() && has_content(&data) {
                first_content = Some(now);
            }
            if let Some(previous) = last {
                gaps.push(now - previous);
            }
            last = Some(now);
            collected.extend_from_slice(&data);
            if !args.read_delay.is_zero() {
                tokio::time::sleep(args.read_delay).await;
            }
        }
    }
    let done = Instant::now();
    let mut stats = stats.borrow_mut();
    let _ = stats.latency.record(micros(done - intended));
    if let Some(first) = first {
        let _ = stats.ttfb.record(micros(first - intended));
    }
    if let Some(first) = first_content {
        let _ = stats.ttfc.record(micros(first - intended));
    }
    for gap in gaps {
        let _ = stats.gaps.record(micros(gap));
    }
    stats.bytes += collected.len() as u64;
    let collected = Bytes::from(collected);
    match &stats.first_body {
        None => stats.first_body = Some(collected),
        Some(first) if *first != collected => stats.identical = false,
        Some(_) => {}
    }
}

/// Whether a body frame carries model output: a non-empty `"content":"..."` string.
fn has_content(data: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"content\":\"";
    data.windows(NEEDLE.len() + 1)
        .any(|w| w.starts_with(NEEDLE) && w[NEEDLE.len()] != b'"')
}

/// This process's CPU time (user and system, every thread) in clock ticks, from `/proc`.
fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let take = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    take(11).unwrap_or(0) + take(12).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Rc::new(parse_args()?);
    let mut connector = legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client = legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let stats = Rc::new(RefCell::new(Stats::new()?));
    let cpu_before = own_cpu_ticks();
    let started = Instant::now();
    let local = tokio::task::LocalSet::new();
    let mode = args.mode.clone();
    let run = {
        let (client, args, stats) = (client.clone(), args.clone(), stats.clone());
        async move {
            let mut tasks = Vec::new();
            match mode.as_str() {
                "seq" => {
                    for _ in 0..args.requests {
                        one(&client, &args, Instant::now(), &stats).await;
                    }
                }
                "closed" => {
                    let deadline = started + args.duration;
                    for _ in 0..args.connections {
                        let (client, args, stats) = (client.clone(), args.clone(), stats.clone());
                        tasks.push(tokio::task::spawn_local(async move {
                            while Instant::now() < deadline {
                                one(&client, &args, Instant::now(), &stats).await;
                            }
                        }));
                    }
                }
                "open" => {
                    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
                    let total = (args.duration.as_secs_f64() * args.rate as f64) as u64;
                    for i in 0..total {
                        // Latency counts from here, the intended start, even if the client is late.
                        let intended = started + interval.mul_f64(i as f64);
                        tokio::time::sleep_until(intended).await;
                        let (client, args, stats) = (client.clone(), args.clone(), stats.clone());
                        tasks.push(tokio::task::spawn_local(async move {
                            one(&client, &args, intended, &stats).await
                        }));
                    }
                }
                other => return Err(anyhow::anyhow!("unknown mode {other}")),
            }
            for task in tasks {
                task.await?;
            }
            Ok(())
        }
    };
    local.run_until(run).await?;
    let elapsed = started.elapsed();
    let cpu_ticks = own_cpu_ticks().saturating_sub(cpu_before);
    let stats = stats.borrow();
    let result = json!({
        "mode": args.mode,
        "requests": stats.latency.len(),
        "errors": stats.errors,
        "elapsed_s": elapsed.as_secs_f64(),
        "rps": stats.latency.len() as f64 / elapsed.as_secs_f64(),
        "latency_us": summary(&stats.latency),
        "ttfb_us": summary(&stats.ttfb),
        "ttfc_us": summary(&stats.ttfc),
        "gap_us": summary(&stats.gaps),
        "bytes": stats.bytes,
        "identical": stats.identical,
        "cpu_ticks": cpu_ticks,
    });
    println!("{result}");
    Ok(())
}
