//! Storing what a connect confirmed with Make, so that a connect asked twice — one after the
//! other, or both at once — leaves one connection with one token.

use super::credential::{Confirmed, OrganizationResult};
use super::{ConnectError, ConnectInput, ConnectService};
use crate::connection::{Connection, ConnectionId, ConnectionStatus, TokenRef};
use crate::credential::CredentialId;
use crate::host::MakeHost;
use crate::make::OrganizationSummary;
use crate::organization::OrganizationId;
use crate::run::SyncReason;
use crate::tenant::TenantId;
use crate::token::ApiToken;
use std::collections::BTreeSet;

/// What a connect of several finds connected already: the answers by the request's index, the
/// one credential they belong to, and the organizations left to connect.
pub(super) type TakenUp = (
    Vec<(usize, OrganizationResult)>,
    Option<CredentialId>,
    Vec<Confirmed>,
);

/// Derived ids tried for a tenant's organization, one per connection of it whose users were
/// erased; past them, a random id.
const ID_GENERATIONS: u32 = 16;

impl ConnectService {
    /// Stores the connection Make confirmed, its token under a version of its own that only
    /// this request's item write names: `existing` updated at the version read; otherwise a
    /// new connection under the id derived for the tenant's organization — or, when an
    /// identical connect stored that one first, that one with this request's token. Returns
    /// the connection and the token version it no longer names (for the caller to delete).
    pub(super) async fn store_connection(
        &self,
        input: &ConnectInput,
        host: &MakeHost,
        organization: &OrganizationSummary,
        existing: Option<&Connection>,
    ) -> Result<(Connection, Option<TokenRef>), ConnectError> {
        if let Some(existing) = existing {
            let connection = self
                .replace_token(
                    existing,
                    &input.token,
                    organization,
                    Some(input.teams_readable),
                )
                .await?;
            return Ok((connection, Some(existing.token_ref())));
        }
        for generation in 0..ID_GENERATIONS {
            let derived = ConnectionId::for_tenant_organization(
                &input.tenant_id,
                host,
                input.organization_id,
                generation,
            );
            let secret = TokenRef::new_version(&derived);
            self.secrets.put_token(&secret, &input.token).await?;
            match self.create(input, host, &secret, organization).await {
                Ok(connection) => return Ok((connection, None)),
                Err(ConnectError::Conflict { .. }) => self.forget_token(&secret).await,
                Err(error) => {
                    self.forget_token(&secret).await;
                    return Err(error);
                }
            }
            // The id is taken: by an identical connect that stored it first (taken up), or by
            // a connection whose users were erased (the next id is tried).
            match self
                .connections
                .get_tenant_connection(&input.tenant_id, &derived)
                .await?
            {
                Some(taken)
                    if matches!(
                        taken.status,
                        ConnectionStatus::Erasing | ConnectionStatus::Erased
                    ) =>
                {
                    continue;
                }
                Some(taken) if own_token_allowed(&taken) => {
                    let connection = self
                        .replace_token(
                            &taken,
                            &input.token,
                            organization,
                            Some(input.teams_readable),
                        )
                        .await?;
                    return Ok((connection, Some(taken.token_ref())));
                }
                _ => return Err(ConnectError::Conflict { id: derived }),
            }
        }
        // An organization erased that many times: a random id, as before ids were derived (a
        // connect asked twice at once may then make two).
        let random = ConnectionId::generate();
        let secret = TokenRef::new_version(&random);
        self.secrets.put_token(&secret, &input.token).await?;
        match self.create(input, host, &secret, organization).await {
            Ok(connection) => Ok((connection, None)),
            Err(error) => {
                self.forget_token(&secret).await;
                Err(error)
            }
        }
    }

    /// `connection` on `token`, stored under a new version, and active again — only if
    /// nothing changed the connection since it was read; otherwise the new version goes.
    pub(super) async fn replace_token(
        &self,
        connection: &Connection,
        token: &ApiToken,
        organization: &OrganizationSummary,
        teams_readable: Option<Option<bool>>,
    ) -> Result<Connection, ConnectError> {
        let secret = TokenRef::new_version(&connection.id);
        self.secrets.put_token(&secret, token).await?;
        match self
            .reconnect(connection, &secret, organization, teams_readable)
            .await
        {
            Ok(connection) => Ok(connection),
            Err(error) => {
                // A token nobody can find would only be a liability.
                self.forget_token(&secret).await;
                Err(error)
            }
        }
    }

