//! Walking Make's offset-paged lists without losing or repeating rows.
//!
//! Make pages with `pg[offset]` and `pg[limit]`, may apply a smaller limit than asked (and then
//! echoes the one it applied in `pg.limit`), returns no total, and shifts rows when members are
//! added or removed while we page. [`PageWalk`] is the pure decision logic, kept apart from
//! HTTP so it can be tested row by row:
//!
//! - the end is an empty page, or a page shorter than the *applied* limit; a response that does
//!   not echo a limit is paged until an empty page;
//! - each page after the first starts one row early, on the last row of the page before (the
//!   anchor). If the anchor is not where it should be, the list changed under us and the walk
//!   fails with [`PagingError::Shifted`] rather than silently skipping a member;
//! - rows are deduplicated by id; a page with nothing new (a server ignoring the offset) fails
//!   with [`PagingError::NotAdvancing`]; more than `max_pages` pages fail with
//!   [`PagingError::TooManyPages`].

use std::collections::HashSet;
use thiserror::Error;

/// A row with a stable id to deduplicate and anchor on.
pub trait Keyed {
    fn key(&self) -> u64;
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("the list changed while it was being read (a row at offset {offset} moved)")]
    Shifted { offset: u64 },
    #[error("the page at offset {offset} repeats rows already read (the offset is not advancing)")]
    NotAdvancing { offset: u64 },
    #[error("the list is longer than {max_pages} pages; raise MAKESYNC_MAX_PAGES if this organization really is that large")]
    TooManyPages { max_pages: u32 },
}

/// Where to read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u32,
}

#[derive(Debug)]
pub struct PageWalk<T> {
    limit: u32,
    max_pages: u32,
    pages: u32,
    offset: u64,
    anchor: Option<u64>,
    seen: HashSet<u64>,
    rows: Vec<T>,
    done: bool,
}

impl<T: Keyed> PageWalk<T> {
    pub fn new(limit: u32, max_pages: u32) -> Self {
        Self {
            limit: limit.max(1),
            max_pages: max_pages.max(1),
            pages: 0,
            offset: 0,
            anchor: None,
            seen: HashSet::new(),
            rows: Vec::new(),
            done: false,
        }
    }

    /// The next page to fetch, or `None` once the list is complete.
    pub fn next_request(&self) -> Option<PageRequest> {
        (!self.done).then_some(PageRequest {
            offset: self.offset,
            limit: self.limit,
        })
    }

    /// Takes the rows of the page asked for by [`next_request`](Self::next_request) and the
    /// limit the server said it applied, if it said.
    pub fn accept(&mut self, page: Vec<T>, applied_limit: Option<u32>) -> Result<(), PagingError> {
        self.pages += 1;
        let raw_len = page.len();
        if raw_len == 0 {
            self.done = true;
            return Ok(());
        }
        let mut rows = page.into_iter();
        if let Some(anchor) = self.anchor {
            let first = rows.next().expect("page is not empty");
            if first.key() != anchor {
                let rest: Vec<T> = rows.collect();
                let repeats = self.seen.contains(&first.key())
                    && rest.iter().all(|row| self.seen.contains(&row.key()));
                return Err(if repeats {
                    PagingError::NotAdvancing {
                        offset: self.offset,
                    }
                } else {
                    PagingError::Shifted {
                        offset: self.offset,
                    }
                });
            }
        }
        let fresh: Vec<T> = rows.collect();
        if fresh.is_empty() {
            // Only the anchor came back: the list ends with it.
            self.done = true;
            return Ok(());
        }
        if fresh.iter().all(|row| self.seen.contains(&row.key())) {
            return Err(PagingError::NotAdvancing {
                offset: self.offset,
            });
        }
        let last_key = fresh.last().map(Keyed::key);
        for row in fresh {
            if self.seen.insert(row.key()) {
                self.rows.push(row);
            }
        }
        if applied_limit.is_some_and(|limit| limit > 0 && raw_len < limit as usize) {
            self.done = true;
            return Ok(());
        }
        if self.pages >= self.max_pages {
            return Err(PagingError::TooManyPages {
                max_pages: self.max_pages,
            });
        }
        if raw_len >= 2 {
            self.offset += raw_len as u64 - 1;
            self.anchor = last_key;
        } else {
            self.offset += raw_len as u64;
            self.anchor = None;
        }
        Ok(())
    }

