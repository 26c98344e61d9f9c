//! The events Lambda: the users table's stream in, change events on the EventBridge bus out
//! (see `makesync::events` for what is announced). A batch that cannot be announced whole
//! reports the first record it could not announce, so the stream hands that record and the
//! ones after it over again; a record that never can be is parked by Lambda in the on-failure
//! destination after its retries.

use anyhow::Context;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use makesync::aws::{load_sdk_config, AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::events::{ChangeAnnouncer, ItemChange};
use std::sync::Arc;

pub async fn build_announcer() -> anyhow::Result<ChangeAnnouncer> {
    let settings = AwsSettings::from_env()?;
    settings.require_event_bus()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let backend = AwsBackend::new(&load_sdk_config().await, settings, clock);
    announcer_for(&backend)
}

pub fn announcer_for(backend: &AwsBackend) -> anyhow::Result<ChangeAnnouncer> {
    let publisher = backend
        .events
        .clone()
        .context("MAKESYNC_EVENT_BUS is not set — the events function puts events on that bus")?;
    Ok(ChangeAnnouncer::new(backend.store.clone(), publisher)
        .with_detail(backend.settings.event_detail))
}

/// The item of an image, or `None` for an image the record does not have.
fn image(item: serde_dynamo::Item) -> Result<Option<serde_json::Value>, String> {
    let value: serde_json::Value =
        serde_dynamo::from_item(item).map_err(|e| format!("the image does not read: {e}"))?;
    Ok(value
        .as_object()
        .is_some_and(|map| !map.is_empty())
        .then_some(value))
}

/// Announces the batch; the response names the first record not announced.
pub async fn handle(announcer: &ChangeAnnouncer, event: Event) -> DynamoDbEventResponse {
    let mut changes = Vec::with_capacity(event.records.len());
    let mut unreadable = None;
    for record in event.records {
        let sequence = record
            .change
            .sequence_number
            .clone()
            .unwrap_or_else(|| record.event_id.clone());
        match (
            image(record.change.old_image),
            image(record.change.new_image),
        ) {
            (Ok(old), Ok(new)) => changes.push(ItemChange {
                sequence,
                old,
                new,
                at: record.change.approximate_creation_date_time,
            }),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(sequence = %sequence, error = %error, "stream record not readable");
                unreadable = Some(sequence);
                break;
            }
        }
    }
    let failed = match announcer.announce(&changes).await {
        Ok(()) => unreadable,
        Err((sequence, error)) => {
            tracing::warn!(sequence = %sequence, error = %error, "change events not all announced; the stream will hand them over again");
            Some(sequence)
        }
    };
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    } else {
        tracing::info!(records = changes.len(), "change events announced");
    }
    response
}
