//! The three functions' handlers with the real AWS SDK clients against moto's server, and the
//! Make client against the simulator. Needs moto: `bash tests/run.sh` starts it.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration as ChronoDuration;
use makesync::connection::{Connection, ConnectionId, ConnectionStatus};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, SyncRunStore, UserStore};
use makesync::queue::SyncRequest;
use makesync::run::{RunOutcome, SyncReason};
use makesync::store::contract::check_store_contract;
use makesync::user::UserStatus;
use makesync_tests::aws::{sqs_event, AwsTestEnv};
use makesync_tests::simulator::DEMO_TOKEN;
use makesync_tests::{CapturedLogs, ACME, GLOBEX};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn connect_payload(host: &str, organization: u64, token: &str) -> Value {
    json!({"host": host, "organizationId": organization.to_string(), "token": token, "tenantId": "tenant-7"})
}

async fn connect(env: &AwsTestEnv, payload: Value) -> Value {
    makesync_connect::handle(&env.connect_service(), payload).await
}

/// How many members the simulator's organization has (all of them are synced).
fn member_count(env: &AwsTestEnv, organization: u64) -> usize {
    env.make
        .simulator
        .world()
        .organization(organization)
        .expect("a demo organization")
        .members
        .len()
}

fn connection_id(response: &Value) -> ConnectionId {
    ConnectionId::parse(response["connectionId"].as_str().expect("a connection id")).unwrap()
}

#[tokio::test]
async fn the_dynamodb_store_keeps_the_storage_contract() {
    let env = AwsTestEnv::start().await;
    check_store_contract(env.backend.store.as_ref()).await;
}

#[tokio::test]
async fn connecting_checks_with_make_then_stores_the_token_and_queues_a_sync() {
    let env = AwsTestEnv::start().await;
    let logs = CapturedLogs::default();
    let _guard = logs.install();

    let response = connect(&env, connect_payload("EU1.make.com.", ACME, DEMO_TOKEN)).await;

    assert_eq!(response["organizationName"], "Acme Robotics", "{response}");
    assert_eq!(response["zone"], "eu1.make.com");
    assert_eq!(response["status"], "active");
    assert_eq!(response["syncEnqueued"], true);
    let id = connection_id(&response);

    // The token is in Secrets Manager under the prefix, at a version of its own, as
    // {"token": ...} …
    let names = env.secret_names().await;
    assert_eq!(names.len(), 1, "{names:?}");
    let name = names[0].clone();
    assert!(
        name.starts_with(&format!("{}{id}/", env.settings.secret_prefix)),
        "{name}"
    );
    let stored = env
        .secrets
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(body, json!({"token": DEMO_TOKEN}));

    // … and nowhere else: not in the connection item, the response or a log line.
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.settings.connections_table)
        .key("connectionId", AttributeValue::S(id.to_string()))
        .send()
        .await
        .unwrap();
    let item = format!("{:?}", item.item().expect("connection stored"));
    assert!(
        item.contains("Acme Robotics") && item.contains("tenant-7"),
        "{item}"
    );
    assert!(!item.contains(DEMO_TOKEN));
    assert!(!response.to_string().contains(DEMO_TOKEN));

    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.host.as_str(), "eu1.make.com");
    assert_eq!(connection.organization_id.get(), ACME);
    assert_eq!(connection.status, ConnectionStatus::Active);

    // One sync on the queue, with reason "connected".
    let messages = env.take_messages().await;
    assert_eq!(messages.len(), 1);
    let request = SyncRequest::parse(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(request.connection_id, id);
    assert_eq!(request.reason, SyncReason::Connected);

    // Connecting again with the same id and a new token replaces the secret, not the rest:
    // a new version, and the one before deleted at once, not kept readable.
    let mut again = connect_payload("eu1.make.com", ACME, DEMO_TOKEN);
    again["connectionId"] = json!(id.as_str());
    let response = connect(&env, again).await;
    assert_eq!(connection_id(&response), id, "{response}");
    let names = env.secret_names().await;
    assert_eq!(names.len(), 1, "{names:?}");
    assert_ne!(names[0], name, "a new version");
    assert!(
        env.secrets
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .is_err(),
        "the previous token can no longer be read"
    );

    drop(_guard);
    let text = logs.text();
    assert!(text.contains("connection stored"), "{text}");
    assert!(!text.contains(DEMO_TOKEN), "a log line holds the token");
}

