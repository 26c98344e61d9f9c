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
//!
//! Tenancy by construction: every action names its `tenantId`, connection ids are minted here
//! (a caller cannot choose one, so cannot probe which exist), and a connection is read only
//! through [`ConnectionStore::get_tenant_connection`], so an id of another tenant and an id
//! that does not exist get the same answer, byte for byte, before anything else is looked at.
//!
//! Writes that cannot race: a new connection is written only if its id is free; a reconnect
//! or disconnect only if the connection is still at the version it read (a request that lost
//! the race is refused and changes nothing); a reconnect stores its token under a new secret
//! version that only its own item write points to, then deletes the version before; a
//! disconnect never touches a sync's lease and closes the users so that a sync in flight
//! writes no more of them.

mod credential;

use crate::clock::Clock;
use crate::connection::{
    Connection, ConnectionId, ConnectionIdError, ConnectionStatus, ConnectionUpdate, TokenRef,
};
use crate::credential::CredentialId;
use crate::discover::{discover, DiscoveredOrganization, DiscoveryError, DiscoveryScope};
use crate::error::{ErrorKind, ErrorReport};
use crate::host::HostError;
use crate::make::{MakeApi, MakeError};
use crate::organization::{OrganizationId, OrganizationIdError};
use crate::ports::{
    ConnectionStore, QueueError, SecretError, SecretStore, StoreError, SyncQueue, UserStore,
};
use crate::queue::SyncRequest;
use crate::run::SyncReason;
use crate::tenant::{TenantId, TenantIdError};
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
        tenant_id: TenantId,
    },
    /// Remove the token and stop syncing; keep the users unless `purge`.
    Disconnect {
        connection_id: ConnectionId,
        tenant_id: TenantId,
        purge: bool,
    },
    /// Connect several organizations with one token: one credential, one secret.
    ConnectSeveral {
        tenant_id: TenantId,
        token: ApiToken,
        /// `(host as given, organization)`.
        organizations: Vec<(String, OrganizationId)>,
    },
    /// Disconnect every connection of a credential and delete its token.
    DisconnectCredential {
        credential_id: CredentialId,
        tenant_id: TenantId,
        purge: bool,
    },
    /// A new token for every connection of a credential.
    Rotate {
        tenant_id: TenantId,
        credential_id: CredentialId,
        token: ApiToken,
    },
    /// Follow a White Label instance: its organizations are discovered on every schedule.
    ConnectInstance {
        tenant_id: TenantId,
        host: String,
        token: ApiToken,
        auto_connect: bool,
    },
    /// List the organizations the token reaches (or, with `instance`, every organization of
    /// the White Label instance on the host); nothing is stored.
    Discover {
        tenant_id: TenantId,
        host: String,
        token: ApiToken,
        instance: bool,
    },
}

/// Attempts at deleting a token version no connection names any more.
const FORGET_ATTEMPTS: u32 = 3;

/// The most organizations one connect request takes.
pub const MAX_ORGANIZATIONS_PER_REQUEST: usize = 50;
/// The largest request connect reads, serialised. A connect request is a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The longest token accepted. Make's tokens are 36 characters.
pub const MAX_TOKEN_BYTES: usize = 512;
pub use crate::tenant::MAX_TENANT_ID_CHARS;

