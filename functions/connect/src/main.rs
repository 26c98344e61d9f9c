use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync_lambda::limit_allocator_arenas();
    makesync::telemetry::init_json();
    let service = makesync_lambda::init_or_report(makesync_connect::build_service().await).await?;
    let service = &service;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(makesync_connect::handle(service, event.payload).await)
        },
    ))
    .await
}
