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
use crate::credential::{
    Credential, InstanceFollow, MAX_INSTANCE_ORGANIZATIONS, TOO_MANY_ORGANIZATIONS,
};
use crate::discover::{discover_until, DiscoveredOrganization, DiscoveryError, DiscoveryScope};
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
use std::time::Duration;
use thiserror::Error;

/// The reason a connection of a deleted organization is disconnected with.
pub const DELETED_IN_INSTANCE: &str = "deleted in the White Label instance";
/// The start of the reason a connection is paused with when Make disables its API access.
pub const API_DISABLED: &str =
    "API access is disabled for this organization in the White Label instance (license.apiLimit 0)";

/// How many times a credential write is tried again when another request changed it.
const WRITE_ATTEMPTS: u32 = 5;
/// The most time one instance's follow may take in a schedule: its listing (every page,
/// with the waits its host asks for) and the changes to its connections.
pub const FOLLOW_BUDGET: Duration = Duration::from_secs(120);
/// A follow is not started with less time than this left before the invocation's deadline.
const MIN_FOLLOW_TIME: Duration = Duration::from_secs(30);

/// The instance's own organizations that are not deleted: what a follow remembers having seen.
/// Deleted ones are never looked up there, and Make lists them for good: kept, they would grow
/// the credential's item past what the store takes.
fn live_ids(listed: &[DiscoveredOrganization], host: &crate::host::MakeHost) -> Vec<u64> {
    listed
        .iter()
        .filter(|o| o.host.as_deref() == Some(host.as_str()))
        .filter(|o| o.deleted != Some(true))
        .map(|o| o.id)
        .collect()
}

/// What following one instance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowOutcome {
    /// Followed; the connections it made, to be synced in this schedule.
    Followed(Vec<ConnectionId>),
    Failed,
    /// Not started: too little of the invocation was left.
    NotReached,
}

/// The credentials in the order they are followed: the least recently tried first (never
/// tried, first of all).
pub fn order_by_last_attempt(credentials: &mut [Credential]) {
    credentials.sort_by_key(|c| c.instance.as_ref().and_then(InstanceFollow::last_attempt));
}

/// What following every instance of one schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowSummary {
    pub followed: u32,
    pub failed: u32,
    /// Not started: too little of the invocation was left.
    pub not_reached: u32,
    /// Connections made now, to be synced in this schedule.
    pub connected: Vec<ConnectionId>,
}

/// How long the follower holds a deleted organization's connection while it marks its users
/// removed: pages of 500, well within it.
const REMOVAL_LEASE: chrono::Duration = chrono::Duration::minutes(10);

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
    #[error("the instance lists {listed} organizations: {TOO_MANY_ORGANIZATIONS}")]
    TooManyOrganizations { listed: usize },
    #[error("the credential was deleted while the instance was followed")]
    Gone,
}

