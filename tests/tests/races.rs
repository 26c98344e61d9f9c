//! The races a sync can lose to what happens around it: a disconnect while its outcome is
//! written, a new request while it runs, another connection of the same Make organization.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use makesync::clock::Clock;
use makesync::connection::TokenRef;
use makesync::connection::{Connection, ConnectionId, ConnectionStatus, ConnectionUpdate};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{
    ConnectionStore, SecretError, SecretStore, StoreError, SyncRunStore, UserStore, WriteStamp,
};
use makesync::queue::SyncRequest;
use makesync::run::{RunOutcome, SyncReason, SyncRun};
use makesync::store::{MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::user::{MakeUserId, StoredUser, UserRecord};
use makesync::worker::{WorkOutcome, Worker};
use makesync_simulator::{demo_world, DEMO_TOKEN};
use makesync_tests::hooked::{BothLookFirst, ConnectionCall, ConnectionHook, HookedConnections};
use makesync_tests::{TestEnv, ACME};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A disconnect that lands right when the run's outcome is being written: after the run
/// record is final, before the connection is written.
struct DisconnectDuringBookkeeping {
    inner: Arc<MemoryStore>,
    armed: AtomicBool,
}

impl DisconnectDuringBookkeeping {
    async fn fire_if_armed(&self, id: &ConnectionId) {
        if self.armed.swap(false, Ordering::SeqCst) {
            // What `ConnectService::disconnect` writes.
            let connection = self.inner.get_connection(id).await.unwrap().unwrap();
            let disconnect = ConnectionUpdate::disconnect();
            assert!(self
                .inner
                .update_connection(id, connection.version, &disconnect)
                .await
                .unwrap());
        }
    }
}

#[async_trait]
impl ConnectionHook for DisconnectDuringBookkeeping {
    async fn before(
        &self,
        call: ConnectionCall,
        connection: Option<&ConnectionId>,
    ) -> Result<(), StoreError> {
        if let (ConnectionCall::RecordRun, Some(id)) = (call, connection) {
            self.fire_if_armed(id).await;
        }
        Ok(())
    }

    async fn after(&self, call: ConnectionCall, connection: Option<&ConnectionId>) {
        // A read-modify-write of the connection would write over the disconnect.
        if let (ConnectionCall::GetConnection, Some(id)) = (call, connection) {
            self.fire_if_armed(id).await;
        }
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
    let disconnect = Arc::new(DisconnectDuringBookkeeping {
        inner: store.clone(),
        armed: AtomicBool::new(false),
    });
    let connections = Arc::new(HookedConnections::new(store.clone(), disconnect.clone()));
    let runs = Arc::new(ArmOnFinish(store.clone(), disconnect));
    let engine = SyncEngine::new(connections.clone(), store.clone(), runs, env.clock_arc());
    let acme = env.connection("eu1.make.com", ACME);
    store.create_connection(&acme).await.unwrap();

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
            makesync::tenant::TenantId::parse("tenant-1").unwrap(),
            MakeHost::parse("eu1.make.com").unwrap(),
            OrganizationId::new(organization).unwrap(),
            self.env.clock.wall(),
        );
        self.secrets
            .put_token(
                &connection.token_ref(),
                &ApiToken::parse(DEMO_TOKEN).unwrap(),
            )
            .await
            .unwrap();
        self.store.create_connection(&connection).await.unwrap();
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
    // turn stay within 30 a minute together, not 30 each. The windows are counted from when
    // the client sent each request (its TRACE line), on the clock the budget counts with: the
    // simulator serves a request only once the test clock has jumped past another one's wait.
    let logs = makesync_tests::CapturedLogs::default();
    let _capture = logs.install_filtered("makesync::make=trace");
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
    let mut times: Vec<Duration> = logs
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "sending a Make request")
        .map(|line| Duration::from_millis(line["sent_at_ms"].as_u64().unwrap()))
        .collect();
    times.sort();
    assert_eq!(
        times.len(),
        env.simulator.requests().len(),
        "every request logged"
    );
    assert!(times.len() > 60, "{} requests", times.len());
    for (i, start) in times.iter().enumerate() {
        let in_minute = times[i..]
            .iter()
            .take_while(|t| **t < *start + Duration::from_secs(60))
            .count();
        assert!(in_minute <= 30, "{in_minute} requests within one minute");
    }
}

