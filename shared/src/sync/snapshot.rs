//! Reading one complete, consistent snapshot of an organization's members from Make.
//!
//! Membership (role, invitation) comes from `user-organization-roles`; name, email and last
//! login from `/users?organizationId`. On a first sync the organization is read first and
//! alone: it proves the token (so that a later 401 is read as a missing scope), sets the
//! request budget from the plan and checks the zone; then the roles, the member list and the
//! user list are read concurrently, so a small organization costs two round trips. An
//! organization synced before (it has a count) is read beside its lists, in one round trip:
//! its answer still decides first, and a list that had a 401 before it is read again.
//!
//! The `/users` pages are read a few at once: when the last successful sync counted the
//! users, as many as that count says, from the first page on; on a first sync, one after
//! another until the member list's length is in, then as many as it says are left. A count
//! that is wrong costs a few requests, never a row (every page is checked against the one
//! before).
//!
//! The member list and the user list must name the same users:
//!
//! - users that `/users` lists and the member list lacks are looked up one by one
//!   (`GET …/user-organization-roles/{userId}`), at most `member_lookups` per run: the member
//!   list is documented without paging and may be cut by a default limit Make does not
//!   state. Past that bound the run fails and says so;
//! - any other disagreement, or a list that shifted while it was paged, means members changed
//!   during the read: the member and user lists are read again, a bounded number of times.
//!
//! A snapshot that never settles is an error, so that nobody is marked removed on the strength
//! of a list that was moving or cut.

use super::error::SyncError;
use super::plan::StoredTeams;
use super::team_check::settle_team_access;
use super::teams::{read_team_access, TeamAccess, TeamGrant};
use crate::make::{
    MakeClient, MakeError, MakeUser, OrganizationMember, OrganizationRole, OrganizationSummary,
};
use crate::organization::OrganizationId;
use crate::user::{
    teams_digest, DigestFields, MakeUserId, TeamRole, UserRecord, UserStatus, UNKNOWN_ROLE,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Roles a run looks up one by one when the roles list does not name them.
const ROLE_LOOKUPS: usize = 20;

/// The most a member's team roles may take, their team and role names and the rest of each
/// role as stored (ids, field names): a user's record holds them, its change event holds them
/// twice (before and after), and the events bus takes 256 KB a request. Ordinary names fit
/// some 600 teams; 1 KB names, 30.
pub const MAX_MEMBER_TEAM_BYTES: usize = 64 * 1024;

/// What one team role of a member takes besides its two names.
const TEAM_ROLE_BYTES: usize = 64;

/// One member as Make reports them, role name resolved. The one record a sync holds per
/// member, so it is compact: role names are shared, not copied, and Make's `invitation` is
/// not kept beside the status it maps to one to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMember {
    pub user_id: MakeUserId,
    pub name: Box<str>,
    pub email: Box<str>,
    pub role_id: u32,
    pub role: Arc<RoleLabel>,
    pub status: UserStatus,
    pub last_login: Option<DateTime<Utc>>,
    /// The member's team roles by team id; `None` when team access was not read.
    pub teams: Option<Box<[MemberTeam]>>,
    /// What the member list says of the member's teams, where it says it: checks the team
    /// lists (see `team_check`).
    pub team_counts: Option<TeamCounts>,
}

/// A member row's `joinedTeamsCount` and `organizationTeamsCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamCounts {
    pub joined: u32,
    pub organization: u32,
}

/// A member's role in one team, names shared with every member of the team or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTeam {
    pub team_id: u64,
    pub team_name: Arc<str>,
    pub role_id: u32,
    pub role: Arc<RoleLabel>,
}

/// A role as members are stored with it: its name, and what kind of role it is where Make
/// says. Shared by every member holding the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLabel {
    pub name: Box<str>,
    pub identifier: Option<Box<str>>,
    pub management_type: Option<Box<str>>,
}

