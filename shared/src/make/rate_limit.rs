//! Make's per-organization request budget: reading what Make says about it, and keeping a
//! sync under it.
//!
//! The budget (`license.apiLimit` requests per minute) is shared with everything else the
//! customer runs against the API, so a sync spends only a configured share of it.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use std::time::Duration;

/// What a response says about the rate limit. Parsed in one place; retry logic and the
/// budget read this, never the raw headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `Retry-After`, in seconds or as an HTTP date, turned into a wait from now.
    pub retry_after: Option<Duration>,
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset` (epoch seconds), turned into a wait from now.
    pub reset_after: Option<Duration>,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        Self {
            retry_after: text("retry-after").and_then(|value| parse_retry_after(value, now)),
            limit: text("x-ratelimit-limit").and_then(|v| v.parse().ok()),
            remaining: text("x-ratelimit-remaining").and_then(|v| v.parse().ok()),
            reset_after: text("x-ratelimit-reset")
                .and_then(|v| v.parse::<i64>().ok())
                .map(|epoch| wait_until_epoch(epoch, now)),
        }
    }

    /// How long to wait before retrying a 429: `Retry-After` first, then the window reset.
    pub fn wait_hint(&self) -> Option<Duration> {
        self.retry_after.or(self.reset_after)
    }
}

fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A time in the past is no wait; one past chrono's range is treated as now (no hint).
fn wait_until_epoch(epoch_seconds: i64, now: DateTime<Utc>) -> Duration {
    let at = DateTime::<Utc>::from_timestamp(epoch_seconds, 0).unwrap_or(now);
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// A token bucket that spaces requests so that no 60-second window holds more than
/// `per_minute` of them: a burst of a quarter of the budget, the rest spread evenly.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    per_minute: u32,
    capacity: f64,
    refill_per_second: f64,
    tokens: f64,
    last_refill: Duration,
    blocked_until: Duration,
}

impl RequestBudget {
    pub fn per_minute(per_minute: u32, now: Duration) -> Self {
        let (capacity, refill_per_second) = Self::shape(per_minute);
        Self {
            per_minute: per_minute.max(2),
            capacity,
            refill_per_second,
            tokens: capacity,
            last_refill: now,
            blocked_until: Duration::ZERO,
        }
    }

    fn shape(per_minute: u32) -> (f64, f64) {
        let per_minute = per_minute.max(2);
        let burst = (per_minute / 4).max(1);
        let spread = per_minute - burst;
        (f64::from(burst), f64::from(spread) / 60.0)
    }

    pub fn limit_per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Changes the rate (once the organization's `apiLimit` is known), keeping what was spent.
    pub fn set_per_minute(&mut self, per_minute: u32, now: Duration) {
        self.refill(now);
        let (capacity, refill_per_second) = Self::shape(per_minute);
        self.per_minute = per_minute.max(2);
        self.capacity = capacity;
        self.refill_per_second = refill_per_second;
        self.tokens = self.tokens.min(capacity);
    }

    /// Takes one request's worth and says how long to wait before sending it.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        let mut wait = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.refill_per_second)
        };
        if self.blocked_until > now {
            wait = wait.max(self.blocked_until - now);
        }
        wait
    }

    /// Gives back a reservation that was not used (the request was not sent).
    pub fn unreserve(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    /// Make said the window is spent: send nothing until it resets.
    pub fn observe(&mut self, headers: &RateLimitHeaders, now: Duration) {
        if headers.remaining == Some(0) {
            if let Some(reset) = headers.reset_after {
                self.blocked_until = self.blocked_until.max(now.saturating_add(reset));
            }
        }
    }

    /// Nothing spent left to refill and no window to wait out: forgetting this budget loses
    /// nothing.
    pub fn is_idle(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.tokens >= self.capacity && self.blocked_until <= now
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last_refill).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_second).min(self.capacity);
        self.last_refill = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy;
    use reqwest::header::HeaderValue;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = at("2026-11-22T10:00:00Z");
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            RateLimitHeaders::parse(&headers, now).retry_after,
            Some(Duration::from_secs(7))
        );
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 22 Nov 2026 10:00:30 GMT"),
        );
        assert_eq!(
            RateLimitHeaders::parse(&headers, now).retry_after,
            Some(Duration::from_secs(30))
        );
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(RateLimitHeaders::parse(&headers, now).retry_after, None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever a host sends as `Retry-After` and `X-RateLimit-Reset` — 0, u64::MAX,
        /// negative numbers, dates far in the past or future, garbage — reading it, deciding
        /// whether to wait for it and spending the budget never panic, and a hint beyond the
        /// retry budget is never waited for.
        #[test]
        fn no_server_hint_overflows(
            retry_after in proptest::prop_oneof![
                proptest::prelude::Just("18446744073709551615".to_string()),
                proptest::prelude::Just("0".to_string()),
                proptest::prelude::Just("-1".to_string()),
                proptest::prelude::Just("-9223372036854775808".to_string()),
                proptest::prelude::Just("Mon, 01 Jan 1900 00:00:00 GMT".to_string()),
                proptest::prelude::Just("Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
                proptest::prelude::any::<u64>().prop_map(|n| n.to_string()),
                proptest::prelude::any::<i64>().prop_map(|n| n.to_string()),
                "[ -~]{0,40}",
            ],
            reset in proptest::prop_oneof![
                proptest::prelude::Just(i64::MAX),
                proptest::prelude::Just(i64::MIN),
                proptest::prelude::Just(0),
                proptest::prelude::any::<i64>(),
            ],
            elapsed_ms in 0u64..10_000_000,
            now_ms in 0u64..u64::MAX / 2,
        ) {
            let now = at("2026-12-01T10:00:00Z");
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&retry_after) {
                headers.insert("retry-after", value);
            }
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            headers.insert("x-ratelimit-reset", HeaderValue::from_str(&reset.to_string()).unwrap());
            let parsed = RateLimitHeaders::parse(&headers, now);
            let policy = crate::make::RetryPolicy::default();
            let hint = parsed.wait_hint();
            let wait = policy.delay(1, hint);
            let allowed = policy.allows(1, Duration::from_millis(elapsed_ms), wait);
            if wait > policy.max_elapsed {
                proptest::prop_assert!(!allowed);
            }
            let mut budget = RequestBudget::per_minute(60, Duration::ZERO);
            let monotonic = Duration::from_millis(now_ms);
            budget.observe(&parsed, monotonic);
            let _ = budget.reserve(monotonic);
            let _ = budget.is_idle(monotonic);
        }
    }

    #[test]
    fn rate_limit_headers_are_read_together() {
        let now = at("2026-11-22T10:00:00Z");
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Limit", HeaderValue::from_static("60"));
        headers.insert("X-RateLimit-Remaining", HeaderValue::from_static("0"));
        let reset = (now.timestamp() + 42).to_string();
        headers.insert("X-RateLimit-Reset", HeaderValue::from_str(&reset).unwrap());
        let parsed = RateLimitHeaders::parse(&headers, now);
        assert_eq!(parsed.limit, Some(60));
        assert_eq!(parsed.remaining, Some(0));
        assert_eq!(parsed.reset_after, Some(Duration::from_secs(42)));
        assert_eq!(parsed.wait_hint(), Some(Duration::from_secs(42)));
    }

    #[test]
    fn no_sixty_second_window_holds_more_than_the_budget() {
        for per_minute in [2, 3, 30, 60, 500] {
            let mut budget = RequestBudget::per_minute(per_minute, Duration::ZERO);
            let mut now = Duration::ZERO;
            let mut sent = Vec::new();
            for _ in 0..(per_minute * 3) {
                now += budget.reserve(now);
                sent.push(now);
            }
            for (i, start) in sent.iter().enumerate() {
                let in_window = sent[i..]
                    .iter()
                    .take_while(|t| **t < *start + Duration::from_secs(60))
                    .count();
                assert!(
                    in_window <= per_minute as usize,
                    "{per_minute}/min: {in_window} requests in one minute"
                );
            }
        }
    }

    #[test]
    fn a_spent_window_blocks_until_its_reset() {
        let mut budget = RequestBudget::per_minute(60, Duration::ZERO);
        budget.observe(
            &RateLimitHeaders {
                remaining: Some(0),
                reset_after: Some(Duration::from_secs(20)),
                ..Default::default()
            },
            Duration::from_secs(1),
        );
        assert_eq!(
            budget.reserve(Duration::from_secs(1)),
            Duration::from_secs(20)
        );
    }
}