/// A connect service and a worker on one memory store, as the connect and worker functions
/// share DynamoDB; the connect service's token store can run another request right after it
/// stores a token (see [`InterleavingSecrets`]).
struct Service {
    env: TestEnv,
    store: Arc<MemoryStore>,
    secrets: Arc<InterleavingSecrets>,
    queue: Arc<makesync::store::MemoryQueue>,
    connect: makesync::connect::ConnectService,
    worker: Worker,
}

/// Tokens in memory; once armed with a request, it runs that request through the connect
/// service right after it stores the next token — the moment between a connect's token
/// write and its connection write, where another request can land.
struct InterleavingSecrets {
    inner: MemorySecrets,
    service: std::sync::OnceLock<makesync::connect::ConnectService>,
    then: std::sync::Mutex<Option<serde_json::Value>>,
    answers: std::sync::Mutex<Vec<serde_json::Value>>,
}

#[async_trait]
impl SecretStore for InterleavingSecrets {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.inner.put_token(secret, token).await?;
        let then = self.then.lock().unwrap().take();
        if let Some(payload) = then {
            let service = self.service.get().expect("service set").clone();
            let answer = makesync::connect::response_json(&service.handle_payload(&payload).await);
            self.answers.lock().unwrap().push(answer);
        }
        Ok(())
    }
    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        self.inner.get_token(secret).await
    }
    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        self.inner.delete_token(secret).await
    }
}

async fn service(world: makesync_simulator::World) -> Service {
    let env = TestEnv::start_with(world, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(InterleavingSecrets {
        inner: MemorySecrets::default(),
        service: std::sync::OnceLock::new(),
        then: std::sync::Mutex::new(None),
        answers: std::sync::Mutex::new(Vec::new()),
    });
    let queue = Arc::new(makesync::store::MemoryQueue::default());
    let connect = makesync::connect::ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    let _ = secrets.service.set(connect.clone());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone());
    Service {
        env,
        store,
        secrets,
        queue,
        connect,
        worker,
    }
}

impl Service {
    async fn call(&self, payload: serde_json::Value) -> serde_json::Value {
        makesync::connect::response_json(&self.connect.handle_payload(&payload).await)
    }

    async fn connect_acme(&self, token: &str) -> ConnectionId {
        let answer = self
            .call(
                serde_json::json!({"host": "eu1.make.com", "organizationId": ACME,
                                     "token": token, "tenantId": "tenant-a"}),
            )
            .await;
        ConnectionId::parse(answer["connectionId"].as_str().unwrap()).unwrap()
    }

    fn reconnect(id: &ConnectionId, token: &str) -> serde_json::Value {
        serde_json::json!({"host": "eu1.make.com", "organizationId": ACME, "token": token,
                           "tenantId": "tenant-a", "connectionId": id.as_str()})
    }

    /// Which token the connection uses now, as the worker would read it.
    async fn token_in_use(&self, id: &ConnectionId) -> Option<String> {
        let connection = self.store.get_connection(id).await.unwrap().unwrap();
        self.secrets
            .get_token(&connection.token_ref())
            .await
            .ok()
            .map(|t| t.expose().to_string())
    }
}

/// A second world token with the demo token's scopes, to tell two connects' tokens apart.
fn world_with_two_tokens() -> makesync_simulator::World {
    let mut world = demo_world();
    let grant = world.tokens[DEMO_TOKEN].clone();
    world.add_token("sim-token-second-users-and-orgs", grant);
    world
}

