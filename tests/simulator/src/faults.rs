//! How the simulator answers: the documented shapes by default, and switches for the shapes
//! and failures the documentation leaves open or that Make shows in practice.
//!
//! Every default names the fact it models. "Notes" is `../shared/reference/make-api-notes.md`;
//! "independent client" is the open-source Go client behind Make's Steampipe plugin, which the
//! notes describe; "assumed" marks what no source states.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How a list endpoint answers `pg[offset]` / `pg[limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    /// Honours `pg[]`, applies at most `max` rows whatever `pg[limit]` asks, and echoes
    /// `"pg": {"sortBy", "sortDir", "limit", "offset"}` with the limit it applied (notes,
    /// "Pagination": paged responses echo `pg`; the default limit "varies by endpoint").
    Paged { max: u32 },
    /// Honours `pg[]` up to `max` rows but echoes nothing. Assumed: no source shows it; it is
    /// the shape a paged list would have if Make dropped the echo.
    PagedWithoutEcho { max: u32 },
    /// Ignores `pg[]`: the whole list, no `pg` in the answer, the same rows at any offset
    /// (notes, "Pagination": `/users/roles` and `user-organization-roles` document no `pg[]`).
    Unpaged,
    /// Ignores `pg[]` and answers only the first `at` rows, with no sign of the cut. Assumed:
    /// the notes say it is unknown whether large organizations' member lists are cut.
    UnpagedCut { at: u32 },
}

/// A membership change applied once, right after the first page of a member or user list of
/// `organization_id` is served while more rows remain: the next page sees a shifted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageChange {
    pub organization_id: u64,
    pub remove_user: Option<u64>,
    /// `(user id, role id)` to add as an active member; the user must exist.
    pub add_member: Option<(u64, u32)>,
}

/// Faults drawn by seeded chance, request by request (the chaos suite). Each kind is one a
/// client of Make must survive: rate limits (429, 418) with `Retry-After` from a second to a
/// day, 5xx, a connection broken mid-body, an answer slower than the client waits, a body cut
/// short or not JSON, and a member leaving while a list is read.
#[derive(Debug, Clone)]
pub struct Chaos {
    pub rng: fastrand::Rng,
    /// The chance that a request gets a fault.
    pub rate: f64,
    /// How long a slow answer takes: longer than the client's request timeout.
    pub slow: Duration,
    /// The faults injected so far, by kind.
    pub injected: BTreeMap<String, u32>,
}

