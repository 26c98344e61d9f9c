//! Change events on an EventBridge bus.

use super::sdk_error::classify;
use crate::domain::event::{ChangeEvent, SOURCE};
use crate::ports::{EventError, EventPublisher};
use async_trait::async_trait;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<Vec<bool>, EventError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let entries = events
            .iter()
            .map(|event| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.detail_type)
                    .detail(event.detail.to_string())
                    .time(DateTime::from_millis(event.time.timestamp_millis()))
                    .build()
            })
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| EventError::Publish(classify(&e).description))?;
        // One result per entry, in order; an entry with an error code was not taken.
        let mut taken: Vec<bool> = output
            .entries()
            .iter()
            .map(|entry| entry.error_code().is_none())
            .collect();
        taken.resize(events.len(), false);
        Ok(taken)
    }
}
