//! Make tokens in AWS Secrets Manager: one secret per connection, named
//! `{prefix}{connection id}`, holding `{"token": "..."}`.
//!
//! Secret names may not contain `:`, which connection ids may; it is written as `+`, which
//! connection ids may not contain, so two ids never share a secret.

use super::sdk_error::classify;
use crate::connection::ConnectionId;
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
}

#[derive(Serialize, Deserialize)]
struct SecretBody {
    token: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// The secret's name for a connection.
    pub fn secret_name(&self, connection: &ConnectionId) -> String {
        format!("{}{}", self.prefix, connection.as_str().replace(':', "+"))
    }

    async fn put_value(&self, name: &str, body: &str) -> Result<(), SecretError> {
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(body)
            .send()
            .await
            .map_err(|e| failure(classify(&e)))?;
        Ok(())
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
    async fn put_token(
        &self,
        connection: &ConnectionId,
        token: &ApiToken,
    ) -> Result<(), SecretError> {
        let name = self.secret_name(connection);
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
            .send()
            .await;
        let Err(error) = created else {
            return Ok(());
        };
        let exists = error
            .as_service_error()
            .is_some_and(|e| e.is_resource_exists_exception());
        if exists {
            return self.put_value(&name, &body).await;
        }
        // A secret deleted with a recovery window still holds its name: bring it back.
        let scheduled_for_deletion = error
            .as_service_error()
            .is_some_and(|e| e.is_invalid_request_exception());
        if scheduled_for_deletion {
            self.client
                .restore_secret()
                .secret_id(&name)
                .send()
                .await
                .map_err(|e| failure(classify(&e)))?;
            return self.put_value(&name, &body).await;
        }
        Err(failure(classify(&error)))
    }

    async fn get_token(&self, connection: &ConnectionId) -> Result<ApiToken, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(connection))
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
                return Err(SecretError::NotFound(connection.clone()))
            }
            Err(error) => return Err(failure(classify(&error))),
        };
        let body: SecretBody = output
            .secret_string()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| SecretError::Malformed(connection.clone()))?;
        ApiToken::parse(&body.token).map_err(|_| SecretError::Malformed(connection.clone()))
    }

    async fn delete_token(&self, connection: &ConnectionId) -> Result<(), SecretError> {
        let deleted = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(connection))
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
                Err(SecretError::NotFound(connection.clone()))
            }
            Err(error) => Err(failure(classify(&error))),
        }
    }
}
