//! What the three functions share about running in Lambda, kept out of the library so that the
//! domain knows nothing of Lambda:
//!
//! - [`init_or_report`]: a cold start that fails (a missing or bad setting) is reported through
//!   the Runtime API's `/init/error`, so the console and the `Errors` metric show it with the
//!   variable's name, instead of a process that exits with a log line only;
//! - [`FunctionError`]: a handler error whose `errorType` is a readable kind
//!   (`StoreUnavailable`), not a Rust type name;
//! - [`deadline`]: the invocation's deadline on the library's clock.

use chrono::{TimeZone, Utc};
use lambda_runtime::{Context, Diagnostic};
use makesync::aws::SettingsError;
use makesync::clock::Clock;
use makesync::config::ConfigError;
use makesync::worker::Deadline;
use std::fmt;

/// Keeps glibc's allocator to two arenas. By default it gives each thread that allocates its
/// own (up to eight per core), and memory freed in one arena is not reused by another: with a
/// sync's rows allocated on whichever runtime thread ran it, that fragmentation is resident
/// memory the function is billed and killed for. Call it first thing in `main`, before the
/// runtime threads allocate.
pub fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt(3) with a documented parameter; it is thread-safe and applies to the
    // arenas created from then on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The Runtime API version every path starts with.
const API: &str = "2018-06-01";

/// A handler's failure, as Lambda records it.
#[derive(Debug)]
pub struct FunctionError {
    /// A readable kind, e.g. `StoreUnavailable`, `QueueUnavailable`.
    pub kind: &'static str,
    pub message: String,
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Diagnostic {
        Diagnostic {
            error_type: error.kind.to_string(),
            error_message: error.message,
        }
    }
}

/// The `errorType` of a failed cold start.
pub fn init_error_type(error: &anyhow::Error) -> &'static str {
    if error.downcast_ref::<SettingsError>().is_some()
        || error.downcast_ref::<ConfigError>().is_some()
    {
        "InvalidConfiguration"
    } else {
        "InitFailed"
    }
}

/// Returns what `build` built, or reports its error to the Runtime API's `/init/error` and
/// returns it (the caller exits). Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) the error is
/// only returned.
pub async fn init_or_report<T>(build: anyhow::Result<T>) -> Result<T, lambda_runtime::Error> {
    let error = match build {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let error_type = init_error_type(&error);
    let message = format!("{error:#}");
    tracing::error!(error_type, error = %message, "cold start failed");
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        if let Err(e) = report_init_error(&api, error_type, &message).await {
            tracing::error!(error = %e, "could not report the init error to the Runtime API");
        }
    }
    Err(message.into())
}

/// `POST /runtime/init/error` with the error type in `Lambda-Runtime-Function-Error-Type`.
pub async fn report_init_error(
    api: &str,
    error_type: &str,
    message: &str,
) -> Result<(), reqwest::Error> {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    reqwest::Client::new()
        .post(format!("http://{api}/{API}/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`) on `clock`'s scales.
pub fn deadline(context: &Context, clock: &dyn Clock) -> Deadline {
    let wall = i64::try_from(context.deadline)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(|| clock.wall());
    Deadline::at(wall, clock)
}
