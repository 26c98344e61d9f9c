//! Announcing what changed in an organization: an event per user added, removed or changed,
//! made from the changes the users table reports (its stream), so that a change that was
//! written is announced even if the worker that wrote it died right after.
//!
//! A connection's first sync — no user stored before — is announced by one `Make connection
//! synced` event with the number of users, not by one event per user: the claim that creates
//! the connection's guard item carries that number, and its users carry `firstSync`. Later
//! runs announce each user, whatever their number. A change of last login alone is not
//! announced (it changes daily for every active user; it is in the table). Items deleted by a
//! purge on disconnect are not Make's changes and are not announced either. The connections
//! table's stream comes through here too: its items make the [`crate::lifecycle`] events.

use crate::connection::{Connection, ConnectionId};
pub use crate::domain::event::{ChangeEvent, EventDetail, SOURCE};
use crate::ports::ConnectionStore;
pub use crate::ports::{EventError, EventPublisher};
use crate::user::UserStatus;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const USER_ADDED: &str = "Make user added";
pub const USER_REMOVED: &str = "Make user removed";
pub const USER_CHANGED: &str = "Make user changed";
pub use crate::domain::event::{ItemChange, CONNECTION_SYNCED};
/// Events put per call (EventBridge's `PutEvents` takes at most 10).
const PUBLISH_BATCH: usize = 10;
/// EventBridge takes at most 256 KB per `PutEvents` request, its entries added up; a batch is
/// kept under this, with room for each entry's source, type and time.
const PUBLISH_BATCH_BYTES: usize = 240 * 1024;
/// A string of an event's detail longer than this is cut (with "…"): one oversized value —
/// whatever let it in — cannot make its event, and every event after it in the stream,
/// fail to publish.
const MAX_DETAIL_STRING_BYTES: usize = 1024;

/// The fields of a user item an event reports.
struct UserImage<'a>(&'a Value);

impl UserImage<'_> {
    fn text(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    fn status(&self) -> Option<UserStatus> {
        self.text("status").and_then(UserStatus::parse)
    }

    fn removed(&self) -> bool {
        self.status() == Some(UserStatus::Removed)
    }

    /// What a change event compares: role, status, invitation, team roles, and — when
    /// events carry them — name and email.
    fn compared(&self, detail: EventDetail) -> Vec<Value> {
        let mut fields = vec!["roleId", "roleName", "status", "invitation", "teams"];
        if detail == EventDetail::Full {
            fields.extend(["name", "email"]);
        }
        fields
            .into_iter()
            .map(|field| self.0.get(field).cloned().unwrap_or(Value::Null))
            .collect()
    }

    fn membership(&self) -> Value {
        json!({
            "roleId": self.0.get("roleId"),
            "role": self.0.get("roleName"),
            "roleIdentifier": self.0.get("roleIdentifier"),
            "roleManagementType": self.0.get("roleManagementType"),
            "status": self.0.get("status"),
            "invitation": self.0.get("invitation"),
            // `[{teamId, teamName, roleId, roleName}]`; absent when team access was not read.
            "teams": self.0.get("teams"),
        })
    }
}

