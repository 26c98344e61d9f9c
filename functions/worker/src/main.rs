use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync::telemetry::init_json();
    let worker = makesync_worker::build_worker().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        let worker = worker.clone();
        async move {
            Ok::<_, lambda_runtime::Error>(makesync_worker::handle(&worker, event.payload).await)
        }
    }))
    .await
}