#[tokio::test]
async fn two_connects_of_one_connection_one_wins_and_its_token_is_the_one_used() {
    let s = service(world_with_two_tokens()).await;
    let id = s.connect_acme(DEMO_TOKEN).await;
    // Request A stores its token; before it writes the connection, request B runs whole.
    *s.secrets.then.lock().unwrap() =
        Some(Service::reconnect(&id, "sim-token-second-users-and-orgs"));
    let a = s.call(Service::reconnect(&id, DEMO_TOKEN)).await;
    let b = s.secrets.answers.lock().unwrap().pop().unwrap();

    assert_eq!(
        b["status"], "active",
        "B, which wrote first, is answered: {b}"
    );
    assert_eq!(
        a["error"]["kind"], "transient",
        "A lost the race and says so: {a}"
    );
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed by another request"),
        "{a}"
    );
    assert_eq!(
        s.token_in_use(&id).await.as_deref(),
        Some("sim-token-second-users-and-orgs"),
        "the connection uses the token of the request that was answered active"
    );
    assert_eq!(
        s.secrets.inner.len(),
        1,
        "the loser's token and the first token are gone"
    );
}

#[tokio::test]
async fn a_disconnect_that_lands_while_a_connect_is_checked_is_kept() {
    let s = service(world_with_two_tokens()).await;
    let id = s.connect_acme(DEMO_TOKEN).await;
    *s.secrets.then.lock().unwrap() = Some(serde_json::json!({
        "action": "disconnect", "tenantId": "tenant-a", "connectionId": id.as_str()}));
    let reconnect = s
        .call(Service::reconnect(&id, "sim-token-second-users-and-orgs"))
        .await;
    let disconnect = s.secrets.answers.lock().unwrap().pop().unwrap();

    assert_eq!(disconnect["status"], "disconnected", "{disconnect}");
    assert_eq!(reconnect["error"]["kind"], "transient", "{reconnect}");
    let stored = s.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        ConnectionStatus::Disconnected,
        "the disconnect that was answered stands"
    );
    assert!(
        s.secrets.inner.is_empty(),
        "no token of the disconnected connection is left"
    );
}

#[tokio::test]
async fn a_purge_while_a_large_sync_is_in_flight_ends_with_no_user_stored() {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(100_000), 2_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    let s = service(world).await;
    let answer = s
        .call(
            serde_json::json!({"host": "eu1.make.com", "organizationId": 9001,
                                 "token": DEMO_TOKEN, "tenantId": "tenant-a"}),
        )
        .await;
    let id = ConnectionId::parse(answer["connectionId"].as_str().unwrap()).unwrap();
    let first_sync = s.queue.take(1).pop().unwrap();

    // The sync writes its users in chunks; the purge lands once the first chunk is written.
    let users = Arc::new(HookedUsers {
        purge: std::sync::Mutex::new(Some((
            s.connect.clone(),
            serde_json::json!({"action": "disconnect", "tenantId": "tenant-a",
                               "connectionId": id.as_str(), "purge": true}),
        ))),
        ..HookedUsers::new(s.store.clone())
    });
    let engine = SyncEngine::new(
        s.store.clone(),
        users.clone(),
        s.store.clone(),
        s.env.clock_arc(),
    );
    let worker = Worker::new(
        s.store.clone(),
        s.secrets.clone(),
        engine,
        s.env.make.clone(),
    );
    let outcome = worker.handle_body(&first_sync).await;
    let purge = users.answer.lock().unwrap().take().expect("the purge ran");
    assert_eq!(purge["status"], "erasing", "{purge}");
    assert!(
        !matches!(outcome, WorkOutcome::Synced(_)),
        "the sync stopped writing after the purge, it did not finish"
    );
    assert_eq!(
        users
            .written_after
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the sync in flight wrote no user once the erasure had started"
    );

    // Whatever the purge left to the queue runs now, as the worker would pick it up.
    for body in s.queue.take(usize::MAX) {
        s.worker.handle_body(&body).await;
    }
    assert_eq!(
        s.store.list_users(&id).await.unwrap().len(),
        0,
        "no user of the purged connection is stored"
    );
    let erased = s.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(erased.status, ConnectionStatus::Erased);
    assert!(s.secrets.inner.is_empty(), "and no token");
}

