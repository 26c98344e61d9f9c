//! Adding, re-syncing and removing a connection: what the product's backend calls when a
//! customer connects a Make organization.
//!
//! Connecting checks everything with Make *before* anything is stored — the host against the
//! allowlist, the token, its scope `organizations:read` and its access to the organization
//! (`GET /organizations/{id}`, which also tells the zone), and the scope `user:read` (one row of
//! `GET /users`) — so a connection that is stored is one that can sync. A 401 is told apart
//! by the client: after the organization was read, it means a missing scope; on the first
//! call, `GET /users/me` says whether the token itself is refused. Then the token goes to the secret store, the
//! connection to the connection store, and a sync with reason `connected` to the queue.

use crate::clock::Clock;
use crate::connection::{Connection, ConnectionId, ConnectionIdError, ConnectionStatus};
use crate::error::{ErrorKind, ErrorReport};
use crate::host::HostError;
use crate::make::{MakeApi, MakeError};
use crate::organization::{OrganizationId, OrganizationIdError};
use crate::ports::{
    ConnectionStore, QueueError, SecretError, SecretStore, StoreError, SyncQueue, UserStore,
};
use crate::queue::SyncRequest;
use crate::run::SyncReason;
use crate::token::{ApiToken, TokenError};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use thiserror::Error;

/// What the caller asked for, parsed and checked for shape (not yet against Make).
#[derive(Debug)]
pub enum ConnectCommand {
    Connect(ConnectInput),
    /// Sync now, outside the schedule.
    Sync {
        connection_id: ConnectionId,
        /// When given, the connection must belong to this tenant.
        tenant_id: Option<String>,
    },
    /// Remove the token and stop syncing; keep the users unless `purge`.
    Disconnect {
        connection_id: ConnectionId,
        tenant_id: Option<String>,
        purge: bool,
    },
}

/// The largest request connect reads, serialised. A connect request is a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The longest token accepted. Make's tokens are 36 characters.
pub const MAX_TOKEN_BYTES: usize = 512;
/// The longest tenant id accepted.
pub const MAX_TENANT_ID_CHARS: usize = 128;

