//! Connecting an organization against the simulator, on the in-memory adapters, in every API
//! shape: what Make must confirm before anything is stored, and what a refusal says.

use makesync::connect::{response_json, ConnectService};
use makesync::ports::ConnectionStore;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync_simulator::{DEMO_TEAMS_TOKEN, DEMO_TOKEN};
use makesync_tests::{across_api_shapes, ApiShape, TestEnv, ACME};
use serde_json::{json, Value};
use std::sync::Arc;

struct Connect {
    env: TestEnv,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    service: ConnectService,
}

async fn connect_env(shape: ApiShape) -> Connect {
    let env = TestEnv::start_in(shape).await;
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::default());
    let service = ConnectService::new(
        store.clone(),
        store.clone(),
        Arc::new(MemorySecrets::default()),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    Connect {
        env,
        store,
        queue,
        service,
    }
}

impl Connect {
    async fn connect(&self, token: &str) -> Value {
        let payload = json!({"host": "eu1.make.com", "organizationId": ACME, "token": token,
                             "tenantId": "tenant-a"});
        response_json(&self.service.handle_payload(&payload).await)
    }
}

across_api_shapes! {
    async fn a_valid_token_is_connected_and_queued_for_a_sync(shape: ApiShape) {
        let c = connect_env(shape).await;
        let response = c.connect(DEMO_TOKEN).await;
        assert_eq!(response["status"], "active", "{response}");
        assert_eq!(response["syncEnqueued"], true);
        assert_eq!(c.store.list_connections(None, 10).await.unwrap().connections.len(), 1);
        assert_eq!(c.queue.len(), 1);
    }

    async fn connect_and_discovery_say_whether_the_token_reads_team_access(shape: ApiShape) {
        for (token, reads_teams) in [(DEMO_TOKEN, false), (DEMO_TEAMS_TOKEN, true)] {
            let c = connect_env(shape).await;
            let response = c.connect(token).await;
            assert_eq!(response["status"], "active", "{response}");
            assert_eq!(response["optionalScopes"], json!({"teams:read": reads_teams}), "{response}");
            let discovered = response_json(
                &c.service
                    .handle_payload(&json!({"action": "discover", "tenantId": "tenant-a",
                                            "host": "eu1.make.com", "token": token}))
                    .await,
            );
            assert_eq!(discovered["optionalScopes"], json!({"teams:read": reads_teams}), "{discovered}");
        }
    }

    async fn a_token_missing_a_scope_is_refused_naming_the_scope_not_as_expired(shape: ApiShape) {
        let c = connect_env(shape).await;
        for (token, kind, says) in [
            ("sim-token-no-user-read", "permission", "lacks scope user:read"),
            ("sim-token-no-organizations-read", "permission", "lacks scope organizations:read"),
            ("sim-token-outsider", "permission", "no access to organization 1001"),
            ("sim-token-revoked", "auth", "invalid, expired or revoked"),
        ] {
            let response = c.connect(token).await;
            assert_eq!(response["error"]["kind"], kind, "{token}: {response}");
            let message = response["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{token}: {message}");
            if kind == "permission" {
                assert!(!message.contains("expired") && !message.contains("revoked"), "{message}");
            }
            assert!(!response.to_string().contains(token), "{response}");
        }
        assert!(c.store.list_connections(None, 10).await.unwrap().connections.is_empty());
        assert!(c.queue.is_empty());
        assert!(
            c.env.simulator.requests().iter().all(|r| r.status != 429),
            "connect stays within the budget"
        );
    }
}

fn connect_env_documented() -> impl std::future::Future<Output = Connect> {
    connect_env(ApiShape::DOCUMENTED)
}

async fn connected(c: &Connect, tenant: &str) -> String {
    let payload = json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
        "tenantId": tenant});
    let response = response_json(&c.service.handle_payload(&payload).await);
    response["connectionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_string()
}

