//! The sync engine: one run for one connection, recorded whatever happens.
//!
//! A run reads the whole snapshot from Make first and compares it with the stored digests;
//! only then does it write, and only what changed, a chunk of records at a time. When the
//! client has a deadline, the run checks before writing that the time left covers the writes
//! at a conservative rate: a run that cannot finish writing gives up before its first write,
//! so a run that runs out of time never leaves part of its snapshot applied. (Once writing has
//! begun it is not stopped for the deadline: each chunk is idempotent, and every record
//! written is correct for the snapshot; if the process dies anyway, the next run rewrites
//! only what still differs.)

use super::error::SyncError;
use super::plan::{
    plan_changes, resolve, resolve_keeping_teams, ChangeKind, PlannedWrite, StoredTeams, UserChange,
};
use super::snapshot::{fetch_snapshot, OrganizationSnapshot, SnapshotMember};
use crate::clock::Clock;
use crate::connection::Connection;
use crate::error::{ErrorKind, ErrorReport};
use crate::make::{MakeClient, OrganizationSummary};
use crate::metrics::{MetricsRecord, MetricsSink, NoMetrics};
use crate::ports::{ConnectionStore, StoreError, SyncRunStore, UserStore, WriteStamp};
use crate::run::{RunCounts, RunOutcome, SyncReason, SyncRun};
use crate::user::{StoredUser, UserRecord};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Records written per call to the store: what a run holds as records at once.
const WRITE_CHUNK: usize = 200;
/// The newest runs checked at each start for one left "running" by a process that ended.
const INTERRUPTED_RUNS_CHECKED: usize = 5;
/// Changes a report keeps for display; the counts cover all of them.
pub const REPORTED_CHANGES: usize = 1000;
/// The slowest rate at which a store is assumed to take records, for the deadline check
/// before writing (DynamoDB: 25 per `BatchWriteItem`, ~100 ms each when throttled).
const WRITES_PER_SECOND: f64 = 250.0;
/// Added to the estimated writing time: reading the stored records of changed users and
/// claiming the partition.
const WRITE_OVERHEAD: Duration = Duration::from_secs(2);

/// What a run has written so far: its counts and the changes it reports.
struct Tally {
    counts: RunCounts,
    reported: Vec<UserChange>,
}

/// What a run did: the recorded run, the organization as Make described it, and the user
/// records written (with what they were before), the first [`REPORTED_CHANGES`] of them.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub run: SyncRun,
    pub organization: Option<OrganizationSummary>,
    pub changes: Vec<UserChange>,
    /// The run could not be recorded (or the connection not updated) after it finished.
    pub bookkeeping_error: Option<StoreError>,
    /// Where the run's time went (the benchmark's split; zero on a clock that stands still).
    pub timings: SyncTimings,
}

/// Where a run's time went, on the engine's monotonic clock. `reading` is the wall time of
/// the snapshot read (Make's answers, waits on the request budget, decoding); `budget_wait`
/// and `decoding` are summed over its requests, which may overlap; `storing` is the wall time
/// of the store's reads and writes (each write chunk with the resolving around it), the run's
/// own records included; `total` is the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncTimings {
    pub total: Duration,
    pub reading: Duration,
    pub budget_wait: Duration,
    pub decoding: Duration,
    pub storing: Duration,
}

#[derive(Clone)]
pub struct SyncEngine {
    connections: Arc<dyn ConnectionStore>,
    users: Arc<dyn UserStore>,
    runs: Arc<dyn SyncRunStore>,
    clock: Arc<dyn Clock>,
    snapshot_attempts: u32,
    metrics: Arc<dyn MetricsSink>,
    removed_user_retention: Option<chrono::Duration>,
}

pub use crate::user::DEFAULT_REMOVED_USER_RETENTION_DAYS;

