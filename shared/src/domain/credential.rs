//! One Make token used by several connections: a customer who connects five organizations
//! with one token stores it once (one secret, one rotation), not five times.
//!
//! A credential owns the token's secret, by version like a connection's own token
//! (`{prefix}credential-{id}/{version}`), and lists the connections that use it. Its item is
//! the one place the current version is named, so a rotation is one conditional write however
//! many organizations the token serves; a connection of it reads the credential to find its
//! token. It is written only at the `version` that was read (a rotation, a connection added or
//! removed), so two requests cannot both think they won. When its last connection goes, its
//! secret goes with it.

use crate::connection::{ConnectionId, TokenRef};
use crate::host::MakeHost;
use crate::tenant::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use crate::connection::CredentialId;

/// Following a White Label instance: its organizations are discovered on every schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceFollow {
    /// A new organization of the instance becomes a connection at once; otherwise it is
    /// listed in `available`.
    pub auto_connect: bool,
    /// Organizations of the instance not connected (auto-connect off), by id.
    #[serde(default)]
    pub available: BTreeSet<u64>,
    /// Every organization id seen in the instance so far (so a new one is told apart).
    #[serde(default)]
    pub seen: BTreeSet<u64>,
    /// Organizations Make reported paused (`isPaused`) at the last discovery.
    #[serde(default)]
    pub paused: BTreeSet<u64>,
    /// Organizations the tenant disconnected (or erased): never connected again by following
    /// the instance, whatever `autoConnect` says, until the tenant connects them explicitly.
    #[serde(default)]
    pub excluded: BTreeSet<u64>,
    /// When the instance was last discovered.
    #[serde(default)]
    pub discovered_at: Option<DateTime<Utc>>,
    /// When a follow of the instance was last tried, whether it succeeded or not: follows go
    /// by it, the least recently tried first, so a failing one does not go first every time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<DateTime<Utc>>,
}

impl InstanceFollow {
    /// When a follow was last tried (or, for a credential from before attempts were kept,
    /// when it last succeeded).
    pub fn last_attempt(&self) -> Option<DateTime<Utc>> {
        self.attempted_at.or(self.discovered_at)
    }
}

/// The most organizations one followed instance may have. The credential's item lists its
/// connections and the organization ids seen (about 60 bytes an organization), and a
/// DynamoDB item holds 400 KB: 5,000 keeps it well under. A larger instance is refused with
/// [`TOO_MANY_ORGANIZATIONS`] before anything is connected.
pub const MAX_INSTANCE_ORGANIZATIONS: usize = 5_000;

/// What a followed instance larger than [`MAX_INSTANCE_ORGANIZATIONS`] is told.
pub const TOO_MANY_ORGANIZATIONS: &str = "makesync follows at most 5000 organizations of one White Label instance — connect the organizations you need with {\"organizations\": [...]} on one or more credentials instead";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub id: CredentialId,
    pub tenant_id: TenantId,
    /// The host the token was given for (a White Label instance's host when following one).
    pub host: MakeHost,
    /// The version of the token's secret; `None` once it is deleted.
    pub token_version: Option<String>,
    /// Counts the writes; each is made only at the version read.
    pub version: u64,
    /// The connections that use the token.
    pub connections: BTreeSet<ConnectionId>,
    /// Absent (not null) when not following an instance: the store lists instance
    /// credentials by the attribute's presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceFollow>,
    pub created_at: DateTime<Utc>,
}

impl Credential {
    pub fn new(
        tenant_id: TenantId,
        host: MakeHost,
        secret: &TokenRef,
        id: CredentialId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            tenant_id,
            host,
            token_version: secret.version.clone(),
            version: 1,
            connections: BTreeSet::new(),
            instance: None,
            created_at: now,
        }
    }

    /// The secret its token is in now.
    pub fn token_ref(&self) -> TokenRef {
        self.id.token_ref(self.token_version.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F13: a stored credential id that is not a UUID (edited by hand) is an error of that
    /// item when it is read, not a panic of the function reading it.
    #[test]
    fn a_stored_credential_id_that_is_not_a_uuid_is_an_error_not_a_panic() {
        let read: Result<CredentialId, _> = serde_json::from_str(r#""a/b c""#);
        assert!(read.unwrap_err().to_string().contains("not a UUID"));
        let id = CredentialId::generate();
        let back: CredentialId = serde_json::from_str(&format!("\"{id}\"")).unwrap();
        assert_eq!(back, id);
    }

    /// F3: the connection a credential makes for an organization is always the same id (a
    /// retry finds it), different per organization and per credential.
    #[test]
    fn a_credential_makes_one_id_per_organization() {
        let a = CredentialId::generate();
        let b = CredentialId::generate();
        let org = |n| crate::organization::OrganizationId::new(n).unwrap();
        assert_eq!(a.connection_for(org(5)), a.connection_for(org(5)));
        assert_ne!(a.connection_for(org(5)), a.connection_for(org(6)));
        assert_ne!(a.connection_for(org(5)), b.connection_for(org(5)));
    }

    #[test]
    fn a_credential_id_is_a_uuid_and_its_secrets_are_apart_from_connections() {
        assert!(CredentialId::parse("not-a-uuid").is_none());
        assert!(CredentialId::parse("../x").is_none());
        let id = CredentialId::generate();
        assert_eq!(CredentialId::parse(id.as_str()), Some(id.clone()));
        let secret = id.new_token_version();
        assert!(secret.path().starts_with(&format!("credential-{id}/")));
        assert_ne!(id.new_token_version(), secret);
    }
}
