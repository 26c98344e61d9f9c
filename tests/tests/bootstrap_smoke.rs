//! The four `bootstrap` files `sam build` made, run as Lambda runs them: each under a stand-in
//! Runtime API, with moto for AWS and the simulator for Make. Connect adds an organization,
//! the worker syncs it from the queue, the scheduler fans out, and the events function
//! announces the first sync from the users table's stream.
//!
//! Ignored in the ordinary test run; CI runs it after `sam build`:
//! `MAKESYNC_BOOTSTRAP_DIR=infra/.aws-sam/build MAKESYNC_BOOTSTRAP_RUNNER="qemu-aarch64 -L
//! /usr/aarch64-linux-gnu" cargo test -p makesync-tests --test bootstrap_smoke -- --ignored`
//! (the runner runs the arm64 binaries on another machine).

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use makesync::aws::AwsSettings;
use makesync::ports::{ConnectionStore, UserStore};
use makesync_simulator::lambda_runtime::{FakeLambdaRuntime, Invocation};
use makesync_simulator::{
    demo_world, Simulator, TokenGrant, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TOKEN,
};
use makesync_tests::aws::{moto_sdk_config, sqs_event, AwsTestEnv, MOTO_ENDPOINT_ENV};
use makesync_tests::stream::{bus_to_queue, delivered, StreamReader};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The token a rotation brings in; like the others, it must appear in no line.
const ROTATED_TOKEN: &str = "sim-token-rotated-in-the-smoke-test";

struct Function {
    runtime: FakeLambdaRuntime,
    process: Child,
    log: PathBuf,
}

