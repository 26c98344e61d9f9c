//! Team access: an organization's teams and each team's roles (notes, "Teams").

use super::lists::{list, select_columns, ListSpec};
use super::{Reply, Request};
use crate::world::World;
use serde_json::json;

pub(super) fn teams(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
    let Some(organization) = world.organizations.get(&org_id) else {
        return Reply::not_found("");
    };
    // Private spaces only with `includePrivateSpaces` (Make's SDK, teams.ts). Assumed: by id.
    let private_too = request.param("includePrivateSpaces") == Some("true");
    let ids: Vec<u64> = organization
        .teams
        .iter()
        .filter(|(_, team)| private_too || !team.personal)
        .map(|(id, _)| *id)
        .collect();
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let shape = world.faults.teams_list;
    let spec = ListSpec {
        collection: "teams",
        shape,
        organization: Some(org_id),
        // The SDK's mock echoes `sortBy name, sortDir asc`.
        default_sort: ("name", "asc"),
    };
    list(world, request, spec, ids, |world, id| {
        let team = world.team(org_id, id);
        // `{id, name, organizationId}` (the SDK's list mock), `type` (teams.ts).
        let row = json!({
            "id": id,
            "name": team.map(|t| t.name.clone()),
            "organizationId": org_id,
            "type": if team.is_some_and(|t| t.personal) { "personal" } else { "standard" },
        });
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        if columns.is_empty() {
            // The mock's default fields.
            return select_columns(row, &["id", "name", "organizationId"]);
        }
        select_columns(row, &columns)
    })
}

pub(super) fn team_roles(
    world: &mut World,
    request: &Request<'_>,
    org_id: u64,
    team_id: u64,
) -> Reply {
    let Some(team) = world.team(org_id, team_id) else {
        return Reply::not_found("The team does not exist.");
    };
    // Assumed: by user id (no order is documented).
    let ids: Vec<u64> = team.roles.keys().copied().collect();
    let shape = world.faults.team_roles_list;
    let spec = ListSpec {
        collection: "userTeamRoles",
        shape,
        organization: Some(org_id),
        default_sort: ("userId", "asc"),
    };
    list(world, request, spec, ids, |world, user| {
        let role = world
            .team(org_id, team_id)
            .and_then(|t| t.roles.get(&user))
            .copied();
        // `{usersRoleId, userId, teamId, changeable}` (API reference; the SDK's UserTeamRole).
        json!({
            "usersRoleId": role,
            "userId": user,
            "teamId": team_id,
            "changeable": true,
        })
    })
}
