//! Several organizations on one token: connect them together under one credential (one
//! secret), rotate that token once for all of them, and let the last disconnect delete it.

use super::{ConnectError, ConnectService};
use crate::connection::{Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, TokenRef};
use crate::credential::{Credential, CredentialId};
use crate::discover::{discover, DiscoveryScope};
use crate::error::{ErrorKind, ErrorReport};
use crate::host::MakeHost;
use crate::make::{MakeError, OrganizationSummary};
use crate::organization::OrganizationId;
use crate::ports::SecretError;
use crate::run::{RunId, SyncReason};
use crate::tenant::TenantId;
use crate::token::ApiToken;
use serde::Serialize;

/// How many times a change to a credential's list of connections is tried again when another
/// request changed the credential in between.
const CREDENTIAL_WRITE_ATTEMPTS: u32 = 8;

/// A listed connection with no item is taken for one whose creation failed only once the
/// credential is older than any connect request can run (the connect function's timeout is
/// 60 s): before that it may still be being created.
const PHANTOM_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// The pause before attempt `attempt + 1` of a credential write another request won: random,
/// up to 25 ms doubled per attempt, so that requests racing for one credential spread out.
fn write_backoff(attempt: u32) -> std::time::Duration {
    let ceiling = 25u64 << attempt.min(6);
    std::time::Duration::from_millis(fastrand::u64(1..=ceiling))
}

/// An organization Make confirmed: its place in the request, host, id and summary.
pub(super) type Confirmed = (usize, MakeHost, OrganizationId, OrganizationSummary);

/// The answer to connecting several organizations, a rotation or following an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialResponse {
    /// The credential that holds the token; `None` when no organization could be connected
    /// (nothing is stored then).
    pub credential_id: Option<CredentialId>,
    /// One result per organization, in the order asked (or the instance's, by id).
    pub organizations: Vec<OrganizationResult>,
    /// Following a White Label instance: whether new organizations are connected at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_connect: Option<bool>,
    /// Following a White Label instance without `autoConnect`: its organizations not
    /// connected, to connect with {"organizations": [...]} and this token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<Vec<u64>>,
    /// Following a White Label instance: organizations the tenant disconnected, which
    /// following the instance never connects again (connect one explicitly to sync it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Vec<u64>>,
    /// Something the caller should know about the answer (e.g. the instance was followed
    /// already, and the token given was not stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What became of one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationResult {
    pub organization_id: u64,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<ConnectionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    pub sync_enqueued: bool,
    /// The id the queued sync's run is recorded under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// Why it is not connected (or not synced), and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

impl OrganizationResult {
    pub(crate) fn refused(host: &str, organization: OrganizationId, error: ErrorReport) -> Self {
        Self {
            organization_id: organization.get(),
            host: host.to_string(),
            connection_id: None,
            status: None,
            organization_name: None,
            sync_enqueued: false,
            run_id: None,
            error: Some(error),
        }
    }

    /// A connection of the credential as it stands, no sync queued for it.
    pub(crate) fn listed(connection: &Connection) -> Self {
        Self {
            sync_enqueued: false,
            run_id: None,
            error: None,
            ..Self::connected(connection, Err(String::new()))
        }
    }

    pub(crate) fn connected(connection: &Connection, enqueued: Result<RunId, String>) -> Self {
        Self {
            organization_id: connection.organization_id.get(),
            host: connection.host.to_string(),
            connection_id: Some(connection.id.clone()),
            status: Some(connection.status),
            organization_name: connection.organization_name.clone(),
            sync_enqueued: enqueued.is_ok(),
            run_id: enqueued.as_ref().ok().copied(),
            error: enqueued
                .err()
                .map(|message| ErrorReport::new(ErrorKind::Transient, message)),
        }
    }
}

/// A refusal by Make on `host`, said so that the customer knows which host and what to do.
/// A token refused on another zone than the one it was given for may be valid only there
/// (undocumented, notes "Finding organizations").
pub(crate) fn refusal_on(host: &MakeHost, first_host: &MakeHost, error: &MakeError) -> ErrorReport {
    let mut message = format!("on {host}: {error}");
    if error.kind() == ErrorKind::Auth && host != first_host {
        message.push_str(&format!(
            " — a Make token may work only on the zone it was created on: create a token on {host} and connect this organization with it"
        ));
    }
    ErrorReport::new(error.kind(), message)
}

