//! Time, behind a trait so that waits can be tested without waiting.
//!
//! The Make client's backoff and rate limiter read the time and sleep only through [`Clock`].
//! [`SystemClock`] is the real one; [`ManualClock`] moves only when something sleeps on it or a
//! test advances it, and remembers every sleep, so a test can assert "waited 7 s for
//! Retry-After" in microseconds. The simulator can share a `ManualClock` with the client, so
//! its rate-limit windows move with the client's waits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[async_trait]
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary, fixed origin.
    fn monotonic(&self) -> Duration;
    /// Wall-clock time, for timestamps and HTTP dates.
    fn wall(&self) -> DateTime<Utc>;
    async fn sleep(&self, duration: Duration);
}

/// The real clock.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn wall(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that only moves when told to; every sleep returns at once and is recorded.
#[derive(Debug, Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    elapsed: Duration,
    wall_origin: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    pub fn starting_at(wall_origin: DateTime<Utc>) -> Self {
        Self {
            state: Arc::new(Mutex::new(ManualState {
                elapsed: Duration::ZERO,
                wall_origin,
                sleeps: Vec::new(),
            })),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.elapsed = state.elapsed.saturating_add(by);
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    pub fn total_slept(&self) -> Duration {
        self.lock().sleeps.iter().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic while holding this lock can only come from a test assertion; the state is
        // still consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::starting_at(Utc::now())
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        self.lock().elapsed
    }

    fn wall(&self) -> DateTime<Utc> {
        let state = self.lock();
        chrono::Duration::from_std(state.elapsed)
            .ok()
            .and_then(|elapsed| state.wall_origin.checked_add_signed(elapsed))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    async fn sleep(&self, duration: Duration) {
        let mut state = self.lock();
        state.elapsed = state.elapsed.saturating_add(duration);
        state.sleeps.push(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_moves_on_sleep_and_records_it() {
        let origin = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::starting_at(origin);
        clock.sleep(Duration::from_secs(7)).await;
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.monotonic(), Duration::from_secs(10));
        assert_eq!(clock.wall(), origin + chrono::Duration::seconds(10));
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(7)]);
    }
}
