//! Reading Make's lists whole, whether the endpoint pages them or not.
//!
//! Make documents `pg[offset]` / `pg[limit]` on some lists (`/users`) and not on others
//! (`/users/roles`, `user-organization-roles`), and both kinds of answer are normal:
//!
//! - a **paged** answer echoes `"pg": {"limit", "offset", ...}`, maybe with a smaller limit
//!   than asked; the list ends with an empty page or a page shorter than the *applied* limit;
//! - an **unpaged** answer has no `pg`: it is the whole list, the same rows whatever offset
//!   was asked. One request reads it. Only when it holds exactly as many rows as were asked
//!   (it may be a first page whose echo is missing) is the next offset (`limit - 1`) read once
//!   to tell: the same answer again means the whole list was read. (A paged list would give
//!   the same answer there only if `limit - 1` rows were added in front between the two
//!   reads — 9,999 at the default page size.)
//!
//! [`PageWalk`] is the pure decision logic, kept apart from HTTP so it can be tested row by
//! row. For paged lists it keeps what makes offset paging safe:
//!
//! - each page after the first starts one row early, on the last row of the page before (the
//!   anchor). If the anchor is not where it should be — another row there, or no row at all
//!   (rows before it left, and the offset is now past the end) — the list changed under us and
//!   the walk fails with [`PagingError::Shifted`] rather than silently skipping a member. So a
//!   list is complete only when its last page starts with its anchor (or is the first page):
//!   that page proves both that nothing was skipped before it and where the list ends;
//! - rows are deduplicated by id; a paged answer with nothing new (a server ignoring the
//!   offset while echoing it, or thousands of rows added in front between two reads) fails
//!   with [`PagingError::NotAdvancing`]; more than `max_pages` pages fail with
//!   [`PagingError::TooManyPages`], and more than `max_rows` rows with
//!   [`PagingError::TooManyRows`] as soon as a page passes it, so that a host's answers cannot
//!   grow a list past what the function's memory holds.
//!
//! A list Make cuts without saying so (no echo, fewer rows than exist) cannot be told from a
//! whole one here; the snapshot checks the member list against `/users` for that.

use serde::Deserialize;
use std::collections::HashSet;
use thiserror::Error;

/// A row with a stable id to deduplicate and anchor on.
pub trait Keyed {
    fn key(&self) -> u64;
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("the page at offset {offset} does not start with the row read last before it")]
    Shifted { offset: u64 },
    #[error("the page at offset {offset} repeats rows already read: the list moved, or Make is not advancing the offset")]
    NotAdvancing { offset: u64 },
    #[error("the list is longer than {max_pages} pages; raise MAKESYNC_MAX_PAGES if this organization really is that large")]
    TooManyPages { max_pages: u32 },
    #[error("the list holds more than {max_rows} rows")]
    TooManyRows { max_rows: usize },
    #[error("the page at offset {offset} holds {rows} rows, more than the {asked} asked for")]
    MoreRowsThanAsked {
        offset: u64,
        rows: usize,
        asked: u32,
    },
    #[error("the page at offset {offset} holds a single row, so the next page cannot be checked against it; raise MAKESYNC_PAGE_SIZE (Make applied a limit of 1)")]
    PageTooSmall { offset: u64 },
}

/// The `pg` object a paged answer echoes. Its presence is what marks an answer as paged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PageEcho {
    /// The limit Make applied.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// What to ask for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRead {
    /// The list without `pg[]` (an endpoint documented without paging).
    Whole,
    /// `pg[offset]` and `pg[limit]`.
    Page { offset: u64, limit: u32 },
}

/// How a list read whole was known to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListEnd {
    /// The walk proved it: an answer echoed `pg`, or a read at a further offset answered
    /// from there (the endpoint honours offsets, and its last answer was short).
    Proven,
    /// One answer without a `pg` echo, shorter than asked: whole on Make's word (a list cut
    /// without saying so looks the same).
    OnMakesWord,
    /// A read at a further offset brought the first answer again: the endpoint ignores
    /// `pg[]`, and its answer is whole on Make's word.
    OffsetsIgnored,
}

