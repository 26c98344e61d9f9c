//! The worker: one sync request in, one sync run out — within the invocation's deadline and
//! the process's memory budget.

use crate::clock::Clock;
use crate::connection::{Connection, ConnectionId, ConnectionStatus, TokenRef};
use crate::error::{ErrorKind, ErrorReport};
use crate::make::MakeApi;
use crate::memory_budget::{MemoryBudget, MemoryShare};
use crate::metrics::{MetricsRecord, MetricsSink, NoMetrics};
use crate::ports::{ConnectionStore, SecretError, SecretStore, StoreError, SyncQueue};
use crate::queue::SyncRequest;
use crate::run::SyncReason;
use crate::sync::{SyncEngine, SyncError, SyncReport};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Kept free at the end of an invocation: the time to record a run that gave up, release its
/// lease and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);
/// A lease outlives its invocation's deadline by this much, for clock skew between hosts.
pub const LEASE_SKEW: Duration = Duration::from_secs(30);

/// When the invocation must have answered, on the clock's wall and monotonic scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub wall: DateTime<Utc>,
    pub monotonic: Duration,
}

impl Deadline {
    /// The deadline at wall time `wall` (Lambda gives it in epoch milliseconds).
    pub fn at(wall: DateTime<Utc>, clock: &dyn Clock) -> Self {
        let left = (wall - clock.wall()).to_std().unwrap_or(Duration::ZERO);
        Self {
            wall,
            monotonic: clock.monotonic() + left,
        }
    }

    pub fn left(&self, clock: &dyn Clock) -> Duration {
        self.monotonic.saturating_sub(clock.monotonic())
    }
}

/// What became of one request.
#[derive(Debug)]
pub enum WorkOutcome {
    Synced(Box<SyncReport>),
    /// An erase job ([`SyncReason::Erase`]) deleted `deleted` of the connection's users;
    /// `finished` when none is left (the connection is `erased`), otherwise its deadline came
    /// and a continuation is on the queue.
    Erased {
        connection_id: ConnectionId,
        deleted: u64,
        finished: bool,
    },
    /// The run failed; `retry` says whether the same request may succeed later.
    Failed {
        report: Box<SyncReport>,
        retry: bool,
    },
    /// Nothing to do, and nothing to retry: a malformed message, an unknown connection, a
    /// paused or disconnected one.
    Skipped {
        reason: String,
    },
    /// The request could not be looked at (the store failed); try it again.
    Deferred {
        error: String,
    },
    /// Not started, nothing touched: not enough time left in the invocation, or no memory
    /// freed up in time. SQS delivers it again.
    Returned {
        reason: String,
    },
}

impl WorkOutcome {
    /// Whether the message should go back on the queue.
    pub fn should_retry(&self) -> bool {
        match self {
            WorkOutcome::Synced(_) | WorkOutcome::Erased { .. } | WorkOutcome::Skipped { .. } => {
                false
            }
            WorkOutcome::Failed { retry, .. } => *retry,
            WorkOutcome::Deferred { .. } | WorkOutcome::Returned { .. } => true,
        }
    }

