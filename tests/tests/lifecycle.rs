//! A connection's life at its edges, found by an adversarial review: what pauses it (only
//! what the customer must fix — not the deployment's secret store, not a team deleted mid-read),
//! resume racing a disconnect, an organization connected again after it left a credential or
//! after any number of erasures, two connects with different tokens at once.

use async_trait::async_trait;
use makesync::clock::Clock;
use makesync::connect::{response_json, ConnectService};
use makesync::connection::{ConnectionId, ConnectionStatus, TokenRef};
use makesync::ports::{ConnectionStore, SecretError, SecretStore};
use makesync::queue::SyncRequest;
use makesync::run::SyncReason;
use makesync::store::{MemoryQueue, MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::tenant::TenantId;
use makesync::token::ApiToken;
use makesync::worker::Worker;
use makesync_simulator::DEMO_TOKEN;
use makesync_tests::hooked::{BothLookFirst, ConnectionCall, ConnectionHook, HookedConnections};
use makesync_tests::{TestEnv, ACME};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// Secrets Manager as the AWS adapter reports a non-transient refusal of `GetSecretValue`
/// (`SecretError::Refused`): what `AccessDeniedException` after an IAM/SCP change, or KMS's
/// `DecryptionFailure` / `KMSInvalidStateException` for a disabled key, become in
/// `adapters/aws/secrets.rs` (`failure()` of a non-transient `classify`). The operator's
/// store failing, nothing the customer did.
struct RefusingSecrets {
    inner: Arc<MemorySecrets>,
    refuse: AtomicBool,
}

#[async_trait]
impl SecretStore for RefusingSecrets {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.inner.put_token(secret, token).await
    }
    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(SecretError::Refused(
                "Secrets Manager: DecryptionFailure (HTTP 400): Secrets Manager can't decrypt the protected secret text using the provided KMS key (the key is disabled)".into(),
            ));
        }
        self.inner.get_token(secret).await
    }
    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        self.inner.delete_token(secret).await
    }
}

#[tokio::test]
async fn a_secret_store_failure_never_pauses_a_connection() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(RefusingSecrets {
        inner: Arc::new(MemorySecrets::default()),
        refuse: AtomicBool::new(false),
    });
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let connected = response_json(
        &connect
            .handle_payload(&json!({"tenantId": "tenant-1", "host": "eu1.make.com",
                "organizationId": ACME, "token": DEMO_TOKEN}))
            .await,
    );
    assert_eq!(connected["status"], "active", "{connected}");
    let id = ConnectionId::parse(connected["connectionId"].as_str().unwrap()).unwrap();

    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone())
        .with_pause_after_failures(3);
    // The operator's Secrets Manager (or its KMS key) refuses for a while.
    secrets.refuse.store(true, Ordering::SeqCst);
    for attempt in 1..=6 {
        let request = SyncRequest::new(id.clone(), SyncReason::Scheduled, env.clock.wall());
        let outcome = worker.handle(&request).await;
        let stored = store.get_connection(&id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            ConnectionStatus::Active,
            "attempt {attempt}: a secret-store failure paused the connection: {:?} (last run error: {:?}, retry: {})",
            stored.status_reason,
            outcome.report().and_then(|r| r.run.error.clone()),
            outcome.should_retry()
        );
    }
}

/// A resume and a disconnect of the same paused connection at once: the resume has read the
/// connection and its token; the disconnect then reads the connection and deletes the token;
/// the resume's write lands before the disconnect's.
struct Interleave {
    inner: Arc<MemorySecrets>,
    service: OnceLock<ConnectService>,
    tenant: TenantId,
    id: OnceLock<ConnectionId>,
    armed: AtomicBool,
    deleted: Notify,
    resume_written: Notify,
    disconnect: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Value>>>,
}

#[async_trait]
impl SecretStore for Interleave {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.inner.put_token(secret, token).await
    }
    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        let token = self.inner.get_token(secret).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            // The resume has its token; now the disconnect begins and deletes it.
            let service = self.service.get().unwrap().clone();
            let tenant = self.tenant.clone();
            let id = self.id.get().unwrap().clone();
            let task = tokio::spawn(async move {
                response_json(
                    &service
                        .handle_payload(
                            &json!({"action": "disconnect", "tenantId": tenant.as_str(),
                            "connectionId": id.as_str()}),
                        )
                        .await,
                )
            });
            *self.disconnect.lock().await = Some(task);
            self.deleted.notified().await;
        }
        token
    }
    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        let deleted = self.inner.delete_token(secret).await;
        if self.id.get().is_some() {
            self.deleted.notify_one();
            // The disconnect writes its status only after the resume wrote its own.
            self.resume_written.notified().await;
        }
        deleted
    }
}