#[derive(Debug)]
pub struct ConnectInput {
    /// As given; checked against the allowlist by the service.
    pub host: String,
    pub organization_id: OrganizationId,
    pub token: ApiToken,
    pub tenant_id: Option<String>,
    /// Given to update an existing connection (a new token); generated when absent.
    pub connection_id: Option<ConnectionId>,
}

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Make(#[from] MakeError),
    #[error("connection {0} does not exist — connect the organization first")]
    UnknownConnection(ConnectionId),
    #[error("connection {id} is {status}{reason} — connect it again with a token to resume syncing", reason = reason_suffix(reason))]
    NotActive {
        id: ConnectionId,
        status: &'static str,
        reason: Option<String>,
    },
    #[error("connection {id} belongs to another tenant; a connection cannot move between tenants — connect the organization as a new connection for this tenant")]
    TenantChanged { id: ConnectionId },
    #[error("connection {id} belongs to organization {existing} on {existing_host}; it cannot be pointed at another organization — disconnect it and connect the new organization as a new connection")]
    OrganizationChanged {
        id: ConnectionId,
        existing: OrganizationId,
        existing_host: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

impl ConnectError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::InvalidInput(_)
            | ConnectError::Host(_)
            | ConnectError::NotActive { .. }
            | ConnectError::TenantChanged { .. }
            | ConnectError::OrganizationChanged { .. } => ErrorKind::InvalidInput,
            ConnectError::Make(e) => e.kind(),
            ConnectError::UnknownConnection(_) => ErrorKind::NotFound,
            ConnectError::Store(e) => e.kind(),
            ConnectError::Secret(e) => e.kind(),
            ConnectError::Queue(_) => ErrorKind::Transient,
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
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

impl From<ConnectionIdError> for ConnectError {
    fn from(e: ConnectionIdError) -> Self {
        ConnectError::InvalidInput(e.to_string())
    }
}

const EXPECTED: &str = "expected {\"host\", \"organizationId\", \"token\", \"tenantId\"?, \"connectionId\"?}, {\"action\": \"sync\", \"connectionId\", \"tenantId\"?} or {\"action\": \"disconnect\", \"connectionId\", \"tenantId\"?, \"purge\"?}";

impl ConnectCommand {
    /// Parses an invocation payload. Written by hand rather than derived so that no error
    /// message can ever quote the token's value.
    pub fn parse(payload: &Value) -> Result<Self, ConnectError> {
        let Some(fields) = payload.as_object() else {
            return Err(invalid(format!(
                "the request is not a JSON object — {EXPECTED}"
            )));
        };
        let size = payload.to_string().len();
        if size > MAX_REQUEST_BYTES {
            return Err(invalid(format!(
                "the request is {size} bytes; at most {MAX_REQUEST_BYTES} are read — {EXPECTED}"
            )));
        }
        let action = optional_string(payload, "action")?;
        let allowed: &[&str] = match action.as_deref() {
            None | Some("connect") => &[
                "action",
                "host",
                "organizationId",
                "token",
                "tenantId",
                "connectionId",
            ],
            Some("sync") => &["action", "connectionId", "tenantId"],
            Some("disconnect") => &["action", "connectionId", "tenantId", "purge"],
            Some(other) => {
                return Err(invalid(format!(
                    "unknown action {other:?} — use \"connect\", \"sync\" or \"disconnect\""
                )))
            }
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field {unknown:?} in the request — {EXPECTED}"
            )));
        }
        match action.as_deref() {
            Some("sync") => Ok(ConnectCommand::Sync {
                connection_id: required_connection_id(payload)?,
                tenant_id: tenant_id(payload)?,
            }),
            Some("disconnect") => {
                let purge = match payload.get("purge") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(invalid("\"purge\" must be true or false".into())),
                };
                Ok(ConnectCommand::Disconnect {
                    connection_id: required_connection_id(payload)?,
                    tenant_id: tenant_id(payload)?,
                    purge,
                })
            }
            _ => {
                let host = optional_string(payload, "host")?
                    .ok_or_else(|| missing("host", "the Make zone, e.g. eu1.make.com"))?;
                let organization_id = match payload.get("organizationId") {
                    Some(Value::String(s)) => OrganizationId::parse(s)?,
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(n) => OrganizationId::new(n)?,
                        None => {
                            return Err(OrganizationIdError::NotNumeric(crate::excerpt::excerpt(
                                &n.to_string(),
                            ))
                            .into())
                        }
                    },
                    None | Some(Value::Null) => {
                        return Err(missing(
                            "organizationId",
                            "the number after /organization/ in the organization's URL",
                        ))
                    }
                    Some(_) => {
                        return Err(invalid(
                            "\"organizationId\" must be a number or a string of digits".into(),
                        ))
                    }
                };
                let token = match payload.get("token") {
                    Some(Value::String(s)) if s.len() > MAX_TOKEN_BYTES => {
                        return Err(invalid(format!(
                            "\"token\" is longer than {MAX_TOKEN_BYTES} bytes — give the Make API token itself"
                        )))
                    }
                    Some(Value::String(s)) => ApiToken::parse(s)?,
                    None | Some(Value::Null) => {
                        return Err(missing(
                            "token",
                            "a Make API token with the scopes organizations:read and user:read",
                        ))
                    }
                    // Not quoted back: whatever it is, it may be a secret.
                    Some(_) => return Err(invalid("\"token\" must be a string".into())),
                };
                let tenant_id = tenant_id(payload)?;
                let connection_id = optional_string(payload, "connectionId")?
                    .map(|id| ConnectionId::parse(&id))
                    .transpose()?;
                Ok(ConnectCommand::Connect(ConnectInput {
                    host,
                    organization_id,
                    token,
                    tenant_id,
                    connection_id,
                }))
            }
        }
    }
}

fn invalid(message: String) -> ConnectError {
    ConnectError::InvalidInput(message)
}

