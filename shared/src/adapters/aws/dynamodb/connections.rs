//! Connection items: the connections table behind [`ConnectionStore`]. Its credential and lease
//! methods are thin: their bodies are in `credentials.rs` and `leases.rs`, beside their items.

use super::{
    condition_failed, credentials, decode, leases, store_error, update_expression, DynamoStore,
    BATCH_GET_LIMIT, TENANT_INDEX,
};
use crate::adapters::aws::item::{number, string, to_item, Item};
use crate::adapters::aws::sdk_error::classify;
use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping,
};
use crate::credential::{Credential, CredentialId};
use crate::error::ErrorReport;
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::{ConnectionPage, ConnectionStore, StoreError};
use crate::tenant::TenantId;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, TimeZone, Utc};

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

/// An error report as the map the connection item holds (`{kind, message}`).
fn report_attribute(report: &ErrorReport) -> AttributeValue {
    AttributeValue::M(to_item(
        serde_json::to_value(report).expect("a report serialises"),
    ))
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
        credentials::create_credential(self, credential).await
    }

    async fn get_credential(&self, id: &CredentialId) -> Result<Option<Credential>, StoreError> {
        credentials::get_credential(self, id).await
    }

    async fn replace_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        credentials::replace_credential(self, credential).await
    }

    async fn delete_credential(
        &self,
        id: &CredentialId,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        credentials::delete_credential(self, id, expected_version).await
    }

    async fn list_instance_credentials(&self) -> Result<Vec<Credential>, StoreError> {
        credentials::list_instance_credentials(self).await
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
        leases::acquire_lease(self, id, now, until).await
    }

    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError> {
        leases::release_lease(self, id).await
    }

    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        leases::acquire_organization_lease(self, host, organization, holder, now, until).await
    }

    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError> {
        leases::release_organization_lease(self, host, organization, holder).await
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
