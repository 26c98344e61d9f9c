//! The security review of December 2026 (`SECURITY.md`, "Review of December 2026"): one test
//! per finding, named after it, each failing on the code the review read. F1 runs through the
//! functions on moto; the others in process, with the store's or the secret store's calls
//! failing where the finding needs them to.

use async_trait::async_trait;
use makesync::clock::{Clock, ManualClock};
use makesync::connect::{response_json, ConnectService};
use makesync::connection::{Connection, ConnectionId, ConnectionStatus, TokenRef};
use makesync::credential::CredentialId;
use makesync::host::HostAllowlist;
use makesync::instance::InstanceFollower;
use makesync::ports::{
    ConnectionStore, EnqueueFailure, QueueError, SecretError, SecretStore, StoreError, SyncQueue,
};
use makesync::queue::SyncRequest;
use makesync::schedule::Scheduler;
use makesync::store::{MemoryQueue, MemorySecrets, MemoryStore};
use makesync::token::ApiToken;
use makesync_simulator::RequestLog;
use makesync_tests::aws::{sqs_event, AwsTestEnv};
use makesync_tests::hooked::{ConnectionCall, ConnectionHook, HookedConnections};
use makesync_tests::simulator::{
    demo_world, ListShape, TokenGrant, World, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TOKEN,
};
use makesync_tests::{TestEnv, ACME, CELONIS, GLOBEX};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn call(env: &AwsTestEnv, payload: Value) -> Value {
    makesync_connect::handle(&env.connect_service(), payload).await
}

/// Runs the worker over whatever is on the queue, as often as it refills (an erase job may
/// queue its next batch); the connections it handled.
async fn work(env: &AwsTestEnv) -> Vec<ConnectionId> {
    let mut handled = Vec::new();
    for _ in 0..10 {
        let messages = env.take_messages().await;
        if messages.is_empty() {
            break;
        }
        for message in &messages {
            let body: Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
            handled.push(ConnectionId::parse(body["connectionId"].as_str().unwrap()).unwrap());
        }
        let response = makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    handled
}

/// F1: a tenant follows an instance with `autoConnect`, disconnects one organization with
/// `purge`, the erase job runs, then two schedules follow the instance: the organization is
/// not connected again, and no name or email of its 40 members is stored anywhere; the other
/// organizations still sync.
#[tokio::test]
async fn f1_a_purged_organization_of_a_followed_instance_is_never_connected_again() {
    let env = AwsTestEnv::start().await;
    let members: Vec<(String, String)> = (0..40)
        .map(|n| {
            (
                format!("Beta Member {n:02}"),
                format!("beta.{n:02}@beta.example"),
            )
        })
        .collect();
    {
        let mut world = env.make.simulator.world();
        // The shape in which an instance administrator's token reads members (the other
        // shape syncs nothing to erase).
        world.faults.admin_reads_members = true;
        for (n, (name, email)) in members.iter().enumerate() {
            let id = 9000 + n as u64;
            world.add_user(id, name, email, None);
            world.add_member(5002, id, 12, None);
        }
    }
    let followed = call(
        &env,
        json!({"action": "connect-instance", "tenantId": "tenant-wl", "host": DEMO_INSTANCE_HOST,
               "token": DEMO_INSTANCE_TOKEN, "autoConnect": true}),
    )
    .await;
    let credential = CredentialId::parse(followed["credentialId"].as_str().unwrap()).unwrap();
    let beta = followed["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{followed}"))
        .iter()
        .find(|o| o["organizationId"] == 5002)
        .and_then(|o| o["connectionId"].as_str())
        .map(|id| ConnectionId::parse(id).unwrap())
        .unwrap_or_else(|| panic!("{followed}"));
    work(&env).await;
    let users = env.table_text(&env.settings.users_table).await;
    assert!(
        users
            .iter()
            .any(|item| item.contains("beta.00@beta.example")),
        "synced first"
    );

    let purged = call(
        &env,
        json!({"action": "disconnect", "tenantId": "tenant-wl", "connectionId": beta.as_str(),
               "purge": true}),
    )
    .await;
    assert_eq!(purged["status"], "erasing", "{purged}");
    work(&env).await;

    for round in 0..2 {
        let summary = makesync_scheduler::handle(&env.scheduler()).await.unwrap();
        assert_eq!(summary.instances, 1, "round {round}: {summary:?}");
        let synced = work(&env).await;
        assert!(!synced.is_empty(), "round {round}: the others still sync");
        let connections = env
            .backend
            .store
            .list_tenant_connections(&makesync::tenant::TenantId::parse("tenant-wl").unwrap())
            .await
            .unwrap();
        let live: Vec<_> = connections
            .iter()
            .filter(|c| c.organization_id.get() == 5002)
            .filter(|c| {
                !matches!(
                    c.status,
                    ConnectionStatus::Disconnected
                        | ConnectionStatus::Erasing
                        | ConnectionStatus::Erased
                )
            })
            .collect();
        assert!(live.is_empty(), "round {round}: {live:?}");
        assert!(
            synced.iter().all(|id| id != &beta),
            "round {round}: the purged connection is not synced"
        );
        for table in [&env.settings.users_table, &env.settings.connections_table] {
            let items = env.table_text(table).await;
            for (name, email) in &members {
                assert!(
                    items
                        .iter()
                        .all(|i| !i.contains(email) && !i.contains(name)),
                    "round {round}: {email} is back in {table}"
                );
            }
        }
    }
    let stored = env
        .backend
        .store
        .get_credential(&credential)
        .await
        .unwrap()
        .unwrap();
    let follow = stored.instance.unwrap();
    assert!(follow.excluded.contains(&5002), "{follow:?}");
    // The credential's state says so when the instance is connected again.
    let again = call(
        &env,
        json!({"action": "connect-instance", "tenantId": "tenant-wl", "host": DEMO_INSTANCE_HOST,
               "token": DEMO_INSTANCE_TOKEN, "autoConnect": true}),
    )
    .await;
    assert_eq!(again["credentialId"], credential.as_str(), "{again}");
    assert_eq!(again["excluded"], json!([5002]), "{again}");
}

