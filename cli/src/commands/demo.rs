//! `makesync demo`: the whole path on this machine. A simulated Make with three organizations
//! in three zones; scheduler → queue → worker into the embedded store, as the Lambdas run it;
//! then changes in Make and a second round that shows what changed.

use crate::args::DemoArgs;
use crate::exit::CliError;
use crate::output;
use chrono::Utc;
use makesync::clock::{Clock, SystemClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::make::MakeApi;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, SecretStore};
use makesync::schedule::Scheduler;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, SqliteStore};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::worker::{WorkOutcome, Worker};
use makesync_simulator::{demo_world, Simulator, DEMO_TEAMS_TOKEN, DEMO_TOKEN};
use std::sync::Arc;
use std::time::Duration;

/// Each demo organization and its token: Acme's and Globex's may read team access
/// (`teams:read`), Celonis's has the integration's two scopes only.
const ORGANIZATIONS: [(&str, u64, &str); 3] = [
    ("eu1.make.com", 1001, DEMO_TEAMS_TOKEN),
    ("us2.make.com", 2002, DEMO_TEAMS_TOKEN),
    ("eu1.make.celonis.com", 3003, DEMO_TOKEN),
];

pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let mut world = demo_world();
    world.faults.latency = Duration::from_millis(15);
    let simulator = Simulator::start_on(world, clock.clone(), 0)
        .await
        .map_err(|e| CliError::internal(format!("cannot start the simulator: {e}")))?;
    output::print(format!("Make API simulator listening on {} (standing in for eu1.make.com, us2.make.com and eu1.make.celonis.com)", simulator.base_url()))?;

    let temp = tempfile::tempdir().map_err(CliError::internal)?;
    let db = args
        .demo_db
        .clone()
        .unwrap_or_else(|| temp.path().join("makesync-demo.db"));
    let store = Arc::new(SqliteStore::open(&db).map_err(CliError::internal)?);
    output::print(format!("Embedded store: {}", db.display()))?;

    let mut config = super::make_config()?;
    config.base_url_override = Some(simulator.base_url().parse().map_err(CliError::internal)?);
    let make = MakeApi::new(config, clock.clone()).map_err(CliError::internal)?;
    let secrets = Arc::new(MemorySecrets::default());
    let queue = Arc::new(MemoryQueue::default());
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock.clone())
        .with_removed_user_retention_days(super::removed_user_retention_days()?);
    let scheduler = Scheduler::new(store.clone(), queue.clone(), clock.clone());
    let worker = Worker::new(store.clone(), secrets.clone(), engine, make);

    let connections = connect_demo_organizations(&store, &secrets, clock.as_ref()).await?;

    output::print(
        "\n== Round 1: the scheduler enqueues every connection, the worker syncs each ==",
    )?;
    let outcomes = round(&scheduler, &queue, &worker).await?;
    print_first_round(&outcomes, &connections, &store).await?;

    output::print("\n== Meanwhile in Make ==")?;
    change_make(&simulator)?;

    output::print("\n== Round 2: what changed ==")?;
    let outcomes = round(&scheduler, &queue, &worker).await?;
    print_changes(&outcomes)?;
    let failed = outcomes
        .iter()
        .filter(|o| !matches!(o, WorkOutcome::Synced(_)))
        .count();
    simulator.stop().await;
    match &args.demo_db {
        Some(db) => output::print(format!(
            "\nRead the store again with: makesync --db {} users --host eu1.make.com --org 1001",
            db.display()
        ))?,
        None => {
            output::print("\n(the demo's store was temporary; pass --demo-db FILE to keep it)")?
        }
    }
    if failed > 0 {
        return Err(CliError::internal(format!(
            "{failed} demo syncs did not succeed"
        )));
    }
    Ok(())
}

/// One scheduled round: fan out, then let the worker drain the queue.
async fn round(
    scheduler: &Scheduler,
    queue: &MemoryQueue,
    worker: &Worker,
) -> Result<Vec<WorkOutcome>, CliError> {
    let summary = scheduler.fan_out().await.map_err(CliError::internal)?;
    output::print(format!(
        "scheduler: {} connections seen, {} enqueued, {} skipped",
        summary.seen,
        summary.enqueued,
        summary.skipped_paused + summary.skipped_disconnected + summary.skipped_in_flight
    ))?;
    let mut outcomes = Vec::new();
    for body in queue.take(usize::MAX) {
        outcomes.push(worker.handle_body(&body).await);
    }
    Ok(outcomes)
}

/// The three demo organizations, connected with their demo tokens.
async fn connect_demo_organizations(
    store: &SqliteStore,
    secrets: &MemorySecrets,
    clock: &dyn Clock,
) -> Result<Vec<Connection>, CliError> {
    let mut connections = Vec::new();
    for (host, organization, token) in ORGANIZATIONS {
        let token = ApiToken::parse(token).map_err(CliError::input)?;
        let host = MakeHost::parse(host).map_err(CliError::input)?;
        let organization = OrganizationId::new(organization).map_err(CliError::input)?;
        let connection = Connection::new(
            ConnectionId::for_organization(&host, organization),
            makesync::tenant::TenantId::local(),
            host,
            organization,
            clock.wall(),
        );
        secrets
            .put_token(&connection.token_ref(), &token)
            .await
            .map_err(CliError::internal)?;
        store
            .create_connection(&connection)
            .await
            .map_err(CliError::internal)?;
        connections.push(connection);
    }
    Ok(connections)
}

/// Each organization's users after the first sync, and its run.
async fn print_first_round(
    outcomes: &[WorkOutcome],
    connections: &[Connection],
    store: &SqliteStore,
) -> Result<(), CliError> {
    for outcome in outcomes {
        let Some(report) = outcome.report() else {
            continue;
        };
        let connection = connections
            .iter()
            .find(|c| c.id == report.run.connection_id)
            .expect("a report belongs to a demo connection");
        let name = report
            .organization
            .as_ref()
            .map_or("?", |o| o.name.as_str());
        output::print(format!(
            "\n{name} — organization {} on {}",
            connection.organization_id, connection.host
        ))?;
        output::print_users_table(store, &connection.id).await?;
        output::print(output::run_summary(&report.run))?;
    }
    Ok(())
}

/// What happens in Make between the two rounds.
fn change_make(simulator: &Simulator) -> Result<(), CliError> {
    let mut world = simulator.world();
    world.remove_member(1001, 11);
    output::print("Acme Robotics: Rafael Núñez leaves the organization")?;
    world.accept_invitation(1001, 3);
    output::print("Acme Robotics: Łukasz Żółć accepts the invitation")?;
    world.set_team_role(1001, 10011, 2, Some(3));
    output::print(
        "Acme Robotics: Zoë Müller is now a Team Member of Finance, no longer its Team Admin",
    )?;
    world.set_role(2002, 6, 12);
    output::print("Globex Corporation: Grace Hopper becomes Admin")?;
    world.log_in(10, Utc::now());
    output::print("Celonis Operations: Ngozi Okonjo logs in")
}

/// Each organization's run in the second round, and what changed.
fn print_changes(outcomes: &[WorkOutcome]) -> Result<(), CliError> {
    for outcome in outcomes {
        let Some(report) = outcome.report() else {
            continue;
        };
        let name = report
            .organization
            .as_ref()
            .map_or("?", |o| o.name.as_str());
        output::print(format!("\n{name}: {}", output::run_summary(&report.run)))?;
        for change in &report.changes {
            output::print(format!("  {}", output::describe_change(change)))?;
        }
    }
    Ok(())
}