#[derive(Debug)]
pub struct PageWalk<T> {
    /// The limit asked on the first read; `None` asks without `pg[]`.
    asked: Option<u32>,
    max_pages: u32,
    /// The most rows the list may hold: past them the walk fails as soon as a page passes.
    max_rows: usize,
    pages: u32,
    next: Option<ListRead>,
    anchor: Option<u64>,
    /// Whether any answer carried a `pg` echo.
    echoed: bool,
    /// The first row of the first answer: an endpoint that ignores the offset sends it again.
    first_key: Option<u64>,
    /// Whether a read at a further offset brought the first answer again.
    offsets_ignored: bool,
    seen: HashSet<u64>,
    rows: Vec<T>,
}

impl<T: Keyed> PageWalk<T> {
    /// A walk that asks `limit` rows a page from the start.
    pub fn paged(limit: u32, max_pages: u32) -> Self {
        Self::new(Some(limit.max(2)), max_pages)
    }

    /// A walk that first asks without `pg[]`, and pages on only if the answer echoes `pg`.
    pub fn whole(max_pages: u32) -> Self {
        Self::new(None, max_pages)
    }

    fn new(asked: Option<u32>, max_pages: u32) -> Self {
        Self {
            asked,
            max_pages: max_pages.max(1),
            max_rows: usize::MAX,
            pages: 0,
            next: Some(match asked {
                Some(limit) => ListRead::Page { offset: 0, limit },
                None => ListRead::Whole,
            }),
            anchor: None,
            echoed: false,
            first_key: None,
            offsets_ignored: false,
            seen: HashSet::new(),
            rows: Vec::new(),
        }
    }

    /// A walk that goes on from an answer without a `pg` echo taken for a whole list: its
    /// rows' ids (`first` and `last` as the answer gave them, all of them in `seen`) as if
    /// that answer had been a page of exactly `limit = seen.len()` rows, so that the next read
    /// asks the offset after it, anchored on `last`. The rows it reads are only the new ones.
    /// `None` under two rows: a page of one leaves nothing to anchor on.
    pub fn after_unechoed(
        first: u64,
        last: u64,
        seen: HashSet<u64>,
        max_pages: u32,
    ) -> Option<Self> {
        let rows = u32::try_from(seen.len()).ok().filter(|rows| *rows >= 2)?;
        let mut walk = Self::new(Some(rows), max_pages.max(2));
        walk.pages = 1;
        walk.first_key = Some(first);
        walk.anchor = Some(last);
        walk.seen = seen;
        walk.next = Some(ListRead::Page {
            offset: u64::from(rows) - 1,
            limit: rows,
        });
        Some(walk)
    }

    /// How the list was known to end.
    pub fn end(&self) -> ListEnd {
        if self.echoed {
            ListEnd::Proven
        } else if self.offsets_ignored {
            ListEnd::OffsetsIgnored
        } else if self.pages > 1 {
            ListEnd::Proven
        } else {
            ListEnd::OnMakesWord
        }
    }

    /// Fails the walk as soon as the list holds more than `max_rows` distinct rows.
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// The most rows the list may hold.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The next read, or `None` once the list is complete.
    pub fn next_request(&self) -> Option<ListRead> {
        self.next
    }

    /// Takes the rows of the read asked by [`next_request`](Self::next_request) and the `pg`
    /// echo of its answer, if it had one.
    pub fn accept(&mut self, page: Vec<T>, echo: Option<PageEcho>) -> Result<(), PagingError> {
        let Some(read) = self.next.take() else {
            return Ok(());
        };
        let offset = match read {
            ListRead::Whole => 0,
            ListRead::Page { offset, .. } => offset,
        };
        self.pages += 1;
        self.echoed |= echo.is_some();
        let raw_len = page.len();
        // A paged answer (it echoes `pg`) holds at most the rows asked; one that holds more is
        // not Make's, and is not kept. (An answer without the echo is the whole list.)
        if let (Some(_), ListRead::Page { limit, .. }) = (echo, read) {
            if raw_len > limit as usize {
                return Err(PagingError::MoreRowsThanAsked {
                    offset,
                    rows: raw_len,
                    asked: limit,
                });
            }
        }
        if raw_len == 0 {
            // An empty answer ends the list only where it is the first one. Where the anchor
            // row is expected, it means rows before the anchor left since the page before was
            // read and the offset is now past the end: the rows after the anchor, present the
            // whole time, would be lost if this were taken for the end.
            return match self.anchor {
                Some(_) if self.pages > 1 => Err(PagingError::Shifted { offset }),
                _ => Ok(()),
            };
        }
        let first_read = self.pages == 1;
        let Some(fresh) = self.past_anchor(page, offset)? else {
            return Ok(());
        };
        if !first_read && fresh.iter().all(|row| self.seen.contains(&row.key())) {
            return Err(if self.echoed {
                PagingError::NotAdvancing { offset }
            } else {
                PagingError::Shifted { offset }
            });
        }
        if first_read {
            self.first_key = fresh.first().map(Keyed::key);
        }
        let new_rows = fresh
            .iter()
            .filter(|row| !self.seen.contains(&row.key()))
            .count();
        if self.rows.len().saturating_add(new_rows) > self.max_rows {
            return Err(PagingError::TooManyRows {
                max_rows: self.max_rows,
            });
        }
        let last_key = fresh.last().map(Keyed::key);
        for row in fresh {
            if self.seen.insert(row.key()) {
                self.rows.push(row);
            }
        }
        match self.applied_limit(echo, raw_len) {
            Some(limit) if raw_len >= limit as usize => {
                self.plan_next_page(offset, raw_len, limit, last_key)
            }
            _ => Ok(()),
        }
    }