#[tokio::test]
async fn a_refused_connection_stores_nothing_and_says_why() {
    let env = AwsTestEnv::start().await;
    let cases = [
        (
            connect_payload("eu1.make.com", ACME, "sim-token-revoked"),
            "auth",
            "invalid, expired or revoked",
        ),
        (
            connect_payload("eu1.make.com", ACME, "sim-token-no-user-read"),
            "permission",
            "user:read",
        ),
        (
            connect_payload("eu1.make.com", ACME, "sim-token-outsider"),
            "permission",
            "organizations:read",
        ),
        (
            connect_payload("eu1.make.com", 9999, DEMO_TOKEN),
            "not_found",
            "check the organization ID",
        ),
        (
            connect_payload("us2.make.com", ACME, DEMO_TOKEN),
            "not_found",
            "connect it with host eu1.make.com",
        ),
        (
            connect_payload("evil.example.com", ACME, DEMO_TOKEN),
            "invalid_input",
            "not a Make zone",
        ),
        (
            connect_payload("127.0.0.1", ACME, DEMO_TOKEN),
            "invalid_input",
            "IP address",
        ),
        (
            connect_payload("https://eu1.make.com", ACME, DEMO_TOKEN),
            "invalid_input",
            "scheme",
        ),
        (
            json!({"host": "eu1.make.com", "organizationId": "acme", "token": DEMO_TOKEN}),
            "invalid_input",
            "not a number",
        ),
        (
            json!({"host": "eu1.make.com", "organizationId": ACME}),
            "invalid_input",
            "no \"token\"",
        ),
    ];
    for (payload, kind, message) in cases {
        let response = connect(&env, payload.clone()).await;
        assert_eq!(response["error"]["kind"], kind, "{payload} → {response}");
        let text = response["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{payload} → {text}");
        assert!(!response.to_string().contains("sim-token"), "{response}");
    }
    assert_eq!(env.item_count(&env.settings.connections_table).await, 0);
    assert!(env.secret_names().await.is_empty());
    assert!(env.take_messages().await.is_empty());
}

/// A connection as the connect function would have stored it.
fn stored_connection(env: &AwsTestEnv, id: &str, organization: u64) -> Connection {
    Connection::new(
        ConnectionId::parse(id).unwrap(),
        makesync::tenant::TenantId::parse("tenant-1").unwrap(),
        MakeHost::parse("eu1.make.com").unwrap(),
        OrganizationId::new(organization).unwrap(),
        env.make.clock_arc().wall(),
    )
}

#[tokio::test]
async fn the_scheduler_sends_exactly_one_message_per_active_connection() {
    let env = AwsTestEnv::start().await;
    let store = env.backend.store.clone();
    let now = env.clock().wall();
    let mut expected = Vec::new();
    let mut puts = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let connection = stored_connection(&env, &format!("conn-{n:04}"), 1 + n);
        expected.push(connection.id.to_string());
        let store = store.clone();
        puts.spawn(async move { store.create_connection(&connection).await });
    }
    while let Some(put) = puts.join_next().await {
        put.unwrap().unwrap();
    }
    for n in 0..3 {
        let mut paused = stored_connection(&env, &format!("paused-{n}"), 5000 + n);
        paused.status = ConnectionStatus::Paused;
        store.create_connection(&paused).await.unwrap();
        let mut gone = stored_connection(&env, &format!("gone-{n}"), 6000 + n);
        gone.status = ConnectionStatus::Disconnected;
        store.create_connection(&gone).await.unwrap();
    }
    let busy = stored_connection(&env, "busy", 7000);
    store.create_connection(&busy).await.unwrap();
    assert!(store
        .acquire_lease(&busy.id, now, now + ChronoDuration::minutes(15))
        .await
        .unwrap());

    let summary = makesync_scheduler::handle(&env.scheduler()).await.unwrap();
    assert_eq!(summary.seen, 1007);
    assert_eq!(summary.enqueued, 1000);
    assert_eq!(summary.skipped_paused, 3);
    assert_eq!(summary.skipped_disconnected, 3);
    assert_eq!(summary.skipped_in_flight, 1);
    assert_eq!(summary.failed, 0);

    let mut sent: BTreeMap<String, u32> = BTreeMap::new();
    for message in env.take_messages().await {
        let request = SyncRequest::parse(message.body.as_deref().unwrap()).unwrap();
        assert_eq!(request.reason, SyncReason::Scheduled);
        *sent.entry(request.connection_id.to_string()).or_default() += 1;
    }
    expected.sort();
    assert_eq!(sent.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(
        sent.values().all(|&count| count == 1),
        "a connection was sent twice"
    );
}

