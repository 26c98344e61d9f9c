//! DynamoDB items to and from the domain's JSON form.
//!
//! Records are stored as native attributes (strings, numbers, maps), named as their JSON
//! fields are (`userId`, `lastLogin`, …), so that anyone reading the table sees the same
//! names as in docs/data.md. Absent optional fields are left out rather than stored as NULL.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// An object's fields as attributes. Anything but an object gives an empty item.
pub(crate) fn to_item(value: Value) -> Item {
    match value {
        Value::Object(fields) => fields
            .into_iter()
            .filter_map(|(name, value)| to_attribute(value).map(|a| (name, a)))
            .collect(),
        _ => Item::new(),
    }
}

fn to_attribute(value: Value) -> Option<AttributeValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(values) => {
            AttributeValue::L(values.into_iter().filter_map(to_attribute).collect())
        }
        Value::Object(fields) => AttributeValue::M(to_item(Value::Object(fields))),
    })
}

pub(crate) fn from_item(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, attribute)| (name.clone(), from_attribute(attribute)))
            .collect::<Map<String, Value>>(),
    )
}

fn from_attribute(attribute: &AttributeValue) -> Value {
    match attribute {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => parse_number(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(values) => Value::Array(values.iter().map(from_attribute).collect()),
        AttributeValue::M(fields) => from_item(fields),
        // NULL, sets and binary are never written by makesync.
        _ => Value::Null,
    }
}

fn parse_number(text: &str) -> Value {
    if let Ok(n) = text.parse::<u64>() {
        return Value::Number(n.into());
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub(crate) fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip_without_their_nulls() {
        let value = json!({
            "userId": 42, "name": "Ada", "lastLogin": null, "active": true,
            "error": {"kind": "auth", "message": "m"}, "share": 0.5, "delta": -3
        });
        let item = to_item(value.clone());
        assert!(!item.contains_key("lastLogin"));
        assert_eq!(item["userId"], AttributeValue::N("42".into()));
        let mut expected = value;
        expected.as_object_mut().unwrap().remove("lastLogin");
        assert_eq!(from_item(&item), expected);
    }
}
