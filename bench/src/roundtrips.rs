//! Round trips: a sync of 10,000 and of 100,000 users, first and unchanged, on each of Make's
//! plans (`apiLimit` 60 to 1000), by makesync (the engine on SQLite, in this process) and by an
//! independent Python client (`bench/python/make_users_sync.py`, from Make's documentation
//! only), side by side against one simulator (20 ms a request unless `MAKESYNC_BENCH_LATENCY_MS`
//! says otherwise, 10,000-row pages); beside them the network floor of the case — the same
//! requests with nothing done to the answers, in the fewest round trips the case allows. Each
//! measured run starts the organization's minute afresh in the simulator, as a minute's wait
//! would: three clients and five repeats in one minute would spend a Core plan's 60 requests
//! and measure Make's 429s, not the sync.
//!
//! makesync's time is split: reading Make (of it, summed over requests: waits on the request
//! budget and decoding), storing, and the rest (planning, digests, bookkeeping: CPU).

use crate::process::run as run_to_end;
use crate::{mb, print_table, Organization};
use makesync::clock::{Clock, SystemClock};
use makesync::config::make_api_config_from_env;
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::make::{MakeApi, MakeApiConfig};
use makesync::organization::OrganizationId;
use makesync::ports::ConnectionStore;
use makesync::run::SyncReason;
use makesync::store::SqliteStore;
use makesync::sync::{SyncEngine, SyncTimings, DEFAULT_REMOVED_USER_RETENTION_DAYS};
use makesync::tenant::TenantId;
use makesync::token::ApiToken;
use makesync_simulator::{Simulator, DEMO_TOKEN};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each case is run this many times; the table shows the median.
const REPEATS: usize = 5;
/// Rows a page: what both clients ask.
const PAGE: u64 = 10_000;

pub async fn run(simulator: &Simulator, organizations: &[Organization]) -> anyhow::Result<()> {
    let python = python()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/make_users_sync.py");
    let mut rows = Vec::new();
    let mut splits = Vec::new();
    for organization in organizations {
        // A first sync knows no count; an unchanged one remembers the last (see network_floor).
        let mut floors = Vec::new();
        for count_known in [false, true] {
            floors.push(median(
                repeat(|| {
                    start_minute_afresh(simulator, organization);
                    network_floor(
                        simulator,
                        organization.id,
                        organization.members,
                        count_known,
                    )
                })
                .await?,
            ));
        }
        let mut makesync_runs: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new()];
        let mut python_runs: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new()];
        for _ in 0..REPEATS {
            let dir = tempfile_dir()?;
            start_minute_afresh(simulator, organization);
            let ours = sync_twice(simulator, organization, &dir).await?;
            start_minute_afresh(simulator, organization);
            let theirs = python_twice(&python, &script, simulator, organization, &dir).await?;
            for (pass, (ours, theirs)) in ours.into_iter().zip(theirs).enumerate() {
                makesync_runs[pass].push(ours);
                python_runs[pass].push(theirs);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        for (pass, name) in ["first", "unchanged"].iter().enumerate() {
            let ours = median_by_wall(&makesync_runs[pass]);
            let theirs = median_by_wall(&python_runs[pass]);
            rows.push(comparison_row(
                organization,
                name,
                &ours,
                &theirs,
                floors[pass],
            ));
            if let Some(timings) = ours.timings {
                splits.push(split_row(organization, name, &timings));
            }
        }
    }
    print_tables(&rows, &splits);
    Ok(())
}

fn comparison_row(
    organization: &Organization,
    name: &str,
    ours: &Measured,
    theirs: &Measured,
    floor: Duration,
) -> Vec<String> {
    vec![
        organization.members.to_string(),
        plan(organization),
        name.to_string(),
        format!("{} · {}", ours.requests, theirs.requests),
        ms(ours.wall),
        ms(theirs.wall),
        format!(
            "{:.1}×",
            theirs.wall.as_secs_f64() / ours.wall.as_secs_f64()
        ),
        ms(floor),
        format!("{:.2}×", ours.wall.as_secs_f64() / floor.as_secs_f64()),
        format!("{:.1}×", theirs.wall.as_secs_f64() / floor.as_secs_f64()),
        mb(theirs.peak_rss_kib),
    ]
}