impl RoleLabel {
    /// A role known by its name only.
    pub fn named(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            identifier: None,
            management_type: None,
        })
    }

    fn of(role: OrganizationRole) -> Arc<Self> {
        Arc::new(Self {
            name: role.name.into_boxed_str(),
            identifier: role.identifier.map(String::into_boxed_str),
            management_type: role.management_type.map(String::into_boxed_str),
        })
    }
}

impl SnapshotMember {
    fn digest_fields(&self) -> DigestFields<'_> {
        DigestFields {
            name: &self.name,
            email: &self.email,
            role_id: self.role_id,
            role_name: &self.role.name,
            role_identifier: self.role.identifier.as_deref(),
            role_management_type: self.role.management_type.as_deref(),
            status: self.status,
            invitation: self.status.invitation(),
            last_login: self.last_login,
            removed_at: None,
            teams: self.teams.as_ref().map(|teams| {
                teams_digest(
                    teams
                        .iter()
                        .map(|t| (t.team_id, &*t.team_name, t.role_id, &*t.role.name)),
                )
            }),
        }
    }

    /// The digest of the record this member is stored as.
    pub fn digest(&self) -> u64 {
        self.digest_fields().digest()
    }

    /// The digest of the record this member would be stored as with team roles of digest
    /// `teams` (`None`: without team roles) in place of their own.
    pub fn digest_with_teams(&self, teams: Option<u64>) -> u64 {
        DigestFields {
            teams,
            ..self.digest_fields()
        }
        .digest()
    }

    /// The record to store for this member, first seen at `first_seen`.
    pub fn to_record(&self, first_seen: DateTime<Utc>) -> UserRecord {
        UserRecord {
            user_id: self.user_id,
            name: self.name.to_string(),
            email: self.email.to_string(),
            role_id: self.role_id,
            role_name: self.role.name.to_string(),
            role_identifier: self.role.identifier.as_deref().map(str::to_string),
            role_management_type: self.role.management_type.as_deref().map(str::to_string),
            status: self.status,
            invitation: self.status.invitation().map(str::to_string),
            last_login: self.last_login,
            first_seen,
            removed_at: None,
            teams: self.teams.as_ref().map(|teams| {
                teams
                    .iter()
                    .map(|t| TeamRole {
                        team_id: t.team_id,
                        team_name: t.team_name.to_string(),
                        role_id: t.role_id,
                        role_name: t.role.name.to_string(),
                    })
                    .collect()
            }),
        }
    }
}

/// Every member of the organization at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSnapshot {
    pub organization: OrganizationSummary,
    /// Sorted by user id.
    pub members: Vec<SnapshotMember>,
    /// Why team access was not read, when it was not (the members' `teams` are `None`).
    pub teams_not_read: Option<String>,
    /// Whether the team roles stored are replaced by the members' or kept (team access not
    /// read this run for a passing reason).
    pub stored_teams: StoredTeams,
}

/// One read of the member and user lists.
enum MemberRead {
    /// Every member with their details; role names are filled in once the roles are read.
    Settled(Vec<SnapshotMember>),
    /// The lists moved while they were read; reading again may settle them.
    Unsettled(SyncError),
}