#[derive(Debug)]
pub struct ConnectInput {
    /// As given; checked against the allowlist by the service.
    pub host: String,
    pub organization_id: OrganizationId,
    pub token: ApiToken,
    pub tenant_id: TenantId,
    /// Given to update an existing connection of the tenant (a new token); a new
    /// connection's id is minted.
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
    /// Says nothing of the id, so that the answer is the same for every id a tenant does not
    /// hold, whether another tenant holds it or nobody does.
    #[error("this tenant has no connection with that connectionId — use the id the connect call returned, or connect the organization first")]
    UnknownConnection(ConnectionId),
    #[error("connection {id} is {status}{reason} — connect it again with a token to resume syncing", reason = reason_suffix(reason))]
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
    #[error("the White Label instance could not be followed: {0}")]
    Instance(crate::instance::InstanceError),
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
            ConnectError::Queue(_) => ErrorKind::Transient,
            ConnectError::Instance(e) => e.kind(),
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport::new(self.kind(), self.to_string())
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

const EXPECTED: &str = "expected {\"tenantId\", \"host\", \"organizationId\", \"token\", \"connectionId\"?}, {\"action\": \"sync\", \"tenantId\", \"connectionId\"}, {\"action\": \"disconnect\", \"tenantId\", \"connectionId\", \"purge\"?} or {\"action\": \"discover\", \"tenantId\", \"host\", \"token\", \"instance\"?}";

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
        let allowed = allowed_fields(action.as_deref())?;
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field {} in the request — {EXPECTED}",
                crate::excerpt::excerpt(unknown)
            )));
        }
        refuse_a_token_in_another_field(payload)?;
        match action.as_deref() {
            Some("rotate") => Ok(ConnectCommand::Rotate {
                tenant_id: tenant_id(payload)?,
                credential_id: credential_id(payload)?,
                token: token(payload)?,
            }),
            Some("connect-instance") => Ok(ConnectCommand::ConnectInstance {
                tenant_id: tenant_id(payload)?,
                host: optional_string(payload, "host")?
                    .ok_or_else(|| missing("host", "the White Label instance's host"))?,
                token: token(payload)?,
                auto_connect: optional_bool(payload, "autoConnect")?,
            }),
            Some("discover") => Ok(ConnectCommand::Discover {
                tenant_id: tenant_id(payload)?,
                host: optional_string(payload, "host")?
                    .ok_or_else(|| missing("host", "the Make zone to ask, e.g. eu1.make.com"))?,
                token: token(payload)?,
                instance: optional_bool(payload, "instance")?,
            }),
            Some("sync") => Ok(ConnectCommand::Sync {
                connection_id: required_connection_id(payload)?,
                tenant_id: tenant_id(payload)?,
            }),
            Some("disconnect") => parse_disconnect(payload),
            _ if payload.get("organizations").is_some() => parse_several(payload),
            _ => parse_connect(payload),
        }
    }
}

/// The fields an action takes; an unknown action is refused naming the ones there are.
fn allowed_fields(action: Option<&str>) -> Result<&'static [&'static str], ConnectError> {
    Ok(match action {
        None | Some("connect") => &[
            "action",
            "host",
            "organizationId",
            "token",
            "tenantId",
            "connectionId",
            "organizations",
        ],
        Some("rotate") => &["action", "tenantId", "credentialId", "token"],
        Some("connect-instance") => &["action", "tenantId", "host", "token", "autoConnect"],
        Some("sync") => &["action", "connectionId", "tenantId"],
        Some("disconnect") => &[
            "action",
            "connectionId",
            "credentialId",
            "tenantId",
            "purge",
        ],
        Some("discover") => &["action", "tenantId", "host", "token", "instance"],
        Some(other) => {
            return Err(invalid(format!(
                "unknown action {} — use \"connect\", \"discover\", \"rotate\", \"connect-instance\", \"sync\" or \"disconnect\"",
                crate::excerpt::excerpt(other)
            )))
        }
    })
}

/// `{"action": "disconnect", "tenantId", "connectionId" | "credentialId", "purge"?}`.
fn parse_disconnect(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    let purge = optional_bool(payload, "purge")?;
    if payload.get("credentialId").is_none() {
        return Ok(ConnectCommand::Disconnect {
            connection_id: required_connection_id(payload)?,
            tenant_id: tenant_id(payload)?,
            purge,
        });
    }
    if payload.get("connectionId").is_some() {
        return Err(invalid(
            "give \"connectionId\" (one connection) or \"credentialId\" (all of a credential's), not both".into(),
        ));
    }
    Ok(ConnectCommand::DisconnectCredential {
        credential_id: credential_id(payload)?,
        tenant_id: tenant_id(payload)?,
        purge,
    })
}