fn split_row(organization: &Organization, name: &str, t: &SyncTimings) -> Vec<String> {
    vec![
        organization.members.to_string(),
        plan(organization),
        name.to_string(),
        ms(t.total),
        ms(t.reading.saturating_sub(t.decoding.min(t.reading))),
        ms(t.budget_wait),
        ms(t.decoding),
        ms(t.storing),
        ms(t.total.saturating_sub(t.reading + t.storing)),
    ]
}

fn print_tables(rows: &[Vec<String>], splits: &[Vec<String>]) {
    print_table(
        "Round trips: makesync and an independent Python client, side by side (median of 5)",
        &[
            "users",
            "plan (apiLimit)",
            "sync",
            "Make requests (makesync · Python)",
            "makesync",
            "Python",
            "makesync faster by",
            "network floor",
            "makesync / floor",
            "Python / floor (a ceiling on \"faster by\")",
            "Python's peak RSS",
        ],
        rows,
    );
    print_table(
        "Where makesync's time goes (the median run above)",
        &[
            "users",
            "plan (apiLimit)",
            "sync",
            "total",
            "reading Make, less decoding",
            "of it: budget waits (Σ)",
            "decoding (Σ)",
            "store",
            "rest (plan, digests, join: CPU)",
        ],
        splits,
    );
}

fn plan(organization: &Organization) -> String {
    format!(
        "{} ({})",
        organization.plan.name, organization.plan.api_limit
    )
}

/// The simulator forgets the organization's requests of this minute (see the module's doc).
fn start_minute_afresh(simulator: &Simulator, organization: &Organization) {
    simulator.world().start_minute_afresh(organization.id);
}

/// One sync's measure.
#[derive(Debug, Clone)]
struct Measured {
    wall: Duration,
    requests: u64,
    peak_rss_kib: u64,
    timings: Option<SyncTimings>,
}

/// makesync's first and unchanged sync of the organization into a new SQLite file, each with a
/// new Make client (its request budget as a cold start has it).
async fn sync_twice(
    simulator: &Simulator,
    organization: &Organization,
    dir: &Path,
) -> anyhow::Result<Vec<Measured>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let store = Arc::new(SqliteStore::open(&dir.join("makesync.db"))?);
    let host = MakeHost::parse("eu1.make.com")?;
    let id = OrganizationId::parse(&organization.id.to_string())?;
    let mut connection = Connection::new(
        ConnectionId::parse(&format!("bench-{}", organization.id))?,
        TenantId::local(),
        host.clone(),
        id,
        clock.wall(),
    );
    // As connect stores it: the integration's token, without `teams:read`.
    connection.teams_readable = Some(false);
    store.create_connection(&connection).await?;
    let mut measured = Vec::new();
    for _ in 0..2 {
        // The configuration as the functions read it (`MAKESYNC_PAGE_CONCURRENCY` and the
        // rest), pointed at the simulator.
        let config = MakeApiConfig {
            base_url_override: Some(simulator.base_url().parse()?),
            ..make_api_config_from_env()?
        };
        let make = MakeApi::new(config, clock.clone())?;
        let mut client = make.client(&host, id, ApiToken::parse(DEMO_TOKEN)?)?;
        // As the worker does for a token known to lack `teams:read`: no team request.
        if connection.teams_readable == Some(false) {
            client = client.with_teams_unreadable();
        }
        // With the retention of removed users the CLI and the functions apply by default:
        // every write applies it.
        let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock.clone())
            .with_removed_user_retention_days(DEFAULT_REMOVED_USER_RETENTION_DAYS);
        // As the worker does: the connection as stored, with what the last sync recorded.
        let connection = store
            .get_connection(&connection.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the benchmark's connection is gone"))?;
        let started = Instant::now();
        let report = engine
            .sync(&connection, &client, SyncReason::OnDemand)
            .await;
        let wall = started.elapsed();
        anyhow::ensure!(
            report.run.error.is_none(),
            "makesync's sync of {} users failed: {:?}",
            organization.members,
            report.run.error
        );
        measured.push(Measured {
            wall,
            requests: u64::from(report.run.make_requests),
            // This process holds the simulator too: the CLI part measures makesync's memory.
            peak_rss_kib: 0,
            timings: Some(report.timings),
        });
    }
    Ok(measured)
}

