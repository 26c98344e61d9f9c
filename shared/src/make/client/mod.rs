//! The Make client: [`MakeApi`] once per process, a [`MakeClient`] per connection, and the
//! endpoints the sync reads. One request's retries and classification live in `request.rs`,
//! reading a whole list in `listing.rs`, the HTTP port in `transport.rs`. This file binds a client
//! to its host, token and budgets; the endpoints live apart, by what they read: [`organizations`]
//! (and who the token is), [`members`] (and roles), [`teams`] and [`users`].

mod members;
mod organizations;
mod teams;
mod users;

use super::error::MakeError;
use super::rate_limit::RequestBudget;
use super::read_budget::ReadBudget;
use super::retry::RetryPolicy;
use super::stats::RequestStats;
use super::transport::{ReqwestTransport, Transport};
use crate::clock::Clock;
use crate::host::{HostAllowlist, HostError, MakeHost};
use crate::memory_budget::MemoryShare;
use crate::organization::OrganizationId;
use crate::token::ApiToken;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
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
    /// The most rows one list may hold (each id once): a list past it fails as
    /// [`MakeError::ListTooLong`] at the page that passes it, not once it is whole. In a
    /// Lambda function it follows the function's memory ([`crate::config`]).
    pub max_list_rows: usize,
    /// The most one client's lists may hold at once — one sync's: the answers being read,
    /// and the rows kept (their answers' bytes and their own size). Checked as each answer
    /// arrives; in the worker, the sync's share of the function's memory bounds them too.
    pub max_read_bytes: u64,
    /// Members a sync may look up one by one when the member list lacks users that `/users`
    /// lists (a cut list). Each is one request of the organization's rate budget.
    pub member_lookups: u32,
    /// A response body larger than this fails the run as a protocol error instead of growing
    /// memory.
    pub max_response_bytes: u64,
    /// Pages of one list read at once, once its length is known (`/users`, from the member
    /// list), and team member lists read at once. What they hold is counted on the read
    /// budget ([`max_read_bytes`](Self::max_read_bytes)): past it, an answer waits for its
    /// turn to be read.
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
            // Outside Lambda (the CLI, the demo): far above any Make organization seen, and
            // still a bound.
            max_list_rows: 1_000_000,
            max_read_bytes: 512 * 1024 * 1024,
            member_lookups: 100,
            // A 10,000-row page is 1–2 MB; 16 MB keeps the body and what is decoded from it
            // (measured: about 4× the body) inside a 256 MB function.
            max_response_bytes: 16 * 1024 * 1024,
            page_concurrency: 16,
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

/// One organization's request budget, shared by every client of that organization.
type SharedBudget = Arc<Mutex<RequestBudget>>;

/// The process-wide part: the HTTP pool, configuration, clock, and the request budget of each
/// organization this process talks to. Build it once per cold start and ask it for a
/// [`MakeClient`] per connection.
#[derive(Clone)]
pub struct MakeApi {
    transport: Arc<dyn Transport>,
    config: Arc<MakeApiConfig>,
    clock: Arc<dyn Clock>,
    /// Make's rate limit is per organization, so two syncs of one organization — one after
    /// the other, or two connections of it at once — draw on one budget, not one each.
    budgets: Arc<Mutex<HashMap<(MakeHost, OrganizationId), SharedBudget>>>,
    /// The deadline every client it makes works within (see [`MakeClient::with_deadline`]).
    deadline: Option<Duration>,
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
        let transport = ReqwestTransport::new(config.request_timeout, config.connect_timeout)?;
        Ok(Self::with_transport(config, clock, Arc::new(transport)))
    }

    /// A Make API whose requests go through `transport` instead of HTTPS: a model of Make
    /// in tests, which answers without sockets in the order it chooses.
    pub fn with_transport(
        config: MakeApiConfig,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            transport,
            config: Arc::new(config),
            clock,
            budgets: Arc::new(Mutex::new(HashMap::new())),
            deadline: None,
        }
    }

    /// The same API whose clients all work within `deadline` (on the clock's monotonic
    /// scale): what one invocation of a function that answers its caller may spend on Make.
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
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
            transport: self.transport.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
            host: host.clone(),
            base,
            token,
            budget,
            stats: RequestStats::default(),
            token_accepted: AtomicBool::new(false),
            plan_reading: tokio::sync::watch::Sender::new(None),
            deadline: self.deadline,
            observer: None,
            read_budget: Arc::new(ReadBudget::new(self.config.max_read_bytes, None)),
            instance_token: false,
            teams_unreadable: false,
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

