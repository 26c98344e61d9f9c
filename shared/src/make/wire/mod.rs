//! Make's JSON, as the endpoints the sync reads return it.
//!
//! Field names follow Make's camelCase. Where the shape is inferred rather than documented
//! (`lastLogin` on `GET /users`), the field is required to be present, so a different real
//! shape fails loudly as a protocol error naming the endpoint instead of being read as "never
//! logged in".
//!
//! This file decodes an answer and words what does not read; the rows live apart by endpoint
//! family ([`organizations`], [`members`]), as do the [`fields`]' rules and the [`page`] reader.

mod fields;
mod members;
mod organizations;
mod page;

pub use members::{
    MakeUser, MemberResponse, OrganizationMember, OrganizationRole, RoleResponse, Team,
    TeamMemberRole,
};
pub use organizations::{
    AuthUser, AuthUserResponse, AuthorizationResponse, OrganizationListing, OrganizationResponse,
    OrganizationSummary,
};
pub use page::ListPage;
use page::ListPageSeed;

use super::error::{ListBound, MakeError};
use serde::de::DeserializeOwned;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

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
}
