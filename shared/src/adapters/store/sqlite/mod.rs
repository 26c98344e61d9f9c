//! The embedded store: one SQLite file, the local default (`makesync.db`).
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool with the connection
//! behind a mutex. Columns are plain and named, so the file can be read with `sqlite3`.
//!
//! This file opens the store and holds its schema and the conversions every table shares; each
//! port's rows live apart: [`connections`] (with their [`leases`]), [`credentials`], [`users`],
//! [`runs`] and the connect [`requests`]' answers.

mod connections;
mod credentials;
mod leases;
mod requests;
mod runs;
mod users;

use crate::connection::ConnectionId;
use crate::error::{ErrorKind, ErrorReport};
use crate::ports::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::params;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS connections (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT,
    host                  TEXT NOT NULL,
    organization_id       INTEGER NOT NULL,
    status                TEXT NOT NULL,
    status_reason_kind    TEXT,
    status_reason_message TEXT,
    organization_name     TEXT,
    zone                  TEXT,
    created_at            TEXT NOT NULL,
    last_success_at       TEXT,
    last_run_id           TEXT,
    last_error_kind       TEXT,
    last_error_message    TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    lease_until           TEXT,
    user_count            INTEGER,
    version               INTEGER NOT NULL DEFAULT 0,
    token_version         TEXT,
    erased_users          INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    connection_id TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    role_id       INTEGER NOT NULL,
    role_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    invitation    TEXT,
    last_login    TEXT,
    first_seen    TEXT NOT NULL,
    removed_at    TEXT,
    -- UserRecord::digest, as a signed 64-bit integer; NULL in files from before it was kept.
    digest        INTEGER,
    PRIMARY KEY (connection_id, user_id)
);
-- Which connection syncs a Make organization now: one at a time per organization.
CREATE TABLE IF NOT EXISTS organization_leases (
    host            TEXT NOT NULL,
    organization_id INTEGER NOT NULL,
    holder          TEXT NOT NULL,
    lease_until     TEXT NOT NULL,
    PRIMARY KEY (host, organization_id)
);
-- The start time of the run that last wrote a connection's users (the stale-run guard).
CREATE TABLE IF NOT EXISTS user_writes (
    connection_id  TEXT PRIMARY KEY,
    run_started_at TEXT NOT NULL
);
-- How many times each connection's users were closed (disconnect, erasure): a run that saw
-- fewer writes nothing. Kept when a connection is erased: it names no person.
CREATE TABLE IF NOT EXISTS user_closes (
    connection_id TEXT PRIMARY KEY,
    closes        INTEGER NOT NULL,
    closed_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_runs (
    connection_id TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    outcome       TEXT NOT NULL,
    fetched       INTEGER NOT NULL,
    added         INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    removed       INTEGER NOT NULL,
    unchanged     INTEGER NOT NULL,
    make_requests INTEGER NOT NULL,
    retries       INTEGER NOT NULL,
    error_kind    TEXT,
    error_message TEXT,
    PRIMARY KEY (connection_id, run_id)
);
CREATE INDEX IF NOT EXISTS sync_runs_by_start ON sync_runs (connection_id, started_at);
-- Answers to requests that named a requestId, kept a day.
CREATE TABLE IF NOT EXISTS request_answers (
    tenant_id  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    answer     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX IF NOT EXISTS connections_by_tenant ON connections (tenant_id);
-- The removed users of a connection by removal time: the retention rule runs with every write
-- and reads only these, not every user (at 100,001 users, a scan per 200-row write made a
-- first sync 5 s instead of 1.4 s). Added 2026-12-07; older files gain it when opened.
CREATE INDEX IF NOT EXISTS users_removed_by_time ON users (connection_id, removed_at)
    WHERE status = 'removed';
-- Tokens shared by several connections: the credential as JSON, its version beside it for
-- the conditional writes.
CREATE TABLE IF NOT EXISTS credentials (
    id       TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    instance INTEGER NOT NULL,
    body     TEXT NOT NULL
);
"#;

/// Creates `path` empty with mode 0600 unless it exists.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`. A new file is readable and writable by
    /// its owner only (mode 0600, whatever the umask): it holds members' names and emails.
    /// SQLite gives its journal and WAL files the database file's mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let db = rusqlite::Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        Self::init(db)
    }

    /// A store that lives only as long as this value (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(rusqlite::Connection::open_in_memory().map_err(backend)?)
    }

    fn init(db: rusqlite::Connection) -> Result<Self, StoreError> {
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        // In WAL mode NORMAL syncs at checkpoints, not at each commit: a power cut may lose
        // the last transactions, never the file's consistency — and a sync whose writes were
        // lost is one run older, which the next run makes good. (A 100,000-user first sync
        // commits 500 chunks.)
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        db.execute_batch(SCHEMA).map_err(backend)?;
        // Files made by earlier versions lack the columns added since.
        add_column_if_missing(&db, "users", "digest", "INTEGER")?;
        add_column_if_missing(&db, "users", "role_identifier", "TEXT")?;
        add_column_if_missing(&db, "users", "role_management_type", "TEXT")?;
        // The member's team roles as JSON; NULL when team access was not read.
        add_column_if_missing(&db, "users", "teams", "TEXT")?;
        // UserRecord::teams_digest; NULL without team roles, and in rows written before it.
        add_column_if_missing(&db, "users", "teams_digest", "INTEGER")?;
        add_column_if_missing(&db, "sync_runs", "teams_not_read", "TEXT")?;
        add_column_if_missing(&db, "connections", "user_count", "INTEGER")?;
        add_column_if_missing(&db, "connections", "version", "INTEGER NOT NULL DEFAULT 0")?;
        add_column_if_missing(&db, "connections", "token_version", "TEXT")?;
        add_column_if_missing(
            &db,
            "connections",
            "erased_users",
            "INTEGER NOT NULL DEFAULT 0",
        )?;
        add_column_if_missing(&db, "connections", "credential_id", "TEXT")?;
        add_column_if_missing(&db, "connections", "teams_readable", "INTEGER")?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Erases everything the file holds about a connection — its users, its runs, its write
    /// guard and the connection itself — with SQLite's `secure_delete` on, then vacuums the
    /// file and truncates its write-ahead log, so that the deleted rows do not linger in free
    /// pages. Returns how many users and runs were deleted.
    pub async fn erase_connection(&self, id: &ConnectionId) -> Result<(usize, usize), StoreError> {
        let id = id.clone();
        self.with_db(move |db| {
            db.pragma_update(None, "secure_delete", "ON")
                .map_err(backend)?;
            let tx = db.transaction().map_err(backend)?;
            let users = tx
                .execute(
                    "DELETE FROM users WHERE connection_id = ?1",
                    params![id.as_str()],
                )
                .map_err(backend)?;
            let runs = tx
                .execute(
                    "DELETE FROM sync_runs WHERE connection_id = ?1",
                    params![id.as_str()],
                )
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM user_writes WHERE connection_id = ?1",
                params![id.as_str()],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM connections WHERE id = ?1",
                params![id.as_str()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            db.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(backend)?;
            Ok((users, runs))
        })
        .await
    }

    async fn with_db<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut db)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn add_column_if_missing(
    db: &rusqlite::Connection,
    table: &str,
    column: &str,
    declaration: &str,
) -> Result<(), StoreError> {
    let mut statement = db
        .prepare(&format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
        ))
        .map_err(backend)?;
    if !statement.exists(params![column]).map_err(backend)? {
        db.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
        ))
        .map_err(backend)?;
    }
    Ok(())
}

fn backend(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_text(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(text)
}

fn time(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

fn opt_time(raw: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    raw.as_deref().map(time).transpose()
}

fn report(
    kind: Option<String>,
    message: Option<String>,
) -> Result<Option<ErrorReport>, StoreError> {
    match (kind, message) {
        (Some(kind), Some(message)) => {
            let kind = ErrorKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("error kind {kind:?}")))?;
            Ok(Some(ErrorReport::new(kind, message)))
        }
        _ => Ok(None),
    }
}