fn missing(field: &str, what: &str) -> ConnectError {
    invalid(format!("the request has no \"{field}\" — give {what}"))
}

fn optional_string(payload: &Value, field: &str) -> Result<Option<String>, ConnectError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("\"{field}\" must be a string"))),
    }
}

fn tenant_id(payload: &Value) -> Result<Option<String>, ConnectError> {
    let tenant = optional_string(payload, "tenantId")?;
    if let Some(tenant) = &tenant {
        let count = tenant.chars().count();
        if count == 0 || count > MAX_TENANT_ID_CHARS || tenant.chars().any(char::is_control) {
            return Err(invalid(format!(
                "\"tenantId\" must be 1 to {MAX_TENANT_ID_CHARS} characters without control characters"
            )));
        }
    }
    Ok(tenant)
}

fn required_connection_id(payload: &Value) -> Result<ConnectionId, ConnectError> {
    let raw = optional_string(payload, "connectionId")?
        .ok_or_else(|| missing("connectionId", "the id returned when it was connected"))?;
    Ok(ConnectionId::parse(&raw)?)
}

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
    /// Why the sync could not be queued; the connection is stored and the schedule will
    /// sync it, or the caller may ask `{"action": "sync"}` again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_purged: Option<bool>,
}

/// The JSON a caller gets back: the response, or `{"error": {"kind", "message"}}`.
pub fn response_json(result: &Result<ConnectResponse, ConnectError>) -> Value {
    match result {
        Ok(response) => serde_json::to_value(response).expect("a response always serialises"),
        Err(error) => serde_json::json!({ "error": error.report() }),
    }
}

#[derive(Clone)]
pub struct ConnectService {
    connections: Arc<dyn ConnectionStore>,
    users: Arc<dyn UserStore>,
    secrets: Arc<dyn SecretStore>,
    queue: Arc<dyn SyncQueue>,
    make: MakeApi,
    clock: Arc<dyn Clock>,
}

