//! A short-lived cache in front of a secret store.
//!
//! A warm worker container syncs the same connections again and again; reading the token from
//! Secrets Manager every time costs a call and money. The cache is short (minutes) so that a
//! token replaced by a reconnect (in another function's container) is picked up soon.

use crate::clock::Clock;
use crate::connection::ConnectionId;
use crate::ports::{SecretError, SecretStore};
use crate::token::ApiToken;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct CachedSecretStore {
    inner: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    entries: Mutex<HashMap<ConnectionId, (ApiToken, Duration)>>,
}

impl CachedSecretStore {
    pub fn new(inner: Arc<dyn SecretStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            inner,
            clock,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn invalidate(&self, connection: &ConnectionId) {
        self.lock().remove(connection);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, (ApiToken, Duration)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SecretStore for CachedSecretStore {
    async fn put_token(
        &self,
        connection: &ConnectionId,
        token: &ApiToken,
    ) -> Result<(), SecretError> {
        self.invalidate(connection);
        self.inner.put_token(connection, token).await
    }

    async fn get_fresh_token(&self, connection: &ConnectionId) -> Result<ApiToken, SecretError> {
        self.invalidate(connection);
        self.get_token(connection).await
    }

    async fn get_token(&self, connection: &ConnectionId) -> Result<ApiToken, SecretError> {
        let now = self.clock.monotonic();
        if let Some((token, fetched)) = self.lock().get(connection) {
            if now.saturating_sub(*fetched) < self.ttl {
                return Ok(token.clone());
            }
        }
        let token = self.inner.get_token(connection).await?;
        if !self.ttl.is_zero() {
            self.lock().insert(connection.clone(), (token.clone(), now));
        }
        Ok(token)
    }

    async fn delete_token(&self, connection: &ConnectionId) -> Result<(), SecretError> {
        self.invalidate(connection);
        self.inner.delete_token(connection).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemorySecrets;

    #[tokio::test]
    async fn tokens_are_reused_until_the_ttl_passes() {
        let clock = Arc::new(ManualClock::default());
        let backing = Arc::new(MemorySecrets::default());
        let id = ConnectionId::parse("c-1").unwrap();
        backing
            .put_token(&id, &ApiToken::parse("old").unwrap())
            .await
            .unwrap();
        let cache = CachedSecretStore::new(backing.clone(), clock.clone(), Duration::from_secs(60));
        assert_eq!(cache.get_token(&id).await.unwrap().expose(), "old");

        // Replaced behind the cache's back (another container's reconnect).
        backing
            .put_token(&id, &ApiToken::parse("new").unwrap())
            .await
            .unwrap();
        assert_eq!(cache.get_token(&id).await.unwrap().expose(), "old");
        clock.advance(Duration::from_secs(61));
        assert_eq!(cache.get_token(&id).await.unwrap().expose(), "new");

        cache.delete_token(&id).await.unwrap();
        assert_eq!(
            cache.get_token(&id).await.unwrap_err(),
            SecretError::NotFound(id.clone())
        );
    }
}
