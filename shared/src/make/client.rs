//! HTTP calls to Make: one request with retries, and the endpoints the sync reads.

use super::error::MakeError;
use super::paging::{Keyed, ListRead, PageWalk, PagingError};
use super::rate_limit::{RateLimitHeaders, RequestBudget};
use super::retry::RetryPolicy;
use super::wire::{
    self, AuthUser, AuthUserResponse, AuthorizationResponse, ListPage, MakeUser, MemberResponse,
    OrganizationListing, OrganizationMember, OrganizationResponse, OrganizationRole,
    OrganizationSummary, RoleResponse, Team, TeamMemberRole,
};
use crate::clock::Clock;
use crate::host::{HostAllowlist, HostError, MakeHost};
use crate::organization::OrganizationId;
use crate::token::ApiToken;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, HOST};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// How makesync talks to Make. Read once at start-up (see [`crate::config`]).
#[derive(Debug, Clone)]
pub struct MakeApiConfig {
    pub allowlist: HostAllowlist,
    /// Replaces scheme and authority of every request (the simulator). Operator setting only.
    pub base_url_override: Option<Url>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Rows asked for per page; Make may apply fewer. 10000 is the most Make is known to
    /// accept (an independent client asks it on every list).
    pub page_size: u32,
    /// A list longer than this many pages fails instead of paging on.
    pub max_pages: u32,
    /// Members a sync may look up one by one when the member list lacks users that `/users`
    /// lists (a cut list). Each is one request of the organization's rate budget.
    pub member_lookups: u32,
    /// A response body larger than this fails the run as a protocol error instead of growing
    /// memory.
    pub max_response_bytes: u64,
    /// Pages of one list read at once, once its length is known (`/users`, from the member
    /// list): each holds a body of up to `max_response_bytes` while it is read.
    pub page_concurrency: u32,
    /// Requests per minute assumed when the organization does not report `license.apiLimit`
    /// (60 is Make's lowest plan).
    pub default_requests_per_minute: u32,
    /// The share of the organization's budget one sync may use, in percent; the rest is left
    /// to the customer's own scenarios.
    pub budget_percent: u32,
}

impl Default for MakeApiConfig {
    fn default() -> Self {
        Self {
            allowlist: HostAllowlist::default(),
            base_url_override: None,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            page_size: 10_000,
            max_pages: 1000,
            member_lookups: 100,
            // A 10,000-row page is 1–2 MB; 16 MB keeps the body and what is decoded from it
            // (measured: about 4× the body) inside a 256 MB function.
            max_response_bytes: 16 * 1024 * 1024,
            page_concurrency: 4,
            default_requests_per_minute: 60,
            budget_percent: 50,
        }
    }
}

impl MakeApiConfig {
    /// The requests per minute a sync allows itself for an organization.
    pub fn requests_per_minute(&self, api_limit: Option<u32>) -> u32 {
        let budget = api_limit.unwrap_or(self.default_requests_per_minute);
        (budget.saturating_mul(self.budget_percent) / 100).max(2)
    }
}

/// Told about every page read, for progress displays.
pub trait PageObserver: Send + Sync {
    fn page_read(&self, endpoint: &str, rows_so_far: usize);
}

/// A list being read: what every read of it sends, and how far it got.
struct Listing<'a> {
    call: &'a Call,
    collection: &'a str,
    extra: &'a [(&'static str, String)],
    label: String,
    rows_so_far: usize,
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

/// Requests a client sent, for the sync-run record.
#[derive(Debug, Default)]
pub struct RequestStats {
    requests: AtomicU32,
    retries: AtomicU32,
    rate_limit_waits: AtomicU32,
    rate_limit_wait_ms: std::sync::atomic::AtomicU64,
    /// Waited to stay within the organization's budget share (not for a 429), summed over
    /// requests, in µs.
    budget_wait_us: std::sync::atomic::AtomicU64,
    /// Spent decoding answers, summed over requests, in µs.
    decode_us: std::sync::atomic::AtomicU64,
}

impl RequestStats {
    /// Waits for the organization's rate limit: to stay within its budget, or because Make
    /// answered 429 or 418.
    pub fn rate_limit_waits(&self) -> u32 {
        self.rate_limit_waits.load(Ordering::Relaxed)
    }

    pub fn rate_limit_wait(&self) -> Duration {
        Duration::from_millis(self.rate_limit_wait_ms.load(Ordering::Relaxed))
    }

    fn waited_for_rate_limit(&self, wait: Duration) {
        self.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
        self.rate_limit_wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
    }

    /// Waited, summed over requests, to stay within the organization's budget share.
    pub fn budget_wait(&self) -> Duration {
        Duration::from_micros(self.budget_wait_us.load(Ordering::Relaxed))
    }

    /// Spent decoding Make's answers, summed over requests (CPU; a benchmark's time split).
    pub fn decoding(&self) -> Duration {
        Duration::from_micros(self.decode_us.load(Ordering::Relaxed))
    }