/// In process: a store, secrets and a queue in memory, the connections port behind `hook`,
/// the secret store behind `secrets`.
struct InProcess {
    env: TestEnv,
    store: Arc<MemoryStore>,
    secrets: Arc<MemorySecrets>,
    queue: Arc<TimedQueue>,
    connect: ConnectService,
    scheduler: Scheduler,
}

/// `secrets` is the store's port (`memory` itself, or a wrapper of it).
async fn in_process(
    world: World,
    hook: Arc<dyn ConnectionHook>,
    memory: Arc<MemorySecrets>,
    secrets: Arc<dyn SecretStore>,
) -> InProcess {
    let env = TestEnv::start_with(world, |config| {
        config.allowlist = HostAllowlist::with_extra_hosts([DEMO_INSTANCE_HOST]).unwrap();
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let hooked: Arc<dyn ConnectionStore> = Arc::new(HookedConnections::new(store.clone(), hook));
    let queue = Arc::new(TimedQueue {
        inner: MemoryQueue::default(),
        clock: env.clock.clone(),
        sent: Mutex::new(Vec::new()),
        instance_listings: Mutex::new(None),
    });
    let clock: Arc<dyn Clock> = env.clock_arc();
    let connect = ConnectService::new(
        hooked.clone(),
        store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        clock.clone(),
    );
    let follower = InstanceFollower::new(
        hooked.clone(),
        store.clone(),
        secrets.clone(),
        env.make.clone(),
        clock.clone(),
    );
    let scheduler = Scheduler::new(hooked, queue.clone(), clock).with_instances(follower);
    InProcess {
        env,
        store,
        secrets: memory,
        queue,
        connect,
        scheduler,
    }
}

impl InProcess {
    async fn ask(&self, payload: Value) -> Value {
        response_json(&self.connect.handle_payload(&payload).await)
    }

    /// Another tenant's ordinary connection (Acme, its own token); its id.
    async fn connect_acme(&self) -> ConnectionId {
        let answer = self
            .ask(
                json!({"tenantId": "tenant-7", "host": "eu1.make.com", "organizationId": ACME,
                        "token": DEMO_TOKEN}),
            )
            .await;
        ConnectionId::parse(answer["connectionId"].as_str().unwrap()).unwrap()
    }

    async fn naming(&self, credential: &CredentialId) -> Vec<Connection> {
        let page = self.store.list_connections(None, 10_000).await.unwrap();
        page.connections
            .into_iter()
            .filter(|c| c.credential_id.as_ref() == Some(credential))
            .collect()
    }
}

/// The simulator's request log, and for each connection enqueued the instance listings it
/// had answered by then.
type ListingsSeen = (RequestLog, Vec<(ConnectionId, usize)>);

/// A queue that notes, on the test's clock, when each connection was enqueued — and, when
/// `instance_listings` is set, how many instance listings the simulator had answered by then.
struct TimedQueue {
    inner: MemoryQueue,
    clock: ManualClock,
    sent: Mutex<Vec<(ConnectionId, Duration)>>,
    instance_listings: Mutex<Option<ListingsSeen>>,
}

#[async_trait]
impl SyncQueue for TimedQueue {
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<Vec<EnqueueFailure>, QueueError> {
        let at = self.clock.monotonic();
        self.sent
            .lock()
            .unwrap()
            .extend(requests.iter().map(|r| (r.connection_id.clone(), at)));
        if let Some((log, seen)) = self.instance_listings.lock().unwrap().as_mut() {
            let listings = log
                .requests()
                .iter()
                .filter(|r| r.path.ends_with("/admin/organizations"))
                .count();
            seen.extend(requests.iter().map(|r| (r.connection_id.clone(), listings)));
        }
        self.inner.enqueue(requests).await
    }
}

/// Nothing in the way.
struct NoHook;
impl ConnectionHook for NoHook {}

/// The demo world with the instance administrator's token able to read members, Delta's API
/// open and `extra` more organizations of the instance.
fn instance_world(extra: u64) -> World {
    let mut world = demo_world();
    world.faults.admin_reads_members = true;
    world.organizations.get_mut(&5004).unwrap().api_limit = Some(60);
    for n in 0..extra {
        world.add_organization(
            5100 + n,
            &format!("Partner {n}"),
            DEMO_INSTANCE_HOST,
            Some(60),
        );
    }
    world
}

/// `GET /admin/organizations` as documented (paged with an echo, 003), in pages of two, and
/// whole (the shape a list documented with `pg[]` would have if Make ignored it: assumed).
const ADMIN_LIST_SHAPES: [ListShape; 3] = [
    ListShape::Paged { max: 10_000 },
    ListShape::Paged { max: 2 },
    ListShape::Unpaged,
];

fn follow_payload() -> Value {
    json!({"action": "connect-instance", "tenantId": "tenant-wl", "host": DEMO_INSTANCE_HOST,
           "token": DEMO_INSTANCE_TOKEN, "autoConnect": true})
}

/// Fails the `nth` call of `call` (counted from 1) with the store unavailable; with `from`,
/// every one from the `nth` on while `failing` holds.
struct FailNth {
    call: ConnectionCall,
    nth: u32,
    every_after: bool,
    seen: AtomicU32,
    failing: AtomicBool,
}

impl FailNth {
    fn new(call: ConnectionCall, nth: u32, every_after: bool) -> Self {
        Self {
            call,
            nth,
            every_after,
            seen: AtomicU32::new(0),
            failing: AtomicBool::new(true),
        }
    }
}

#[async_trait]
impl ConnectionHook for FailNth {
    async fn before(
        &self,
        call: ConnectionCall,
        _connection: Option<&ConnectionId>,
    ) -> Result<(), StoreError> {
        if call != self.call || !self.failing.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.nth || (self.every_after && n > self.nth) {
            return Err(StoreError::Unavailable(
                "throttled (the test's hook)".into(),
            ));
        }
        Ok(())
    }
}

/// F3: a follow that fails part-way (the third connection cannot be stored) leaves no
/// connection its credential does not list; the next follow completes it without a second
/// connection for any organization; a disconnect of the credential reaches every connection.
#[tokio::test]
async fn f3_a_follow_that_fails_part_way_leaves_no_orphan_and_no_duplicate() {
    for shape in ADMIN_LIST_SHAPES {
        f3_in(shape).await;
    }
}

async fn f3_in(shape: ListShape) {
    let mut world = instance_world(2);
    world.faults.admin_organizations_list = shape;
    let memory = Arc::new(MemorySecrets::default());
    let hook = Arc::new(FailNth::new(ConnectionCall::CreateConnection, 3, false));
    let p = in_process(world, hook, memory.clone(), memory.clone()).await;
    let failed = p.ask(follow_payload()).await;
    assert_eq!(failed["error"]["kind"], "transient", "{failed}");
    let credential = p.store.list_instance_credentials().await.unwrap()[0].clone();
    for connection in p.naming(&credential.id).await {
        assert!(
            credential.connections.contains(&connection.id),
            "{} is not on its credential",
            connection.id
        );
    }

    p.scheduler.fan_out().await.unwrap();
    let stored = p
        .store
        .get_credential(&credential.id)
        .await
        .unwrap()
        .unwrap();
    let naming = p.naming(&credential.id).await;
    let organizations: BTreeSet<u64> = naming.iter().map(|c| c.organization_id.get()).collect();
    assert_eq!(
        organizations,
        BTreeSet::from([5001, 5002, 5004, 5100, 5101]),
        "every organization once"
    );
    assert_eq!(naming.len(), 5, "no second connection of any organization");
    let listed: BTreeSet<ConnectionId> = naming.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        stored.connections, listed,
        "the credential lists exactly them"
    );

    // The tenant asks again and is answered the credential it follows already.
    let again = p.ask(follow_payload()).await;
    assert_eq!(again["credentialId"], credential.id.as_str(), "{again}");

    let gone = p
        .ask(json!({"action": "disconnect", "tenantId": "tenant-wl",
                    "credentialId": credential.id.as_str(), "purge": true}))
        .await;
    assert!(gone["error"].is_null(), "{gone}");
    assert!(p
        .naming(&credential.id)
        .await
        .iter()
        .all(|c| c.status == ConnectionStatus::Erasing));
    assert!(p.secrets.is_empty(), "the token is deleted");
}

/// F6: a credential that lists a connection whose creation failed (and whose removal from
/// the list failed too) can still be disconnected as a whole, and its token is deleted.
#[tokio::test]
async fn f6_a_credential_listing_a_connection_that_was_never_stored_can_be_disconnected() {
    let memory = Arc::new(MemorySecrets::default());
    let hook = Arc::new(FailNth::new(ConnectionCall::CreateConnection, 2, false));
    let p = in_process(demo_world(), hook.clone(), memory.clone(), memory.clone()).await;
    let connected = p
        .ask(
            json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": [
            {"host": "eu1.make.com", "organizationId": ACME},
            {"host": "us2.make.com", "organizationId": GLOBEX},
            {"host": "eu1.make.celonis.com", "organizationId": CELONIS}]}),
        )
        .await;
    let credential = CredentialId::parse(connected["credentialId"].as_str().unwrap()).unwrap();
    // Make the phantom stay on the list: put back the id the failed connection left.
    let mut stored = p.store.get_credential(&credential).await.unwrap().unwrap();
    stored.connections.insert(ConnectionId::generate());
    assert!(p.store.replace_credential(&stored).await.unwrap());
    assert_eq!(memory.len(), 1);

    let gone = p
        .ask(json!({"action": "disconnect", "tenantId": "tenant-7",
                    "credentialId": credential.as_str()}))
        .await;
    assert!(gone["error"].is_null(), "{gone}");
    assert_eq!(p.store.get_credential(&credential).await.unwrap(), None);
    assert!(memory.is_empty(), "the token is deleted");
}

