//! The `gateway` binary: `serve` (the default), `check`, `login antigravity`, `accounts ...`,
//! `completions SHELL` and `man`.

use std::{
    io::{BufRead, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use antigravity_service::{
    AccountStore, CALLBACK_PATH, ImportOutcome, Imported, LoginFlow, Profile,
};
use gateway::{Config, config::LogFormat, telemetry};
use gateway_proxy::Client;

/// One OpenAI-compatible endpoint in front of Antigravity and OpenAI-compatible providers.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (default: ./gateway.toml if present, else the embedded default).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Listen on this address instead of `server.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Log format (overrides `logging.format`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<Format>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Listen on this address instead of `server.listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration and print it, secrets redacted.
    Check,
    /// Add an account by logging in.
    Login {
        #[command(subcommand)]
        provider: Provider,
    },
    /// Manage the accounts of an in-process Google pool.
    Accounts {
        /// The pool: `antigravity` (the default) or `geminicli`.
        #[arg(long, global = true, value_enum, default_value_t = Pool::Antigravity)]
        pool: Pool,
        #[command(subcommand)]
        action: Accounts,
    },
    /// Print the shell completion script for SHELL.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the manual page (roff).
    Man,
}

#[derive(Debug, Subcommand)]
enum Provider {
    /// Log in with a Google account for the Antigravity backend.
    Antigravity {
        /// Do not wait for the browser's redirect: paste the redirected URL instead.
        #[arg(long)]
        no_browser: bool,
    },
    /// Log in with a Google account for the Gemini CLI backend (Code Assist for individuals).
    Geminicli {
        /// Do not wait for the browser's redirect: paste the redirected URL instead.
        #[arg(long)]
        no_browser: bool,
    },
}

/// An in-process Google pool.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Pool {
    Antigravity,
    Geminicli,
}

impl Pool {
    fn profile(self) -> Profile {
        match self {
            Self::Antigravity => Profile::Antigravity,
            Self::Geminicli => Profile::GeminiCli,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Accounts {
    /// List the accounts and their state.
    List,
    /// Import exported account files (this gateway's, gcli2api, CLIProxyAPI,
    /// Antigravity-Manager, opencode-antigravity-auth, the Gemini CLI's `oauth_creds.json`).
    Import {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Enable an account.
    Enable {
        /// The account id (see `accounts list`).
        id: String,
    },
    /// Disable an account.
    Disable {
        /// The account id (see `accounts list`).
        id: String,
    },
    /// Remove an account (its file).
    Remove {
        /// The account id (see `accounts list`).
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            #[expect(
                clippy::print_stderr,
                reason = "the binary reports fatal errors on stderr"
            )]
            {
                eprintln!("gateway: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let default = Path::new("gateway.toml");
    let config = match path {
        Some(path) => Config::load(path),
        None if default.exists() => Config::load(default),
        None => Config::embedded(),
    };
    config.map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

#[expect(
    clippy::print_stdout,
    reason = "commands print their results for the user"
)]
fn run(cli: Cli) -> Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    match command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gateway", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Command::Check = command {
        return Ok(match load_config(cli.config.as_deref()) {
            Ok(config) => {
                println!(
                    "# effective configuration from {}\n{}",
                    config.source(),
                    gateway::effective_toml(&config)
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                #[expect(clippy::print_stderr, reason = "check reports problems on stderr")]
                {
                    eprintln!("{err:#}");
                }
                ExitCode::FAILURE
            }
        });
    }
    let config = load_config(cli.config.as_deref())?;
    let format = match cli.log_format {
        Some(Format::Json) => LogFormat::Json,
        Some(Format::Human) => LogFormat::Human,
        None => config.logging().format,
    };
    telemetry::init(format, &config.logging().level);
    let (runtime, workers) = runtime().context("cannot start the runtime")?;
    match command {
        Command::Serve { listen } => {
            runtime.block_on(serve(config, listen.or(cli.listen), workers))?
        }
        Command::Check | Command::Completions { .. } | Command::Man => {}
        Command::Login {
            provider: Provider::Antigravity { no_browser },
        } => runtime.block_on(login(&config, Profile::Antigravity, no_browser))?,
        Command::Login {
            provider: Provider::Geminicli { no_browser },
        } => runtime.block_on(login(&config, Profile::GeminiCli, no_browser))?,
        Command::Accounts { pool, action } => accounts(&config, pool.profile(), action)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The runtime: one worker per core the process may use (`TOKIO_WORKER_THREADS` overrides),
/// and on a single core the single-threaded scheduler, which does the same work without the
/// cross-thread hand-offs of a pool of one.
fn runtime() -> std::io::Result<(tokio::runtime::Runtime, usize)> {
    let asked = std::env::var("TOKIO_WORKER_THREADS").ok();
    let parsed = asked
        .as_deref()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| *n > 0);
    if let (Some(asked), None) = (&asked, parsed) {
        tracing::warn!(value = %asked, "TOKIO_WORKER_THREADS is not a positive number; using one worker per core");
    }
    let workers = parsed
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        // Set here, so the runtime never reads (and panics on) the variable itself.
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    Ok((builder.enable_all().build()?, workers))
}

async fn serve(mut config: Config, listen: Option<SocketAddr>, workers: usize) -> Result<()> {
    if let Some(listen) = listen {
        config = config.with_listen(listen);
    }
    // Before the address is logged: from then on a SIGHUP reloads instead of ending the process.
    let reloads = reload_signal();
    let listener = tokio::net::TcpListener::bind(config.server().listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server().listen))?;
    let address = listener.local_addr()?;
    tracing::info!(target: "gateway::startup", %address, config = %config.source(), workers, "gateway listening on {address}");
    gateway::serve_with_reload(listener, config, shutdown_signal(), reloads).await?;
    Ok(())
}

/// SIGHUP, as reload requests (one waiting at most: several signals in a row are one reload).
fn reload_signal() -> tokio::sync::mpsc::Receiver<()> {
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = reload.try_send(());
                }
            });
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; reload with POST /admin/reload")
        }
    }
    #[cfg(not(unix))]
    drop(reload);
    reloads
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[expect(clippy::print_stdout, reason = "the login talks to the user")]
async fn login(config: &Config, profile: Profile, no_browser: bool) -> Result<()> {
    let settings = config.pool(profile);
    let flow = settings.login()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect = format!("http://{}{CALLBACK_PATH}", listener.local_addr()?);
    println!(
        "Open this URL in a browser and sign in with the Google account to add:\n\n  {}\n",
        flow.authorization_url(&redirect)
    );
    let code = if no_browser {
        println!(
            "After signing in, the browser shows a page that cannot load. Copy its whole address and paste it here:"
        );
        read_pasted(&flow, false).await?
    } else {
        println!("Waiting for the browser to come back (or paste the redirected address here)...");
        tokio::select! {
            code = flow.receive_callback(&listener) => code?,
            code = read_pasted(&flow, true) => code?,
        }
    };
    let account = flow.complete(&code, &redirect).await?;
    let store = AccountStore::new(&settings.credentials_dir);
    let project = account.project_id.clone().unwrap_or_default();
    let id = store.add(account)?;
    println!(
        "Saved account {id} (project {project}) in {}; a running gateway uses it within seconds",
        store.dir().display()
    );
    Ok(())
}