impl ConnectService {
    /// Checks each organization with Make on its own host, then stores the token once — one
    /// credential — and one connection per organization Make confirmed, each queued for its
    /// first sync. An organization Make refuses is answered with why; the others connect.
    pub(crate) async fn connect_several(
        &self,
        tenant: &TenantId,
        token: ApiToken,
        organizations: &[(String, OrganizationId)],
    ) -> Result<CredentialResponse, ConnectError> {
        let (mut results, confirmed) = self.confirm_each(&token, organizations).await;
        // An organization the tenant has a connection of is answered as that connection.
        let (taken_up, answered_credential, confirmed) =
            self.take_up_connected(tenant, &token, confirmed).await?;
        for (index, result) in taken_up {
            results[index] = Some(result);
        }
        let Some(first_host) = confirmed.first().map(|(_, host, _, _)| host.clone()) else {
            return Ok(CredentialResponse {
                credential_id: answered_credential,
                organizations: results.into_iter().flatten().collect(),
                auto_connect: None,
                available: None,
                excluded: None,
                note: None,
            });
        };

        let credential_id = CredentialId::generate();
        let mut ids = Vec::with_capacity(confirmed.len());
        for (_, host, organization, _) in &confirmed {
            ids.push(self.new_connection_id(tenant, host, *organization).await?);
        }
        let secret = credential_id.new_token_version();
        self.secrets.put_token(&secret, &token).await?;
        let mut credential = Credential::new(
            tenant.clone(),
            first_host,
            &secret,
            credential_id.clone(),
            self.clock.wall(),
        );
        credential.connections = ids.iter().cloned().collect();
        match self.connections.create_credential(&credential).await {
            Ok(true) => {}
            Ok(false) => {
                self.forget_token(&secret).await;
                return Err(ConnectError::Conflict { id: ids[0].clone() });
            }
            Err(e) => {
                self.forget_token(&secret).await;
                return Err(e.into());
            }
        }
        let mut answered_credentials = std::collections::BTreeSet::new();
        for ((index, host, organization, summary), id) in confirmed.into_iter().zip(ids) {
            let mut connection =
                Connection::new(id, tenant.clone(), host, organization, self.clock.wall());
            connection.credential_id = Some(credential_id.clone());
            connection.organization_name = Some(summary.name.clone());
            connection.zone = summary.zone.clone();
            let (result, of_credential) = self
                .create_of_credential(&credential_id, &connection, &token, &summary)
                .await;
            answered_credentials.extend(of_credential);
            results[index] = Some(result);
        }
        // The request that lost a race for every organization answers the winner's credential
        // (its own went with its last connection).
        let credential_id = match answered_credentials.len() {
            1 if !answered_credentials.contains(&credential_id) => {
                answered_credentials.pop_first().unwrap_or(credential_id)
            }
            _ => credential_id,
        };
        Ok(CredentialResponse {
            credential_id: Some(credential_id),
            organizations: results.into_iter().flatten().collect(),
            auto_connect: None,
            available: None,
            excluded: None,
            note: None,
        })
    }

    /// Stores `connection`, one of a new credential, and queues its first sync. When its id
    /// is taken — an identical request stored it first — it comes off the credential and the
    /// connection that holds the id is answered instead. Returns the answer and the
    /// credential of the connection answered.
    async fn create_of_credential(
        &self,
        credential_id: &CredentialId,
        connection: &Connection,
        token: &ApiToken,
        summary: &OrganizationSummary,
    ) -> (OrganizationResult, Option<CredentialId>) {
        let stored = self.connections.create_connection(connection).await;
        if let Ok(true) = stored {
            tracing::info!(connection_id = %connection.id, credential_id = %credential_id, tenant_id = %connection.tenant_id, host = %connection.host, organization_id = %connection.organization_id, "connection stored");
            let enqueued = self.enqueue(&connection.id, SyncReason::Connected).await;
            return (
                OrganizationResult::connected(connection, enqueued),
                Some(credential_id.clone()),
            );
        }
        if let Err(error) = self.leave_credential(credential_id, connection).await {
            tracing::error!(credential_id = %credential_id, connection_id = %connection.id, error = %error, "could not take the connection that was not stored off its credential");
        }
        if let Ok(false) = stored {
            let taken = self
                .connections
                .get_tenant_connection(&connection.tenant_id, &connection.id)
                .await;
            if let Ok(Some(taken)) = taken {
                let result = self.take_up(&taken, token, summary).await;
                return (result, taken.credential_id);
            }
        }
        let refused = OrganizationResult::refused(
            connection.host.as_str(),
            connection.organization_id,
            ErrorReport::new(
                ErrorKind::Transient,
                "the connection could not be stored — send the request again for this organization",
            ),
        );
        (refused, None)
    }

