//! Test harness: a Make simulator and a makesync stack wired to it, sharing one manual clock.
//!
//! Every wait the client makes (backoff, Retry-After, the request budget) moves the shared
//! [`ManualClock`] instead of real time, and the simulator's rate-limit windows read the same
//! clock, so tests about timing run in milliseconds and assert exact waits.

use makesync::clock::{Clock, ManualClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::make::{MakeApi, MakeApiConfig, MakeClient, RetryPolicy};
use makesync::organization::OrganizationId;
use makesync::run::{SyncReason, SyncRun};
use makesync::store::MemoryStore;
use makesync::sync::{SyncEngine, SyncReport};
use makesync::token::ApiToken;
use makesync_simulator::{demo_world, Faults, ListShape, Simulator, World, DEMO_TOKEN};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use makesync_simulator as simulator;

pub mod aws;
pub mod fault_proxy;
pub mod hooked;
pub mod hostile_host;
pub mod make_model;
pub mod measure;
pub mod stream;
pub mod template;

/// Every organization a `discover` answer lists, as a connect request picks it: its id and
/// the host discovery gave it.
pub fn pick_all_discovered(found: &serde_json::Value) -> Vec<serde_json::Value> {
    found["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .map(|o| serde_json::json!({"organizationId": o["id"], "host": o["host"]}))
        .collect()
}

/// The demo world's organizations.
/// The tenant the harness's connections belong to.
pub const TEST_TENANT: &str = "tenant-1";

pub const ACME: u64 = 1001;
pub const GLOBEX: u64 = 2002;
pub const CELONIS: u64 = 3003;

/// One way Make may answer where its documentation leaves the choice open: whether the member
/// list is paged, whole, or whole but cut; and whether a missing scope is a 403 or a 401.
/// Tests written with [`across_api_shapes!`] run once per shape in [`ApiShape::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiShape {
    pub members: ListShape,
    pub missing_scope_status: u16,
}

impl ApiShape {
    /// As documented: the member list whole, a missing scope 403.
    pub const DOCUMENTED: ApiShape = ApiShape {
        members: ListShape::Unpaged,
        missing_scope_status: 403,
    };

    /// The member list paged with a cap below the tests' page size.
    pub const MEMBERS_PAGED: ListShape = ListShape::Paged { max: 7 };
    /// The member list whole but cut: Acme (36 members) loses 11.
    pub const MEMBERS_CUT: ListShape = ListShape::UnpagedCut { at: 25 };

    /// Every shape [`across_api_shapes!`] runs a test in.
    pub const ALL: [ApiShape; 6] = [
        ApiShape::new(ListShape::Unpaged, 403),
        ApiShape::new(ListShape::Unpaged, 401),
        ApiShape::new(ApiShape::MEMBERS_PAGED, 403),
        ApiShape::new(ApiShape::MEMBERS_PAGED, 401),
        ApiShape::new(ApiShape::MEMBERS_CUT, 403),
        ApiShape::new(ApiShape::MEMBERS_CUT, 401),
    ];

    pub const fn new(members: ListShape, missing_scope_status: u16) -> Self {
        Self {
            members,
            missing_scope_status,
        }
    }

    pub fn apply(&self, faults: &mut Faults) {
        faults.members_list = self.members;
        faults.missing_scope_status = self.missing_scope_status;
    }
}

/// Runs each `async fn name(shape: ApiShape) { … }` as six tests, `name::members_*_scope_*`:
/// the member list unpaged, paged or cut, times a missing scope answered 403 or 401.
#[macro_export]
macro_rules! across_api_shapes {
    ($(async fn $name:ident($shape:ident : ApiShape) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::ApiShape;

                async fn run($shape: ApiShape) $body

                #[tokio::test]
                async fn members_unpaged_scope_403() {
                    run(ApiShape::new($crate::simulator::ListShape::Unpaged, 403)).await
                }
                #[tokio::test]
                async fn members_unpaged_scope_401() {
                    run(ApiShape::new($crate::simulator::ListShape::Unpaged, 401)).await
                }
                #[tokio::test]
                async fn members_paged_scope_403() {
                    run(ApiShape::new(ApiShape::MEMBERS_PAGED, 403)).await
                }
                #[tokio::test]
                async fn members_paged_scope_401() {
                    run(ApiShape::new(ApiShape::MEMBERS_PAGED, 401)).await
                }
                #[tokio::test]
                async fn members_cut_scope_403() {
                    run(ApiShape::new(ApiShape::MEMBERS_CUT, 403)).await
                }
                #[tokio::test]
                async fn members_cut_scope_401() {
                    run(ApiShape::new(ApiShape::MEMBERS_CUT, 401)).await
                }
            }
        )*
    };
}

pub struct TestEnv {
    pub simulator: Simulator,
    pub clock: ManualClock,
    pub make: MakeApi,
    pub store: Arc<MemoryStore>,
    pub engine: SyncEngine,
}

impl TestEnv {
    /// The demo world as documented, a small page size (so paged lists span several pages)
    /// and a retry budget that a test's waits fit in.
    pub async fn start() -> Self {
        Self::start_with(demo_world(), |_| {}).await
    }

    /// The demo world answered in `shape`.
    pub async fn start_in(shape: ApiShape) -> Self {
        Self::start_shaped(demo_world(), shape, |_| {}).await
    }

