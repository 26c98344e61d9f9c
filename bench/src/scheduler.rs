//! The scheduler's fan-out rate beside a plain loop of the same SDK calls.
//!
//! moto's SQS slows down as its queue fills, so each side sends to a queue of its own that is
//! empty when it starts, and both send the same number of messages: the difference between
//! the two is the scheduler's own cost (scanning the connections table, building the
//! requests), not moto's.

use crate::{print_table, secs};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::ConnectionStore;
use makesync::queue::SyncRequest;
use makesync::run::SyncReason;
use makesync_tests::aws::{create_queue, create_resources, moto_sdk_config};
use std::sync::Arc;
use std::time::Instant;

pub async fn run(connections: u32) -> anyhow::Result<()> {
    let sdk = moto_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut vars = create_resources(&dynamodb, &sqs).await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned())?;
    let backend = AwsBackend::new(&sdk, settings, clock.clone());
    let ids = create_connections(&backend, clock.as_ref(), connections).await?;
    let plain = send_plainly(&sqs, clock.as_ref(), &ids).await?;

    // The scheduler, to a queue of its own.
    let queue = create_queue(&sqs, &format!("bench-scheduler-{}", std::process::id())).await;
    vars.insert("MAKESYNC_QUEUE_URL".into(), queue);
    let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned())?;
    let backend = AwsBackend::new(&sdk, settings, clock.clone());
    let scheduler = makesync_scheduler::scheduler_for(
        &backend,
        makesync::make::MakeApi::new(makesync::make::MakeApiConfig::default(), clock.clone())?,
        clock,
        Arc::new(makesync::metrics::NoMetrics),
    )?;
    let started = Instant::now();
    let summary = scheduler.fan_out().await?;
    let fan_out = started.elapsed();
    anyhow::ensure!(
        summary.enqueued == connections && summary.failed == 0,
        "the scheduler enqueued {} of {connections}",
        summary.enqueued
    );

    let rate = |elapsed: std::time::Duration| {
        format!("{:.0} /s", f64::from(connections) / elapsed.as_secs_f64())
    };
    print_table(
        &format!(
            "Scheduler fan-out of {connections} connections, DynamoDB on {}, SQS on moto (each to an empty queue of its own)",
            crate::dynamodb_name()
        ),
        &["what", "time", "messages per second"],
        &[
            vec![
                "plain loop: SendMessageBatch × 10, one at a time".into(),
                secs(plain),
                rate(plain),
            ],
            vec![
                "scheduler: Scan + SendMessageBatch × 10, 8 in flight".into(),
                secs(fan_out),
                rate(fan_out),
            ],
        ],
    );
    Ok(())
}

/// `count` connections in the table, their ids in order.
async fn create_connections(
    backend: &AwsBackend,
    clock: &dyn Clock,
    count: u32,
) -> anyhow::Result<Vec<ConnectionId>> {
    let host = MakeHost::parse("eu1.make.com")?;
    let mut ids = Vec::new();
    for n in 0..count {
        let id = ConnectionId::parse(&format!("fan-out-{n:05}"))?;
        let connection = Connection::new(
            id.clone(),
            makesync::tenant::TenantId::parse("bench").expect("tenant id"),
            host.clone(),
            OrganizationId::new(u64::from(n) + 1)?,
            clock.wall(),
        );
        backend.store.create_connection(&connection).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// The plain loop: the scheduler's SendMessageBatch calls, one after the other, to a queue of
/// its own; answers how long they took.
async fn send_plainly(
    sqs: &aws_sdk_sqs::Client,
    clock: &dyn Clock,
    ids: &[ConnectionId],
) -> anyhow::Result<std::time::Duration> {
    let queue = create_queue(sqs, &format!("bench-plain-{}", std::process::id())).await;
    let started = Instant::now();
    for chunk in ids.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(n, id)| {
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(
                        SyncRequest::new(id.clone(), SyncReason::Scheduled, clock.wall()).to_body(),
                    )
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(started.elapsed())
}
