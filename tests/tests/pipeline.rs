//! Scheduler → queue → worker over the embedded store: the path the Lambdas run, in process.

use makesync::clock::Clock;
use makesync::connection::ConnectionStatus;
use makesync::error::ErrorKind;
use makesync::host::MakeHost;
use makesync::ports::{ConnectionStore, SecretStore, SyncRunStore, UserStore};
use makesync::run::{RunOutcome, SyncReason, SyncRun};
use makesync::schedule::Scheduler;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, SqliteStore};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::user::UserStatus;
use makesync::worker::{WorkOutcome, Worker};
use makesync_simulator::DEMO_TOKEN;
use makesync_tests::{TestEnv, ACME, CELONIS, GLOBEX};
use std::sync::Arc;

struct Pipeline {
    env: TestEnv,
    store: Arc<SqliteStore>,
    secrets: Arc<MemorySecrets>,
    queue: Arc<MemoryQueue>,
    scheduler: Scheduler,
    worker: Worker,
}

async fn pipeline() -> Pipeline {
    let env = TestEnv::start().await;
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let secrets = Arc::new(MemorySecrets::default());
    let queue = Arc::new(MemoryQueue::default());
    let clock: Arc<dyn Clock> = Arc::new(env.clock.clone());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock.clone());
    let scheduler = Scheduler::new(store.clone(), queue.clone(), clock).with_page_size(2);
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone())
        .with_pause_after_failures(3);
    Pipeline {
        env,
        store,
        secrets,
        queue,
        scheduler,
        worker,
    }
}

impl Pipeline {
    async fn connect(
        &self,
        host: &str,
        organization: u64,
        token: &str,
    ) -> makesync::connection::Connection {
        let connection = self.env.connection(host, organization);
        self.secrets
            .put_token(&connection.token_ref(), &ApiToken::parse(token).unwrap())
            .await
            .unwrap();
        self.store.create_connection(&connection).await.unwrap();
        connection
    }

    async fn drain(&self) -> Vec<WorkOutcome> {
        let mut outcomes = Vec::new();
        for body in self.queue.take(usize::MAX) {
            outcomes.push(self.worker.handle_body(&body).await);
        }
        outcomes
    }
}

#[tokio::test]
async fn one_message_per_active_connection_and_each_is_synced() {
    let p = pipeline().await;
    let acme = p.connect("eu1.make.com", ACME, DEMO_TOKEN).await;
    let globex = p.connect("us2.make.com", GLOBEX, DEMO_TOKEN).await;
    let celonis = p.connect("eu1.make.celonis.com", CELONIS, DEMO_TOKEN).await;
    let mut paused = p.env.connection("us1.make.com", 4004);
    paused.status = ConnectionStatus::Paused;
    p.store.create_connection(&paused).await.unwrap();

    let summary = p.scheduler.fan_out().await.unwrap();
    assert_eq!(
        (
            summary.seen,
            summary.enqueued,
            summary.skipped_paused,
            summary.failed
        ),
        (4, 3, 1, 0)
    );
    assert_eq!(p.queue.len(), 3);
    p.queue.push_raw("{\"connectionId\": 42}");

    let outcomes = p.drain().await;
    let synced = outcomes
        .iter()
        .filter(|o| matches!(o, WorkOutcome::Synced(_)))
        .count();
    assert_eq!(synced, 3, "{outcomes:?}");
    let malformed = outcomes
        .iter()
        .find(|o| matches!(o, WorkOutcome::Skipped { .. }))
        .expect("the malformed message is skipped");
    assert!(!malformed.should_retry());
    for (connection, members) in [(&acme, 36), (&globex, 6), (&celonis, 5)] {
        assert_eq!(
            p.store.list_users(&connection.id).await.unwrap().len(),
            members
        );
    }
}

#[tokio::test]
async fn transient_failures_are_retried_permanent_ones_are_not_and_repeated_ones_pause() {
    let p = pipeline().await;
    let acme = p.connect("eu1.make.com", ACME, DEMO_TOKEN).await;
    let revoked = p.connect("us2.make.com", GLOBEX, "sim-token-revoked").await;

    p.env.simulator.world().faults.server_errors = 1000;
    let outcome = p.worker.handle(&request(&acme)).await;
    assert!(outcome.should_retry(), "a 5xx run goes back on the queue");
    p.env.simulator.world().faults.server_errors = 0;

    for attempt in 1..=3 {
        let outcome = p.worker.handle(&request(&revoked)).await;
        assert!(!outcome.should_retry(), "an invalid token is not retried");
        let report = outcome.report().unwrap();
        assert_eq!(report.run.error.as_ref().unwrap().kind, ErrorKind::Auth);
        let stored = p.store.get_connection(&revoked.id).await.unwrap().unwrap();
        assert_eq!(stored.consecutive_failures, attempt);
    }
    let stored = p.store.get_connection(&revoked.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ConnectionStatus::Paused);
    let reason = stored.status_reason.unwrap();
    assert!(
        reason.message.contains("paused after 3 failed syncs"),
        "{}",
        reason.message
    );
    assert!(matches!(
        p.worker.handle(&request(&revoked)).await,
        WorkOutcome::Skipped { .. }
    ));
    let summary = p.scheduler.fan_out().await.unwrap();
    assert_eq!((summary.enqueued, summary.skipped_paused), (1, 1));
}