impl Function {
    async fn start(name: &str, env: &[(String, String)], rust_log: &str) -> Self {
        let dir =
            PathBuf::from(std::env::var("MAKESYNC_BOOTSTRAP_DIR").expect(
                "MAKESYNC_BOOTSTRAP_DIR: the folder `sam build` wrote (infra/.aws-sam/build)",
            ));
        let bootstrap = dir.join(name).join("bootstrap");
        assert!(bootstrap.exists(), "{} is not built", bootstrap.display());
        let runner = std::env::var("MAKESYNC_BOOTSTRAP_RUNNER").unwrap_or_default();
        let mut words: Vec<String> = runner.split_whitespace().map(str::to_string).collect();
        words.push(bootstrap.display().to_string());
        let runtime = FakeLambdaRuntime::start().await.unwrap();
        let log = std::env::temp_dir().join(format!("makesync-smoke-{name}-{rust_log}.log"));
        let output = std::fs::File::create(&log).unwrap();
        let process = Command::new(&words[0])
            .args(&words[1..])
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.api())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", rust_log)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        runtime
            .first_poll(Duration::from_secs(120))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{name} did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Self {
            runtime,
            process,
            log,
        }
    }

    async fn invoke(&self, event: Value) -> Value {
        match self
            .runtime
            .invoke(event, Duration::from_secs(120))
            .await
            .unwrap()
        {
            Invocation::Response(body) => body,
            Invocation::Error { error_type, body } => {
                panic!("{error_type}: {body}\n{}", self.output())
            }
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
#[ignore = "needs the bootstraps `sam build` makes; CI runs it"]
async fn the_built_functions_run_through_the_runtime_api() {
    let lines = run_the_path("info").await;
    assert!(lines.iter().all(|(_, _, tokens)| *tokens == 0));
}

/// With `RUST_LOG=trace` — the first thing an operator tries — the same path, a connect
/// request with the token pasted into each other field, discovery, one credential for three
/// organizations and its rotation, a White Label instance followed by a schedule: none of the
/// three tokens is in any line the four functions write.
#[tokio::test]
#[ignore = "needs the bootstraps `sam build` makes; CI runs it"]
async fn no_function_writes_the_token_at_trace() {
    let lines = run_the_path("trace").await;
    for (function, count, tokens) in &lines {
        println!("RUST_LOG=trace: {function}: {count} lines captured, token occurrences {tokens}");
    }
    for (function, count, tokens) in lines {
        assert!(count > 0, "{function} wrote nothing");
        assert_eq!(tokens, 0, "{function} wrote the token");
    }
}

/// Connect → worker → scheduler → events through the four bootstraps at `rust_log`; returns,
/// per function, the lines it wrote and how many of them hold the token.
async fn run_the_path(rust_log: &str) -> Vec<(&'static str, usize, usize)> {
    assert!(std::env::var(MOTO_ENDPOINT_ENV).is_ok(), "needs moto");
    let env = AwsTestEnv::start().await;
    let simulator = Simulator::start(demo_world()).await.unwrap();
    let (bus, bus_queue) = bus_to_queue(&env).await;
    let settings = AwsSettings {
        event_bus: Some(bus.clone()),
        ..env.settings.clone()
    };
    let mut vars: Vec<(String, String)> = vec![
        (
            "MAKESYNC_CONNECTIONS_TABLE".into(),
            settings.connections_table.clone(),
        ),
        (
            "MAKESYNC_CREDENTIALS_TABLE".into(),
            settings.credentials_table.clone(),
        ),
        ("MAKESYNC_USERS_TABLE".into(), settings.users_table.clone()),
        ("MAKESYNC_RUNS_TABLE".into(), settings.runs_table.clone()),
        (
            "MAKESYNC_QUEUE_URL".into(),
            settings.queue_url.clone().unwrap(),
        ),
        (
            "MAKESYNC_SECRET_PREFIX".into(),
            settings.secret_prefix.clone(),
        ),
        ("MAKESYNC_EVENT_BUS".into(), bus),
        ("MAKESYNC_API_BASE_URL".into(), simulator.base_url()),
        ("MAKESYNC_EXTRA_HOSTS".into(), DEMO_INSTANCE_HOST.into()),
    ];
    vars.push((
        "AWS_ENDPOINT_URL".into(),
        std::env::var(MOTO_ENDPOINT_ENV).unwrap(),
    ));

    // Connect: validated with Make, stored, first sync queued.
    let connect = Function::start("ConnectFunction", &vars, rust_log).await;
    let answer = connect
        .invoke(
            json!({"host": "eu1.make.com", "organizationId": 1001, "token": DEMO_TOKEN,
                       "tenantId": "tenant-7"}),
        )
        .await;
    assert_eq!(answer["status"], "active", "{answer}");
    let id = makesync::connection::ConnectionId::parse(answer["connectionId"].as_str().unwrap())
        .unwrap();
    assert_eq!(answer["syncEnqueued"], true);

    // Worker: the queued request, and one malformed body.
    let worker = Function::start("WorkerFunction", &vars, rust_log).await;
    let mut messages = env.take_messages().await;
    assert_eq!(messages.len(), 1);
    let mut malformed = messages[0].clone();
    malformed.message_id = Some("malformed".into());
    malformed.body = Some("{\"connectionId\": 42}".into());
    messages.push(malformed);
    let mut event = SqsEvent::default();
    event.records = messages;
    let answer = worker.invoke(serde_json::to_value(&event).unwrap()).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(env.backend.store.list_users(&id).await.unwrap().len(), 36);

    // Scheduler: one active connection, one request.
    let scheduler = Function::start("SchedulerFunction", &vars, rust_log).await;
    let answer = scheduler.invoke(json!({"source": "aws.events"})).await;
    assert_eq!(answer["enqueued"], 1, "{answer}");

    // Events: the first sync, announced once.
    let events = Function::start("EventsFunction", &vars, rust_log).await;
    let mut stream = StreamReader::new(&moto_sdk_config().await, &settings.users_table);
    let change = stream.next_event().await;
    let answer = events.invoke(serde_json::to_value(&change).unwrap()).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let announced = delivered(&env, &bus_queue).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].0, "Make connection synced");
    assert_eq!(announced[0].1["users"], 36);

    // A member leaves: the scheduler's sync marks her removed, and her item carries the TTL
    // attribute the template's users table declares, due the retention (30 days) after.
    simulator.world().remove_member(1001, 2);
    let answer = worker
        .invoke(serde_json::to_value(sqs_event(env.take_messages().await)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let zoe = env
        .dynamodb
        .get_item()
        .table_name(&settings.users_table)
        .key("connectionId", AttributeValue::S(id.to_string()))
        .key("userId", AttributeValue::N("2".into()))
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .unwrap();
    assert_eq!(zoe["status"].as_s().unwrap(), "removed");
    let expires: i64 = zoe[&makesync_tests::template::users_ttl_attribute()]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let removed_at =
        chrono::DateTime::parse_from_rfc3339(zoe["removedAt"].as_s().unwrap()).unwrap();
    assert_eq!(expires, removed_at.timestamp() + 30 * 86_400);
    println!("RUST_LOG={rust_log}: removed user's expiresAt = removedAt + 30 days");

    // An erasure: connect answers erasing, the worker's erase job deletes every user; no item
    // holds a name or an email, and the token cannot be read.
    let erasing = connect
        .invoke(json!({"action": "disconnect", "tenantId": "tenant-7",
                       "connectionId": id.as_str(), "purge": true}))
        .await;
    assert_eq!(erasing["status"], "erasing", "{erasing}");
    let answer = worker
        .invoke(serde_json::to_value(sqs_event(env.take_messages().await)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let stored = env
        .backend
        .store
        .get_connection(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "erased");
    let items = env
        .dynamodb
        .scan()
        .table_name(&settings.users_table)
        .send()
        .await
        .unwrap();
    for item in items.items() {
        assert!(
            !item.contains_key("name") && !item.contains_key("email"),
            "{item:?}"
        );
    }
    assert!(env.secret_names().await.is_empty(), "the token is gone");
    println!("RUST_LOG={rust_log}: after the erasure, no user item holds a name or email ({} items left, none a user's), no token", items.items().len());

    // What they wrote: JSON logs, EMF metrics, and never the token.
    let worker_output = worker.output();
    assert!(
        worker_output.contains("\"message\":\"sync succeeded\""),
        "{worker_output}"
    );
    assert!(
        worker_output.contains("\"_aws\""),
        "EMF lines: {worker_output}"
    );

    // Tenancy, through the built connect function: no action without a tenant, and another
    // tenant's connection answered exactly like one that does not exist.
    for request in [
        json!({"host": "eu1.make.com", "organizationId": 1001, "token": DEMO_TOKEN}),
        json!({"action": "sync", "connectionId": id.as_str()}),
        json!({"action": "disconnect", "connectionId": id.as_str(), "purge": true}),
    ] {
        let answer = connect.invoke(request.clone()).await;
        assert_eq!(
            answer["error"]["kind"], "invalid_input",
            "{request}: {answer}"
        );
    }
    for action in ["sync", "disconnect"] {
        let theirs = connect
            .invoke(json!({"action": action, "tenantId": "tenant-8", "connectionId": id.as_str()}))
            .await;
        let nobodys = connect
            .invoke(json!({"action": action, "tenantId": "tenant-8",
                           "connectionId": makesync::connection::ConnectionId::generate().as_str()}))
            .await;
        assert_eq!(theirs.to_string(), nobodys.to_string(), "{action}");
        assert_eq!(theirs["error"]["kind"], "not_found", "{theirs}");
        println!("RUST_LOG={rust_log}: {action} of another tenant's connection and of an unknown id: {theirs}");
    }

    // The token pasted into each other field of a connect request: refused, never quoted.
    for (field, value) in [
        ("host", json!(DEMO_TOKEN)),
        ("organizationId", json!(DEMO_TOKEN)),
        ("tenantId", json!(DEMO_TOKEN)),
        ("connectionId", json!(DEMO_TOKEN)),
    ] {
        let mut request = json!({"host": "eu1.make.com", "organizationId": 1001,
                                 "token": DEMO_TOKEN, "tenantId": "tenant-7"});
        request[field] = value;
        let answer = connect.invoke(request).await;
        assert!(answer.get("error").is_some(), "{field}: {answer}");
        assert!(
            !answer.to_string().contains(DEMO_TOKEN),
            "{field}: {answer}"
        );
    }

    run_the_credential_path(&env, &simulator, &connect, &worker, &scheduler).await;

    let mut lines = Vec::new();
    for (name, function) in [
        ("connect", &connect),
        ("worker", &worker),
        ("scheduler", &scheduler),
        ("events", &events),
    ] {
        let output = function.output();
        let tokens = output
            .lines()
            .filter(|l| {
                [DEMO_TOKEN, ROTATED_TOKEN, DEMO_INSTANCE_TOKEN]
                    .iter()
                    .any(|token| l.contains(token))
            })
            .count();
        lines.push((name, output.lines().count(), tokens));
    }
    for mut function in [connect, worker, scheduler, events] {
        let _ = function.process.kill().await;
    }
    lines
}

/// Discovery, one credential for the three organizations found, its syncs, a rotation; a
/// White Label instance followed, its organizations synced, then a schedule that follows it.
async fn run_the_credential_path(
    env: &AwsTestEnv,
    simulator: &Simulator,
    connect: &Function,
    worker: &Function,
    scheduler: &Function,
) {
    simulator.world().add_token(
        ROTATED_TOKEN,
        TokenGrant::new(1, &["organizations:read", "user:read"]),
    );
    let found = connect
        .invoke(
            json!({"action": "discover", "tenantId": "tenant-9", "host": "eu1.make.com",
                       "token": DEMO_TOKEN}),
        )
        .await;
    let picked = makesync_tests::pick_all_discovered(&found);
    assert_eq!(picked.len(), 3, "{found}");
    let connected = connect
        .invoke(json!({"tenantId": "tenant-9", "token": DEMO_TOKEN, "organizations": picked}))
        .await;
    let credential = connected["credentialId"]
        .as_str()
        .unwrap_or_else(|| panic!("{connected}"))
        .to_string();
    let answer = worker
        .invoke(serde_json::to_value(sqs_event(env.take_messages().await)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let rotated = connect
        .invoke(json!({"action": "rotate", "tenantId": "tenant-9",
                       "credentialId": credential, "token": ROTATED_TOKEN}))
        .await;
    assert!(rotated.get("error").is_none(), "{rotated}");
    let instance = connect
        .invoke(json!({"action": "connect-instance", "tenantId": "tenant-9",
                       "host": DEMO_INSTANCE_HOST, "token": DEMO_INSTANCE_TOKEN,
                       "autoConnect": true}))
        .await;
    assert!(instance.get("error").is_none(), "{instance}");
    worker
        .invoke(serde_json::to_value(sqs_event(env.take_messages().await)).unwrap())
        .await;
    simulator
        .world()
        .add_organization(5005, "Partner Epsilon", DEMO_INSTANCE_HOST, Some(60));
    let answer = scheduler.invoke(json!({"source": "aws.events"})).await;
    assert!(answer["enqueued"].as_u64().unwrap() >= 6, "{answer}");
    worker
        .invoke(serde_json::to_value(sqs_event(env.take_messages().await)).unwrap())
        .await;
}
