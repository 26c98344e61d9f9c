use crate::error::{ErrorKind, ErrorReport};
use crate::host::HostError;
use crate::make::MakeError;
use crate::ports::{SecretError, StoreError};
use thiserror::Error;

/// Why a sync did not succeed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SyncError {
    #[error(transparent)]
    Make(#[from] MakeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("Make's member list and user list disagree ({detail}) after {attempts} attempts — no user was changed; the sync will be tried again")]
    Inconsistent { detail: String, attempts: u32 },
    #[error("Make's member list of organization {organization} names {listed} members but GET /users names {users} users; looking up the missing ones one by one would take more than MAKESYNC_MEMBER_LOOKUPS={allowed} requests — no user was changed; Make may cut this list for large organizations: raise MAKESYNC_MEMBER_LOOKUPS if the organization's rate budget allows")]
    MemberListIncomplete {
        organization: String,
        listed: usize,
        users: usize,
        allowed: u32,
    },
    #[error("the sync ran out of time before {step}: it needs about {} s and the invocation has {} s left — no user was changed; the sync will be tried again", needed.as_secs(), left.as_secs())]
    OutOfTime {
        step: String,
        needed: std::time::Duration,
        left: std::time::Duration,
    },
    #[error("the sync could not start: {0}")]
    Setup(String),
    #[error("connection {connection} names credential {credential}, which does not list it (or belongs to another tenant) — its token is not used; disconnect this connection and connect the organization again")]
    CredentialRefused {
        connection: String,
        credential: String,
    },
}

impl SyncError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SyncError::Make(e) => e.kind(),
            SyncError::Store(e) => e.kind(),
            SyncError::Secret(e) => e.kind(),
            SyncError::Host(_) => ErrorKind::InvalidInput,
            SyncError::Inconsistent { .. } => ErrorKind::Transient,
            SyncError::MemberListIncomplete { .. } => ErrorKind::Protocol,
            SyncError::OutOfTime { .. } => ErrorKind::Transient,
            SyncError::Setup(_) => ErrorKind::Storage,
            SyncError::CredentialRefused { .. } => ErrorKind::Permission,
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
    }
}
