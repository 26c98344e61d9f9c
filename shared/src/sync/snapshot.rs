//! Reading one complete, consistent snapshot of an organization's members from Make.
//!
//! Membership (role, invitation) comes from `user-organization-roles`; name, email and last
//! login from `/users?organizationId`. The two lists are read one after the other and must
//! name the same users: if they do not, or if either list shifted while it was paged, members
//! changed during the read and the snapshot is read again, a bounded number of times. A
//! snapshot that never settles is an error, so that nobody is marked removed on the strength
//! of a list that was moving.

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

/// Reads the organization, its roles and a consistent member list.
pub async fn fetch_snapshot(
    client: &MakeClient,
    organization_id: OrganizationId,
    max_attempts: u32,
) -> Result<OrganizationSnapshot, SyncError> {
    let organization = client.get_organization(organization_id).await?;
    let roles: HashMap<u32, String> = client
        .list_roles()
        .await?
        .into_iter()
        .map(|role| (role.id, role.name))
        .collect();
    let max_attempts = max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = read_members(client, organization_id, &roles).await;
        let settled = match result {
            Ok(Ok(members)) => {
                return Ok(OrganizationSnapshot {
                    organization,
                    members,
                })
            }
            Ok(Err(mismatch)) => SyncError::Inconsistent {
                detail: mismatch,
                attempts: attempt,
            },
            Err(SyncError::Make(MakeError::ListChanged { endpoint })) => {
                SyncError::Make(MakeError::ListChanged { endpoint })
            }
            Err(other) => return Err(other),
        };
        if attempt >= max_attempts {
            return Err(settled);
        }
        tracing::info!(attempt, reason = %settled, "members changed while reading; reading again");
    }
}

/// Reads both lists once. The inner `Err` is a mismatch between them, in words.
async fn read_members(
    client: &MakeClient,
    organization_id: OrganizationId,
    roles: &HashMap<u32, String>,
) -> Result<Result<Vec<SnapshotMember>, String>, SyncError> {
    let memberships = client.list_members(organization_id).await?;
    let users = client.list_users(organization_id).await?;
    Ok(join(organization_id, memberships, users, roles)?)
}

fn join(
    organization_id: OrganizationId,
    memberships: Vec<OrganizationMember>,
    users: Vec<MakeUser>,
    roles: &HashMap<u32, String>,
) -> Result<Result<Vec<SnapshotMember>, String>, MakeError> {
    let mut details: BTreeMap<MakeUserId, MakeUser> =
        users.into_iter().map(|user| (user.id, user)).collect();
    let mut members = Vec::with_capacity(memberships.len());
    let mut without_details = Vec::new();
    for membership in memberships {
        let status = UserStatus::from_invitation(membership.invitation.as_deref()).ok_or_else(|| {
            MakeError::Protocol {
                endpoint: format!(
                    "GET /organizations/{organization_id}/user-organization-roles"
                ),
                detail: format!(
                    "user {} has an invitation state {:?} makesync does not know (expected null, \"pending\" or \"expired\")",
                    membership.user_id,
                    membership.invitation.as_deref().unwrap_or_default()
                ),
            }
        })?;
        let Some(user) = details.remove(&membership.user_id) else {
            without_details.push(membership.user_id);
            continue;
        };
        members.push(SnapshotMember {
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
        });
    }
    if !without_details.is_empty() || !details.is_empty() {
        let only_users: Vec<MakeUserId> = details.into_keys().collect();
        return Ok(Err(format!(
            "members without a user record: {without_details:?}; users without a membership: {only_users:?}"
        )));
    }
    members.sort_by_key(|member| member.user_id);
    Ok(Ok(members))
}
