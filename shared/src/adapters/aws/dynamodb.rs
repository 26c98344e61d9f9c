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

use super::item::{from_item, number, string, to_item, Item};
use super::sdk_error::{classify, AwsFailure};
use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping,
};
use crate::credential::{Credential, CredentialId};
use crate::error::ErrorReport;
use crate::host::MakeHost;
use crate::make::RetryPolicy;
use crate::organization::OrganizationId;
use crate::ports::{
    ConnectionPage, ConnectionStore, RequestLog, StoreError, SyncRunStore, UserStore, WriteStamp,
};
use crate::run::SyncRun;
use crate::tenant::TenantId;
use crate::user::{MakeUserId, StoredUser, UserRecord, UserStatus};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, TimeZone, Utc};
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

    /// Items of one partition of the users table with `userId > after` (the guard, at 0,
    /// only when `after` is `None`), by id, at most `limit` of them, with only the attributes
    /// of `projection` when one is given.
    async fn query_users(
        &self,
        connection: &ConnectionId,
        after: Option<u64>,
        limit: Option<usize>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.users_table)
                .key_condition_expression("connectionId = :c AND userId >= :from")
                .expression_attribute_values(":c", string(connection.as_str()))
                .expression_attribute_values(":from", number(after.map_or(0, |id| id + 1)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                query = query.limit((limit - items.len()).clamp(1, 1000) as i32);
            }
            if let Some(projection) = projection {
                query = query.projection_expression(projection);
                if projection.contains("#status") {
                    // `status` is a reserved word in DynamoDB expressions.
                    query = query.expression_attribute_names("#status", "status");
                }
            }
            let output = query.send().await.map_err(|e| store_error(classify(&e)))?;
            items.extend(output.items().iter().cloned());
            if limit.is_some_and(|limit| items.len() >= limit) {
                break;
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn read_guard(&self, connection: &ConnectionId) -> Result<UsersGuard, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        let item = output.item();
        let number_of = |name: &str| {
            item.and_then(|item| item.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        };
        Ok(UsersGuard {
            written_by: number_of("usersWrittenBy")
                .and_then(|micros| Utc.timestamp_micros(micros).single()),
            closes: number_of("userCloses").map_or(0, |n| n.max(0) as u64),
        })
    }

    /// Claims the connection's users for the run `stamp` names: refused, as
    /// [`StoreError::UsersClosed`] or [`StoreError::StaleRun`], if the users were closed since
    /// the run began or a newer run already wrote.
    async fn claim_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
    ) -> Result<(), StoreError> {
        let run_started_at = stamp.started_at;
        // Claim the partition for this run first: if the users were closed since the run
        // began, or a newer run already wrote, nothing of this one is written. Runs of one
        // connection do not overlap (the sync lease), so the claim and the batch writes that
        // follow need no transaction.
        // On a first sync the claim creates the guard item with the number of users the run
        // adds: the change-event function announces the run from that one stream record.
        let closes = if stamp.closes_seen == 0 {
            "attribute_not_exists(userCloses)"
        } else {
            "userCloses = :closes"
        };
        let mut claim = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .condition_expression(format!(
                "{closes} AND (attribute_not_exists(usersWrittenBy) OR usersWrittenBy <= :started)"
            ))
            .expression_attribute_values(":started", number(run_started_at.timestamp_micros()))
            .expression_attribute_values(":started_text", string(run_started_at.to_rfc3339()))
            .expression_attribute_values(":run", string(stamp.run_id.clone()));
        if stamp.closes_seen != 0 {
            claim = claim.expression_attribute_values(":closes", number(stamp.closes_seen));
        }
        claim = match stamp.first_sync_users {
            Some(users) => claim
                .update_expression(
                    "SET usersWrittenBy = :started, usersWrittenAt = :started_text, runId = :run, firstSyncUsers = :users",
                )
                .expression_attribute_values(":users", number(users)),
            None => claim.update_expression(
                "SET usersWrittenBy = :started, usersWrittenAt = :started_text, runId = :run",
            ),
        };
        let claimed = claim.send().await;
        if let Err(error) = claimed {
            if condition_failed(&error) {
                let guard = self.read_guard(connection).await?;
                if guard.closes != stamp.closes_seen {
                    return Err(StoreError::UsersClosed {
                        seen: stamp.closes_seen,
                        now: guard.closes,
                    });
                }
                return Err(StoreError::StaleRun {
                    this: run_started_at,
                    newer: guard.written_by.unwrap_or(run_started_at),
                });
            }
            return Err(store_error(classify(&error)));
        }
        Ok(())
    }
}

