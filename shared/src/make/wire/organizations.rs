//! What a token reaches: who it is (`GET /users/me`), its scopes, and the organizations it sees
//! (`GET /organizations`, one with its plan).

use super::fields::{bounded_text, bounded_text_or_null, BoundedText};
use crate::make::paging::Keyed;
use serde::Deserialize;

/// `GET /users/me` → `authUser`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthUser {
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AuthUserResponse {
    #[serde(rename = "authUser")]
    pub auth_user: AuthUser,
}

/// `GET /organizations/{id}` → `organization`, the fields the sync uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrganizationSummary {
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub license: Option<License>,
}

impl OrganizationSummary {
    /// Requests per minute the organization's plan allows, when Make says.
    pub fn api_limit(&self) -> Option<u32> {
        self.license.as_ref().and_then(|license| license.api_limit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct License {
    #[serde(rename = "apiLimit", default)]
    pub api_limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct OrganizationResponse {
    pub organization: OrganizationSummary,
}

/// One row of `GET /organizations` (the token's user's organizations, 002) or
/// `GET /admin/organizations` (a White Label instance's, 003), with the columns makesync asks
/// for. Only `id` and `name` are required: `zone`, `isPaused` and `license` may be absent
/// (002: license and isPaused "only for organizations in your current Make zone"; Make's
/// SDK test lists without `zone` when it is not asked), `deleted` is on the admin list only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationListing {
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub zone: Option<String>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub license: Option<License>,
    #[serde(default)]
    pub deleted: Option<bool>,
}

impl OrganizationListing {
    /// `license.apiLimit` where Make states one.
    pub fn api_limit(&self) -> Option<u32> {
        self.license.as_ref().and_then(|license| license.api_limit)
    }
}

impl Keyed for OrganizationListing {
    fn key(&self) -> u64 {
        self.id
    }
}

/// `GET /users/me/current-authorization` → `{"authorization": {"authUsed", "scope": [...]}}`
/// (Make's SDK, users.ts and `test/mocks/users/current-authorization.json`): the scopes of
/// the token that asks.
#[derive(Debug, Deserialize)]
pub struct AuthorizationResponse {
    pub authorization: Authorization,
}

#[derive(Debug, Deserialize)]
pub struct Authorization {
    #[serde(default)]
    pub scope: Vec<BoundedText>,
}
