//! The record every sync leaves behind.

use crate::connection::{ConnectionId, RunBookkeeping};
use crate::error::ErrorReport;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A run's id: a UUIDv7, so ids sort by start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(Uuid);

impl RunId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a sync was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncReason {
    /// The scheduler's regular fan-out.
    Scheduled,
    /// The connection was just added or updated.
    Connected,
    /// Someone asked for a sync now (API or CLI).
    OnDemand,
    /// Not a sync: delete the users of a disconnected connection once no sync holds it (a
    /// purge that found a sync in flight). Never a run's reason.
    Erase,
}

impl SyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncReason::Scheduled => "scheduled",
            SyncReason::Connected => "connected",
            SyncReason::OnDemand => "on_demand",
            SyncReason::Erase => "erase",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scheduled" => Some(SyncReason::Scheduled),
            "connected" => Some(SyncReason::Connected),
            "on_demand" => Some(SyncReason::OnDemand),
            "erase" => Some(SyncReason::Erase),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Started, not finished. A run whose process ended before it recorded an outcome is
    /// recorded as failed by the next run of its connection.
    Running,
    Succeeded,
    Failed,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(RunOutcome::Running),
            "succeeded" => Some(RunOutcome::Succeeded),
            "failed" => Some(RunOutcome::Failed),
            _ => None,
        }
    }
}

/// What a run did to the stored users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCounts {
    /// Members in Make's snapshot.
    pub fetched: u32,
    /// New users, and removed users who came back.
    pub added: u32,
    /// Present users whose role, status, name, email or last login changed.
    pub updated: u32,
    /// Users missing from a complete snapshot, now marked removed.
    pub removed: u32,
    /// Present users with nothing new (not written).
    pub unchanged: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub run_id: RunId,
    pub connection_id: ConnectionId,
    pub reason: SyncReason,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    pub counts: RunCounts,
    /// HTTP requests sent to Make, retries included.
    pub make_requests: u32,
    /// Of those, how many were retries.
    pub retries: u32,
    pub error: Option<ErrorReport>,
    /// Why the run did not read team access, when it did not (e.g. the token lacks
    /// `teams:read`); the run still synced users and organization roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_not_read: Option<String>,
}

impl SyncRun {
    pub fn start(
        connection_id: ConnectionId,
        reason: SyncReason,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            run_id: RunId::generate(),
            connection_id,
            reason,
            started_at,
            finished_at: None,
            outcome: RunOutcome::Running,
            counts: RunCounts::default(),
            make_requests: 0,
            retries: 0,
            error: None,
            teams_not_read: None,
        }
    }

    pub fn succeed(&mut self, counts: RunCounts, finished_at: DateTime<Utc>) {
        self.counts = counts;
        self.outcome = RunOutcome::Succeeded;
        self.finished_at = Some(finished_at);
        self.error = None;
    }

    pub fn fail(&mut self, error: ErrorReport, finished_at: DateTime<Utc>) {
        self.outcome = RunOutcome::Failed;
        self.finished_at = Some(finished_at);
        self.error = Some(error);
    }

    /// What this run writes on its connection; `None` for a stale run (a newer run already
    /// recorded its outcome, an older one says nothing new).
    pub fn bookkeeping(
        &self,
        organization_name: Option<String>,
        zone: Option<String>,
    ) -> Option<RunBookkeeping> {
        let outcome = match &self.error {
            None => Ok(self.counts.fetched),
            Some(error) if error.kind == crate::error::ErrorKind::Stale => return None,
            Some(error) => Err(error.clone()),
        };
        Some(RunBookkeeping {
            run_id: self.run_id.to_string(),
            finished_at: self.finished_at,
            outcome,
            organization_name,
            zone,
        })
    }
}