fn number(value: &Value, field: &str) -> Option<u64> {
    let value = value.get(field)?;
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// The connection an item belongs to, when it belongs to one (the users table also holds
/// each organization's sync lease, under a key no connection id can have).
pub fn connection_of(change: &ItemChange) -> Result<Option<ConnectionId>, EventError> {
    let image = change.new.as_ref().or(change.old.as_ref());
    let Some(id) = image
        .and_then(|i| i.get("connectionId"))
        .and_then(Value::as_str)
    else {
        return Err(EventError::Unreadable {
            sequence: change.sequence.clone(),
            detail: "the item has no connectionId".into(),
        });
    };
    Ok(ConnectionId::parse(id).ok())
}

/// The event a change makes, if any. `connection` is the item's connection as stored.
pub fn event_for(
    change: &ItemChange,
    connection: Option<&Connection>,
    carry: EventDetail,
) -> Result<Option<ChangeEvent>, EventError> {
    let unreadable = |detail: &str| EventError::Unreadable {
        sequence: change.sequence.clone(),
        detail: detail.to_string(),
    };
    let Some(new) = &change.new else {
        return Ok(None);
    };
    let Some(user_id) = number(new, "userId") else {
        return Err(unreadable("the item has no numeric userId"));
    };
    let context = json!({
        "tenantId": connection.map(|c| c.tenant_id.clone()),
        "connectionId": new.get("connectionId"),
        "host": connection.map(|c| c.host.to_string()),
        "organizationId": connection.map(|c| c.organization_id.get()),
        "runId": new.get("runId"),
        "time": change.at,
    });
    if user_id == 0 {
        // The guard item: a first sync claims it (creates it, or — when a disconnect closed
        // the users before any was written — sets its count on it), which announces the sync.
        let claimed_before = change
            .old
            .as_ref()
            .and_then(|old| number(old, "firstSyncUsers"));
        return Ok(match (claimed_before, number(new, "firstSyncUsers")) {
            (None, Some(users)) => Some(ChangeEvent {
                detail_type: CONNECTION_SYNCED,
                detail: merged(context, json!({ "users": users })),
                time: change.at,
            }),
            _ => None,
        });
    }
    let after = UserImage(new);
    if after.status().is_none() {
        return Err(unreadable("the user item has no known status"));
    }
    let user = match carry {
        EventDetail::Full => json!({
            "userId": user_id,
            "email": after.text("email"),
            "name": after.text("name"),
        }),
        EventDetail::Ids => json!({ "userId": user_id }),
    };
    let (detail_type, membership) = match membership_change(change, &after, carry) {
        Some(MembershipChange::Added) => (USER_ADDED, after.membership()),
        Some(MembershipChange::Removed) => (USER_REMOVED, after.membership()),
        Some(MembershipChange::Changed(before)) => (
            USER_CHANGED,
            json!({ "before": before.membership(), "after": after.membership() }),
        ),
        None => return Ok(None),
    };
    Ok(Some(ChangeEvent {
        detail_type,
        detail: merged(merged(context, user), membership),
        time: change.at,
    }))
}

/// What a write did to a user's membership, as an event tells it.
enum MembershipChange<'a> {
    Added,
    Removed,
    /// Still a member, with a field the events compare changed; the image before.
    Changed(UserImage<'a>),
}

/// `None` for a write no event announces: a first sync's users (the sync announces itself),
/// a user already removed, a change of fields the events do not compare.
fn membership_change<'a>(
    change: &'a ItemChange,
    after: &UserImage<'_>,
    carry: EventDetail,
) -> Option<MembershipChange<'a>> {
    match &change.old {
        None if after.0.get("firstSync").and_then(Value::as_bool) == Some(true) => None,
        None if after.removed() => None,
        None => Some(MembershipChange::Added),
        Some(old) => {
            let before = UserImage(old);
            match (before.removed(), after.removed()) {
                (true, false) => Some(MembershipChange::Added),
                (false, true) => Some(MembershipChange::Removed),
                (true, true) => None,
                (false, false) if before.compared(carry) != after.compared(carry) => {
                    Some(MembershipChange::Changed(before))
                }
                (false, false) => None,
            }
        }
    }
}

/// `detail` with the fields of `extra` added.
fn merged(mut detail: Value, extra: Value) -> Value {
    if let (Some(detail), Some(extra)) = (detail.as_object_mut(), extra.as_object()) {
        detail.extend(extra.clone());
    }
    detail
}

/// Turns a batch of stream changes into events and puts them on the bus, in order.
#[derive(Clone)]
pub struct ChangeAnnouncer {
    connections: Arc<dyn ConnectionStore>,
    publisher: Arc<dyn EventPublisher>,
    detail: EventDetail,
}

impl ChangeAnnouncer {
    pub fn new(connections: Arc<dyn ConnectionStore>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self {
            connections,
            publisher,
            detail: EventDetail::Full,
        }
    }

    /// What user events carry (see [`EventDetail`]).
    pub fn with_detail(mut self, detail: EventDetail) -> Self {
        self.detail = detail;
        self
    }

