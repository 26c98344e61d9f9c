//! The HTTP side: one handler that routes by path, like Make's `/api/v2`.

use crate::world::{RateWindow, SimOrganization, World};
use crate::{SeenRequest, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use makesync::clock::Clock;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn error(status: StatusCode, message: &str, detail: &str, code: &str) -> Self {
        Self::json(
            status,
            json!({ "message": message, "detail": detail, "code": code }),
        )
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let latency = shared
        .world
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .faults
        .latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        });
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Token "))
        .map(str::to_string);
    let reply = {
        let mut world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
        let request = Request {
            method: &method,
            path: uri.path(),
            query: &query,
            host: host.as_deref(),
            token: token.as_deref(),
        };
        serve(&mut world, shared.clock.as_ref(), &request)
    };
    shared
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(SeenRequest {
            host,
            path: uri.path().to_string(),
            query,
            status: reply.status.as_u16(),
            at: shared.clock.monotonic(),
        });
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a [(String, String)],
    host: Option<&'a str>,
    token: Option<&'a str>,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn columns(&self) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key == "cols[]")
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

fn organization_in_outage(world: &World, path: &str, request: &Request<'_>) -> bool {
    let outage = &world.faults.unavailable_organizations;
    if outage.is_empty() {
        return false;
    }
    let in_path = path
        .strip_prefix("/organizations/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<u64>().ok());
    let in_query = request
        .param("organizationId")
        .and_then(|id| id.parse::<u64>().ok());
    [in_path, in_query]
        .into_iter()
        .flatten()
        .any(|id| outage.contains(&id))
}

fn serve(world: &mut World, clock: &dyn Clock, request: &Request<'_>) -> Reply {
    if request.method != Method::GET {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "",
            "SC405",
        );
    }
    let Some(path) = request.path.strip_prefix("/api/v2") else {
        return Reply::error(StatusCode::NOT_FOUND, "Not found", request.path, "SC404");
    };
    if organization_in_outage(world, path, request) {
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        );
    }
    if world.faults.server_errors > 0 {
        world.faults.server_errors -= 1;
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        );
    }
    if world.faults.rate_limited > 0 {
        world.faults.rate_limited -= 1;
        let mut reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Requests limit for organization exceeded",
            "",
            "SC429",
        );
        reply.headers.push((
            "retry-after",
            world.faults.rate_limited_retry_after.to_string(),
        ));
        return reply;
    }
    let grant = match request.token.and_then(|t| world.tokens.get(t)) {
        Some(grant) if !grant.revoked => grant.clone(),
        _ => {
            return Reply::error(
                StatusCode::UNAUTHORIZED,
                "Invalid credentials.",
                "The access token is invalid or has expired.",
                "IM001",
            )
        }
    };
    let missing_scope = |scope: &str| {
        (!grant.scopes.contains(scope)).then(|| {
            Reply::error(
                StatusCode::FORBIDDEN,
                "Permission denied",
                &format!("The token is missing the scope {scope}."),
                "SC403",
            )
        })
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["users", "me"] => {
            if let Some(denied) = missing_scope("user:read") {
                return denied;
            }
            let user = world.users.get(&grant.user_id);
            Reply::json(
                StatusCode::OK,
                json!({ "authUser": {
                    "id": grant.user_id,
                    "name": user.map(|u| u.name.clone()),
                    "email": user.map(|u| u.email.clone()),
                    "language": "en",
                    "timezoneId": 113,
                }}),
            )
        }
        ["users", "roles"] => {
            if let Some(denied) = missing_scope("user:read") {
                return denied;
            }
            let rows: Vec<(u64, Value)> = world
                .roles
                .iter()
                .map(|(id, name)| (u64::from(*id), json!({ "id": id, "name": name })))
                .collect();
            page(world, request, "usersRoles", rows, None)
        }
        ["users"] => {
            if let Some(denied) = missing_scope("user:read") {
                return denied;
            }
            let Some(org_id) = request
                .param("organizationId")
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "Exactly one of organizationId or teamId is required.",
                    "IM005",
                );
            };
            let organization = match organization_for(world, request, grant.user_id, org_id, true) {
                Ok(organization) => organization,
                Err(reply) => return reply,
            };
            let columns = request.columns();
            let rows: Vec<(u64, Value)> = organization
                .members
                .keys()
                .filter_map(|id| world.users.get(id))
                .map(|user| {
                    let full = json!({
                        "id": user.id,
                        "name": user.name,
                        "email": user.email,
                        "language": "en",
                        "timezoneId": 113,
                        "localeId": 1,
                        "countryId": 1,
                        "features": {},
                        "avatar": "",
                        "lastLogin": user.last_login.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    });
                    (user.id, select_columns(full, &columns))
                })
                .collect();
            budgeted(world, clock, org_id, |world| {
                page(world, request, "users", rows, Some(org_id))
            })
        }
        ["organizations", id] => {
            if let Some(denied) = missing_scope("organizations:read") {
                return denied;
            }
            let Ok(org_id) = id.parse::<u64>() else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "organizationId must be a number",
                    "IM005",
                );
            };
            let organization = match organization_for(world, request, grant.user_id, org_id, false)
            {
                Ok(organization) => organization,
                Err(reply) => return reply,
            };
            let mut body = json!({
                "id": organization.id,
                "name": organization.name,
                "zone": organization.zone,
                "countryId": 1,
                "timezoneId": 113,
                "teams": [{ "id": organization.id * 10, "name": "My Team" }],
            });
            // Like Make: license and isPaused only for organizations of the zone being called.
            if zone_matches(request.host, &organization) {
                body["license"] = json!({ "users": 50, "apiLimit": organization.api_limit });
                body["isPaused"] = json!(false);
            }
            budgeted(world, clock, org_id, |_| {
                Reply::json(StatusCode::OK, json!({ "organization": body }))
            })
        }
        ["organizations", id, "user-organization-roles"] => {
            if let Some(denied) = missing_scope("organizations:read") {
                return denied;
            }
            let Ok(org_id) = id.parse::<u64>() else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "organizationId must be a number",
                    "IM005",
                );
            };
            let organization = match organization_for(world, request, grant.user_id, org_id, true) {
                Ok(organization) => organization,
                Err(reply) => return reply,
            };
            let rows: Vec<(u64, Value)> = organization
                .members
                .iter()
                .map(|(user_id, membership)| {
                    (
                        *user_id,
                        json!({
                            "userId": user_id,
                            "organizationId": org_id,
                            "usersRoleId": membership.role_id,
                            "invitation": membership.invitation,
                            "organizationTeamsCount": 1,
                            "joinedTeamsCount": 1,
                        }),
                    )
                })
                .collect();
            budgeted(world, clock, org_id, |world| {
                page(world, request, "userOrganizationRoles", rows, Some(org_id))
            })
        }
        _ => Reply::error(StatusCode::NOT_FOUND, "Not found", path, "SC404"),
    }
}

