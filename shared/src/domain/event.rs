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

/// An event to put on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub detail_type: &'static str,
    pub detail: Value,
    pub time: DateTime<Utc>,
}
