//! Exit codes: one per kind of outcome, so scripts can tell "fix your input" from "try later"
//! from "sync it first". docs/cli.md has the same table.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success, or the reader of the output went away (`makesync users … \| head -1`) |
//! | 1 | unexpected: the store or an internal failure |
//! | 2 | usage: arguments, host, organization ID, token, a setting |
//! | 3 | Make refused the token: invalid, expired, or missing a scope or access |
//! | 4 | Make does not know the organization on that host |
//! | 5 | try again later: rate limit not cleared, Make unavailable, unreadable response |
//! | 6 | the local store holds nothing for that organization: sync it first |

use makesync::error::ErrorKind;
use std::fmt::Display;

pub const SUCCESS: u8 = 0;
pub const UNEXPECTED: u8 = 1;
pub const USAGE: u8 = 2;
pub const REFUSED: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const TRY_LATER: u8 = 5;
pub const NOT_STORED: u8 = 6;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Display) -> Self {
        let code = match kind {
            ErrorKind::InvalidInput => USAGE,
            ErrorKind::Auth | ErrorKind::Permission => REFUSED,
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::RateLimited | ErrorKind::Transient | ErrorKind::Protocol => TRY_LATER,
            ErrorKind::Stale | ErrorKind::Storage => UNEXPECTED,
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

    /// The store holds nothing for the organization asked about.
    pub fn not_stored(message: impl Display) -> Self {
        Self {
            code: NOT_STORED,
            message: message.to_string(),
        }
    }

    /// Writing to stdout failed. A closed pipe means the reader has all it wanted (`| head`):
    /// the command ends quietly with success. Any other write error is unexpected.
    pub fn output(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Self {
                code: SUCCESS,
                message: String::new(),
            };
        }
        Self::internal(format!("cannot write the output: {error}"))
    }

    /// Whether the command should end with success and print nothing more.
    pub fn is_quiet_success(&self) -> bool {
        self.code == SUCCESS
    }
}