    /// The rows of a page after the anchor it must start with (every page but the first one
    /// repeats the last row of the page before). `None` when the list is complete: only the
    /// anchor came back, or the one read after an unechoed first answer brought that answer
    /// again — the endpoint ignores pg[], and the first answer was the whole list.
    fn past_anchor(&mut self, page: Vec<T>, offset: u64) -> Result<Option<Vec<T>>, PagingError> {
        let mut rows = page.into_iter().peekable();
        if self.pages > 1 && self.anchor.is_some() {
            let first_key = rows.peek().map(Keyed::key);
            if first_key != self.anchor {
                let rest: Vec<T> = rows.collect();
                let repeats = rest.iter().all(|row| self.seen.contains(&row.key()));
                let probing = self.pages == 2 && !self.echoed;
                return match (repeats, self.echoed) {
                    (true, false) if probing && first_key == self.first_key => {
                        self.offsets_ignored = true;
                        Ok(None)
                    }
                    (true, true) => Err(PagingError::NotAdvancing { offset }),
                    _ => Err(PagingError::Shifted { offset }),
                };
            }
            rows.next();
        }
        let fresh: Vec<T> = rows.collect();
        Ok((!fresh.is_empty()).then_some(fresh))
    }

    /// The limit the answer was cut at, or `None` when it is the end of the list whatever its
    /// length. A paged answer ends short of the limit it applied; an answer without an echo is
    /// the whole list unless it holds exactly the rows asked.
    fn applied_limit(&self, echo: Option<PageEcho>, raw_len: usize) -> Option<u32> {
        match echo {
            Some(echo) => echo.limit.filter(|l| *l > 0).or(self.asked),
            None => self.asked.filter(|asked| raw_len == *asked as usize),
        }
    }

    /// The read of the next page, anchored on the last row of this one.
    fn plan_next_page(
        &mut self,
        offset: u64,
        raw_len: usize,
        limit: u32,
        last_key: Option<u64>,
    ) -> Result<(), PagingError> {
        if self.pages >= self.max_pages {
            return Err(PagingError::TooManyPages {
                max_pages: self.max_pages,
            });
        }
        if raw_len < 2 {
            // A page of one row leaves none to anchor the next page on: a row removed in
            // between would be skipped unseen.
            return Err(PagingError::PageTooSmall { offset });
        }
        self.anchor = last_key;
        self.next = Some(ListRead::Page {
            offset: offset + raw_len as u64 - 1,
            limit,
        });
        Ok(())
    }

    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Whether an answer so far echoed `pg`: the endpoint pages.
    pub fn paged_answers(&self) -> bool {
        self.echoed
    }

    /// How many more pages the walk may read before it fails as too long.
    pub fn pages_left(&self) -> u32 {
        self.max_pages.saturating_sub(self.pages)
    }

    pub fn into_rows(self) -> Vec<T> {
        self.rows
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Row(pub u64);
    impl Keyed for Row {
        fn key(&self) -> u64 {
            self.0
        }
    }

    /// How a test server answers.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Server {
        /// At most `max` rows a page, echoing the applied limit.
        Paged { max: u32 },
        /// At most `max` rows a page, no echo.
        PagedSilently { max: u32 },
        /// The whole list at any offset, no echo.
        Unpaged,
    }