    /// Checks each organization with Make on its own host: the results of those refused (in
    /// the order asked, `None` where confirmed) and the confirmed ones with what Make said.
    async fn confirm_each(
        &self,
        token: &ApiToken,
        organizations: &[(String, OrganizationId)],
    ) -> (Vec<Option<OrganizationResult>>, Vec<Confirmed>) {
        let mut results: Vec<Option<OrganizationResult>> = vec![None; organizations.len()];
        let mut confirmed = Vec::new();
        let mut first_host: Option<MakeHost> = None;
        for (index, (raw_host, organization)) in organizations.iter().enumerate() {
            let host = match self.make.allowlist().admit(raw_host) {
                Ok(host) => host,
                Err(e) => {
                    let error = ErrorReport::new(ErrorKind::InvalidInput, e.to_string());
                    // Cut like every echoed value: the caller's input is not answered at length.
                    results[index] = Some(OrganizationResult::refused(
                        &crate::excerpt::excerpt(raw_host.trim()),
                        *organization,
                        error,
                    ));
                    continue;
                }
            };
            let first = first_host.get_or_insert_with(|| host.clone()).clone();
            if !host.same_family(&first) {
                // The token is not sent there: a White Label host is someone else's server.
                let error = ErrorReport::new(
                    ErrorKind::InvalidInput,
                    format!("not sent to {host}: one token is sent to Make's own zones or to one White Label host, and this request's first organization is on {first} — connect the organizations of {host} in a request of their own, with a token of that host"),
                );
                results[index] = Some(OrganizationResult::refused(
                    host.as_str(),
                    *organization,
                    error,
                ));
                continue;
            }
            match self.confirm(&host, *organization, token).await {
                Ok(summary) => confirmed.push((index, host, *organization, summary)),
                Err(error) => {
                    results[index] = Some(OrganizationResult::refused(
                        host.as_str(),
                        *organization,
                        refusal_on(&host, &first, &error),
                    ))
                }
            }
        }
        (results, confirmed)
    }

    /// What connect confirms with Make before storing a connection: the organization, its
    /// zone, and that the token may read its users.
    pub(crate) async fn confirm(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        token: &ApiToken,
    ) -> Result<OrganizationSummary, MakeError> {
        let client = self.make.client(host, organization, token.clone())?;
        let summary = client.get_organization(organization).await?;
        client.check_user_access(organization).await?;
        Ok(summary)
    }

