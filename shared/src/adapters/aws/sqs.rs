//! Sync requests on SQS: `SendMessageBatch`, ten messages a call, several calls in flight, and
//! entries that fail for a passing reason sent again.

use super::sdk_error::classify;
use crate::make::RetryPolicy;
use crate::ports::{EnqueueFailure, QueueError, SyncQueue};
use crate::queue::SyncRequest;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use std::time::Duration;
use tokio::task::JoinSet;

/// `SendMessageBatch` takes at most ten entries.
const BATCH_LIMIT: usize = 10;
/// Batches sent at the same time.
const IN_FLIGHT: usize = 8;
/// Attempts per entry before it is reported as failed.
const ATTEMPTS: u32 = 4;

/// Waits between attempts at a batch: the Make client's backoff (exponential, full jitter).
fn send_backoff() -> RetryPolicy {
    RetryPolicy {
        max_attempts: ATTEMPTS,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        max_elapsed: Duration::from_secs(30),
    }
}

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one batch (≤ 10), retrying what failed for a passing reason; returns what could
    /// not be sent.
    async fn send_batch(&self, requests: Vec<SyncRequest>) -> Vec<EnqueueFailure> {
        // Entry ids are positions in `requests`, so a failed entry maps back to its request.
        let mut pending: Vec<usize> = (0..requests.len()).collect();
        let mut failures = Vec::new();
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(send_backoff().delay(attempt, None)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(requests[i].to_body())
                        .build()
                        .expect("id and body are set")
                })
                .collect::<Vec<_>>();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    let mut retry = Vec::new();
                    for failed in output.failed() {
                        let Ok(index) = failed.id().parse::<usize>() else {
                            continue;
                        };
                        let reason = format!(
                            "SQS refused the message: {} ({})",
                            failed.code(),
                            failed.message().unwrap_or("no message")
                        );
                        if failed.sender_fault() {
                            failures.push(EnqueueFailure {
                                connection_id: requests[index].connection_id.clone(),
                                reason,
                            });
                        } else {
                            last_error = reason;
                            retry.push(index);
                        }
                    }
                    pending = retry;
                }
                Err(error) => {
                    let failure = classify(&error);
                    last_error = format!("SQS: {}", failure.description);
                    if !failure.transient {
                        break;
                    }
                }
            }
        }
        failures.extend(pending.into_iter().map(|i| EnqueueFailure {
            connection_id: requests[i].connection_id.clone(),
            reason: last_error.clone(),
        }));
        failures
    }
}

#[async_trait]
impl SyncQueue for SqsQueue {
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<Vec<EnqueueFailure>, QueueError> {
        let mut batches = requests.chunks(BATCH_LIMIT).map(<[SyncRequest]>::to_vec);
        let mut in_flight = JoinSet::new();
        let mut failures = Vec::new();
        loop {
            while in_flight.len() < IN_FLIGHT {
                let Some(batch) = batches.next() else { break };
                let queue = self.clone();
                in_flight.spawn(async move { queue.send_batch(batch).await });
            }
            match in_flight.join_next().await {
                Some(Ok(batch_failures)) => failures.extend(batch_failures),
                Some(Err(join_error)) => {
                    return Err(QueueError::Unavailable(format!(
                        "a send task failed: {join_error}"
                    )))
                }
                None => break,
            }
        }
        Ok(failures)
    }
}