/// Reads the organization, its roles and a consistent member list; `expected_users` is how
/// many users the last successful sync counted, if any. `beside` runs alongside the lists
/// once the organization has answered — work worth doing only for an organization that
/// answers (the engine reads what it stored there) — and its output comes back with the
/// snapshot; it is dropped unfinished if a list fails.
pub async fn fetch_snapshot<B: std::future::Future>(
    client: &MakeClient,
    organization_id: OrganizationId,
    expected_users: Option<usize>,
    max_attempts: u32,
    beside: B,
) -> Result<(OrganizationSnapshot, B::Output), SyncError> {
    let mut lookups_left = client.member_lookups();
    let (organization, (roles, mut read, teams), beside) = match expected_users {
        Some(_) => {
            read_beside_organization(
                client,
                organization_id,
                expected_users,
                &mut lookups_left,
                beside,
            )
            .await?
        }
        None => {
            let organization = client.get_organization(organization_id).await?;
            let (lists, beside) = tokio::try_join!(
                read_lists(client, organization_id, None, &mut lookups_left),
                async { Ok::<_, SyncError>(beside.await) }
            )?;
            (organization, lists, beside)
        }
    };
    let mut roles: HashMap<u32, Arc<RoleLabel>> = roles
        .into_iter()
        .map(|role| (role.id, RoleLabel::of(role)))
        .collect();
    let max_attempts = max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let reason = match read {
            MemberRead::Settled(mut members) => {
                let teams = settle_team_access(client, organization_id, teams, &members).await?;
                look_up_unlisted_roles(client, &members, &teams, &mut roles).await;
                name_roles(&mut members, &roles);
                let stored_teams = match teams {
                    TeamAccess::Kept(_) => StoredTeams::Keep,
                    TeamAccess::Read(_) | TeamAccess::NotRead(_) => StoredTeams::Replace,
                };
                let teams_not_read = give_teams(&mut members, &teams, &roles);
                let snapshot = OrganizationSnapshot {
                    organization,
                    members,
                    teams_not_read,
                    stored_teams,
                };
                return Ok((snapshot, beside));
            }
            MemberRead::Unsettled(reason) => reason,
        };
        if attempt >= max_attempts {
            return Err(match reason {
                SyncError::Inconsistent { detail, .. } => SyncError::Inconsistent {
                    detail,
                    attempts: attempt,
                },
                other => other,
            });
        }
        attempt += 1;
        tracing::info!(attempt, reason = %reason, "members changed while reading; reading again");
        read = read_members(client, organization_id, expected_users, &mut lookups_left).await?;
    }
}

/// What the lists of one read say: the roles, the members and their team access.
type Lists = (Vec<OrganizationRole>, MemberRead, TeamAccess);

/// Reads the roles, the member and user lists and team access, concurrently.
async fn read_lists(
    client: &MakeClient,
    organization_id: OrganizationId,
    expected_users: Option<usize>,
    lookups_left: &mut u32,
) -> Result<Lists, SyncError> {
    let roles = async {
        client
            .list_roles(organization_id)
            .await
            .map_err(SyncError::from)
    };
    let teams = async {
        read_team_access(client, organization_id)
            .await
            .map_err(SyncError::from)
    };
    tokio::try_join!(
        roles,
        read_members(client, organization_id, expected_users, lookups_left),
        teams
    )
}

/// For an organization synced before (it has a count): the organization is read beside the
/// lists instead of before them, a round trip less. Its answer still comes first: an error of
/// it (a token Make refuses, another zone) is the run's error and stops the lists where they
/// are; `beside` starts only once it has answered. Until it answers, the lists spend from the
/// share a client starts with (of `MAKESYNC_REQUESTS_PER_MINUTE`, by default the smallest
/// plan's), and a request that would have to wait for that share waits for the organization's
/// answer instead: the plan's own share may not make it wait at all.
async fn read_beside_organization<B: std::future::Future>(
    client: &MakeClient,
    organization_id: OrganizationId,
    expected_users: Option<usize>,
    lookups_left: &mut u32,
    beside: B,
) -> Result<(OrganizationSummary, Lists, B::Output), SyncError> {
    let (answered, lists) = {
        let organization = async {
            let organization = client.get_organization(organization_id).await?;
            Ok::<_, SyncError>((organization, beside.await))
        };
        let lists = read_lists(client, organization_id, expected_users, lookups_left);
        tokio::pin!(organization, lists);
        let mut lists_read = None;
        let answered = loop {
            tokio::select! {
                // The organization first: its read marks the plan as being read before any
                // list reserves its place in the budget.
                biased;
                answered = &mut organization => break answered?,
                read = &mut lists, if lists_read.is_none() => lists_read = Some(read),
            }
        };
        let lists = match lists_read {
            Some(read) => read,
            None => lists.await,
        };
        (answered, lists)
    };
    let lists = match lists {
        // A 401 answered before the organization proved the token could not be told from a
        // token Make refuses; now it can: the lists are read again (on this error only).
        Err(SyncError::Make(MakeError::InvalidToken { .. })) => {
            read_lists(client, organization_id, expected_users, lookups_left).await?
        }
        other => other?,
    };
    let (organization, beside) = answered;
    Ok((organization, lists, beside))
}

