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
use makesync::aws::AwsSettings;
use makesync::ports::UserStore;
use makesync_simulator::lambda_runtime::{FakeLambdaRuntime, Invocation};
use makesync_simulator::{demo_world, Simulator, DEMO_TOKEN};
use makesync_tests::aws::{moto_sdk_config, AwsTestEnv, MOTO_ENDPOINT_ENV};
use makesync_tests::stream::{bus_to_queue, delivered, StreamReader};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

struct Function {
    runtime: FakeLambdaRuntime,
    process: Child,
    log: PathBuf,
}

impl Function {
    async fn start(name: &str, env: &[(String, String)]) -> Self {
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
        let log = std::env::temp_dir().join(format!("makesync-smoke-{name}.log"));
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
            .env("RUST_LOG", "info")
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
    ];
    vars.push((
        "AWS_ENDPOINT_URL".into(),
        std::env::var(MOTO_ENDPOINT_ENV).unwrap(),
    ));

    // Connect: validated with Make, stored, first sync queued.
    let connect = Function::start("ConnectFunction", &vars).await;
    let answer = connect
        .invoke(
            json!({"host": "eu1.make.com", "organizationId": 1001, "token": DEMO_TOKEN,
                       "tenantId": "tenant-7", "connectionId": "smoke-acme"}),
        )
        .await;
    assert_eq!(answer["status"], "active", "{answer}");
    assert_eq!(answer["syncEnqueued"], true);

    // Worker: the queued request, and one malformed body.
    let worker = Function::start("WorkerFunction", &vars).await;
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
    let id = makesync::connection::ConnectionId::parse("smoke-acme").unwrap();
    assert_eq!(env.backend.store.list_users(&id).await.unwrap().len(), 36);

    // Scheduler: one active connection, one request.
    let scheduler = Function::start("SchedulerFunction", &vars).await;
    let answer = scheduler.invoke(json!({"source": "aws.events"})).await;
    assert_eq!(answer["enqueued"], 1, "{answer}");

    // Events: the first sync, announced once.
    let events = Function::start("EventsFunction", &vars).await;
    let mut stream = StreamReader::new(&moto_sdk_config().await, &settings.users_table);
    let change = stream.next_event().await;
    let answer = events.invoke(serde_json::to_value(&change).unwrap()).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let announced = delivered(&env, &bus_queue).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].0, "Make connection synced");
    assert_eq!(announced[0].1["users"], 36);

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
    for function in [&connect, &worker, &scheduler, &events] {
        assert!(
            !function.output().contains(DEMO_TOKEN),
            "a token in the output"
        );
    }
    for mut function in [connect, worker, scheduler, events] {
        let _ = function.process.kill().await;
    }
}