    /// A new token for every connection of the credential: checked with Make for each of
    /// them first (nothing changes if one refuses), stored as the credential's next secret
    /// version in one conditional write, the version before deleted; paused connections of
    /// the credential resume, and each is queued for a sync.
    pub(crate) async fn rotate(
        &self,
        tenant: &TenantId,
        id: &CredentialId,
        token: ApiToken,
    ) -> Result<CredentialResponse, ConnectError> {
        let credential = self
            .connections
            .get_tenant_credential(tenant, id)
            .await?
            .ok_or(ConnectError::UnknownCredential)?;
        let ids: Vec<ConnectionId> = credential.connections.iter().cloned().collect();
        let mut connections = self.connections.get_connections(&ids).await?;
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        self.confirm_rotation(&credential, &connections, &token)
            .await?;
        let secret = id.new_token_version();
        self.secrets.put_token(&secret, &token).await?;
        let previous = credential.token_ref();
        let mut next = credential.clone();
        next.token_version = secret.version.clone();
        if !self.connections.replace_credential(&next).await? {
            self.forget_token(&secret).await;
            return Err(ConnectError::CredentialConflict);
        }
        self.forget_token(&previous).await;
        tracing::info!(credential_id = %id, tenant_id = %tenant, connections = connections.len(), "credential rotated");
        let mut organizations = Vec::new();
        for mut connection in connections {
            if connection.status == ConnectionStatus::Paused {
                let update = ConnectionUpdate::reconnect(None, None, None);
                if self
                    .connections
                    .update_connection(&connection.id, connection.version, &update)
                    .await?
                {
                    connection.apply_update(&update);
                }
            }
            let enqueued = if connection.status == ConnectionStatus::Active {
                self.enqueue(&connection.id, SyncReason::Connected).await
            } else {
                Err(format!(
                    "connection {} is {}",
                    connection.id,
                    connection.status.as_str()
                ))
            };
            organizations.push(OrganizationResult::connected(&connection, enqueued));
        }
        Ok(CredentialResponse {
            credential_id: Some(id.clone()),
            organizations,
            auto_connect: credential.instance.as_ref().map(|i| i.auto_connect),
            available: credential
                .instance
                .as_ref()
                .map(|i| i.available.iter().copied().collect()),
            excluded: credential
                .instance
                .as_ref()
                .map(|i| i.excluded.iter().copied().collect()),
            note: None,
        })
    }

    /// Whether the new token serves everything the credential does. For an instance
    /// credential: the instance itself — the token lists it (`admin:read`) and the list holds
    /// every organization the credential connects — since an administrator's token may not be
    /// let read an organization's data at all, and one whose API Make disabled refuses every
    /// token. Otherwise: each organization still connected (active or paused), any refusal
    /// refusing the rotation and listing them all; a disconnected one is not asked.
    async fn confirm_rotation(
        &self,
        credential: &Credential,
        connections: &[Connection],
        token: &ApiToken,
    ) -> Result<(), ConnectError> {
        if credential.instance.is_some() {
            return self.confirm_instance(credential, connections, token).await;
        }
        let mut refusals = Vec::new();
        for connection in connections.iter().filter(|c| {
            matches!(
                c.status,
                ConnectionStatus::Active | ConnectionStatus::Paused
            )
        }) {
            if let Err(error) = self
                .confirm(&connection.host, connection.organization_id, token)
                .await
            {
                refusals.push(refusal_on(&connection.host, &credential.host, &error));
            }
        }
        if let Some(first) = refusals.first() {
            return Err(ConnectError::RotationRefused {
                kind: first.kind,
                refusals: refusals.iter().map(|r| r.message.clone()).collect(),
            });
        }
        Ok(())
    }

    /// The new token lists the instance the credential follows, with every organization it
    /// connects (a token of another instance on the same host does not).
    async fn confirm_instance(
        &self,
        credential: &Credential,
        connections: &[Connection],
        token: &ApiToken,
    ) -> Result<(), ConnectError> {
        let listed = discover(
            &self.make,
            &credential.host,
            token.clone(),
            DiscoveryScope::Instance,
        )
        .await?;
        let missing: Vec<String> = connections
            .iter()
            .filter(|c| !listed.iter().any(|o| o.id == c.organization_id.get()))
            .map(|c| c.organization_id.to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConnectError::RotationRefused {
            kind: ErrorKind::Permission,
            refusals: vec![format!(
                "the new token's instance on {} does not list organization(s) {} that this credential connects — use a token of an administrator of the same instance",
                credential.host,
                missing.join(", ")
            )],
        })
    }