#[tokio::test]
async fn the_scheduler_fails_the_invocation_when_the_queue_is_gone() {
    let env = AwsTestEnv::start().await;
    env.backend
        .store
        .create_connection(&stored_connection(&env, "c-1", ACME))
        .await
        .unwrap();
    env.sqs
        .delete_queue()
        .queue_url(env.settings.queue_url.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let error = makesync_scheduler::handle(&env.scheduler())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("1 of 1 sync requests could not be sent"),
        "{error}"
    );
    // Lambda records a readable kind as the errorType, not a Rust type name.
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "QueueUnavailable");
}

#[tokio::test]
async fn the_worker_drops_bad_messages_retries_passing_failures_and_syncs_the_rest() {
    let env = AwsTestEnv::start().await;
    let ok = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    let down =
        connection_id(&connect(&env, connect_payload("us2.make.com", GLOBEX, DEMO_TOKEN)).await);
    env.send_raw("{\"connectionId\": 42").await;
    env.send_raw(
        &SyncRequest::new(
            ConnectionId::parse("never-connected").unwrap(),
            SyncReason::Scheduled,
            env.clock().wall(),
        )
        .to_body(),
    )
    .await;
    env.make
        .simulator
        .world()
        .faults
        .unavailable_organizations
        .insert(GLOBEX);

    let messages = env.take_messages().await;
    assert_eq!(messages.len(), 4);
    let down_message = messages
        .iter()
        .find(|m| m.body.as_deref().is_some_and(|b| b.contains(down.as_str())))
        .and_then(|m| m.message_id.clone())
        .unwrap();
    let response = makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;

    // Only the passing failure goes back to the queue.
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![down_message]);

    let store = env.backend.store.clone();
    assert_eq!(
        store.list_users(&ok).await.unwrap().len(),
        member_count(&env, ACME)
    );
    assert!(store.list_users(&down).await.unwrap().is_empty());
    let runs = store.list_runs(&down, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert_eq!(runs[0].error.as_ref().unwrap().kind.as_str(), "transient");
    let down_connection = store.get_connection(&down).await.unwrap().unwrap();
    assert_eq!(down_connection.consecutive_failures, 1);
    assert_eq!(down_connection.lease_until, None, "the lease is released");
}

#[tokio::test]
async fn connect_queue_worker_store_and_a_removed_member_is_tombstoned() {
    let env = AwsTestEnv::start().await;
    let worker = env.worker();
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);

    let response =
        makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    assert!(response.batch_item_failures.is_empty());
    let store = env.backend.store.clone();
    let members = member_count(&env, ACME);
    let users = store.list_users(&id).await.unwrap();
    assert_eq!(users.len(), members);
    let ada = users.iter().find(|u| u.user_id == 1).unwrap();
    assert_eq!(ada.email, "ada@acme.example");
    assert_eq!(ada.status, UserStatus::Active);
    assert!(ada.last_login.is_some());
    assert!(!ada.role_name.is_empty());

    // Zoë leaves the organization; the next sync (asked for now) marks her removed.
    env.make.simulator.world().remove_member(ACME, 2);
    env.make.clock.advance(std::time::Duration::from_secs(3600));
    let now = makesync_connect::handle(
        &env.connect_service(),
        json!({"action": "sync", "tenantId": "tenant-7", "connectionId": id.as_str()}),
    )
    .await;
    assert_eq!(now["syncEnqueued"], true, "{now}");
    let messages = env.take_messages().await;
    assert_eq!(
        SyncRequest::parse(messages[0].body.as_deref().unwrap())
            .unwrap()
            .reason,
        SyncReason::OnDemand
    );
    let response = makesync_worker::handle(&worker, sqs_event(messages), None).await;
    assert!(response.batch_item_failures.is_empty());

    let users = store.list_users(&id).await.unwrap();
    assert_eq!(users.len(), members, "a removed user is kept, marked");
    let zoe = users.iter().find(|u| u.user_id == 2).unwrap();
    assert_eq!(zoe.status, UserStatus::Removed);
    assert!(zoe.removed_at.is_some());
    assert!(users
        .iter()
        .filter(|u| u.user_id != 2)
        .all(|u| u.removed_at.is_none()));

    let runs = store.list_runs(&id, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].counts.removed, 1);
    assert_eq!(runs[0].reason, SyncReason::OnDemand);
    assert_eq!(runs[1].counts.added as usize, members);
    let connection = store.get_connection(&id).await.unwrap().unwrap();
    assert_eq!(connection.last_run_id, Some(runs[0].run_id.to_string()));
    assert_eq!(connection.consecutive_failures, 0);

    // Runs expire: their items carry the TTL attribute.
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.settings.runs_table)
        .key("connectionId", AttributeValue::S(id.to_string()))
        .key("runId", AttributeValue::S(runs[0].run_id.to_string()))
        .send()
        .await
        .unwrap();
    let expires: i64 = item.item().unwrap()["expiresAt"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires, runs[0].started_at.timestamp() + 90 * 86_400);
}

