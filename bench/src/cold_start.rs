//! Each function's cold start: from the process starting to its first request for an event
//! (settings read, SDK configuration loaded, clients built).

use crate::process::{binary_path, start_function, stop};
use crate::worker::function_env;
use crate::{mb, print_table};
use makesync_simulator::lambda_runtime::FakeLambdaRuntime;
use makesync_simulator::Simulator;
use makesync_tests::aws::{create_resources, moto_sdk_config};
use std::time::{Duration, Instant};

pub async fn run(simulator: &Simulator, times: usize) -> anyhow::Result<()> {
    let sdk = moto_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let vars = create_resources(&dynamodb, &sqs).await;
    let endpoint = std::env::var(makesync_tests::aws::MOTO_ENDPOINT_ENV)?;
    let mut env = function_env(&vars, &endpoint, simulator);
    // The events function needs its bus named; it does not call it before its first event.
    env.push(("MAKESYNC_EVENT_BUS".into(), "makesync-bench".into()));
    let mut rows = Vec::new();
    for function in [
        "makesync-scheduler",
        "makesync-worker",
        "makesync-connect",
        "makesync-events",
    ] {
        if !binary_path(function).exists() {
            // bench/run.sh builds every function, so only an earlier build measured with
            // MAKESYNC_BENCH_BIN_DIR can lack one: it predates that function.
            rows.push(vec![
                function.to_string(),
                "not in this build".into(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        let mut inits = Vec::new();
        let mut peak = 0;
        for _ in 0..times {
            let runtime = FakeLambdaRuntime::start().await?;
            let started = Instant::now();
            let child = start_function(function, &runtime.api(), 256, &env)?;
            let polled = runtime.first_poll(Duration::from_secs(60)).await;
            peak = peak.max(stop(child).await?);
            let polled =
                polled.ok_or_else(|| anyhow::anyhow!("{function} did not finish its init"))?;
            inits.push(polled.duration_since(started));
        }
        inits.sort();
        rows.push(vec![
            function.to_string(),
            format!("{:.1} ms", inits[inits.len() / 2].as_secs_f64() * 1000.0),
            format!("{:.1} ms", inits[inits.len() - 1].as_secs_f64() * 1000.0),
            mb(peak),
        ]);
    }
    print_table(
        &format!("Cold start: process start to first event request ({times} starts each)"),
        &["function", "median", "slowest", "RSS after init"],
        &rows,
    );
    Ok(())
}
