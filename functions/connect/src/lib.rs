//! The connect Lambda: invoked by the product's backend to add, update, sync now or remove a
//! connection. It always answers with JSON — the result, or `{"error": {"kind", "message"}}` —
//! so the caller never has to parse a Lambda error to tell a bad token from a bad host.

use anyhow::Context;
use makesync::aws::{load_sdk_config, AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::config::make_api_config_from_env;
use makesync::connect::{response_json, ConnectService};
use makesync::make::MakeApi;
use serde_json::Value;
use std::sync::Arc;

pub async fn build_service() -> anyhow::Result<ConnectService> {
    let settings = AwsSettings::from_env()?;
    settings.require_queue_url()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let make = MakeApi::new(make_api_config_from_env()?, clock.clone())
        .context("could not build the HTTP client")?;
    let backend = AwsBackend::new(&load_sdk_config().await, settings, clock.clone());
    service_for(&backend, make, clock)
}

pub fn service_for(
    backend: &AwsBackend,
    make: MakeApi,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ConnectService> {
    let queue = backend
        .queue
        .clone()
        .context("MAKESYNC_QUEUE_URL is not set — connect enqueues the first sync there")?;
    let store = backend.store.clone();
    // Straight to Secrets Manager, not through a cache: connect writes tokens.
    Ok(ConnectService::new(
        store.clone(),
        store.clone(),
        backend.secrets.clone(),
        queue,
        make,
        clock,
    )
    .with_runs(store.clone())
    .with_request_log(store))
}

/// Time kept after Make's part of a request, for storing what Make confirmed and answering.
pub const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn handle(service: &ConnectService, payload: Value) -> Value {
    handle_until(service, payload, None).await
}

/// [`handle`] within an invocation's deadline: Make is given until [`ANSWER_MARGIN`] before it.
pub async fn handle_until(
    service: &ConnectService,
    payload: Value,
    deadline: Option<makesync::worker::Deadline>,
) -> Value {
    let bounded;
    let service = match deadline {
        Some(deadline) => {
            bounded = service.with_make_deadline(deadline.monotonic.saturating_sub(ANSWER_MARGIN));
            &bounded
        }
        None => service,
    };
    let result = service.handle_payload(&payload).await;
    if let Err(error) = &result {
        tracing::warn!(error_kind = error.kind().as_str(), error = %error, "connect request refused");
    }
    response_json(&result)
}
