//! Make's JSON, as the endpoints the sync reads return it.
//!
//! Field names follow Make's camelCase. Where the shape is inferred rather than documented
//! (`lastLogin` on `GET /users`), the field is required to be present, so a different real
//! shape fails loudly as a protocol error naming the endpoint instead of being read as "never
//! logged in".

use super::error::MakeError;
use super::paging::{Keyed, PageEcho};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// `GET /users/me` → `authUser`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthUser {
    pub id: u64,
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

/// `GET /users/roles` → `usersRoles[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrganizationRole {
    pub id: u32,
    pub name: String,
}

impl Keyed for OrganizationRole {
    fn key(&self) -> u64 {
        u64::from(self.id)
    }
}

/// `GET /organizations/{id}/user-organization-roles` → `userOrganizationRoles[]`, and
/// `GET /organizations/{id}/user-organization-roles/{userId}` → `userOrganizationRole`.
/// Other fields Make adds (`organizationId`, `organizationTeamsCount`, `joinedTeamsCount`,
/// `ssoPending`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrganizationMember {
    #[serde(rename = "userId")]
    pub user_id: u64,
    #[serde(rename = "usersRoleId")]
    pub users_role_id: u32,
    /// `null` for a member, `"pending"` or `"expired"` for an invitation. Required to be
    /// present: a missing field must not turn an invitee into a member.
    #[serde(deserialize_with = "required_nullable")]
    pub invitation: Option<String>,
}

impl Keyed for OrganizationMember {
    fn key(&self) -> u64 {
        self.user_id
    }
}

#[derive(Debug, Deserialize)]
pub struct MemberResponse {
    #[serde(rename = "userOrganizationRole")]
    pub member: OrganizationMember,
}

/// `GET /users?organizationId=…` → `users[]`, with the columns the sync asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MakeUser {
    pub id: u64,
    pub name: String,
    pub email: String,
    /// Required to be present (possibly `null`): see the module documentation. Make's admin
    /// user list spells it `lastLogin`, its `/users/me` example `lastlogin`; either is read.
    #[serde(
        rename = "lastLogin",
        alias = "lastlogin",
        deserialize_with = "required_timestamp"
    )]
    pub last_login: Option<DateTime<Utc>>,
}

impl Keyed for MakeUser {
    fn key(&self) -> u64 {
        self.id
    }
}

/// A field that must be present but may be `null`. (serde reads a missing `Option` as `None`
/// unless the field has its own deserializer.)
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::deserialize(deserializer)
}

fn required_timestamp<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|text| {
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "lastLogin {text:?} is not an ISO 8601 timestamp: {e}"
                ))
            })
    })
    .transpose()
}

/// One answer of a list endpoint: the rows under `collection`, and the `pg` echo if there is
/// one. Read straight from the body, ignoring every other field, so that a page costs its rows
/// and nothing more.
#[derive(Debug)]
pub struct ListPage<T> {
    pub rows: Vec<T>,
    pub echo: Option<PageEcho>,
}

/// Reads a [`ListPage`] whose rows sit under the key `collection`.
pub(super) struct ListPageSeed<'a, T> {
    collection: &'a str,
    rows: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ListPageSeed<'_, T> {
    type Value = ListPage<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListPageSeed<'_, T> {
    type Value = ListPage<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a \"{}\" list", self.collection)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rows = None;
        let mut echo = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.collection {
                rows = Some(map.next_value::<Vec<T>>()?);
            } else if key == "pg" {
                // Its presence marks a paged answer, even if its content does not parse.
                let pg: serde_json::Value = map.next_value()?;
                if !pg.is_null() {
                    echo = Some(serde_json::from_value(pg).unwrap_or_default());
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let rows = rows.ok_or_else(|| {
            serde::de::Error::custom(format!("the response has no \"{}\" list", self.collection))
        })?;
        Ok(ListPage { rows, echo })
    }
}