/// `{"tenantId", "host", "organizationId", "token", "connectionId"?}`: one organization.
fn parse_connect(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    let host = optional_string(payload, "host")?
        .ok_or_else(|| missing("host", "the Make zone, e.g. eu1.make.com"))?;
    let organization_id = organization_id(payload.get("organizationId"))?;
    let token = token(payload)?;
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

fn organization_id(value: Option<&Value>) -> Result<OrganizationId, ConnectError> {
    match value {
        Some(Value::String(s)) => Ok(OrganizationId::parse(s)?),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(OrganizationId::new(n)?),
            None => {
                Err(OrganizationIdError::NotNumeric(crate::excerpt::excerpt(&n.to_string())).into())
            }
        },
        None | Some(Value::Null) => Err(missing(
            "organizationId",
            "the number after /organization/ in the organization's URL",
        )),
        Some(_) => Err(invalid(
            "\"organizationId\" must be a number or a string of digits".into(),
        )),
    }
}

/// `{"tenantId", "token", "host"?, "organizations": [{"organizationId", "host"?}, …]}`: each
/// organization with the host discovery gave it (or the request's `host`).
fn parse_several(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    if payload.get("organizationId").is_some() || payload.get("connectionId").is_some() {
        return Err(invalid(
            "give either \"organizations\" (several) or \"organizationId\" (one), not both; a credential's token is changed with {\"action\": \"rotate\"}".into(),
        ));
    }
    let default_host = optional_string(payload, "host")?;
    let Some(Value::Array(entries)) = payload.get("organizations") else {
        return Err(invalid(
            "\"organizations\" must be a list of {\"organizationId\", \"host\"}".into(),
        ));
    };
    if entries.is_empty() || entries.len() > MAX_ORGANIZATIONS_PER_REQUEST {
        return Err(invalid(format!(
            "\"organizations\" holds {} entries; give 1 to {MAX_ORGANIZATIONS_PER_REQUEST}",
            entries.len()
        )));
    }
    let mut organizations = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Some(fields) = entry.as_object() else {
            return Err(invalid(format!(
                "organizations[{index}] must be an object {{\"organizationId\", \"host\"}}"
            )));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["organizationId", "id", "host"].contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "unknown field {} in organizations[{index}] — give \"organizationId\" and \"host\"",
                crate::excerpt::excerpt(unknown)
            )));
        }
        let id = organization_id(entry.get("organizationId").or_else(|| entry.get("id")))
            .map_err(|e| invalid(format!("organizations[{index}]: {e}")))?;
        let host = match optional_string(entry, "host")? {
            Some(host) => host,
            None => default_host.clone().ok_or_else(|| {
                missing(
                    "host",
                    "each organization's host (discovery gives it), or one \"host\" for all",
                )
            })?,
        };
        if organizations
            .iter()
            .any(|(h, o): &(String, OrganizationId)| *o == id && h.trim() == host.trim())
        {
            return Err(invalid(format!(
                "organizations[{index}] repeats organization {id} on the same host"
            )));
        }
        organizations.push((host, id));
    }
    Ok(ConnectCommand::ConnectSeveral {
        tenant_id: tenant_id(payload)?,
        token: token(payload)?,
        organizations,
    })
}

fn credential_id(payload: &Value) -> Result<CredentialId, ConnectError> {
    let raw = optional_string(payload, "credentialId")?.ok_or_else(|| {
        missing(
            "credentialId",
            "the id returned when the organizations were connected",
        )
    })?;
    CredentialId::parse(&raw).ok_or_else(|| {
        invalid(format!(
            "\"credentialId\" {} is not a credential id — use the id the connect call returned",
            crate::excerpt::excerpt(&raw)
        ))
    })
}

fn token(payload: &Value) -> Result<ApiToken, ConnectError> {
    match payload.get("token") {
        Some(Value::String(s)) if s.len() > MAX_TOKEN_BYTES => Err(invalid(format!(
            "\"token\" is longer than {MAX_TOKEN_BYTES} bytes — give the Make API token itself"
        ))),
        Some(Value::String(s)) => Ok(ApiToken::parse(s)?),
        None | Some(Value::Null) => Err(missing(
            "token",
            "a Make API token with the scopes organizations:read and user:read",
        )),
        // Not quoted back: whatever it is, it may be a secret.
        Some(_) => Err(invalid("\"token\" must be a string".into())),
    }
}