    /// Announces the changes. On a failure, the sequence number of the first change not
    /// announced: the stream hands it and the ones after it over again (events before it
    /// may then go out twice — at least once, never lost).
    pub async fn announce(&self, changes: &[ItemChange]) -> Result<(), (String, EventError)> {
        let mut connections: HashMap<ConnectionId, Option<Connection>> = HashMap::new();
        let mut pending: Vec<(String, ChangeEvent)> = Vec::new();
        for change in changes {
            if crate::lifecycle::is_connection_item(change) {
                match crate::lifecycle::lifecycle_events(change) {
                    Ok(events) => pending.extend(
                        events
                            .into_iter()
                            .map(|event| (change.sequence.clone(), event)),
                    ),
                    Err(error) => {
                        self.publish(&pending).await?;
                        return Err((change.sequence.clone(), error));
                    }
                }
                continue;
            }
            let made = async {
                let Some(id) = connection_of(change)? else {
                    return Ok(None);
                };
                if !connections.contains_key(&id) {
                    let stored = self.connections.get_connection(&id).await?;
                    connections.insert(id.clone(), stored);
                }
                event_for(change, connections[&id].as_ref(), self.detail)
            };
            match made.await {
                Ok(Some(event)) => pending.push((change.sequence.clone(), event)),
                Ok(None) => {}
                Err(error) => {
                    // What came before goes out; this one and the rest come back.
                    self.publish(&pending).await?;
                    return Err((change.sequence.clone(), error));
                }
            }
        }
        self.publish(&pending).await
    }

    async fn publish(&self, events: &[(String, ChangeEvent)]) -> Result<(), (String, EventError)> {
        let events: Vec<(String, ChangeEvent)> = events
            .iter()
            .map(|(sequence, event)| (sequence.clone(), bounded(event)))
            .collect();
        for chunk in batches(&events) {
            let batch: Vec<ChangeEvent> = chunk.iter().map(|(_, e)| e.clone()).collect();
            let first = chunk[0].0.clone();
            let taken = self
                .publisher
                .publish(&batch)
                .await
                .map_err(|e| (first.clone(), e))?;
            if let Some(position) = taken.iter().position(|ok| !ok) {
                return Err((
                    chunk[position].0.clone(),
                    EventError::Publish(format!(
                        "{} of {} events refused",
                        taken.iter().filter(|ok| !**ok).count(),
                        taken.len()
                    )),
                ));
            }
        }
        Ok(())
    }
}

