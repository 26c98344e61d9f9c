//! What connect answers: a connection, a discovery, a credential, a status, a page; and the
//! JSON the caller gets, an answer or `{"error": {"kind", "message"}}`.

use super::credential::CredentialResponse;
use super::read::{ConnectionPage, ConnectionView, UserPage};
use super::ConnectError;
use crate::connection::{Connection, ConnectionId, ConnectionStatus};
use crate::discover::DiscoveredOrganization;
use crate::run::RunId;
use serde::Serialize;
use serde_json::Value;

/// The answer to a successful call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    pub connection_id: ConnectionId,
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Whether a sync is on the queue now.
    pub sync_enqueued: bool,
    /// The id the queued sync's run is recorded under (`status`'s `lastRun`, the events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// Why the sync could not be queued; the connection is stored and the schedule will
    /// sync it, or the caller may ask `{"action": "sync"}` again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    /// After a disconnect: whether the users are erased already (`status` is `erased`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_purged: Option<bool>,
    /// After a disconnect with `purge`: the erase job is on the queue (`status` is
    /// `erasing`); its progress is the connection's `erasedUsers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_queued: Option<bool>,
    /// After a connect: each optional scope and whether the token has it (`teams:read`:
    /// team access is read); absent when Make did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional_scopes: Option<OptionalScopes>,
}

impl ConnectResponse {
    pub(crate) fn of(connection: &Connection) -> Self {
        Self {
            connection_id: connection.id.clone(),
            status: connection.status,
            organization_name: connection.organization_name.clone(),
            zone: connection.zone.clone(),
            sync_enqueued: false,
            run_id: None,
            sync_error: None,
            users_purged: None,
            purge_queued: None,
            optional_scopes: None,
        }
    }
}

/// The scopes makesync reads more with when a token has them, each with whether it has.
pub type OptionalScopes = std::collections::BTreeMap<String, bool>;

/// Which optional scopes the token of `client` has (`GET /users/me/current-authorization`),
/// or `None` when Make does not say: never a reason to refuse a connection.
pub async fn optional_scopes(client: &crate::make::MakeClient) -> Option<OptionalScopes> {
    match client.token_scopes().await {
        Ok(scopes) => Some(OptionalScopes::from([(
            crate::make::TEAMS_SCOPE.to_string(),
            scopes.iter().any(|s| s == crate::make::TEAMS_SCOPE),
        )])),
        Err(error) => {
            tracing::info!(error = %error, "Make did not say which scopes the token has");
            None
        }
    }
}

/// The organizations a token reaches, for the customer to pick from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryResponse {
    /// The host that was asked.
    pub host: String,
    /// Whether the list is a White Label instance's (`GET /admin/organizations`).
    pub instance: bool,
    pub organizations: Vec<DiscoveredOrganization>,
    /// Each optional scope and whether the token has it; absent when Make did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional_scopes: Option<OptionalScopes>,
}

/// What an action answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ConnectAnswer {
    Connection(ConnectResponse),
    Status(Box<ConnectionView>),
    List(ConnectionPage),
    Users(UserPage),
    /// The answer a request with the same `requestId` got first, as it was.
    Replayed(Value),
    Discovery(DiscoveryResponse),
    Credential(CredentialResponse),
}

/// The JSON a caller gets back: the response, or `{"error": {"kind", "message"}}`.
pub fn response_json(result: &Result<ConnectAnswer, ConnectError>) -> Value {
    match result {
        Ok(response) => serde_json::to_value(response).expect("a response always serialises"),
        Err(error) => serde_json::json!({ "error": error.report() }),
    }
}
