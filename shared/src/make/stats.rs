//! What a client's requests cost: counts and waits, for the sync-run record and the
//! benchmark's time split.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Requests a client sent, for the sync-run record.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub(super) requests: AtomicU32,
    pub(super) retries: AtomicU32,
    rate_limit_waits: AtomicU32,
    rate_limit_wait_ms: std::sync::atomic::AtomicU64,
    /// Waited to stay within the organization's budget share (not for a 429), summed over
    /// requests, in µs.
    pub(super) budget_wait_us: std::sync::atomic::AtomicU64,
    /// Spent decoding answers, summed over requests, in µs.
    decode_us: std::sync::atomic::AtomicU64,
}

impl RequestStats {
    /// Waits for the organization's rate limit: to stay within its budget, or because Make
    /// answered 429 or 418.
    pub fn rate_limit_waits(&self) -> u32 {
        self.rate_limit_waits.load(Ordering::Relaxed)
    }

    pub fn rate_limit_wait(&self) -> Duration {
        Duration::from_millis(self.rate_limit_wait_ms.load(Ordering::Relaxed))
    }

    pub(super) fn waited_for_rate_limit(&self, wait: Duration) {
        self.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
        self.rate_limit_wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
    }

    /// Waited, summed over requests, to stay within the organization's budget share.
    pub fn budget_wait(&self) -> Duration {
        Duration::from_micros(self.budget_wait_us.load(Ordering::Relaxed))
    }

    /// Spent decoding Make's answers, summed over requests (CPU; a benchmark's time split).
    pub fn decoding(&self) -> Duration {
        Duration::from_micros(self.decode_us.load(Ordering::Relaxed))
    }

    pub(super) fn decoded_in(&self, spent: Duration) {
        self.decode_us
            .fetch_add(spent.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }
}