/// The users port of the memory store, with what a race test needs around it: a request
/// (a purge) that lands right after the first chunk of users is written, and deletes that
/// move the shared clock on by a minute a page.
struct HookedUsers {
    inner: Arc<MemoryStore>,
    purge: std::sync::Mutex<Option<(makesync::connect::ConnectService, serde_json::Value)>>,
    answer: std::sync::Mutex<Option<serde_json::Value>>,
    /// Users written after the purge was answered.
    written_after: std::sync::atomic::AtomicUsize,
    slow_deletes: Option<makesync::clock::ManualClock>,
}

impl HookedUsers {
    fn new(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            purge: std::sync::Mutex::new(None),
            answer: std::sync::Mutex::new(None),
            written_after: std::sync::atomic::AtomicUsize::new(0),
            slow_deletes: None,
        }
    }
}

#[async_trait]
impl UserStore for HookedUsers {
    async fn list_users_page(
        &self,
        connection: &ConnectionId,
        after: Option<MakeUserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.list_users_page(connection, after, limit).await
    }
    async fn list_user_digests(
        &self,
        connection: &ConnectionId,
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.inner.list_user_digests(connection).await
    }
    async fn get_users(
        &self,
        connection: &ConnectionId,
        ids: &[MakeUserId],
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.get_users(connection, ids).await
    }
    async fn write_users(
        &self,
        connection: &ConnectionId,
        stamp: &WriteStamp,
        changed: &[UserRecord],
    ) -> Result<(), StoreError> {
        let purged_already = self.answer.lock().unwrap().is_some();
        self.inner.write_users(connection, stamp, changed).await?;
        if purged_already {
            self.written_after
                .fetch_add(changed.len(), std::sync::atomic::Ordering::SeqCst);
        }
        let purge = self.purge.lock().unwrap().take();
        if let Some((service, payload)) = purge {
            let answer = makesync::connect::response_json(&service.handle_payload(&payload).await);
            *self.answer.lock().unwrap() = Some(answer);
        }
        Ok(())
    }
    async fn users_closes(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        self.inner.users_closes(connection).await
    }
    async fn close_users(
        &self,
        connection: &ConnectionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.close_users(connection, at).await
    }
    async fn delete_users_page(
        &self,
        connection: &ConnectionId,
        limit: usize,
    ) -> Result<usize, StoreError> {
        if let Some(clock) = &self.slow_deletes {
            clock.advance(Duration::from_secs(60));
        }
        self.inner.delete_users_page(connection, limit).await
    }
}

