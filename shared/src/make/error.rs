//! What can go wrong talking to Make, classified.

use crate::error::{ErrorKind, ErrorReport};
use crate::host::HostError;
use std::time::Duration;
use thiserror::Error;

/// The scopes a makesync token needs, named in every permission error.
pub const REQUIRED_SCOPES: &str = "organizations:read and user:read";

/// Every variant about a request names its endpoint (`GET /users`); none carries the token:
/// messages from Make's error bodies are redacted before they are put here.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MakeError {
    #[error("Make rejected the API token ({endpoint} answered 401): it is invalid, expired or revoked — create a new token with the scopes {REQUIRED_SCOPES} and reconnect")]
    InvalidToken { endpoint: String },

    #[error("Make denied access ({endpoint} answered 403{detail}): the token lacks scope {scope}{access} — create a token with the scopes {REQUIRED_SCOPES} as a user who is a member of the organization", detail = detail_suffix(make_message), access = no_access_suffix(organization))]
    Forbidden {
        endpoint: String,
        scope: &'static str,
        organization: Option<String>,
        make_message: Option<String>,
    },

    /// `GET /admin/organizations` refused: the token lacks `admin:read`, or its user is not an
    /// administrator of the White Label instance (Make answers 403 to a regular user holding
    /// the scope).
    #[error("Make denied {endpoint} on {host}: only an administrator of a Make White Label instance may list its organizations, with a token holding the scope admin:read — create one as an instance administrator (with admin:read, organizations:read and user:read), or connect organizations one by one")]
    InstanceAccessDenied { endpoint: String, host: String },

    /// A White Label administrator's token (`admin:read`) refused for an organization's data:
    /// whether Make lets it read members is undocumented, and here it does not.
    #[error("Make refused the White Label instance administrator's token for organization {organization} ({endpoint} answered {status}): an instance token may list the instance but not read this organization's users — connect this organization with a token of one of its members (scopes {REQUIRED_SCOPES})")]
    InstanceTokenRefused {
        endpoint: String,
        organization: String,
        status: u16,
    },

    /// A 401 for a token Make has accepted for another call: Make answers 401 as well as 403
    /// when a token lacks an endpoint's scope.
    #[error("Make refused {endpoint} with 401 although it accepts the token for other calls: the token lacks scope {scope} — create a token with the scopes {REQUIRED_SCOPES} and reconnect")]
    MissingScope {
        endpoint: String,
        scope: &'static str,
    },

    #[error("organization {organization} was not found on {host} ({endpoint} answered 404) — check the organization ID and that {host} is the organization's region")]
    OrganizationNotFound {
        endpoint: String,
        host: String,
        organization: String,
    },

    #[error("organization {organization} belongs to the zone {zone}, not {host} — connect it with host {zone}")]
    WrongZone {
        host: String,
        zone: String,
        organization: String,
    },

    #[error("Make's rate limit for this organization did not clear in time ({endpoint} answered {status}{after}) — its API budget is shared with its own scenarios; the sync will be tried again later", after = retry_after_suffix(retry_after))]
    RateLimited {
        endpoint: String,
        /// 429, or 418, which Make also uses for a spent rate limit.
        status: u16,
        retry_after: Option<Duration>,
    },

    #[error("Make said the organization's rate-limit window resets in {} s, longer than a request may wait ({} s) — {endpoint} was not sent; it will be tried again at a later run", wait.as_secs(), allowed.as_secs())]
    WaitTooLong {
        endpoint: String,
        wait: Duration,
        allowed: Duration,
    },

    #[error("Make is having trouble ({endpoint} answered {status} after {attempts} attempts) — the sync will be tried again later")]
    Server {
        endpoint: String,
        status: u16,
        attempts: u32,
    },

    #[error("could not reach Make ({endpoint}: {detail}, after {attempts} attempts) — the sync will be tried again later")]
    Network {
        endpoint: String,
        detail: String,
        attempts: u32,
    },

    #[error("Make answered {endpoint} with a body makesync cannot read ({detail}) — no user was changed; if this persists, Make's API may have changed")]
    Protocol { endpoint: String, detail: String },

    /// A list moved between two of its pages (the walk's anchor was not where it should be,
    /// or a page brought only rows already read): the read is not taken for complete.
    #[error("the list changed while {endpoint} was being read ({detail}) — no user was changed; the sync will be tried again")]
    ListChanged { endpoint: String, detail: String },

    #[error("paging through {endpoint} failed: {detail} — no user was changed")]
    Paging { endpoint: String, detail: String },

    /// A list passed the bound it is read with, found while it was read: its answers are not
    /// kept past it.
    #[error("{endpoint} holds more than {bound}, the most makesync reads {of} in this function's memory — no user was changed; if the organization really is that large, give the function more memory (its MemorySize raises the bound)", of = bound.of())]
    ListTooLong { endpoint: String, bound: ListBound },

    /// The worker's memory is held by other syncs: this one's answers do not fit what is free.
    #[error("{endpoint} was not read: the function's memory is taken by other syncs — no user was changed; the sync will be tried again")]
    MemoryTaken { endpoint: String },

    #[error("the sync ran out of time: {endpoint} would need up to {} s (the wait before it and the request) but {} s are left — no user was changed; the sync will be tried again", needed.as_secs(), left.as_secs())]
    OutOfTime {
        endpoint: String,
        needed: Duration,
        left: Duration,
    },

    /// A host makesync may not call: refused before any request.
    #[error(transparent)]
    Host(#[from] HostError),

    #[error("Make refused {endpoint} with {status}{detail}", detail = detail_suffix(make_message))]
    Rejected {
        endpoint: String,
        status: u16,
        make_message: Option<String>,
    },
}