    fn decoded_in(&self, spent: Duration) {
        self.decode_us
            .fetch_add(spent.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// One organization's request budget, shared by every client of that organization.
type SharedBudget = Arc<Mutex<RequestBudget>>;

/// The process-wide part: the HTTP pool, configuration, clock, and the request budget of each
/// organization this process talks to. Build it once per cold start and ask it for a
/// [`MakeClient`] per connection.
#[derive(Clone)]
pub struct MakeApi {
    http: reqwest::Client,
    config: Arc<MakeApiConfig>,
    clock: Arc<dyn Clock>,
    /// Make's rate limit is per organization, so two syncs of one organization — one after
    /// the other, or two connections of it at once — draw on one budget, not one each.
    budgets: Arc<Mutex<HashMap<(MakeHost, OrganizationId), SharedBudget>>>,
}

impl MakeApi {
    pub fn new(config: MakeApiConfig, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        if let Some(base) = &config.base_url_override {
            tracing::warn!(
                base_url = %base,
                "{} is set: every Make request goes to this address instead of the connection's host",
                super::API_BASE_URL_ENV
            );
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("makesync/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry the token to a host outside the allowlist.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            config: Arc::new(config),
            clock,
            budgets: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn config(&self) -> &MakeApiConfig {
        &self.config
    }

    pub fn allowlist(&self) -> &HostAllowlist {
        &self.config.allowlist
    }

    /// A client for one connection's organization. The host is checked against the allowlist
    /// here, right before a token is bound to it, even if it was checked when the connection
    /// was made.
    pub fn client(
        &self,
        host: &MakeHost,
        organization: OrganizationId,
        token: ApiToken,
    ) -> Result<MakeClient, HostError> {
        let base = self.base_url(host)?;
        let budget = self.budget_of(host, organization);
        Ok(self.bind(host, base, token, budget))
    }

    /// Where requests for `host` go: the host itself over HTTPS, once it is on the allowlist
    /// (or the simulator's loopback address when one is configured).
    fn base_url(&self, host: &MakeHost) -> Result<Url, HostError> {
        self.config.allowlist.check(host)?;
        match &self.config.base_url_override {
            Some(base) => Ok(base.clone()),
            None => Url::parse(&format!("https://{host}"))
                .map_err(|_| HostError::Invalid(crate::excerpt::excerpt(host.as_str()))),
        }
    }

    /// A client for calls about the token's user rather than one organization: the
    /// organizations it reaches (`GET /organizations`) or, for a White Label administrator,
    /// the instance's (`GET /admin/organizations`). Which organization's budget these calls
    /// spend is not documented; the client keeps its own, at the plan floor.
    pub fn account_client(
        &self,
        host: &MakeHost,
        token: ApiToken,
    ) -> Result<MakeClient, HostError> {
        let base = self.base_url(host)?;
        let budget = Arc::new(Mutex::new(RequestBudget::per_minute(
            self.config.requests_per_minute(None),
            self.clock.monotonic(),
        )));
        Ok(self.bind(host, base, token, budget))
    }

    fn bind(
        &self,
        host: &MakeHost,
        base: Url,
        token: ApiToken,
        budget: SharedBudget,
    ) -> MakeClient {
        MakeClient {
            http: self.http.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
            host: host.clone(),
            base,
            token,
            budget,
            stats: RequestStats::default(),
            token_accepted: AtomicBool::new(false),
            plan_reading: tokio::sync::watch::Sender::new(None),
            deadline: None,
            observer: None,
            instance_token: false,
        }
    }

    /// The organization's budget, kept while a client holds it or it has spending to refill;
    /// idle ones are dropped so that the map does not grow with every organization seen.
    fn budget_of(&self, host: &MakeHost, organization: OrganizationId) -> SharedBudget {
        let now = self.clock.monotonic();
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        budgets.retain(|_, budget| {
            Arc::strong_count(budget) > 1
                || !budget
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_idle(now)
        });
        budgets
            .entry((host.clone(), organization))
            .or_insert_with(|| {
                Arc::new(Mutex::new(RequestBudget::per_minute(
                    self.config.requests_per_minute(None),
                    now,
                )))
            })
            .clone()
    }
}

/// Lists of organizations are read by id, ascending: a stable order for offset paging (by
/// name, the default, two organizations may share one).
fn id_ascending() -> [(&'static str, String); 2] {
    [
        ("pg[sortBy]", "id".to_string()),
        ("pg[sortDir]", "asc".to_string()),
    ]
}

fn listing_columns(columns: &[&str]) -> Vec<(&'static str, String)> {
    columns.iter().map(|c| ("cols[]", c.to_string())).collect()
}

/// A call's identity, for the URL and for errors.
struct Call {
    path: String,
    query: Vec<(&'static str, String)>,
    organization: Option<OrganizationId>,
    /// The scope Make checks for this endpoint, named in a 401 or 403.
    scope: &'static str,
}

const ME_PATH: &str = "/users/me";
/// The scope of Make's team endpoints (notes, "Teams"): not one of the integration's two.
pub const TEAMS_SCOPE: &str = "teams:read";

impl Call {
    fn label(&self) -> String {
        let mut label = format!("GET {}", self.path);
        let shown: Vec<String> = self
            .query
            .iter()
            .filter(|(name, _)| !name.starts_with("cols"))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !shown.is_empty() {
            label.push('?');
            label.push_str(&shown.join("&"));
        }
        label
    }
}

/// Ends a read of the organization's plan when dropped, however the read ended.
struct PlanAnswered<'a>(&'a tokio::sync::watch::Sender<Option<String>>);

impl Drop for PlanAnswered<'_> {
    fn drop(&mut self) {
        self.0.send_replace(None);
    }
}

/// One failed attempt, and whether it may be retried.
enum Attempt {
    Final(MakeError),
    Retry {
        error: MakeError,
        server_hint: Option<Duration>,
    },
}

/// A Make client bound to one connection's host and token.
pub struct MakeClient {
    http: reqwest::Client,
    config: Arc<MakeApiConfig>,
    clock: Arc<dyn Clock>,
    host: MakeHost,
    base: Url,
    token: ApiToken,
    budget: SharedBudget,
    stats: RequestStats,
    /// Whether Make has answered any request of this client with success: after that, a 401
    /// is about an endpoint's scope, not the token.
    token_accepted: AtomicBool,
    /// The path of the organization's read while it is in flight: it sets the budget from
    /// the plan.
    plan_reading: tokio::sync::watch::Sender<Option<String>>,
    /// On the clock's monotonic scale: no wait is started and no request sent that could
    /// not end by then.
    deadline: Option<Duration>,
    observer: Option<Arc<dyn PageObserver>>,
    /// The token is a White Label administrator's: a refusal of an organization's data says
    /// that a member's token is needed.
    instance_token: bool,
}

impl MakeClient {
    /// Marks the token as a White Label instance administrator's (see
    /// [`MakeError::InstanceTokenRefused`]).
    pub fn with_instance_token(mut self) -> Self {
        self.instance_token = true;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn PageObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Bounds the client's work by `deadline` (on the clock's monotonic scale): a request, or
    /// a wait before one, that could not end by then fails with [`MakeError::OutOfTime`]
    /// instead of starting.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Fails if waiting `wait` and then sending a request could run past the deadline.
    fn check_deadline(&self, call: &Call, wait: Duration) -> Result<(), MakeError> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let needed = wait.saturating_add(self.config.request_timeout);
        let left = deadline.saturating_sub(self.clock.monotonic());
        if needed > left {
            tracing::warn!(endpoint = %call.label(), needed_ms = needed.as_millis() as u64, left_ms = left.as_millis() as u64, "out of time: not sending");
            return Err(MakeError::OutOfTime {
                endpoint: call.label(),
                needed,
                left,
            });
        }
        Ok(())
    }

    pub fn host(&self) -> &MakeHost {
        &self.host
    }

    pub fn stats(&self) -> &RequestStats {
        &self.stats
    }

    /// How many pages or team lists one read asks at once (see
    /// [`MakeApiConfig::page_concurrency`]).
    pub fn page_concurrency(&self) -> u32 {
        self.config.page_concurrency
    }

    /// How many members one sync may look up one by one (see [`MakeApiConfig::member_lookups`]).
    pub fn member_lookups(&self) -> u32 {
        self.config.member_lookups
    }

    /// The requests per minute this client currently allows itself.
    pub fn requests_per_minute(&self) -> u32 {
        self.lock_budget().limit_per_minute()
    }

    /// `GET /users/me`: who the token belongs to.
    pub async fn get_me(&self) -> Result<AuthUser, MakeError> {
        let call = Self::me_call();
        let body = self.fetch(&call, &[]).await?;
        let response: AuthUserResponse = self.decode(&call, &body)?;
        Ok(response.auth_user)
    }

    /// `GET /users/me/current-authorization`: the scopes this client's token has (Make's
    /// SDK, users.ts). Assumed: any valid token may ask; a host that does not answer it
    /// (an older White Label instance) says nothing about the scopes.
    pub async fn token_scopes(&self) -> Result<Vec<String>, MakeError> {
        let call = Call {
            path: format!("{ME_PATH}/current-authorization"),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        };
        let body = self.fetch(&call, &[]).await?;
        let response: AuthorizationResponse = self.decode(&call, &body)?;
        Ok(response
            .authorization
            .scope
            .into_iter()
            .map(|scope| scope.0)
            .collect())
    }

    fn me_call() -> Call {
        Call {
            path: ME_PATH.to_string(),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        }
    }

    /// `GET /organizations/{id}`. Also sets this client's request budget from the
    /// organization's `license.apiLimit`, and refuses an organization that Make says lives in
    /// another public zone.
    pub async fn get_organization(
        &self,
        organization: OrganizationId,
    ) -> Result<OrganizationSummary, MakeError> {
        let call = Call {
            path: format!("/organizations/{organization}"),
            query: Vec::new(),
            organization: Some(organization),
            scope: "organizations:read",
        };
        // Requests sent beside this one that would wait for the budget wait until it has set
        // the budget from the plan (see `wait_for_budget`), or ended some other way.
        self.plan_reading.send_replace(Some(call.path.clone()));
        let _answered = PlanAnswered(&self.plan_reading);
        let body = self.fetch(&call, &[]).await?;
        let response: OrganizationResponse = self.decode(&call, &body)?;
        let summary = response.organization;
        if let Some(zone) = &summary.zone {
            // Make reports internal zone names on some instances; only a zone that is itself
            // an admitted public host can be compared with ours.
            if let Ok(zone_host) = self.config.allowlist.admit(zone) {
                if zone_host != self.host {
                    return Err(MakeError::WrongZone {
                        host: self.host.to_string(),
                        zone: zone_host.to_string(),
                        organization: organization.to_string(),
                    });
                }
            }
        }
        let per_minute = self.config.requests_per_minute(summary.api_limit());
        self.lock_budget()
            .set_per_minute(per_minute, self.clock.monotonic());
        Ok(summary)
    }

    /// `GET /organizations`: every organization the token's user is a member of, in every
    /// zone (002), with the host that serves each (`zone`, asked explicitly: Make's SDK lists
    /// without it otherwise), paused state and plan limit where Make says. Read across all
    /// pages in either shape (paged with an echo, or whole), by id so that pages are stable.
    pub async fn list_organizations(&self) -> Result<Vec<OrganizationListing>, MakeError> {
        let call = Call {
            path: "/organizations".to_string(),
            query: listing_columns(&["id", "name", "zone", "isPaused", "externalId", "license"]),
            organization: None,
            scope: "organizations:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        self.list_all(&call, "organizations", walk, &id_ascending())
            .await
    }

    /// `GET /admin/organizations`: every organization of the White Label instance this host
    /// serves, deleted ones included (`deleted: true`, 003). Needs `admin:read` and an
    /// instance administrator; anything else is [`MakeError::InstanceAccessDenied`].
    pub async fn list_instance_organizations(&self) -> Result<Vec<OrganizationListing>, MakeError> {
        let call = Call {
            path: "/admin/organizations".to_string(),
            query: listing_columns(&[
                "id",
                "name",
                "zone",
                "isPaused",
                "externalId",
                "license",
                "deleted",
            ]),
            organization: None,
            scope: "admin:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        match self
            .list_all(&call, "organizations", walk, &id_ascending())
            .await
        {
            Err(
                MakeError::Forbidden { endpoint, .. } | MakeError::MissingScope { endpoint, .. },
            ) => Err(MakeError::InstanceAccessDenied {
                endpoint,
                host: self.host.to_string(),
            }),
            other => other,
        }
    }

    /// `GET /users/roles?organizationId={id}`: role ids and their names, the organization's
    /// own (custom) roles included — Make lists those only when asked for an organization
    /// (Make's SDK, roles.ts). No `cols[]`: every field Make gives by default is read (the
    /// kind of role where it is there). Documented without `pg[]`, so it is asked for whole,
    /// in one request; an answer that echoes `pg` is paged on.
    pub async fn list_roles(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<OrganizationRole>, MakeError> {
        let call = Call {
            path: "/users/roles".to_string(),
            query: vec![("organizationId", organization.to_string())],
            organization: None,
            scope: "user:read",
        };
        self.list_all(
            &call,
            "usersRoles",
            PageWalk::whole(self.config.max_pages),
            &[],
        )
        .await
    }

    /// `GET /users/roles/{id}`: one role — one created after the list was read. `None` when
    /// Make does not know it (or will not say: the endpoint needs Make's role manager, which
    /// private instances lack).
    pub async fn get_role(&self, role: u32) -> Result<Option<OrganizationRole>, MakeError> {
        let call = Call {
            path: format!("/users/roles/{role}"),
            query: Vec::new(),
            organization: None,
            scope: "user:read",
        };
        let body = match self.fetch(&call, &[]).await {
            Ok(body) => body,
            Err(MakeError::Rejected {
                status: 400 | 404 | 405,
                ..
            })
            | Err(MakeError::Forbidden { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let response: RoleResponse = self.decode(&call, &body)?;
        Ok(Some(response.role))
    }

    /// `GET /organizations/{id}/user-organization-roles`: who is a member, with which role and
    /// invitation state. Documented without `pg[]`; `pg[limit]` is sent anyway, so that the
    /// answer is read whole if Make ignores it and page by page if Make honours it. No sort
    /// is asked: none is documented for this list. `cols[]` (documented for it) asks only the
    /// three fields read: the list is the largest answer of a sync, one row per member, and
    /// the other fields would more than double it.
    pub async fn list_members(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<OrganizationMember>, MakeError> {
        let call = Call {
            path: format!("/organizations/{organization}/user-organization-roles"),
            query: vec![
                ("cols[]", "userId".to_string()),
                ("cols[]", "usersRoleId".to_string()),
                ("cols[]", "invitation".to_string()),
            ],
            organization: Some(organization),
            scope: "user:read",
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        self.list_all(&call, "userOrganizationRoles", walk, &[])
            .await
    }

    /// `GET /teams?organizationId={id}`, every page, by id ascending: the organization's
    /// teams, private spaces left out (listed only with `includePrivateSpaces`, Make's SDK,
    /// teams.ts: a person's own space gives nobody else access). Scope `teams:read` (the
    /// page's "Required scopes"), which the integration's tokens need not have.
    pub async fn list_teams(&self, organization: OrganizationId) -> Result<Vec<Team>, MakeError> {
        let call = Call {
            path: "/teams".to_string(),
            query: vec![
                ("organizationId", organization.to_string()),
                ("cols[]", "id".to_string()),
                ("cols[]", "name".to_string()),
            ],
            organization: Some(organization),
            scope: TEAMS_SCOPE,
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        self.list_all(&call, "teams", walk, &id_ascending()).await
    }

    /// `GET /teams/{teamId}/user-team-roles`: each member of the team with their team role.
    /// Its documented answer shows no `pg`, though `pg[]` is accepted: `pg[limit]` is sent,
    /// and the answer read whole or page by page, whichever it is. A row about another team
    /// is refused. Scope `teams:read`.
    pub async fn list_team_roles(
        &self,
        organization: OrganizationId,
        team: u64,
    ) -> Result<Vec<TeamMemberRole>, MakeError> {
        let call = Call {
            path: format!("/teams/{team}/user-team-roles"),
            query: Vec::new(),
            organization: Some(organization),
            scope: TEAMS_SCOPE,
        };
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        let rows: Vec<TeamMemberRole> = self.list_all(&call, "userTeamRoles", walk, &[]).await?;
        if let Some(stray) = rows.iter().find(|r| r.team_id.is_some_and(|t| t != team)) {
            return Err(MakeError::Protocol {
                endpoint: call.label(),
                detail: format!(
                    "a row is about team {}, not team {team}",
                    stray.team_id.unwrap_or_default()
                ),
            });
        }
        Ok(rows)
    }

    /// `GET /organizations/{id}/user-organization-roles/{userId}`: one member, or `None` if
    /// the user is not a member of the organization (Make answers 404).
    pub async fn get_member(
        &self,
        organization: OrganizationId,
        user_id: u64,
    ) -> Result<Option<OrganizationMember>, MakeError> {
        let call = Call {
            path: format!("/organizations/{organization}/user-organization-roles/{user_id}"),
            query: Vec::new(),
            organization: Some(organization),
            scope: "user:read",
        };
        let body = match self.fetch(&call, &[]).await {
            Ok(body) => body,
            Err(MakeError::OrganizationNotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let response: MemberResponse = self.decode(&call, &body)?;
        Ok(Some(response.member))
    }

    /// `GET /users?organizationId={id}`, every page, by id ascending: names, emails and last
    /// logins.
    pub async fn list_users(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<MakeUser>, MakeError> {
        self.list_users_expecting(organization, None, std::future::ready(None))
            .await
    }

    /// [`list_users`](Self::list_users), told how many users to expect, so that pages are
    /// read a few at once instead of one after another:
    ///
    /// - `remembered` (the last successful sync's count) is known before any page: the pages
    ///   it covers are asked from the start, the first with them;
    /// - `later` (the member list's length, as it arrives) is used once the first page has
    ///   shown the list is paged and no remembered count is left to go on (none, or the list
    ///   outgrew it): until it answers, the pages are read one after another, and the pages
    ///   it says are left after the one in flight are then read ahead.
    ///
    /// Each page is still checked against the one before (its anchor row) and taken only
    /// where the walk would have asked it, so a wrong number costs at most a few requests,
    /// never a row.
    pub async fn list_users_expecting(
        &self,
        organization: OrganizationId,
        remembered: Option<usize>,
        later: impl std::future::Future<Output = Option<usize>>,
    ) -> Result<Vec<MakeUser>, MakeError> {
        let call = Self::users_call(organization);
        let walk = PageWalk::paged(self.config.page_size, self.config.max_pages);
        let sort = [
            ("pg[sortBy]", "id".to_string()),
            ("pg[sortDir]", "asc".to_string()),
        ];
        self.list_all_expecting(&call, "users", walk, &sort, remembered, later)
            .await
    }

    /// One row of `GET /users?organizationId={id}`: proves the token may read the
    /// organization's users (scope `user:read`) without reading them all.
    pub async fn check_user_access(&self, organization: OrganizationId) -> Result<(), MakeError> {
        let call = Self::users_call(organization);
        let paging = [
            ("pg[offset]", "0".to_string()),
            ("pg[limit]", "1".to_string()),
        ];
        let body = self.fetch(&call, &paging).await?;
        let _: ListPage<MakeUser> = self.decode_page(&call, "users", &body)?;
        Ok(())
    }

    fn users_call(organization: OrganizationId) -> Call {
        Call {
            path: "/users".to_string(),
            query: vec![
                ("organizationId", organization.to_string()),
                ("cols[]", "id".to_string()),
                ("cols[]", "name".to_string()),
                ("cols[]", "email".to_string()),
                ("cols[]", "lastLogin".to_string()),
            ],
            organization: Some(organization),
            scope: "user:read",
        }
    }

    /// Reads a whole list through `walk`; `extra` is sent with every paged read.
    async fn list_all<T: DeserializeOwned + Keyed>(
        &self,
        call: &Call,
        collection: &str,
        walk: PageWalk<T>,
        extra: &[(&'static str, String)],
    ) -> Result<Vec<T>, MakeError> {
        self.list_all_expecting(
            call,
            collection,
            walk,
            extra,
            None,
            std::future::ready(None),
        )
        .await
    }

    /// [`list_all`](Self::list_all), reading pages ahead where a count of the list's rows
    /// says how many there are: a `remembered` one from the start, a `later` one once the
    /// first page is in (see [`list_users_expecting`](Self::list_users_expecting)).
    async fn list_all_expecting<T: DeserializeOwned + Keyed>(
        &self,
        call: &Call,
        collection: &str,
        mut walk: PageWalk<T>,
        extra: &[(&'static str, String)],
        mut remembered: Option<usize>,
        later: impl std::future::Future<Output = Option<usize>>,
    ) -> Result<Vec<T>, MakeError> {
        let mut listing = Listing {
            call,
            collection,
            extra,
            label: call.label(),
            rows_so_far: 0,
        };
        // The count `later` gives, once it has answered. It is waited for only beside a page
        // the walk asks anyway, and only once an answer has shown the list is paged: the pages
        // never stand still for it, and an endpoint that ignores pg[] is never read ahead on
        // its strength.
        let mut later = std::pin::pin!(later);
        let mut later_answered = false;
        let mut counted: Option<usize> = None;
        while let Some(read) = walk.next_request() {
            if let ListRead::Page { offset, limit } = read {
                // The remembered count is used from the first page on: a list read as paged
                // last time is most likely paged now, and if the endpoint ignores pg[] after
                // all, the read-ahead stops at its first answer, having cost at most
                // page_concurrency - 1 requests.
                if let Some(rows) = remembered.take().or_else(|| counted.take()) {
                    let reads = reads_ahead(offset, limit, rows, walk.pages_left());
                    if reads.len() > 1 {
                        self.read_ahead(&mut listing, &mut walk, &reads).await?;
                        continue;
                    }
                }
            }
            let reading = self.read_page(&listing, read);
            let page = if !later_answered && walk.pages() > 0 && walk.paged_answers() {
                tokio::pin!(reading);
                loop {
                    tokio::select! {
                        biased;
                        page = &mut reading => break page,
                        rows = &mut later, if !later_answered => {
                            later_answered = true;
                            counted = rows;
                        }
                    }
                }
            } else {
                reading.await
            };
            self.take_page(&mut listing, &mut walk, page?)?;
        }
        tracing::debug!(endpoint = %listing.label, requests = walk.pages(), "list read");
        Ok(walk.into_rows())
    }

    /// Reads `reads` with at most [`MakeApiConfig::page_concurrency`] in flight (the next is
    /// asked as soon as one answers) and gives each page to the walk in order, while the walk
    /// asks for exactly that read; the first read it does not ask for ends the read-ahead (the
    /// rest are dropped unread or unused).
    async fn read_ahead<T: DeserializeOwned + Keyed>(
        &self,
        listing: &mut Listing<'_>,
        walk: &mut PageWalk<T>,
        reads: &[ListRead],
    ) -> Result<(), MakeError> {
        use futures_util::StreamExt;
        let (call, collection, extra) = (listing.call, listing.collection, listing.extra);
        let mut pages = futures_util::stream::iter(reads.iter().copied())
            .map(|read| async move {
                let page = self.read_page_of(call, collection, extra, read).await;
                (read, page)
            })
            .buffered(self.config.page_concurrency.max(1) as usize);
        while let Some((read, page)) = pages.next().await {
            if walk.next_request() != Some(read) {
                return Ok(());
            }
            self.take_page(listing, walk, page?)?;
        }
        Ok(())
    }

    /// One read of a list, decoded; the body is not kept past its rows.
    async fn read_page<T: DeserializeOwned>(
        &self,
        listing: &Listing<'_>,
        read: ListRead,
    ) -> Result<ListPage<T>, MakeError> {
        self.read_page_of(listing.call, listing.collection, listing.extra, read)
            .await
    }

    async fn read_page_of<T: DeserializeOwned>(
        &self,
        call: &Call,
        collection: &str,
        extra: &[(&'static str, String)],
        read: ListRead,
    ) -> Result<ListPage<T>, MakeError> {
        let mut paging = Vec::new();
        if let ListRead::Page { offset, limit } = read {
            paging.push(("pg[offset]", offset.to_string()));
            paging.push(("pg[limit]", limit.to_string()));
            paging.extend_from_slice(extra);
        }
        let body = self.fetch(call, &paging).await?;
        self.decode_page(call, collection, &body)
    }

    /// Gives a page to the walk, and tells the observer.
    fn take_page<T: Keyed>(
        &self,
        listing: &mut Listing<'_>,
        walk: &mut PageWalk<T>,
        page: ListPage<T>,
    ) -> Result<(), MakeError> {
        let ListPage { rows, echo } = page;
        listing.rows_so_far += rows.len();
        walk.accept(rows, echo).map_err(|e| match e {
            PagingError::Shifted { .. } => MakeError::ListChanged {
                endpoint: listing.label.clone(),
            },
            other => MakeError::Paging {
                endpoint: listing.label.clone(),
                detail: other.to_string(),
            },
        })?;
        if let Some(observer) = &self.observer {
            observer.page_read(&listing.label, listing.rows_so_far);
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, call: &Call, body: &[u8]) -> Result<T, MakeError> {
        let started = std::time::Instant::now();
        let decoded = wire::decode(&call.label(), body).map_err(|e| self.redacted(e));
        self.stats.decoded_in(started.elapsed());
        decoded
    }

    fn decode_page<T: DeserializeOwned>(
        &self,
        call: &Call,
        collection: &str,
        body: &[u8],
    ) -> Result<ListPage<T>, MakeError> {
        let started = std::time::Instant::now();
        let decoded =
            wire::decode_page(&call.label(), collection, body).map_err(|e| self.redacted(e));
        self.stats.decoded_in(started.elapsed());
        decoded
    }

    /// A body Make sent back may quote the request: its text never carries the token.
    fn redacted(&self, error: MakeError) -> MakeError {
        match error {
            MakeError::Protocol { endpoint, detail } => MakeError::Protocol {
                endpoint,
                detail: self.token.redact(&detail),
            },
            other => other,
        }
    }

    /// One GET, with a 401 told apart: Make answers 401 both for a token that is invalid and
    /// for one that lacks the endpoint's scope. Once Make has accepted the token (an earlier
    /// call of this client, or `GET /users/me` asked now), the 401 is about the scope.
    async fn fetch(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
    ) -> Result<Vec<u8>, MakeError> {
        let error = match self.get(call, paging).await {
            Err(MakeError::InvalidToken { endpoint }) => MakeError::InvalidToken { endpoint },
            other => return other,
        };
        let accepted = self.token_accepted.load(Ordering::Relaxed)
            || (call.path != ME_PATH && self.get(&Self::me_call(), &[]).await.is_ok());
        if !accepted {
            return Err(error);
        }
        Err(MakeError::MissingScope {
            endpoint: call.label(),
            scope: call.scope,
        })
    }

    /// One GET with retries, spacing and classification; returns the parsed JSON body.
    async fn get(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
    ) -> Result<Vec<u8>, MakeError> {
        let first_attempt_at = self.clock.monotonic();
        let mut attempts = 0u32;
        loop {
            self.wait_for_budget(call).await?;
            attempts += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if attempts > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            let (error, server_hint) = match self.attempt(call, paging, attempts).await {
                Ok(body) => return Ok(body),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retry { error, server_hint }) => (error, server_hint),
            };
            let delay = self.config.retry.delay(attempts, server_hint);
            let elapsed = self.clock.monotonic().saturating_sub(first_attempt_at);
            if !self.config.retry.allows(attempts, elapsed, delay) {
                tracing::warn!(endpoint = %call.label(), attempts, error = %error, "giving up on Make request");
                return Err(error);
            }
            self.check_deadline(call, delay)?;
            if matches!(error, MakeError::RateLimited { .. }) {
                self.stats.waited_for_rate_limit(delay);
            }
            tracing::warn!(
                endpoint = %call.label(),
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %error,
                "Make request failed, retrying"
            );
            self.clock.sleep(delay).await;
        }
    }

    /// Takes the request's place in the organization's budget and waits as long as the
    /// budget says — or, while this client is reading the organization's plan, until that
    /// answers, when the request would have to wait: the share a client starts with is the
    /// smallest plan's, and the organization's own may not make it wait at all.
    async fn wait_for_budget(&self, call: &Call) -> Result<(), MakeError> {
        loop {
            let now = self.clock.monotonic();
            let wait = self.lock_budget().reserve(now);
            if !wait.is_zero() && self.plan_read_by_another(call) {
                self.lock_budget().unreserve(now + wait);
                let mut plan = self.plan_reading.subscribe();
                let _ = plan.wait_for(Option::is_none).await;
                continue;
            }
            // A window a server reports spent (`X-RateLimit-Reset`) is waited out only as
            // long as a retry may wait, deadline or not: a host that says "a year" does not
            // hold the function for a year.
            if wait > self.config.retry.max_elapsed {
                self.lock_budget().unreserve(now + wait);
                return Err(MakeError::WaitTooLong {
                    endpoint: call.label(),
                    wait,
                    allowed: self.config.retry.max_elapsed,
                });
            }
            if let Err(out_of_time) = self.check_deadline(call, wait) {
                self.lock_budget().unreserve(now + wait);
                return Err(out_of_time);
            }
            if !wait.is_zero() {
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting to stay within the organization's request budget"
                );
                self.stats.waited_for_rate_limit(wait);
                self.stats
                    .budget_wait_us
                    .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                self.clock.sleep(wait).await;
            }
            return Ok(());
        }
    }

    /// Whether the organization's plan is being read, and `call` is not part of that read
    /// (the organization itself, or `GET /users/me` telling its 401 apart).
    fn plan_read_by_another(&self, call: &Call) -> bool {
        self.plan_reading
            .borrow()
            .as_deref()
            .is_some_and(|path| path != call.path && call.path != ME_PATH)
    }

    async fn attempt(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
        attempts: u32,
    ) -> Result<Vec<u8>, Attempt> {
        let endpoint = call.label();
        let request = self.request(call, paging)?;
        // When each request leaves, on the clock the budget counts with: what an operator at
        // TRACE (and a test of the budget) reads a 60 s window from.
        tracing::trace!(
            endpoint = %endpoint,
            attempt = attempts,
            sent_at_ms = self.clock.monotonic().as_millis() as u64,
            "sending a Make request"
        );
        let network = |detail: String| Attempt::Retry {
            error: MakeError::Network {
                endpoint: endpoint.clone(),
                detail: self.token.redact(&detail),
                attempts,
            },
            server_hint: None,
        };
        let mut response = request.send().await.map_err(|e| network(describe(&e)))?;
        let status = response.status();
        let limits = RateLimitHeaders::parse(response.headers(), self.clock.wall());
        self.lock_budget().observe(&limits, self.clock.monotonic());
        if !status.is_success() {
            let body = read_error_body(&mut response).await;
            return Err(self.classify_error(call, status, &limits, &body, attempts));
        }
        let body = self
            .read_body(&endpoint, &mut response)
            .await
            .map_err(|e| match e {
                BodyError::Network(detail) => network(detail),
                BodyError::TooLarge(error) => Attempt::Final(error),
            })?;
        self.token_accepted.store(true, Ordering::Relaxed);
        Ok(body)
    }

    /// The GET for `call`: its URL on this client's base, the token as a sensitive header,
    /// and — when an override address stands in for Make — the zone it stands in for.
    fn request(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
    ) -> Result<reqwest::RequestBuilder, Attempt> {
        let mut url = self.base.clone();
        url.set_path(&format!("/api/v2{}", call.path));
        url.set_query(None);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in call.query.iter().chain(paging.iter()) {
                pairs.append_pair(name, value);
            }
        }
        let mut authorization = HeaderValue::from_str(&format!("Token {}", self.token.expose()))
            .map_err(|_| {
                Attempt::Final(MakeError::InvalidToken {
                    endpoint: call.label(),
                })
            })?;
        authorization.set_sensitive(true);
        let mut request = self
            .http
            .get(url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        if self.config.base_url_override.is_some() {
            request = request.header(HOST, self.host.as_str());
        }
        Ok(request)
    }

    /// A success body, read into one buffer sized from Content-Length, up to
    /// `MAKESYNC_MAX_RESPONSE_MB`: collecting the chunks and joining them would hold a large
    /// body twice.
    async fn read_body(
        &self,
        endpoint: &str,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, BodyError> {
        let max = self.config.max_response_bytes;
        let too_large = |size: u64| {
            BodyError::TooLarge(MakeError::Protocol {
                endpoint: endpoint.to_string(),
                detail: format!(
                    "the response is larger than MAKESYNC_MAX_RESPONSE_MB ({} MB){}",
                    max / (1024 * 1024),
                    if size > 0 {
                        format!(": {size} bytes")
                    } else {
                        String::new()
                    }
                ),
            })
        };
        let expected = response.content_length().unwrap_or(0);
        if expected > max {
            return Err(too_large(expected));
        }
        let mut body = Vec::with_capacity(expected as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BodyError::Network(describe(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_large(0));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// What a status other than 2xx means, and whether it is worth another attempt.
    fn classify_error(
        &self,
        call: &Call,
        status: reqwest::StatusCode,
        limits: &RateLimitHeaders,
        body: &[u8],
        attempts: u32,
    ) -> Attempt {
        let endpoint = call.label();
        let make_message = error_message(body).map(|m| self.token.redact(&m));
        let organization = call.organization.map(|id| id.to_string());
        let error = match status.as_u16() {
            403 if self.instance_token && organization.is_some() => {
                MakeError::InstanceTokenRefused {
                    endpoint,
                    organization: organization.unwrap_or_default(),
                    status: status.as_u16(),
                }
            }
            401 => MakeError::InvalidToken { endpoint },
            403 => MakeError::Forbidden {
                endpoint,
                scope: call.scope,
                organization,
                make_message,
            },
            404 if organization.is_some() => MakeError::OrganizationNotFound {
                endpoint,
                host: self.host.to_string(),
                organization: organization.unwrap_or_default(),
            },
            // Make answers 418 for a spent rate limit too (an independent client retries it
            // exactly like 429).
            429 | 418 => {
                return Attempt::Retry {
                    error: MakeError::RateLimited {
                        endpoint,
                        status: status.as_u16(),
                        retry_after: limits.wait_hint(),
                    },
                    server_hint: limits.wait_hint(),
                }
            }
            500..=599 => {
                return Attempt::Retry {
                    error: MakeError::Server {
                        endpoint,
                        status: status.as_u16(),
                        attempts,
                    },
                    server_hint: limits.retry_after,
                }
            }
            other => MakeError::Rejected {
                endpoint,
                status: other,
                make_message,
            },
        };
        Attempt::Final(error)
    }

    fn lock_budget(&self) -> std::sync::MutexGuard<'_, RequestBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a success body could not be read.
enum BodyError {
    /// The connection broke while reading (described, URL left out).
    Network(String),
    /// Past the bound: final.
    TooLarge(MakeError),
}

/// An error body, read only as far as its message can be: a host that answers errors of many
/// megabytes costs 64 KiB, not their size.
async fn read_error_body(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    body
}

/// A transport error in words, without the URL (which is ours and adds nothing).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while reading the response".to_string()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Unicode's format characters that change how text reads without showing: bidi embeddings,
/// overrides and isolates, zero-width spaces and joiners, the soft hyphen and the BOM.
fn is_format_character(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// The most of an error body that is read: Make's error bodies are a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The part of Make's error body we use: a human `message` (and often `detail`). Other
/// fields are skipped without being built.
#[derive(serde::Deserialize)]
struct ErrorBody {
    message: Option<String>,
    detail: Option<String>,
}

/// Make's error message, cut to a few hundred characters, with control and format characters
/// (bidi overrides, zero-width ones) dropped and any word with an `@` (an email) replaced: the
/// text is a host's — a hostile White Label host's too — and ends up in answers, `lastError`,
/// run records and logs.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let clean = |text: &str| -> String {
        let shown: String = text
            .chars()
            .filter(|c| !c.is_control() && !is_format_character(*c))
            .take(300)
            .collect();
        shown
            .split(' ')
            .map(|word| if word.contains('@') { "[email]" } else { word })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut text = clean(&parsed.message?);
    if let Some(detail) = parsed.detail {
        text.push_str(" — ");
        text.push_str(&clean(&detail));
    }
    Some(text)
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
    }

    /// F10: a host's error text keeps no bidi override, zero-width character or email.
    #[test]
    fn an_error_message_keeps_no_bidi_control_or_email() {
        let body = "{\"message\":\"Access \u{202E}denied\u{200B}\",\"detail\":\"ask mallory@evil.example now\"}";
        let message = error_message(body.as_bytes()).unwrap();
        assert_eq!(message, "Access denied — ask [email] now");
    }
}
