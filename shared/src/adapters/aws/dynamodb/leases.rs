//! Leases: a connection's own (`leaseUntil` on its item) and an organization's (the users-table
//! partition that names which connection syncs a Make organization now). Called from the
//! [`ConnectionStore`] impl in `connections.rs`, whose trait the lease methods belong to.
//!
//! [`ConnectionStore`]: crate::ports::ConnectionStore

use super::{condition_failed, store_error, DynamoStore, GUARD_USER_ID};
use crate::adapters::aws::item::{number, string};
use crate::adapters::aws::sdk_error::classify;
use crate::connection::ConnectionId;
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::StoreError;
use chrono::{DateTime, Utc};

/// The users-table partition that holds an organization's sync lease. `#` and `/` cannot be in
/// a connection id, so it can be no connection's partition; the users table is only ever read
/// a partition at a time, so nothing lists it by mistake.
fn organization_lease_key(host: &MakeHost, organization: OrganizationId) -> String {
    format!("#organization/{host}/{organization}")
}

pub(super) async fn acquire_lease(
    store: &DynamoStore,
    id: &ConnectionId,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = store
        .client
        .update_item()
        .table_name(&store.connections_table)
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

pub(super) async fn release_lease(
    store: &DynamoStore,
    id: &ConnectionId,
) -> Result<(), StoreError> {
    let result = store
        .client
        .update_item()
        .table_name(&store.connections_table)
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

pub(super) async fn acquire_organization_lease(
    store: &DynamoStore,
    host: &MakeHost,
    organization: OrganizationId,
    holder: &ConnectionId,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = store
        .client
        .update_item()
        .table_name(&store.users_table)
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

pub(super) async fn release_organization_lease(
    store: &DynamoStore,
    host: &MakeHost,
    organization: OrganizationId,
    holder: &ConnectionId,
) -> Result<(), StoreError> {
    let result = store
        .client
        .delete_item()
        .table_name(&store.users_table)
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
