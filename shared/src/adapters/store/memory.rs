//! In-memory adapters, for tests and the demo.

use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping, TokenRef,
};
use crate::credential::{Credential, CredentialId};
use crate::error::ErrorReport;
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::{
    ConnectionPage, ConnectionStore, RequestLog, SecretError, SecretStore, StoreError,
    SyncRunStore, UserStore, WriteStamp,
};
use crate::run::SyncRun;
use crate::tenant::TenantId;
use crate::token::ApiToken;
use crate::user::{MakeUserId, StoredUser, UserRecord, UserStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    connections: BTreeMap<ConnectionId, Connection>,
    credentials: BTreeMap<CredentialId, Credential>,
    users: HashMap<ConnectionId, BTreeMap<MakeUserId, UserRecord>>,
    written_by: HashMap<ConnectionId, DateTime<Utc>>,
    /// How many times each connection's users were closed.
    closes: HashMap<ConnectionId, u64>,
    runs: HashMap<ConnectionId, Vec<SyncRun>>,
    user_writes: usize,
    organization_leases: HashMap<(MakeHost, OrganizationId), (ConnectionId, DateTime<Utc>)>,
    /// Answers kept for requests that named a `requestId`, by tenant and id.
    answers: HashMap<(TenantId, String), (String, DateTime<Utc>)>,
}