#[tokio::test]
async fn repeated_failures_pause_the_connection_and_the_scheduler_skips_it() {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_PAUSE_AFTER_FAILURES", "3")]).await;
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    env.take_messages().await;
    // The customer revokes the token in Make after connecting.
    env.make.simulator.world().set_revoked(DEMO_TOKEN, true);

    for attempt in 1..=3 {
        makesync_scheduler::handle(&env.scheduler()).await.unwrap();
        let messages = env.take_messages().await;
        assert_eq!(messages.len(), 1, "attempt {attempt}");
        let response = makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "an invalid token is not retried"
        );
    }
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Paused);
    let reason = connection.status_reason.unwrap();
    assert_eq!(reason.kind.as_str(), "auth");
    assert!(
        reason.message.contains("paused after 3 failed syncs"),
        "{}",
        reason.message
    );

    assert!(
        reason
            .message
            .contains("resume it with {\"action\": \"resume\"}"),
        "{}",
        reason.message
    );

    let summary = makesync_scheduler::handle(&env.scheduler()).await.unwrap();
    assert_eq!((summary.enqueued, summary.skipped_paused), (0, 1));
    assert!(env.take_messages().await.is_empty());
    let resume = json!({"action": "resume", "tenantId": "tenant-7", "connectionId": id.as_str()});
    let refused = makesync_connect::handle(
        &env.connect_service(),
        json!({"action": "sync", "tenantId": "tenant-7", "connectionId": id.as_str()}),
    )
    .await;
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("is paused ("), "{message}");
    assert!(message.contains("{\"action\": \"resume\"}"), "{message}");

    // Resuming while Make still refuses the token answers as connect does, and changes nothing.
    let still_refused = makesync_connect::handle(&env.connect_service(), resume.clone()).await;
    assert_eq!(still_refused["error"]["kind"], "auth", "{still_refused}");
    let refused_connect = connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await;
    assert_eq!(
        still_refused["error"]["message"], refused_connect["error"]["message"],
        "resume and connect refuse in the same words"
    );
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Paused);
    assert!(env.take_messages().await.is_empty());

    // Once the customer fixes it in Make, resume works with the token already stored.
    env.make.simulator.world().set_revoked(DEMO_TOKEN, false);
    let resumed = makesync_connect::handle(&env.connect_service(), resume.clone()).await;
    assert_eq!(resumed["status"], "active", "{resumed}");
    assert_eq!(resumed["syncEnqueued"], true, "{resumed}");
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert_eq!(connection.consecutive_failures, 0);
    assert!(connection.status_reason.is_none());
    let messages = env.take_messages().await;
    assert_eq!(messages.len(), 1);
    let response = makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;
    assert!(response.batch_item_failures.is_empty());
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.consecutive_failures, 0);
    assert!(connection.last_error.is_none());

    // Another tenant cannot resume it: the same answer as an id nobody holds.
    let mut foreign = resume.clone();
    foreign["tenantId"] = json!("tenant-8");
    let foreign = makesync_connect::handle(&env.connect_service(), foreign).await;
    let mut unknown = resume;
    unknown["connectionId"] = json!("no-such-connection");
    let unknown = makesync_connect::handle(&env.connect_service(), unknown).await;
    assert_eq!(foreign, unknown);
    assert_eq!(foreign["error"]["kind"], "not_found");

    // Pause it again, then a reconnect with a working token resumes it too.
    env.make.simulator.world().set_revoked(DEMO_TOKEN, true);
    for _ in 1..=3 {
        makesync_scheduler::handle(&env.scheduler()).await.unwrap();
        let messages = env.take_messages().await;
        makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;
    }
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Paused);

    // Reconnecting with a working token resumes it.
    env.make.simulator.world().set_revoked(DEMO_TOKEN, false);
    let mut again = connect_payload("eu1.make.com", ACME, DEMO_TOKEN);
    again["connectionId"] = json!(id.as_str());
    connect(&env, again).await;
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert_eq!(connection.consecutive_failures, 0);
}

