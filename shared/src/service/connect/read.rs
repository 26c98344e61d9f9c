//! What the product reads of its connections: one connection's state with its last run
//! (`status`), and the tenant's connections a page at a time (`list`). Tenant-checked like every
//! other action: another tenant's id is answered exactly as an id nobody holds.

use super::{ConnectError, ConnectService};
use crate::connection::{Connection, ConnectionId, ConnectionStatus};
use crate::credential::CredentialId;
use crate::error::ErrorReport;
use crate::organization::OrganizationId;
use crate::run::SyncRun;
use crate::tenant::TenantId;
use crate::user::{MakeUserId, UserRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Connections a `list` page holds when the request does not say.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// The most connections a `list` page holds.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Users a `users` page holds when the request does not say, and at most.
pub const MAX_USERS_PAGE: usize = 1000;
/// The most bytes of users one `users` page holds, well under the 6 MB Lambda allows a
/// synchronous answer: a member's team roles may take up to 64 KB, so 1,000 such members would
/// not fit; a page ends early instead, and its cursor goes on from there.
pub const MAX_USERS_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A connection as the product sees it: its state, why, and what its syncs did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub connection_id: ConnectionId,
    pub status: ConnectionStatus,
    /// Why it is paused or disconnected, and what fixes it.
    pub status_reason: Option<ErrorReport>,
    pub host: String,
    pub organization_id: OrganizationId,
    pub organization_name: Option<String>,
    pub zone: Option<String>,
    /// The members its last successful sync read.
    pub user_count: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Failed syncs since the last success (each SQS delivery counts).
    pub consecutive_failures: u32,
    /// The last failed sync's error, until a sync succeeds.
    pub last_error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<CredentialId>,
    /// Each optional scope and whether the token has it, as Make said when it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional_scopes: Option<super::OptionalScopes>,
    /// `status` only: the newest run, running or finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<SyncRun>,
}

impl ConnectionView {
    pub fn of(connection: &Connection) -> Self {
        Self {
            connection_id: connection.id.clone(),
            status: connection.status,
            status_reason: connection.status_reason.clone(),
            host: connection.host.to_string(),
            organization_id: connection.organization_id,
            organization_name: connection.organization_name.clone(),
            zone: connection.zone.clone(),
            user_count: connection.user_count,
            created_at: connection.created_at,
            last_success_at: connection.last_success_at,
            consecutive_failures: connection.consecutive_failures,
            last_error: connection.last_error.clone(),
            credential_id: connection.credential_id.clone(),
            optional_scopes: connection.teams_readable.map(|readable| {
                super::OptionalScopes::from([(crate::make::TEAMS_SCOPE.to_string(), readable)])
            }),
            last_run: None,
        }
    }
}

/// A page of the tenant's connections, in the order of their ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPage {
    pub connections: Vec<ConnectionView>,
    /// Give it back as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of a connection's stored users, by Make user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub connection_id: ConnectionId,
    pub users: Vec<UserRecord>,
    /// Give it back as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl ConnectService {
    /// One connection of the tenant, with its newest run.
    pub async fn status(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<ConnectionView, ConnectError> {
        let connection = self.existing(tenant, id).await?;
        let mut view = ConnectionView::of(&connection);
        if let Some(runs) = &self.runs {
            view.last_run = runs.list_runs(id, 1).await?.into_iter().next();
        }
        Ok(view)
    }

    /// The tenant's connections after `cursor` (a connection id, as the previous page gave
    /// it), at most `limit` of them.
    pub async fn list(
        &self,
        tenant: &TenantId,
        cursor: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<ConnectionPage, ConnectError> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let mut connections = self.connections.list_tenant_connections(tenant).await?;
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        let mut after: Vec<Connection> = connections
            .into_iter()
            .filter(|c| cursor.is_none_or(|cursor| &c.id > cursor))
            .collect();
        let more = after.len() > limit;
        after.truncate(limit);
        Ok(ConnectionPage {
            cursor: more
                .then(|| after.last().map(|c| c.id.to_string()))
                .flatten(),
            connections: after.iter().map(ConnectionView::of).collect(),
        })
    }

    /// The connection's stored users with an id above `after`, removed ones included (with
    /// `removedAt`): at most `limit`, and no more than [`MAX_USERS_PAGE_BYTES`] of them.
    pub async fn users(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<UserPage, ConnectError> {
        let connection = self.existing(tenant, id).await?;
        let limit = limit.clamp(1, MAX_USERS_PAGE);
        let read = self
            .users
            .list_users_page(&connection.id, after, limit + 1)
            .await?;
        let mut more = read.len() > limit;
        let mut users = Vec::new();
        let mut bytes = 0;
        for user in read.into_iter().take(limit) {
            let size = serde_json::to_vec(&user).map_or(0, |json| json.len()) + 1;
            if bytes + size > MAX_USERS_PAGE_BYTES && !users.is_empty() {
                more = true;
                break;
            }
            bytes += size;
            users.push(user);
        }
        Ok(UserPage {
            connection_id: connection.id,
            cursor: more
                .then(|| users.last().map(|u| u.user_id.to_string()))
                .flatten(),
            users,
        })
    }
}