    /// Follows a White Label instance with an administrator's token: checks it lists the
    /// instance (`admin:read`), stores it once as an instance credential, and applies the
    /// first discovery at once — each organization connected (`autoConnect`) and queued for
    /// its first sync, or listed as available. Asked again for an instance the tenant follows
    /// already, it answers that credential as it is and stores nothing (the token is changed
    /// with `rotate`).
    pub(crate) async fn connect_instance(
        &self,
        tenant: &TenantId,
        host: &str,
        token: ApiToken,
        auto_connect: bool,
    ) -> Result<CredentialResponse, ConnectError> {
        let host = self.make.allowlist().admit(host)?;
        let listed = discover(&self.make, &host, token.clone(), DiscoveryScope::Instance).await?;
        if let Some(existing) = self.followed_instance(tenant, &host).await? {
            return self.instance_state(&existing).await;
        }
        let id = CredentialId::generate();
        let secret = id.new_token_version();
        self.secrets.put_token(&secret, &token).await?;
        let mut credential =
            Credential::new(tenant.clone(), host, &secret, id.clone(), self.clock.wall());
        credential.instance = Some(crate::credential::InstanceFollow {
            auto_connect,
            ..Default::default()
        });
        if !self.connections.create_credential(&credential).await? {
            self.forget_token(&secret).await;
            return Err(ConnectError::CredentialConflict);
        }
        let follower = crate::instance::InstanceFollower::new(
            self.connections.clone(),
            self.users.clone(),
            self.secrets.clone(),
            self.make.clone(),
            self.clock.clone(),
        );
        let changes = follower.apply(&credential, listed).await?;
        tracing::info!(credential_id = %id, tenant_id = %tenant, host = %credential.host, auto_connect, "White Label instance followed");
        let mut organizations = Vec::new();
        for (_, connection_id) in &changes.connected {
            let Some(connection) = self.connections.get_connection(connection_id).await? else {
                continue;
            };
            let enqueued = if connection.status == ConnectionStatus::Active {
                self.enqueue(&connection.id, SyncReason::Connected).await
            } else {
                Err(connection.status_reason.as_ref().map_or_else(
                    || connection.status.as_str().to_string(),
                    |r| r.message.clone(),
                ))
            };
            organizations.push(OrganizationResult::connected(&connection, enqueued));
        }
        Ok(CredentialResponse {
            credential_id: Some(id),
            organizations,
            auto_connect: Some(auto_connect),
            available: Some(changes.available),
            excluded: Some(changes.excluded),
            note: None,
        })
    }

    /// The tenant's instance credential for `host`, if it follows that instance already.
    async fn followed_instance(
        &self,
        tenant: &TenantId,
        host: &MakeHost,
    ) -> Result<Option<Credential>, ConnectError> {
        Ok(self
            .connections
            .list_instance_credentials()
            .await?
            .into_iter()
            .find(|c| &c.tenant_id == tenant && &c.host == host))
    }

    /// An instance credential as it stands: its connections, what is available and what the
    /// tenant excluded. Nothing is queued.
    async fn instance_state(
        &self,
        credential: &Credential,
    ) -> Result<CredentialResponse, ConnectError> {
        let ids: Vec<ConnectionId> = credential.connections.iter().cloned().collect();
        let mut connections = self.connections.get_connections(&ids).await?;
        connections.sort_by_key(|c| c.organization_id.get());
        let organizations = connections.iter().map(OrganizationResult::listed).collect();
        let follow = credential.instance.clone().unwrap_or_default();
        Ok(CredentialResponse {
            credential_id: Some(credential.id.clone()),
            organizations,
            auto_connect: Some(follow.auto_connect),
            available: Some(follow.available.into_iter().collect()),
            excluded: Some(follow.excluded.into_iter().collect()),
            note: Some(format!(
                "this tenant follows the instance on {} already, with this credential; nothing was stored — change its token with {{\"action\": \"rotate\", \"credentialId\": \"{}\", \"token\"}}",
                credential.host, credential.id
            )),
        })
    }