#[tokio::test]
async fn make_failing_every_delivery_never_pauses_and_the_sync_succeeds_once_make_is_back() {
    let env = AwsTestEnv::start_with(&[
        ("MAKESYNC_PAUSE_AFTER_FAILURES", "2"),
        ("MAKESYNC_FAILING_STREAK_ALERT", "4"),
    ])
    .await;
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    makesync_worker::handle(&env.worker(), sqs_event(env.take_messages().await), None).await;
    let synced = env.backend.store.list_users(&id).await.unwrap().len();
    assert_eq!(synced, member_count(&env, ACME));

    // Make answers 503 to everything, for longer than SQS delivers one message (MaxReceiveCount
    // 5): every delivery fails, is given back to SQS, and nothing pauses the connection.
    env.make.simulator.world().faults.server_errors = u32::MAX;
    makesync_scheduler::handle(&env.scheduler()).await.unwrap();
    let messages = env.take_messages().await;
    assert_eq!(messages.len(), 1);
    for delivery in 1..=6 {
        let response =
            makesync_worker::handle(&env.worker(), sqs_event(messages.clone()), None).await;
        assert_eq!(
            response.batch_item_failures.len(),
            1,
            "delivery {delivery} goes back to SQS, to reach the dead-letter queue at last"
        );
        let connection = env.stored_connection(&id).await;
        assert_eq!(
            connection.status,
            ConnectionStatus::Active,
            "delivery {delivery}"
        );
        assert_eq!(connection.consecutive_failures, delivery);
        assert_eq!(connection.last_error.unwrap().kind.as_str(), "transient");
    }
    // The scheduler still sends it, and the product can still ask for a sync.
    let summary = makesync_scheduler::handle(&env.scheduler()).await.unwrap();
    assert_eq!((summary.enqueued, summary.skipped_paused), (1, 0));
    env.take_messages().await;
    let asked = makesync_connect::handle(
        &env.connect_service(),
        json!({"action": "sync", "tenantId": "tenant-7", "connectionId": id.as_str()}),
    )
    .await;
    assert_eq!(asked["syncEnqueued"], true, "{asked}");

    // Make is back: the next delivery succeeds with the token stored, none given.
    env.make.simulator.world().faults.server_errors = 0;
    let response =
        makesync_worker::handle(&env.worker(), sqs_event(env.take_messages().await), None).await;
    assert!(response.batch_item_failures.is_empty());
    let connection = env.stored_connection(&id).await;
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert_eq!(connection.consecutive_failures, 0);
    assert!(connection.last_error.is_none());
    assert_eq!(
        env.backend.store.list_users(&id).await.unwrap().len(),
        synced
    );
}

