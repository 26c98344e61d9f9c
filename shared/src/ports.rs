//! The ports the sync engine and the services talk to. Adapters: in-memory and SQLite in
//! [`crate::store`], the message queue in [`crate::queue`]; the AWS adapters implement the same
//! traits.

use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping, TokenRef,
};
use crate::credential::{Credential, CredentialId};
use crate::domain::event::ChangeEvent;
use crate::error::{ErrorKind, ErrorReport};
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::queue::SyncRequest;
use crate::run::SyncRun;
use crate::tenant::TenantId;
use crate::token::ApiToken;
use crate::user::{MakeUserId, StoredUser, UserRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("the store is unavailable or throttling ({0}) — the work will be tried again")]
    Unavailable(String),
    #[error("a newer sync (started {newer}) already wrote this connection's users; this run (started {this}) has older data and wrote nothing")]
    StaleRun {
        this: DateTime<Utc>,
        newer: DateTime<Utc>,
    },
    #[error("the connection's users were closed (a disconnect or an erasure) after this run began; it wrote nothing more")]
    UsersClosed { seen: u64, now: u64 },
    #[error("the store holds a record makesync cannot read ({0})")]
    Corrupt(String),
    #[error("the store failed: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable(_) => ErrorKind::Transient,
            StoreError::StaleRun { .. } | StoreError::UsersClosed { .. } => ErrorKind::Stale,
            StoreError::Corrupt(_) | StoreError::Backend(_) => ErrorKind::Storage,
        }
    }
}

