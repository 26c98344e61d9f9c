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
//! Tenancy by construction: every action names its `tenantId`, connection ids are made here
//! (derived from the tenant, host and organization, so a repeated connect meets the same one;
//! a caller cannot choose one), and a connection is read only
//! through [`ConnectionStore::get_tenant_connection`], so an id of another tenant and an id
//! that does not exist get the same answer, byte for byte, before anything else is looked at.
//!
//! Writes that cannot race: a new connection is written only if its id is free; a reconnect
//! or disconnect only if the connection is still at the version it read (a request that lost
//! the race is refused and changes nothing); a reconnect stores its token under a new secret
//! version that only its own item write points to, then deletes the version before; a
//! disconnect never touches a sync's lease and closes the users so that a sync in flight
//! writes no more of them.

mod answer;
mod credential;
mod error;
mod read;
mod replay;
mod request;
mod resume;
mod store;

pub use answer::{
    optional_scopes, response_json, ConnectAnswer, ConnectResponse, DiscoveryResponse,
    OptionalScopes,
};
pub use error::ConnectError;
pub use read::{
    ConnectionPage, ConnectionView, UserPage, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, MAX_USERS_PAGE,
    MAX_USERS_PAGE_BYTES,
};
pub use request::{
    ConnectCommand, ConnectInput, MAX_ORGANIZATIONS_PER_REQUEST, MAX_REQUEST_BYTES,
    MAX_TENANT_ID_CHARS, MAX_TOKEN_BYTES,
};

use crate::clock::Clock;
use crate::connection::{Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, TokenRef};
use crate::discover::{discover, DiscoveryScope};
use crate::make::MakeApi;
use crate::organization::OrganizationId;
use crate::ports::{
    ConnectionStore, QueueError, RequestLog, SecretError, SecretStore, SyncQueue, SyncRunStore,
    UserStore,
};
use crate::queue::SyncRequest;
use crate::run::{RunId, SyncReason};
use crate::tenant::TenantId;
use crate::token::ApiToken;
use serde_json::Value;
use std::sync::Arc;

/// Attempts at deleting a token version no connection names any more.
const FORGET_ATTEMPTS: u32 = 3;

