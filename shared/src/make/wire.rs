//! Make's JSON, as the endpoints the sync reads return it.
//!
//! Field names follow Make's camelCase. Where the shape is inferred rather than documented
//! (`lastLogin` on `GET /users`), the field is required to be present, so a different real
//! shape fails loudly as a protocol error naming the endpoint instead of being read as "never
//! logged in".

use super::error::{ListBound, MakeError};
use super::paging::{Keyed, PageEcho};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

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

/// `GET /users/roles` → `usersRoles[]`, and `GET /users/roles/{id}` → `usersRole`. Only `id`
/// and `name` are required (Make's API reference answers those by default); what kind of role
/// it is — `identifier` for a built-in role, `managementType` (`system_locked`,
/// `admin_managed`, `custom_managed`) — is kept where Make gives it (Make's SDK, roles.ts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRole {
    pub id: u32,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "bounded_text_or_null")]
    pub management_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RoleResponse {
    #[serde(rename = "usersRole")]
    pub role: OrganizationRole,
}

impl Keyed for OrganizationRole {
    fn key(&self) -> u64 {
        u64::from(self.id)
    }
}

/// `GET /organizations/{id}/user-organization-roles` → `userOrganizationRoles[]`, and
/// `GET /organizations/{id}/user-organization-roles/{userId}` → `userOrganizationRole`.
/// Other fields Make adds (`organizationId`, `ssoPending`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrganizationMember {
    #[serde(rename = "userId", deserialize_with = "positive_id")]
    pub user_id: u64,
    #[serde(rename = "usersRoleId")]
    pub users_role_id: u32,
    /// `null` for a member, `"pending"` or `"expired"` for an invitation. Required to be
    /// present: a missing field must not turn an invitee into a member.
    #[serde(deserialize_with = "bounded_text_or_null")]
    pub invitation: Option<String>,
    /// `joinedTeamsCount`: the teams the member is in. Asked only where team access is read,
    /// to check the team lists against (Make's API reference; what it counts is assumed).
    #[serde(rename = "joinedTeamsCount", default)]
    pub joined_teams: Option<u32>,
    /// `organizationTeamsCount`: the organization's teams, as the same member row says.
    #[serde(rename = "organizationTeamsCount", default)]
    pub organization_teams: Option<u32>,
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

/// A string from Make, refused past [`MAX_TEXT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct BoundedText(#[serde(deserialize_with = "bounded_text")] pub String);

/// `GET /teams?organizationId=…` → `teams[]`: `{id, name, organizationId}` (Make's SDK,
/// `test/mocks/teams/list.json`; `src/endpoints/teams.ts`). Other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Team {
    #[serde(deserialize_with = "positive_id")]
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
}

impl Keyed for Team {
    fn key(&self) -> u64 {
        self.id
    }
}

/// `GET /teams/{teamId}/user-team-roles` → `userTeamRoles[]`: `{usersRoleId, userId, teamId,
/// changeable}` (Make's API reference, "Teams > User team roles"; the SDK's `UserTeamRole`).
/// `teamId`, when present, must be the team asked for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TeamMemberRole {
    #[serde(rename = "userId", deserialize_with = "positive_id")]
    pub user_id: u64,
    #[serde(rename = "usersRoleId")]
    pub users_role_id: u32,
    #[serde(rename = "teamId", default)]
    pub team_id: Option<u64>,
}

impl Keyed for TeamMemberRole {
    fn key(&self) -> u64 {
        self.user_id
    }
}

/// `GET /users?organizationId=…` → `users[]`, with the columns the sync asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MakeUser {
    #[serde(deserialize_with = "positive_id")]
    pub id: u64,
    #[serde(deserialize_with = "bounded_text")]
    pub name: String,
    #[serde(deserialize_with = "bounded_text")]
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

/// The longest name, email or role name read from Make, in bytes. Make's own are far
/// shorter; a longer one is a hostile host's, and would make the user's item and its event too
/// large for the events bus (256 KB) and block the stream it shares with other tenants.
pub const MAX_TEXT_BYTES: usize = 1024;

fn bounded_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.len() > MAX_TEXT_BYTES {
        // Not quoted: the value is the member's, or a hostile host's.
        return Err(serde::de::Error::custom(format!(
            "longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// A string from Make or `null`, refused past [`MAX_TEXT_BYTES`]. Required to be present unless
/// the field says `default`.
fn bounded_text_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<BoundedText>::deserialize(deserializer)?.map(|text| text.0))
}

/// A user id: Make's start at 1. Id 0 is a hostile host's, and would land on the key the
/// store keeps a connection's write guard under.
fn positive_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let id = u64::deserialize(deserializer)?;
    if id == 0 {
        return Err(serde::de::Error::custom("not a Make id (0)"));
    }
    Ok(id)
}

fn required_timestamp<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_option(NullableTimestamp)
}