/// Reads the member and user lists once (concurrently), and looks up the members the member
/// list lacks.
async fn read_members(
    client: &MakeClient,
    organization_id: OrganizationId,
    expected_users: Option<usize>,
    lookups_left: &mut u32,
) -> Result<MemberRead, SyncError> {
    // How many pages the user list holds, to read them a few at once: the last sync's count,
    // known now, so that they are asked from the start; else the member list's length, once
    // it is in (the pages go on one by one meanwhile: it is the longest answer of the read on
    // a large organization).
    let (members_read, members_known) = tokio::sync::oneshot::channel();
    let members = async {
        let members = client
            .list_members_counted(organization_id, expected_users)
            .await;
        if let Ok((members, _)) = &members {
            let _ = members_read.send(members.len());
        }
        members
    };
    let lists = tokio::try_join!(
        members,
        client.list_users_counted(organization_id, expected_users, async {
            members_known.await.ok()
        })
    );
    // What the two lists hold stays counted on the client's read budget while they are the
    // snapshot's, and is given back if they are read again.
    let ((mut memberships, mut counted), (mut users, users_counted)) = match lists {
        Ok(lists) => lists,
        Err(changed @ MakeError::ListChanged { .. }) => {
            return Ok(MemberRead::Unsettled(changed.into()))
        }
        Err(other) => return Err(other.into()),
    };
    counted.join(users_counted);
    // Both lists by id, so that they are compared and joined by merging: no map of every
    // user beside the lists.
    memberships.sort_unstable_by_key(|m| m.user_id);
    users.sort_unstable_by_key(|u| u.id);
    let unlisted = ids_missing_from(users.iter().map(|u| u.id), &memberships);
    if !unlisted.is_empty() {
        let needed = u32::try_from(unlisted.len()).unwrap_or(u32::MAX);
        if needed > *lookups_left {
            return Err(SyncError::MemberListIncomplete {
                organization: organization_id.to_string(),
                listed: memberships.len(),
                users: users.len(),
                allowed: client.member_lookups(),
            });
        }
        *lookups_left -= needed;
        tracing::info!(
            missing = unlisted.len(),
            listed = memberships.len(),
            "the member list lacks users that /users lists; looking them up one by one"
        );
        for user_id in unlisted {
            if let Some(member) = client.get_member(organization_id, user_id).await? {
                if member.user_id != user_id {
                    return Err(MakeError::Protocol {
                        endpoint: format!(
                            "GET /organizations/{organization_id}/user-organization-roles/{user_id}"
                        ),
                        detail: format!("the answer is about user {}", member.user_id),
                    }
                    .into());
                }
                memberships.push(member);
            }
        }
        memberships.sort_unstable_by_key(|m| m.user_id);
    }
    let read = join(organization_id, memberships, users)?;
    if matches!(read, MemberRead::Settled(_)) {
        counted.keep();
    }
    Ok(read)
}

