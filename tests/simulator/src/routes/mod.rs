//! The HTTP side: one handler that routes by path, like Make's `/api/v2`.
//!
//! Sources are named as in `faults.rs`: "notes" is `../shared/reference/make-api-notes.md`,
//! "independent client" the Go client the notes describe, "assumed" what no source states.
//!
//! This file takes a request and answers it: who it is, what reaches the wire and how; the
//! rest lives apart: which endpoint and whether it may be called ([`access`]), the
//! organization's [`rate_limit`], the failures [`injected`] before anything is served, how
//! [`lists`] are paged, and each endpoint family's rows ([`organizations`], [`members`],
//! [`teams`], [`users`]).

mod access;
mod injected;
mod lists;
mod members;
mod organizations;
mod rate_limit;
mod teams;
mod users;

use crate::world::{TokenGrant, World};
use crate::{InFlight, SeenRequest, Shared};
use access::{authorize, check_access, Endpoint};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use injected::{draw_chaos, injected_failure, Injected};
use lists::select_columns;
use makesync::clock::Clock;
use members::{member_row, members, role_row, roles};
use organizations::{admin_organizations, organization_detail, organizations};
use rate_limit::budgeted;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use teams::{team_roles, teams};
use users::users;

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