    pub fn report(&self) -> Option<&SyncReport> {
        match self {
            WorkOutcome::Synced(report) | WorkOutcome::Failed { report, .. } => Some(report),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    connections: Arc<dyn ConnectionStore>,
    secrets: Arc<dyn SecretStore>,
    engine: SyncEngine,
    make: MakeApi,
    pause_after_failures: u32,
    failing_streak_alert: u32,
    lease: std::time::Duration,
    memory: Option<MemoryBudget>,
    metrics: Arc<dyn MetricsSink>,
    /// Where an erase job cut off by its deadline puts its continuation; without one, the
    /// message goes back to the queue instead (and comes back after its visibility timeout).
    queue: Option<Arc<dyn SyncQueue>>,
    erase_page: usize,
}

/// User items an erase job deletes between two checks of its deadline and progress records.
pub const ERASE_PAGE: usize = 1000;
/// Kept free before the deadline by an erase job: one more page and its progress record.
const ERASE_MARGIN: Duration = Duration::from_secs(20);

impl Worker {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        secrets: Arc<dyn SecretStore>,
        engine: SyncEngine,
        make: MakeApi,
    ) -> Self {
        Self {
            connections,
            secrets,
            engine,
            make,
            pause_after_failures: 5,
            failing_streak_alert: 24,
            lease: std::time::Duration::from_secs(15 * 60),
            memory: None,
            metrics: Arc::new(NoMetrics),
            queue: None,
            erase_page: ERASE_PAGE,
        }
    }

    /// The queue an erase job cut off by its deadline continues through.
    pub fn with_queue(mut self, queue: Arc<dyn SyncQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// User items an erase job deletes per page (tests use small pages).
    pub fn with_erase_page(mut self, page: usize) -> Self {
        self.erase_page = page.max(1);
        self
    }

    /// Where each batch's metrics go (each sync's go through the engine's sink).
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Records what one invocation did with its batch.
    pub fn record_batch(&self, records: usize, returned: usize) {
        self.metrics.emit(&MetricsRecord::for_batch(
            records,
            returned,
            self.engine.clock().wall(),
        ));
    }

    /// The clock deadlines are measured on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.engine.clock()
    }

    /// Runs at once only the syncs whose expected memory fits `budget`.
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Self {
        self.memory = Some(budget);
        self
    }

    /// How long a sync holds its connection when there is no deadline (the CLI, the demo).
    /// With a deadline, the lease ends [`LEASE_SKEW`] after it: a sync that died frees the
    /// connection when its invocation could no longer be running.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Pauses a connection after this many failed runs in a row, the last of them for a reason
    /// only the customer can fix (0 never pauses).
    pub fn with_pause_after_failures(mut self, failures: u32) -> Self {
        self.pause_after_failures = failures;
        self
    }

    /// Reports a connection on the operator's metric (`ConnectionsFailingLong`) once this many
    /// runs in a row failed, whatever the reason.
    pub fn with_failing_streak_alert(mut self, failures: u32) -> Self {
        self.failing_streak_alert = failures.max(1);
        self
    }

    /// Parses a message body and handles it; a malformed body is skipped, never retried.
    pub async fn handle_body(&self, body: &str) -> WorkOutcome {
        self.handle_body_until(body, None).await
    }

    /// [`handle_body`](Self::handle_body) within an invocation's deadline.
    pub async fn handle_body_until(&self, body: &str, deadline: Option<Deadline>) -> WorkOutcome {
        match SyncRequest::parse(body) {
            Ok(request) => self.handle_until(&request, deadline).await,
            Err(error) => WorkOutcome::Skipped {
                reason: error.to_string(),
            },
        }
    }

    pub async fn handle(&self, request: &SyncRequest) -> WorkOutcome {
        self.handle_until(request, None).await
    }

    /// Handles one request. With a deadline, a sync starts only if there is time for at least
    /// one Make request and the margin after it, waits for its memory share no longer than
    /// that allows, and gives up cleanly (run recorded as failed, lease released, message
    /// returned) when it would run past it.
    pub async fn handle_until(
        &self,
        request: &SyncRequest,
        deadline: Option<Deadline>,
    ) -> WorkOutcome {
        // Read before the connection: a disconnect stores its status and then closes the
        // users, so a close after this read is one the status read below may not show, and
        // it refuses the run's writes.
        let closes_seen = match self
            .engine
            .users()
            .users_closes(&request.connection_id)
            .await
        {
            Ok(closes) => closes,
            Err(error) => return deferred(error),
        };
        let connection = match self.load(request).await {
            Ok(connection) => connection,
            Err(outcome) => return outcome,
        };
        if request.reason == SyncReason::Erase {
            return self.erase(&connection, deadline).await;
        }
        match self
            .sync_admitted(&connection, request, deadline, closes_seen)
            .await
        {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    /// The steps of a sync, each of which may end the work with its outcome: admit the
    /// connection, find the time and the memory, take the leases, sync, conclude.
    async fn sync_admitted(
        &self,
        connection: &Connection,
        request: &SyncRequest,
        deadline: Option<Deadline>,
        closes_seen: u64,
    ) -> Result<WorkOutcome, WorkOutcome> {
        admit(connection)?;
        let patience = self.patience(deadline)?;
        let memory = Arc::new(self.reserve_memory(connection, patience).await?);
        self.take_leases(connection, request.reason, deadline)
            .await?;
        let report = self
            .run_sync(connection, request, deadline, closes_seen, memory)
            .await;
        self.release_leases(connection, true).await;
        Ok(self.conclude(connection, report).await)
    }

    /// The connection the request names, as stored now.
    async fn load(&self, request: &SyncRequest) -> Result<Connection, WorkOutcome> {
        match self
            .connections
            .get_connection(&request.connection_id)
            .await
        {
            Ok(Some(connection)) => Ok(connection),
            Ok(None) => Err(WorkOutcome::Skipped {
                reason: format!("connection {} does not exist", request.connection_id),
            }),
            Err(error) => Err(deferred(error)),
        }
    }

    /// How long a sync may wait for memory: what the deadline leaves after one request and
    /// the margin; with too little left, the message goes back.
    fn patience(&self, deadline: Option<Deadline>) -> Result<Duration, WorkOutcome> {
        let Some(deadline) = deadline else {
            return Ok(Duration::from_secs(3600));
        };
        let needed = DEADLINE_MARGIN + self.make.config().request_timeout;
        let left = deadline.left(self.engine.clock().as_ref());
        if left <= needed {
            return Err(WorkOutcome::Returned {
                reason: format!(
                    "{} s left in the invocation, a sync needs at least {} s to start",
                    left.as_secs(),
                    needed.as_secs()
                ),
            });
        }
        Ok(left - needed)
    }

    /// The connection's share of the function's memory, waited for at most `patience`.
    async fn reserve_memory(
        &self,
        connection: &Connection,
        patience: Duration,
    ) -> Result<MemoryShare, WorkOutcome> {
        let Some(budget) = &self.memory else {
            return Ok(MemoryBudget::unlimited());
        };
        budget
            .reserve(connection.user_count, patience)
            .await
            .ok_or_else(|| WorkOutcome::Returned {
                reason: format!(
                    "no memory for a sync of {} users freed up while there was time to run it",
                    connection
                        .user_count
                        .map_or("an unknown number of".to_string(), |n| n.to_string())
                ),
            })
    }

    /// The connection's lease, then its organization's: one sync per connection and per Make
    /// organization at a time.
    async fn take_leases(
        &self,
        connection: &Connection,
        reason: SyncReason,
        deadline: Option<Deadline>,
    ) -> Result<(), WorkOutcome> {
        let now = self.engine.clock().wall();
        let until = self.lease_until(now, deadline);
        match self
            .connections
            .acquire_lease(&connection.id, now, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                let reason_text = format!(
                    "a sync of connection {} is already in flight",
                    connection.id
                );
                // A scheduled duplicate adds nothing to the sync in flight. A sync asked for
                // by connect or on demand may carry what that sync does not have (a new
                // token): it goes back to the queue and runs after it.
                return Err(match reason {
                    SyncReason::Scheduled => WorkOutcome::Skipped {
                        reason: reason_text,
                    },
                    SyncReason::Connected | SyncReason::OnDemand | SyncReason::Erase => {
                        WorkOutcome::Returned {
                            reason: reason_text,
                        }
                    }
                });
            }
            Err(error) => return Err(deferred(error)),
        }
        let organization_taken = self
            .connections
            .acquire_organization_lease(
                &connection.host,
                connection.organization_id,
                &connection.id,
                now,
                until,
            )
            .await;
        match organization_taken {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => {
                self.release_leases(connection, false).await;
                Err(match organization_taken {
                    Err(error) => deferred(error),
                    _ => WorkOutcome::Returned {
                        reason: format!(
                            "another connection of organization {} on {} is syncing it",
                            connection.organization_id, connection.host
                        ),
                    },
                })
            }
        }
    }

    /// The sync itself, with its token and within the deadline, its Make client's reads
    /// bounded by the sync's `memory` share (grown while the budget has memory free); a token
    /// that cannot be had is a run recorded as failed. The run is the request's.
    async fn run_sync(
        &self,
        connection: &Connection,
        request: &SyncRequest,
        deadline: Option<Deadline>,
        closes_seen: u64,
        memory: Arc<MemoryShare>,
    ) -> SyncReport {
        let run = request.start_run(self.engine.clock().wall());
        match self.prepare_client(connection, request.reason).await {
            Ok(client) => {
                let client = client.with_memory_share(memory);
                let client = match deadline {
                    Some(deadline) => {
                        client.with_deadline(deadline.monotonic.saturating_sub(DEADLINE_MARGIN))
                    }
                    None => client,
                };
                self.engine
                    .sync_seen(connection, &client, run, closes_seen)
                    .await
            }
            Err(error) => self.engine.record_failure(connection, run, &error).await,
        }
    }

    /// What the run means for the message: synced, or failed and whether SQS should deliver
    /// it again (not once the connection is paused for failing).
    async fn conclude(&self, connection: &Connection, report: SyncReport) -> WorkOutcome {
        let Some(error) = report.run.error.clone() else {
            if report.bookkeeping_error.is_some() {
                return WorkOutcome::Failed {
                    report: Box::new(report),
                    retry: true,
                };
            }
            return WorkOutcome::Synced(Box::new(report));
        };
        if error.kind == ErrorKind::Auth {
            // Make refused the token: no copy of it stays in this process; the next run
            // reads it from the store, in case it was replaced since it was cached.
            if let Ok((secret, _)) = self.token_of(connection).await {
                self.secrets.forget_cached(&secret).await;
            }
        }
        let paused = self.pause_if_failing(&connection.id, &error).await;
        let retry = !paused && (error.kind.is_retryable() || report.bookkeeping_error.is_some());
        WorkOutcome::Failed {
            report: Box::new(report),
            retry,
        }
    }

    /// The erase job of a connection that is `erasing`: once no sync holds the connection, it
    /// takes the lease and deletes the users a page at a time, recording its progress on the
    /// connection after each page, until none is left — then the connection is `erased` — or
    /// until its deadline nears, when it puts its continuation on the queue. A job for a
    /// connection that is not erasing (erased already) does nothing.
    async fn erase(&self, connection: &Connection, deadline: Option<Deadline>) -> WorkOutcome {
        if connection.status != ConnectionStatus::Erasing {
            return WorkOutcome::Skipped {
                reason: format!(
                    "connection {} is {}, not erasing",
                    connection.id,
                    connection.status.as_str()
                ),
            };
        }
        let clock = self.engine.clock().clone();
        let now = clock.wall();
        let until = self.lease_until(now, deadline);
        match self
            .connections
            .acquire_lease(&connection.id, now, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return WorkOutcome::Returned {
                    reason: format!(
                        "a sync of connection {} is still in flight; its users are erased after it",
                        connection.id
                    ),
                }
            }
            Err(error) => return deferred(error),
        }
        let outcome = self.erase_pages(connection, deadline).await;
        self.release_leases(connection, false).await;
        outcome
    }

    async fn erase_pages(
        &self,
        connection: &Connection,
        deadline: Option<Deadline>,
    ) -> WorkOutcome {
        let clock = self.engine.clock().clone();
        let mut deleted_total = 0u64;
        loop {
            if deadline.is_some_and(|d| d.left(clock.as_ref()) <= ERASE_MARGIN) {
                return self.continue_erasure(connection, deleted_total).await;
            }
            let deleted = match self
                .engine
                .users()
                .delete_users_page(&connection.id, self.erase_page)
                .await
            {
                Ok(deleted) => deleted as u64,
                Err(error) => return deferred(error),
            };
            deleted_total += deleted;
            let finished = deleted == 0;
            match self
                .connections
                .record_erasure(&connection.id, deleted, finished)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return WorkOutcome::Skipped {
                        reason: format!("connection {} is no longer erasing", connection.id),
                    }
                }
                Err(error) => return deferred(error),
            }
            if finished {
                tracing::info!(connection_id = %connection.id, deleted = deleted_total, "connection erased");
                return WorkOutcome::Erased {
                    connection_id: connection.id.clone(),
                    deleted: deleted_total,
                    finished: true,
                };
            }
        }
    }

    /// The deadline nears: the job goes on from where it stopped in a new message (the users
    /// deleted so far stay deleted), or, without a queue, this message goes back.
    async fn continue_erasure(&self, connection: &Connection, deleted: u64) -> WorkOutcome {
        let reason = format!(
            "the invocation's deadline nears after erasing {deleted} users of connection {}",
            connection.id
        );
        let Some(queue) = &self.queue else {
            return WorkOutcome::Returned { reason };
        };
        let request = SyncRequest::new(
            connection.id.clone(),
            SyncReason::Erase,
            self.engine.clock().wall(),
        );
        match queue.enqueue(std::slice::from_ref(&request)).await {
            Ok(failures) if failures.is_empty() => {
                tracing::info!(connection_id = %connection.id, deleted, "erasure continues in a new message");
                WorkOutcome::Erased {
                    connection_id: connection.id.clone(),
                    deleted,
                    finished: false,
                }
            }
            _ => WorkOutcome::Returned { reason },
        }
    }

    /// When a lease taken `now` ends: [`LEASE_SKEW`] after the invocation's deadline, or after
    /// the configured lease when there is none.
    fn lease_until(&self, now: DateTime<Utc>, deadline: Option<Deadline>) -> DateTime<Utc> {
        match deadline {
            Some(deadline) => {
                deadline.wall + chrono::Duration::from_std(LEASE_SKEW).unwrap_or_default()
            }
            None => now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Gives back the connection's lease and, if it was taken, its organization's. A lease
    /// that cannot be released expires by itself; the next schedule waits for it.
    async fn release_leases(&self, connection: &Connection, organization: bool) {
        if organization {
            if let Err(error) = self
                .connections
                .release_organization_lease(
                    &connection.host,
                    connection.organization_id,
                    &connection.id,
                )
                .await
            {
                tracing::warn!(connection_id = %connection.id, error = %error, "could not release the organization's sync lease");
            }
        }
        if let Err(error) = self.connections.release_lease(&connection.id).await {
            tracing::warn!(connection_id = %connection.id, error = %error, "could not release the sync lease");
        }
    }

    async fn prepare_client(
        &self,
        connection: &Connection,
        reason: SyncReason,
    ) -> Result<crate::make::MakeClient, SyncError> {
        // The connection names its token's version: a reconnect's new token is a new cache
        // entry. A sync queued by connect reads it fresh all the same.
        let (secret, instance_token) = self.token_of(connection).await?;
        let token = match reason {
            SyncReason::Connected => self.secrets.get_fresh_token(&secret).await?,
            _ => self.secrets.get_token(&secret).await?,
        };
        let mut client = self
            .make
            .client(&connection.host, connection.organization_id, token)?;
        if instance_token {
            client = client.with_instance_token();
        }
        // Connect asked Make which scopes this token has: one without `teams:read` is not
        // asked for teams at every run only to be refused.
        if connection.teams_readable == Some(false) {
            client = client.with_teams_unreadable();
        }
        Ok(client)
    }

    /// Where the connection's token is now, and whether it is a White Label administrator's:
    /// its own secret, or its credential's (which names the current version).
    async fn token_of(&self, connection: &Connection) -> Result<(TokenRef, bool), SyncError> {
        match &connection.credential_id {
            None => Ok((connection.token_ref(), false)),
            // A credential's token serves only the connections it lists, of its own tenant: a
            // connection that merely names it (left behind by a write that failed part-way, or
            // edited by hand) does not get it.
            Some(id) => match self.connections.get_credential(id).await? {
                Some(credential)
                    if credential.tenant_id == connection.tenant_id
                        && credential.connections.contains(&connection.id) =>
                {
                    Ok((credential.token_ref(), credential.instance.is_some()))
                }
                Some(_) => Err(SyncError::CredentialRefused {
                    connection: connection.id.to_string(),
                    credential: id.to_string(),
                }),
                None => Err(SecretError::NotFound(id.token_ref(None)).into()),
            },
        }
    }

    /// After too many failed runs in a row for a reason only the customer can fix (a refused
    /// token, a missing scope or access, an organization gone or moved), stop scheduling the
    /// connection until it is resumed or connected again. Any other failure — Make down or
    /// slow, its rate limit, an answer makesync cannot read, time or memory given back, a
    /// store's error — never pauses: SQS and the schedule try again, and a long streak of
    /// them is the operator's ([`MetricsRecord::for_failing_streak`]). Returns whether the
    /// connection is now paused.
    async fn pause_if_failing(&self, id: &ConnectionId, error: &ErrorReport) -> bool {
        let connection = match self.connections.get_connection(id).await {
            Ok(Some(connection)) => connection,
            _ => return false,
        };
        if connection.consecutive_failures >= self.failing_streak_alert {
            tracing::warn!(connection_id = %id, failures = connection.consecutive_failures, kind = %error.kind, "connection failing for long");
            self.metrics.emit(&MetricsRecord::for_failing_streak(
                connection.consecutive_failures,
                self.engine.clock().wall(),
            ));
        }
        if self.pause_after_failures == 0
            || !error.kind.needs_customer()
            || connection.consecutive_failures < self.pause_after_failures
        {
            return false;
        }
        let reason = ErrorReport::new(
            error.kind,
            pause_reason(&error.message, connection.consecutive_failures),
        );
        // Only an active connection is paused: a reconnect or disconnect that landed since
        // the run ended is kept.
        let paused = self
            .connections
            .set_status(
                id,
                ConnectionStatus::Active,
                ConnectionStatus::Paused,
                Some(reason),
            )
            .await;
        match paused {
            Ok(paused) => {
                if paused {
                    tracing::warn!(connection_id = %id, failures = connection.consecutive_failures, "connection paused");
                }
                paused
            }
            Err(e) => {
                tracing::error!(connection_id = %id, error = %e, "could not pause connection");
                false
            }
        }
    }
}

/// Why a connection is paused: the last refusal, which says what to fix, then how to resume.
pub fn pause_reason(refusal: &str, failures: u32) -> String {
    format!(
        "{refusal} — paused after {failures} failed syncs in a row; once it is fixed in Make, resume it with {{\"action\": \"resume\"}} (or, with a new token, connect it again)"
    )
}

/// Whether the connection is one to sync: owned by a tenant, and active.
fn admit(connection: &Connection) -> Result<(), WorkOutcome> {
    if connection.tenant_id.is_unowned() {
        return Err(WorkOutcome::Skipped {
            reason: format!(
                "connection {} has no tenant (made before tenants were required); it is not synced until an operator assigns its tenant (docs/api.md, \"Tenants\")",
                connection.id
            ),
        });
    }
    if connection.status != ConnectionStatus::Active {
        return Err(WorkOutcome::Skipped {
            reason: format!(
                "connection {} is {}",
                connection.id,
                connection.status.as_str()
            ),
        });
    }
    Ok(())
}

fn deferred(error: StoreError) -> WorkOutcome {
    WorkOutcome::Deferred {
        error: error.to_string(),
    }
}
