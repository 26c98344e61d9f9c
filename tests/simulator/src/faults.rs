//! Switches that make the simulator misbehave the way Make can.

use std::time::Duration;

/// A membership change applied once, right after the first page of a member or user list of
/// `organization_id` is served: the next page then sees a shifted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageChange {
    pub organization_id: u64,
    pub remove_user: Option<u64>,
    /// `(user id, role id)` to add as an active member; the user must exist.
    pub add_member: Option<(u64, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Added to every response.
    pub latency: Duration,
    /// The most rows a page holds, whatever `pg[limit]` asks.
    pub max_page_size: u32,
    /// Whether lists echo `pg` (with the applied limit).
    pub echo_page: bool,
    /// Serve every page from offset 0, as a broken server would.
    pub ignore_offset: bool,
    /// The next this-many requests answer 503.
    pub server_errors: u32,
    /// The next this-many requests answer 429 with `Retry-After` of the given seconds.
    pub rate_limited: u32,
    pub rate_limited_retry_after: u64,
    /// The next this-many list pages answer 200 with a body that does not parse.
    pub malformed_pages: u32,
    /// Applied once, between the first and second page of a list.
    pub change_between_pages: Option<PageChange>,
    /// Whether each organization's per-minute `apiLimit` is enforced.
    pub enforce_budget: bool,
    /// Organizations in an outage: every request about them (`/organizations/{id}…` or
    /// `?organizationId={id}`) answers 503 until they are taken out again.
    pub unavailable_organizations: std::collections::BTreeSet<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            max_page_size: 25,
            echo_page: true,
            ignore_offset: false,
            server_errors: 0,
            rate_limited: 0,
            rate_limited_retry_after: 7,
            malformed_pages: 0,
            change_between_pages: None,
            enforce_budget: true,
            unavailable_organizations: Default::default(),
        }
    }
}