#[derive(Clone)]
pub struct ConnectService {
    connections: Arc<dyn ConnectionStore>,
    users: Arc<dyn UserStore>,
    /// Where `status` reads a connection's newest run; without it, `status` has no `lastRun`.
    runs: Option<Arc<dyn SyncRunStore>>,
    /// Where answers to requests with a `requestId` are kept; without it, none is.
    requests: Option<Arc<dyn RequestLog>>,
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
            runs: None,
            requests: None,
            secrets,
            queue,
            make,
            clock,
        }
    }

    /// Where `status` reads each connection's newest run.
    pub fn with_runs(mut self, runs: Arc<dyn SyncRunStore>) -> Self {
        self.runs = Some(runs);
        self
    }

    /// Parses and runs one invocation payload; the result's JSON is [`response_json`].
    pub async fn handle_payload(&self, payload: &Value) -> Result<ConnectAnswer, ConnectError> {
        let (request, payload) = replay::split_request_id(payload)?;
        let command = ConnectCommand::parse(&payload)?;
        self.handle_once(command, request, &payload)
            .await
            .map_err(ConnectError::for_caller)
    }

    /// Where the answers of requests that name a `requestId` are kept, so that the same
    /// request sent again answers as the first did.
    pub fn with_request_log(mut self, requests: Arc<dyn RequestLog>) -> Self {
        self.requests = Some(requests);
        self
    }

    /// The same service, its requests to Make bounded by `deadline` (on the clock's monotonic
    /// scale): an invocation answers before its function's timeout, with an error when Make
    /// is too slow. Make is asked before anything is stored, so running out of time there
    /// leaves nothing behind.
    pub fn with_make_deadline(&self, deadline: std::time::Duration) -> Self {
        Self {
            make: self.make.with_deadline(deadline),
            ..self.clone()
        }
    }

    pub async fn handle(&self, command: ConnectCommand) -> Result<ConnectAnswer, ConnectError> {
        Ok(match command {
            ConnectCommand::Connect(input) => ConnectAnswer::Connection(self.connect(input).await?),
            ConnectCommand::Sync {
                connection_id,
                tenant_id,
            } => ConnectAnswer::Connection(self.sync_now(&tenant_id, &connection_id).await?),
            ConnectCommand::Resume {
                connection_id,
                tenant_id,
            } => ConnectAnswer::Connection(self.resume(&tenant_id, &connection_id).await?),
            ConnectCommand::Disconnect {
                connection_id,
                tenant_id,
                purge,
            } => {
                ConnectAnswer::Connection(self.disconnect(&tenant_id, &connection_id, purge).await?)
            }
            ConnectCommand::Discover {
                tenant_id,
                host,
                token,
                instance,
            } => ConnectAnswer::Discovery(self.discover(&tenant_id, &host, token, instance).await?),
            ConnectCommand::Status {
                connection_id,
                tenant_id,
            } => ConnectAnswer::Status(Box::new(self.status(&tenant_id, &connection_id).await?)),
            ConnectCommand::Users {
                connection_id,
                tenant_id,
                after,
                limit,
            } => ConnectAnswer::Users(self.users(&tenant_id, &connection_id, after, limit).await?),
            ConnectCommand::List {
                tenant_id,
                cursor,
                limit,
            } => ConnectAnswer::List(self.list(&tenant_id, cursor.as_ref(), limit).await?),
            credential => ConnectAnswer::Credential(self.handle_credential(credential).await?),
        })
    }

    /// The actions about a credential: several organizations with one token, its rotation,
    /// its disconnection, a White Label instance followed.
    async fn handle_credential(
        &self,
        command: ConnectCommand,
    ) -> Result<credential::CredentialResponse, ConnectError> {
        match command {
            ConnectCommand::ConnectSeveral {
                tenant_id,
                token,
                organizations,
            } => {
                self.connect_several(&tenant_id, token, &organizations)
                    .await
            }
            ConnectCommand::DisconnectCredential {
                credential_id,
                tenant_id,
                purge,
            } => {
                self.disconnect_credential(&tenant_id, &credential_id, purge)
                    .await
            }
            ConnectCommand::Rotate {
                tenant_id,
                credential_id,
                token,
            } => self.rotate(&tenant_id, &credential_id, token).await,
            ConnectCommand::ConnectInstance {
                tenant_id,
                host,
                token,
                auto_connect,
            } => {
                self.connect_instance(&tenant_id, &host, token, auto_connect)
                    .await
            }
            other => unreachable!("not a credential action: {other:?}"),
        }
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

    pub async fn connect(&self, mut input: ConnectInput) -> Result<ConnectResponse, ConnectError> {
        let host = self.make.allowlist().admit(&input.host)?;
        let existing = match &input.connection_id {
            Some(id) => Some(self.existing(&input.tenant_id, id).await?),
            // The tenant's connection of this organization, if it has one: a connect asked
            // twice (a retry after a timeout) answers it, never a second connection.
            None => {
                self.connection_of(&input.tenant_id, &host, input.organization_id)
                    .await?
            }
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
            // A connection still on its credential changes token with it (`rotate`); one that
            // left it (disconnected) is connected again on a token of its own.
            if let (Some(credential), true) = (
                &existing.credential_id,
                existing.status != ConnectionStatus::Disconnected,
            ) {
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
        input.teams_readable = scopes
            .as_ref()
            .and_then(|scopes| scopes.get(crate::make::TEAMS_SCOPE).copied());

        let (connection, replaced) = self
            .store_connection(&input, &host, &organization, existing.as_ref())
            .await?;
        if let Some(replaced) = &replaced {
            // The item names the new version now: the old token goes at once.
            self.forget_token(replaced).await;
        }
        let id = connection.id.clone();
        tracing::info!(connection_id = %id, tenant_id = %connection.tenant_id, host = %host, organization_id = %input.organization_id, reconnected = replaced.is_some(), "connection stored");
        let enqueued = self.enqueue(&id, SyncReason::Connected).await;
        Ok(ConnectResponse {
            sync_enqueued: enqueued.is_ok(),
            run_id: enqueued.as_ref().ok().copied(),
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
        connection.teams_readable = input.teams_readable;
        if !self.connections.create_connection(&connection).await? {
            // 122 random bits collided, or a store replayed a write: never overwrite.
            return Err(ConnectError::Conflict {
                id: connection.id.clone(),
            });
        }
        Ok(connection)
    }

    /// Points an existing connection at a new token of its own (one that left its credential
    /// no longer uses the credential's) and resumes it, if nothing changed it since it was
    /// read.
    async fn reconnect(
        &self,
        existing: &Connection,
        secret: &TokenRef,
        organization: &crate::make::OrganizationSummary,
        teams_readable: Option<Option<bool>>,
    ) -> Result<Connection, ConnectError> {
        let mut update = match existing.credential_id {
            Some(_) => ConnectionUpdate::reconnect_detached,
            None => ConnectionUpdate::reconnect,
        }(
            secret.version.clone(),
            Some(organization.name.clone()),
            organization.zone.clone(),
        );
        update.teams_readable = teams_readable;
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
        let run_id = self
            .enqueue(id, SyncReason::OnDemand)
            .await
            .map_err(|error| ConnectError::Queue(QueueError::Unavailable(error)))?;
        Ok(ConnectResponse {
            sync_enqueued: true,
            run_id: Some(run_id),
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

    /// The tenant's connection of `organization` on `host` that a new connect takes up:
    /// active, paused or disconnected (not one whose users were erased), the oldest if there
    /// are several.
    async fn connection_of(
        &self,
        tenant: &TenantId,
        host: &crate::host::MakeHost,
        organization: OrganizationId,
    ) -> Result<Option<Connection>, ConnectError> {
        let connections = self.connections.list_tenant_connections(tenant).await?;
        Ok(store::oldest_of(&connections, host, organization).cloned())
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

    /// Queues one sync and answers the id its run will be recorded under; the error says
    /// what happened and what the caller can do.
    async fn enqueue(&self, id: &ConnectionId, reason: SyncReason) -> Result<RunId, String> {
        let run_id = RunId::generate();
        let request = SyncRequest::new(id.clone(), reason, self.clock.wall()).with_run_id(run_id);
        let error = match self.queue.enqueue(std::slice::from_ref(&request)).await {
            Ok(failures) if failures.is_empty() => return Ok(run_id),
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
