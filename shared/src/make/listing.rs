//! Reading a whole list from Make: the page walk ([`PageWalk`]) driven over HTTP, pages read
//! ahead where a count says how many there are, and every list bounded while it is read.
//!
//! A list is read through its walk, page by page; where a count of its rows is known, the
//! pages it covers are asked at once (at most `MAKESYNC_PAGE_CONCURRENCY` in flight) and given
//! to the walk in order, each only where the walk would have asked it. A wrong count costs a
//! few requests, never a row: the walk checks every page against the one before.
//!
//! Bounds, checked as the answers arrive rather than once a list is whole: a page holds at
//! most the list's row bound (the decoder stops past it), the list at most that many distinct
//! rows; and every answer, as it is read, and every row kept are counted on the client's read
//! budget ([`ReadBudget`](super::read_budget::ReadBudget)), shared by all the lists of one
//! sync. Past a bound the read fails ([`MakeError::ListTooLong`], or
//! [`MakeError::MemoryTaken`] when the worker has no memory free) and what it counted is given
//! back.

use super::client::{Call, MakeClient};
use super::error::{ListBound, MakeError};
use super::paging::{Keyed, ListEnd, ListRead, PageWalk, PagingError};
use super::read_budget::{Allowance, Counted, Turns};
use super::request::refused;
use super::wire::ListPage;
use serde::de::DeserializeOwned;

/// What a kept row costs besides its fields' text (its answer's bytes count that): its own
/// size, and its id in the walk's set of ids read.
const ROW_BOOKKEEPING: u64 = 16;

/// A page read, with the bytes it counted.
type Read<T> = Result<(ListPage<T>, Counted), MakeError>;

/// A page being read, boxed so that a read already in flight can join a read-ahead.
type PageRead<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Read<T>> + Send + 'a>>;

/// A read of a read-ahead: its item (the order it is taken in), the read, and the page.
type ItemRead<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (usize, ListRead, Read<T>)> + Send + 'a>>;

/// What every read of a list sends, and where its rows are.
#[derive(Clone, Copy)]
pub(super) struct ListCall<'a> {
    pub call: &'a Call,
    pub collection: &'a str,
    pub extra: &'a [(&'static str, String)],
}

/// A list being read: how far it got, and what it counts on the read budget.
struct Listing<'a> {
    of: ListCall<'a>,
    label: String,
    rows_so_far: usize,
    counted: Counted,
}

/// What is known of a list's length before it is read, to read its pages ahead.
pub(super) struct Expected<F> {
    /// The count the last successful sync made, known now.
    pub remembered: Option<usize>,
    /// Whether `remembered` may set the reads before any answer has shown the list is paged.
    /// So for `/users`, documented as paged. A list documented whole (the member list) uses
    /// it from the start only where it asks no read a whole list would not need — a count of
    /// at most one page — and otherwise once an answer echoes `pg`.
    pub remembered_from_start: bool,
    /// A count that arrives while the list is read (the member list's length, for `/users`).
    pub later: F,
}

impl Expected<std::future::Ready<Option<usize>>> {
    /// Nothing is known: the pages are read one after another.
    pub fn nothing() -> Self {
        Self {
            remembered: None,
            remembered_from_start: false,
            later: std::future::ready(None),
        }
    }
}

/// The reads a paged list of `rows` rows has left from the page at `offset` on (0 before any
/// page is read): each page after the first starts on the last row of the one before
/// (`limit - 1` further on), and the last one is the first that ends past the list. At most
/// `pages_left`.
fn reads_ahead(offset: u64, limit: u32, rows: usize, pages_left: u32) -> Vec<ListRead> {
    let step = u64::from(limit.max(2) - 1);
    let mut reads = Vec::new();
    let mut next = offset;
    while reads.len() < pages_left as usize {
        reads.push(ListRead::Page {
            offset: next,
            limit,
        });
        if next + u64::from(limit) > rows as u64 {
            break;
        }
        next += step;
    }
    reads
}

