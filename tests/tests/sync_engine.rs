//! The sync engine end to end against the simulator: what lands in the store, run by run,
//! in every API shape (member list unpaged / paged / cut × missing scope 403 / 401).

use chrono::{Duration as Span, Utc};
use makesync::clock::Clock;
use makesync::error::ErrorKind;
use makesync::ports::{ConnectionStore, SyncRunStore, UserStore};
use makesync::run::RunOutcome;
use makesync::sync::ChangeKind;
use makesync::user::{UserRecord, UserStatus};
use makesync_tests::{across_api_shapes, TestEnv, ACME, GLOBEX};

fn user(users: &[UserRecord], id: u64) -> &UserRecord {
    users
        .iter()
        .find(|u| u.user_id == id)
        .unwrap_or_else(|| panic!("user {id} stored"))
}

across_api_shapes! {
async fn the_first_sync_stores_every_member_with_role_status_and_last_login(shape: ApiShape) {
    let env = TestEnv::start_in(shape).await;
    let connection = env.connection("us2.make.com", GLOBEX);
    env.store.create_connection(&connection).await.unwrap();
    let report = env.sync(&connection).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.counts.fetched, 6);
    assert_eq!(report.run.counts.added, 6);

    let users = env.store.list_users(&connection.id).await.unwrap();
    let jose = user(&users, 5);
    assert_eq!(
        (jose.name.as_str(), jose.role_id, jose.role_name.as_str()),
        ("José Ñúñez", 11, "Owner")
    );
    assert_eq!(jose.status, UserStatus::Active);
    assert_eq!(
        jose.last_login.unwrap().to_rfc3339(),
        "2026-11-21T12:00:00+00:00"
    );
    let soren = user(&users, 7);
    assert_eq!(
        (soren.role_name.as_str(), soren.last_login),
        ("Accountant", None)
    );
    let dmitri = user(&users, 14);
    assert_eq!(
        (dmitri.role_id, dmitri.role_name.as_str()),
        (17, "Scenario Reviewer")
    );
    let pat = user(&users, 16);
    assert_eq!(pat.status, UserStatus::Invited);
    assert_eq!(pat.invitation.as_deref(), Some("pending"));

    let stored = env
        .store
        .get_connection(&connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.organization_name.as_deref(),
        Some("Globex Corporation")
    );
    assert_eq!(stored.zone.as_deref(), Some("us2.make.com"));
    assert_eq!(stored.last_success_at, report.run.finished_at);
    assert_eq!(stored.last_run_id, Some(report.run.run_id.to_string()));
}

async fn an_unchanged_organization_writes_no_user(shape: ApiShape) {
    let env = TestEnv::start_in(shape).await;
    let connection = env.connection("eu1.make.com", ACME);
    env.sync(&connection).await;
    let writes = env.store.user_writes();
    let report = env.sync(&connection).await;
    assert_eq!(report.run.counts.unchanged, 36);
    assert_eq!(
        (
            report.run.counts.added,
            report.run.counts.updated,
            report.run.counts.removed
        ),
        (0, 0, 0)
    );
    assert_eq!(
        env.store.user_writes(),
        writes,
        "no user record was written"
    );
}

async fn removed_readded_role_changed_logged_in_and_accepted_are_each_recorded(shape: ApiShape) {
    let env = TestEnv::start_in(shape).await;
    let connection = env.connection("eu1.make.com", ACME);
    env.sync(&connection).await;
    let login = Utc::now() - Span::minutes(5);
    {
        let mut world = env.simulator.world();
        world
            .remove_member(ACME, 11)
            .set_role(ACME, 4, 12)
            .log_in(2, login)
            .accept_invitation(ACME, 3);
    }
    let report = env.sync(&connection).await;
    let counts = report.run.counts;
    assert_eq!(
        (
            counts.added,
            counts.updated,
            counts.removed,
            counts.unchanged
        ),
        (0, 3, 1, 32)
    );
    let users = env.store.list_users(&connection.id).await.unwrap();
    let removed = user(&users, 11);
    assert_eq!(removed.status, UserStatus::Removed);
    assert!(removed.removed_at.unwrap() >= report.run.started_at);
    assert_eq!(user(&users, 4).role_name, "Admin");
    assert_eq!(
        user(&users, 2).last_login.map(|t| t.timestamp_millis()),
        Some(login.timestamp_millis())
    );
    assert_eq!(user(&users, 3).status, UserStatus::Active);

    // The removed member comes back: restored, counted as added, tombstone cleared.
    env.simulator.world().add_member(ACME, 11, 13, None);
    let report = env.sync(&connection).await;
    assert_eq!(report.run.counts.added, 1);
    assert_eq!(report.changes[0].kind, ChangeKind::Restored);
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert_eq!(user(&users, 11).status, UserStatus::Active);
    assert_eq!(user(&users, 11).removed_at, None);
    assert_eq!(
        user(&users, 11).first_seen,
        removed.first_seen,
        "first seen is kept"
    );
}

async fn an_older_run_never_overwrites_what_a_newer_run_wrote(shape: ApiShape) {
    let env = TestEnv::start_in(shape).await;
    let connection = env.connection("eu1.make.com", ACME);
    let now = env.clock.wall();
    let newer = env.sync_started_at(&connection, now).await;
    assert_eq!(newer.run.outcome, RunOutcome::Succeeded);

    env.simulator.world().remove_member(ACME, 11);
    let older = env
        .sync_started_at(&connection, now - Span::minutes(10))
        .await;
    assert_eq!(older.run.outcome, RunOutcome::Failed);
    assert_eq!(older.run.error.as_ref().unwrap().kind, ErrorKind::Stale);
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert_eq!(
        user(&users, 11).status,
        UserStatus::Active,
        "the stale run removed nobody"
    );
    let stored = env
        .store
        .get_connection(&connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.consecutive_failures, 0,
        "a superseded run is not the connection's failure"
    );
}

