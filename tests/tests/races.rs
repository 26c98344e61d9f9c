//! The races a sync can lose to what happens around it: a disconnect while its outcome is
//! written, a new request while it runs, another connection of the same Make organization.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use makesync::clock::Clock;
use makesync::connection::{Connection, ConnectionId, ConnectionStatus, RunBookkeeping};
use makesync::error::ErrorReport;
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionPage, ConnectionStore, SecretStore, StoreError, SyncRunStore};
use makesync::queue::SyncRequest;
use makesync::run::{RunOutcome, SyncReason, SyncRun};
use makesync::store::{MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::worker::{WorkOutcome, Worker};
use makesync_simulator::{demo_world, DEMO_TOKEN};
use makesync_tests::{TestEnv, ACME};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The connections port, with a disconnect that lands right when the run's outcome is being
/// written: after the run record is final, before the connection is written.
struct DisconnectDuringBookkeeping {
    inner: Arc<MemoryStore>,
    armed: AtomicBool,
}

impl DisconnectDuringBookkeeping {
    async fn fire_if_armed(&self, id: &ConnectionId) {
        if self.armed.swap(false, Ordering::SeqCst) {
            // What `ConnectService::disconnect` writes.
            let mut connection = self.inner.get_connection(id).await.unwrap().unwrap();
            connection.status = ConnectionStatus::Disconnected;
            connection.lease_until = None;
            self.inner.put_connection(&connection).await.unwrap();
        }
    }
}

#[async_trait]
impl ConnectionStore for DisconnectDuringBookkeeping {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.inner.put_connection(connection).await
    }
    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let read = self.inner.get_connection(id).await;
        // A read-modify-write of the connection would write over the disconnect.
        self.fire_if_armed(id).await;
        read
    }
    async fn list_connections(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ConnectionPage, StoreError> {
        self.inner.list_connections(cursor, limit).await
    }
    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.acquire_lease(id, now, until).await
    }
    async fn release_lease(&self, id: &ConnectionId) -> Result<(), StoreError> {
        self.inner.release_lease(id).await
    }
    async fn acquire_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner
            .acquire_organization_lease(host, organization, holder, now, until)
            .await
    }
    async fn release_organization_lease(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        holder: &ConnectionId,
    ) -> Result<(), StoreError> {
        self.inner
            .release_organization_lease(host, organization, holder)
            .await
    }
    async fn record_run(
        &self,
        id: &ConnectionId,
        run: &RunBookkeeping,
    ) -> Result<Option<Connection>, StoreError> {
        self.fire_if_armed(id).await;
        self.inner.record_run(id, run).await
    }
    async fn set_status(
        &self,
        id: &ConnectionId,
        expected: ConnectionStatus,
        status: ConnectionStatus,
        reason: Option<ErrorReport>,
    ) -> Result<bool, StoreError> {
        self.inner.set_status(id, expected, status, reason).await
    }
}

/// The runs port, arming the disconnect once a run's final record is written.
struct ArmOnFinish(Arc<MemoryStore>, Arc<DisconnectDuringBookkeeping>);

#[async_trait]
impl SyncRunStore for ArmOnFinish {
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.0.put_run(run).await?;
        if run.outcome != RunOutcome::Running {
            self.1.armed.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
    async fn list_runs(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        self.0.list_runs(connection, limit).await
    }
}

#[tokio::test]
async fn a_disconnect_that_lands_while_a_run_records_its_outcome_is_kept() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let connections = Arc::new(DisconnectDuringBookkeeping {
        inner: store.clone(),
        armed: AtomicBool::new(false),
    });
    let runs = Arc::new(ArmOnFinish(store.clone(), connections.clone()));
    let engine = SyncEngine::new(connections.clone(), store.clone(), runs, env.clock_arc());
    let acme = env.connection("eu1.make.com", ACME);
    store.put_connection(&acme).await.unwrap();

    let client = env.client(&acme, DEMO_TOKEN);
    let report = engine.sync(&acme, &client, SyncReason::Scheduled).await;
    assert_eq!(report.run.outcome, RunOutcome::Succeeded);

    let stored = store.get_connection(&acme.id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        ConnectionStatus::Disconnected,
        "the run did not bring a disconnected connection back to active"
    );
}

struct Workers {
    env: TestEnv,
    store: Arc<MemoryStore>,
    secrets: Arc<MemorySecrets>,
    worker: Worker,
}

async fn workers() -> Workers {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone());
    Workers {
        env,
        store,
        secrets,
        worker,
    }
}