fn optional_bool(payload: &Value, field: &str) -> Result<bool, ConnectError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("\"{field}\" must be true or false"))),
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

fn tenant_id(payload: &Value) -> Result<TenantId, ConnectError> {
    let tenant = optional_string(payload, "tenantId")?.ok_or_else(|| {
        missing(
            "tenantId",
            "the id of the customer the connection belongs to (every action names it)",
        )
    })?;
    Ok(TenantId::parse(&tenant)?)
}

/// A token pasted into another field as well (a host, an organization id, a tenant or a
/// connection id) would be stored, answered or logged as that field: refused first, naming
/// the field, quoting nothing.
fn refuse_a_token_in_another_field(payload: &Value) -> Result<(), ConnectError> {
    let Some(token) = payload
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    // A short token (tests use `t-1`) may well be part of an honest value; Make's are 36
    // characters.
    let holds = |value: &str| value == token || (token.len() >= 12 && value.contains(token));
    // Every value but the token's own, however deep (`organizations[2].host` too).
    let mut pending: Vec<(String, &Value)> = match payload.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(name, _)| name.as_str() != "token")
            .map(|(name, value)| (name.clone(), value))
            .collect(),
        None => Vec::new(),
    };
    while let Some((field, value)) = pending.pop() {
        let holds_token = match value {
            Value::String(text) => holds(text),
            Value::Number(number) => holds(&number.to_string()),
            Value::Array(items) => {
                pending.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (format!("{field}[{i}]"), item)),
                );
                false
            }
            Value::Object(fields) => {
                pending.extend(
                    fields
                        .iter()
                        .map(|(name, item)| (format!("{field}.{}", field_name(name)), item)),
                );
                false
            }
            _ => false,
        };
        if holds_token {
            return Err(invalid(format!(
                "\"{field}\" holds the token — give the token in \"token\" only, and {field} its own value"
            )));
        }
    }
    Ok(())
}