/// Reads an ISO 8601 timestamp or `null` straight from the text the body holds: one per
/// user of every page, so no copy of it is made.
struct NullableTimestamp;

impl<'de> Visitor<'de> for NullableTimestamp {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ISO 8601 timestamp or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.with_timezone(&Utc)))
            // Not quoted: the value is the member's, and errors end up in logs and records.
            .map_err(|_| E::custom("not an ISO 8601 timestamp"))
    }
}

/// One answer of a list endpoint: the rows under `collection`, and the `pg` echo if there is
/// one. Read straight from the body, ignoring every other field, so that a page costs its rows
/// and nothing more.
#[derive(Debug)]
pub struct ListPage<T> {
    pub rows: Vec<T>,
    pub echo: Option<PageEcho>,
}

/// Reads a [`ListPage`] whose rows sit under the key `collection`, keeping at most
/// `max_rows` of them: one more stops the read at once, and `over_bound` says why.
pub(super) struct ListPageSeed<'a, T> {
    collection: &'a str,
    max_rows: usize,
    over_bound: &'a Cell<bool>,
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
                rows = Some(map.next_value_seed(BoundedRows::<T> {
                    max_rows: self.max_rows,
                    over_bound: self.over_bound,
                    rows: PhantomData,
                })?);
            } else if key == "pg" {
                echo = map.next_value_seed(EchoSeed)?;
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

/// A list's rows, read one at a time up to `max_rows`: one row more stops the read there (and
/// sets `over_bound`), so that a host's answer never grows past what the list may hold.
struct BoundedRows<'a, T> {
    max_rows: usize,
    over_bound: &'a Cell<bool>,
    rows: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for BoundedRows<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedRows<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::new();
        while let Some(row) = seq.next_element::<T>()? {
            if rows.len() == self.max_rows {
                self.over_bound.set(true);
                return Err(serde::de::Error::custom("more rows than the list may hold"));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// The `pg` object of an answer, read for its `limit` alone. Everything else in it is skipped
/// without being built, whatever its size or shape: a hostile host's `pg` of 15 MB costs the
/// time to read past it, not a tree many times its size. `null` is no echo; anything else
/// marks the answer as paged (its presence is what tells a page from a whole list), with the
/// limit where `limit` is a whole number.
struct EchoSeed;

impl<'de> DeserializeSeed<'de> for EchoSeed {
    type Value = Option<PageEcho>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EchoSeed {
    type Value = Option<PageEcho>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pg object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut echo = PageEcho::default();
        while let Some(is_limit) = map.next_key_seed(KeyIs("limit"))? {
            if is_limit {
                echo.limit = map.next_value_seed(WholeNumber)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(echo))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(PageEcho::default()))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(PageEcho::default()))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(PageEcho::default()))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(PageEcho::default()))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(PageEcho::default()))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(PageEcho::default()))
    }
}

/// Whether a map key is `name`, compared where it lies in the body (no copy of it is kept).
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// A whole number that fits a `u32`, or `None` for any other value (skipped unbuilt).
struct WholeNumber;

