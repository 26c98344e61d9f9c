//! Log output: JSON lines in Lambda (one object per line, with the current span's fields, so
//! every line about a sync carries `connection_id` and `run_id`), plain text on a terminal.

use tracing_subscriber::{fmt, EnvFilter};

/// JSON logs for Lambda. `RUST_LOG` overrides the level (default `info`).
pub fn init_json() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}

/// Human-readable logs on stderr for the CLI; `default_level` unless `RUST_LOG` says otherwise.
pub fn init_text(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