    pub(crate) fn serve(
        list: &[u64],
        server: Server,
        read: ListRead,
    ) -> (Vec<Row>, Option<PageEcho>) {
        let (offset, asked) = match read {
            ListRead::Whole => (0, None),
            ListRead::Page { offset, limit } => (offset as usize, Some(limit)),
        };
        let slice = |max: u32| -> (Vec<Row>, u32) {
            let applied = asked.unwrap_or(max).min(max);
            let rows = list
                .iter()
                .skip(offset)
                .take(applied as usize)
                .map(|id| Row(*id))
                .collect();
            (rows, applied)
        };
        match server {
            Server::Paged { max } => {
                let (rows, applied) = slice(max);
                (
                    rows,
                    Some(PageEcho {
                        limit: Some(applied),
                    }),
                )
            }
            Server::PagedSilently { max } => (slice(max).0, None),
            Server::Unpaged => (list.iter().map(|id| Row(*id)).collect(), None),
        }
    }

    /// Walks `list` served by `server`: the rows read and the number of requests.
    pub(crate) fn walk(
        list: &[u64],
        asked: Option<u32>,
        server: Server,
    ) -> Result<(Vec<u64>, u32), PagingError> {
        let mut walk = match asked {
            Some(limit) => PageWalk::paged(limit, 1000),
            None => PageWalk::whole(1000),
        };
        while let Some(read) = walk.next_request() {
            let (page, echo) = serve(list, server, read);
            walk.accept(page, echo)?;
        }
        let pages = walk.pages();
        Ok((walk.into_rows().into_iter().map(|r| r.0).collect(), pages))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Over lists of every length, page sizes asked, server caps, answers with and
        /// without an echo, page caps and one row added or removed between two reads, a walk
        /// returns exactly a list the server held (the one at its start or the one at its
        /// end) or an error: never a silently short list.
        #[test]
        fn a_walk_returns_exactly_a_list_or_an_error(
            len in 0u64..80,
            asked in 1u32..15,
            cap in 1u32..20,
            shape in 0u8..4,
            max_pages in 1u32..40,
            shift in proptest::option::of((0u32..6, proptest::bool::ANY, 0u64..80)),
        ) {
            let initial: Vec<u64> = (1..=len).map(|i| i * 10).collect();
            let (server, mut walk) = match shape {
                0 => (Server::Paged { max: cap }, PageWalk::paged(asked, max_pages)),
                // Without an echo, a page shorter than asked ends the list: only a cap at or
                // above the asked size is a whole list (a lower one is a cut list, which the
                // snapshot's cross-check catches).
                // A page that ignores pg[] is told by the next offset bringing the same answer
                // again, which `limit - 1` rows added in front between the two reads would
                // mimic: with pages of 3 or more, one added row cannot.
                1 => (
                    Server::PagedSilently { max: cap.max(asked).max(3) },
                    PageWalk::paged(asked.max(3), max_pages),
                ),
                2 => (Server::Unpaged, PageWalk::paged(asked, max_pages)),
                _ => (Server::Paged { max: cap }, PageWalk::whole(max_pages)),
            };
            let mut list = initial.clone();
            let mut reads = 0;
            let mut shifted = false;
            let result = loop {
                let Some(read) = walk.next_request() else { break Ok(()) };
                if let Some((after, remove, at)) = shift {
                    if reads == after && !shifted {
                        shifted = true;
                        if remove && !list.is_empty() {
                            list.remove((at as usize) % list.len());
                        } else if !remove {
                            let id = at * 10 + 5;
                            let position = list.partition_point(|row| *row < id);
                            list.insert(position, id);
                        }
                    }
                }
                reads += 1;
                let (page, echo) = serve(&list, server, read);
                if let Err(error) = walk.accept(page, echo) {
                    break Err(error);
                }
            };
            match result {
                Ok(()) => {
                    let rows: Vec<u64> = walk.into_rows().into_iter().map(|r| r.0).collect();
                    proptest::prop_assert!(
                        rows == initial || rows == list,
                        "read {:?}\nstart {:?}\nend {:?}", rows, initial, list
                    );
                    if !shifted {
                        proptest::prop_assert_eq!(rows, initial);
                    }
                }
                Err(PagingError::TooManyPages { .. } | PagingError::PageTooSmall { .. }) => {}
                Err(other) => proptest::prop_assert!(shifted, "{other} on a list that did not move"),
            }
        }

        /// Any number of rows added or removed before any read: a walk that ends holds every
        /// row present throughout, no row never present, each once and in order — or fails.
        /// (An empty page where the anchor was expected, after rows before it left, is the
        /// case a single change cannot show.)
        #[test]
        fn a_walk_never_drops_a_row_present_throughout(
            len in 0u64..60,
            asked in 2u32..12,
            cap in 2u32..16,
            shape in 0u8..4,
            changes in proptest::collection::vec((0u32..12, 0u8..3, 0u64..70), 0..12),
        ) {
            let initial: Vec<u64> = (1..=len).map(|i| i * 10).collect();
            let (server, mut walk) = match shape {
                0 => (Server::Paged { max: cap }, PageWalk::paged(asked, 1000)),
                // Without an echo, a first answer of exactly the rows asked is told from a
                // whole list by the next offset bringing it again, which `limit - 1` rows
                // added in front between the two reads would mimic (9,999 at Make's page
                // size): the additions below stay under that.
                1 => (
                    Server::PagedSilently { max: cap.max(asked).max(3) },
                    PageWalk::paged(asked.max(3), 1000),
                ),
                2 => (Server::Unpaged, PageWalk::paged(asked, 1000)),
                _ => (Server::Paged { max: cap }, PageWalk::whole(1000)),
            };
            let additions_allowed = if shape == 1 { asked.max(3) as usize - 2 } else { usize::MAX };
            let mut list = initial.clone();
            let mut ever: std::collections::BTreeSet<u64> = list.iter().copied().collect();
            let mut touched = std::collections::BTreeSet::new();
            let mut additions = 0;
            let mut reads = 0;
            let result = loop {
                let Some(read) = walk.next_request() else { break Ok(()) };
                for (_, kind, at) in changes.iter().filter(|(before, _, _)| *before == reads) {
                    match kind {
                        0 if !list.is_empty() => {
                            let gone = list.remove((*at as usize) % list.len());
                            touched.insert(gone);
                        }
                        1 | 2 if additions < additions_allowed => {
                            // 1: a new row between two others; 2: a row back at its place.
                            let id = if *kind == 1 { at * 10 + 5 } else { (at % 60 + 1) * 10 };
                            let position = list.partition_point(|row| *row < id);
                            if list.get(position) != Some(&id) {
                                list.insert(position, id);
                                ever.insert(id);
                                touched.insert(id);
                                additions += 1;
                            }
                        }
                        _ => {}
                    }
                }
                reads += 1;
                let (page, echo) = serve(&list, server, read);
                if let Err(error) = walk.accept(page, echo) {
                    break Err(error);
                }
            };
            if result.is_ok() {
                let rows: Vec<u64> = walk.into_rows().into_iter().map(|r| r.0).collect();
                let mut sorted = rows.clone();
                sorted.sort_unstable();
                sorted.dedup();
                proptest::prop_assert_eq!(&sorted, &rows, "each row once, in order");
                let read: std::collections::BTreeSet<u64> = rows.iter().copied().collect();
                let missing: Vec<&u64> = ever
                    .iter()
                    .filter(|id| !touched.contains(*id) && !read.contains(*id))
                    .collect();
                proptest::prop_assert!(missing.is_empty(), "rows present throughout missing: {:?}", missing);
                proptest::prop_assert!(read.is_subset(&ever), "rows never present: {:?}", read.difference(&ever).collect::<Vec<_>>());
            }
        }
    }