/// A secret store whose first `delete_token` fails as a throttled Secrets Manager would.
struct FirstDeleteFails {
    inner: Arc<MemorySecrets>,
    failed: AtomicBool,
}

#[async_trait]
impl SecretStore for FirstDeleteFails {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.inner.put_token(secret, token).await
    }
    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        self.inner.get_token(secret).await
    }
    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(SecretError::Unavailable(
                "throttled (the test's store)".into(),
            ));
        }
        self.inner.delete_token(secret).await
    }
}

/// F5: a disconnect whose secret deletion fails says so, and the disconnect asked again
/// deletes it — the token is not left readable with nothing naming it.
#[tokio::test]
async fn f5_a_disconnect_whose_secret_deletion_fails_finishes_when_asked_again() {
    let memory = Arc::new(MemorySecrets::default());
    let secrets = Arc::new(FirstDeleteFails {
        inner: memory.clone(),
        failed: AtomicBool::new(false),
    });
    let p = in_process(demo_world(), Arc::new(NoHook), memory.clone(), secrets).await;
    let id = p.connect_acme().await.to_string();
    assert_eq!(memory.len(), 1);
    let first = p
        .ask(json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id}))
        .await;
    assert_eq!(first["error"]["kind"], "transient", "{first}");
    let second = p
        .ask(json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id}))
        .await;
    assert_eq!(second["status"], "disconnected", "{second}");
    assert!(memory.is_empty(), "the token's secret is deleted");
}

