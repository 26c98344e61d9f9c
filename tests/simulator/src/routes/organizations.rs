//! `GET /organizations`, the White Label `GET /admin/organizations`, and one organization with
//! its plan.

use super::access::zone_matches;
use super::lists::{list, select_columns, ListSpec};
use super::{Reply, Request};
use crate::world::{SimOrganization, World};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// Orders organization ids by `pg[sortBy]` (`id` or `name`, ties by id) and `pg[sortDir]`,
/// from the endpoint's default order.
fn sort_organizations(
    world: &World,
    request: &Request<'_>,
    ids: &mut [u64],
    default: (&str, &str),
) {
    let name = |id: &u64| world.organizations.get(id).map(|o| o.name.clone());
    match request.param("pg[sortBy]").unwrap_or(default.0) {
        "name" => ids.sort_by_key(|id| (name(id), *id)),
        _ => ids.sort_unstable(),
    }
    if request.param("pg[sortDir]").unwrap_or(default.1) == "desc" {
        ids.reverse();
    }
}

/// `GET /organizations`: "all organizations, in which the user has membership" (002), of
/// every zone; pending invitations are not memberships yet (assumed). Default columns `id`,
/// `name`, `timezoneId`; `license`, `serviceName` and `isPaused` only for organizations of the
/// zone being called (002). Sorted by name ascending by default (002).
pub(super) fn organizations(world: &mut World, request: &Request<'_>, user_id: u64) -> Reply {
    let mut ids: Vec<u64> = world
        .organizations
        .values()
        .filter(|o| !o.deleted)
        .filter(|o| {
            o.members
                .get(&user_id)
                .is_some_and(|m| m.invitation.is_none())
        })
        .map(|o| o.id)
        .collect();
    sort_organizations(world, request, &mut ids, ("name", "asc"));
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let host = request.host.map(str::to_string);
    let shape = world.faults.organizations_list;
    list(
        world,
        request,
        ListSpec {
            collection: "organizations",
            shape,
            organization: None,
            default_sort: ("name", "asc"),
        },
        ids,
        |world, id| {
            let organization = &world.organizations[&id];
            let mut full = organization_row(organization);
            if !zone_matches(host.as_deref(), organization) {
                if let Value::Object(map) = &mut full {
                    for key in ["license", "serviceName", "isPaused"] {
                        map.remove(key);
                    }
                }
            }
            let default = ["id", "name", "timezoneId"];
            let columns: Vec<&str> = if columns.is_empty() {
                default.to_vec()
            } else {
                columns.iter().map(String::as_str).collect()
            };
            select_columns(full, &columns)
        },
    )
}

/// `GET /admin/organizations`: "all organizations in the Make White Label product instance"
/// (003) — here, those whose zone is the host being called — deleted ones included with
/// `deleted: true`; filters `id`, `name`, `externalId`; every field by default (the example
/// answer); sorted by id descending by default (the example's echo).
pub(super) fn admin_organizations(world: &mut World, request: &Request<'_>) -> Reply {
    let host = request.host.map(str::to_string);
    let id_filter = request.param("id").map(str::to_string);
    let name_filter = request.param("name").map(str::to_string);
    let external_filter = request.param("externalId").map(str::to_string);
    let mut ids: Vec<u64> = world
        .organizations
        .values()
        .filter(|o| zone_matches(host.as_deref(), o))
        .filter(|o| id_filter.as_deref().is_none_or(|f| f == o.id.to_string()))
        .filter(|o| name_filter.as_deref().is_none_or(|f| f == o.name))
        .filter(|o| external_filter.is_none() || o.external_id == external_filter)
        .map(|o| o.id)
        .collect();
    sort_organizations(world, request, &mut ids, ("id", "desc"));
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let shape = world.faults.admin_organizations_list;
    list(
        world,
        request,
        ListSpec {
            collection: "organizations",
            shape,
            organization: None,
            default_sort: ("id", "desc"),
        },
        ids,
        |world, id| {
            let organization = &world.organizations[&id];
            let mut full = organization_row(organization);
            full["scenarios"] = json!(0);
            full["activeScenarios"] = json!(0);
            full["deleted"] = json!(organization.deleted);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            select_columns(full, &columns)
        },
    )
}

/// An organization with the fields both lists may carry (002 `cols[]`, 003 example): the
/// license holds `apiLimit` only where one is set (003 example).
fn organization_row(organization: &SimOrganization) -> Value {
    let mut license = json!({ "users": 50, "operations": 800_000_000 });
    if let Some(api_limit) = organization.api_limit {
        license["apiLimit"] = json!(api_limit);
    }
    json!({
        "id": organization.id,
        "name": organization.name,
        "countryId": 1,
        "timezoneId": 113,
        "license": license,
        "zone": organization.zone,
        "serviceName": "default",
        "teams": team_summaries(organization, true),
        "isPaused": organization.paused,
        "externalId": organization.external_id,
        "productName": "Make",
    })
}

/// The organization's `teams` field: `[{id, name}]` (notes, "Teams"), with `externalId` on
/// the listings (002). Private spaces left out (assumed).
fn team_summaries(organization: &SimOrganization, external_id: bool) -> Value {
    let teams: Vec<Value> = organization
        .teams
        .iter()
        .filter(|(_, team)| !team.personal)
        .map(|(id, team)| {
            let mut row = json!({ "id": id, "name": team.name });
            if external_id {
                row["externalId"] = Value::Null;
            }
            row
        })
        .collect();
    Value::Array(teams)
}

pub(super) fn organization_detail(world: &World, request: &Request<'_>, org_id: u64) -> Reply {
    let Some(organization) = world.organizations.get(&org_id) else {
        return Reply::not_found("");
    };
    // `{"organization": {"id", "name", "zone", "license": {..., "apiLimit"}, "teams", ...}}`.
    let mut body = json!({
        "id": organization.id,
        "name": organization.name,
        "zone": organization.zone,
        "countryId": 1,
        "timezoneId": 113,
        "teams": team_summaries(organization, false),
    });
    // license and isPaused only for organizations of the zone being called (notes, 002).
    if zone_matches(request.host, organization) {
        body["license"] = json!({ "users": 50, "apiLimit": organization.api_limit });
        body["isPaused"] = json!(organization.paused);
    }
    Reply::json(StatusCode::OK, json!({ "organization": body }))
}