/// The organization, if it exists, the token's user may see it, and (for member lists) it
/// lives in the zone being called.
fn organization_for(
    world: &World,
    request: &Request<'_>,
    user_id: u64,
    org_id: u64,
    zone_required: bool,
) -> Result<SimOrganization, Reply> {
    let not_found = || Reply::error(StatusCode::NOT_FOUND, "Organization not found", "", "IM004");
    let organization = world.organizations.get(&org_id).ok_or_else(not_found)?;
    let is_member = organization
        .members
        .get(&user_id)
        .is_some_and(|m| m.invitation.is_none());
    if !is_member {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            "You don't have access to this organization.",
            "SC403",
        ));
    }
    if zone_required && !zone_matches(request.host, organization) {
        return Err(not_found());
    }
    Ok(organization.clone())
}

/// A request names a zone through its `Host` header. One that names none of Make's hosts
/// (127.0.0.1, by hand) is served as if it were in every zone.
fn zone_matches(host: Option<&str>, organization: &SimOrganization) -> bool {
    match host {
        Some(host) if host.ends_with(".make.com") || host.ends_with(".make.celonis.com") => {
            host == organization.zone
        }
        _ => true,
    }
}

/// Counts the request against the organization's per-minute budget, adds the `X-RateLimit-*`
/// headers, and answers 429 with `Retry-After` once the budget is spent.
fn budgeted(
    world: &mut World,
    clock: &dyn Clock,
    org_id: u64,
    serve: impl FnOnce(&mut World) -> Reply,
) -> Reply {
    let limit = world
        .organizations
        .get(&org_id)
        .and_then(|o| o.api_limit)
        .unwrap_or(60);
    let now = clock.monotonic();
    let window = world.windows.entry(org_id).or_insert(RateWindow {
        started: now,
        used: 0,
    });
    if now.saturating_sub(window.started) >= Duration::from_secs(60) {
        *window = RateWindow {
            started: now,
            used: 0,
        };
    }
    window.used += 1;
    let used = window.used;
    let resets_in = Duration::from_secs(60).saturating_sub(now.saturating_sub(window.started));
    let reset_epoch =
        (clock.wall() + chrono::Duration::from_std(resets_in).unwrap_or_default()).timestamp();
    let enforce = world.faults.enforce_budget;
    let mut reply = if enforce && used > limit {
        let mut reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Requests limit for organization exceeded",
            "",
            "SC429",
        );
        reply
            .headers
            .push(("retry-after", resets_in.as_secs().max(1).to_string()));
        reply
    } else {
        serve(world)
    };
    reply.headers.push(("x-ratelimit-limit", limit.to_string()));
    reply.headers.push((
        "x-ratelimit-remaining",
        limit.saturating_sub(used).to_string(),
    ));
    reply
        .headers
        .push(("x-ratelimit-reset", reset_epoch.to_string()));
    reply
}

/// Serves one `pg[]` page of `rows` (id, object) under `collection`.
fn page(
    world: &mut World,
    request: &Request<'_>,
    collection: &str,
    mut rows: Vec<(u64, Value)>,
    organization: Option<u64>,
) -> Reply {
    if world.faults.malformed_pages > 0 {
        world.faults.malformed_pages -= 1;
        return Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: format!("{{\"{collection}\": [{{\"id\": 1, \"na"),
        };
    }
    let max = world.faults.max_page_size.max(1);
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
    let descending = request.param("pg[sortDir]") != Some("asc");
    rows.sort_by_key(|(id, _)| *id);
    if descending {
        rows.reverse();
    }
    let total = rows.len();
    let slice: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(applied as usize)
        .map(|(_, row)| row)
        .collect();
    let more_to_come = offset + slice.len() < total;
    if offset == 0 && more_to_come {
        apply_page_change(world, organization);
    }
    let mut body = Map::new();
    body.insert(collection.to_string(), Value::Array(slice));
    if world.faults.echo_page {
        body.insert(
            "pg".to_string(),
            json!({
                "sortBy": request.param("pg[sortBy]").unwrap_or("id"),
                "sortDir": if descending { "desc" } else { "asc" },
                "limit": applied,
                "offset": offset,
            }),
        );
    }
    Reply::json(StatusCode::OK, Value::Object(body))
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

fn select_columns(full: Value, columns: &[&str]) -> Value {
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
