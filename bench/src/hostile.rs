//! A hostile host's answers against the worker itself: the release binary, in a 256 MB
//! function (the template's), under the stand-in Lambda Runtime API, on moto, syncing one
//! organization whose host answers one list with 15 MB of a shape makesync must survive — a
//! `pg` echo of any size, rows past the list's bound, rows of the longest texts. Each is
//! measured in a worker of its own against the same sync with nothing hostile: the peak RSS
//! above that baseline is what the answer cost.

use crate::process::{start_function, stop};
use crate::worker::function_env;
use crate::{mb, print_table};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::{Clock, SystemClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, SecretStore, SyncRunStore};
use makesync::queue::SyncRequest;
use makesync::run::SyncReason;
use makesync::token::ApiToken;
use makesync_simulator::lambda_runtime::FakeLambdaRuntime;
use makesync_simulator::{demo_world, Simulator, DEMO_TEAMS_TOKEN};
use makesync_tests::aws::{create_resources, moto_sdk_config};
use makesync_tests::hostile_host::{
    member_row, pg_array_page, pg_object_page, rows_page, user_row,
};
use std::sync::Arc;
use std::time::Duration;

/// The organization synced: 1,000 members, 5 teams, on eu1.make.com.
const ORGANIZATION: u64 = 9700;

/// Each hostile answer of about `body` bytes: what it is, the path it answers, its
/// body.
fn shapes(body: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let users = "/api/v2/users";
    let members = "/api/v2/organizations/9700/user-organization-roles";
    vec![
        (
            "/users: pg a list of zeros",
            users,
            pg_array_page("users", body).to_vec(),
        ),
        (
            "/users: pg an object of many keys",
            users,
            pg_object_page("users", body).to_vec(),
        ),
        (
            "/users: short rows past the bound",
            users,
            rows_page("users", body, 1, |id| user_row(id, 0)).to_vec(),
        ),
        (
            "/users: rows of 1 KB texts",
            users,
            rows_page("users", body, 1, |id| user_row(id, 1000)).to_vec(),
        ),
        (
            "member list: pg a list of zeros",
            members,
            pg_array_page("userOrganizationRoles", body).to_vec(),
        ),
        (
            "member list: short rows past the bound",
            members,
            rows_page("userOrganizationRoles", body, 1, member_row).to_vec(),
        ),
        (
            "/teams: 1 KB names past the bound",
            "/api/v2/teams",
            rows_page("teams", body, 1, |id| {
                format!(r#"{{"id":{id},"name":"{}"}}"#, "T".repeat(1000))
            })
            .to_vec(),
        ),
    ]
}

/// Every shape at 15 MB; `--smoke`: the first two at 1 MB, to show the part runs.
pub async fn run(smoke: bool) -> anyhow::Result<()> {
    let body_mb = if smoke { 1 } else { 15 };
    let mut shapes = shapes(body_mb * 1024 * 1024);
    if smoke {
        shapes.truncate(2);
    }
    let sdk = moto_sdk_config().await;
    let endpoint = std::env::var(makesync_tests::aws::MOTO_ENDPOINT_ENV)?;
    let (baseline_kib, calm) = sync_once(&sdk, &endpoint, None).await?;
    let mut rows = vec![vec![
        "nothing hostile (the baseline)".to_string(),
        mb(baseline_kib),
        "—".to_string(),
        calm,
    ]];
    for (shape, path, body) in shapes {
        let (peak_kib, outcome) = sync_once(&sdk, &endpoint, Some((path, body))).await?;
        rows.push(vec![
            shape.to_string(),
            mb(peak_kib),
            mb(peak_kib.saturating_sub(baseline_kib)),
            outcome,
        ]);
    }
    print_table(
        &format!("A hostile host's {body_mb} MB answer against the worker (the built binary, 256 MB, one sync of 1,000 members with team access)"),
        &["the answer", "worker's peak RSS", "above the baseline", "the run"],
        &rows,
    );
    Ok(())
}

/// One sync of the organization by a fresh worker, its host answering `hostile` (a path and
/// its body) if given: the worker's peak RSS (KiB) and how the run ended.
async fn sync_once(
    sdk: &aws_config::SdkConfig,
    moto: &str,
    hostile: Option<(&str, Vec<u8>)>,
) -> anyhow::Result<(u64, String)> {
    let mut world = demo_world();
    world.add_generated_organization(ORGANIZATION, "eu1.make.com", Some(1000), 999, 97_000_000);
    world.add_member(ORGANIZATION, 1, 12, None);
    world.add_generated_teams(ORGANIZATION, 5, 970_000);
    if let Some((path, body)) = hostile {
        world
            .faults
            .canned_bodies
            .insert(path.to_string(), String::from_utf8(body)?);
    }
    let simulator = Simulator::start(world).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let vars = create_resources(&dynamodb, &sqs).await;
    let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let backend = AwsBackend::new(sdk, settings, clock.clone());
    let connection = Connection::new(
        ConnectionId::parse("bench-hostile")?,
        makesync::tenant::TenantId::parse("bench")?,
        MakeHost::parse("eu1.make.com")?,
        OrganizationId::new(ORGANIZATION)?,
        clock.wall(),
    );
    backend
        .secrets
        .put_token(&connection.token_ref(), &ApiToken::parse(DEMO_TEAMS_TOKEN)?)
        .await?;
    backend.store.create_connection(&connection).await?;
    let mut message = SqsMessage::default();
    message.message_id = Some("hostile".to_string());
    message.body = Some(
        SyncRequest::new(connection.id.clone(), SyncReason::Scheduled, clock.wall()).to_body(),
    );
    let mut event = SqsEvent::default();
    event.records.push(message);

    let runtime = FakeLambdaRuntime::start().await?;
    let env = function_env(&vars, moto, &simulator);
    let child = start_function("makesync-worker", &runtime.api(), 256, &env)?;
    runtime
        .first_poll(Duration::from_secs(60))
        .await
        .ok_or_else(|| anyhow::anyhow!("the worker did not start"))?;
    runtime
        .invoke(serde_json::to_value(&event)?, Duration::from_secs(300))
        .await
        .map_err(anyhow::Error::msg)?;
    let peak_kib = stop(child).await?;
    let outcome = match backend.store.list_runs(&connection.id, 1).await?.first() {
        Some(run) => match &run.error {
            Some(error) => format!("{}: {}", error.kind.as_str(), first_words(&error.message)),
            None => format!(
                "{:?}{}",
                run.outcome,
                run.teams_not_read
                    .as_deref()
                    .map(|why| format!(" ({})", first_words(why)))
                    .unwrap_or_default()
            ),
        },
        None => "no run recorded".to_string(),
    };
    simulator.stop().await;
    Ok((peak_kib, outcome))
}

/// The start of a message, for a table cell.
fn first_words(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().take(14).collect();
    format!("{} …", words.join(" "))
}
