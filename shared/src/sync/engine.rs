//! The sync engine: one run for one connection, recorded whatever happens.

use super::error::SyncError;
use super::plan::{plan_changes, SyncPlan, UserChange};
use super::snapshot::fetch_snapshot;
use crate::clock::Clock;
use crate::connection::Connection;
use crate::make::{MakeClient, OrganizationSummary};
use crate::ports::{ConnectionStore, StoreError, SyncRunStore, UserStore};
use crate::run::{SyncReason, SyncRun};
use std::sync::Arc;
use tracing::Instrument;

/// What a run did: the recorded run, the organization as Make described it, and every user
/// record written (with what it was before).
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub run: SyncRun,
    pub organization: Option<OrganizationSummary>,
    pub changes: Vec<UserChange>,
    /// The run could not be recorded (or the connection not updated) after it finished.
    pub bookkeeping_error: Option<StoreError>,
}

#[derive(Clone)]
pub struct SyncEngine {
    connections: Arc<dyn ConnectionStore>,
    users: Arc<dyn UserStore>,
    runs: Arc<dyn SyncRunStore>,
    clock: Arc<dyn Clock>,
    snapshot_attempts: u32,
}

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
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Starts and runs one sync of `connection` through `client`.
    pub async fn sync(
        &self,
        connection: &Connection,
        client: &MakeClient,
        reason: SyncReason,
    ) -> SyncReport {
        let run = SyncRun::start(connection.id.clone(), reason, self.clock.wall());
        self.sync_run(connection, client, run).await
    }

    /// Runs a sync that was started as `run` (tests start runs at chosen times). Never fails:
    /// a failure is recorded on the run, which is written when it starts and when it ends.
    pub async fn sync_run(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: SyncRun,
    ) -> SyncReport {
        let span = tracing::info_span!(
            "sync",
            connection_id = %connection.id,
            run_id = %run.run_id,
            host = %connection.host,
            organization_id = %connection.organization_id,
        );
        self.sync_in_span(connection, client, run)
            .instrument(span)
            .await
    }

    async fn sync_in_span(
        &self,
        connection: &Connection,
        client: &MakeClient,
        mut run: SyncRun,
    ) -> SyncReport {
        tracing::info!(reason = run.reason.as_str(), "sync started");
        if let Err(error) = self.runs.put_run(&run).await {
            tracing::warn!(error = %error, "could not record the run's start; going on");
        }
        let result = self.execute(connection, client, &run).await;
        run.make_requests = client.stats().requests();
        run.retries = client.stats().retries();
        let now = self.clock.wall();
        let (organization, changes) = match result {
            Ok((organization, plan)) => {
                run.succeed(plan.counts, now);
                (Some(organization), plan.changes)
            }
            Err((organization, error)) => {
                run.fail(error.report(), now);
                (organization, Vec::new())
            }
        };
        let bookkeeping_error = self
            .finish(connection, &run, organization.as_ref())
            .await
            .err();
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
        }
    }

    /// Records a run that failed before it could talk to Make (no token, refused host).
    pub async fn record_failure(
        &self,
        connection: &Connection,
        reason: SyncReason,
        error: &SyncError,
    ) -> SyncReport {
        let mut run = SyncRun::start(connection.id.clone(), reason, self.clock.wall());
        let span =
            tracing::info_span!("sync", connection_id = %connection.id, run_id = %run.run_id);
        let _entered = span.enter();
        run.fail(error.report(), self.clock.wall());
        tracing::warn!(error_kind = error.kind().as_str(), error = %error, "sync could not start");
        drop(_entered);
        let bookkeeping_error = self.finish(connection, &run, None).await.err();
        SyncReport {
            run,
            organization: None,
            changes: Vec::new(),
            bookkeeping_error,
        }
    }

    async fn execute(
        &self,
        connection: &Connection,
        client: &MakeClient,
        run: &SyncRun,
    ) -> Result<(OrganizationSummary, SyncPlan), (Option<OrganizationSummary>, SyncError)> {
        let snapshot = fetch_snapshot(client, connection.organization_id, self.snapshot_attempts)
            .await
            .map_err(|e| (None, e))?;
        let organization = snapshot.organization;
        let stored = self
            .users
            .list_users(&connection.id)
            .await
            .map_err(|e| (Some(organization.clone()), e.into()))?;
        let plan = plan_changes(&stored, &snapshot.members, self.clock.wall());
        self.users
            .write_users(&connection.id, run.started_at, &plan.records_to_write())
            .await
            .map_err(|e| (Some(organization.clone()), e.into()))?;
        Ok((organization, plan))
    }

    /// Writes the finished run and what it means for the connection.
    async fn finish(
        &self,
        connection: &Connection,
        run: &SyncRun,
        organization: Option<&OrganizationSummary>,
    ) -> Result<(), StoreError> {
        let recorded = self.runs.put_run(run).await;
        let mut current = self
            .connections
            .get_connection(&connection.id)
            .await?
            .unwrap_or_else(|| connection.clone());
        current.record_run(run);
        if let Some(organization) = organization {
            current.organization_name = Some(organization.name.clone());
            if organization.zone.is_some() {
                current.zone = organization.zone.clone();
            }
        }
        self.connections.put_connection(&current).await?;
        recorded.inspect_err(|e| tracing::error!(error = %e, "could not record the finished run"))
    }
}
