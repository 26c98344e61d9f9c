//! The HTTP side: one handler that routes by path, like Make's `/api/v2`.
//!
//! Sources are named as in `faults.rs`: "notes" is `../shared/reference/make-api-notes.md`,
//! "independent client" the Go client the notes describe, "assumed" what no source states.

use crate::faults::{Chaos, ListShape};
use crate::world::{RateWindow, SimMembership, SimOrganization, SimUser, TokenGrant, World};
use crate::{InFlight, SeenRequest, Shared};
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
    body: ReplyBody,
}

/// A reply's body: text as it goes out, or a document written out after the world's lock is
/// released, so that one large page does not hold every other request back (Make answers
/// requests side by side; assumed that one organization's pages do not queue behind each other).
enum ReplyBody {
    Text(String),
    Json(Value),
    /// A list page whose rows are built from data taken out of the world under its lock.
    Deferred(Box<dyn FnOnce() -> Value + Send>),
}

impl ReplyBody {
    fn into_text(self) -> String {
        match self {
            ReplyBody::Text(text) => text,
            ReplyBody::Json(document) => document.to_string(),
            ReplyBody::Deferred(build) => build().to_string(),
        }
    }
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
        }
    }

    fn text(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Text(body),
        }
    }

    /// Make's error bodies: a human `message`, often a `detail` and a code (notes, "Rate limits
    /// and errors").
    fn error(status: StatusCode, message: &str, detail: &str, code: &str) -> Self {
        Self::json(
            status,
            json!({ "message": message, "detail": detail, "code": code }),
        )
    }

    fn not_found(detail: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "Not found", detail, "IM004")
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_string();
    let gauge = |change: fn(&mut InFlight)| {
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        change(in_flight.entry(path.clone()).or_default());
    };
    gauge(|gauge| {
        gauge.now += 1;
        gauge.most = gauge.most.max(gauge.now);
    });
    let response = handle_counted(&shared, method, uri, headers).await;
    gauge(|gauge| {
        gauge.at_first_answer.get_or_insert(gauge.now);
        gauge.now = gauge.now.saturating_sub(1);
    });
    response
}

async fn handle_counted(
    shared: &Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let latency = {
        let world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
        let below_api = uri.path().strip_prefix("/api/v2").unwrap_or(uri.path());
        let extra = world.faults.path_latency.get(below_api).copied();
        world.faults.latency + extra.unwrap_or_default()
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let host = request_host(&headers);
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = request_token(&headers);
    let (reply, delivery) = {
        let mut world = shared.world.lock().unwrap_or_else(|e| e.into_inner());
        let request = Request {
            method: &method,
            path: uri.path(),
            query: &query,
            host: host.as_deref(),
            token: token.as_deref(),
        };
        match draw_chaos(&mut world, &request) {
            Some(Injected::Reply(reply)) => (reply, Delivery::Whole),
            Some(Injected::Delivery(delivery)) => {
                (serve(&mut world, shared.clock.as_ref(), &request), delivery)
            }
            None => (
                serve(&mut world, shared.clock.as_ref(), &request),
                Delivery::Whole,
            ),
        }
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
    into_response(reply, delivery).await
}

/// The host the request was sent to, without its port.
fn request_host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        })
}

/// "Authorization: Token <api-token>" (notes, "Base, auth, zones").
fn request_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Token "))
        .map(str::to_string)
}

/// The reply as HTTP, its body delivered whole, late or broken off.
async fn into_response(reply: Reply, delivery: Delivery) -> Response {
    let text = reply.body.into_text();
    let body = match delivery {
        Delivery::Whole => Body::from(text),
        Delivery::Slow(wait) => {
            tokio::time::sleep(wait).await;
            Body::from(text)
        }
        Delivery::Broken => {
            // Half the body, then the connection breaks.
            let half = text.as_bytes()[..text.len() / 2].to_vec();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected by the chaos suite",
                )),
            ];
            Body::from_stream(futures_util::stream::iter(chunks))
        }
    };
    let mut response = Response::new(body);
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

