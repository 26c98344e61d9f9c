//! The invocation's deadline: a sync that would run past it gives up cleanly — the run is
//! recorded as failed, the lease is released, the message goes back, nobody is marked removed
//! — and a later run with time completes normally.

use makesync::clock::Clock;
use makesync::connection::Connection;
use makesync::error::ErrorKind;
use makesync::ports::{ConnectionStore, SecretStore, SyncRunStore, UserStore};
use makesync::queue::SyncRequest;
use makesync::run::{RunOutcome, SyncReason};
use makesync::store::{MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::user::UserStatus;
use makesync::worker::{Deadline, WorkOutcome, Worker};
use makesync_simulator::{demo_world, DEMO_TOKEN};
use makesync_tests::{TestEnv, ACME};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    env: TestEnv,
    store: Arc<MemoryStore>,
    worker: Worker,
    acme: Connection,
}

async fn setup() -> Setup {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone());
    let acme = env.connection("eu1.make.com", ACME);
    secrets
        .put_token(&acme.token_ref(), &ApiToken::parse(DEMO_TOKEN).unwrap())
        .await
        .unwrap();
    store.create_connection(&acme).await.unwrap();
    Setup {
        env,
        store,
        worker,
        acme,
    }
}

fn request(connection: &Connection) -> SyncRequest {
    SyncRequest::new(
        connection.id.clone(),
        SyncReason::Scheduled,
        chrono::Utc::now(),
    )
}

fn deadline_in(env: &TestEnv, left: Duration) -> Deadline {
    let clock = env.clock_arc();
    Deadline::at(
        clock.wall() + chrono::Duration::from_std(left).unwrap(),
        clock.as_ref(),
    )
}

fn removed(users: &[makesync::user::UserRecord]) -> Vec<u64> {
    users
        .iter()
        .filter(|u| u.status == UserStatus::Removed)
        .map(|u| u.user_id)
        .collect()
}

#[tokio::test]
async fn a_sync_that_would_run_past_the_deadline_gives_up_cleanly_and_a_later_run_completes() {
    let s = setup().await;
    assert!(matches!(
        s.worker.handle(&request(&s.acme)).await,
        WorkOutcome::Synced(_)
    ));
    {
        let mut world = s.env.simulator.world();
        world.remove_member(ACME, 11);
        // Make asks for a minute and a half; the invocation has one minute.
        world.faults.rate_limited = 1;
        world.faults.rate_limited_retry_after = 90;
    }
    let outcome = s
        .worker
        .handle_until(
            &request(&s.acme),
            Some(deadline_in(&s.env, Duration::from_secs(60))),
        )
        .await;
    assert!(outcome.should_retry(), "the message goes back: {outcome:?}");
    let report = outcome.report().expect("the run was recorded");
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let error = report.run.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Transient, "{}", error.message);
    assert!(
        error.message.contains("ran out of time"),
        "{}",
        error.message
    );
    assert!(
        s.env
            .clock
            .sleeps()
            .iter()
            .all(|s| *s < Duration::from_secs(90)),
        "the 90-s wait was not started: {:?}",
        s.env.clock.sleeps()
    );
    let runs = s.store.list_runs(&s.acme.id, 1).await.unwrap();
    assert_eq!(runs[0].run_id, report.run.run_id);
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    let connection = s.store.get_connection(&s.acme.id).await.unwrap().unwrap();
    assert_eq!(connection.lease_until, None, "the lease is free");
    let users = s.store.list_users(&s.acme.id).await.unwrap();
    assert!(
        removed(&users).is_empty(),
        "nobody removed on a run cut short"
    );

    // Later, with time: the removal is found.
    let outcome = s.worker.handle(&request(&s.acme)).await;
    let report = outcome.report().unwrap();
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.counts.removed, 1);
    let users = s.store.list_users(&s.acme.id).await.unwrap();
    assert_eq!(removed(&users), vec![11]);
}

#[tokio::test]
async fn a_record_with_too_little_time_left_is_returned_untouched() {
    let s = setup().await;
    let outcome = s
        .worker
        .handle_until(
            &request(&s.acme),
            Some(deadline_in(&s.env, Duration::from_secs(15))),
        )
        .await;
    assert!(
        matches!(outcome, WorkOutcome::Returned { .. }),
        "{outcome:?}"
    );
    assert!(outcome.should_retry());
    assert!(s.env.simulator.requests().is_empty(), "no Make request");
    assert!(s.store.list_runs(&s.acme.id, 10).await.unwrap().is_empty());
    let connection = s.store.get_connection(&s.acme.id).await.unwrap().unwrap();
    assert_eq!(connection.lease_until, None);
}

#[tokio::test]
async fn the_lease_of_a_sync_ends_shortly_after_its_invocation() {
    let s = setup().await;
    let deadline = deadline_in(&s.env, Duration::from_secs(300));
    // Slow answers, so that the lease can be seen while the sync runs.
    s.env.simulator.world().faults.latency = Duration::from_millis(200);
    let sync = {
        let worker = s.worker.clone();
        let request = request(&s.acme);
        tokio::spawn(async move { worker.handle_until(&request, Some(deadline)).await })
    };
    let mut leased = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        leased = s
            .store
            .get_connection(&s.acme.id)
            .await
            .unwrap()
            .unwrap()
            .lease_until;
        if leased.is_some() {
            break;
        }
    }
    let leased = leased.expect("the sync took its lease");
    assert_eq!(
        leased,
        deadline.wall + chrono::Duration::from_std(makesync::worker::LEASE_SKEW).unwrap()
    );
    assert!(matches!(sync.await.unwrap(), WorkOutcome::Synced(_)));
}

#[tokio::test]
async fn a_run_without_time_to_write_its_changes_writes_none_of_them() {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(1000), 10_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    let env = TestEnv::start_with(world, |config| {
        config.page_size = 10_000;
        config.request_timeout = Duration::from_secs(1);
    })
    .await;
    let connection = env.connection("eu1.make.com", 9001);
    // 10,001 records at the assumed 250 a second need about 42 s; 30 s are left.
    let deadline = env.clock.monotonic() + Duration::from_secs(30);
    let client = env.client(&connection, DEMO_TOKEN).with_deadline(deadline);
    let report = env
        .engine
        .sync(&connection, &client, SyncReason::OnDemand)
        .await;
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let error = report.run.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(
        error
            .message
            .contains("ran out of time before writing 10001 changed users"),
        "{}",
        error.message
    );
    assert_eq!(env.store.user_writes(), 0, "no record written");

    let report = env.sync(&connection).await;
    assert_eq!(report.run.outcome, RunOutcome::Succeeded);
    assert_eq!(report.run.counts.added, 10_001);
}