impl InstanceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            InstanceError::Discovery(e) => e.kind(),
            InstanceError::Secret(e) => e.kind(),
            InstanceError::Store(e) => e.kind(),
            InstanceError::Conflict => ErrorKind::Transient,
            InstanceError::TooManyOrganizations { .. } => ErrorKind::InvalidInput,
            InstanceError::Gone => ErrorKind::NotFound,
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
    /// Not connected: the tenant disconnected them (they stay so until connected explicitly).
    pub excluded: Vec<u64>,
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

    /// Discovers every followed instance, the least recently discovered first, each within
    /// [`FOLLOW_BUDGET`] and all before `deadline` (on the clock's monotonic scale): a slow or
    /// hostile host costs its own follow, not the others'. A failure of one is logged and
    /// leaves the others; those not reached in time are followed first next time.
    pub async fn follow_all_until(
        &self,
        deadline: Option<Duration>,
    ) -> Result<FollowSummary, StoreError> {
        let credentials = self.connections.list_instance_credentials().await?;
        Ok(self.follow_each(credentials, deadline).await)
    }

    /// The instance credentials followed, as stored.
    pub async fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        self.connections.list_instance_credentials().await
    }

    /// [`InstanceFollower::follow_all_until`] for `credentials`, as listed.
    pub async fn follow_each(
        &self,
        mut credentials: Vec<Credential>,
        deadline: Option<Duration>,
    ) -> FollowSummary {
        order_by_last_attempt(&mut credentials);
        let mut summary = FollowSummary::default();
        for credential in credentials {
            match self.follow_one(&credential, deadline).await {
                FollowOutcome::Followed(connected) => {
                    summary.followed += 1;
                    summary.connected.extend(connected);
                }
                FollowOutcome::Failed => summary.failed += 1,
                FollowOutcome::NotReached => summary.not_reached += 1,
            }
        }
        summary
    }

    /// Follows one instance within [`FOLLOW_BUDGET`] and before `deadline`; not at all when
    /// too little is left (it goes first next time). A failure is logged, and the attempt
    /// recorded so that the instance waits its turn behind the others next time.
    pub async fn follow_one(
        &self,
        credential: &Credential,
        deadline: Option<Duration>,
    ) -> FollowOutcome {
        let now = self.clock.monotonic();
        let mut until = now + FOLLOW_BUDGET;
        if let Some(deadline) = deadline {
            if deadline.saturating_sub(now) < MIN_FOLLOW_TIME {
                tracing::warn!(credential_id = %credential.id, "White Label instance not followed in this invocation's time; it goes first next time");
                return FollowOutcome::NotReached;
            }
            until = until.min(deadline);
        }
        match self.follow_until(credential, Some(until)).await {
            Ok(changes) => {
                FollowOutcome::Followed(changes.connected.into_iter().map(|(_, id)| id).collect())
            }
            Err(error) => {
                tracing::error!(credential_id = %credential.id, error_kind = error.kind().as_str(), error = %error, "could not discover the White Label instance");
                self.record_attempt(credential).await;
                FollowOutcome::Failed
            }
        }
    }

    /// Notes on the credential that a follow was tried now (best effort: a lost write only
    /// means the instance may go first again).
    async fn record_attempt(&self, credential: &Credential) {
        let mut next = credential.clone();
        next.instance
            .get_or_insert_with(InstanceFollow::default)
            .attempted_at = Some(self.clock.wall());
        if let Err(error) = self.connections.replace_credential(&next).await {
            tracing::warn!(credential_id = %credential.id, error = %error, "could not record the follow's attempt");
        }
    }

    /// Discovers the instance `credential` follows and brings its connections in line.
    pub async fn follow(&self, credential: &Credential) -> Result<InstanceChanges, InstanceError> {
        self.follow_until(credential, None).await
    }

    async fn follow_until(
        &self,
        credential: &Credential,
        deadline: Option<Duration>,
    ) -> Result<InstanceChanges, InstanceError> {
        let token = self.secrets.get_token(&credential.token_ref()).await?;
        let listed = discover_until(
            &self.make,
            &credential.host,
            token,
            DiscoveryScope::Instance,
            deadline,
        )
        .await?;
        self.apply(credential, listed).await
    }

    /// Brings the credential's connections in line with the instance as `listed`, then
    /// records what was seen on the credential. A new organization's connection is listed on
    /// the credential before it is created, under the one id the credential makes for that
    /// organization: a follow that fails part-way leaves ids the next one creates, never a
    /// connection the credential does not know, nor a second one for the organization.
    pub async fn apply(
        &self,
        credential: &Credential,
        listed: Vec<DiscoveredOrganization>,
    ) -> Result<InstanceChanges, InstanceError> {
        let own: Vec<&DiscoveredOrganization> = listed
            .iter()
            // Only the instance's own organizations: a zone elsewhere is not this instance.
            .filter(|o| o.host.as_deref() == Some(credential.host.as_str()))
            .collect();
        // Make lists deleted organizations for good: only those that are not count.
        let live = own.iter().filter(|o| o.deleted != Some(true)).count();
        if live > MAX_INSTANCE_ORGANIZATIONS {
            return Err(InstanceError::TooManyOrganizations { listed: live });
        }
        let now = self.clock.wall();
        let mut by_organization = self.connections_by_organization(credential).await?;
        let mut changes = InstanceChanges::default();
        let credential = self
            .connect_new(credential, &own, &mut by_organization, &mut changes)
            .await?;
        let follow = credential.instance.clone().unwrap_or_default();
        // Ids the credential lists with no connection of its own behind them (a write that
        // failed part-way, before this version): taken off it.
        let mut left: BTreeSet<ConnectionId> = credential.connections.clone();
        for connection in by_organization.values() {
            left.remove(&connection.id);
        }
        let mut paused_now = BTreeSet::new();
        for organization in own {
            let id = organization.id;
            let existing = by_organization.get(&id);
            if organization.deleted == Some(true) {
                if let Some(connection) = existing {
                    // Off the credential once it is disconnected, not before: one whose
                    // disconnect lost to another write stays listed and is tried again.
                    let was_off = !matches!(
                        connection.status,
                        ConnectionStatus::Active | ConnectionStatus::Paused
                    );
                    if self.disconnect_deleted(connection).await? {
                        changes.deleted.push(id);
                        left.insert(connection.id.clone());
                    } else if was_off {
                        left.insert(connection.id.clone());
                    }
                }
                continue;
            }
            if organization.paused == Some(true) {
                paused_now.insert(id);
                if !follow.paused.contains(&id) {
                    changes.paused.push(id);
                }
            }
            if !follow.seen.contains(&id) {
                changes.discovered.push(id);
            }
            match existing {
                Some(connection) => {
                    self.apply_api_limit(connection, organization, &mut changes)
                        .await?
                }
                None if follow.excluded.contains(&id) => changes.excluded.push(id),
                None => changes.available.push(id),
            }
        }
        let seen = live_ids(&listed, &credential.host);
        self.record(&credential, &seen, &left, &paused_now, &changes)
            .await?;
        log_changes(&credential, &changes);
        self.announce(&credential, &changes, now).await;
        Ok(changes)
    }

    /// Connects, with `autoConnect`, every organization of the instance that has no
    /// connection on the credential and that the tenant did not disconnect: first listed on
    /// the credential (the credential as written is returned), then created. Each is added
    /// to `by_organization` and to `changes.connected`.
    async fn connect_new(
        &self,
        credential: &Credential,
        own: &[&DiscoveredOrganization],
        by_organization: &mut BTreeMap<u64, Connection>,
        changes: &mut InstanceChanges,
    ) -> Result<Credential, InstanceError> {
        let follow = credential.instance.clone().unwrap_or_default();
        if !follow.auto_connect {
            return Ok(credential.clone());
        }
        let wanted: Vec<(OrganizationId, &str)> = own
            .iter()
            .filter(|o| o.deleted != Some(true))
            .filter(|o| !by_organization.contains_key(&o.id) && !follow.excluded.contains(&o.id))
            .filter_map(|o| Some((OrganizationId::new(o.id).ok()?, o.name.as_str())))
            .collect();
        if wanted.is_empty() {
            return Ok(credential.clone());
        }
        let ids: Vec<u64> = wanted.iter().map(|(id, _)| id.get()).collect();
        let credential = self.list_before_creating(credential, &ids).await?;
        let still_wanted = credential.instance.clone().unwrap_or_default();
        for (organization, name) in wanted {
            // The tenant may have disconnected it while the list was written.
            if still_wanted.excluded.contains(&organization.get()) {
                continue;
            }
            if let Some(connection) = self.connect(&credential, organization, name).await? {
                changes
                    .connected
                    .push((organization.get(), connection.id.clone()));
                by_organization.insert(organization.get(), connection);
            }
        }
        Ok(credential)
    }

    /// Lists the connections of `organizations` on the credential (at the version read, read
    /// again when another request wrote it), leaving out any the tenant excluded meanwhile.
    async fn list_before_creating(
        &self,
        credential: &Credential,
        organizations: &[u64],
    ) -> Result<Credential, InstanceError> {
        let mut current = credential.clone();
        for _ in 0..WRITE_ATTEMPTS {
            let excluded = current
                .instance
                .as_ref()
                .map(|f| f.excluded.clone())
                .unwrap_or_default();
            let mut next = current.clone();
            for organization in organizations.iter().filter(|o| !excluded.contains(o)) {
                if let Ok(id) = OrganizationId::new(*organization) {
                    next.connections.insert(current.id.connection_for(id));
                }
            }
            if next.connections == current.connections {
                return Ok(current);
            }
            if self.connections.replace_credential(&next).await? {
                next.version += 1;
                return Ok(next);
            }
            match self.connections.get_credential(&credential.id).await? {
                Some(fresh) => current = fresh,
                None => return Err(InstanceError::Gone),
            }
        }
        Err(InstanceError::Conflict)
    }

    /// The credential's connections as stored, by organization id, read together (the store
    /// may read many in one request, however many organizations the instance has). Only a
    /// connection of the credential's tenant that names the credential counts.
    async fn connections_by_organization(
        &self,
        credential: &Credential,
    ) -> Result<BTreeMap<u64, Connection>, InstanceError> {
        let ids: Vec<ConnectionId> = credential.connections.iter().cloned().collect();
        let stored = self.connections.get_connections(&ids).await?;
        Ok(stored
            .into_iter()
            .filter(|c| {
                c.tenant_id == credential.tenant_id
                    && c.credential_id.as_ref() == Some(&credential.id)
            })
            .map(|connection| (connection.organization_id.get(), connection))
            .collect())
    }

    /// A new organization of the instance, connected on the instance's credential under the
    /// id the credential makes for it. When that connection exists already (an earlier follow
    /// created it and failed before recording), it is the one; `None` when the id is taken by
    /// something that is not this credential's.
    async fn connect(
        &self,
        credential: &Credential,
        organization: OrganizationId,
        name: &str,
    ) -> Result<Option<Connection>, InstanceError> {
        let mut connection = Connection::new(
            credential.id.connection_for(organization),
            credential.tenant_id.clone(),
            credential.host.clone(),
            organization,
            self.clock.wall(),
        );
        connection.credential_id = Some(credential.id.clone());
        connection.organization_name = Some(name.to_string());
        connection.zone = Some(credential.host.to_string());
        if !self.connections.create_connection(&connection).await? {
            let existing = self.connections.get_connection(&connection.id).await?;
            return Ok(existing.filter(|c| {
                c.credential_id.as_ref() == Some(&credential.id)
                    && c.tenant_id == credential.tenant_id
                    && matches!(
                        c.status,
                        ConnectionStatus::Active | ConnectionStatus::Paused
                    )
            }));
        }
        tracing::info!(connection_id = %connection.id, credential_id = %credential.id, organization_id = %organization, "organization of the instance connected");
        Ok(Some(connection))
    }

    /// Disconnects the connection of an organization deleted in the instance; its users
    /// stay as last synced. Returns whether it was connected until now.
    /// Held under the connection's sync lease, as a sync is: an erasure the tenant asks for
    /// meanwhile waits for it (the erase job takes the same lease), so no user the follower
    /// marks removed is written after the erasure deleted them. When a sync or an erasure
    /// holds the lease, nothing changes now; the next follow tries again.
    async fn disconnect_deleted(&self, connection: &Connection) -> Result<bool, InstanceError> {
        if !matches!(
            connection.status,
            ConnectionStatus::Active | ConnectionStatus::Paused
        ) {
            return Ok(false);
        }
        let now = self.clock.wall();
        if !self
            .connections
            .acquire_lease(&connection.id, now, now + REMOVAL_LEASE)
            .await?
        {
            tracing::info!(connection_id = %connection.id, "organization deleted in the White Label instance: its connection is in use, disconnected at the next follow");
            return Ok(false);
        }
        let outcome = self.disconnect_leased(connection).await;
        if let Err(error) = self.connections.release_lease(&connection.id).await {
            tracing::warn!(connection_id = %connection.id, error = %error, "could not release the lease; it expires by itself");
        }
        outcome
    }

    async fn disconnect_leased(&self, connection: &Connection) -> Result<bool, InstanceError> {
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
        let closes = self.users.users_closes(connection).await?;
        let stamp = WriteStamp {
            removed_user_retention: self.removed_user_retention,
            ..WriteStamp::new(RunId::generate().to_string(), now, closes)
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
                detach_credential: false,
                teams_readable: None,
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
        own: &[u64],
        left: &BTreeSet<ConnectionId>,
        paused: &BTreeSet<u64>,
        changes: &InstanceChanges,
    ) -> Result<(), InstanceError> {
        let mut current = credential.clone();
        for _ in 0..WRITE_ATTEMPTS {
            let mut next = current.clone();
            let follow = next.instance.get_or_insert_with(InstanceFollow::default);
            // What the instance lists now, its own organizations only: another host's ids are
            // not this instance's (and would grow the item with every follow).
            follow.seen = own.iter().copied().collect();
            follow.available = changes.available.iter().copied().collect();
            follow.paused = paused.clone();
            follow.discovered_at = Some(self.clock.wall());
            follow.attempted_at = follow.discovered_at;
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
