use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync_lambda::limit_allocator_arenas();
    makesync::telemetry::init_json();
    let service = makesync_lambda::init_or_report(makesync_connect::build_service().await).await?;
    let service = &service;
    let clock = makesync::clock::SystemClock::default();
    let clock = &clock;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = makesync_lambda::deadline(&event.context, clock);
            Ok::<_, lambda_runtime::Error>(
                makesync_connect::handle_until(service, event.payload, Some(deadline)).await,
            )
        },
    ))
    .await
}
