//! Sync run rows: the `sync_runs` table behind [`SyncRunStore`].

use super::{backend, opt_text, opt_time, report, text, time, SqliteStore};
use crate::connection::ConnectionId;
use crate::ports::{StoreError, SyncRunStore};
use crate::run::{RunCounts, RunId, RunOutcome, SyncReason, SyncRun};
use async_trait::async_trait;
use rusqlite::{params, Row};

fn run_from_row(row: &Row<'_>) -> Result<SyncRun, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let run_id: String = row.get("run_id").map_err(get)?;
    let connection_id: String = row.get("connection_id").map_err(get)?;
    let reason: String = row.get("reason").map_err(get)?;
    let outcome: String = row.get("outcome").map_err(get)?;
    Ok(SyncRun {
        run_id: RunId::parse(&run_id)
            .ok_or_else(|| StoreError::Corrupt(format!("run id {run_id:?}")))?,
        connection_id: ConnectionId::parse(&connection_id)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        reason: SyncReason::parse(&reason)
            .ok_or_else(|| StoreError::Corrupt(format!("run reason {reason:?}")))?,
        started_at: time(&row.get::<_, String>("started_at").map_err(get)?)?,
        finished_at: opt_time(row.get("finished_at").map_err(get)?)?,
        outcome: RunOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("run outcome {outcome:?}")))?,
        counts: RunCounts {
            fetched: row.get("fetched").map_err(get)?,
            added: row.get("added").map_err(get)?,
            updated: row.get("updated").map_err(get)?,
            removed: row.get("removed").map_err(get)?,
            unchanged: row.get("unchanged").map_err(get)?,
        },
        make_requests: row.get("make_requests").map_err(get)?,
        retries: row.get("retries").map_err(get)?,
        error: report(
            row.get("error_kind").map_err(get)?,
            row.get("error_message").map_err(get)?,
        )?,
        teams_not_read: row.get("teams_not_read").map_err(get)?,
    })
}

#[async_trait]
impl SyncRunStore for SqliteStore {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let run = run.clone();
        self.with_db(move |db| {
            db.execute(
                "INSERT OR REPLACE INTO sync_runs (connection_id, run_id, reason, started_at,
                    finished_at, outcome, fetched, added, updated, removed, unchanged,
                    make_requests, retries, error_kind, error_message, teams_not_read)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    run.connection_id.as_str(),
                    run.run_id.to_string(),
                    run.reason.as_str(),
                    text(run.started_at),
                    opt_text(run.finished_at),
                    run.outcome.as_str(),
                    run.counts.fetched,
                    run.counts.added,
                    run.counts.updated,
                    run.counts.removed,
                    run.counts.unchanged,
                    run.make_requests,
                    run.retries,
                    run.error.as_ref().map(|e| e.kind.as_str()),
                    run.error.as_ref().map(|e| e.message.clone()),
                    run.teams_not_read,
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| {
            let mut statement = db
                .prepare(
                    "SELECT * FROM sync_runs WHERE connection_id = ?1
                     ORDER BY started_at DESC, run_id DESC LIMIT ?2",
                )
                .map_err(backend)?;
            let mut rows = statement
                .query(params![connection.as_str(), limit as i64])
                .map_err(backend)?;
            let mut runs = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                runs.push(run_from_row(row)?);
            }
            Ok(runs)
        })
        .await
    }
}