/// Reads a whole response body as `T`; a body that does not parse is a protocol error that
/// names the endpoint and what was wrong.
pub fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, MakeError> {
    serde_json::from_slice(body).map_err(|e| unreadable(endpoint, None, &e))
}

/// Reads a list answer: the rows under `collection` and the `pg` echo.
pub fn decode_page<T: DeserializeOwned>(
    endpoint: &str,
    collection: &str,
    body: &[u8],
) -> Result<ListPage<T>, MakeError> {
    let seed = ListPageSeed {
        collection,
        rows: PhantomData,
    };
    let mut reader = serde_json::Deserializer::from_slice(body);
    seed.deserialize(&mut reader)
        .and_then(|page| reader.end().map(|()| page))
        .map_err(|e| unreadable(endpoint, Some(collection), &e))
}

fn unreadable(endpoint: &str, collection: Option<&str>, error: &serde_json::Error) -> MakeError {
    let detail = match (error.classify(), collection) {
        (serde_json::error::Category::Syntax | serde_json::error::Category::Eof, _) => {
            format!("not JSON: {error}")
        }
        (_, Some(collection)) => format!("{collection}: {error}"),
        (_, None) => error.to_string(),
    };
    MakeError::Protocol {
        endpoint: endpoint.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads `body` as every response type makesync reads; each is a value or a protocol
    /// error naming the endpoint.
    fn read_every_way(body: &[u8]) -> Result<(), TestCaseError> {
        let checks: Vec<Result<(), MakeError>> = vec![
            decode::<AuthUserResponse>("GET /users/me", body).map(drop),
            decode::<OrganizationResponse>("GET /organizations/1", body).map(drop),
            decode::<MemberResponse>("GET /organizations/1/user-organization-roles/2", body)
                .map(drop),
            decode_page::<OrganizationRole>("GET /users/roles", "usersRoles", body).map(drop),
            decode_page::<OrganizationMember>(
                "GET /organizations/1/user-organization-roles",
                "userOrganizationRoles",
                body,
            )
            .map(drop),
            decode_page::<MakeUser>("GET /users?organizationId=1", "users", body).map(drop),
        ];
        for check in checks {
            if let Err(error) = check {
                let MakeError::Protocol { endpoint, detail } = &error else {
                    return Err(TestCaseError::fail(format!(
                        "not a protocol error: {error:?}"
                    )));
                };
                prop_assert!(error.to_string().contains(endpoint.as_str()));
                prop_assert!(!detail.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn arbitrary_bytes_are_an_error_naming_the_endpoint_never_a_panic(
            body in prop::collection::vec(any::<u8>(), 0..300)
        ) {
            read_every_way(&body)?;
        }

        #[test]
        fn arbitrary_json_is_read_or_an_error_naming_the_endpoint_never_a_panic(
            value in crate::arbitrary::json(&[
                "id", "name", "email", "lastLogin", "userId", "usersRoleId", "invitation", "pg",
                "limit", "users", "usersRoles", "userOrganizationRoles", "userOrganizationRole",
                "authUser", "organization", "zone", "license", "apiLimit",
            ])
        ) {
            read_every_way(value.to_string().as_bytes())?;
        }
    }

    #[test]
    fn last_login_may_be_null_but_not_missing() {
        let user: MakeUser = serde_json::from_str(
            r#"{"id":1,"name":"Zoë","email":"z@example.com","lastLogin":null}"#,
        )
        .unwrap();
        assert_eq!(user.last_login, None);
        let user: MakeUser = serde_json::from_str(
            r#"{"id":1,"name":"Zoë","email":"z@example.com","lastLogin":"2023-01-03T11:24:25.460Z"}"#,
        )
        .unwrap();
        assert_eq!(
            user.last_login.unwrap().to_rfc3339(),
            "2023-01-03T11:24:25.460+00:00"
        );
        let missing =
            serde_json::from_str::<MakeUser>(r#"{"id":1,"name":"Zoë","email":"z@example.com"}"#)
                .unwrap_err();
        assert!(missing.to_string().contains("lastLogin"), "{missing}");
    }
}