/// The users' write guard, on the users table's guard item.
struct UsersGuard {
    /// The start of the run that last wrote the users.
    written_by: Option<DateTime<Utc>>,
    /// How many times the users were closed.
    closes: u64,
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

/// Sets the organization's name and zone where they are given.
fn set_organization(
    mut update: UpdateItemFluentBuilder,
    set: &mut Vec<&'static str>,
    name: &Option<String>,
    zone: &Option<String>,
) -> UpdateItemFluentBuilder {
    if let Some(name) = name {
        set.push("organizationName = :name");
        update = update.expression_attribute_values(":name", string(name.clone()));
    }
    if let Some(zone) = zone {
        set.push("#zone = :zone");
        update = update
            .expression_attribute_names("#zone", "zone")
            .expression_attribute_values(":zone", string(zone.clone()));
    }
    update
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

/// The lease is kept as epoch milliseconds so that the condition that takes it can compare
/// numbers (RFC 3339 strings with varying fractions do not sort).
fn connection_item(connection: &Connection) -> Item {
    let mut item = to_item(serde_json::to_value(connection).expect("a connection serialises"));
    item.remove("id");
    item.insert("connectionId".into(), string(connection.id.as_str()));
    item.remove("leaseUntil");
    if let Some(until) = connection.lease_until {
        item.insert("leaseUntil".into(), number(until.timestamp_millis()));
    }
    item
}

fn credential_item(credential: &Credential) -> Item {
    let mut item = to_item(serde_json::to_value(credential).expect("a credential serialises"));
    item.remove("id");
    item.insert("credentialId".into(), string(credential.id.as_str()));
    item
}

fn credential_from_item(item: &Item) -> Result<Credential, StoreError> {
    let mut item = item.clone();
    if let Some(id) = item.remove("credentialId") {
        item.insert("id".into(), id);
    }
    decode(&item, "credential")
}

fn connection_from_item(item: &Item) -> Result<Connection, StoreError> {
    let mut item = item.clone();
    if let Some(id) = item.remove("connectionId") {
        item.insert("id".into(), id);
    }
    let lease = item.remove("leaseUntil");
    let mut connection: Connection = decode(&item, "connection")?;
    connection.lease_until = lease
        .as_ref()
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    Ok(connection)
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn create_connection(&self, connection: &Connection) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.connections_table)
            .set_item(Some(connection_item(connection)))
            .condition_expression("attribute_not_exists(connectionId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn update_connection(
        &self,
        id: &ConnectionId,
        expected_version: u64,
        update: &ConnectionUpdate,
    ) -> Result<bool, StoreError> {
        let mut set = vec!["#status = :status", "version = :next"];
        let mut remove = Vec::new();
        // Items made before versions were counted have none: version 0.
        let condition = if expected_version == 0 {
            "attribute_exists(connectionId) AND (attribute_not_exists(version) OR version = :expected)"
        } else {
            "attribute_exists(connectionId) AND version = :expected"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", string(update.status.as_str()))
            .expression_attribute_values(":expected", number(expected_version))
            .expression_attribute_values(":next", number(expected_version + 1));
        match &update.status_reason {
            Some(reason) => {
                set.push("statusReason = :reason");
                request = request.expression_attribute_values(":reason", report_attribute(reason));
            }
            None => remove.push("statusReason"),
        }
        match &update.token_version {
            Some(version) => {
                set.push("tokenVersion = :token");
                request = request.expression_attribute_values(":token", string(version.clone()));
            }
            None => remove.push("tokenVersion"),
        }
        if update.detach_credential {
            remove.push("credentialId");
        }
        match update.teams_readable {
            Some(Some(readable)) => {
                set.push("teamsReadable = :teams");
                request =
                    request.expression_attribute_values(":teams", AttributeValue::Bool(readable));
            }
            Some(None) => remove.push("teamsReadable"),
            None => {}
        }
        if update.reset_failures {
            set.push("consecutiveFailures = :zero");
            request = request.expression_attribute_values(":zero", number(0));
        }
        request = set_organization(request, &mut set, &update.organization_name, &update.zone);
        let expression = update_expression(&set, &remove);
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        output.item().map(connection_from_item).transpose()
    }

    async fn get_connections(&self, ids: &[ConnectionId]) -> Result<Vec<Connection>, StoreError> {
        let mut connections = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| Item::from([("connectionId".to_string(), string(id.as_str()))]))
                .collect();
            for item in self.batch_get(&self.connections_table, keys).await? {
                connections.push(connection_from_item(&item)?);
            }
        }
        Ok(connections)
    }

