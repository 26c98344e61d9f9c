use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    makesync_lambda::limit_allocator_arenas();
    makesync::telemetry::init_json();
    let worker = makesync_lambda::init_or_report(makesync_worker::build_worker().await).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        let worker = worker.clone();
        async move {
            let deadline = makesync_lambda::deadline(&event.context, worker.clock().as_ref());
            let response = makesync_worker::handle(&worker, event.payload, Some(deadline)).await;
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}
