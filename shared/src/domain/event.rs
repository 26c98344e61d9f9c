//! What an event is, whatever carries it: its type, detail and time, and how much of a person
//! it carries.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The `source` of every event.
pub const SOURCE: &str = "makesync";

/// What a user event carries: everything (`full`), or only ids and what changed (`ids`: no
/// name or email — for subscribers that need not hold personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventDetail {
    #[default]
    Full,
    Ids,
}

impl EventDetail {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "full" => Some(EventDetail::Full),
            "ids" => Some(EventDetail::Ids),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventDetail::Full => "full",
            EventDetail::Ids => "ids",
        }
    }
}

/// The event that announces a connection's first sync, and its first success after failures.
pub const CONNECTION_SYNCED: &str = "Make connection synced";

/// One change of a table's item (users or connections), as the table's stream reports it: the item before and
/// after (absent when it did not exist), in DynamoDB's attribute names.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// The stream record's sequence number: what a failure reports back.
    pub sequence: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub at: DateTime<Utc>,
}

/// An event to put on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub detail_type: &'static str,
    pub detail: Value,
    pub time: DateTime<Utc>,
}