    /// Disconnects every connection of the credential (erasing their users with `purge`)
    /// and deletes it with its token.
    pub(crate) async fn disconnect_credential(
        &self,
        tenant: &TenantId,
        id: &CredentialId,
        purge: bool,
    ) -> Result<CredentialResponse, ConnectError> {
        let credential = self
            .connections
            .get_tenant_credential(tenant, id)
            .await?
            .ok_or(ConnectError::UnknownCredential)?;
        let mut organizations = Vec::new();
        for connection_id in self.connections_naming(&credential).await? {
            let answer = match self.disconnect(tenant, &connection_id, purge).await {
                Ok(answer) => answer,
                // Listed, but never stored (its creation failed): nothing to disconnect.
                Err(ConnectError::UnknownConnection(_)) => continue,
                Err(error) => return Err(error),
            };
            if let Some(connection) = self.connections.get_connection(&connection_id).await? {
                let mut result = OrganizationResult::listed(&connection);
                result.status = Some(answer.status);
                organizations.push(result);
            }
        }
        // Whatever is left of it (an instance credential outlives its connections): the
        // secret first, so that a failure leaves the item that names it for the retry.
        for attempt in 0..CREDENTIAL_WRITE_ATTEMPTS {
            if attempt > 0 {
                self.clock.sleep(write_backoff(attempt)).await;
            }
            let Some(current) = self.connections.get_credential(id).await? else {
                break;
            };
            self.delete_secret(&current.token_ref()).await?;
            if self
                .connections
                .delete_credential(id, current.version)
                .await?
            {
                break;
            }
        }
        tracing::info!(credential_id = %id, tenant_id = %tenant, purge, "credential disconnected");
        Ok(CredentialResponse {
            credential_id: Some(id.clone()),
            organizations,
            auto_connect: None,
            available: None,
            excluded: None,
            note: None,
        })
    }

    /// Every connection of the credential: those it lists and those of its tenant that name
    /// it without being listed (left by a write that failed part-way), so that a disconnect
    /// of the credential reaches them all.
    async fn connections_naming(
        &self,
        credential: &Credential,
    ) -> Result<Vec<ConnectionId>, ConnectError> {
        let mut ids = credential.connections.clone();
        for connection in self
            .connections
            .list_tenant_connections(&credential.tenant_id)
            .await?
        {
            if connection.credential_id.as_ref() == Some(&credential.id) {
                ids.insert(connection.id);
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Takes a disconnected connection off its credential — and, on an instance credential,
    /// remembers its organization as excluded, so that following the instance never connects
    /// it again; the last one out of an ordinary credential deletes the token's secret, then
    /// the credential. Tried again, with a growing random pause, while other requests change
    /// the credential; a failure is the caller's to report (the disconnect is asked again).
    pub(crate) async fn leave_credential(
        &self,
        id: &CredentialId,
        connection: &Connection,
    ) -> Result<(), ConnectError> {
        for attempt in 0..CREDENTIAL_WRITE_ATTEMPTS {
            if attempt > 0 {
                self.clock.sleep(write_backoff(attempt)).await;
            }
            let Some(current) = self.connections.get_credential(id).await? else {
                return Ok(());
            };
            let Some(next) = self.without(&current, connection).await? else {
                return Ok(());
            };
            let last = next.connections.is_empty() && next.instance.is_none();
            if last {
                // The secret first: while the item names it, a retry can still find it.
                self.delete_secret(&current.token_ref()).await?;
                if self
                    .connections
                    .delete_credential(id, current.version)
                    .await?
                {
                    tracing::info!(credential_id = %id, "credential deleted with its last connection");
                    return Ok(());
                }
            } else if self.connections.replace_credential(&next).await? {
                return Ok(());
            }
        }
        Err(ConnectError::CredentialConflict)
    }

    /// The credential without `connection` (and, for an instance, with its organization
    /// excluded); `None` when there is nothing to change. An ordinary credential older than a
    /// connect request can take also drops the ids it lists that have no connection (one
    /// whose creation failed), so that they cannot keep its token alive.
    async fn without(
        &self,
        credential: &Credential,
        connection: &Connection,
    ) -> Result<Option<Credential>, ConnectError> {
        let mut next = credential.clone();
        let mut changed = next.connections.remove(&connection.id);
        if let Some(follow) = next.instance.as_mut() {
            changed |= follow.excluded.insert(connection.organization_id.get());
        }
        if !changed {
            return Ok(None);
        }
        let settled = self.clock.wall() - credential.created_at > PHANTOM_AFTER;
        if next.instance.is_none() && !next.connections.is_empty() && settled {
            let ids: Vec<ConnectionId> = next.connections.iter().cloned().collect();
            let stored = self.connections.get_connections(&ids).await?;
            next.connections = stored.into_iter().map(|c| c.id).collect();
        }
        Ok(Some(next))
    }

    pub(crate) async fn delete_secret(&self, secret: &TokenRef) -> Result<(), ConnectError> {
        match self.secrets.delete_token(secret).await {
            Ok(()) | Err(SecretError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
