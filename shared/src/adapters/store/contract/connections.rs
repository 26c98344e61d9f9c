//! The contract of connections ([`ConnectionStore`]): their round trip, reads by id and by
//! tenant, versioned writes that cannot race, the erasure and a run's bookkeeping.
//!
//! [`ConnectionStore`]: crate::ports::ConnectionStore

use super::{at, connection, Store};
use crate::connection::{
    Connection, ConnectionId, ConnectionStatus, ConnectionUpdate, RunBookkeeping,
};
use crate::error::{ErrorKind, ErrorReport};
use crate::organization::OrganizationId;
use crate::tenant::TenantId;
use chrono::Duration;

/// Connections round-trip whole and page without loss or repetition; returns the first.
pub(super) async fn check_connections_round_trip(store: &dyn Store) -> Connection {
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

/// Many connections read at once: exactly those that exist, as stored, the newest write
/// included — more than one DynamoDB batch (100 keys) of them.
pub(super) async fn check_connections_read_together(store: &dyn Store) {
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
pub(super) async fn check_connection_writes_cannot_race(store: &dyn Store) {
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
pub(super) async fn check_erasure_is_recorded(store: &dyn Store) {
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

/// A run's bookkeeping writes its own fields, and only on an active connection.
pub(super) async fn check_run_bookkeeping(store: &dyn Store, first: &Connection) {
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
