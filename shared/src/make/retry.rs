//! When to try a failed Make request again, and how long to wait first.

use std::time::Duration;

/// Exponential backoff with full jitter, bounded in attempts and in total time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Waiting for a retry never takes the request past this much time since its first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(90),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, given that `attempt` attempts failed: a server's
    /// hint (`Retry-After`) when there is one, otherwise a random wait in
    /// `[0, min(max_delay, base_delay * 2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32, server_hint: Option<Duration>) -> Duration {
        if let Some(hint) = server_hint {
            return hint;
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }

    /// Whether another attempt fits: attempts left, and the wait ends within `max_elapsed`.
    pub fn allows(&self, attempts_made: u32, elapsed: Duration, wait: Duration) -> bool {
        // Saturating: `wait` may be a server's hint of any size (`Retry-After: 18446744073709551615`).
        attempts_made < self.max_attempts && elapsed.saturating_add(wait) <= self.max_elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_its_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..12 {
            let ceiling = Duration::from_millis(500)
                .saturating_mul(1 << (attempt - 1))
                .min(Duration::from_secs(20));
            for _ in 0..50 {
                assert!(policy.delay(attempt, None) <= ceiling);
            }
        }
    }

    #[test]
    fn a_server_hint_wins() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn attempts_and_total_time_are_bounded() {
        let policy = RetryPolicy::default();
        assert!(policy.allows(1, Duration::ZERO, Duration::from_secs(1)));
        assert!(!policy.allows(5, Duration::ZERO, Duration::from_secs(1)));
        assert!(!policy.allows(1, Duration::from_secs(80), Duration::from_secs(11)));
        assert!(!policy.allows(1, Duration::from_secs(1), Duration::MAX));
    }
}