/// One page of connections, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPage {
    pub connections: Vec<Connection>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next: Option<String>,
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection, only if no connection has its id. Returns whether it was
    /// stored. Atomic: of two creates of one id, one wins.
    async fn create_connection(&self, connection: &Connection) -> Result<bool, StoreError>;

    /// Applies `update` and counts it in `version`, only if the connection exists and is
    /// still at `expected_version`. Returns whether it was written. Never touches the lease
    /// or a run's bookkeeping. Atomic.
    async fn update_connection(
        &self,
        id: &ConnectionId,
        expected_version: u64,
        update: &ConnectionUpdate,
    ) -> Result<bool, StoreError>;

    /// The connection, for makesync's own functions (the worker, the scheduler), which act for
    /// no tenant. A tenant's request reads [`get_tenant_connection`](Self::get_tenant_connection).
    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;

    /// The connections of `ids` that exist, each read as [`get_connection`](Self::get_connection)
    /// reads it (the newest write included), in no particular order. An adapter may read many
    /// in one request.
    async fn get_connections(&self, ids: &[ConnectionId]) -> Result<Vec<Connection>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(connection) = self.get_connection(id).await? {
                found.push(connection);
            }
        }
        Ok(found)
    }

    /// The connection if it belongs to `tenant`; `None` alike for one that does not exist and
    /// one of another tenant (or of none), so that the two cannot be told apart.
    async fn get_tenant_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .get_connection(id)
            .await?
            .filter(|connection| &connection.tenant_id == tenant && !tenant.is_unowned()))
    }

    /// Stores a new credential, only if no credential has its id. Atomic.
    async fn create_credential(&self, credential: &Credential) -> Result<bool, StoreError>;

    /// The credential, for makesync's own functions; a tenant's request checks its
    /// `tenant_id` (see [`get_tenant_credential`](Self::get_tenant_credential)).
    async fn get_credential(&self, id: &CredentialId) -> Result<Option<Credential>, StoreError>;

    /// The credential if it belongs to `tenant`; `None` alike for one that does not exist and
    /// one of another tenant.
    async fn get_tenant_credential(
        &self,
        tenant: &TenantId,
        id: &CredentialId,
    ) -> Result<Option<Credential>, StoreError> {
        Ok(self
            .get_credential(id)
            .await?
            .filter(|credential| &credential.tenant_id == tenant && !tenant.is_unowned()))
    }

    /// Replaces the stored credential with `credential`, counting the write in `version`,
    /// only if the stored one is still at `credential.version`. Returns whether it was
    /// written. Atomic.
    async fn replace_credential(&self, credential: &Credential) -> Result<bool, StoreError>;

    /// Deletes the credential, only if it is still at `expected_version`. Atomic.
    async fn delete_credential(
        &self,
        id: &CredentialId,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    /// Every credential that follows a White Label instance (few: one per instance).
    async fn list_instance_credentials(&self) -> Result<Vec<Credential>, StoreError>;

    /// Every connection of `tenant`, whatever its status (none for the unowned sentinel): what
    /// discovery marks as connected already.
    async fn list_tenant_connections(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Every connection, a page at a time, without reading any user.
    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError>;

    /// Takes the connection's sync lease until `until`, unless a lease that is still valid at
    /// `now` is held. Returns whether it was taken. Atomic: of two callers, one wins.
    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError>;

    /// Takes the lease of a Make organization (its host and id) for the connection `holder`
    /// until `until`, unless another connection's lease on it is still valid at `now`: two
    /// connections of one organization (two tenants, a reconnect under a new id) never sync at
    /// once. The holder may take it again. Returns whether it was taken. Atomic.
    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Releases the organization's lease if `holder` holds it.
    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError>;

    /// Writes a finished run's bookkeeping, only its own fields, and only if the connection
    /// is still `active`: a disconnect, pause or reconnect that landed meanwhile is kept.
    /// Returns the connection as written, or `None` if it is gone or no longer active
    /// (nothing written). Atomic.
    async fn record_run(
        &self,
        id: &ConnectionId,
        run: &RunBookkeeping,
    ) -> Result<Option<Connection>, StoreError>;

    /// Counts `deleted` more erased users on a connection that is `erasing`; with `finished`,
    /// marks it `erased` and forgets what it held about the organization
    /// ([`Connection::forget_for_erasure`]). Returns whether it was written (not if the
    /// connection is gone or not erasing). Atomic.
    async fn record_erasure(
        &self,
        id: &ConnectionId,
        deleted: u64,
        finished: bool,
    ) -> Result<bool, StoreError>;

    /// Sets the status and its reason if the status is still `expected`. Returns whether it
    /// was set. Atomic.
    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError>;
}

/// The run that writes users: for the store's guard against older runs, and for the change
/// events made from what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStamp {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// On a connection's first sync (no user stored before): how many users it adds. Such a
    /// run is announced by one summary event, not one event per user.
    pub first_sync_users: Option<u32>,
    /// How long a user marked removed is kept after its removal; `None`: kept for good. The
    /// store makes it so: DynamoDB through the users table's TTL attribute `expiresAt`, the
    /// local stores by deleting expired removed users each time a run writes.
    pub removed_user_retention: Option<chrono::Duration>,
    /// How many times the connection's users had been closed when the run began, read before
    /// the run read the connection's status ([`UserStore::users_closes`]). A close since then
    /// refuses the run's writes, whatever the clocks of the hosts involved say.
    pub closes_seen: u64,
}

impl WriteStamp {
    pub fn new(run_id: impl Into<String>, started_at: DateTime<Utc>, closes_seen: u64) -> Self {
        Self {
            run_id: run_id.into(),
            started_at,
            first_sync_users: None,
            removed_user_retention: None,
            closes_seen,
        }
    }
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Up to `limit` stored users of the connection with an id above `after`, by id, removed
    /// ones included.
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Every stored user of the connection, removed ones included. Holds them all: for small
    /// connections and tests; a sync reads [`list_user_digests`](Self::list_user_digests).
    async fn list_users(&self, connection: &ConnectionId) -> Result<Vec<UserRecord>, StoreError> {
        let mut users: Vec<UserRecord> = Vec::new();
        loop {
            let after = users.last().map(|u| u.user_id);
            let page = self.list_users_page(connection, after, 1000).await?;
            if page.is_empty() {
                return Ok(users);
            }
            users.extend(page);
        }
    }

    /// What a sync compares with: each stored user's id, digest and whether it is removed,
    /// without reading the records.
    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError>;

    /// The stored records of these users; ids that are not stored are left out.
    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Writes the changed users of the run `stamp` names, and remembers its start time. A
    /// removed user expires `stamp.removed_user_retention` after its removal.
    /// Refuses, writing nothing, with [`StoreError::UsersClosed`] if the users were closed
    /// since the run began (`stamp.closes_seen` is behind), and with [`StoreError::StaleRun`]
    /// if a run that started later already wrote: older data never overwrites newer.
    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError>;