struct AfterResumeWrite(Arc<Interleave>);

#[async_trait]
impl ConnectionHook for AfterResumeWrite {
    async fn after(&self, call: ConnectionCall, _: Option<&ConnectionId>) {
        if call == ConnectionCall::UpdateConnection && self.0.id.get().is_some() {
            self.0.resume_written.notify_one();
        }
    }
}

#[tokio::test]
async fn a_disconnect_racing_a_resume_never_leaves_an_active_connection_without_its_token() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let tenant = TenantId::parse("tenant-1").unwrap();
    let secrets = Arc::new(Interleave {
        inner: Arc::new(MemorySecrets::default()),
        service: OnceLock::new(),
        tenant: tenant.clone(),
        id: OnceLock::new(),
        armed: AtomicBool::new(false),
        deleted: Notify::new(),
        resume_written: Notify::new(),
        disconnect: tokio::sync::Mutex::new(None),
    });
    let connections = Arc::new(HookedConnections::new(
        store.clone(),
        Arc::new(AfterResumeWrite(secrets.clone())),
    ));
    let connect = ConnectService::new(
        connections,
        store.clone(),
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let _ = secrets.service.set(connect.clone());
    let connected = response_json(
        &connect
            .handle_payload(&json!({"tenantId": "tenant-1", "host": "eu1.make.com",
                "organizationId": ACME, "token": DEMO_TOKEN}))
            .await,
    );
    let id = ConnectionId::parse(connected["connectionId"].as_str().unwrap()).unwrap();
    // Paused by the worker (a refusal the customer has since fixed in Make).
    assert!(store
        .set_status(
            &id,
            ConnectionStatus::Active,
            ConnectionStatus::Paused,
            Some(makesync::error::ErrorReport::new(
                makesync::error::ErrorKind::Permission,
                "Make denied access"
            )),
        )
        .await
        .unwrap());

    let _ = secrets.id.set(id.clone());
    secrets.armed.store(true, Ordering::SeqCst);
    let resumed = response_json(
        &connect
            .handle_payload(
                &json!({"action": "resume", "tenantId": "tenant-1", "connectionId": id.as_str()}),
            )
            .await,
    );
    let task = secrets.disconnect.lock().await.take().unwrap();
    let disconnected = task.await.unwrap();

    let stored = store.get_connection(&id).await.unwrap().unwrap();
    let token = secrets.inner.get_token(&stored.token_ref()).await;
    // Whichever request won, the stored state must be consistent: an active connection can
    // read its token; a disconnected one has none.
    assert!(
        stored.status != ConnectionStatus::Active || token.is_ok(),
        "resume answered {resumed}\ndisconnect answered {disconnected}\nstored: status {:?}, token version {:?}, token read: {:?}",
        stored.status,
        stored.token_version,
        token.err()
    );
}

/// An organization connected with a shared token (a credential), then disconnected — the last
/// connection out deletes the credential — can be connected again with a token of its own.
#[tokio::test]
async fn an_organization_once_connected_through_a_credential_can_be_connected_again_with_its_own_token(
) {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        Arc::new(MemorySecrets::default()),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let call = |payload: Value| {
        let connect = connect.clone();
        async move { response_json(&connect.handle_payload(&payload).await) }
    };
    let several = call(json!({"tenantId": "tenant-1", "token": DEMO_TOKEN,
        "organizations": [{"organizationId": ACME, "host": "eu1.make.com"}]}))
    .await;
    let id = several["organizations"][0]["connectionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{several}"))
        .to_string();
    let out =
        call(json!({"action": "disconnect", "tenantId": "tenant-1", "connectionId": id})).await;
    assert_eq!(out["status"], "disconnected", "{out}");

    let again = call(json!({"tenantId": "tenant-1", "host": "eu1.make.com",
        "organizationId": ACME, "token": DEMO_TOKEN}))
    .await;
    let credential = several["credentialId"].as_str().unwrap();
    let rotate = call(json!({"action": "rotate", "tenantId": "tenant-1",
        "credentialId": credential, "token": DEMO_TOKEN}))
    .await;
    assert_eq!(
        again["status"], "active",
        "connect answered {again}\n(and the rotate it points to answers {rotate})"
    );
}

