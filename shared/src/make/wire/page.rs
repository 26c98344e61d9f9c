//! A page of a list, read in one pass: its rows up to a bound while they are read, and the `pg`
//! echo for its limit alone, everything else in it skipped unbuilt.

use crate::make::paging::PageEcho;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

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
    pub(super) collection: &'a str,
    pub(super) max_rows: usize,
    pub(super) over_bound: &'a Cell<bool>,
    pub(super) rows: PhantomData<T>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::make::error::{ListBound, MakeError};
    use crate::make::wire::{decode_page, MakeUser};

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
}
