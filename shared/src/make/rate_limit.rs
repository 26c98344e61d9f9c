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

/// The organization's share of requests per minute, kept as a sliding log of when each
/// request was (or is to be) sent: a request goes at once while fewer than `per_minute` were
/// sent in the last 60 s, and otherwise waits until the oldest of those is 60 s old. So a sync
/// that needs a small part of its share never waits — the whole share is there at once, as
/// soon as the organization's plan is known — and no 60-second window ever holds more than the
/// share. The log holds at most `per_minute` times.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    per_minute: u32,
    /// Send times within the last minute (or reserved ahead), in order.
    sent: std::collections::VecDeque<Duration>,
    blocked_until: Duration,
}

/// The window a share is counted in.
const WINDOW: Duration = Duration::from_secs(60);

impl RequestBudget {
    pub fn per_minute(per_minute: u32, _now: Duration) -> Self {
        Self {
            per_minute: per_minute.max(2),
            sent: std::collections::VecDeque::new(),
            blocked_until: Duration::ZERO,
        }
    }

    pub fn limit_per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Changes the share (once the organization's `apiLimit` is known), keeping what was sent.
    pub fn set_per_minute(&mut self, per_minute: u32, now: Duration) {
        self.per_minute = per_minute.max(2);
        self.forget_before(now);
    }

    /// Takes one request's place and says how long to wait before sending it.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        self.forget_before(now);
        let mut at = now.max(self.blocked_until);
        // Never before a request reserved earlier: the log stays in order, and any 60 s
        // window is bounded by the one check below.
        if let Some(last) = self.sent.back() {
            at = at.max(*last);
        }
        let share = self.per_minute as usize;
        if self.sent.len() >= share {
            let oldest_in_window = self.sent[self.sent.len() - share];
            at = at.max(oldest_in_window.saturating_add(WINDOW));
        }
        self.sent.push_back(at);
        at.saturating_sub(now)
    }

    /// Gives back a reservation that was not used (the request was not sent): the one
    /// [`reserve`](Self::reserve) made at `at` (its `now` plus the wait it said), not whichever
    /// is last — another request may have reserved after it.
    pub fn unreserve(&mut self, at: Duration) {
        if let Some(index) = self.sent.iter().rposition(|sent| *sent == at) {
            self.sent.remove(index);
        }
    }

    /// Make said the window is spent: send nothing until it resets.
    pub fn observe(&mut self, headers: &RateLimitHeaders, now: Duration) {
        if headers.remaining == Some(0) {
            if let Some(reset) = headers.reset_after {
                self.blocked_until = self.blocked_until.max(now.saturating_add(reset));
            }
        }
    }

    /// Nothing sent in the last minute and no window to wait out: forgetting this budget loses
    /// nothing.
    pub fn is_idle(&mut self, now: Duration) -> bool {
        self.forget_before(now);
        self.sent.is_empty() && self.blocked_until <= now
    }

    /// Drops the sends that no window from `now` on can hold, and what is past the share.
    fn forget_before(&mut self, now: Duration) {
        while self
            .sent
            .front()
            .is_some_and(|t| t.saturating_add(WINDOW) <= now)
        {
            self.sent.pop_front();
        }
        while self.sent.len() > self.per_minute as usize {
            self.sent.pop_front();
        }
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
            for i in 0..(per_minute * 3) {
                // Sent one after another, and now and then after a pause.
                if i % 7 == 0 {
                    now += Duration::from_millis(1_300);
                }
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

    /// A sync that needs a small part of its share sends at once: 24 requests of a 500 a
    /// minute share (an Enterprise plan's 1000, half of it) wait for nothing, and the share
    /// holds again from the 501st.
    #[test]
    fn a_small_part_of_the_share_is_sent_without_waiting() {
        let mut budget = RequestBudget::per_minute(500, Duration::ZERO);
        for _ in 0..24 {
            assert_eq!(budget.reserve(Duration::from_millis(5)), Duration::ZERO);
        }
        for _ in 24..500 {
            assert_eq!(budget.reserve(Duration::from_millis(5)), Duration::ZERO);
        }
        assert_eq!(
            budget.reserve(Duration::from_millis(5)),
            Duration::from_secs(60),
            "the 501st waits until the first is a minute old"
        );
    }

    /// Raising the share once the plan is known keeps what was sent in the window.
    #[test]
    fn a_share_raised_mid_window_still_counts_what_was_sent() {
        let mut budget = RequestBudget::per_minute(30, Duration::ZERO);
        for _ in 0..30 {
            assert_eq!(budget.reserve(Duration::ZERO), Duration::ZERO);
        }
        let wait = budget.reserve(Duration::ZERO);
        assert!(wait > Duration::ZERO);
        budget.unreserve(wait);
        budget.set_per_minute(40, Duration::from_secs(1));
        for _ in 0..10 {
            assert_eq!(budget.reserve(Duration::from_secs(1)), Duration::ZERO);
        }
        assert_eq!(
            budget.reserve(Duration::from_secs(1)),
            Duration::from_secs(59)
        );
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
