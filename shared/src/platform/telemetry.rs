//! Log output: JSON lines in Lambda (one object per line, with the current span's fields, so
//! every line about a sync carries `connection_id` and `run_id`), plain text on a terminal.
//!
//! `RUST_LOG` chooses the level, but only makesync's own crates ever log below INFO. Every
//! other crate is capped at INFO whatever `RUST_LOG` says, because below it they log what
//! passes through them: `lambda_runtime` logs the raw invocation event at TRACE (a connect
//! request carries a Make token), the AWS SDK (`aws_smithy_*`, `aws_sdk_*`, `aws_sigv4`) and the
//! HTTP stack (`hyper`, `reqwest`, `h2`, `rustls`) log requests, headers and bodies at DEBUG and
//! TRACE (a secret's value). makesync's own lines never hold a token at any level.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

/// The crates that may log below INFO: makesync's own (`makesync`, `makesync_connect`, …; a
/// target matches by prefix).
const OWN_CRATES: &str = "makesync";

/// The cap every line passes besides `RUST_LOG`: makesync's crates at any level, every other
/// crate at INFO and above.
pub fn dependency_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target(OWN_CRATES, LevelFilter::TRACE)
}

fn env_filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level))
}

/// JSON logs for Lambda. `RUST_LOG` sets the level (default `info`), within [`dependency_cap`].
pub fn init_json() {
    let layer = fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .with_filter(env_filter("info").and(dependency_cap()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Human-readable logs on stderr for the CLI; `default_level` unless `RUST_LOG` says
/// otherwise, within [`dependency_cap`].
pub fn init_text(default_level: &str) {
    use std::io::IsTerminal;
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(env_filter(default_level).and(dependency_cap()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Colour only on a terminal, and not when `NO_COLOR` is set to anything but the empty string
/// (no-color.org): logs piped to a file or another program carry no escape sequences.
fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(use_colour(true, None));
        assert!(use_colour(true, empty));
        assert!(!use_colour(true, set));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, set));
    }
    use tracing::Level;

    #[test]
    fn dependencies_never_log_below_info_and_makesync_may() {
        let cap = dependency_cap();
        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client",
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_http_client::hyper_1",
            "aws_sdk_secretsmanager::config",
            "aws_sigv4::http_request::sign",
            "hyper_util::client::legacy",
            "reqwest::connect",
            "h2::codec",
            "rustls::client",
        ] {
            assert!(!cap.would_enable(target, &Level::DEBUG), "{target}");
            assert!(!cap.would_enable(target, &Level::TRACE), "{target}");
            assert!(cap.would_enable(target, &Level::WARN), "{target}");
        }
        for target in ["makesync::worker", "makesync_connect", "makesync_lambda"] {
            assert!(cap.would_enable(target, &Level::TRACE), "{target}");
        }
    }
}
