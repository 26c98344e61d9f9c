//! Strategies for the property tests: arbitrary JSON that resembles what makesync reads.

use proptest::prelude::*;

/// Any JSON value nested a few levels, whose object keys are drawn from `keys` (and one
/// stranger), so that near misses of the real shapes are generated, not only noise.
pub fn json(keys: &[&'static str]) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::json!("2023-01-03T11:24:25.460Z")),
        Just(serde_json::json!("eu1.make.com")),
    ];
    let mut keys = keys.to_vec();
    keys.push("unexpected");
    let key = prop::sample::select(keys);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..7).prop_map(|map| {
                serde_json::Value::Object(
                    map.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                )
            }),
        ]
    })
}
