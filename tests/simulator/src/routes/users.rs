//! `GET /users`: an organization's users, with only the fields `cols[]` picks.

use super::lists::{list_rendered_later, ListSpec};
use super::{Reply, Request};
use crate::world::{SimUser, World};
use serde_json::{json, Value};

pub(super) fn users(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
    let Some(organization) = world.organizations.get(&org_id) else {
        return Reply::not_found("");
    };
    let mut ids: Vec<u64> = organization.members.keys().copied().collect();
    // "Default order: id descending"; `pg[sortBy]` of `id`, `name`, `email` (notes).
    let sort_by = request.param("pg[sortBy]").unwrap_or("id");
    match sort_by {
        "name" => ids.sort_by_key(|id| world.users.get(id).map(|u| (u.name.clone(), *id))),
        "email" => ids.sort_by_key(|id| world.users.get(id).map(|u| (u.email.clone(), *id))),
        _ => ids.sort_unstable(),
    }
    if request.param("pg[sortDir]") != Some("asc") {
        ids.reverse();
    }
    let columns: Vec<String> = request.columns().into_iter().map(str::to_string).collect();
    let shape = world.faults.users_list;
    list_rendered_later(
        world,
        request,
        ListSpec {
            collection: "users",
            shape,
            organization: Some(org_id),
            default_sort: ("id", "desc"),
        },
        ids,
        |world, id| world.users.get(&id).cloned().ok_or(id),
        move |user| match user {
            Ok(user) => user_row(&user, &columns),
            Err(id) => json!({ "id": id }),
        },
    )
}

/// The user object's fields: `id`, `name`, `email`, `language`, `timezoneId`, `localeId`,
/// `countryId`, `features`, `avatar` (notes); `lastLogin` as ISO 8601 UTC with milliseconds,
/// `null` if never (notes: inferred from the admin variant).
const USER_FIELDS: [&str; 10] = [
    "id",
    "name",
    "email",
    "language",
    "timezoneId",
    "localeId",
    "countryId",
    "features",
    "avatar",
    "lastLogin",
];

/// A user object with the fields `cols[]` picks (all when none), as `select_columns` would
/// leave it; only the picked ones are built, because a page holds 10,000 of them.
fn user_row(user: &SimUser, columns: &[String]) -> Value {
    let picked = |name: &str| columns.is_empty() || columns.iter().any(|c| c == name);
    let field = |name: &str| match name {
        "id" => json!(user.id),
        "name" => json!(user.name),
        "email" => json!(user.email),
        "language" => json!("en"),
        "timezoneId" => json!(113),
        "localeId" | "countryId" => json!(1),
        "features" => json!({}),
        "avatar" => json!(""),
        _ => json!(user
            .last_login
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
    };
    Value::Object(
        USER_FIELDS
            .into_iter()
            .filter(|name| picked(name))
            .map(|name| (name.to_string(), field(name)))
            .collect(),
    )
}
