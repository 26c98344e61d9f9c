//! The worker's `bootstrap` under a stand-in Lambda Runtime API: a bad setting at cold start is
//! reported through `/runtime/init/error`, naming the variable.

use makesync_simulator::lambda_runtime::FakeLambdaRuntime;
use std::time::Duration;

/// Starts the worker with `variable=value` on top of a Lambda environment; asserts that the
/// cold start is reported as `InvalidConfiguration` and that the process exits. Returns the
/// error message.
async fn init_error_for(variable: &str, value: &str) -> String {
    let runtime = FakeLambdaRuntime::start().await.unwrap();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync-worker"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "makesync-worker")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-east-1")
        .env(variable, value)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let error = runtime
        .init_error(Duration::from_secs(30))
        .await
        .expect("an init error was reported");
    assert_eq!(error.error_type, "InvalidConfiguration");
    assert_eq!(error.body["errorType"], "InvalidConfiguration");
    let status = tokio::time::timeout(Duration::from_secs(30), process.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(!status.success());
    error.body["errorMessage"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_bad_setting_at_cold_start_is_an_init_error_naming_the_variable() {
    let message = init_error_for("MAKESYNC_RUN_RETENTION_DAYS", "forever").await;
    assert!(message.contains("MAKESYNC_RUN_RETENTION_DAYS"), "{message}");
}

/// A Make address off this machine would receive every tenant's token: the function does not
/// start, and says which variable to fix.
#[tokio::test]
async fn an_api_base_url_off_this_machine_is_an_init_error_naming_the_variable() {
    let message = init_error_for("MAKESYNC_API_BASE_URL", "https://collector.example").await;
    assert!(message.contains("MAKESYNC_API_BASE_URL"), "{message}");
    assert!(message.contains("loopback"), "{message}");
}
