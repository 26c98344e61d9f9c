//! Every refusal connect answers, with its kind and words that say what to do.

use crate::connection::{ConnectionId, ConnectionIdError, ConnectionStatus};
use crate::credential::CredentialId;
use crate::discover::DiscoveryError;
use crate::error::{ErrorKind, ErrorReport};
use crate::host::HostError;
use crate::make::MakeError;
use crate::organization::{OrganizationId, OrganizationIdError};
use crate::ports::{QueueError, SecretError, StoreError};
use crate::tenant::TenantIdError;
use crate::token::TokenError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Make(#[from] MakeError),
    /// Says nothing of the id, so that the answer is the same for every id a tenant does not
    /// hold, whether another tenant holds it or nobody does.
    #[error("this tenant has no connection with that connectionId — use the id the connect call returned, or connect the organization first")]
    UnknownConnection(ConnectionId),
    #[error("connection {id} is {status}{}", not_active_suffix(status, reason))]
    NotActive {
        id: ConnectionId,
        status: &'static str,
        reason: Option<String>,
    },
    #[error("connection {id} is {status}: its users were erased at the tenant's request, and it cannot be connected again — connect the organization as a new connection")]
    Erased {
        id: ConnectionId,
        status: &'static str,
    },
    #[error("connection {id} was changed by another request while this one was checked with Make (a connect or disconnect of the same connection); nothing was changed — read the connection and send the request again if it still applies")]
    Conflict { id: ConnectionId },
    #[error("connection {id} belongs to organization {existing} on {existing_host}; it cannot be pointed at another organization — disconnect it and connect the new organization as a new connection")]
    OrganizationChanged {
        id: ConnectionId,
        existing: OrganizationId,
        existing_host: String,
    },
    /// Says nothing of the id, like [`ConnectError::UnknownConnection`].
    #[error("this tenant has no credential with that credentialId — use the id the connect call returned")]
    UnknownCredential,
    #[error("the new token was not accepted for every organization of the credential, so the old one stays: {}", refusals.join("; "))]
    RotationRefused {
        kind: ErrorKind,
        refusals: Vec<String>,
    },
    #[error("the credential was changed by other requests while this one was written; nothing was changed — send the request again")]
    CredentialConflict,
    #[error("connection {id} uses the token of credential {credential} with other organizations — change it for all of them with {{\"action\": \"rotate\", \"credentialId\": \"{credential}\", \"token\"}}")]
    SharedToken {
        id: ConnectionId,
        credential: CredentialId,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Make was too slow for the time this invocation has: nothing was stored.
    #[error("Make did not answer in the time this request has ({endpoint} was not sent or not answered) — nothing was stored; send the request again")]
    MakeTooSlow { endpoint: String },
    /// Make's rate limit did not clear within what this invocation could wait.
    #[error("Make's rate limit for this organization did not clear in time ({endpoint}{}) — its API budget is shared with its own scenarios; nothing was stored — send the request again later", resets_in(wait))]
    MakeRateLimited {
        endpoint: String,
        wait: Option<std::time::Duration>,
    },
    /// Make answered 5xx or could not be reached, after the request's retries.
    #[error("Make is having trouble ({endpoint}: {detail}) — nothing was stored; send the request again later")]
    MakeUnavailable { endpoint: String, detail: String },
    #[error("the White Label instance could not be followed: {0}")]
    Instance(crate::instance::InstanceError),
}

fn resets_in(wait: &Option<std::time::Duration>) -> String {
    wait.map(|w| format!(", it resets in {} s", w.as_secs()))
        .unwrap_or_default()
}

/// Why the connection is not active and how it syncs again (a pause's reason says it already).
fn not_active_suffix(status: &str, reason: &Option<String>) -> String {
    let paused = status == ConnectionStatus::Paused.as_str();
    match reason {
        Some(reason) if paused => format!(" ({reason})"),
        None if paused => " — resume it with {\"action\": \"resume\"} once the cause is fixed in Make (or, with a new token, connect it again)".into(),
        Some(reason) => format!(" ({reason}) — connect it again with a token to resume syncing"),
        None => " — connect it again with a token to resume syncing".into(),
    }
}

impl ConnectError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::InvalidInput(_)
            | ConnectError::Host(_)
            | ConnectError::NotActive { .. }
            | ConnectError::Erased { .. }
            | ConnectError::OrganizationChanged { .. } => ErrorKind::InvalidInput,
            ConnectError::Conflict { .. } | ConnectError::CredentialConflict => {
                ErrorKind::Transient
            }
            ConnectError::UnknownCredential => ErrorKind::NotFound,
            ConnectError::RotationRefused { kind, .. } => *kind,
            ConnectError::SharedToken { .. } => ErrorKind::InvalidInput,
            ConnectError::Make(e) => e.kind(),
            ConnectError::UnknownConnection(_) => ErrorKind::NotFound,
            ConnectError::Store(e) => e.kind(),
            ConnectError::Secret(e) => e.kind(),
            ConnectError::Queue(_)
            | ConnectError::MakeTooSlow { .. }
            | ConnectError::MakeUnavailable { .. } => ErrorKind::Transient,
            ConnectError::MakeRateLimited { .. } => ErrorKind::RateLimited,
            ConnectError::Instance(e) => e.kind(),
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
    }

    /// Make's refusals that speak of a sync said as the caller of a request needs them.
    pub(crate) fn for_caller(self) -> Self {
        match self {
            ConnectError::Make(MakeError::OutOfTime { endpoint, .. }) => {
                ConnectError::MakeTooSlow { endpoint }
            }
            ConnectError::Make(MakeError::WaitTooLong { endpoint, wait, .. }) => {
                ConnectError::MakeRateLimited {
                    endpoint,
                    wait: Some(wait),
                }
            }
            ConnectError::Make(MakeError::RateLimited {
                endpoint,
                retry_after,
                ..
            }) => ConnectError::MakeRateLimited {
                endpoint,
                wait: retry_after,
            },
            ConnectError::Make(MakeError::Server {
                endpoint,
                status,
                attempts,
            }) => ConnectError::MakeUnavailable {
                endpoint,
                detail: format!("answered {status} after {attempts} attempts"),
            },
            ConnectError::Make(MakeError::Network {
                endpoint,
                detail,
                attempts,
            }) => ConnectError::MakeUnavailable {
                endpoint,
                detail: format!("{detail}, after {attempts} attempts"),
            },
            other => other,
        }
    }
}