/// How an answer reaches the client.
enum Delivery {
    Whole,
    /// After a wait longer than the client waits.
    Slow(Duration),
    /// Half of it, then the connection breaks.
    Broken,
}

enum Injected {
    Reply(Reply),
    Delivery(Delivery),
}

/// A fault for this request, if the chaos switch is on and its dice say so.
fn draw_chaos(world: &mut World, request: &Request<'_>) -> Option<Injected> {
    let chaos = world.faults.chaos.as_mut()?;
    if chaos.rng.f64() >= chaos.rate {
        return None;
    }
    let draw = chaos.rng.u8(0..8);
    if draw == 7 {
        member_leaves(world, request);
        return None;
    }
    let (kind, injected) = chaos_fault(draw, chaos);
    let chaos = world.faults.chaos.as_mut()?;
    *chaos.injected.entry(kind.into()).or_default() += 1;
    Some(injected)
}

/// The fault drawn (0 to 6): an error reply, or a delivery that fails.
fn chaos_fault(draw: u8, chaos: &mut Chaos) -> (&'static str, Injected) {
    match draw {
        0 => {
            let retry_after = [1, 5, 86_400][chaos.rng.usize(0..3)];
            let retry_after_text = retry_after.to_string();
            let mut reply = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Requests limit for organization exceeded",
                "",
                "SC429",
            );
            reply.headers.push(("retry-after", retry_after_text));
            ("429", Injected::Reply(reply))
        }
        1 => {
            let mut reply = Reply::error(
                StatusCode::IM_A_TEAPOT,
                "Requests limit for organization exceeded",
                "",
                "SC429",
            );
            reply.headers.push(("retry-after", "2".to_string()));
            ("418", Injected::Reply(reply))
        }
        2 => (
            "503",
            Injected::Reply(Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "",
                "SC503",
            )),
        ),
        3 => ("connection reset", Injected::Delivery(Delivery::Broken)),
        4 => ("slow body", Injected::Delivery(Delivery::Slow(chaos.slow))),
        5 => (
            "truncated JSON",
            Injected::Reply(Reply::text(
                StatusCode::OK,
                "{\"users\": [{\"id\": 1, \"name\": \"A".to_string(),
            )),
        ),
        _ => (
            "malformed JSON",
            Injected::Reply(Reply::text(
                StatusCode::OK,
                "<html>502 Bad Gateway</html>".to_string(),
            )),
        ),
    }
}

