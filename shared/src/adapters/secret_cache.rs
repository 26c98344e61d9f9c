//! A short-lived cache in front of a secret store.
//!
//! A warm worker container syncs the same connections again and again; reading the token from
//! Secrets Manager every time costs a call and money. Entries are keyed by the token's secret
//! version ([`TokenRef`]): a reconnect stores its token under a new version and the connection
//! names it, so the worker reads the new token on its next sync whatever the cache holds. The
//! time limit bounds how long any token stays in a warm container's memory: every read sweeps
//! out the entries past it (a rotated or deleted version nobody asks for again included), and
//! a token Make refused is dropped at once.

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

    /// How many tokens are held now.
    pub fn cached(&self) -> usize {
        self.lock().len()
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
        {
            let mut entries = self.lock();
            entries.retain(|_, (_, fetched)| now.saturating_sub(*fetched) < self.ttl);
            if let Some((token, _)) = entries.get(secret) {
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

    async fn forget_cached(&self, secret: &TokenRef) {
        self.invalidate(secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemorySecrets;

    /// F15: a version nobody asks for again (rotated, deleted) leaves the cache once its time
    /// is up, and a token Make refused leaves it at once.
    #[tokio::test]
    async fn no_token_outlives_the_ttl_and_a_refused_one_goes_at_once() {
        let clock = Arc::new(ManualClock::default());
        let backing = Arc::new(MemorySecrets::default());
        let secret = |id: &str| {
            crate::connection::ConnectionId::parse(id)
                .unwrap()
                .token_ref(Some("v1"))
        };
        let (a, b) = (secret("a"), secret("b"));
        for s in [&a, &b] {
            backing
                .put_token(s, &ApiToken::parse("t").unwrap())
                .await
                .unwrap();
        }
        let cache = CachedSecretStore::new(backing, clock.clone(), Duration::from_secs(60));
        cache.get_token(&a).await.unwrap();
        cache.get_token(&b).await.unwrap();
        assert_eq!(cache.cached(), 2);
        clock.advance(Duration::from_secs(61));
        cache.get_token(&b).await.unwrap();
        assert_eq!(cache.cached(), 1, "a's version is gone once its time is up");
        cache.forget_cached(&b).await;
        assert_eq!(cache.cached(), 0, "a refused token goes at once");
    }

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
