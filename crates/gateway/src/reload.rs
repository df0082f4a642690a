//! Reloading the configuration while serving (SIGHUP, `POST /admin/reload`).
//!
//! The state built from a configuration ([`App`]) sits behind one cell. Each request takes the
//! `Arc<App>` current when it arrives and keeps it to its end, so a reload never changes a
//! request midway: streams in flight finish on the old state, new requests get the new one.
//! A reload reads the same file again (or the embedded default), validates it completely, and
//! only then swaps; an invalid file is refused with its reasons (logged, and answered to
//! `/admin/reload`), and the old configuration keeps serving.
//!
//! What outlives a reload: the listener (a changed `server.listen` or connection limit needs a
//! restart, and the reload says so), the account pool when `[antigravity]` did not change, the
//! metric families, kept responses, the rate windows and the usage writer.

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use serde::Serialize;

use crate::{app::App, config::Config};

/// The name `Config::source` has for the embedded default.
const EMBEDDED: &str = "<embedded default>";

/// The current state; see the module documentation.
#[derive(Debug)]
pub(crate) struct Current {
    app: RwLock<Arc<App>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// A reload that took effect.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reloaded {
    /// Where the configuration came from.
    pub(crate) source: String,
    /// Changes the reload could not apply (they need a restart).
    pub(crate) notes: Vec<String>,
}

impl Current {
    /// A cell holding `app`.
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self {
            app: RwLock::new(app),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The state new requests use.
    pub(crate) fn get(&self) -> Arc<App> {
        self.app.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Read the configuration file again and, when it is valid, serve it; otherwise the
    /// reasons it was refused (each `FILE:LINE: KEY: message`).
    pub(crate) async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let _one = self.reloading.lock().await;
        let old = self.get();
        let source = old.config.source.clone();
        let loading = source.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            if loading == EMBEDDED {
                Config::embedded()
            } else {
                Config::load(Path::new(&loading))
            }
        })
        .await;
        let refused = |reasons: Vec<String>| {
            for reason in &reasons {
                tracing::warn!(%reason, "the configuration was not reloaded");
            }
            reasons
        };
        let mut config = match loaded {
            Ok(Ok(config)) => config,
            Ok(Err(errors)) => {
                return Err(refused(errors.0.iter().map(ToString::to_string).collect()));
            }
            Err(err) => return Err(refused(vec![format!("the reload failed: {err}")])),
        };
        let notes = needs_restart(&config, &old.config);
        // The listener stays; so does the address the process was told to use.
        config.server.listen = old.config.server.listen;
        let app = match App::next(config, &old) {
            Ok(app) => app,
            Err(err) => return Err(refused(vec![format!("{source}: {}", err.message())])),
        };
        let app = Arc::new(app);
        crate::breaker::health::spawn(&app);
        *self.app.write().unwrap_or_else(|p| p.into_inner()) = app;
        for note in &notes {
            tracing::warn!(%note, "a setting needs a restart");
        }
        tracing::info!(%source, "configuration reloaded");
        Ok(Reloaded { source, notes })
    }
}

/// What a reload cannot change in a running process.
fn needs_restart(new: &Config, old: &Config) -> Vec<String> {
    let (n, o) = (&new.server, &old.server);
    let mut notes = Vec::new();
    let mut note = |changed: bool, key: &str| {
        if changed {
            notes.push(format!("{key} changed; a restart applies it"));
        }
    };
    note(n.listen != o.listen, "server.listen");
    note(
        n.header_read_timeout != o.header_read_timeout,
        "server.header_read_timeout",
    );
    note(
        n.max_header_bytes != o.max_header_bytes,
        "server.max_header_bytes",
    );
    note(n.max_headers != o.max_headers, "server.max_headers");
    note(new.state.usage_db != old.state.usage_db, "state.usage_db");
    note(
        new.state.backend != old.state.backend
            || new.state.url != old.state.url
            || new.state.prefix != old.state.prefix,
        "[state] backend, url and prefix",
    );
    note(
        new.logging.format != old.logging.format || new.logging.level != old.logging.level,
        "logging",
    );
    notes
}