/// A member leaves while the organization's lists are being read.
fn member_leaves(world: &mut World, request: &Request<'_>) -> Option<()> {
    let organization = request
        .path
        .strip_prefix("/api/v2/organizations/")
        .and_then(|rest| rest.split('/').next())
        .or_else(|| request.param("organizationId"))
        .and_then(|id| id.parse::<u64>().ok())?;
    let candidates: Vec<u64> = world
        .organizations
        .get(&organization)?
        .members
        .keys()
        .copied()
        .filter(|id| *id != 1)
        .collect();
    let chaos = world.faults.chaos.as_mut()?;
    let leaving = *candidates.get(chaos.rng.usize(0..candidates.len().max(1)))?;
    *chaos.injected.entry("member leaves".into()).or_default() += 1;
    world.remove_member(organization, leaving);
    Some(())
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

/// The endpoints makesync reads.
enum Endpoint {
    Me,
    /// `GET /users/me/current-authorization` → the token's scopes (Make's SDK, users.ts).
    CurrentAuthorization,
    Roles,
    /// One role, built-in or custom (Make's SDK: `GET /users/roles/{roleId}` →
    /// `{"usersRole": …}`).
    Role {
        role: u32,
    },
    /// The organizations the token's user is a member of.
    Organizations,
    /// Every organization of the White Label instance being called.
    AdminOrganizations,
    Users {
        organization: u64,
    },
    Organization {
        organization: u64,
    },
    Members {
        organization: u64,
    },
    Member {
        organization: u64,
        user: u64,
    },
    /// `GET /teams?organizationId=` (notes, "Teams").
    Teams {
        organization: u64,
    },
    /// `GET /teams/{teamId}/user-team-roles`, with the team's organization (notes, "Teams").
    TeamRoles {
        team: u64,
        organization: Option<u64>,
    },
}

impl Endpoint {
    fn parse(world: &World, path: &str, request: &Request<'_>) -> Result<Self, Reply> {
        let bad_id = || {
            Reply::error(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "organizationId must be a number",
                "IM005",
            )
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let number = |text: &str| text.parse::<u64>().map_err(|_| bad_id());
        Ok(match segments.as_slice() {
            ["users", "me"] => Endpoint::Me,
            ["users", "me", "current-authorization"] => Endpoint::CurrentAuthorization,
            ["users", "roles"] => Endpoint::Roles,
            ["users", "roles", id] => Endpoint::Role {
                role: id.parse::<u32>().map_err(|_| Reply::not_found(path))?,
            },
            ["organizations"] => Endpoint::Organizations,
            ["admin", "organizations"] => Endpoint::AdminOrganizations,
            ["users"] => {
                // "exactly one of organizationId or teamId" (notes).
                let Some(organization) = request
                    .param("organizationId")
                    .and_then(|v| v.parse::<u64>().ok())
                else {
                    return Err(Reply::error(
                        StatusCode::BAD_REQUEST,
                        "Bad request",
                        "Exactly one of organizationId or teamId is required.",
                        "IM005",
                    ));
                };
                Endpoint::Users { organization }
            }
            ["organizations", id] => Endpoint::Organization {
                organization: number(id)?,
            },
            ["organizations", id, "user-organization-roles"] => Endpoint::Members {
                organization: number(id)?,
            },
            ["organizations", id, "user-organization-roles", user] => Endpoint::Member {
                organization: number(id)?,
                user: number(user)?,
            },
            ["teams"] => {
                // Assumed: the list needs `organizationId` as `/users` does.
                let organization = request
                    .param("organizationId")
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(bad_id)?;
                Endpoint::Teams { organization }
            }
            ["teams", id, "user-team-roles"] => {
                let team = id.parse::<u64>().map_err(|_| Reply::not_found(path))?;
                Endpoint::TeamRoles {
                    team,
                    organization: world.team_organization(team),
                }
            }
            _ => return Err(Reply::not_found(path)),
        })
    }

    /// The scope Make checks. `/users` and `/users/roles` are documented `user:read`,
    /// `/organizations/{id}` `organizations:read` (each page's "Required scopes"); the
    /// independent client reads user-organization-roles as `user:read`.
    fn scope(&self, world: &World) -> Option<&'static str> {
        match self {
            Endpoint::Me => world.faults.me_requires_user_read.then_some("user:read"),
            // Assumed: any valid token may ask what it may do (no scope is documented).
            Endpoint::CurrentAuthorization => None,
            Endpoint::Roles
            | Endpoint::Role { .. }
            | Endpoint::Users { .. }
            | Endpoint::Members { .. }
            | Endpoint::Member { .. } => Some("user:read"),
            Endpoint::Organization { .. } | Endpoint::Organizations => Some("organizations:read"),
            // Both pages' "Required scopes" (notes, "Teams").
            Endpoint::Teams { .. } | Endpoint::TeamRoles { .. } => Some("teams:read"),
            // "Administration scopes (only for administrators of Make White Label platforms)"
            // (Make's scopes page, notes "Finding organizations").
            Endpoint::AdminOrganizations => Some("admin:read"),
        }
    }

    fn organization(&self) -> Option<u64> {
        match self {
            // Assumed: neither list spends an organization's budget (undocumented, notes).
            Endpoint::Me
            | Endpoint::CurrentAuthorization
            | Endpoint::Roles
            | Endpoint::Role { .. }
            | Endpoint::Organizations
            | Endpoint::AdminOrganizations => None,
            Endpoint::Users { organization }
            | Endpoint::Organization { organization }
            | Endpoint::Members { organization }
            | Endpoint::Member { organization, .. }
            | Endpoint::Teams { organization } => Some(*organization),
            Endpoint::TeamRoles { organization, .. } => *organization,
        }
    }
}

fn organization_in_outage(world: &World, path: &str, request: &Request<'_>) -> bool {
    let unavailable = &world.faults.unavailable_paths;
    if unavailable
        .iter()
        .any(|down| path.starts_with(down.as_str()))
    {
        return true;
    }
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

fn rate_limited(world: &World, retry_after: impl ToString) -> Reply {
    let status = StatusCode::from_u16(world.faults.rate_limit_status)
        .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut reply = Reply::error(
        status,
        "Requests limit for organization exceeded",
        "",
        "SC429",
    );
    reply.headers.push(("retry-after", retry_after.to_string()));
    reply
}

fn serve(world: &mut World, clock: &dyn Clock, request: &Request<'_>) -> Reply {
    let mut reply = serve_make(world, clock, request);
    let path = request.path.strip_prefix("/api/v2").unwrap_or(request.path);
    if let Some(headers) = world.faults.hostile_headers.get(path) {
        // Not Make: a hostile White Label host's answer (the review's F2), last so it wins.
        reply
            .headers
            .retain(|(name, _)| !headers.iter().any(|(n, _)| n == name));
        reply.headers.extend(headers.iter().cloned());
    }
    reply
}

fn serve_make(world: &mut World, clock: &dyn Clock, request: &Request<'_>) -> Reply {
    if request.method != Method::GET {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "",
            "SC405",
        );
    }
    // Base URL `https://{zone}/api/v2` (notes, "Base, auth, zones").
    let Some(path) = request.path.strip_prefix("/api/v2") else {
        return Reply::not_found(request.path);
    };
    if let Some(reply) = injected_failure(world, path, request) {
        return reply;
    }
    let (grant, endpoint) = match authorize(world, path, request) {
        Ok(authorized) => authorized,
        Err(reply) => return reply,
    };
    let Some(org_id) = endpoint.organization() else {
        return answer(world, request, &endpoint, &grant);
    };
    if let Err(reply) = check_access(world, request, &endpoint, &grant, org_id) {
        return reply;
    }
    budgeted(world, clock, org_id, |world| {
        answer(world, request, &endpoint, &grant)
    })
}

/// A failure a test switched on, answered before anything else is looked at.
fn injected_failure(world: &mut World, path: &str, request: &Request<'_>) -> Option<Reply> {
    if let Some((status, location)) = &world.faults.redirect {
        let mut reply = Reply::error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
            "Moved",
            "",
            "SC302",
        );
        reply.headers.push(("location", location.clone()));
        return Some(reply);
    }
    if organization_in_outage(world, path, request) {
        return Some(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        ));
    }
    if world.faults.server_errors > 0 {
        world.faults.server_errors -= 1;
        return Some(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        ));
    }
    if let Some(value) = world.faults.retry_after_values.pop_front() {
        return Some(rate_limited(world, value));
    }
    if world.faults.rate_limited > 0 {
        world.faults.rate_limited -= 1;
        return Some(rate_limited(world, world.faults.rate_limited_retry_after));
    }
    None
}