/// Connections, users and runs in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many user records have been written so far (tests assert "unchanged means no write").
    pub fn user_writes(&self) -> usize {
        self.lock().user_writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn create_connection(&self, connection: &Connection) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.connections.contains_key(&connection.id) {
            return Ok(false);
        }
        state
            .connections
            .insert(connection.id.clone(), connection.clone());
        Ok(true)
    }

    async fn create_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.credentials.contains_key(&credential.id) {
            return Ok(false);
        }
        state
            .credentials
            .insert(credential.id.clone(), credential.clone());
        Ok(true)
    }

    async fn get_credential(&self, id: &CredentialId) -> Result<Option<Credential>, StoreError> {
        Ok(self.lock().credentials.get(id).cloned())
    }

    async fn replace_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.credentials.get_mut(&credential.id) {
            Some(stored) if stored.version == credential.version => {
                *stored = credential.clone();
                stored.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_credential(
        &self,
        id: &CredentialId,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.credentials.get(id) {
            Some(stored) if stored.version == expected_version => {
                state.credentials.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_instance_credentials(&self) -> Result<Vec<Credential>, StoreError> {
        Ok(self
            .lock()
            .credentials
            .values()
            .filter(|c| c.instance.is_some())
            .cloned()
            .collect())
    }

    async fn update_connection(
        &self,
        id: &ConnectionId,
        expected_version: u64,
        update: &ConnectionUpdate,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.connections.get_mut(id) {
            Some(connection) if connection.version == expected_version => {
                connection.apply_update(update);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.lock().connections.get(id).cloned())
    }

    async fn list_tenant_connections(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<Connection>, StoreError> {
        if tenant.is_unowned() {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .connections
            .values()
            .filter(|c| &c.tenant_id == tenant)
            .cloned()
            .collect())
    }

    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError> {
        let state = self.lock();
        let after = cursor
            .map(|c| ConnectionId::parse(&c))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("connection page cursor: {e}")))?;
        let connections: Vec<Connection> = state
            .connections
            .values()
            .filter(|c| after.as_ref().is_none_or(|after| &c.id > after))
            .take(limit.max(1))
            .cloned()
            .collect();
        let next = (connections.len() == limit.max(1))
            .then(|| connections.last().map(|c| c.id.to_string()))
            .flatten();
        Ok(ConnectionPage { connections, next })
    }

    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.connections.get_mut(id) {
            Some(connection) if !connection.is_leased_at(now) => {
                connection.lease_until = Some(until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError> {
        if let Some(connection) = self.lock().connections.get_mut(id) {
            connection.lease_until = None;
        }
        Ok(())
    }

    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let key = (host.clone(), organization);
        match state.organization_leases.get(&key) {
            Some((other, held_until)) if other != holder && *held_until > now => Ok(false),
            _ => {
                state
                    .organization_leases
                    .insert(key, (holder.clone(), until));
                Ok(true)
            }
        }
    }

    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let key = (host.clone(), organization);
        if state
            .organization_leases
            .get(&key)
            .is_some_and(|(held_by, _)| held_by == holder)
        {
            state.organization_leases.remove(&key);
        }
        Ok(())
    }

    async fn record_run(
        &self,
        id: &ConnectionId,
        run: &RunBookkeeping,
    ) -> Result<Option<Connection>, StoreError> {
        let mut state = self.lock();
        match state.connections.get_mut(id) {
            Some(connection) if connection.status == ConnectionStatus::Active => {
                connection.apply(run);
                Ok(Some(connection.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn record_erasure(
        &self,
        id: &ConnectionId,
        deleted: u64,
        finished: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.connections.get_mut(id) {
            Some(connection) if connection.status == ConnectionStatus::Erasing => {
                connection.erased_users += deleted;
                if finished {
                    connection.forget_for_erasure();
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.connections.get_mut(id) {
            Some(connection) if connection.status == expected => {
                connection.status = status;
                connection.status_reason = reason;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let state = self.lock();
        let Some(users) = state.users.get(connection) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(users
            .range((from, Bound::Unbounded))
            .take(limit.max(1))
            .map(|(_, user)| user.clone())
            .collect())
    }

    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError> {
        Ok(self
            .lock()
            .users
            .get(connection)
            .map(|users| {
                users
                    .values()
                    .map(|user| StoredUser {
                        user_id: user.user_id,
                        digest: Some(user.digest()),
                        teams_digest: user.teams_digest(),
                        removed: user.status == UserStatus::Removed,
                        lacks_expiry: false,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError> {
        let state = self.lock();
        let Some(users) = state.users.get(connection) else {
            return Ok(Vec::new());
        };
        Ok(ids.iter().filter_map(|id| users.get(id).cloned()).collect())
    }

    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError> {
        let run_started_at = stamp.started_at;
        let mut state = self.lock();
        let closes = state.closes.get(connection).copied().unwrap_or(0);
        if closes != stamp.closes_seen {
            return Err(StoreError::UsersClosed {
                seen: stamp.closes_seen,
                now: closes,
            });
        }
        if let Some(newer) = state.written_by.get(connection).copied() {
            if newer > run_started_at {
                return Err(StoreError::StaleRun {
                    this: run_started_at,
                    newer,
                });
            }
        }
        state.written_by.insert(connection.clone(), run_started_at);
        state.user_writes += changed.len();
        let users = state.users.entry(connection.clone()).or_default();
        for user in changed {
            users.insert(user.user_id, user.clone());
        }
        // The retention rule, as DynamoDB's TTL applies it.
        if let Some(keep) = stamp.removed_user_retention {
            let expired = run_started_at - keep;
            users.retain(|_, user| user.removed_at.is_none_or(|at| at > expired));
        }
        Ok(())
    }

    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        Ok(self.lock().closes.get(connection).copied().unwrap_or(0))
    }

    async fn close_users(
        &self,
        connection: &ConnectionId,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        *self.lock().closes.entry(connection.clone()).or_insert(0) += 1;
        Ok(())
    }

    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let Some(users) = state.users.get_mut(connection) else {
            return Ok(0);
        };
        let ids: Vec<MakeUserId> = users.keys().take(limit.max(1)).copied().collect();
        for id in &ids {
            users.remove(id);
        }
        Ok(ids.len())
    }
}

#[async_trait]
impl RequestLog for MemoryStore {
    async fn answer_of(
        &self,
        tenant: &TenantId,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .answers
            .get(&(tenant.clone(), request.to_string()))
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(answer, _)| answer.clone()))
    }

    async fn keep_answer(
        &self,
        tenant: &TenantId,
        request: &str,
        answer: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let kept = state
            .answers
            .entry((tenant.clone(), request.to_string()))
            .or_insert_with(|| (answer.to_string(), expires_at));
        if kept.1 <= now {
            *kept = (answer.to_string(), expires_at);
        }
        Ok(())
    }
}

#[async_trait]
impl SyncRunStore for MemoryStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut state = self.lock();
        let runs = state.runs.entry(run.connection_id.clone()).or_default();
        match runs.iter_mut().find(|r| r.run_id == run.run_id) {
            Some(existing) => *existing = run.clone(),
            None => runs.push(run.clone()),
        }
        Ok(())
    }

    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let mut runs = self
            .lock()
            .runs
            .get(connection)
            .cloned()
            .unwrap_or_default();
        runs.sort_by_key(|run| std::cmp::Reverse((run.started_at, run.run_id)));
        runs.truncate(limit);
        Ok(runs)
    }
}

/// Tokens in memory: for tests and the demo. Production uses Secrets Manager.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    tokens: Mutex<HashMap<TokenRef, ApiToken>>,
}

impl MemorySecrets {
    fn lock(&self) -> MutexGuard<'_, HashMap<TokenRef, ApiToken>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many tokens are stored (tests: a disconnect or reconnect leaves no old one).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.lock().insert(secret.clone(), token.clone());
        Ok(())
    }

    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        self.lock()
            .get(secret)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(secret.clone()))
    }

    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        self.lock().remove(secret);
        Ok(())
    }
}