/// Joins the memberships and the users (both sorted by id) into members. Any user without a
/// membership, or membership without a user, makes the read unsettled: a member is never made
/// without their details.
fn join(
    organization_id: OrganizationId,
    memberships: Vec<OrganizationMember>,
    users: Vec<MakeUser>,
) -> Result<MemberRead, SyncError> {
    let unnamed = RoleLabel::named(UNKNOWN_ROLE);
    let mut members = Vec::with_capacity(memberships.len());
    let mut without_details = Vec::new();
    let mut only_users = Vec::new();
    let mut users = users.into_iter().peekable();
    for membership in memberships {
        while let Some(user) = users.next_if(|u| u.id < membership.user_id) {
            only_users.push(user.id);
        }
        let Some(user) = users.next_if(|u| u.id == membership.user_id) else {
            without_details.push(membership.user_id);
            continue;
        };
        let status = UserStatus::from_invitation(membership.invitation.as_deref()).ok_or_else(|| {
            MakeError::Protocol {
                endpoint: format!(
                    "GET /organizations/{organization_id}/user-organization-roles"
                ),
                // Not quoted: the value is a host's, and errors end up in records and logs.
                detail: format!(
                    "user {} has an invitation state makesync does not know (expected null, \"pending\" or \"expired\")",
                    membership.user_id
                ),
            }
        })?;
        members.push(SnapshotMember {
            user_id: membership.user_id,
            name: user.name.into_boxed_str(),
            email: user.email.into_boxed_str(),
            role_id: membership.users_role_id,
            role: unnamed.clone(),
            status,
            last_login: user.last_login,
            teams: None,
            team_counts: membership
                .joined_teams
                .zip(membership.organization_teams)
                .map(|(joined, organization)| TeamCounts {
                    joined,
                    organization,
                }),
        });
    }
    only_users.extend(users.map(|u| u.id));
    if !without_details.is_empty() || !only_users.is_empty() {
        return Ok(MemberRead::Unsettled(SyncError::Inconsistent {
            detail: format!(
                "members without a user record: {without_details:?}; users without a membership: {only_users:?}"
            ),
            attempts: 1,
        }));
    }
    Ok(MemberRead::Settled(members))
}

/// The ids of `ids` (ascending) that no membership (sorted by user id) has.
fn ids_missing_from(
    ids: impl Iterator<Item = MakeUserId>,
    memberships: &[OrganizationMember],
) -> Vec<MakeUserId> {
    let mut listed = memberships.iter().map(|m| m.user_id).peekable();
    ids.filter(|id| {
        while listed.next_if(|listed| listed < id).is_some() {}
        listed.peek() != Some(id)
    })
    .collect()
}

/// Looks up, one by one (`GET /users/roles/{id}`), the roles members hold that the list did
/// not name — a role created after the list was read — at most [`ROLE_LOOKUPS`] a run. A
/// role Make does not know either, or a lookup that fails, leaves the name
/// [`UNKNOWN_ROLE`]: the role is a label, not a reason to fail the sync.
async fn look_up_unlisted_roles(
    client: &MakeClient,
    members: &[SnapshotMember],
    teams: &TeamAccess,
    roles: &mut HashMap<u32, Arc<RoleLabel>>,
) {
    let team_roles: Vec<u32> = match teams {
        TeamAccess::Read(grants) => grants.all().map(|g| g.role_id).collect(),
        TeamAccess::NotRead(_) | TeamAccess::Kept(_) => Vec::new(),
    };
    let mut unlisted: Vec<u32> = members
        .iter()
        .map(|m| m.role_id)
        .chain(team_roles)
        .filter(|id| !roles.contains_key(id))
        .collect();
    unlisted.sort_unstable();
    unlisted.dedup();
    if unlisted.len() > ROLE_LOOKUPS {
        tracing::warn!(
            unlisted = unlisted.len(),
            looked_up = ROLE_LOOKUPS,
            "more roles than a run looks up are missing from the roles list; the rest are named unknown"
        );
    }
    for id in unlisted.into_iter().take(ROLE_LOOKUPS) {
        match client.get_role(id).await {
            Ok(Some(role)) if role.id == id => {
                roles.insert(id, RoleLabel::of(role));
            }
            Ok(_) => tracing::warn!(role_id = id, "Make does not know a role a member holds"),
            Err(error) => {
                tracing::warn!(role_id = id, error = %error, "could not look up a role a member holds")
            }
        }
    }
}