/// "A connection whose users were erased is not taken up again: the organization is
/// connected as a new connection."
#[tokio::test]
async fn an_organization_can_be_connected_again_after_any_number_of_erasures() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        Arc::new(MemorySecrets::default()),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let payload = json!({"tenantId": "tenant-1", "host": "eu1.make.com",
        "organizationId": ACME, "token": DEMO_TOKEN});
    for round in 1..=20 {
        let connected = response_json(&connect.handle_payload(&payload).await);
        assert_eq!(connected["status"], "active", "round {round}: {connected}");
        let erase = response_json(
            &connect
                .handle_payload(&json!({"action": "disconnect", "tenantId": "tenant-1",
                    "connectionId": connected["connectionId"], "purge": true}))
                .await,
        );
        assert_eq!(erase["status"], "erasing", "round {round}: {erase}");
    }
}

/// Make lists a team that is gone when its roles are read (deleted between the two requests,
/// or a listing that lags a deletion): `GET /teams/{id}/user-team-roles` answers 404. The
/// organization is there, the token is fine: nothing the customer must fix.
#[tokio::test]
async fn a_team_gone_between_list_and_read_does_not_pause_the_connection_as_organization_not_found()
{
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let connected = response_json(
        &connect
            .handle_payload(&json!({"tenantId": "tenant-1", "host": "eu1.make.com",
                "organizationId": ACME, "token": makesync_simulator::DEMO_TEAMS_TOKEN}))
            .await,
    );
    let id = ConnectionId::parse(connected["connectionId"].as_str().unwrap()).unwrap();
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone())
        .with_pause_after_failures(3);
    env.simulator.world().faults.canned_bodies.insert(
        "/api/v2/teams".into(),
        json!({"teams": [{"id": 990001, "name": "Deleted a moment ago", "organizationId": ACME}]})
            .to_string(),
    );
    for attempt in 1..=3 {
        let request = SyncRequest::new(id.clone(), SyncReason::Scheduled, env.clock.wall());
        let outcome = worker.handle(&request).await;
        let error = outcome.report().and_then(|r| r.run.error.clone());
        let stored = store.get_connection(&id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            ConnectionStatus::Active,
            "attempt {attempt}: paused: {:?}; run error {error:?}",
            stored.status_reason
        );
    }
}

/// Make is down for two runs (never the customer's), then one run meets a team deleted while
/// it read (a one-off 404): the connection is paused at once — the outage's failures count
/// towards the pause of a "customer" reason that happened once.
#[tokio::test]
async fn an_outage_streak_plus_one_team_deleted_mid_sync_pauses_the_connection() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let connected = response_json(
        &connect
            .handle_payload(&json!({"tenantId": "tenant-1", "host": "eu1.make.com",
                "organizationId": ACME, "token": makesync_simulator::DEMO_TEAMS_TOKEN}))
            .await,
    );
    let id = ConnectionId::parse(connected["connectionId"].as_str().unwrap()).unwrap();
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), env.clock_arc());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, env.make.clone())
        .with_pause_after_failures(3);
    let run = || async {
        let request = SyncRequest::new(id.clone(), SyncReason::Scheduled, env.clock.wall());
        worker.handle(&request).await
    };
    env.simulator.world().faults.server_errors = u32::MAX;
    run().await;
    run().await;
    env.simulator.world().faults.server_errors = 0;
    env.simulator.world().faults.canned_bodies.insert(
        "/api/v2/teams".into(),
        json!({"teams": [{"id": 990001, "name": "Deleted a moment ago", "organizationId": ACME}]})
            .to_string(),
    );
    let outcome = run().await;
    let stored = store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        ConnectionStatus::Active,
        "paused after one 404: {:?}; run error {:?}",
        stored.status_reason,
        outcome.report().and_then(|r| r.run.error.clone())
    );
}

#[tokio::test]
async fn two_connects_with_different_tokens_at_once_leave_one_connection_and_one_secret() {
    let env = TestEnv::start().await;
    let store = Arc::new(MemoryStore::new());
    let connections = Arc::new(HookedConnections::new(
        store.clone(),
        Arc::new(BothLookFirst::new()),
    ));
    let secrets = Arc::new(MemorySecrets::default());
    let connect = ConnectService::new(
        connections,
        store.clone(),
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let a = json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN, "tenantId": "tenant-1"});
    let b = json!({"host": "eu1.make.com", "organizationId": ACME,
        "token": makesync_simulator::DEMO_TEAMS_TOKEN, "tenantId": "tenant-1"});
    let (first, second) = tokio::join!(connect.handle_payload(&a), connect.handle_payload(&b));
    let (first, second) = (response_json(&first), response_json(&second));
    let tenant = TenantId::parse("tenant-1").unwrap();
    let stored = store.list_tenant_connections(&tenant).await.unwrap();
    assert_eq!(stored.len(), 1, "{first} / {second}");
    assert_eq!(secrets.len(), 1, "{first} / {second}");
    assert!(secrets.get_token(&stored[0].token_ref()).await.is_ok());
}