#[tokio::test]
async fn the_same_connect_twice_answers_one_connection_with_one_secret_and_one_set_of_users() {
    let env = AwsTestEnv::start().await;
    let first = connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await;
    // The backend timed out and sends the same request again.
    let again = connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await;
    let id = connection_id(&first);
    assert_eq!(connection_id(&again), id, "{first} / {again}");
    assert_eq!(
        env.secret_names().await.len(),
        1,
        "the first token version is deleted"
    );
    let tenant = makesync::tenant::TenantId::parse("tenant-7").unwrap();
    let connections = env
        .backend
        .store
        .list_tenant_connections(&tenant)
        .await
        .unwrap();
    assert_eq!(connections.len(), 1);

    // Each connect queued its sync; they run one after the other, on the one connection.
    let messages = env.take_messages().await;
    assert_eq!(messages.len(), 2);
    for message in messages {
        let response = makesync_worker::handle(&env.worker(), sqs_event(vec![message]), None).await;
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(
        env.backend.store.list_users(&id).await.unwrap().len(),
        member_count(&env, ACME)
    );
    // Each answer named the run its sync was recorded under.
    let runs = env.backend.store.list_runs(&id, 10).await.unwrap();
    let recorded: Vec<String> = runs.iter().map(|r| r.run_id.to_string()).collect();
    for answer in [&first, &again] {
        let run_id = answer["runId"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(
            recorded.iter().any(|r| r == run_id),
            "{run_id} in {recorded:?}"
        );
    }
    let status = makesync_connect::handle(
        &env.connect_service(),
        json!({"action": "status", "tenantId": "tenant-7", "connectionId": id.as_str()}),
    )
    .await;
    assert_eq!(status["lastRun"]["runId"], again["runId"], "{status}");
    assert_eq!(status["lastRun"]["outcome"], "succeeded", "{status}");

    // A disconnected connection (its users kept) is the one a new connect takes up again.
    let disconnected = makesync_connect::handle(
        &env.connect_service(),
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id.as_str()}),
    )
    .await;
    assert_eq!(disconnected["status"], "disconnected", "{disconnected}");
    assert!(env.secret_names().await.is_empty());
    let back = connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await;
    assert_eq!(connection_id(&back), id, "{back}");
    assert_eq!(back["status"], "active");
    assert_eq!(env.secret_names().await.len(), 1);
    // Another organization is another connection.
    let globex = connect(&env, connect_payload("us2.make.com", GLOBEX, DEMO_TOKEN)).await;
    assert_ne!(connection_id(&globex), id);
}

