//! Connection rows: the `connections` table behind [`ConnectionStore`]. Its credential and lease
//! methods are thin: their bodies are in `credentials.rs` and `leases.rs`, beside their tables.

use super::{backend, credentials, leases, opt_text, opt_time, report, text, time, SqliteStore};
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
use chrono::{DateTime, Utc};
use rusqlite::{params, Row};

fn connection_from_row(row: &Row<'_>) -> Result<Connection, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let id: String = row.get("id").map_err(get)?;
    let host: String = row.get("host").map_err(get)?;
    let organization_id: i64 = row.get("organization_id").map_err(get)?;
    let status: String = row.get("status").map_err(get)?;
    Ok(Connection {
        id: ConnectionId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        tenant_id: row
            .get::<_, Option<String>>("tenant_id")
            .map_err(get)?
            .map(TenantId::try_from)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .unwrap_or_default(),
        version: row.get::<_, i64>("version").map_err(get)? as u64,
        token_version: row.get("token_version").map_err(get)?,
        erased_users: row.get::<_, i64>("erased_users").map_err(get)? as u64,
        host: MakeHost::parse(&host).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        organization_id: OrganizationId::new(organization_id as u64)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: ConnectionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("connection status {status:?}")))?,
        status_reason: report(
            row.get("status_reason_kind").map_err(get)?,
            row.get("status_reason_message").map_err(get)?,
        )?,
        organization_name: row.get("organization_name").map_err(get)?,
        zone: row.get("zone").map_err(get)?,
        created_at: time(&row.get::<_, String>("created_at").map_err(get)?)?,
        last_success_at: opt_time(row.get("last_success_at").map_err(get)?)?,
        last_run_id: row.get("last_run_id").map_err(get)?,
        last_error: report(
            row.get("last_error_kind").map_err(get)?,
            row.get("last_error_message").map_err(get)?,
        )?,
        consecutive_failures: row.get("consecutive_failures").map_err(get)?,
        user_count: row.get("user_count").map_err(get)?,
        lease_until: opt_time(row.get("lease_until").map_err(get)?)?,
        credential_id: row
            .get::<_, Option<String>>("credential_id")
            .map_err(get)?
            .map(|id| {
                CredentialId::parse(&id)
                    .ok_or_else(|| StoreError::Corrupt("connection credential_id".into()))
            })
            .transpose()?,
        teams_readable: row.get("teams_readable").map_err(get)?,
    })
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn create_connection(&self, connection: &Connection) -> Result<bool, StoreError> {
        let c = connection.clone();
        self.with_db(move |db| {
            let inserted = db
                .execute(
                    "INSERT INTO connections (id, tenant_id, host, organization_id, status,
                    status_reason_kind, status_reason_message, organization_name, zone, created_at,
                    last_success_at, last_run_id, last_error_kind, last_error_message,
                    consecutive_failures, lease_until, user_count, version, token_version,
                    erased_users, credential_id, teams_readable)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20, ?21, ?22)
                 ON CONFLICT (id) DO NOTHING",
                    params![
                        c.id.as_str(),
                        (!c.tenant_id.is_unowned()).then(|| c.tenant_id.to_string()),
                        c.host.as_str(),
                        c.organization_id.get() as i64,
                        c.status.as_str(),
                        c.status_reason.as_ref().map(|r| r.kind.as_str()),
                        c.status_reason.as_ref().map(|r| r.message.clone()),
                        c.organization_name,
                        c.zone,
                        text(c.created_at),
                        opt_text(c.last_success_at),
                        c.last_run_id,
                        c.last_error.as_ref().map(|r| r.kind.as_str()),
                        c.last_error.as_ref().map(|r| r.message.clone()),
                        c.consecutive_failures,
                        opt_text(c.lease_until),
                        c.user_count,
                        c.version as i64,
                        c.token_version,
                        c.erased_users as i64,
                        c.credential_id.as_ref().map(|id| id.to_string()),
                        c.teams_readable,
                    ],
                )
                .map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn update_connection(
        &self,
        id: &ConnectionId,
        expected_version: u64,
        update: &ConnectionUpdate,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let u = update.clone();
        self.with_db(move |db| {
            let changed = db
                .execute(
                    "UPDATE connections SET status = ?3, status_reason_kind = ?4,
                        status_reason_message = ?5, token_version = ?6,
                        consecutive_failures = CASE WHEN ?7 THEN 0 ELSE consecutive_failures END,
                        organization_name = coalesce(?8, organization_name),
                        zone = coalesce(?9, zone),
                        credential_id = CASE WHEN ?10 THEN NULL ELSE credential_id END,
                        teams_readable = CASE WHEN ?11 THEN ?12 ELSE teams_readable END,
                        version = version + 1
                     WHERE id = ?1 AND version = ?2",
                    params![
                        id.as_str(),
                        expected_version as i64,
                        u.status.as_str(),
                        u.status_reason.as_ref().map(|r| r.kind.as_str()),
                        u.status_reason.as_ref().map(|r| r.message.clone()),
                        u.token_version,
                        u.reset_failures,
                        u.organization_name,
                        u.zone,
                        u.detach_credential,
                        u.teams_readable.is_some(),
                        u.teams_readable.flatten(),
                    ],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let id = id.clone();
        self.with_db(move |db| {
            let mut statement = db
                .prepare("SELECT * FROM connections WHERE id = ?1")
                .map_err(backend)?;
            let mut rows = statement.query(params![id.as_str()]).map_err(backend)?;
            match rows.next().map_err(backend)? {
                Some(row) => Ok(Some(connection_from_row(row)?)),
                None => Ok(None),
            }
        })
        .await
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
        let tenant = tenant.to_string();
        self.with_db(move |db| {
            let mut statement = db
                .prepare("SELECT * FROM connections WHERE tenant_id = ?1 ORDER BY id")
                .map_err(backend)?;
            let mut rows = statement.query(params![tenant]).map_err(backend)?;
            let mut connections = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                connections.push(connection_from_row(row)?);
            }
            Ok(connections)
        })
        .await
    }

    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError> {
        let limit = limit.max(1);
        self.with_db(move |db| {
            let mut statement = db
                .prepare("SELECT * FROM connections WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(backend)?;
            let mut rows = statement
                .query(params![cursor.unwrap_or_default(), limit as i64])
                .map_err(backend)?;
            let mut connections = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                connections.push(connection_from_row(row)?);
            }
            let next = (connections.len() == limit)
                .then(|| connections.last().map(|c| c.id.to_string()))
                .flatten();
            Ok(ConnectionPage { connections, next })
        })
        .await
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
        let id = id.clone();
        let run = run.clone();
        self.with_db(move |db| {
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let current = {
                let mut statement = tx
                    .prepare("SELECT * FROM connections WHERE id = ?1 AND status = 'active'")
                    .map_err(backend)?;
                let mut rows = statement.query(params![id.as_str()]).map_err(backend)?;
                match rows.next().map_err(backend)? {
                    Some(row) => connection_from_row(row)?,
                    None => return Ok(None),
                }
            };
            let mut connection = current;
            connection.apply(&run);
            let c = &connection;
            tx.execute(
                "UPDATE connections SET last_run_id = ?2, last_success_at = ?3,
                    last_error_kind = ?4, last_error_message = ?5, consecutive_failures = ?6,
                    user_count = ?7, organization_name = ?8, zone = ?9
                 WHERE id = ?1",
                params![
                    c.id.as_str(),
                    c.last_run_id,
                    opt_text(c.last_success_at),
                    c.last_error.as_ref().map(|r| r.kind.as_str()),
                    c.last_error.as_ref().map(|r| r.message.clone()),
                    c.consecutive_failures,
                    c.user_count,
                    c.organization_name,
                    c.zone,
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(connection))
        })
        .await
    }

    async fn record_erasure(
        &self,
        id: &ConnectionId,
        deleted: u64,
        finished: bool,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.with_db(move |db| {
            let changed = db
                .execute(
                    "UPDATE connections SET erased_users = erased_users + ?2,
                        status = CASE WHEN ?3 THEN 'erased' ELSE status END,
                        status_reason_kind = CASE WHEN ?3 THEN NULL ELSE status_reason_kind END,
                        status_reason_message =
                            CASE WHEN ?3 THEN NULL ELSE status_reason_message END,
                        organization_name = CASE WHEN ?3 THEN NULL ELSE organization_name END,
                        last_error_kind = CASE WHEN ?3 THEN NULL ELSE last_error_kind END,
                        last_error_message = CASE WHEN ?3 THEN NULL ELSE last_error_message END
                     WHERE id = ?1 AND status = 'erasing'",
                    params![id.as_str(), deleted as i64, finished],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.with_db(move |db| {
            let changed = db
                .execute(
                    "UPDATE connections SET status = ?3, status_reason_kind = ?4,
                        status_reason_message = ?5
                     WHERE id = ?1 AND status = ?2",
                    params![
                        id.as_str(),
                        expected.as_str(),
                        status.as_str(),
                        reason.as_ref().map(|r| r.kind.as_str()),
                        reason.as_ref().map(|r| r.message.clone()),
                    ],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }
}
