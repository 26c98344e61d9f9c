//! Who has access to an organization: its roles, members, teams and team roles, and its users
//! (`GET /users`), each row refusing what a hostile host could send (an id 0, an oversized
//! name).

use super::fields::{
    bounded_text, bounded_text_or_null, count_or_none, positive_id, required_timestamp,
};
use crate::make::paging::Keyed;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `GET /users/roles` → `usersRoles[]`, and `GET /users/roles/{id}` → `usersRole`. Only `id`
/// and `name` are required (Make's API reference answers those by default); what kind of role
/// it is — `identifier` for a built-in role, `managementType` (`system_locked`,
/// `admin_managed`, `custom_managed`) — is kept where Make gives it (Make's SDK, roles.ts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRole {
    pub id: u32,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub management_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RoleResponse {
    #[serde(rename = "usersRole")]
    pub role: OrganizationRole,
}

impl Keyed for OrganizationRole {
    fn key(&self) -> u64 {
        u64::from(self.id)
    }
}

/// `GET /organizations/{id}/user-organization-roles` → `userOrganizationRoles[]`, and
/// `GET /organizations/{id}/user-organization-roles/{userId}` → `userOrganizationRole`.
/// Other fields Make adds (`organizationId`, `ssoPending`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrganizationMember {
    #[serde(rename = "userId", deserialize_with = "positive_id")]
    pub user_id: u64,
    #[serde(rename = "usersRoleId")]
    pub users_role_id: u32,
    /// `null` for a member, `"pending"` or `"expired"` for an invitation. Required to be
    /// present: a missing field must not turn an invitee into a member.
    #[serde(deserialize_with = "bounded_text_or_null")]
    pub invitation: Option<String>,
    /// `joinedTeamsCount`: the teams the member is in. Asked only where team access is read,
    /// to check the team lists against (Make's API reference; what it counts is assumed).
    /// A value that is not such a count is none: the counts only check the team lists.
    #[serde(
        rename = "joinedTeamsCount",
        default,
        deserialize_with = "count_or_none"
    )]
    pub joined_teams: Option<u32>,
    /// `organizationTeamsCount`: the organization's teams, as the same member row says.
    #[serde(
        rename = "organizationTeamsCount",
        default,
        deserialize_with = "count_or_none"
    )]
    pub organization_teams: Option<u32>,
}

impl Keyed for OrganizationMember {
    fn key(&self) -> u64 {
        self.user_id
    }
}

#[derive(Debug, Deserialize)]
pub struct MemberResponse {
    #[serde(rename = "userOrganizationRole")]
    pub member: OrganizationMember,
}

/// `GET /teams?organizationId=…` → `teams[]`: `{id, name, organizationId}` (Make's SDK,
/// `test/mocks/teams/list.json`; `src/endpoints/teams.ts`). Other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Team {
    #[serde(deserialize_with = "positive_id")]
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
}

impl Keyed for Team {
    fn key(&self) -> u64 {
        self.id
    }
}

/// `GET /teams/{teamId}/user-team-roles` → `userTeamRoles[]`: `{usersRoleId, userId, teamId,
/// changeable}` (Make's API reference, "Teams > User team roles"; the SDK's `UserTeamRole`).
/// `teamId`, when present, must be the team asked for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TeamMemberRole {
    #[serde(rename = "userId", deserialize_with = "positive_id")]
    pub user_id: u64,
    #[serde(rename = "usersRoleId")]
    pub users_role_id: u32,
    #[serde(rename = "teamId", default)]
    pub team_id: Option<u64>,
}

impl Keyed for TeamMemberRole {
    fn key(&self) -> u64 {
        self.user_id
    }
}

/// `GET /users?organizationId=…` → `users[]`, with the columns the sync asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MakeUser {
    #[serde(deserialize_with = "positive_id")]
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(deserialize_with = "bounded_text")]
    pub email: String,
    /// Required to be present (possibly `null`): see the module documentation. Make's admin
    /// user list spells it `lastLogin`, its `/users/me` example `lastlogin`; either is read.
    #[serde(
        rename = "lastLogin",
        alias = "lastlogin",
        deserialize_with = "required_timestamp"
    )]
    pub last_login: Option<DateTime<Utc>>,
}

impl Keyed for MakeUser {
    fn key(&self) -> u64 {
        self.id
    }
}
