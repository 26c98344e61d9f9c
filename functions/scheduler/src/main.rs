use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync_lambda::limit_allocator_arenas();
    makesync::telemetry::init_json();
    let scheduler =
        makesync_lambda::init_or_report(makesync_scheduler::build_scheduler().await).await?;
    let scheduler = &scheduler;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = makesync_lambda::deadline(&event.context, scheduler.clock().as_ref());
            makesync_scheduler::handle_until(scheduler, Some(deadline.monotonic)).await
        },
    ))
    .await
}
