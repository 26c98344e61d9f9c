//! Leases: a connection's own (`connections.lease_until`) and an organization's
//! (`organization_leases`, which connection syncs a Make organization now). Called from the
//! [`ConnectionStore`] impl in `connections.rs`, whose trait the lease methods belong to.
//!
//! [`ConnectionStore`]: crate::ports::ConnectionStore

use super::{backend, text, SqliteStore};
use crate::connection::ConnectionId;
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::params;

pub(super) async fn acquire_lease(
    store: &SqliteStore,
    id: &ConnectionId,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let id = id.clone();
    store
        .with_db(move |db| {
            let changed = db
                .execute(
                    "UPDATE connections SET lease_until = ?3
                 WHERE id = ?1 AND (lease_until IS NULL OR lease_until <= ?2)",
                    params![id.as_str(), text(now), text(until)],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
}

pub(super) async fn release_lease(
    store: &SqliteStore,
    id: &ConnectionId,
) -> Result<(), StoreError> {
    let id = id.clone();
    store
        .with_db(move |db| {
            db.execute(
                "UPDATE connections SET lease_until = NULL WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
}

pub(super) async fn acquire_organization_lease(
    store: &SqliteStore,
    host: &MakeHost,
    organization: OrganizationId,
    holder: &ConnectionId,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (host, holder) = (host.to_string(), holder.to_string());
    store
        .with_db(move |db| {
            // Lease times are written in one fixed format, so they compare as text.
            let taken = db
                .execute(
                    "INSERT INTO organization_leases (host, organization_id, holder, lease_until)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (host, organization_id) DO UPDATE
                    SET holder = excluded.holder, lease_until = excluded.lease_until
                    WHERE organization_leases.holder = excluded.holder
                       OR organization_leases.lease_until <= ?5",
                    params![
                        host,
                        organization.get() as i64,
                        holder,
                        text(until),
                        text(now)
                    ],
                )
                .map_err(backend)?;
            Ok(taken == 1)
        })
        .await
}

pub(super) async fn release_organization_lease(
    store: &SqliteStore,
    host: &MakeHost,
    organization: OrganizationId,
    holder: &ConnectionId,
) -> Result<(), StoreError> {
    let (host, holder) = (host.to_string(), holder.to_string());
    store
        .with_db(move |db| {
            db.execute(
                "DELETE FROM organization_leases
             WHERE host = ?1 AND organization_id = ?2 AND holder = ?3",
                params![host, organization.get() as i64, holder],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
}
