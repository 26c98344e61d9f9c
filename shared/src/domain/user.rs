//! A member of a Make organization as makesync records it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Make's numeric user id.
pub type MakeUserId = u64;

/// The name given to a role id that `GET /users/roles` does not list.
pub const UNKNOWN_ROLE: &str = "unknown";

/// Where a user stands in the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// A member who accepted (Make's `invitation` is `null`).
    Active,
    /// Invited, invitation pending.
    Invited,
    /// Invited, invitation expired without being accepted.
    InvitationExpired,
    /// No longer in the organization (missing from a complete snapshot).
    Removed,
}

impl UserStatus {
    /// Maps Make's `invitation` field (`null`, `"pending"`, `"expired"`). Anything else is
    /// `None`: the caller reports it as a protocol error rather than guessing.
    pub fn from_invitation(invitation: Option<&str>) -> Option<Self> {
        match invitation {
            None => Some(UserStatus::Active),
            Some("pending") => Some(UserStatus::Invited),
            Some("expired") => Some(UserStatus::InvitationExpired),
            Some(_) => None,
        }
    }

    /// Make's `invitation` value for a member in this status (the inverse of
    /// [`from_invitation`](Self::from_invitation); a removed user has none).
    pub fn invitation(self) -> Option<&'static str> {
        match self {
            UserStatus::Invited => Some("pending"),
            UserStatus::InvitationExpired => Some("expired"),
            UserStatus::Active | UserStatus::Removed => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Invited => "invited",
            UserStatus::InvitationExpired => "invitation_expired",
            UserStatus::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(UserStatus::Active),
            "invited" => Some(UserStatus::Invited),
            "invitation_expired" => Some(UserStatus::InvitationExpired),
            "removed" => Some(UserStatus::Removed),
            _ => None,
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a user marked removed is kept by default: 30 days.
pub const DEFAULT_REMOVED_USER_RETENTION_DAYS: u32 = 30;

/// One user of one connection, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub user_id: MakeUserId,
    pub name: String,
    pub email: String,
    /// Make's organization role id (`usersRoleId`).
    pub role_id: u32,
    /// The role's name from `GET /users/roles`, or [`UNKNOWN_ROLE`].
    pub role_name: String,
    /// A built-in role's machine-readable name (`admin`), where Make gives it; a custom role
    /// has none. Tells a built-in Admin from a custom role called "Admin".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_identifier: Option<String>,
    /// Make's `managementType` of the role (`system_locked`, `admin_managed`,
    /// `custom_managed`), where Make gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_management_type: Option<String>,
    pub status: UserStatus,
    /// Make's raw `invitation` value, kept beside the normalised status.
    pub invitation: Option<String>,
    pub last_login: Option<DateTime<Utc>>,
    /// When makesync first saw the user in this organization.
    pub first_seen: DateTime<Utc>,
    /// When makesync found the user gone; `None` while present.
    pub removed_at: Option<DateTime<Utc>>,
    /// The member's team roles, by team id: `None` when the run did not read team access (its
    /// token lacks `teams:read`, or the record is from before teams were read); empty when
    /// the member is in no team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<TeamRole>>,
}

/// A member's role in one team of the organization: the team and the role, each with the name
/// Make gives it (`GET /teams`, `GET /users/roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamRole {
    pub team_id: u64,
    pub team_name: String,
    pub role_id: u32,
    pub role_name: String,
}

/// The digest of a member's team roles, in the order given (by team id): a part of
/// [`DigestFields`].
pub fn teams_digest<'a>(teams: impl Iterator<Item = (u64, &'a str, u32, &'a str)>) -> u64 {
    let mut hash = Fnv1a::default();
    for (team_id, team_name, role_id, role_name) in teams {
        hash.field(&team_id.to_be_bytes());
        hash.field(team_name.as_bytes());
        hash.field(&role_id.to_be_bytes());
        hash.field(role_name.as_bytes());
    }
    hash.0
}

/// What a sync reads of each stored user: enough to tell whether Make's view of them changed,
/// without reading the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredUser {
    pub user_id: MakeUserId,
    /// [`UserRecord::digest`] as stored; `None` for a record written before digests were kept.
    pub digest: Option<u64>,
    /// [`UserRecord::teams_digest`] as stored; `None` when the record holds no team roles,
    /// or was written before it was kept.
    pub teams_digest: Option<u64>,
    pub removed: bool,
    /// Removed, and stored without the expiry a retention gives it (stored before removed
    /// users expired): a sync with a retention writes it again, with one. Stores that apply
    /// the retention themselves (SQLite, memory) never say so.
    pub lacks_expiry: bool,
}

/// The fields a digest covers: everything Make told us and the removal, not `first_seen`.
pub struct DigestFields<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub role_id: u32,
    pub role_name: &'a str,
    pub role_identifier: Option<&'a str>,
    pub role_management_type: Option<&'a str>,
    pub status: UserStatus,
    pub invitation: Option<&'a str>,
    pub last_login: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    /// [`teams_digest`] of the member's team roles, when they were read.
    pub teams: Option<u64>,
}