async fn every_run_is_recorded_with_counts_requests_and_errors(shape: ApiShape) {
    let env = TestEnv::start_in(shape).await;
    let connection = env.connection("eu1.make.com", ACME);
    let ok = env.sync(&connection).await;
    let failed = env.sync_with(&connection, "sim-token-revoked").await;
    let runs = env.store.list_runs(&connection.id, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].run_id, failed.run.run_id, "newest first");
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert_eq!(runs[0].error.as_ref().unwrap().kind, ErrorKind::Auth);
    assert!(runs[0].finished_at.is_some());
    assert_eq!(runs[1].counts.fetched, 36);
    assert_eq!(runs[1].make_requests, ok.run.make_requests);
    assert!(runs[1].make_requests >= 4);
    let stored = env
        .store
        .get_connection(&connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.consecutive_failures, 1);
    assert_eq!(stored.last_error.unwrap().kind, ErrorKind::Auth);
    assert_eq!(stored.last_success_at, ok.run.finished_at);
}
}

/// A user store that counts write calls, notes whether two ever overlap, and fails the
/// `fail_on`th write with the store's error.
struct WritesInTurn {
    inner: std::sync::Arc<makesync::store::MemoryStore>,
    fail_on: usize,
    calls: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl UserStore for WritesInTurn {
    async fn list_users_page(
        &self,
        connection: &makesync::connection::ConnectionId,
        after: Option<makesync::user::MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, makesync::ports::StoreError> {
        self.inner.list_users_page(connection, after, limit).await
    }
    async fn list_user_digests(
        &self,
        connection: &makesync::connection::ConnectionId,
    ) -> Result<Vec<makesync::user::StoredUser>, makesync::ports::StoreError> {
        self.inner.list_user_digests(connection).await
    }
    async fn get_users(
        &self,
        connection: &makesync::connection::ConnectionId,
        ids: &[makesync::user::MakeUserId],
    ) -> Result<Vec<UserRecord>, makesync::ports::StoreError> {
        self.inner.get_users(connection, ids).await
    }
    async fn write_users(
        &self,
        connection: &makesync::connection::ConnectionId,
        stamp: &makesync::ports::WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), makesync::ports::StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let call = self.calls.fetch_add(1, SeqCst) + 1;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        // A write that takes a while: the engine resolves the next chunk meanwhile.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        let written = if call == self.fail_on {
            Err(makesync::ports::StoreError::Backend("disk full".into()))
        } else {
            self.inner.write_users(connection, stamp, changed).await
        };
        self.in_flight.fetch_sub(1, SeqCst);
        written
    }
    async fn users_closes(
        &self,
        connection: &makesync::connection::ConnectionId,
    ) -> Result<u64, makesync::ports::StoreError> {
        self.inner.users_closes(connection).await
    }
    async fn close_users(
        &self,
        connection: &makesync::connection::ConnectionId,
        at: chrono::DateTime<Utc>,
    ) -> Result<(), makesync::ports::StoreError> {
        self.inner.close_users(connection, at).await
    }
    async fn delete_users_page(
        &self,
        connection: &makesync::connection::ConnectionId,
        limit: usize,
    ) -> Result<usize, makesync::ports::StoreError> {
        self.inner.delete_users_page(connection, limit).await
    }
}

/// A first sync of 1,001 members writes its records a chunk at a time, one write after the
/// other even though the next chunk is made while one is written; a write that fails ends the
/// run with the store's error, and the chunk made beside it is never written.
#[tokio::test]
async fn chunks_are_written_one_after_another_and_a_failed_write_stops_the_run() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut world = makesync_simulator::demo_world();
    world.add_generated_organization(7001, "eu1.make.com", Some(1000), 1_000, 70_000_000);
    world.add_member(7001, 1, 12, None);
    for (fail_on, written) in [(usize::MAX, 1_001), (3, 400)] {
        let env = TestEnv::start_with(world.clone(), |config| config.page_size = 500).await;
        let users = std::sync::Arc::new(WritesInTurn {
            inner: env.store.clone(),
            fail_on,
            calls: Default::default(),
            in_flight: Default::default(),
            most_in_flight: Default::default(),
        });
        let engine = makesync::sync::SyncEngine::new(
            env.store.clone(),
            users.clone(),
            env.store.clone(),
            env.clock_arc(),
        );
        let connection = env.connection("eu1.make.com", 7001);
        env.ensure_stored(&connection).await;
        let client = env.client(&connection, makesync_simulator::DEMO_TOKEN);
        let report = engine
            .sync(&connection, &client, makesync::run::SyncReason::OnDemand)
            .await;
        let stored = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(stored.len(), written, "failing on write {fail_on}");
        assert_eq!(users.most_in_flight.load(SeqCst), 1, "writes never overlap");
        if fail_on == usize::MAX {
            assert_eq!(report.run.outcome, RunOutcome::Succeeded);
            assert_eq!(report.run.counts.added, 1_001);
            assert_eq!(users.calls.load(SeqCst), 6, "200 records a write");
        } else {
            assert_eq!(report.run.outcome, RunOutcome::Failed);
            let error = report.run.error.expect("the run says why");
            assert_eq!(error.kind, ErrorKind::Storage);
            assert!(error.message.contains("disk full"), "{}", error.message);
            assert_eq!(
                users.calls.load(SeqCst),
                fail_on,
                "no write after the failed one"
            );
        }
    }
}