    /// Of the organizations a connect of several confirmed, those the tenant has a connection
    /// of already are answered as that connection — one of its own gets this token, as a
    /// connect of it would; one of a credential keeps its credential's (`rotate` changes it) —
    /// and each is queued for a sync. Returns their answers (by the request's index), the
    /// credential they all belong to if they do (what the request asked again answers as its
    /// `credentialId`), and the organizations left to connect.
    pub(super) async fn take_up_connected(
        &self,
        tenant: &TenantId,
        token: &ApiToken,
        confirmed: Vec<Confirmed>,
    ) -> Result<TakenUp, ConnectError> {
        let connections = self.connections.list_tenant_connections(tenant).await?;
        let mut answered = Vec::new();
        let mut credentials = BTreeSet::new();
        let mut left = Vec::new();
        for (index, host, organization, summary) in confirmed {
            match oldest_of(&connections, &host, organization) {
                Some(existing) => {
                    credentials.insert(existing.credential_id.clone());
                    let result = self.take_up(existing, token, &summary).await;
                    answered.push((index, result));
                }
                None => left.push((index, host, organization, summary)),
            }
        }
        let credential = match credentials.len() {
            1 => credentials.into_iter().next().flatten(),
            _ => None,
        };
        Ok((answered, credential, left))
    }

    /// `existing` answered to a connect of several that named its organization again.
    pub(super) async fn take_up(
        &self,
        existing: &Connection,
        token: &ApiToken,
        organization: &OrganizationSummary,
    ) -> OrganizationResult {
        let connection = if !own_token_allowed(existing) {
            existing.clone()
        } else {
            match self
                .replace_token(existing, token, organization, Some(None))
                .await
            {
                Ok(connection) => {
                    self.forget_token(&existing.token_ref()).await;
                    connection
                }
                Err(error) => {
                    return OrganizationResult::refused(
                        existing.host.as_str(),
                        existing.organization_id,
                        error.report(),
                    )
                }
            }
        };
        let enqueued = if connection.status == ConnectionStatus::Active {
            self.enqueue(&connection.id, SyncReason::Connected).await
        } else {
            Err(format!(
                "connection {} is {}",
                connection.id,
                connection.status.as_str()
            ))
        };
        OrganizationResult::connected(&connection, enqueued)
    }

    /// The id a new connection of the tenant's organization is created under: the derived id
    /// of the first generation no erased connection holds.
    pub(super) async fn new_connection_id(
        &self,
        tenant: &TenantId,
        host: &MakeHost,
        organization: OrganizationId,
    ) -> Result<ConnectionId, ConnectError> {
        for generation in 0..ID_GENERATIONS {
            let id = ConnectionId::for_tenant_organization(tenant, host, organization, generation);
            match self.connections.get_tenant_connection(tenant, &id).await? {
                Some(erased)
                    if matches!(
                        erased.status,
                        ConnectionStatus::Erasing | ConnectionStatus::Erased
                    ) =>
                {
                    continue;
                }
                _ => return Ok(id),
            }
        }
        // An organization erased that many times: a random id.
        Ok(ConnectionId::generate())
    }
}

/// Whether a connect may give `connection` a token of its own: it has one, or it left its
/// credential (disconnected); one still on a credential changes token with it (`rotate`).
fn own_token_allowed(connection: &Connection) -> bool {
    connection.credential_id.is_none() || connection.status == ConnectionStatus::Disconnected
}

/// The tenant's oldest connection of `organization` on `host` that a connect takes up:
/// active, paused or disconnected, not one whose users were erased.
pub(super) fn oldest_of<'a>(
    connections: &'a [Connection],
    host: &MakeHost,
    organization: OrganizationId,
) -> Option<&'a Connection> {
    connections
        .iter()
        .filter(|c| {
            &c.host == host
                && c.organization_id == organization
                && !matches!(
                    c.status,
                    ConnectionStatus::Erasing | ConnectionStatus::Erased
                )
        })
        .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}
