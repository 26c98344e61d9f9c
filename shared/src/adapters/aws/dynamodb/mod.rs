//! Connections, users and sync runs in DynamoDB.
//!
//! Three tables, every key led by the connection id (see docs/data.md, "Table design"):
//! - connections: `connectionId` (S). The scheduler scans it; nothing else lists across
//!   connections, and it holds no user, so the scan costs the same however many users there are.
//! - users: `connectionId` (S) + `userId` (N). One connection is one partition, read with
//!   `Query`. The item at `userId` 0 (Make's user ids start at 1) is the connection's write
//!   guard: `usersWrittenBy` holds the start time of the run that last wrote, and a run that
//!   started earlier is refused by a condition on it.
//!   The partition `#organization/{host}/{organizationId}` holds, at `userId` 0, which
//!   connection syncs that Make organization now (`holder`, `leaseUntil`).
//! - sync runs: `connectionId` (S) + `runId` (S, a UUIDv7, so it sorts by start time); items
//!   expire through the TTL attribute `expiresAt`.
//!
//! This file holds the store, its tables' names and the batch reads and writes every table
//! shares; each port's items live apart: [`connections`] (with their [`leases`]),
//! [`credentials`], [`users`] (with their write guard), [`runs`] and the connect
//! [`requests`]' answers.

mod connections;
mod credentials;
mod leases;
mod requests;
mod runs;
mod users;

use super::item::{from_item, Item};
use super::sdk_error::{classify, AwsFailure};
use crate::make::RetryPolicy;
use crate::ports::StoreError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// `BatchWriteItem` takes at most 25 requests.
const BATCH_WRITE_LIMIT: usize = 25;
/// `BatchGetItem` takes at most 100 keys.
const BATCH_GET_LIMIT: usize = 100;
/// Attempts at one batch's unprocessed items before giving up as throttled.
const BATCH_WRITE_ATTEMPTS: u32 = 8;
const GUARD_USER_ID: &str = "0";
/// The users table's TTL attribute (epoch seconds), the template's `TimeToLiveSpecification`.
pub const EXPIRES_AT: &str = "expiresAt";
/// The connections table's index by `tenantId` (the template's `TenantConnections`): what a
/// tenant's discovery reads. Connections without a tenant are not in it.
pub const TENANT_INDEX: &str = "byTenant";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    connections_table: String,
    credentials_table: String,
    users_table: String,
    runs_table: String,
    run_retention: Duration,
}

impl DynamoStore {
    /// The items of `keys` (at most [`BATCH_GET_LIMIT`]) that exist, read strongly
    /// consistent, in no particular order; keys DynamoDB leaves unprocessed are asked again
    /// with backoff.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(found);
        }
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        );
        let mut attempt = 0;
        while let Some(request) = pending.take() {
            if attempt > 0 {
                tokio::time::sleep(batch_write_backoff().delay(attempt, None)).await;
            }
            attempt += 1;
            let sent = self
                .client
                .batch_get_item()
                .request_items(table, request.clone())
                .send()
                .await;
            match sent {
                Ok(output) => {
                    if let Some(items) = output.responses().and_then(|r| r.get(table)) {
                        found.extend(items.iter().cloned());
                    }
                    pending = output
                        .unprocessed_keys()
                        .and_then(|keys| keys.get(table))
                        .filter(|keys| !keys.keys().is_empty())
                        .cloned();
                }
                Err(error) => {
                    let failure = classify(&error);
                    if !failure.transient {
                        return Err(store_error(failure));
                    }
                    pending = Some(request);
                }
            }
            if pending.is_some() && attempt >= BATCH_WRITE_ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB left reads of {table} unprocessed after {attempt} attempts"
                )));
            }
        }
        Ok(found)
    }

    pub fn new(client: Client, settings: &super::AwsSettings) -> Self {
        Self {
            client,
            connections_table: settings.connections_table.clone(),
            credentials_table: settings.credentials_table.clone(),
            users_table: settings.users_table.clone(),
            runs_table: settings.runs_table.clone(),
            run_retention: settings.run_retention,
        }
    }

    /// Writes requests 25 at a time, sending back `UnprocessedItems` with exponential backoff
    /// and jitter until they are all written or the attempts run out.
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    tokio::time::sleep(batch_write_backoff().delay(attempt, None)).await;
                }
                attempt += 1;
                let sent = self
                    .client
                    .batch_write_item()
                    .request_items(table, pending.clone())
                    .send()
                    .await;
                match sent {
                    Ok(output) => {
                        pending = output
                            .unprocessed_items()
                            .and_then(|items| items.get(table))
                            .cloned()
                            .unwrap_or_default();
                    }
                    Err(error) => {
                        let failure = classify(&error);
                        if !failure.transient {
                            return Err(store_error(failure));
                        }
                        tracing::debug!(table, attempt, error = %failure.description, "batch write throttled");
                    }
                }
                if !pending.is_empty() && attempt >= BATCH_WRITE_ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "DynamoDB left {} writes to {table} unprocessed after {attempt} attempts",
                        pending.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Waits between attempts at unprocessed batch items: the Make client's backoff (exponential,
/// full jitter), with DynamoDB's shorter steps.
fn batch_write_backoff() -> RetryPolicy {
    RetryPolicy {
        max_attempts: BATCH_WRITE_ATTEMPTS,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(3),
        max_elapsed: Duration::from_secs(60),
    }
}

/// `SET a, b REMOVE c, d`.
fn update_expression(set: &[&str], remove: &[&str]) -> String {
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    expression
}

/// Whether a write was refused by its condition (an id taken, a version moved on, a lease
/// held, a newer run's claim), whichever operation made it.
fn condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> bool {
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

fn store_error(failure: AwsFailure) -> StoreError {
    if failure.transient {
        StoreError::Unavailable(format!("DynamoDB: {}", failure.description))
    } else {
        StoreError::Backend(format!("DynamoDB: {}", failure.description))
    }
}

/// Reads an item. serde's message would quote the value it refused (a member's name), and
/// this error is logged: only the field is named.
fn decode<T: DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    serde_path_to_error::deserialize(from_item(item)).map_err(|e| {
        StoreError::Corrupt(format!(
            "a {what} item does not read at field `{}`",
            e.path()
        ))
    })
}

fn put(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn delete(key: Item) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}
