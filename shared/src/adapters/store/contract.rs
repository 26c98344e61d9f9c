//! The behaviour every storage adapter must have, run against each of them: here against the
//! memory and SQLite stores, and from the integration tests against DynamoDB on moto.

#[cfg(test)]
use super::MemoryStore;
#[cfg(all(test, feature = "sqlite"))]
use super::SqliteStore;
use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping,
};
use crate::credential::{Credential, CredentialId};
use crate::error::{ErrorKind, ErrorReport};
use crate::host::MakeHost;
use crate::organization::OrganizationId;
use crate::ports::{ConnectionStore, RequestLog, StoreError, SyncRunStore, UserStore, WriteStamp};
use crate::run::{RunCounts, SyncReason, SyncRun};
use crate::tenant::TenantId;
use crate::user::{TeamRole, UserRecord, UserStatus};
use chrono::{DateTime, Duration, Utc};

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

/// A request's answer is kept for its tenant only, the first one stays, and it is gone once
/// it expires.
async fn check_request_answers(store: &dyn Store) {
    let (a, b) = (
        TenantId::parse("tenant-a#x").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    let now = at("2026-12-01T00:00:00Z");
    let expires = now + Duration::hours(24);
    assert_eq!(store.answer_of(&a, "r-1", now).await.unwrap(), None);
    store
        .keep_answer(&a, "r-1", r#"{"n":1}"#, now, expires)
        .await
        .unwrap();
    store
        .keep_answer(&a, "r-1", r#"{"n":2}"#, now, expires)
        .await
        .unwrap();
    assert_eq!(
        store.answer_of(&a, "r-1", now).await.unwrap().as_deref(),
        Some(r#"{"n":1}"#),
        "the first answer stays"
    );
    assert_eq!(store.answer_of(&b, "r-1", now).await.unwrap(), None);
    // No other tenant and request meet on one key ("tenant-a#x" with "r-1" is not
    // "tenant-a" with "x#r-1" nor the reverse).
    let other = TenantId::parse("tenant-a").unwrap();
    assert_eq!(store.answer_of(&other, "r-1", now).await.unwrap(), None);
    assert_eq!(
        store
            .answer_of(&a, "r-1", expires + Duration::seconds(1))
            .await
            .unwrap(),
        None,
        "expired"
    );
    // Past its expiry, a new answer takes its place.
    let later = expires + Duration::seconds(1);
    store
        .keep_answer(&a, "r-1", r#"{"n":3}"#, later, later + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(
        store.answer_of(&a, "r-1", later).await.unwrap().as_deref(),
        Some(r#"{"n":3}"#)
    );
}

/// Many connections read at once: exactly those that exist, as stored, the newest write
/// included — more than one DynamoDB batch (100 keys) of them.
async fn check_connections_read_together(store: &dyn Store) {
    let mut ids = Vec::new();
    for n in 0..105 {
        let mut connection = connection(&format!("batch-{n:03}"));
        connection.tenant_id = TenantId::parse("tenant-batch").unwrap();
        assert!(store.create_connection(&connection).await.unwrap());
        ids.push(connection.id);
    }
    let updated = &ids[104];
    assert!(store
        .update_connection(updated, 1, &ConnectionUpdate::disconnect())
        .await
        .unwrap());
    let mut asked = ids.clone();
    asked.insert(50, ConnectionId::parse("batch-unknown").unwrap());
    let mut read = store.get_connections(&asked).await.unwrap();
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        read.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids,
        "exactly the connections that exist"
    );
    for connection in &read {
        assert_eq!(
            Some(connection),
            store.get_connection(&connection.id).await.unwrap().as_ref()
        );
    }
    assert_eq!(read[104].status, ConnectionStatus::Disconnected);
    assert!(store.get_connections(&[]).await.unwrap().is_empty());
}

/// Connections round-trip whole and page without loss or repetition; returns the first.
async fn check_connections_round_trip(store: &dyn Store) -> Connection {
    let first = connection("c-0");
    assert!(store.create_connection(&first).await.unwrap());
    assert_eq!(
        store.get_connection(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .get_connection(&ConnectionId::parse("none").unwrap())
            .await
            .unwrap(),
        None
    );
    for i in 1..5 {
        assert!(store
            .create_connection(&connection(&format!("c-{i}")))
            .await
            .unwrap());
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_connections(cursor, 2).await.unwrap();
        assert!(page.connections.len() <= 2);
        seen.extend(page.connections.into_iter().map(|c| c.id.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // In no particular order: DynamoDB's Scan returns items in hash order.
    seen.sort();
    assert_eq!(seen, vec!["c-0", "c-1", "c-2", "c-3", "c-4"]);
    first
}

/// A run's bookkeeping writes its own fields, and only on an active connection.
async fn check_run_bookkeeping(store: &dyn Store, first: &Connection) {
    let run = RunBookkeeping {
        run_id: "run-1".into(),
        finished_at: Some(at("2026-01-01T00:10:00Z")),
        outcome: Ok(12),
        organization_name: Some("Renamed".into()),
        zone: Some("eu1.make.com".into()),
    };
    assert_eq!(
        store.record_run(&first.id, &run).await.unwrap(),
        None,
        "paused"
    );
    assert!(!store
        .set_status(
            &first.id,
            ConnectionStatus::Active,
            ConnectionStatus::Disconnected,
            None
        )
        .await
        .unwrap());
    assert!(store
        .set_status(
            &first.id,
            ConnectionStatus::Paused,
            ConnectionStatus::Active,
            None
        )
        .await
        .unwrap());
    let written = store.record_run(&first.id, &run).await.unwrap().unwrap();
    let mut expected = first.clone();
    expected.status = ConnectionStatus::Active;
    expected.status_reason = None;
    expected.apply(&run);
    assert_eq!(written, expected);
    assert_eq!(expected.consecutive_failures, 0);
    assert_eq!(
        expected.tenant_id.as_str(),
        "tenant-1",
        "not the run's to change"
    );
    assert_eq!(
        store.get_connection(&first.id).await.unwrap(),
        Some(expected.clone())
    );
    let failed = RunBookkeeping {
        run_id: "run-2".into(),
        outcome: Err(ErrorReport::new(ErrorKind::Transient, "503")),
        organization_name: None,
        zone: None,
        ..run.clone()
    };
    let written = store.record_run(&first.id, &failed).await.unwrap().unwrap();
    assert_eq!(written.consecutive_failures, 1);
    assert_eq!(written.last_error.unwrap().message, "503");
    assert_eq!(written.organization_name.as_deref(), Some("Renamed"));
    assert_eq!(written.user_count, Some(12));
    assert!(store
        .set_status(
            &first.id,
            ConnectionStatus::Active,
            ConnectionStatus::Paused,
            Some(ErrorReport::new(ErrorKind::Auth, "paused: token revoked")),
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .record_run(&ConnectionId::parse("none").unwrap(), &run)
            .await
            .unwrap(),
        None
    );
}

/// One lease at a time, until it expires or is released.
async fn check_connection_lease(store: &dyn Store) {
    let now = at("2026-01-01T00:00:00Z");
    let lease = now + Duration::minutes(15);
    let second = ConnectionId::parse("c-1").unwrap();
    store.release_lease(&second).await.unwrap();
    assert!(store.acquire_lease(&second, now, lease).await.unwrap());
    assert!(!store
        .acquire_lease(&second, now + Duration::minutes(1), lease)
        .await
        .unwrap());
    assert!(
        store
            .acquire_lease(&second, lease, lease + Duration::minutes(15))
            .await
            .unwrap(),
        "expired"
    );
    store.release_lease(&second).await.unwrap();
    assert!(
        store.acquire_lease(&second, now, lease).await.unwrap(),
        "released"
    );
    assert!(!store
        .acquire_lease(&ConnectionId::parse("none").unwrap(), now, lease)
        .await
        .unwrap());
}

/// One connection of a Make organization syncs it at a time.
async fn check_organization_lease(store: &dyn Store, first: &Connection) {
    let now = at("2026-01-01T00:00:00Z");
    let lease = now + Duration::minutes(15);
    let second = ConnectionId::parse("c-1").unwrap();
    let host = MakeHost::parse("eu1.make.com").unwrap();
    let organization = OrganizationId::new(7).unwrap();
    let (a, b) = (first.id.clone(), second.clone());
    assert!(store
        .acquire_organization_lease(&host, organization, &a, now, lease)
        .await
        .unwrap());
    assert!(
        store
            .acquire_organization_lease(&host, organization, &a, now, lease)
            .await
            .unwrap(),
        "its holder may take it again"
    );
    assert!(!store
        .acquire_organization_lease(&host, organization, &b, now, lease)
        .await
        .unwrap());
    assert!(store
        .acquire_organization_lease(&host, OrganizationId::new(8).unwrap(), &b, now, lease)
        .await
        .unwrap());
    store
        .release_organization_lease(&host, organization, &b)
        .await
        .unwrap();
    assert!(
        !store
            .acquire_organization_lease(&host, organization, &b, now, lease)
            .await
            .unwrap(),
        "only its holder releases it"
    );
    assert!(
        store
            .acquire_organization_lease(
                &host,
                organization,
                &b,
                lease,
                lease + Duration::minutes(15)
            )
            .await
            .unwrap(),
        "expired"
    );
    store
        .release_organization_lease(&host, organization, &b)
        .await
        .unwrap();
    assert!(store
        .acquire_organization_lease(&host, organization, &a, now, lease)
        .await
        .unwrap());
}

/// Users round-trip, and an older run cannot overwrite a newer one.
async fn check_users(store: &dyn Store, first: &Connection) {
    let users = vec![
        user(1, UserStatus::Active),
        user(2, UserStatus::Invited),
        user(3, UserStatus::Removed),
    ];
    let newer = at("2026-01-05T00:00:00Z");
    store
        .write_users(&first.id, &WriteStamp::new("run-newer", newer, 0), &users)
        .await
        .unwrap();
    assert_eq!(store.list_users(&first.id).await.unwrap(), users);

    check_user_reads(store, &first.id, &users).await;
    check_older_runs_cannot_overwrite_users(store, &first.id, &users, newer).await;
    assert!(store
        .list_users(&ConnectionId::parse("c-1").unwrap())
        .await
        .unwrap()
        .is_empty());
    check_closed_users_refuse_older_runs(store, &first.id, newer).await;
}

/// The reads a sync and the API make besides the whole list: digests, some users by id,
/// pages after a user id.
async fn check_user_reads(store: &dyn Store, connection: &ConnectionId, users: &[UserRecord]) {
    // What a sync reads instead of the records: id, digest, removed. (Whether a removed
    // user lacks an expiry depends on how the store applies the retention.)
    let digests: Vec<(u64, Option<u64>, bool)> = store
        .list_user_digests(connection)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.user_id, d.digest, d.removed))
        .collect();
    assert_eq!(
        digests,
        users
            .iter()
            .map(|u| (u.user_id, Some(u.digest()), u.status == UserStatus::Removed))
            .collect::<Vec<_>>()
    );
    let mut some = store.get_users(connection, &[3, 99, 1]).await.unwrap();
    some.sort_by_key(|u| u.user_id);
    assert_eq!(some, vec![users[0].clone(), users[2].clone()]);
    assert_eq!(
        store.list_users_page(connection, Some(1), 1).await.unwrap(),
        vec![users[1].clone()]
    );
    assert_eq!(
        store.list_users_page(connection, None, 2).await.unwrap(),
        users[..2].to_vec()
    );
    assert!(store
        .list_users_page(connection, Some(3), 10)
        .await
        .unwrap()
        .is_empty());
}

/// A write of a run older than the last one that wrote is refused and writes nothing; the
/// newer run may write again.
async fn check_older_runs_cannot_overwrite_users(
    store: &dyn Store,
    connection: &ConnectionId,
    users: &[UserRecord],
    newer: DateTime<Utc>,
) {
    let stale = store
        .write_users(
            connection,
            &WriteStamp::new("run-older", newer - Duration::seconds(1), 0),
            &[user(1, UserStatus::Removed)],
        )
        .await
        .unwrap_err();
    assert_eq!(
        stale,
        StoreError::StaleRun {
            this: newer - Duration::seconds(1),
            newer
        }
    );
    assert_eq!(
        store.list_users(connection).await.unwrap(),
        users,
        "nothing written"
    );
    store
        .write_users(
            connection,
            &WriteStamp::new("run-newer", newer, 0),
            &[user(1, UserStatus::Removed)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_users(connection).await.unwrap()[0].status,
        UserStatus::Removed
    );
}

/// Runs are replaced by id and listed newest first.
async fn check_runs(store: &dyn Store, first: &Connection) {
    let mut old = SyncRun::start(
        first.id.clone(),
        SyncReason::Scheduled,
        at("2026-01-01T00:00:00Z"),
    );
    store.put_run(&old).await.unwrap();
    old.succeed(
        RunCounts {
            fetched: 3,
            added: 3,
            ..RunCounts::default()
        },
        at("2026-01-01T00:00:01Z"),
    );
    old.make_requests = 4;
    store.put_run(&old).await.unwrap();
    let mut new = SyncRun::start(
        first.id.clone(),
        SyncReason::OnDemand,
        at("2026-01-02T00:00:00Z"),
    );
    new.fail(
        ErrorReport::new(ErrorKind::RateLimited, "429"),
        at("2026-01-02T00:00:09Z"),
    );
    store.put_run(&new).await.unwrap();
    assert_eq!(
        store.list_runs(&first.id, 10).await.unwrap(),
        vec![new.clone(), old]
    );
    assert_eq!(store.list_runs(&first.id, 1).await.unwrap(), vec![new]);
}

/// A credential round-trips whole, is created only if its id is free, replaced and deleted
/// only at the version read, found for its own tenant only, and listed among the instances
/// only when it follows one; a connection keeps the credential it was created with.
async fn check_credentials(store: &dyn Store) {
    let tenant = TenantId::parse("tenant-1").unwrap();
    let id = CredentialId::generate();
    let mut credential = Credential::new(
        tenant.clone(),
        MakeHost::parse("eu1.make.com").unwrap(),
        &id.new_token_version(),
        id.clone(),
        at("2026-01-01T00:00:00Z"),
    );
    credential.connections = ["k-1", "k-2"]
        .iter()
        .map(|c| ConnectionId::parse(c).unwrap())
        .collect();
    assert!(store.create_credential(&credential).await.unwrap());
    assert!(!store.create_credential(&credential).await.unwrap());
    assert_eq!(
        store.get_credential(&id).await.unwrap(),
        Some(credential.clone())
    );
    assert_eq!(
        store
            .get_tenant_credential(&TenantId::parse("tenant-2").unwrap(), &id)
            .await
            .unwrap(),
        None
    );
    assert!(store.list_instance_credentials().await.unwrap().is_empty());

    // Two writers read version 1: the first wins, the second changes nothing.
    let mut rotated = credential.clone();
    rotated.token_version = Some("v2".into());
    let mut shrunk = credential.clone();
    shrunk
        .connections
        .remove(&ConnectionId::parse("k-1").unwrap());
    assert!(store.replace_credential(&rotated).await.unwrap());
    assert!(!store.replace_credential(&shrunk).await.unwrap());
    let stored = store.get_credential(&id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.token_version.as_deref(), Some("v2"));
    assert_eq!(stored.connections.len(), 2);

    let mut follows = stored.clone();
    follows.instance = Some(crate::credential::InstanceFollow {
        auto_connect: true,
        seen: [5001, 5002].into(),
        ..Default::default()
    });
    assert!(store.replace_credential(&follows).await.unwrap());
    let listed = store.list_instance_credentials().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance, follows.instance);
    assert_eq!(listed[0].version, 3);

    assert!(!store.delete_credential(&id, 2).await.unwrap());
    assert!(store.delete_credential(&id, 3).await.unwrap());
    assert_eq!(store.get_credential(&id).await.unwrap(), None);

    check_credential_connection(store, &id).await;
}

/// A connection of a credential: it names it; connected again after it left the credential,
/// on a token of its own; what Make said of its token's scopes kept until a new token's.
async fn check_credential_connection(store: &dyn Store, id: &CredentialId) {
    let mut member = connection("k-1");
    member.credential_id = Some(id.clone());
    member.teams_readable = Some(false);
    assert!(store.create_connection(&member).await.unwrap());
    let read = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(read.credential_id.as_ref(), Some(id));
    // Connected again after it left its credential: on a token of its own from then on.
    let own =
        crate::connection::ConnectionUpdate::reconnect_detached(Some("v9".into()), None, None);
    assert!(store
        .update_connection(&member.id, read.version, &own)
        .await
        .unwrap());
    let detached = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(detached.credential_id, None);
    assert_eq!(detached.token_version.as_deref(), Some("v9"));
    assert_eq!(
        detached.teams_readable,
        Some(false),
        "kept: the update did not say"
    );
    // A new token Make said nothing of: its scopes are unknown again.
    let mut unknown =
        crate::connection::ConnectionUpdate::reconnect(Some("v10".into()), None, None);
    unknown.teams_readable = Some(None);
    assert!(store
        .update_connection(&member.id, detached.version, &unknown)
        .await
        .unwrap());
    let stored = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(stored.teams_readable, None);
    let mut known = crate::connection::ConnectionUpdate::reconnect(Some("v11".into()), None, None);
    known.teams_readable = Some(Some(true));
    assert!(store
        .update_connection(&member.id, stored.version, &known)
        .await
        .unwrap());
    let stored = store.get_connection(&member.id).await.unwrap().unwrap();
    assert_eq!(stored.teams_readable, Some(true));
}

/// A connection is read and listed for its own tenant only; the unowned sentinel lists
/// nothing.
async fn check_tenant_reads(store: &dyn Store, original: &Connection) {
    let tenant = TenantId::parse("tenant-1").unwrap();
    assert_eq!(
        store
            .get_tenant_connection(&tenant, &original.id)
            .await
            .unwrap(),
        Some(original.clone())
    );
    for stranger in ["tenant-2", "tenant-1 ", "TENANT-1"] {
        assert_eq!(
            store
                .get_tenant_connection(&TenantId::parse(stranger).unwrap(), &original.id)
                .await
                .unwrap(),
            None,
            "{stranger:?}"
        );
        assert!(store
            .list_tenant_connections(&TenantId::parse(stranger).unwrap())
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != original.id));
    }
    let listed: Vec<ConnectionId> = store
        .list_tenant_connections(&tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(listed.contains(&original.id), "{listed:?}");
    assert!(store
        .list_tenant_connections(&TenantId::unowned())
        .await
        .unwrap()
        .is_empty());
}

/// A connection is created only if its id is free, updated only at the version that was read,
/// and found for its own tenant only.
async fn check_connection_writes_cannot_race(store: &dyn Store) {
    let mut original = connection("race-1");
    original.status = ConnectionStatus::Active;
    original.status_reason = None;
    original.lease_until = None;
    assert!(store.create_connection(&original).await.unwrap());
    let mut other = connection("race-1");
    other.organization_id = OrganizationId::new(99).unwrap();
    assert!(
        !store.create_connection(&other).await.unwrap(),
        "an id that is taken is not written over"
    );
    assert_eq!(
        store.get_connection(&original.id).await.unwrap(),
        Some(original.clone())
    );

    check_tenant_reads(store, &original).await;

    // Two requests read version 1; the first write wins, the second changes nothing.
    let reconnect =
        ConnectionUpdate::reconnect(Some("v2".into()), Some("Renamed Org".into()), None);
    let disconnect = ConnectionUpdate::disconnect();
    let now = at("2026-01-01T00:00:00Z");
    assert!(store
        .acquire_lease(&original.id, now, now + Duration::minutes(15))
        .await
        .unwrap());
    let leased = store.get_connection(&original.id).await.unwrap().unwrap();
    assert_eq!(leased.version, 1);
    assert!(store
        .update_connection(&original.id, 1, &reconnect)
        .await
        .unwrap());
    assert!(
        !store
            .update_connection(&original.id, 1, &disconnect)
            .await
            .unwrap(),
        "written at version 1 after version 2 exists"
    );
    let mut expected = leased.clone();
    expected.apply_update(&reconnect);
    let stored = store.get_connection(&original.id).await.unwrap().unwrap();
    assert_eq!(stored, expected);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.token_version.as_deref(), Some("v2"));
    assert_eq!(stored.consecutive_failures, 0);
    assert_eq!(
        stored.last_error, leased.last_error,
        "the last error stays until a sync succeeds"
    );
    assert_eq!(stored.zone, leased.zone, "kept when the update has none");
    assert_eq!(
        stored.lease_until, leased.lease_until,
        "an update never touches a sync's lease"
    );
    assert!(store
        .update_connection(&original.id, 2, &disconnect)
        .await
        .unwrap());
    let stored = store.get_connection(&original.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::Disconnected);
    assert_eq!(stored.token_version, None);
    assert_eq!(stored.version, 3);
    assert!(!store
        .update_connection(&ConnectionId::parse("none").unwrap(), 0, &disconnect)
        .await
        .unwrap());
}

/// An erasure counts its progress and, when finished, leaves the connection `erased` with
/// nothing Make said about the organization; it writes only on an `erasing` connection.
async fn check_erasure_is_recorded(store: &dyn Store) {
    let mut erasing = connection("erase-1");
    erasing.status = ConnectionStatus::Erasing;
    assert!(store.create_connection(&erasing).await.unwrap());
    assert!(store.record_erasure(&erasing.id, 25, false).await.unwrap());
    assert!(store.record_erasure(&erasing.id, 7, false).await.unwrap());
    let progress = store.get_connection(&erasing.id).await.unwrap().unwrap();
    assert_eq!(progress.erased_users, 32);
    assert_eq!(progress.status, ConnectionStatus::Erasing);
    assert_eq!(progress.organization_name, erasing.organization_name);
    assert!(store.record_erasure(&erasing.id, 0, true).await.unwrap());
    let erased = store.get_connection(&erasing.id).await.unwrap().unwrap();
    let mut expected = erasing.clone();
    expected.erased_users = 32;
    expected.forget_for_erasure();
    assert_eq!(erased, expected);
    assert_eq!(erased.status, ConnectionStatus::Erased);
    assert_eq!(erased.organization_name, None);
    assert_eq!(erased.last_error, None);
    assert!(
        !store.record_erasure(&erasing.id, 1, true).await.unwrap(),
        "erased already"
    );
    let active = connection("erase-2");
    assert!(store.create_connection(&active).await.unwrap());
    assert!(!store.record_erasure(&active.id, 1, false).await.unwrap());
    assert_eq!(
        store
            .get_connection(&active.id)
            .await
            .unwrap()
            .unwrap()
            .erased_users,
        0
    );
}

/// Closed users refuse every run that began before the close — one stamped later by a
/// clock that runs ahead and one stamped at the very same instant alike; a purge deletes the
/// users and keeps the close; a run that began after it writes.
async fn check_closed_users_refuse_older_runs(
    store: &dyn Store,
    id: &ConnectionId,
    newest_run: DateTime<Utc>,
) {
    let seen = store.users_closes(id).await.unwrap();
    let closed_at = newest_run + Duration::hours(1);
    store.close_users(id, closed_at).await.unwrap();
    store
        .close_users(id, closed_at - Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        store.users_closes(id).await.unwrap(),
        seen + 2,
        "each close counts, whatever its time"
    );
    for started in [closed_at, closed_at + Duration::minutes(1)] {
        let refused = store
            .write_users(
                id,
                &WriteStamp::new("run-in-flight", started, seen),
                &[user(9, UserStatus::Active)],
            )
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            StoreError::UsersClosed {
                seen,
                now: seen + 2
            },
            "a run that began before the closes, stamped {started}"
        );
    }
    let stored = store.list_users(id).await.unwrap().len();
    assert_eq!(store.delete_users_page(id, 2).await.unwrap(), 2.min(stored));
    let mut deleted = 2.min(stored);
    loop {
        let page = store.delete_users_page(id, 2).await.unwrap();
        assert!(page <= 2);
        if page == 0 {
            break;
        }
        deleted += page;
    }
    assert_eq!(deleted, stored, "every user, once");
    assert!(store.list_users(id).await.unwrap().is_empty());
    assert!(store.list_user_digests(id).await.unwrap().is_empty());
    assert!(
        store
            .write_users(
                id,
                &WriteStamp::new("run-in-flight", closed_at, seen + 1),
                &[user(9, UserStatus::Active)],
            )
            .await
            .is_err(),
        "the purge kept the close"
    );
    assert!(store.list_users(id).await.unwrap().is_empty());
    // A run that began after the closes (a reconnect's), even by a clock behind the closer's.
    store
        .write_users(
            id,
            &WriteStamp::new("run-after-reconnect", newest_run, seen + 2),
            &[user(9, UserStatus::Active)],
        )
        .await
        .unwrap();
    assert_eq!(store.list_users(id).await.unwrap().len(), 1);
}

/// The local stores apply the retention of removed users themselves, each time a run writes:
/// a user removed longer ago than the retention is gone, one removed since is kept, present
/// users are never touched. (DynamoDB leaves it to the table's TTL; the AWS tests check the
/// attribute.)
#[cfg(test)]
async fn check_local_retention(store: &dyn Store) {
    let id = ConnectionId::parse("retention-1").unwrap();
    let run = at("2026-03-01T00:00:00Z");
    let mut long_gone = user(1, UserStatus::Removed);
    long_gone.removed_at = Some(run - Duration::days(31));
    let mut just_gone = user(2, UserStatus::Removed);
    just_gone.removed_at = Some(run - Duration::days(29));
    let present = user(3, UserStatus::Active);
    store
        .write_users(
            &id,
            &WriteStamp::new("run-1", run - Duration::days(40), 0),
            &[long_gone, just_gone.clone(), present.clone()],
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_users(&id).await.unwrap().len(),
        3,
        "kept for good"
    );
    let stamp = WriteStamp {
        removed_user_retention: Some(Duration::days(30)),
        ..WriteStamp::new("run-2", run, 0)
    };
    store.write_users(&id, &stamp, &[]).await.unwrap();
    assert_eq!(
        store.list_users(&id).await.unwrap(),
        vec![just_gone, present],
        "the user removed 31 days ago is gone"
    );
}

#[cfg(test)]
#[tokio::test]
async fn the_local_stores_apply_the_retention_of_removed_users() {
    check_local_retention(&MemoryStore::new()).await;
    #[cfg(feature = "sqlite")]
    check_local_retention(&SqliteStore::in_memory().unwrap()).await;
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