    async fn create_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.credentials_table)
            .set_item(Some(credential_item(credential)))
            .condition_expression("attribute_not_exists(credentialId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn get_credential(&self, id: &CredentialId) -> Result<Option<Credential>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.credentials_table)
            .key("credentialId", string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        output.item().map(credential_from_item).transpose()
    }

    async fn replace_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let mut next = credential.clone();
        next.version += 1;
        let result = self
            .client
            .put_item()
            .table_name(&self.credentials_table)
            .set_item(Some(credential_item(&next)))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", number(credential.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn delete_credential(
        &self,
        id: &CredentialId,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.credentials_table)
            .key("credentialId", string(id.as_str()))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", number(expected_version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn list_instance_credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let mut credentials = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.credentials_table)
                .filter_expression("attribute_exists(instance)")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(classify(&e)))?;
            for item in output.items() {
                credentials.push(credential_from_item(item)?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(credentials)
    }

    async fn list_tenant_connections(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<Connection>, StoreError> {
        if tenant.is_unowned() {
            return Ok(Vec::new());
        }
        let mut connections = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.connections_table)
                .index_name(TENANT_INDEX)
                .key_condition_expression("tenantId = :tenant")
                .expression_attribute_values(":tenant", string(tenant.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(classify(&e)))?;
            for item in output.items() {
                connections.push(connection_from_item(item)?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(connections)
    }

    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError> {
        let start = cursor.map(|id| Item::from([("connectionId".to_string(), string(id))]));
        let output = self
            .client
            .scan()
            .table_name(&self.connections_table)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        let connections = output
            .items()
            .iter()
            .map(connection_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get("connectionId"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(ConnectionPage { connections, next })
    }

    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .update_expression("SET leaseUntil = :until")
            .condition_expression(
                "attribute_exists(connectionId) AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now)",
            )
            .expression_attribute_values(":until", number(until.timestamp_millis()))
            .expression_attribute_values(":now", number(now.timestamp_millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .update_expression("REMOVE leaseUntil")
            .condition_expression("attribute_exists(connectionId)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The connection is gone: there is no lease to release.
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key(
                "connectionId",
                string(organization_lease_key(host, organization)),
            )
            .key("userId", number(GUARD_USER_ID))
            .update_expression("SET holder = :holder, leaseUntil = :until")
            .condition_expression(
                "attribute_not_exists(connectionId) OR holder = :holder OR leaseUntil <= :now",
            )
            .expression_attribute_values(":holder", string(holder.as_str()))
            .expression_attribute_values(":until", number(until.timestamp_millis()))
            .expression_attribute_values(":now", number(now.timestamp_millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.users_table)
            .key(
                "connectionId",
                string(organization_lease_key(host, organization)),
            )
            .key("userId", number(GUARD_USER_ID))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", string(holder.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another connection holds it now, or nobody does: nothing to release.
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn record_run(
        &self,
        id: &ConnectionId,
        run: &RunBookkeeping,
    ) -> Result<Option<Connection>, StoreError> {
        let mut set = vec!["lastRunId = :run"];
        let mut remove = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", string(ConnectionStatus::Active.as_str()))
            .expression_attribute_values(":run", string(run.run_id.clone()))
            .expression_attribute_values(":zero", number(0))
            .return_values(ReturnValue::AllNew);
        match &run.outcome {
            Ok(users) => {
                set.extend(["consecutiveFailures = :zero", "userCount = :users"]);
                remove.push("lastError");
                update = update.expression_attribute_values(":users", number(users));
                if let Some(finished) = run.finished_at {
                    set.push("lastSuccessAt = :finished");
                    let finished = serde_json::to_value(finished).expect("a time serialises");
                    update = update.expression_attribute_values(
                        ":finished",
                        string(finished.as_str().unwrap_or_default()),
                    );
                }
            }
            Err(error) => {
                set.extend([
                    "lastError = :error",
                    "consecutiveFailures = if_not_exists(consecutiveFailures, :zero) + :one",
                ]);
                update = update
                    .expression_attribute_values(":error", report_attribute(error))
                    .expression_attribute_values(":one", number(1));
            }
        }
        update = set_organization(update, &mut set, &run.organization_name, &run.zone);
        let expression = update_expression(&set, &remove);
        match update.update_expression(expression).send().await {
            Ok(output) => output.attributes().map(connection_from_item).transpose(),
            Err(error) if condition_failed(&error) => Ok(None),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn record_erasure(
        &self,
        id: &ConnectionId,
        deleted: u64,
        finished: bool,
    ) -> Result<bool, StoreError> {
        let expression = if finished {
            "ADD erasedUsers :deleted SET #status = :erased \
             REMOVE organizationName, lastError, statusReason"
        } else {
            "ADD erasedUsers :deleted"
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .condition_expression("#status = :erasing")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":erasing", string(ConnectionStatus::Erasing.as_str()))
            .expression_attribute_values(":deleted", number(deleted))
            .update_expression(expression);
        if finished {
            update = update
                .expression_attribute_values(":erased", string(ConnectionStatus::Erased.as_str()));
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }

    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.connections_table)
            .key("connectionId", string(id.as_str()))
            .condition_expression("#status = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", string(expected.as_str()))
            .expression_attribute_values(":status", string(status.as_str()));
        update = match &reason {
            Some(reason) => update
                .update_expression("SET #status = :status, statusReason = :reason")
                .expression_attribute_values(":reason", report_attribute(reason)),
            None => update.update_expression("SET #status = :status REMOVE statusReason"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(store_error(classify(&error))),
        }
    }
}

/// The users-table partition that holds an organization's sync lease. `#` and `/` cannot be in
/// a connection id, so it can be no connection's partition; the users table is only ever read
/// a partition at a time, so nothing lists it by mistake.
fn organization_lease_key(host: &MakeHost, organization: OrganizationId) -> String {
    format!("#organization/{host}/{organization}")
}

/// An error report as the map the connection item holds (`{kind, message}`).
fn report_attribute(report: &ErrorReport) -> AttributeValue {
    AttributeValue::M(to_item(
        serde_json::to_value(report).expect("a report serialises"),
    ))
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.query_users(
            connection,
            Some(after.unwrap_or(0)),
            Some(limit.max(1)),
            None,
        )
        .await?
        .iter()
        .map(|item| decode(item, "user"))
        .collect()
    }

    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let items = self
            .query_users(
                connection,
                Some(0),
                None,
                Some("userId, digest, #status, expiresAt"),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let number_of = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                };
                let removed = item.get("status").and_then(|v| v.as_s().ok())
                    == Some(&UserStatus::Removed.as_str().to_string());
                Ok(StoredUser {
                    user_id: number_of("userId").ok_or_else(|| {
                        StoreError::Corrupt("a user item without a numeric userId".into())
                    })?,
                    digest: number_of("digest"),
                    removed,
                    lacks_expiry: removed && !item.contains_key(EXPIRES_AT),
                })
            })
            .collect()
    }

    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    Item::from([
                        ("connectionId".to_string(), string(connection.as_str())),
                        ("userId".to_string(), number(id)),
                    ])
                })
                .collect();
            for item in self.batch_get(&self.users_table, keys).await? {
                users.push(decode(&item, "user")?);
            }
        }
        Ok(users)
    }

    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError> {
        self.claim_users(connection, stamp).await?;
        // Items are made a batch at a time: an item map is several times the record's size.
        for batch in changed.chunks(BATCH_WRITE_LIMIT) {
            let requests = batch
                .iter()
                .map(|user| {
                    let mut item = to_item(serde_json::to_value(user).expect("a user serialises"));
                    item.insert("connectionId".into(), string(connection.as_str()));
                    item.insert("digest".into(), number(user.digest()));
                    item.insert("runId".into(), string(stamp.run_id.clone()));
                    if stamp.first_sync_users.is_some() {
                        item.insert("firstSync".into(), AttributeValue::Bool(true));
                    }
                    // The table's TTL deletes a removed user this long after its removal; a
                    // user written back present has no expiry (the item is replaced whole).
                    if let (Some(keep), Some(removed_at)) =
                        (stamp.removed_user_retention, user.removed_at)
                    {
                        item.insert(EXPIRES_AT.into(), number((removed_at + keep).timestamp()));
                    }
                    put(item)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.batch_write(&self.users_table, requests).await?;
        }
        Ok(())
    }

    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        Ok(self.read_guard(connection).await?.closes)
    }

    async fn close_users(
        &self,
        connection: &ConnectionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // ADD is atomic: two closes at once count two.
        self.client
            .update_item()
            .table_name(&self.users_table)
            .key("connectionId", string(connection.as_str()))
            .key("userId", number(GUARD_USER_ID))
            .update_expression("ADD userCloses :one SET usersClosedAt = :at_text")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":at_text", string(at.to_rfc3339()))
            .send()
            .await
            .map_err(|error| store_error(classify(&error)))?;
        Ok(())
    }

    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        // From user id 1: the guard at 0 stays, so that no run older than the erasure writes.
        let requests = self
            .query_users(
                connection,
                Some(0),
                Some(limit.max(1)),
                Some("connectionId, userId"),
            )
            .await?
            .into_iter()
            .map(delete)
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = requests.len();
        self.batch_write(&self.users_table, requests).await?;
        Ok(deleted)
    }
}

#[async_trait]
impl RequestLog for DynamoStore {
    async fn answer_of(
        &self,
        tenant: &TenantId,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.runs_table)
            .set_key(Some(answer_key(tenant, request)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let expires = item
            .get("expiresAt")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        if expires <= now.timestamp() {
            return Ok(None);
        }
        Ok(item.get("answer").and_then(|v| v.as_s().ok()).cloned())
    }

    async fn keep_answer(
        &self,
        tenant: &TenantId,
        request: &str,
        answer: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = answer_key(tenant, request);
        item.insert("answer".into(), string(answer));
        item.insert("expiresAt".into(), number(expires_at.timestamp()));
        let written = self
            .client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(item))
            // The first answer kept stays until it expires (the table's TTL deletes it
            // only some time after).
            .condition_expression("attribute_not_exists(connectionId) OR expiresAt <= :now")
            .expression_attribute_values(":now", number(now.timestamp()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(store_error(classify(&error))),
        }
    }
}

/// Where the answer to a request is kept: in the runs table (it expires like a run), under a
/// partition no connection id can take (`#` is in none) — the request id first, which holds
/// no `#` either, so that no two tenants' requests share one.
fn answer_key(tenant: &TenantId, request: &str) -> Item {
    Item::from([
        (
            "connectionId".to_string(),
            string(format!("request#{request}#{tenant}")),
        ),
        ("runId".to_string(), string("answer")),
    ])
}

#[async_trait]
impl SyncRunStore for DynamoStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut item = to_item(serde_json::to_value(run).expect("a run serialises"));
        let expires = run.started_at.timestamp() + self.run_retention.as_secs() as i64;
        item.insert("expiresAt".into(), number(expires));
        self.client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(classify(&e)))?;
        Ok(())
    }

    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let mut runs = Vec::new();
        let mut start: Option<Item> = None;
        while runs.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.runs_table)
                .key_condition_expression("connectionId = :c")
                .expression_attribute_values(":c", string(connection.as_str()))
                .scan_index_forward(false)
                .limit((limit - runs.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(classify(&e)))?;
            for item in output.items() {
                let mut item = item.clone();
                item.remove("expiresAt");
                runs.push(decode(&item, "sync run")?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(runs)
    }
}