/// F5 (shared token): twenty connections of one credential disconnected at once leave no
/// credential and no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_twenty_connections_of_one_credential_disconnected_at_once_leave_no_secret() {
    let memory = Arc::new(MemorySecrets::default());
    let p = in_process(
        instance_world(0),
        Arc::new(NoHook),
        memory.clone(),
        memory.clone(),
    )
    .await;
    {
        let mut world = p.env.simulator.world();
        for n in 0..17 {
            let id = 7000 + n;
            world.add_organization(id, &format!("Org {n}"), "eu1.make.com", Some(10_000));
            world.add_member(id, 1, 11, None);
        }
    }
    let mut organizations = vec![
        json!({"host": "eu1.make.com", "organizationId": ACME}),
        json!({"host": "us2.make.com", "organizationId": GLOBEX}),
        json!({"host": "eu1.make.celonis.com", "organizationId": CELONIS}),
    ];
    organizations
        .extend((0..17).map(|n| json!({"host": "eu1.make.com", "organizationId": 7000 + n})));
    let connected = p
        .ask(json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": organizations}))
        .await;
    let ids: Vec<String> = connected["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["connectionId"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 20, "{connected}");
    let p = Arc::new(p);
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let p = p.clone();
        tasks.spawn(async move {
            p.ask(json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id}))
                .await
        });
    }
    let answers = tasks.join_all().await;
    for answer in &answers {
        assert_eq!(answer["status"], "disconnected", "{answer}");
    }
    assert!(p
        .store
        .list_instance_credentials()
        .await
        .unwrap()
        .is_empty());
    assert!(memory.is_empty(), "{} secrets left", memory.len());
}