#[tokio::test]
async fn every_action_needs_a_tenant() {
    let c = connect_env_documented().await;
    let id = connected(&c, "tenant-a").await;
    for payload in [
        json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN}),
        json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN, "tenantId": null}),
        json!({"action": "sync", "connectionId": id}),
        json!({"action": "disconnect", "connectionId": id, "purge": true}),
    ] {
        let response = response_json(&c.service.handle_payload(&payload).await);
        assert_eq!(
            response["error"]["kind"], "invalid_input",
            "{payload}: {response}"
        );
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no \"tenantId\""),
            "{response}"
        );
    }
    let stored = c
        .store
        .list_connections(None, 10)
        .await
        .unwrap()
        .connections;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].status,
        makesync::connection::ConnectionStatus::Active
    );
}

#[tokio::test]
async fn connection_ids_are_minted_and_a_caller_cannot_choose_one() {
    let c = connect_env_documented().await;
    let a = connected(&c, "tenant-a").await;
    let b = connected(&c, "tenant-b").await;
    assert_ne!(a, b, "one organization, two tenants, two connections");
    let chosen = json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
        "tenantId": "tenant-a", "connectionId": "my-own-id"});
    let response = response_json(&c.service.handle_payload(&chosen).await);
    assert_eq!(response["error"]["kind"], "not_found", "{response}");
    assert_eq!(
        c.store
            .list_connections(None, 10)
            .await
            .unwrap()
            .connections
            .len(),
        2
    );
}

/// Another tenant's connection and one that does not exist get the same answer, byte for
/// byte, for every action — so no caller can learn which ids other tenants hold — and the
/// other tenant's connection is unchanged.
#[tokio::test]
async fn a_wrong_tenant_and_an_unknown_id_get_identical_answers() {
    let c = connect_env_documented().await;
    let id = connected(&c, "tenant-a").await;
    let before = c
        .store
        .get_connection(&makesync::connection::ConnectionId::parse(&id).unwrap())
        .await
        .unwrap();
    let requests = |connection_id: &str| {
        [
            json!({"action": "sync", "connectionId": connection_id, "tenantId": "tenant-b"}),
            json!({"action": "disconnect", "connectionId": connection_id, "tenantId": "tenant-b", "purge": true}),
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
                   "tenantId": "tenant-b", "connectionId": connection_id}),
            json!({"host": "eu1.make.com", "organizationId": 2002, "token": "sim-token-revoked",
                   "tenantId": "tenant-b", "connectionId": connection_id}),
        ]
    };
    let unknown = uuid_like();
    for (theirs, nobodys) in requests(&id).into_iter().zip(requests(&unknown)) {
        let wrong_tenant = response_json(&c.service.handle_payload(&theirs).await).to_string();
        let no_such = response_json(&c.service.handle_payload(&nobodys).await).to_string();
        assert_eq!(wrong_tenant, no_such, "{theirs}");
        assert!(wrong_tenant.contains("not_found"), "{wrong_tenant}");
        assert!(!wrong_tenant.contains(&id), "{wrong_tenant}");
    }
    let after = c
        .store
        .get_connection(&makesync::connection::ConnectionId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(before, after, "tenant-a's connection is untouched");
    let right_tenant = response_json(
        &c.service
            .handle_payload(&json!({"action": "sync", "connectionId": id, "tenantId": "tenant-a"}))
            .await,
    );
    assert!(right_tenant.get("error").is_none(), "{right_tenant}");
}

/// An id of the shape makesync mints, that nobody holds.
fn uuid_like() -> String {
    makesync::connection::ConnectionId::generate().to_string()
}

#[tokio::test]
async fn oversized_input_is_refused_clearly_and_nothing_is_stored() {
    let c = connect_env_documented().await;
    let long = |n: usize| "x".repeat(n);
    for (payload, says) in [
        (
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": long(600), "tenantId": "t"}),
            "longer than 512 bytes",
        ),
        (
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN, "tenantId": long(200)}),
            "\"tenantId\" must be 1 to 128 characters",
        ),
        (
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN, "tenantId": "t", "connectionId": long(200)}),
            "longer than 128 characters",
        ),
        (
            json!({"host": long(20_000), "organizationId": ACME, "token": DEMO_TOKEN}),
            "at most 16384 are read",
        ),
    ] {
        let response = response_json(&c.service.handle_payload(&payload).await);
        assert_eq!(response["error"]["kind"], "invalid_input", "{response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(
            !message.contains(&long(50)),
            "the input is not echoed at length: {message}"
        );
    }
    assert!(c
        .store
        .list_connections(None, 10)
        .await
        .unwrap()
        .connections
        .is_empty());
    assert!(c.env.simulator.requests().is_empty(), "Make was not asked");
}