    /// The review's N9: an empty page where the anchor row is expected is not the end of the
    /// list. The list [1..=5] read in pages of 4: after [1, 2, 3, 4], rows 2 and 3 leave; the
    /// next read (offset 3, expecting row 4) is past the new end and comes back empty. Row 5,
    /// present throughout, would be lost if the walk ended there.
    #[test]
    fn an_empty_page_where_the_anchor_is_expected_is_a_shifted_list() {
        let echo = Some(PageEcho { limit: Some(4) });
        let mut walk: PageWalk<Row> = PageWalk::paged(4, 100);
        walk.accept(vec![Row(1), Row(2), Row(3), Row(4)], echo)
            .unwrap();
        assert_eq!(
            walk.accept(Vec::new(), echo),
            Err(PagingError::Shifted { offset: 3 })
        );
        // Without an echo too: the read after a first answer of exactly the rows asked.
        let mut walk: PageWalk<Row> = PageWalk::paged(4, 100);
        walk.accept(vec![Row(1), Row(2), Row(3), Row(4)], None)
            .unwrap();
        assert_eq!(
            walk.accept(Vec::new(), None),
            Err(PagingError::Shifted { offset: 3 })
        );
        // An empty first answer is an empty list.
        let mut walk: PageWalk<Row> = PageWalk::paged(4, 100);
        walk.accept(Vec::new(), echo).unwrap();
        assert_eq!(walk.next_request(), None);
    }

