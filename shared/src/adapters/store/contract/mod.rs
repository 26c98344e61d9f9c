//! The behaviour every storage adapter must have, run against each of them: here against the
//! memory and SQLite stores, and from the integration tests against DynamoDB on moto.
//!
//! This file holds what the checks share (the [`Store`] they take, the connection and user they
//! write) and runs them in order; each concept's checks live apart: [`connections`], [`leases`],
//! [`credentials`], [`users`], [`runs`] and the connect [`requests`]' answers.

mod connections;
mod credentials;
mod leases;
mod requests;
mod runs;
mod users;

#[cfg(test)]
use super::MemoryStore;
#[cfg(all(test, feature = "sqlite"))]
use super::SqliteStore;
use crate::connection::{Connection, ConnectionId, ConnectionStatus};
use crate::error::{ErrorKind, ErrorReport};
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::{ConnectionStore, RequestLog, SyncRunStore, UserStore};
use crate::tenant::TenantId;
use crate::user::{TeamRole, UserRecord, UserStatus};
use chrono::{DateTime, Utc};
use connections::{
    check_connection_writes_cannot_race, check_connections_read_together,
    check_connections_round_trip, check_erasure_is_recorded, check_run_bookkeeping,
};
use credentials::check_credentials;
use leases::{check_connection_lease, check_organization_lease};
use requests::check_request_answers;
use runs::check_runs;
use users::check_users;

pub trait Store: ConnectionStore + UserStore + SyncRunStore + RequestLog {}
impl<T: ConnectionStore + UserStore + SyncRunStore + RequestLog> Store for T {}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn connection(id: &str) -> Connection {
    let mut connection = Connection::new(
        ConnectionId::parse(id).unwrap(),
        TenantId::parse("tenant-1").unwrap(),
        MakeHost::parse("eu1.make.com").unwrap(),
        OrganizationId::new(7).unwrap(),
        at("2026-01-01T00:00:00.123456Z"),
    );
    connection.token_version = Some("v1".into());
    connection.status = ConnectionStatus::Paused;
    connection.status_reason = Some(ErrorReport::new(ErrorKind::Auth, "paused: token revoked"));
    connection.organization_name = Some("Zoë's Örg".into());
    connection.last_error = Some(ErrorReport::new(ErrorKind::Transient, "503"));
    connection.consecutive_failures = 3;
    connection.user_count = Some(42);
    connection.lease_until = Some(at("2026-01-01T00:05:00Z"));
    connection
}

fn user(id: u64, status: UserStatus) -> UserRecord {
    UserRecord {
        user_id: id,
        name: format!("李 {id}"),
        email: format!("u{id}@example.com"),
        role_id: 13,
        role_name: "Member".into(),
        role_identifier: Some("member".into()),
        role_management_type: Some("system_locked".into()),
        status,
        invitation: (status == UserStatus::Invited).then(|| "pending".into()),
        last_login: id.is_multiple_of(2).then(|| at("2026-01-02T03:04:05.678Z")),
        first_seen: at("2026-01-01T00:00:00Z"),
        removed_at: (status == UserStatus::Removed).then(|| at("2026-01-03T00:00:00Z")),
        // Team roles read (two, or none), and not read.
        teams: match id % 3 {
            1 => Some(vec![
                TeamRole {
                    team_id: 10,
                    team_name: "Finanzen & Co".into(),
                    role_id: 1,
                    role_name: "Team Admin".into(),
                },
                TeamRole {
                    team_id: 11,
                    team_name: "Маркетинг".into(),
                    role_id: 3,
                    role_name: "Team Member".into(),
                },
            ]),
            2 => Some(Vec::new()),
            _ => None,
        },
    }
}

/// Asserts the storage ports' contract on an empty store; panics on the first breach.
pub async fn check_store_contract(store: &dyn Store) {
    let first = check_connections_round_trip(store).await;
    check_connection_writes_cannot_race(store).await;
    check_credentials(store).await;
    check_erasure_is_recorded(store).await;
    check_run_bookkeeping(store, &first).await;
    check_connection_lease(store).await;
    check_organization_lease(store, &first).await;
    check_users(store, &first).await;
    check_runs(store, &first).await;
    check_connections_read_together(store).await;
    check_request_answers(store).await;
}

#[cfg(test)]
#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    check_store_contract(&MemoryStore::new()).await;
}

#[cfg(all(test, feature = "sqlite"))]
#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    check_store_contract(&SqliteStore::in_memory().unwrap()).await;
}

#[cfg(all(test, feature = "sqlite"))]
#[tokio::test]
async fn the_sqlite_store_keeps_its_data_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("makesync.db");
    let first = connection("c-0");
    assert!(SqliteStore::open(&path)
        .unwrap()
        .create_connection(&first)
        .await
        .unwrap());
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reopened.get_connection(&first.id).await.unwrap(),
        Some(first)
    );
}