#[tokio::test]
async fn a_connect_answers_before_its_functions_timeout_however_long_make_asks_to_wait() {
    let env = AwsTestEnv::start().await;
    let clock = env.clock();
    for retry_after in [3600, 30] {
        {
            let mut world = env.make.simulator.world();
            world.faults.rate_limited = u32::MAX;
            world.faults.rate_limited_retry_after = retry_after;
        }
        // The connect function's timeout is 60 s.
        let started = clock.monotonic();
        let deadline = makesync::worker::Deadline::at(
            clock.wall() + ChronoDuration::seconds(60),
            clock.as_ref(),
        );
        let answer = makesync_connect::handle_until(
            &env.connect_service(),
            connect_payload("eu1.make.com", ACME, DEMO_TOKEN),
            Some(deadline),
        )
        .await;
        let spent = clock.monotonic() - started;
        assert!(
            spent < std::time::Duration::from_secs(50),
            "Retry-After {retry_after}: answered after {spent:?}"
        );
        let error = &answer["error"];
        assert!(
            matches!(error["kind"].as_str(), Some("rate_limited" | "transient")),
            "Retry-After {retry_after}: {answer}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("nothing was stored"), "{message}");
        assert!(!message.contains("the sync will be tried"), "{message}");
        assert!(env.secret_names().await.is_empty());
        assert!(env.take_messages().await.is_empty());
    }
}

#[tokio::test]
async fn an_aws_refusal_of_the_token_s_secret_never_pauses_a_connection() {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_PAUSE_AFTER_FAILURES", "2")]).await;
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    // The worker's Secrets Manager refuses to read it: the operator's KMS key disabled, or a
    // role changed — nothing the customer did or can fix.
    let (backend, proxy) = env.recorded_backend(&env.settings).await;
    proxy.refuse(
        "secretsmanager.GetSecretValue",
        Some("AccessDeniedException"),
    );
    let worker = makesync_worker::worker_for(
        &backend,
        env.make.make.clone(),
        env.clock(),
        env.metrics.clone(),
    );
    for attempt in 1..=4 {
        let request = SyncRequest::new(id.clone(), SyncReason::Scheduled, chrono::Utc::now());
        let outcome = worker.handle(&request).await;
        let stored = env.stored_connection(&id).await;
        assert_eq!(
            stored.status,
            ConnectionStatus::Active,
            "attempt {attempt}: paused for an AWS refusal: {:?}",
            stored.status_reason
        );
        assert!(
            outcome.should_retry(),
            "attempt {attempt}: given back to SQS"
        );
        let error = stored.last_error.unwrap();
        assert_eq!(error.kind.as_str(), "storage", "{}", error.message);
        assert!(
            error.message.contains("tell the operator"),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn disconnecting_deletes_the_token_and_keeps_users_unless_purged() {
    let env = AwsTestEnv::start().await;
    let worker = env.worker();
    let kept =
        connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    let purged =
        connection_id(&connect(&env, connect_payload("us2.make.com", GLOBEX, DEMO_TOKEN)).await);
    makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    let store = env.backend.store.clone();
    assert!(!store.list_users(&kept).await.unwrap().is_empty());
    assert!(!store.list_users(&purged).await.unwrap().is_empty());

    let service = env.connect_service();
    let response = makesync_connect::handle(
        &service,
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": kept.as_str()}),
    )
    .await;
    assert_eq!(response["status"], "disconnected", "{response}");
    assert_eq!(response["usersPurged"], false);
    let response = makesync_connect::handle(
        &service,
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": purged.as_str(), "purge": true}),
    )
    .await;
    assert_eq!(response["status"], "erasing", "{response}");
    assert_eq!(response["purgeQueued"], true, "{response}");
    // The erase job, from the queue.
    let response =
        makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    assert!(response.batch_item_failures.is_empty());
    let erased = store.get_connection(&purged).await.unwrap().unwrap();
    assert_eq!(erased.status, ConnectionStatus::Erased);
    assert_eq!(erased.erased_users as usize, member_count(&env, GLOBEX));
    assert_eq!(
        erased.organization_name, None,
        "nothing of the organization kept"
    );

    assert!(env.secret_names().await.is_empty());
    assert_eq!(
        store.get_connection(&kept).await.unwrap().unwrap().status,
        ConnectionStatus::Disconnected
    );
    assert_eq!(
        store.list_users(&kept).await.unwrap().len(),
        member_count(&env, ACME)
    );
    assert!(store.list_users(&purged).await.unwrap().is_empty());

    // A sync that was already queued finds the connection disconnected and drops the message.
    env.send_raw(
        &SyncRequest::new(kept.clone(), SyncReason::Scheduled, env.clock().wall()).to_body(),
    )
    .await;
    let response =
        makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(store.list_runs(&kept, 10).await.unwrap().len(), 1);

    // Disconnecting twice is harmless; an unknown connection is a clear error.
    let again = makesync_connect::handle(
        &service,
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": kept.as_str()}),
    )
    .await;
    assert_eq!(again["status"], "disconnected", "{again}");
    let unknown = makesync_connect::handle(
        &service,
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": "nope"}),
    )
    .await;
    assert_eq!(unknown["error"]["kind"], "not_found");
}

#[tokio::test]
async fn token_secrets_are_created_with_the_customer_key_when_one_is_set() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/0b5f1c1e-6a4e-4c55-9d43-1f0e2a9c7d11";
    let env = AwsTestEnv::start_with(&[("MAKESYNC_SECRETS_KMS_KEY", key)]).await;
    let answer = connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await;
    assert_eq!(answer["status"], "active", "{answer}");
    let names = env.secret_names().await;
    assert_eq!(names.len(), 1);
    let described = env
        .secrets
        .describe_secret()
        .secret_id(&names[0])
        .send()
        .await
        .unwrap();
    assert_eq!(described.kms_key_id(), Some(key));
}

/// A member who leaves is kept, marked removed, with the TTL attribute the template declares:
/// due the retention after the removal. One who comes back before that has none.
#[tokio::test]
async fn removed_users_carry_the_ttl_attribute_and_lose_it_when_they_come_back() {
    let attribute = makesync_tests::template::users_ttl_attribute();
    let env = AwsTestEnv::start_with(&[("MAKESYNC_REMOVED_USER_RETENTION_DAYS", "30")]).await;
    let worker = env.worker();
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    let sync_now = || async {
        env.make.clock.advance(std::time::Duration::from_secs(3600));
        makesync_connect::handle(
            &env.connect_service(),
            json!({"action": "sync", "tenantId": "tenant-7", "connectionId": id.as_str()}),
        )
        .await;
        makesync_worker::handle(&worker, sqs_event(env.take_messages().await), None).await;
    };
    let item = |user: u64| {
        let env = &env;
        let id = id.clone();
        async move {
            env.dynamodb
                .get_item()
                .table_name(&env.settings.users_table)
                .key("connectionId", AttributeValue::S(id.to_string()))
                .key("userId", AttributeValue::N(user.to_string()))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap()
        }
    };

    env.make
        .simulator
        .world()
        .remove_member(ACME, 2)
        .remove_member(ACME, 11);
    sync_now().await;
    let store = env.backend.store.clone();
    let users = store.list_users(&id).await.unwrap();
    for user_id in [2, 11] {
        let removed_at = users
            .iter()
            .find(|u| u.user_id == user_id)
            .unwrap()
            .removed_at
            .unwrap();
        let stored = item(user_id).await;
        let expires: i64 = stored[&attribute].as_n().unwrap().parse().unwrap();
        assert_eq!(expires, (removed_at + ChronoDuration::days(30)).timestamp());
    }
    assert!(
        !item(1).await.contains_key(&attribute),
        "present users do not expire"
    );

    // Zoë comes back before her item expired: restored, and the expiry is gone.
    env.make.simulator.world().add_member(ACME, 2, 13, None);
    sync_now().await;
    let back = item(2).await;
    assert_eq!(back["status"].as_s().unwrap(), "active");
    assert!(!back.contains_key(&attribute), "{back:?}");
    assert!(item(11).await.contains_key(&attribute));
}

/// Users removed while removed users were kept for good have no expiry; once a retention is
/// set, the next sync writes them again with one — not as a change: nothing is counted.
#[tokio::test]
async fn users_removed_before_a_retention_get_their_expiry_at_the_next_sync() {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_REMOVED_USER_RETENTION_DAYS", "0")]).await;
    let id = connection_id(&connect(&env, connect_payload("eu1.make.com", ACME, DEMO_TOKEN)).await);
    let keeping = env.worker();
    makesync_worker::handle(&keeping, sqs_event(env.take_messages().await), None).await;
    env.make.simulator.world().remove_member(ACME, 2);
    env.make.clock.advance(std::time::Duration::from_secs(3600));
    env.send_raw(&SyncRequest::new(id.clone(), SyncReason::OnDemand, env.clock().wall()).to_body())
        .await;
    makesync_worker::handle(&keeping, sqs_event(env.take_messages().await), None).await;
    let zoe = || async {
        env.dynamodb
            .get_item()
            .table_name(&env.settings.users_table)
            .key("connectionId", AttributeValue::S(id.to_string()))
            .key("userId", AttributeValue::N("2".into()))
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
            .unwrap()
    };
    assert_eq!(zoe().await["status"].as_s().unwrap(), "removed");
    assert!(!zoe().await.contains_key("expiresAt"), "kept for good");

    let settings = makesync::aws::AwsSettings {
        removed_user_retention_days: 30,
        ..env.settings.clone()
    };
    let backend = makesync::aws::AwsBackend::new(
        &makesync_tests::aws::moto_sdk_config().await,
        settings,
        env.clock(),
    );
    let expiring = makesync_worker::worker_for(
        &backend,
        env.make.make.clone(),
        env.clock(),
        env.metrics.clone(),
    );
    env.make.clock.advance(std::time::Duration::from_secs(3600));
    env.send_raw(&SyncRequest::new(id.clone(), SyncReason::OnDemand, env.clock().wall()).to_body())
        .await;
    makesync_worker::handle(&expiring, sqs_event(env.take_messages().await), None).await;
    let removed_at = env
        .backend
        .store
        .list_users(&id)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.user_id == 2)
        .unwrap()
        .removed_at
        .unwrap();
    let expires: i64 = zoe().await["expiresAt"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires, (removed_at + ChronoDuration::days(30)).timestamp());
    let run = &env.backend.store.list_runs(&id, 1).await.unwrap()[0];
    assert_eq!(
        (run.counts.added, run.counts.updated, run.counts.removed),
        (0, 0, 0),
        "not a change"
    );
}
