//! The worker Lambda: an SQS batch of sync requests in, one sync run per request out.
//!
//! Records are handled concurrently, each in its own task, so that one record's panic fails
//! that record only. What cannot succeed by trying again (a malformed body, an unknown or
//! paused connection, an invalid token) is dropped after it is logged or recorded; what may
//! (Make 5xx, a 429 that did not clear, AWS throttling) is reported as a batch item failure, so
//! SQS delivers it again after the visibility timeout and, in the end, to the dead-letter queue.
//!
//! The invocation's deadline bounds every sync (a sync that would run past it gives up
//! cleanly and its message is returned), and the function's memory size bounds how many run
//! at once (see `makesync::memory_budget`).

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use makesync::aws::{load_sdk_config, AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::config::make_api_config_from_env;
use makesync::make::MakeApi;
use makesync::memory_budget::MemoryBudget;
use makesync::metrics::{EmfStdout, MetricsSink};
use makesync::sync::SyncEngine;
use makesync::worker::{Deadline, WorkOutcome, Worker};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Everything the handler needs, built once per cold start.
pub async fn build_worker() -> anyhow::Result<Worker> {
    let settings = AwsSettings::from_env()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let make = MakeApi::new(make_api_config_from_env()?, clock.clone())
        .context("could not build the HTTP client")?;
    let backend = AwsBackend::new(&load_sdk_config().await, settings, clock.clone());
    let metrics = Arc::new(EmfStdout::for_this_function("makesync-worker"));
    Ok(worker_for(&backend, make, clock, metrics))
}

pub fn worker_for(
    backend: &AwsBackend,
    make: MakeApi,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn MetricsSink>,
) -> Worker {
    let store = backend.store.clone();
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock)
        .with_metrics(metrics.clone())
        .with_removed_user_retention_days(backend.settings.removed_user_retention_days);
    let mut worker = Worker::new(store, backend.cached_secrets.clone(), engine, make)
        .with_pause_after_failures(backend.settings.pause_after_failures)
        .with_failing_streak_alert(backend.settings.failing_streak_alert)
        .with_lease(backend.settings.sync_lease)
        .with_metrics(metrics);
    // An erase job cut off by its deadline continues through the sync queue.
    if let Some(queue) = &backend.queue {
        worker = worker.with_queue(queue.clone());
    }
    match backend.settings.function_memory_mb {
        Some(memory_mb) => worker.with_memory_budget(MemoryBudget::for_function(
            memory_mb,
            backend.settings.assumed_users,
        )),
        None => worker,
    }
}

/// Handles every record of the batch within `deadline`; the response lists the ones SQS
/// should deliver again.
pub async fn handle(
    worker: &Worker,
    event: SqsEvent,
    deadline: Option<Deadline>,
) -> SqsBatchResponse {
    let records = event.records.len();
    let mut tasks = JoinSet::new();
    let mut message_ids = HashMap::new();
    for (position, record) in event.records.into_iter().enumerate() {
        let message_id = record
            .message_id
            .clone()
            .unwrap_or_else(|| format!("record-{position}"));
        let worker = worker.clone();
        let id = message_id.clone();
        let task = tasks.spawn(async move {
            match record.body.as_deref() {
                Some(body) => {
                    let outcome = worker.handle_body_until(body, deadline).await;
                    log_outcome(&id, &outcome);
                    outcome.should_retry()
                }
                None => {
                    tracing::error!(message_id = %id, "sync message without a body dropped");
                    false
                }
            }
        });
        message_ids.insert(task.id(), message_id);
    }
    let mut response = SqsBatchResponse::default();
    while let Some(joined) = tasks.join_next_with_id().await {
        let (task, retry) = match joined {
            Ok((task, retry)) => (task, retry),
            Err(error) => {
                // A bug, not bad input: let SQS try again, and in the end park it in the
                // dead-letter queue where someone will look.
                tracing::error!(message_id = message_ids.get(&error.id()).map(String::as_str), error = %error, "a sync task panicked");
                (error.id(), true)
            }
        };
        if retry {
            if let Some(message_id) = message_ids.remove(&task) {
                response.add_failure(message_id);
            }
        }
    }
    worker.record_batch(records, response.batch_item_failures.len());
    response
}

fn log_outcome(message_id: &str, outcome: &WorkOutcome) {
    match outcome {
        WorkOutcome::Synced(report) => {
            let counts = &report.run.counts;
            tracing::info!(message_id, connection_id = %report.run.connection_id, run_id = %report.run.run_id,
                fetched = counts.fetched, added = counts.added, updated = counts.updated,
                removed = counts.removed, "sync succeeded");
        }
        WorkOutcome::Failed { report, retry } => {
            let error = report.run.error.as_ref();
            tracing::warn!(message_id, connection_id = %report.run.connection_id, run_id = %report.run.run_id,
                error_kind = error.map(|e| e.kind.as_str()), error = error.map(|e| e.message.as_str()),
                retry, "sync failed");
        }
        WorkOutcome::Erased {
            connection_id,
            deleted,
            finished,
        } => {
            tracing::info!(message_id, connection_id = %connection_id, deleted, finished, "erase job ran");
        }
        WorkOutcome::Skipped { reason } => {
            tracing::warn!(message_id, reason = %reason, "sync message dropped");
        }
        WorkOutcome::Deferred { error } => {
            tracing::warn!(message_id, error = %error, "sync deferred; SQS will deliver it again");
        }
        WorkOutcome::Returned { reason } => {
            tracing::warn!(message_id, reason = %reason, "sync not started; SQS will deliver it again");
        }
    }
}