impl Workers {
    async fn connect(&self, id: &str, organization: u64) -> Connection {
        let connection = Connection::new(
            ConnectionId::parse(id).unwrap(),
            MakeHost::parse("eu1.make.com").unwrap(),
            OrganizationId::new(organization).unwrap(),
            self.env.clock.wall(),
        );
        self.secrets
            .put_token(&connection.id, &ApiToken::parse(DEMO_TOKEN).unwrap())
            .await
            .unwrap();
        self.store.put_connection(&connection).await.unwrap();
        connection
    }
}

fn request(connection: &Connection, reason: SyncReason) -> SyncRequest {
    SyncRequest::new(connection.id.clone(), reason, Utc::now())
}

#[tokio::test]
async fn a_request_from_connect_or_sync_now_for_a_connection_in_flight_goes_back_to_the_queue() {
    let w = workers().await;
    let acme = w.connect("acme", ACME).await;
    let now = w.env.clock.wall();
    // A sync of the connection is in flight.
    assert!(w
        .store
        .acquire_lease(&acme.id, now, now + chrono::Duration::minutes(5))
        .await
        .unwrap());
    for reason in [SyncReason::Connected, SyncReason::OnDemand] {
        let outcome = w.worker.handle(&request(&acme, reason)).await;
        assert!(
            matches!(outcome, WorkOutcome::Returned { .. }),
            "{reason:?}: {outcome:?}"
        );
        assert!(outcome.should_retry());
    }
    let duplicate = w
        .worker
        .handle(&request(&acme, SyncReason::Scheduled))
        .await;
    assert!(
        matches!(duplicate, WorkOutcome::Skipped { .. }),
        "{duplicate:?}"
    );
    assert!(
        !duplicate.should_retry(),
        "a scheduled duplicate is dropped"
    );
}

#[tokio::test]
async fn two_connections_of_one_organization_never_sync_at_once() {
    let w = workers().await;
    let first = w.connect("tenant-a-acme", ACME).await;
    let second = w.connect("tenant-b-acme", ACME).await;
    w.env.simulator.world().faults.latency = Duration::from_millis(100);
    let running = {
        let worker = w.worker.clone();
        let request = request(&first, SyncReason::Scheduled);
        tokio::spawn(async move { worker.handle(&request).await })
    };
    // Wait until the first sync has its leases.
    for _ in 0..200 {
        let leased = w.store.get_connection(&first.id).await.unwrap().unwrap();
        if leased.lease_until.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let meanwhile = w
        .worker
        .handle(&request(&second, SyncReason::Scheduled))
        .await;
    assert!(
        matches!(meanwhile, WorkOutcome::Returned { ref reason } if reason.contains("another connection of organization 1001")),
        "{meanwhile:?}"
    );
    assert!(meanwhile.should_retry(), "it goes back to the queue");
    assert!(matches!(running.await.unwrap(), WorkOutcome::Synced(_)));
    let second_leases = w.store.get_connection(&second.id).await.unwrap().unwrap();
    assert_eq!(
        second_leases.lease_until, None,
        "its own lease was given back"
    );

    w.env.simulator.world().faults.latency = Duration::ZERO;
    let after = w
        .worker
        .handle(&request(&second, SyncReason::Scheduled))
        .await;
    assert!(matches!(after, WorkOutcome::Synced(_)), "{after:?}");
}

#[tokio::test]
async fn connections_of_one_organization_share_its_rate_budget() {
    // Acme allows 60 requests a minute, makesync takes half: two connections of it synced in
    // turn stay within 30 a minute together, not 30 each.
    let env = TestEnv::start_with(demo_world(), |config| config.page_size = 3).await;
    let first = env.connection("eu1.make.com", ACME);
    let mut second = first.clone();
    second.id = ConnectionId::parse("tenant-b-acme").unwrap();
    for _ in 0..2 {
        for connection in [&first, &second] {
            let report = env.sync(connection).await;
            assert_eq!(report.run.outcome, RunOutcome::Succeeded);
        }
    }
    let times: Vec<Duration> = env
        .simulator
        .requests()
        .iter()
        .filter(|r| r.path != "/api/v2/users/roles")
        .map(|r| r.at)
        .collect();
    assert!(times.len() > 60, "{} requests", times.len());
    for (i, start) in times.iter().enumerate() {
        let in_minute = times[i..]
            .iter()
            .take_while(|t| **t < *start + Duration::from_secs(60))
            .count();
        assert!(in_minute <= 30, "{in_minute} requests within one minute");
    }
}
