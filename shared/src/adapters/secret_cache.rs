//! A short-lived cache in front of a secret store.
//!
//! A warm worker container syncs the same connections again and again; reading the token from
//! Secrets Manager every time costs a call and money. Entries are keyed by the token's secret
//! version ([`TokenRef`]): a reconnect stores its token under a new version and the connection
//! names it, so the worker reads the new token on its next sync whatever the cache holds. The
//! time limit only bounds how long a deleted token stays in a warm container's memory.

use crate::clock::Clock;
use crate::connection::TokenRef;
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
    entries: Mutex<HashMap<TokenRef, (ApiToken, Duration)>>,
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

    pub fn invalidate(&self, secret: &TokenRef) {
        self.lock().remove(secret);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenRef, (ApiToken, Duration)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SecretStore for CachedSecretStore {
    async fn put_token(&self, secret: &TokenRef, token: &ApiToken) -> Result<(), SecretError> {
        self.invalidate(secret);
        self.inner.put_token(secret, token).await
    }

    async fn get_fresh_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        self.invalidate(secret);
        self.get_token(secret).await
    }

    async fn get_token(&self, secret: &TokenRef) -> Result<ApiToken, SecretError> {
        let now = self.clock.monotonic();
        if let Some((token, fetched)) = self.lock().get(secret) {
            if now.saturating_sub(*fetched) < self.ttl {
                return Ok(token.clone());
            }
        }
        let token = self.inner.get_token(secret).await?;
        if !self.ttl.is_zero() {
            self.lock().insert(secret.clone(), (token.clone(), now));
        }
        Ok(token)
    }

    async fn delete_token(&self, secret: &TokenRef) -> Result<(), SecretError> {
        self.invalidate(secret);
        self.inner.delete_token(secret).await
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
        let id = crate::connection::ConnectionId::parse("c-1")
            .unwrap()
            .token_ref(None);
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