impl SyncEngine {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        users: Arc<dyn UserStore>,
        runs: Arc<dyn SyncRunStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            users,
            runs,
            clock,
            snapshot_attempts: 3,
            metrics: Arc::new(NoMetrics),
            removed_user_retention: None,
        }
    }

    /// Users marked removed are deleted this many days after their removal (0: kept for good).
    pub fn with_removed_user_retention_days(mut self, days: u32) -> Self {
        self.removed_user_retention = (days > 0).then(|| chrono::Duration::days(i64::from(days)));
        self
    }

    /// Where each run's metrics go.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The users port the engine writes to (the worker erases through it too).
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.users
    }

    /// Starts and runs one sync of `connection` through `client`; a close of its users from
    /// now on stops its writes.
    pub async fn sync(
        &self,
        connection: &Connection,
        client: &MakeClient,
        reason: SyncReason,
    ) -> SyncReport {
        let run = SyncRun::start(connection.id.clone(), reason, self.clock.wall());
        self.sync_run(connection, client, run).await
    }

    /// [`sync`](Self::sync), for a connection read after its users' close count was read as
    /// `closes_seen` ([`UserStore::users_closes`]): a disconnect stores its status, then
    /// closes, so a close this run did not see was made after the status it was admitted on.
    /// The run is started by the caller (under the id a request names, if it names one).
    pub async fn sync_seen(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: SyncRun,
        closes_seen: u64,
    ) -> SyncReport {
        self.sync_run_seen(connection, client, run, closes_seen)
            .await
    }

    /// Runs a sync that was started as `run` (tests start runs at chosen times). Never fails:
    /// a failure is recorded on the run, which is written when it starts and when it ends.
    pub async fn sync_run(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: SyncRun,
    ) -> SyncReport {
        match self.users.users_closes(&connection.id).await {
            Ok(closes) => self.sync_run_seen(connection, client, run, closes).await,
            Err(error) => self.record_failure(connection, run, &error.into()).await,
        }
    }

    async fn sync_run_seen(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: SyncRun,
        closes_seen: u64,
    ) -> SyncReport {
        let span = tracing::info_span!(
            "sync",
            connection_id = %connection.id,
            run_id = %run.run_id,
            host = %connection.host,
            organization_id = %connection.organization_id,
        );
        self.sync_in_span(connection, client, run, closes_seen)
            .instrument(span)
            .await
    }

    async fn sync_in_span(
        &self,
        connection: &Connection,
        client: &MakeClient,
        mut run: SyncRun,
        closes_seen: u64,
    ) -> SyncReport {
        tracing::info!(reason = run.reason.as_str(), "sync started");
        let started = self.clock.monotonic();
        self.close_interrupted_runs(connection, &run).await;
        if let Err(error) = self.runs.put_run(&run).await {
            tracing::warn!(error = %error, "could not record the run's start; going on");
        }
        let mut timings = SyncTimings::default();
        let result = self
            .execute(connection, client, &mut run, closes_seen, &mut timings)
            .await;
        run.make_requests = client.stats().requests();
        run.retries = client.stats().retries();
        let now = self.clock.wall();
        let (organization, changes) = match result {
            Ok((organization, counts, changes)) => {
                run.succeed(counts, now);
                (Some(organization), changes)
            }
            Err((organization, error)) => {
                run.fail(error.report(), now);
                (organization, Vec::new())
            }
        };
        let finishing = self.clock.monotonic();
        let bookkeeping_error = self
            .finish(connection, &run, organization.as_ref())
            .await
            .err();
        timings.storing += self.clock.monotonic().saturating_sub(finishing);
        timings.total = self.clock.monotonic().saturating_sub(started);
        timings.budget_wait = client.stats().budget_wait();
        timings.decoding = client.stats().decoding();
        self.metrics.emit(&MetricsRecord::for_sync(
            &run,
            self.clock.monotonic().saturating_sub(started),
            client.stats().rate_limit_waits(),
            client.stats().rate_limit_wait(),
        ));
        match &run.error {
            None => tracing::info!(
                outcome = run.outcome.as_str(),
                fetched = run.counts.fetched,
                added = run.counts.added,
                updated = run.counts.updated,
                removed = run.counts.removed,
                unchanged = run.counts.unchanged,
                make_requests = run.make_requests,
                retries = run.retries,
                "sync finished"
            ),
            Some(error) => tracing::warn!(
                outcome = run.outcome.as_str(),
                error_kind = error.kind.as_str(),
                error = %error.message,
                make_requests = run.make_requests,
                retries = run.retries,
                "sync failed"
            ),
        }
        SyncReport {
            run,
            organization,
            changes,
            bookkeeping_error,
            timings,
        }
    }

    /// Records `run` as failed before it could talk to Make (no token, refused host).
    pub async fn record_failure(
        &self,
        connection: &Connection,
        mut run: SyncRun,
        error: &SyncError,
    ) -> SyncReport {
        let span =
            tracing::info_span!("sync", connection_id = %connection.id, run_id = %run.run_id);
        self.close_interrupted_runs(connection, &run)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        run.fail(error.report(), self.clock.wall());
        tracing::warn!(error_kind = error.kind().as_str(), error = %error, "sync could not start");
        drop(_entered);
        let bookkeeping_error = self.finish(connection, &run, None).await.err();
        self.metrics.emit(&MetricsRecord::for_sync(
            &run,
            Duration::ZERO,
            0,
            Duration::ZERO,
        ));
        SyncReport {
            run,
            organization: None,
            changes: Vec::new(),
            bookkeeping_error,
            timings: SyncTimings::default(),
        }
    }

    #[allow(clippy::type_complexity)]
    async fn execute(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: &mut SyncRun,
        closes_seen: u64,
        timings: &mut SyncTimings,
    ) -> Result<
        (OrganizationSummary, RunCounts, Vec<UserChange>),
        (Option<OrganizationSummary>, SyncError),
    > {
        let (snapshot, stored) = self
            .read_snapshot(connection, client, run, timings)
            .await
            .map_err(|e| (None, e))?;
        let organization = snapshot.organization;
        let failed = |e: SyncError| (Some(organization.clone()), e);
        let stored = stored.map_err(|e| failed(e.into()))?;
        let plan = plan_changes(
            &stored,
            &snapshot.members,
            self.removed_user_retention.is_some(),
            snapshot.stored_teams,
        );
        let first_sync = stored.is_empty();
        drop(stored);
        self.check_time_to_write(client, plan.writes.len())
            .map_err(failed)?;

        let now = self.clock.wall();
        let stamp = WriteStamp {
            run_id: run.run_id.to_string(),
            started_at: run.started_at,
            first_sync_users: first_sync.then_some(plan.counts.added),
            removed_user_retention: self.removed_user_retention,
            closes_seen,
        };
        let mut tally = Tally {
            counts: RunCounts {
                fetched: plan.counts.fetched,
                unchanged: plan.counts.unchanged,
                ..RunCounts::default()
            },
            reported: Vec::new(),
        };
        let writing = self.clock.monotonic();
        let mut chunks = plan.writes.chunks(WRITE_CHUNK).peekable();
        if chunks.peek().is_none() {
            // Nothing changed: still claim the users for this run, so that an older run that
            // finishes later cannot write over them.
            self.users
                .write_users(&connection.id, &stamp, &[])
                .await
                .map_err(|e| failed(e.into()))?;
        }
        // One chunk is written while the next is resolved (its stored records read, its
        // records made): the store's write and the run's own work overlap, and at most two
        // chunks of records are held at once. Chunks are independent, and a run that fails
        // stops at the first failed write (the chunk resolved beside it is not written).
        let mut in_flight: Option<BoxFuture<'_, Result<(), StoreError>>> = None;
        for chunk in chunks {
            let members = (&snapshot.members[..], snapshot.stored_teams);
            let resolving = self.resolve_chunk(connection, chunk, members, now, &mut tally);
            let records = match in_flight.take() {
                Some(written) => {
                    let (written, records) = tokio::join!(written, resolving);
                    written.map_err(|e| failed(e.into()))?;
                    records
                }
                None => resolving.await,
            }
            .map_err(failed)?;
            in_flight = Some(self.write_records(connection, &stamp, records));
        }
        if let Some(written) = in_flight {
            written.await.map_err(|e| failed(e.into()))?;
        }
        timings.storing += self.clock.monotonic().saturating_sub(writing);
        Ok((organization, tally.counts, tally.reported))
    }

    /// Reads the organization's snapshot, timed, and beside its lists (once the organization
    /// has answered) the users as stored, to compare with: the store's round trips then cost
    /// no time of their own. Says on the run why team access was not read, when it was not.
    async fn read_snapshot(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: &mut SyncRun,
        timings: &mut SyncTimings,
    ) -> Result<(OrganizationSnapshot, Result<Vec<StoredUser>, StoreError>), SyncError> {
        let reading = self.clock.monotonic();
        let expected_users = connection.user_count.map(|users| users as usize);
        let snapshot = fetch_snapshot(
            client,
            connection.organization_id,
            expected_users,
            self.snapshot_attempts,
            self.users.list_user_digests(&connection.id),
        )
        .await;
        timings.reading = self.clock.monotonic().saturating_sub(reading);
        let (mut snapshot, stored) = snapshot?;
        if let Some(why) = snapshot.teams_not_read.take() {
            tracing::info!(reason = %why, "team access not read");
            run.teams_not_read = Some(why);
        }
        Ok((snapshot, stored))
    }

    /// Before the first write: whether the time left covers the writes at a conservative
    /// rate, so that a run that cannot finish writing writes nothing.
    fn check_time_to_write(&self, client: &MakeClient, writes: usize) -> Result<(), SyncError> {
        let Some(deadline) = client.deadline() else {
            return Ok(());
        };
        let needed = Duration::from_secs_f64(writes as f64 / WRITES_PER_SECOND) + WRITE_OVERHEAD;
        let left = deadline.saturating_sub(self.clock.monotonic());
        if needed > left {
            return Err(SyncError::OutOfTime {
                step: format!("writing {writes} changed users"),
                needed,
                left,
            });
        }
        Ok(())
    }

    /// Writes one chunk's records (owned, so that the next chunk is resolved meanwhile).
    fn write_records<'a>(
        &'a self,
        connection: &'a Connection,
        stamp: &'a WriteStamp,
        records: Vec<UserRecord>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.users
                .write_users(&connection.id, stamp, &records)
                .await
        })
    }

    /// Resolves one chunk of planned writes against the stored records it needs (the
    /// snapshot's members, and what becomes of the team roles stored), counts each change,
    /// and gives back the records to write.
    async fn resolve_chunk(
        &self,
        connection: &Connection,
        chunk: &[PlannedWrite],
        (members, teams): (&[SnapshotMember], StoredTeams),
        now: chrono::DateTime<chrono::Utc>,
        tally: &mut Tally,
    ) -> Result<Vec<UserRecord>, SyncError> {
        let ids: Vec<u64> = chunk
            .iter()
            .filter(|write| write.needs_stored())
            .map(|write| write.user_id(members))
            .collect();
        let stored: HashMap<u64, UserRecord> = if ids.is_empty() {
            HashMap::new()
        } else {
            self.users
                .get_users(&connection.id, &ids)
                .await?
                .into_iter()
                .map(|user| (user.user_id, user))
                .collect()
        };
        let mut records = Vec::with_capacity(chunk.len());
        for write in chunk {
            let before = stored.get(&write.user_id(members));
            if let (PlannedWrite::Expire { .. }, Some(before)) = (write, before) {
                // Written again as it is: the store gives it its expiry.
                records.push(before.clone());
                continue;
            }
            let resolved = match teams {
                StoredTeams::Replace => resolve(*write, members, before, now),
                StoredTeams::Keep => resolve_keeping_teams(*write, members, before, now),
            };
            let Some(change) = resolved else {
                tally.counts.unchanged += u32::from(before.is_some());
                continue;
            };
            match change.kind {
                ChangeKind::Added | ChangeKind::Restored => tally.counts.added += 1,
                ChangeKind::Updated => tally.counts.updated += 1,
                ChangeKind::Removed => tally.counts.removed += 1,
            }
            // Only a reported change keeps a copy of what is written.
            if tally.reported.len() < REPORTED_CHANGES {
                records.push(change.after.clone());
                tally.reported.push(change);
            } else {
                records.push(change.after);
            }
        }
        Ok(records)
    }

    /// Records as failed the connection's earlier runs that never recorded an outcome: their
    /// process ended first (a function timeout, a crash, a finish write that failed). Whoever
    /// starts a sync holds the connection (the worker's lease), so an earlier run still
    /// "running" is not running. Best effort: a failure here only leaves them for the next run.
    async fn close_interrupted_runs(&self, connection: &Connection, current: &SyncRun) {
        let recent = match self
            .runs
            .list_runs(&connection.id, INTERRUPTED_RUNS_CHECKED)
            .await
        {
            Ok(recent) => recent,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the earlier runs; going on");
                return;
            }
        };
        for mut earlier in recent.into_iter().filter(|r| {
            r.outcome == RunOutcome::Running
                && r.run_id != current.run_id
                && r.started_at <= current.started_at
        }) {
            earlier.fail(
                ErrorReport::new(
                    ErrorKind::Transient,
                    "the sync stopped before it recorded its outcome (the function timed out or its process ended); a later run took over",
                ),
                current.started_at,
            );
            match self.runs.put_run(&earlier).await {
                Ok(()) => tracing::warn!(
                    interrupted_run_id = %earlier.run_id,
                    "an earlier run never recorded its outcome; recorded it as interrupted"
                ),
                Err(error) => {
                    tracing::warn!(error = %error, "could not close an interrupted run; going on")
                }
            }
        }
    }

    /// Writes the finished run and what it means for the connection.
    async fn finish(
        &self,
        connection: &Connection,
        run: &SyncRun,
        organization: Option<&OrganizationSummary>,
    ) -> Result<(), StoreError> {
        let recorded = self.runs.put_run(run).await;
        let bookkeeping = run.bookkeeping(
            organization.map(|o| o.name.clone()),
            organization.and_then(|o| o.zone.clone()),
        );
        if let Some(bookkeeping) = bookkeeping {
            let written = self
                .connections
                .record_run(&connection.id, &bookkeeping)
                .await?;
            if written.is_none() {
                tracing::warn!(
                    "the connection was changed or removed while the run was in flight; its outcome is in the run record only"
                );
            }
        }
        recorded.inspect_err(|e| tracing::error!(error = %e, "could not record the finished run"))
    }
}
