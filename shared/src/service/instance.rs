//! Following a Make White Label instance: on every schedule, before the users are synced, the
//! instance's organizations are listed (`GET /admin/organizations`, 003) and the credential's
//! connections brought in line with them.
//!
//! - a **new** organization becomes a connection of the credential when `autoConnect` is on,
//!   otherwise it is listed as available;
//! - a **deleted** one (`deleted: true`; it stays listed and cannot be restored, 003) is
//!   disconnected with the reason "deleted in the White Label instance", and its users — who
//!   lost their access with it — are marked removed, so that they follow the retention of
//!   removed users (and are announced as removed);
//! - a **paused** one (`isPaused`) keeps syncing, and is flagged;
//! - one whose `license.apiLimit` is 0 — Make then "disables access to the data in the
//!   organization with the API" (003) — is not synced: its connection is paused saying why,
//!   and resumes when the limit is raised.
//!
//! Each of these is announced as an event beside the user events.

use crate::clock::Clock;
use crate::connection::{Connection, ConnectionId, ConnectionStatus, ConnectionUpdate};
use crate::credential::{Credential, InstanceFollow};
use crate::discover::{discover, DiscoveredOrganization, DiscoveryError, DiscoveryScope};
use crate::error::{ErrorKind, ErrorReport};
use crate::events::{ChangeEvent, EventPublisher};
use crate::make::MakeApi;
use crate::organization::OrganizationId;
use crate::ports::{ConnectionStore, SecretError, SecretStore, StoreError, UserStore, WriteStamp};
use crate::run::RunId;
use crate::user::{UserRecord, UserStatus};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// The reason a connection of a deleted organization is disconnected with.
pub const DELETED_IN_INSTANCE: &str = "deleted in the White Label instance";
/// The start of the reason a connection is paused with when Make disables its API access.
pub const API_DISABLED: &str =
    "API access is disabled for this organization in the White Label instance (license.apiLimit 0)";

/// How many times a credential write is tried again when another request changed it.
const WRITE_ATTEMPTS: u32 = 5;
/// Users read and marked removed at a time when an organization is deleted.
const REMOVAL_PAGE: usize = 500;

#[derive(Debug, Error)]
pub enum InstanceError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the credential changed under every attempt to record the instance")]
    Conflict,
}

impl InstanceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            InstanceError::Discovery(e) => e.kind(),
            InstanceError::Secret(e) => e.kind(),
            InstanceError::Store(e) => e.kind(),
            InstanceError::Conflict => ErrorKind::Transient,
        }
    }
}

/// What one discovery of an instance changed, by organization id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceChanges {
    /// Seen for the first time (connected or listed as available).
    pub discovered: Vec<u64>,
    /// Connected now (new, with `autoConnect`).
    pub connected: Vec<(u64, ConnectionId)>,
    /// Deleted in the instance since the last discovery: their connections disconnected.
    pub deleted: Vec<u64>,
    /// Paused in Make since the last discovery (they keep syncing).
    pub paused: Vec<u64>,
    /// API access disabled (`apiLimit` 0): their connections paused.
    pub api_disabled: Vec<u64>,
    /// Not connected: `autoConnect` is off.
    pub available: Vec<u64>,
}

#[derive(Clone)]
pub struct InstanceFollower {
    connections: Arc<dyn ConnectionStore>,
    users: Arc<dyn UserStore>,
    secrets: Arc<dyn SecretStore>,
    make: MakeApi,
    clock: Arc<dyn Clock>,
    publisher: Option<Arc<dyn EventPublisher>>,
    removed_user_retention: Option<chrono::Duration>,
}