/// A nested field's name as a path segment: its first 24 letters, digits and underscores (the
/// caller's text is not echoed at length, and a name is checked for being known later).
fn field_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect()
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
    fn of(connection: &Connection) -> Self {
        Self {
            connection_id: connection.id.clone(),
            status: connection.status,
            organization_name: connection.organization_name.clone(),
            zone: connection.zone.clone(),
            sync_enqueued: false,
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
    Discovery(DiscoveryResponse),
    Credential(credential::CredentialResponse),
}

/// The JSON a caller gets back: the response, or `{"error": {"kind", "message"}}`.
pub fn response_json(result: &Result<ConnectAnswer, ConnectError>) -> Value {
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
    pub async fn handle_payload(&self, payload: &Value) -> Result<ConnectAnswer, ConnectError> {
        let command = ConnectCommand::parse(payload)?;
        self.handle(command).await
    }

    pub async fn handle(&self, command: ConnectCommand) -> Result<ConnectAnswer, ConnectError> {
        let answer = match command {
            ConnectCommand::Connect(input) => self.connect(input).await?,
            ConnectCommand::Sync {
                connection_id,
                tenant_id,
            } => self.sync_now(&tenant_id, &connection_id).await?,
            ConnectCommand::Disconnect {
                connection_id,
                tenant_id,
                purge,
            } => self.disconnect(&tenant_id, &connection_id, purge).await?,
            ConnectCommand::ConnectSeveral {
                tenant_id,
                token,
                organizations,
            } => {
                return Ok(ConnectAnswer::Credential(
                    self.connect_several(&tenant_id, token, &organizations)
                        .await?,
                ))
            }
            ConnectCommand::DisconnectCredential {
                credential_id,
                tenant_id,
                purge,
            } => {
                return Ok(ConnectAnswer::Credential(
                    self.disconnect_credential(&tenant_id, &credential_id, purge)
                        .await?,
                ))
            }
            ConnectCommand::Rotate {
                tenant_id,
                credential_id,
                token,
            } => {
                return Ok(ConnectAnswer::Credential(
                    self.rotate(&tenant_id, &credential_id, token).await?,
                ))
            }
            ConnectCommand::ConnectInstance {
                tenant_id,
                host,
                token,
                auto_connect,
            } => {
                return Ok(ConnectAnswer::Credential(
                    self.connect_instance(&tenant_id, &host, token, auto_connect)
                        .await?,
                ))
            }
            ConnectCommand::Discover {
                tenant_id,
                host,
                token,
                instance,
            } => {
                return Ok(ConnectAnswer::Discovery(
                    self.discover(&tenant_id, &host, token, instance).await?,
                ))
            }
        };
        Ok(ConnectAnswer::Connection(answer))
    }

    /// The organizations `token` reaches from `host`, each marked with this tenant's
    /// connection of it if there is one. Checks the token; stores nothing.
    pub async fn discover(
        &self,
        tenant: &TenantId,
        host: &str,
        token: ApiToken,
        instance: bool,
    ) -> Result<DiscoveryResponse, ConnectError> {
        let host = self.make.allowlist().admit(host)?;
        let scope = if instance {
            DiscoveryScope::Instance
        } else {
            DiscoveryScope::Member
        };
        let mut organizations = discover(&self.make, &host, token.clone(), scope).await?;
        let scopes = match self.make.account_client(&host, token) {
            Ok(client) => optional_scopes(&client).await,
            Err(_) => None,
        };
        let connected = self.connections.list_tenant_connections(tenant).await?;
        for organization in &mut organizations {
            organization.connection_id = connected
                .iter()
                .filter(|c| {
                    !matches!(
                        c.status,
                        ConnectionStatus::Erasing | ConnectionStatus::Erased
                    )
                })
                .find(|c| {
                    c.organization_id.get() == organization.id
                        && Some(c.host.as_str()) == organization.host.as_deref()
                })
                .map(|c| c.id.clone());
        }
        tracing::info!(tenant_id = %tenant, host = %host, instance, organizations = organizations.len(), "discovery answered");
        Ok(DiscoveryResponse {
            optional_scopes: scopes,
            host: host.to_string(),
            instance,
            organizations,
        })
    }

    pub async fn connect(&self, input: ConnectInput) -> Result<ConnectResponse, ConnectError> {
        let host = self.make.allowlist().admit(&input.host)?;
        let existing = match &input.connection_id {
            Some(id) => Some(self.existing(&input.tenant_id, id).await?),
            None => None,
        };
        if let Some(existing) = &existing {
            if matches!(
                existing.status,
                ConnectionStatus::Erasing | ConnectionStatus::Erased
            ) {
                return Err(ConnectError::Erased {
                    id: existing.id.clone(),
                    status: existing.status.as_str(),
                });
            }
            if let Some(credential) = &existing.credential_id {
                return Err(ConnectError::SharedToken {
                    id: existing.id.clone(),
                    credential: credential.clone(),
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
        let scopes = optional_scopes(&client).await;

        let id = existing
            .as_ref()
            .map_or_else(ConnectionId::generate, |c| c.id.clone());
        // The token goes under a version of its own, which only this request's item write
        // points to.
        let secret = TokenRef::new_version(&id);
        self.secrets.put_token(&secret, &input.token).await?;
        let stored = match &existing {
            None => self.create(&input, &host, &secret, &organization).await,
            Some(existing) => self.reconnect(existing, &secret, &organization).await,
        };
        let connection = match stored {
            Ok(connection) => connection,
            Err(error) => {
                // A token nobody can find would only be a liability.
                self.forget_token(&secret).await;
                return Err(error);
            }
        };
        if let Some(existing) = &existing {
            // The item names the new version now: the old token goes at once.
            self.forget_token(&existing.token_ref()).await;
        }
        tracing::info!(connection_id = %id, tenant_id = %connection.tenant_id, host = %host, organization_id = %input.organization_id, reconnected = existing.is_some(), "connection stored");
        let enqueued = self.enqueue(&id, SyncReason::Connected).await;
        Ok(ConnectResponse {
            sync_enqueued: enqueued.is_ok(),
            sync_error: enqueued.err(),
            optional_scopes: scopes,
            ..ConnectResponse::of(&connection)
        })
    }

    /// Stores a new connection under a fresh id.
    async fn create(
        &self,
        input: &ConnectInput,
        host: &crate::host::MakeHost,
        secret: &TokenRef,
        organization: &crate::make::OrganizationSummary,
    ) -> Result<Connection, ConnectError> {
        let mut connection = Connection::new(
            secret.connection_id.clone(),
            input.tenant_id.clone(),
            host.clone(),
            input.organization_id,
            self.clock.wall(),
        );
        connection.token_version = secret.version.clone();
        connection.organization_name = Some(organization.name.clone());
        connection.zone = organization.zone.clone();
        if !self.connections.create_connection(&connection).await? {
            // 122 random bits collided, or a store replayed a write: never overwrite.
            return Err(ConnectError::Conflict {
                id: connection.id.clone(),
            });
        }
        Ok(connection)
    }

    /// Points an existing connection at a new token and resumes it, if nothing changed it
    /// since it was read.
    async fn reconnect(
        &self,
        existing: &Connection,
        secret: &TokenRef,
        organization: &crate::make::OrganizationSummary,
    ) -> Result<Connection, ConnectError> {
        let update = ConnectionUpdate::reconnect(
            secret.version.clone(),
            Some(organization.name.clone()),
            organization.zone.clone(),
        );
        if !self
            .connections
            .update_connection(&existing.id, existing.version, &update)
            .await?
        {
            return Err(ConnectError::Conflict {
                id: existing.id.clone(),
            });
        }
        let mut connection = existing.clone();
        connection.apply_update(&update);
        Ok(connection)
    }

    pub async fn sync_now(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<ConnectResponse, ConnectError> {
        let connection = self.existing(tenant, id).await?;
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
            sync_enqueued: true,
            ..ConnectResponse::of(&connection)
        })
    }

    /// Marks the connection disconnected — or, with `purge`, erasing — only if nothing changed
    /// it since it was read, so that no sync starts; closes its users, so that a sync in
    /// flight writes no more of them; deletes its token without a recovery window; and, with
    /// `purge`, queues the erase job that deletes its users in batches
    /// ([`SyncReason::Erase`]). Repeating a disconnect is harmless: an erasure asked again is
    /// queued again, and an erased connection stays erased.
    pub async fn disconnect(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        purge: bool,
    ) -> Result<ConnectResponse, ConnectError> {
        let mut connection = self.existing(tenant, id).await?;
        if connection.credential_id.is_none() {
            // The token first, while the item still names its secret: if this fails, nothing
            // changed and the disconnect can be asked again; once the item no longer names
            // it, nothing would find it.
            self.delete_secret(&connection.token_ref()).await?;
        }
        let update = match (purge, connection.status) {
            (_, ConnectionStatus::Erasing | ConnectionStatus::Erased) => None,
            (true, _) => Some(ConnectionUpdate::erase()),
            (false, ConnectionStatus::Disconnected) => None,
            (false, _) => Some(ConnectionUpdate::disconnect()),
        };
        if let Some(update) = update {
            if !self
                .connections
                .update_connection(id, connection.version, &update)
                .await?
            {
                return Err(ConnectError::Conflict { id: id.clone() });
            }
            connection.apply_update(&update);
        }
        let now = self.clock.wall();
        self.users.close_users(id, now).await?;
        if let Some(credential) = &connection.credential_id {
            // A shared token goes with the last connection that uses it; a failure is said,
            // so that the disconnect is asked again and finishes it.
            self.leave_credential(credential, &connection).await?;
        }
        let erasing = connection.status == ConnectionStatus::Erasing;
        if erasing {
            self.queue_erasure(id, now).await?;
        }
        tracing::info!(connection_id = %id, tenant_id = %tenant, purge, status = connection.status.as_str(), "connection disconnected");
        Ok(ConnectResponse {
            users_purged: Some(connection.status == ConnectionStatus::Erased),
            purge_queued: erasing.then_some(true),
            ..ConnectResponse::of(&connection)
        })
    }

    /// Puts the erase job on the queue; the worker runs it once no sync holds the connection.
    async fn queue_erasure(
        &self,
        id: &ConnectionId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ConnectError> {
        let request = SyncRequest::new(id.clone(), SyncReason::Erase, now);
        match self.queue.enqueue(std::slice::from_ref(&request)).await {
            Ok(failures) if failures.is_empty() => Ok(()),
            Ok(failures) => Err(ConnectError::Queue(QueueError::Unavailable(
                failures
                    .into_iter()
                    .next()
                    .map(|f| f.reason)
                    .unwrap_or_default(),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's stored connection. One of another tenant is answered exactly like one
    /// that does not exist, before anything about it is looked at.
    async fn existing(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<Connection, ConnectError> {
        self.connections
            .get_tenant_connection(tenant, id)
            .await?
            .ok_or_else(|| ConnectError::UnknownConnection(id.clone()))
    }

    /// Deletes a token version no connection names (any more), tried three times with a
    /// growing pause (a throttled or briefly failing secret store); a failure past that is
    /// logged at ERROR with the secret's name, for the operator (SECURITY.md, "Review of
    /// December 2026", F5), and the answer stands.
    async fn forget_token(&self, secret: &TokenRef) {
        for attempt in 0..FORGET_ATTEMPTS {
            if attempt > 0 {
                self.clock
                    .sleep(std::time::Duration::from_millis(200 << attempt))
                    .await;
            }
            match self.secrets.delete_token(secret).await {
                Ok(()) | Err(SecretError::NotFound(_)) => return,
                Err(e) if attempt + 1 == FORGET_ATTEMPTS => {
                    tracing::error!(connection_id = %secret.connection_id, secret = %secret, error = %e, "could not delete a token version that no connection uses — delete this secret by hand")
                }
                Err(_) => {}
            }
        }
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
                &json!({"host": "eu1.make.com", "organizationId": id, "token": "t-1", "tenantId": "t"}),
            )
            .unwrap();
            let ConnectCommand::Connect(input) = command else {
                panic!("not a connect")
            };
            assert_eq!(input.organization_id.get(), 1001);
            assert_eq!(input.connection_id, None);
        }
    }

    /// F11: a token pasted into a nested field (`organizations[1].host`) or into
    /// `credentialId` is refused like one at the top, naming the field, never quoting it.
    #[test]
    fn a_token_pasted_into_a_nested_field_is_refused_without_quoting_it() {
        let token = "3f0c8a52-6d1e-4b7a-9c2f-0e5d7b1a4c88";
        let nested = json!({"tenantId": "t", "token": token, "organizations": [
            {"organizationId": 1, "host": "eu1.make.com"},
            {"organizationId": 2, "host": format!("x {token}")}]});
        let rotate = json!({"action": "rotate", "tenantId": "t", "token": token,
                            "credentialId": token});
        for (payload, field) in [(nested, "organizations[1].host"), (rotate, "credentialId")] {
            let message = ConnectCommand::parse(&payload).unwrap_err().to_string();
            assert!(
                message.contains(&format!("\"{field}\" holds the token")),
                "{message}"
            );
            assert!(!message.contains(token), "{message}");
        }
    }

    #[test]
    fn a_token_pasted_into_another_field_is_refused_without_quoting_it() {
        let token = "3f0c8a52-6d1e-4b7a-9c2f-0e5d7b1a4c88";
        for field in ["host", "organizationId", "tenantId", "connectionId"] {
            let mut payload = json!({"host": "eu1.make.com", "organizationId": 1,
                                     "token": token, "tenantId": "t", "connectionId": "c"});
            payload[field] = json!(token);
            let message = ConnectCommand::parse(&payload).unwrap_err().to_string();
            assert!(
                message.contains(&format!("\"{field}\" holds the token")),
                "{message}"
            );
            assert!(!message.contains(token), "{message}");
        }
        // Without a token field, a token-like value in another field is still not quoted.
        for field in ["host", "organizationId", "connectionId"] {
            let mut payload = json!({"host": "eu1.make.com", "organizationId": 1, "tenantId": "t",
                                     "token": "other-token", "connectionId": "c"});
            payload[field] = json!(token);
            if let Err(error) = ConnectCommand::parse(&payload) {
                assert!(!error.to_string().contains(token), "{error}");
            }
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
            .contains("this tenant has no connection with that connectionId"));
    }
}