impl MakeClient {
    /// Reads a whole list through `walk`, one page after another; `extra` is sent with every
    /// paged read. Its rows stay counted on the read budget for the client's life.
    pub(super) async fn list_all<T: DeserializeOwned + Keyed + Send>(
        &self,
        call: &Call,
        collection: &str,
        walk: PageWalk<T>,
        extra: &[(&'static str, String)],
    ) -> Result<Vec<T>, MakeError> {
        let (rows, counted, _) = self
            .read_list(call, collection, walk, extra, Expected::nothing(), None)
            .await?;
        counted.keep();
        Ok(rows)
    }

    /// [`list_all`](Self::list_all), reading pages ahead where a count of the list's rows
    /// says how many there are (see [`Expected`]); with what its rows count on the read
    /// budget, given back when dropped (a list read again) unless kept.
    pub(super) async fn list_all_expecting<T: DeserializeOwned + Keyed + Send>(
        &self,
        call: &Call,
        collection: &str,
        walk: PageWalk<T>,
        extra: &[(&'static str, String)],
        expected: Expected<impl std::future::Future<Output = Option<usize>>>,
    ) -> Result<(Vec<T>, Counted), MakeError> {
        let (rows, counted, _) = self
            .read_list(call, collection, walk, extra, expected, None)
            .await?;
        Ok((rows, counted))
    }

    /// [`list_all`](Self::list_all), one of several lists read at once and taken in order
    /// (`allowance` says which); with what its rows count on the read budget, given back when
    /// dropped unless kept, and how the list was known to end.
    pub(super) async fn list_all_within<T: DeserializeOwned + Keyed + Send>(
        &self,
        call: &Call,
        collection: &str,
        walk: PageWalk<T>,
        extra: &[(&'static str, String)],
        allowance: Allowance<'_>,
    ) -> Result<(Vec<T>, Counted, ListEnd), MakeError> {
        self.read_list(
            call,
            collection,
            walk,
            extra,
            Expected::nothing(),
            Some(allowance),
        )
        .await
    }

    /// Reads a list: its rows, what they count on the read budget, and how it ended.
    async fn read_list<T: DeserializeOwned + Keyed + Send>(
        &self,
        call: &Call,
        collection: &str,
        walk: PageWalk<T>,
        extra: &[(&'static str, String)],
        expected: Expected<impl std::future::Future<Output = Option<usize>>>,
        allowance: Option<Allowance<'_>>,
    ) -> Result<(Vec<T>, Counted, ListEnd), MakeError> {
        let max_rows = walk.max_rows().min(self.config.max_list_rows);
        let mut walk = walk.with_max_rows(max_rows);
        let of = ListCall {
            call,
            collection,
            extra,
        };
        let mut listing = Listing {
            of,
            label: call.label(),
            rows_so_far: 0,
            counted: Counted::none(&self.read_budget),
        };
        // A page read one after another is always the next to be taken: its turn never moves
        // on from the first.
        let turns = Turns::default();
        let Expected {
            mut remembered,
            remembered_from_start,
            later,
        } = expected;
        // The count `later` gives is waited for only beside a page the walk asks anyway, and
        // only once an answer has shown the list is paged: the pages never stand still for
        // it, and an endpoint that ignores pg[] is never read ahead on its strength.
        let mut later = std::pin::pin!(later);
        let mut later_answered = false;
        while let Some(read) = walk.next_request() {
            if let ListRead::Page { offset, limit } = read {
                let known = if remembered_from_start || walk.paged_answers() {
                    remembered.take()
                } else {
                    None
                };
                if let Some(rows) = known {
                    let reads = reads_ahead(offset, limit, rows, walk.pages_left());
                    if reads.len() > 1 {
                        self.read_ahead(&mut listing, &mut walk, &reads, None)
                            .await?;
                        continue;
                    }
                }
            }
            let allowance = allowance.unwrap_or(Allowance {
                budget: &self.read_budget,
                turns: &turns,
                item: 0,
            });
            let reading: PageRead<'_, T> =
                Box::pin(self.read_page(of, walk.max_rows(), read, allowance));
            if !later_answered && walk.pages() > 0 && walk.paged_answers() {
                later_answered = self
                    .read_beside_count(&mut listing, &mut walk, read, reading, later.as_mut())
                    .await?;
                continue;
            }
            let page = reading.await?;
            self.take_page(&mut listing, &mut walk, page)?;
        }
        tracing::debug!(endpoint = %listing.label, requests = walk.pages(), "list read");
        let end = walk.end();
        Ok((walk.into_rows(), listing.counted, end))
    }

    /// Takes `read`, in flight as `reading`, beside the count `later` gives: if the count comes
    /// first, the pages it says are left are asked at once, this one (not asked again) the
    /// first of them. Returns whether the count came.
    async fn read_beside_count<'a, T: DeserializeOwned + Keyed + Send + 'a>(
        &'a self,
        listing: &mut Listing<'a>,
        walk: &mut PageWalk<T>,
        read: ListRead,
        mut reading: PageRead<'a, T>,
        later: std::pin::Pin<&mut impl std::future::Future<Output = Option<usize>>>,
    ) -> Result<bool, MakeError> {
        let answered = tokio::select! {
            biased;
            page = &mut reading => Ok(page),
            rows = later => Err(rows),
        };
        let rows = match answered {
            Ok(page) => {
                self.take_page(listing, walk, page?)?;
                return Ok(false);
            }
            Err(rows) => rows,
        };
        let reads = match (rows, read) {
            (Some(rows), ListRead::Page { offset, limit }) => {
                reads_ahead(offset, limit, rows, walk.pages_left())
            }
            _ => Vec::new(),
        };
        if reads.len() > 1 {
            self.read_ahead(listing, walk, &reads, Some(reading))
                .await?;
        } else {
            let page = reading.await?;
            self.take_page(listing, walk, page)?;
        }
        Ok(true)
    }

    /// Reads `reads` with at most [`page_concurrency`](Self::page_concurrency) in flight (the
    /// next is asked as soon as one answers) and gives each page to the walk in order, while
    /// the walk asks for exactly that read; the first read it does not ask for ends the
    /// read-ahead (the rest are dropped unread or unused, and what they counted given back).
    /// Past the read budget, a page waits for its turn to be read ([`Turns`]).
    async fn read_ahead<'a, T: DeserializeOwned + Keyed + Send + 'a>(
        &'a self,
        listing: &mut Listing<'a>,
        walk: &mut PageWalk<T>,
        reads: &[ListRead],
        first: Option<PageRead<'a, T>>,
    ) -> Result<(), MakeError> {
        use futures_util::StreamExt;
        let of = listing.of;
        let max_rows = walk.max_rows();
        let turns = Turns::default();
        let turns = &turns;
        let allowance = |item| Allowance {
            budget: &self.read_budget,
            turns,
            item,
        };
        // Each read boxed (as its item and read, with the page): a read already in flight
        // joins as the first, the next to be taken.
        let mut items: Vec<ItemRead<'_, T>> = Vec::with_capacity(reads.len());
        let first =
            first.unwrap_or_else(|| Box::pin(self.read_page(of, max_rows, reads[0], allowance(0))));
        let first_read = reads[0];
        items.push(Box::pin(async move { (0, first_read, first.await) }));
        for (item, read) in reads.iter().copied().enumerate().skip(1) {
            let allowance = allowance(item);
            items.push(Box::pin(async move {
                (
                    item,
                    read,
                    self.read_page(of, max_rows, read, allowance).await,
                )
            }));
        }
        let mut pages =
            futures_util::stream::iter(items).buffered(self.page_concurrency().max(1) as usize);
        while let Some((item, read, page)) = pages.next().await {
            if walk.next_request() != Some(read) {
                return Ok(());
            }
            self.take_page(listing, walk, page?)?;
            turns.taken(item);
        }
        Ok(())
    }

    /// One read of a list, decoded; the body is not kept past its rows. A page may hold at
    /// most the list's row bound and the anchor row. Its body is counted as it is read: past
    /// the read budget, it is put off while its turn has not come and read again once it has.
    async fn read_page<T: DeserializeOwned>(
        &self,
        of: ListCall<'_>,
        max_rows: usize,
        read: ListRead,
        allowance: Allowance<'_>,
    ) -> Read<T> {
        let mut paging = Vec::new();
        if let ListRead::Page { offset, limit } = read {
            paging.push(("pg[offset]", offset.to_string()));
            paging.push(("pg[limit]", limit.to_string()));
            paging.extend_from_slice(of.extra);
        }
        loop {
            if let Some((body, counted)) =
                self.fetch_within(of.call, &paging, Some(allowance)).await?
            {
                let page = self.decode_page(of.call, of.collection, &body, max_rows)?;
                return Ok((page, counted));
            }
            allowance.turns.turn_of(allowance.item).await;
        }
    }

    /// Gives a page to the walk and its count to the list's (with what its rows cost besides
    /// their answer's bytes), and tells the observer.
    fn take_page<T: Keyed>(
        &self,
        listing: &mut Listing<'_>,
        walk: &mut PageWalk<T>,
        (page, counted): (ListPage<T>, Counted),
    ) -> Result<(), MakeError> {
        let ListPage { rows, echo, .. } = page;
        listing.counted.join(counted);
        let row_cost = std::mem::size_of::<T>() as u64 + ROW_BOOKKEEPING;
        listing
            .counted
            .take(rows.len() as u64 * row_cost)
            .map_err(|refusal| refused(listing.label.clone(), refusal))?;
        listing.rows_so_far += rows.len();
        walk.accept(rows, echo)
            .map_err(|e| paging_error(&listing.label, e))?;
        if let Some(observer) = &self.observer {
            observer.page_read(&listing.label, listing.rows_so_far);
        }
        Ok(())
    }
}

/// A walk's refusal as the client reports it: a list that moved is [`MakeError::ListChanged`]
/// (the snapshot reads it again), one past its bound [`MakeError::ListTooLong`].
fn paging_error(label: &str, error: PagingError) -> MakeError {
    match error {
        PagingError::Shifted { .. } | PagingError::NotAdvancing { .. } => MakeError::ListChanged {
            endpoint: label.to_string(),
            detail: error.to_string(),
        },
        PagingError::TooManyRows { max_rows } => MakeError::ListTooLong {
            endpoint: label.to_string(),
            bound: ListBound::Rows(max_rows),
        },
        other => MakeError::Paging {
            endpoint: label.to_string(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(reads: &[ListRead]) -> Vec<u64> {
        reads
            .iter()
            .map(|read| match read {
                ListRead::Page { offset, .. } => *offset,
                ListRead::Whole => u64::MAX,
            })
            .collect()
    }

    /// The reads left after a full first page are those the walk would ask one by one: each
    /// a row before the end of the one before, until the first that ends past the list.
    #[test]
    fn the_reads_ahead_are_the_walk_s_own() {
        // 100,001 users in pages of 10,000: ten more pages, the last one short.
        let reads = reads_ahead(9_999, 10_000, 100_001, 1000);
        assert_eq!(
            offsets(&reads),
            (1..=10).map(|n| n * 9_999).collect::<Vec<_>>()
        );
        // A list that ends exactly at a page's end: one more read, for its anchor row alone.
        assert_eq!(offsets(&reads_ahead(9, 10, 19, 1000)), vec![9, 18]);
        // 10,001 users: one more page.
        assert_eq!(
            offsets(&reads_ahead(9_999, 10_000, 10_001, 1000)),
            vec![9_999]
        );
        // A member count smaller than the first page: the read the walk asks next, no more.
        assert_eq!(offsets(&reads_ahead(9, 10, 3, 1000)), vec![9]);
        // Never past the pages the walk has left, whatever the count says.
        assert_eq!(reads_ahead(9, 10, usize::MAX, 5).len(), 5);
        // From the start, a count of exactly one page: that page and the read of its last
        // row, which a whole list needs too (to be told from a first page).
        assert_eq!(offsets(&reads_ahead(0, 10, 10, 1000)), vec![0, 9]);
        assert_eq!(offsets(&reads_ahead(0, 10, 9, 1000)), vec![0]);
    }
}
