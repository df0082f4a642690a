//! Logging: one subscriber for the process, human or JSON lines, filtered by `RUST_LOG` or the
//! configured level. Secrets never reach it (they are `Secret`s); prompts are never logged at
//! info level.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Install the global subscriber; later calls do nothing.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}
