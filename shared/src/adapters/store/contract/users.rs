//! The contract of users ([`UserStore`]): reads, the write guard that refuses an older or
//! closed run's writes, and (for the local stores) the retention of removed users.
//!
//! [`UserStore`]: crate::ports::UserStore

use super::{at, user, Store};
#[cfg(test)]
use crate::adapters::store::MemoryStore;
#[cfg(all(test, feature = "sqlite"))]
use crate::adapters::store::SqliteStore;
use crate::connection::{Connection, ConnectionId};
use crate::ports::{StoreError, WriteStamp};
use crate::user::{UserRecord, UserStatus};
use chrono::{DateTime, Duration, Utc};

/// Users round-trip, and an older run cannot overwrite a newer one.
pub(super) async fn check_users(store: &dyn Store, first: &Connection) {
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
    // What a sync reads instead of the records: id, digest, the team roles' digest,
    // removed. (Whether a removed user lacks an expiry depends on how the store applies the
    // retention.)
    type Digests = (u64, Option<u64>, Option<u64>, bool);
    let digests: Vec<Digests> = store
        .list_user_digests(connection)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.user_id, d.digest, d.teams_digest, d.removed))
        .collect();
    assert_eq!(
        digests,
        users
            .iter()
            .map(|u| {
                let removed = u.status == UserStatus::Removed;
                (u.user_id, Some(u.digest()), u.teams_digest(), removed)
            })
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
