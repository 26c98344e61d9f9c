//! The AWS adapters behind the ports: DynamoDB for connections, users and sync runs, Secrets
//! Manager for tokens, SQS for sync requests, EventBridge for change events. Compiled with the
//! `aws` feature.
//!
//! Every client is built from one [`aws_config::SdkConfig`], loaded once per cold start by
//! [`load_sdk_config`]; it honours the standard AWS environment, `AWS_ENDPOINT_URL` included,
//! so the same binaries run against moto's server in tests.

mod backend;
mod dynamodb;
mod eventbridge;
mod item;
mod sdk_error;
mod secrets;
mod settings;
mod sqs;

pub use backend::AwsBackend;
pub use dynamodb::{DynamoStore, TENANT_INDEX};
pub use eventbridge::EventBridgePublisher;
pub use secrets::SecretsManagerStore;
pub use settings::{AwsSettings, SettingsError};
pub use sqs::SqsQueue;

/// The SDK configuration from the environment (region, credentials, endpoint).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
