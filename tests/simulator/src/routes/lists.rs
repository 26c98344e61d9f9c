//! How a list is served: paged or not (the shapes the documentation leaves open), its `pg` echo,
//! and the changes a test makes between its pages.

use super::{Reply, ReplyBody, Request};
use crate::faults::ListShape;
use crate::world::World;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

/// Serves `ids` (in order) as the list `collection` in the given shape, building only the
/// rows it answers.
/// Which list is served, and how.
pub(super) struct ListSpec<'a> {
    pub(super) collection: &'a str,
    pub(super) shape: ListShape,
    /// The organization the list is about, for the between-pages faults.
    pub(super) organization: Option<u64>,
    /// `(sortBy, sortDir)` the echo names when the request names none.
    pub(super) default_sort: (&'a str, &'a str),
}

pub(super) fn list(
    world: &mut World,
    request: &Request<'_>,
    spec: ListSpec<'_>,
    ids: Vec<u64>,
    row: impl Fn(&World, u64) -> Value,
) -> Reply {
    list_rendered_later(world, request, spec, ids, row, |value| value)
}

/// [`list`], with each row in two steps: `pick` takes what the row needs out of the world
/// (under its lock), `render` makes the row of it once the lock is released.
pub(super) fn list_rendered_later<R: Send + 'static>(
    world: &mut World,
    request: &Request<'_>,
    spec: ListSpec<'_>,
    ids: Vec<u64>,
    pick: impl Fn(&World, u64) -> R,
    render: impl Fn(R) -> Value + Send + 'static,
) -> Reply {
    let ListSpec {
        collection,
        shape,
        organization,
        default_sort,
    } = spec;
    if world.faults.malformed_pages > 0 {
        world.faults.malformed_pages -= 1;
        return Reply::text(
            StatusCode::OK,
            format!("{{\"{collection}\": [{{\"id\": 1, \"na"),
        );
    }
    let (served, echo): (&[u64], Option<Value>) = match shape {
        ListShape::Paged { max } | ListShape::PagedWithoutEcho { max } => {
            let max = max.max(1);
            let asked = request
                .param("pg[limit]")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(max);
            let applied = asked.clamp(1, max);
            let offset = if world.faults.ignore_offset {
                0
            } else {
                request
                    .param("pg[offset]")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            let start = offset.min(ids.len());
            let end = (start + applied as usize).min(ids.len());
            let echo = matches!(shape, ListShape::Paged { .. }).then(|| {
                json!({
                    "sortBy": request.param("pg[sortBy]").unwrap_or(default_sort.0),
                    "sortDir": request.param("pg[sortDir]").unwrap_or(default_sort.1),
                    "limit": applied,
                    "offset": offset,
                })
            });
            (&ids[start..end], echo)
        }
        ListShape::Unpaged => (&ids[..], None),
        ListShape::UnpagedCut { at } => (&ids[..ids.len().min(at as usize)], None),
    };
    let picked: Vec<R> = served.iter().map(|id| pick(world, *id)).collect();
    let first_of_several = served.first() == ids.first() && served.len() < ids.len();
    if first_of_several && !matches!(shape, ListShape::UnpagedCut { .. }) {
        apply_page_change(world, organization);
    }
    revoke_if_due(world, organization);
    let collection = collection.to_string();
    let build = move || {
        let mut body = Map::new();
        let rows = picked.into_iter().map(render).collect();
        body.insert(collection, Value::Array(rows));
        if let Some(echo) = echo {
            body.insert("pg".to_string(), echo);
        }
        Value::Object(body)
    };
    Reply {
        status: StatusCode::OK,
        headers: Vec::new(),
        body: ReplyBody::Deferred(Box::new(build)),
    }
}

fn revoke_if_due(world: &mut World, organization: Option<u64>) {
    let due = matches!(&world.faults.revoke_during, Some((org, _)) if Some(*org) == organization);
    if due {
        if let Some((_, token)) = world.faults.revoke_during.take() {
            if let Some(grant) = world.tokens.get_mut(&token) {
                grant.revoked = true;
            }
        }
    }
}

fn apply_page_change(world: &mut World, organization: Option<u64>) {
    let Some(change) = world.faults.change_between_pages.clone() else {
        return;
    };
    if Some(change.organization_id) != organization {
        return;
    }
    world.faults.change_between_pages = None;
    if let Some(user) = change.remove_user {
        world.remove_member(change.organization_id, user);
    }
    if let Some((user, role)) = change.add_member {
        world.add_member(change.organization_id, user, role, None);
    }
}

/// `cols[]` picks the fields of each object; none asked means the default fields.
pub(super) fn select_columns(full: Value, columns: &[&str]) -> Value {
    if columns.is_empty() {
        return full;
    }
    let Value::Object(map) = full else {
        return full;
    };
    Value::Object(
        map.into_iter()
            .filter(|(key, _)| columns.contains(&key.as_str()))
            .collect(),
    )
}