/// F2: a followed instance whose host reports its rate-limit window spent until a year from
/// now. The other tenants' connections are enqueued at once, before any instance is
/// followed, and the whole fan-out stays within the scheduler's invocation (300 s).
#[tokio::test]
async fn f2_a_host_that_says_wait_a_year_does_not_hold_the_schedule() {
    let mut world = instance_world(0);
    let year = (chrono::Utc::now() + chrono::Duration::days(365)).timestamp();
    world.faults.hostile_headers.insert(
        "/admin/organizations".into(),
        vec![
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", year.to_string()),
        ],
    );
    world.faults.admin_organizations_list = ListShape::Paged { max: 2 };
    let memory = Arc::new(MemorySecrets::default());
    let p = in_process(world, Arc::new(NoHook), memory.clone(), memory.clone()).await;
    // Another tenant's ordinary connection.
    let ordinary = p.connect_acme().await;
    // The instance followed once while its host behaved, then it turns hostile.
    let faults = p.env.simulator.world().faults.hostile_headers.clone();
    p.env.simulator.world().faults.hostile_headers.clear();
    let followed = p.ask(follow_payload()).await;
    assert!(followed["error"].is_null(), "{followed}");
    p.env.simulator.world().faults.hostile_headers = faults;
    p.queue.sent.lock().unwrap().clear();

    let started = p.env.clock.monotonic();
    let summary = p
        .scheduler
        .fan_out_until(Some(started + Duration::from_secs(290)))
        .await
        .unwrap();
    let took = p.env.clock.monotonic() - started;
    let sent = p.queue.sent.lock().unwrap().clone();
    let at = sent
        .iter()
        .find(|(id, _)| id == &ordinary)
        .map(|(_, at)| *at - started)
        .unwrap_or_else(|| panic!("the ordinary connection is enqueued: {summary:?}"));
    assert_eq!(
        at,
        Duration::ZERO,
        "enqueued before any instance was followed"
    );
    assert!(
        took <= Duration::from_secs(300),
        "the fan-out took {took:?}"
    );
    // The instance's own connections still sync as they are.
    assert!(sent.len() > 1, "{sent:?}");
}

