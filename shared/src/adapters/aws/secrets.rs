//! Make tokens in AWS Secrets Manager: one secret per token version of a connection, named
//! `{prefix}{connection id}/{version}` (`{prefix}{connection id}` for connections made before
//! token versions), holding `{"token": "..."}`, encrypted with the customer's KMS key when one
//! is configured. A reconnect creates a new secret and deletes the one before without a
//! recovery window, so an old token is not kept readable (as `AWSPREVIOUS` would be).
//!
//! Secret names may not contain `:`, which connection ids may; it is written as `+`, which
//! connection ids may not contain, so two ids never share a secret.

use super::sdk_error::classify;
use crate::connection::TokenRef;
use crate::ports::{SecretError, SecretStore};
use crate::token::ApiToken;
use async_trait::async_trait;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
    /// The customer managed KMS key new secrets are encrypted with; Secrets Manager's own key
    /// (`aws/secretsmanager`) when `None`.
    kms_key_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SecretBody {
    token: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: impl Into<String>, kms_key_id: Option<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            kms_key_id,
        }
    }

    /// The secret's name for a token version.
    pub fn secret_name(&self, secret: &TokenRef) -> String {
        format!("{}{}", self.prefix, secret.path().replace(':', "+"))
    }
}

fn failure(failure: super::sdk_error::AwsFailure) -> SecretError {
    if failure.transient {
        SecretError::Unavailable(format!("Secrets Manager: {}", failure.description))
    } else {
        SecretError::Refused(format!("Secrets Manager: {}", failure.description))
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        let name = self.secret_name(secret);
        let connection = &secret.connection_id;
        let body = serde_json::to_string(&SecretBody {
            token: token.expose().to_string(),
        })
        .expect("a secret body serialises");
        let created = self
            .client
            .create_secret()
            .name(&name)
            .description(format!(
                "Make API token of makesync connection {connection}"
            ))
            .tags(
                Tag::builder()
                    .key("makesync:connection-id")
                    .value(connection.as_str())
                    .build(),
            )
            .secret_string(&body)
            .set_kms_key_id(self.kms_key_id.clone())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Every token version has a name of its own: an existing name is a version
            // stored already (a retried request), never one to overwrite.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                Err(SecretError::Refused(format!(
                    "Secrets Manager: a secret named {name} exists already"
                )))
            }
            Err(error) => Err(failure(classify(&error))),
        }
    }

    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(secret))
            .send()
            .await;
        let output = match output {
            Ok(output) => output,
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_resource_not_found_exception()
                        // Marked for deletion: gone as far as a sync is concerned.
                        || e.is_invalid_request_exception()
                }) =>
            {
                return Err(SecretError::NotFound(secret.clone()))
            }
            Err(error) => return Err(failure(classify(&error))),
        };
        let body: SecretBody = output
            .secret_string()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| SecretError::Malformed(secret.clone()))?;
        ApiToken::parse(&body.token).map_err(|_| SecretError::Malformed(secret.clone()))
    }

    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        let deleted = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(secret))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Err(SecretError::NotFound(secret.clone()))
            }
            Err(error) => Err(failure(classify(&error))),
        }
    }
}