impl<'de> DeserializeSeed<'de> for WholeNumber {
    type Value = Option<u32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WholeNumber {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(u32::try_from(value).ok())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(u32::try_from(value).ok())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Reads a whole response body as `T`; a body that does not parse is a protocol error that
/// names the endpoint, the field and what was wrong with it — never a value from the body.
pub fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, MakeError> {
    serde_json::from_slice(body).map_err(|e| protocol(endpoint, describe::<T>(None, body, &e)))
}

/// Reads a list answer: the rows under `collection` and the `pg` echo. A list of at most
/// `max_rows` rows answers at most one more in a page (a page after the first repeats the last
/// row of the one before); a page with more is [`MakeError::ListTooLong`], found while it is
/// read.
pub fn decode_page<T: DeserializeOwned>(
    endpoint: &str,
    collection: &str,
    body: &[u8],
    max_rows: usize,
) -> Result<ListPage<T>, MakeError> {
    let over_bound = Cell::new(false);
    let seed = ListPageSeed {
        collection,
        max_rows: max_rows.saturating_add(1),
        over_bound: &over_bound,
        rows: PhantomData,
    };
    let mut reader = serde_json::Deserializer::from_slice(body);
    match seed
        .deserialize(&mut reader)
        .and_then(|page| reader.end().map(|()| page))
    {
        Ok(page) => Ok(page),
        Err(_) if over_bound.get() => Err(MakeError::ListTooLong {
            endpoint: endpoint.to_string(),
            bound: ListBound::Rows(max_rows),
        }),
        Err(e) => Err(protocol(
            endpoint,
            describe::<T>(Some(collection), body, &e),
        )),
    }
}

/// The rows of one list answer, decoded exactly as the client decodes each page (the
/// benchmark's decoding part and the memory tests time and measure this; not for other use).
#[doc(hidden)]
pub fn decode_list_rows<T: DeserializeOwned>(
    endpoint: &str,
    collection: &str,
    body: &[u8],
) -> Result<Vec<T>, MakeError> {
    decode_page(endpoint, collection, body, usize::MAX).map(|page: ListPage<T>| page.rows)
}

fn protocol(endpoint: &str, detail: String) -> MakeError {
    MakeError::Protocol {
        endpoint: endpoint.to_string(),
        detail,
    }
}

/// Why `body` did not read as `T` (or as a list of `T` under `collection`), in words that
/// hold no value from it: serde's own messages quote the value they refused (a member's name,
/// an email), and this detail ends up in `lastError`, run records and logs. For a list it
/// names the row (its index) and the field. Only on this error path is the body read a
/// second time, to find them, one row at a time.
fn describe<T: DeserializeOwned>(
    collection: Option<&str>,
    body: &[u8],
    error: &serde_json::Error,
) -> String {
    use serde_json::error::Category;
    if matches!(
        error.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return format!(
            "not JSON (at line {} column {})",
            error.line(),
            error.column()
        );
    }
    // Read again through a path tracker, row by row, each row dropped once checked: the
    // error path costs one row at a time, not a tree of the whole body (a hostile host's
    // 16 MB page as a `serde_json::Value` is several hundred MB).
    let mut reader = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut reader, &mut track);
    let failure = match collection {
        None => T::deserialize(tracked).err(),
        Some(collection) => RowCheck::<T> {
            collection,
            rows: PhantomData,
        }
        .deserialize(tracked)
        .err(),
    };
    match failure {
        Some(inner) => field_problem(&track.path().to_string(), &inner.to_string()),
        None => field_problem(collection.unwrap_or(""), &error.to_string()),
    }
}

/// Checks every row under `collection` as `T`, keeping none: what [`describe`] reads a
/// failed list with, to find the row and field at fault.
struct RowCheck<'a, T> {
    collection: &'a str,
    rows: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for RowCheck<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for RowCheck<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a \"{}\" list", self.collection)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.collection {
                map.next_value_seed(EachRow::<T>(PhantomData))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A list read one element at a time, each dropped once read.
struct EachRow<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for EachRow<T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for EachRow<T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<T>()?.is_some() {}
        Ok(())
    }
}