impl From<DiscoveryError> for ConnectError {
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::Host(e) => ConnectError::Host(e),
            DiscoveryError::Make(e) => ConnectError::Make(e),
        }
    }
}

impl From<crate::instance::InstanceError> for ConnectError {
    fn from(e: crate::instance::InstanceError) -> Self {
        use crate::instance::InstanceError;
        match e {
            InstanceError::Store(e) => ConnectError::Store(e),
            InstanceError::Secret(e) => ConnectError::Secret(e),
            InstanceError::Discovery(e) => e.into(),
            InstanceError::Conflict => ConnectError::CredentialConflict,
            other => ConnectError::Instance(other),
        }
    }
}

impl From<OrganizationIdError> for ConnectError {
    fn from(e: OrganizationIdError) -> Self {
        ConnectError::InvalidInput(e.to_string())
    }
}

impl From<TokenError> for ConnectError {
    fn from(e: TokenError) -> Self {
        ConnectError::InvalidInput(e.to_string())
    }
}

impl From<TenantIdError> for ConnectError {
    fn from(e: TenantIdError) -> Self {
        ConnectError::InvalidInput(e.to_string())
    }
}

impl From<ConnectionIdError> for ConnectError {
    fn from(e: ConnectionIdError) -> Self {
        ConnectError::InvalidInput(e.to_string())
    }
}