/// The token's grant and the endpoint asked for, or the refusal: a bad token, another zone's
/// token, a missing scope, an admin endpoint for a non-administrator.
fn authorize(
    world: &World,
    path: &str,
    request: &Request<'_>,
) -> Result<(TokenGrant, Endpoint), Reply> {
    // 401 for a bad token (notes, "Rate limits and errors"). The body is assumed.
    let unauthorized = || {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "Invalid credentials.",
            "The access token is invalid or has expired.",
            "IM001",
        )
    };
    let grant = match request.token.and_then(|t| world.tokens.get(t)) {
        Some(grant) if !grant.revoked => grant.clone(),
        _ => return Err(unauthorized()),
    };
    let other_zone = match (&grant.zone, request.host) {
        (Some(zone), Some(host)) => {
            host != zone && !host.contains(':') && host.parse::<std::net::IpAddr>().is_err()
        }
        _ => false,
    };
    if other_zone && !world.faults.tokens_cross_zones {
        return Err(unauthorized());
    }
    let endpoint = Endpoint::parse(world, path, request)?;
    if let Some(scope) = endpoint.scope(world) {
        if !grant.scopes.contains(scope) {
            return Err(match world.faults.missing_scope_status {
                // Assumed: a 401 for a missing scope looks like any other 401.
                401 => unauthorized(),
                _ => Reply::error(
                    StatusCode::FORBIDDEN,
                    "Permission denied",
                    &format!("The token is missing the scope {scope}."),
                    "SC403",
                ),
            });
        }
    }
    if matches!(endpoint, Endpoint::AdminOrganizations)
        && !world.instance_admins.contains(&grant.user_id)
    {
        // A regular user may add admin scopes to a token "however … you will receive the 403
        // Access denied error" (Make's scopes page, notes "Finding organizations").
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            "Administration endpoints are only for administrators of the platform.",
            "SC403",
        ));
    }
    Ok((grant, endpoint))
}