/// "field `lastLogin` is missing", "field `name` has the wrong type", … from serde's message,
/// keeping its kind and the field's name and dropping any value it quotes.
fn field_problem(path: &str, message: &str) -> String {
    let field = |name: &str| {
        if name.is_empty() || name == "." {
            "the value".to_string()
        } else {
            format!("field `{name}`")
        }
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let missing = rest.split('`').next().unwrap_or_default();
        let inner = if path.is_empty() || path == "." {
            missing.to_string()
        } else {
            format!("{path}.{missing}")
        };
        return format!("{} is missing", field(&inner));
    }
    let kind = if message.starts_with("invalid type") {
        "has the wrong type"
    } else if message.starts_with("invalid length") {
        "has the wrong length"
    } else if message.starts_with("unknown variant") || message.starts_with("invalid value") {
        "has a value Make does not document"
    } else if message.starts_with("not an ISO 8601 timestamp") {
        "is not an ISO 8601 timestamp"
    } else if message.starts_with("longer than ") {
        "is longer than 1024 bytes"
    } else if message.starts_with("not a Make id") {
        "is 0, which is no Make id"
    } else if message.starts_with("the response has no") {
        return message
            .split(" at line")
            .next()
            .unwrap_or(message)
            .to_string();
    } else {
        "does not read as documented"
    };
    format!("{} {kind}", field(path))
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
            decode_page::<OrganizationRole>("GET /users/roles", "usersRoles", body, usize::MAX)
                .map(drop),
            decode_page::<OrganizationMember>(
                "GET /organizations/1/user-organization-roles",
                "userOrganizationRoles",
                body,
                usize::MAX,
            )
            .map(drop),
            decode_page::<MakeUser>("GET /users?organizationId=1", "users", body, usize::MAX)
                .map(drop),
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

    /// The `pg` echo is read for its limit alone, whatever else it holds; its presence, not
    /// its content, marks a paged answer, and `null` is no echo.
    #[test]
    fn the_pg_echo_is_read_for_its_limit_whatever_its_shape() {
        let echo = |pg: &str| {
            let body = format!(r#"{{"users":[],"pg":{pg}}}"#);
            decode_page::<MakeUser>("GET /users", "users", body.as_bytes(), 10)
                .unwrap()
                .echo
        };
        let limit = |limit| Some(PageEcho { limit });
        assert_eq!(echo("null"), None);
        assert_eq!(
            echo(r#"{"limit":50,"offset":0,"sortBy":"id"}"#),
            limit(Some(50))
        );
        assert_eq!(
            echo(r#"{"offset":0,"extra":{"deep":[1,{"a":[]}]},"limit":7}"#),
            limit(Some(7))
        );
        for paged_without_a_limit in [
            "{}",
            r#"{"limit":"50"}"#,
            r#"{"limit":-1}"#,
            r#"{"limit":1.5}"#,
            r#"{"limit":99999999999}"#,
            r#"{"limit":[50]}"#,
            r#"{"limit":{"value":50}}"#,
            r#"{"limit":null}"#,
            "[0,0,0]",
            "0",
            "true",
            r#""pg""#,
        ] {
            assert_eq!(
                echo(paged_without_a_limit),
                limit(None),
                "{paged_without_a_limit}"
            );
        }
    }

    /// A page past the list's bound is refused at the row that passes it (the bound and the
    /// anchor row are within), and the refusal says which list and which bound.
    #[test]
    fn a_page_past_the_row_bound_is_refused_while_it_is_read() {
        let rows = |n: u64| {
            let rows: Vec<String> = (1..=n)
                .map(|id| format!(r#"{{"id":{id},"name":"A","email":"a@x","lastLogin":null}}"#))
                .collect();
            format!(r#"{{"users":[{}]}}"#, rows.join(","))
        };
        let page = decode_page::<MakeUser>("GET /users", "users", rows(6).as_bytes(), 5).unwrap();
        assert_eq!(page.rows.len(), 6, "the bound and the anchor row");
        let error = decode_page::<MakeUser>("GET /users", "users", rows(7).as_bytes(), 5)
            .map(drop)
            .unwrap_err();
        assert_eq!(
            error,
            MakeError::ListTooLong {
                endpoint: "GET /users".to_string(),
                bound: ListBound::Rows(5)
            }
        );
        assert!(
            error
                .to_string()
                .contains("GET /users holds more than 5 rows"),
            "{error}"
        );
    }

    /// F9: a user or member id 0 (a hostile host's; the store keeps a connection's write
    /// guard under user id 0) is refused.
    #[test]
    fn a_user_or_member_id_0_is_refused() {
        let user = br#"{"users":[{"id":0,"name":"A","email":"a@x","lastLogin":null}]}"#;
        let error = decode_page::<MakeUser>("GET /users", "users", user, usize::MAX)
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(error.contains("field `users[0].id` is 0"), "{error}");
        let member = br#"{"userOrganizationRoles":[{"userId":0,"usersRoleId":12,"organizationId":1,"invitation":null}]}"#;
        let error = decode_page::<OrganizationMember>(
            "GET /m",
            "userOrganizationRoles",
            member,
            usize::MAX,
        )
        .map(drop)
        .unwrap_err()
        .to_string();
        assert!(error.contains("userId` is 0"), "{error}");
    }

    /// F14: a name or email past `MAX_TEXT_BYTES` (a hostile host's: the user's item and its
    /// event would not fit the events bus) is refused, without quoting it.
    #[test]
    fn a_name_or_email_longer_than_the_bound_is_refused_unquoted() {
        for (field, json) in [
            (
                "name",
                format!(
                    r#"{{"id":1,"name":"{}","email":"a@x","lastLogin":null}}"#,
                    "N".repeat(260_000)
                ),
            ),
            (
                "email",
                format!(
                    r#"{{"id":1,"name":"A","email":"{}@x","lastLogin":null}}"#,
                    "e".repeat(2_000)
                ),
            ),
        ] {
            let body = format!(r#"{{"users":[{json}]}}"#);
            let error = decode_page::<MakeUser>("GET /users", "users", body.as_bytes(), usize::MAX)
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("users[0].{field}")), "{error}");
            assert!(error.contains("longer than 1024 bytes"), "{error}");
            assert!(error.len() < 600, "{error}");
        }
        let fits = format!(
            r#"{{"users":[{{"id":1,"name":"{}","email":"a@x","lastLogin":null}}]}}"#,
            "N".repeat(1024)
        );
        assert!(
            decode_page::<MakeUser>("GET /users", "users", fits.as_bytes(), usize::MAX).is_ok()
        );
    }

    /// A row that does not parse is named by its index and field; nothing of its values —
    /// a member's name or email — is in the error.
    #[test]
    fn a_malformed_row_is_named_by_index_and_field_never_by_value() {
        let endpoint = "GET /users?organizationId=1";
        let cases = [
            (
                r#"{"users":[{"id":1,"name":"A","email":"a@x","lastLogin":null},
                    {"id":77,"name":"Mallory Quux-Recognizable","email":4242,"lastLogin":null}]}"#,
                "field `users[1].email` has the wrong type",
            ),
            (
                r#"{"users":[{"id":78,"name":"Mallory Quux-Recognizable","email":"mallory.quux@recognizable.example","lastLogin":"Mallory Quux-Recognizable"}]}"#,
                "field `users[0].lastLogin` is not an ISO 8601 timestamp",
            ),
            (
                r#"{"users":[{"id":79,"email":"mallory.quux@recognizable.example","lastLogin":null}]}"#,
                "field `users[0].name` is missing",
            ),
            (
                r#"{"users":[{"id":"mallory.quux@recognizable.example","name":"Mallory Quux-Recognizable","email":"m","lastLogin":null}]}"#,
                "field `users[0].id` has the wrong type",
            ),
            (
                r#"{"users":"Mallory Quux-Recognizable"}"#,
                "field `users` has the wrong type",
            ),
            (r#"{"users":[{"id":1,"name":"Mallory Quux"#, "not JSON"),
        ];
        for (body, says) in cases {
            let error = decode_page::<MakeUser>(endpoint, "users", body.as_bytes(), usize::MAX)
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
            assert!(error.contains(endpoint), "{error}");
            for value in ["Mallory", "Quux", "recognizable", "4242"] {
                assert!(!error.contains(value), "{value} in: {error}");
            }
        }
        let me = decode::<AuthUserResponse>(
            "GET /users/me",
            br#"{"authUser":{"id":5,"name":"Mallory Quux","email":["mallory@recognizable.example"]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            me.contains("field `authUser.email` has the wrong type"),
            "{me}"
        );
        assert!(
            !me.contains("Mallory") && !me.contains("recognizable"),
            "{me}"
        );
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

    /// The timestamp is read from the body's text where it can be, and from a copy where it
    /// must: escaped, from a parsed value, with an offset — the same instant every way.
    #[test]
    fn last_login_reads_the_same_instant_borrowed_escaped_or_owned() {
        let at = |json: &str| serde_json::from_str::<MakeUser>(json).map(|u| u.last_login);
        let expected = DateTime::parse_from_rfc3339("2023-01-03T11:24:25.460Z")
            .unwrap()
            .with_timezone(&Utc);
        let borrowed =
            r#"{"id":1,"name":"A","email":"a@x","lastLogin":"2023-01-03T11:24:25.460Z"}"#;
        let escaped =
            r#"{"id":1,"name":"A","email":"a@x","lastLogin":"2023-01-03T11:24:25.460\u005A"}"#;
        let offset =
            r#"{"id":1,"name":"A","email":"a@x","lastLogin":"2023-01-03T12:24:25.460+01:00"}"#;
        for json in [borrowed, escaped, offset] {
            assert_eq!(at(json).unwrap(), Some(expected), "{json}");
        }
        let value: serde_json::Value = serde_json::from_str(borrowed).unwrap();
        let owned: MakeUser = serde_json::from_value(value).unwrap();
        assert_eq!(owned.last_login, Some(expected));
        for wrong in ["4242", "true", "{}", "[]", "\"yesterday\""] {
            let json = format!(r#"{{"id":1,"name":"A","email":"a@x","lastLogin":{wrong}}}"#);
            assert!(at(&json).is_err(), "{json}");
        }
    }
}
