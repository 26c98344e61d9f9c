//! A connection: one Make organization that makesync keeps in sync.

use crate::error::ErrorReport;
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::tenant::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// A connection's id: minted by makesync when the connection is made (the product's backend
/// cannot choose it, so it cannot learn which ids other tenants hold). It is part of every key
/// that belongs to the connection, so it is limited to characters that are safe in keys, log
/// lines and secret names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConnectionIdError {
    #[error("the connection ID is empty")]
    Empty,
    #[error("the connection ID {0} is longer than 128 characters or uses characters other than letters, digits, '-', '_', '.' and ':'")]
    Invalid(String),
}

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, ConnectionIdError> {
        if raw.is_empty() {
            return Err(ConnectionIdError::Empty);
        }
        let valid = raw.len() <= 128
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !valid {
            // Quoted in the error, so it is cut: the caller's input is not echoed at length.
            return Err(ConnectionIdError::Invalid(crate::excerpt::excerpt(raw)));
        }
        Ok(Self(raw.to_string()))
    }

    /// A fresh random id (122 random bits: not guessable).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The stored secret that holds this connection's token at `version`.
    pub fn token_ref(&self, version: Option<&str>) -> TokenRef {
        TokenRef {
            connection_id: self.clone(),
            version: version.map(str::to_string),
        }
    }

    /// The id a tenant's connection of `organization` on `host` is created under: always the
    /// same for the same three, so that two identical connects racing each other meet on one
    /// id (the store writes a new connection only if its id is free) instead of making two.
    /// `generation` counts the connections of that organization whose users were erased
    /// before: an erased connection keeps its id, and the next one takes the next id.
    pub fn for_tenant_organization(
        tenant: &crate::tenant::TenantId,
        host: &MakeHost,
        organization_id: OrganizationId,
        generation: u32,
    ) -> Self {
        let name = format!("{tenant}\u{0}{host}\u{0}{organization_id}\u{0}{generation}");
        Self(uuid::Uuid::new_v5(&CONNECTION_IDS, name.as_bytes()).to_string())
    }

    /// The id the CLI uses for a host and organization, so that `makesync sync`, `users` and
    /// `runs` find the same connection without the user naming it.
    pub fn for_organization(host: &MakeHost, organization_id: OrganizationId) -> Self {
        Self(format!("{host}:{organization_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The namespace of the ids derived for a tenant's organization (a random UUID, fixed once).
const CONNECTION_IDS: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2d3e_8a47_4b59_9c0d_5e7f_a1b2_c3d4);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConnectionId {
    type Error = ConnectionIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ConnectionId::parse(&value)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

/// Which stored secret holds a connection's token. Every connect stores its token under a new
/// version (`{prefix}{connection}/{version}`) and the connection item names that version, so
/// the item and the token it points to always come from the same request, whatever connects
/// and disconnects interleave; the version before is deleted once no item names it.
/// Connections made before token versions have none (`{prefix}{connection}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRef {
    pub connection_id: ConnectionId,
    pub version: Option<String>,
}

impl TokenRef {
    /// A new version for a token about to be stored: random, key-safe.
    pub fn new_version(connection_id: &ConnectionId) -> Self {
        Self {
            connection_id: connection_id.clone(),
            version: Some(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// The path below the secret prefix: `{connection}` or `{connection}/{version}`.
    pub fn path(&self) -> String {
        match &self.version {
            Some(version) => format!("{}/{version}", self.connection_id),
            None => self.connection_id.to_string(),
        }
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A credential's id: a UUID minted by makesync (see [`crate::credential`], which holds the
/// token several connections share).
/// Read back from the store through [`CredentialId::parse`]: an id edited into an item by hand
/// is an error of that item, never a panic of the function that reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

impl TryFrom<String> for CredentialId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CredentialId::parse(&value).ok_or_else(|| {
            format!(
                "the credential ID {} is not a UUID",
                crate::excerpt::excerpt(&value)
            )
        })
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.0
    }
}

impl CredentialId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Reads an id a caller gave: a UUID, nothing else (it ends up in a key and a secret name).
    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::parse_str(text.trim())
            .ok()
            .map(|id| Self(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The secret of the token's `version`.
    pub fn token_ref(&self, version: Option<&str>) -> TokenRef {
        TokenRef {
            connection_id: self.owner(),
            version: version.map(str::to_string),
        }
    }

    /// A new version for a token about to be stored.
    pub fn new_token_version(&self) -> TokenRef {
        TokenRef::new_version(&self.owner())
    }

    /// The connection this credential makes for `organization`: always the same id, so that
    /// a connection listed on the credential before it was created (and created by a later
    /// try, when the first failed part-way) is found again instead of made twice. Derived from
    /// the credential's own random id (UUID v5 with it as namespace), so it is no easier to
    /// guess than a random one.
    pub fn connection_for(&self, organization: OrganizationId) -> ConnectionId {
        let namespace = uuid::Uuid::parse_str(&self.0).unwrap_or(uuid::Uuid::nil());
        let id = uuid::Uuid::new_v5(&namespace, &organization.get().to_be_bytes());
        ConnectionId(id.to_string())
    }

    /// The first part of its secrets' names, apart from any connection's. A credential id is
    /// a UUID (checked wherever one is read), which is always a valid key.
    fn owner(&self) -> ConnectionId {
        ConnectionId(format!("credential-{}", self.0))
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Synced on every schedule.
    Active,
    /// Not synced until reconnected (see `status_reason`).
    Paused,
    /// The customer removed it; its token is gone, its users are kept.
    Disconnected,
    /// The customer removed it and asked for its users to be erased: its token is gone, no
    /// sync starts or writes, and an erase job deletes its users in batches.
    Erasing,
    /// Every user of it is deleted; the connection keeps ids, tenant, times and counts only.
    Erased,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Paused => "paused",
            ConnectionStatus::Disconnected => "disconnected",
            ConnectionStatus::Erasing => "erasing",
            ConnectionStatus::Erased => "erased",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(ConnectionStatus::Active),
            "paused" => Some(ConnectionStatus::Paused),
            "disconnected" => Some(ConnectionStatus::Disconnected),
            "erasing" => Some(ConnectionStatus::Erasing),
            "erased" => Some(ConnectionStatus::Erased),
            _ => None,
        }
    }
}

/// What connect or disconnect changes on a stored connection: its configuration, never what a
/// run owns (its outcome, counts, lease). Written only if the connection is still at the
/// version that was read, and counted in `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionUpdate {
    pub status: ConnectionStatus,
    pub status_reason: Option<ErrorReport>,
    /// The token's secret from now on; `None` when the token is being deleted.
    pub token_version: Option<String>,
    /// A reconnect starts the count of failed runs afresh; the last error stays until a sync
    /// succeeds (it says what failed, and that the next success is one after failures).
    pub reset_failures: bool,
    /// Kept when `None`.
    pub organization_name: Option<String>,
    /// Kept when `None`.
    pub zone: Option<String>,
    /// The connection no longer uses a credential's token: a connection that left its
    /// credential (disconnected) gets a token of its own when connected again.
    pub detach_credential: bool,
    /// Whether the new token has `teams:read` (`Some(None)`: Make did not say); kept when
    /// `None` (the token did not change).
    pub teams_readable: Option<Option<bool>>,
}

impl ConnectionUpdate {
    /// A reconnect: active again, on the token stored under `token_version`, with the failure
    /// count started afresh and the organization as Make describes it now.
    pub fn reconnect(
        token_version: Option<String>,
        organization_name: Option<String>,
        zone: Option<String>,
    ) -> Self {
        Self {
            status: ConnectionStatus::Active,
            status_reason: None,
            token_version,
            reset_failures: true,
            organization_name,
            zone,
            detach_credential: false,
            teams_readable: None,
        }
    }

    /// A reconnect of a connection that left its credential: from now on on a token of its
    /// own, stored under `token_version`.
    pub fn reconnect_detached(
        token_version: Option<String>,
        organization_name: Option<String>,
        zone: Option<String>,
    ) -> Self {
        Self {
            detach_credential: true,
            ..Self::reconnect(token_version, organization_name, zone)
        }
    }

    /// A disconnect that erases the users: no token, erasing from now on.
    pub fn erase() -> Self {
        Self {
            status: ConnectionStatus::Erasing,
            ..Self::disconnect()
        }
    }

    /// A disconnect: no token, nothing else changed.
    pub fn disconnect() -> Self {
        Self {
            status: ConnectionStatus::Disconnected,
            status_reason: None,
            token_version: None,
            reset_failures: false,
            organization_name: None,
            zone: None,
            detach_credential: false,
            teams_readable: None,
        }
    }
}

/// What a finished run writes on its connection: the fields a run owns and nothing else, so
/// that a disconnect or a reconnect that lands while the run is in flight is not written over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunBookkeeping {
    pub run_id: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// The users the run fetched, or its error.
    pub outcome: Result<u32, ErrorReport>,
    /// The organization's name and zone as Make reported them in this run.
    pub organization_name: Option<String>,
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: ConnectionId,
    /// The product's customer this connection belongs to; the connection is reachable only
    /// through it. Items stored before tenants were required read back as unowned.
    #[serde(default)]
    pub tenant_id: TenantId,
    /// Counts the changes connect and disconnect made (1 when created): each writes only if
    /// the connection is still at the version it read. Runs and leases do not change it.
    #[serde(default)]
    pub version: u64,
    /// Which version of the token's secret this connection uses (see [`TokenRef`]); `None`
    /// for one made before token versions, or disconnected.
    #[serde(default)]
    pub token_version: Option<String>,
    pub host: MakeHost,
    pub organization_id: OrganizationId,
    pub status: ConnectionStatus,
    /// Why the connection is paused or disconnected.
    pub status_reason: Option<ErrorReport>,
    /// The organization's name and zone as Make last reported them.
    pub organization_name: Option<String>,
    pub zone: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the last successful sync finished: every present user was last seen then.
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<String>,
    pub last_error: Option<ErrorReport>,
    pub consecutive_failures: u32,
    /// How many users the last successful sync fetched: what the worker expects the next
    /// sync to hold in memory. `None` before the first.
    #[serde(default)]
    pub user_count: Option<u32>,
    /// A sync holds the connection until this time (a lease, so that the scheduler does not
    /// enqueue a connection whose sync is still in flight).
    pub lease_until: Option<DateTime<Utc>>,
    /// How many user items an erasure has deleted so far: its progress.
    #[serde(default)]
    pub erased_users: u64,
    /// The credential whose token it uses, when one token serves several connections; `None`
    /// when the token is the connection's own. Set when it is created; cleared only when a
    /// connection that left its credential is connected again on a token of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<CredentialId>,
    /// Whether its token has `teams:read`, as Make said when the token was given (connect);
    /// `None` when Make did not say. A token known to lack it is not asked for teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_readable: Option<bool>,
}

impl Connection {
    pub fn new(
        id: ConnectionId,
        tenant_id: TenantId,
        host: MakeHost,
        organization_id: OrganizationId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            tenant_id,
            version: 1,
            token_version: None,
            host,
            organization_id,
            status: ConnectionStatus::Active,
            status_reason: None,
            organization_name: None,
            zone: None,
            created_at: now,
            last_success_at: None,
            last_run_id: None,
            last_error: None,
            consecutive_failures: 0,
            user_count: None,
            lease_until: None,
            erased_users: 0,
            credential_id: None,
            teams_readable: None,
        }
    }

    /// What an erased connection keeps: nothing Make said about the organization or a person
    /// (its name, errors and reasons, which may quote Make), only ids, tenant, times, counts.
    pub fn forget_for_erasure(&mut self) {
        self.status = ConnectionStatus::Erased;
        self.status_reason = None;
        self.organization_name = None;
        self.last_error = None;
    }

    /// The secret this connection's own token is in now (a connection of a credential reads
    /// the credential's).
    pub fn token_ref(&self) -> TokenRef {
        self.id.token_ref(self.token_version.as_deref())
    }

    /// Applies a change connect or disconnect made, and counts it in `version`.
    pub fn apply_update(&mut self, update: &ConnectionUpdate) {
        self.status = update.status;
        self.status_reason = update.status_reason.clone();
        self.token_version = update.token_version.clone();
        if update.reset_failures {
            self.consecutive_failures = 0;
        }
        if update.organization_name.is_some() {
            self.organization_name = update.organization_name.clone();
        }
        if update.zone.is_some() {
            self.zone = update.zone.clone();
        }
        if update.detach_credential {
            self.credential_id = None;
        }
        if let Some(readable) = update.teams_readable {
            self.teams_readable = readable;
        }
        self.version += 1;
    }

    /// Writes a finished run's bookkeeping on the connection.
    pub fn apply(&mut self, run: &RunBookkeeping) {
        self.last_run_id = Some(run.run_id.clone());
        match &run.outcome {
            Ok(users) => {
                self.last_success_at = self.last_success_at.max(run.finished_at);
                self.last_error = None;
                self.consecutive_failures = 0;
                self.user_count = Some(*users);
            }
            Err(error) => {
                self.last_error = Some(error.clone());
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            }
        }
        if run.organization_name.is_some() {
            self.organization_name = run.organization_name.clone();
        }
        if run.zone.is_some() {
            self.zone = run.zone.clone();
        }
    }

    pub fn is_leased_at(&self, now: DateTime<Utc>) -> bool {
        self.lease_until.is_some_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_limited_to_key_safe_characters() {
        assert!(ConnectionId::parse("conn-1_a.b:c").is_ok());
        assert_eq!(ConnectionId::parse(""), Err(ConnectionIdError::Empty));
        assert!(ConnectionId::parse("a/b").is_err());
        assert!(ConnectionId::parse("a b").is_err());
        assert!(ConnectionId::parse(&"x".repeat(129)).is_err());
        assert!(ConnectionId::parse(ConnectionId::generate().as_str()).is_ok());
    }

    #[test]
    fn a_token_ref_names_its_version() {
        let id = ConnectionId::parse("c-1").unwrap();
        assert_eq!(id.token_ref(None).path(), "c-1");
        assert_eq!(id.token_ref(Some("v9")).path(), "c-1/v9");
        let fresh = TokenRef::new_version(&id);
        assert_ne!(fresh, TokenRef::new_version(&id));
        assert!(fresh.path().starts_with("c-1/"));
    }

    #[test]
    fn the_cli_id_is_stable_for_a_host_and_organization() {
        let host = MakeHost::parse("eu1.make.com").unwrap();
        let org = OrganizationId::new(42).unwrap();
        let id = ConnectionId::for_organization(&host, org);
        assert_eq!(id.as_str(), "eu1.make.com:42");
        assert!(ConnectionId::parse(id.as_str()).is_ok());
    }
}
