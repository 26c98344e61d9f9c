//! User rows: the `users` table behind [`UserStore`], with the write guard (`user_writes`,
//! `user_closes`) that refuses an older or closed run's writes, and the retention of removed
//! users.

use super::{backend, opt_text, opt_time, text, time, SqliteStore};
use crate::connection::ConnectionId;
use crate::ports::{StoreError, UserStore, WriteStamp};
use crate::user::{MakeUserId, StoredUser, UserRecord, UserStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

fn user_from_row(row: &Row<'_>) -> Result<UserRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let status: String = row.get("status").map_err(get)?;
    let user_id: i64 = row.get("user_id").map_err(get)?;
    Ok(UserRecord {
        user_id: user_id as u64,
        name: row.get("name").map_err(get)?,
        email: row.get("email").map_err(get)?,
        role_id: row.get("role_id").map_err(get)?,
        role_name: row.get("role_name").map_err(get)?,
        role_identifier: row.get("role_identifier").map_err(get)?,
        role_management_type: row.get("role_management_type").map_err(get)?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("user status {status:?}")))?,
        invitation: row.get("invitation").map_err(get)?,
        last_login: opt_time(row.get("last_login").map_err(get)?)?,
        first_seen: time(&row.get::<_, String>("first_seen").map_err(get)?)?,
        removed_at: opt_time(row.get("removed_at").map_err(get)?)?,
        teams: match row.get::<_, Option<String>>("teams").map_err(get)? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("a user's teams: {e}")))?,
            ),
            None => None,
        },
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| {
            let mut statement = db
                .prepare_cached(
                    "SELECT * FROM users WHERE connection_id = ?1 AND user_id > ?2
                     ORDER BY user_id LIMIT ?3",
                )
                .map_err(backend)?;
            let after = after.map_or(-1, |id| id as i64);
            let mut rows = statement
                .query(params![connection.as_str(), after, limit.max(1) as i64])
                .map_err(backend)?;
            let mut users = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                users.push(user_from_row(row)?);
            }
            Ok(users)
        })
        .await
    }

    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| {
            let mut statement = db
                .prepare_cached(
                    "SELECT user_id, digest, status = 'removed', teams_digest FROM users
                     WHERE connection_id = ?1 ORDER BY user_id",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![connection.as_str()], |row| {
                    Ok(StoredUser {
                        user_id: row.get::<_, i64>(0)? as u64,
                        digest: row.get::<_, Option<i64>>(1)?.map(|d| d as u64),
                        teams_digest: row.get::<_, Option<i64>>(3)?.map(|d| d as u64),
                        removed: row.get(2)?,
                        // The retention is applied by removal time, each time a run writes.
                        lacks_expiry: false,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError> {
        let connection = connection.clone();
        let ids = ids.to_vec();
        self.with_db(move |db| {
            let mut statement = db
                .prepare_cached("SELECT * FROM users WHERE connection_id = ?1 AND user_id = ?2")
                .map_err(backend)?;
            let mut users = Vec::with_capacity(ids.len());
            for id in ids {
                let mut rows = statement
                    .query(params![connection.as_str(), id as i64])
                    .map_err(backend)?;
                if let Some(row) = rows.next().map_err(backend)? {
                    users.push(user_from_row(row)?);
                }
            }
            Ok(users)
        })
        .await
    }

    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError> {
        let run_started_at = stamp.started_at;
        let closes_seen = stamp.closes_seen;
        let retention = stamp.removed_user_retention;
        let connection = connection.clone();
        let changed = changed.to_vec();
        self.with_db(move |db| {
            // IMMEDIATE takes the write lock before the guard is read, so two runs cannot both
            // pass the check.
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            check_write_guard(&tx, &connection, run_started_at, closes_seen)?;
            upsert_users(&tx, &connection, &changed)?;
            tx.execute(
                "INSERT OR REPLACE INTO user_writes (connection_id, run_started_at) VALUES (?1, ?2)",
                params![connection.as_str(), text(run_started_at)],
            )
            .map_err(backend)?;
            // The retention rule, as DynamoDB's TTL applies it: a user removed longer ago
            // than the retention is deleted. Times are stored in one format: text order is
            // time order.
            if let Some(keep) = retention {
                tx.execute(
                    EXPIRE_REMOVED_USERS,
                    params![connection.as_str(), text(run_started_at - keep)],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| closes_of(db, &connection)).await
    }

    async fn close_users(
        &self,
        connection: &ConnectionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| {
            db.execute(
                "INSERT INTO user_closes (connection_id, closes, closed_at) VALUES (?1, 1, ?2)
                 ON CONFLICT (connection_id) DO UPDATE SET closes = closes + 1,
                    closed_at = excluded.closed_at",
                params![connection.as_str(), text(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// The write guard in `user_writes` stays (see [`UserStore::close_users`]).
    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let connection = connection.clone();
        self.with_db(move |db| {
            let deleted = db
                .execute(
                    "DELETE FROM users WHERE connection_id = ?1 AND user_id IN
                        (SELECT user_id FROM users WHERE connection_id = ?1
                         ORDER BY user_id LIMIT ?2)",
                    params![connection.as_str(), limit.max(1) as i64],
                )
                .map_err(backend)?;
            Ok(deleted)
        })
        .await
    }
}

/// How many times the connection's users were closed.
fn closes_of(db: &rusqlite::Connection, connection: &ConnectionId) -> Result<u64, StoreError> {
    let closes: Option<i64> = db
        .query_row(
            "SELECT closes FROM user_closes WHERE connection_id = ?1",
            params![connection.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(closes.map_or(0, |n| n.max(0) as u64))
}

/// Refuses the write of a run that began before the users' last close, or that is older than
/// the last run that wrote them.
fn check_write_guard(
    tx: &rusqlite::Connection,
    connection: &ConnectionId,
    run_started_at: DateTime<Utc>,
    closes_seen: u64,
) -> Result<(), StoreError> {
    let closes = closes_of(tx, connection)?;
    if closes != closes_seen {
        return Err(StoreError::UsersClosed {
            seen: closes_seen,
            now: closes,
        });
    }
    let newer: Option<String> = tx
        .query_row(
            "SELECT run_started_at FROM user_writes WHERE connection_id = ?1",
            params![connection.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    if let Some(newer) = newer {
        let newer = time(&newer)?;
        if newer > run_started_at {
            return Err(StoreError::StaleRun {
                this: run_started_at,
                newer,
            });
        }
    }
    Ok(())
}

/// The retention rule: deletes a connection's users removed at or before `?2`. It reads the
/// index `users_removed_by_time`, so its cost follows the removed users, not all of them.
const EXPIRE_REMOVED_USERS: &str = "DELETE FROM users WHERE connection_id = ?1
    AND status = 'removed' AND removed_at IS NOT NULL AND removed_at <= ?2";

/// Writes each user whole (its digest with it).
fn upsert_users(
    tx: &rusqlite::Connection,
    connection: &ConnectionId,
    users: &[UserRecord],
) -> Result<(), StoreError> {
    // Cached: a run writes a chunk at a time, each with this statement.
    let mut upsert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO users (connection_id, user_id, name, email, role_id,
                role_name, status, invitation, last_login, first_seen, removed_at,
                digest, role_identifier, role_management_type, teams, teams_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .map_err(backend)?;
    for user in users {
        upsert
            .execute(params![
                connection.as_str(),
                user.user_id as i64,
                user.name,
                user.email,
                user.role_id,
                user.role_name,
                user.status.as_str(),
                user.invitation,
                opt_text(user.last_login),
                text(user.first_seen),
                opt_text(user.removed_at),
                user.digest() as i64,
                user.role_identifier,
                user.role_management_type,
                user.teams
                    .as_ref()
                    .map(|teams| serde_json::to_string(teams).expect("teams serialise")),
                user.teams_digest().map(|digest| digest as i64),
            ])
            .map_err(backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every write applies the retention rule. Were it to read every user of the connection,
    /// a first sync's 500 writes of a 100,000-user organization would read 25 million rows
    /// (3.5 s of a 5 s CLI sync, measured 2026-12-07); it reads the removed users only.
    #[test]
    fn the_retention_rule_reads_only_removed_users() {
        let store = SqliteStore::in_memory().unwrap();
        let db = store.db.lock().unwrap();
        let mut insert = db
            .prepare(
                "INSERT INTO users (connection_id, user_id, name, email, role_id, role_name,
                    status, first_seen, removed_at) VALUES ('c-1', ?1, 'n', 'e', 1, 'Member', ?2,
                    '2026-01-01T00:00:00.000000Z', ?3)",
            )
            .unwrap();
        for user in 0..5_000 {
            insert
                .execute(params![user, "active", None::<String>])
                .unwrap();
        }
        insert
            .execute(params![5_000, "removed", "2026-10-01T00:00:00.000000Z"])
            .unwrap();
        insert
            .execute(params![5_001, "removed", "2026-12-01T00:00:00.000000Z"])
            .unwrap();
        let mut expire = db.prepare(EXPIRE_REMOVED_USERS).unwrap();
        let deleted = expire
            .execute(params!["c-1", "2026-11-07T00:00:00.000000Z"])
            .unwrap();
        assert_eq!(deleted, 1, "the user removed before the cut-off");
        // A scan of the connection's 5,002 users takes several steps a row.
        let steps = expire.get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps < 200, "{steps} virtual machine steps");
    }
}