impl ConnectService {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        users: Arc<dyn UserStore>,
        secrets: Arc<dyn SecretStore>,
        queue: Arc<dyn SyncQueue>,
        make: MakeApi,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            users,
            secrets,
            queue,
            make,
            clock,
        }
    }

    /// Parses and runs one invocation payload; the result's JSON is [`response_json`].
    pub async fn handle_payload(&self, payload: &Value) -> Result<ConnectResponse, ConnectError> {
        let command = ConnectCommand::parse(payload)?;
        self.handle(command).await
    }

    pub async fn handle(&self, command: ConnectCommand) -> Result<ConnectResponse, ConnectError> {
        match command {
            ConnectCommand::Connect(input) => self.connect(input).await,
            ConnectCommand::Sync {
                connection_id,
                tenant_id,
            } => self.sync_now(&connection_id, tenant_id.as_deref()).await,
            ConnectCommand::Disconnect {
                connection_id,
                tenant_id,
                purge,
            } => {
                self.disconnect(&connection_id, tenant_id.as_deref(), purge)
                    .await
            }
        }
    }

    pub async fn connect(&self, input: ConnectInput) -> Result<ConnectResponse, ConnectError> {
        let host = self.make.allowlist().admit(&input.host)?;
        let existing = match &input.connection_id {
            Some(id) => self.connections.get_connection(id).await?,
            None => None,
        };
        if let Some(existing) = &existing {
            // A connection stays with its tenant: reconnecting it for another would hand that
            // tenant its users.
            if existing.tenant_id.is_some() && existing.tenant_id != input.tenant_id {
                return Err(ConnectError::TenantChanged {
                    id: existing.id.clone(),
                });
            }
            if existing.organization_id != input.organization_id || existing.host != host {
                return Err(ConnectError::OrganizationChanged {
                    id: existing.id.clone(),
                    existing: existing.organization_id,
                    existing_host: existing.host.to_string(),
                });
            }
        }

        // Everything Make must confirm, before anything is stored.
        let client = self
            .make
            .client(&host, input.organization_id, input.token.clone())?;
        let organization = client.get_organization(input.organization_id).await?;
        client.check_user_access(input.organization_id).await?;

        let now = self.clock.wall();
        let id = input
            .connection_id
            .clone()
            .unwrap_or_else(ConnectionId::generate);
        let mut connection = existing.clone().unwrap_or_else(|| {
            Connection::new(id.clone(), host.clone(), input.organization_id, now)
        });
        connection.status = ConnectionStatus::Active;
        connection.status_reason = None;
        connection.consecutive_failures = 0;
        connection.last_error = None;
        connection.organization_name = Some(organization.name.clone());
        connection.zone = organization.zone.clone();
        if input.tenant_id.is_some() {
            connection.tenant_id = input.tenant_id.clone();
        }

        self.secrets.put_token(&id, &input.token).await?;
        if let Err(error) = self.connections.put_connection(&connection).await {
            if existing.is_none() {
                // A token nobody can find would only be a liability.
                if let Err(e) = self.secrets.delete_token(&id).await {
                    tracing::error!(connection_id = %id, error = %e, "could not remove the token of a connection that was not stored");
                }
            }
            return Err(error.into());
        }
        tracing::info!(connection_id = %id, host = %host, organization_id = %input.organization_id, reconnected = existing.is_some(), "connection stored");
        let enqueued = self.enqueue(&id, SyncReason::Connected).await;
        Ok(ConnectResponse {
            connection_id: id,
            status: ConnectionStatus::Active,
            organization_name: Some(organization.name),
            zone: organization.zone,
            sync_enqueued: enqueued.is_ok(),
            sync_error: enqueued.err(),
            users_purged: None,
        })
    }

    pub async fn sync_now(
        &self,
        id: &ConnectionId,
        tenant_id: Option<&str>,
    ) -> Result<ConnectResponse, ConnectError> {
        let connection = self.existing(id, tenant_id).await?;
        if connection.status != ConnectionStatus::Active {
            return Err(ConnectError::NotActive {
                id: id.clone(),
                status: connection.status.as_str(),
                reason: connection.status_reason.map(|r| r.message),
            });
        }
        self.enqueue(id, SyncReason::OnDemand)
            .await
            .map_err(|error| ConnectError::Queue(QueueError::Unavailable(error)))?;
        Ok(ConnectResponse {
            connection_id: id.clone(),
            status: connection.status,
            organization_name: connection.organization_name,
            zone: connection.zone,
            sync_enqueued: true,
            sync_error: None,
            users_purged: None,
        })
    }

    /// Marks the connection disconnected first (so no new sync starts), then deletes its
    /// token, then — only if asked — its users. Repeating a disconnect is harmless.
    pub async fn disconnect(
        &self,
        id: &ConnectionId,
        tenant_id: Option<&str>,
        purge: bool,
    ) -> Result<ConnectResponse, ConnectError> {
        let mut connection = self.existing(id, tenant_id).await?;
        if connection.status != ConnectionStatus::Disconnected {
            connection.status = ConnectionStatus::Disconnected;
            connection.status_reason = None;
            connection.lease_until = None;
            self.connections.put_connection(&connection).await?;
        }
        match self.secrets.delete_token(id).await {
            Ok(()) | Err(SecretError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if purge {
            self.users.delete_users(id).await?;
        }
        tracing::info!(connection_id = %id, purge, "connection disconnected");
        Ok(ConnectResponse {
            connection_id: id.clone(),
            status: ConnectionStatus::Disconnected,
            organization_name: connection.organization_name,
            zone: connection.zone,
            sync_enqueued: false,
            sync_error: None,
            users_purged: Some(purge),
        })
    }

    /// The stored connection; with a tenant, only if it belongs to that tenant. A connection
    /// of another tenant is answered exactly like one that does not exist, so that a tenant
    /// cannot learn which ids others use.
    async fn existing(
        &self,
        id: &ConnectionId,
        tenant_id: Option<&str>,
    ) -> Result<Connection, ConnectError> {
        self.connections
            .get_connection(id)
            .await?
            .filter(|c| tenant_id.is_none_or(|tenant| c.tenant_id.as_deref() == Some(tenant)))
            .ok_or_else(|| ConnectError::UnknownConnection(id.clone()))
    }

    /// Queues one sync; the error says what happened and what the caller can do.
    async fn enqueue(&self, id: &ConnectionId, reason: SyncReason) -> Result<(), String> {
        let request = SyncRequest::new(id.clone(), reason, self.clock.wall());
        let error = match self.queue.enqueue(std::slice::from_ref(&request)).await {
            Ok(failures) if failures.is_empty() => return Ok(()),
            Ok(failures) => failures
                .into_iter()
                .next()
                .map(|f| f.reason)
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        tracing::error!(connection_id = %id, error = %error, "could not enqueue the sync");
        Err(format!(
            "the sync could not be queued ({error}); the connection is stored and the next schedule will sync it — ask {{\"action\": \"sync\"}} to try again now"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Whatever the backend sends, connect parses it or answers an invalid-input error
        /// that says what is wrong, never panics, and never quotes a token it was given.
        #[test]
        fn any_request_is_parsed_or_refused_with_a_reason(
            payload in crate::arbitrary::json(&[
                "action", "host", "organizationId", "token", "tenantId", "connectionId", "purge",
            ])
        ) {
            if let Err(error) = ConnectCommand::parse(&payload) {
                proptest::prop_assert_eq!(error.kind(), ErrorKind::InvalidInput);
                proptest::prop_assert!(!error.to_string().is_empty());
            }
        }

        #[test]
        fn a_refusal_never_quotes_the_token(
            token in "[A-Za-z0-9-]{20,40}",
            mut payload in crate::arbitrary::json(&[
                "action", "host", "organizationId", "tenantId", "connectionId", "purge",
            ])
        ) {
            if let Some(fields) = payload.as_object_mut() {
                fields.insert("token".into(), token.clone().into());
            }
            if let Err(error) = ConnectCommand::parse(&payload) {
                proptest::prop_assert!(!error.to_string().contains(&token), "{}", error);
            }
        }
    }

    #[test]
    fn connect_requests_take_the_organization_id_as_number_or_digits() {
        for id in [json!(1001), json!("1001")] {
            let command = ConnectCommand::parse(
                &json!({"host": "eu1.make.com", "organizationId": id, "token": "t-1"}),
            )
            .unwrap();
            let ConnectCommand::Connect(input) = command else {
                panic!("not a connect")
            };
            assert_eq!(input.organization_id.get(), 1001);
            assert_eq!(input.connection_id, None);
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong_and_never_quote_the_token() {
        let cases = [
            (json!("x"), "not a JSON object"),
            (json!({"action": "explode"}), "unknown action"),
            (
                json!({"organizationId": 1, "token": "secret-abc"}),
                "no \"host\"",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": "12a", "token": "secret-abc"}),
                "not a number",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1, "token": 12345}),
                "\"token\" must be a string",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1}),
                "no \"token\"",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1, "token": "secret-abc", "tokn": "x"}),
                "unknown field \"tokn\"",
            ),
            (json!({"action": "sync"}), "no \"connectionId\""),
            (
                json!({"action": "disconnect", "connectionId": "a b"}),
                "connection ID",
            ),
            (
                json!({"action": "disconnect", "connectionId": "c", "purge": "yes"}),
                "purge",
            ),
        ];
        for (payload, expected) in cases {
            let error = ConnectCommand::parse(&payload).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{payload}: {message}");
            assert!(!message.contains("secret-abc"), "{message}");
            assert!(!message.contains("12345"), "{message}");
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn errors_answer_as_kind_and_message() {
        let error = ConnectError::UnknownConnection(ConnectionId::parse("c-9").unwrap());
        let json = response_json(&Err(error));
        assert_eq!(json["error"]["kind"], "not_found");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connection c-9 does not exist"));
    }
}
