use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync_lambda::limit_allocator_arenas();
    makesync::telemetry::init_json();
    let announcer =
        makesync_lambda::init_or_report(makesync_events::build_announcer().await).await?;
    let announcer = &announcer;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(makesync_events::handle(announcer, event.payload).await)
    }))
    .await
}