    /// How many times this connection's users were closed (0: never). A run reads it before
    /// it reads the connection's status and hands it to each write as
    /// [`WriteStamp::closes_seen`]: a close made after the status it saw refuses its writes.
    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError>;

    /// Counts one more close of this connection's users, made at `at`: from now on no run
    /// that began before it writes them — each [`write_users`](Self::write_users) of such a
    /// run is refused as [`StoreError::UsersClosed`], whatever its start time says (a close
    /// and a run's start may be stamped by hosts whose clocks differ, or at the same
    /// microsecond). A disconnect closes the users after it stored the status, so that a sync
    /// in flight stops writing at its next chunk. Atomic: two closes count two.
    async fn close_users(
        &self,
        connection: &ConnectionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes up to `limit` stored users of the connection, lowest ids first, and returns how
    /// many it deleted: 0 when none is left. An erasure calls it until then, within its
    /// deadline. The write guard [`close_users`](Self::close_users) raised stays.
    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError>;
}

#[async_trait]
pub trait SyncRunStore: Send + Sync {
    /// Inserts or replaces the run (it is written when it starts and when it finishes).
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// The connection's newest runs first.
    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError>;
}

/// The answers given to requests that named a `requestId`, kept for a day, so that the same
/// request sent again answers as the first did. Keyed by tenant: a tenant never reads
/// another's.
#[async_trait]
pub trait RequestLog: Send + Sync {
    /// The answer kept for `request` of `tenant` (JSON), if one is and has not expired.
    async fn answer_of(
        &self,
        tenant: &TenantId,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Keeps `answer` for `request` of `tenant` until `expires_at`; the first answer kept
    /// stays until it expires (by `now`), then a new one takes its place.
    async fn keep_answer(
        &self,
        tenant: &TenantId,
        request: &str,
        answer: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("no Make token is stored for connection {} — reconnect it with a token", .0.connection_id)]
    NotFound(TokenRef),
    #[error("the secret store is unavailable ({0}) — the work will be tried again")]
    Unavailable(String),
    #[error("the stored secret for connection {} cannot be read — reconnect it with a token", .0.connection_id)]
    Malformed(TokenRef),
    /// Refused by the deployment (its role, its KMS key), not by Make: the operator's to fix.
    #[error("the secret store refused the request: {0} — the deployment's permissions or key refuse it, not Make: tell the operator")]
    Refused(String),
}

impl SecretError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SecretError::NotFound(_) | SecretError::Malformed(_) => ErrorKind::Auth,
            SecretError::Unavailable(_) => ErrorKind::Transient,
            // Not the customer's: their token is fine, the deployment refuses to read it.
            SecretError::Refused(_) => ErrorKind::Storage,
        }
    }
}

/// Where Make tokens live. Tokens are never kept in a table.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores the token under `secret` (a new version; see [`TokenRef`]).
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError>;
    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError>;
    /// The token as stored now, past any cache (which it refreshes): when Make refused the
    /// cached one.
    async fn get_fresh_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        self.get_token(secret).await
    }
    /// Deletes the token at once, without a recovery window: nothing can read it afterwards.
    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError>;
    /// Drops any copy of the token held in this process (Make refused it): the store's own
    /// is kept, and read again when it is next needed.
    async fn forget_cached(&self, _secret: &TokenRef) {}
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("the sync queue is unavailable ({0}) — the work will be tried again")]
    Unavailable(String),
}

/// A request that could not be enqueued, after the adapter's own retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueFailure {
    pub connection_id: ConnectionId,
    pub reason: String,
}

#[async_trait]
pub trait SyncQueue: Send + Sync {
    /// Sends every request; returns those that could not be sent.
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<Vec<EnqueueFailure>, QueueError>;
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("stream record {sequence}: {detail}")]
    Unreadable { sequence: String, detail: String },
    #[error("the event bus did not take the events: {0}")]
    Publish(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where events go (EventBridge in AWS).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Puts the events; says for each whether it was taken.
    async fn publish(&self, events: &[ChangeEvent]) -> Result<Vec<bool>, EventError>;
}
