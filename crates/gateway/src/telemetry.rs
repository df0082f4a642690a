//! Logging: one subscriber for the process, human or JSON lines, filtered by `RUST_LOG` or the
//! configured level. Secrets never reach it (they are `Secret`s); prompts are never logged at
//! info level.

use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Install the global subscriber; later calls do nothing.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: a log file or a journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = subscriber(format, filter, std::io::stderr, ansi).try_init();
}

/// The subscriber writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        // The request's fields once, under `span` (the span list would repeat them).
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Human => Box::new(builder.compact().finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log one line inside a request span with `format`; what was written.
    fn logged(format: LogFormat, ansi: bool) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let writer = move || Sink(sink.clone());
        let subscriber = subscriber(format, EnvFilter::new("info"), writer, ansi);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = "/v1/chat/completions", status = 200);
            span.in_scope(|| tracing::info!("request answered"));
        });
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_span_once() {
        let line = logged(LogFormat::Json, false);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["span"]["path"], "/v1/chat/completions", "{line}");
        assert!(value.get("spans").is_none(), "{line}");
        assert_eq!(line.matches("/v1/chat/completions").count(), 1, "{line}");
    }

    #[test]
    fn plain_text_has_no_colour_codes() {
        let plain = logged(LogFormat::Human, false);
        assert!(plain.contains("request answered"), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        // On a terminal they are welcome.
        assert!(logged(LogFormat::Human, true).contains('\u{1b}'));
    }
}
