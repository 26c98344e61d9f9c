//! Announcing what happens to a connection, from the changes the connections table reports
//! (its stream), at state changes only — so an event costs nothing at any schedule, and one
//! that was written is announced even if the function that wrote it died right after:
//!
//! - `Make connection synced`: the first success after failed syncs, a resume or a reconnect
//!   between them included (the first sync of all is
//!   announced from the users it writes, by the users' events);
//! - `Make connection sync failed`: the first failure after a success (or after a resume);
//! - `Make connection paused`, `Make connection resumed`, `Make connection erased`.
//!
//! A run that changes no state (a success after a success, a failure after a failure, a lease
//! taken or given back) announces nothing.

use crate::domain::event::{ChangeEvent, ItemChange, CONNECTION_SYNCED};
use crate::error::ErrorReport;
use crate::ports::EventError;
use serde::Deserialize;
use serde_json::{json, Value};

pub const CONNECTION_SYNC_FAILED: &str = "Make connection sync failed";
pub const CONNECTION_PAUSED: &str = "Make connection paused";
pub const CONNECTION_RESUMED: &str = "Make connection resumed";
pub const CONNECTION_ERASED: &str = "Make connection erased";

/// Whether the item is a connection's, not a user's: every user item (and the users' guard
/// item) has a `userId`, no connection item has one.
pub fn is_connection_item(change: &ItemChange) -> bool {
    change
        .new
        .as_ref()
        .or(change.old.as_ref())
        .is_some_and(|image| image.get("userId").is_none() && image.get("status").is_some())
}

/// The fields of a connection item the events read; anything else is left alone.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConnectionImage {
    connection_id: String,
    tenant_id: String,
    host: String,
    organization_id: Option<u64>,
    status: String,
    status_reason: Option<ErrorReport>,
    consecutive_failures: u32,
    last_success_at: Option<String>,
    last_run_id: Option<String>,
    last_error: Option<ErrorReport>,
    user_count: Option<u32>,
    erased_users: Option<u64>,
}

