//! The Make API v2 client: endpoints, paging, retries, rate limiting and typed errors.
//!
//! One [`MakeApi`] is built per process (it owns the HTTP connection pool); it hands out a
//! [`MakeClient`] per connection, bound to that connection's host and token.

mod client;
pub mod config;
mod error;
mod listing;
mod paging;
mod rate_limit;
mod read_budget;
mod request;
mod retry;
mod stats;
mod transport;
mod wire;

pub use client::{MakeApi, MakeApiConfig, MakeClient, PageObserver, TEAMS_SCOPE};
pub use error::{ListBound, MakeError};
pub use paging::{Keyed, ListEnd, ListRead, PageEcho, PageWalk, PagingError};
pub use rate_limit::{RateLimitHeaders, RequestBudget};
pub use read_budget::{Allowance, Claim, Counted, ReadBudget, Refusal, Turns};
pub use retry::RetryPolicy;
pub use stats::RequestStats;
pub use transport::{AnswerBody, HttpAnswer, HttpGet, ReqwestTransport, Transport, TransportError};
pub use wire::{
    decode_list_rows, AuthUser, MakeUser, OrganizationListing, OrganizationMember,
    OrganizationRole, OrganizationSummary, Team, TeamMemberRole,
};

/// Environment variable that points every Make request at another scheme and authority (the
/// simulator). Operator configuration only: never read from a connection.
pub const API_BASE_URL_ENV: &str = "MAKESYNC_API_BASE_URL";
