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
    pub status: UserStatus,
    /// Make's raw `invitation` value, kept beside the normalised status.
    pub invitation: Option<String>,
    pub last_login: Option<DateTime<Utc>>,
    /// When makesync first saw the user in this organization.
    pub first_seen: DateTime<Utc>,
    /// When makesync found the user gone; `None` while present.
    pub removed_at: Option<DateTime<Utc>>,
}

impl UserRecord {
    /// Whether anything Make told us differs; bookkeeping (`first_seen`) is not compared.
    pub fn differs_from(&self, other: &UserRecord) -> bool {
        self.user_id != other.user_id
            || self.name != other.name
            || self.email != other.email
            || self.role_id != other.role_id
            || self.role_name != other.role_name
            || self.status != other.status
            || self.invitation != other.invitation
            || self.last_login != other.last_login
            || self.removed_at != other.removed_at
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
