//! Exit codes: one per kind of failure, so scripts can tell "fix your input" from "try later".
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | store or internal failure |
//! | 2 | invalid input: host, organization ID, token, configuration, arguments |
//! | 3 | Make refused the token: invalid, or missing scope or access |
//! | 4 | organization not found |
//! | 5 | try again later: rate limit not cleared, Make unavailable, unreadable response |

use makesync::error::ErrorKind;
use std::fmt::Display;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Display) -> Self {
        let code = match kind {
            ErrorKind::InvalidInput => 2,
            ErrorKind::Auth | ErrorKind::Permission => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::RateLimited | ErrorKind::Transient | ErrorKind::Protocol => 5,
            ErrorKind::Stale | ErrorKind::Storage => 1,
        };
        Self {
            code,
            message: message.to_string(),
        }
    }

    pub fn input(message: impl Display) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn internal(message: impl Display) -> Self {
        Self::new(ErrorKind::Storage, message)
    }
}