/// The Python client's first and unchanged sync into a new SQLite file of its own; its time
/// is what it measures around its work (the interpreter's start left out).
async fn python_twice(
    python: &Path,
    script: &Path,
    simulator: &Simulator,
    organization: &Organization,
    dir: &Path,
) -> anyhow::Result<Vec<Measured>> {
    let mut measured = Vec::new();
    for _ in 0..2 {
        let args = [
            script.display().to_string(),
            "--base-url".into(),
            simulator.base_url(),
            "--host".into(),
            "eu1.make.com".into(),
            "--org".into(),
            organization.id.to_string(),
            "--db".into(),
            dir.join("python.db").display().to_string(),
        ];
        let env = [("MAKE_API_TOKEN".to_string(), DEMO_TOKEN.to_string())];
        let ended = run_to_end(python, &args, &env).await?;
        anyhow::ensure!(ended.success, "the Python client failed");
        let answer: serde_json::Value = serde_json::from_str(ended.stdout.trim())?;
        anyhow::ensure!(
            answer["users"].as_u64() == Some(organization.members),
            "the Python client read {} users of {}",
            answer["users"],
            organization.members
        );
        measured.push(Measured {
            wall: Duration::from_secs_f64(answer["seconds"].as_f64().unwrap_or(0.0)),
            requests: answer["requests"].as_u64().unwrap_or(0),
            peak_rss_kib: ended.peak_rss_kib,
            timings: None,
        });
    }
    Ok(measured)
}

/// The requests a sync of the organization needs, with nothing done to their answers but
/// reading them, in as few round trips as the case allows. `count_known` is a sync that
/// remembers the last one (its count, a token Make took): the organization, its roles, its
/// member list and every /users page at once, one round trip. A first sync reads the
/// organization first (to know the token and the plan before anything else), then the roles,
/// the member list and the first page at once, and as soon as that page is in every other
/// page at once (the floor is told the count: a real client learns it from the member list,
/// later).
async fn network_floor(
    simulator: &Simulator,
    organization: u64,
    members: u64,
    count_known: bool,
) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let base = simulator.base_url();
    let get = |path: String| {
        let request = http
            .get(format!("{base}/api/v2{path}"))
            .header("Authorization", format!("Token {DEMO_TOKEN}"))
            .header("Host", "eu1.make.com");
        async move {
            let response = request.send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await?;
            anyhow::Ok(())
        }
    };
    let started = Instant::now();
    let organization_read = get(format!("/organizations/{organization}"));
    let organization_read = if count_known {
        Some(organization_read)
    } else {
        organization_read.await?;
        None
    };
    let page = |offset: u64| {
        get(format!(
            "/users?organizationId={organization}&cols[]=id&cols[]=name&cols[]=email&cols[]=lastLogin&pg[sortBy]=id&pg[sortDir]=asc&pg[offset]={offset}&pg[limit]={PAGE}"
        ))
    };
    let pages = async {
        // Every page up to the first shorter than asked, which ends the list (for a list of
        // exactly whole pages, an empty one).
        let mut offsets: Vec<u64> = (0..=members / PAGE).map(|n| n * PAGE).collect();
        if !count_known {
            page(offsets.remove(0)).await?;
        }
        futures_util::future::try_join_all(offsets.into_iter().map(page)).await?;
        anyhow::Ok(())
    };
    tokio::try_join!(
        async {
            match organization_read {
                Some(read) => read.await,
                None => Ok(()),
            }
        },
        get(format!("/users/roles?organizationId={organization}")),
        get(format!(
            "/organizations/{organization}/user-organization-roles?cols[]=userId&cols[]=usersRoleId&cols[]=invitation"
        )),
        pages
    )?;
    Ok(started.elapsed())
}

async fn repeat<F, Fut>(mut measure: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut all = Vec::new();
    for _ in 0..REPEATS {
        all.push(measure().await?);
    }
    Ok(all)
}

fn median(mut all: Vec<Duration>) -> Duration {
    all.sort();
    all[all.len() / 2]
}

fn median_by_wall(all: &[Measured]) -> Measured {
    let mut sorted = all.to_vec();
    sorted.sort_by_key(|m| m.wall);
    sorted[sorted.len() / 2].clone()
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "makesync-bench-roundtrips-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The interpreter `python3` on the PATH runs (not a shim: the client runs with an empty
/// environment).
fn python() -> anyhow::Result<PathBuf> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|e| anyhow::anyhow!("python3 is not on the PATH: {e}"))?;
    anyhow::ensure!(output.status.success(), "python3 does not run");
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}
