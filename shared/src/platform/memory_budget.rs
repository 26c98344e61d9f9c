//! How many syncs one process runs at once, by the memory they are expected to need.
//!
//! A Lambda that outgrows its memory is killed with its whole batch, and SQS then delivers the
//! small organizations again with the large one. So the worker gives each sync a share of a
//! budget taken from the function's memory size, sized from how many users the connection
//! held last time (unknown: assumed large), and a sync that does not fit waits for others to
//! finish. A sync whose answers turn out larger than its share grows it while the budget has
//! memory free ([`MemoryShare::try_grow`]), and is refused more when it has none: an
//! organization that grew, or a host that answers far more than it should, takes memory from
//! the budget like any sync, never past it.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one sync is expected to hold per user at its peak: the compact snapshot member, the
/// stored digest, and its share of the page bodies being read. Measured at ~360 bytes with
/// `bench/` (see docs/benchmarks.md); rounded up for head room.
pub const BYTES_PER_USER: u64 = 600;
/// What one sync holds whatever its size: HTTP buffers, a chunk of records being written.
pub const BYTES_PER_SYNC: u64 = 4 * 1024 * 1024;
/// The process itself (runtime, SDK clients, TLS), kept out of the budget.
pub const PROCESS_BASELINE: u64 = 48 * 1024 * 1024;
/// The share of the function's memory the budget may plan with; the rest absorbs allocator
/// fragmentation and estimates that were short.
pub const USABLE_PERCENT: u64 = 70;

/// The budget is counted in KiB so that it fits a semaphore's permits.
const UNIT: u64 = 1024;

/// What a function of `memory_mb` MB may plan with: [`USABLE_PERCENT`] of it, less the
/// process itself, and never less than one sync's fixed part.
pub fn usable_memory(memory_mb: u64) -> u64 {
    let memory = memory_mb.saturating_mul(1024 * 1024);
    (memory / 100 * USABLE_PERCENT)
        .saturating_sub(PROCESS_BASELINE)
        .max(BYTES_PER_SYNC)
}

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    assumed_users: u32,
}

/// A sync's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct MemoryShare {
    /// The budget it is taken from; `None` when there is none (outside Lambda).
    budget: Option<Arc<Semaphore>>,
    permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

impl MemoryShare {
    /// The bytes the share holds; `u64::MAX` for a share of no budget.
    pub fn bytes(&self) -> u64 {
        match &self.budget {
            None => u64::MAX,
            Some(_) => self
                .lock()
                .as_ref()
                .map_or(0, |p| p.num_permits() as u64 * UNIT),
        }
    }

    /// Takes `bytes` more from the budget at once, if it has them free (no waiting: a sync
    /// that waited for memory while holding some could wait on another doing the same).
    pub fn try_grow(&self, bytes: u64) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        match budget.clone().try_acquire_many_owned(units) {
            Ok(more) => {
                let mut held = self.lock();
                match held.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => *held = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.permit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryBudget {
    /// The budget of a function with `memory_mb` MB; `assumed_users` stands in for a
    /// connection that has never been synced.
    pub fn for_function(memory_mb: u32, assumed_users: u32) -> Self {
        let usable = usable_memory(u64::from(memory_mb));
        let total_units = u32::try_from(usable / UNIT).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            assumed_users,
        }
    }

    /// The bytes the budget plans with.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// What a sync of a connection that last held `users` users is expected to need, never
    /// more than the whole budget (such a sync runs alone).
    pub fn cost_bytes(&self, users: Option<u32>) -> u64 {
        let users = u64::from(users.unwrap_or(self.assumed_users));
        (users * BYTES_PER_USER + BYTES_PER_SYNC).min(self.total_bytes())
    }

    /// Waits up to `patience` for the share a sync of `users` users needs. `None` if it did
    /// not free up in time.
    pub async fn reserve(&self, users: Option<u32>, patience: Duration) -> Option<MemoryShare> {
        let units = self.cost_bytes(users).div_ceil(UNIT) as u32;
        let acquire = self.permits.clone().acquire_many_owned(units.max(1));
        match tokio::time::timeout(patience, acquire).await {
            Ok(Ok(permit)) => Some(MemoryShare {
                budget: Some(self.permits.clone()),
                permit: std::sync::Mutex::new(Some(permit)),
            }),
            _ => None,
        }
    }

    /// A share that reserves nothing (no budget is set, outside Lambda).
    pub fn unlimited() -> MemoryShare {
        MemoryShare {
            budget: None,
            permit: std::sync::Mutex::new(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_function_memory_and_caps_a_single_sync() {
        let small = MemoryBudget::for_function(256, 20_000);
        let large = MemoryBudget::for_function(1024, 20_000);
        assert!(small.total_bytes() < 256 * 1024 * 1024 * USABLE_PERCENT / 100);
        assert!(large.total_bytes() > 4 * small.total_bytes());
        assert_eq!(small.cost_bytes(Some(0)), BYTES_PER_SYNC);
        assert_eq!(
            small.cost_bytes(None),
            small.cost_bytes(Some(20_000)),
            "unknown is assumed large"
        );
        assert_eq!(small.cost_bytes(Some(10_000_000)), small.total_bytes());
    }

    #[tokio::test]
    async fn a_share_grows_while_the_budget_has_memory_free_and_gives_it_all_back() {
        let budget = MemoryBudget::for_function(256, 20_000);
        let total = budget.total_bytes();
        let share = budget.reserve(Some(0), Duration::ZERO).await.unwrap();
        assert_eq!(share.bytes(), BYTES_PER_SYNC);
        assert!(share.try_grow(total / 2));
        assert!(!share.try_grow(total), "never past the budget");
        let other = budget.reserve(Some(0), Duration::ZERO).await;
        assert!(other.is_some(), "what is left is others'");
        drop(other);
        drop(share);
        assert!(
            budget
                .reserve(Some(u32::MAX), Duration::ZERO)
                .await
                .is_some(),
            "all of it given back"
        );
        assert!(MemoryBudget::unlimited().try_grow(u64::MAX));
    }

    #[tokio::test]
    async fn a_sync_that_does_not_fit_waits_until_a_share_is_given_back() {
        let budget = MemoryBudget::for_function(256, 20_000);
        let half = (budget.total_bytes() / 2 / BYTES_PER_USER) as u32;
        let first = budget.reserve(Some(half), Duration::ZERO).await.unwrap();
        let second = budget.reserve(Some(half), Duration::ZERO).await;
        assert!(
            second.is_none(),
            "two halves and two syncs' overhead do not fit"
        );
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(Some(half), Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.unwrap().is_some());
    }
}
