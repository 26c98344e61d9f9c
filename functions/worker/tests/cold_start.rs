//! The worker's `bootstrap` under a stand-in Lambda Runtime API: a bad setting at cold start is
//! reported through `/runtime/init/error`, naming the variable.

use makesync_simulator::lambda_runtime::FakeLambdaRuntime;
use std::time::Duration;

#[tokio::test]
async fn a_bad_setting_at_cold_start_is_an_init_error_naming_the_variable() {
    let runtime = FakeLambdaRuntime::start().await.unwrap();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync-worker"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "makesync-worker")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-east-1")
        .env("MAKESYNC_RUN_RETENTION_DAYS", "forever")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let error = runtime
        .init_error(Duration::from_secs(30))
        .await
        .expect("an init error was reported");
    assert_eq!(error.error_type, "InvalidConfiguration");
    assert_eq!(error.body["errorType"], "InvalidConfiguration");
    let message = error.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("MAKESYNC_RUN_RETENTION_DAYS"), "{message}");
    let status = tokio::time::timeout(Duration::from_secs(30), process.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(!status.success());
}

/// A Make address off this machine would receive every tenant's token: the function does not
/// start, and says which variable to fix.
#[tokio::test]
async fn an_api_base_url_off_this_machine_is_an_init_error_naming_the_variable() {
    let runtime = FakeLambdaRuntime::start().await.unwrap();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync-worker"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "makesync-worker")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-east-1")
        .env("MAKESYNC_API_BASE_URL", "https://collector.example")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let error = runtime
        .init_error(Duration::from_secs(30))
        .await
        .expect("an init error was reported");
    assert_eq!(error.error_type, "InvalidConfiguration");
    let message = error.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("MAKESYNC_API_BASE_URL"), "{message}");
    assert!(message.contains("loopback"), "{message}");
    let status = tokio::time::timeout(Duration::from_secs(30), process.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(!status.success());
}