impl Chaos {
    pub fn new(seed: u64, rate: f64, slow: Duration) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            rate,
            slow,
            injected: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Faults {
    /// Added to every response.
    pub latency: Duration,
    /// Added to every answer of a path (below `/api/v2`), beside `latency`. Not a model of
    /// Make: a test's instrument, to see which requests wait for which answers. Off by
    /// default.
    pub path_latency: BTreeMap<String, Duration>,
    /// Headers added to every answer of a path (below `/api/v2`), replacing Make's own of
    /// the same name. Not a model of Make: a hostile White Label host (e.g. `x-ratelimit-reset`
    /// a year ahead with `x-ratelimit-remaining` 0), which makesync must survive. Off by default.
    pub hostile_headers: BTreeMap<String, Vec<(&'static str, String)>>,
    /// `GET /users?organizationId=`: documented with `pg[offset]`, `pg[limit]`, `pg[sortBy]`,
    /// `pg[sortDir]` (notes); the independent client asks 10000 rows a page and gets them.
    pub users_list: ListShape,
    /// `GET /organizations/{id}/user-organization-roles`: documented with `cols[]` only (notes).
    pub members_list: ListShape,
    /// `GET /users/roles`: documented with `cols[]` and `category` only (notes).
    pub roles_list: ListShape,
    /// `GET /teams?organizationId=`: documented with `cols[]` and `pg[]`; Make's SDK mock
    /// echoes `pg` with limit 10000 (notes, "Teams").
    pub teams_list: ListShape,
    /// `GET /teams/{teamId}/user-team-roles`: `cols[]` and `pg[]` accepted, but the documented
    /// answer shows no `pg` object (notes, "Teams"): whether it pages is open — unpaged by
    /// default, paged behind this switch.
    pub team_roles_list: ListShape,
    /// Whether the member list's `joinedTeamsCount` and `organizationTeamsCount` count
    /// private spaces. Make's API reference shows the fields without saying: assumed either
    /// way (off: only the teams `GET /teams` lists).
    pub team_counts_include_private_spaces: bool,
    /// `GET /organizations`: documented with `pg[]`; the example echoes `pg` with limit 10000
    /// (002).
    pub organizations_list: ListShape,
    /// `GET /admin/organizations`: documented with `pg[]`; the example echoes `pg` with limit
    /// 10000 (003).
    pub admin_organizations_list: ListShape,
    /// Whether a White Label instance administrator's token (`admin:read`) may read the users
    /// of an organization it is not a member of through the per-organization endpoints.
    /// Assumed either way: the documentation does not say (notes, "Finding organizations").
    pub admin_reads_members: bool,
    /// Whether a token created on one zone is accepted on another zone's host. Assumed
    /// either way: undocumented (notes, "Finding organizations"). Off: a token with a `zone`
    /// is answered 401 on every other zone.
    pub tokens_cross_zones: bool,
    /// What `GET /users/roles` answers without `cols[]`: `id` and `name` as Make's API
    /// reference shows (notes), or every field, as the list example of Make's TypeScript SDK
    /// shows (`identifier`, `category`, `subsidiary`, `managementType`, `description`,
    /// `permissions`). The sources disagree: both are modelled.
    pub roles_all_columns: bool,
    /// Paged lists serve every page from offset 0, as a broken server would. Assumed fault.
    pub ignore_offset: bool,
    /// The status for a token that lacks an endpoint's scope: 403 ("access denied / insufficient
    /// rights", notes) by default; the independent client shows Make answering 401 as well.
    pub missing_scope_status: u16,
    /// Whether `GET /users/me` needs the scope `user:read`. Assumed (the independent client
    /// reads `/users/me/api-tokens` only when `user:read` is granted); switch it off to model
    /// an endpoint any valid token may call.
    pub me_requires_user_read: bool,
    /// The status for a spent rate limit: 429 "Requests limit for organization exceeded"
    /// (notes, "Rate limits"); the independent client retries 418 the same way.
    pub rate_limit_status: u16,
    /// The next this-many requests answer 503.
    pub server_errors: u32,
    /// The next this-many requests answer the rate-limit status with `Retry-After` of the
    /// given seconds.
    pub rate_limited: u32,
    pub rate_limited_retry_after: u64,
    /// Assumed fault (a hostile or broken host): the next requests answer the rate-limit
    /// status with these `Retry-After` values, one each and as given (`18446744073709551615`,
    /// `-1`, a date), before `rate_limited` is looked at.
    pub retry_after_values: std::collections::VecDeque<String>,
    /// The next this-many list answers are 200 with a body that does not parse.
    pub malformed_pages: u32,
    /// Applied once, between the first and second page of a list.
    pub change_between_pages: Option<PageChange>,
    /// Whether each organization's per-minute `apiLimit` is enforced (notes, "Rate limits").
    pub enforce_budget: bool,
    /// Organizations in an outage: every request about them (`/organizations/{id}…` or
    /// `?organizationId={id}`) answers 503 until they are taken out again.
    pub unavailable_organizations: BTreeSet<u64>,
    /// Paths (below `/api/v2`) starting with one of these answer 503 until taken out again:
    /// one endpoint down while the others answer. Not a model of Make: a test's instrument.
    pub unavailable_paths: BTreeSet<String>,
    /// Paths (as requested, e.g. `/api/v2/users/roles`) answered 200 with this exact body after
    /// the token and scope checks: contract fixtures and bodies Make might send.
    pub canned_bodies: BTreeMap<String, String>,
    /// Every request answers this redirect status with this `Location`. Assumed fault: a
    /// client must never follow it with the token.
    pub redirect: Option<(u16, String)>,
    /// Faults by seeded chance (the chaos suite); `None` for none.
    pub chaos: Option<Chaos>,
    /// `(organization, token)`: the token is revoked right after a list of the organization
    /// is served, so that a sync in flight loses it.
    pub revoke_during: Option<(u64, String)>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            // Paged; 10000 rows a page are accepted (independent client, notes "Pagination").
            users_list: ListShape::Paged { max: 10_000 },
            // No pg[] documented: the whole list (notes "Pagination").
            members_list: ListShape::Unpaged,
            // Paged with an echo, 10000 rows (Make's SDK mock, notes "Teams").
            teams_list: ListShape::Paged { max: 10_000 },
            // No pg object in the documented answer (notes "Teams").
            team_roles_list: ListShape::Unpaged,
            team_counts_include_private_spaces: false,
            // No pg[] documented: the whole list (notes "Pagination").
            roles_list: ListShape::Unpaged,
            // Paged with an echo, limit 10000 (002, 003 examples).
            organizations_list: ListShape::Paged { max: 10_000 },
            admin_organizations_list: ListShape::Paged { max: 10_000 },
            // Assumed: Make refuses (the stricter answer); tests run both.
            admin_reads_members: false,
            // Assumed: accepted (the looser answer); tests run both.
            tokens_cross_zones: true,
            // Make's API reference: id and name (notes, "Endpoints the sync uses").
            roles_all_columns: false,
            ignore_offset: false,
            // 403 for insufficient rights (notes, "Rate limits and errors").
            missing_scope_status: 403,
            // Assumed: /users/me is a user:read endpoint.
            me_requires_user_read: true,
            // 429 (notes, "Rate limits and errors").
            rate_limit_status: 429,
            server_errors: 0,
            rate_limited: 0,
            rate_limited_retry_after: 7,
            retry_after_values: std::collections::VecDeque::new(),
            malformed_pages: 0,
            change_between_pages: None,
            enforce_budget: true,
            unavailable_organizations: BTreeSet::new(),
            canned_bodies: BTreeMap::new(),
            unavailable_paths: BTreeSet::new(),
            path_latency: BTreeMap::new(),
            hostile_headers: BTreeMap::new(),
            redirect: None,
            chaos: None,
            revoke_during: None,
        }
    }
}