/// A call's identity, for the URL and for errors.
pub(super) struct Call {
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub organization: Option<OrganizationId>,
    /// The scope Make checks for this endpoint, named in a 401 or 403.
    pub scope: &'static str,
}

pub(super) const ME_PATH: &str = "/users/me";
/// The scope of Make's team endpoints (notes, "Teams"): not one of the integration's two.
pub const TEAMS_SCOPE: &str = "teams:read";

impl Call {
    pub fn label(&self) -> String {
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

/// A Make client bound to one connection's host and token.
pub struct MakeClient {
    pub(super) transport: Arc<dyn Transport>,
    pub(super) config: Arc<MakeApiConfig>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) host: MakeHost,
    pub(super) base: Url,
    pub(super) token: ApiToken,
    pub(super) budget: SharedBudget,
    pub(super) stats: RequestStats,
    /// Whether Make has answered any request of this client with success: after that, a 401
    /// is about an endpoint's scope, not the token.
    pub(super) token_accepted: AtomicBool,
    /// The path of the organization's read while it is in flight: it sets the budget from
    /// the plan.
    pub(super) plan_reading: tokio::sync::watch::Sender<Option<String>>,
    /// On the clock's monotonic scale: no wait is started and no request sent that could
    /// not end by then.
    pub(super) deadline: Option<Duration>,
    pub(super) observer: Option<Arc<dyn PageObserver>>,
    /// What this client's reads hold: one sync's lists, together.
    pub(super) read_budget: Arc<ReadBudget>,
    /// The token is a White Label administrator's: a refusal of an organization's data says
    /// that a member's token is needed.
    pub(super) instance_token: bool,
    /// Known to lack `teams:read` (connect asked Make): team access is not asked for.
    pub(super) teams_unreadable: bool,
}

impl MakeClient {
    /// Marks the token as a White Label instance administrator's (see
    /// [`MakeError::InstanceTokenRefused`]).
    pub fn with_instance_token(mut self) -> Self {
        self.instance_token = true;
        self
    }

    /// Marks the token as known to lack `teams:read`: team access costs no request.
    pub fn with_teams_unreadable(mut self) -> Self {
        self.teams_unreadable = true;
        self
    }

    /// Whether the token is known to lack `teams:read`.
    pub fn teams_unreadable(&self) -> bool {
        self.teams_unreadable
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

    /// How many requests the organization's share allows from now to the deadline, counted
    /// from the plan alone (its requests a minute, over the minutes left), not from what this
    /// or another run spent in the last minute — so that the answer is the same at every run
    /// of the same plan, and what depends on it does not come and go; `None` without a
    /// deadline. Asked while the organization's plan is being read, it waits for that answer:
    /// the share a client starts with is the smallest plan's.
    pub async fn requests_affordable(&self) -> Option<u64> {
        let deadline = self.deadline?;
        let mut plan = self.plan_reading.subscribe();
        let _ = plan.wait_for(Option::is_none).await;
        let left = deadline
            .saturating_sub(self.config.request_timeout)
            .saturating_sub(self.clock.monotonic());
        let per_minute = u64::from(self.lock_budget().limit_per_minute());
        Some(per_minute.saturating_mul(left.as_secs() / 60 + 1))
    }

    /// Fails if waiting `wait` and then sending a request could run past the deadline.
    pub(super) fn check_deadline(&self, call: &Call, wait: Duration) -> Result<(), MakeError> {
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

    /// What this client's reads hold (see [`MakeApiConfig::max_read_bytes`]).
    pub fn read_budget(&self) -> &Arc<ReadBudget> {
        &self.read_budget
    }

    /// Bounds this client's reads by `share` too, the sync's share of the function's memory,
    /// which they grow while the budget has memory free. Set before anything is read.
    pub fn with_memory_share(mut self, share: Arc<MemoryShare>) -> Self {
        self.read_budget = Arc::new(ReadBudget::new(self.config.max_read_bytes, Some(share)));
        self
    }

    /// How many members one sync may look up one by one (see [`MakeApiConfig::member_lookups`]).
    pub fn member_lookups(&self) -> u32 {
        self.config.member_lookups
    }

    /// The requests per minute this client currently allows itself.
    pub fn requests_per_minute(&self) -> u32 {
        self.lock_budget().limit_per_minute()
    }

    pub(super) fn lock_budget(&self) -> std::sync::MutexGuard<'_, RequestBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }
}