impl InstanceFollower {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        users: Arc<dyn UserStore>,
        secrets: Arc<dyn SecretStore>,
        make: MakeApi,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            users,
            secrets,
            make,
            clock,
            publisher: None,
            removed_user_retention: None,
        }
    }

    /// Users marked removed when their organization is deleted expire this many days later
    /// (0: kept), as a sync's removals do.
    pub fn with_removed_user_retention_days(mut self, days: u32) -> Self {
        self.removed_user_retention = (days > 0).then(|| chrono::Duration::days(i64::from(days)));
        self
    }

    /// Where the instance's changes are announced.
    pub fn with_publisher(mut self, publisher: Arc<dyn EventPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Discovers every followed instance; a failure of one is logged and leaves the others.
    /// Returns how many instances were followed without error.
    pub async fn follow_all(&self) -> Result<u32, StoreError> {
        let mut followed = 0;
        for credential in self.connections.list_instance_credentials().await? {
            match self.follow(&credential).await {
                Ok(_) => followed += 1,
                Err(error) => {
                    tracing::error!(credential_id = %credential.id, error_kind = error.kind().as_str(), error = %error, "could not discover the White Label instance")
                }
            }
        }
        Ok(followed)
    }

    /// Discovers the instance `credential` follows and brings its connections in line.
    pub async fn follow(&self, credential: &Credential) -> Result<InstanceChanges, InstanceError> {
        let token = self.secrets.get_token(&credential.token_ref()).await?;
        let listed = discover(
            &self.make,
            &credential.host,
            token,
            DiscoveryScope::Instance,
        )
        .await?;
        self.apply(credential, listed).await
    }

    /// Brings the credential's connections in line with the instance as `listed`, then
    /// records what was seen on the credential.
    pub async fn apply(
        &self,
        credential: &Credential,
        listed: Vec<DiscoveredOrganization>,
    ) -> Result<InstanceChanges, InstanceError> {
        let follow = credential.instance.clone().unwrap_or_default();
        let by_organization = self.connections_by_organization(credential).await?;
        let mut changes = InstanceChanges::default();
        let mut joined = BTreeSet::new();
        let mut left = BTreeSet::new();
        let mut paused_now = BTreeSet::new();
        let now = self.clock.wall();
        for organization in &listed {
            // Only the instance's own organizations: a zone elsewhere is not this instance.
            if organization.host.as_deref() != Some(credential.host.as_str()) {
                continue;
            }
            let id = organization.id;
            let new = !follow.seen.contains(&id);
            let existing = by_organization.get(&id);
            if organization.deleted == Some(true) {
                if let Some(connection) = existing {
                    if self.disconnect_deleted(connection).await? {
                        changes.deleted.push(id);
                    }
                    left.insert(connection.id.clone());
                }
                continue;
            }
            if organization.paused == Some(true) {
                paused_now.insert(id);
                if !follow.paused.contains(&id) {
                    changes.paused.push(id);
                }
            }
            if new {
                changes.discovered.push(id);
            }
            let connection = match existing {
                Some(connection) => Some(connection.clone()),
                None if follow.auto_connect => {
                    let Ok(organization_id) = OrganizationId::new(id) else {
                        continue;
                    };
                    let connection = self
                        .connect(credential, organization_id, &organization.name)
                        .await?;
                    changes.connected.push((id, connection.id.clone()));
                    joined.insert(connection.id.clone());
                    Some(connection)
                }
                None => {
                    changes.available.push(id);
                    None
                }
            };
            if let Some(connection) = connection {
                self.apply_api_limit(&connection, organization, &mut changes)
                    .await?;
            }
        }
        self.record(credential, &listed, &joined, &left, &paused_now, &changes)
            .await?;
        log_changes(credential, &changes);
        self.announce(credential, &changes, now).await;
        Ok(changes)
    }

    /// The credential's connections as stored, by organization id, read together (the store
    /// may read many in one request, however many organizations the instance has).
    async fn connections_by_organization(
        &self,
        credential: &Credential,
    ) -> Result<BTreeMap<u64, Connection>, InstanceError> {
        let ids: Vec<ConnectionId> = credential.connections.iter().cloned().collect();
        let stored = self.connections.get_connections(&ids).await?;
        Ok(stored
            .into_iter()
            .map(|connection| (connection.organization_id.get(), connection))
            .collect())
    }

    /// A new organization of the instance, connected on the instance's credential.
    async fn connect(
        &self,
        credential: &Credential,
        organization: OrganizationId,
        name: &str,
    ) -> Result<Connection, InstanceError> {
        let mut connection = Connection::new(
            ConnectionId::generate(),
            credential.tenant_id.clone(),
            credential.host.clone(),
            organization,
            self.clock.wall(),
        );
        connection.credential_id = Some(credential.id.clone());
        connection.organization_name = Some(name.to_string());
        connection.zone = Some(credential.host.to_string());
        if !self.connections.create_connection(&connection).await? {
            return Err(InstanceError::Conflict);
        }
        tracing::info!(connection_id = %connection.id, credential_id = %credential.id, organization_id = %organization, "organization of the instance connected");
        Ok(connection)
    }

    /// Disconnects the connection of an organization deleted in the instance; its users
    /// stay as last synced. Returns whether it was connected until now.
    async fn disconnect_deleted(&self, connection: &Connection) -> Result<bool, InstanceError> {
        if !matches!(
            connection.status,
            ConnectionStatus::Active | ConnectionStatus::Paused
        ) {
            return Ok(false);
        }
        let update = ConnectionUpdate {
            status_reason: Some(ErrorReport::new(ErrorKind::NotFound, DELETED_IN_INSTANCE)),
            ..ConnectionUpdate::disconnect()
        };
        let written = self
            .connections
            .update_connection(&connection.id, connection.version, &update)
            .await?;
        if written {
            let now = self.clock.wall();
            let removed = self.remove_users(&connection.id, now).await?;
            self.users.close_users(&connection.id, now).await?;
            tracing::info!(connection_id = %connection.id, removed_users = removed, "organization deleted in the White Label instance: disconnected, its users marked removed");
        }
        Ok(written)
    }

    /// Marks every present user of the connection removed at `now`, a page at a time, as a
    /// write that a sync started before cannot overwrite. Returns how many.
    async fn remove_users(
        &self,
        connection: &ConnectionId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, InstanceError> {
        let stamp = WriteStamp {
            removed_user_retention: self.removed_user_retention,
            ..WriteStamp::new(RunId::generate().to_string(), now)
        };
        let mut after = None;
        let mut removed = 0;
        loop {
            let page = self
                .users
                .list_users_page(connection, after, REMOVAL_PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(removed);
            };
            after = Some(last.user_id);
            let gone: Vec<UserRecord> = page
                .into_iter()
                .filter(|user| user.status != UserStatus::Removed)
                .map(|mut user| {
                    user.status = UserStatus::Removed;
                    user.removed_at = Some(now);
                    user
                })
                .collect();
            if !gone.is_empty() {
                self.users.write_users(connection, &stamp, &gone).await?;
                removed += gone.len();
            }
        }
    }

    /// Pauses a connection whose organization has `apiLimit` 0, and resumes one paused for
    /// that reason once the limit is raised.
    async fn apply_api_limit(
        &self,
        connection: &Connection,
        organization: &DiscoveredOrganization,
        changes: &mut InstanceChanges,
    ) -> Result<(), InstanceError> {
        let paused_for_it = connection.status == ConnectionStatus::Paused
            && connection
                .status_reason
                .as_ref()
                .is_some_and(|r| r.message.starts_with(API_DISABLED));
        let update = if organization.api_disabled() {
            changes.api_disabled.push(organization.id);
            if connection.status != ConnectionStatus::Active {
                return Ok(());
            }
            ConnectionUpdate {
                status: ConnectionStatus::Paused,
                status_reason: Some(ErrorReport::new(
                    ErrorKind::Permission,
                    format!("{API_DISABLED} — raise its apiLimit in the instance's administration to sync it; it resumes at the next schedule"),
                )),
                token_version: None,
                reset_failures: false,
                organization_name: None,
                zone: None,
            }
        } else if paused_for_it {
            ConnectionUpdate::reconnect(None, None, None)
        } else {
            return Ok(());
        };
        self.connections
            .update_connection(&connection.id, connection.version, &update)
            .await?;
        Ok(())
    }

    /// Records on the credential what this discovery saw, at the version read (read again
    /// and merged when another request wrote it in between).
    async fn record(
        &self,
        credential: &Credential,
        listed: &[DiscoveredOrganization],
        joined: &BTreeSet<ConnectionId>,
        left: &BTreeSet<ConnectionId>,
        paused: &BTreeSet<u64>,
        changes: &InstanceChanges,
    ) -> Result<(), InstanceError> {
        let mut current = credential.clone();
        for _ in 0..WRITE_ATTEMPTS {
            let mut next = current.clone();
            let follow = next.instance.get_or_insert_with(InstanceFollow::default);
            follow.seen.extend(listed.iter().map(|o| o.id));
            follow.available = changes.available.iter().copied().collect();
            follow.paused = paused.clone();
            follow.discovered_at = Some(self.clock.wall());
            next.connections.extend(joined.iter().cloned());
            for id in left {
                next.connections.remove(id);
            }
            if self.connections.replace_credential(&next).await? {
                return Ok(());
            }
            match self.connections.get_credential(&credential.id).await? {
                Some(fresh) => current = fresh,
                None => return Ok(()),
            }
        }
        Err(InstanceError::Conflict)
    }

    /// Puts one event per change on the bus; a failure is logged (the changes are stored).
    async fn announce(
        &self,
        credential: &Credential,
        changes: &InstanceChanges,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        let mut events = Vec::new();
        let mut push = |detail_type: &'static str, organization: u64| {
            events.push(ChangeEvent {
                detail_type,
                detail: json!({
                    "tenantId": credential.tenant_id.as_str(),
                    "credentialId": credential.id.as_str(),
                    "host": credential.host.as_str(),
                    "organizationId": organization,
                    "connectionId": changes
                        .connected
                        .iter()
                        .find(|(id, _)| *id == organization)
                        .map(|(_, c)| c.as_str()),
                }),
                time: at,
            });
        };
        for id in &changes.discovered {
            push("Instance Organization Discovered", *id);
        }
        for id in &changes.deleted {
            push("Instance Organization Deleted", *id);
        }
        for id in &changes.paused {
            push("Instance Organization Paused", *id);
        }
        if events.is_empty() {
            return;
        }
        for chunk in events.chunks(10) {
            match publisher.publish(chunk).await {
                Ok(taken) if taken.iter().all(|t| *t) => {}
                Ok(_) => {
                    tracing::error!(credential_id = %credential.id, "the event bus refused some instance events")
                }
                Err(error) => {
                    tracing::error!(credential_id = %credential.id, error = %error, "could not announce the instance's changes")
                }
            }
        }
    }
}

/// One line for what a listing of the instance changed: counts only (no names).
fn log_changes(credential: &Credential, changes: &InstanceChanges) {
    tracing::info!(
        credential_id = %credential.id,
        host = %credential.host,
        discovered = changes.discovered.len(),
        connected = changes.connected.len(),
        deleted = changes.deleted.len(),
        paused = changes.paused.len(),
        api_disabled = changes.api_disabled.len(),
        available = changes.available.len(),
        "White Label instance discovered"
    );
}