/// The organization exists, the token's user is an active member of it, and (for everything
/// but the organization itself) it lives in the zone being called.
fn check_access(
    world: &World,
    request: &Request<'_>,
    endpoint: &Endpoint,
    grant: &TokenGrant,
    org_id: u64,
) -> Result<(), Reply> {
    let not_found = || Reply::error(StatusCode::NOT_FOUND, "Organization not found", "", "IM004");
    let organization = world
        .organizations
        .get(&org_id)
        // Assumed: a deleted organization is gone for every endpoint but the admin list.
        .filter(|o| !o.deleted)
        .ok_or_else(not_found)?;
    let is_member = organization
        .members
        .get(&grant.user_id)
        .is_some_and(|m| m.invitation.is_none());
    // Assumed either way (undocumented, notes "Finding organizations"): an instance
    // administrator's admin:read token reads an organization of its instance it is not a
    // member of, when the switch says so.
    let admin_reads = world.faults.admin_reads_members
        && grant.scopes.contains("admin:read")
        && world.instance_admins.contains(&grant.user_id)
        && zone_matches(request.host, organization);
    if !is_member && !admin_reads {
        // 403 "access denied" (notes, "Rate limits and errors").
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            "You don't have access to this organization.",
            "SC403",
        ));
    }
    // An organization belongs to one zone (notes); its data is read on that zone. Assumed:
    // another zone answers 404 for its members and users.
    let zone_required = !matches!(endpoint, Endpoint::Organization { .. });
    if zone_required && !zone_matches(request.host, organization) {
        return Err(not_found());
    }
    // `apiLimit` 0 "disables access to the data in the organization with the API" (003);
    // the answer is assumed: 403 for its data, its own record still readable.
    if zone_required && organization.api_limit == Some(0) {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "Access denied",
            "API access is disabled for this organization.",
            "SC403",
        ));
    }
    Ok(())
}