/// The code from a line the user pastes. At the end of input (nothing will ever be pasted)
/// this waits forever when `wait_at_eof` (the browser may still come back), else fails.
async fn read_pasted(flow: &LoginFlow<Client>, wait_at_eof: bool) -> Result<String> {
    let line = read_line_detached()
        .await
        .context("cannot read the pasted answer")??;
    if line.is_empty() {
        if wait_at_eof {
            return std::future::pending().await;
        }
        bail!("no answer was pasted (standard input is closed)");
    }
    Ok(flow.code_from_pasted(&line)?)
}

/// Read one line of standard input on a thread of its own. A blocking read cannot be
/// cancelled, and a runtime waits for its `spawn_blocking` tasks when it shuts down: reading
/// there kept `gateway login` alive after the browser's callback until Enter was pressed. A
/// detached thread does not keep the process alive once `main` returns.
fn read_line_detached() -> tokio::sync::oneshot::Receiver<std::io::Result<String>> {
    let (answer, line) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
        let _ = answer.send(read);
    });
    line
}

#[expect(clippy::print_stdout, reason = "account commands print their results")]
fn accounts(config: &Config, profile: Profile, action: Accounts) -> Result<()> {
    let store = AccountStore::new(&config.pool(profile).credentials_dir);
    match action {
        Accounts::List => {
            let (accounts, problems) = store.load();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{} account(s) in {}",
                accounts.len(),
                store.dir().display()
            )?;
            for account in accounts {
                let state = match &account.state.disabled_reason {
                    Some(reason) => format!("disabled: {reason}"),
                    None => "enabled".to_owned(),
                };
                writeln!(
                    out,
                    "{}\tproject={}\t{state}\trequests={}\tcooling={:?}",
                    account.id,
                    account.file.project_id.as_deref().unwrap_or("(unknown)"),
                    account.state.requests,
                    account.state.cooldowns.keys().collect::<Vec<_>>()
                )?;
            }
            for problem in problems {
                writeln!(out, "unreadable: {problem}")?;
            }
        }
        Accounts::Import { files } => {
            for file in files {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let imported = store
                    .import_all(&bytes)
                    .with_context(|| format!("cannot import {}", file.display()))?;
                for Imported { id, outcome } in imported {
                    let note = match outcome {
                        ImportOutcome::Added => "",
                        ImportOutcome::Updated => " (updated the stored account)",
                        ImportOutcome::KeptNewer => " (kept the newer token already stored)",
                    };
                    println!("imported {} as {id}{note}", file.display());
                }
            }
            println!("a running gateway picks the accounts up within seconds");
        }
        Accounts::Enable { id } => set_enabled(&store, &id, true)?,
        Accounts::Disable { id } => set_enabled(&store, &id, false)?,
        Accounts::Remove { id } => {
            if !store.remove(&id)? {
                bail!("no account {id} in {}", store.dir().display());
            }
            println!("removed {id} (a running gateway stops using it within seconds)");
        }
    }
    Ok(())
}

#[expect(clippy::print_stdout, reason = "account commands print their results")]
fn set_enabled(store: &AccountStore, id: &str, enabled: bool) -> Result<()> {
    if !store.set_enabled(id, enabled)? {
        bail!("no account {id} in {}", store.dir().display());
    }
    println!(
        "{} {id} (a running gateway picks this up within seconds)",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}