    /// A walk from a first answer of `first_rows` rows without an echo, taken for the whole
    /// list: its rows (new ones only) and how it ended.
    fn walk_on(list: &[u64], first_rows: usize, server: Server) -> (Vec<u64>, ListEnd) {
        let answered = &list[..first_rows];
        let seen = answered.iter().copied().collect();
        let mut walk: PageWalk<Row> =
            PageWalk::after_unechoed(answered[0], answered[first_rows - 1], seen, 10).unwrap();
        while let Some(read) = walk.next_request() {
            let (page, echo) = serve(list, server, read);
            walk.accept(page, echo).unwrap();
        }
        let end = walk.end();
        (walk.into_rows().into_iter().map(|r| r.0).collect(), end)
    }

    #[test]
    fn an_answer_without_an_echo_is_read_on_from_its_last_row() {
        let list: Vec<u64> = (1..=7).collect();
        // Paged silently at 3: the rest, read 3 at a time.
        assert_eq!(
            walk_on(&list, 3, Server::PagedSilently { max: 3 }),
            (vec![4, 5, 6, 7], ListEnd::Proven)
        );
        // The whole list after all: the next offset holds only the last row.
        assert_eq!(
            walk_on(&list, 7, Server::PagedSilently { max: 10 }),
            (Vec::new(), ListEnd::Proven)
        );
        // An endpoint that ignores offsets answers the same rows again: nothing proven.
        let cut = &list[..3];
        assert_eq!(
            walk_on(cut, 3, Server::Unpaged),
            (Vec::new(), ListEnd::OffsetsIgnored)
        );
        // One row leaves nothing to anchor on.
        assert!(PageWalk::<Row>::after_unechoed(1, 1, [1].into(), 10).is_none());
    }

    #[test]
    fn a_list_past_its_row_bound_fails_at_the_page_that_passes_it() {
        let list: Vec<u64> = (1..=30).collect();
        let mut walk = PageWalk::paged(10, 100).with_max_rows(25);
        let mut pages = 0;
        let result = loop {
            let Some(read) = walk.next_request() else {
                break Ok(());
            };
            pages += 1;
            let (page, echo) = serve(&list, Server::Paged { max: 10 }, read);
            if let Err(error) = walk.accept(page, echo) {
                break Err(error);
            }
        };
        assert_eq!(result, Err(PagingError::TooManyRows { max_rows: 25 }));
        assert_eq!(pages, 3, "rows 1–10, 10–19, then 19–28 passes 25");
        // Exactly at the bound is within it.
        let (rows, _) = {
            let mut walk = PageWalk::paged(10, 100).with_max_rows(30);
            while let Some(read) = walk.next_request() {
                let (page, echo) = serve(&list, Server::Paged { max: 10 }, read);
                walk.accept(page, echo).unwrap();
            }
            (walk.into_rows(), ())
        };
        assert_eq!(rows.len(), 30);
    }

    #[test]
    fn a_server_capped_page_size_does_not_end_the_walk_early() {
        let list: Vec<u64> = (1..=120).collect();
        let (rows, _) = walk(&list, Some(100), Server::Paged { max: 25 }).unwrap();
        assert_eq!(rows, list);
    }

    #[test]
    fn an_unpaged_list_is_read_in_one_request_whatever_was_asked() {
        let list: Vec<u64> = (1..=60).collect();
        for asked in [None, Some(10), Some(59), Some(61), Some(10_000)] {
            let (rows, requests) = walk(&list, asked, Server::Unpaged).unwrap();
            assert_eq!(rows, list, "asked {asked:?}");
            assert_eq!(requests, 1, "asked {asked:?}");
        }
    }