#[tokio::test]
async fn a_white_label_host_is_normalised_like_a_zone() {
    let env = TestEnv::start_with(makesync_simulator::demo_world(), |config| {
        config.allowlist =
            makesync::host::HostAllowlist::with_extra_hosts(["Make.Partner.Example."]).unwrap()
    })
    .await;
    for given in [
        "make.partner.example",
        "MAKE.Partner.EXAMPLE.",
        " make.partner.example",
    ] {
        let host = env.make.allowlist().admit(given.trim()).unwrap();
        assert_eq!(host.as_str(), "make.partner.example", "{given}");
    }
    assert!(env.make.allowlist().admit("other.partner.example").is_err());
}

/// A Make token pasted into another field as well — the host, the organization id, the tenant,
/// the connection id — is refused; no answer, log line (at TRACE) or stored item holds it.
#[tokio::test]
async fn a_token_pasted_into_another_field_is_never_answered_logged_or_stored() {
    let c = connect_env_documented().await;
    let existing = connected(&c, "tenant-a").await;
    let logs = makesync_tests::CapturedLogs::default();
    let guard = logs.install_filtered("trace");
    let token = "6f0c9a52-1d2e-4b7a-9c3f-0e5d7b1a4c88";
    {
        let mut world = c.env.simulator.world();
        let grant = world.tokens[DEMO_TOKEN].clone();
        world.add_token(token, grant);
    }
    let requests_before = c.env.simulator.requests().len();
    for field in ["host", "organizationId", "tenantId", "connectionId"] {
        let mut payload = json!({"host": "eu1.make.com", "organizationId": ACME, "token": token,
                                 "tenantId": "tenant-a", "connectionId": existing});
        payload[field] = json!(token);
        let response = response_json(&c.service.handle_payload(&payload).await).to_string();
        assert!(response.contains("invalid_input"), "{field}: {response}");
        assert!(!response.contains(token), "{field}: {response}");
        for prefix in [&token[..8], &token[token.len() - 12..]] {
            assert!(!response.contains(prefix), "{field}: {response}");
        }
    }
    drop(guard);
    assert!(!logs.text().contains(token), "a log line holds the token");
    let stored = c
        .store
        .list_connections(None, 10)
        .await
        .unwrap()
        .connections;
    assert_eq!(stored.len(), 1, "nothing new stored");
    assert!(!format!("{stored:?}").contains(token));
    assert_eq!(
        c.env.simulator.requests().len(),
        requests_before,
        "refused before Make was asked"
    );
}