/// The lifecycle events one change of a connection item makes (none for most).
pub fn lifecycle_events(change: &ItemChange) -> Result<Vec<ChangeEvent>, EventError> {
    let read = |image: &Option<Value>| -> Result<Option<ConnectionImage>, EventError> {
        image
            .as_ref()
            .map(|value| {
                serde_json::from_value(value.clone()).map_err(|e| EventError::Unreadable {
                    sequence: change.sequence.clone(),
                    detail: format!("the connection item does not read: {e}"),
                })
            })
            .transpose()
    };
    let (Some(old), Some(new)) = (read(&change.old)?, read(&change.new)?) else {
        // Created or deleted: a connect answers its creation itself.
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    let mut event = |detail_type: &'static str, extra: Value, run: bool| {
        let mut detail = json!({
            "tenantId": new.tenant_id,
            "connectionId": new.connection_id,
            "host": new.host,
            "organizationId": new.organization_id,
            "time": change.at,
        });
        if run {
            detail["runId"] = json!(new.last_run_id);
        }
        if let (Value::Object(detail), Value::Object(extra)) = (&mut detail, extra) {
            detail.extend(extra);
        }
        events.push(ChangeEvent {
            detail_type,
            detail,
            time: change.at,
        });
    };
    let succeeded = new.last_success_at.is_some() && new.last_success_at != old.last_success_at;
    // After failures: the last error stays until a success (a resume or a reconnect starts
    // the count afresh, not the error).
    let after_failures = old.consecutive_failures > 0 || old.last_error.is_some();
    if succeeded && after_failures && old.last_success_at.is_some() {
        event(CONNECTION_SYNCED, json!({"users": new.user_count}), true);
    }
    if old.consecutive_failures == 0 && new.consecutive_failures > 0 {
        let error = new.last_error.as_ref();
        event(
            CONNECTION_SYNC_FAILED,
            json!({"kind": error.map(|e| e.kind), "message": error.map(|e| &e.message)}),
            true,
        );
    }
    match (old.status.as_str(), new.status.as_str()) {
        ("paused", "paused") => {}
        (_, "paused") => event(
            CONNECTION_PAUSED,
            json!({"statusReason": new.status_reason}),
            true,
        ),
        ("paused", "active") => event(CONNECTION_RESUMED, json!({}), false),
        ("erasing", "erased") => event(
            CONNECTION_ERASED,
            json!({"erasedUsers": new.erased_users}),
            false,
        ),
        _ => {}
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn item(fields: Value) -> Value {
        let mut base = json!({"connectionId": "c-1", "tenantId": "t-1", "host": "eu1.make.com",
            "organizationId": 1001, "status": "active", "consecutiveFailures": 0,
            "lastSuccessAt": "2026-12-01T00:00:00Z", "lastRunId": "r-1", "userCount": 36});
        for (name, value) in fields.as_object().unwrap() {
            base[name] = value.clone();
        }
        base
    }

    fn types(old: Value, new: Value) -> Vec<&'static str> {
        let change = ItemChange {
            sequence: "1".into(),
            old: Some(item(old)),
            new: Some(item(new)),
            at: Utc::now(),
        };
        assert!(is_connection_item(&change));
        lifecycle_events(&change)
            .unwrap()
            .iter()
            .map(|e| e.detail_type)
            .collect()
    }

    #[test]
    fn only_state_changes_are_announced() {
        let failed = json!({"consecutiveFailures": 1, "lastRunId": "r-2",
            "lastError": {"kind": "transient", "message": "Make is having trouble"}});
        assert_eq!(
            types(json!({}), failed.clone()),
            vec![CONNECTION_SYNC_FAILED]
        );
        // A second failure, a success after a success, a lease: nothing.
        assert!(types(failed.clone(), json!({"consecutiveFailures": 2})).is_empty());
        assert!(types(json!({}), json!({"lastSuccessAt": "2026-12-02T00:00:00Z"})).is_empty());
        assert!(types(json!({}), json!({"leaseUntil": 1})).is_empty());
        assert_eq!(
            types(failed, json!({"lastSuccessAt": "2026-12-02T00:00:00Z"})),
            vec![CONNECTION_SYNCED]
        );
        // The first sync of all is announced from its users, not here.
        assert!(types(
            json!({"lastSuccessAt": null, "consecutiveFailures": 1}),
            json!({"lastSuccessAt": "2026-12-02T00:00:00Z"})
        )
        .is_empty());
        let paused = json!({"status": "paused", "consecutiveFailures": 5,
            "statusReason": {"kind": "auth", "message": "Make rejected the API token"}});
        assert_eq!(
            types(json!({"consecutiveFailures": 5}), paused.clone()),
            vec![CONNECTION_PAUSED]
        );
        // Resumed: the failures start afresh, but nothing synced yet; the first success after
        // it is one after failures (the last error stayed).
        assert_eq!(types(paused, json!({})), vec![CONNECTION_RESUMED]);
        let resumed =
            json!({"lastError": {"kind": "auth", "message": "Make rejected the API token"}});
        assert_eq!(
            types(resumed, json!({"lastSuccessAt": "2026-12-03T00:00:00Z"})),
            vec![CONNECTION_SYNCED]
        );
        assert_eq!(
            types(
                json!({"status": "erasing"}),
                json!({"status": "erased", "erasedUsers": 36})
            ),
            vec![CONNECTION_ERASED]
        );
        assert!(types(json!({}), json!({"status": "disconnected"})).is_empty());
    }

    #[test]
    fn a_user_item_is_not_a_connection_item() {
        let change = ItemChange {
            sequence: "1".into(),
            old: None,
            new: Some(json!({"connectionId": "c-1", "userId": 5, "status": "active"})),
            at: Utc::now(),
        };
        assert!(!is_connection_item(&change));
    }
}