/// How far a list may grow while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListBound {
    /// Its rows, each id once.
    Rows(usize),
    /// The bytes that one sync's lists hold, together: their answers and their rows.
    Bytes(u64),
}

impl ListBound {
    /// What the bound is of.
    fn of(&self) -> &'static str {
        match self {
            ListBound::Rows(_) => "of one list",
            ListBound::Bytes(_) => "of one sync's lists",
        }
    }
}

impl std::fmt::Display for ListBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListBound::Rows(rows) => write!(f, "{rows} rows"),
            ListBound::Bytes(bytes) => write!(f, "{} MB", bytes.div_ceil(1024 * 1024)),
        }
    }
}

fn detail_suffix(message: &Option<String>) -> String {
    match message {
        Some(text) => format!(": \"{text}\""),
        None => String::new(),
    }
}

fn no_access_suffix(organization: &Option<String>) -> String {
    match organization {
        Some(id) => format!(" or its user has no access to organization {id}"),
        None => String::new(),
    }
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(", retry after {} s", after.as_secs()),
        None => String::new(),
    }
}

impl MakeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MakeError::InvalidToken { .. } => ErrorKind::Auth,
            MakeError::Forbidden { .. }
            | MakeError::MissingScope { .. }
            | MakeError::InstanceAccessDenied { .. }
            | MakeError::InstanceTokenRefused { .. } => ErrorKind::Permission,
            // Moved to another zone, the organization is not where the connection looks for it.
            MakeError::OrganizationNotFound { .. } | MakeError::WrongZone { .. } => {
                ErrorKind::NotFound
            }
            MakeError::RateLimited { .. } | MakeError::WaitTooLong { .. } => ErrorKind::RateLimited,
            MakeError::Server { .. }
            | MakeError::Network { .. }
            | MakeError::ListChanged { .. }
            | MakeError::MemoryTaken { .. }
            | MakeError::OutOfTime { .. } => ErrorKind::Transient,
            MakeError::Protocol { .. }
            | MakeError::Paging { .. }
            | MakeError::ListTooLong { .. } => ErrorKind::Protocol,
            MakeError::Rejected { .. } | MakeError::Host(_) => ErrorKind::InvalidInput,
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
    }
}
