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
    #[error("the sync could not start: {0}")]
    Setup(String),
}

impl SyncError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SyncError::Make(e) => e.kind(),
            SyncError::Store(e) => e.kind(),
            SyncError::Secret(e) => e.kind(),
            SyncError::Host(_) => ErrorKind::InvalidInput,
            SyncError::Inconsistent { .. } => ErrorKind::Transient,
            SyncError::Setup(_) => ErrorKind::Storage,
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
    }
}
