//! Which endpoint a path names, and whether the token may call it: its grant, its zone, the
//! endpoint's scope, and the caller's membership of the organization.

use super::{Reply, Request};
use crate::world::{SimOrganization, TokenGrant, World};
use axum::http::StatusCode;

/// The token's grant and the endpoint asked for, or the refusal: a bad token, another zone's
/// token, a missing scope, an admin endpoint for a non-administrator.
pub(super) fn authorize(
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

/// The endpoints makesync reads.
pub(super) enum Endpoint {
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

    pub(super) fn organization(&self) -> Option<u64> {
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

/// The organization exists, the token's user is an active member of it, and (for everything
/// but the organization itself) it lives in the zone being called.
pub(super) fn check_access(
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

/// A request names a zone through its `Host` header (makesync's client always sends the
/// connection's host). One that names no host — an address with a port, `127.0.0.1` or
/// `localhost`, as a request made by hand does — is served as if it were in every zone.
pub(super) fn zone_matches(host: Option<&str>, organization: &SimOrganization) -> bool {
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
