//! The scheduler Lambda: on each EventBridge schedule, one sync request per active connection.

use anyhow::Context;
use makesync::aws::{load_sdk_config, AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::config::make_api_config_from_env;
use makesync::instance::InstanceFollower;
use makesync::make::MakeApi;
use makesync::metrics::{EmfStdout, MetricsSink};
use makesync::schedule::{ScheduleError, ScheduleSummary, Scheduler};
use makesync_lambda::FunctionError;
use std::sync::Arc;

/// Connections read per page of the connections table.
const PAGE_SIZE: usize = 500;

pub async fn build_scheduler() -> anyhow::Result<Scheduler> {
    let settings = AwsSettings::from_env()?;
    settings.require_queue_url()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let make = MakeApi::new(make_api_config_from_env()?, clock.clone())
        .context("could not build the HTTP client")?;
    let backend = AwsBackend::new(&load_sdk_config().await, settings, clock.clone());
    let metrics = Arc::new(EmfStdout::for_this_function("makesync-scheduler"));
    scheduler_for(&backend, make, clock, metrics)
}

/// The scheduler on `backend`; before each fan-out it discovers the White Label instances
/// followed (through `make`, with their tokens) and announces their changes on the bus.
pub fn scheduler_for(
    backend: &AwsBackend,
    make: MakeApi,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn MetricsSink>,
) -> anyhow::Result<Scheduler> {
    let queue = backend
        .queue
        .clone()
        .context("MAKESYNC_QUEUE_URL is not set — the scheduler sends to that queue")?;
    let mut instances = InstanceFollower::new(
        backend.store.clone(),
        backend.store.clone(),
        backend.secrets.clone(),
        make,
        clock.clone(),
    )
    .with_removed_user_retention_days(backend.settings.removed_user_retention_days);
    if let Some(events) = &backend.events {
        instances = instances.with_publisher(events.clone());
    }
    Ok(Scheduler::new(backend.store.clone(), queue, clock)
        .with_page_size(PAGE_SIZE)
        .with_metrics(metrics)
        .with_instances(instances))
}

/// Runs one fan-out. The event's content does not matter: any invocation means "now". Fails
/// when a request could not be sent, so that it shows in the function's error metric; the
/// template turns off Lambda's own retries of the invocation, which would enqueue every other
/// connection a second time.
pub async fn handle(scheduler: &Scheduler) -> Result<ScheduleSummary, FunctionError> {
    handle_until(scheduler, None).await
}

/// Time kept back from the invocation's deadline for what follows the instance follows:
/// enqueueing the connections they made, the summary and the metrics.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// [`handle`] within `deadline` (on the scheduler clock's monotonic scale), less
/// [`DEADLINE_MARGIN`].
pub async fn handle_until(
    scheduler: &Scheduler,
    deadline: Option<std::time::Duration>,
) -> Result<ScheduleSummary, FunctionError> {
    let deadline = deadline.map(|d| d.saturating_sub(DEADLINE_MARGIN));
    let summary = scheduler.fan_out_until(deadline).await.map_err(|error| {
        let kind = match &error {
            ScheduleError::Store(_) => "StoreUnavailable",
            ScheduleError::Queue(_) => "QueueUnavailable",
        };
        FunctionError {
            kind,
            message: error.to_string(),
        }
    })?;
    if summary.failed > 0 {
        return Err(FunctionError {
            kind: "QueueUnavailable",
            message: format!(
                "{} of {} sync requests could not be sent to the queue (see the log lines before this one); the other connections were enqueued",
                summary.failed,
                summary.failed + summary.enqueued
            ),
        });
    }
    Ok(summary)
}
