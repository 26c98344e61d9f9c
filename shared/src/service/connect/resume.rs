//! Resuming a paused connection with the token it already has: what the product offers once
//! the customer fixed in Make what paused it (a scope, an access, a plan), without asking them
//! for a token again.

use super::{ConnectError, ConnectResponse, ConnectService};
use crate::connection::{Connection, ConnectionId, ConnectionStatus, ConnectionUpdate};
use crate::run::SyncReason;
use crate::tenant::TenantId;
use crate::token::ApiToken;

impl ConnectService {
    /// Checks the stored token with Make as connect checks a new one (the organization, its
    /// zone, the right to read its users) and, if Make takes it, makes the connection active
    /// again with its failure count started afresh and queues a sync. Make's refusal is
    /// answered as connect answers it, and the connection stays paused: then only a new token,
    /// given with connect (or `rotate` for a credential's), resumes it. An active connection is
    /// answered as it is, with a sync queued; a disconnected one has no token left to check.
    pub async fn resume(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<ConnectResponse, ConnectError> {
        let connection = self.existing(tenant, id).await?;
        match connection.status {
            ConnectionStatus::Paused => {}
            ConnectionStatus::Active => return self.sync_now(tenant, id).await,
            ConnectionStatus::Erasing | ConnectionStatus::Erased => {
                return Err(ConnectError::Erased {
                    id: id.clone(),
                    status: connection.status.as_str(),
                })
            }
            ConnectionStatus::Disconnected => {
                return Err(ConnectError::NotActive {
                    id: id.clone(),
                    status: connection.status.as_str(),
                    reason: connection.status_reason.map(|r| r.message),
                })
            }
        }
        let (organization, token) = self.confirm_stored_token(&connection).await?;
        let connection = match token {
            // Its own token goes under a new version, as a connect's would: a disconnect that
            // deleted the one read meanwhile cannot leave it active on a token that is gone.
            Some(token) => {
                let resumed = self
                    .replace_token(&connection, &token, &organization, None)
                    .await?;
                self.forget_token(&connection.token_ref()).await;
                resumed
            }
            None => {
                let update = ConnectionUpdate::reconnect(
                    connection.token_version.clone(),
                    Some(organization.name.clone()),
                    organization.zone.clone(),
                );
                if !self
                    .connections
                    .update_connection(id, connection.version, &update)
                    .await?
                {
                    return Err(ConnectError::Conflict { id: id.clone() });
                }
                let mut connection = connection;
                connection.apply_update(&update);
                connection
            }
        };
        tracing::info!(connection_id = %id, tenant_id = %tenant, "connection resumed");
        let enqueued = self.enqueue(id, SyncReason::OnDemand).await;
        Ok(ConnectResponse {
            sync_enqueued: enqueued.is_ok(),
            run_id: enqueued.as_ref().ok().copied(),
            sync_error: enqueued.err(),
            ..ConnectResponse::of(&connection)
        })
    }

    /// What Make says of the connection's stored token — its own (returned, to be stored
    /// again under a new version), or its credential's, which serves only the connections it
    /// lists.
    async fn confirm_stored_token(
        &self,
        connection: &Connection,
    ) -> Result<(crate::make::OrganizationSummary, Option<ApiToken>), ConnectError> {
        let (secret, instance) = match &connection.credential_id {
            None => (connection.token_ref(), false),
            Some(credential_id) => {
                let credential = self
                    .connections
                    .get_tenant_credential(&connection.tenant_id, credential_id)
                    .await?
                    .filter(|c| c.connections.contains(&connection.id))
                    .ok_or(ConnectError::UnknownCredential)?;
                (credential.token_ref(), credential.instance.is_some())
            }
        };
        let token = self.secrets.get_token(&secret).await?;
        let client =
            self.make
                .client(&connection.host, connection.organization_id, token.clone())?;
        let client = if instance {
            client.with_instance_token()
        } else {
            client
        };
        let organization = client.get_organization(connection.organization_id).await?;
        client.check_user_access(connection.organization_id).await?;
        let own = connection.credential_id.is_none().then_some(token);
        Ok((organization, own))
    }
}