/// `events` (each [`bounded`] already) in batches of at most [`PUBLISH_BATCH`] events and
/// [`PUBLISH_BATCH_BYTES`].
fn batches(events: &[(String, ChangeEvent)]) -> Vec<&[(String, ChangeEvent)]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, (_, event)) in events.iter().enumerate() {
        let size = entry_bytes(event);
        let full = index - start == PUBLISH_BATCH || bytes + size > PUBLISH_BATCH_BYTES;
        if index > start && full {
            batches.push(&events[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        batches.push(&events[start..]);
    }
    batches
}

/// About what an entry costs of a `PutEvents` request: its detail, type, source and time.
fn entry_bytes(event: &ChangeEvent) -> usize {
    event.detail.to_string().len() + event.detail_type.len() + 64
}

/// The most one event may take of a `PutEvents` request: what its batch holds, less room
/// for its type, source and time. Past it, its team roles are left out (see [`bounded`]).
const MAX_EVENT_BYTES: usize = PUBLISH_BATCH_BYTES - 1024;

/// Said in place of team roles an event cannot carry.
const TEAMS_LEFT_OUT: &str =
    "left out: too many to announce — read the user's teams with the connect function's users action";

/// The event with every string of its detail cut to [`MAX_DETAIL_STRING_BYTES`]; one still
/// larger than [`MAX_EVENT_BYTES`] (a member in hundreds of teams) goes without its team
/// roles, which it says, rather than fail its batch and hold back the events after it —
/// another tenant's among them.
fn bounded(event: &ChangeEvent) -> ChangeEvent {
    fn cut(value: &mut Value) {
        match value {
            Value::String(text) if text.len() > MAX_DETAIL_STRING_BYTES => {
                let mut end = MAX_DETAIL_STRING_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
            Value::Array(items) => items.iter_mut().for_each(cut),
            Value::Object(fields) => fields.values_mut().for_each(cut),
            _ => {}
        }
    }
    fn leave_out_teams(value: &mut Value) {
        if let Value::Object(fields) = value {
            if fields.contains_key("teams") {
                fields.insert("teams".into(), Value::String(TEAMS_LEFT_OUT.into()));
            }
            fields.values_mut().for_each(leave_out_teams);
        }
    }
    let mut event = event.clone();
    cut(&mut event.detail);
    if entry_bytes(&event) > MAX_EVENT_BYTES {
        leave_out_teams(&mut event.detail);
        event.detail["teamsLeftOut"] = Value::Bool(true);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// F14: an oversized value cannot make a `PutEvents` request too large: it is cut, and
    /// batches stay under EventBridge's 256 KB whatever their events weigh.
    #[test]
    fn batches_stay_under_the_bus_s_request_size() {
        let event = |name: String| {
            (
                "1".to_string(),
                ChangeEvent {
                    detail_type: "Make user added",
                    detail: serde_json::json!({"connectionId": "c", "after": {"name": name}}),
                    time: Utc::now(),
                },
            )
        };
        let huge = bounded(&event("N".repeat(300_000)).1);
        assert!(entry_bytes(&huge) < 2_000, "cut to its bound");
        // Each about 40 KB, every string within its bound: six to a request, not ten.
        let heavy = |_| {
            let mut e = event(String::new());
            e.1.detail["roles"] = serde_json::json!(vec!["M".repeat(1000); 40]);
            e
        };
        let events: Vec<_> = (0..25).map(heavy).collect();
        assert!(batches(&events).iter().all(|b| b.len() <= 6));
        let sizes: Vec<usize> = batches(&events)
            .iter()
            .map(|b| b.iter().map(|(_, e)| entry_bytes(&bounded(e))).sum())
            .collect();
        assert_eq!(batches(&events).iter().map(|b| b.len()).sum::<usize>(), 25);
        assert!(sizes.iter().all(|s| *s <= PUBLISH_BATCH_BYTES), "{sizes:?}");
        let small: Vec<_> = (0..25).map(|_| event("a".into())).collect();
        assert_eq!(
            batches(&small).iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
    }

    fn change(old: Option<Value>, new: Option<Value>) -> ItemChange {
        ItemChange {
            sequence: "1".into(),
            old,
            new,
            at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn user(status: &str, role: u32) -> Value {
        json!({"connectionId": "c-1", "userId": 7, "name": "Zoë", "email": "z@example.com",
               "roleId": role, "roleName": "Member", "status": status, "runId": "r-1",
               "lastLogin": "2026-11-01T00:00:00Z"})
    }

    fn kind(change: &ItemChange) -> Option<&'static str> {
        event_for(change, None, EventDetail::Full)
            .unwrap()
            .map(|e| e.detail_type)
    }

    #[test]
    fn each_change_of_an_item_makes_its_event_or_none() {
        assert_eq!(
            kind(&change(None, Some(user("active", 13)))),
            Some(USER_ADDED)
        );
        assert_eq!(
            kind(&change(Some(user("removed", 13)), Some(user("active", 13)))),
            Some(USER_ADDED)
        );
        assert_eq!(
            kind(&change(Some(user("active", 13)), Some(user("removed", 13)))),
            Some(USER_REMOVED)
        );
        assert_eq!(
            kind(&change(Some(user("active", 13)), Some(user("active", 12)))),
            Some(USER_CHANGED)
        );
        let mut logged_in = user("active", 13);
        logged_in["lastLogin"] = json!("2026-11-23T09:00:00Z");
        assert_eq!(
            kind(&change(Some(user("active", 13)), Some(logged_in))),
            None
        );
        assert_eq!(
            kind(&change(Some(user("active", 13)), None)),
            None,
            "an erasure's deletion"
        );
        assert_eq!(
            kind(&change(Some(user("removed", 13)), None)),
            None,
            "the users table's TTL deleting a removed user after its retention"
        );
        let mut first = user("active", 13);
        first["firstSync"] = json!(true);
        assert_eq!(kind(&change(None, Some(first))), None);
        let guard =
            json!({"connectionId": "c-1", "userId": 0, "firstSyncUsers": 36, "runId": "r-1"});
        let synced = event_for(&change(None, Some(guard.clone())), None, EventDetail::Full)
            .unwrap()
            .unwrap();
        assert_eq!(synced.detail_type, CONNECTION_SYNCED);
        assert_eq!(synced.detail["users"], 36);
        assert_eq!(
            kind(&change(Some(guard.clone()), Some(guard.clone()))),
            None
        );
        // A first sync after a disconnect that closed the users before any was written: the
        // guard was there (its close count), the sync's claim is announced all the same.
        let closed = json!({"connectionId": "c-1", "userId": 0, "userCloses": 1});
        let mut claimed = guard.clone();
        claimed["userCloses"] = json!(1);
        assert_eq!(
            kind(&change(Some(closed), Some(claimed))),
            Some(CONNECTION_SYNCED)
        );
        // A later sync writing the guard again announces nothing.
        let mut later = guard.clone();
        later["usersWrittenBy"] = json!(2);
        assert_eq!(kind(&change(Some(guard), Some(later))), None);
    }

    /// A team role granted, changed or revoked is a `Make user changed` whose `before` and
    /// `after` carry the member's team roles.
    #[test]
    fn a_team_role_change_is_a_user_changed_event_with_the_teams_before_and_after() {
        let in_team = |role: u32, name: &str| {
            let mut image = user("active", 13);
            image["teams"] =
                json!([{"teamId": 10011, "teamName": "Finance", "roleId": role, "roleName": name}]);
            image
        };
        let mut in_none = user("active", 13);
        in_none["teams"] = json!([]);
        for (before, after) in [
            (in_none.clone(), in_team(3, "Team Member")),
            (in_team(3, "Team Member"), in_team(1, "Team Admin")),
            (in_team(1, "Team Admin"), in_none.clone()),
        ] {
            let event = event_for(
                &change(Some(before.clone()), Some(after.clone())),
                None,
                EventDetail::Ids,
            )
            .unwrap()
            .unwrap();
            assert_eq!(event.detail_type, USER_CHANGED);
            assert_eq!(event.detail["before"]["teams"], before["teams"]);
            assert_eq!(event.detail["after"]["teams"], after["teams"]);
        }
        assert_eq!(
            kind(&change(Some(in_none.clone()), Some(in_none))),
            None,
            "teams unchanged: no event"
        );
    }

    #[test]
    fn a_change_event_has_the_fields_before_and_after() {
        let event = event_for(
            &change(Some(user("invited", 13)), Some(user("active", 12))),
            None,
            EventDetail::Full,
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.detail["before"]["status"], "invited");
        assert_eq!(event.detail["after"]["status"], "active");
        assert_eq!(event.detail["after"]["roleId"], 12);
        assert_eq!(event.detail["userId"], 7);
        assert_eq!(event.detail["runId"], "r-1");
    }

    /// `ids` events name the user by id and say what changed in role and status; no name or
    /// email, and a change of name or email alone is not announced.
    #[test]
    fn ids_events_carry_no_name_or_email() {
        let ids = |change: &ItemChange| event_for(change, None, EventDetail::Ids).unwrap();
        for (before, after, kind) in [
            (None, user("active", 13), USER_ADDED),
            (Some(user("active", 13)), user("removed", 13), USER_REMOVED),
            (Some(user("invited", 13)), user("active", 12), USER_CHANGED),
        ] {
            let event = ids(&change(before, Some(after))).unwrap();
            assert_eq!(event.detail_type, kind);
            assert_eq!(event.detail["userId"], 7);
            let text = event.detail.to_string();
            assert!(
                !text.contains("Zoë") && !text.contains("z@example.com"),
                "{text}"
            );
            assert!(event.detail.get("name").is_none() && event.detail.get("email").is_none());
        }
        let changed = ids(&change(Some(user("invited", 13)), Some(user("active", 12)))).unwrap();
        assert_eq!(changed.detail["before"]["status"], "invited");
        assert_eq!(changed.detail["after"]["roleId"], 12);
        let mut renamed = user("active", 13);
        renamed["name"] = json!("Zoë Renamed");
        assert_eq!(
            ids(&change(Some(user("active", 13)), Some(renamed.clone()))),
            None
        );
        assert_eq!(
            kind(&change(Some(user("active", 13)), Some(renamed))),
            Some(USER_CHANGED),
            "full events announce it"
        );
    }

    #[test]
    fn an_item_that_cannot_be_read_is_an_error_naming_its_record() {
        let error = event_for(
            &change(None, Some(json!({"connectionId": "c-1"}))),
            None,
            EventDetail::Full,
        )
        .unwrap_err();
        assert!(error.to_string().contains("stream record 1"), "{error}");
    }
}
