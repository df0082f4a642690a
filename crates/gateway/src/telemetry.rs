//! Logging: one subscriber for the process, human or JSON lines, filtered by `RUST_LOG` or the
//! configured level. Secrets never reach it (they are `Secret`s); prompts are never logged at
//! info level.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Install the global subscriber; later calls do nothing.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: a log file or a journal gets plain text.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        // The request's fields once, under `span` (the span list would repeat them).
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}