/// The 200 answer, or a canned body for the path.
fn answer(
    world: &mut World,
    request: &Request<'_>,
    endpoint: &Endpoint,
    grant: &TokenGrant,
) -> Reply {
    if let Some(body) = world.faults.canned_bodies.get(request.path) {
        return Reply::text(StatusCode::OK, body.clone());
    }
    match *endpoint {
        Endpoint::Me => {
            let user = world.users.get(&grant.user_id);
            // `{"authUser": {"id", "name", "email", "language", "timezoneId", ...}}` (notes).
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
        // `{"authorization": {"authUsed": "token", "scope": [...]}}` (the SDK's mock).
        Endpoint::CurrentAuthorization => Reply::json(
            StatusCode::OK,
            json!({ "authorization": { "authUsed": "token", "scope": grant.scopes } }),
        ),
        Endpoint::Roles => roles(world, request),
        Endpoint::Role { role } => match role_row(world, role, true) {
            Some(row) => Reply::json(StatusCode::OK, json!({ "usersRole": row })),
            // Assumed: an id Make does not know answers 404.
            None => Reply::not_found("The role does not exist."),
        },
        Endpoint::Organizations => organizations(world, request, grant.user_id),
        Endpoint::AdminOrganizations => admin_organizations(world, request),
        Endpoint::Users { organization } => users(world, request, organization),
        Endpoint::Organization { organization } => {
            organization_detail(world, request, organization)
        }
        Endpoint::Members { organization } => members(world, request, organization),
        Endpoint::Teams { organization } => teams(world, request, organization),
        Endpoint::TeamRoles {
            team,
            organization: Some(organization),
        } => team_roles(world, request, organization, team),
        // Assumed: a team Make does not know answers 404.
        Endpoint::TeamRoles {
            organization: None, ..
        } => Reply::not_found("The team does not exist."),
        Endpoint::Member { organization, user } => {
            // "Get user organization role details" answers `{"userOrganizationRole": {...}}`
            // ("Organizations > User organization roles"); a user who is not a member: 404
            // (assumed).
            match member_row(world, organization, user) {
                Some(row) => Reply::json(
                    StatusCode::OK,
                    json!({ "userOrganizationRole": select_columns(row, &request.columns()) }),
                ),
                None => Reply::not_found("The user is not a member of the organization."),
            }
        }
    }
}

fn roles(world: &mut World, request: &Request<'_>) -> Reply {
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
fn role_row(world: &World, id: u32, detail: bool) -> Option<Value> {
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

fn users(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
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
fn organizations(world: &mut World, request: &Request<'_>, user_id: u64) -> Reply {
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
fn admin_organizations(world: &mut World, request: &Request<'_>) -> Reply {
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

fn organization_detail(world: &World, request: &Request<'_>, org_id: u64) -> Reply {
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

fn members(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
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

fn teams(world: &mut World, request: &Request<'_>, org_id: u64) -> Reply {
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

fn team_roles(world: &mut World, request: &Request<'_>, org_id: u64, team_id: u64) -> Reply {
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

/// One membership: `userId`, `organizationId`, `usersRoleId`, `invitation` (documented
/// example), `organizationTeamsCount`, `joinedTeamsCount` (documented `cols[]`), `ssoPending`
/// (independent client).
fn member_row(world: &World, org_id: u64, user_id: u64) -> Option<Value> {
    let membership = world.organizations.get(&org_id)?.members.get(&user_id)?;
    Some(membership_row(
        org_id,
        user_id,
        membership,
        team_counts(world, org_id, user_id),
    ))
}

/// A member's `joinedTeamsCount` (the teams they are in) and `organizationTeamsCount` (the
/// organization's teams). Make's reference shows both fields (an invitee in one team of two
/// has 1 and 2) but not whether private spaces count: assumed either way, behind
/// `Faults::team_counts_include_private_spaces`.
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

/// A request names a zone through its `Host` header (makesync's client always sends the
/// connection's host). One that names no host — an address with a port, `127.0.0.1` or
/// `localhost`, as a request made by hand does — is served as if it were in every zone.
fn zone_matches(host: Option<&str>, organization: &SimOrganization) -> bool {
    match host {
        Some(host)
            if !host.contains(':')
                && host.parse::<std::net::IpAddr>().is_err()
                && host != "localhost" =>
        {
            host == organization.zone
        }
        _ => true,
    }
}

/// Counts the request against the organization's per-minute budget (`license.apiLimit`,
/// notes "Rate limits"), adds the `X-RateLimit-*` headers (notes: inferred from an
/// open-source connector), and answers the rate-limit status with `Retry-After` once the
/// budget is spent.
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
    let mut reply = if world.faults.enforce_budget && used > limit {
        rate_limited(world, resets_in.as_secs().max(1))
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

/// Serves `ids` (in order) as the list `collection` in the given shape, building only the
/// rows it answers.
/// Which list is served, and how.
struct ListSpec<'a> {
    collection: &'a str,
    shape: ListShape,
    /// The organization the list is about, for the between-pages faults.
    organization: Option<u64>,
    /// `(sortBy, sortDir)` the echo names when the request names none.
    default_sort: (&'a str, &'a str),
}

fn list(
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
fn list_rendered_later<R: Send + 'static>(
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
