//! What one client's reads hold of memory, counted as the answers arrive.
//!
//! A client reads for one sync (or one listing), and everything its lists hold is counted
//! here, together: bodies being read, pages read and not yet taken, and the lists' rows
//! (their answers' bytes and each row's own size). The count is bounded by
//! [`MakeApiConfig::max_read_bytes`](super::MakeApiConfig::max_read_bytes) and, in the worker,
//! by the sync's share of the function's memory, which it grows while the budget has memory
//! free ([`MemoryShare::try_grow`]): a host that answers far more than it should gets its own
//! sync refused, never the function's memory exhausted.
//!
//! Several answers are read at once — the pages of a list, the member lists of several teams
//! — and taken in order ([`Turns`]). Past the bound, an answer that is not the next to be
//! taken waits for its turn and is read again then; the next one is refused, which ends the
//! read with an error that says why. So ordinary pages are read all at once, and large ones
//! one after another.

use crate::memory_budget::MemoryShare;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// A share is grown by at least this much at a time.
const GROW_STEP: u64 = 4 * 1024 * 1024;

/// Why an answer may not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The reads would hold more than the client's bound, in bytes.
    PastBound(u64),
    /// The function's memory budget has none free for this sync to grow into.
    NoMemoryFree,
}

/// The bytes a client's reads hold.
#[derive(Debug)]
pub struct ReadBudget {
    bound: u64,
    held: AtomicU64,
    share: Option<Arc<MemoryShare>>,
    /// What the share covers now.
    granted: Mutex<u64>,
}

impl ReadBudget {
    /// Reads bounded by `bound` bytes, and by `share` (grown as needed) if there is one.
    pub fn new(bound: u64, share: Option<Arc<MemoryShare>>) -> Self {
        let granted = share.as_ref().map_or(u64::MAX, |share| share.bytes());
        Self {
            bound,
            held: AtomicU64::new(0),
            share,
            granted: Mutex::new(granted),
        }
    }

    /// Counts `bytes` more, if the bound and the share allow.
    pub fn take(&self, bytes: u64) -> Result<(), Refusal> {
        let held = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if held > self.bound {
            self.give_back(bytes);
            return Err(Refusal::PastBound(self.bound));
        }
        if let Some(share) = &self.share {
            let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
            if held > *granted {
                let more = (held - *granted).max(GROW_STEP);
                if !share.try_grow(more) {
                    drop(granted);
                    self.give_back(bytes);
                    return Err(Refusal::NoMemoryFree);
                }
                *granted = granted.saturating_add(more);
            }
        }
        Ok(())
    }

    pub fn give_back(&self, bytes: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

/// Bytes counted on a [`ReadBudget`], given back when dropped unless kept: the answers of a
/// read that ended, or was read again.
#[derive(Debug)]
pub struct Counted {
    budget: Arc<ReadBudget>,
    bytes: u64,
}

impl Counted {
    pub fn none(budget: &Arc<ReadBudget>) -> Self {
        Self {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Takes `more` bytes into this count, if the budget allows.
    pub fn take(&mut self, more: u64) -> Result<(), Refusal> {
        self.budget.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Adds another count to this one.
    pub fn join(&mut self, mut other: Counted) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// What is held stays counted for the client's life (the sync's).
    pub fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// The order in which answers read at once are taken: the next may always be read.
#[derive(Debug)]
pub struct Turns {
    next: watch::Sender<usize>,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            next: watch::Sender::new(0),
        }
    }
}

impl Turns {
    pub fn is_next(&self, item: usize) -> bool {
        item <= *self.next.borrow()
    }

    /// Item `item` was taken: the one after it is next.
    pub fn taken(&self, item: usize) {
        self.next.send_modify(|next| *next = (*next).max(item + 1));
    }

    /// Waits until `item` is the next to be taken.
    pub async fn turn_of(&self, item: usize) {
        let mut next = self.next.subscribe();
        let _ = next.wait_for(|next| *next >= item).await;
    }
}

/// An answer's claim: the budget it is counted on, the turns of its read, its place in them.
#[derive(Debug, Clone, Copy)]
pub struct Allowance<'a> {
    pub budget: &'a Arc<ReadBudget>,
    pub turns: &'a Turns,
    pub item: usize,
}

/// What became of an answer's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Taken,
    /// Not the next to be taken: wait for its turn, and read it again then.
    PutOff,
    /// The next to be taken, and still refused.
    Refused(Refusal),
}

impl Allowance<'_> {
    /// Counts `bytes` more of this answer into `counted`.
    pub fn claim(&self, counted: &mut Counted, bytes: u64) -> Claim {
        match counted.take(bytes) {
            Ok(()) => Claim::Taken,
            Err(_) if !self.turns.is_next(self.item) => Claim::PutOff,
            Err(refusal) => Claim::Refused(refusal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_budget::MemoryBudget;

    #[test]
    fn past_the_bound_an_answer_waits_for_its_turn_and_the_next_one_is_refused() {
        let budget = Arc::new(ReadBudget::new(100, None));
        let turns = Turns::default();
        let claim = |item, bytes| {
            let mut counted = Counted::none(&budget);
            let claim = Allowance {
                budget: &budget,
                turns: &turns,
                item,
            }
            .claim(&mut counted, bytes);
            counted.keep();
            claim
        };
        assert_eq!(claim(1, 60), Claim::Taken);
        assert_eq!(claim(2, 40), Claim::Taken);
        assert_eq!(claim(3, 1), Claim::PutOff);
        assert_eq!(claim(0, 1), Claim::Refused(Refusal::PastBound(100)));
        assert_eq!(budget.held(), 100, "a refusal counts nothing");
        turns.taken(0);
        assert!(turns.is_next(1) && !turns.is_next(2));
    }

    #[test]
    fn counted_bytes_are_given_back_when_dropped_unless_kept() {
        let budget = Arc::new(ReadBudget::new(1_000, None));
        let mut kept = Counted::none(&budget);
        kept.take(300).unwrap();
        let mut dropped = Counted::none(&budget);
        dropped.take(200).unwrap();
        kept.join(dropped);
        assert_eq!(budget.held(), 500);
        let mut dropped = Counted::none(&budget);
        dropped.take(100).unwrap();
        drop(dropped);
        assert_eq!(budget.held(), 500);
        kept.keep();
        assert_eq!(budget.held(), 500, "kept for the client's life");
    }

    #[tokio::test]
    async fn reads_grow_the_sync_s_share_while_memory_is_free_never_past_it() {
        let memory = MemoryBudget::for_function(256, 20_000);
        let total = memory.total_bytes();
        let share = Arc::new(
            memory
                .reserve(Some(0), std::time::Duration::ZERO)
                .await
                .unwrap(),
        );
        let budget = ReadBudget::new(u64::MAX, Some(share.clone()));
        budget.take(share.bytes()).unwrap();
        budget.take(total / 2).unwrap();
        assert!(share.bytes() > total / 2, "grown");
        let other = memory
            .reserve(Some(u32::MAX), std::time::Duration::ZERO)
            .await;
        assert!(
            other.is_none(),
            "what the read grew into is not another sync's"
        );
        assert_eq!(budget.take(total), Err(Refusal::NoMemoryFree));
    }

    #[tokio::test]
    async fn an_answer_waits_for_its_turn_until_the_one_before_is_taken() {
        use futures_util::FutureExt;
        let turns = Turns::default();
        let waiting = turns.turn_of(2);
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
        turns.taken(0);
        assert!(waiting.as_mut().now_or_never().is_none());
        turns.taken(1);
        assert!(waiting.as_mut().now_or_never().is_some());
    }
}
