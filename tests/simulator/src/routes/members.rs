//! An organization's roles and members: `GET /users/roles` (one role too) and
//! `…/user-organization-roles` (one member too).

use super::lists::{list, list_rendered_later, select_columns, ListSpec};
use super::{Reply, Request};
use crate::world::{SimMembership, World};
use serde_json::{json, Value};

pub(super) fn roles(world: &mut World, request: &Request<'_>) -> Reply {
    // Custom roles only when `organizationId` (or `teamId`) is given and that organization's
    // license has `customRoles` (Make's SDK, roles.ts).
    let for_organization = request
        .param("organizationId")
        .and_then(|id| id.parse::<u64>().ok())
        .or_else(|| {
            request
                .param("teamId")
                .and_then(|id| id.parse::<u64>().ok())
                .and_then(|team| world.team_organization(team))
        })
        .filter(|id| world.organizations.get(id).is_some_and(|o| o.custom_roles));
    // `category=organization|team` filters ("Users > Roles").
    let category = request.param("category");
    let mut ids: Vec<u64> = world
        .roles
        .keys()
        .copied()
        .chain(
            world
                .custom_roles
                .iter()
                .filter(|(_, role)| Some(role.organization_id) == for_organization)
                .map(|(id, _)| *id),
        )
        .filter(|id| category.is_none_or(|c| World::role_category(*id) == c))
        .map(u64::from)
        .collect();
    ids.sort_unstable();
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let all_columns = world.faults.roles_all_columns;
    let shape = world.faults.roles_list;
    list(
        world,
        request,
        ListSpec {
            collection: "usersRoles",
            shape,
            organization: None,
            default_sort: ("id", "desc"),
        },
        ids,
        |world, id| {
            let full = role_row(world, id as u32, false).unwrap_or_else(|| json!({ "id": id }));
            if !columns.is_empty() {
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                select_columns(full, &columns)
            } else if all_columns {
                full
            } else {
                // Default answer `{"id", "name"}` ("Users > Roles", notes).
                select_columns(full, &["id", "name"])
            }
        },
    )
}

/// A role with every field Make's SDK names (roles.ts): `identifier` for built-in roles only,
/// `managementType`, and — from `GET /users/roles/{id}` only — a custom role's
/// `organizationId`. Which built-in roles are `system_locked` rather than `admin_managed`, and
/// their identifiers' spelling, are assumed (the SDK's example: Admin is `admin`,
/// `system_locked`).
pub(super) fn role_row(world: &World, id: u32, detail: bool) -> Option<Value> {
    if let Some(name) = world.roles.get(&id) {
        return Some(json!({
            "id": id,
            "name": name,
            "identifier": name.to_lowercase().replace(' ', "_"),
            "category": World::role_category(id),
            "subsidiary": false,
            "managementType": "system_locked",
            "description": null,
            "permissions": ["user:read"],
        }));
    }
    let custom = world.custom_roles.get(&id)?;
    let mut row = json!({
        "id": id,
        "name": custom.name,
        "category": "organization",
        "subsidiary": true,
        "managementType": "custom_managed",
        "description": null,
        "permissions": ["scenarios view"],
    });
    if detail {
        row["organizationId"] = json!(custom.organization_id);
    }
    Some(row)
}

pub(super) fn members(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
    let Some(organization) = world.organizations.get(&org_id) else {
        return Reply::not_found("");
    };
    // Assumed: members in ascending user id (no order is documented).
    let ids: Vec<u64> = organization.members.keys().copied().collect();
    // `cols[]` is the list's one documented parameter (notes, "Pagination").
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let shape = world.faults.members_list;
    list_rendered_later(
        world,
        request,
        ListSpec {
            collection: "userOrganizationRoles",
            shape,
            organization: Some(org_id),
            default_sort: ("id", "desc"),
        },
        ids,
        move |world, id| {
            let membership = world
                .organizations
                .get(&org_id)
                .and_then(|organization| organization.members.get(&id));
            (id, membership.cloned(), team_counts(world, org_id, id))
        },
        move |(id, membership, counts)| {
            let row = match membership {
                Some(membership) => membership_row(org_id, id, &membership, counts),
                None => json!({ "userId": id }),
            };
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            select_columns(row, &columns)
        },
    )
}

/// One membership: `userId`, `organizationId`, `usersRoleId`, `invitation` (documented
/// example), `organizationTeamsCount`, `joinedTeamsCount` (documented `cols[]`), `ssoPending`
/// (independent client).
pub(super) fn member_row(world: &World, org_id: u64, user_id: u64) -> Option<Value> {
    let membership = world.organizations.get(&org_id)?.members.get(&user_id)?;
    Some(membership_row(
        org_id,
        user_id,
        membership,
        team_counts(world, org_id, user_id),
    ))
}

/// A member's `joinedTeamsCount` (the teams they are in) and `organizationTeamsCount` (the
/// organization's teams). Make's API reference shows both fields (its invitation example:
/// 1 and 2) but not what they count: assumed, the teams the member is in and the teams there
/// are, private spaces counted or not behind `Faults::team_counts_include_private_spaces`.
fn team_counts(world: &World, org_id: u64, user_id: u64) -> TeamCounts {
    let with_private = world.faults.team_counts_include_private_spaces;
    let Some(organization) = world.organizations.get(&org_id) else {
        return TeamCounts::default();
    };
    let counted = organization
        .teams
        .values()
        .filter(|team| with_private || !team.personal);
    let mut counts = TeamCounts::default();
    for team in counted {
        counts.organization += 1;
        counts.joined += u32::from(team.roles.contains_key(&user_id));
    }
    counts
}

#[derive(Debug, Clone, Copy, Default)]
struct TeamCounts {
    joined: u32,
    organization: u32,
}

fn membership_row(
    org_id: u64,
    user_id: u64,
    membership: &SimMembership,
    counts: TeamCounts,
) -> Value {
    json!({
        "userId": user_id,
        "organizationId": org_id,
        "usersRoleId": membership.role_id,
        "invitation": membership.invitation,
        "organizationTeamsCount": counts.organization,
        "joinedTeamsCount": counts.joined,
        "ssoPending": false,
    })
}
