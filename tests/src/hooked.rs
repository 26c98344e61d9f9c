//! A connections port that passes every call to a real store, with a hook around each: a test
//! makes a race land at one exact call (a disconnect right after the worker reads the
//! connection) or makes one call fail (a worker that stops before it records its run), and
//! every other call behaves as the store does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use makesync::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping,
};
use makesync::credential::{Credential, CredentialId};
use makesync::error::ErrorReport;
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionPage, ConnectionStore, StoreError};
use makesync::tenant::TenantId;
use std::sync::Arc;

/// The calls of the connections port a hook can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCall {
    CreateConnection,
    UpdateConnection,
    GetConnection,
    CreateCredential,
    GetCredential,
    ReplaceCredential,
    DeleteCredential,
    ListInstanceCredentials,
    ListTenantConnections,
    ListConnections,
    AcquireLease,
    ReleaseLease,
    AcquireOrganizationLease,
    ReleaseOrganizationLease,
    RecordRun,
    RecordErasure,
    SetStatus,
}

/// What runs around each call. `before` may refuse the call: its error is answered and the
/// store is not called. `after` runs once the store has answered, before the answer is
/// returned. `connection` is the connection the call is about, where it names one.
#[async_trait]
pub trait ConnectionHook: Send + Sync {
    async fn before(
        &self,
        _call: ConnectionCall,
        _connection: Option<&ConnectionId>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn after(&self, _call: ConnectionCall, _connection: Option<&ConnectionId>) {}
}

pub struct HookedConnections {
    inner: Arc<dyn ConnectionStore>,
    hook: Arc<dyn ConnectionHook>,
}

impl HookedConnections {
    pub fn new(inner: Arc<dyn ConnectionStore>, hook: Arc<dyn ConnectionHook>) -> Self {
        Self { inner, hook }
    }

    /// `call` of the store, the hook around it.
    async fn around<T>(
        &self,
        call: ConnectionCall,
        connection: Option<&ConnectionId>,
        store: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.hook.before(call, connection).await?;
        let answer = store.await;
        self.hook.after(call, connection).await;
        answer
    }
}

#[async_trait]
impl ConnectionStore for HookedConnections {
    async fn create_connection(&self, connection: &Connection) -> Result<bool, StoreError> {
        let store = self.inner.create_connection(connection);
        self.around(
            ConnectionCall::CreateConnection,
            Some(&connection.id),
            store,
        )
        .await
    }

    async fn update_connection(
        &self,
        id: &ConnectionId,
        expected_version: u64,
        update: &ConnectionUpdate,
    ) -> Result<bool, StoreError> {
        let store = self.inner.update_connection(id, expected_version, update);
        self.around(ConnectionCall::UpdateConnection, Some(id), store)
            .await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let store = self.inner.get_connection(id);
        self.around(ConnectionCall::GetConnection, Some(id), store)
            .await
    }

    async fn create_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let store = self.inner.create_credential(credential);
        self.around(ConnectionCall::CreateCredential, None, store)
            .await
    }

    async fn get_credential(&self, id: &CredentialId) -> Result<Option<Credential>, StoreError> {
        let store = self.inner.get_credential(id);
        self.around(ConnectionCall::GetCredential, None, store)
            .await
    }

    async fn replace_credential(&self, credential: &Credential) -> Result<bool, StoreError> {
        let store = self.inner.replace_credential(credential);
        self.around(ConnectionCall::ReplaceCredential, None, store)
            .await
    }

    async fn delete_credential(
        &self,
        id: &CredentialId,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let store = self.inner.delete_credential(id, expected_version);
        self.around(ConnectionCall::DeleteCredential, None, store)
            .await
    }

    async fn list_instance_credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let store = self.inner.list_instance_credentials();
        self.around(ConnectionCall::ListInstanceCredentials, None, store)
            .await
    }

    async fn list_tenant_connections(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<Connection>, StoreError> {
        let store = self.inner.list_tenant_connections(tenant);
        self.around(ConnectionCall::ListTenantConnections, None, store)
            .await
    }

    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError> {
        let store = self.inner.list_connections(cursor, limit);
        self.around(ConnectionCall::ListConnections, None, store)
            .await
    }

    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let store = self.inner.acquire_lease(id, now, until);
        self.around(ConnectionCall::AcquireLease, Some(id), store)
            .await
    }

    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError> {
        let store = self.inner.release_lease(id);
        self.around(ConnectionCall::ReleaseLease, Some(id), store)
            .await
    }

    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let store = self
            .inner
            .acquire_organization_lease(host, organization, holder, now, until);
        self.around(
            ConnectionCall::AcquireOrganizationLease,
            Some(holder),
            store,
        )
        .await
    }

    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError> {
        let store = self
            .inner
            .release_organization_lease(host, organization, holder);
        self.around(
            ConnectionCall::ReleaseOrganizationLease,
            Some(holder),
            store,
        )
        .await
    }

    async fn record_run(
        &self,
        id: &ConnectionId,
        run: &RunBookkeeping,
    ) -> Result<Option<Connection>, StoreError> {
        let store = self.inner.record_run(id, run);
        self.around(ConnectionCall::RecordRun, Some(id), store)
            .await
    }

    async fn record_erasure(
        &self,
        id: &ConnectionId,
        deleted: u64,
        finished: bool,
    ) -> Result<bool, StoreError> {
        let store = self.inner.record_erasure(id, deleted, finished);
        self.around(ConnectionCall::RecordErasure, Some(id), store)
            .await
    }

    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError> {
        let store = self.inner.set_status(id, expected, status, reason);
        self.around(ConnectionCall::SetStatus, Some(id), store)
            .await
    }
}

/// Two requests that each look up the tenant's connections (`ListTenantConnections`) both
/// do so before either goes on: the race of two identical connects, made certain. Only the
/// first two lookups wait.
pub struct BothLookFirst {
    barrier: tokio::sync::Barrier,
    looked: std::sync::atomic::AtomicUsize,
}

impl BothLookFirst {
    pub fn new() -> Self {
        Self {
            barrier: tokio::sync::Barrier::new(2),
            looked: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Default for BothLookFirst {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ConnectionHook for BothLookFirst {
    async fn after(&self, call: ConnectionCall, _: Option<&ConnectionId>) {
        if call == ConnectionCall::ListTenantConnections
            && self
                .looked
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                < 2
        {
            self.barrier.wait().await;
        }
    }
}