impl DigestFields<'_> {
    /// A 64-bit FNV-1a hash of the fields in a fixed order, each ended by a separator byte
    /// that no text field can hold. It is written with each record and must stay the same
    /// across versions and machines: hence a hash defined here, not `std`'s.
    pub fn digest(&self) -> u64 {
        let mut hash = Fnv1a::default();
        hash.field(self.name.as_bytes());
        hash.field(self.email.as_bytes());
        hash.field(&self.role_id.to_be_bytes());
        hash.field(self.role_name.as_bytes());
        hash.field(self.status.as_str().as_bytes());
        match self.invitation {
            Some(text) => hash.field(text.as_bytes()),
            None => hash.field(&[0xFE]),
        }
        for at in [self.last_login, self.removed_at] {
            match at {
                Some(at) => hash.field(&at.timestamp_millis().to_be_bytes()),
                None => hash.field(&[0xFE]),
            }
        }
        // Added later, and only when Make gives them: a record without them keeps the
        // digest it had.
        if self.role_identifier.is_some() || self.role_management_type.is_some() {
            for kind in [self.role_identifier, self.role_management_type] {
                match kind {
                    Some(text) => hash.field(text.as_bytes()),
                    None => hash.field(&[0xFE]),
                }
            }
        }
        // Added later still, and only when team access was read: likewise.
        if let Some(teams) = self.teams {
            hash.field(&[0xFD]);
            hash.field(&teams.to_be_bytes());
        }
        hash.0
    }
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn field(&mut self, bytes: &[u8]) {
        for byte in bytes.iter().chain([0xFF].iter()) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl UserRecord {
    /// The digest of what Make told us about the user (see [`DigestFields::digest`]).
    pub fn digest(&self) -> u64 {
        DigestFields {
            name: &self.name,
            email: &self.email,
            role_id: self.role_id,
            role_name: &self.role_name,
            role_identifier: self.role_identifier.as_deref(),
            role_management_type: self.role_management_type.as_deref(),
            status: self.status,
            invitation: self.invitation.as_deref(),
            last_login: self.last_login,
            removed_at: self.removed_at,
            teams: self.teams_digest(),
        }
        .digest()
    }

    /// [`teams_digest`] of the user's team roles; `None` when team access was not read.
    /// Stored beside the digest, so that a run that cannot read team access can still tell
    /// whether the rest of the user changed (the team roles stored are kept then).
    pub fn teams_digest(&self) -> Option<u64> {
        self.teams.as_ref().map(|teams| {
            teams_digest(teams.iter().map(|t| {
                (
                    t.team_id,
                    t.team_name.as_str(),
                    t.role_id,
                    t.role_name.as_str(),
                )
            }))
        })
    }

    /// Whether anything Make told us differs; bookkeeping (`first_seen`) is not compared.
    pub fn differs_from(&self, other: &UserRecord) -> bool {
        self.user_id != other.user_id
            || self.name != other.name
            || self.email != other.email
            || self.role_id != other.role_id
            || self.role_name != other.role_name
            || self.role_identifier != other.role_identifier
            || self.role_management_type != other.role_management_type
            || self.status != other.status
            || self.invitation != other.invitation
            || self.last_login != other.last_login
            || self.removed_at != other.removed_at
            || self.teams != other.teams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_values_map_to_statuses() {
        assert_eq!(UserStatus::from_invitation(None), Some(UserStatus::Active));
        assert_eq!(
            UserStatus::from_invitation(Some("pending")),
            Some(UserStatus::Invited)
        );
        assert_eq!(
            UserStatus::from_invitation(Some("expired")),
            Some(UserStatus::InvitationExpired)
        );
        assert_eq!(UserStatus::from_invitation(Some("revoked")), None);
    }

    fn record() -> UserRecord {
        UserRecord {
            user_id: 7,
            name: "Zoë".into(),
            email: "zoe@example.com".into(),
            role_id: 13,
            role_name: "Member".into(),
            role_identifier: None,
            role_management_type: None,
            status: UserStatus::Active,
            invitation: None,
            last_login: None,
            first_seen: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            removed_at: None,
            teams: None,
        }
    }

    #[test]
    fn the_digest_is_fixed_and_changes_with_every_synced_field() {
        let base = record();
        // Stored with records: a different value here means stored digests no longer match.
        assert_eq!(base.digest(), 0xd558_d4d1_4c12_4ed2);
        let mut later = base.clone();
        later.first_seen += chrono::Duration::days(3);
        assert_eq!(later.digest(), base.digest(), "first_seen is bookkeeping");
        let variants: Vec<UserRecord> = vec![
            UserRecord {
                name: "Zoe".into(),
                ..record()
            },
            UserRecord {
                email: "z@example.com".into(),
                ..record()
            },
            UserRecord {
                role_id: 12,
                ..record()
            },
            UserRecord {
                role_name: "Admin".into(),
                ..record()
            },
            UserRecord {
                role_identifier: Some("member".into()),
                ..record()
            },
            UserRecord {
                role_management_type: Some("custom_managed".into()),
                ..record()
            },
            UserRecord {
                status: UserStatus::Invited,
                ..record()
            },
            UserRecord {
                invitation: Some("pending".into()),
                ..record()
            },
            UserRecord {
                invitation: Some(String::new()),
                ..record()
            },
            UserRecord {
                last_login: Some(base.first_seen),
                ..record()
            },
            UserRecord {
                removed_at: Some(base.first_seen),
                ..record()
            },
            // Moving text from one field to the next changes the digest too.
            UserRecord {
                name: "Zoëzoe@example.com".into(),
                email: String::new(),
                ..record()
            },
        ];
        for variant in variants {
            assert_ne!(variant.digest(), base.digest(), "{variant:?}");
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [
            UserStatus::Active,
            UserStatus::Invited,
            UserStatus::InvitationExpired,
            UserStatus::Removed,
        ] {
            assert_eq!(UserStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }
}