    #[test]
    fn an_unpaged_list_of_exactly_the_asked_size_costs_one_probe_not_an_error() {
        let list: Vec<u64> = (1..=60).collect();
        let (rows, requests) = walk(&list, Some(60), Server::Unpaged).unwrap();
        assert_eq!(rows, list);
        assert_eq!(requests, 2);
    }

    #[test]
    fn a_list_asked_whole_is_paged_on_when_the_answer_echoes_a_limit() {
        let list: Vec<u64> = (1..=60).collect();
        let (rows, requests) = walk(&list, None, Server::Paged { max: 25 }).unwrap();
        assert_eq!(rows, list);
        assert_eq!(requests, 3);
    }

    #[test]
    fn a_silently_paged_list_is_paged_on_while_pages_are_full() {
        let list: Vec<u64> = (1..=60).collect();
        let (rows, _) = walk(&list, Some(20), Server::PagedSilently { max: 20 }).unwrap();
        assert_eq!(rows, list);
    }

    #[test]
    fn lists_of_every_small_length_come_back_whole_in_every_shape() {
        for len in 0..12u64 {
            let list: Vec<u64> = (1..=len).collect();
            for asked in 1..6 {
                for server in [
                    Server::Paged { max: 2 },
                    Server::Paged { max: 3 },
                    Server::Paged { max: 100 },
                    Server::PagedSilently { max: asked.max(2) },
                    Server::PagedSilently { max: 100 },
                    Server::Unpaged,
                ] {
                    let (rows, _) = walk(&list, Some(asked), server)
                        .unwrap_or_else(|e| panic!("len {len}, asked {asked}, {server:?}: {e}"));
                    assert_eq!(rows, list, "len {len}, asked {asked}, {server:?}");
                }
            }
        }
    }

    #[test]
    fn pages_of_one_row_are_refused_rather_than_read_unchecked() {
        let list: Vec<u64> = (1..=10).collect();
        let error = walk(&list, Some(10), Server::Paged { max: 1 }).unwrap_err();
        assert_eq!(error, PagingError::PageTooSmall { offset: 0 });
    }

    #[test]
    fn a_short_page_ends_the_walk_without_another_request() {
        let list: Vec<u64> = (1..=10).collect();
        let (_, pages) = walk(&list, Some(25), Server::Paged { max: 25 }).unwrap();
        assert_eq!(pages, 1);
    }

    #[test]
    fn a_paged_server_that_ignores_the_offset_is_detected() {
        let mut walk = PageWalk::paged(3, 100);
        let echo = Some(PageEcho { limit: Some(3) });
        walk.accept(vec![Row(1), Row(2), Row(3)], echo).unwrap();
        let err = walk.accept(vec![Row(1), Row(2), Row(3)], echo).unwrap_err();
        assert!(matches!(err, PagingError::NotAdvancing { .. }), "{err:?}");
    }

    #[test]
    fn a_row_removed_before_the_boundary_is_detected_not_skipped() {
        let mut walk = PageWalk::paged(3, 100);
        let echo = Some(PageEcho { limit: Some(3) });
        walk.accept(vec![Row(1), Row(2), Row(3)], echo).unwrap();
        // Row 2 is removed: offset 2 now starts at row 4, and the anchor (3) is not there.
        let err = walk.accept(vec![Row(4), Row(5), Row(6)], echo).unwrap_err();
        assert_eq!(err, PagingError::Shifted { offset: 2 });
    }

    #[test]
    fn the_page_cap_gives_a_clear_error() {
        let list: Vec<u64> = (1..=1000).collect();
        let mut walk = PageWalk::paged(10, 5);
        let mut result = Ok(());
        while let Some(read) = walk.next_request() {
            let (page, echo) = serve(&list, Server::Paged { max: 10 }, read);
            result = walk.accept(page, echo);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(PagingError::TooManyPages { max_pages: 5 }));
    }

    #[test]
    fn duplicate_rows_within_a_walk_are_kept_once() {
        let mut walk = PageWalk::paged(3, 100);
        let echo = Some(PageEcho { limit: Some(3) });
        walk.accept(vec![Row(1), Row(2), Row(2)], echo).unwrap();
        walk.accept(vec![Row(2), Row(4)], echo).unwrap();
        assert_eq!(walk.next_request(), None);
        assert_eq!(walk.into_rows(), vec![Row(1), Row(2), Row(4)]);
    }
}
