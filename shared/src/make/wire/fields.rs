//! The rules a field of any row keeps: text within [`MAX_TEXT_BYTES`] ([`BoundedText`]), ids
//! above 0, timestamps present even when null. Apart from the rows so that each rule is written
//! once.

use chrono::{DateTime, Utc};
use serde::de::Visitor;
use serde::{Deserialize, Deserializer};
use std::fmt;

/// A string from Make, refused past [`MAX_TEXT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct BoundedText(#[serde(deserialize_with = "bounded_text")] pub String);

/// The longest name, email or role name read from Make, in bytes. Make's own are far
/// shorter; a longer one is a hostile host's, and would make the user's item and its event too
/// large for the events bus (256 KB) and block the stream it shares with other tenants.
pub const MAX_TEXT_BYTES: usize = 1024;

pub(super) fn bounded_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
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
pub(super) fn bounded_text_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<BoundedText>::deserialize(deserializer)?.map(|text| text.0))
}

/// A user id: Make's start at 1. Id 0 is a hostile host's, and would land on the key the
/// store keeps a connection's write guard under.
pub(super) fn positive_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let id = u64::deserialize(deserializer)?;
    if id == 0 {
        return Err(serde::de::Error::custom("not a Make id (0)"));
    }
    Ok(id)
}

pub(super) fn required_timestamp<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
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

/// A count that only checks something else (a member's team counts): a number that fits in
/// `u32`, and anything else — past it, negative, a fraction, text, a list — as no count,
/// skipped without being built, so that an odd count costs the sync nothing but the check.
pub(super) fn count_or_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    deserializer.deserialize_any(CountOrNone)
}

struct CountOrNone;

impl<'de> serde::de::Visitor<'de> for CountOrNone {
    type Value = Option<u32>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a count")
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

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::make::wire::{decode_page, MakeUser, OrganizationMember};

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