#[tokio::test]
async fn failures_the_customer_did_not_cause_never_pause_and_a_long_streak_is_the_operators() {
    let p = pipeline().await;
    let metrics = Arc::new(makesync::metrics::EmfMemory::default());
    let worker = p
        .worker
        .clone()
        .with_failing_streak_alert(4)
        .with_metrics(metrics.clone());
    let acme = p.connect("eu1.make.com", ACME, DEMO_TOKEN).await;
    let failing_long = || {
        metrics
            .lines()
            .iter()
            .filter(|l| l.contains("\"ConnectionsFailingLong\":1"))
            .count()
    };
    // Make down (5xx), its rate limit (429 that never clears) and answers it cannot read:
    // ten failed runs in a row of each, and the connection stays active.
    type Fault = fn(&mut makesync_simulator::Faults);
    let faults: [(&str, Fault); 3] = [
        ("5xx", |f| f.server_errors = u32::MAX),
        ("rate limit", |f| f.rate_limited = u32::MAX),
        ("unreadable", |f| f.malformed_pages = u32::MAX),
    ];
    let mut failures = 0;
    for (name, fault) in faults {
        let before = p.env.simulator.world().faults.clone();
        fault(&mut p.env.simulator.world().faults);
        for _ in 0..10 {
            let outcome = worker.handle(&request(&acme)).await;
            let report = outcome.report().expect("a run");
            let error = report.run.error.as_ref().expect("a failed run");
            assert!(!error.kind.needs_customer(), "{name}: {error}");
            assert!(outcome.should_retry(), "{name}: {error}");
            failures += 1;
            let stored = p.store.get_connection(&acme.id).await.unwrap().unwrap();
            assert_eq!(stored.status, ConnectionStatus::Active, "{name}: {error}");
            assert_eq!(stored.consecutive_failures, failures);
            // From the fourth failure in a row on, each one counts on the operator's alarm.
            assert_eq!(failing_long(), failures.saturating_sub(3) as usize);
        }
        p.env.simulator.world().faults = before;
    }
    let outcome = worker.handle(&request(&acme)).await;
    assert!(matches!(outcome, WorkOutcome::Synced(_)), "{outcome:?}");
    let stored = p.store.get_connection(&acme.id).await.unwrap().unwrap();
    assert_eq!(stored.consecutive_failures, 0);
    assert_eq!(failing_long(), 27, "a success ends the streak");
}

#[tokio::test]
async fn a_connection_without_a_token_or_with_a_refused_host_fails_without_calling_make() {
    let p = pipeline().await;
    let no_token = p.env.connection("eu1.make.com", ACME);
    p.store.create_connection(&no_token).await.unwrap();
    let outcome = p.worker.handle(&request(&no_token)).await;
    let error = outcome.report().unwrap().run.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Auth);
    assert!(
        error.message.contains("reconnect it with a token"),
        "{}",
        error.message
    );

    // A host that is a valid name but not a Make zone, as a tampered store row would hold.
    let mut foreign = p.env.connection("us1.make.com", ACME);
    foreign.host = MakeHost::parse("make.attacker.example").unwrap();
    p.secrets
        .put_token(&foreign.token_ref(), &ApiToken::parse(DEMO_TOKEN).unwrap())
        .await
        .unwrap();
    assert!(p.store.create_connection(&foreign).await.unwrap());
    let outcome = p.worker.handle(&request(&foreign)).await;
    let error = outcome.report().unwrap().run.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(
        p.env.simulator.requests().is_empty(),
        "no request left for any host"
    );
    assert!(p.store.list_users(&foreign.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_member_removed_in_make_is_tombstoned_by_the_next_scheduled_sync() {
    let p = pipeline().await;
    let acme = p.connect("eu1.make.com", ACME, DEMO_TOKEN).await;
    p.scheduler.fan_out().await.unwrap();
    p.drain().await;
    p.env.simulator.world().remove_member(ACME, 2);
    p.scheduler.fan_out().await.unwrap();
    let outcomes = p.drain().await;
    assert_eq!(outcomes[0].report().unwrap().run.counts.removed, 1);
    let users = p.store.list_users(&acme.id).await.unwrap();
    let zoe = users.iter().find(|u| u.user_id == 2).unwrap();
    assert_eq!(zoe.status, UserStatus::Removed);
    assert!(zoe.removed_at.is_some());
}

#[tokio::test]
async fn a_run_whose_process_ended_is_recorded_as_failed_by_the_next_run() {
    let p = pipeline().await;
    let acme = p.connect("eu1.make.com", ACME, DEMO_TOKEN).await;
    // A worker wrote its run's start, then its process ended (a timeout, a crash).
    let orphan = SyncRun::start(acme.id.clone(), SyncReason::Scheduled, p.env.clock.wall());
    p.store.put_run(&orphan).await.unwrap();
    p.env.clock.advance(std::time::Duration::from_secs(900));

    p.scheduler.fan_out().await.unwrap();
    let outcomes = p.drain().await;
    let current_id = outcomes[0].report().unwrap().run.run_id;

    let runs = p.store.list_runs(&acme.id, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    let current = runs.iter().find(|r| r.run_id == current_id).unwrap();
    assert_eq!(current.outcome, RunOutcome::Succeeded);
    let closed = runs.iter().find(|r| r.run_id == orphan.run_id).unwrap();
    assert_eq!(closed.outcome, RunOutcome::Failed);
    assert_eq!(closed.finished_at, Some(current.started_at));
    let error = closed.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(
        error
            .message
            .contains("stopped before it recorded its outcome"),
        "{error}"
    );
    // The next run leaves the finished ones as they are.
    p.scheduler.fan_out().await.unwrap();
    p.drain().await;
    let again = p.store.list_runs(&acme.id, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(
        again.iter().find(|r| r.run_id == orphan.run_id),
        Some(closed)
    );
    assert_eq!(again.iter().find(|r| r.run_id == current_id), Some(current));
}

fn request(connection: &makesync::connection::Connection) -> makesync::queue::SyncRequest {
    makesync::queue::SyncRequest::new(
        connection.id.clone(),
        makesync::run::SyncReason::Scheduled,
        chrono::Utc::now(),
    )
}
