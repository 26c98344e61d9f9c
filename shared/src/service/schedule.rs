//! The scheduler: one sync request per active connection.

use crate::clock::Clock;
use crate::connection::{ConnectionId, ConnectionStatus, CredentialId};
use crate::instance::InstanceFollower;
use crate::metrics::{MetricsRecord, MetricsSink, NoMetrics};
use crate::ports::{ConnectionStore, QueueError, StoreError, SyncQueue};
use crate::queue::SyncRequest;
use crate::run::SyncReason;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// What one fan-out did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSummary {
    pub seen: u32,
    pub enqueued: u32,
    pub skipped_paused: u32,
    pub skipped_disconnected: u32,
    pub skipped_in_flight: u32,
    /// Connections stored before tenants were required, left alone until an operator
    /// assigns their tenant (docs/api.md, "Tenants").
    pub skipped_unowned: u32,
    pub failed: u32,
    /// White Label instances discovered before the fan-out.
    pub instances: u32,
}

impl ScheduleSummary {
    /// The fan-out as a metrics record.
    pub fn metrics(&self, at: chrono::DateTime<chrono::Utc>) -> MetricsRecord {
        let summary = self;
        MetricsRecord {
            at,
            outcome: None,
            values: vec![
                (
                    "ConnectionsSeen",
                    f64::from(summary.seen),
                    crate::metrics::Unit::Count,
                ),
                (
                    "SyncsEnqueued",
                    f64::from(summary.enqueued),
                    crate::metrics::Unit::Count,
                ),
                (
                    "SkippedPaused",
                    f64::from(summary.skipped_paused),
                    crate::metrics::Unit::Count,
                ),
                (
                    "SkippedDisconnected",
                    f64::from(summary.skipped_disconnected),
                    crate::metrics::Unit::Count,
                ),
                (
                    "SkippedInFlight",
                    f64::from(summary.skipped_in_flight),
                    crate::metrics::Unit::Count,
                ),
                (
                    "EnqueueFailures",
                    f64::from(summary.failed),
                    crate::metrics::Unit::Count,
                ),
            ],
        }
    }
}

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("could not list connections: {0}")]
    Store(#[from] StoreError),
    #[error("could not enqueue syncs: {0}")]
    Queue(#[from] QueueError),
}

pub struct Scheduler {
    connections: Arc<dyn ConnectionStore>,
    queue: Arc<dyn SyncQueue>,
    clock: Arc<dyn Clock>,
    page_size: usize,
    metrics: Arc<dyn MetricsSink>,
    instances: Option<InstanceFollower>,
}

impl Scheduler {
    pub fn new(
        connections: Arc<dyn ConnectionStore>,
        queue: Arc<dyn SyncQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            queue,
            clock,
            page_size: 100,
            metrics: Arc::new(NoMetrics),
            instances: None,
        }
    }

    /// Discovers the followed White Label instances before each fan-out, so that their new
    /// organizations are synced in it and their deleted ones are not.
    pub fn with_instances(mut self, instances: InstanceFollower) -> Self {
        self.instances = Some(instances);
        self
    }

    /// The clock deadlines are read on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Where each fan-out's metrics go.
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Pages through every connection and enqueues one request per active connection that
    /// has no sync in flight. Failed sends are counted, not fatal: the caller decides.
    pub async fn fan_out(&self) -> Result<ScheduleSummary, ScheduleError> {
        self.fan_out_until(None).await
    }

    /// [`Scheduler::fan_out`] within `deadline` (on the clock's monotonic scale). The stored
    /// connections are enqueued first; only then are the followed White Label instances
    /// discovered (each within its own time budget, all before the deadline) and the
    /// connections they made enqueued — so no instance's host, however slow or hostile, can
    /// keep another tenant's connections from their sync. A connection of an organization an
    /// instance deleted meanwhile is told so by its connection's status when the worker
    /// reads it, and not synced.
    pub async fn fan_out_until(
        &self,
        deadline: Option<std::time::Duration>,
    ) -> Result<ScheduleSummary, ScheduleError> {
        let mut summary = ScheduleSummary::default();
        let credentials = match &self.instances {
            Some(instances) => instances.credentials().await.unwrap_or_else(|error| {
                tracing::error!(error = %error, "could not list the White Label instances followed; their connections are synced as they are");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let followed: BTreeSet<CredentialId> = credentials.iter().map(|c| c.id.clone()).collect();
        let mut deferred = self.enqueue_stored(&followed, &mut summary).await?;
        if let Some(instances) = &self.instances {
            // Each instance's connections go as soon as its own follow ends.
            let mut credentials = credentials;
            crate::instance::order_by_last_attempt(&mut credentials);
            for credential in credentials {
                let mut ids = deferred.remove(&credential.id).unwrap_or_default();
                let outcome = instances.follow_one(&credential, deadline).await;
                if let crate::instance::FollowOutcome::Followed(connected) = outcome {
                    summary.instances += 1;
                    ids.extend(connected);
                }
                self.enqueue_deferred(ids, &mut summary).await?;
            }
        }
        for (_, ids) in deferred {
            self.enqueue_deferred(ids, &mut summary).await?;
        }
        tracing::info!(
            seen = summary.seen,
            enqueued = summary.enqueued,
            skipped_paused = summary.skipped_paused,
            skipped_disconnected = summary.skipped_disconnected,
            skipped_in_flight = summary.skipped_in_flight,
            skipped_unowned = summary.skipped_unowned,
            failed = summary.failed,
            "scheduled syncs"
        );
        if summary.skipped_unowned > 0 {
            tracing::warn!(
                skipped_unowned = summary.skipped_unowned,
                "connections without a tenant are not synced: assign each its tenant (docs/api.md, \"Tenants\")"
            );
        }
        self.metrics.emit(&summary.metrics(self.clock.wall()));
        Ok(summary)
    }

    /// One request per stored active connection with no sync in flight; those of a followed
    /// instance are returned instead, by credential, to be enqueued once their instance was
    /// followed.
    async fn enqueue_stored(
        &self,
        followed: &BTreeSet<CredentialId>,
        summary: &mut ScheduleSummary,
    ) -> Result<BTreeMap<CredentialId, Vec<ConnectionId>>, ScheduleError> {
        let mut deferred: BTreeMap<CredentialId, Vec<ConnectionId>> = BTreeMap::new();
        let mut cursor = None;
        loop {
            let page = self
                .connections
                .list_connections(cursor.take(), self.page_size)
                .await?;
            let now = self.clock.wall();
            let mut requests = Vec::with_capacity(page.connections.len());
            for connection in &page.connections {
                // A followed instance's connection that may sync is read again once its
                // instance is followed (a paused one may resume, an active one be paused or
                // disconnected); a disconnected one stays so.
                let may_sync = matches!(
                    connection.status,
                    ConnectionStatus::Active | ConnectionStatus::Paused
                );
                if let Some(credential) = connection
                    .credential_id
                    .as_ref()
                    .filter(|c| may_sync && followed.contains(*c))
                {
                    deferred
                        .entry(credential.clone())
                        .or_default()
                        .push(connection.id.clone());
                    continue;
                }
                summary.seen += 1;
                if connection.tenant_id.is_unowned()
                    && connection.status == ConnectionStatus::Active
                {
                    summary.skipped_unowned += 1;
                    continue;
                }
                match connection.status {
                    ConnectionStatus::Paused => summary.skipped_paused += 1,
                    ConnectionStatus::Disconnected
                    | ConnectionStatus::Erasing
                    | ConnectionStatus::Erased => summary.skipped_disconnected += 1,
                    ConnectionStatus::Active if connection.is_leased_at(now) => {
                        summary.skipped_in_flight += 1
                    }
                    ConnectionStatus::Active => requests.push(SyncRequest::new(
                        connection.id.clone(),
                        SyncReason::Scheduled,
                        now,
                    )),
                }
            }
            self.send(&requests, summary).await?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(deferred),
            }
        }
    }

    /// The connections of followed instances, read again now that their instances were
    /// followed (a deleted organization's is disconnected, one whose API Make disabled is
    /// paused), with those the follows made: one request per one still active.
    async fn enqueue_deferred(
        &self,
        mut deferred: Vec<ConnectionId>,
        summary: &mut ScheduleSummary,
    ) -> Result<(), ScheduleError> {
        deferred.sort();
        deferred.dedup();
        for ids in deferred.chunks(self.page_size) {
            let now = self.clock.wall();
            let mut requests = Vec::new();
            for connection in self.connections.get_connections(ids).await? {
                summary.seen += 1;
                match connection.status {
                    ConnectionStatus::Paused => summary.skipped_paused += 1,
                    ConnectionStatus::Active if connection.is_leased_at(now) => {
                        summary.skipped_in_flight += 1
                    }
                    ConnectionStatus::Active => {
                        requests.push(SyncRequest::new(connection.id, SyncReason::Scheduled, now))
                    }
                    _ => summary.skipped_disconnected += 1,
                }
            }
            self.send(&requests, summary).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        requests: &[SyncRequest],
        summary: &mut ScheduleSummary,
    ) -> Result<(), ScheduleError> {
        if requests.is_empty() {
            return Ok(());
        }
        let failures = self.queue.enqueue(requests).await?;
        for failure in &failures {
            tracing::error!(connection_id = %failure.connection_id, reason = %failure.reason, "could not enqueue sync");
        }
        summary.failed += failures.len() as u32;
        summary.enqueued += (requests.len() - failures.len()) as u32;
        Ok(())
    }
}
