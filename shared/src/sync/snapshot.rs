//! Reading one complete, consistent snapshot of an organization's members from Make.
//!
//! Membership (role, invitation) comes from `user-organization-roles`; name, email and last
//! login from `/users?organizationId`. The organization is read first and alone: it proves the
//! token (so that a later 401 is read as a missing scope), sets the request budget from the
//! plan and checks the zone. Then the roles, the member list and the user list are read
//! concurrently, so a small organization costs two round trips.
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
use crate::make::{MakeClient, MakeError, MakeUser, OrganizationMember, OrganizationSummary};
use crate::organization::OrganizationId;
use crate::user::{MakeUserId, UserStatus, UNKNOWN_ROLE};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// One member as Make reports them, role name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMember {
    pub user_id: MakeUserId,
    pub name: String,
    pub email: String,
    pub role_id: u32,
    pub role_name: String,
    pub status: UserStatus,
    pub invitation: Option<String>,
    pub last_login: Option<DateTime<Utc>>,
}

/// Every member of the organization at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSnapshot {
    pub organization: OrganizationSummary,
    /// Sorted by user id.
    pub members: Vec<SnapshotMember>,
}

/// A membership joined with its user's details, role not yet named.
type Joined = (OrganizationMember, MakeUser);

/// One read of the member and user lists.
enum MemberRead {
    Settled(Vec<Joined>),
    /// The lists moved while they were read; reading again may settle them.
    Unsettled(SyncError),
}

/// Reads the organization, its roles and a consistent member list.
pub async fn fetch_snapshot(
    client: &MakeClient,
    organization_id: OrganizationId,
    max_attempts: u32,
) -> Result<OrganizationSnapshot, SyncError> {
    let organization = client.get_organization(organization_id).await?;
    let mut lookups_left = client.member_lookups();
    let roles = async { client.list_roles().await.map_err(SyncError::from) };
    let (roles, mut read) = tokio::try_join!(
        roles,
        read_members(client, organization_id, &mut lookups_left)
    )?;
    let roles: HashMap<u32, String> = roles.into_iter().map(|r| (r.id, r.name)).collect();
    let max_attempts = max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let reason = match read {
            MemberRead::Settled(joined) => {
                return Ok(OrganizationSnapshot {
                    organization,
                    members: name_roles(organization_id, joined, &roles)?,
                })
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
        read = read_members(client, organization_id, &mut lookups_left).await?;
    }
}

/// Reads the member and user lists once (concurrently), and looks up the members the member
/// list lacks.
async fn read_members(
    client: &MakeClient,
    organization_id: OrganizationId,
    lookups_left: &mut u32,
) -> Result<MemberRead, SyncError> {
    let lists = tokio::try_join!(
        client.list_members(organization_id),
        client.list_users(organization_id)
    );
    let (mut memberships, users) = match lists {
        Ok(lists) => lists,
        Err(changed @ MakeError::ListChanged { .. }) => {
            return Ok(MemberRead::Unsettled(changed.into()))
        }
        Err(other) => return Err(other.into()),
    };
    let mut details: BTreeMap<MakeUserId, MakeUser> =
        users.into_iter().map(|user| (user.id, user)).collect();
    let listed: std::collections::HashSet<MakeUserId> =
        memberships.iter().map(|m| m.user_id).collect();
    let unlisted: Vec<MakeUserId> = details
        .keys()
        .copied()
        .filter(|id| !listed.contains(id))
        .collect();
    if !unlisted.is_empty() {
        let needed = u32::try_from(unlisted.len()).unwrap_or(u32::MAX);
        if needed > *lookups_left {
            return Err(SyncError::MemberListIncomplete {
                organization: organization_id.to_string(),
                listed: memberships.len(),
                users: details.len(),
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
    }
    let mut joined = Vec::with_capacity(memberships.len());
    let mut without_details = Vec::new();
    for membership in memberships {
        match details.remove(&membership.user_id) {
            Some(user) => joined.push((membership, user)),
            None => without_details.push(membership.user_id),
        }
    }
    if !without_details.is_empty() || !details.is_empty() {
        let only_users: Vec<MakeUserId> = details.into_keys().collect();
        return Ok(MemberRead::Unsettled(SyncError::Inconsistent {
            detail: format!(
                "members without a user record: {without_details:?}; users without a membership: {only_users:?}"
            ),
            attempts: 1,
        }));
    }
    Ok(MemberRead::Settled(joined))
}

/// Names each member's role and reads their invitation state, sorted by user id.
fn name_roles(
    organization_id: OrganizationId,
    joined: Vec<Joined>,
    roles: &HashMap<u32, String>,
) -> Result<Vec<SnapshotMember>, MakeError> {
    let mut members = joined
        .into_iter()
        .map(|(membership, user)| {
            let status = UserStatus::from_invitation(membership.invitation.as_deref())
                .ok_or_else(|| MakeError::Protocol {
                    endpoint: format!(
                        "GET /organizations/{organization_id}/user-organization-roles"
                    ),
                    detail: format!(
                        "user {} has an invitation state {:?} makesync does not know (expected null, \"pending\" or \"expired\")",
                        membership.user_id,
                        membership.invitation.as_deref().unwrap_or_default()
                    ),
                })?;
            Ok(SnapshotMember {
                user_id: membership.user_id,
                name: user.name,
                email: user.email,
                role_id: membership.users_role_id,
                role_name: roles
                    .get(&membership.users_role_id)
                    .cloned()
                    .unwrap_or_else(|| UNKNOWN_ROLE.to_string()),
                status,
                invitation: membership.invitation,
                last_login: user.last_login,
            })
        })
        .collect::<Result<Vec<_>, MakeError>>()?;
    members.sort_by_key(|member| member.user_id);
    Ok(members)
}
