//! Cursor pagination: `limit` and `cursor` in, `pagination {has_more_results, next_cursor,
//! total_count}` out (models.py `PaginationOutput`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An opaque position in a listing, handed back by the server.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor the server sent earlier (e.g. one an agent passed back).
    pub fn new(cursor: impl Into<String>) -> Self {
        Self(cursor.into())
    }

    /// The cursor as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A page size the API accepts: 1 to 100.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PageLimit(u32);

/// A page size outside 1..=100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and 100, got {0}")]
pub struct InvalidPageLimit(pub u32);

impl PageLimit {
    /// The largest page the API serves.
    pub const MAX: PageLimit = PageLimit(100);
    /// The page size the API uses when none is given.
    pub const DEFAULT: PageLimit = PageLimit(20);

    /// Checks the range.
    pub fn new(limit: u32) -> Result<Self, InvalidPageLimit> {
        if (1..=100).contains(&limit) {
            Ok(Self(limit))
        } else {
            Err(InvalidPageLimit(limit))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for PageLimit {
    type Error = InvalidPageLimit;

    fn try_from(limit: u32) -> Result<Self, Self::Error> {
        Self::new(limit)
    }
}

impl From<PageLimit> for u32 {
    fn from(limit: PageLimit) -> Self {
        limit.0
    }
}

/// The `pagination` object of every listing.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Pagination {
    /// Pass as `cursor` to get the next page.
    #[serde(default)]
    pub next_cursor: Option<Cursor>,
    /// Whether there are more results to page through.
    pub has_more_results: bool,
    /// How many results match, when the server counts them.
    #[serde(default)]
    pub total_count: Option<u64>,
}

/// One page of a listing.
#[derive(Clone, PartialEq, Debug)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Where the listing goes on.
    pub pagination: Pagination,
}

impl<T> Page<T> {
    /// The cursor of the next page, if there is one.
    pub fn next_cursor(&self) -> Option<&Cursor> {
        if self.pagination.has_more_results {
            self.pagination.next_cursor.as_ref()
        } else {
            None
        }
    }

    /// Whether this is the last page.
    pub fn is_last(&self) -> bool {
        self.next_cursor().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(101).is_err());
        assert_eq!(PageLimit::new(100).unwrap(), PageLimit::MAX);
        assert!(serde_json::from_str::<PageLimit>("500").is_err());
    }

    #[test]
    fn last_page_has_no_next_cursor_even_if_one_is_sent() {
        let page = Page::<u8> {
            items: vec![],
            pagination: Pagination {
                next_cursor: Some(Cursor::new("stale")),
                has_more_results: false,
                total_count: Some(3),
            },
        };
        assert!(page.is_last());
    }
}