    pub async fn start_with(world: World, configure: impl FnOnce(&mut MakeApiConfig)) -> Self {
        Self::start_shaped(world, ApiShape::DOCUMENTED, configure).await
    }

    pub async fn start_shaped(
        mut world: World,
        shape: ApiShape,
        configure: impl FnOnce(&mut MakeApiConfig),
    ) -> Self {
        shape.apply(&mut world.faults);
        let clock = ManualClock::default();
        let simulator = Simulator::start_on(world, Arc::new(clock.clone()), 0)
            .await
            .expect("simulator starts");
        let mut config = MakeApiConfig {
            base_url_override: Some(simulator.base_url().parse().expect("simulator URL")),
            page_size: 10,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(20),
                max_elapsed: Duration::from_secs(120),
            },
            ..MakeApiConfig::default()
        };
        configure(&mut config);
        let make = MakeApi::new(config, Arc::new(clock.clone())).expect("HTTP client builds");
        let store = Arc::new(MemoryStore::new());
        let engine = SyncEngine::new(
            store.clone(),
            store.clone(),
            store.clone(),
            Arc::new(clock.clone()),
        );
        Self {
            simulator,
            clock,
            make,
            store,
            engine,
        }
    }

    /// The shared manual clock, as the ports take it.
    pub fn clock_arc(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }

    pub fn connection(&self, host: &str, organization: u64) -> Connection {
        let host = MakeHost::parse(host).expect("test host");
        let organization = OrganizationId::new(organization).expect("test organization");
        Connection::new(
            ConnectionId::for_organization(&host, organization),
            makesync::tenant::TenantId::parse(TEST_TENANT).expect("test tenant"),
            host,
            organization,
            self.clock.wall(),
        )
    }

    pub fn client(&self, connection: &Connection, token: &str) -> MakeClient {
        self.make
            .client(
                &connection.host,
                connection.organization_id,
                ApiToken::parse(token).expect("test token"),
            )
            .expect("host is allowed")
    }

    /// Stores `connection` unless it is stored already: a run records its outcome on a stored
    /// connection only.
    pub async fn ensure_stored(&self, connection: &Connection) {
        use makesync::ports::ConnectionStore;
        if self
            .store
            .get_connection(&connection.id)
            .await
            .expect("memory store")
            .is_none()
        {
            self.store
                .create_connection(connection)
                .await
                .expect("memory store");
        }
    }

    /// One sync of `connection` with `token`, as the worker would run it.
    pub async fn sync_with(&self, connection: &Connection, token: &str) -> SyncReport {
        self.ensure_stored(connection).await;
        let client = self.client(connection, token);
        self.engine
            .sync(connection, &client, SyncReason::OnDemand)
            .await
    }

    pub async fn sync(&self, connection: &Connection) -> SyncReport {
        self.sync_with(connection, DEMO_TOKEN).await
    }

    /// Runs a sync as if it had started at `started_at` (for stale-run tests).
    pub async fn sync_started_at(
        &self,
        connection: &Connection,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> SyncReport {
        self.ensure_stored(connection).await;
        let client = self.client(connection, DEMO_TOKEN);
        let run = SyncRun::start(connection.id.clone(), SyncReason::OnDemand, started_at);
        self.engine.sync_run(connection, &client, run).await
    }
}

/// Everything logged while it is installed, at every level, as the JSON lines Lambda writes.
#[derive(Clone, Default)]
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLogs {
    /// Installs the capture for the current thread (a `#[tokio::test]` runs its tasks there).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        keep_every_callsite_interesting();
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Installs the capture with `tracing_subscriber` filter directives, e.g.
    /// `makesync=trace,warn`.
    pub fn install_filtered(&self, directives: &str) -> tracing::subscriber::DefaultGuard {
        keep_every_callsite_interesting();
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// tracing caches, process-wide, whether each log line's callsite is of interest, and computes
/// it against whichever subscriber the thread that gets there first has: a test thread with
/// none (or with a capture filtered to other targets) can cache "never", and another test's
/// capture then misses lines (`make_client.rs`'s budget test once saw 127 of 132 requests
/// logged). A global subscriber that is interested in everything and writes nothing keeps
/// every callsite asked each time; each line still goes to its thread's capture only.
fn keep_every_callsite_interesting() {
    static KEEPER: std::sync::Once = std::sync::Once::new();
    KEEPER.call_once(|| {
        // Taken already (a test set a global subscriber of its own): that one decides.
        let _ = tracing::subscriber::set_global_default(InterestKeeper);
    });
}

/// Interested in every callsite, records nothing (see [`keep_every_callsite_interesting`]).
struct InterestKeeper;

impl tracing::Subscriber for InterestKeeper {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An event bus in memory: every event published, in order.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    events: std::sync::Mutex<Vec<makesync::events::ChangeEvent>>,
}

impl RecordingPublisher {
    pub fn events(&self) -> Vec<makesync::events::ChangeEvent> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl makesync::events::EventPublisher for RecordingPublisher {
    async fn publish(
        &self,
        events: &[makesync::events::ChangeEvent],
    ) -> Result<Vec<bool>, makesync::events::EventError> {
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(vec![true; events.len()])
    }
}
