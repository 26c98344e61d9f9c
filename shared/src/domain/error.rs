//! The categories every error in makesync falls into.
//!
//! Each library error enum maps itself onto one [`ErrorKind`]; callers decide on retries,
//! exit codes and what to record on a connection from the kind alone.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure happened, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The Make token is invalid, expired or revoked.
    Auth,
    /// The token lacks a scope or its user has no access to the organization.
    Permission,
    /// The organization (or connection) does not exist where we looked.
    NotFound,
    /// Make's per-organization rate limit did not clear in time.
    RateLimited,
    /// A passing failure: Make 5xx, timeouts, connection resets, store throttling.
    Transient,
    /// The input is wrong: host, organization id, message body, configuration.
    InvalidInput,
    /// Make answered with something we could not understand.
    Protocol,
    /// A newer sync already wrote this connection's users; this run's data is older.
    Stale,
    /// The store failed in a way that is not known to be passing.
    Storage,
}

impl ErrorKind {
    /// Whether the same work may succeed if tried again later without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Transient
                | ErrorKind::Protocol
                | ErrorKind::Storage
        )
    }

    /// Whether only the customer can make the work succeed: a new token (`auth`), a scope or
    /// an access granted in Make (`permission`), an organization that is gone or moved
    /// (`not_found`). Only these pause a connection; every other failure is tried again.
    pub fn needs_customer(self) -> bool {
        matches!(
            self,
            ErrorKind::Auth | ErrorKind::Permission | ErrorKind::NotFound
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Permission => "permission",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Transient => "transient",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Stale => "stale",
            ErrorKind::Storage => "storage",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorKind> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it is recorded and shown to a customer: its kind and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorReport {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            ErrorKind::Auth,
            ErrorKind::Permission,
            ErrorKind::NotFound,
            ErrorKind::RateLimited,
            ErrorKind::Transient,
            ErrorKind::InvalidInput,
            ErrorKind::Protocol,
            ErrorKind::Stale,
            ErrorKind::Storage,
        ] {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::parse("nonsense"), None);
    }

    #[test]
    fn only_passing_failures_are_retryable() {
        assert!(ErrorKind::Transient.is_retryable());
        assert!(ErrorKind::RateLimited.is_retryable());
        assert!(!ErrorKind::Auth.is_retryable());
        assert!(!ErrorKind::Permission.is_retryable());
        assert!(!ErrorKind::NotFound.is_retryable());
        assert!(!ErrorKind::InvalidInput.is_retryable());
    }

    #[test]
    fn only_what_the_customer_must_fix_needs_the_customer() {
        for kind in [ErrorKind::Auth, ErrorKind::Permission, ErrorKind::NotFound] {
            assert!(kind.needs_customer(), "{kind}");
        }
        for kind in [
            ErrorKind::RateLimited,
            ErrorKind::Transient,
            ErrorKind::InvalidInput,
            ErrorKind::Protocol,
            ErrorKind::Stale,
            ErrorKind::Storage,
        ] {
            assert!(!kind.needs_customer(), "{kind}");
        }
    }
}