/// An erase job that its invocation's deadline cuts off leaves the users it deleted deleted,
/// records its progress, and goes on in a new message; a later delivery finishes it.
#[tokio::test]
async fn an_erase_job_cut_off_by_its_deadline_is_finished_by_a_later_delivery() {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(100_000), 1_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    let s = service(world).await;
    let answer = s
        .call(
            serde_json::json!({"host": "eu1.make.com", "organizationId": 9001,
                                 "token": DEMO_TOKEN, "tenantId": "tenant-a"}),
        )
        .await;
    let id = ConnectionId::parse(answer["connectionId"].as_str().unwrap()).unwrap();
    for body in s.queue.take(usize::MAX) {
        assert!(matches!(
            s.worker.handle_body(&body).await,
            WorkOutcome::Synced(_)
        ));
    }
    assert_eq!(s.store.list_users(&id).await.unwrap().len(), 1_001);
    let erasing = s
        .call(
            serde_json::json!({"action": "disconnect", "tenantId": "tenant-a",
                                 "connectionId": id.as_str(), "purge": true}),
        )
        .await;
    assert_eq!(erasing["status"], "erasing", "{erasing}");

    let users = Arc::new(HookedUsers {
        slow_deletes: Some(s.env.clock.clone()),
        ..HookedUsers::new(s.store.clone())
    });
    let engine = SyncEngine::new(s.store.clone(), users, s.store.clone(), s.env.clock_arc());
    let worker = Worker::new(
        s.store.clone(),
        s.secrets.clone(),
        engine,
        s.env.make.clone(),
    )
    .with_queue(s.queue.clone())
    .with_erase_page(100);
    let clock = s.env.clock_arc();
    let deadline = |minutes: i64| {
        makesync::worker::Deadline::at(
            clock.wall() + chrono::Duration::minutes(minutes),
            clock.as_ref(),
        )
    };

    // Five minutes: a page a minute, until 20 s are left — five pages of 100.
    let first = s.queue.take(1).pop().unwrap();
    let outcome = worker.handle_body_until(&first, Some(deadline(5))).await;
    let WorkOutcome::Erased {
        deleted, finished, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(!finished);
    assert_eq!(deleted, 500);
    let progress = s.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(progress.status, ConnectionStatus::Erasing);
    assert_eq!(
        progress.erased_users, 500,
        "its progress is on the connection"
    );
    assert_eq!(s.store.list_users(&id).await.unwrap().len(), 501);
    assert_eq!(progress.lease_until, None, "the lease is given back");

    // The continuation, delivered later with a whole invocation ahead, finishes.
    let continuation = s.queue.take(usize::MAX);
    assert_eq!(continuation.len(), 1, "one continuation");
    let outcome = worker
        .handle_body_until(&continuation[0], Some(deadline(15)))
        .await;
    assert!(
        matches!(
            outcome,
            WorkOutcome::Erased {
                deleted: 501,
                finished: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    let erased = s.store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(erased.status, ConnectionStatus::Erased);
    assert_eq!(erased.erased_users, 1_001);
    assert!(s.store.list_users(&id).await.unwrap().is_empty());
    assert!(s.queue.is_empty());

    // Asking again is harmless: the erased connection stays erased, nothing is queued.
    let again = s
        .call(
            serde_json::json!({"action": "disconnect", "tenantId": "tenant-a",
                                 "connectionId": id.as_str(), "purge": true}),
        )
        .await;
    assert_eq!(again["status"], "erased", "{again}");
    assert!(s.queue.is_empty());
    let reconnect = s.call(Service::reconnect(&id, DEMO_TOKEN)).await;
    assert_eq!(reconnect["error"]["kind"], "invalid_input", "{reconnect}");
}

#[tokio::test]
async fn two_identical_connects_at_once_make_one_connection_with_one_secret() {
    let env = TestEnv::start_with(demo_world(), |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let connections = Arc::new(HookedConnections::new(
        store.clone(),
        Arc::new(BothLookFirst::new()),
    ));
    let secrets = Arc::new(MemorySecrets::default());
    let queue = Arc::new(makesync::store::MemoryQueue::default());
    let connect = makesync::connect::ConnectService::new(
        connections,
        store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    let payload = serde_json::json!({"host": "eu1.make.com", "organizationId": ACME,
        "token": DEMO_TOKEN, "tenantId": "tenant-1"});
    let (first, second) = tokio::join!(
        connect.handle_payload(&payload),
        connect.handle_payload(&payload)
    );
    let first = makesync::connect::response_json(&first);
    let second = makesync::connect::response_json(&second);
    assert_eq!(
        first["connectionId"], second["connectionId"],
        "{first} / {second}"
    );
    assert_eq!(first["status"], "active", "{first}");
    assert_eq!(second["status"], "active", "{second}");
    let tenant = makesync::tenant::TenantId::parse("tenant-1").unwrap();
    let stored = store.list_tenant_connections(&tenant).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        secrets.len(),
        1,
        "one token version is left, the one the item names"
    );
    let id = &stored[0].id;
    assert!(
        secrets.get_token(&stored[0].token_ref()).await.is_ok(),
        "{id}"
    );

    // Erased, the organization is connected again as a new connection, under the next id.
    let erase = makesync::connect::response_json(
        &connect
            .handle_payload(
                &serde_json::json!({"action": "disconnect", "tenantId": "tenant-1",
                "connectionId": id.as_str(), "purge": true}),
            )
            .await,
    );
    assert_eq!(erase["status"], "erasing", "{erase}");
    let again = makesync::connect::response_json(&connect.handle_payload(&payload).await);
    assert_ne!(again["connectionId"], id.as_str(), "{again}");
    assert_eq!(again["status"], "active", "{again}");
}

/// A connect of several organizations asked again — after the first, or at the same time —
/// answers the same connections: one credential, one secret.
#[tokio::test]
async fn a_connect_of_several_asked_twice_or_at_once_makes_one_credential() {
    let env = TestEnv::start_with(demo_world(), |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let connections = Arc::new(HookedConnections::new(
        store.clone(),
        Arc::new(BothLookFirst::new()),
    ));
    let secrets = Arc::new(MemorySecrets::default());
    let connect = makesync::connect::ConnectService::new(
        connections,
        store.clone(),
        secrets.clone(),
        Arc::new(makesync::store::MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let payload = serde_json::json!({"tenantId": "tenant-1", "token": DEMO_TOKEN, "organizations": [
        {"organizationId": ACME, "host": "eu1.make.com"},
        {"organizationId": makesync_tests::GLOBEX, "host": "us2.make.com"}]});
    let ask =
        || async { makesync::connect::response_json(&connect.handle_payload(&payload).await) };
    let ids = |answer: &serde_json::Value| -> Vec<String> {
        answer["organizations"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|o| {
                o["connectionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{answer}"))
                    .to_string()
            })
            .collect()
    };
    // At once: both looked for the tenant's connections before either stored one.
    let (first, second) = tokio::join!(ask(), ask());
    assert_eq!(ids(&first), ids(&second), "{first} / {second}");
    assert_eq!(
        first["credentialId"], second["credentialId"],
        "{first} / {second}"
    );
    let tenant = makesync::tenant::TenantId::parse("tenant-1").unwrap();
    assert_eq!(
        store.list_tenant_connections(&tenant).await.unwrap().len(),
        2
    );
    assert_eq!(
        secrets.len(),
        1,
        "the credential that lost the race went with its secret"
    );
    // Again, after: the same connections and credential.
    let third = ask().await;
    assert_eq!(ids(&third), ids(&first), "{third}");
    let credential = store.list_tenant_connections(&tenant).await.unwrap()[0]
        .credential_id
        .clone()
        .unwrap();
    assert_eq!(third["credentialId"], credential.as_str(), "{third}");
    assert!(third["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["syncEnqueued"] == true));
    assert_eq!(secrets.len(), 1);
    // One organization connected on its own is answered as that connection, not connected
    // again on a credential.
    let single = makesync::connect::response_json(
        &connect
            .handle_payload(&serde_json::json!({"host": "eu1.make.celonis.com",
                "organizationId": makesync_tests::CELONIS, "token": DEMO_TOKEN, "tenantId": "tenant-1"}))
            .await,
    );
    let mut with_single = payload.clone();
    with_single["organizations"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"organizationId": makesync_tests::CELONIS, "host": "eu1.make.celonis.com"}));
    let fourth = makesync::connect::response_json(&connect.handle_payload(&with_single).await);
    assert_eq!(
        ids(&fourth)[2],
        single["connectionId"].as_str().unwrap(),
        "{fourth}"
    );
    assert_eq!(
        store.list_tenant_connections(&tenant).await.unwrap().len(),
        3
    );
    assert_eq!(
        secrets.len(),
        2,
        "the credential's and the single connection's"
    );
}
