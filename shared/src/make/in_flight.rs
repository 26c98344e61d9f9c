//! The answers a read holds at once, bounded in bytes rather than in requests.
//!
//! A read asks several things at once — the pages of one list, or the member lists of several
//! teams — and takes them in order. What they hold meanwhile (bodies being read, and what was
//! read but not yet taken) is counted here against a budget of bytes: while the budget lasts,
//! as many are read at once as are asked, and past it an answer waits until its turn to be
//! read. The one taken next may always read on, so the read never waits on itself. So ordinary
//! pages of a megabyte or two are all read at once, and a host whose answers are 16 MB each
//! gets them read about one at a time — within the function's memory either way.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// What one read holds of its answers (see the module's documentation).
#[derive(Debug)]
pub struct AnswersInFlight {
    budget: u64,
    held: AtomicU64,
    /// The index of the item to be taken next: it may always read on.
    next: watch::Sender<usize>,
}

/// An answer's claim on an [`AnswersInFlight`]: the item (in the order they are taken) it
/// belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Allowance<'a> {
    pub in_flight: &'a AnswersInFlight,
    pub item: usize,
}

impl AnswersInFlight {
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            held: AtomicU64::new(0),
            next: watch::Sender::new(0),
        }
    }

    /// The claim of item `item`.
    pub fn allowance(&self, item: usize) -> Allowance<'_> {
        Allowance {
            in_flight: self,
            item,
        }
    }

    /// Whether `item` may hold `bytes` more; if so they are counted. The item taken next
    /// always may.
    fn take(&self, item: usize, bytes: u64) -> bool {
        let held = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if held <= self.budget || item <= *self.next.borrow() {
            return true;
        }
        self.give_back(bytes);
        false
    }

    /// Whether `item` could hold `bytes` more now (nothing is counted).
    fn would_allow(&self, item: usize, bytes: u64) -> bool {
        item <= *self.next.borrow() || self.held.load(Ordering::Acquire) + bytes <= self.budget
    }

    /// Bytes no longer held: an answer given up, or an item taken.
    pub fn give_back(&self, bytes: u64) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    /// Item `item` was taken, with the `bytes` its answers held: the next one may read on.
    pub fn taken(&self, item: usize, bytes: u64) {
        self.give_back(bytes);
        self.next.send_modify(|next| *next = (*next).max(item + 1));
    }

    /// Waits until `item` is the next to be taken.
    pub async fn turn_of(&self, item: usize) {
        let mut next = self.next.subscribe();
        let _ = next.wait_for(|next| *next >= item).await;
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

impl Allowance<'_> {
    /// Counts `bytes` more of this answer, if the budget (or its turn) allows.
    pub fn take(&self, bytes: u64) -> bool {
        self.in_flight.take(self.item, bytes)
    }

    /// Whether an answer of `bytes` could be read now.
    pub fn would_allow(&self, bytes: u64) -> bool {
        self.in_flight.would_allow(self.item, bytes)
    }

    pub fn give_back(&self, bytes: u64) {
        self.in_flight.give_back(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_only_the_next_item_reads_on() {
        let in_flight = AnswersInFlight::new(100);
        assert!(in_flight.allowance(1).take(60));
        assert!(in_flight.allowance(2).take(40));
        assert!(!in_flight.allowance(3).take(1), "the budget is spent");
        assert_eq!(in_flight.held(), 100, "a refused take counts nothing");
        assert!(
            in_flight.allowance(0).take(1_000),
            "the next item always reads on"
        );
        in_flight.taken(0, 1_000);
        assert_eq!(in_flight.held(), 100);
        assert!(in_flight.allowance(1).take(500), "item 1 is next now");
        in_flight.taken(1, 560);
        assert!(in_flight.allowance(3).would_allow(60));
        assert!(!in_flight.allowance(3).would_allow(61));
    }

    #[tokio::test]
    async fn an_item_waits_for_its_turn_until_the_one_before_is_taken() {
        use futures_util::FutureExt;
        let in_flight = AnswersInFlight::new(0);
        let waiting = in_flight.turn_of(2);
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
        in_flight.taken(0, 0);
        assert!(waiting.as_mut().now_or_never().is_none());
        in_flight.taken(1, 0);
        assert!(waiting.as_mut().now_or_never().is_some());
    }
}
