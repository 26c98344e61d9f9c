//! The adapters a function needs, built once per cold start from one SDK configuration.

use super::{AwsSettings, DynamoStore, EventBridgePublisher, SecretsManagerStore, SqsQueue};
use crate::clock::Clock;
use crate::ports::SecretStore;
use crate::secret_cache::CachedSecretStore;
use std::sync::Arc;

#[derive(Clone)]
pub struct AwsBackend {
    pub settings: AwsSettings,
    /// Connections, users and sync runs.
    pub store: Arc<DynamoStore>,
    /// Tokens, straight from Secrets Manager.
    pub secrets: Arc<SecretsManagerStore>,
    /// Tokens through a short cache, for the worker.
    pub cached_secrets: Arc<dyn SecretStore>,
    /// Present when `MAKESYNC_QUEUE_URL` is set.
    pub queue: Option<Arc<SqsQueue>>,
    /// Present when `MAKESYNC_EVENT_BUS` is set.
    pub events: Option<Arc<EventBridgePublisher>>,
}

impl AwsBackend {
    pub fn new(sdk: &aws_config::SdkConfig, settings: AwsSettings, clock: Arc<dyn Clock>) -> Self {
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &settings,
        ));
        let secrets = Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            settings.secret_prefix.clone(),
            settings.secrets_kms_key.clone(),
        ));
        let cached_secrets: Arc<dyn SecretStore> = Arc::new(CachedSecretStore::new(
            secrets.clone(),
            clock,
            settings.secret_cache_ttl,
        ));
        let queue = settings
            .queue_url
            .clone()
            .map(|url| Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)));
        let events = settings.event_bus.clone().map(|bus| {
            Arc::new(EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(sdk),
                bus,
            ))
        });
        Self {
            settings,
            store,
            secrets,
            cached_secrets,
            queue,
            events,
        }
    }
}
