//! The worker: one SQS batch of ten organizations through the release binary, under the
//! stand-in Lambda Runtime API with a 300 s deadline, on moto (DynamoDB on dynalite with
//! `bench/run.sh --dynalite`), with the memory of the
//! template's function (256 MB). Each organization has 20 teams, and the token reads them.

use crate::process::{start_function, stop};
use crate::{add_organization, mb, print_table, secs, Organization};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, SecretStore, UserStore};
use makesync::queue::SyncRequest;
use makesync::run::SyncReason;
use makesync::token::ApiToken;
use makesync_simulator::lambda_runtime::{FakeLambdaRuntime, Invocation};
use makesync_simulator::{Simulator, World, DEMO_TEAMS_TOKEN};
use makesync_tests::aws::{create_resources, moto_sdk_config};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Teams of each organization (besides its first, "My Team"), read with the token's
/// `teams:read`.
const TEAMS: u64 = 20;

/// The worker's timeout in the template.
const TIMEOUT: Duration = Duration::from_secs(300);

pub struct Batch {
    pub memory_mb: u32,
    pub organizations: Vec<Organization>,
}

/// The batches to run, their organizations added to `world`.
pub fn plan_batches(world: &mut World, smoke: bool) -> Vec<Batch> {
    let shapes: &[(u64, u32)] = if smoke {
        &[(1_000, 256)]
    } else {
        // The last one lets every sync run at once, so every user of the batch is in flight:
        // its "÷ users" column is the cost of a user in flight.
        &[(1_000, 256), (10_000, 256), (20_000, 256), (10_000, 10_240)]
    };
    let per_batch = if smoke { 2 } else { 10 };
    // `MAKESYNC_BENCH_WORKER_USERS=20000` runs only the batches of that size.
    let only: Option<u64> = std::env::var("MAKESYNC_BENCH_WORKER_USERS")
        .ok()
        .and_then(|v| v.parse().ok());
    shapes
        .iter()
        .filter(|(members, _)| only.is_none_or(|only| only == *members))
        .enumerate()
        .map(|(batch, (members, memory_mb))| Batch {
            memory_mb: *memory_mb,
            organizations: (0..per_batch)
                .map(|n| {
                    let id = 9200 + 10 * batch as u64 + n;
                    let organization = add_organization(world, id, *members);
                    // Team access read too: 20 teams, every member in one, some in two.
                    world.add_generated_teams(id, TEAMS, id * 100);
                    organization
                })
                .collect(),
        })
        .collect()
}

/// moto's clients and address, shared by every batch.
struct Moto {
    sdk: aws_config::SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    endpoint: String,
}

pub async fn run(simulator: &Simulator, batches: &[Batch]) -> anyhow::Result<()> {
    let sdk = moto_sdk_config().await;
    let moto = Moto {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        endpoint: std::env::var(makesync_tests::aws::MOTO_ENDPOINT_ENV)?,
        sdk,
    };
    let baseline_kib = worker_baseline(&moto, simulator).await?;
    let mut rows = Vec::new();
    for batch in batches {
        rows.push(run_batch(&moto, simulator, batch, baseline_kib).await?);
    }
    print_table(
        &format!(
            "Worker: one SQS batch, the built function, stand-in Runtime API, DynamoDB on {} (baseline RSS after one empty batch: {})",
            crate::dynamodb_name(),
            mb(baseline_kib)
        ),
        &[
            "organizations × users",
            "function memory",
            "peak RSS",
            "RSS above baseline ÷ users in the batch",
            "duration",
            "batch item failures",
            "users written",
        ],
        &rows,
    );
    Ok(())
}