    pub fn pages(&self) -> u32 {
        self.pages
    }

    pub fn into_rows(self) -> Vec<T> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Row(u64);
    impl Keyed for Row {
        fn key(&self) -> u64 {
            self.0
        }
    }

    /// Serves `list` like Make: at most `server_max` rows a page, echoing the applied limit
    /// when `echo` is set.
    fn walk(
        list: &[u64],
        asked: u32,
        server_max: u32,
        echo: bool,
    ) -> Result<(Vec<u64>, u32), PagingError> {
        let mut walk = PageWalk::new(asked, 100);
        while let Some(request) = walk.next_request() {
            let applied = request.limit.min(server_max);
            let page: Vec<Row> = list
                .iter()
                .skip(request.offset as usize)
                .take(applied as usize)
                .map(|id| Row(*id))
                .collect();
            walk.accept(page, echo.then_some(applied))?;
        }
        let pages = walk.pages();
        Ok((walk.into_rows().into_iter().map(|r| r.0).collect(), pages))
    }

    #[test]
    fn a_server_capped_page_size_does_not_end_the_walk_early() {
        let list: Vec<u64> = (1..=120).collect();
        let (rows, _) = walk(&list, 100, 25, true).unwrap();
        assert_eq!(rows, list);
    }

    #[test]
    fn without_an_echoed_limit_the_walk_goes_on_to_an_empty_page() {
        let list: Vec<u64> = (1..=60).collect();
        let (rows, _) = walk(&list, 100, 25, false).unwrap();
        assert_eq!(rows, list);
    }

    #[test]
    fn lists_of_every_small_length_come_back_whole() {
        for len in 0..12u64 {
            for server_max in 1..5 {
                let list: Vec<u64> = (1..=len).collect();
                let (rows, _) = walk(&list, 3, server_max, true).unwrap();
                assert_eq!(rows, list, "len {len}, server max {server_max}");
            }
        }
    }

    #[test]
    fn a_short_page_ends_the_walk_without_another_request() {
        let list: Vec<u64> = (1..=10).collect();
        let (_, pages) = walk(&list, 25, 25, true).unwrap();
        assert_eq!(pages, 1);
    }

    #[test]
    fn a_server_that_ignores_the_offset_is_detected() {
        let mut walk = PageWalk::new(3, 100);
        walk.accept(vec![Row(1), Row(2), Row(3)], Some(3)).unwrap();
        let err = walk
            .accept(vec![Row(1), Row(2), Row(3)], Some(3))
            .unwrap_err();
        assert!(matches!(err, PagingError::NotAdvancing { .. }), "{err:?}");
    }

    #[test]
    fn a_row_removed_before_the_boundary_is_detected_not_skipped() {
        let mut walk = PageWalk::new(3, 100);
        walk.accept(vec![Row(1), Row(2), Row(3)], Some(3)).unwrap();
        // Row 2 is removed: offset 2 now starts at row 4, and the anchor (3) is not there.
        let err = walk
            .accept(vec![Row(4), Row(5), Row(6)], Some(3))
            .unwrap_err();
        assert_eq!(err, PagingError::Shifted { offset: 2 });
    }

    #[test]
    fn the_page_cap_gives_a_clear_error() {
        let list: Vec<u64> = (1..=1000).collect();
        let mut walk = PageWalk::new(10, 5);
        let mut result = Ok(());
        while let Some(request) = walk.next_request() {
            let page: Vec<Row> = list
                .iter()
                .skip(request.offset as usize)
                .take(10)
                .map(|id| Row(*id))
                .collect();
            result = walk.accept(page, Some(10));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(PagingError::TooManyPages { max_pages: 5 }));
    }

    #[test]
    fn duplicate_rows_within_a_walk_are_kept_once() {
        let mut walk = PageWalk::new(3, 100);
        walk.accept(vec![Row(1), Row(2), Row(2)], Some(3)).unwrap();
        walk.accept(vec![Row(2), Row(4)], Some(3)).unwrap();
        assert_eq!(walk.next_request(), None);
        assert_eq!(walk.into_rows(), vec![Row(1), Row(2), Row(4)]);
    }
}
