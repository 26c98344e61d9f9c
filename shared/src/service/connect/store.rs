//! Storing what a connect confirmed with Make, so that a connect asked twice — one after the
//! other, or both at once — leaves one connection with one token.

use super::{ConnectError, ConnectInput, ConnectService};
use crate::connection::{Connection, ConnectionId, ConnectionStatus, TokenRef};
use crate::host::MakeHost;
use crate::make::OrganizationSummary;
use crate::token::ApiToken;

/// Ids tried for a tenant's organization: one per connection of it whose users were erased.
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
                .replace_token(existing, &input.token, organization)
                .await?;
            return Ok((connection, Some(existing.token_ref())));
        }
        let mut id = None;
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
                    id = Some(derived);
                }
                Some(taken) if taken.credential_id.is_none() => {
                    let connection = self
                        .replace_token(&taken, &input.token, organization)
                        .await?;
                    return Ok((connection, Some(taken.token_ref())));
                }
                _ => return Err(ConnectError::Conflict { id: derived }),
            }
        }
        Err(ConnectError::Conflict {
            id: id.unwrap_or_else(ConnectionId::generate),
        })
    }

    /// `connection` on `token`, stored under a new version, and active again — only if
    /// nothing changed the connection since it was read; otherwise the new version goes.
    async fn replace_token(
        &self,
        connection: &Connection,
        token: &ApiToken,
        organization: &OrganizationSummary,
    ) -> Result<Connection, ConnectError> {
        let secret = TokenRef::new_version(&connection.id);
        self.secrets.put_token(&secret, token).await?;
        match self.reconnect(connection, &secret, organization).await {
            Ok(connection) => Ok(connection),
            Err(error) => {
                // A token nobody can find would only be a liability.
                self.forget_token(&secret).await;
                Err(error)
            }
        }
    }
}