/// The worker's own footprint, in KiB: started, one empty batch, stopped.
async fn worker_baseline(moto: &Moto, simulator: &Simulator) -> anyhow::Result<u64> {
    let vars = create_resources(&moto.dynamodb, &moto.sqs).await;
    let env = function_env(&vars, &moto.endpoint, simulator);
    let runtime = FakeLambdaRuntime::start().await?;
    let child = start_function("makesync-worker", &runtime.api(), 256, &env)?;
    runtime
        .invoke(serde_json::json!({ "Records": [] }), TIMEOUT)
        .await
        .map_err(anyhow::Error::msg)?;
    stop(child).await
}

/// One batch through a fresh worker on fresh tables: its row of the table.
async fn run_batch(
    moto: &Moto,
    simulator: &Simulator,
    batch: &Batch,
    baseline_kib: u64,
) -> anyhow::Result<Vec<String>> {
    let vars = create_resources(&moto.dynamodb, &moto.sqs).await;
    let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let backend = AwsBackend::new(&moto.sdk, settings, clock.clone());
    let event = connect_batch(&backend, clock.as_ref(), batch).await?;

    let env = function_env(&vars, &moto.endpoint, simulator);
    let runtime = FakeLambdaRuntime::start().await?;
    let child = start_function("makesync-worker", &runtime.api(), batch.memory_mb, &env)?;
    runtime
        .first_poll(Duration::from_secs(60))
        .await
        .ok_or_else(|| anyhow::anyhow!("the worker did not start"))?;
    let started = Instant::now();
    let answer = runtime
        .invoke(serde_json::to_value(&event)?, TIMEOUT)
        .await
        .map_err(anyhow::Error::msg)?;
    let duration = started.elapsed();
    let peak_kib = stop(child).await?;
    let failures = match &answer {
        Invocation::Response(body) => body["batchItemFailures"]
            .as_array()
            .map_or(0, Vec::len)
            .to_string(),
        Invocation::Error { error_type, .. } => format!("invocation failed: {error_type}"),
    };
    let mut written = 0;
    for organization in &batch.organizations {
        let id = ConnectionId::parse(&format!("bench-{}", organization.id))?;
        written += backend.store.list_user_digests(&id).await?.len() as u64;
    }
    let expected: u64 = batch.organizations.iter().map(|o| o.members).sum();
    let per_user = (peak_kib.saturating_sub(baseline_kib) * 1024) as f64 / expected as f64;
    Ok(vec![
        format!(
            "{} × {}",
            batch.organizations.len(),
            batch.organizations[0].members
        ),
        format!("{} MB", batch.memory_mb),
        mb(peak_kib),
        format!("{per_user:.0} B"),
        secs(duration),
        failures,
        format!("{written} / {expected}"),
    ])
}

/// A connection (and its token) for each organization of the batch, and the SQS event that
/// asks for their syncs.
async fn connect_batch(
    backend: &AwsBackend,
    clock: &dyn Clock,
    batch: &Batch,
) -> anyhow::Result<SqsEvent> {
    let mut event = SqsEvent::default();
    for organization in &batch.organizations {
        let connection = Connection::new(
            ConnectionId::parse(&format!("bench-{}", organization.id))?,
            makesync::tenant::TenantId::parse("bench").expect("tenant id"),
            MakeHost::parse("eu1.make.com")?,
            OrganizationId::new(organization.id)?,
            clock.wall(),
        );
        backend
            .secrets
            .put_token(&connection.token_ref(), &ApiToken::parse(DEMO_TEAMS_TOKEN)?)
            .await?;
        backend.store.create_connection(&connection).await?;
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("message-{}", organization.id));
        message.body = Some(
            SyncRequest::new(connection.id.clone(), SyncReason::Scheduled, clock.wall()).to_body(),
        );
        event.records.push(message);
    }
    Ok(event)
}

/// The environment the template gives the functions, pointed at moto and the simulator.
pub fn function_env(
    vars: &std::collections::HashMap<String, String>,
    moto: &str,
    simulator: &Simulator,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.push(("AWS_ENDPOINT_URL".into(), moto.to_string()));
    env.push(("MAKESYNC_API_BASE_URL".into(), simulator.base_url()));
    env
}