/// The sample events in `tests/events/` (for `sam local invoke` and `cargo lambda invoke`)
/// stay requests connect accepts.
#[test]
fn every_sample_connect_event_parses() {
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("connect") {
            continue;
        }
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(error) = makesync::connect::ConnectCommand::parse(&payload) {
            panic!("{name}: {error}");
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[tokio::test]
async fn status_and_list_answer_the_tenants_connections_and_nobody_elses() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let connected = c.connect(DEMO_TOKEN).await;
    let acme = connected["connectionId"].as_str().unwrap().to_string();
    let ask = |payload: Value| {
        let service = c.service.clone();
        async move { response_json(&service.handle_payload(&payload).await) }
    };
    let status =
        ask(json!({"action": "status", "tenantId": "tenant-a", "connectionId": acme})).await;
    assert_eq!(status["connectionId"], acme.as_str(), "{status}");
    assert_eq!(status["status"], "active");
    assert_eq!(status["host"], "eu1.make.com");
    assert_eq!(status["organizationId"], ACME);
    assert_eq!(status["organizationName"], "Acme Robotics");
    assert_eq!(status["consecutiveFailures"], 0);
    assert!(status["lastSuccessAt"].is_null() && status["userCount"].is_null());

    // Another tenant's id is answered exactly as an id nobody holds.
    let foreign =
        ask(json!({"action": "status", "tenantId": "tenant-b", "connectionId": acme})).await;
    let unknown =
        ask(json!({"action": "status", "tenantId": "tenant-a", "connectionId": "nobody"})).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign["error"]["kind"], "not_found");

    // Five connections of tenant-a and one of tenant-b, listed two at a time.
    for organization in [7001u64, 7002, 7003, 7004] {
        let mut connection = c.env.connection("eu1.make.com", organization);
        connection.tenant_id = makesync::tenant::TenantId::parse("tenant-a").unwrap();
        c.store.create_connection(&connection).await.unwrap();
    }
    let mut other = c.env.connection("eu1.make.com", 7005);
    other.tenant_id = makesync::tenant::TenantId::parse("tenant-b").unwrap();
    c.store.create_connection(&other).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    for page in 0.. {
        let listed =
            ask(json!({"action": "list", "tenantId": "tenant-a", "limit": 2, "cursor": cursor}))
                .await;
        let connections = listed["connections"]
            .as_array()
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(connections.len() <= 2, "{listed}");
        assert!(connections.iter().all(|c| c.get("lastRun").is_none()));
        seen.extend(
            connections
                .iter()
                .map(|c| c["organizationId"].as_u64().unwrap()),
        );
        cursor = listed["cursor"].clone();
        if cursor.is_null() {
            assert_eq!(page, 2);
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec![ACME, 7001, 7002, 7003, 7004]);

    for (payload, says) in [
        (
            json!({"action": "list", "tenantId": "tenant-a", "limit": 0}),
            "\"limit\" must be",
        ),
        (
            json!({"action": "list", "tenantId": "tenant-a", "limit": 1001}),
            "\"limit\" must be",
        ),
        (
            json!({"action": "list", "tenantId": "tenant-a", "cursor": "a b"}),
            "\"cursor\" is not",
        ),
        (json!({"action": "list"}), "tenantId"),
        (
            json!({"action": "status", "tenantId": "tenant-a"}),
            "connectionId",
        ),
    ] {
        let refused = ask(payload.clone()).await;
        assert_eq!(
            refused["error"]["kind"], "invalid_input",
            "{payload} → {refused}"
        );
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(says),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn users_pages_a_ten_thousand_user_connection_under_lambdas_answer_limit() {
    let mut world = makesync_simulator::demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(1000), 10_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    let env = TestEnv::start_with(world, |config| config.page_size = 10_000).await;
    let connection = env.connection("eu1.make.com", 9001);
    let report = env.sync(&connection).await;
    assert!(report.run.error.is_none(), "{:?}", report.run.error);
    // One member leaves: a removed user is in the pages too, with `removedAt`.
    env.simulator.world().remove_member(9001, 1_000_000);
    assert_eq!(env.sync(&connection).await.run.counts.removed, 1);
    let service = ConnectService::new(
        env.store.clone(),
        env.store.clone(),
        Arc::new(MemorySecrets::default()),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    let mut cursor = Value::Null;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = response_json(
            &service
                .handle_payload(
                    &json!({"action": "users", "tenantId": connection.tenant_id.as_str(),
                                        "connectionId": connection.id.as_str(), "cursor": cursor}),
                )
                .await,
        );
        let size = page.to_string().len();
        assert!(
            size < makesync::connect::MAX_USERS_PAGE_BYTES,
            "{size} bytes"
        );
        let users = page["users"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(users.len() <= 1000);
        pages += 1;
        for user in users {
            let id = user["userId"].as_u64().unwrap();
            assert_eq!(user["removedAt"].is_null(), id != 1_000_000, "{user}");
            ids.push(id);
        }
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(pages, 11);
    let mut expected: Vec<u64> = (1_000_000..1_010_000).collect();
    expected.insert(0, 1);
    assert_eq!(ids, expected, "every stored user once, by id");

    // Another tenant reads nothing of it.
    let foreign = response_json(
        &service
            .handle_payload(&json!({"action": "users", "tenantId": "tenant-z",
                                    "connectionId": connection.id.as_str()}))
            .await,
    );
    assert_eq!(foreign["error"]["kind"], "not_found", "{foreign}");
}

#[tokio::test]
async fn a_request_sent_again_with_its_request_id_answers_as_the_first_did() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let service = c.service.clone().with_request_log(c.store.clone());
    let ask = |payload: Value| {
        let service = service.clone();
        async move { response_json(&service.handle_payload(&payload).await) }
    };
    let connect = json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
                         "tenantId": "tenant-a", "requestId": "req-1"});
    // Make is down at the first try: a refusal is not kept, the retry acts.
    c.env.simulator.world().faults.server_errors = u32::MAX;
    let refused = ask(connect.clone()).await;
    assert_eq!(refused["error"]["kind"], "transient", "{refused}");
    c.env.simulator.world().faults.server_errors = 0;
    let first = ask(connect.clone()).await;
    assert_eq!(first["status"], "active", "{first}");
    assert_eq!(c.queue.len(), 1);
    // Sent again: the same answer (its runId included), nothing done twice.
    let again = ask(connect.clone()).await;
    assert_eq!(again, first);
    assert_eq!(c.queue.len(), 1, "no second sync queued");
    let sync = json!({"action": "sync", "tenantId": "tenant-a", "requestId": "req-2",
                      "connectionId": first["connectionId"]});
    let synced = ask(sync.clone()).await;
    assert_eq!(ask(sync).await, synced);
    assert_eq!(c.queue.len(), 2);
    // Another tenant's request of the same id is its own.
    let mut other = connect.clone();
    other["tenantId"] = json!("tenant-b");
    let theirs = ask(other).await;
    assert_ne!(theirs["connectionId"], first["connectionId"], "{theirs}");
    // A token in requestId is refused without being quoted.
    let mut pasted = connect.clone();
    pasted["requestId"] = json!(DEMO_TOKEN);
    let refused = ask(pasted).await;
    assert_eq!(refused["error"]["kind"], "invalid_input", "{refused}");
    assert!(!refused.to_string().contains(DEMO_TOKEN));
    let mut bad = connect;
    bad["requestId"] = json!("a b");
    assert_eq!(ask(bad).await["error"]["kind"], "invalid_input");
}

// ---------------------------------------------------------------- requestId at its edges

/// A request log that remembers every key it was asked to keep an answer under.
struct RecordingLog {
    inner: Arc<MemoryStore>,
    keys: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl makesync::ports::RequestLog for RecordingLog {
    async fn answer_of(
        &self,
        tenant: &makesync::tenant::TenantId,
        request: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, makesync::ports::StoreError> {
        self.inner.answer_of(tenant, request, now).await
    }
    async fn keep_answer(
        &self,
        tenant: &makesync::tenant::TenantId,
        request: &str,
        answer: &str,
        now: chrono::DateTime<chrono::Utc>,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), makesync::ports::StoreError> {
        self.keys.lock().unwrap().push(request.to_string());
        self.inner
            .keep_answer(tenant, request, answer, now, expires_at)
            .await
    }
}

/// A token in `requestId` — as it is beside the token with the newline a file gives it
/// (connect trims it), or inside a longer id — is refused: it would be kept as a key and
/// logged.
#[tokio::test]
async fn a_token_in_request_id_is_refused_however_it_is_written() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let log = Arc::new(RecordingLog {
        inner: c.store.clone(),
        keys: Default::default(),
    });
    let service = c.service.clone().with_request_log(log.clone());
    for (token, request_id) in [
        (DEMO_TOKEN.to_string(), format!("{DEMO_TOKEN}:retry-1")),
        (format!("{DEMO_TOKEN}\n"), DEMO_TOKEN.to_string()),
    ] {
        let payload = json!({"host": "eu1.make.com", "organizationId": ACME, "token": token,
                             "tenantId": "tenant-a", "requestId": request_id});
        let answer = response_json(&service.handle_payload(&payload).await);
        let keys = log.keys.lock().unwrap().clone();
        assert!(
            !keys.iter().any(|k| k.contains(DEMO_TOKEN)),
            "the token was kept as a requestId: keys {keys:?}; answer {answer}"
        );
    }
}

/// A connect of several where Make is down for one organization answers that one "send the
/// request again"; sent again with the same requestId, it is carried out, not replayed.
#[tokio::test]
async fn an_organization_refused_because_make_was_down_is_tried_again_when_sent_again() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let service = c.service.clone().with_request_log(c.store.clone());
    let payload = json!({"tenantId": "tenant-a", "token": DEMO_TOKEN, "requestId": "req-several",
        "organizations": [{"organizationId": ACME, "host": "eu1.make.com"},
                          {"organizationId": makesync_tests::GLOBEX, "host": "us2.make.com"}]});
    // Every attempt of the first organization's check answers 503 (5 attempts), then Make is
    // back for the second.
    c.env.simulator.world().faults.server_errors = 5;
    let first = response_json(&service.handle_payload(&payload).await);
    let results = first["organizations"].as_array().unwrap();
    assert_eq!(results[0]["error"]["kind"], "transient", "{first}");
    assert_eq!(results[1]["status"], "active", "{first}");
    c.env.simulator.world().faults.server_errors = 0;
    // Sent again, as the refusal says, with the retry's requestId.
    let again = response_json(&service.handle_payload(&payload).await);
    assert_eq!(
        again["organizations"][0]["status"], "active",
        "Make is up again, yet the first organization's transient refusal was replayed: {again}"
    );
}

fn service_with_secrets(c: &Connect) -> (ConnectService, Arc<MemorySecrets>) {
    let secrets = Arc::new(MemorySecrets::default());
    let service = ConnectService::new(
        c.store.clone(),
        c.store.clone(),
        secrets.clone(),
        c.queue.clone(),
        c.env.make.clone(),
        c.env.clock_arc(),
    )
    .with_request_log(c.store.clone());
    (service, secrets)
}

/// A disconnect sent with a requestId the backend used before for another request (a connect)
/// is refused, not answered with the connect's answer (which would leave the token stored).
#[tokio::test]
async fn a_request_id_given_to_another_request_is_refused() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let (service, secrets) = service_with_secrets(&c);
    let connected = response_json(
        &service
            .handle_payload(&json!({"host": "eu1.make.com", "organizationId": ACME,
                "token": DEMO_TOKEN, "tenantId": "tenant-a", "requestId": "op-42"}))
            .await,
    );
    assert_eq!(connected["status"], "active", "{connected}");
    let disconnect = json!({"action": "disconnect", "tenantId": "tenant-a",
        "connectionId": connected["connectionId"], "requestId": "op-42"});
    let answer = response_json(&service.handle_payload(&disconnect).await);
    let id = makesync::connection::ConnectionId::parse(connected["connectionId"].as_str().unwrap())
        .unwrap();
    let stored = c.store.get_connection(&id).await.unwrap().unwrap();
    assert!(
        answer.get("error").is_some() || stored.status.as_str() == "disconnected",
        "a disconnect answered {answer} without an error, yet the connection is {} and {} token(s) remain",
        stored.status.as_str(),
        secrets.len()
    );
}

/// A requestId sent again after its day is a new request and acts once; its answer takes the
/// expired one's place, so a further retry is answered with it.
#[tokio::test]
async fn a_request_id_is_kept_a_day_then_answers_anew() {
    let c = connect_env(ApiShape::DOCUMENTED).await;
    let connected = c.connect(DEMO_TOKEN).await;
    let service = c.service.clone().with_request_log(c.store.clone());
    let sync = json!({"action": "sync", "tenantId": "tenant-a", "requestId": "job-7",
                      "connectionId": connected["connectionId"]});
    let before = c.queue.len();
    let _first = response_json(&service.handle_payload(&sync).await);
    c.env
        .clock
        .advance(std::time::Duration::from_secs(25 * 3600));
    let next_day = response_json(&service.handle_payload(&sync).await);
    let again = response_json(&service.handle_payload(&sync).await);
    assert_eq!(
        c.queue.len() - before,
        2,
        "one sync the first day, one the next: next day {next_day}, sent again {again}"
    );
    assert_eq!(again, next_day, "the next day's answer is replayed");
}