/// F7: an instance credential can be rotated to another token of the instance's
/// administrator, though one organization's API is disabled (`apiLimit` 0) and whether or not
/// an administrator's token may read members; a token of no administrator cannot.
#[tokio::test]
async fn f7_an_instance_credential_can_be_rotated() {
    let cases = [true, false]
        .into_iter()
        .flat_map(|reads| ADMIN_LIST_SHAPES.map(|shape| (reads, shape)));
    for (admin_reads_members, shape) in cases {
        let mut world = demo_world();
        world.faults.admin_reads_members = admin_reads_members;
        world.faults.admin_organizations_list = shape;
        world.add_token(
            "sim-token-instance-admin-second",
            TokenGrant::new(20, &["admin:read", "organizations:read", "user:read"]),
        );
        let memory = Arc::new(MemorySecrets::default());
        let p = in_process(world, Arc::new(NoHook), memory.clone(), memory.clone()).await;
        let followed = p.ask(follow_payload()).await;
        let credential = CredentialId::parse(followed["credentialId"].as_str().unwrap()).unwrap();
        let before = p.store.get_credential(&credential).await.unwrap().unwrap();
        let refused = p
            .ask(json!({"action": "rotate", "tenantId": "tenant-wl",
                        "credentialId": credential.as_str(), "token": DEMO_TOKEN}))
            .await;
        assert_eq!(refused["error"]["kind"], "permission", "{refused}");

        let rotated = p
            .ask(json!({"action": "rotate", "tenantId": "tenant-wl",
                        "credentialId": credential.as_str(),
                        "token": "sim-token-instance-admin-second"}))
            .await;
        assert!(
            rotated["error"].is_null(),
            "{admin_reads_members}: {rotated}"
        );
        let after = p.store.get_credential(&credential).await.unwrap().unwrap();
        assert_ne!(after.token_version, before.token_version);
        assert_eq!(memory.len(), 1, "the old version is deleted");
        assert_eq!(
            p.secrets
                .get_token(&after.token_ref())
                .await
                .unwrap()
                .expose(),
            "sim-token-instance-admin-second"
        );
    }
}