/// Gives each member their team roles, named (an id no source named is [`UNKNOWN_ROLE`]);
/// users in a team who are not members of the organization are left out. Returns why team
/// access was not read, when it was not — also when a member's team roles would take more
/// than [`MAX_MEMBER_TEAM_BYTES`]: every record carries its member's, and one record (and
/// its event) must stay far within what the store and the events bus take.
fn give_teams(
    members: &mut [SnapshotMember],
    teams: &TeamAccess,
    roles: &HashMap<u32, Arc<RoleLabel>>,
) -> Option<String> {
    let grants = match teams {
        TeamAccess::Read(grants) => grants,
        TeamAccess::NotRead(why) | TeamAccess::Kept(why) => return Some(why.clone()),
    };
    let unknown = RoleLabel::named(UNKNOWN_ROLE);
    let role = |grant: &TeamGrant| roles.get(&grant.role_id).unwrap_or(&unknown).clone();
    let too_many = members.iter().any(|member| {
        let bytes: usize = grants
            .of(member.user_id)
            .map(|grant| TEAM_ROLE_BYTES + grant.team_name.len() + role(grant).name.len())
            .sum();
        bytes > MAX_MEMBER_TEAM_BYTES
    });
    if too_many {
        return Some(format!(
            "teams not read: a member holds more team roles than makesync keeps of one member (their names take more than {} KB)",
            MAX_MEMBER_TEAM_BYTES / 1024
        ));
    }
    for member in members {
        member.teams = Some(
            grants
                .of(member.user_id)
                .map(|grant| MemberTeam {
                    team_id: grant.team_id,
                    team_name: grant.team_name.clone(),
                    role_id: grant.role_id,
                    role: role(grant),
                })
                .collect(),
        );
    }
    None
}

/// Names each member's role; an id no source named keeps the name [`UNKNOWN_ROLE`].
fn name_roles(members: &mut [SnapshotMember], roles: &HashMap<u32, Arc<RoleLabel>>) {
    for member in members {
        if let Some(role) = roles.get(&member.role_id) {
            member.role = role.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn membership(user_id: u64) -> OrganizationMember {
        serde_json::from_value(serde_json::json!({
            "userId": user_id, "usersRoleId": 13, "invitation": null
        }))
        .unwrap()
    }

    fn user(id: u64) -> MakeUser {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("User {id}"), "email": format!("u{id}@example.com"),
            "lastLogin": null
        }))
        .unwrap()
    }

    proptest! {
        /// Whatever two lists Make answers, a settled join has exactly their members, each
        /// with their own details; any disagreement leaves it unsettled.
        #[test]
        fn the_join_never_yields_a_member_without_details(
            member_ids in proptest::collection::btree_set(1u64..60, 0..40),
            user_ids in proptest::collection::btree_set(1u64..60, 0..40),
        ) {
            let organization = OrganizationId::new(7).unwrap();
            let memberships = member_ids.iter().copied().map(membership).collect();
            let users = user_ids.iter().copied().map(user).collect();
            match join(organization, memberships, users).unwrap() {
                MemberRead::Settled(members) => {
                    prop_assert_eq!(&member_ids, &user_ids);
                    let ids: std::collections::BTreeSet<u64> =
                        members.iter().map(|m| m.user_id).collect();
                    prop_assert_eq!(&ids, &member_ids);
                    for member in &members {
                        prop_assert_eq!(&*member.name, format!("User {}", member.user_id));
                        prop_assert_eq!(&*member.email, format!("u{}@example.com", member.user_id));
                    }
                }
                MemberRead::Unsettled(_) => prop_assert_ne!(&member_ids, &user_ids),
            }
        }
    }
}
