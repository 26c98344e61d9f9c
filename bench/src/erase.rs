//! Erasure: a connection of many users marked `erasing`, its erase job run by the built worker
//! under the stand-in Lambda Runtime API on moto — each invocation with the template's 300 s
//! deadline, the continuations it queues fed back as new invocations — until the connection
//! is `erased`. Reports the time, the invocations and the user items left.

use crate::print_table;
use crate::process::{start_function, stop};
use crate::secs;
use crate::worker::function_env;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::connection::{Connection, ConnectionId, ConnectionStatus};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, UserStore, WriteStamp};
use makesync::queue::SyncRequest;
use makesync::run::SyncReason;
use makesync::user::{UserRecord, UserStatus};
use makesync_simulator::lambda_runtime::FakeLambdaRuntime;
use makesync_simulator::Simulator;
use makesync_tests::aws::{create_resources, moto_sdk_config};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker's timeout in the template.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Invocations before the benchmark gives up.
const MAX_INVOCATIONS: u32 = 50;

pub async fn run(simulator: &Simulator, users: u64) -> anyhow::Result<()> {
    let sdk = moto_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let endpoint = std::env::var(makesync_tests::aws::MOTO_ENDPOINT_ENV)?;
    let vars = create_resources(&dynamodb, &sqs).await;
    let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned())?;
    let queue_url = settings.queue_url.clone().expect("a queue");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let backend = AwsBackend::new(&sdk, settings, clock.clone());

    let seeded = Instant::now();
    let connection = seed_erasing_connection(&backend, clock.as_ref(), users).await?;
    let seeding = seeded.elapsed();
    let request = SyncRequest::new(connection.id.clone(), SyncReason::Erase, clock.wall());
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(request.to_body())
        .send()
        .await?;

    let env = function_env(&vars, &endpoint, simulator);
    let runtime = FakeLambdaRuntime::start().await?;
    let child = start_function("makesync-worker", &runtime.api(), 256, &env)?;
    runtime
        .first_poll(Duration::from_secs(60))
        .await
        .ok_or_else(|| anyhow::anyhow!("the worker did not start"))?;
    let started = Instant::now();
    let (invocations, status) =
        erase_until_done(&runtime, &sqs, &queue_url, &backend, &connection.id).await?;
    let duration = started.elapsed();
    let peak_kib = stop(child).await?;
    let stored = backend.store.get_connection(&connection.id).await?;
    let left = backend.store.list_user_digests(&connection.id).await?.len();
    print_table(
        &format!(
            "Erasure: the built worker's erase job, DynamoDB on {}, 300 s per invocation, 256 MB",
            crate::dynamodb_name()
        ),
        &[
            "users",
            "seeding (not measured)",
            "erasure",
            "worker invocations",
            "status",
            "erasedUsers",
            "user items left",
            "peak RSS",
        ],
        &[vec![
            users.to_string(),
            secs(seeding),
            secs(duration),
            invocations.to_string(),
            status.as_str().to_string(),
            stored.map_or(0, |c| c.erased_users).to_string(),
            left.to_string(),
            crate::mb(peak_kib),
        ]],
    );
    Ok(())
}

/// A connection whose `users` users were synced, then disconnected with purge.
async fn seed_erasing_connection(
    backend: &AwsBackend,
    clock: &dyn Clock,
    users: u64,
) -> anyhow::Result<Connection> {
    let mut connection = Connection::new(
        ConnectionId::parse("bench-erase")?,
        makesync::tenant::TenantId::parse("bench")?,
        MakeHost::parse("eu1.make.com")?,
        OrganizationId::new(9900)?,
        clock.wall(),
    );
    connection.status = ConnectionStatus::Erasing;
    backend.store.create_connection(&connection).await?;
    let stamp = WriteStamp::new("bench-seed", clock.wall(), 0);
    let mut batch = Vec::with_capacity(1000);
    for n in 1..=users {
        batch.push(UserRecord {
            user_id: n,
            name: format!("User {n}"),
            email: format!("user{n}@erase.example"),
            role_id: 13,
            role_name: "Member".into(),
            role_identifier: None,
            role_management_type: None,
            status: UserStatus::Active,
            invitation: None,
            last_login: None,
            first_seen: clock.wall(),
            removed_at: None,
            teams: None,
        });
        if batch.len() == 1000 || n == users {
            backend
                .store
                .write_users(&connection.id, &stamp, &batch)
                .await?;
            batch.clear();
        }
    }
    Ok(connection)
}

/// Feeds the queue's messages to the worker, one invocation a batch, until the connection is
/// erased (or [`MAX_INVOCATIONS`]); answers the invocations and the status reached.
async fn erase_until_done(
    runtime: &FakeLambdaRuntime,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    backend: &AwsBackend,
    connection: &ConnectionId,
) -> anyhow::Result<(u32, ConnectionStatus)> {
    let mut invocations = 0;
    let mut status = ConnectionStatus::Erasing;
    while status != ConnectionStatus::Erased && invocations < MAX_INVOCATIONS {
        let messages = receive(sqs, queue_url).await?;
        if messages.is_empty() {
            anyhow::bail!("the erasure stopped with no message left on the queue");
        }
        let mut event = SqsEvent::default();
        event.records = messages;
        runtime
            .invoke(serde_json::to_value(&event)?, TIMEOUT)
            .await
            .map_err(anyhow::Error::msg)?;
        invocations += 1;
        status = backend
            .store
            .get_connection(connection)
            .await?
            .map_or(ConnectionStatus::Erased, |c| c.status);
    }
    Ok((invocations, status))
}

/// Takes the queue's messages (deleting them, as Lambda does for a batch that succeeded).
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<Vec<SqsMessage>> {
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await?;
    let mut messages = Vec::new();
    for message in output.messages() {
        if let Some(receipt) = message.receipt_handle() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await?;
        }
        let mut record = SqsMessage::default();
        record.message_id = message.message_id().map(str::to_string);
        record.body = message.body().map(str::to_string);
        record.event_source = Some("aws:sqs".into());
        messages.push(record);
    }
    Ok(messages)
}
