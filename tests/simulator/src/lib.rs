//! A Make API v2 simulator for the demo and the tests.
//!
//! It serves, on 127.0.0.1, the endpoints makesync reads — `/users/me`, `/organizations` (the
//! token's user's organizations, every zone), `/admin/organizations` (a White Label instance's,
//! deleted ones included, for its administrators), `/organizations/{id}`, `/users/roles`
//! (an organization's own roles only when asked with its `organizationId`, and its license has
//! `customRoles`), `/users/roles/{id}`,
//! `/organizations/{id}/user-organization-roles` (and `…/{userId}`), `/users?organizationId=` —
//! the way Make documents them: `/users` and both organization lists paged with `pg[]` and an
//! echo, the roles and member lists whole in one answer. Tokens have scopes, users have access
//! to organizations, organizations live in zones (read from the `Host` header), and each
//! organization has a per-minute budget with `X-RateLimit-*` headers and 429 past it.
//! [`Faults`] switches model what the documentation leaves open (a paged or cut member list,
//! 401 for a missing scope, 418 for a rate limit, an administrator's token reading members, a
//! token accepted on another zone) and what goes wrong (latency, 5xx bursts,
//! malformed bodies, members changing between pages); `faults.rs` names the source of every
//! default. Its clock is a [`makesync::clock::Clock`], so tests can share a `ManualClock` with
//! the client and see rate-limit windows move with the client's waits.

mod faults;
pub mod lambda_runtime;
mod routes;
mod world;

pub use faults::{Chaos, Faults, ListShape, PageChange};
pub use world::{
    demo_world, SimCustomRole, SimMembership, SimOrganization, SimTeam, SimUser, TokenGrant, World,
    DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TEAMS_TOKEN, DEMO_TOKEN,
};

use makesync::clock::{Clock, SystemClock};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub host: Option<String>,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub status: u16,
    /// The simulator clock's monotonic time when it was served.
    pub at: std::time::Duration,
}

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub seen: Mutex<Vec<SeenRequest>>,
    pub clock: Arc<dyn Clock>,
    /// By path: the requests being answered (a test's instrument: whether a client reads
    /// pages concurrently).
    pub in_flight: Mutex<std::collections::HashMap<String, InFlight>>,
}

/// The requests for one path being answered, counted since the log was last cleared.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct InFlight {
    pub now: usize,
    /// The most there were at once.
    pub most: usize,
    /// How many there were (the answered one included) when the first was answered.
    pub at_first_answer: Option<usize>,
}

/// The requests a simulator has served, readable while it runs.
#[derive(Clone)]
pub struct RequestLog(Arc<Shared>);

impl RequestLog {
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.0
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts on 127.0.0.1 with a random port and the real clock.
    pub async fn start(world: World) -> std::io::Result<Self> {
        Self::start_on(world, Arc::new(SystemClock::default()), 0).await
    }

    /// Starts on 127.0.0.1:`port` (0 for a random one) with the given clock.
    pub async fn start_on(world: World, clock: Arc<dyn Clock>, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            seen: Mutex::new(Vec::new()),
            clock,
            in_flight: Mutex::new(std::collections::HashMap::new()),
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = routes::router(shared.clone());
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok(Self {
            shared,
            address,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What to put in `MAKESYNC_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Reads or changes the simulated world (members, roles, logins, faults).
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most requests for `path` (e.g. `/api/v2/users`) that were being answered at one
    /// time.
    pub fn most_in_flight(&self, path: &str) -> usize {
        self.shared
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .map_or(0, |gauge| gauge.most)
    }

    /// How many requests for `path` were being answered when the first of them was: how
    /// many a client asked before it had any answer.
    pub fn in_flight_at_first_answer(&self, path: &str) -> usize {
        self.shared
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .and_then(|gauge| gauge.at_first_answer)
            .unwrap_or(0)
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle on the requests served, to read them from elsewhere while it runs.
    pub fn request_log(&self) -> RequestLog {
        RequestLog(self.shared.clone())
    }

    pub fn clear_requests(&self) {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for gauge in self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            *gauge = InFlight {
                now: gauge.now,
                ..InFlight::default()
            };
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.stop_now();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}