/// F12: one request's token is sent to Make's own zones or to one White Label host, never
/// both: the White Label organization is refused and its host gets no request.
#[tokio::test]
async fn f12_one_token_is_not_sent_to_make_and_a_white_label_host_alike() {
    let memory = Arc::new(MemorySecrets::default());
    let p = in_process(
        demo_world(),
        Arc::new(NoHook),
        memory.clone(),
        memory.clone(),
    )
    .await;
    let answer = p
        .ask(
            json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": [
            {"host": "eu1.make.com", "organizationId": ACME},
            {"host": DEMO_INSTANCE_HOST, "organizationId": 5001}]}),
        )
        .await;
    let results = answer["organizations"].as_array().unwrap();
    assert_eq!(results[0]["status"], "active", "{answer}");
    let refused = results[1]["error"]["message"].as_str().unwrap();
    assert!(refused.contains("one White Label host"), "{refused}");
    assert!(p
        .env
        .simulator
        .requests()
        .iter()
        .all(|r| r.host.as_deref() != Some(DEMO_INSTANCE_HOST)));
}

/// F16: the follower marks a deleted organization's users removed only under the
/// connection's lease — the one a sync and an erase job take — so it cannot write users an
/// erasure is deleting; while another holds it, the organization is left for the next follow.
#[tokio::test]
async fn f16_a_deleted_organization_is_removed_only_under_the_connection_lease() {
    let memory = Arc::new(MemorySecrets::default());
    let p = in_process(
        instance_world(0),
        Arc::new(NoHook),
        memory.clone(),
        memory.clone(),
    )
    .await;
    let followed = p.ask(follow_payload()).await;
    let credential = CredentialId::parse(followed["credentialId"].as_str().unwrap()).unwrap();
    let alpha = p
        .naming(&credential)
        .await
        .into_iter()
        .find(|c| c.organization_id.get() == 5001)
        .unwrap();
    p.env.simulator.world().delete_in_instance(5001);
    let now = p.env.clock.wall();
    assert!(p
        .store
        .acquire_lease(&alpha.id, now, now + chrono::Duration::minutes(30))
        .await
        .unwrap());

    p.scheduler.fan_out().await.unwrap();
    let held = p.store.get_connection(&alpha.id).await.unwrap().unwrap();
    assert_eq!(held.status, ConnectionStatus::Active, "left while in use");

    p.store.release_lease(&alpha.id).await.unwrap();
    p.scheduler.fan_out().await.unwrap();
    let done = p.store.get_connection(&alpha.id).await.unwrap().unwrap();
    assert_eq!(done.status, ConnectionStatus::Disconnected);
    assert!(
        !done.is_leased_at(p.env.clock.wall()),
        "the lease is given back"
    );
}

/// F2, the slow variant: a followed host that holds every answer close to the request
/// timeout. The other tenants' connections are enqueued before the instance is asked for
/// anything — whatever its answers cost, they cost its own follow.
#[tokio::test]
async fn f2_a_host_that_answers_slowly_is_followed_after_the_others_are_enqueued() {
    let world = instance_world(0);
    let memory = Arc::new(MemorySecrets::default());
    let p = in_process(world, Arc::new(NoHook), memory.clone(), memory.clone()).await;
    let ordinary = p.connect_acme().await;
    let followed = p.ask(follow_payload()).await;
    assert!(followed["error"].is_null(), "{followed}");
    {
        let mut world = p.env.simulator.world();
        // Under the client's 20 s timeout, in real time: three pages of two.
        world.faults.latency = Duration::from_millis(700);
        world.faults.admin_organizations_list = ListShape::Paged { max: 2 };
    }
    p.env.simulator.clear_requests();
    *p.queue.instance_listings.lock().unwrap() = Some((p.env.simulator.request_log(), Vec::new()));

    let summary = p.scheduler.fan_out().await.unwrap();
    assert_eq!(summary.instances, 1, "{summary:?}");
    let (_, seen) = p.queue.instance_listings.lock().unwrap().take().unwrap();
    let listings_before = seen
        .iter()
        .find(|(id, _)| id == &ordinary)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("the ordinary connection is enqueued: {seen:?}"));
    assert_eq!(listings_before, 0, "enqueued before the instance was asked");
    assert!(
        seen.iter().any(|(_, n)| *n >= 2),
        "the instance's own connections follow its (paged) listing: {seen:?}"
    );
}
